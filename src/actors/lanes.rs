//! Lanes: the active user actors, for turns that go straight to them.
//!
//! Every turn used to pass through the [`Directory`](super::directory): one more mailbox, one
//! more task woken, and one actor that every turn of the node queued behind. A user's actor
//! now has a [`Lane`] while it is active, and a turn whose user has one is sent down it
//! directly; only a user without one (passivated, or their actor being replaced) goes through
//! the Directory, which activates the actor and opens its lane.
//!
//! Passivation stays race-free. A lane counts the turns sent down it, and the Directory
//! closes it only when the actor reports having handled exactly that many; counting a turn
//! and closing the lane are one atomic step each on the same word, so a turn is either
//! counted before the close (and the close fails: the actor stays) or refused by the closed
//! lane (and goes through the Directory, which activates a new actor).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use ractor::ActorRef;

use super::user::UserMsg;
use crate::store::UserId;

/// The top bit of a lane's word: set once the lane is closed.
const CLOSED: u64 = 1 << 63;

/// The way to one active user actor, with the count of the turns sent down it.
#[derive(Debug)]
pub struct Lane {
    actor: ActorRef<UserMsg>,
    gate: Gate,
}

impl Lane {
    /// A new, open lane to `actor`, counting `routed` turns already sent to it.
    fn new(actor: ActorRef<UserMsg>, routed: u64) -> Arc<Self> {
        Arc::new(Self {
            actor,
            gate: Gate::new(routed),
        })
    }

    pub fn actor(&self) -> &ActorRef<UserMsg> {
        &self.actor
    }

    /// The count of turns sent down the lane, and whether it is closed.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }
}

/// Turns counted through a lane (the low 63 bits of one word), and whether it is closed (the
/// top bit).
#[derive(Debug)]
pub struct Gate(AtomicU64);

impl Gate {
    pub fn new(routed: u64) -> Self {
        Self(AtomicU64::new(routed & !CLOSED))
    }

    /// Counts a turn about to be sent: false (nothing counted) once the gate is closed.
    pub fn enter(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (word & CLOSED == 0).then(|| word + 1)
            })
            .is_ok()
    }

    /// Takes back the count of a turn that could not be sent (the actor had stopped).
    pub fn leave(&self) {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (word & !CLOSED > 0).then(|| word - 1)
            })
            .ok();
    }

    /// Closes the gate if exactly `handled` turns were counted (none is on its way), and says
    /// whether it did.
    pub fn close_if_routed(&self, handled: u64) -> bool {
        self.0
            .compare_exchange(
                handled,
                handled | CLOSED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Closes the gate whatever is on its way (the actor is gone or replaced).
    pub fn close(&self) {
        self.0.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// Turns counted.
    #[cfg(test)]
    fn routed(&self) -> u64 {
        self.0.load(Ordering::Acquire) & !CLOSED
    }

    #[cfg(test)]
    fn is_closed(&self) -> bool {
        self.0.load(Ordering::Acquire) & CLOSED != 0
    }
}

/// The open lanes, by user: read by every turn, changed only by the Directory.
#[derive(Debug, Default)]
pub struct Lanes {
    by_user: DashMap<UserId, Arc<Lane>>,
}

impl Lanes {
    /// The user's lane, if their actor is active.
    pub fn get(&self, user_id: UserId) -> Option<Arc<Lane>> {
        self.by_user.get(&user_id).map(|lane| lane.clone())
    }

    /// Opens a lane to `actor` for the user, counting `routed` turns already sent to it, and
    /// closes the one it replaces.
    pub(super) fn open(&self, user_id: UserId, actor: ActorRef<UserMsg>, routed: u64) -> Arc<Lane> {
        let lane = Lane::new(actor, routed);
        if let Some(old) = self.by_user.insert(user_id, lane.clone()) {
            old.gate.close();
        }
        lane
    }

    /// Closes and removes the user's lane if it is `lane`.
    pub(super) fn remove(&self, user_id: UserId, lane: &Arc<Lane>) {
        lane.gate.close();
        self.by_user
            .remove_if(&user_id, |_, open| Arc::ptr_eq(open, lane));
    }

    /// Every open lane (a restarted Directory adopts them).
    pub(super) fn all(&self) -> Vec<(UserId, Arc<Lane>)> {
        self.by_user
            .iter()
            .map(|entry| (*entry.key(), entry.value().clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_closes_only_when_every_counted_turn_was_handled() {
        let gate = Gate::new(0);
        assert!(gate.enter() && gate.enter());
        assert!(!gate.close_if_routed(1), "a turn is still on its way");
        assert!(!gate.is_closed());
        assert!(gate.close_if_routed(2));
        assert!(gate.is_closed());
        assert!(!gate.enter(), "a closed gate counts nothing");
        assert_eq!(gate.routed(), 2);
    }

    #[test]
    fn a_turn_that_could_not_be_sent_is_taken_back() {
        let gate = Gate::new(3);
        assert!(gate.enter());
        gate.leave();
        assert_eq!(gate.routed(), 3);
        assert!(gate.close_if_routed(3));
        gate.leave();
        assert_eq!(gate.routed(), 2, "taken back after the close too");
        assert!(gate.is_closed());
        let empty = Gate::new(0);
        empty.leave();
        assert_eq!(empty.routed(), 0, "never below zero");
    }

    #[test]
    fn a_close_never_strands_a_counted_turn() {
        // Threads count turns while another closes as soon as the count it last saw is all
        // handled: every turn counted before the close is one the closer saw, and none after.
        for _ in 0..50 {
            let gate = Arc::new(Gate::new(0));
            let entered = Arc::new(AtomicU64::new(0));
            let senders: Vec<_> = (0..4)
                .map(|_| {
                    let (gate, entered) = (gate.clone(), entered.clone());
                    std::thread::spawn(move || {
                        for _ in 0..1_000 {
                            if gate.enter() {
                                entered.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    })
                })
                .collect();
            let mut closed_at = None;
            for _ in 0..100_000 {
                let seen = gate.routed();
                if gate.close_if_routed(seen) {
                    closed_at = Some(seen);
                    break;
                }
            }
            for sender in senders {
                sender.join().expect("a sender thread panicked");
            }
            let total = entered.load(Ordering::SeqCst);
            match closed_at {
                Some(seen) => assert_eq!(total, seen, "a turn got through a closed gate"),
                None => assert_eq!(total, 4_000),
            }
        }
    }
}
