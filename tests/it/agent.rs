//! The LLM agent through the real binary: `nudge serve` with Gemini pointed at a fake
//! server on loopback, talked to by signed SMS webhooks, on every database.

use std::time::Duration;

use nudge::store::UserId;
use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

use crate::fakes::{self, Script, bodies, gemini_call, gemini_text};
use crate::helpers::{Server, add_user, databases, sid};

const ANA_PHONE: &str = "+14155550101";
const ANA_NUMBER: &str = "+14155559001";

fn gemini_env(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GEMINI_API_KEY", "fake-gemini-key".to_owned()),
        ("NUDGE_GEMINI_BASE_URL", base.to_owned()),
        ("NUDGE_REPLY_WINDOW_MS", "10000".to_owned()),
    ]
}

fn start(
    data: &std::path::Path,
    db: &crate::helpers::Database,
    env: &[(&'static str, String)],
) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(data, db, &env)
}

#[tokio::test]
async fn an_sms_conversation_with_gemini_stores_the_task_and_replies_sms_sized() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let ana: UserId = add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en")
            .parse()
            .unwrap();
        let gemini = fakes::gemini(Script::new(vec![
            gemini_call(
                "add_tasks",
                json!({ "titles": ["call the landlord"] }),
                "sig-1",
            ),
            gemini_text(
                "Saved: call the landlord. Next step: find the number in your lease - 2 minutes.",
            ),
        ]))
        .await;
        let server = start(&data, &db, &gemini_env(&gemini.uri()));

        let reply = server
            .text(
                &sid(),
                ANA_PHONE,
                ANA_NUMBER,
                "I need to call the landlord about the leak",
            )
            .await;
        assert_eq!(
            reply,
            "Saved: call the landlord. Next step: find the number in your lease - 2 minutes.",
            "[{}]",
            db.label
        );
        assert!(reply.chars().count() <= 320);

        let store = server.store().await;
        let tasks: Vec<String> = store
            .open_tasks(ana)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.title)
            .collect();
        assert_eq!(tasks, ["call the landlord"], "[{}]", db.label);
        let usage = store.llm_usage(ana).await.unwrap();
        assert_eq!(usage.len(), 2, "[{}]", db.label);
        assert!(usage.iter().all(|u| u.provider == "gemini"));

        let requests = gemini.received_requests().await.unwrap();
        assert_eq!(requests.len(), 2, "[{}]", db.label);
        assert_eq!(
            requests[0].headers.get("x-goog-api-key").unwrap(),
            "fake-gemini-key"
        );
        let second = &bodies(&gemini).await[1];
        assert_eq!(
            second["contents"][1]["parts"][0]["thoughtSignature"],
            "sig-1"
        );
        let system = second["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .unwrap();
        assert!(system.contains("at most 300 characters"), "{system}");
        assert!(system.contains("Europe/Paris"), "the user's zone: {system}");
        server.stop();
    }
}

/// Answers summary folds (requests without tools) with a fixed summary and chat turns with a
/// short text.
struct ChatAndFold;

const SUMMARY: &str = "Ana is packing for a move on Friday; boxes are in the garage.";

impl Respond for ChatAndFold {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if body.get("tools").is_none() {
            gemini_text(SUMMARY)
        } else {
            gemini_text("Got it. One small step next?")
        }
    }
}

#[tokio::test]
async fn older_turns_fold_into_a_summary_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let ana: UserId = add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en")
            .parse()
            .unwrap();
        let gemini = fakes::gemini(ChatAndFold).await;
        let server = start(&data, &db, &gemini_env(&gemini.uri()));

        // 7 turns = 14 messages: past the fold threshold (12), so all but the last 6 fold.
        for i in 1..=7 {
            let reply = server
                .text(&sid(), ANA_PHONE, ANA_NUMBER, &format!("moving note {i}"))
                .await;
            assert_eq!(reply, "Got it. One small step next?", "[{}]", db.label);
        }
        // The fold is stored with the user's next write (one group commit, not one of its own).
        let store = server.store().await;
        assert!(
            store.conversation_summary(ana).await.unwrap().is_none(),
            "[{}] the fold waits for the next write",
            db.label
        );
        let fold_usage = |rows: Vec<nudge::store::LlmUsage>| {
            rows.into_iter().filter(|u| u.message_id.is_none()).count()
        };
        assert_eq!(
            fold_usage(store.llm_usage(ana).await.unwrap()),
            0,
            "[{}] and so does the usage of the call that wrote it",
            db.label
        );
        server
            .text(&sid(), ANA_PHONE, ANA_NUMBER, "moving note 8")
            .await;
        let mut summary = None;
        for _ in 0..100 {
            summary = store.conversation_summary(ana).await.unwrap();
            if summary.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let summary = summary.unwrap_or_else(|| panic!("[{}] no fold happened", db.label));
        assert_eq!(summary.text, SUMMARY);
        assert_eq!(
            fold_usage(store.llm_usage(ana).await.unwrap()),
            1,
            "[{}] the fold's usage is stored with it",
            db.label
        );
        assert_eq!(summary.folded_messages, 8, "[{}]", db.label);
        let fold_request = bodies(&gemini)
            .await
            .into_iter()
            .find(|b| b.get("tools").is_none())
            .expect("a fold request");
        let fold_text = fakes::gemini_texts(&fold_request).join("\n");
        assert!(fold_text.contains("User: moving note 1"), "{fold_text}");
        assert!(fold_text.contains("Nudge: Got it."), "{fold_text}");
        assert!(
            !fold_text.contains("moving note 5"),
            "kept verbatim: {fold_text}"
        );

        let server = server.restart();
        server
            .text(&sid(), ANA_PHONE, ANA_NUMBER, "what was I doing?")
            .await;
        let last = bodies(&gemini)
            .await
            .into_iter()
            .rev()
            .find(|b| b.get("tools").is_some())
            .expect("a chat request");
        let system = last["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .unwrap();
        assert!(system.contains(SUMMARY), "[{}] {system}", db.label);
        let texts = fakes::gemini_texts(&last);
        assert!(
            !texts.iter().any(|t| t == "moving note 1"),
            "folded: {texts:?}"
        );
        assert!(
            texts.iter().any(|t| t == "moving note 7"),
            "recent: {texts:?}"
        );
        assert_eq!(texts.last().unwrap(), "what was I doing?");
        server.stop();
    }
}
