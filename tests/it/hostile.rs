//! Hostile input against the running server: malformed, oversize and random JSON bodies,
//! wrong content types, garbage forms and headers. Every answer is a 4xx with the JSON error
//! shape (never a 5xx), and the server keeps serving.

use reqwest::Method;

use crate::accounts::{access, register};
use crate::helpers::{Server, databases};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() & 0xff) as u8).collect()
    }
}

async fn send(
    client: &reqwest::Client,
    server: &Server,
    verb: Method,
    route: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut request = client.request(verb, server.url(route)).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn malformed_oversize_and_random_bodies_get_a_4xx_never_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let server = Server::start(
        &data,
        &db,
        &[
            ("NUDGE_RATE_API_PER_MIN", "0"),
            ("NUDGE_RATE_AUTH_PER_MIN", "0"),
            ("NUDGE_RATE_IP_PER_MIN", "0"),
        ],
    );
    let token = access(&register(&server, "fuzz@example.com").await);
    // One connection per request: the server may close a connection whose body it refused
    // unread, and a pooled connection reused after that close would fail on the client side.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    let json_routes: [(Method, &str, bool); 20] = [
        (Method::POST, "/api/v1/auth/register", false),
        (Method::POST, "/api/v1/auth/login", false),
        (Method::POST, "/api/v1/auth/refresh", false),
        (Method::POST, "/api/v1/auth/claim", false),
        (Method::POST, "/api/v1/auth/password", true),
        (Method::PATCH, "/api/v1/me", true),
        (Method::POST, "/api/v1/me/tasks", true),
        (Method::PATCH, "/api/v1/me/tasks/1", true),
        (Method::POST, "/api/v1/me/groceries", true),
        (Method::POST, "/api/v1/me/mfa/totp/confirm", true),
        (Method::POST, "/api/v1/me/goals", true),
        (Method::PATCH, "/api/v1/me/goals/1", true),
        (Method::POST, "/api/v1/me/expenses", true),
        (Method::PATCH, "/api/v1/me/expenses/1", true),
        (Method::POST, "/api/v1/me/notes", true),
        (Method::PATCH, "/api/v1/me/notes/1", true),
        (Method::POST, "/api/v1/me/reminders", true),
        (Method::PATCH, "/api/v1/me/reminders/1", true),
        (Method::POST, "/api/v1/me/memories", true),
        (Method::PATCH, "/api/v1/me/memories/1", true),
    ];
    let mut fixed: Vec<(Option<&str>, Vec<u8>)> = vec![
        (Some("application/json"), b"{".to_vec()),
        (Some("application/json"), b"null".to_vec()),
        (
            Some("application/json"),
            b"{\"title\": \"\\ud800\"}".to_vec(),
        ),
        (Some("application/json"), vec![0xff, 0xfe, 0x00]),
        (Some("application/json"), "[".repeat(20_000).into_bytes()),
        (
            Some("application/json"),
            format!("{{\"title\": \"{}\"}}", "x".repeat(100_000)).into_bytes(),
        ),
        (Some("text/plain"), b"{}".to_vec()),
        (None, b"{}".to_vec()),
        (
            Some("application/json; charset=utf-8"),
            b"{\"unknown\": 1}".to_vec(),
        ),
        (
            Some("application/json"),
            b"{\"title\": \"a\\u0000b\", \"done\": \"yes\"}".to_vec(),
        ),
        (
            Some("application/json"),
            format!("{{\"title\": \"{}\"}}", "é".repeat(600)).into_bytes(),
        ),
        (Some("multipart/form-data; boundary=x"), b"--x--".to_vec()),
    ];
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    for _ in 0..40 {
        let len = rng.below(400);
        fixed.push((Some("application/json"), rng.bytes(len)));
    }
    let mut answered = 0;
    for (verb, route, authed) in &json_routes {
        for (content_type, body) in &fixed {
            let (status, body_json) = send(
                &client,
                &server,
                verb.clone(),
                route,
                authed.then_some(token.as_str()),
                *content_type,
                body.clone(),
            )
            .await;
            assert!(
                (400..500).contains(&status),
                "{verb} {route} {content_type:?} answered {status}"
            );
            assert!(
                body_json["error"]["code"].is_string(),
                "{verb} {route}: {body_json}"
            );
            answered += 1;
        }
    }
    assert!(answered >= 1_000);

    // Garbage SMS forms: 4xx (the signature check refuses them before anything runs).
    for _ in 0..50 {
        let len = rng.below(2_000);
        let (status, _) = send(
            &client,
            &server,
            Method::POST,
            "/sms/inbound",
            None,
            Some("application/x-www-form-urlencoded"),
            rng.bytes(len),
        )
        .await;
        assert!(
            (400..500).contains(&status),
            "SMS webhook answered {status}"
        );
    }
    // A body past the limit is a 413, whatever it holds. (The server answers as soon as the
    // limit is crossed and closes the connection; a client still writing may see the close
    // instead of the answer. Either way nothing past the limit is read.)
    for (route, content_type) in [
        ("/api/v1/me/tasks", "application/json"),
        ("/sms/inbound", "application/x-www-form-urlencoded"),
    ] {
        let sent = client
            .post(server.url(route))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(vec![b'a'; 2 * 1024 * 1024])
            .send()
            .await;
        if let Ok(response) = sent {
            assert_eq!(response.status(), 413, "{route}");
        }
    }

    // Hostile headers and paths.
    for auth in [
        "Bearer",
        "Bearer \u{0}",
        "Basic abc",
        &format!("Bearer {}", "a.".repeat(5_000)),
    ] {
        let response = server
            .http
            .get(server.url("/api/v1/me"))
            .header("authorization", auth)
            .send()
            .await;
        if let Ok(response) = response {
            assert!(
                response.status().is_client_error(),
                "{auth:.20}: {}",
                response.status()
            );
        }
    }
    for route in [
        "/api/v1/me/tasks/-1",
        "/api/v1/me/tasks/99999999999999999999999",
        "/api/v1/me/tasks/%00",
        "/api/v1/me/tasks?limit=0",
        "/api/v1/me/tasks?limit=abc",
        "/api/v1/me/tasks?cursor=-5",
        "/api/v1/me/tasks?done=maybe",
        "/api/v1/me/tasks?evil=1",
        "/api/v1/me/goals?achieved=maybe",
        "/api/v1/me/expenses?limit=-1",
        "/api/v1/me/notes/0",
        "/api/v1/me/reminders?cursor=1e3",
        "/api/v1/me/memories/abc",
        "/api/v1/admin/users/not-a-uuid",
    ] {
        let (status, body) = send(
            &client,
            &server,
            Method::GET,
            route,
            Some(&token),
            None,
            Vec::new(),
        )
        .await;
        assert!((400..500).contains(&status), "{route}: {status}");
        assert!(body["error"]["code"].is_string(), "{route}");
    }

    // Still serving.
    let (status, _) = send(
        &client,
        &server,
        Method::GET,
        "/healthz",
        None,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &client,
        &server,
        Method::GET,
        "/api/v1/me",
        Some(&token),
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200);
    server.stop();
}

