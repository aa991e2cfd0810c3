//! Every internal tool through the real binary, offline, by SMS, in English and French, on
//! every database; and what the database holds at rest for notes and reminders.

use chrono::{Duration, Utc};
use nudge::store::{Store, UserId};

use crate::helpers::{Database, Server, add_user, databases, sid};

const ANA_PHONE: &str = "+14155550111";
const ANA_NUMBER: &str = "+14155559011";
const BOB_PHONE: &str = "+33612345611";
const BOB_NUMBER: &str = "+33755559011";

/// Secrets the notes and reminders hold, which must never be readable at rest.
const EN_SECRET: &str = "locker code is 4521-zebra";
const FR_SECRET: &str = "le digicode est 7788-girafe";
const REMINDER_SECRET: &str = "pick up the prescription";

fn user_id(text: &str) -> UserId {
    text.parse().expect("admin user add prints a user id")
}

/// Sends `body` as the user and returns the reply, checking it is SMS-sized.
async fn say(server: &Server, db: &Database, from: &str, to: &str, body: &str) -> String {
    let reply = server.text(&sid(), from, to, body).await;
    assert!(
        reply.chars().count() <= 320,
        "[{}] {body:?} -> {} chars: {reply}",
        db.label,
        reply.chars().count()
    );
    reply
}

/// Asserts that `reply` contains every one of `parts`.
fn expect(db: &Database, body: &str, reply: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            reply.contains(part),
            "[{}] {body:?} -> {reply:?} lacks {part:?}",
            db.label
        );
    }
}

