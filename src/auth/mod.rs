//! Authentication primitives: password hashing and policy, access tokens and their signing
//! key ring, opaque tokens stored as hashes, and the TOTP second factor.
//!
//! Pure functions and small types only: the store keeps what they produce, the HTTP edge
//! (`edges::api`) composes them into sign-in, refresh, MFA and the rest. Everything that
//! depends on time takes it from the caller, so tests run on a fixed clock.

pub mod password;
pub mod throttle;
pub mod tokens;
pub mod totp;
