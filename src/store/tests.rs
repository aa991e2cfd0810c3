//! The store's methods, checked on both backends: every test runs on a fresh SQLite file and,
//! when `NUDGE_TEST_POSTGRES_URL` names a server, on a fresh PostgreSQL database.
//!
//! Run with: `eval "$(scripts/services.sh start)" && cargo test --lib store::`

use std::fmt::Debug;

use super::testing::{POSTGRES_URL_VAR, in_memory, on_each_backend};
use super::{
    Backend, Channel, Direction, Language, Message, MessageWrite, NewLlmUsage, NewMessage,
    NewSmsUsage, NewUser, Pool, ReplyWrite, Result, Role, Sealer, SmsEncoding, Store, StoreError,
    User, UserId, connect, with_pool,
};

pub(super) fn new_user(n: u8) -> NewUser {
    NewUser {
        display_name: format!("User {n}"),
        phone: format!("+1555000{n:04}"),
        number: format!("+1555900{n:04}"),
        language: Language::En,
        time_zone: "America/Toronto".to_owned(),
    }
}

pub(super) async fn create(store: &Store, n: u8) -> User {
    let user = store.create_user(&new_user(n)).await;
    user.expect("the user is created")
}

pub(super) fn inbound(body: &str, sid: Option<&str>) -> NewMessage {
    NewMessage {
        channel: Channel::Sms,
        direction: Direction::Inbound,
        body: body.to_owned(),
        provider_message_id: sid.map(str::to_owned),
        in_reply_to: None,
    }
}

/// A write of an inbound SMS of `user`'s without a provider id, alone.
pub(super) fn note(user: UserId, body: &str) -> MessageWrite {
    MessageWrite {
        user,
        message: inbound(body, None),
        usage: Vec::new(),
        model_usage: Vec::new(),
        summary: None,
        reply: None,
    }
}

/// A turn as the group-commit writer takes it: `user`'s inbound SMS `text` (Twilio's `sid`)
/// and the reply `answer`, each with its SMS usage.
pub(super) fn turn(
    user: UserId,
    (text, sid, usage): (&str, &str, Vec<NewSmsUsage>),
    (answer, reply_usage): (&str, Vec<NewSmsUsage>),
) -> MessageWrite {
    MessageWrite {
        user,
        message: inbound(text, Some(sid)),
        usage,
        model_usage: Vec::new(),
        summary: None,
        reply: Some(ReplyWrite {
            // Its `in_reply_to` becomes the inbound message's new id.
            message: NewMessage {
                channel: Channel::Sms,
                direction: Direction::Outbound,
                body: answer.to_owned(),
                provider_message_id: None,
                in_reply_to: None,
            },
            usage: reply_usage,
            model_usage: Vec::new(),
        }),
    }
}

/// Stores an inbound SMS without a provider id.
async fn ask(store: &Store, user: UserId, body: &str) -> Message {
    let message = store.insert_message(user, &inbound(body, None)).await;
    message.expect("the inbound message is stored")
}

pub(super) fn reply(body: &str, to: &Message) -> NewMessage {
    NewMessage {
        channel: to.channel,
        direction: Direction::Outbound,
        body: body.to_owned(),
        provider_message_id: None,
        in_reply_to: Some(to.id),
    }
}

/// Stores a reply to `to`, with the given usage rows.
async fn answer(store: &Store, to: &Message, body: &str, usage: &[NewSmsUsage]) -> Result<Message> {
    store
        .insert_reply(to.user_id, &reply(body, to), usage)
        .await
}

pub(super) fn usage(segments: u32) -> NewSmsUsage {
    NewSmsUsage {
        direction: Direction::Outbound,
        segments,
        encoding: SmsEncoding::Gsm7,
        estimated_cost_micros: 7_900 * i64::from(segments),
    }
}

fn assert_conflict<T: Debug>(result: Result<T>, field: &str) {
    match result {
        Err(StoreError::Conflict(f)) => assert_eq!(f, field),
        other => panic!("expected Conflict({field:?}), got {other:?}"),
    }
}

pub(super) fn assert_not_found<T: Debug>(result: Result<T>) {
    assert!(
        matches!(result, Err(StoreError::NotFound)),
        "expected NotFound, got {result:?}"
    );
}

/// Asserts that `user` has no messages, usage rows, open tasks or groceries.
async fn assert_owns_nothing(store: &Store, user: UserId) {
    assert_eq!(store.recent_messages(user, 100).await.expect("history"), []);
    assert_eq!(store.sms_usage(user).await.expect("usage"), []);
    assert_eq!(store.open_tasks(user).await.expect("tasks"), []);
    assert_eq!(store.groceries(user).await.expect("groceries"), []);
}

#[tokio::test]
async fn a_new_user_is_found_by_id_and_by_dedicated_number() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await;
        assert_eq!(user.phone.as_deref(), Some("+15550000001"));
        assert_eq!(user.number.as_deref(), Some("+15559000001"));
        assert_eq!(user.role, Role::Standard);
        assert!(!user.sms_opted_out);

        assert_eq!(store.user(user.id).await.expect("by id"), user);
        let by_number = store.user_by_number("+15559000001").await;
        assert_eq!(by_number.expect("by number"), user);
    })
    .await;
}

#[tokio::test]
async fn an_unknown_user_id_or_number_is_not_found() {
    on_each_backend(|store| async move {
        create(&store, 1).await;
        assert_not_found(store.user(UserId::new()).await);
        // A user's own phone is not a dedicated number.
        assert_not_found(store.user_by_number("+15550000001").await);
        assert_not_found(store.set_sms_opt_out(UserId::new(), true).await);
    })
    .await;
}

#[tokio::test]
async fn a_phone_already_taken_is_a_phone_conflict_and_stores_nothing() {
    on_each_backend(|store| async move {
        create(&store, 1).await;
        let number = "+15559000002".to_owned();
        let same_phone = NewUser {
            number,
            ..new_user(1)
        };
        assert_conflict(store.create_user(&same_phone).await, "phone");
        assert_not_found(store.user_by_number("+15559000002").await);
    })
    .await;
}

#[tokio::test]
async fn a_number_already_taken_is_a_number_conflict_and_stores_nothing() {
    on_each_backend(|store| async move {
        create(&store, 1).await;
        let number = "+15559000001".to_owned();
        let same_number = NewUser {
            number,
            ..new_user(2)
        };
        assert_conflict(store.create_user(&same_number).await, "number");
        // The user row went back with the number: the phone is still free.
        assert_eq!(
            create(&store, 2).await.phone.as_deref(),
            Some("+15550000002")
        );
    })
    .await;
}

