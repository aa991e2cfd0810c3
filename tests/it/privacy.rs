//! Isolation and privacy through the real binary: one person can never read, change, export
//! or erase another's data on any route of any edge; erasure leaves nothing behind.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::accounts::{PASSWORD, access, call, login, register};
use crate::helpers::{Database, Server, add_user, databases, sealer, sid};
use crate::live;
use nudge::auth::password::{HashParams, hash};
use nudge::store::{UserId, seal};

const ANA_PHONE: &str = "+14155550101";
const ANA_NUMBER: &str = "+14155559001";
const BOB_PHONE: &str = "+33612345678";
const BOB_NUMBER: &str = "+33755559002";

/// Gives an SMS user an email and password directly in the store (test set-up; the API's
/// own claim flow is tested in `accounts`).
pub async fn attach(server: &Server, user: &str, email: &str) -> UserId {
    let id: UserId = user.parse().unwrap();
    let params = HashParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };
    let hashed = hash(&params, PASSWORD).unwrap();
    server
        .store()
        .await
        .attach_account(
            id,
            email,
            &hashed,
            &[("terms_of_service".into(), "2026-11".into())],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    id
}

/// Ana (SMS and web, with a task, a grocery item and a conversation) and Bob, signed in.
struct Pair {
    ana: UserId,
    ana_token: String,
    ana_task: i64,
    ana_grocery: i64,
    ana_consent: i64,
    /// Ana's goal, expense, note, reminder and memory, by resource name.
    ana_items: Vec<(&'static str, i64)>,
    bob: UserId,
    bob_token: String,
}

async fn pair(server: &Server, data: &std::path::Path, db: &Database) -> Pair {
    let ana = add_user(data, db, "Ana", ANA_PHONE, ANA_NUMBER, "en");
    let bob = add_user(data, db, "Bob", BOB_PHONE, BOB_NUMBER, "fr");
    let ana = attach(server, &ana, "ana@example.com").await;
    let bob = attach(server, &bob, "bob@example.com").await;
    server
        .text(&sid(), ANA_PHONE, ANA_NUMBER, "add task call the pharmacy")
        .await;
    server
        .text(&sid(), BOB_PHONE, BOB_NUMBER, "ajoute tâche appeler maman")
        .await;
    let ana_token = access(&login(server, "ana@example.com", PASSWORD, None).await.body);
    let bob_token = access(&login(server, "bob@example.com", PASSWORD, None).await.body);
    let task = call(
        server,
        Method::POST,
        "/api/v1/me/tasks",
        Some(&ana_token),
        Some(json!({"title": "ana secret task"})),
    )
    .await;
    assert_eq!(task.status, StatusCode::CREATED, "{}", task.body);
    let grocery = call(
        server,
        Method::POST,
        "/api/v1/me/groceries",
        Some(&ana_token),
        Some(json!({"name": "ana secret oat milk"})),
    )
    .await;
    assert_eq!(grocery.status, StatusCode::CREATED);
    let consents = call(
        server,
        Method::GET,
        "/api/v1/me/consents",
        Some(&ana_token),
        None,
    )
    .await;
    let mut ana_items = Vec::new();
    for (name, body) in [
        ("goals", json!({"title": "ana secret goal"})),
        (
            "expenses",
            json!({"amount": "12.50", "currency": "EUR", "note": "ana secret expense"}),
        ),
        ("notes", json!({"body": "ana secret note"})),
        (
            "reminders",
            json!({"text": "ana secret reminder", "when": "tomorrow at 9"}),
        ),
        ("memories", json!({"text": "ana secret memory"})),
    ] {
        let made = call(
            server,
            Method::POST,
            &format!("/api/v1/me/{name}"),
            Some(&ana_token),
            Some(body),
        )
        .await;
        assert_eq!(made.status, StatusCode::CREATED, "{name}: {}", made.body);
        ana_items.push((name, made.body["id"].as_i64().unwrap()));
    }
    Pair {
        ana,
        ana_token,
        ana_task: task.body["id"].as_i64().unwrap(),
        ana_grocery: grocery.body["id"].as_i64().unwrap(),
        ana_consent: consents.body[0]["id"].as_i64().unwrap(),
        ana_items,
        bob,
        bob_token,
    }
}

/// Every documented route with an id, filled in with Ana's ids, with its methods.
fn routes_with_ids(doc: &Value, p: &Pair) -> Vec<(Method, String)> {
    let mut routes = Vec::new();
    for (route, item) in doc["paths"].as_object().unwrap() {
        if !route.contains('{') {
            continue;
        }
        let filled = if route.starts_with("/api/v1/admin/users/") {
            route.replace("{id}", &p.ana.to_string())
        } else if route.starts_with("/api/v1/me/tasks/") {
            route.replace("{id}", &p.ana_task.to_string())
        } else if route.starts_with("/api/v1/me/groceries/") {
            route.replace("{id}", &p.ana_grocery.to_string())
        } else if route.starts_with("/api/v1/me/consents/") {
            route.replace("{id}", &p.ana_consent.to_string())
        } else if let Some((_, id)) = p
            .ana_items
            .iter()
            .find(|(name, _)| route == &format!("/api/v1/me/{name}/{{id}}"))
        {
            route.replace("{id}", &id.to_string())
        } else {
            panic!("the isolation matrix does not know how to fill {route}: teach it");
        };
        for verb in item.as_object().unwrap().keys() {
            let method = verb.to_uppercase().parse::<Method>().unwrap();
            routes.push((method, filled.clone()));
        }
    }
    routes
}

fn body_for(method: &Method, route: &str) -> Option<Value> {
    match *method {
        Method::PATCH if route.contains("/tasks/") => {
            Some(json!({"title": "bob was here", "done": true}))
        }
        Method::PATCH if route.contains("/groceries/") => {
            Some(json!({"name": "bob was here", "checked": true}))
        }
        Method::PATCH if route.contains("/goals/") => {
            Some(json!({"title": "bob was here", "status": "achieved"}))
        }
        Method::PATCH if route.contains("/expenses/") => {
            Some(json!({"amount": "1", "note": "bob was here"}))
        }
        Method::PATCH if route.contains("/notes/") => Some(json!({"body": "bob was here"})),
        Method::PATCH if route.contains("/reminders/") => {
            Some(json!({"text": "bob was here", "when": "in 2 hours"}))
        }
        Method::PATCH if route.contains("/memories/") => {
            Some(json!({"text": "bob was here", "importance": 0.1}))
        }
        _ => None,
    }
}

#[tokio::test]
async fn nobody_reaches_another_persons_data_on_any_route_of_any_edge() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let mut env = vec![
            ("NUDGE_RATE_API_PER_MIN", "0".to_owned()),
            ("NUDGE_RATE_AUTH_PER_MIN", "0".to_owned()),
        ];
        // On PostgreSQL the REST API runs as a login role bound by row-level security.
        let api_role = if db.label == "postgres" {
            let (role, url) = bound_api_role(&db.url).await;
            env.push(("NUDGE_DATABASE_API_URL", url));
            Some(role)
        } else {
            None
        };
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let server = Server::start(&data, &db, &env);
        let p = pair(&server, &data, &db).await;
        let doc = call(&server, Method::GET, "/api/v1/openapi.json", None, None)
            .await
            .body;

