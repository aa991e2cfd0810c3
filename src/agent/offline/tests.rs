//! The rules engine's tests: parsing tables, rendering limits, and turns over a real store.

use super::*;
use crate::store::{Channel, Language};
use crate::tools::groceries;
use crate::tools::tasks::{ListFilter, Listing, Numbered};
use chrono::Utc;

fn tasks_(titles: &[&str]) -> Vec<String> {
    titles.iter().map(|t| (*t).to_owned()).collect()
}

fn add_tasks(titles: &[&str]) -> Intent {
    Intent::AddTasks(tasks_(titles))
}

fn add_groceries(items: &[&str]) -> Intent {
    Intent::AddGroceries(tasks_(items))
}

fn done_at(ps: &[usize]) -> Intent {
    Intent::CompleteTask(Some(TaskTarget::Positions(ps.to_vec())))
}

fn done_title(t: &str) -> Intent {
    Intent::CompleteTask(Some(TaskTarget::Title(t.to_owned())))
}

fn got(names: &[&str]) -> Intent {
    Intent::CheckOffGroceries(
        names
            .iter()
            .map(|n| ItemTarget::Name((*n).to_owned()))
            .collect(),
    )
}

fn check_table(cases: &[(&str, Intent)]) {
    let mut failures = Vec::new();
    for (text, want) in cases {
        let got = parse(text);
        if got != *want {
            failures.push(format!("{text:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn adding_tasks_is_understood_in_english_and_french() {
    check_table(&[
        ("add task call mom", add_tasks(&["call mom"])),
        ("Add a task: Call Mom!", add_tasks(&["Call Mom"])),
        ("add a task to call mom", add_tasks(&["call mom"])),
        ("todo: pay rent", add_tasks(&["pay rent"])),
        ("TODO pay rent.", add_tasks(&["pay rent"])),
        ("to-do: pay rent", add_tasks(&["pay rent"])),
        ("task buy stamps", add_tasks(&["buy stamps"])),
        ("new task: book dentist", add_tasks(&["book dentist"])),
        ("remind me to call the bank", add_tasks(&["call the bank"])),
        (
            "Remind me to water plants please",
            add_tasks(&["water plants"]),
        ),
        ("add call mom", add_tasks(&["call mom"])),
        ("add call mom to my list", add_tasks(&["call mom"])),
        ("add call mom to my to-do list", add_tasks(&["call mom"])),
        (
            "tasks: call mom, pay rent; book flights",
            add_tasks(&["call mom", "pay rent", "book flights"]),
        ),
        (
            "task email Sam, Jo and Ana",
            add_tasks(&["email Sam, Jo and Ana"]),
        ),
        ("add task", Intent::AddTasks(vec![])),
        ("ajoute tâche appeler maman", add_tasks(&["appeler maman"])),
        (
            "ajouter une tâche : payer le loyer",
            add_tasks(&["payer le loyer"]),
        ),
        (
            "Ajoute une tache appeler maman",
            add_tasks(&["appeler maman"]),
        ),
        ("tâche: appeler maman", add_tasks(&["appeler maman"])),
        ("TÂCHE : Appeler Maman", add_tasks(&["Appeler Maman"])),
        (
            "à faire: sortir les poubelles",
            add_tasks(&["sortir les poubelles"]),
        ),
        (
            "a faire sortir les poubelles",
            add_tasks(&["sortir les poubelles"]),
        ),
        (
            "nouvelle tâche réserver le resto",
            add_tasks(&["réserver le resto"]),
        ),
        (
            "rappelle-moi d'appeler maman",
            add_tasks(&["appeler maman"]),
        ),
        (
            "rappelle moi de payer le loyer stp",
            add_tasks(&["payer le loyer"]),
        ),
        ("hi, add task call mom", add_tasks(&["call mom"])),
        (
            "bonjour ! tâche appeler maman",
            add_tasks(&["appeler maman"]),
        ),
        ("please add task call mom", add_tasks(&["call mom"])),
    ]);
}

#[test]
fn listing_tasks_is_understood_in_english_and_french() {
    check_table(&[
        ("tasks", Intent::ListTasks),
        ("Tasks?", Intent::ListTasks),
        ("list", Intent::ListTasks),
        ("my tasks", Intent::ListTasks),
        ("show my tasks", Intent::ListTasks),
        ("list tasks", Intent::ListTasks),
        ("what's on my list?", Intent::ListTasks),
        ("What\u{2019}s on my list", Intent::ListTasks),
        ("whats on my list", Intent::ListTasks),
        ("todo", Intent::ListTasks),
        ("to-do list", Intent::ListTasks),
        ("what's next", Intent::ListTasks),
        ("mes tâches", Intent::ListTasks),
        ("MES TACHES", Intent::ListTasks),
        ("tâches", Intent::ListTasks),
        ("liste", Intent::ListTasks),
        ("ma liste", Intent::ListTasks),
        ("montre-moi mes tâches", Intent::ListTasks),
        ("qu'est-ce que j'ai à faire ?", Intent::ListTasks),
        ("tasks please", Intent::ListTasks),
    ]);
}

#[test]
fn completing_tasks_is_understood_by_number_and_by_title() {
    check_table(&[
        ("done 2", done_at(&[2])),
        ("Done #2!", done_at(&[2])),
        ("did 2", done_at(&[2])),
        ("complete 1", done_at(&[1])),
        ("done 1, 3 and 4", done_at(&[1, 3, 4])),
        ("done task 2", done_at(&[2])),
        ("finished call mom", done_title("call mom")),
        ("I finished Call Mom!", done_title("Call Mom")),
        ("done with the report", done_title("the report")),
        ("2 done", done_at(&[2])),
        ("mark 3 as done", done_at(&[3])),
        ("call mom is done", done_title("call mom")),
        ("fait 2", done_at(&[2])),
        ("terminé 1", done_at(&[1])),
        ("Fini appeler maman", done_title("appeler maman")),
        ("j'ai fini appeler maman", done_title("appeler maman")),
        ("fait 1 et 2", done_at(&[1, 2])),
        ("n°2 fait", done_at(&[2])),
        ("appeler maman c'est fait", done_title("appeler maman")),
        ("done", Intent::CompleteTask(None)),
        ("Done!", Intent::CompleteTask(None)),
        ("c'est fait", Intent::CompleteTask(None)),
        ("fait", Intent::CompleteTask(None)),
    ]);
}

#[test]
fn adding_groceries_splits_items_and_drops_articles() {
    check_table(&[
        (
            "add milk, eggs and bread to groceries",
            add_groceries(&["milk", "eggs", "bread"]),
        ),
        (
            "add some milk to my shopping list",
            add_groceries(&["milk"]),
        ),
        ("groceries: milk, eggs", add_groceries(&["milk", "eggs"])),
        ("buy milk and eggs", add_groceries(&["milk", "eggs"])),
        (
            "buy the milk & 2 avocados",
            add_groceries(&["milk", "2 avocados"]),
        ),
        ("grocery milk", add_groceries(&["milk"])),
        ("shopping list: oat milk", add_groceries(&["oat milk"])),
        ("need to buy batteries", add_groceries(&["batteries"])),
        (
            "courses: lait, œufs et pain",
            add_groceries(&["lait", "œufs", "pain"]),
        ),
        ("ajoute du lait aux courses", add_groceries(&["lait"])),
        (
            "ajoute de la farine et des œufs à la liste de courses",
            add_groceries(&["farine", "œufs"]),
        ),
        ("ajoute du beurre", add_groceries(&["beurre"])),
        ("acheter du pain", add_groceries(&["pain"])),
        ("achète de l'huile", add_groceries(&["huile"])),
        (
            "Acheter: le lait, les pommes",
            add_groceries(&["lait", "pommes"]),
        ),
        ("il faut acheter du café", add_groceries(&["café"])),
        (
            "add to groceries: rice, beans",
            add_groceries(&["rice", "beans"]),
        ),
        ("buy", Intent::AddGroceries(vec![])),
    ]);
}

#[test]
fn listing_checking_off_and_clearing_groceries_are_understood() {
    check_table(&[
        ("groceries", Intent::ListGroceries),
        ("grocery list", Intent::ListGroceries),
        ("shopping list", Intent::ListGroceries),
        ("show my grocery list", Intent::ListGroceries),
        ("courses", Intent::ListGroceries),
        ("liste de courses", Intent::ListGroceries),
        ("la liste des courses ?", Intent::ListGroceries),
        ("got milk", got(&["milk"])),
        ("Got the milk and eggs", got(&["milk", "eggs"])),
        ("bought milk", got(&["milk"])),
        ("picked up bread", got(&["bread"])),
        ("check off eggs", got(&["eggs"])),
        ("j'ai acheté le lait", got(&["lait"])),
        ("J\u{2019}ai achete le lait", got(&["lait"])),
        ("pris lait", got(&["lait"])),
        ("acheté le pain", got(&["pain"])),
        (
            "got 2",
            Intent::CheckOffGroceries(vec![ItemTarget::Position(2)]),
        ),
        (
            "pris 1 et 3",
            Intent::CheckOffGroceries(vec![ItemTarget::Position(1), ItemTarget::Position(3)]),
        ),
        ("clear groceries", Intent::ClearGroceries),
        ("clear the list", Intent::ClearGroceries),
        ("Clear my grocery list.", Intent::ClearGroceries),
        ("empty the shopping list", Intent::ClearGroceries),
        ("vide les courses", Intent::ClearGroceries),
        ("efface la liste de courses", Intent::ClearGroceries),
        ("vider la liste", Intent::ClearGroceries),
    ]);
}

#[test]
fn help_greetings_thanks_and_nonsense_are_recognised() {
    check_table(&[
        ("help", Intent::Help),
        ("HELP", Intent::Help),
        ("?", Intent::Help),
        ("??", Intent::Help),
        ("aide", Intent::Help),
        ("what can you do?", Intent::Help),
        ("que sais-tu faire ?", Intent::Help),
        ("Que sais tu faire", Intent::Help),
        ("hi", Intent::Greeting),
        ("Hello!", Intent::Greeting),
        ("hey there", Intent::Greeting),
        ("bonjour", Intent::Greeting),
        ("Salut !", Intent::Greeting),
        ("hi, how are you?", Intent::Greeting),
        ("thanks!", Intent::Thanks),
        ("merci", Intent::Thanks),
        ("ok", Intent::Thanks),
        ("", Intent::Unknown),
        ("   ", Intent::Unknown),
        ("...", Intent::Unknown),
        ("the weather is nice", Intent::Unknown),
        ("blorp", Intent::Unknown),
    ]);
}

// --- rendering ---

/// The outcome of "tasks" for these open tasks, at a fixed clock in Paris.
fn open_list(open: Vec<Task>) -> Outcome {
    let tasks: Vec<Numbered> = open
        .into_iter()
        .enumerate()
        .map(|(i, task)| Numbered {
            position: i + 1,
            task,
        })
        .collect();
    Outcome::TaskListing(
        Listing {
            filter: ListFilter::Open,
            open_count: tasks.len(),
            tasks,
            needs_breakdown: Vec::new(),
        },
        fixed_clock(),
    )
}

fn fixed_clock() -> Clock {
    Clock {
        now: chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 11, 9, 0, 0)
            .single()
            .expect("a valid time"),
        tz: chrono_tz::Europe::Paris,
    }
}

fn task(id: i64, title: &str) -> Task {
    Task {
        id,
        title: title.to_owned(),
        done: false,
        created_at: Utc::now(),
        completed_at: None,
        due: None,
        priority: crate::store::Priority::Normal,
        misses: 0,
    }
}

fn item(id: i64, name: &str) -> GroceryItem {
    GroceryItem {
        id,
        name: name.to_owned(),
        checked: false,
        created_at: Utc::now(),
    }
}

fn many_tasks(n: usize, len: usize) -> Vec<Task> {
    (0..n)
        .map(|i| task(i as i64, &format!("{i} {}", "é".repeat(len))))
        .collect()
}

fn many_items(n: usize, len: usize) -> Vec<GroceryItem> {
    (0..n)
        .map(|i| item(i as i64, &format!("{i} {}", "x".repeat(len))))
        .collect()
}

/// Every outcome shape, small and worst-case long.
fn outcomes() -> Vec<Outcome> {
    let long = many_tasks(40, 200);
    let long_items = many_items(30, 100);
    vec![
        Outcome::TasksAdded(Added {
            added: vec![task(1, "call mom")],
            open: vec![task(0, "pay rent"), task(1, "call mom")],
        }),
        Outcome::TasksAdded(Added {
            added: vec![task(1, "call mom")],
            open: vec![task(1, "call mom")],
        }),
        Outcome::TasksAdded(Added {
            added: long.clone(),
            open: long.clone(),
        }),
        open_list(vec![]),
        open_list(long.clone()),
        Outcome::AskWhichTask(long.clone()),
        Outcome::AskWhichTask(vec![]),
        Outcome::TasksCompleted(Completion::Done {
            completed: long.clone(),
            missing: (1..40).collect(),
            remaining: long.clone(),
        }),
        Outcome::TasksCompleted(Completion::Done {
            completed: vec![task(1, "call mom")],
            missing: vec![],
            remaining: vec![],
        }),
        Outcome::TasksCompleted(Completion::NoSuchPosition {
            positions: vec![9],
            open: long.clone(),
        }),
        Outcome::TasksCompleted(Completion::NoMatch { open: long.clone() }),
        Outcome::TasksCompleted(Completion::NoMatch { open: vec![] }),
        Outcome::TasksCompleted(Completion::Ambiguous {
            candidates: long
                .iter()
                .enumerate()
                .map(|(i, t)| Numbered {
                    position: i + 1,
                    task: t.clone(),
                })
                .collect(),
        }),
        Outcome::GroceriesAdded(AddedItems {
            added: long_items.clone(),
            already_listed: vec!["y".repeat(100); 30],
            total: 60,
        }),
        Outcome::GroceryList(vec![]),
        Outcome::GroceryList(long_items.clone()),
        Outcome::GroceriesChecked(CheckOff {
            checked: long_items.clone(),
            not_found: vec![ItemTarget::Name("z".repeat(100)), ItemTarget::Position(99)],
            ambiguous: vec![groceries::AmbiguousName {
                name: "milk".repeat(25),
                candidates: long_items.iter().cloned().enumerate().collect(),
            }],
            remaining: long_items.clone(),
        }),
        Outcome::GroceriesChecked(CheckOff {
            checked: vec![],
            not_found: vec![ItemTarget::Name("milk".into())],
            ambiguous: vec![],
            remaining: long_items.clone(),
        }),
        Outcome::GroceriesCleared(0),
        Outcome::GroceriesCleared(12),
        Outcome::Greeting {
            name: "Bartholomew-Maximilian".into(),
            open: long.clone(),
        },
        Outcome::Greeting {
            name: String::new(),
            open: vec![],
        },
        Outcome::Help,
        Outcome::Thanks,
        Outcome::Fallback,
        Outcome::Refused(Refusal::NoTaskTitle),
        Outcome::Refused(Refusal::TaskTooLong),
        Outcome::Refused(Refusal::TooManyTasks),
        Outcome::Refused(Refusal::NoGroceryItem),
        Outcome::Refused(Refusal::ItemTooLong),
        Outcome::Refused(Refusal::TooManyItems),
    ]
    .into_iter()
    .chain(planning_outcomes())
    .collect()
}

/// The outcomes of task planning, goals, expenses, notes and reminders, small and worst-case
/// long (titles at their limits, many items, every refusal).
fn planning_outcomes() -> Vec<Outcome> {
    use crate::store::{
        Due, Expense, ExpenseTotal, Goal, GoalStatus, Note, Priority, Reminder, ReminderStatus,
    };
    use crate::tools::expenses::{CurrencyTotal, Period, Totals};
    use crate::tools::goals::{LinkMiss, Linked, Progress};
    use crate::tools::reminders::Scheduled;
    use crate::tools::tasks::{BrokenDown, Pick, Reopen, TaskStats};
    use crate::tools::when::{Recurrence, Repeat};

    let clock = fixed_clock();
    let long_title = "é".repeat(200);
    let due_task = |id: i64| Task {
        due: Some(Due {
            at: clock.now + chrono::Duration::days(id % 9),
            all_day: id % 2 == 0,
        }),
        priority: Priority::High,
        misses: 4,
        ..task(id, &format!("{id} {long_title}"))
    };
    let numbered: Vec<Numbered> = (1..=40)
        .map(|i| Numbered {
            position: i as usize,
            task: due_task(i),
        })
        .collect();
    let goal = |id: i64| Goal {
        id,
        title: format!("{id} {}", "g".repeat(200)),
        status: GoalStatus::Active,
        created_at: clock.now,
        achieved_at: None,
        tasks_done: 999,
        tasks_total: 1000,
    };
    let note = |id: i64| Note {
        id,
        body: format!("{id} {}", "n".repeat(1000)),
        created_at: clock.now,
    };
    let weekly = Recurrence {
        repeat: Repeat::Weekly(vec![
            chrono::Weekday::Mon,
            chrono::Weekday::Tue,
            chrono::Weekday::Wed,
            chrono::Weekday::Thu,
            chrono::Weekday::Sat,
            chrono::Weekday::Sun,
        ]),
        hour: 23,
        minute: 59,
    };
    let reminder = |id: i64, rule: Option<Recurrence>| Scheduled {
        reminder: Reminder {
            id,
            body: format!("{id} {}", "r".repeat(300)),
            due_at: clock.now + chrono::Duration::days(40 + id),
            recurrence: rule.as_ref().map(Recurrence::to_rrule),
            time_zone: "Europe/Paris".into(),
            status: ReminderStatus::Scheduled,
            last_fired_at: None,
            created_at: clock.now,
            urgent: false,
        },
        rule,
    };
    let expense_total = |currency: &str, category: String| ExpenseTotal {
        currency: currency.into(),
        category,
        amount_minor: 999_999_999_999,
        count: 9999,
    };
    let currency = |code: &str| CurrencyTotal {
        currency: code.into(),
        amount_minor: 999_999_999_999,
        categories: (0..6)
            .map(|i| expense_total(code, format!("{i}{}", "c".repeat(39))))
            .collect(),
    };
    let long_tasks = many_tasks(40, 200);
    let mut outcomes = vec![
        Outcome::TasksAddedDue(
            Added {
                added: vec![due_task(1)],
                open: long_tasks.clone(),
            },
            clock,
        ),
        Outcome::TasksAddedDue(
            Added {
                added: long_tasks.clone(),
                open: long_tasks.clone(),
            },
            clock,
        ),
        Outcome::TaskStats(TaskStats {
            done_today: 9999,
            done_this_week: 99_999,
            done_last_week: 99_999,
            open: 99_999,
            overdue: 99_999,
            due_today: 99_999,
        }),
        Outcome::TaskStats(TaskStats {
            done_today: 0,
            done_this_week: 0,
            done_last_week: 0,
            open: 0,
            overdue: 0,
            due_today: 0,
        }),
        Outcome::Rescheduled(Pick::One(1, due_task(1)), clock),
        Outcome::Rescheduled(Pick::One(1, task(1, &long_title)), clock),
        Outcome::Rescheduled(Pick::NoMatch(long_tasks.clone()), clock),
        Outcome::Prioritized(Pick::One(1, due_task(2))),
        Outcome::Prioritized(Pick::Ambiguous(
            long_tasks.iter().cloned().enumerate().collect(),
        )),
        Outcome::BrokenDown(Pick::One(
            1,
            BrokenDown {
                task: due_task(1),
                steps: many_tasks(5, 200),
            },
        )),
        Outcome::BrokenDown(Pick::NoSuchPosition(Vec::new())),
        Outcome::Reopened(Reopen::Reopened(due_task(3))),
        Outcome::Reopened(Reopen::NothingRecent),
        Outcome::Reopened(Reopen::NoMatch(long_tasks.clone())),
        Outcome::Reopened(Reopen::Ambiguous(long_tasks.clone())),
        Outcome::GoalAdded(goal(1), 999),
        Outcome::GoalList(Vec::new()),
        Outcome::GoalList((1..=30).map(goal).collect()),
        Outcome::Linked(Ok(Linked {
            goal: goal(1),
            task: due_task(1),
        })),
        Outcome::Linked(Err(LinkMiss::Goal(Pick::NoMatch(Vec::new())))),
        Outcome::Linked(Err(LinkMiss::Task(Pick::Ambiguous(
            long_tasks.iter().cloned().enumerate().collect(),
        )))),
        Outcome::Progress(Pick::One(
            9,
            Progress {
                goal: goal(1),
                tasks: long_tasks.clone(),
                next: Some(due_task(1)),
            },
        )),
        Outcome::Progress(Pick::One(
            9,
            Progress {
                goal: Goal {
                    tasks_done: 0,
                    tasks_total: 0,
                    ..goal(2)
                },
                tasks: Vec::new(),
                next: None,
            },
        )),
        Outcome::Progress(Pick::NoMatch(Vec::new())),
        Outcome::ExpenseLogged(Expense {
            id: 1,
            amount_minor: 999_999_999_999,
            currency: "KWD".into(),
            category: "c".repeat(40),
            note: Some("n".repeat(200)),
            spent_at: clock.now,
            created_at: clock.now,
        }),
        Outcome::ExpenseTotals(Totals {
            period: Period::Month,
            from: clock.now,
            to: clock.now,
            currencies: vec![currency("EUR"), currency("USD"), currency("JPY")],
        }),
        Outcome::ExpenseTotals(Totals {
            period: Period::Today,
            from: clock.now,
            to: clock.now,
            currencies: Vec::new(),
        }),
        Outcome::NoteSaved(note(1)),
        Outcome::NoteList(Vec::new()),
        Outcome::NoteList((1..=5).map(note).collect()),
        Outcome::NotesFound(Vec::new()),
        Outcome::NotesFound((1..=5).map(note).collect()),
        Outcome::NoteDeleted(Pick::One(1, note(1))),
        Outcome::NoteDeleted(Pick::NoSuchPosition(Vec::new())),
        Outcome::ReminderSet(reminder(1, None), clock),
        Outcome::ReminderSet(reminder(1, Some(weekly.clone())), clock),
        Outcome::ReminderList(Vec::new(), clock),
        Outcome::ReminderList(
            (1..=9).map(|i| reminder(i, Some(weekly.clone()))).collect(),
            clock,
        ),
        Outcome::ReminderCancelled(Pick::One(1, reminder(1, None).reminder), clock),
        Outcome::ReminderCancelled(Pick::NoMatch(Vec::new()), clock),
        Outcome::MorningDigest(Some(23 * 60 + 59)),
        Outcome::MorningDigest(None),
    ];
    for filter in [
        ListFilter::Open,
        ListFilter::Overdue,
        ListFilter::DueToday,
        ListFilter::DueThisWeek,
        ListFilter::HighPriority,
    ] {
        for tasks in [numbered.clone(), Vec::new()] {
            outcomes.push(Outcome::TaskListing(
                Listing {
                    filter,
                    open_count: 40,
                    needs_breakdown: numbered.clone(),
                    tasks,
                },
                clock,
            ));
        }
    }
    for refusal in [
        Refusal::PastTime,
        Refusal::BadTime,
        Refusal::RepeatingDue,
        Refusal::NoText,
        Refusal::TextTooLong,
        Refusal::BadAmount,
        Refusal::UnknownCurrency,
    ] {
        outcomes.push(Outcome::Refused(refusal));
    }
    outcomes
}

#[test]
fn long_lists_keep_their_next_step_inside_one_sms() {
    for outcome in planning_outcomes() {
        if !matches!(
            outcome,
            Outcome::TaskListing(..) | Outcome::ReminderList(..) | Outcome::GoalList(..)
        ) {
            continue;
        }
        for lang in [Language::En, Language::Fr] {
            let text = render(&outcome, lang, Channel::Sms);
            assert!(
                text.ends_with("steps 1")
                    || text.ends_with("étapes 1")
                    || text.ends_with("reminder 1")
                    || text.ends_with("rappel 1")
                    || text.ends_with("for details")
                    || text.ends_with("le détail")
                    || text.contains("Reply 'tasks'")
                    || text.contains("« tâches »")
                    || text.starts_with("No ")
                    || text.starts_with("Aucun")
                    || text.starts_with("Pas encore"),
                "{text}"
            );
        }
    }
}

fn is_gsm7(c: char) -> bool {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    BASIC.contains(c)
}

#[test]
fn every_sms_reply_fits_in_320_characters_in_both_languages() {
    for outcome in outcomes() {
        for lang in [Language::En, Language::Fr] {
            let text = render(&outcome, lang, Channel::Sms);
            let n = text.chars().count();
            assert!(
                n <= SMS_MAX_CHARS,
                "{n} chars for {outcome:?} in {lang:?}:\n{text}"
            );
            assert!(!text.trim().is_empty());
        }
    }
}

#[test]
fn english_replies_use_only_gsm7_characters() {
    for outcome in outcomes() {
        let text = render(&outcome, Language::En, Channel::Sms);
        let odd: Vec<char> = text.chars().filter(|c| !is_gsm7(*c) && *c != 'é').collect();
        assert!(odd.is_empty(), "{odd:?} in {text:?}");
    }
}

#[test]
fn sms_lists_show_five_items_then_how_many_more() {
    let open: Vec<Task> = (1..=8).map(|i| task(i, &format!("task {i}"))).collect();
    let en = render(&open_list(open.clone()), Language::En, Channel::Sms);
    assert!(en.contains("1. task 1\n2. task 2"), "{en}");
    assert!(en.contains("5. task 5\n+3 more"), "{en}");
    assert!(!en.contains("task 6"), "{en}");
    let fr = render(&open_list(open), Language::Fr, Channel::Sms);
    assert!(fr.contains("+3 autres"), "{fr}");
}

#[test]
fn adding_a_task_confirms_it_and_names_what_is_next_in_both_languages() {
    let outcome = Outcome::TasksAdded(Added {
        added: vec![task(3, "call mom")],
        open: vec![
            task(1, "pay rent"),
            task(2, "book dentist"),
            task(3, "call mom"),
        ],
    });
    assert_eq!(
        render(&outcome, Language::En, Channel::Sms),
        "Added: call mom. You have 3 open tasks - next up: pay rent."
    );
    let outcome = Outcome::TasksAdded(Added {
        added: vec![task(3, "appeler maman")],
        open: vec![
            task(1, "payer le loyer"),
            task(2, "dentiste"),
            task(3, "appeler maman"),
        ],
    });
    assert_eq!(
        render(&outcome, Language::Fr, Channel::Sms),
        "Ajouté : appeler maman. 3 tâches en cours — prochaine : payer le loyer."
    );
}

#[test]
fn completing_a_task_celebrates_and_names_the_next_one() {
    let outcome = Outcome::TasksCompleted(Completion::Done {
        completed: vec![task(4, "call mom")],
        missing: vec![],
        remaining: vec![task(5, "pay rent")],
    });
    let en = render(&outcome, Language::En, Channel::Sms);
    assert!(en.starts_with("Done: call mom. "), "{en}");
    assert!(en.ends_with("Next up: pay rent."), "{en}");
    let fr = render(&outcome, Language::Fr, Channel::Sms);
    assert!(fr.starts_with("Fait : call mom. "), "{fr}");
    assert!(fr.ends_with("Prochaine : pay rent."), "{fr}");
}

#[test]
fn empty_lists_are_answered_with_encouragement_and_a_next_step() {
    let en = render(&open_list(vec![]), Language::En, Channel::Sms);
    assert!(
        en.contains("clean slate") && en.contains("task call mom"),
        "{en}"
    );
    let fr = render(&Outcome::GroceryList(vec![]), Language::Fr, Channel::Sms);
    assert!(fr.contains("vide") && fr.contains("acheter"), "{fr}");
}

#[test]
fn an_ambiguous_title_lists_the_candidates_under_their_list_numbers() {
    let outcome = Outcome::TasksCompleted(Completion::Ambiguous {
        candidates: vec![
            Numbered {
                position: 1,
                task: task(1, "call mom"),
            },
            Numbered {
                position: 3,
                task: task(3, "call dentist"),
            },
        ],
    });
    assert_eq!(
        render(&outcome, Language::En, Channel::Sms),
        "Which one?\n1. call mom\n3. call dentist\nReply: done 1"
    );
}

#[test]
fn the_web_channel_shows_longer_titles_than_sms() {
    let title = "a".repeat(80);
    let outcome = open_list(vec![task(1, &title)]);
    assert!(!render(&outcome, Language::En, Channel::Sms).contains(&title));
    assert!(render(&outcome, Language::En, Channel::Web).contains(&title));
}

#[test]
fn help_and_fallback_texts_fit_one_reply_in_both_languages() {
    for lang in [Language::En, Language::Fr] {
        assert!(help_text(lang).chars().count() <= SMS_MAX_CHARS);
        assert!(fallback_text(lang).chars().count() <= SMS_MAX_CHARS);
    }
    assert!(help_text(Language::En).chars().all(is_gsm7));
    assert!(fallback_text(Language::En).chars().all(is_gsm7));
}

// --- end to end, over a real store ---

mod engine {
    use super::super::*;
    use crate::agent::{TurnEngine, TurnInput};
    use crate::store::{Channel, Language, NewUser, Store, User, connect};
    use chrono::Utc;

    struct Fixture {
        store: Store,
        en: User,
        fr: User,
    }

    async fn fixture() -> Fixture {
        let store = connect("sqlite::memory:", crate::store::Sealer::generate())
            .await
            .expect("store");
        let en = store
            .create_user(&NewUser {
                display_name: "Sam Doe".into(),
                phone: "+15550000001".into(),
                number: "+15559990001".into(),
                language: Language::En,
                time_zone: "America/New_York".into(),
            })
            .await
            .expect("en user");
        let fr = store
            .create_user(&NewUser {
                display_name: "Camille".into(),
                phone: "+33600000002".into(),
                number: "+15559990002".into(),
                language: Language::Fr,
                time_zone: "Europe/Paris".into(),
            })
            .await
            .expect("fr user");
        Fixture { store, en, fr }
    }

    async fn say(store: &Store, user: &User, text: &str) -> String {
        let reply = OfflineRules
            .respond(
                store,
                TurnInput {
                    user,
                    text,
                    channel: Channel::Sms,
                    now: Utc::now(),
                    recent: &[],
                    memories: &[],
                    summary: None,
                },
            )
            .await
            .expect("reply")
            .text;
        assert!(reply.chars().count() <= SMS_MAX_CHARS, "{reply}");
        reply
    }

    async fn open_titles(store: &Store, user: &User) -> Vec<String> {
        store
            .open_tasks(user.id)
            .await
            .expect("open tasks")
            .into_iter()
            .map(|t| t.title)
            .collect()
    }

    async fn grocery_names(store: &Store, user: &User) -> Vec<String> {
        store
            .groceries(user.id)
            .await
            .expect("groceries")
            .into_iter()
            .map(|i| i.name)
            .collect()
    }

    #[tokio::test]
    async fn an_english_user_adds_lists_and_completes_tasks_by_number_and_title() {
        let Fixture { store, en, .. } = fixture().await;
        let r = say(&store, &en, "add task pay rent").await;
        assert_eq!(
            r,
            "Added: pay rent. It's your only task - start with 2 minutes?"
        );
        say(&store, &en, "todo: call mom").await;
        let r = say(&store, &en, "remind me to book dentist").await;
        assert_eq!(
            r,
            "Added: book dentist. You have 3 open tasks - next up: pay rent."
        );
        let r = say(&store, &en, "tasks").await;
        assert!(
            r.contains("1. pay rent\n2. call mom\n3. book dentist"),
            "{r}"
        );
        let r = say(&store, &en, "done 2").await;
        assert!(r.starts_with("Done: call mom."), "{r}");
        assert!(r.ends_with("Next up: pay rent."), "{r}");
        let r = say(&store, &en, "finished Book Dentist!").await;
        assert!(r.starts_with("Done: book dentist."), "{r}");
        assert_eq!(open_titles(&store, &en).await, ["pay rent"]);
        let r = say(&store, &en, "done 7").await;
        assert!(r.starts_with("There's no task 7."), "{r}");
        let r = say(&store, &en, "done 1").await;
        assert!(r.contains("last task"), "{r}");
        let r = say(&store, &en, "tasks").await;
        assert!(r.contains("clean slate"), "{r}");
    }

    #[tokio::test]
    async fn an_ambiguous_title_asks_which_and_changes_nothing() {
        let Fixture { store, en, .. } = fixture().await;
        say(&store, &en, "task call mom").await;
        say(&store, &en, "task pay rent").await;
        say(&store, &en, "task call dentist").await;
        let r = say(&store, &en, "done call").await;
        assert_eq!(r, "Which one?\n1. call mom\n3. call dentist\nReply: done 1");
        assert_eq!(open_titles(&store, &en).await.len(), 3);
        let r = say(&store, &en, "done with taxes").await;
        assert!(r.starts_with("I couldn't find that"), "{r}");
        let r = say(&store, &en, "done").await;
        assert!(r.starts_with("Which one did you finish?"), "{r}");
        assert_eq!(open_titles(&store, &en).await.len(), 3);
    }

    #[tokio::test]
    async fn a_french_user_gets_french_replies_and_may_write_english() {
        let Fixture { store, fr, .. } = fixture().await;
        let r = say(&store, &fr, "ajoute une tâche payer le loyer").await;
        assert_eq!(
            r,
            "Ajouté : payer le loyer. C'est ta seule tâche — on s'y met 2 minutes ?"
        );
        let r = say(&store, &fr, "task appeler maman").await;
        assert_eq!(
            r,
            "Ajouté : appeler maman. 2 tâches en cours — prochaine : payer le loyer."
        );
        let r = say(&store, &fr, "mes tâches").await;
        assert!(r.starts_with("Tes tâches (2) :\n1. payer le loyer"), "{r}");
        let r = say(&store, &fr, "fini APPELER maman").await;
        assert!(r.starts_with("Fait : appeler maman."), "{r}");
        let r = say(&store, &fr, "courses : lait, œufs et pain").await;
        assert_eq!(
            r,
            "Ajouté aux courses : lait, œufs, pain. 3 articles sur ta liste."
        );
        let r = say(&store, &fr, "j'ai acheté les oeufs").await;
        assert_eq!(r, "Coché : œufs. Reste 2 : lait, pain.");
        let r = say(&store, &fr, "aide").await;
        assert_eq!(r, help_text(Language::Fr));
        let r = say(&store, &fr, "blorp").await;
        assert_eq!(r, fallback_text(Language::Fr));
    }

    #[tokio::test]
    async fn groceries_are_added_listed_checked_off_and_cleared() {
        let Fixture { store, en, .. } = fixture().await;
        let r = say(&store, &en, "add milk, eggs and bread to groceries").await;
        assert_eq!(
            r,
            "Added to groceries: milk, eggs, bread. 3 items on your list."
        );
        let r = say(&store, &en, "buy Milk and oat milk").await;
        assert_eq!(
            r,
            "Added to groceries: oat milk. Already on the list: Milk. 4 items on your list."
        );
        let r = say(&store, &en, "grocery list").await;
        assert!(r.contains("1. milk\n2. eggs\n3. bread\n4. oat milk"), "{r}");
        let r = say(&store, &en, "got egg").await;
        assert_eq!(r, "Checked off: eggs. 3 left: milk, bread, oat milk.");
        let r = say(&store, &en, "got 2").await;
        assert_eq!(r, "Checked off: bread. 2 left: milk, oat milk.");
        let r = say(&store, &en, "bought cheese").await;
        assert!(r.starts_with("Not on your list: cheese. Your list:"), "{r}");
        assert_eq!(grocery_names(&store, &en).await, ["milk", "oat milk"]);
        let r = say(&store, &en, "clear the list").await;
        assert_eq!(r, "Cleared your grocery list (2 items). Fresh start!");
        let r = say(&store, &en, "groceries").await;
        assert!(r.starts_with("Your grocery list is empty."), "{r}");
    }

    #[tokio::test]
    async fn limits_are_refused_kindly_and_nothing_is_saved() {
        let Fixture { store, en, .. } = fixture().await;
        let long = format!("task {}", "a".repeat(201));
        let r = say(&store, &en, &long).await;
        assert!(r.contains("max 200 characters"), "{r}");
        let many = format!(
            "groceries: {}",
            (0..31)
                .map(|i| format!("item{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let r = say(&store, &en, &many).await;
        assert!(r.contains("up to 30 items"), "{r}");
        let r = say(&store, &en, "add task").await;
        assert_eq!(r, "What's the task? Try: task call mom");
        assert!(open_titles(&store, &en).await.is_empty());
        assert!(grocery_names(&store, &en).await.is_empty());
    }

    #[tokio::test]
    async fn a_users_turn_never_sees_or_changes_another_users_lists() {
        let Fixture { store, en, fr } = fixture().await;
        say(&store, &en, "task secret plan").await;
        say(&store, &en, "buy milk").await;
        let r = say(&store, &fr, "tasks").await;
        assert!(!r.contains("secret"), "{r}");
        let r = say(&store, &fr, "done 1").await;
        assert!(r.starts_with("Aucune tâche"), "{r}");
        let r = say(&store, &fr, "finished secret plan").await;
        assert!(r.starts_with("Aucune tâche"), "{r}");
        let r = say(&store, &fr, "got milk").await;
        assert!(!r.contains("Coché"), "{r}");
        say(&store, &fr, "clear groceries").await;
        assert_eq!(open_titles(&store, &en).await, ["secret plan"]);
        assert_eq!(grocery_names(&store, &en).await, ["milk"]);
    }

    #[tokio::test]
    async fn a_greeting_names_the_user_and_the_next_task() {
        let Fixture { store, en, .. } = fixture().await;
        let r = say(&store, &en, "hi").await;
        assert_eq!(
            r,
            "Hi Sam! Your list is clear. Add a task anytime: task call mom"
        );
        say(&store, &en, "task pay rent").await;
        let r = say(&store, &en, "Hello!").await;
        assert_eq!(
            r,
            "Hi Sam! You have 1 open task - next up: pay rent. Reply 'tasks' to see them."
        );
    }
}

mod planning {
    use super::*;
    use crate::store::Priority;
    use crate::tools::expenses::{ExpenseInput, Period};
    use crate::tools::tasks::{ListFilter, Target};
    use crate::tools::when;

    fn at(n: usize) -> Target {
        Target::Position(n)
    }

    fn named(t: &str) -> Target {
        Target::Title(t.to_owned())
    }

    fn expr(text: &str) -> when::Expr {
        when::parse(text).unwrap_or_else(|| panic!("{text:?} is a time"))
    }

    fn remind(text: &str, when: &str) -> Intent {
        Intent::CreateReminder {
            text: text.to_owned(),
            when: expr(when),
            urgent: false,
        }
    }

    fn due(title: &str, when: &str) -> Intent {
        Intent::AddTasksDue {
            titles: vec![title.to_owned()],
            due: expr(when),
        }
    }

    fn spent(
        amount: &str,
        currency: Option<&str>,
        category: Option<&str>,
        note: Option<&str>,
    ) -> Intent {
        Intent::LogExpense(ExpenseInput {
            amount: amount.to_owned(),
            currency: currency.map(str::to_owned),
            category: category.map(str::to_owned),
            note: note.map(str::to_owned),
        })
    }

    #[test]
    fn task_planning_is_understood_in_english_and_french() {
        check_table(&[
            ("task pay rent by friday", due("pay rent", "friday")),
            (
                "add call mom due tomorrow at 5pm",
                due("call mom", "tomorrow at 5pm"),
            ),
            (
                "tâche payer le loyer pour vendredi",
                due("payer le loyer", "vendredi"),
            ),
            (
                "ajoute appeler maman avant demain 18h",
                due("appeler maman", "demain 18h"),
            ),
            (
                "task prepare monday meeting",
                Intent::AddTasks(vec!["prepare monday meeting".into()]),
            ),
            ("overdue", Intent::ListTasksFiltered(ListFilter::Overdue)),
            (
                "what's overdue?",
                Intent::ListTasksFiltered(ListFilter::Overdue),
            ),
            (
                "tâches en retard",
                Intent::ListTasksFiltered(ListFilter::Overdue),
            ),
            ("due today", Intent::ListTasksFiltered(ListFilter::DueToday)),
            (
                "à faire aujourd'hui",
                Intent::ListTasksFiltered(ListFilter::DueToday),
            ),
            (
                "this week",
                Intent::ListTasksFiltered(ListFilter::DueThisWeek),
            ),
            (
                "urgent",
                Intent::ListTasksFiltered(ListFilter::HighPriority),
            ),
            ("stats", Intent::TaskStats),
            ("how am I doing?", Intent::TaskStats),
            ("mon bilan", Intent::TaskStats),
            (
                "move 2 to friday",
                Intent::Reschedule {
                    target: at(2),
                    due: Some(expr("friday")),
                },
            ),
            (
                "reschedule call mom to tomorrow at 9",
                Intent::Reschedule {
                    target: named("call mom"),
                    due: Some(expr("tomorrow at 9")),
                },
            ),
            (
                "décale 2 à demain",
                Intent::Reschedule {
                    target: at(2),
                    due: Some(expr("demain")),
                },
            ),
            (
                "reporte 1 à lundi 9h",
                Intent::Reschedule {
                    target: at(1),
                    due: Some(expr("lundi 9h")),
                },
            ),
            (
                "move 3 no date",
                Intent::Reschedule {
                    target: at(3),
                    due: None,
                },
            ),
            (
                "urgent 2",
                Intent::Prioritize {
                    target: at(2),
                    priority: Priority::High,
                },
            ),
            (
                "2 is urgent",
                Intent::Prioritize {
                    target: at(2),
                    priority: Priority::High,
                },
            ),
            (
                "priority 3 low",
                Intent::Prioritize {
                    target: at(3),
                    priority: Priority::Low,
                },
            ),
            (
                "priorité 1 haute",
                Intent::Prioritize {
                    target: at(1),
                    priority: Priority::High,
                },
            ),
            ("steps 2", Intent::BreakDown(at(2))),
            (
                "break down write report",
                Intent::BreakDown(named("write report")),
            ),
            ("étapes 2", Intent::BreakDown(at(2))),
            ("undo", Intent::Reopen(None)),
            ("oups", Intent::Reopen(None)),
            ("reopen call mom", Intent::Reopen(Some("call mom".into()))),
        ]);
    }

    #[test]
    fn goals_notes_and_expenses_are_understood_in_english_and_french() {
        check_table(&[
            ("goal: run a 10k", Intent::AddGoal("run a 10k".into())),
            (
                "new goal read 12 books",
                Intent::AddGoal("read 12 books".into()),
            ),
            (
                "objectif : courir 10 km",
                Intent::AddGoal("courir 10 km".into()),
            ),
            ("goals", Intent::ListGoals),
            ("mes objectifs", Intent::ListGoals),
            ("goal 1", Intent::GoalProgress(at(1))),
            ("progress on run", Intent::GoalProgress(named("run"))),
            ("objectif 2", Intent::GoalProgress(at(2))),
            (
                "link 2 to goal 1",
                Intent::LinkToGoal {
                    task: at(2),
                    goal: at(1),
                },
            ),
            (
                "lie 3 à l'objectif 1",
                Intent::LinkToGoal {
                    task: at(3),
                    goal: at(1),
                },
            ),
            (
                "link call mom to family",
                Intent::LinkToGoal {
                    task: named("call mom"),
                    goal: named("family"),
                },
            ),
            (
                "note: wifi password is hunter2",
                Intent::SaveNote("wifi password is hunter2".into()),
            ),
            (
                "note que le code est 4521",
                Intent::SaveNote("le code est 4521".into()),
            ),
            ("notes", Intent::ListNotes),
            ("mes notes", Intent::ListNotes),
            ("search notes wifi", Intent::SearchNotes("wifi".into())),
            ("cherche note code", Intent::SearchNotes("code".into())),
            ("delete note 2", Intent::DeleteNote(at(2))),
            ("supprime la note 1", Intent::DeleteNote(at(1))),
            (
                "spent 12.50 on lunch",
                spent("12.50", None, Some("lunch"), Some("lunch")),
            ),
            (
                "spent $12 on lunch with Sam",
                spent("12", Some("$"), Some("lunch"), Some("lunch with Sam")),
            ),
            (
                "paid 30 eur taxi",
                spent("30", Some("eur"), Some("taxi"), Some("taxi")),
            ),
            (
                "j'ai dépensé 12,50€ au resto",
                spent("12,50", Some("€"), Some("resto"), Some("resto")),
            ),
            (
                "dépensé 40 euros en courses",
                spent("40", Some("euros"), Some("courses"), Some("courses")),
            ),
            ("spent 1500 yen", spent("1500", Some("yen"), None, None)),
            (
                "spent on lunch",
                spent("", None, Some("lunch"), Some("lunch")),
            ),
            ("expenses", Intent::ExpenseTotals(Period::Week)),
            ("spending this month", Intent::ExpenseTotals(Period::Month)),
            ("mes dépenses", Intent::ExpenseTotals(Period::Week)),
            ("dépenses du mois", Intent::ExpenseTotals(Period::Month)),
            ("spent today", Intent::ExpenseTotals(Period::Today)),
        ]);
    }

    #[test]
    fn reminders_are_understood_with_the_time_at_either_end_in_both_languages() {
        check_table(&[
            (
                "remind me to stretch in 20 minutes",
                remind("stretch", "in 20 minutes"),
            ),
            (
                "remind me to call mom tomorrow at 9",
                remind("call mom", "tomorrow at 9"),
            ),
            (
                "remind me tomorrow at 9 to call mom",
                remind("call mom", "tomorrow at 9"),
            ),
            (
                "remind me every Monday to take out the trash",
                remind("take out the trash", "every monday"),
            ),
            (
                "remind me to take meds every day at 8am",
                remind("take meds", "every day at 8am"),
            ),
            (
                "rappelle-moi demain à 9h d'appeler maman",
                remind("appeler maman", "demain à 9h"),
            ),
            (
                "rappelle-moi d'appeler maman dans 2 heures",
                remind("appeler maman", "dans 2 heures"),
            ),
            (
                "rappel dans 2 heures : sortir le linge",
                remind("sortir le linge", "dans 2 heures"),
            ),
            (
                "tous les lundis rappelle-moi de sortir les poubelles",
                remind("sortir les poubelles", "tous les lundis"),
            ),
            (
                "rappelle-moi à 18h30 de fermer la porte",
                remind("fermer la porte", "à 18h30"),
            ),
            (
                "remind me next friday at 5pm to pay rent",
                remind("pay rent", "next friday at 5pm"),
            ),
            (
                "remind me to call the bank",
                Intent::AddTasks(vec!["call the bank".into()]),
            ),
            ("reminders", Intent::ListReminders),
            ("mes rappels", Intent::ListReminders),
            ("cancel reminder 2", Intent::CancelReminder(at(2))),
            ("annule le rappel 1", Intent::CancelReminder(at(1))),
            (
                "delete reminder stretch",
                Intent::CancelReminder(named("stretch")),
            ),
        ]);
    }

    #[test]
    fn the_morning_digest_is_switched_on_and_off_in_english_and_french() {
        check_table(&[
            ("morning digest on", Intent::MorningDigest(true)),
            ("Morning digest: off", Intent::MorningDigest(false)),
            ("turn on the morning digest", Intent::MorningDigest(true)),
            ("résumé du matin off", Intent::MorningDigest(false)),
            ("active le résumé du matin", Intent::MorningDigest(true)),
            (
                "désactive mon résumé du matin stp",
                Intent::MorningDigest(false),
            ),
        ]);
    }

    #[test]
    fn urgent_reminders_are_understood_in_english_and_french_and_urgent_alone_stays_a_task_command()
    {
        let urgent = |text: &str, when: &str| Intent::CreateReminder {
            text: text.to_owned(),
            when: expr(when),
            urgent: true,
        };
        check_table(&[
            (
                "urgent: remind me to take my meds at 10pm",
                urgent("take my meds", "at 10pm"),
            ),
            (
                "URGENT! remind me in 20 minutes to call the pharmacy",
                urgent("call the pharmacy", "in 20 minutes"),
            ),
            (
                "urgent : rappelle-moi à 23h de prendre mes médicaments",
                urgent("prendre mes médicaments", "à 23h"),
            ),
            (
                "urgent 2",
                Intent::Prioritize {
                    target: at(2),
                    priority: Priority::High,
                },
            ),
            (
                "remind me to stretch in 20 minutes",
                remind("stretch", "in 20 minutes"),
            ),
        ]);
    }
}

/// Whole conversations over a real store at a fixed clock, one per language, through every
/// tool; every reply fits one SMS and English replies stay in GSM-7.
mod conversations {
    use super::is_gsm7;
    use crate::agent::{TurnEngine, TurnInput};
    use crate::store::{Channel, Language, NewUser, Store, User, connect};
    use chrono::{DateTime, Duration, TimeZone, Utc};

    use super::super::{OfflineRules, SMS_MAX_CHARS};

    async fn store_and_user(language: Language) -> (Store, User) {
        let store = connect("sqlite::memory:", crate::store::Sealer::generate())
            .await
            .expect("store");
        let user = store
            .create_user(&NewUser {
                display_name: "Sam".into(),
                phone: "+33600000001".into(),
                number: "+33755500001".into(),
                language,
                time_zone: "Europe/Paris".into(),
            })
            .await
            .expect("user");
        (store, user)
    }

    /// Wednesday 11 March 2026, 10:00 in Paris.
    fn wednesday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 11, 9, 0, 0)
            .single()
            .expect("time")
    }

    async fn say(store: &Store, user: &User, text: &str, now: DateTime<Utc>) -> String {
        let reply = OfflineRules
            .respond(
                store,
                TurnInput {
                    user,
                    text,
                    channel: Channel::Sms,
                    now,
                    recent: &[],
                    memories: &[],
                    summary: None,
                },
            )
            .await
            .expect("reply")
            .text;
        assert!(
            reply.chars().count() <= SMS_MAX_CHARS,
            "{text:?} -> {reply}"
        );
        if user.language == Language::En {
            let odd: Vec<char> = reply
                .chars()
                .filter(|c| !is_gsm7(*c) && *c != '€')
                .collect();
            assert!(odd.is_empty(), "{odd:?} in {reply:?}");
        }
        reply
    }

    #[tokio::test]
    async fn an_english_conversation_uses_every_tool() {
        let (store, en) = store_and_user(Language::En).await;
        let now = wednesday();
        let s = |text: &'static str| say(&store, &en, text, now);

        let r = s("task pay rent by friday").await;
        assert_eq!(
            r,
            "Added: pay rent, due Fri 13 Mar. It's your only task - start with 2 minutes?"
        );
        s("task write report due tomorrow at 5pm").await;
        let r = s("tasks").await;
        assert!(
            r.contains("1. pay rent - Fri 13 Mar\n2. write report - tomorrow 5pm"),
            "{r}"
        );
        let r = s("urgent 2").await;
        assert!(r.starts_with("Marked urgent: write report."), "{r}");
        let r = s("move 1 to monday").await;
        assert!(r.starts_with("Moved: pay rent, now due Mon 16 Mar."), "{r}");
        let r = s("this week").await;
        assert!(r.starts_with("Due this week (2):"), "{r}");
        let r = s("overdue").await;
        assert!(r.starts_with("Nothing overdue"), "{r}");
        let r = s("done 1").await;
        assert!(r.starts_with("Done: pay rent."), "{r}");
        let r = s("undo").await;
        assert_eq!(r, "Back on your list: pay rent. No problem.");
        s("done pay rent").await;
        let r = s("stats").await;
        assert!(r.starts_with("This week: 1 done (1 today). 1 open."), "{r}");

        let r = s("goal: run a 10k").await;
        assert_eq!(
            r,
            "New goal 1: run a 10k. Link a task to it: link 1 to goal 1"
        );
        s("task buy running shoes").await;
        let r = s("link 2 to goal 1").await;
        assert_eq!(r, "Linked buy running shoes to run a 10k (0/1 done).");
        let r = s("goal 1").await;
        assert_eq!(
            r,
            "run a 10k: 0/1 tasks done. Next step: buy running shoes."
        );
        let r = s("goals").await;
        assert!(r.contains("1. run a 10k (0/1)"), "{r}");

        let r = s("buy milk, eggs").await;
        assert!(r.starts_with("Added to groceries: milk, eggs."), "{r}");
        let r = s("got milk").await;
        assert!(r.starts_with("Checked off: milk."), "{r}");
        let r = s("clear groceries").await;
        assert!(r.starts_with("Cleared your grocery list (1 item)"), "{r}");

        let r = s("spent 12.50 on lunch").await;
        assert_eq!(
            r,
            "Logged 12.50 EUR for food. Reply 'expenses' for this week's total."
        );
        s("spent 7.5 eur on taxi").await;
        let r = s("expenses").await;
        assert_eq!(r, "This week: 20.00 EUR (food 12.50, transport 7.50).");
        let r = s("spent lots").await;
        assert!(r.starts_with("I couldn't read that amount"), "{r}");

        let r = s("note: wifi password is hunter2").await;
        assert!(r.starts_with("Saved your note."), "{r}");
        let r = s("search notes wifi").await;
        assert_eq!(r, "Found 1:\n1. wifi password is hunter2");
        let r = s("notes").await;
        assert!(r.starts_with("Your latest notes:\n1. wifi password"), "{r}");
        let r = s("delete note 1").await;
        assert!(r.starts_with("Deleted the note"), "{r}");

        let r = s("remind me to stretch in 20 minutes").await;
        assert_eq!(r, "Reminder set for today 10:20am: stretch.");
        let r = s("remind me every monday at 8am to take out the trash").await;
        assert_eq!(
            r,
            "Reminder set every Monday at 8am: take out the trash. First one: Mon 16 Mar 8am."
        );
        let r = s("reminders").await;
        assert!(
            r.contains(
                "1. today 10:20am: stretch\n2. Mon 16 Mar 8am (repeats): take out the trash"
            ),
            "{r}"
        );
        let r = s("cancel reminder 1").await;
        assert_eq!(r, "Cancelled the reminder: stretch.");
        let r = s("remind me to call mom today at 8am").await;
        assert!(r.starts_with("That time has already passed."), "{r}");
        let r = s("morning digest on").await;
        assert!(r.starts_with("Morning digest on: every day at 8am,"), "{r}");
        assert!(store.profile(en.id).await.unwrap().digest_enabled);
        let r = s("morning digest off").await;
        assert_eq!(r, "Morning digest off.");
        assert!(!store.profile(en.id).await.unwrap().digest_enabled);
    }

    #[tokio::test]
    async fn a_french_conversation_uses_every_tool() {
        let (store, fr) = store_and_user(Language::Fr).await;
        let now = wednesday();
        let s = |text: &'static str| say(&store, &fr, text, now);

        let r = s("tâche payer le loyer pour vendredi").await;
        assert_eq!(
            r,
            "Ajouté : payer le loyer, pour ven. 13 mars. C'est ta seule tâche — on s'y met 2 minutes ?"
        );
        s("tâche appeler maman").await;
        let r = s("décale 1 à demain 18h").await;
        assert!(
            r.starts_with("Déplacée : payer le loyer, pour demain 18h."),
            "{r}"
        );
        let r = s("priorité 2 haute").await;
        assert!(r.starts_with("Urgente : appeler maman."), "{r}");
        let r = s("tâches en retard").await;
        assert!(r.starts_with("Rien en retard"), "{r}");
        let r = s("fait 2").await;
        assert!(r.starts_with("Fait : appeler maman."), "{r}");
        let r = s("mon bilan").await;
        assert!(
            r.starts_with("Cette semaine : 1 faites (1 aujourd'hui). 1 en cours."),
            "{r}"
        );
        let r = s("oups").await;
        assert_eq!(r, "De retour sur ta liste : appeler maman. Pas de souci.");

        let r = s("objectif : courir 10 km").await;
        assert!(r.starts_with("Nouvel objectif 1 : courir 10 km."), "{r}");
        let r = s("lie 2 à l'objectif 1").await;
        assert_eq!(r, "appeler maman liée à courir 10 km (0/1 faites).");
        let r = s("mes objectifs").await;
        assert!(r.contains("1. courir 10 km (0/1)"), "{r}");

        let r = s("courses : lait, œufs").await;
        assert!(r.starts_with("Ajouté aux courses : lait, œufs."), "{r}");
        let r = s("vide les courses").await;
        assert!(r.starts_with("Liste de courses vidée (2 articles)"), "{r}");

        let r = s("j'ai dépensé 12,50 € au resto").await;
        assert_eq!(
            r,
            "Noté : 12,50 € en repas. Écris « dépenses » pour le total de la semaine."
        );
        let r = s("mes dépenses").await;
        assert_eq!(r, "Cette semaine : 12,50 € (repas 12,50).");

        s("note : le code de la porte est 4521").await;
        let r = s("cherche note porte").await;
        assert_eq!(r, "Trouvé 1 :\n1. le code de la porte est 4521");

        let r = s("rappelle-moi demain à 9h d'appeler le médecin").await;
        assert_eq!(r, "Rappel prévu demain 9h : appeler le médecin.");
        let r = s("tous les lundis rappelle-moi de sortir les poubelles").await;
        assert_eq!(
            r,
            "Rappel tous les lundis à 9h : sortir les poubelles. Premier : lun. 16 mars 9h."
        );
        let r = s("mes rappels").await;
        assert!(
            r.starts_with("Tes rappels :\n1. demain 9h : appeler le médecin")
                || r.starts_with("Tes rappels :\n1. demain 9h: appeler le médecin"),
            "{r}"
        );
        let r = s("annule le rappel 1").await;
        assert_eq!(r, "Rappel annulé : appeler le médecin.");
        let r = s("résumé du matin on").await;
        assert!(
            r.starts_with("Résumé du matin activé : chaque jour à 8h,"),
            "{r}"
        );
        assert!(store.profile(fr.id).await.unwrap().digest_enabled);
    }

    #[tokio::test]
    async fn a_task_missed_three_times_is_offered_in_small_steps_without_blame() {
        let (store, en) = store_and_user(Language::En).await;
        let mut now = wednesday();
        say(&store, &en, "task write report by tomorrow", now).await;
        for _ in 0..3 {
            now += Duration::days(2);
            let r = say(&store, &en, "overdue", now).await;
            assert!(r.starts_with("Overdue (1) - no stress"), "{r}");
            say(&store, &en, "move 1 to tomorrow", now).await;
        }
        now += Duration::days(2);
        let r = say(&store, &en, "tasks", now).await;
        assert!(
            r.ends_with("Task 1 keeps slipping - that happens. Smaller steps? Reply: steps 1"),
            "{r}"
        );
        for word in ["fail", "lazy", "again", "should have"] {
            assert!(!r.to_lowercase().contains(word), "{r}");
        }
        let r = say(&store, &en, "steps 1", now).await;
        assert!(
            r.starts_with("Smaller steps for write report, added to your list:\n1. 2 min: get out"),
            "{r}"
        );
        let r = say(&store, &en, "tasks", now).await;
        assert!(r.contains("4. 2 min: note the next"), "{r}");
        assert!(!r.contains("keeps slipping"), "{r}");
    }
}

#[test]
fn every_example_in_the_readme_is_understood() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("| tool | English | French |")
        .expect("the table");
    let table = &readme[start..];
    let end = table.find("\n\n").unwrap_or(table.len());
    let mut examples = Vec::new();
    for line in table[..end].lines().skip(2) {
        for cell in line.split('|').skip(2) {
            let mut rest = cell;
            while let Some(open) = rest.find('`') {
                let after = &rest[open + 1..];
                let Some(close) = after.find('`') else { break };
                examples.push(after[..close].to_owned());
                rest = &after[close + 1..];
            }
        }
    }
    assert!(examples.len() > 50, "{examples:?}");
    let unknown: Vec<&String> = examples
        .iter()
        .filter(|e| matches!(parse(e), Intent::Unknown | Intent::Greeting))
        .collect();
    assert!(unknown.is_empty(), "not understood: {unknown:?}");
}

#[tokio::test]
async fn a_dollar_is_the_users_own_dollar() {
    use crate::agent::{TurnEngine, TurnInput};
    use crate::store::{NewUser, connect};
    let store = connect("sqlite::memory:", crate::store::Sealer::generate())
        .await
        .expect("store");
    let user = store
        .create_user(&NewUser {
            display_name: "Jo".into(),
            phone: "+14165550101".into(),
            number: "+14165559001".into(),
            language: Language::En,
            time_zone: "America/Toronto".into(),
        })
        .await
        .expect("user");
    let input = |text| TurnInput {
        user: &user,
        text,
        channel: Channel::Sms,
        now: Utc::now(),
        recent: &[],
        memories: &[],
        summary: None,
    };
    let reply = OfflineRules
        .respond(&store, input("spent $12.50 on lunch"))
        .await
        .expect("reply")
        .text;
    assert_eq!(
        reply,
        "Logged 12.50 CAD for food. Reply 'expenses' for this week's total."
    );
    let reply = OfflineRules
        .respond(&store, input("spent 5 us$ on coffee"))
        .await
        .expect("reply")
        .text;
    assert!(reply.starts_with("Logged $5.00 for food."), "{reply}");
}
