//! Who owns each dedicated number, for users whose actor is active.
//!
//! Every SMS webhook names the dedicated number it was sent to, and the edge must find its
//! owner (and the owner's own phone, to refuse texts from anyone else) before a turn can run.
//! Asking the database each time costs a query per message, which on SQLite is a hand-off to
//! a connection's thread and back: a large share of a turn's cost. So the edge remembers the
//! owner it read, and the [`Directory`](super::directory) forgets it when it passivates that
//! user's actor (or loses it): a number is resolved from the database at most once per
//! stretch of conversation, and what is remembered is never older than the user's actor,
//! whose copy of the user already governs its turns.
//!
//! Whatever changes a user's phone or dedicated number must therefore passivate that user's
//! actor (nothing does today: numbers are assigned once).

use dashmap::DashMap;

use crate::store::UserId;

/// The owner of a dedicated number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub user_id: UserId,
    /// The user's own phone: the only sender whose texts reach this user (`None`: no phone
    /// linked, so no sender does).
    pub phone: Option<String>,
}

/// Routes of active users, shared by the SMS edge (which reads and fills it) and the
/// Directory (which empties it as users are passivated).
#[derive(Debug, Default)]
pub struct NumberRoutes {
    by_number: DashMap<String, Route>,
    /// The reverse, so forgetting a user costs a lookup, not a scan.
    by_user: DashMap<UserId, String>,
}

impl NumberRoutes {
    /// The owner of `number`, if remembered.
    pub fn get(&self, number: &str) -> Option<Route> {
        self.by_number.get(number).map(|r| r.clone())
    }

    /// Remembers that `number` belongs to `route.user_id` (read from the database just now).
    pub fn remember(&self, number: &str, route: Route) {
        if let Some(previous) = self.by_user.insert(route.user_id, number.to_owned())
            && previous != number
        {
            self.by_number.remove(&previous);
        }
        self.by_number.insert(number.to_owned(), route);
    }

    /// Forgets the number of `user_id` (their actor is passivated or gone).
    pub fn forget(&self, user_id: UserId) {
        if let Some((_, number)) = self.by_user.remove(&user_id) {
            self.by_number
                .remove_if(&number, |_, route| route.user_id == user_id);
        }
    }

    /// How many numbers are remembered.
    pub fn len(&self) -> usize {
        self.by_number.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_number.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(user_id: UserId, phone: &str) -> Route {
        Route {
            user_id,
            phone: Some(phone.to_owned()),
        }
    }

    #[test]
    fn a_remembered_number_is_found_until_its_user_is_forgotten() {
        let routes = NumberRoutes::default();
        let (ana, bob) = (UserId::new(), UserId::new());
        routes.remember("+15550001", route(ana, "+1999001"));
        routes.remember("+15550002", route(bob, "+1999002"));
        assert_eq!(routes.get("+15550001"), Some(route(ana, "+1999001")));
        routes.forget(ana);
        assert_eq!(routes.get("+15550001"), None);
        assert_eq!(routes.get("+15550002"), Some(route(bob, "+1999002")));
        assert_eq!(routes.len(), 1);
        routes.forget(ana);
        assert_eq!(routes.len(), 1, "forgetting twice changes nothing");
    }

    #[test]
    fn a_user_whose_number_changed_keeps_only_the_new_one() {
        let routes = NumberRoutes::default();
        let ana = UserId::new();
        routes.remember("+15550001", route(ana, "+1999001"));
        routes.remember("+15550009", route(ana, "+1999001"));
        assert_eq!(routes.get("+15550001"), None);
        assert!(routes.get("+15550009").is_some());
        routes.forget(ana);
        assert!(routes.is_empty());
    }

    #[test]
    fn forgetting_a_user_leaves_a_number_since_given_to_someone_else() {
        let routes = NumberRoutes::default();
        let (ana, bob) = (UserId::new(), UserId::new());
        routes.remember("+15550001", route(ana, "+1999001"));
        routes.remember("+15550001", route(bob, "+1999002"));
        routes.forget(ana);
        assert_eq!(routes.get("+15550001"), Some(route(bob, "+1999002")));
    }
}
