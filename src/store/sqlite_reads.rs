//! SQLite reads that are wanted together, run together: a few threads, each with a read-only
//! connection of its own (rusqlite), run a whole set of statements per job.
//!
//! sqlx-sqlite runs every statement on its connection's thread and hands the statement there
//! and its rows back, two thread wake-ups per statement. Loading a user's actor is five
//! statements (see `activation`): ten wake-ups and five read transactions, each starting with
//! an empty page cache when the group-commit batch thread has committed in between, which it
//! does every millisecond or so under load. A job here is one hand-off each way and one read
//! transaction, so its statements also see one snapshot.
//!
//! A job runs to its end even when its caller stops waiting: its answer is then dropped.
//! These connections are `query_only`: nothing written goes through them.
//!
//! A read of one person's short list (their open tasks, a user by number) is cheaper still
//! where its caller runs: [`Readers::run_here`] takes one of a few connections kept for that
//! and runs it on the caller's thread, with no hand-off at all. Such a read takes a few
//! microseconds (4–8 µs in `cargo bench --bench store -- "person reads"`), less than waking
//! a reader thread and being woken by it cost in CPU, and far less than the wake-up's latency
//! on an idle node (about 90 µs on the benchmark machine). In WAL mode a reader never waits
//! for the writer, so such a read holds its caller's thread only for its own work. When every
//! such connection is busy (more callers at once than the runtime has workers), the read goes
//! to a reader thread as above. Reads that may be long, such as an actor's activation with all
//! its memories, stay on the threads, so that they never hold a runtime worker for long.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, Type, ValueRef};
use rusqlite::{Connection, Row};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::sqlite_batch::open;
use super::{Result, StoreError};

/// What a reader thread runs: the statements of one job, on its connection.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The reader threads' door (send a job, wait for its answer), and the connections for
/// reads run where their caller is.
#[derive(Debug)]
pub(super) struct Readers {
    jobs: mpsc::Sender<Job>,
    /// The idle connections for [`Readers::run_here`]; one is taken out while it reads.
    here: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Opens `threads` read-only connections to the database file at `path` (migrated
    /// already) and starts a thread for each, and opens `here` more for reads run on their
    /// caller's thread. The threads stop when the store is dropped.
    pub(super) fn start(
        path: &Path,
        threads: usize,
        here: usize,
        busy_timeout: Duration,
    ) -> Result<Self> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads {
            let connection = open_reader(path, busy_timeout)?;
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("nudge-sqlite-read-{i}"))
                .spawn(move || serve(connection, &receiver))?;
        }
        let here = (0..here)
            .map(|_| open_reader(path, busy_timeout))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            jobs,
            here: Mutex::new(here),
        })
    }

    /// Runs `read` as [`Readers::run`] does, but on the caller's own thread when one of the
    /// connections kept for that is idle (see the module's notes): for short reads of one
    /// person's rows only, since the caller's thread is a runtime worker that serves no
    /// other task meanwhile. A read that panics fails only its caller, as on a thread.
    pub(super) async fn run_here<T: Send + 'static>(
        &self,
        read: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let idle = self.idle().pop();
        let Some(mut connection) = idle else {
            return self.run(read).await;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| in_transaction(&mut connection, read)));
        // A transaction left by a panic was rolled back as it unwound: the connection is
        // as good as before.
        self.idle().push(connection);
        outcome.unwrap_or_else(|_| {
            tracing::error!("a SQLite read panicked");
            Err(StoreError::Database(sqlx::Error::WorkerCrashed))
        })
    }

    /// The connections for [`Readers::run_here`] not reading now.
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.here.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on a reader's connection, inside one read transaction, and gives back
    /// what it returned.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection: &mut Connection| {
            let _ = done.send(in_transaction(connection, read));
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }
}

/// A read-only connection: read-write, so that a WAL reader may use the shared-memory index;
/// `query_only`, so that nothing writes through it.
fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    open(path, busy_timeout, "PRAGMA query_only = ON;", 16)
}

/// `read` inside one read transaction on `connection`.
fn in_transaction<T>(
    connection: &mut Connection,
    read: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
) -> Result<T> {
    connection
        .transaction()
        .and_then(|tx| {
            let value = read(&tx)?;
            // It only read: committing ends it and frees its snapshot.
            tx.commit()?;
            Ok(value)
        })
        .map_err(StoreError::from)
}

