//! The recent conversation as a user actor keeps it between turns, and as engines read it.
//!
//! An active user's actor holds its last messages for as long as it lives, so each is kept
//! compact: no user id (the actor owns one user), the body and the SMS id (when there is one)
//! in one exact-size allocation, times in 8 bytes. [`Said::to_message`] gives back the store's
//! [`Message`].

use std::num::NonZeroI64;

use chrono::{DateTime, Utc};

use crate::memory::cached::Stamp;
use crate::store::{Channel, Direction, Message, UserId};

/// One message of the recent conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    /// The store's id: "everything after id N" and replies point at it.
    id: i64,
    /// The body, then the provider's message id (Twilio's `MessageSid`) when there is one:
    /// one allocation of exactly their bytes.
    text: Box<str>,
    /// Where the body ends in `text`.
    body_len: u32,
    /// For a reply, the id of the inbound message it answers (store ids start at 1).
    in_reply_to: Option<NonZeroI64>,
    at: Stamp,
    channel: Channel,
    direction: Direction,
    /// Whether `text` carries a provider id after the body (it may be empty).
    has_provider_id: bool,
}

impl Said {
    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn body(&self) -> &str {
        &self.text[..self.body_len as usize]
    }

    /// Twilio's `MessageSid` of an inbound SMS: the dedupe key of retried webhooks.
    pub fn provider_message_id(&self) -> Option<&str> {
        self.has_provider_id
            .then(|| &self.text[self.body_len as usize..])
    }

    pub fn in_reply_to(&self) -> Option<i64> {
        self.in_reply_to.map(NonZeroI64::get)
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.at.time()
    }

    /// The message as the store gives it, for `user` (whose actor holds it).
    pub fn to_message(&self, user: UserId) -> Message {
        Message {
            id: self.id,
            user_id: user,
            channel: self.channel,
            direction: self.direction,
            body: self.body().to_owned(),
            provider_message_id: self.provider_message_id().map(str::to_owned),
            in_reply_to: self.in_reply_to(),
            created_at: self.created_at(),
        }
    }
}

impl From<&Message> for Said {
    fn from(message: &Message) -> Self {
        let sid = message.provider_message_id.as_deref();
        let body_len = message.body.len();
        // Exactly the bytes needed: the allocator keeps slack it cannot split off.
        let mut text = String::with_capacity(body_len + sid.map_or(0, str::len));
        text.push_str(&message.body);
        text.push_str(sid.unwrap_or_default());
        Self {
            id: message.id,
            text: text.into_boxed_str(),
            // A body past 4 GiB cannot be stored; clamped rather than wrapped all the same.
            body_len: u32::try_from(body_len).unwrap_or(u32::MAX),
            in_reply_to: message.in_reply_to.and_then(NonZeroI64::new),
            at: Stamp::new(message.created_at),
            channel: message.channel,
            direction: message.direction,
            has_provider_id: sid.is_some(),
        }
    }
}

impl From<Message> for Said {
    fn from(message: Message) -> Self {
        Self::from(&message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sid: Option<&str>, in_reply_to: Option<i64>) -> Message {
        Message {
            id: 12,
            user_id: UserId::new(),
            channel: Channel::Sms,
            direction: Direction::Inbound,
            body: "call mom".into(),
            provider_message_id: sid.map(str::to_owned),
            in_reply_to,
            created_at: DateTime::from_timestamp_nanos(1_780_000_000_123_456_789),
        }
    }

    #[test]
    fn a_said_message_gives_back_the_message_it_was_made_of() {
        for (sid, in_reply_to) in [
            (None, None),
            (Some("SM0123456789abcdef0123456789abcdef"), None),
            (Some(""), Some(3)),
        ] {
            let stored = message(sid, in_reply_to);
            let said = Said::from(&stored);
            assert_eq!(said.to_message(stored.user_id), stored);
            assert_eq!(said.body(), "call mom");
            assert_eq!(said.provider_message_id(), sid);
            assert_eq!(said.in_reply_to(), in_reply_to);
        }
    }

    #[test]
    fn a_said_message_is_smaller_than_a_message() {
        assert!(size_of::<Said>() <= 48, "{}", size_of::<Said>());
    }
}
