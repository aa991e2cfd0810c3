//! The write baseline: a bare axum handler that stores two rows for each Twilio-shaped POST
//! (the text in, the fixed reply out) durably, through a single writer that group-commits
//! concurrent requests' rows, before it answers the fixed TwiML of the [bare
//! baseline](super::baseline). It is the least a turn that keeps what it was told can cost on
//! a database: what Nudge's turns add (the signature, the dedupe, the actor, the rules, sealed
//! bodies, usage, keys and indexes) is the gap between it and Nudge's peak.
//!
//! The rows go to a table of their own, `loadgen_writes`, with its primary key and no other
//! index, in a database of its own: a SQLite file (WAL, `synchronous=FULL`: a commit is
//! synced before it is answered) written by one thread with one connection, or a PostgreSQL
//! database (its `synchronous_commit` as the server has it) written by [`PG_WRITERS`]
//! connections in turn, each batch one `INSERT … SELECT FROM UNNEST` (one commit), as many
//! committers as Nudge's own writer has there.
//!
//! Beside it, the same rows written the plain way ([`Commits::PerRequest`]): each request
//! commits its own two rows in a transaction of its own (`BEGIN`, two `INSERT`s, `COMMIT`) on
//! a connection of an sqlx pool, one connection on SQLite (one writer at a time whatever the
//! number, and no lock to wait for in a sleeping busy handler), [`PG_POOL`] on PostgreSQL.
//! The gap between the two is what group commit is worth on the machine.
//!
//! Each runs on its own runtime and threads, as the bare baseline does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{Mutex, oneshot};

use super::baseline::{ANSWER, ServerThread};
use crate::sms::twiml;

/// The name its threads' names begin with, by which its CPU is told from the load
/// generator's.
pub const THREADS: &str = "write-baseline";

/// The same for the per-request write baseline; its SQLite connection's statements run on
/// sqlx's own worker thread, whose name begins with [`SQLX_SQLITE_THREADS`].
pub const EACH_THREADS: &str = "write-each";

/// What the names of sqlx's SQLite worker threads begin with.
pub const SQLX_SQLITE_THREADS: &str = "sqlx-sqlite";

/// Most requests one commit takes.
const MAX_BATCH: usize = 1024;

/// PostgreSQL connections of the per-request write baseline's pool: as many as Nudge's own.
pub const PG_POOL: u32 = 16;

/// How the write baseline commits its requests' rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commits {
    /// One writer takes every request waiting and commits all their rows at once.
    Grouped,
    /// Each request commits its own two rows, in a transaction of its own.
    PerRequest,
}

impl Commits {
    /// The target its phases report (`writes` or `writes-each`).
    pub fn target(self) -> &'static str {
        match self {
            Self::Grouped => "writes",
            Self::PerRequest => "writes-each",
        }
    }

    /// What its phases are named, before their round.
    pub fn phase(self) -> &'static str {
        match self {
            Self::Grouped => "writes",
            Self::PerRequest => "writes each",
        }
    }

    /// What the names of its server's threads in this process begin with.
    pub fn threads(self) -> &'static [&'static str] {
        match self {
            Self::Grouped => &[THREADS],
            Self::PerRequest => &[EACH_THREADS, SQLX_SQLITE_THREADS],
        }
    }
}

/// PostgreSQL connections committing in turn: Nudge's writer runs two batches at once there.
pub const PG_WRITERS: usize = 2;

/// Where the write baseline stores its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteDb {
    /// A SQLite database file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl WriteDb {
    /// `sqlite:PATH` or a `postgres://` URL, else what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("--write-baseline sqlite: needs a file path (sqlite:PATH)".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err("--write-baseline must be sqlite:PATH or a postgres:// URL".into())
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// The two rows of one request.
struct Rows {
    phone: String,
    body: String,
    sid: String,
}