        // REST: every route with an id answers Bob 404 for Ana's ids, whatever the method.
        let routes = routes_with_ids(&doc, &p);
        assert!(routes.len() >= 24, "{routes:?}");
        for (name, _) in &p.ana_items {
            let item = format!("/api/v1/me/{name}/");
            let methods = routes.iter().filter(|(_, r)| r.starts_with(&item)).count();
            assert_eq!(
                methods, 3,
                "{name}: GET, PATCH and DELETE are in the matrix"
            );
        }
        for (method, route) in &routes {
            let answer = call(
                &server,
                method.clone(),
                route,
                Some(&p.bob_token),
                body_for(method, route),
            )
            .await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "[{}] {method} {route} as Bob: {}",
                db.label,
                answer.body
            );
        }
        // A standard user finds no admin routes at all.
        let audit = call(
            &server,
            Method::GET,
            "/api/v1/admin/audit",
            Some(&p.bob_token),
            None,
        )
        .await;
        assert_eq!(audit.status, StatusCode::NOT_FOUND);

        // Bob's own lists, profile and export hold nothing of Ana's.
        let ana_marks = [
            "ana secret task",
            "ana secret oat milk",
            "ana secret goal",
            "ana secret expense",
            "ana secret note",
            "ana secret reminder",
            "ana secret memory",
            "call the pharmacy",
            "ana@example.com",
            ANA_PHONE,
            &p.ana.to_string(),
        ];
        for route in [
            "/api/v1/me",
            "/api/v1/me/tasks",
            "/api/v1/me/groceries",
            "/api/v1/me/goals",
            "/api/v1/me/expenses",
            "/api/v1/me/notes",
            "/api/v1/me/reminders",
            "/api/v1/me/memories",
            "/api/v1/me/consents",
            "/api/v1/me/export",
        ] {
            let answer = call(&server, Method::GET, route, Some(&p.bob_token), None).await;
            assert_eq!(answer.status, 200, "[{}] {route}", db.label);
            let text = answer.body.to_string();
            for mark in ana_marks {
                assert!(
                    !text.contains(mark),
                    "[{}] {route} shows Bob {mark:?}",
                    db.label
                );
            }
        }
        let export = call(
            &server,
            Method::GET,
            "/api/v1/me/export",
            Some(&p.bob_token),
            None,
        )
        .await
        .body;
        assert!(
            export.to_string().contains("appeler maman"),
            "Bob's export is his"
        );

        // SMS: Bob's phone texting Ana's number touches nothing of hers.
        let before = server
            .store()
            .await
            .recent_messages(p.ana, 100)
            .await
            .unwrap()
            .len();
        let refused = server.text(&sid(), BOB_PHONE, ANA_NUMBER, "tasks").await;
        assert!(refused.contains("belongs to someone else"), "{refused}");
        assert_eq!(
            server
                .store()
                .await
                .recent_messages(p.ana, 100)
                .await
                .unwrap()
                .len(),
            before
        );

        // WebSocket: Bob's socket carries nothing of Ana's turns or reminders, and his token
        // cannot resume her stream by naming her message ids.
        let mut ana_ws = live::open(&server, &p.ana_token, None).await;
        let mut bob_ws = live::open(&server, &p.bob_token, None).await;
        live::say(&mut ana_ws, "add task ana ws secret").await;
        let ana_inbound = live::next_event(&mut ana_ws).await;
        assert_eq!(ana_inbound["body"], "add task ana ws secret");
        let ana_reply = live::next_event(&mut ana_ws).await;
        assert_eq!(ana_reply["direction"], "outbound", "{ana_reply}");
        let store = server.store().await;
        live::remind(&store, p.ana, "ana ws secret reminder", chrono::Utc::now()).await;
        let reminder = live::next_event(&mut ana_ws).await;
        assert_eq!(reminder["body"], "ana ws secret reminder", "{reminder}");
        let seen_by_bob = live::drain(&mut bob_ws).await;
        assert!(
            seen_by_bob.is_empty(),
            "[{}] Bob saw {seen_by_bob:?}",
            db.label
        );
        let first_ana_id = ana_inbound["id"].as_i64().unwrap();
        for after in [0, first_ana_id - 1, first_ana_id] {
            let mut resumed = live::open(&server, &p.bob_token, Some(after)).await;
            let replay = live::drain(&mut resumed).await;
            let text = serde_json::to_string(&replay).unwrap();
            assert!(
                !text.contains("ana") && !text.contains("pharmacy"),
                "[{}] Bob resumed after {after}: {text}",
                db.label
            );
        }

        // SMS: "done" and "snooze" from Bob's phone act on Bob's own (absent) reminder, never
        // on the one that just reached Ana, and task edits by number reach Bob's list only.
        let mut ana_firing = None;
        for _ in 0..100 {
            ana_firing = store.last_sent_firing(p.ana).await.unwrap();
            if ana_firing.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let ana_firing = ana_firing.expect("Ana's reminder reached her socket");
        for (to, body) in [
            (BOB_NUMBER, "done"),
            (BOB_NUMBER, "snooze"),
            (BOB_NUMBER, "done 1"),
            (BOB_NUMBER, "delete task 1"),
            (ANA_NUMBER, "done"),
            (ANA_NUMBER, "snooze"),
            (ANA_NUMBER, "done 1"),
        ] {
            let reply = server.text(&sid(), BOB_PHONE, to, body).await;
            assert!(
                !reply.contains("ana") && !reply.contains("pharmacy"),
                "[{}] {body:?} to {to}: {reply}",
                db.label
            );
        }
        assert_eq!(
            store.last_sent_firing(p.ana).await.unwrap(),
            Some(ana_firing),
            "[{}] Ana's reminder is still hers to answer",
            db.label
        );
        let ana_tasks = call(
            &server,
            Method::GET,
            "/api/v1/me/tasks",
            Some(&p.ana_token),
            None,
        )
        .await
        .body
        .to_string();
        for title in ["call the pharmacy", "ana ws secret"] {
            assert!(
                ana_tasks.contains(title),
                "[{}] {title} in {ana_tasks}",
                db.label
            );
        }
        assert!(
            !ana_tasks.contains("\"done\":true"),
            "[{}] none of Ana's tasks was closed by Bob: {ana_tasks}",
            db.label
        );
        assert!(
            live::drain(&mut bob_ws)
                .await
                .iter()
                .all(|e| !e.to_string().contains("ana")),
            "[{}] Bob's socket only ever shows Bob's turns",
            db.label
        );
        drop((ana_ws, bob_ws));

        // Ana's data is as she left it.
        let task = call(
            &server,
            Method::GET,
            &format!("/api/v1/me/tasks/{}", p.ana_task),
            Some(&p.ana_token),
            None,
        )
        .await;
        assert_eq!(
            (task.body["title"].as_str(), task.body["done"].as_bool()),
            (Some("ana secret task"), Some(false)),
            "[{}]",
            db.label
        );
        let grocery = call(
            &server,
            Method::GET,
            &format!("/api/v1/me/groceries/{}", p.ana_grocery),
            Some(&p.ana_token),
            None,
        )
        .await;
        assert_eq!(grocery.body["name"], "ana secret oat milk");
        for ((name, id), (field, text)) in p.ana_items.iter().zip([
            ("title", "ana secret goal"),
            ("note", "ana secret expense"),
            ("body", "ana secret note"),
            ("text", "ana secret reminder"),
            ("text", "ana secret memory"),
        ]) {
            let mine = call(
                &server,
                Method::GET,
                &format!("/api/v1/me/{name}/{id}"),
                Some(&p.ana_token),
                None,
            )
            .await;
            assert_eq!(mine.status, 200, "[{}] {name}", db.label);
            assert_eq!(
                mine.body[field], text,
                "[{}] {name} as Ana left it",
                db.label
            );
        }
        let consents = call(
            &server,
            Method::GET,
            "/api/v1/me/consents",
            Some(&p.ana_token),
            None,
        )
        .await;
        assert!(consents.body[0]["revoked_at"].is_null());

        // An administrator reads (audited), never writes, and only with a second factor.
        let admin = register(&server, "admin@example.com").await;
        let admin_id = admin["user_id"].as_str().unwrap().to_owned();
        let role =
            crate::helpers::run_cli(&data, &db, &["admin", "user", "role", &admin_id, "admin"]);
        assert!(
            role.status.success(),
            "{}",
            String::from_utf8_lossy(&role.stderr)
        );
        let no_mfa = access(
            &login(&server, "admin@example.com", PASSWORD, None)
                .await
                .body,
        );
        let refused = call(
            &server,
            Method::GET,
            &format!("/api/v1/admin/users/{}", p.ana),
            Some(&no_mfa),
            None,
        )
        .await;
        assert_eq!(
            (refused.status.as_u16(), refused.code()),
            (403, "mfa_required"),
            "[{}]",
            db.label
        );
        let secret = call(
            &server,
            Method::POST,
            "/api/v1/me/mfa/totp",
            Some(&no_mfa),
            None,
        )
        .await
        .body["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let now = chrono::Utc::now();
        let code = nudge::auth::totp::code_at(&secret, now).unwrap();
        assert_eq!(
            call(
                &server,
                Method::POST,
                "/api/v1/me/mfa/totp/confirm",
                Some(&no_mfa),
                Some(json!({"code": code}))
            )
            .await
            .status,
            200
        );
        let next =
            nudge::auth::totp::code_at(&secret, now + chrono::Duration::seconds(30)).unwrap();
        let with_mfa = login(&server, "admin@example.com", PASSWORD, Some(&next)).await;
        assert_eq!(with_mfa.status, 200, "{}", with_mfa.body);
        let admin_token = access(&with_mfa.body);
        let read = call(
            &server,
            Method::GET,
            &format!("/api/v1/admin/users/{}", p.ana),
            Some(&admin_token),
            None,
        )
        .await;
        assert_eq!(read.status, 200, "[{}] {}", db.label, read.body);
        assert_eq!(read.body["email"], "ana@example.com");
        let exported = call(
            &server,
            Method::GET,
            &format!("/api/v1/admin/users/{}/export", p.ana),
            Some(&admin_token),
            None,
        )
        .await;
        assert_eq!(exported.status, 200);
        for verb in [Method::POST, Method::PATCH, Method::PUT, Method::DELETE] {
            let write = call(
                &server,
                verb.clone(),
                &format!("/api/v1/admin/users/{}", p.ana),
                Some(&admin_token),
                Some(json!({})),
            )
            .await;
            assert_eq!(write.status, StatusCode::METHOD_NOT_ALLOWED, "{verb}");
        }
        let through_me = call(
            &server,
            Method::PATCH,
            &format!("/api/v1/me/tasks/{}", p.ana_task),
            Some(&admin_token),
            Some(json!({"title": "admin edit"})),
        )
        .await;
        assert_eq!(through_me.status, 404, "an admin's /me is their own");
        let events = server
            .store()
            .await
            .audit_events_for(p.ana, 100)
            .await
            .unwrap();
        let reads: Vec<_> = events.iter().filter(|e| e.event == "admin_read").collect();
        assert_eq!(reads.len(), 2, "[{}] {events:?}", db.label);
        assert!(
            reads
                .iter()
                .all(|e| e.actor_id == Some(admin_id.parse().unwrap()))
        );

        // Bob erasing "himself" erases Bob only.
        let gone = call(
            &server,
            Method::DELETE,
            "/api/v1/me",
            Some(&p.bob_token),
            None,
        )
        .await;
        assert_eq!(gone.status, 204, "{}", gone.body);
        assert_eq!(
            call(&server, Method::GET, "/api/v1/me", Some(&p.ana_token), None)
                .await
                .status,
            200
        );
        assert!(server.store().await.user(p.bob).await.is_err());
        server.stop();
        if let Some(role) = api_role {
            nudge::store::testing::drop_postgres_database(&db.url).await;
            let admin = std::env::var(nudge::store::testing::POSTGRES_URL_VAR).unwrap();
            let mut admin = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
}

/// Migrates the database (which creates `nudge_app`), then makes a login role bound by
/// row-level security; returns its name and the database URL logging in as it.
async fn bound_api_role(url: &str) -> (String, String) {
    nudge::store::connect(url, sealer()).await.unwrap();
    let role = format!("nudge_api_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "CREATE ROLE {role} LOGIN IN ROLE nudge_app"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let mut api = url::Url::parse(url).unwrap();
    api.set_username(&role).unwrap();
    (role, api.to_string())
}

/// A connection to the test's database, whichever backend it is.
enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Conn {
    async fn open(url: &str) -> Conn {
        if url.starts_with("sqlite:") {
            Conn::Sqlite(sqlx::SqliteConnection::connect(url).await.unwrap())
        } else {
            Conn::Postgres(sqlx::PgConnection::connect(url).await.unwrap())
        }
    }

    /// Every (table, column); only text columns when `text_only`.
    async fn columns(&mut self, text_only: bool) -> Vec<(String, String)> {
        match self {
            Conn::Sqlite(conn) => sqlx::query_as(
                "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND (NOT $1 OR p.type = 'TEXT')",
            )
            .bind(text_only)
            .fetch_all(conn)
            .await
            .unwrap(),
            Conn::Postgres(conn) => sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND (NOT $1 OR data_type = 'text')",
            )
            .bind(text_only)
            .fetch_all(conn)
            .await
            .unwrap(),
        }
    }

    /// How many rows of `table` hold `needle` in `column` (as text, or as hex for blobs).
    async fn count(&mut self, table: &str, column: &str, needle: &str) -> i64 {
        match self {
            Conn::Sqlite(conn) => {
                let sql = format!(
                    "SELECT count(*) FROM \"{table}\" WHERE instr(CAST(\"{column}\" AS TEXT), $1) > 0 \
                     OR instr(lower(hex(\"{column}\")), $1) > 0"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(needle)
                    .fetch_one(conn)
                    .await
                    .unwrap()
                    .get(0)
            }
            Conn::Postgres(conn) => {
                let sql = format!(
                    "SELECT count(*) FROM \"{table}\" WHERE strpos(\"{column}\"::text, $1) > 0"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(needle)
                    .fetch_one(conn)
                    .await
                    .unwrap()
                    .get(0)
            }
        }
    }

    /// The values of a text column that look sealed.
    async fn sealed(&mut self, table: &str, column: &str) -> Vec<(String,)> {
        let sql = format!("SELECT \"{column}\" FROM \"{table}\" WHERE \"{column}\" LIKE 'v1.%'");
        match self {
            Conn::Sqlite(conn) => sqlx::query_as(AssertSqlSafe(sql))
                .fetch_all(conn)
                .await
                .unwrap(),
            Conn::Postgres(conn) => sqlx::query_as(AssertSqlSafe(sql))
                .fetch_all(conn)
                .await
                .unwrap(),
        }
    }
}

/// Every (table, column) whose values contain one of `needles`, in the whole database.
async fn find_anywhere(url: &str, needles: &[String]) -> Vec<String> {
    let mut conn = Conn::open(url).await;
    let mut hits = Vec::new();
    for (table, column) in conn.columns(false).await {
        for needle in needles {
            if conn.count(&table, &column, needle).await > 0 {
                hits.push(format!("{table}.{column} has {needle}"));
            }
        }
    }
    hits
}

/// Every sealed value (`v1.…`) of the database, with where it lies.
async fn sealed_values(url: &str) -> Vec<(String, String, String)> {
    let mut conn = Conn::open(url).await;
    let mut found = Vec::new();
    for (table, column) in conn.columns(true).await {
        let values = conn.sealed(&table, &column).await;
        found.extend(
            values
                .into_iter()
                .map(|(v,)| (table.clone(), column.clone(), v)),
        );
    }
    found
}

fn without_time(mut export: Value) -> Value {
    export["exported_at"] = Value::Null;
    export
}

#[tokio::test]
async fn erasure_leaves_no_row_and_no_sealed_value_and_another_export_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let server = Server::start(
            &data,
            &db,
            &[
                ("NUDGE_RATE_API_PER_MIN", "0"),
                ("NUDGE_RATE_AUTH_PER_MIN", "0"),
            ],
        );
        let p = pair(&server, &data, &db).await;
        // Ana also has a second factor (a sealed secret), a linked session and audit entries.
        let secret = call(
            &server,
            Method::POST,
            "/api/v1/me/mfa/totp",
            Some(&p.ana_token),
            None,
        )
        .await
        .body["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let code = nudge::auth::totp::code_at(&secret, chrono::Utc::now()).unwrap();
        assert_eq!(
            call(
                &server,
                Method::POST,
                "/api/v1/me/mfa/totp/confirm",
                Some(&p.ana_token),
                Some(json!({"code": code}))
            )
            .await
            .status,
            200
        );
        call(
            &server,
            Method::PATCH,
            "/api/v1/me",
            Some(&p.ana_token),
            Some(json!({"quiet_hours": {"start": "22:00", "end": "07:00"}})),
        )
        .await;
        let ana_refresh = login(&server, "ana@example.com", PASSWORD, Some("000000")).await;
        assert_eq!(ana_refresh.status, 401);
        let sealed_before: Vec<_> = sealed_values(&db.url).await;
        let ana_place = |t: &str, c: &str| seal::place(&format!("{t}.{c}"), p.ana);
        assert!(
            sealed_before
                .iter()
                .any(|(t, c, v)| sealer().open(&ana_place(t, c), v).is_ok()),
            "[{}] Ana has a sealed value before erasure",
            db.label
        );
        let bob_before = call(
            &server,
            Method::GET,
            "/api/v1/me/export",
            Some(&p.bob_token),
            None,
        )
        .await
        .body;

        // A wrong password is refused even on a fresh sign-in; the right one erases.
        let wrong = call(
            &server,
            Method::DELETE,
            "/api/v1/me",
            Some(&p.ana_token),
            Some(json!({"password": "not the password"})),
        )
        .await;
        assert_eq!(
            (wrong.status.as_u16(), wrong.code()),
            (401, "invalid_credentials")
        );
        let erased = call(
            &server,
            Method::DELETE,
            "/api/v1/me",
            Some(&p.ana_token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
        assert_eq!(erased.status, 204, "{}", erased.body);

        // Gone everywhere: sessions, sign-in, the SMS number, every row, every sealed value.
        assert_eq!(
            call(&server, Method::GET, "/api/v1/me", Some(&p.ana_token), None)
                .await
                .status,
            401
        );
        assert_eq!(
            login(&server, "ana@example.com", PASSWORD, None)
                .await
                .status,
            401
        );
        let sms = server.sms(&sid(), ANA_PHONE, ANA_NUMBER, "tasks").await;
        assert_eq!(sms.status(), 404, "[{}] the number is released", db.label);
        let ana_id = p.ana.to_string();
        let needles = vec![
            ana_id.clone(),
            p.ana.0.simple().to_string(),
            "ana@example.com".to_owned(),
            ANA_PHONE.to_owned(),
            ANA_NUMBER.to_owned(),
            "ana secret".to_owned(),
            "call the pharmacy".to_owned(),
        ];
        let hits = find_anywhere(&db.url, &needles).await;
        assert!(hits.is_empty(), "[{}] traces of Ana: {hits:?}", db.label);
        for (table, column, value) in sealed_values(&db.url).await {
            assert!(
                sealer().open(&ana_place(&table, &column), &value).is_err(),
                "[{}] {table}.{column} still holds a value sealed for Ana",
                db.label
            );
        }
        let store = server.store().await;
        let last = store.recent_audit_events(5).await.unwrap();
        assert!(
            last.iter().any(|e| e.event == "account_erased"
                && e.actor_id.is_none()
                && e.subject_id.is_none()
                && e.ip.is_none()),
            "[{}] {last:?}",
            db.label
        );
        assert!(store.tables_without_cascade().await.unwrap().is_empty());

        // Bob's export is exactly what it was.
        let bob_after = call(
            &server,
            Method::GET,
            "/api/v1/me/export",
            Some(&p.bob_token),
            None,
        )
        .await
        .body;
        let mut before = without_time(bob_before);
        let mut after = without_time(bob_after);
        // Bob's own export request is a new security event of his; compare the rest.
        before["security_events"] = Value::Null;
        after["security_events"] = Value::Null;
        assert_eq!(after, before, "[{}]", db.label);

        // The number can be given to someone new.
        add_user(&data, &db, "Newcomer", "+14155550199", ANA_NUMBER, "en");
        server.stop();
    }
}

/// Keys of the Redis at `url` matching `pattern` (a test-sized keyspace: `KEYS` is fine).
async fn redis_keys(url: &str, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn erasure_drops_the_model_cache_entries_of_the_account_in_redis_and_no_others() {
    let Some(redis_url) = nudge::store::testing::redis_url() else {
        return;
    };
    let gemini =
        crate::fakes::gemini(crate::fakes::gemini_text("Noted, one step at a time.")).await;
    let namespace = format!("nudge-erasure-{}", uuid::Uuid::now_v7().simple());
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let server = Server::start(
        &data,
        &db,
        &[
            ("GEMINI_API_KEY", "test-gemini-key"),
            ("NUDGE_GEMINI_BASE_URL", gemini.uri().as_str()),
            ("NUDGE_LLM_CACHE_TTL_SECS", "600"),
            ("NUDGE_REDIS_URL", redis_url.as_str()),
            ("NUDGE_REDIS_NAMESPACE", namespace.as_str()),
        ],
    );
    let ana = add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en");
    let bob = add_user(&data, &db, "Bob", BOB_PHONE, BOB_NUMBER, "en");
    let ana = attach(&server, &ana, "ana@example.com").await;
    let bob = attach(&server, &bob, "bob@example.com").await;
    for text in ["I keep forgetting my meds", "what should I do first?"] {
        let reply = server.text(&sid(), ANA_PHONE, ANA_NUMBER, text).await;
        assert!(reply.contains("one step at a time"), "{reply:?}");
    }
    let reply = server
        .text(&sid(), BOB_PHONE, BOB_NUMBER, "hello there")
        .await;
    assert!(reply.contains("one step at a time"), "{reply:?}");

    let anas = format!("{namespace}:llm-cache:{ana}:*");
    let bobs = format!("{namespace}:llm-cache:{bob}:*");
    assert!(
        !redis_keys(&redis_url, &anas).await.is_empty(),
        "Ana's turns were cached"
    );
    let bob_keys = redis_keys(&redis_url, &bobs).await;
    assert!(!bob_keys.is_empty(), "Bob's turn was cached");

    let token = access(&login(&server, "ana@example.com", PASSWORD, None).await.body);
    let erased = call(
        &server,
        Method::DELETE,
        "/api/v1/me",
        Some(&token),
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(erased.status, 204, "{}", erased.body);

    assert_eq!(redis_keys(&redis_url, &anas).await, Vec::<String>::new());
    assert_eq!(
        redis_keys(&redis_url, &bobs).await,
        bob_keys,
        "Bob's entries stay"
    );
    drop(server);
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&bob_keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}
