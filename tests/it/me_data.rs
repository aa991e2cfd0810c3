//! The person's goals, expenses, notes, reminders and memories through the REST API of the
//! real binary: create, read, list in pages, change, delete, and validation errors with the
//! stable shape, on each backend.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{Answer, access, call, register};
use crate::helpers::{Server, databases};

/// One resource: three valid bodies to create, a change and what it reads back as, and
/// bodies each refused with its error code.
struct Case {
    name: &'static str,
    create: [Value; 3],
    update: Value,
    /// (field, value expected after the update)
    updated: (&'static str, Value),
    bad_create: Vec<(Value, &'static str)>,
    bad_update: Vec<(Value, &'static str)>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "goals",
            create: [
                json!({"title": "run a 10k"}),
                json!({"title": "read 12 books"}),
                json!({"title": "  sleep by 11  "}),
            ],
            update: json!({"title": "run a half marathon", "status": "achieved"}),
            updated: ("status", json!("achieved")),
            bad_create: vec![
                (json!({"title": "   "}), "invalid_title"),
                (json!({"title": "x".repeat(201)}), "invalid_title"),
                (json!({}), "invalid_field"),
                (json!({"title": "a", "owner": "b"}), "invalid_field"),
            ],
            bad_update: vec![
                (json!({"status": "abandoned"}), "invalid_field"),
                (json!({"title": ""}), "invalid_title"),
            ],
        },
        Case {
            name: "expenses",
            create: [
                json!({"amount": "12.50", "currency": "EUR", "category": "lunch", "note": "with Sam"}),
                json!({"amount": "3", "currency": "€"}),
                json!({"amount": "1500", "currency": "JPY", "category": "transport"}),
            ],
            update: json!({"amount": "20", "note": ""}),
            updated: ("amount_minor", json!(2000)),
            bad_create: vec![
                (json!({"amount": "-4", "currency": "EUR"}), "invalid_amount"),
                (
                    json!({"amount": "1.2345", "currency": "EUR"}),
                    "invalid_amount",
                ),
                (json!({"amount": 12.5, "currency": "EUR"}), "invalid_field"),
                (
                    json!({"amount": "4", "currency": "XYZ"}),
                    "invalid_currency",
                ),
                (
                    json!({"amount": "4", "currency": "EUR", "category": "!!"}),
                    "invalid_category",
                ),
                (
                    json!({"amount": "4", "currency": "EUR", "note": "n".repeat(201)}),
                    "invalid_note",
                ),
            ],
            bad_update: vec![
                (json!({"currency": "XYZ"}), "invalid_currency"),
                (json!({"amount": "lots"}), "invalid_amount"),
            ],
        },
        Case {
            name: "notes",
            create: [
                json!({"body": "door code 4521"}),
                json!({"body": "wifi: tea-kettle-42"}),
                json!({"body": "Sam's birthday is in May"}),
            ],
            update: json!({"body": "door code 9999"}),
            updated: ("body", json!("door code 9999")),
            bad_create: vec![
                (json!({"body": " "}), "invalid_body"),
                (json!({"body": "b".repeat(1_001)}), "invalid_body"),
                (json!({"text": "wrong field"}), "invalid_field"),
            ],
            bad_update: vec![(json!({"body": ""}), "invalid_body")],
        },
        Case {
            name: "reminders",
            create: [
                json!({"text": "call mum", "when": "tomorrow at 9"}),
                json!({"text": "take meds", "when": "every day at 8am"}),
                json!({"text": "bins", "when": "2027-01-05T07:30"}),
            ],
            update: json!({"text": "call dad", "when": "in 2 hours"}),
            updated: ("text", json!("call dad")),
            bad_create: vec![
                (json!({"text": "x", "when": "whenever"}), "invalid_when"),
                (
                    json!({"text": "x", "when": "2001-01-01T09:00"}),
                    "invalid_when",
                ),
                (json!({"text": "", "when": "tomorrow"}), "invalid_text"),
                (
                    json!({"text": "t".repeat(301), "when": "tomorrow"}),
                    "invalid_text",
                ),
            ],
            bad_update: vec![
                (json!({"when": "yesterday-ish"}), "invalid_when"),
                (json!({"text": "   "}), "invalid_text"),
            ],
        },
        Case {
            name: "memories",
            create: [
                json!({"text": "allergic to penicillin", "kind": "health", "tags": ["Meds"], "importance": 0.9}),
                json!({"text": "likes green tea"}),
                json!({"text": "sister is called Lea", "kind": "person"}),
            ],
            update: json!({"text": "allergic to amoxicillin", "importance": 1.0}),
            updated: ("text", json!("allergic to amoxicillin")),
            bad_create: vec![
                (json!({"text": ""}), "invalid_text"),
                (json!({"text": "m".repeat(501)}), "invalid_text"),
                (json!({"text": "x", "kind": "secret"}), "invalid_kind"),
                (
                    json!({"text": "x", "importance": 1.5}),
                    "invalid_importance",
                ),
                (json!({"text": "x", "tags": vec!["t"; 11]}), "invalid_tags"),
                (json!({"text": "x", "tags": [""]}), "invalid_tags"),
            ],
            bad_update: vec![
                (json!({"importance": -0.1}), "invalid_importance"),
                (json!({"kind": "nope"}), "invalid_kind"),
            ],
        },
    ]
}

fn assert_refused(answer: &Answer, code: &str, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "{what}: {}",
        answer.body
    );
    assert_eq!(answer.code(), code, "{what}: {}", answer.body);
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {}",
        answer.body
    );
}

