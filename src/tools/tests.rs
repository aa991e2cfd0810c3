//! Every internal tool through the registry, as the model calls it: behaviour and argument
//! validation, on SQLite and PostgreSQL, and one user's calls never reaching another's rows.
//!
//! Run with: `eval "$(scripts/services.sh start)" && cargo test --lib tools::tests`

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use super::internal::registry;
use super::registry::{ToolContext, ToolError, ToolOutput, ToolRegistry};
use crate::store::testing::on_each_backend;
use crate::store::{Channel, Language, NewUser, Store, User};

/// A caller of the registry for one user at one clock.
struct Caller<'a> {
    registry: ToolRegistry,
    store: &'a Store,
    user: User,
    now: DateTime<Utc>,
}

impl Caller<'_> {
    async fn call(&self, name: &str, args: Value) -> Result<ToolOutput, ToolError> {
        let ctx = ToolContext {
            store: self.store,
            user: &self.user,
            now: self.now,
            channel: Channel::Sms,
        };
        self.registry.call(name, &ctx, args).await
    }

    async fn ok(&self, name: &str, args: Value) -> Value {
        match self.call(name, args.clone()).await {
            Ok(out) => out.data,
            Err(e) => panic!("{name}({args}) failed: {e}"),
        }
    }

    /// Asserts the call is refused as the caller's mistake (bad arguments or nothing found).
    async fn refused(&self, name: &str, args: Value) {
        match self.call(name, args.clone()).await {
            Err(e) if e.is_caller_error() => {}
            other => panic!("{name}({args}): expected a caller error, got {other:?}"),
        }
    }
}

async fn user(store: &Store, n: u8, language: Language) -> User {
    store
        .create_user(&NewUser {
            display_name: format!("User {n}"),
            phone: format!("+3360000{n:04}"),
            number: format!("+3375500{n:04}"),
            language,
            time_zone: "Europe/Paris".to_owned(),
        })
        .await
        .expect("user")
}

async fn caller(store: &Store, n: u8, now: DateTime<Utc>) -> Caller<'_> {
    Caller {
        registry: registry(),
        store,
        user: user(store, n, Language::En).await,
        now,
    }
}

/// Wednesday 11 March 2026, 10:00 in Paris.
fn wednesday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 11, 9, 0, 0)
        .single()
        .expect("a valid time")
}

