//! The SMS webhook end to end, through the real binary, on every database.

use std::time::Duration;

use nudge::store::{Direction, UserId};
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{ACCOUNT_SID, AUTH_TOKEN, Server, add_user, databases, sid, sms_params};

const ANA_PHONE: &str = "+14155550101";
const ANA_NUMBER: &str = "+14155559001";
const BOB_PHONE: &str = "+33612345678";
const BOB_NUMBER: &str = "+33755559002";

fn user_id(text: &str) -> UserId {
    text.parse().expect("admin user add prints a user id")
}

#[tokio::test]
async fn a_conversation_in_english_and_french_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let ana = user_id(&add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en"));
        let bob = user_id(&add_user(&data, &db, "Bob", BOB_PHONE, BOB_NUMBER, "fr"));
        let server = Server::start(&data, &db, &[]);

        let reply = server
            .text(&sid(), ANA_PHONE, ANA_NUMBER, "add task call mom")
            .await;
        assert!(
            reply.to_lowercase().contains("call mom"),
            "[{}] {reply}",
            db.label
        );
        server
            .text(&sid(), ANA_PHONE, ANA_NUMBER, "add task pay rent")
            .await;
        let list = server.text(&sid(), ANA_PHONE, ANA_NUMBER, "tasks").await;
        assert!(
            list.contains("call mom") && list.contains("pay rent"),
            "[{}] {list}",
            db.label
        );
        server.text(&sid(), ANA_PHONE, ANA_NUMBER, "done 1").await;
        server
            .text(
                &sid(),
                ANA_PHONE,
                ANA_NUMBER,
                "add milk, eggs and bread to groceries",
            )
            .await;

        let reply = server
            .text(&sid(), BOB_PHONE, BOB_NUMBER, "ajoute tâche appeler maman")
            .await;
        assert!(reply.contains("appeler maman"), "[{}] {reply}", db.label);
        server
            .text(&sid(), BOB_PHONE, BOB_NUMBER, "courses: lait, œufs")
            .await;

        let server = server.restart();

        let list = server.text(&sid(), ANA_PHONE, ANA_NUMBER, "tasks").await;
        assert!(list.contains("pay rent"), "[{}] {list}", db.label);
        assert!(
            !list.contains("call mom"),
            "done tasks leave the list [{}] {list}",
            db.label
        );
        let groceries = server
            .text(&sid(), ANA_PHONE, ANA_NUMBER, "groceries")
            .await;
        for item in ["milk", "eggs", "bread"] {
            assert!(groceries.contains(item), "[{}] {groceries}", db.label);
        }
        let taches = server
            .text(&sid(), BOB_PHONE, BOB_NUMBER, "mes tâches")
            .await;
        assert!(taches.contains("appeler maman"), "[{}] {taches}", db.label);
        let courses = server
            .text(&sid(), BOB_PHONE, BOB_NUMBER, "liste de courses")
            .await;
        assert!(courses.contains("lait"), "[{}] {courses}", db.label);

        let store = server.store().await;
        let tasks: Vec<String> = store
            .open_tasks(ana)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.title)
            .collect();
        assert_eq!(tasks, vec!["pay rent".to_owned()], "[{}]", db.label);
        let messages = store.recent_messages(bob, 100).await.unwrap();
        assert_eq!(
            messages.len(),
            8,
            "four turns of Bob, each inbound + reply [{}]",
            db.label
        );
        let usage = store.sms_usage(bob).await.unwrap();
        assert_eq!(
            usage.len(),
            8,
            "usage rows for both directions [{}]",
            db.label
        );
        server.stop();
    }
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let ana = user_id(&add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en"));
        let server = Server::start(&data, &db, &[]);
        let params = sms_params(&sid(), ANA_PHONE, ANA_NUMBER, "add task leak");

        let unsigned = server
            .http
            .post(server.url("/sms/inbound"))
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 403, "[{}]", db.label);
        let body: serde_json::Value = unsigned.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden");

        let forged = nudge::sms::signature::expected_signature(
            "wrong-token",
            &server.url("/sms/inbound"),
            &params,
        );
        let wrong = server
            .http
            .post(server.url("/sms/inbound"))
            .header("X-Twilio-Signature", forged)
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 403, "[{}]", db.label);

        // A valid signature over different parameters does not carry over.
        let good = nudge::sms::signature::expected_signature(
            AUTH_TOKEN,
            &server.url("/sms/inbound"),
            &params,
        );
        let mut tampered = params.clone();
        tampered.retain(|(k, _)| k != "Body");
        tampered.push(("Body".into(), "add task tampered".into()));
        let tampered = server
            .http
            .post(server.url("/sms/inbound"))
            .header("X-Twilio-Signature", good)
            .form(&tampered)
            .send()
            .await
            .unwrap();
        assert_eq!(tampered.status(), 403, "[{}]", db.label);

        let store = server.store().await;
        assert!(
            store.recent_messages(ana, 10).await.unwrap().is_empty(),
            "[{}]",
            db.label
        );
        assert!(
            store.open_tasks(ana).await.unwrap().is_empty(),
            "[{}]",
            db.label
        );
        server.stop();
    }
}