impl Rows {
    /// Each row's direction, text and provider id: the text in, then the reply out.
    fn each(&self) -> [(&'static str, &str, Option<&str>); 2] {
        [
            ("inbound", self.body.as_str(), Some(self.sid.as_str())),
            ("outbound", REPLY, None),
        ]
    }
}

/// A request's rows and where to say they are stored.
type Job = (Rows, oneshot::Sender<Result<(), String>>);

/// The fields of the webhook the rows take.
#[derive(Deserialize)]
struct Webhook {
    #[serde(rename = "From")]
    from: String,
    #[serde(rename = "Body")]
    body: String,
    #[serde(rename = "MessageSid")]
    sid: String,
}

/// Stores a request's rows: hands them to the group-committing writer, or commits them.
#[derive(Clone)]
enum Writer {
    Grouped(Queue),
    SqlitePool(SqlitePool),
    PgPool(PgPool),
}

impl Writer {
    async fn store(&self, rows: Rows) -> Result<(), String> {
        let committed = match self {
            Self::Grouped(queue) => return queue.store(rows).await,
            Self::SqlitePool(pool) => sqlite_each(pool, &rows).await,
            Self::PgPool(pool) => postgres_each(pool, &rows).await,
        };
        committed.map_err(|e| e.to_string())
    }
}

/// Hands a request's rows to the group-committing writer, whichever it is.
#[derive(Clone)]
enum Queue {
    Sqlite(mpsc::Sender<Job>),
    Postgres(tokio::sync::mpsc::UnboundedSender<Job>),
}

impl Queue {
    /// Waits until the batch that takes `rows` is committed.
    async fn store(&self, rows: Rows) -> Result<(), String> {
        let (done, stored) = oneshot::channel();
        let sent = match self {
            Self::Sqlite(jobs) => jobs.send((rows, done)).is_ok(),
            Self::Postgres(jobs) => jobs.send((rows, done)).is_ok(),
        };
        if !sent {
            return Err("the writer stopped".into());
        }
        stored
            .await
            .unwrap_or_else(|_| Err("the writer stopped".into()))
    }
}

/// A running write baseline; stopped when dropped (the writer ends with its last request).
pub struct WriteServer(ServerThread);

impl WriteServer {
    /// Opens the database, creates the table when missing, and serves on a free loopback
    /// port, committing as `commits` says.
    pub async fn start(db: &WriteDb, commits: Commits) -> anyhow::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let db = db.clone();
        let name = commits.threads()[0];
        let server = ServerThread::start_with(addr, name, threads, move || async move {
            let writer = match (&db, commits) {
                (WriteDb::Sqlite(path), Commits::Grouped) => sqlite_writer(path.clone())?,
                (WriteDb::Postgres(url), Commits::Grouped) => postgres_writers(url).await?,
                (WriteDb::Sqlite(path), Commits::PerRequest) => sqlite_pool(path).await?,
                (WriteDb::Postgres(url), Commits::PerRequest) => postgres_pool(url).await?,
            };
            Ok(Router::new()
                .route("/sms/inbound", post(answer))
                .with_state(writer))
        })
        .await?;
        Ok(Self(server))
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }
}

async fn answer(State(writer): State<Writer>, form: Bytes) -> Response {
    let Ok(webhook) = serde_urlencoded::from_bytes::<Webhook>(&form) else {
        return (StatusCode::BAD_REQUEST, "not a Twilio webhook").into_response();
    };
    let rows = Rows {
        phone: webhook.from,
        body: webhook.body,
        sid: webhook.sid,
    };
    match writer.store(rows).await {
        Ok(()) => ([(CONTENT_TYPE, twiml::CONTENT_TYPE)], ANSWER).into_response(),
        Err(problem) => {
            tracing::warn!(%problem, "the write baseline could not store a request");
            (StatusCode::INTERNAL_SERVER_ERROR, "not stored").into_response()
        }
    }
}

/// The reply row's text.
const REPLY: &str = "Got it.";

const SQLITE_TABLE: &str = "\
CREATE TABLE IF NOT EXISTS loadgen_writes (
    id         INTEGER PRIMARY KEY,
    phone      TEXT NOT NULL,
    direction  TEXT NOT NULL,
    body       TEXT NOT NULL,
    sid        TEXT,
    created_at TEXT NOT NULL
)";

const SQLITE_INSERT: &str = "INSERT INTO loadgen_writes (phone, direction, body, sid, created_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5)";

/// Opens the SQLite file and starts its writer thread, which ends once every sender is gone.
fn sqlite_writer(path: PathBuf) -> anyhow::Result<Writer> {
    let connection = rusqlite::Connection::open(&path)
        .with_context(|| format!("opening the write baseline's {}", path.display()))?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .and_then(|()| connection.pragma_update(None, "synchronous", "FULL"))
        .and_then(|()| connection.execute_batch(SQLITE_TABLE))
        .with_context(|| format!("setting up the write baseline's {}", path.display()))?;
    let (jobs, queue) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name(format!("{THREADS}-sqlite"))
        .spawn(move || {
            let mut connection = connection;
            while let Ok(first) = queue.recv() {
                let mut batch = vec![first];
                batch.extend(queue.try_iter().take(MAX_BATCH - 1));
                let outcome = sqlite_commit(&mut connection, &batch).map_err(|e| e.to_string());
                for (_, done) in batch {
                    let _ = done.send(outcome.clone());
                }
            }
        })
        .context("starting the write baseline's writer")?;
    Ok(Writer::Grouped(Queue::Sqlite(jobs)))
}

