//! Accounts and sessions through the real binary: registration, sign-in, token rotation and
//! reuse detection, sign-out, TOTP, lockout, rate limits, password rules, SMS codes, headers
//! and the OpenAPI document.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{ACCOUNT_SID, Database, Server, add_user, databases};

pub const PASSWORD: &str = "tea kettle on the moon";

/// An answer: status, JSON body (Null when empty or not JSON), headers.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// Calls the API with an optional bearer token and JSON body.
pub async fn call(
    server: &Server,
    verb: Method,
    route: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    call_from(server, verb, route, token, body, None).await
}

/// [`call`] as if from the client address `ip` (servers started with
/// `NUDGE_TRUST_FORWARDED_FOR=true`).
pub async fn call_from(
    server: &Server,
    verb: Method,
    route: &str,
    token: Option<&str>,
    body: Option<Value>,
    ip: Option<&str>,
) -> Answer {
    let mut request = server.http.request(verb, server.url(route));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(ip) = ip {
        request = request.header("x-forwarded-for", ip);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

/// Registers `email` and returns the token answer.
pub async fn register(server: &Server, email: &str) -> Value {
    let answer = call(
        server,
        Method::POST,
        "/api/v1/auth/register",
        None,
        Some(json!({ "email": email, "password": PASSWORD, "name": "Test Person", "accept_terms": true, "tz": "Europe/Paris" })),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body
}

pub async fn login(server: &Server, email: &str, password: &str, totp: Option<&str>) -> Answer {
    let mut body = json!({ "email": email, "password": password });
    if let Some(code) = totp {
        body["totp"] = json!(code);
    }
    call(server, Method::POST, "/api/v1/auth/login", None, Some(body)).await
}

pub fn access(tokens: &Value) -> String {
    tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

fn refresh_token(tokens: &Value) -> String {
    tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

async fn refresh(server: &Server, token: &str) -> Answer {
    call(
        server,
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": token })),
    )
    .await
}

/// The variants tokens are tested on: each database, and with Redis when it is configured.
async fn variants(dir: &std::path::Path) -> Vec<(Database, Vec<(&'static str, String)>)> {
    let mut all: Vec<(Database, Vec<(&'static str, String)>)> = databases(dir)
        .await
        .into_iter()
        .map(|db| (db, Vec::new()))
        .collect();
    match std::env::var("NUDGE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let mut with_redis = all[0].clone();
            with_redis.0.label = "sqlite+redis";
            with_redis.0.url = format!("sqlite:{}", dir.join("redis.db").display());
            with_redis.1.push(("NUDGE_REDIS_URL", url));
            // Each server its own budgets and revocations, whatever else shares the Redis.
            with_redis.1.push((
                "NUDGE_REDIS_NAMESPACE",
                format!("test-{}", uuid::Uuid::now_v7().simple()),
            ));
            all.push(with_redis);
        }
        _ if std::env::var_os("CI").is_some() => panic!("CI needs NUDGE_TEST_REDIS_URL"),
        _ => eprintln!("NUDGE_TEST_REDIS_URL unset: Redis variant skipped"),
    }
    all
}

fn start(
    dir: &std::path::Path,
    db: &Database,
    env: &[(&'static str, String)],
    extra: &[(&str, &str)],
) -> Server {
    let data = db.data_dir(dir);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    Server::start(&data, db, &all)
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    for (db, env) in variants(dir.path()).await {
        let server = start(dir.path(), &db, &env, &[]);
        let first = register(&server, "rotate@example.com").await;
        let me = call(
            &server,
            Method::GET,
            "/api/v1/me",
            Some(&access(&first)),
            None,
        )
        .await;
        assert_eq!(me.status, 200, "[{}]", db.label);
        assert_eq!(me.body["email"], "rotate@example.com");

        let second = refresh(&server, &refresh_token(&first)).await;
        assert_eq!(second.status, 200, "[{}] {}", db.label, second.body);
        assert_ne!(refresh_token(&second.body), refresh_token(&first));
        let third = refresh(&server, &refresh_token(&second.body)).await;
        assert_eq!(third.status, 200, "[{}]", db.label);

        // The first refresh token again: someone copied it. The whole family ends.
        let reused = refresh(&server, &refresh_token(&first)).await;
        assert_eq!(reused.status, 401, "[{}]", db.label);
        assert_eq!(reused.code(), "token_reused");
        let latest = refresh(&server, &refresh_token(&third.body)).await;
        assert_eq!(latest.status, 401, "[{}]", db.label);
        let access_after = call(
            &server,
            Method::GET,
            "/api/v1/me",
            Some(&access(&third.body)),
            None,
        )
        .await;
        assert_eq!(access_after.status, 401, "[{}]", db.label);
        assert_eq!(access_after.code(), "token_revoked");

        // The reuse is in the audit log.
        let store = server.store().await;
        let user = first["user_id"].as_str().unwrap().parse().unwrap();
        let events = store.audit_events_for(user, 50).await.unwrap();
        assert!(
            events.iter().any(|e| e.event == "token_reuse"),
            "[{}] {events:?}",
            db.label
        );
        server.stop();
    }
}

#[tokio::test]
async fn logout_ends_one_session_and_logout_all_ends_every_one() {
    let dir = tempfile::tempdir().unwrap();
    for (db, env) in variants(dir.path()).await {
        let server = start(dir.path(), &db, &env, &[]);
        register(&server, "out@example.com").await;
        let a = login(&server, "out@example.com", PASSWORD, None).await.body;
        let b = login(&server, "out@example.com", PASSWORD, None).await.body;
        let c = login(&server, "out@example.com", PASSWORD, None).await.body;

        let out = call(
            &server,
            Method::POST,
            "/api/v1/auth/logout",
            Some(&access(&a)),
            None,
        )
        .await;
        assert_eq!(out.status, 204, "[{}] {}", db.label, out.body);
        assert_eq!(
            call(&server, Method::GET, "/api/v1/me", Some(&access(&a)), None)
                .await
                .status,
            401
        );
        assert_eq!(refresh(&server, &refresh_token(&a)).await.status, 401);
        assert_eq!(
            call(&server, Method::GET, "/api/v1/me", Some(&access(&b)), None)
                .await
                .status,
            200
        );

        let all = call(
            &server,
            Method::POST,
            "/api/v1/auth/logout-all",
            Some(&access(&b)),
            None,
        )
        .await;
        assert_eq!(all.status, 204, "[{}]", db.label);
        for tokens in [&b, &c] {
            assert_eq!(
                call(
                    &server,
                    Method::GET,
                    "/api/v1/me",
                    Some(&access(tokens)),
                    None
                )
                .await
                .status,
                401,
                "[{}]",
                db.label
            );
            assert_eq!(
                refresh(&server, &refresh_token(tokens)).await.status,
                401,
                "[{}]",
                db.label
            );
        }
        assert_eq!(
            login(&server, "out@example.com", PASSWORD, None)
                .await
                .status,
            200
        );
        server.stop();
    }
}

#[tokio::test]
async fn tokens_that_are_forged_expired_or_garbage_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let server = start(dir.path(), &db, &[], &[]);
    let tokens = register(&server, "forge@example.com").await;
    let good = access(&tokens);
    // Signed by another key with the same claims.
    let other = nudge::auth::tokens::JwtKeys::generate();
    let claims: nudge::auth::tokens::AccessClaims = {
        let payload = good.split('.').nth(1).unwrap();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let forged = other.sign(&claims).unwrap();
    let mut expired_claims = claims.clone();
    expired_claims.exp = expired_claims.iat - 1;
    let keys = nudge::auth::tokens::JwtKeys::from_text(crate::helpers::JWT_KEYS).unwrap();
    let expired = keys.sign(&expired_claims).unwrap();
    for (token, code) in [
        (forged.as_str(), "invalid_token"),
        (expired.as_str(), "token_expired"),
        ("garbage", "invalid_token"),
        ("", "unauthorized"),
    ] {
        let answer = call(&server, Method::GET, "/api/v1/me", Some(token), None).await;
        assert_eq!(answer.status, 401, "{token}");
        assert_eq!(answer.code(), code, "{token}");
        assert_eq!(answer.headers.get("www-authenticate").unwrap(), "Bearer");
    }
    let none = call(&server, Method::GET, "/api/v1/me/tasks", None, None).await;
    assert_eq!(none.status, 401);
    server.stop();
}

#[tokio::test]
async fn totp_enrolls_confirms_and_is_required_at_sign_in_with_recovery_codes_working_once() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let server = start(dir.path(), &db, &[], &[]);
        let tokens = register(&server, "mfa@example.com").await;
        let token = access(&tokens);
        let enrollment = call(
            &server,
            Method::POST,
            "/api/v1/me/mfa/totp",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(enrollment.status, 200, "[{}] {}", db.label, enrollment.body);
        let uri = enrollment.body["otpauth_uri"].as_str().unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Nudge:mfa%40example.com?"),
            "{uri}"
        );
        let secret = enrollment.body["secret"].as_str().unwrap().to_owned();

        let wrong = call(
            &server,
            Method::POST,
            "/api/v1/me/mfa/totp/confirm",
            Some(&token),
            Some(json!({"code": "000000"})),
        )
        .await;
        assert_eq!(wrong.status, 400);
        let now = chrono::Utc::now();
        let code = nudge::auth::totp::code_at(&secret, now).unwrap();
        let confirmed = call(
            &server,
            Method::POST,
            "/api/v1/me/mfa/totp/confirm",
            Some(&token),
            Some(json!({"code": code})),
        )
        .await;
        assert_eq!(confirmed.status, 200, "[{}] {}", db.label, confirmed.body);
        let recovery: Vec<String> =
            serde_json::from_value(confirmed.body["recovery_codes"].clone()).unwrap();
        assert_eq!(recovery.len(), 10);

        let without = login(&server, "mfa@example.com", PASSWORD, None).await;
        assert_eq!(
            (without.status.as_u16(), without.code()),
            (401, "mfa_required")
        );
        // The confirming code's step is spent: the next step's code (within the skew) passes once.
        let replay = login(&server, "mfa@example.com", PASSWORD, Some(&code)).await;
        assert_eq!(replay.status, 401, "[{}] a used code is refused", db.label);
        let next =
            nudge::auth::totp::code_at(&secret, now + chrono::Duration::seconds(30)).unwrap();
        let with = login(&server, "mfa@example.com", PASSWORD, Some(&next)).await;
        assert_eq!(with.status, 200, "[{}] {}", db.label, with.body);
        let again = login(&server, "mfa@example.com", PASSWORD, Some(&next)).await;
        assert_eq!(again.status, 401, "[{}] replayed", db.label);

        let by_recovery = login(
            &server,
            "mfa@example.com",
            PASSWORD,
            Some(&recovery[0].to_uppercase()),
        )
        .await;
        assert_eq!(
            by_recovery.status, 200,
            "[{}] {}",
            db.label, by_recovery.body
        );
        let recovery_again = login(&server, "mfa@example.com", PASSWORD, Some(&recovery[0])).await;
        assert_eq!(
            recovery_again.status, 401,
            "[{}] a recovery code works once",
            db.label
        );

        let session = access(&with.body);
        let bad_disable = call(
            &server,
            Method::DELETE,
            "/api/v1/me/mfa/totp",
            Some(&session),
            Some(json!({"password": "not the password at all"})),
        )
        .await;
        assert_eq!(bad_disable.status, 401);
        let disable = call(
            &server,
            Method::DELETE,
            "/api/v1/me/mfa/totp",
            Some(&session),
            Some(json!({"password": PASSWORD})),
        )
        .await;
        assert_eq!(disable.status, 204);
        assert_eq!(
            login(&server, "mfa@example.com", PASSWORD, None)
                .await
                .status,
            200
        );

        let store = server.store().await;
        let user = tokens["user_id"].as_str().unwrap().parse().unwrap();
        let events: Vec<String> = store
            .audit_events_for(user, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert!(
            events.contains(&"mfa_enabled".to_owned())
                && events.contains(&"mfa_disabled".to_owned()),
            "{events:?}"
        );
        server.stop();
    }
}

#[tokio::test]
async fn failed_sign_ins_lock_the_client_but_never_the_person_on_a_trusted_device() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let server = start(
            dir.path(),
            &db,
            &[],
            &[
                ("NUDGE_TRUST_FORWARDED_FOR", "true"),
                ("NUDGE_RATE_AUTH_PER_MIN", "0"),
            ],
        );
        let tokens = register(&server, "lock@example.com").await;
        let device = tokens["device_token"].as_str().unwrap().to_owned();
        let attempt = |ip: &'static str, password: &'static str, device: Option<String>| {
            let server = &server;
            async move {
                let mut body = json!({ "email": "lock@example.com", "password": password });
                if let Some(d) = device {
                    body["device_token"] = json!(d);
                }
                call_from(
                    server,
                    Method::POST,
                    "/api/v1/auth/login",
                    None,
                    Some(body),
                    Some(ip),
                )
                .await
            }
        };
        // An attacker at one address: five failures lock that address out, even with the
        // right password, and say for how long.
        for _ in 0..5 {
            assert_eq!(
                attempt("198.51.100.1", "wrong password guess", None)
                    .await
                    .status,
                401
            );
        }
        let locked = attempt("198.51.100.1", PASSWORD, None).await;
        assert_eq!(locked.status, 429, "[{}]", db.label);
        assert_eq!(locked.code(), "locked");
        let wait: u64 = locked.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        // The person elsewhere is not locked out.
        assert_eq!(
            attempt("203.0.113.9", PASSWORD, None).await.status,
            200,
            "[{}]",
            db.label
        );

        // Many addresses: the account locks for strangers, but the person's own device works.
        for n in 0..20 {
            let ip: &'static str = Box::leak(format!("192.0.2.{}", n + 10).into_boxed_str());
            attempt(ip, "wrong password guess", None).await;
        }
        let stranger = attempt("192.0.2.200", PASSWORD, None).await;
        assert_eq!(
            stranger.status, 429,
            "[{}] the account is locked for new devices",
            db.label
        );
        let own = attempt("192.0.2.201", PASSWORD, Some(device.clone())).await;
        assert_eq!(
            own.status, 200,
            "[{}] a trusted device is never locked out: {}",
            db.label, own.body
        );

        let store = server.store().await;
        let user = tokens["user_id"].as_str().unwrap().parse().unwrap();
        let events = store.audit_events_for(user, 200).await.unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.event == "login" && e.outcome == nudge::store::Outcome::Denied)
        );
        assert!(
            events
                .iter()
                .any(|e| e.event == "login" && e.outcome == nudge::store::Outcome::Failure)
        );
        server.stop();
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_client_and_per_user() {
    let dir = tempfile::tempdir().unwrap();
    for (db, env) in variants(dir.path()).await {
        let server = start(
            dir.path(),
            &db,
            &env,
            &[
                ("NUDGE_RATE_AUTH_PER_MIN", "3"),
                ("NUDGE_RATE_API_PER_MIN", "4"),
            ],
        );
        let tokens = register(
            &server,
            &format!("limit-{}@example.com", db.label.replace('+', "-")),
        )
        .await;
        // Registration spent one of three; two sign-ins pass, the next is refused.
        for _ in 0..2 {
            assert_ne!(
                login(&server, "nobody@example.com", PASSWORD, None)
                    .await
                    .status,
                429
            );
        }
        let limited = login(&server, "nobody@example.com", PASSWORD, None).await;
        assert_eq!(limited.status, 429, "[{}]", db.label);
        assert_eq!(limited.code(), "rate_limited");
        assert!(
            limited.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 1
        );

        let token = access(&tokens);
        for _ in 0..4 {
            assert_eq!(
                call(&server, Method::GET, "/api/v1/me", Some(&token), None)
                    .await
                    .status,
                200,
                "[{}]",
                db.label
            );
        }
        let over = call(&server, Method::GET, "/api/v1/me/tasks", Some(&token), None).await;
        assert_eq!(over.status, 429, "[{}]", db.label);
        assert!(over.headers.contains_key("retry-after"));
        server.stop();
    }
    // Per client address, every route (health checks aside).
    let data = dir.path().join("ip-limit");
    std::fs::create_dir_all(&data).unwrap();
    let db = Database {
        label: "ip",
        url: format!("sqlite:{}", data.join("n.db").display()),
    };
    let server = Server::start(&data, &db, &[("NUDGE_RATE_IP_PER_MIN", "5")]);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            call(&server, Method::GET, "/api/v1/openapi.json", None, None)
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    assert_eq!(
        call(&server, Method::GET, "/healthz", None, None)
            .await
            .status,
        200
    );
    server.stop();
}

#[tokio::test]
async fn inbound_sms_are_limited_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    add_user(&data, &db, "Ana", "+14155550101", "+14155559001", "en");
    let server = Server::start(&data, &db, &[("NUDGE_RATE_SMS_PER_MIN", "2")]);
    for _ in 0..2 {
        let r = server
            .sms(
                &crate::helpers::sid(),
                "+14155550101",
                "+14155559001",
                "tasks",
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = server
        .sms(
            &crate::helpers::sid(),
            "+14155550101",
            "+14155559001",
            "tasks",
        )
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    server.stop();
}

#[tokio::test]
async fn passwords_follow_the_policy_the_history_and_are_rehashed_when_parameters_change() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let server = start(dir.path(), &db, &[], &[("NUDGE_RATE_AUTH_PER_MIN", "0")]);
        for (password, code) in [
            ("short one", "password_too_short"),
            ("password12345", "password_too_common"),
            ("Sunshine2024!!", "password_too_common"),
            ("policy-person rocks", "password_contains_email"),
        ] {
            let answer = call(&server, Method::POST, "/api/v1/auth/register", None,
                Some(json!({"email": "policy-person@example.com", "password": password, "name": "P", "accept_terms": true}))).await;
            assert_eq!(
                (answer.status.as_u16(), answer.code()),
                (400, code),
                "{password}"
            );
        }
        let no_consent = call(&server, Method::POST, "/api/v1/auth/register", None,
            Some(json!({"email": "p@example.com", "password": PASSWORD, "name": "P", "accept_terms": false}))).await;
        assert_eq!(no_consent.code(), "consent_required");

        let tokens = register(&server, "hist@example.com").await;
        let taken = call(&server, Method::POST, "/api/v1/auth/register", None,
            Some(json!({"email": "HIST@example.com", "password": PASSWORD, "name": "P", "accept_terms": true}))).await;
        assert_eq!((taken.status.as_u16(), taken.code()), (409, "email_taken"));

        let mut token = access(&tokens);
        let mut current = PASSWORD.to_owned();
        for n in 1..=5 {
            let next = format!("walnut harbour lamp {n}");
            let changed = call(
                &server,
                Method::POST,
                "/api/v1/auth/password",
                Some(&token),
                Some(json!({"current_password": current, "new_password": next})),
            )
            .await;
            assert_eq!(changed.status, 204, "[{}] {}", db.label, changed.body);
            assert_eq!(
                call(&server, Method::GET, "/api/v1/me", Some(&token), None)
                    .await
                    .status,
                401,
                "the old session ended"
            );
            current = next;
            token = access(
                &login(&server, "hist@example.com", &current, None)
                    .await
                    .body,
            );
        }
        // The last five (the current one included) are refused; the first one is old enough.
        let reused = call(
            &server,
            Method::POST,
            "/api/v1/auth/password",
            Some(&token),
            Some(json!({"current_password": current, "new_password": "walnut harbour lamp 2"})),
        )
        .await;
        assert_eq!(
            (reused.status.as_u16(), reused.code()),
            (400, "password_reused")
        );
        let wrong = call(&server, Method::POST, "/api/v1/auth/password", Some(&token),
            Some(json!({"current_password": "not my password", "new_password": "brand new phrase here"}))).await;
        assert_eq!(wrong.status, 401);
        let oldest = call(
            &server,
            Method::POST,
            "/api/v1/auth/password",
            Some(&token),
            Some(json!({"current_password": current, "new_password": PASSWORD})),
        )
        .await;
        assert_eq!(oldest.status, 204, "[{}] {}", db.label, oldest.body);

        // New argon2 parameters: the next sign-in upgrades the stored hash.
        let server = {
            let data = server.data_dir.clone();
            let database = server.database.clone();
            server.stop();
            Server::start(
                &data,
                &database,
                &[
                    ("NUDGE_ARGON2_M_KIB", "128"),
                    ("NUDGE_ARGON2_T", "2"),
                    ("NUDGE_RATE_AUTH_PER_MIN", "0"),
                ],
            )
        };
        let user = tokens["user_id"].as_str().unwrap().parse().unwrap();
        let before = server
            .store()
            .await
            .account(user)
            .await
            .unwrap()
            .password_hash;
        assert!(before.contains("m=64,t=1,p=1"), "{before}");
        assert_eq!(
            login(&server, "hist@example.com", PASSWORD, None)
                .await
                .status,
            200
        );
        let after = server
            .store()
            .await
            .account(user)
            .await
            .unwrap()
            .password_hash;
        assert!(after.contains("m=128,t=2,p=1"), "[{}] {after}", db.label);
        assert_eq!(
            login(&server, "hist@example.com", PASSWORD, None)
                .await
                .status,
            200
        );
        server.stop();
    }
}

#[tokio::test]
async fn an_expired_password_only_allows_changing_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let server = start(
        dir.path(),
        &db,
        &[],
        &[("NUDGE_PASSWORD_MAX_AGE_DAYS", "90")],
    );
    let tokens = register(&server, "old@example.com").await;
    let user: nudge::store::UserId = tokens["user_id"].as_str().unwrap().parse().unwrap();
    let store = server.store().await;
    let long_ago = chrono::Utc::now() - chrono::Duration::days(91);
    let hash = store.account(user).await.unwrap().password_hash;
    store.set_password(user, &hash, 5, long_ago).await.unwrap();
    let signed_in = login(&server, "old@example.com", PASSWORD, None).await;
    assert_eq!(signed_in.body["password_expired"], true);
    let token = access(&signed_in.body);
    let blocked = call(&server, Method::GET, "/api/v1/me", Some(&token), None).await;
    assert_eq!(
        (blocked.status.as_u16(), blocked.code()),
        (403, "password_expired")
    );
    let changed = call(
        &server,
        Method::POST,
        "/api/v1/auth/password",
        Some(&token),
        Some(json!({"current_password": PASSWORD, "new_password": "a fresh phrase for today"})),
    )
    .await;
    assert_eq!(changed.status, 204, "{}", changed.body);
    let fresh = login(&server, "old@example.com", "a fresh phrase for today", None).await;
    assert_eq!(fresh.body["password_expired"], false);
    assert_eq!(
        call(
            &server,
            Method::GET,
            "/api/v1/me",
            Some(&access(&fresh.body)),
            None
        )
        .await
        .status,
        200
    );
    server.stop();
}

/// The code and sender of the `nth` (1-based) SMS the fake Twilio received for `to`.
async fn code_sent_to(twilio: &MockServer, to: &str, nth: usize) -> (String, String) {
    for _ in 0..200 {
        let requests = twilio.received_requests().await.unwrap_or_default();
        let to_phone: Vec<Vec<(String, String)>> = requests
            .iter()
            .map(|r| serde_urlencoded::from_bytes::<Vec<(String, String)>>(&r.body).unwrap())
            .filter(|form| form.iter().any(|(k, v)| k == "To" && v == to))
            .collect();
        if let Some(form) = to_phone.get(nth - 1) {
            let field = |n: &str| {
                form.iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let code: String = field("Body")
                .chars()
                .filter(|c| c.is_ascii_digit())
                .take(6)
                .collect();
            return (code, field("From"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no SMS number {nth} reached {to} within 10 s");
}

async fn fake_twilio() -> MockServer {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": "SM00000000000000000000000000000001", "status": "queued", "num_segments": "1"
        })))
        .mount(&twilio)
        .await;
    twilio
}

#[tokio::test]
async fn a_web_user_links_a_phone_by_sms_code_and_an_sms_user_claims_an_account() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let sms_user = add_user(&data, &db, "Ana", "+14155550101", "+14155559001", "en");
        let twilio = fake_twilio().await;
        let server = Server::start(
            &data,
            &db,
            &[
                ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                ("TWILIO_API_BASE", &twilio.uri()),
                ("NUDGE_SMS_SENDER", "+14155550000"),
            ],
        );
        server
            .text(
                &crate::helpers::sid(),
                "+14155550101",
                "+14155559001",
                "add task water plants",
            )
            .await;

        // Linking: the code goes out from the deployment's sender; a wrong code is refused.
        let web = register(&server, "web@example.com").await;
        let token = access(&web);
        let sent = call(
            &server,
            Method::POST,
            "/api/v1/me/phone",
            Some(&token),
            Some(json!({"phone": "+14155550202"})),
        )
        .await;
        assert_eq!(sent.status, 202, "[{}] {}", db.label, sent.body);
        let (code, from) = code_sent_to(&twilio, "+14155550202", 1).await;
        assert_eq!(from, "+14155550000");
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let refused = call(
            &server,
            Method::POST,
            "/api/v1/me/phone/confirm",
            Some(&token),
            Some(json!({"code": wrong})),
        )
        .await;
        assert_eq!(
            (refused.status.as_u16(), refused.code()),
            (400, "invalid_code")
        );
        let linked = call(
            &server,
            Method::POST,
            "/api/v1/me/phone/confirm",
            Some(&token),
            Some(json!({"code": code})),
        )
        .await;
        assert_eq!(linked.status, 200, "[{}] {}", db.label, linked.body);
        assert_eq!(linked.body["phone"], "+14155550202");

        // Another web user cannot take Ana's phone even with a valid code.
        let other = register(&server, "other@example.com").await;
        let other_token = access(&other);
        call(
            &server,
            Method::POST,
            "/api/v1/me/phone",
            Some(&other_token),
            Some(json!({"phone": "+14155550101"})),
        )
        .await;
        let (code, _) = code_sent_to(&twilio, "+14155550101", 1).await;
        let taken = call(
            &server,
            Method::POST,
            "/api/v1/me/phone/confirm",
            Some(&other_token),
            Some(json!({"code": code})),
        )
        .await;
        assert_eq!((taken.status.as_u16(), taken.code()), (409, "phone_taken"));

        // Claiming: Ana proves her phone and gets an email and password for her SMS data.
        let unknown = call(
            &server,
            Method::POST,
            "/api/v1/auth/claim",
            None,
            Some(json!({"phone": "+19995550000"})),
        )
        .await;
        assert_eq!(
            unknown.status, 202,
            "the answer does not tell whether the phone is known"
        );
        let asked = call(
            &server,
            Method::POST,
            "/api/v1/auth/claim",
            None,
            Some(json!({"phone": "+14155550101"})),
        )
        .await;
        assert_eq!(asked.status, 202);
        let (code, from) = code_sent_to(&twilio, "+14155550101", 2).await;
        assert_eq!(from, "+14155559001", "from Ana's own number");
        let claimed = call(&server, Method::POST, "/api/v1/auth/claim/confirm", None, Some(json!({
            "phone": "+14155550101", "code": code, "email": "ana@example.com", "password": PASSWORD, "accept_terms": true
        }))).await;
        assert_eq!(claimed.status, 201, "[{}] {}", db.label, claimed.body);
        assert_eq!(claimed.body["user_id"], sms_user);
        let tasks = call(
            &server,
            Method::GET,
            "/api/v1/me/tasks",
            Some(&access(&claimed.body)),
            None,
        )
        .await;
        assert_eq!(
            tasks.body["items"][0]["title"], "water plants",
            "[{}] {}",
            db.label, tasks.body
        );
        assert_eq!(
            login(&server, "ana@example.com", PASSWORD, None)
                .await
                .status,
            200
        );
        server.stop();
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_no_server_banner() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let server = start(dir.path(), &db, &[], &[]);
    for route in ["/healthz", "/api/v1/openapi.json", "/api/v1/me", "/nope"] {
        let answer = call(&server, Method::GET, route, None, None).await;
        let h = &answer.headers;
        assert_eq!(
            h["strict-transport-security"], "max-age=63072000; includeSubDomains",
            "{route}"
        );
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(!h.contains_key("server"), "{route}");
    }
    server.stop();
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_the_bearer_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let server = start(dir.path(), &db, &[], &[]);
    let doc = call(&server, Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .body;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (route, verbs) in [
        ("/api/v1/auth/register", &["post"][..]),
        ("/api/v1/auth/login", &["post"]),
        ("/api/v1/auth/refresh", &["post"]),
        ("/api/v1/auth/logout", &["post"]),
        ("/api/v1/auth/logout-all", &["post"]),
        ("/api/v1/auth/password", &["post"]),
        ("/api/v1/me", &["get", "patch", "delete"]),
        ("/api/v1/me/export", &["get"]),
        ("/api/v1/me/mfa/totp", &["post", "delete"]),
        ("/api/v1/me/tasks", &["get", "post"]),
        ("/api/v1/me/tasks/{id}", &["get", "patch", "delete"]),
        ("/api/v1/me/groceries", &["get", "post"]),
        ("/api/v1/me/groceries/{id}", &["get", "patch", "delete"]),
        ("/api/v1/admin/users/{id}", &["get"]),
    ] {
        for verb in verbs {
            assert!(
                paths[route][verb].is_object(),
                "{verb} {route} is documented"
            );
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Task"].is_object());
    server.stop();
}

#[tokio::test]
async fn rotate_key_reseals_while_the_server_runs_and_the_old_key_can_then_go() {
    use nudge::store::seal::{Sealer, encode_key, generate_key};
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let ana = add_user(&data, &db, "Ana", "+14155550101", "+14155559001", "en");
        let old = crate::helpers::MASTER_KEY.to_owned();
        let new = encode_key(&generate_key());
        let ring = format!("{new},{old}");
        let server = Server::start(&data, &db, &[]);
        server
            .text(
                &crate::helpers::sid(),
                "+14155550101",
                "+14155559001",
                "add task before rotation",
            )
            .await;
        let server = {
            let database = server.database.clone();
            server.stop();
            Server::start(&data, &database, &[("NUDGE_MASTER_KEY", &ring)])
        };
        server
            .text(
                &crate::helpers::sid(),
                "+14155550101",
                "+14155559001",
                "add task during rotation",
            )
            .await;

        let output = std::process::Command::new(env!("CARGO_BIN_EXE_nudge"))
            .args(["admin", "rotate-key", "--batch", "1"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NUDGE_DATA_DIR", &data)
            .env("NUDGE_DATABASE_URL", &db.url)
            .env("NUDGE_MASTER_KEY", &ring)
            .env("NUDGE_JWT_KEYS", crate::helpers::JWT_KEYS)
            .env("TWILIO_AUTH_TOKEN", crate::helpers::AUTH_TOKEN)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "[{}] {stderr}", db.label);
        assert!(
            stderr.contains("messages.body") && stderr.contains("done"),
            "{stderr}"
        );
        // The server kept serving during the pass.
        assert!(
            !server
                .text(
                    &crate::helpers::sid(),
                    "+14155550101",
                    "+14155559001",
                    "tasks"
                )
                .await
                .is_empty()
        );

        let server = {
            let database = server.database.clone();
            server.stop();
            Server::start(&data, &database, &[("NUDGE_MASTER_KEY", &new)])
        };
        let list = server
            .text(
                &crate::helpers::sid(),
                "+14155550101",
                "+14155559001",
                "tasks",
            )
            .await;
        assert!(
            list.contains("before rotation") && list.contains("during rotation"),
            "[{}] {list}",
            db.label
        );
        let store = nudge::store::connect(&db.url, Sealer::from_text(&new).unwrap())
            .await
            .unwrap();
        let history = store
            .recent_messages(ana.parse().unwrap(), 100)
            .await
            .unwrap();
        assert!(
            history.iter().any(|m| m.body == "add task before rotation"),
            "[{}]",
            db.label
        );
        let events = store.recent_audit_events(20).await.unwrap();
        assert!(events.iter().any(|e| e.event == "key_rotation"));
        assert!(events.iter().any(|e| e.event == "key_rotated"));
        server.stop();
    }
}
