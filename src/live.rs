//! Live push: the per-user registry of open WebSockets on this node, and the events they
//! carry.
//!
//! Each socket subscribes under its user's id and gets a bounded queue; [`LiveHub::publish`]
//! puts one event in every queue of that user — and of no one else. A socket too slow to
//! drain its queue misses live events rather than slowing the sender; messages are stored, so
//! it gets them back on its next resume (`?after=<last id>`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::store::{Message, UserId};

/// Events queued per socket before live ones are dropped for it.
const QUEUE: usize = 64;

/// One event pushed to a user's clients, serialised as JSON with a `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A stored message of the conversation (inbound or reply, any channel).
    Message {
        id: i64,
        direction: &'static str,
        channel: &'static str,
        body: String,
        created_at: DateTime<Utc>,
    },
    /// A reminder fired.
    Reminder {
        firing_id: i64,
        reminder_id: i64,
        body: String,
        due_at: DateTime<Utc>,
        late: bool,
    },
    /// The morning digest went out (its text, as sent by SMS).
    Digest { text: String },
    /// The assistant is working on a reply.
    Typing,
    /// The user's tasks or reminders changed: a client reloads its lists.
    TaskChanged,
}

impl Event {
    /// The event of a stored message.
    pub fn message(message: &Message) -> Self {
        Event::Message {
            id: message.id,
            direction: message.direction.as_str(),
            channel: message.channel.as_str(),
            body: message.body.clone(),
            created_at: message.created_at,
        }
    }
}

/// One open socket: its id in the hub and its queue.
type Socket = (u64, mpsc::Sender<Event>);

/// The registry of open sockets on this node, cheap to clone.
#[derive(Clone, Default)]
pub struct LiveHub {
    sockets: Arc<DashMap<UserId, Vec<Socket>>>,
    next_id: Arc<AtomicU64>,
}

/// A socket's place in the hub; dropping it unsubscribes.
pub struct Subscription {
    hub: LiveHub,
    user: UserId,
    id: u64,
    /// The socket's queue.
    pub events: mpsc::Receiver<Event>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let empty = match self.hub.sockets.get_mut(&self.user) {
            Some(mut list) => {
                list.retain(|(id, _)| *id != self.id);
                list.is_empty()
            }
            None => false,
        };
        if empty {
            self.hub
                .sockets
                .remove_if(&self.user, |_, list| list.is_empty());
        }
    }
}

impl LiveHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a socket of `user`.
    pub fn subscribe(&self, user: UserId) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, events) = mpsc::channel(QUEUE);
        self.sockets.entry(user).or_default().push((id, sender));
        Subscription {
            hub: self.clone(),
            user,
            id,
            events,
        }
    }

    /// Queues `event` on every open socket of `user`; how many took it.
    pub fn publish(&self, user: UserId, event: &Event) -> usize {
        let Some(list) = self.sockets.get(&user) else {
            return 0;
        };
        list.iter()
            .filter(|(_, sender)| sender.try_send(event.clone()).is_ok())
            .count()
    }

    /// Open sockets of `user` on this node.
    pub fn connections(&self, user: UserId) -> usize {
        self.sockets.get(&user).map_or(0, |list| list.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_reaches_every_socket_of_its_user_and_no_other() {
        let hub = LiveHub::new();
        let (ana, bob) = (UserId::new(), UserId::new());
        let mut first = hub.subscribe(ana);
        let mut second = hub.subscribe(ana);
        let mut other = hub.subscribe(bob);
        assert_eq!(hub.publish(ana, &Event::Typing), 2);
        assert_eq!(first.events.recv().await, Some(Event::Typing));
        assert_eq!(second.events.recv().await, Some(Event::Typing));
        assert!(other.events.try_recv().is_err());
        drop(first);
        drop(second);
        assert_eq!(hub.connections(ana), 0);
        assert_eq!(hub.publish(ana, &Event::TaskChanged), 0);
    }

    #[test]
    fn events_serialise_with_a_type() {
        let json = serde_json::to_value(Event::TaskChanged).expect("json");
        assert_eq!(json, serde_json::json!({"type": "task_changed"}));
    }
}
