//! Passwords: argon2id hashing with documented, configurable parameters, and the policy a new
//! password must meet.
//!
//! # Parameters
//!
//! Hashes are argon2id (RFC 9106), version 0x13, 16-byte random salt, 32-byte output, in PHC
//! string form (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), so each hash carries the
//! parameters it was made with. The defaults are OWASP's first recommendation for argon2id:
//! m = 19 MiB, t = 2, p = 1 (`NUDGE_ARGON2_M_KIB`, `NUDGE_ARGON2_T`, `NUDGE_ARGON2_P`).
//! When the configured parameters change, a successful sign-in re-hashes the password with the
//! new ones ([`Verified::needs_rehash`]).
//!
//! # Policy (NIST SP 800-63B)
//!
//! At least [`MIN_CHARS`] characters, at most [`MAX_CHARS`]; any characters (spaces and emoji
//! included); refused when common: listed in the compiled-in list of common passwords, made of
//! a listed word padded with digits or symbols, a repeated or sequential run, or containing
//! the person's email name. No composition rules and no periodic expiry by default.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// Most characters a password may have (hashing cost stays bounded).
pub const MAX_CHARS: usize = 256;

/// The compiled-in list of common passwords and base words.
const COMMON: &str = include_str!("common-passwords.txt");

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            m_kib: Params::DEFAULT_M_COST,
            t: Params::DEFAULT_T_COST,
            p: Params::DEFAULT_P_COST,
        }
    }
}

impl HashParams {
    /// Checks the parameters are ones argon2 accepts.
    pub fn validate(&self) -> Result<(), String> {
        Params::new(self.m_kib, self.t, self.p, None)
            .map(|_| ())
            .map_err(|e| format!("invalid argon2 parameters: {e}"))
    }

    fn hasher(&self) -> Result<Argon2<'static>, PasswordError> {
        let params =
            Params::new(self.m_kib, self.t, self.p, None).map_err(|_| PasswordError::Params)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Why hashing or verifying failed (never because the password is wrong: that is
/// [`Verified::ok`] = false).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("invalid argon2 parameters")]
    Params,
    #[error("the stored password hash is malformed")]
    MalformedHash,
    #[error("argon2 failed")]
    Hashing,
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    /// The hash was made with other parameters (or another algorithm) than the configured
    /// ones: re-hash the password now that it is known.
    pub needs_rehash: bool,
}

/// Hashes `password` with fresh salt. CPU-heavy: call from a blocking thread.
pub fn hash(params: &HashParams, password: &str) -> Result<String, PasswordError> {
    let hasher = params.hasher()?;
    hasher
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hashing)
}

/// Checks `password` against `stored` in constant time (argon2's output comparison), and
/// says whether the hash should be upgraded. CPU-heavy: call from a blocking thread.
pub fn verify(
    params: &HashParams,
    password: &str,
    stored: &str,
) -> Result<Verified, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::MalformedHash)?;
    let current = match Params::try_from(&parsed) {
        Ok(p) => {
            parsed.algorithm.as_str() == "argon2id"
                && parsed.version == Some(0x13)
                && p.m_cost() == params.m_kib
                && p.t_cost() == params.t
                && p.p_cost() == params.p
        }
        Err(_) => return Err(PasswordError::MalformedHash),
    };
    let hasher = params.hasher()?;
    let ok = hasher.verify_password(password.as_bytes(), &parsed).is_ok();
    Ok(Verified {
        ok,
        needs_rehash: ok && !current,
    })
}

/// A hash of a random password, verified against when the email is unknown, so that a
/// sign-in for an unknown account takes as long as one for a known account.
pub fn decoy_hash(params: &HashParams) -> Result<String, PasswordError> {
    let random: [u8; 16] = rand::random();
    let text: String = random.iter().map(|b| format!("{b:02x}")).collect();
    hash(params, &text)
}

/// Why a new password is refused; the message is shown to the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the password must have at least {MIN_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_CHARS} characters")]
    TooLong,
    #[error("this password is too common; pick a longer phrase only you would think of")]
    Common,
    #[error("the password must not contain your email address")]
    ContainsEmail,
}

/// Checks a new password against the policy. `email` is the person's, if known.
pub fn policy(password: &str, email: Option<&str>) -> Result<(), PolicyError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PolicyError::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PolicyError::TooLong);
    }
    let lower = password.to_lowercase();
    if let Some(name) = email.and_then(|e| e.split('@').next())
        && name.chars().count() >= 4
        && lower.contains(&name.to_lowercase())
    {
        return Err(PolicyError::ContainsEmail);
    }
    if is_common(&lower) {
        return Err(PolicyError::Common);
    }
    Ok(())
}