#[tokio::test]
async fn a_retried_webhook_gets_the_same_reply_and_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let ana = user_id(&add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en"));
        let server = Server::start(&data, &db, &[]);
        let message_sid = sid();
        let first = server
            .text(&message_sid, ANA_PHONE, ANA_NUMBER, "add task water plants")
            .await;
        let second = server
            .text(&message_sid, ANA_PHONE, ANA_NUMBER, "add task water plants")
            .await;
        assert_eq!(first, second, "[{}]", db.label);
        assert!(!first.is_empty());

        let store = server.store().await;
        let messages = store.recent_messages(ana, 10).await.unwrap();
        let inbound = messages
            .iter()
            .filter(|m| m.direction == Direction::Inbound)
            .count();
        assert_eq!(inbound, 1, "[{}]", db.label);
        assert_eq!(messages.len(), 2, "[{}]", db.label);
        assert_eq!(
            store.open_tasks(ana).await.unwrap().len(),
            1,
            "the task is added once [{}]",
            db.label
        );
        server.stop();
    }
}

#[tokio::test]
async fn texting_a_users_number_from_another_phone_reveals_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let ana = user_id(&add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en"));
        add_user(&data, &db, "Bob", BOB_PHONE, BOB_NUMBER, "fr");
        let server = Server::start(&data, &db, &[]);
        server
            .text(&sid(), ANA_PHONE, ANA_NUMBER, "add task secret appointment")
            .await;

        for attempt in [
            "tasks",
            "add task hijack",
            "done 1",
            "groceries",
            "clear groceries",
        ] {
            let reply = server.text(&sid(), BOB_PHONE, ANA_NUMBER, attempt).await;
            assert!(
                !reply.contains("secret appointment"),
                "[{}] {reply}",
                db.label
            );
            assert!(reply.contains("someone else"), "[{}] {reply}", db.label);
        }

        let store = server.store().await;
        let tasks = store.open_tasks(ana).await.unwrap();
        assert_eq!(tasks.len(), 1, "[{}]", db.label);
        assert_eq!(tasks[0].title, "secret appointment");
        assert_eq!(
            store.recent_messages(ana, 100).await.unwrap().len(),
            2,
            "[{}]",
            db.label
        );
        server.stop();
    }
}

#[tokio::test]
async fn malformed_requests_get_a_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    add_user(dir.path(), &db, "Ana", ANA_PHONE, ANA_NUMBER, "en");
    let server = Server::start(dir.path(), &db, &[]);
    let url = server.url("/sms/inbound");
    let form = "application/x-www-form-urlencoded";
    let signed = |params: &[(String, String)]| {
        nudge::sms::signature::expected_signature(AUTH_TOKEN, &url, params)
    };

    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "json body",
            server
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body("{}"),
            415,
        ),
        (
            "no content type",
            server.http.post(&url).body("Body=hi"),
            415,
        ),
        (
            "empty form",
            server.http.post(&url).header("content-type", form).body(""),
            400,
        ),
        (
            "not utf-8",
            server
                .http
                .post(&url)
                .header("content-type", form)
                .body(b"Body=%FF%FE&From=x".to_vec()),
            400,
        ),
        (
            "oversize",
            server
                .http
                .post(&url)
                .header("content-type", form)
                .body(vec![b'a'; nudge::edges::sms::MAX_BODY_BYTES + 1]),
            413,
        ),
        (
            "garbage bytes",
            server
                .http
                .post(&url)
                .header("content-type", form)
                .body(vec![0xff, 0x00, 0xfe]),
            400,
        ),
    ];
    for (name, request, expected) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{name}");
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert!(body["error"]["code"].is_string(), "{name}: JSON error body");
    }

    // Signed but missing fields: 400. Signed for a number nobody has: 404.
    let mut params = sms_params(&sid(), ANA_PHONE, ANA_NUMBER, "hi");
    params.retain(|(k, _)| k != "From");
    let response = server
        .http
        .post(&url)
        .header("X-Twilio-Signature", signed(&params))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let params = sms_params(&sid(), ANA_PHONE, "+19995550000", "hi");
    let response = server
        .http
        .post(&url)
        .header("X-Twilio-Signature", signed(&params))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = server
        .http
        .get(server.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // The server is still healthy after all of that.
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    server.stop();
}

