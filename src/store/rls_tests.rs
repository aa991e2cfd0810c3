//! Row-level security on every path: which store methods run across users as the owner, and
//! that no other one does.
//!
//! Every method that reads or writes one user's rows runs under [`with_user!`] (on PostgreSQL:
//! the role `nudge_app` with `app.user_id` set). The methods below are the deliberate
//! exceptions, each documented where it stands; the test reads the store's sources so that a
//! new method reaching the pool without the user's scope fails here until it is converted or
//! added to this list on purpose.

use super::pg_conns::Scope;

/// The store's sources, by file name.
const SOURCES: &[(&str, &str)] = &[
    ("accounts.rs", include_str!("accounts.rs")),
    ("audit.rs", include_str!("audit.rs")),
    ("deliveries.rs", include_str!("deliveries.rs")),
    ("digests.rs", include_str!("digests.rs")),
    ("expenses.rs", include_str!("expenses.rs")),
    ("firings.rs", include_str!("firings.rs")),
    ("goals.rs", include_str!("goals.rs")),
    ("groceries.rs", include_str!("groceries.rs")),
    ("keys.rs", include_str!("keys.rs")),
    ("llm_usage.rs", include_str!("llm_usage.rs")),
    ("memories.rs", include_str!("memories.rs")),
    ("messages.rs", include_str!("messages.rs")),
    ("mod.rs", include_str!("mod.rs")),
    ("notes.rs", include_str!("notes.rs")),
    ("privacy.rs", include_str!("privacy.rs")),
    ("reminders.rs", include_str!("reminders.rs")),
    ("sessions.rs", include_str!("sessions.rs")),
    ("sql.rs", include_str!("sql.rs")),
    ("summaries.rs", include_str!("summaries.rs")),
    ("tasks.rs", include_str!("tasks.rs")),
    ("users.rs", include_str!("users.rs")),
];

/// `file::method` of every store method that reaches the pool as the owner, and why.
const CROSS_USER: &[(&str, &str)] = &[
    ("mod.rs::ping", "readiness: touches no table"),
    (
        "accounts.rs::account_by_email",
        "sign-in: finds whose an e-mail is",
    ),
    (
        "accounts.rs::user_by_phone",
        "phone sign-in: finds whose a phone is",
    ),
    (
        "users.rs::one_user",
        "SMS edge: finds whose a dedicated number is",
    ),
    ("users.rs::create_users", "bulk provisioning of many users"),
    (
        "memories.rs::add_memories",
        "seeding a benchmark population: many users' memories in one transaction",
    ),
    (
        "sessions.rs::rotate_refresh_token",
        "refresh: finds whose a token is",
    ),
    (
        "audit.rs::audit",
        "the security log is append-only and names no owner",
    ),
    (
        "audit.rs::audit_events_for",
        "the security log: nudge_app may only append",
    ),
    (
        "audit.rs::recent_audit_events",
        "admin: audited read of the security log",
    ),
    ("audit.rs::purge_audit_before", "retention purge"),
    (
        "deliveries.rs::update_sms_delivery",
        "Twilio status callback: by message SID",
    ),
    (
        "digests.rs::due_digests",
        "scheduler: due morning digests of every user",
    ),
    (
        "digests.rs::place_digest",
        "scheduler: places a user's next digest",
    ),
    ("digests.rs::claim_digest", "scheduler: claims a due digest"),
    (
        "digests.rs::unsent_digests",
        "scheduler: digests to resend after a crash",
    ),
    (
        "firings.rs::due_reminders",
        "scheduler: due reminders of every user",
    ),
    (
        "firings.rs::claim_firing",
        "scheduler: claims a due reminder",
    ),
    (
        "firings.rs::defer_reminder",
        "scheduler: defers a due reminder",
    ),
    (
        "firings.rs::unsent_firings",
        "scheduler: firings to resend after a crash",
    ),
    (
        "firings.rs::finish_claimed",
        "scheduler: records a delivery (finish_firing, finish_digest)",
    ),
    ("keys.rs::note_active_key", "key rotation"),
    ("keys.rs::sealed_columns", "key rotation"),
    (
        "keys.rs::reseal_column",
        "key rotation: re-seals every user's values",
    ),
    (
        "llm_usage.rs::llm_usage_by_provider",
        "admin metrics: totals over users",
    ),
    (
        "messages.rs::store_writes",
        "group commit (write_messages, commit_messages): scoped to its batch's users instead",
    ),
    (
        "privacy.rs::user_tables",
        "schema: which tables hold user rows",
    ),
    (
        "privacy.rs::tables_without_cascade",
        "schema: which tables escape the cascade",
    ),
    (
        "privacy.rs::erase_user",
        "erasure: every table, then an anonymous audit entry",
    ),
    ("privacy.rs::purge_messages_before", "retention purge"),
    ("privacy.rs::purge_expired", "retention purge"),
];

/// `file::method` of every method (outside test modules) whose body reaches the owner's pool.
fn methods_on_the_owner_pool() -> Vec<String> {
    let mut found = Vec::new();
    for (file, source) in SOURCES {
        let source = source
            .find("#[cfg(test)]\nmod tests {")
            .map_or(*source, |cut| &source[..cut]);
        let mut current: Option<&str> = None;
        for line in source.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if indent <= 4
                && let Some(at) = trimmed.find("fn ")
                && trimmed[..at]
                    .split_whitespace()
                    .all(|w| w == "pub" || w.starts_with("pub(") || w == "async" || w == "const")
            {
                let name = &trimmed[at + 3..];
                let end = name
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(name.len());
                current = Some(&name[..end]);
            }
            let owner = trimmed.contains("with_pool!(self") || trimmed.contains("&self.pool");
            if owner && let Some(method) = current {
                let entry = format!("{file}::{method}");
                if !found.contains(&entry) {
                    found.push(entry);
                }
            }
        }
    }
    found
}

