//! `GET /ws` against the real binary: authentication, fan-out to every client of one user
//! and of no other, reminders pushed live, resume after a reconnect.

use std::time::Duration;

use chrono::Utc;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::accounts::{access, call, register};
use crate::helpers::{Server, databases};
use nudge::store::{NewReminder, UserId};

pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Longest wait for one expected event.
const EVENT_WAIT: Duration = Duration::from_secs(20);
/// How long "nothing arrives" is watched for.
const QUIET_WAIT: Duration = Duration::from_millis(800);

fn ws_url(server: &Server, query: &str) -> String {
    server
        .url(&format!("/ws?{query}"))
        .replacen("http", "ws", 1)
}

pub async fn open(server: &Server, token: &str, after: Option<i64>) -> Socket {
    let mut query = format!("token={token}");
    if let Some(after) = after {
        query.push_str(&format!("&after={after}"));
    }
    let (socket, _) = connect_async(ws_url(server, &query))
        .await
        .expect("the socket opens");
    socket
}

/// The next JSON event that is not `typing` or `task_changed`, within [`EVENT_WAIT`].
pub async fn next_event(socket: &mut Socket) -> Value {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("an event in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Frame::Text(text) = frame {
            let event: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if event["type"] != "typing" && event["type"] != "task_changed" {
                return event;
            }
        }
    }
}

/// Every event but `typing`/`task_changed` that arrives within [`QUIET_WAIT`].
pub async fn drain(socket: &mut Socket) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(QUIET_WAIT, socket.next()).await {
        if let Frame::Text(text) = frame {
            let event: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if event["type"] != "typing" && event["type"] != "task_changed" {
                seen.push(event);
            }
        }
    }
    seen
}

pub async fn say(socket: &mut Socket, text: &str) {
    socket
        .send(Frame::Text(
            json!({"type": "message", "text": text}).to_string().into(),
        ))
        .await
        .expect("sent");
}

/// Adds a one-off reminder for `user` straight into the server's store.
pub async fn remind(
    store: &nudge::store::Store,
    user: UserId,
    body: &str,
    due_at: chrono::DateTime<Utc>,
) {
    store
        .add_reminder(
            user,
            &NewReminder {
                body: body.into(),
                due_at,
                recurrence: None,
                time_zone: "Europe/Paris".into(),
                urgent: false,
            },
        )
        .await
        .expect("reminder added");
}

pub async fn user_id(server: &Server, token: &str) -> UserId {
    let me = call(server, Method::GET, "/api/v1/me", Some(token), None).await;
    let id = me.body["user_id"].as_str().expect("a user id");
    UserId(id.parse().expect("a uuid"))
}

#[tokio::test]
async fn two_clients_of_one_user_see_turns_and_reminders_another_user_sees_none_and_a_reconnect_resumes_once()
 {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let server = Server::start(&db.data_dir(dir.path()), &db, &[]);
    let ana = access(&register(&server, "ana@example.com").await);
    let bob = access(&register(&server, "bob@example.com").await);

    // No token, a wrong token: refused before the upgrade.
    assert!(connect_async(ws_url(&server, "")).await.is_err());
    assert!(connect_async(ws_url(&server, "token=nope")).await.is_err());

    let mut first = open(&server, &ana, None).await;
    let mut second = open(&server, &ana, None).await;
    let mut other = open(&server, &bob, None).await;

    say(&mut first, "add buy milk").await;
    let mut last_id = 0;
    for socket in [&mut first, &mut second] {
        let inbound = next_event(socket).await;
        assert_eq!(inbound["type"], "message");
        assert_eq!(inbound["direction"], "inbound");
        assert_eq!(inbound["channel"], "web");
        assert_eq!(inbound["body"], "add buy milk");
        let reply = next_event(socket).await;
        assert_eq!(reply["direction"], "outbound");
        assert!(
            reply["body"]
                .as_str()
                .is_some_and(|b| b.contains("buy milk")),
            "{reply}"
        );
        last_id = reply["id"].as_i64().expect("an id");
    }

    // A reminder due now reaches both of Ana's clients at its next scheduling pass.
    let store = server.store().await;
    remind(&store, user_id(&server, &ana).await, "stretch", Utc::now()).await;
    for socket in [&mut first, &mut second] {
        let reminder = next_event(socket).await;
        assert_eq!(reminder["type"], "reminder", "{reminder}");
        assert_eq!(reminder["body"], "stretch");
    }
    assert!(
        drain(&mut other).await.is_empty(),
        "Bob sees nothing of Ana's"
    );

    // The first client goes away; what is said meanwhile comes back once when it resumes.
    first.close(None).await.expect("closed");
    drop(first);
    say(&mut second, "add call mum").await;
    let missed_reply = loop {
        let event = next_event(&mut second).await;
        if event["direction"] == "outbound" {
            break event;
        }
    };
    let mut resumed = open(&server, &ana, Some(last_id)).await;
    let replay: Vec<Value> = drain(&mut resumed).await;
    let bodies: Vec<&str> = replay.iter().filter_map(|e| e["body"].as_str()).collect();
    assert_eq!(bodies.len(), 2, "{replay:?}");
    assert_eq!(bodies[0], "add call mum");
    assert_eq!(replay[1]["id"], missed_reply["id"]);

    say(&mut resumed, "list").await;
    let inbound = next_event(&mut resumed).await;
    assert_eq!(inbound["body"], "list", "no repeat of what was resumed");
    assert!(drain(&mut other).await.is_empty());
    server.stop();
}