#[tokio::test]
async fn goals_expenses_notes_reminders_and_memories_are_created_listed_in_pages_changed_and_deleted()
 {
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
        let token = access(&register(&server, "me@example.com").await);
        let token = Some(token.as_str());
        let label = db.label;
        for case in cases() {
            let base = format!("/api/v1/me/{}", case.name);
            let what = |step: &str| format!("[{label}] {} {step}", case.name);

            // Create three; each answers 201 with the item.
            let mut ids = Vec::new();
            for body in &case.create {
                let made = call(&server, Method::POST, &base, token, Some(body.clone())).await;
                assert_eq!(
                    made.status,
                    StatusCode::CREATED,
                    "{}: {}",
                    what("create"),
                    made.body
                );
                ids.push(made.body["id"].as_i64().expect("an id"));
            }
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{}", what("ids"));

            // Pages of two, in id order, then the last one.
            let first = call(
                &server,
                Method::GET,
                &format!("{base}?limit=2"),
                token,
                None,
            )
            .await;
            assert_eq!(first.status, 200, "{}", what("page"));
            let page_ids: Vec<i64> = first.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap())
                .collect();
            assert_eq!(page_ids, ids[..2], "{}", what("first page"));
            let cursor = first.body["next_cursor"]
                .as_str()
                .expect("a next page")
                .to_owned();
            let last = call(
                &server,
                Method::GET,
                &format!("{base}?limit=2&cursor={cursor}"),
                token,
                None,
            )
            .await;
            assert_eq!(
                last.body["items"].as_array().unwrap().len(),
                1,
                "{}",
                what("last page")
            );
            assert_eq!(last.body["items"][0]["id"], ids[2]);
            assert!(last.body["next_cursor"].is_null(), "{}", what("end"));
            for bad in ["limit=0", "limit=201", "cursor=x", "colour=red"] {
                let refused =
                    call(&server, Method::GET, &format!("{base}?{bad}"), token, None).await;
                assert_eq!(refused.status, 400, "{}", what(bad));
                assert!(refused.body["error"]["code"].is_string());
            }

            // Change one; it reads back changed.
            let item = format!("{base}/{}", ids[0]);
            let changed = call(
                &server,
                Method::PATCH,
                &item,
                token,
                Some(case.update.clone()),
            )
            .await;
            assert_eq!(changed.status, 200, "{}: {}", what("update"), changed.body);
            let (field, value) = &case.updated;
            assert_eq!(&changed.body[*field], value, "{}", what("updated"));
            let read = call(&server, Method::GET, &item, token, None).await;
            assert_eq!(&read.body[*field], value, "{}", what("read back"));

            // Refused bodies change nothing.
            for (body, code) in &case.bad_create {
                let answer = call(&server, Method::POST, &base, token, Some(body.clone())).await;
                assert_refused(&answer, code, &what(&format!("create {body}")));
            }
            for (body, code) in &case.bad_update {
                let answer = call(&server, Method::PATCH, &item, token, Some(body.clone())).await;
                assert_refused(&answer, code, &what(&format!("update {body}")));
            }
            let after = call(&server, Method::GET, &item, token, None).await;
            assert_eq!(after.body, read.body, "{}", what("unchanged by refusals"));
            let all = call(&server, Method::GET, &base, token, None).await;
            assert_eq!(
                all.body["items"].as_array().unwrap().len(),
                3,
                "{}",
                what("count")
            );

            // Delete: 204, then 404 everywhere for that id.
            let gone = call(&server, Method::DELETE, &item, token, None).await;
            assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", what("delete"));
            for verb in [Method::GET, Method::DELETE] {
                let missing = call(&server, verb, &item, token, None).await;
                assert_eq!(missing.status, 404, "{}", what("deleted"));
                assert_eq!(missing.code(), "not_found", "{}", what("deleted code"));
            }
            let missing = call(
                &server,
                Method::PATCH,
                &item,
                token,
                Some(case.update.clone()),
            )
            .await;
            assert_eq!(missing.status, 404, "{}", what("patch deleted"));
            let all = call(&server, Method::GET, &base, token, None).await;
            assert_eq!(
                all.body["items"].as_array().unwrap().len(),
                2,
                "{}",
                what("after delete")
            );
        }
        server.stop();
    }
}