#[tokio::test]
async fn a_slow_turn_answers_empty_twiml_and_the_reply_goes_out_through_twilio_rest() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en");
        let twilio = accepting_twilio_once("SM00000000000000000000000000000001").await;
        // A zero reply window: every turn is "slow".
        let server = Server::start(
            &data,
            &db,
            &[
                ("NUDGE_REPLY_WINDOW_MS", "0"),
                ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                ("TWILIO_API_BASE", &twilio.uri()),
            ],
        );
        let response = server
            .sms(&sid(), ANA_PHONE, ANA_NUMBER, "add task renew passport")
            .await;
        assert_eq!(response.status(), 200);
        let xml = response.text().await.unwrap();
        assert!(
            nudge::sms::twiml::parse_messages(&xml).is_empty(),
            "[{}] {xml}",
            db.label
        );

        let request = wait_for_request(&twilio).await;
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(field("To").as_deref(), Some(ANA_PHONE));
        assert_eq!(field("From").as_deref(), Some(ANA_NUMBER));
        assert!(field("Body").unwrap_or_default().contains("renew passport"));
        let auth = request
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let expected = base64_basic(ACCOUNT_SID, AUTH_TOKEN);
        assert_eq!(auth, expected);
        server.stop();
        twilio.verify().await;
    }
}