#[tokio::test]
async fn a_due_reminder_goes_out_through_twilio_after_5xx_retries_and_its_status_callback_is_recorded()
 {
    use crate::helpers::{ACCOUNT_SID, AUTH_TOKEN, add_user};
    use base64::Engine;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const PHONE: &str = "+15550001111";
    const NUMBER: &str = "+15559991111";
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let id = add_user(&data, &db, "Ana", PHONE, NUMBER, "en");
    let user = UserId(id.parse().expect("a user id"));
    let twilio = MockServer::start().await;
    let messages = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json");
    Mock::given(method("POST"))
        .and(path(messages.as_str()))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .and(path(messages.as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": "SM00000000000000000000000000000042",
            "status": "queued",
        })))
        .with_priority(2)
        .mount(&twilio)
        .await;
    let server = Server::start(
        &data,
        &db,
        &[
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_API_BASE", &twilio.uri()),
        ],
    );
    let store = server.store().await;
    remind(&store, user, "stretch", Utc::now()).await;

    // Two 503s, then the send that Twilio accepts; then the firing is marked sent.
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    let firing = loop {
        if let Some(firing) = store.last_sent_firing(user).await.expect("read") {
            break firing;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reminder was not sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(firing.body, "stretch");
    let requests = twilio.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 3, "two retries after 503");
    let last = requests.last().expect("a request");
    assert_eq!(last.url.path(), messages);
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    assert_eq!(
        last.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some(expected_auth.as_str())
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&last.body).unwrap();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("From").as_deref(), Some(NUMBER));
    assert_eq!(field("To").as_deref(), Some(PHONE));
    assert_eq!(field("Body").as_deref(), Some("Reminder: stretch"));
    let callback = server.url("/sms/status");
    assert_eq!(field("StatusCallback").as_deref(), Some(callback.as_str()));

    // The status callback, signed, moves the delivery on; unsigned, it is refused.
    let sid = "SM00000000000000000000000000000042";
    let params: Vec<(String, String)> = [
        ("MessageSid", sid),
        ("MessageStatus", "delivered"),
        ("AccountSid", ACCOUNT_SID),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let http = reqwest::Client::new();
    let unsigned = http.post(&callback).form(&params).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    assert_eq!(
        store
            .sms_delivery(user, sid)
            .await
            .unwrap()
            .map(|d| d.status)
            .as_deref(),
        Some("queued")
    );
    let signature = nudge::sms::signature::expected_signature(AUTH_TOKEN, &callback, &params);
    let signed = http
        .post(&callback)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 204);
    let delivery = store
        .sms_delivery(user, sid)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(delivery.status, "delivered");
    server.stop();
}

