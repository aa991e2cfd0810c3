//! Tokens: short-lived signed access tokens (JWT, HS256) and opaque random tokens (refresh
//! tokens, trusted-device tokens, recovery codes) stored only as hashes.
//!
//! # Access tokens
//!
//! HS256 JWTs whose header names the signing key (`kid`: the first 8 hex digits of the key's
//! SHA-256, as for sealing keys). The [`JwtKeys`] ring signs with its first key and verifies
//! with any key it holds, so a key rotates by putting the new key first and dropping the old
//! one once the longest-lived access token signed with it has expired. Expiry is checked
//! against the caller's clock, not the system's, so tests can fix time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::seal;
use crate::store::{Role, UserId};

/// Length of an HS256 signing key (the same as a sealing key: one parser serves both rings).
pub const KEY_LEN: usize = seal::KEY_LEN;
/// Issuer and audience written into, and required of, every access token.
const ISSUER: &str = "nudge";

/// Why a key ring could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the key ring is empty")]
    Empty,
    /// A key is not 32 bytes of base64 (the reason says which).
    #[error("{0}")]
    Invalid(String),
}

struct RingKey {
    id: String,
    secret: [u8; KEY_LEN],
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The access-token signing keys: signs with the first, verifies with any. Cheap to clone.
#[derive(Clone)]
pub struct JwtKeys {
    inner: Arc<Ring>,
}

struct Ring {
    active: usize,
    keys: Vec<RingKey>,
    by_id: HashMap<String, usize>,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.inner.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("JwtKeys").field("kids", &ids).finish()
    }
}

impl JwtKeys {
    /// A ring from raw keys, the first one active.
    pub fn new(keys: &[[u8; KEY_LEN]]) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let keys: Vec<RingKey> = keys
            .iter()
            .map(|secret| RingKey {
                id: seal::key_id(secret),
                secret: *secret,
                encoding: EncodingKey::from_secret(secret),
                decoding: DecodingKey::from_secret(secret),
            })
            .collect();
        let by_id = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.id.clone(), i))
            .collect();
        Ok(Self {
            inner: Arc::new(Ring {
                active: 0,
                keys,
                by_id,
            }),
        })
    }

    /// Parses base64 keys separated by commas or whitespace, the active one first.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let keys = seal::decode_keys(text).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Self::new(&keys)
    }

    /// A ring of one fresh random key.
    pub fn generate() -> Self {
        let key: [u8; KEY_LEN] = rand::random();
        match Self::new(&[key]) {
            Ok(keys) => keys,
            Err(_) => unreachable!("one key is a valid ring"),
        }
    }

    /// The id of the signing key.
    pub fn active_kid(&self) -> &str {
        &self.active().id
    }

    fn active(&self) -> &RingKey {
        &self.inner.keys[self.inner.active]
    }

    /// Signs claims with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let key = self.active();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.id.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|_| TokenError::Invalid)
    }

    /// Verifies a token's signature (with the key its `kid` names), issuer, audience and
    /// expiry at `now`, and returns its claims.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        if token.len() > 4096 {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let index = header
            .kid
            .as_deref()
            .and_then(|kid| self.inner.by_id.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        let key = &self.inner.keys[*index];
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the caller's clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?;
        if data.claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }

    /// A keyed hash (HMAC-SHA256 under the active key) for short secrets that must not be
    /// stored in the clear but are too short for a plain hash (SMS codes): `<kid>.<hex>`.
    pub fn mac(&self, label: &str, data: &str) -> String {
        let key = self.active();
        format!("{}.{}", key.id, mac_hex(&key.secret, label, data))
    }

    /// Checks a value made by [`JwtKeys::mac`] in constant time.
    pub fn verify_mac(&self, label: &str, data: &str, stored: &str) -> bool {
        let Some((kid, hex)) = stored.split_once('.') else {
            return false;
        };
        let Some(index) = self.inner.by_id.get(kid) else {
            return false;
        };
        let expected = mac_hex(&self.inner.keys[*index].secret, label, data);
        constant_time_eq(expected.as_bytes(), hex.as_bytes())
    }
}

