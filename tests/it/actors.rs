//! The actor tree in-process: supervision restarts a crashed user actor, passivation and
//! reactivation, on every database.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use nudge::actors::notifier::NotifierArgs;
use nudge::actors::routes::Route;
use nudge::actors::user::{InboundTurn, TurnOutcome};
use nudge::actors::user_supervisor::RestartPolicy;
use nudge::actors::{ActorSystem, SystemOptions, TurnDeps, TurnError};
use nudge::agent::offline::OfflineRules;
use nudge::agent::{AgentError, Reply, TurnEngine, TurnInput};
use nudge::live::{Event, LiveHub};
use nudge::store::{
    self, Channel, Direction, Language, NewUser, Sealer, Store, StoreWriter, UserId,
};
use tokio_util::task::TaskTracker;

use crate::helpers::databases;

/// The offline engine, except that the message "boom" makes it panic mid-turn, "fail" makes
/// it fail, and "slow" or "quick" make it answer whether the message is stored yet ("slow"
/// after taking 300 ms, as a model call would).
struct PanicsOnBoom(OfflineRules);

#[async_trait]
impl TurnEngine for PanicsOnBoom {
    async fn respond(&self, store: &Store, input: TurnInput<'_>) -> Result<Reply, AgentError> {
        match input.text {
            "boom" => panic!("injected failure mid-turn"),
            "fail" => Err(AgentError::Store(store::StoreError::NotFound)),
            "slow" | "quick" => {
                if input.text == "slow" {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let messages = store.recent_messages(input.user.id, 50).await?;
                let stored = messages.iter().any(|m| m.body == input.text);
                let text = if stored {
                    "stored first"
                } else {
                    "not stored yet"
                };
                Ok(Reply::rules(text.into()))
            }
            _ => self.0.respond(store, input).await,
        }
    }
}

async fn system(store: Store, idle: Duration, policy: RestartPolicy) -> ActorSystem {
    system_with(
        store,
        idle,
        policy,
        Arc::new(PanicsOnBoom(OfflineRules)),
        LiveHub::new(),
    )
    .await
}

async fn system_with(
    store: Store,
    idle: Duration,
    policy: RestartPolicy,
    engine: Arc<dyn TurnEngine>,
    live: LiveHub,
) -> ActorSystem {
    ActorSystem::start(
        TurnDeps {
            store: store.clone(),
            writer: StoreWriter::start(store.clone()),
            engine,
            idle_passivate: idle,
            memory: Default::default(),
            live,
        },
        NotifierArgs {
            store,
            twilio: None,
            status_callback: None,
            tasks: TaskTracker::new(),
            circuit: Default::default(),
        },
        SystemOptions { restart: policy },
    )
    .await
    .expect("start actor system")
}

async fn new_user(store: &Store) -> UserId {
    store
        .create_user(&NewUser {
            display_name: "Ana".into(),
            phone: "+14155550101".into(),
            number: "+14155559001".into(),
            language: Language::En,
            time_zone: "Europe/Paris".into(),
        })
        .await
        .expect("create user")
        .id
}

/// A store at `url` with one user, and an actor system over it that keeps actors active.
async fn started(url: &str) -> (Store, UserId, ActorSystem) {
    let store = store::connect(url, Sealer::generate()).await.unwrap();
    let user = new_user(&store).await;
    let actors = system(
        store.clone(),
        Duration::from_secs(600),
        RestartPolicy::default(),
    )
    .await;
    (store, user, actors)
}

fn turn(body: &str) -> InboundTurn {
    InboundTurn {
        channel: Channel::Sms,
        body: body.into(),
        provider_message_id: Some(nudge::sms::twilio::new_message_sid()),
        segments: None,
        received_at: Utc::now(),
    }
}

const WAIT: Duration = Duration::from_secs(10);

async fn say(actors: &ActorSystem, user: UserId, body: &str) -> Result<TurnOutcome, TurnError> {
    actors.turn(user, turn(body), WAIT).await
}

#[tokio::test]
async fn a_user_actor_that_panics_mid_turn_is_restarted_and_loses_nothing_persisted() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let store = store::connect(&db.url, Sealer::generate()).await.unwrap();
        let user = new_user(&store).await;
        let actors = system(
            store.clone(),
            Duration::from_secs(600),
            RestartPolicy::default(),
        )
        .await;