#[tokio::test]
async fn the_web_client_is_served_at_the_root_and_lists_only_the_callers_reminders() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let server = Server::start(&db.data_dir(dir.path()), &db, &[]);
    let http = reqwest::Client::new();
    let page = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<label for=\"email\">Email</label>"));
    assert!(html.contains("src=\"/app.js\""));
    for asset in ["/app.js", "/app.css"] {
        assert_eq!(
            http.get(server.url(asset)).send().await.unwrap().status(),
            200
        );
    }

    let ana = access(&register(&server, "ana@example.com").await);
    let bob = access(&register(&server, "bob@example.com").await);
    let store = server.store().await;
    remind(
        &store,
        user_id(&server, &ana).await,
        "ana's secret",
        Utc::now() + chrono::TimeDelta::hours(2),
    )
    .await;
    let mine = call(
        &server,
        Method::GET,
        "/api/v1/me/reminders",
        Some(&ana),
        None,
    )
    .await;
    assert_eq!(mine.body["items"][0]["text"], "ana's secret");
    assert_eq!(mine.body["items"][0]["urgent"], false);
    let urgent = call(
        &server,
        Method::POST,
        "/api/v1/me/reminders",
        Some(&ana),
        Some(json!({ "text": "night meds", "when": "in 3 hours", "urgent": true })),
    )
    .await;
    assert_eq!(urgent.status, 201, "{:?}", urgent.body);
    assert_eq!(urgent.body["urgent"], true);
    let id = urgent.body["id"].as_i64().expect("an id");
    let calmer = call(
        &server,
        Method::PATCH,
        &format!("/api/v1/me/reminders/{id}"),
        Some(&ana),
        Some(json!({ "urgent": false })),
    )
    .await;
    assert_eq!(calmer.body["urgent"], false, "{:?}", calmer.body);
    let bobs_try = call(
        &server,
        Method::PATCH,
        &format!("/api/v1/me/reminders/{id}"),
        Some(&bob),
        Some(json!({ "urgent": true })),
    )
    .await;
    assert_eq!(bobs_try.status, 404);

    // The morning digest: off by default at 08:00, turned on at another time, refused nonsense.
    let me = call(&server, Method::GET, "/api/v1/me", Some(&ana), None).await;
    assert_eq!(
        me.body["morning_digest"],
        json!({ "enabled": false, "time": "08:00" })
    );
    let on = call(
        &server,
        Method::PATCH,
        "/api/v1/me",
        Some(&ana),
        Some(json!({ "morning_digest": { "enabled": true, "time": "07:30" } })),
    )
    .await;
    assert_eq!(on.status, 200, "{:?}", on.body);
    assert_eq!(
        on.body["morning_digest"],
        json!({ "enabled": true, "time": "07:30" })
    );
    let bad = call(
        &server,
        Method::PATCH,
        "/api/v1/me",
        Some(&ana),
        Some(json!({ "morning_digest": { "time": "7h30" } })),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["code"], "invalid_digest_time");
    let bobs = call(&server, Method::GET, "/api/v1/me", Some(&bob), None).await;
    assert_eq!(bobs.body["morning_digest"]["enabled"], false);
    let theirs = call(
        &server,
        Method::GET,
        "/api/v1/me/reminders",
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(theirs.body["items"], json!([]));
    let nobody = call(&server, Method::GET, "/api/v1/me/reminders", None, None).await;
    assert_eq!(nobody.status, 401);
    server.stop();
}

/// A user on the embedded SQLite database (the same file across kills and restarts), and
/// the store the test reads it through.
struct Crash {
    _dir: tempfile::TempDir,
    db: crate::helpers::Database,
    data: std::path::PathBuf,
    user: UserId,
    store: nudge::store::Store,
}

impl Crash {
    async fn new(phone: &str, number: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = databases(dir.path()).await.remove(0);
        assert_eq!(db.label, "sqlite", "the same SQLite file across the kill");
        let data = db.data_dir(dir.path());
        let user = UserId(
            crate::helpers::add_user(&data, &db, "Ana", phone, number, "en")
                .parse()
                .expect("a user id"),
        );
        let store = nudge::store::connect(&db.url, crate::helpers::sealer())
            .await
            .expect("the store");
        Self {
            _dir: dir,
            db,
            data,
            user,
            store,
        }
    }

    /// Starts the binary sending through `twilio`.
    fn start(&self, twilio: &crate::fakes::FakeTwilio) -> Server {
        Server::start(
            &self.data,
            &self.db,
            &[
                ("TWILIO_ACCOUNT_SID", crate::helpers::ACCOUNT_SID),
                ("TWILIO_API_BASE", &twilio.server.uri()),
            ],
        )
    }
}