/// True for a (lower-cased) password that guessers try early.
fn is_common(lower: &str) -> bool {
    let listed = |candidate: &str| COMMON.lines().any(|line| line == candidate);
    if listed(lower) {
        return true;
    }
    // A listed word padded with digits and symbols ("Password2024!!", "!!sunshine123").
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    if core.is_empty() || listed(core) {
        return true;
    }
    // The same word over and over ("monkeymonkey").
    if let Some(unit) = repeated_unit(core)
        && (listed(unit) || unit.chars().count() <= 4)
    {
        return true;
    }
    few_distinct(lower) || sequential(lower)
}

/// The shortest unit `text` is a repetition of, if it repeats at least twice.
fn repeated_unit(text: &str) -> Option<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    (1..=n / 2).find_map(|len| {
        if !n.is_multiple_of(len) {
            return None;
        }
        let unit_end = chars.get(len).map_or(text.len(), |(i, _)| *i);
        let unit = &text[..unit_end];
        (text == unit.repeat(n / len)).then_some(unit)
    })
}

/// Three different characters or fewer ("aaaaaaaaaaaa", "abababababab").
fn few_distinct(text: &str) -> bool {
    let mut seen: Vec<char> = Vec::new();
    for c in text.chars() {
        if !seen.contains(&c) {
            seen.push(c);
            if seen.len() > 3 {
                return false;
            }
        }
    }
    true
}

/// Each character one after the previous, up or down ("123456789012" wraps digits too).
fn sequential(text: &str) -> bool {
    let codes: Vec<u32> = text.chars().map(u32::from).collect();
    let step = |a: u32, b: u32, dir: i64| {
        let (a, b) = (i64::from(a), i64::from(b));
        b - a == dir
            || (a == i64::from(b'9') && b == i64::from(b'0') && dir == 1)
            || (a == i64::from(b'0') && b == i64::from(b'9') && dir == -1)
    };
    [1, -1]
        .iter()
        .any(|dir| codes.windows(2).all(|w| step(w[0], w[1], *dir)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashParams {
        HashParams {
            m_kib: 64,
            t: 1,
            p: 1,
        }
    }

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let stored = hash(&cheap(), "correct horse staple").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(
            verify(&cheap(), "correct horse staple", &stored)
                .unwrap()
                .ok
        );
        assert!(
            !verify(&cheap(), "correct horse stapler", &stored)
                .unwrap()
                .ok
        );
    }

    #[test]
    fn a_hash_made_with_other_parameters_asks_for_a_rehash_only_when_it_matches() {
        let stored = hash(&cheap(), "correct horse staple").unwrap();
        let stronger = HashParams {
            m_kib: 128,
            ..cheap()
        };
        let checked = verify(&stronger, "correct horse staple", &stored).unwrap();
        assert!(checked.ok && checked.needs_rehash);
        let wrong = verify(&stronger, "wrong horse staple", &stored).unwrap();
        assert!(!wrong.ok && !wrong.needs_rehash);
        let same = verify(&cheap(), "correct horse staple", &stored).unwrap();
        assert!(same.ok && !same.needs_rehash);
    }

    #[test]
    fn a_malformed_stored_hash_is_an_error_not_a_panic() {
        for bad in [
            "",
            "plain",
            "$argon2id$v=19$m=zz$",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$",
        ] {
            assert!(
                verify(&cheap(), "whatever password", bad).is_err()
                    || !verify(&cheap(), "whatever password", bad).unwrap().ok,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_policy_wants_twelve_characters_and_counts_characters_not_bytes() {
        assert_eq!(policy("short pass", None), Err(PolicyError::TooShort));
        assert_eq!(policy("ééééééééééé", None), Err(PolicyError::TooShort));
        assert!(policy("tea kettle on the moon", None).is_ok());
        assert!(policy("🐢 slow and steady 🐢", None).is_ok());
        assert_eq!(policy(&"x1".repeat(200), None), Err(PolicyError::TooLong));
    }

    #[test]
    fn common_passwords_and_their_padded_variants_are_refused() {
        for common in [
            "password1234",
            "Password2024!!",
            "!!sunshine123456",
            "123456789012",
            "aaaaaaaaaaaa",
            "abababababab",
            "monkeymonkey",
            "qwertyuiop12",
            "abcdefghijkl",
            "987654321098",
            "Motdepasse123",
        ] {
            assert_eq!(policy(common, None), Err(PolicyError::Common), "{common}");
        }
    }

    #[test]
    fn a_password_containing_the_email_name_is_refused() {
        assert_eq!(
            policy("ana.lopez is great", Some("Ana.Lopez@example.com")),
            Err(PolicyError::ContainsEmail)
        );
        assert!(policy("walnut harbour lamp", Some("ana@example.com")).is_ok());
    }
}