#[tokio::test]
async fn many_users_are_created_at_once_skipping_taken_phones_and_numbers() {
    on_each_backend(|store| async move {
        let existing = create(&store, 1).await;
        let mut batch: Vec<NewUser> = (10..2_510)
            .map(|n| NewUser {
                display_name: format!("Bulk {n}"),
                phone: format!("+1999{n:07}"),
                number: format!("+1998{n:07}"),
                language: Language::Fr,
                time_zone: "Europe/Paris".to_owned(),
            })
            .collect();
        // One phone and one number someone already has.
        batch[3].phone = existing.phone.clone().expect("an SMS user has a phone");
        batch[7].number = existing.number.clone().expect("an SMS user has a number");
        let created = store.create_users(&batch).await.expect("bulk create");
        assert_eq!(created.len(), 2_498);

        let found = store
            .user_by_number(&batch[2_000].number)
            .await
            .expect("by number");
        assert_eq!(found.phone.as_deref(), Some(batch[2_000].phone.as_str()));
        assert_eq!(found.language, Language::Fr);
        assert_eq!(found.role, Role::Standard);
        assert!(!found.sms_opted_out);
        assert_eq!(store.user(found.id).await.expect("by id"), found);
        assert_eq!(created[1_998], found.id, "ids come back in the order given");
        assert_not_found(store.user_by_number(&batch[3].number).await);
        assert_eq!(
            store
                .user_by_number(existing.number.as_deref().expect("a number"))
                .await
                .expect("kept"),
            existing
        );

        let again = store.create_users(&batch).await.expect("again");
        assert!(again.is_empty(), "a second run creates nothing");
    })
    .await;
}

#[tokio::test]
async fn opting_out_of_sms_is_remembered_and_can_be_undone() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await;
        store.set_sms_opt_out(user.id, true).await.expect("opt out");
        assert!(store.user(user.id).await.expect("user").sms_opted_out);
        let by_number = store
            .user_by_number(user.number.as_deref().expect("a number"))
            .await;
        assert!(by_number.expect("user").sms_opted_out);

        store.set_sms_opt_out(user.id, false).await.expect("opt in");
        assert!(!store.user(user.id).await.expect("user").sms_opted_out);
    })
    .await;
}

#[tokio::test]
async fn a_repeated_provider_message_id_conflicts_for_the_same_user_only() {
    on_each_backend(|store| async move {
        let (alice, bob) = (create(&store, 1).await.id, create(&store, 2).await.id);
        let sms = inbound("hi", Some("SM1"));
        let first = store.insert_message(alice, &sms).await.expect("first");
        assert_eq!(first.user_id, alice);
        assert_eq!(first.provider_message_id.as_deref(), Some("SM1"));

        assert_conflict(
            store.insert_message(alice, &sms).await,
            "provider_message_id",
        );
        let bobs = store
            .insert_message(bob, &sms)
            .await
            .expect("not a duplicate");

        let found = store.message_by_provider_id(alice, "SM1").await;
        assert_eq!(found.expect("lookup"), Some(first.clone()));
        let found = store.message_by_provider_id(bob, "SM1").await;
        assert_eq!(found.expect("lookup"), Some(bobs));
        let missing = store.message_by_provider_id(alice, "SM2").await;
        assert_eq!(missing.expect("lookup"), None);
        let history = store.recent_messages(alice, 10).await;
        assert_eq!(history.expect("history"), [first]);
    })
    .await;
}

#[tokio::test]
async fn messages_without_a_provider_id_never_conflict() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let web = NewMessage {
            channel: Channel::Web,
            ..inbound("same", None)
        };
        store.insert_message(user, &web).await.expect("first");
        store.insert_message(user, &web).await.expect("second");
        let history = store.recent_messages(user, 10).await.expect("history");
        assert_eq!(history.len(), 2);
        assert!(history.iter().all(|m| m.channel == Channel::Web));
    })
    .await;
}

#[tokio::test]
async fn a_reply_and_its_usage_rows_are_stored_together_pointing_at_the_reply() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let question = ask(&store, user, "what's next?").await;
        let answer = reply("Take out the trash", &question);
        let answer = store
            .insert_reply(user, &answer, &[usage(1), usage(2)])
            .await;
        let answer = answer.expect("reply");
        assert_eq!(answer.direction, Direction::Outbound);
        assert_eq!(answer.in_reply_to, Some(question.id));

        let rows = store.sms_usage(user).await.expect("usage");
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|u| u.message_id == Some(answer.id)));
        assert!(rows.iter().all(|u| u.user_id == user));
        let segments: Vec<u32> = rows.iter().map(|u| u.segments).collect();
        assert_eq!(segments, [1, 2]);
        assert_eq!(rows[1].estimated_cost_micros, 15_800);
        assert_eq!(rows[0].encoding, SmsEncoding::Gsm7);
    })
    .await;
}

#[tokio::test]
async fn a_reply_whose_usage_is_refused_is_not_stored_either() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let question = ask(&store, user, "hi").await;
        // Zero segments breaks a CHECK constraint after the reply row is written.
        let refused = answer(&store, &question, "hello", &[usage(0)]).await;
        assert!(refused.is_err(), "a zero-segment usage row is refused");

        let found = store.reply_to(user, question.id).await;
        assert_eq!(found.expect("reply_to"), None);
        let history = store.recent_messages(user, 10).await;
        assert_eq!(history.expect("history"), [question]);
        assert_eq!(store.sms_usage(user).await.expect("usage"), []);
    })
    .await;
}

#[tokio::test]
async fn reply_to_gives_the_first_reply_and_nothing_before_one_exists() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let question = ask(&store, user, "hi").await;
        let found = store.reply_to(user, question.id).await;
        assert_eq!(found.expect("none yet"), None);

        let first = store
            .insert_reply(user, &reply("first", &question), &[])
            .await;
        let first = first.expect("reply");
        let second = answer(&store, &question, "second", &[usage(1)]).await;
        second.expect("another reply");
        let found = store.reply_to(user, question.id).await;
        assert_eq!(found.expect("reply_to"), Some(first));
    })
    .await;
}