/// A reader thread: one job at a time, until the store is gone. A job that panics fails only
/// its caller (its answer's sender is dropped); the thread and its connection go on.
fn serve(mut connection: Connection, jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            let jobs = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if catch_unwind(AssertUnwindSafe(|| job(&mut connection))).is_err() {
            tracing::error!("a SQLite read job panicked");
        }
    }
}

/// Column `index` of `row`, which its statement names `name`.
///
/// Read by position: a read by name compares the name with each column's in turn, for every
/// row, which took an eighth of a reader thread's time loading an actor's seventy rows (`perf`,
/// round 20 of `docs/performance.md`). Debug builds, which the tests run, check the name, so a
/// statement whose columns moved fails its tests rather than read the wrong column.
pub(super) fn column<T: FromSql>(row: &Row<'_>, index: usize, name: &str) -> rusqlite::Result<T> {
    named(row, index, name);
    row.get(index)
}

/// Debug builds: checks that the statement names column `index` `name`.
fn named(row: &Row<'_>, index: usize, name: &str) {
    debug_assert_eq!(
        row.as_ref().column_name(index).ok(),
        Some(name),
        "column {index} of the statement"
    );
}

/// A UUID column ([`column`]), stored by sqlx as its 16 bytes.
pub(super) fn uuid(row: &Row<'_>, index: usize, name: &str) -> rusqlite::Result<Uuid> {
    named(row, index, name);
    match row.get_ref(index)? {
        ValueRef::Blob(bytes) => {
            Uuid::from_slice(bytes).map_err(|e| conversion(index, Type::Blob, e))
        }
        other => Err(conversion(
            index,
            other.data_type(),
            FromSqlError::Other(format!("expected a UUID's 16 bytes, found {other:?}").into()),
        )),
    }
}

/// A time stamp column ([`column`]), as sqlx-sqlite writes it (RFC 3339 text) or SQLite's
/// own `CURRENT_TIMESTAMP` does (`YYYY-MM-DD HH:MM:SS`, UTC).
pub(super) fn time(row: &Row<'_>, index: usize, name: &str) -> rusqlite::Result<DateTime<Utc>> {
    named(row, index, name);
    let text = row
        .get_ref(index)?
        .as_str()
        .map_err(|e| conversion(index, Type::Text, e))?;
    stored_time(text).ok_or_else(|| {
        conversion(
            index,
            Type::Text,
            FromSqlError::Other(format!("not a time stamp: {text:?}").into()),
        )
    })
}

/// [`time`] for a column that may be NULL.
pub(super) fn optional_time(
    row: &Row<'_>,
    index: usize,
    name: &str,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    if matches!(row.get_ref(index)?, ValueRef::Null) {
        return Ok(None);
    }
    time(row, index, name).map(Some)
}