        let reply = say(&actors, user, "add task call the bank").await.unwrap();
        assert!(reply.reply.unwrap().contains("call the bank"));
        let before = actors.lookup(user).await.expect("active").get_id();

        let crashed = say(&actors, user, "boom").await;
        assert!(
            matches!(crashed, Err(TurnError::Interrupted)),
            "[{}] {crashed:?}",
            db.label
        );

        let after = actors.lookup(user).await.expect("restarted").get_id();
        assert_ne!(
            before, after,
            "the supervisor put a new actor in place [{}]",
            db.label
        );
        let list = say(&actors, user, "tasks").await.unwrap().reply.unwrap();
        assert!(list.contains("call the bank"), "[{}] {list}", db.label);

        let messages = store.recent_messages(user, 100).await.unwrap();
        let bodies: Vec<(Direction, &str)> = messages
            .iter()
            .map(|m| (m.direction, m.body.as_str()))
            .collect();
        assert_eq!(bodies.len(), 5, "[{}] {bodies:?}", db.label);
        assert_eq!(
            bodies[2],
            (Direction::Inbound, "boom"),
            "the crashing message is kept, once"
        );
        assert_eq!(bodies[3], (Direction::Inbound, "tasks"));
        let snapshot = actors.inspect(user).await.expect("snapshot");
        assert_eq!(
            snapshot.recent.len(),
            5,
            "the restarted actor reloaded its history"
        );
        actors.shutdown(WAIT).await;
    }
}

#[tokio::test]
async fn a_user_actor_that_keeps_crashing_is_given_up_on_until_the_window_passes() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let store = store::connect(&db.url, Sealer::generate()).await.unwrap();
    let user = new_user(&store).await;
    let policy = RestartPolicy {
        max_restarts: 2,
        window: Duration::from_millis(1500),
    };
    let actors = system(store.clone(), Duration::from_secs(600), policy).await;

    // Each "boom" turn crashes twice (the handle retries once): the third crash passes the limit.
    assert!(say(&actors, user, "boom").await.is_err());
    let given_up = say(&actors, user, "boom").await;
    assert!(given_up.is_err());
    let refused = say(&actors, user, "tasks").await;
    assert!(
        matches!(refused, Err(TurnError::Unavailable)),
        "{refused:?}"
    );

    tokio::time::sleep(Duration::from_millis(1700)).await;
    let back = say(&actors, user, "tasks").await;
    assert!(
        back.is_ok(),
        "after the window the user is served again: {back:?}"
    );
    actors.shutdown(WAIT).await;
}

#[tokio::test]
async fn an_idle_user_actor_is_passivated_and_reactivates_with_its_history() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let store = store::connect(&db.url, Sealer::generate()).await.unwrap();
        let user = new_user(&store).await;
        let actors = system(
            store.clone(),
            Duration::from_millis(300),
            RestartPolicy::default(),
        )
        .await;

        say(&actors, user, "add task stretch").await.unwrap();
        assert!(actors.lookup(user).await.is_some());
        assert_eq!(actors.active_users().await, 1);

        let mut passivated = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if actors.lookup(user).await.is_none() {
                passivated = true;
                break;
            }
        }
        assert!(
            passivated,
            "the actor was not passivated within 5 s [{}]",
            db.label
        );
        assert_eq!(actors.active_users().await, 0);

        let list = say(&actors, user, "tasks").await.unwrap().reply.unwrap();
        assert!(list.contains("stretch"), "[{}] {list}", db.label);
        let snapshot = actors.inspect(user).await.expect("reactivated");
        assert_eq!(snapshot.turns_handled, 1, "a fresh actor");
        assert_eq!(
            snapshot.recent.len(),
            4,
            "history reloaded from the store [{}]",
            db.label
        );
        assert_eq!(snapshot.recent[0].body, "add task stretch");
        actors.shutdown(WAIT).await;
    }
}