#[tokio::test]
async fn recent_messages_gives_the_last_ones_oldest_first() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        for n in 1..=5 {
            ask(&store, user, &format!("message {n}")).await;
        }
        let last_three = store.recent_messages(user, 3).await.expect("history");
        let bodies: Vec<&str> = last_three.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["message 3", "message 4", "message 5"]);

        let all = store.recent_messages(user, 50).await.expect("history");
        assert_eq!(all.len(), 5);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(store.recent_messages(user, 0).await.expect("history"), []);
    })
    .await;
}

#[tokio::test]
async fn sms_usage_may_be_recorded_without_a_message_or_against_ones_own() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let message = ask(&store, user, "hi").await;
        let received = NewSmsUsage {
            direction: Direction::Inbound,
            ..usage(1)
        };
        let recorded = store.record_sms_usage(user, Some(message.id), &received);
        recorded.await.expect("usage of one's own message");
        let unicode = NewSmsUsage {
            encoding: SmsEncoding::Ucs2,
            ..usage(3)
        };
        let recorded = store.record_sms_usage(user, None, &unicode);
        recorded.await.expect("usage of no message");

        let rows = store.sms_usage(user).await.expect("usage");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].message_id, Some(message.id));
        assert_eq!(rows[0].direction, Direction::Inbound);
        assert_eq!(rows[1].message_id, None);
        assert_eq!(rows[1].encoding, SmsEncoding::Ucs2);
        let unknown = Some(message.id + 100);
        assert_not_found(store.record_sms_usage(user, unknown, &unicode).await);
    })
    .await;
}

#[tokio::test]
async fn tasks_are_added_listed_oldest_first_and_completed_once() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let call = store.add_task(user, "call the dentist").await.expect("add");
        let pay = store.add_task(user, "pay rent").await.expect("add");
        assert!(!call.done && call.completed_at.is_none());
        let open = store.open_tasks(user).await.expect("open");
        assert_eq!(open, [call.clone(), pay.clone()]);

        let done = store.complete_task(user, call.id).await.expect("complete");
        assert!(done.done);
        let completed_at = done.completed_at.expect("a completion time");
        assert!(completed_at >= call.created_at);
        assert_eq!(store.open_tasks(user).await.expect("open"), [pay]);

        let again = store.complete_task(user, call.id).await.expect("again");
        assert_eq!(
            again.completed_at,
            Some(completed_at),
            "the first time stays"
        );
        assert_not_found(store.complete_task(user, call.id + 100).await);
    })
    .await;
}

#[tokio::test]
async fn completing_another_users_task_is_not_found_and_changes_nothing() {
    on_each_backend(|store| async move {
        let (alice, bob) = (create(&store, 1).await.id, create(&store, 2).await.id);
        let task = store.add_task(alice, "file taxes").await.expect("add");
        assert_not_found(store.complete_task(bob, task.id).await);
        assert_eq!(store.open_tasks(alice).await.expect("open"), [task]);
    })
    .await;
}

#[tokio::test]
async fn groceries_are_added_in_order_listed_checked_and_cleared() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        assert_eq!(store.add_groceries(user, &[]).await.expect("none"), []);

        let names = ["milk", "eggs", "coffee"].map(str::to_owned);
        let items = store.add_groceries(user, &names).await.expect("add");
        let added: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(added, names);
        assert!(items.windows(2).all(|w| w[0].id < w[1].id));
        assert!(items.iter().all(|i| !i.checked));
        assert_eq!(store.groceries(user).await.expect("list"), items);

        let eggs = store.check_grocery(user, items[1].id).await.expect("check");
        assert!(eggs.checked);
        let left = store.groceries(user).await.expect("list");
        assert_eq!(left, [items[0].clone(), items[2].clone()]);
        assert_not_found(store.check_grocery(user, items[2].id + 100).await);

        assert_eq!(store.clear_groceries(user).await.expect("clear"), 3);
        assert_eq!(store.groceries(user).await.expect("list"), []);
        assert_eq!(store.clear_groceries(user).await.expect("clear"), 0);
    })
    .await;
}

#[tokio::test]
async fn a_grocery_list_longer_than_one_statement_is_stored_whole_and_in_order() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await.id;
        let names: Vec<String> = (0..2_345).map(|n| format!("item {n}")).collect();
        let items = store.add_groceries(user, &names).await.expect("add");
        let added: Vec<String> = items.into_iter().map(|i| i.name).collect();
        assert_eq!(added, names);
        assert_eq!(
            store.groceries(user).await.expect("list").len(),
            names.len()
        );
    })
    .await;
}

#[tokio::test]
async fn a_user_can_never_read_or_change_another_users_rows() {
    on_each_backend(|store| async move {
        let alice = create(&store, 1).await;
        let bob = create(&store, 2).await.id;
        let question = inbound("private", Some("SMa"));
        let question = store.insert_message(alice.id, &question).await.expect("in");
        let answer = answer(&store, &question, "secret", &[usage(1)]).await;
        let answer = answer.expect("alice's reply");
        let task = store
            .add_task(alice.id, "alice's task")
            .await
            .expect("task");
        let milk = ["alice's milk".to_owned()];
        let items = store
            .add_groceries(alice.id, &milk)
            .await
            .expect("groceries");

        // Reads through Bob see nothing of Alice's.
        assert_owns_nothing(&store, bob).await;
        let found = store.message_by_provider_id(bob, "SMa").await;
        assert_eq!(found.expect("read"), None);
        let found = store.reply_to(bob, question.id).await;
        assert_eq!(found.expect("read"), None);

        // Writes through Bob can neither change nor point at Alice's rows.
        assert_not_found(store.complete_task(bob, task.id).await);
        assert_not_found(store.check_grocery(bob, items[0].id).await);
        assert_eq!(store.clear_groceries(bob).await.expect("clear"), 0);
        let one = usage(1);
        assert_not_found(store.record_sms_usage(bob, Some(answer.id), &one).await);
        let hijack = reply("not yours", &question);
        assert_not_found(store.insert_message(bob, &hijack).await);
        assert_not_found(store.insert_reply(bob, &hijack, &[usage(1)]).await);
        store
            .set_sms_opt_out(bob, true)
            .await
            .expect("bob opts out");

        // Bob still owns nothing, and Alice's data is exactly as she left it.
        assert_owns_nothing(&store, bob).await;
        assert_eq!(store.user(alice.id).await.expect("alice"), alice);
        let history = store.recent_messages(alice.id, 100).await;
        assert_eq!(
            history.expect("history"),
            [question.clone(), answer.clone()]
        );
        let found = store.reply_to(alice.id, question.id).await;
        assert_eq!(found.expect("reply_to"), Some(answer));
        assert_eq!(store.sms_usage(alice.id).await.expect("usage").len(), 1);
        assert_eq!(store.open_tasks(alice.id).await.expect("tasks"), [task]);
        assert_eq!(store.groceries(alice.id).await.expect("groceries"), items);
    })
    .await;
}

