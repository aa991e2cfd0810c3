//! Row-level security on the assistant's own paths (PostgreSQL): SMS and web turns and the
//! tools they run write every row as the `nudge_app` role with the user's id set, and another
//! user's setting sees none of them.
//!
//! The test arms every table a turn writes with a trigger that refuses any write made
//! outside row-level security (`row_security_active` is false for the tables' owner and for
//! superusers), so a store path that forgot the user's scope fails the turn here.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::accounts::{PASSWORD, access, login};
use crate::helpers::{Database, Server, add_user, sid};
use crate::live;
use crate::privacy::attach;
use nudge::store::testing::{drop_postgres_database, fresh_postgres_url, require_postgres};

const ANA_PHONE: &str = "+14155550171";
const ANA_NUMBER: &str = "+14155559071";
const BOB_PHONE: &str = "+14155550172";
const BOB_NUMBER: &str = "+14155559072";

/// Every table an SMS turn and the internal tools write to.
const TURN_TABLES: &[&str] = &[
    "messages",
    "sms_usage_logs",
    "llm_usage",
    "conversation_summaries",
    "tasks",
    "grocery_items",
    "expenses",
    "notes",
    "reminders",
    "ltm_memories",
];

const REFUSE_OUTSIDE_RLS: &str = "CREATE FUNCTION nudge_test_refuse_outside_rls() \
     RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
     IF NOT row_security_active(TG_RELID) THEN \
         RAISE EXCEPTION 'write to % outside row-level security', TG_TABLE_NAME; \
     END IF; \
     RETURN coalesce(NEW, OLD); END $$";

/// Rows of `table` that a transaction as `nudge_app` with `app.user_id = user` sees.
async fn visible(conn: &mut PgConnection, table: &str, user: &str) -> i64 {
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(
        "SELECT set_config('role', 'nudge_app', true), set_config('app.user_id', $1, true)",
    )
    .bind(user)
    .execute(&mut *tx)
    .await
    .unwrap();
    let (n,): (i64,) = sqlx::query_as(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    n
}

#[tokio::test]
async fn sms_and_web_turns_and_their_tools_write_under_row_level_security_only() {
    let Some(url) = fresh_postgres_url().await else {
        assert!(!require_postgres(), "CI requires NUDGE_TEST_POSTGRES_URL");
        eprintln!("NUDGE_TEST_POSTGRES_URL unset: skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Database {
        label: "postgres",
        url: url.clone(),
    };
    let data = db.data_dir(dir.path());
    let ana = add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en");
    let bob = add_user(&data, &db, "Bob", BOB_PHONE, BOB_NUMBER, "en");

    // From here on, a write to any turn table outside row-level security fails.
    let mut admin = PgConnection::connect(&url).await.unwrap();
    sqlx::query(REFUSE_OUTSIDE_RLS)
        .execute(&mut admin)
        .await
        .unwrap();
    for table in TURN_TABLES {
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TRIGGER refuse_outside_rls BEFORE INSERT OR UPDATE OR DELETE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION nudge_test_refuse_outside_rls()"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
    // The trap works: the owner (a superuser here) cannot write without the scope.
    let refused = sqlx::query(
        "INSERT INTO tasks (user_id, title, done, created_at) \
                               VALUES ($1::uuid, 'x', false, now())",
    )
    .bind(&ana)
    .execute(&mut admin)
    .await;
    assert!(
        refused.is_err_and(|e| e.to_string().contains("outside row-level security")),
        "the trigger refuses an unscoped write"
    );

    let server = Server::start(&data, &db, &[]);
    for (body, expected) in [
        ("task pay rent by friday", "Added: pay rent"),
        ("buy milk, eggs", "Added to groceries: milk, eggs."),
        ("spent 12.50 on lunch", "Logged 12.50 EUR"),
        ("note: locker code is 4521-zebra", "Saved your note."),
        (
            "remind me tomorrow at 9am to call the bank",
            "Reminder set for ",
        ),
        ("done 1", "Done: pay rent."),
    ] {
        let reply = server.text(&sid(), ANA_PHONE, ANA_NUMBER, body).await;
        assert!(reply.contains(expected), "{body:?} -> {reply:?}");
    }
    let reply = server
        .text(&sid(), BOB_PHONE, BOB_NUMBER, "task call mom")
        .await;
    assert!(reply.contains("Added: call mom"), "{reply:?}");

    // A web turn over the WebSocket takes the same scoped paths.
    attach(&server, &ana, "ana@example.com").await;
    let token = access(&login(&server, "ana@example.com", PASSWORD, None).await.body);
    let mut socket = live::open(&server, &token, None).await;
    live::say(&mut socket, "task water the plants").await;
    let reply = loop {
        let event = live::next_event(&mut socket).await;
        if event["direction"] == "outbound" {
            break event;
        }
    };
    assert!(
        reply["body"]
            .as_str()
            .is_some_and(|b| b.contains("water the plants")),
        "{reply}"
    );
    drop(socket);

    for (table, least) in [
        ("messages", 14),
        ("tasks", 2),
        ("grocery_items", 2),
        ("expenses", 1),
        ("notes", 1),
        ("reminders", 1),
    ] {
        let anas = visible(&mut admin, table, &ana).await;
        assert!(anas >= least, "{table}: Ana sees her {anas} rows");
    }
    // Bob's setting sees Bob's turn only: his task and his two messages.
    assert_eq!(visible(&mut admin, "tasks", &bob).await, 1);
    assert_eq!(visible(&mut admin, "messages", &bob).await, 2);
    for table in ["grocery_items", "expenses", "notes", "reminders"] {
        assert_eq!(visible(&mut admin, table, &bob).await, 0, "{table} as Bob");
    }
    let (titles,): (String,) = {
        let mut tx = admin.begin().await.unwrap();
        sqlx::query(
            "SELECT set_config('role', 'nudge_app', true), set_config('app.user_id', $1, true)",
        )
        .bind(&bob)
        .execute(&mut *tx)
        .await
        .unwrap();
        let titles = sqlx::query_as("SELECT coalesce(string_agg(title, ','), '') FROM tasks")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        titles
    };
    assert_eq!(titles, "call mom");

    drop(server);
    let _ = admin.close().await;
    drop_postgres_database(&url).await;
}