/// The English name of the weekday two days from now in Ana's time zone: "by <that day>" is
/// then due within the next seven days on any day the test runs ("by friday" on a Friday is a
/// week away).
fn weekday_in_two_days() -> &'static str {
    use chrono::{Datelike, Weekday};
    let day = (Utc::now() + Duration::days(2))
        .with_timezone(&chrono_tz::Europe::Paris)
        .weekday();
    match day {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

#[tokio::test]
async fn an_english_and_a_french_conversation_exercise_every_tool() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let ana = user_id(&add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en"));
        let bob = user_id(&add_user(&data, &db, "Bob", BOB_PHONE, BOB_NUMBER, "fr"));
        let server = Server::start(&data, &db, &[]);

        // A weekday two days ahead, so that "due this week" holds both tasks whatever the day.
        let pay_rent = format!("task pay rent by {}", weekday_in_two_days());
        let en = [
            (pay_rent.as_str(), vec!["Added: pay rent, due"]),
            ("task write report", vec!["Added: write report."]),
            ("urgent 2", vec!["Marked urgent: write report."]),
            (
                "move 2 to tomorrow at 5pm",
                vec!["Moved: write report, now due tomorrow 5pm."],
            ),
            (
                "tasks",
                vec!["1. pay rent", "2. write report (!) - tomorrow 5pm"],
            ),
            ("overdue", vec!["Nothing overdue"]),
            ("due this week", vec!["Due this week (2):"]),
            ("done 1", vec!["Done: pay rent."]),
            ("undo", vec!["Back on your list: pay rent."]),
            ("done pay rent", vec!["Done: pay rent."]),
            ("stats", vec!["This week: 1 done (1 today). 1 open."]),
            ("steps 1", vec!["Smaller steps for write report"]),
            ("goal: run a 10k", vec!["New goal 1: run a 10k."]),
            (
                "link 1 to goal 1",
                vec!["Linked write report to run a 10k (0/1 done)."],
            ),
            (
                "goal 1",
                vec!["run a 10k: 0/1 tasks done. Next step: write report."],
            ),
            ("goals", vec!["1. run a 10k (0/1)"]),
            ("buy milk, eggs", vec!["Added to groceries: milk, eggs."]),
            ("got milk", vec!["Checked off: milk."]),
            ("groceries", vec!["1. eggs"]),
            (
                "clear groceries",
                vec!["Cleared your grocery list (1 item)."],
            ),
            ("spent 12.50 on lunch", vec!["Logged 12.50 EUR for food."]),
            (
                "spent 7.50 eur on taxi",
                vec!["Logged 7.50 EUR for transport."],
            ),
            (
                "expenses",
                vec!["This week: 20.00 EUR (food 12.50, transport 7.50)."],
            ),
            ("note: locker code is 4521-zebra", vec!["Saved your note."]),
            ("search notes locker", vec!["Found 1:", EN_SECRET]),
            ("notes", vec!["Your latest notes:", EN_SECRET]),
            (
                "remind me to stretch in 20 minutes",
                vec!["Reminder set for ", "stretch."],
            ),
            (
                "remind me every monday at 8am to pick up the prescription",
                vec!["Reminder set every Monday at 8am: pick up the prescription."],
            ),
            ("reminders", vec!["Your reminders:", "stretch", "(repeats)"]),
            (
                "cancel reminder stretch",
                vec!["Cancelled the reminder: stretch."],
            ),
        ];
        for (body, parts) in en {
            let reply = say(&server, &db, ANA_PHONE, ANA_NUMBER, body).await;
            expect(&db, body, &reply, &parts);
        }

        let fr = [
            (
                "tâche payer le loyer pour vendredi",
                vec!["Ajouté : payer le loyer, pour"],
            ),
            ("tâche appeler maman", vec!["Ajouté : appeler maman."]),
            ("priorité 2 haute", vec!["Urgente : appeler maman."]),
            (
                "décale 2 à demain 18h",
                vec!["Déplacée : appeler maman, pour demain 18h."],
            ),
            (
                "mes tâches",
                vec!["Tes tâches (2) :", "2. appeler maman (!) - demain 18h"],
            ),
            ("tâches en retard", vec!["Rien en retard"]),
            ("fait 1", vec!["Fait : payer le loyer."]),
            ("oups", vec!["De retour sur ta liste : payer le loyer."]),
            ("fait 1", vec!["Fait : payer le loyer."]),
            (
                "mon bilan",
                vec!["Cette semaine : 1 faites (1 aujourd'hui). 1 en cours."],
            ),
            ("étapes 1", vec!["Petites étapes pour appeler maman"]),
            (
                "objectif : courir 10 km",
                vec!["Nouvel objectif 1 : courir 10 km."],
            ),
            (
                "lie 1 à l'objectif 1",
                vec!["appeler maman liée à courir 10 km (0/1 faites)."],
            ),
            ("objectif 1", vec!["courir 10 km : 0/1 tâches faites."]),
            ("mes objectifs", vec!["1. courir 10 km (0/1)"]),
            (
                "courses : lait, œufs",
                vec!["Ajouté aux courses : lait, œufs."],
            ),
            ("j'ai acheté le lait", vec!["Coché : lait."]),
            ("liste de courses", vec!["1. œufs"]),
            (
                "vide les courses",
                vec!["Liste de courses vidée (1 article)."],
            ),
            (
                "j'ai dépensé 12,50 € au resto",
                vec!["Noté : 12,50 € en repas."],
            ),
            (
                "mes dépenses",
                vec!["Cette semaine : 12,50 € (repas 12,50)."],
            ),
            (
                "note : le digicode est 7788-girafe",
                vec!["Note enregistrée."],
            ),
            ("cherche note digicode", vec!["Trouvé 1 :", FR_SECRET]),
            ("mes notes", vec!["Tes dernières notes :", FR_SECRET]),
            (
                "rappelle-moi dans 2 heures de boire de l'eau",
                vec!["Rappel prévu", "boire de l'eau."],
            ),
            (
                "tous les lundis rappelle-moi de sortir les poubelles",
                vec!["Rappel tous les lundis à 9h : sortir les poubelles."],
            ),
            (
                "mes rappels",
                vec!["Tes rappels :", "boire de l'eau", "(répété)"],
            ),
            (
                "annule le rappel 1",
                vec!["Rappel annulé : boire de l'eau."],
            ),
        ];
        for (body, parts) in fr {
            let reply = say(&server, &db, BOB_PHONE, BOB_NUMBER, body).await;
            expect(&db, body, &reply, &parts);
        }

        let store = server.store().await;
        check_rows(&store, &db, ana, bob).await;
        server.stop();
        assert_columns_sealed(&db).await;
    }
}