#[tokio::test]
async fn hostile_websocket_frames_are_refused_or_close_that_socket_only() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;

    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let server = Server::start(&data, &db, &[("NUDGE_RATE_WS_PER_MIN", "0")]);
    let token = access(&register(&server, "frames@example.com").await);
    let wait = std::time::Duration::from_secs(10);

    // Garbage and wrong shapes: a refusal each, and the socket stays open.
    let mut socket = crate::live::open(&server, &token, None).await;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut garbage: Vec<String> = (0..20)
        .map(|_| {
            let len = rng.below(300);
            String::from_utf8_lossy(&rng.bytes(len)).into_owned()
        })
        .collect();
    garbage.extend(
        [
            "{}",
            "null",
            r#"{"type":"message"}"#,
            r#"{"type":"message","text":""}"#,
            r#"{"type":"message","text":42}"#,
            r#"{"type":"shutdown"}"#,
        ]
        .map(String::from),
    );
    garbage.push(serde_json::json!({"type": "message", "text": "x".repeat(4_001)}).to_string());
    for text in &garbage {
        socket
            .send(Frame::Text(text.clone().into()))
            .await
            .expect("sent");
        let refusal = loop {
            let frame = tokio::time::timeout(wait, socket.next())
                .await
                .expect("an answer in time")
                .expect("the socket stays open")
                .expect("a frame");
            if let Frame::Text(answer) = frame {
                let event: serde_json::Value = serde_json::from_str(answer.as_str()).expect("JSON");
                if event["type"] == "error" {
                    break event;
                }
            }
        };
        assert!(
            ["invalid_frame", "invalid_text"].contains(&refusal["code"].as_str().unwrap_or("")),
            "{text:?}: {refusal}"
        );
    }

    // A frame far past any chat message closes that socket; the server goes on serving.
    let mut big = crate::live::open(&server, &token, None).await;
    let _ = big.send(Frame::Text("y".repeat(200_000).into())).await;
    let closed = tokio::time::timeout(wait, async {
        loop {
            match big.next().await {
                None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an oversize frame ends its socket");
    socket
        .send(Frame::Text(
            serde_json::json!({"type": "message", "text": "hi"})
                .to_string()
                .into(),
        ))
        .await
        .expect("the first socket still takes messages");
    let health = reqwest::get(server.url("/healthz")).await.expect("answers");
    assert!(health.status().is_success());
    server.stop();
}