fn llm(provider: &str, total: u32, cached: bool) -> NewLlmUsage {
    NewLlmUsage {
        provider: provider.to_owned(),
        model: "m".to_owned(),
        prompt_tokens: total - 10,
        output_tokens: 10,
        total_tokens: total,
        cached,
    }
}

#[tokio::test]
async fn model_usage_is_stored_per_user_and_summed_per_provider() {
    on_each_backend(|store| async move {
        let since = chrono::Utc::now() - chrono::Duration::minutes(1);
        let alice = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let question = ask(&store, alice, "hi").await;
        let reply = answer(&store, &question, "hello", &[])
            .await
            .expect("reply");
        let rows = [llm("gemini", 100, false), llm("gemini", 50, true)];
        store
            .record_llm_usage(alice, Some(reply.id), &rows)
            .await
            .expect("record");
        store
            .record_llm_usage(bob, None, &[llm("fallback", 40, false)])
            .await
            .expect("record a fold's usage");
        store
            .record_llm_usage(bob, None, &[])
            .await
            .expect("nothing to record");

        let mine = store.llm_usage(alice).await.expect("usage");
        assert_eq!(mine.len(), 2);
        assert_eq!(mine[0].message_id, Some(reply.id));
        assert_eq!((mine[0].total_tokens, mine[0].cached), (100, false));
        assert_eq!((mine[1].prompt_tokens, mine[1].cached), (40, true));
        assert_eq!(store.llm_usage(bob).await.expect("usage").len(), 1);

        let totals = store.llm_usage_by_provider(since).await.expect("totals");
        assert_eq!(totals.len(), 2);
        assert_eq!(totals[0].provider, "fallback");
        assert_eq!((totals[0].calls, totals[0].total_tokens), (1, 40));
        assert_eq!(totals[1].provider, "gemini");
        assert_eq!(
            (
                totals[1].calls,
                totals[1].total_tokens,
                totals[1].cached_calls
            ),
            (1, 100, 1)
        );
        let later = chrono::Utc::now() + chrono::Duration::minutes(1);
        assert!(
            store
                .llm_usage_by_provider(later)
                .await
                .expect("none")
                .is_empty()
        );

        // Bob cannot pin usage on Alice's reply.
        let refused = store.record_llm_usage(bob, Some(reply.id), &rows).await;
        assert_not_found(refused);
        assert_eq!(store.llm_usage(bob).await.expect("usage").len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_conversation_summary_is_sealed_replaced_forward_only_and_private() {
    on_each_backend(|store| async move {
        let alice = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        assert_eq!(store.conversation_summary(alice).await.expect("none"), None);
        let first = ask(&store, alice, "one").await;
        let second = ask(&store, alice, "two").await;

        let saved = store
            .save_conversation_summary(alice, "Alice is moving.", first.id, 1)
            .await
            .expect("save");
        let read = store.conversation_summary(alice).await.expect("read");
        assert_eq!(read, Some(saved));
        store
            .save_conversation_summary(alice, "Alice moved on Friday.", second.id, 2)
            .await
            .expect("replace");
        // A late writer folded through an older message: ignored.
        let kept = store
            .save_conversation_summary(alice, "stale", first.id, 1)
            .await
            .expect("stale save is not an error");
        assert_eq!(kept.text, "Alice moved on Friday.");
        let read = store.conversation_summary(alice).await.expect("read");
        let read = read.expect("a summary");
        assert_eq!(read.text, "Alice moved on Friday.");
        assert_eq!(
            (read.through_message_id, read.folded_messages),
            (second.id, 2)
        );

        // Stored sealed, bound to Alice: the raw column says nothing, and copied into
        // Bob's row it does not open.
        let raw: String = with_pool!(store, pool => {
            sqlx::query_scalar("SELECT summary FROM conversation_summaries WHERE user_id = $1")
                .bind(alice.0)
                .fetch_one(pool)
                .await
                .expect("raw summary")
        });
        assert!(raw.starts_with("v1.") && !raw.contains("Friday"), "{raw}");
        let bobs = ask(&store, bob, "hi").await;
        store
            .save_conversation_summary(bob, "Bob's own.", bobs.id, 1)
            .await
            .expect("bob's summary");
        with_pool!(store, pool => {
            sqlx::query("UPDATE conversation_summaries SET summary = $1 WHERE user_id = $2")
                .bind(&raw)
                .bind(bob.0)
                .execute(pool)
                .await
                .expect("copy");
        });
        assert!(matches!(
            store.conversation_summary(bob).await,
            Err(StoreError::Corrupt(_))
        ));

        // Bob cannot fold through Alice's messages.
        let refused = store
            .save_conversation_summary(bob, "hijack", second.id, 9)
            .await;
        assert_not_found(refused);
        let read = store.conversation_summary(alice).await.expect("read");
        assert_eq!(read.expect("kept").text, "Alice moved on Friday.");
    })
    .await;
}

#[tokio::test]
async fn the_sqlite_file_runs_in_wal_mode_with_full_sync_and_foreign_keys_on() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A directory that does not exist yet is created with the file.
    let path = dir.path().join("data").join("nudge.db");
    let store = connect(&format!("sqlite://{}", path.display()), Sealer::generate()).await;
    let store = store.expect("the SQLite store opens");
    assert!(path.exists(), "the database file is created");

    let Pool::Sqlite(pool) = &store.pool else {
        panic!("a sqlite: URL opens a SQLite pool");
    };
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .expect("journal_mode");
    assert_eq!(journal_mode, "wal");
    let flag = |pragma: &'static str| sqlx::query_scalar::<_, i64>(pragma).fetch_one(pool);
    assert_eq!(flag("PRAGMA foreign_keys").await.expect("foreign_keys"), 1);
    let synchronous = flag("PRAGMA synchronous").await.expect("synchronous");
    assert_eq!(synchronous, 2, "synchronous=FULL");
}

#[tokio::test]
async fn a_reopened_sqlite_file_keeps_its_rows_and_migrates_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("nudge.db").display());
    let user = create(
        &connect(&url, Sealer::generate()).await.expect("first open"),
        1,
    )
    .await;
    let store = connect(&url, Sealer::generate())
        .await
        .expect("second open");
    assert_eq!(store.user(user.id).await.expect("still there"), user);
}

/// Migration 0071 rebuilds `messages` on SQLite (to make its dedupe index partial): the
/// messages, what points at them and their ids' sequence come through it unchanged.
#[tokio::test]
async fn the_dedupe_index_rebuild_keeps_every_message_and_what_points_at_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The migrations before the rebuild.
    let (url, pool) =
        super::testing::sqlite_file_at_migration(&dir.path().join("old.db"), 70).await;
    // A user's inbound SMS and its reply, a usage row of each, a memory learnt from the
    // inbound, a model call of the reply; and a third message, deleted: its id is not reused.
    let id = UserId::new();
    let at = "'2026-01-01T00:00:00+00:00'";
    for statement in [
        format!(
            "INSERT INTO users (id, display_name, phone, language, time_zone, created_at) \
             VALUES ($1, 'Old Timer', '+15550001111', 'en', 'UTC', {at})"
        ),
        format!(
            "INSERT INTO messages \
             (id, user_id, channel, direction, body, provider_message_id, created_at) \
             VALUES (1, $1, 'sms', 'inbound', 'hello', 'SM1', {at})"
        ),
        format!(
            "INSERT INTO messages (id, user_id, channel, direction, body, in_reply_to, created_at) \
             VALUES (2, $1, 'sms', 'outbound', 'hi there', 1, {at})"
        ),
        format!(
            "INSERT INTO messages (id, user_id, channel, direction, body, created_at) \
             VALUES (3, $1, 'web', 'inbound', 'gone', {at})"
        ),
        "DELETE FROM messages WHERE id = 3".to_owned(),
        format!(
            "INSERT INTO sms_usage_logs (user_id, message_id, direction, segments, encoding, \
             estimated_cost_micros, created_at) \
             VALUES ($1, 1, 'inbound', 1, 'GSM-7', 7900, {at}), \
                    ($1, 2, 'outbound', 1, 'GSM-7', 7900, {at})"
        ),
        format!(
            "INSERT INTO ltm_memories (user_id, text, kind, tags, importance, source_message_id, \
             created_at, updated_at) VALUES ($1, 'x', 'fact', '', 0.5, 1, {at}, {at})"
        ),
        format!(
            "INSERT INTO llm_usage (user_id, message_id, provider, model, prompt_tokens, \
             output_tokens, total_tokens, cached, created_at) \
             VALUES ($1, 2, 'gemini', 'm', 1, 1, 2, 0, {at})"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(id.0)
            .execute(&pool)
            .await
            .expect("a row of the old schema");
    }
    pool.close().await;

    let store = connect(&url, Sealer::generate())
        .await
        .expect("the whole migration chain");
    let history = store.recent_messages(id, 5).await.expect("the history");
    let bodies: Vec<_> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["hello", "hi there"]);
    assert_eq!(history[1].in_reply_to, Some(1));
    let found = store.message_by_provider_id(id, "SM1").await;
    assert_eq!(found.expect("lookup").map(|m| m.id), Some(1));
    {
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("a sqlite: URL opens a SQLite pool");
        };
        let ids = |sql: &'static str| sqlx::query_scalar::<_, Option<i64>>(sql).fetch_all(pool);
        let usage = ids("SELECT message_id FROM sms_usage_logs ORDER BY id").await;
        assert_eq!(usage.expect("usage rows"), [Some(1), Some(2)]);
        let memory = ids("SELECT source_message_id FROM ltm_memories").await;
        assert_eq!(memory.expect("memories"), [Some(1)]);
        let calls = ids("SELECT message_id FROM llm_usage").await;
        assert_eq!(calls.expect("model calls"), [Some(2)]);
        let broken = ids("SELECT parent IS NULL FROM pragma_foreign_key_check").await;
        assert!(broken.expect("the check").is_empty());
        let on = sqlx::query_scalar::<_, i64>("PRAGMA foreign_keys").fetch_one(pool);
        assert_eq!(
            on.await.expect("foreign_keys"),
            1,
            "back on after the rebuild"
        );
    }
    let next = store
        .insert_message(id, &inbound("again", Some("SM2")))
        .await;
    assert_eq!(next.expect("a new message").id, 4, "3 is not reused");
    assert_conflict(
        store
            .insert_message(id, &inbound("retried", Some("SM1")))
            .await,
        "provider_message_id",
    );
    store
        .erase_user(id, chrono::Utc::now())
        .await
        .expect("erasure");
    let left = store.recent_messages(id, 5).await.expect("the history");
    assert!(
        left.is_empty(),
        "the rebuilt table still cascades: {left:?}"
    );
}