/// Waits until Twilio has taken a message (its answer may still be held).
async fn wait_until_accepted(twilio: &crate::fakes::FakeTwilio) {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    while twilio.accepted().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing reached Twilio"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the user's last firing is marked sent.
async fn wait_until_marked(store: &nudge::store::Store, user: UserId) -> nudge::store::Firing {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        if let Some(firing) = store.last_sent_firing(user).await.expect("read") {
            return firing;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the firing was never marked sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_binary_killed_while_twilio_holds_the_send_delivers_exactly_one_nudge_after_restart() {
    use crate::fakes::FakeTwilio;

    const PHONE: &str = "+15550002222";
    const NUMBER: &str = "+15559992222";
    let crash = Crash::new(PHONE, NUMBER).await;
    let (store, user) = (crash.store.clone(), crash.user);
    // Twilio takes the message at once but holds its answer far longer than the test lasts.
    let twilio =
        FakeTwilio::start(crate::helpers::ACCOUNT_SID, Some(Duration::from_secs(120))).await;
    let server = crash.start(&twilio);
    remind(&store, user, "take the pills", Utc::now()).await;

    // The send is in flight: Twilio has the message, the binary waits for the answer.
    wait_until_accepted(&twilio).await;
    assert_eq!(store.unsent_firings().await.expect("unsent").len(), 1);
    let server = server.kill_and_restart();

    // The restarted binary asks Twilio, finds the message, marks the firing; no second send.
    let firing = wait_until_marked(&store, user).await;
    assert_eq!(firing.body, "take the pills");
    assert!(twilio.list_requests().await >= 1, "Twilio's list was asked");
    let accepted = twilio.accepted();
    assert_eq!(accepted.len(), 1, "exactly one nudge: {accepted:?}");
    assert_eq!(accepted[0].body, "Reminder: take the pills");
    assert_eq!(
        (accepted[0].to.as_str(), accepted[0].from.as_str()),
        (PHONE, NUMBER)
    );
    let recorded = store
        .sms_delivery(user, &accepted[0].sid)
        .await
        .expect("read")
        .expect("the reconciled SMS is recorded under its SID");
    assert_eq!(recorded.status, "sent");
    // And a later restart sends nothing either.
    let server = server.restart();
    tokio::time::sleep(QUIET_WAIT).await;
    assert_eq!(twilio.accepted().len(), 1);
    server.stop();
}

#[tokio::test]
async fn a_firing_claimed_but_never_sent_before_a_crash_is_sent_once_at_start_up() {
    use crate::fakes::FakeTwilio;

    let crash = Crash::new("+15550003333", "+15559993333").await;
    let (store, user) = (crash.store.clone(), crash.user);
    // A process claimed the firing and died before its request left: Twilio never saw it.
    let due = Utc::now() - chrono::TimeDelta::seconds(30);
    remind(&store, user, "call the pharmacy", due).await;
    let pending = store
        .due_reminders(Utc::now(), 10)
        .await
        .expect("due")
        .remove(0);
    store
        .claim_firing(&pending, None, false)
        .await
        .expect("claim")
        .expect("claimed");
    assert_eq!(store.unsent_firings().await.expect("unsent").len(), 1);

    let twilio = FakeTwilio::start(crate::helpers::ACCOUNT_SID, None).await;
    let server = crash.start(&twilio);
    let firing = wait_until_marked(&store, user).await;
    assert_eq!(firing.body, "call the pharmacy");
    assert!(
        twilio.list_requests().await >= 1,
        "Twilio's list was asked first"
    );
    let accepted = twilio.accepted();
    assert_eq!(accepted.len(), 1, "sent once: {accepted:?}");
    assert_eq!(accepted[0].body, "Reminder: call the pharmacy");
    server.stop();
}

#[tokio::test]
async fn a_binary_killed_while_twilio_holds_the_morning_digest_sends_it_once_after_restart() {
    use crate::fakes::FakeTwilio;

    let crash = Crash::new("+15550004444", "+15559994444").await;
    let (store, user) = (crash.store.clone(), crash.user);
    // The digest is on and due in a moment (after start-up), with something to say.
    store
        .update_profile(
            user,
            &nudge::store::ProfileChange {
                digest: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("digest on");
    let due = Utc::now() + chrono::TimeDelta::seconds(2);
    assert!(store.place_digest(user, due).await.expect("placed"));
    store
        .add_task(user, "book the dentist")
        .await
        .expect("task");

    let twilio =
        FakeTwilio::start(crate::helpers::ACCOUNT_SID, Some(Duration::from_secs(120))).await;
    let server = crash.start(&twilio);
    wait_until_accepted(&twilio).await;
    assert_eq!(store.unsent_digests().await.expect("unsent").len(), 1);
    let server = server.kill_and_restart();

    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    while !store.unsent_digests().await.expect("unsent").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the digest was never marked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted = twilio.accepted();
    assert_eq!(accepted.len(), 1, "one digest: {accepted:?}");
    assert_eq!(
        accepted[0].body,
        "Good morning! Top tasks: 1) book the dentist."
    );
    assert!(twilio.list_requests().await >= 1, "Twilio's list was asked");
    let server = server.restart();
    tokio::time::sleep(QUIET_WAIT).await;
    assert_eq!(
        twilio.accepted().len(),
        1,
        "nothing more after another restart"
    );
    server.stop();
}