#[test]
fn every_store_method_but_the_listed_cross_user_ones_runs_in_its_users_scope() {
    let listed: Vec<&str> = CROSS_USER.iter().map(|(m, _)| *m).collect();
    let found = methods_on_the_owner_pool();
    let unlisted: Vec<&String> = found
        .iter()
        .filter(|m| !listed.contains(&m.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "these reach the pool as the owner, outside row-level security: use with_user! \
         or list them in CROSS_USER with the reason: {unlisted:?}"
    );
    let stale: Vec<&&str> = listed
        .iter()
        .filter(|m| !found.iter().any(|f| f == *m))
        .collect();
    assert!(
        stale.is_empty(),
        "listed but no longer cross-user: {stale:?}"
    );
}

#[test]
fn the_scan_covers_every_store_file_that_reaches_the_pool() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/store is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with(".rs") || name.ends_with("tests.rs") || name == "testing.rs" {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a source file");
        let reaches = source.contains("with_pool!(self") || source.contains("&self.pool");
        if reaches && !SOURCES.iter().any(|(file, _)| *file == name) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "add these to SOURCES: {missing:?}");
}

#[test]
fn the_scan_sees_a_method_on_the_owner_pool() {
    assert!(
        methods_on_the_owner_pool()
            .iter()
            .any(|m| m == "firings.rs::due_reminders")
    );
    assert!(
        !methods_on_the_owner_pool()
            .iter()
            .any(|m| m == "tasks.rs::open_tasks"),
        "open_tasks runs in its user's scope"
    );
}

/// Inserts a message row for `user` on `tx`, as the writer's statements do.
async fn insert_message(
    conn: &mut sqlx::PgConnection,
    user: super::UserId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO messages (user_id, channel, direction, body, created_at) \
         VALUES ($1, 'sms', 'inbound', 'hi', now())",
    )
    .bind(user.0)
    .execute(conn)
    .await
    .map(|_| ())
}

#[tokio::test]
async fn a_batch_scope_admits_the_rows_of_its_users_and_refuses_any_other() {
    super::testing::on_each_backend(|store| async move {
        let super::Pool::Postgres(_) = &store.pool else {
            return; // Row-level security is PostgreSQL's.
        };
        assert!(
            store.pg_scopes().unwrap().switches_role(),
            "the test server lets the store switch to nudge_app"
        );
        let ana = super::tests::create(&store, 1).await.id;
        let bob = super::tests::create(&store, 2).await.id;
        let carl = super::tests::create(&store, 3).await.id;
        store
            .add_tasks(ana, &[super::NewTask::titled("ana's task")])
            .await
            .expect("a task");
        let scopes = store.pg_scopes().unwrap();

        let mut conn = scopes.scoped(Scope::Batch(&[ana, bob])).await.unwrap();
        insert_message(&mut conn, ana)
            .await
            .expect("Ana is in the batch");
        insert_message(&mut conn, bob)
            .await
            .expect("Bob is in the batch");
        let (seen,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(seen, 2, "the batch reads back its own rows");
        let (tasks,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(tasks, 0, "a batch sees no other table's rows");
        drop(conn);

        let mut conn = scopes.scoped(Scope::Batch(&[ana])).await.unwrap();
        let refused = insert_message(&mut conn, carl).await;
        assert!(
            refused.is_err_and(|e| e.to_string().contains("row-level security")),
            "Carl is not in the batch"
        );
        drop(conn);

        // The same connections serve one person's calls: a scope set for a batch before is
        // not left behind, nor one person's for the next.
        for _ in 0..3 {
            let mut conn = scopes.scoped(Scope::User(bob)).await.unwrap();
            let (seen,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(seen, 1, "Bob sees his own message only");
            let refused = insert_message(&mut conn, ana).await;
            assert!(
                refused.is_err_and(|e| e.to_string().contains("row-level security")),
                "Bob's scope refuses Ana's rows"
            );
            let (tasks,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(tasks, 0, "Ana's task is not Bob's");
        }
        let mut conn = scopes.scoped(Scope::User(ana)).await.unwrap();
        let (tasks,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(tasks, 1, "Ana sees her task");
    })
    .await;
}

#[tokio::test]
async fn every_policy_reads_its_scope_once_per_statement() {
    super::testing::on_each_backend(|store| async move {
        let super::Pool::Postgres(pool) = &store.pool else {
            return; // Row-level security is PostgreSQL's.
        };
        // A scope function called bare is inlined into the policy and runs for every row
        // (parsing `app.batch_user_ids` each time); inside a subquery it runs once.
        let policies: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT tablename::text, policyname::text, \
                    coalesce(qual, '') || ' ' || coalesce(with_check, '') \
             FROM pg_policies WHERE schemaname = current_schema()",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(
            policies.len() > 20,
            "every user table has a policy: {policies:?}"
        );
        for (table, policy, expressions) in &policies {
            let calls = expressions.matches("nudge_").count();
            let once = expressions.matches("SELECT nudge_").count();
            assert!(calls > 0, "{table}.{policy} reads a scope: {expressions}");
            // Each subquery names its function twice: the call and its column alias.
            assert_eq!(
                calls,
                once * 2,
                "{table}.{policy} reads its scope in a subquery: {expressions}"
            );
        }
    })
    .await;
}