/// One transaction: two rows for each request of the batch.
fn sqlite_commit(connection: &mut rusqlite::Connection, batch: &[Job]) -> rusqlite::Result<()> {
    let now = chrono::Utc::now().to_rfc3339();
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(SQLITE_INSERT)?;
        for (rows, _) in batch {
            for (direction, body, sid) in rows.each() {
                insert.execute(rusqlite::params![rows.phone, direction, body, sid, now])?;
            }
        }
    }
    tx.commit()
}

const PG_TABLE: &str = "\
CREATE TABLE IF NOT EXISTS loadgen_writes (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone      TEXT        NOT NULL,
    direction  TEXT        NOT NULL,
    body       TEXT        NOT NULL,
    sid        TEXT,
    created_at TIMESTAMPTZ NOT NULL
)";

/// A batch in one statement: one array per column, two rows per request.
const PG_INSERT: &str = "\
INSERT INTO loadgen_writes (phone, direction, body, sid, created_at)
SELECT phone, direction, body, sid, now()
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS w(phone, direction, body, sid)";

/// Connects [`PG_WRITERS`] connections, creates the table, and starts their tasks, which take
/// what is waiting in turn and end once every sender is gone.
async fn postgres_writers(url: &str) -> anyhow::Result<Writer> {
    let mut connections = Vec::with_capacity(PG_WRITERS);
    for _ in 0..PG_WRITERS {
        connections.push(
            PgConnection::connect(url)
                .await
                .context("connecting the write baseline to PostgreSQL")?,
        );
    }
    if let Some(first) = connections.first_mut() {
        sqlx::raw_sql(PG_TABLE)
            .execute(first)
            .await
            .context("creating the write baseline's table")?;
    }
    let (jobs, queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for mut connection in connections {
        let queue = queue.clone();
        tokio::spawn(async move {
            loop {
                let batch = {
                    let mut queue = queue.lock().await;
                    let Some(first) = queue.recv().await else {
                        break;
                    };
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    batch
                };
                let outcome = postgres_commit(&mut connection, &batch)
                    .await
                    .map_err(|e| e.to_string());
                for (_, done) in batch {
                    let _ = done.send(outcome.clone());
                }
            }
        });
    }
    Ok(Writer::Grouped(Queue::Postgres(jobs)))
}

/// One statement, so one commit: two rows for each request of the batch.
async fn postgres_commit(connection: &mut PgConnection, batch: &[Job]) -> sqlx::Result<()> {
    let mut phone = Vec::with_capacity(2 * batch.len());
    let mut direction = Vec::with_capacity(2 * batch.len());
    let mut body = Vec::with_capacity(2 * batch.len());
    let mut sid = Vec::with_capacity(2 * batch.len());
    for (rows, _) in batch {
        for (d, b, s) in rows.each() {
            phone.push(rows.phone.as_str());
            direction.push(d);
            body.push(b);
            sid.push(s);
        }
    }
    sqlx::query(PG_INSERT)
        .bind(phone)
        .bind(direction)
        .bind(body)
        .bind(sid)
        .execute(connection)
        .await
        .map(|_| ())
}

/// Opens the SQLite file through a pool of one sqlx connection (WAL, `synchronous=FULL`),
/// and creates the table when missing.
async fn sqlite_pool(path: &Path) -> anyhow::Result<Writer> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .with_context(|| format!("opening the write baseline's {}", path.display()))?;
    sqlx::raw_sql(SQLITE_TABLE)
        .execute(&pool)
        .await
        .with_context(|| format!("setting up the write baseline's {}", path.display()))?;
    Ok(Writer::SqlitePool(pool))
}