/// Tools called as the model calls them, then the SQLite file read byte by byte: no note,
/// reminder or expense note text is there. (The conversation test above checks the same
/// columns raw on both databases; the SMS bodies themselves live in `messages`.)
#[tokio::test]
async fn the_sqlite_file_holds_no_note_or_reminder_text_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let ana = user_id(&add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en"));
    {
        let store = nudge::store::connect(&db.url, crate::helpers::sealer())
            .await
            .unwrap();
        let user = store.user(ana).await.unwrap();
        let ctx = nudge::tools::ToolContext {
            store: &store,
            user: &user,
            now: Utc::now(),
            channel: nudge::store::Channel::Sms,
        };
        let registry = nudge::tools::internal::registry();
        for (tool, args) in [
            ("save_note", serde_json::json!({"text": EN_SECRET})),
            ("save_note", serde_json::json!({"text": FR_SECRET})),
            (
                "create_reminder",
                serde_json::json!({"text": REMINDER_SECRET, "when": "tomorrow at 9"}),
            ),
            (
                "log_expense",
                serde_json::json!({"amount": "3", "currency": "EUR", "note": "4521-zebra"}),
            ),
        ] {
            registry.call(tool, &ctx, args).await.unwrap();
        }
        let notes = store.notes(ana, 10).await.unwrap();
        assert_eq!(notes[1].body, EN_SECRET, "the notes open for their owner");
    }
    let path = db.url.trim_start_matches("sqlite:");
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(mut b) = std::fs::read(format!("{path}{suffix}")) {
            bytes.append(&mut b);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Europe/Paris"), "the file holds the rows");
    for secret in [
        EN_SECRET,
        FR_SECRET,
        REMINDER_SECRET,
        "4521-zebra",
        "7788-girafe",
        "girafe",
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} is readable in the SQLite file"
        );
    }
}

/// What the conversations left in the store, read through the store's own scoped methods.
async fn check_rows(store: &Store, db: &Database, ana: UserId, bob: UserId) {
    let open = store.open_tasks(ana).await.unwrap();
    let titles: Vec<&str> = open.iter().map(|t| t.title.as_str()).collect();
    assert_eq!(titles.first(), Some(&"write report"), "[{}]", db.label);
    assert_eq!(
        titles.len(),
        4,
        "the report and its three steps [{}]",
        db.label
    );
    let report_due = open[0].due.expect("a due date").at;
    assert!(report_due > Utc::now(), "[{}]", db.label);

    let reminders = store.scheduled_reminders(ana).await.unwrap();
    assert_eq!(reminders.len(), 1, "[{}]", db.label);
    assert_eq!(reminders[0].body, REMINDER_SECRET);
    assert_eq!(
        reminders[0].recurrence.as_deref(),
        Some("FREQ=WEEKLY;BYDAY=MO;BYHOUR=8;BYMINUTE=0")
    );
    assert_eq!(reminders[0].time_zone, "Europe/Paris");
    let bob_reminders = store.scheduled_reminders(bob).await.unwrap();
    assert_eq!(bob_reminders.len(), 1, "[{}]", db.label);
    assert!(bob_reminders[0].due_at <= Utc::now() + Duration::days(7));

    let notes = store.notes(bob, 10).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].body, FR_SECRET);
    let expenses = store.recent_expenses(ana, 10).await.unwrap();
    let minor: Vec<i64> = expenses.iter().map(|e| e.amount_minor).collect();
    assert_eq!(minor, [750, 1_250], "[{}]", db.label);
    let goals = store.goals(bob, None).await.unwrap();
    assert_eq!(goals[0].tasks_total, 1, "[{}]", db.label);
}

/// Reads the personal columns raw, as an intruder with database access would: every note,
/// reminder text and expense note is a sealed value holding none of the secrets.
async fn assert_columns_sealed(db: &Database) {
    const RAW: &str = "SELECT body FROM notes UNION ALL SELECT body FROM reminders \
         UNION ALL SELECT COALESCE(note, '') FROM expenses";
    let raw: Vec<String> = if db.url.starts_with("sqlite:") {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url)
            .await
            .unwrap();
        sqlx::query_scalar(RAW).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
            .await
            .unwrap();
        sqlx::query_scalar(RAW).fetch_all(&mut conn).await.unwrap()
    };
    assert!(raw.len() >= 6, "[{}] {raw:?}", db.label);
    for value in &raw {
        assert!(value.starts_with("v1."), "[{}] {value}", db.label);
        for secret in [
            EN_SECRET,
            FR_SECRET,
            REMINDER_SECRET,
            "zebra",
            "girafe",
            "lunch",
        ] {
            assert!(
                !value.contains(secret),
                "[{}] {secret:?} readable",
                db.label
            );
        }
    }
}
