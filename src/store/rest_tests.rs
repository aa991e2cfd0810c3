//! The store methods behind the REST API's goals, expenses, notes, reminders and memories:
//! pages in id order, one item, edits and deletion, each scoped to its user, on both backends.
//!
//! Run with: `eval "$(scripts/services.sh start)" && cargo test --lib store::rest_tests`

use chrono::{Duration, Utc};

use super::testing::on_each_backend;
use super::tests::{assert_not_found, create};
use super::{
    ExpenseChange, GoalStatus, MemoryChange, MemoryEmbedding, MemoryKind, NewExpense, NewMemory,
    NewReminder, ReminderStatus, ReminderTime,
};

#[tokio::test]
async fn goals_page_in_id_order_by_status_and_edit_only_their_owners_goals() {
    on_each_backend(|store| async move {
        let ana = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let mut ids = Vec::new();
        for title in ["run", "read", "rest"] {
            ids.push(store.add_goal(ana, title).await.unwrap().id);
        }
        store.add_goal(bob, "bob's").await.unwrap();
        let first = store.goals_page(ana, 0, 2, None).await.unwrap();
        assert_eq!(first.iter().map(|g| g.id).collect::<Vec<_>>(), ids[..2]);
        let rest = store.goals_page(ana, ids[1], 2, None).await.unwrap();
        assert_eq!(rest.iter().map(|g| g.id).collect::<Vec<_>>(), ids[2..]);

        let done = store
            .update_goal(ana, ids[0], Some("run 10k"), Some(GoalStatus::Achieved))
            .await
            .unwrap();
        assert_eq!(
            (done.title.as_str(), done.status),
            ("run 10k", GoalStatus::Achieved)
        );
        assert!(done.achieved_at.is_some());
        let achieved = store
            .goals_page(ana, 0, 10, Some(GoalStatus::Achieved))
            .await
            .unwrap();
        assert_eq!(achieved.len(), 1);
        let reopened = store
            .update_goal(ana, ids[0], None, Some(GoalStatus::Active))
            .await
            .unwrap();
        assert_eq!(
            (reopened.title.as_str(), reopened.achieved_at),
            ("run 10k", None)
        );

        assert_not_found(store.update_goal(bob, ids[0], Some("x"), None).await);
        assert_not_found(store.delete_goal(bob, ids[0]).await);
        store.delete_goal(ana, ids[0]).await.unwrap();
        assert_not_found(store.goal(ana, ids[0]).await);
        assert_eq!(store.goals_page(bob, 0, 10, None).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn expenses_page_read_and_change_with_the_note_sealed_again() {
    on_each_backend(|store| async move {
        let ana = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let new = |minor| NewExpense {
            amount_minor: minor,
            currency: "EUR".into(),
            category: "food".into(),
            note: Some("lunch".into()),
            spent_at: Utc::now(),
        };
        let a = store.add_expense(ana, &new(1250)).await.unwrap();
        let b = store.add_expense(ana, &new(300)).await.unwrap();
        assert_eq!(store.expenses_page(ana, 0, 1).await.unwrap()[0].id, a.id);
        assert_eq!(store.expenses_page(ana, a.id, 5).await.unwrap()[0].id, b.id);
        assert!(store.expenses_page(bob, 0, 5).await.unwrap().is_empty());
        assert_eq!(
            store.expense(ana, a.id).await.unwrap().note.as_deref(),
            Some("lunch")
        );

        let changed = store
            .update_expense(
                ana,
                a.id,
                &ExpenseChange {
                    amount_minor: Some(1500),
                    currency: Some("JPY".into()),
                    category: None,
                    note: Some(Some("sushi".into())),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (
                changed.amount_minor,
                changed.currency.as_str(),
                changed.category.as_str()
            ),
            (1500, "JPY", "food")
        );
        assert_eq!(
            store.expense(ana, a.id).await.unwrap().note.as_deref(),
            Some("sushi")
        );
        let cleared = store
            .update_expense(
                ana,
                a.id,
                &ExpenseChange {
                    note: Some(None),
                    ..ExpenseChange::default()
                },
            )
            .await
            .unwrap();
        assert_eq!((cleared.note, cleared.amount_minor), (None, 1500));
        assert_not_found(store.expense(bob, a.id).await);
        assert_not_found(
            store
                .update_expense(bob, a.id, &ExpenseChange::default())
                .await,
        );
    })
    .await;
}

#[tokio::test]
async fn notes_page_in_id_order_and_an_edit_reseals_the_body_for_its_owner_only() {
    on_each_backend(|store| async move {
        let ana = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let one = store.add_note(ana, "door code 4521").await.unwrap();
        let two = store.add_note(ana, "wifi key").await.unwrap();
        let page = store.notes_page(ana, 0, 10).await.unwrap();
        assert_eq!(
            page.iter().map(|n| n.id).collect::<Vec<_>>(),
            [one.id, two.id]
        );
        assert_eq!(store.notes_page(ana, one.id, 10).await.unwrap().len(), 1);
        let edited = store
            .update_note(ana, one.id, "door code 9999")
            .await
            .unwrap();
        assert_eq!(edited.body, "door code 9999");
        assert_eq!(
            store.note(ana, one.id).await.unwrap().body,
            "door code 9999"
        );
        assert_not_found(store.note(bob, one.id).await);
        assert_not_found(store.update_note(bob, one.id, "bob").await);
        assert!(store.notes_page(bob, 0, 10).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn reminders_page_any_status_and_a_new_time_schedules_a_cancelled_one_again() {
    on_each_backend(|store| async move {
        let ana = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let due = Utc::now() + Duration::hours(1);
        let new = NewReminder {
            body: "call mum".into(),
            due_at: due,
            recurrence: None,
            time_zone: "Europe/Paris".into(),
            urgent: false,
        };
        let r = store.add_reminder(ana, &new).await.unwrap();
        let s = store.add_reminder(ana, &new).await.unwrap();
        store.cancel_reminder(ana, r.id).await.unwrap();
        let page = store.reminders_page(ana, 0, 10).await.unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [r.id, s.id]);
        assert_eq!(page[0].status, ReminderStatus::Cancelled);

        let text_only = store
            .update_reminder(ana, r.id, Some("call dad"), None, None)
            .await
            .unwrap();
        assert_eq!(
            (text_only.body.as_str(), text_only.status),
            ("call dad", ReminderStatus::Cancelled)
        );
        let later = ReminderTime {
            due_at: due + Duration::days(1),
            recurrence: Some("FREQ=DAILY;BYHOUR=9;BYMINUTE=0".into()),
            time_zone: "Europe/Paris".into(),
        };
        let again = store
            .update_reminder(ana, r.id, None, Some(&later), None)
            .await
            .unwrap();
        assert_eq!(again.status, ReminderStatus::Scheduled);
        assert_eq!(again.body, "call dad");
        assert_eq!(again.recurrence, later.recurrence);
        assert_eq!(store.reminder(ana, r.id).await.unwrap(), again);
        assert!(!again.urgent);
        let urgent = store
            .update_reminder(ana, r.id, None, None, Some(true))
            .await
            .unwrap();
        assert!(urgent.urgent, "urgency changes alone");
        assert_eq!(urgent.due_at, again.due_at);
        assert_not_found(
            store
                .update_reminder(bob, r.id, None, None, Some(false))
                .await,
        );
        assert!(store.reminder(ana, r.id).await.unwrap().urgent);

        assert_not_found(store.reminder(bob, r.id).await);
        assert_not_found(
            store
                .update_reminder(bob, r.id, Some("x"), None, None)
                .await,
        );
        assert_not_found(store.delete_reminder(bob, r.id).await);
        store.delete_reminder(ana, r.id).await.unwrap();
        assert_not_found(store.reminder(ana, r.id).await);
    })
    .await;
}

#[tokio::test]
async fn memories_page_and_a_new_text_drops_the_embedding_for_its_owner_only() {
    on_each_backend(|store| async move {
        let ana = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let new = |text: &str| NewMemory {
            text: text.into(),
            kind: MemoryKind::Fact,
            tags: vec!["a".into()],
            importance: 0.5,
            source_message_id: None,
        };
        let now = Utc::now();
        let m = store.add_memory(ana, &new("likes tea"), now).await.unwrap();
        let n = store.add_memory(ana, &new("has a cat"), now).await.unwrap();
        let page = store.memories_page(ana, 0, 1).await.unwrap();
        assert_eq!(page[0].id, m.id);
        assert_eq!(store.memories_page(ana, m.id, 5).await.unwrap()[0].id, n.id);
        assert!(
            store
                .set_memory_embedding(
                    ana,
                    m.id,
                    m.updated_at,
                    &MemoryEmbedding {
                        model: "test@2".into(),
                        values: vec![1.0, 0.0],
                    },
                )
                .await
                .unwrap()
        );

        let tagged = store
            .update_memory(
                ana,
                m.id,
                &MemoryChange {
                    kind: Some(MemoryKind::Preference),
                    tags: Some(vec!["drinks".into()]),
                    importance: Some(0.9),
                    ..MemoryChange::default()
                },
                now + Duration::seconds(1),
            )
            .await
            .unwrap();
        assert_eq!(tagged.text, "likes tea");
        assert_eq!(tagged.kind, MemoryKind::Preference);
        assert_eq!(tagged.tags, ["drinks"]);
        assert!((tagged.importance - 0.9).abs() < 1e-6);
        assert!(tagged.embedding.is_some(), "the text did not change");
        let reworded = store
            .update_memory(
                ana,
                m.id,
                &MemoryChange {
                    text: Some("likes green tea".into()),
                    ..MemoryChange::default()
                },
                now + Duration::seconds(2),
            )
            .await
            .unwrap();
        assert_eq!(reworded.text, "likes green tea");
        assert_eq!(reworded.embedding, None);
        assert_not_found(
            store
                .update_memory(bob, m.id, &MemoryChange::default(), now)
                .await,
        );
        assert!(store.memories_page(bob, 0, 5).await.unwrap().is_empty());
    })
    .await;
}