fn titles(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("an array")
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn every_tool_is_declared_with_a_description_and_an_object_schema() {
    let registry = registry();
    let names: Vec<&str> = registry.names().collect();
    for name in [
        "add_tasks",
        "list_tasks",
        "complete_task",
        "reopen_task",
        "reschedule_task",
        "set_task_priority",
        "task_stats",
        "break_down_task",
        "add_goal",
        "list_goals",
        "link_task_to_goal",
        "goal_progress",
        "add_groceries",
        "list_groceries",
        "check_off_groceries",
        "clear_groceries",
        "log_expense",
        "expense_totals",
        "save_note",
        "list_notes",
        "search_notes",
        "delete_note",
        "create_reminder",
        "list_reminders",
        "cancel_reminder",
        "set_morning_digest",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for declaration in registry.declarations() {
        assert!(!declaration.description.is_empty(), "{}", declaration.name);
        assert_eq!(
            declaration.parameters["type"], "object",
            "{}",
            declaration.name
        );
        let text = declaration.parameters.to_string();
        assert!(
            !text.contains("$ref") && !text.contains("$schema"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn task_tools_add_list_complete_reopen_reschedule_and_prioritise() {
    on_each_backend(|store| async move {
        let ana = caller(&store, 1, wednesday()).await;
        let added = ana
            .ok(
                "add_tasks",
                json!({"titles": ["pay rent", "call mom"], "due": "friday", "priority": "high"}),
            )
            .await;
        assert_eq!(titles(&added["added"]), ["pay rent", "call mom"]);
        assert_eq!(added["added"][0]["due"], "2026-03-13");
        assert_eq!(added["added"][0]["priority"], "high");
        assert_eq!(added["added"][1]["number"], 2);
        ana.ok("add_tasks", json!({"titles": ["book dentist"]}))
            .await;

        let listed = ana.ok("list_tasks", json!({})).await;
        assert_eq!(
            titles(&listed["open"]),
            ["pay rent", "call mom", "book dentist"]
        );
        let urgent = ana
            .ok("list_tasks", json!({"filter": "high_priority"}))
            .await;
        assert_eq!(titles(&urgent["open"]), ["pay rent", "call mom"]);
        let this_week = ana
            .ok("list_tasks", json!({"filter": "due_this_week"}))
            .await;
        assert_eq!(this_week["open"].as_array().map(Vec::len), Some(2));
        let overdue = ana.ok("list_tasks", json!({"filter": "overdue"})).await;
        assert_eq!(overdue["open"], json!([]));

        let moved = ana
            .ok(
                "reschedule_task",
                json!({"number": 3, "due": "tomorrow at 9"}),
            )
            .await;
        assert_eq!(moved["due"], "2026-03-12T09:00");
        let low = ana
            .ok(
                "set_task_priority",
                json!({"title": "dentist", "priority": "low"}),
            )
            .await;
        assert_eq!(low["priority"], "low");
        let cleared = ana.ok("reschedule_task", json!({"number": 3})).await;
        assert_eq!(cleared["due"], Value::Null);

        let done = ana.ok("complete_task", json!({"title": "call mom"})).await;
        assert_eq!(titles(&done["completed"]), ["call mom"]);
        assert_eq!(done["open_count"], 2);
        let back = ana.ok("reopen_task", json!({})).await;
        assert_eq!(back["title"], "call mom");
        assert_eq!(back["done"], false);
        let listed = ana.ok("list_tasks", json!({"filter": "open"})).await;
        assert_eq!(listed["open_count"], 3);
    })
    .await;
}

#[tokio::test]
async fn task_tools_refuse_bad_arguments_and_change_nothing() {
    on_each_backend(|store| async move {
        let ana = caller(&store, 1, wednesday()).await;
        ana.ok("add_tasks", json!({"titles": ["pay rent"]})).await;
        for (name, args) in [
            ("add_tasks", json!({})),
            ("add_tasks", json!({"titles": []})),
            ("add_tasks", json!({"titles": ["  "]})),
            ("add_tasks", json!({"titles": ["x".repeat(201)]})),
            (
                "add_tasks",
                json!({"titles": (0..31).map(|i| i.to_string()).collect::<Vec<_>>()}),
            ),
            (
                "add_tasks",
                json!({"titles": ["a"], "due": "someday maybe"}),
            ),
            ("add_tasks", json!({"titles": ["a"], "due": "every monday"})),
            (
                "add_tasks",
                json!({"titles": ["a"], "priority": "critical"}),
            ),
            ("add_tasks", json!({"titles": ["a"], "user_id": "someone"})),
            ("list_tasks", json!({"filter": "someday"})),
            ("complete_task", json!({})),
            ("complete_task", json!({"number": 0})),
            ("complete_task", json!({"number": 9})),
            ("complete_task", json!({"title": "taxes"})),
            ("reopen_task", json!({})),
            (
                "reschedule_task",
                json!({"number": 1, "due": "yesterday-ish"}),
            ),
            (
                "reschedule_task",
                json!({"number": 1, "due": "2026-03-10T09:00"}),
            ),
            ("reschedule_task", json!({"number": 7, "due": "friday"})),
            ("set_task_priority", json!({"number": 1})),
            ("set_task_priority", json!({"number": 1, "priority": "top"})),
            ("break_down_task", json!({"number": 1, "steps": []})),
            ("break_down_task", json!({"title": "nothing like it"})),
            ("task_stats", json!({"week": 2})),
        ] {
            ana.refused(name, args).await;
        }
        let listed = ana.ok("list_tasks", json!({})).await;
        assert_eq!(titles(&listed["open"]), ["pay rent"]);
        assert_eq!(listed["open"][0]["due"], Value::Null);
        assert_eq!(listed["open"][0]["priority"], "normal");
    })
    .await;
}

#[tokio::test]
async fn a_task_whose_due_date_keeps_passing_is_offered_in_small_steps() {
    on_each_backend(|store| async move {
        let mut ana = caller(&store, 1, wednesday()).await;
        ana.ok(
            "add_tasks",
            json!({"titles": ["write report"], "due": "in 1 hour"}),
        )
        .await;
        for miss in 1..=3 {
            // The due date passes; the next listing counts the miss once.
            ana.now += Duration::hours(2);
            let listed = ana.ok("list_tasks", json!({"filter": "overdue"})).await;
            assert_eq!(listed["open"][0]["misses"], miss);
            let again = ana.ok("list_tasks", json!({})).await;
            assert_eq!(
                again["open"][0]["misses"], miss,
                "counted once per due date"
            );
            assert_eq!(again["open"][0]["offer_small_steps"], miss >= 3);
            ana.ok("reschedule_task", json!({"number": 1, "due": "in 1 hour"}))
                .await;
        }
        let broken = ana.ok("break_down_task", json!({"number": 1})).await;
        assert_eq!(broken["steps"].as_array().map(Vec::len), Some(3));
        assert!(
            broken["steps"][0]["title"]
                .as_str()
                .is_some_and(|t| t.contains("write report")),
            "{broken}"
        );
        assert_eq!(broken["task"]["misses"], 0);
        let written = ana
            .ok(
                "break_down_task",
                json!({"title": "write report", "steps": ["open the doc", "write the title"]}),
            )
            .await;
        assert_eq!(
            titles(&written["steps"]),
            ["open the doc", "write the title"]
        );
        assert_eq!(written["steps"][0]["number"], 5);
    })
    .await;
}

#[tokio::test]
async fn task_stats_count_what_got_done_this_week() {
    on_each_backend(|store| async move {
        let ana = caller(&store, 1, Utc::now()).await;
        ana.ok(
            "add_tasks",
            json!({"titles": ["a", "b", "c"], "due": "in 1 minute"}),
        )
        .await;
        ana.ok("complete_task", json!({"number": 1})).await;
        ana.ok("complete_task", json!({"number": 1})).await;
        let later = Caller {
            now: Utc::now() + Duration::minutes(2),
            ..ana
        };
        let stats = later.ok("task_stats", json!({})).await;
        assert_eq!(stats["done_today"], 2);
        assert_eq!(stats["done_this_week"], 2);
        assert_eq!(stats["open"], 1);
        assert_eq!(stats["overdue"], 1);
    })
    .await;
}

#[tokio::test]
async fn goal_tools_add_list_link_and_show_progress() {
    on_each_backend(|store| async move {
        let ana = caller(&store, 1, wednesday()).await;
        let goal = ana.ok("add_goal", json!({"title": "run a 10k"})).await;
        assert_eq!(goal["number"], 1);
        ana.ok("add_goal", json!({"title": "read more"})).await;
        ana.ok("add_tasks", json!({"titles": ["buy shoes", "run 2k"]}))
            .await;
        let linked = ana
            .ok(
                "link_task_to_goal",
                json!({"goal_number": 1, "task_number": 1}),
            )
            .await;
        assert_eq!(linked["goal"]["tasks_total"], 1);
        ana.ok(
            "link_task_to_goal",
            json!({"goal_title": "10k", "task_title": "run 2k"}),
        )
        .await;
        ana.ok("complete_task", json!({"number": 1})).await;
        let progress = ana.ok("goal_progress", json!({"goal_title": "10k"})).await;
        assert_eq!(progress["goal"]["tasks_done"], 1);
        assert_eq!(progress["goal"]["tasks_total"], 2);
        assert_eq!(progress["next"], "run 2k");
        let goals = ana.ok("list_goals", json!({})).await;
        assert_eq!(titles(&goals["goals"]), ["run a 10k", "read more"]);

        for (name, args) in [
            ("add_goal", json!({})),
            ("add_goal", json!({"title": " "})),
            ("add_goal", json!({"title": "g".repeat(201)})),
            ("link_task_to_goal", json!({"goal_number": 1})),
            (
                "link_task_to_goal",
                json!({"goal_number": 9, "task_number": 1}),
            ),
            (
                "link_task_to_goal",
                json!({"goal_number": 1, "task_number": 9}),
            ),
            ("goal_progress", json!({})),
            ("goal_progress", json!({"goal_title": "swim"})),
            ("list_goals", json!({"all": true})),
        ] {
            ana.refused(name, args).await;
        }
    })
    .await;
}

#[tokio::test]
async fn grocery_tools_add_list_check_off_and_clear() {
    on_each_backend(|store| async move {
        let ana = caller(&store, 1, wednesday()).await;
        let added = ana
            .ok(
                "add_groceries",
                json!({"items": ["milk", "eggs", "bread", "Milk"]}),
            )
            .await;
        assert_eq!(added["added"], json!(["milk", "eggs", "bread"]));
        assert_eq!(added["already_listed"], json!(["Milk"]));
        let checked = ana
            .ok(
                "check_off_groceries",
                json!({"items": ["egg"], "numbers": [3]}),
            )
            .await;
        assert_eq!(checked["checked"], json!(["bread", "eggs"]));
        assert_eq!(checked["remaining"][0]["name"], "milk");
        let listed = ana.ok("list_groceries", json!({})).await;
        assert_eq!(listed["items"], json!([{"number": 1, "name": "milk"}]));
        let cleared = ana.ok("clear_groceries", json!({})).await;
        assert_eq!(cleared["cleared"], 1);

        for (name, args) in [
            ("add_groceries", json!({"items": []})),
            ("add_groceries", json!({"items": ["x".repeat(101)]})),
            ("add_groceries", json!({"items": "milk"})),
            ("check_off_groceries", json!({})),
            ("check_off_groceries", json!({"numbers": [-1]})),
            ("clear_groceries", json!({"confirm": true})),
        ] {
            ana.refused(name, args).await;
        }
    })
    .await;
}

#[tokio::test]
async fn expense_tools_log_in_minor_units_and_total_by_category() {
    on_each_backend(|store| async move {
        let ana = caller(&store, 1, wednesday()).await;
        let logged = ana
            .ok(
                "log_expense",
                json!({"amount": "12.50", "currency": "eur", "category": "lunch", "note": "with Sam"}),
            )
            .await;
        assert_eq!(
            logged,
            json!({"amount": "12.50", "currency": "EUR", "category": "food", "note": "with Sam"})
        );
        // A plain number is read as its decimal text; the currency defaults to the last used.
        let logged = ana.ok("log_expense", json!({"amount": 7.5, "category": "taxi"})).await;
        assert_eq!(logged["amount"], "7.50");
        assert_eq!(logged["currency"], "EUR");
        ana.ok("log_expense", json!({"amount": "1500", "currency": "¥", "category": "food"}))
            .await;
        let totals = ana.ok("expense_totals", json!({"period": "week"})).await;
        assert_eq!(totals["currencies"][0]["currency"], "EUR");
        assert_eq!(totals["currencies"][0]["total"], "20.00");
        assert_eq!(totals["currencies"][0]["by_category"][0]["category"], "food");
        assert_eq!(totals["currencies"][0]["by_category"][0]["total"], "12.50");
        assert_eq!(totals["currencies"][1]["total"], "1500");
        let month = ana.ok("expense_totals", json!({})).await;
        assert_eq!(month["period"], "week");
        let next_week = Caller {
            now: wednesday() + Duration::days(7),
            ..ana
        };
        let empty = next_week.ok("expense_totals", json!({"period": "week"})).await;
        assert_eq!(empty["currencies"], json!([]));
        let month = next_week.ok("expense_totals", json!({"period": "month"})).await;
        assert_eq!(month["currencies"][0]["total"], "20.00");

        for args in [
            json!({}),
            json!({"amount": "twelve"}),
            json!({"amount": "12.3456", "currency": "EUR"}),
            json!({"amount": "-5"}),
            json!({"amount": "0"}),
            json!({"amount": "10", "currency": "EUX"}),
            json!({"amount": "10", "currency": "bitcoin"}),
            json!({"amount": "1.5", "currency": "JPY"}),
            json!({"amount": "10", "category": ""}),
            json!({"amount": "10", "note": "n".repeat(201)}),
            json!({"amount": true}),
        ] {
            next_week.refused("log_expense", args).await;
        }
        next_week.refused("expense_totals", json!({"period": "year"})).await;
    })
    .await;
}

#[tokio::test]
async fn note_tools_save_list_search_and_delete() {
    on_each_backend(|store| async move {
        let ana = caller(&store, 1, wednesday()).await;
        ana.ok("save_note", json!({"text": "Wifi password is hunter2"}))
            .await;
        ana.ok("save_note", json!({"text": "Dr. Lee: 555-0100, Tuesdays"}))
            .await;
        ana.ok("save_note", json!({"text": "Le code de la porte est 4521"}))
            .await;
        let listed = ana.ok("list_notes", json!({"limit": 2})).await;
        assert_eq!(listed["notes"][0]["text"], "Le code de la porte est 4521");
        assert_eq!(listed["notes"].as_array().map(Vec::len), Some(2));
        let found = ana
            .ok("search_notes", json!({"query": "the WIFI pass"}))
            .await;
        assert_eq!(found["notes"], json!(["Wifi password is hunter2"]));
        let found = ana.ok("search_notes", json!({"query": "code porte"})).await;
        assert_eq!(found["notes"], json!(["Le code de la porte est 4521"]));
        let none = ana.ok("search_notes", json!({"query": "passport"})).await;
        assert_eq!(none["notes"], json!([]));
        let deleted = ana.ok("delete_note", json!({"words": "dr lee"})).await;
        assert_eq!(deleted["deleted"], "Dr. Lee: 555-0100, Tuesdays");
        ana.ok("delete_note", json!({"number": 1})).await;
        let listed = ana.ok("list_notes", json!({})).await;
        assert_eq!(listed["notes"][0]["text"], "Wifi password is hunter2");

        for (name, args) in [
            ("save_note", json!({})),
            ("save_note", json!({"text": "   "})),
            ("save_note", json!({"text": "n".repeat(1001)})),
            ("list_notes", json!({"limit": 0})),
            ("list_notes", json!({"limit": 51})),
            ("search_notes", json!({"query": "the"})),
            ("delete_note", json!({})),
            ("delete_note", json!({"number": 5})),
        ] {
            ana.refused(name, args).await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_urgent_reminder_and_the_morning_digest_are_set_through_tools_for_the_caller_only() {
    on_each_backend(|store| async move {
        let ana = caller(&store, 1, wednesday()).await;
        let bob = caller(&store, 2, wednesday()).await;
        let meds = ana
            .ok(
                "create_reminder",
                json!({"text": "night meds", "when": "today at 11pm", "urgent": true}),
            )
            .await;
        assert_eq!(meds["urgent"], true);
        let plain = ana
            .ok(
                "create_reminder",
                json!({"text": "stretch", "when": "in 20 minutes"}),
            )
            .await;
        assert_eq!(plain["urgent"], false);

        let on = ana
            .ok(
                "set_morning_digest",
                json!({"enabled": true, "time": "07:15"}),
            )
            .await;
        assert_eq!(on, json!({"enabled": true, "time": "07:15"}));
        let off = ana
            .ok("set_morning_digest", json!({"enabled": false}))
            .await;
        assert_eq!(off, json!({"enabled": false, "time": "07:15"}));
        for time in ["7:15", "24:00", "07:60", "soon"] {
            ana.refused("set_morning_digest", json!({"enabled": true, "time": time}))
                .await;
        }
        ana.refused("set_morning_digest", json!({"time": "07:00"}))
            .await;
        let untouched = store.profile(bob.user.id).await.expect("bob");
        assert_eq!(
            (untouched.digest_enabled, untouched.digest_minute),
            (false, 480)
        );
    })
    .await;
}

#[tokio::test]
async fn reminder_tools_create_from_natural_time_list_and_cancel() {
    on_each_backend(|store| async move {
        let ana = caller(&store, 1, wednesday()).await;
        let stretch = ana
            .ok(
                "create_reminder",
                json!({"text": "stretch", "when": "in 20 minutes"}),
            )
            .await;
        assert_eq!(stretch["next"], "2026-03-11T10:20");
        let trash = ana
            .ok(
                "create_reminder",
                json!({"text": "sortir les poubelles", "when": "tous les lundis à 19h"}),
            )
            .await;
        assert_eq!(trash["next"], "2026-03-16T19:00");
        assert_eq!(
            trash["repeats"],
            "FREQ=WEEKLY;BYDAY=MO;BYHOUR=19;BYMINUTE=0"
        );
        let meds = ana
            .ok("create_reminder", json!({"text": "meds", "when": "friday"}))
            .await;
        assert_eq!(meds["next"], "2026-03-13T09:00");
        let listed = ana.ok("list_reminders", json!({})).await;
        let texts: Vec<&str> = listed["reminders"]
            .as_array()
            .expect("reminders")
            .iter()
            .filter_map(|r| r["text"].as_str())
            .collect();
        assert_eq!(texts, ["stretch", "meds", "sortir les poubelles"]);
        let cancelled = ana.ok("cancel_reminder", json!({"text": "meds"})).await;
        assert_eq!(cancelled["text"], "meds");
        ana.ok("cancel_reminder", json!({"number": 1})).await;
        let listed = ana.ok("list_reminders", json!({})).await;
        assert_eq!(listed["reminders"].as_array().map(Vec::len), Some(1));

        for (name, args) in [
            ("create_reminder", json!({"text": "x"})),
            (
                "create_reminder",
                json!({"text": " ", "when": "in 5 minutes"}),
            ),
            (
                "create_reminder",
                json!({"text": "x".repeat(301), "when": "in 5 minutes"}),
            ),
            ("create_reminder", json!({"text": "x", "when": "whenever"})),
            (
                "create_reminder",
                json!({"text": "x", "when": "today at 8am"}),
            ),
            (
                "create_reminder",
                json!({"text": "x", "when": "2026-03-10T09:00"}),
            ),
            (
                "create_reminder",
                json!({"text": "x", "when": "30 février"}),
            ),
            ("cancel_reminder", json!({})),
            ("cancel_reminder", json!({"number": 4})),
            ("cancel_reminder", json!({"text": "dentist"})),
        ] {
            ana.refused(name, args).await;
        }
    })
    .await;
}

#[tokio::test]
async fn one_users_tool_calls_never_read_or_change_another_users_rows() {
    on_each_backend(|store| async move {
        let alice = caller(&store, 1, wednesday()).await;
        let bob = caller(&store, 2, wednesday()).await;
        alice
            .ok(
                "add_tasks",
                json!({"titles": ["alice task"], "due": "friday"}),
            )
            .await;
        alice.ok("add_goal", json!({"title": "alice goal"})).await;
        alice
            .ok(
                "link_task_to_goal",
                json!({"goal_number": 1, "task_number": 1}),
            )
            .await;
        alice
            .ok("add_groceries", json!({"items": ["alice milk"]}))
            .await;
        alice
            .ok("log_expense", json!({"amount": "9.99", "currency": "EUR"}))
            .await;
        alice.ok("save_note", json!({"text": "alice secret"})).await;
        alice
            .ok(
                "create_reminder",
                json!({"text": "alice reminder", "when": "in 1 hour"}),
            )
            .await;

        // Every read through Bob is empty.
        let empty_lists = [
            ("list_tasks", json!({}), "open"),
            ("list_goals", json!({}), "goals"),
            ("list_groceries", json!({}), "items"),
            ("list_notes", json!({}), "notes"),
            ("search_notes", json!({"query": "alice"}), "notes"),
            ("list_reminders", json!({}), "reminders"),
            ("expense_totals", json!({}), "currencies"),
        ];
        for (name, args, key) in empty_lists.clone() {
            assert_eq!(bob.ok(name, args).await[key], json!([]), "{name}");
        }
        // Every write through Bob that points at Alice's rows finds nothing.
        for (name, args) in [
            ("complete_task", json!({"number": 1})),
            ("complete_task", json!({"title": "alice task"})),
            ("reopen_task", json!({})),
            ("reschedule_task", json!({"number": 1, "due": "monday"})),
            (
                "set_task_priority",
                json!({"title": "alice", "priority": "high"}),
            ),
            ("break_down_task", json!({"number": 1})),
            (
                "link_task_to_goal",
                json!({"goal_number": 1, "task_number": 1}),
            ),
            ("goal_progress", json!({"goal_number": 1})),
            ("check_off_groceries", json!({"numbers": [1]})),
            ("delete_note", json!({"number": 1})),
            ("cancel_reminder", json!({"number": 1})),
            ("cancel_reminder", json!({"text": "alice"})),
        ] {
            match bob.call(name, args.clone()).await {
                Ok(out) if name == "check_off_groceries" => {
                    assert_eq!(out.data["checked"], json!([]), "{name}");
                }
                Err(e) if e.is_caller_error() => {}
                other => panic!("{name}({args}) as Bob: {other:?}"),
            }
        }
        assert_eq!(bob.ok("clear_groceries", json!({})).await["cleared"], 0);
        for (name, args, key) in empty_lists {
            assert_eq!(bob.ok(name, args).await[key], json!([]), "{name}");
        }

        // Alice's rows are exactly as she left them.
        let tasks = alice.ok("list_tasks", json!({})).await;
        assert_eq!(titles(&tasks["open"]), ["alice task"]);
        assert_eq!(tasks["open"][0]["priority"], "normal");
        assert_eq!(tasks["open"][0]["due"], "2026-03-13");
        let goals = alice.ok("list_goals", json!({})).await;
        assert_eq!(goals["goals"][0]["tasks_total"], 1);
        assert_eq!(
            alice.ok("list_groceries", json!({})).await["items"][0]["name"],
            "alice milk"
        );
        assert_eq!(
            alice.ok("list_notes", json!({})).await["notes"][0]["text"],
            "alice secret"
        );
        let reminders = alice.ok("list_reminders", json!({})).await;
        assert_eq!(reminders["reminders"][0]["text"], "alice reminder");
        let totals = alice.ok("expense_totals", json!({})).await;
        assert_eq!(totals["currencies"][0]["total"], "9.99");
    })
    .await;
}

#[tokio::test]
async fn summaries_say_what_was_done_in_words_a_reply_can_reuse() {
    let store = crate::store::connect("sqlite::memory:", crate::store::Sealer::generate())
        .await
        .expect("store");
    let ana = caller(&store, 1, wednesday()).await;
    let summary = |out: Result<ToolOutput, ToolError>| out.expect("call").summary;
    assert_eq!(
        summary(
            ana.call("add_tasks", json!({"titles": ["pay rent", "call mom"]}))
                .await
        ),
        "added 2 task(s): pay rent, call mom"
    );
    assert_eq!(
        summary(ana.call("list_tasks", json!({})).await),
        "2 open task(s)"
    );
    assert_eq!(
        summary(ana.call("list_tasks", json!({"filter": "overdue"})).await),
        "0 overdue task(s)"
    );
    assert_eq!(
        summary(ana.call("complete_task", json!({"number": 1})).await),
        "completed 1 task(s)"
    );
    assert_eq!(
        summary(
            ana.call("reschedule_task", json!({"number": 1, "due": "friday"}))
                .await
        ),
        "rescheduled: call mom"
    );
    // Sealed texts stay out of summaries, which may reach logs and audit views.
    let note = summary(ana.call("save_note", json!({"text": "secret 42"})).await);
    assert!(!note.contains("secret"), "{note}");
    let reminder = summary(
        ana.call(
            "create_reminder",
            json!({"text": "secret 42", "when": "in 5 minutes"}),
        )
        .await,
    );
    assert!(!reminder.contains("secret"), "{reminder}");
}