#[tokio::test]
async fn turns_of_one_user_run_in_arrival_order_while_other_users_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let store = store::connect(&db.url, Sealer::generate()).await.unwrap();
    let ana = new_user(&store).await;
    let bob = store
        .create_user(&NewUser {
            display_name: "Bob".into(),
            phone: "+33612345678".into(),
            number: "+33755559002".into(),
            language: Language::Fr,
            time_zone: "Europe/Paris".into(),
        })
        .await
        .unwrap()
        .id;
    let actors = system(
        store.clone(),
        Duration::from_secs(600),
        RestartPolicy::default(),
    )
    .await;

    let mut handles = Vec::new();
    for i in 0..20 {
        let actors = actors.clone();
        let who = if i % 2 == 0 { ana } else { bob };
        handles.push(tokio::spawn(async move {
            actors
                .turn(who, turn(&format!("add task t{i:02}")), WAIT)
                .await
        }));
        // Spawned in order; the Directory sees them in order.
        tokio::task::yield_now().await;
    }
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let ana_tasks = store.open_tasks(ana).await.unwrap();
    let bob_tasks = store.open_tasks(bob).await.unwrap();
    assert_eq!(ana_tasks.len(), 10);
    assert_eq!(bob_tasks.len(), 10);
    assert!(ana_tasks.iter().all(|t| {
        t.title
            .trim_start_matches('t')
            .parse::<u32>()
            .is_ok_and(|n| n % 2 == 0)
    }));
    assert!(bob_tasks.iter().all(|t| {
        t.title
            .trim_start_matches('t')
            .parse::<u32>()
            .is_ok_and(|n| n % 2 == 1)
    }));
    actors.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warmed_actor_has_its_state_loaded_and_passivating_then_warming_again_at_once_works() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let store = store::connect(&db.url, Sealer::generate()).await.unwrap();
    let user = new_user(&store).await;
    let actors = system(
        store.clone(),
        Duration::from_secs(600),
        RestartPolicy::default(),
    )
    .await;
    say(&actors, user, "add task water the plants")
        .await
        .unwrap();
    let route = Route {
        user_id: user,
        phone: Some("+14155550101".into()),
    };
    actors.routes().remember("+14155559001", route.clone());
    assert_eq!(actors.routes().get("+14155559001"), Some(route));
    assert!(actors.passivate(user).await);
    actors.warm(user, WAIT).await.expect("warmed");
    assert_eq!(
        actors.routes().get("+14155559001"),
        None,
        "a passivated user's number is forgotten"
    );
    assert!(actors.passivate(user).await);

    let mut ids = Vec::new();
    for _ in 0..200 {
        // Right after a passivation, the next activation must get a new, working actor.
        actors.warm(user, WAIT).await.expect("warmed");
        let snapshot = actors.inspect(user).await.expect("active");
        assert!(snapshot.loaded, "warming loads the state");
        assert_eq!(snapshot.recent.len(), 2, "history loaded");
        ids.push(actors.lookup(user).await.expect("active").get_id());
        assert!(actors.passivate(user).await);
    }
    ids.dedup();
    assert_eq!(ids.len(), 200, "each activation is a new actor");
    let list = say(&actors, user, "tasks").await.unwrap().reply.unwrap();
    assert!(list.contains("water the plants"), "{list}");
    assert_eq!(actors.active_users().await, 1);
    assert!(
        !actors.passivate(UserId::new()).await,
        "nobody to passivate"
    );
    assert!(
        actors.warm(UserId::new(), WAIT).await.is_err(),
        "an unknown user cannot be loaded"
    );
    actors.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_quick_answer_is_stored_with_its_message_and_a_slow_one_after_it() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let (store, user, actors) = started(&db.url).await;

        let quick = say(&actors, user, "quick").await.unwrap().reply;
        assert_eq!(
            quick.as_deref(),
            Some("not stored yet"),
            "[{}] one commit for both",
            db.label
        );
        let slow = say(&actors, user, "slow").await.unwrap().reply;
        assert_eq!(
            slow.as_deref(),
            Some("stored first"),
            "[{}] a slow answer does not keep the message from being durable",
            db.label
        );

        let messages = store.recent_messages(user, 100).await.unwrap();
        let stored: Vec<(Direction, &str, Option<i64>)> = messages
            .iter()
            .map(|m| (m.direction, m.body.as_str(), m.in_reply_to))
            .collect();
        assert_eq!(
            stored,
            [
                (Direction::Inbound, "quick", None),
                (Direction::Outbound, "not stored yet", Some(messages[0].id)),
                (Direction::Inbound, "slow", None),
                (Direction::Outbound, "stored first", Some(messages[2].id)),
            ],
            "[{}]",
            db.label
        );
        let usage = store.sms_usage(user).await.unwrap();
        assert_eq!(
            usage.len(),
            4,
            "[{}] a usage row per SMS: {usage:?}",
            db.label
        );
        actors.shutdown(WAIT).await;
    }
}