#[tokio::test]
async fn an_in_memory_sqlite_database_is_shared_by_the_whole_pool() {
    let store = in_memory().await;
    assert_eq!(store.backend(), Backend::Sqlite);
    let user = create(&store, 1).await;
    let reads = (0..4).map(|_| store.user(user.id));
    for read in futures::future::join_all(reads).await {
        assert_eq!(read.expect("every connection sees the user"), user);
    }
}

#[tokio::test]
async fn connect_picks_the_backend_by_scheme_and_refuses_unknown_ones() {
    match connect("mysql://localhost/nudge", Sealer::generate()).await {
        Err(StoreError::UnsupportedScheme(scheme)) => assert_eq!(scheme, "mysql"),
        Err(other) => panic!("expected UnsupportedScheme, got {other:?}"),
        Ok(_) => panic!("expected UnsupportedScheme, got a store"),
    }
    let backends = std::sync::Mutex::new(Vec::new());
    on_each_backend(|store| {
        let backends = &backends;
        async move {
            store.ping().await.expect("ping");
            backends.lock().expect("not poisoned").push(store.backend());
        }
    })
    .await;
    let mut expected = vec![Backend::Sqlite];
    if std::env::var_os(POSTGRES_URL_VAR).is_some() {
        expected.push(Backend::Postgres);
    }
    assert_eq!(backends.into_inner().expect("not poisoned"), expected);
}