/// A request's two rows in a transaction of their own.
async fn sqlite_each(pool: &SqlitePool, rows: &Rows) -> sqlx::Result<()> {
    let now = chrono::Utc::now().to_rfc3339();
    let mut tx = pool.begin().await?;
    for (direction, body, sid) in rows.each() {
        sqlx::query(SQLITE_INSERT)
            .bind(rows.phone.as_str())
            .bind(direction)
            .bind(body)
            .bind(sid)
            .bind(now.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// One row, in the statement's own transaction or the caller's.
const PG_INSERT_ONE: &str = "\
INSERT INTO loadgen_writes (phone, direction, body, sid, created_at)
VALUES ($1, $2, $3, $4, now())";

/// Connects a pool of [`PG_POOL`] connections and creates the table when missing.
async fn postgres_pool(url: &str) -> anyhow::Result<Writer> {
    let pool = PgPoolOptions::new()
        .max_connections(PG_POOL)
        .connect(url)
        .await
        .context("connecting the write baseline to PostgreSQL")?;
    sqlx::raw_sql(PG_TABLE)
        .execute(&pool)
        .await
        .context("creating the write baseline's table")?;
    Ok(Writer::PgPool(pool))
}

/// A request's two rows in a transaction of their own.
async fn postgres_each(pool: &PgPool, rows: &Rows) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for (direction, body, sid) in rows.each() {
        sqlx::query(PG_INSERT_ONE)
            .bind(rows.phone.as_str())
            .bind(direction)
            .bind(body)
            .bind(sid)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::client::{Answer, Connection, SmsWebhooks, Traffic};

    #[test]
    fn the_database_is_named_by_a_sqlite_path_or_a_postgres_url() {
        assert_eq!(
            WriteDb::parse("sqlite:/tmp/w.db"),
            Ok(WriteDb::Sqlite("/tmp/w.db".into()))
        );
        assert_eq!(
            WriteDb::parse("sqlite://w.db"),
            Ok(WriteDb::Sqlite("w.db".into()))
        );
        let url = "postgres://u@127.0.0.1:5432/w";
        assert_eq!(WriteDb::parse(url), Ok(WriteDb::Postgres(url.into())));
        assert_eq!(WriteDb::parse(url).unwrap().backend(), "postgres");
        for bad in ["sqlite:", "mysql://x", "w.db", ""] {
            let problem = WriteDb::parse(bad).unwrap_err();
            assert!(problem.contains("--write-baseline"), "{bad}: {problem}");
        }
    }

    #[tokio::test]
    async fn each_answer_follows_its_two_rows_group_committed_to_sqlite() {
        answers_follow_their_rows(Commits::Grouped).await;
    }

    #[tokio::test]
    async fn each_answer_follows_its_two_rows_committed_on_their_own_to_sqlite() {
        answers_follow_their_rows(Commits::PerRequest).await;
    }

    /// Eight connections send five webhooks each; each answer comes once its two rows are
    /// in the file, and a body that is not a webhook stores nothing.
    async fn answers_follow_their_rows(commits: Commits) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writes.db");
        let server = WriteServer::start(&WriteDb::Sqlite(path.clone()), commits)
            .await
            .unwrap();
        let addr = server.addr();
        let url = format!("http://{addr}/sms/inbound");
        let traffic = Arc::new(SmsWebhooks::new(&url, &addr.to_string(), "t", vec![]));
        let sends: Vec<_> = (0..8u64)
            .map(|user| {
                let traffic = traffic.clone();
                tokio::spawn(async move {
                    let mut connection = Connection::new(addr);
                    for seq in 0..5 {
                        let (status, body) =
                            connection.send(traffic.request(user, seq)).await.unwrap();
                        assert_eq!(traffic.check(status, &body), Ok(Answer::Replied));
                        assert_eq!(body, ANSWER.as_bytes());
                    }
                })
            })
            .collect();
        for send in sends {
            send.await.unwrap();
        }
        let db = rusqlite::Connection::open(&path).unwrap();
        let count = |direction: &str| -> i64 {
            db.query_row(
                "SELECT COUNT(*) FROM loadgen_writes WHERE direction = ?1",
                [direction],
                |row| row.get(0),
            )
            .unwrap()
        };
        assert_eq!((count("inbound"), count("outbound")), (40, 40));
        let sids: i64 = db
            .query_row(
                "SELECT COUNT(DISTINCT sid) FROM loadgen_writes WHERE direction = 'inbound'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(sids, 40);

        let mut connection = Connection::new(addr);
        let bad = axum::http::Request::post(format!("http://{addr}/sms/inbound"))
            .header("host", addr.to_string())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(Bytes::from_static(b"Body=hi")))
            .unwrap();
        let (status, _) = connection.send(bad).await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(count("inbound"), 40, "a bad request stores nothing");
        drop(server);
    }
}