/// A time stamp as a statement's parameter, in the text sqlx-sqlite binds for one (RFC 3339,
/// as many fractional digits as it has), so that it compares with stored ones as theirs do.
pub(super) fn time_param(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// A time stamp as sqlx stored it on SQLite (RFC 3339, or SQLite's own `YYYY-MM-DD
/// HH:MM:SS`), read as sqlx reads it; `None` for any other text.
pub(super) fn stored_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    ["%F %T%.f", "%FT%T%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}

fn conversion(
    index: usize,
    kind: Type,
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, kind, error.into())
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;

    use super::*;

    #[test]
    fn time_stamps_read_as_sqlx_and_sqlite_write_them() {
        let micros = "2026-11-27T04:50:29.123456+00:00";
        let expected = DateTime::parse_from_rfc3339(micros)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(stored_time(micros), Some(expected));
        assert_eq!(
            stored_time("2026-11-27 04:50:29"),
            Some(expected.with_nanosecond(0).unwrap())
        );
        assert_eq!(
            stored_time("2026-11-27T05:50:29.123456+01:00"),
            Some(expected)
        );
        assert_eq!(stored_time("yesterday"), None);
    }

    /// A database file in WAL mode with a table `t` of one row, 5, and a connection that
    /// writes to it.
    fn database() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reads.db");
        let setup = Connection::open(&path).unwrap();
        setup
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (5);",
            )
            .unwrap();
        (dir, path, setup)
    }

    /// `read` as [`Readers::run_here`] runs it when `here`, else as [`Readers::run`] does.
    async fn read<T: Send + 'static>(
        readers: &Readers,
        here: bool,
        read: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        if here {
            readers.run_here(read).await
        } else {
            readers.run(read).await
        }
    }

    /// A read that panics fails only its caller; the connection that ran it then still
    /// refuses to write, and sees what `setup` commits.
    async fn survives_a_panic_and_refuses_to_write(
        readers: &Readers,
        here: bool,
        setup: &Connection,
    ) {
        let panicked = read(readers, here, |_| -> rusqlite::Result<()> {
            panic!("a bad read")
        })
        .await;
        assert!(matches!(
            panicked,
            Err(StoreError::Database(sqlx::Error::WorkerCrashed))
        ));
        let write = read(readers, here, |tx| {
            tx.execute("INSERT INTO t (n) VALUES (1)", [])
        })
        .await;
        assert!(write.is_err(), "query_only: {write:?}");
        setup.execute("INSERT INTO t (n) VALUES (7)", []).unwrap();
        let sum = read(readers, here, |tx| {
            tx.query_row("SELECT SUM(n) FROM t", [], |row| row.get::<_, i64>(0))
        })
        .await;
        assert_eq!(sum.unwrap(), 12, "it still reads, and sees the commit");
    }

    #[tokio::test]
    async fn a_reader_survives_a_job_that_panics_and_refuses_to_write() {
        let (_dir, path, setup) = database();
        let readers = Readers::start(&path, 1, 0, Duration::from_secs(1)).unwrap();
        survives_a_panic_and_refuses_to_write(&readers, false, &setup).await;
    }

    #[test]
    fn a_statement_is_not_compiled_again_when_it_runs_with_new_bindings() {
        let (_dir, path, setup) = database();
        setup
            .execute_batch(
                "CREATE TABLE m (id INTEGER PRIMARY KEY, user_id BLOB NOT NULL); \
                 CREATE INDEX m_user_id ON m (user_id, id); \
                 INSERT INTO m (user_id) VALUES (x'01'), (x'02'), (x'01');",
            )
            .unwrap();
        let reader = open_reader(&path, Duration::from_secs(1)).unwrap();
        let mut recent = reader
            .prepare("SELECT id FROM m WHERE user_id = $1 ORDER BY id DESC LIMIT $2")
            .unwrap();
        let mut read = |user: u8| -> Vec<i64> {
            recent
                .query_map(rusqlite::params![[user], 20], |row| row.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(read(1), [3, 1]);
        assert_eq!(read(2), [2]);
        assert_eq!(read(1), [3, 1]);
        assert_eq!(
            recent.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "its plan does not depend on the LIMIT's value"
        );
    }

    /// The name of the thread a read ran on.
    fn thread_name(_: &rusqlite::Transaction<'_>) -> rusqlite::Result<Option<String>> {
        Ok(std::thread::current().name().map(str::to_owned))
    }

    #[tokio::test]
    async fn short_reads_run_on_the_caller_s_thread_while_a_connection_for_them_is_idle() {
        let (_dir, path, setup) = database();
        let readers = Readers::start(&path, 1, 1, Duration::from_secs(1)).unwrap();
        let caller = std::thread::current().name().map(str::to_owned);
        assert_eq!(readers.run_here(thread_name).await.unwrap(), caller);
        assert_eq!(
            readers.run(thread_name).await.unwrap().as_deref(),
            Some("nudge-sqlite-read-0"),
            "run still hands off"
        );

        // The one connection kept for such reads is out: the next goes to a thread.
        let taken = readers.idle().pop().expect("one idle connection");
        assert_eq!(
            readers.run_here(thread_name).await.unwrap().as_deref(),
            Some("nudge-sqlite-read-0")
        );
        readers.idle().push(taken);

        survives_a_panic_and_refuses_to_write(&readers, true, &setup).await;
        assert_eq!(readers.idle().len(), 1, "the connection is back");
        assert_eq!(
            readers.run_here(thread_name).await.unwrap(),
            caller,
            "and runs reads where their caller is"
        );
    }
}