#[tokio::test]
async fn a_postgresql_store_opens_at_most_the_connections_it_is_given_half_for_each_use() {
    assert_eq!(super::postgres::split(24), (12, 12));
    assert_eq!(super::postgres::split(5), (2, 3));
    assert_eq!(super::postgres::split(2), (1, 1));
    let Some(url) = super::testing::fresh_postgres_url().await else {
        assert!(
            !super::testing::require_postgres(),
            "CI runs this on PostgreSQL"
        );
        return;
    };
    let options = super::StoreOptions {
        postgres_connections: 5,
    };
    let store = super::connect_with(&url, Sealer::generate(), options)
        .await
        .expect("the store opens");
    let Pool::Postgres(pool) = &store.pool else {
        panic!("a PostgreSQL store")
    };
    assert_eq!(pool.options().get_max_connections(), 2, "the pool's share");
    let scopes = store.pg_scopes().expect("scoped connections");
    assert_eq!(scopes.capacity(), 3, "the scoped share");

    // Thirty reads at once of one person's data share those three connections.
    let user = create(&store, 1).await;
    let reads = (0..30).map(|_| store.user(user.id));
    for read in futures::future::join_all(reads).await {
        assert_eq!(read.expect("the read is served"), user);
    }
    let (others,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'nudge' \
         AND pid <> pg_backend_pid()",
    )
    .fetch_one(pool)
    .await
    .expect("the server's sessions");
    assert!(
        others <= 2 + 3,
        "{others} other sessions: more than the five given"
    );
    assert!(
        scopes.idle() >= 1 && scopes.idle() <= 3,
        "{}",
        scopes.idle()
    );
    drop(store);
    super::testing::drop_postgres_database(&url).await;
}

#[tokio::test]
async fn a_summary_fold_rides_with_its_users_message_write_and_a_stale_fold_never_replaces_a_newer()
{
    use super::{MessageWrite, SummaryWrite};
    on_each_backend(|store| async move {
        let ana = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let write = |user, body: &str, summary| MessageWrite {
            user,
            message: inbound(body, None),
            usage: Vec::new(),
            model_usage: Vec::new(),
            summary,
            reply: None,
        };
        // Each fold carries the usage of the model call that wrote it.
        let fold = |text: &str, through, folded: u64| {
            Some(SummaryWrite {
                text: text.into(),
                through_message_id: through,
                folded_messages: folded,
                model_usage: vec![llm("gemini", 100 + folded as u32, false)],
            })
        };
        let ids: Vec<i64> = store
            .write_messages(&[write(ana, "one", None), write(ana, "two", None)])
            .await
            .expect("write")
            .into_iter()
            .map(|w| w.into_message().id)
            .collect();
        // Batched with another user's write, as the group-commit writer does.
        store
            .write_messages(&[
                write(ana, "three", fold("newer fold", ids[1], 2)),
                write(bob, "hi", None),
            ])
            .await
            .expect("a write carrying a fold");
        let stored = store.conversation_summary(ana).await.expect("read");
        let stored = stored.expect("the fold is stored with the write");
        assert_eq!(
            (
                stored.text.as_str(),
                stored.through_message_id,
                stored.folded_messages
            ),
            ("newer fold", ids[1], 2)
        );
        assert!(
            store
                .conversation_summary(bob)
                .await
                .expect("read")
                .is_none()
        );

        store
            .write_messages(&[write(ana, "four", fold("stale fold", ids[0], 1))])
            .await
            .expect("a write carrying a stale fold");
        let kept = store.conversation_summary(ana).await.expect("read");
        assert_eq!(kept.expect("a summary").text, "newer fold");
        assert_eq!(store.recent_messages(ana, 10).await.expect("read").len(), 4);

        // Several users' folds in one batch, one user's twice: each user keeps the newest.
        let four = store.recent_messages(ana, 1).await.expect("read")[0].id;
        store
            .write_messages(&[
                write(ana, "five", fold("ana's newest", four, 4)),
                write(bob, "again", fold("bob's first", ids[1], 1)),
                write(ana, "six", fold("ana's older", ids[1], 3)),
            ])
            .await
            .expect("a batch of folds");
        let text = |user| {
            let store = store.clone();
            async move {
                let summary = store.conversation_summary(user).await.expect("read");
                summary.expect("a summary").text
            }
        };
        assert_eq!(text(ana).await, "ana's newest");
        assert_eq!(text(bob).await, "bob's first");

        // Every fold's model usage is stored, the stale and older ones' too (their calls
        // were made), pointing at no message.
        let folds_usage = |user| {
            let store = store.clone();
            async move {
                let rows = store.llm_usage(user).await.expect("usage");
                assert!(rows.iter().all(|u| u.message_id.is_none()), "{rows:?}");
                let mut tokens: Vec<u32> = rows.iter().map(|u| u.total_tokens).collect();
                tokens.sort_unstable();
                tokens
            }
        };
        assert_eq!(folds_usage(ana).await, [101, 102, 103, 104]);
        assert_eq!(folds_usage(bob).await, [101]);
    })
    .await;
}

#[tokio::test]
async fn a_message_carrying_its_reply_stores_both_in_one_write_and_a_duplicate_stores_no_reply() {
    use super::{MessageWrite, ReplyWrite, Written};
    on_each_backend(|store| async move {
        let ana = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let write = |user, sid: &str, answer: &str| MessageWrite {
            user,
            message: inbound("what's next?", Some(sid)),
            usage: vec![NewSmsUsage {
                direction: Direction::Inbound,
                ..usage(1)
            }],
            model_usage: Vec::new(),
            summary: None,
            reply: Some(ReplyWrite {
                message: NewMessage {
                    in_reply_to: None,
                    ..reply(answer, &ask_shape())
                },
                usage: vec![usage(2)],
                model_usage: Vec::new(),
            }),
        };
        let written = store
            .write_messages(&[
                write(ana, "SM1", "pay rent"),
                write(bob, "SM1", "call mum"),
                write(ana, "SM2", "water plants"),
            ])
            .await
            .expect("batch");
        let mut pairs = Vec::new();
        for w in written {
            match w {
                Written::Answered { message, reply } => {
                    assert_eq!(reply.in_reply_to, Some(message.id));
                    assert_eq!(reply.direction, Direction::Outbound);
                    pairs.push((message, reply));
                }
                other => panic!("expected an answered write, got {other:?}"),
            }
        }
        assert_eq!(pairs[1].1.body, "call mum");
        for (message, reply) in &pairs {
            let stored = store
                .reply_to(message.user_id, message.id)
                .await
                .expect("read");
            assert_eq!(
                stored.as_ref(),
                Some(reply),
                "the reply is stored as given back"
            );
        }
        let usage_rows = store.sms_usage(ana).await.expect("usage");
        let mut pointed: Vec<(Option<i64>, Direction)> = usage_rows
            .iter()
            .map(|u| (u.message_id, u.direction))
            .collect();
        pointed.sort_by_key(|(id, _)| *id);
        let mut expected = vec![
            (Some(pairs[0].0.id), Direction::Inbound),
            (Some(pairs[0].1.id), Direction::Outbound),
            (Some(pairs[2].0.id), Direction::Inbound),
            (Some(pairs[2].1.id), Direction::Outbound),
        ];
        expected.sort_by_key(|(id, _)| *id);
        assert_eq!(pointed, expected, "each message has its own usage row");

        // A retried webhook: the first copy comes back and no second reply is stored.
        let again = store
            .write_messages(&[write(ana, "SM1", "a second answer")])
            .await
            .expect("retry");
        assert!(matches!(&again[..], [Written::Duplicate(m)] if m.id == pairs[0].0.id));
        let messages = store.recent_messages(ana, 50).await.expect("messages");
        assert_eq!(messages.len(), 4, "nothing more was stored: {messages:?}");
        assert_eq!(store.sms_usage(ana).await.expect("usage").len(), 4);
    })
    .await;
}