fn mac_hex(secret: &[u8], label: &str, data: &str) -> String {
    // HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(label.as_bytes());
    mac.update(b"\0");
    mac.update(data.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Byte strings compared without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed or its signature is wrong")]
    Invalid,
    #[error("the token was signed with a key that is no longer trusted")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user.
    pub sub: UserId,
    /// The role when the token was issued (checked again against the store on admin routes).
    pub role: Role,
    /// The session (refresh-token family) the token belongs to: revoking it refuses this.
    pub sid: Uuid,
    /// When the password was checked, seconds since the epoch: "fresh" means recent.
    pub auth_time: i64,
    /// Whether a second factor was checked at sign-in.
    pub mfa: bool,
    /// The password is past the configured maximum age: only changing it is allowed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pwd_expired: bool,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

impl AccessClaims {
    /// Claims for a session, valid for `ttl` from `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        user: UserId,
        role: Role,
        sid: Uuid,
        auth_time: DateTime<Utc>,
        mfa: bool,
        pwd_expired: bool,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Self {
        Self {
            sub: user,
            role,
            sid,
            auth_time: auth_time.timestamp(),
            mfa,
            pwd_expired,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            iss: ISSUER.to_owned(),
            aud: ISSUER.to_owned(),
        }
    }
}

/// A fresh opaque token: 32 random bytes, base64url.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How an opaque token is stored: SHA-256, hex. The tokens are random, so a plain hash is
/// enough (no guessing from the hash), and lookups by hash take no secret comparison.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key as operators store it (standard base64).
pub fn encode_key(key: &[u8; KEY_LEN]) -> String {
    seal::encode_key(key)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn claims(now: DateTime<Utc>) -> AccessClaims {
        AccessClaims::new(
            UserId::new(),
            Role::Standard,
            Uuid::now_v7(),
            now,
            false,
            false,
            now,
            Duration::minutes(15),
        )
    }

    #[test]
    fn a_token_verifies_until_it_expires_by_the_callers_clock() {
        let keys = JwtKeys::generate();
        let issued = claims(at(0));
        let token = keys.sign(&issued).unwrap();
        assert_eq!(keys.verify(&token, at(60)).unwrap(), issued);
        assert_eq!(keys.verify(&token, at(15 * 60)), Err(TokenError::Expired));
    }

    #[test]
    fn the_header_names_the_key_and_a_rotated_ring_still_verifies_old_tokens() {
        let old: [u8; 32] = rand::random();
        let new: [u8; 32] = rand::random();
        let before = JwtKeys::new(&[old]).unwrap();
        let token = before.sign(&claims(at(0))).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(before.active_kid()));

        let rotated =
            JwtKeys::from_text(&format!("{}, {}", encode_key(&new), encode_key(&old))).unwrap();
        assert!(rotated.verify(&token, at(1)).is_ok());
        let fresh = rotated.sign(&claims(at(0))).unwrap();
        assert_eq!(before.verify(&fresh, at(1)), Err(TokenError::UnknownKey));
        let dropped = JwtKeys::new(&[new]).unwrap();
        assert_eq!(dropped.verify(&token, at(1)), Err(TokenError::UnknownKey));
    }

    #[test]
    fn forged_and_garbage_tokens_are_refused() {
        let keys = JwtKeys::generate();
        let other = JwtKeys::generate();
        let token = other.sign(&claims(at(0))).unwrap();
        assert!(keys.verify(&token, at(1)).is_err());
        // Same kid, other key: the signature is wrong.
        let mut parts: Vec<String> = keys
            .sign(&claims(at(0)))
            .unwrap()
            .split('.')
            .map(str::to_owned)
            .collect();
        let forged_claims = claims(at(0));
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        assert_eq!(
            keys.verify(&parts.join("."), at(1)),
            Err(TokenError::Invalid)
        );
        for garbage in ["", "a.b.c", "eyJ.eyJ.sig", &"x".repeat(10_000)] {
            assert!(keys.verify(garbage, at(1)).is_err());
        }
        // alg "none" is refused.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(at(0))).unwrap())
        );
        assert!(keys.verify(&none, at(1)).is_err());
    }

    #[test]
    fn macs_verify_only_their_own_label_and_data() {
        let keys = JwtKeys::generate();
        let stored = keys.mac("phone-code", "user:123456");
        assert!(keys.verify_mac("phone-code", "user:123456", &stored));
        assert!(!keys.verify_mac("phone-code", "user:123457", &stored));
        assert!(!keys.verify_mac("other", "user:123456", &stored));
        assert!(!keys.verify_mac("phone-code", "user:123456", "nonsense"));
    }

    #[test]
    fn opaque_tokens_are_random_and_hashed() {
        let a = random_token();
        assert_ne!(a, random_token());
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_eq!(token_hash(&a).len(), 64);
        assert!(!token_hash(&a).contains(&a));
    }

    #[test]
    fn debug_output_shows_key_ids_only() {
        let key: [u8; 32] = rand::random();
        let keys = JwtKeys::new(&[key]).unwrap();
        let text = format!("{keys:?}");
        assert!(text.contains(keys.active_kid()));
        assert!(!text.contains(&encode_key(&key)));
    }
}
