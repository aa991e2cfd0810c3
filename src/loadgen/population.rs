//! The simulated population: user `i` (from 0) texts from its own phone to its own dedicated
//! number, both derived from `i`, so the seeder and the load generator agree without sharing
//! anything but the count.
//!
//! The numbers live in the North American area codes 999 (phones) and 998 (dedicated
//! numbers), which are reserved and never assigned: a benchmark population cannot collide
//! with a real person.

use crate::store::{Language, NewUser};

/// Most users a population can have: the seven digits after the area code.
pub const MAX_USERS: u64 = 10_000_000;

/// The phone user `i` texts from.
pub fn phone(i: u64) -> String {
    format!("+1999{i:07}")
}

/// The dedicated number of user `i`.
pub fn number(i: u64) -> String {
    format!("+1998{i:07}")
}

/// User `i` as the seeder creates it. Every tenth user speaks French, so both languages'
/// replies are exercised.
pub fn new_user(i: u64) -> NewUser {
    NewUser {
        display_name: format!("Load {i}"),
        phone: phone(i),
        number: number(i),
        language: if i % 10 == 9 {
            Language::Fr
        } else {
            Language::En
        },
        time_zone: "America/New_York".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::is_e164;

    #[test]
    fn phones_and_numbers_are_valid_distinct_and_derived_from_the_index() {
        for i in [0, 1, 9_999, MAX_USERS - 1] {
            assert!(is_e164(&phone(i)), "{}", phone(i));
            assert!(is_e164(&number(i)), "{}", number(i));
            assert_ne!(phone(i), number(i));
        }
        assert_eq!(phone(42), "+19990000042");
        assert_eq!(number(42), "+19980000042");
        assert_eq!(new_user(19).language, Language::Fr);
        assert_eq!(new_user(18).language, Language::En);
    }
}