/// The model usage a reply carries is stored with it, pointing at it, in the batch's
/// transaction: carried by its message's write, or written on its own after it. A retried
/// webhook's copy stores none.
async fn model_usage_rides_with_its_reply(store: Store) {
    use super::{MessageWrite, ReplyWrite, Written};
    let ana = create(&store, 1).await.id;
    let bob = create(&store, 2).await.id;
    let write = |user, sid: &str, calls: Vec<NewLlmUsage>| MessageWrite {
        user,
        message: inbound("what's next?", Some(sid)),
        usage: Vec::new(),
        model_usage: Vec::new(),
        summary: None,
        reply: Some(ReplyWrite {
            message: NewMessage {
                in_reply_to: None,
                ..reply("pay rent", &ask_shape())
            },
            usage: vec![usage(1)],
            model_usage: calls,
        }),
    };
    let written = store
        .write_messages(&[
            write(
                ana,
                "SM1",
                vec![llm("gemini", 120, false), llm("gemini", 40, false)],
            ),
            write(bob, "SM1", vec![llm("fallback", 70, false)]),
            write(ana, "SM2", Vec::new()),
        ])
        .await
        .expect("batch");
    let replies: Vec<Message> = written
        .into_iter()
        .map(|w| match w {
            Written::Answered { reply, .. } => reply,
            other => panic!("expected an answered write, got {other:?}"),
        })
        .collect();
    // In any order: one statement inserts a batch's rows on PostgreSQL.
    let pointed = |rows: Vec<super::LlmUsage>| -> Vec<(Option<i64>, String, u32)> {
        let mut rows: Vec<_> = rows
            .into_iter()
            .map(|u| (u.message_id, u.provider, u.total_tokens))
            .collect();
        rows.sort_unstable_by_key(|row| std::cmp::Reverse(row.2));
        rows
    };
    let of = |user| {
        let store = store.clone();
        async move { pointed(store.llm_usage(user).await.expect("usage")) }
    };
    assert_eq!(
        of(ana).await,
        vec![
            (Some(replies[0].id), "gemini".into(), 120),
            (Some(replies[0].id), "gemini".into(), 40),
        ]
    );
    assert_eq!(
        of(bob).await,
        vec![(Some(replies[1].id), "fallback".into(), 70)]
    );

    // A retried webhook: its copy is skipped, and with it the reply's model usage; a summary
    // fold it carries is stored all the same, with its own usage, pointing at no message.
    let again = store
        .write_messages(&[MessageWrite {
            summary: Some(super::SummaryWrite {
                text: "Ana asked what is next.".into(),
                through_message_id: replies[0].id,
                folded_messages: 2,
                model_usage: vec![llm("gemini", 77, false)],
            }),
            ..write(ana, "SM1", vec![llm("gemini", 999, false)])
        }])
        .await
        .expect("retry");
    assert!(matches!(&again[..], [Written::Duplicate(_)]));
    assert_eq!(
        of(ana).await,
        vec![
            (Some(replies[0].id), "gemini".into(), 120),
            (None, "gemini".into(), 77),
            (Some(replies[0].id), "gemini".into(), 40),
        ],
        "the copy's reply stored no usage, its fold did"
    );

    // A reply written on its own, after its message: its usage points at it.
    let question = store
        .write_messages(&[MessageWrite {
            reply: None,
            ..write(ana, "SM3", Vec::new())
        }])
        .await
        .expect("question")
        .remove(0)
        .into_message();
    let alone = store
        .write_messages(&[MessageWrite {
            user: ana,
            message: reply("later", &question),
            usage: Vec::new(),
            model_usage: vec![llm("gemini", 55, true)],
            summary: None,
            reply: None,
        }])
        .await
        .expect("reply")
        .remove(0)
        .into_message();
    let rows = store.llm_usage(ana).await.expect("usage");
    let [.., last] = &rows[..] else {
        panic!("no usage rows");
    };
    assert_eq!(rows.len(), 4);
    assert_eq!(last.message_id, Some(alone.id));
    assert!(last.cached);
    assert_eq!(
        (last.prompt_tokens, last.output_tokens),
        (45, 10),
        "every column is stored"
    );
    assert_eq!(of(bob).await.len(), 1, "bob's usage is his alone");
}

#[tokio::test]
async fn model_usage_rides_with_its_reply_on_each_backend() {
    on_each_backend(model_usage_rides_with_its_reply).await;
}

#[tokio::test]
async fn model_usage_rides_with_its_reply_on_an_in_memory_database() {
    model_usage_rides_with_its_reply(in_memory().await).await;
}