/// A fake Twilio that accepts exactly one authenticated message send, answering `sid`.
async fn accepting_twilio_once(sid: &str) -> MockServer {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        )))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
            "sid": sid,
            "status": "queued",
            "num_segments": "1"
        })))
        .expect(1)
        .mount(&twilio)
        .await;
    twilio
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn wait_for_request(server: &MockServer) -> wiremock::Request {
    for _ in 0..200 {
        if let Some(request) = server
            .received_requests()
            .await
            .and_then(|r| r.into_iter().next())
        {
            return request;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no request reached the fake Twilio within 10 s");
}

#[tokio::test]
async fn stop_silences_every_sms_until_start_and_help_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let ana = user_id(&add_user(
        dir.path(),
        &db,
        "Ana",
        ANA_PHONE,
        ANA_NUMBER,
        "en",
    ));
    let server = Server::start(dir.path(), &db, &[]);

    assert_eq!(server.text(&sid(), ANA_PHONE, ANA_NUMBER, "STOP").await, "");
    let store = server.store().await;
    assert!(store.user(ana).await.unwrap().sms_opted_out);
    assert_eq!(
        server
            .text(&sid(), ANA_PHONE, ANA_NUMBER, "add task quiet")
            .await,
        "",
        "no SMS while opted out"
    );
    assert_eq!(
        server.text(&sid(), ANA_PHONE, ANA_NUMBER, "help").await,
        "",
        "not even help"
    );
    assert_eq!(
        server.text(&sid(), ANA_PHONE, ANA_NUMBER, "start").await,
        ""
    );
    assert!(!store.user(ana).await.unwrap().sms_opted_out);
    let help = server.text(&sid(), ANA_PHONE, ANA_NUMBER, "HELP").await;
    assert!(!help.is_empty());
    let list = server.text(&sid(), ANA_PHONE, ANA_NUMBER, "tasks").await;
    assert!(
        list.contains("quiet"),
        "the opted-out turn was still kept: {list}"
    );
    assert_eq!(
        server.text(&sid(), ANA_PHONE, ANA_NUMBER, "arret").await,
        ""
    );
    assert!(
        store.user(ana).await.unwrap().sms_opted_out,
        "French ARRET opts out too"
    );
    server.stop();
}

#[tokio::test]
async fn sms_sim_talks_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    add_user(dir.path(), &db, "Ana", ANA_PHONE, ANA_NUMBER, "en");
    let server = Server::start(dir.path(), &db, &[]);
    let output = crate::helpers::run_cli(
        dir.path(),
        &db,
        &[
            "sms-sim",
            "--url",
            &server.base,
            "--to",
            ANA_NUMBER,
            "--from",
            ANA_PHONE,
            "add task try nudge",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("try nudge"));
    server.stop();
}

/// Posts a status callback signed as Twilio signs it.
async fn status_callback(server: &Server, fields: &[(&str, &str)]) -> reqwest::Response {
    let url = server.url("/sms/status");
    let params: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = nudge::sms::signature::expected_signature(AUTH_TOKEN, &url, &params);
    reqwest::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .expect("the callback is answered")
}

#[tokio::test]
async fn a_final_status_callback_updates_the_delivery_and_the_users_usage_row_for_that_sid() {
    const REPLY_SID: &str = "SM00000000000000000000000000000007";
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let ana = user_id(&add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en"));
        let bob = user_id(&add_user(&data, &db, "Bob", BOB_PHONE, BOB_NUMBER, "fr"));
        let twilio = accepting_twilio_once(REPLY_SID).await;
        // A zero reply window: the reply goes out by the REST API, with a SID.
        let server = Server::start(
            &data,
            &db,
            &[
                ("NUDGE_REPLY_WINDOW_MS", "0"),
                ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                ("TWILIO_API_BASE", &twilio.uri()),
            ],
        );
        server
            .sms(&sid(), ANA_PHONE, ANA_NUMBER, "add task renew passport")
            .await;
        wait_for_request(&twilio).await;
        let store = server.store().await;
        let mut outbound = Vec::new();
        for _ in 0..100 {
            outbound = store
                .sms_usage(ana)
                .await
                .unwrap()
                .into_iter()
                .filter(|u| u.direction == Direction::Outbound)
                .collect();
            if outbound.iter().any(|u| u.message_sid.is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(outbound.len(), 1, "[{}] the reply counts once", db.label);
        let row = &outbound[0];
        assert_eq!(
            row.message_sid.as_deref(),
            Some(REPLY_SID),
            "[{}]",
            db.label
        );
        assert_eq!(row.status.as_deref(), Some("queued"));
        assert!(row.message_id.is_some(), "the reply's own row took the SID");
        assert_eq!((row.segments, row.price_micros), (1, None));

        // An intermediate status, then the final one with segments and price.
        let sent = status_callback(
            &server,
            &[
                ("MessageSid", REPLY_SID),
                ("MessageStatus", "sent"),
                ("AccountSid", ACCOUNT_SID),
            ],
        )
        .await;
        assert_eq!(sent.status(), 204);
        let delivered = status_callback(
            &server,
            &[
                ("MessageSid", REPLY_SID),
                ("MessageStatus", "delivered"),
                ("AccountSid", ACCOUNT_SID),
                ("NumSegments", "2"),
                ("Price", "-0.01580"),
                ("PriceUnit", "USD"),
            ],
        )
        .await;
        assert_eq!(delivered.status(), 204, "[{}]", db.label);
        let delivery = store.sms_delivery(ana, REPLY_SID).await.unwrap().unwrap();
        assert_eq!(
            (delivery.status.as_str(), delivery.segments),
            ("delivered", Some(2))
        );
        let usage = store.sms_usage(ana).await.unwrap();
        let row = usage
            .iter()
            .find(|u| u.message_sid.as_deref() == Some(REPLY_SID))
            .expect("the usage row");
        assert_eq!(row.status.as_deref(), Some("delivered"), "[{}]", db.label);
        assert_eq!(row.segments, 2);
        assert_eq!(row.price_micros, Some(15_800));
        assert_eq!(row.price_unit.as_deref(), Some("USD"));

        // A bad price is refused and changes nothing; another user's rows are untouched.
        let bad = status_callback(
            &server,
            &[
                ("MessageSid", REPLY_SID),
                ("MessageStatus", "failed"),
                ("Price", "a lot"),
            ],
        )
        .await;
        assert_eq!(bad.status(), 400);
        let after = store.sms_delivery(ana, REPLY_SID).await.unwrap().unwrap();
        assert_eq!(after.status, "delivered");
        assert!(store.sms_delivery(bob, REPLY_SID).await.unwrap().is_none());
        assert!(
            store
                .sms_usage(bob)
                .await
                .unwrap()
                .iter()
                .all(|u| u.message_sid.is_none() && u.status.is_none())
        );
        server.stop();
        twilio.verify().await;
    }
}

#[tokio::test]
async fn the_reply_of_a_webhook_twilio_gave_up_on_goes_out_by_the_rest_api() {
    const REPLY: &str = "Saved: renew passport. Next step: find your old one.";
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    add_user(dir.path(), &db, "Ana", ANA_PHONE, ANA_NUMBER, "en");
    let twilio = accepting_twilio_once("SM00000000000000000000000000000011").await;
    // The model takes longer than Twilio waits, well within the reply window.
    let gemini = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(crate::fakes::gemini_text(REPLY).set_delay(Duration::from_millis(1_500)))
        .mount(&gemini)
        .await;
    let server = Server::start(
        dir.path(),
        &db,
        &[
            ("GEMINI_API_KEY", "fake-gemini-key"),
            ("NUDGE_GEMINI_BASE_URL", &gemini.uri()),
            ("NUDGE_REPLY_WINDOW_MS", "10000"),
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_API_BASE", &twilio.uri()),
        ],
    );
    let url = server.url("/sms/inbound");
    let params = sms_params(&sid(), ANA_PHONE, ANA_NUMBER, "add task renew passport");
    let signature = nudge::sms::signature::expected_signature(AUTH_TOKEN, &url, &params);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let hung_up = impatient
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await;
    assert!(
        hung_up.is_err(),
        "the webhook gave up before the turn ended"
    );

    let sent = wait_for_request(&twilio).await;
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&sent.body).unwrap();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("Body"), REPLY);
    assert_eq!(field("To"), ANA_PHONE);
    assert_eq!(field("From"), ANA_NUMBER);
    server.stop();
}