#[tokio::test]
async fn the_domains_read_their_values_like_the_assistant_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let server = Server::start(&data, &db, &[("NUDGE_RATE_API_PER_MIN", "0")]);
    let token = access(&register(&server, "values@example.com").await);
    let token = Some(token.as_str());

    // Money: categories normalised, minor units, the currency re-read with a new amount.
    let lunch = call(
        &server,
        Method::POST,
        "/api/v1/me/expenses",
        token,
        Some(
            json!({"amount": "12,50", "currency": "eur", "category": "Lunch", "note": "with Sam"}),
        ),
    )
    .await
    .body;
    assert_eq!(
        (
            &lunch["amount"],
            &lunch["amount_minor"],
            &lunch["currency"],
            &lunch["category"]
        ),
        (&json!("12.50"), &json!(1250), &json!("EUR"), &json!("food"))
    );
    // 12.50 means nothing in yen: a new currency alone re-reads the amount in it.
    let refused = call(
        &server,
        Method::PATCH,
        &format!("/api/v1/me/expenses/{}", lunch["id"]),
        token,
        Some(json!({"currency": "JPY"})),
    )
    .await;
    assert_refused(&refused, "invalid_amount", "12.50 in yen");
    let yen = call(
        &server,
        Method::PATCH,
        &format!("/api/v1/me/expenses/{}", lunch["id"]),
        token,
        Some(json!({"amount": "1500", "currency": "JPY", "note": ""})),
    )
    .await
    .body;
    assert_eq!(
        (
            &yen["amount"],
            &yen["amount_minor"],
            &yen["note"],
            &yen["category"]
        ),
        (&json!("1500"), &json!(1500), &Value::Null, &json!("food"))
    );
    // No currency named: the one last used.
    let next = call(
        &server,
        Method::POST,
        "/api/v1/me/expenses",
        token,
        Some(json!({"amount": "300"})),
    )
    .await
    .body;
    assert_eq!(next["currency"], "JPY");

    // Reminders: natural time in the person's zone; a repeat rule; a new time reschedules.
    let meds = call(
        &server,
        Method::POST,
        "/api/v1/me/reminders",
        token,
        Some(json!({"text": "take meds", "when": "every monday at 8"})),
    )
    .await
    .body;
    assert_eq!(meds["status"], "scheduled");
    assert_eq!(meds["time_zone"], "Europe/Paris");
    assert!(
        meds["recurrence"].as_str().unwrap().contains("MO"),
        "{meds}"
    );
    let once = call(
        &server,
        Method::PATCH,
        &format!("/api/v1/me/reminders/{}", meds["id"]),
        token,
        Some(json!({"when": "2027-03-01T09:00"})),
    )
    .await
    .body;
    assert!(once["recurrence"].is_null(), "{once}");
    assert_eq!(once["due_at"], "2027-03-01T08:00:00Z");

    // Goals: the achieved filter; memories: tags tidied, kind read from the text.
    let goal = call(
        &server,
        Method::POST,
        "/api/v1/me/goals",
        token,
        Some(json!({"title": "swim"})),
    )
    .await
    .body;
    assert_eq!(
        (goal["status"].as_str(), goal["tasks_total"].as_u64()),
        (Some("active"), Some(0))
    );
    call(
        &server,
        Method::PATCH,
        &format!("/api/v1/me/goals/{}", goal["id"]),
        token,
        Some(json!({"status": "achieved"})),
    )
    .await;
    let achieved = call(
        &server,
        Method::GET,
        "/api/v1/me/goals?achieved=true",
        token,
        None,
    )
    .await;
    assert_eq!(achieved.body["items"].as_array().unwrap().len(), 1);
    assert!(achieved.body["items"][0]["achieved_at"].is_string());
    let active = call(
        &server,
        Method::GET,
        "/api/v1/me/goals?achieved=false",
        token,
        None,
    )
    .await;
    assert!(active.body["items"].as_array().unwrap().is_empty());
    let memory = call(
        &server,
        Method::POST,
        "/api/v1/me/memories",
        token,
        Some(json!({"text": "  allergic to penicillin. ", "tags": ["Meds", "meds", " Health "]})),
    )
    .await
    .body;
    assert_eq!(memory["text"], "allergic to penicillin");
    assert_eq!(memory["tags"], json!(["meds", "health"]));

    // The OpenAPI document names every route and schema.
    let doc = call(&server, Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .body;
    for name in ["goals", "expenses", "notes", "reminders", "memories"] {
        let collection = &doc["paths"][format!("/api/v1/me/{name}")];
        assert!(
            collection["get"].is_object() && collection["post"].is_object(),
            "{name}"
        );
        let item = &doc["paths"][format!("/api/v1/me/{name}/{{id}}")];
        for verb in ["get", "patch", "delete"] {
            assert!(item[verb].is_object(), "{name} {verb}");
        }
    }
    let text = doc.to_string();
    for reference in text.split("#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{name} is referred to but not defined"
        );
    }
    server.stop();
}