#[tokio::test]
async fn a_turn_that_fails_keeps_its_message_and_answers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let (store, user, actors) = started(&db.url).await;

        let failed = say(&actors, user, "fail").await;
        assert!(
            matches!(failed, Err(TurnError::Agent(_))),
            "[{}] {failed:?}",
            db.label
        );
        let messages = store.recent_messages(user, 100).await.unwrap();
        assert_eq!(messages.len(), 1, "[{}] {messages:?}", db.label);
        assert_eq!(
            (messages[0].direction, messages[0].body.as_str()),
            (Direction::Inbound, "fail")
        );
        let snapshot = actors.inspect(user).await.expect("snapshot");
        assert_eq!(
            snapshot.recent.len(),
            1,
            "[{}] the actor holds it too",
            db.label
        );
        actors.shutdown(WAIT).await;
    }
}

#[tokio::test]
async fn a_retried_webhook_the_actor_no_longer_holds_gets_the_stored_reply_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let (store, user, actors) = started(&db.url).await;
        say(&actors, user, "hi").await.unwrap();

        // A message answered behind the actor's back (as by an earlier life of it).
        let sid = nudge::sms::twilio::new_message_sid();
        let old = store
            .insert_message(
                user,
                &store::NewMessage {
                    channel: Channel::Sms,
                    direction: Direction::Inbound,
                    body: "what's next?".into(),
                    provider_message_id: Some(sid.clone()),
                    in_reply_to: None,
                },
            )
            .await
            .unwrap();
        let answered = store
            .insert_reply(
                user,
                &store::NewMessage {
                    channel: Channel::Sms,
                    direction: Direction::Outbound,
                    body: "the first answer".into(),
                    provider_message_id: None,
                    in_reply_to: Some(old.id),
                },
                &[],
            )
            .await
            .unwrap();
        let before = store.recent_messages(user, 100).await.unwrap().len();

        let retried = actors
            .turn(
                user,
                InboundTurn {
                    provider_message_id: Some(sid),
                    ..turn("what's next?")
                },
                WAIT,
            )
            .await
            .unwrap();
        assert!(retried.duplicate, "[{}]", db.label);
        assert_eq!(retried.reply.as_deref(), Some("the first answer"));
        assert_eq!(retried.reply_id, Some(answered.id));
        let after = store.recent_messages(user, 100).await.unwrap().len();
        assert_eq!(after, before, "[{}] nothing more was stored", db.label);
        actors.shutdown(WAIT).await;
    }
}

/// The events an open client of the user gets for one turn that adds a task, answered by
/// `engine`.
async fn pushed_for_a_turn(engine: Arc<dyn TurnEngine>) -> Vec<Event> {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let store = store::connect(&db.url, Sealer::generate()).await.unwrap();
    let user = new_user(&store).await;
    let live = LiveHub::new();
    let mut client = live.subscribe(user);
    let actors = system_with(
        store,
        Duration::from_secs(600),
        RestartPolicy::default(),
        engine,
        live,
    )
    .await;
    say(&actors, user, "add task call the bank").await.unwrap();
    let mut events = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(300), client.events.recv()).await
    {
        events.push(event);
    }
    events
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|event| match event {
            Event::Message { direction, .. } => *direction,
            Event::Typing => "typing",
            Event::TaskChanged => "task_changed",
            _ => "other",
        })
        .collect()
}

#[tokio::test]
async fn clients_see_the_assistant_typing_only_when_a_model_may_take_a_while() {
    // The rules answer at once: the message, its reply, the lists' change, no typing first.
    let rules = pushed_for_a_turn(Arc::new(OfflineRules)).await;
    assert_eq!(
        kinds(&rules),
        ["inbound", "outbound", "task_changed"],
        "{rules:?}"
    );
    // An engine that may call a model: typing first.
    let model = pushed_for_a_turn(Arc::new(PanicsOnBoom(OfflineRules))).await;
    assert_eq!(
        kinds(&model),
        ["typing", "inbound", "outbound", "task_changed"],
        "{model:?}"
    );
}
