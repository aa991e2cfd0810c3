//! The web client in real headless Chromium, driven through chromedriver's W3C WebDriver
//! protocol (plain HTTP): sign in, send a message, see the reply, see a reminder pop up
//! without reloading. CI installs `chromium` and `chromium-driver` (`.ci/run`); without
//! them the test says so and passes only outside CI.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::accounts::{access, register};
use crate::helpers::{Server, databases};
use crate::live::{remind, user_id};

/// W3C's key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Longest wait for something to show on the page.
const PAGE_WAIT: Duration = Duration::from_secs(25);

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Option<Driver> {
        if Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs chromium and chromium-driver"
            );
            eprintln!("chromedriver not installed: browser test skipped");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut driver = Driver {
            child,
            base,
            session: String::new(),
            http,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while driver
            .http
            .get(format!("{}/status", driver.base))
            .send()
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--window-size=400,800",
        ];
        let created = driver
            .post(
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": flags}
                }}}),
            )
            .await;
        driver.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Some(driver)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let answer: Value = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("JSON");
        assert!(answer["value"]["error"].is_null(), "{path}: {answer}");
        answer["value"].clone()
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        self.post(&format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .command("/element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.command(&format!("/element/{element}/value"), json!({"text": text}))
            .await;
    }

    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.command(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.command("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Runs `script` until it returns a non-empty string, within [`PAGE_WAIT`].
    async fn wait_for(&self, script: &str) -> String {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            if let Some(text) = self.script(script).await.as_str()
                && !text.is_empty()
            {
                return text.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing came of {script}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn in_chromium_a_person_signs_in_chats_and_sees_a_reminder_pop_up_without_reloading() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let server = Server::start(&db.data_dir(dir.path()), &db, &[]);
    let token = access(&register(&server, "ana@example.com").await);
    let user = user_id(&server, &token).await;

    driver
        .command("/url", json!({"url": server.url("/")}))
        .await;
    driver.type_into("#email", "ana@example.com").await;
    driver
        .type_into("#password", crate::accounts::PASSWORD)
        .await;
    driver.click("#sign-in-form button").await;
    driver
        .wait_for("return document.getElementById('app').hidden ? '' : 'shown'")
        .await;

    driver.type_into("#chat-input", "add buy milk").await;
    driver.click("#chat-form button").await;
    let reply = driver
        .wait_for("const r = document.querySelector('#messages li.outbound'); return r ? r.textContent : ''")
        .await;
    assert!(reply.contains("buy milk"), "{reply}");
    let tasks = driver
        .wait_for("return document.getElementById('tasks').textContent")
        .await;
    assert!(tasks.contains("buy milk"), "{tasks}");

    remind(&server.store().await, user, "stretch", Utc::now()).await;
    let banner = driver
        .wait_for("const b = document.getElementById('reminder-banner'); return b.hidden ? '' : b.textContent")
        .await;
    assert_eq!(banner, "Reminder: stretch");

    let _ = driver
        .http
        .delete(format!("{}/session/{}", driver.base, driver.session))
        .send()
        .await;
    server.stop();
}