/// A message shaped like an SMS, only for building replies in tests.
fn ask_shape() -> Message {
    Message {
        id: 0,
        user_id: UserId::new(),
        channel: Channel::Sms,
        direction: Direction::Inbound,
        body: String::new(),
        provider_message_id: None,
        in_reply_to: None,
        created_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn a_committed_write_carries_its_users_memory_fingerprint_read_in_the_same_transaction() {
    use super::{MemoryFingerprint, MemoryKind, NewMemory};
    on_each_backend(|store| async move {
        let ana = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let fact = |text: &str| NewMemory {
            text: text.into(),
            kind: MemoryKind::Preference,
            tags: Vec::new(),
            importance: 0.5,
            source_message_id: None,
        };
        let now = chrono::Utc::now();
        store
            .add_memory(ana, &fact("likes tea"), now)
            .await
            .expect("memory");
        store
            .add_memory(ana, &fact("walks at 7"), now)
            .await
            .expect("memory");
        let committed = store
            .commit_messages(&[note(ana, "one"), note(bob, "two"), note(ana, "three")])
            .await
            .expect("batch");
        let anas = store.memory_fingerprint(ana).await.expect("fingerprint");
        assert_eq!(anas.count, 2);
        assert_eq!(committed[0].memories, anas);
        assert_eq!(committed[2].memories, anas);
        assert_eq!(
            committed[1].memories,
            MemoryFingerprint::default(),
            "Bob has none"
        );
        assert_eq!(
            store.memory_fingerprint(bob).await.expect("fingerprint"),
            MemoryFingerprint::default(),
            "an empty fingerprint reads as the default one"
        );
    })
    .await;
}

/// A turn's model usage is recorded (a read, then a write, in one transaction) while the
/// group-commit writer commits other turns: every record lands. On SQLite a deferred
/// transaction failed here with `SQLITE_BUSY_SNAPSHOT` whenever a batch committed between its
/// read and its write.
#[tokio::test]
async fn model_usage_is_recorded_while_the_writer_commits_other_turns() {
    use super::MessageWrite;
    const ROUNDS: usize = 150;
    on_each_backend(|store| async move {
        let alice = create(&store, 1).await.id;
        let bob = create(&store, 2).await.id;
        let question = ask(&store, alice, "hi").await;
        let reply = answer(&store, &question, "hello", &[])
            .await
            .expect("reply");
        let writes = async {
            for n in 0..ROUNDS {
                let write = MessageWrite {
                    user: bob,
                    message: inbound(&format!("turn {n}"), None),
                    usage: Vec::new(),
                    model_usage: Vec::new(),
                    summary: None,
                    reply: None,
                };
                store.write_messages(&[write]).await.expect("bob's turn");
            }
        };
        let records = async {
            let mut failed = Vec::new();
            for _ in 0..ROUNDS {
                let rows = [llm("gemini", 10, false)];
                if let Err(e) = store.record_llm_usage(alice, Some(reply.id), &rows).await {
                    failed.push(e.to_string());
                }
                tokio::task::yield_now().await;
            }
            failed
        };
        let ((), failed) = tokio::join!(writes, records);
        assert!(
            failed.is_empty(),
            "{} of {ROUNDS} failed: {:?}",
            failed.len(),
            failed.first()
        );
        assert_eq!(store.llm_usage(alice).await.expect("usage").len(), ROUNDS);
    })
    .await;
}

/// What an actor loads at its start, read in one call, is what the single-purpose calls read:
/// the user, their summary, their newest messages oldest first, their memories (a vector and
/// a use time included) and the fingerprint they match; none of another user's rows.
async fn activation_reads_the_users_state(store: Store) {
    use super::{MemoryEmbedding, MemoryFingerprint, MemoryKind, NewMemory};
    let ana = create(&store, 1).await.id;
    let bob = create(&store, 2).await.id;
    let fact = |text: &str| NewMemory {
        text: text.into(),
        kind: MemoryKind::Preference,
        tags: vec!["morning".into()],
        importance: 0.5,
        source_message_id: None,
    };
    let now = chrono::Utc::now();
    let tea = store
        .add_memory(ana, &fact("likes tea"), now)
        .await
        .expect("memory");
    store
        .add_memory(ana, &fact("walks at 7"), now)
        .await
        .expect("memory");
    store
        .add_memory(bob, &fact("bob's secret"), now)
        .await
        .expect("memory");
    let vector = MemoryEmbedding {
        model: "test-embedding".into(),
        values: vec![0.25, -0.5, 1.0],
    };
    assert!(
        store
            .set_memory_embedding(ana, tea.id, tea.updated_at, &vector)
            .await
            .expect("embedding")
    );
    store
        .touch_memories(ana, &[tea.id], now)
        .await
        .expect("used");
    let mut last = None;
    for n in 0..5 {
        let asked = ask(&store, ana, &format!("ana's message {n}")).await;
        last = Some(answer(&store, &asked, "ok", &[]).await.expect("reply"));
    }
    ask(&store, bob, "bob's message").await;
    let through = last.expect("a reply").id - 4;
    store
        .save_conversation_summary(ana, "Ana folded her mornings", through, 6)
        .await
        .expect("summary");

    let loaded = store.activation(ana, 4).await.expect("activation");
    assert_eq!(loaded.user, store.user(ana).await.expect("user"));
    assert_eq!(
        loaded.summary,
        store.conversation_summary(ana).await.expect("summary")
    );
    assert_eq!(
        loaded.recent,
        store.recent_messages(ana, 4).await.expect("recent")
    );
    assert_eq!(loaded.recent.len(), 4);
    assert!(
        loaded.recent.windows(2).all(|w| w[0].id < w[1].id),
        "oldest first"
    );
    assert_eq!(
        loaded.fingerprint,
        store.memory_fingerprint(ana).await.expect("fingerprint")
    );
    assert_eq!(
        loaded.memories,
        store.memories(ana).await.expect("memories")
    );
    assert_eq!(loaded.memories.len(), 2);
    assert_eq!(loaded.memories[0].embedding.as_ref(), Some(&vector));
    assert!(loaded.memories[0].last_used_at.is_some());
    assert!(
        loaded.recent.iter().all(|m| m.user_id == ana)
            && loaded.memories.iter().all(|m| m.text != "bob's secret"),
        "nothing of bob's"
    );

    let bobs = store.activation(bob, 20).await.expect("bob's activation");
    assert_eq!(bobs.summary, None);
    assert_eq!(bobs.recent.len(), 1);
    assert_eq!(bobs.memories.len(), 1);
    assert_eq!(
        bobs.fingerprint,
        store.memory_fingerprint(bob).await.expect("fingerprint")
    );
    let cy = create(&store, 3).await.id;
    let cys = store.activation(cy, 20).await.expect("cy's activation");
    assert!(cys.memories.is_empty());
    assert_eq!(cys.fingerprint, MemoryFingerprint::default(), "no memories");
    assert_eq!(
        cys.fingerprint,
        store.memory_fingerprint(cy).await.expect("fingerprint")
    );
    assert!(matches!(
        store.activation(UserId::new(), 20).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn activation_reads_the_users_state_on_each_backend() {
    on_each_backend(activation_reads_the_users_state).await;
}

#[tokio::test]
async fn activation_reads_the_users_state_on_an_in_memory_database() {
    activation_reads_the_users_state(in_memory().await).await;
}
