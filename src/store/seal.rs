//! Column sealing: personal text (notes, memories, tokens, message bodies) is stored
//! encrypted with AES-256-GCM, so a copy of the database file or a backup leaks nothing.
//!
//! A sealed value is text: `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`.
//! - a fresh random 96-bit nonce per value;
//! - the key id names which key of the [`Sealer`]'s ring sealed it, so keys rotate: new
//!   values use the active (first) key, old values still open with the key that sealed them,
//!   and a re-seal pass moves them to the active key;
//! - associated data binds a value to its place (`"<table>.<column>:<user id>"`, see
//!   [`Sealer::seal`]): a value copied into another user's row or another column fails to open.
//!
//! The key id is derived from the key (the first 8 hex digits of its SHA-256), so operators
//! only ever handle keys, never names for them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::{StoreError, UserId};

/// Length of an AES-256 key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// Length of AES-GCM's authentication tag.
const TAG_LEN: usize = 16;
const VERSION: &str = "v1";

/// Why a sealed value could not be opened, or a key not loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed with key {0}, which is not in the key ring")]
    UnknownKey(String),
    #[error("sealed value failed authentication (wrong key, place or tampered)")]
    Tampered,
    #[error("invalid master key: {0}")]
    InvalidKey(String),
}

/// One AES-256 key and its derived id.
#[derive(Clone)]
struct RingKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The key ring: seals with the active key, opens with any key it holds. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    inner: Arc<Ring>,
}

struct Ring {
    active: RingKey,
    by_id: HashMap<String, RingKey>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.inner.by_id.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("Sealer")
            .field("active", &self.inner.active.id)
            .field("keys", &ids)
            .finish()
    }
}

impl Sealer {
    /// A ring from raw keys; the first is the active one.
    pub fn new(keys: &[[u8; KEY_LEN]]) -> Result<Self, SealError> {
        let mut ring: Vec<RingKey> = Vec::with_capacity(keys.len());
        for key in keys {
            let cipher = Aes256Gcm::new_from_slice(key)
                .map_err(|_| SealError::InvalidKey("not 32 bytes".into()))?;
            ring.push(RingKey {
                id: key_id(key),
                cipher,
            });
        }
        let active = ring
            .first()
            .cloned()
            .ok_or_else(|| SealError::InvalidKey("the key ring is empty".into()))?;
        let by_id = ring.into_iter().map(|k| (k.id.clone(), k)).collect();
        Ok(Self {
            inner: Arc::new(Ring { active, by_id }),
        })
    }

    /// Parses a key ring as operators write it: base64 keys (standard or URL-safe alphabet)
    /// separated by commas or whitespace, the active key first.
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        Self::new(&decode_keys(text)?)
    }

    /// A ring with one fresh random key (tests, and first runs of the embedded default).
    pub fn generate() -> Self {
        let key = generate_key();
        // A freshly generated 32-byte key always makes a valid ring.
        match Self::new(&[key]) {
            Ok(sealer) => sealer,
            Err(_) => unreachable!("a 32-byte key is a valid AES-256 key"),
        }
    }

    /// The id of the key new values are sealed with.
    pub fn active_key_id(&self) -> &str {
        &self.inner.active.id
    }

    /// Seals `plaintext` for the place named by `aad` (e.g. `"notes.body:<user id>"`).
    pub fn seal(&self, aad: &str, plaintext: &str) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let key = &self.inner.active;
        // nonce ‖ ciphertext ‖ tag, the text encrypted where it lies: one buffer, then the
        // sealed text written straight from it.
        let mut blob = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(plaintext.as_bytes());
        let tag = match key.cipher.encrypt_inout_detached(
            &Nonce::from(nonce_bytes),
            aad.as_bytes(),
            (&mut blob[NONCE_LEN..]).into(),
        ) {
            Ok(tag) => tag,
            // AES-GCM encryption only fails for inputs beyond 64 GiB.
            Err(_) => unreachable!("AES-GCM refuses only inputs over 64 GiB"),
        };
        blob.extend_from_slice(&tag);
        let mut sealed =
            String::with_capacity(VERSION.len() + key.id.len() + 2 + blob.len().div_ceil(3) * 4);
        sealed.push_str(VERSION);
        sealed.push('.');
        sealed.push_str(&key.id);
        sealed.push('.');
        URL_SAFE_NO_PAD.encode_string(&blob, &mut sealed);
        sealed
    }

    /// Opens a value sealed for the place `aad`.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<String, SealError> {
        let (key_id, blob) = split(sealed)?;
        let key = self
            .inner
            .by_id
            .get(key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_owned()))?;
        let mut blob = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| SealError::Malformed)?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let text_end = blob.len() - TAG_LEN;
        let nonce = Nonce::try_from(&blob[..NONCE_LEN]).map_err(|_| SealError::Malformed)?;
        let tag = Tag::try_from(&blob[text_end..]).map_err(|_| SealError::Malformed)?;
        // Decrypted where it lies, then the nonce taken off the front: the text is the buffer.
        key.cipher
            .decrypt_inout_detached(
                &nonce,
                aad.as_bytes(),
                (&mut blob[NONCE_LEN..text_end]).into(),
                &tag,
            )
            .map_err(|_| SealError::Tampered)?;
        blob.truncate(text_end);
        blob.drain(..NONCE_LEN);
        String::from_utf8(blob).map_err(|_| SealError::Malformed)
    }

    /// Seals `text` for `column` (`table.column`) of `user`'s row.
    pub(crate) fn seal_column(&self, column: &str, user: UserId, text: &str) -> String {
        self.seal(&place(column, user), text)
    }

    /// Opens a value of a sealed column of `user`'s (`column` is `table.column`). A value
    /// without the `v1.` envelope was stored before the column was sealed and is returned as
    /// it is; one that fails to open is corrupt.
    pub(crate) fn open_column(
        &self,
        column: &str,
        user: UserId,
        value: &str,
    ) -> Result<String, StoreError> {
        match self.open(&place(column, user), value) {
            Ok(plain) => Ok(plain),
            Err(SealError::Malformed) if !value.starts_with("v1.") => Ok(value.to_owned()),
            Err(error) => Err(StoreError::Corrupt(format!("{column}: {error}"))),
        }
    }

    /// True when `sealed` was sealed with a key other than the active one (a rotation
    /// pass re-seals those).
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        split(sealed).is_ok_and(|(id, _)| id != self.inner.active.id)
    }
}

/// The place a sealed column value belongs to, used as associated data.
pub fn place(column: &str, user: UserId) -> String {
    // As `format!("{column}:{user}")` writes it, without the formatting machinery: this runs
    // for every sealed value.
    let mut id = uuid::Uuid::encode_buffer();
    let id = user.0.hyphenated().encode_lower(&mut id);
    let mut place = String::with_capacity(column.len() + 1 + id.len());
    place.push_str(column);
    place.push(':');
    place.push_str(id);
    place
}

fn split(sealed: &str) -> Result<(&str, &str), SealError> {
    let mut parts = sealed.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(id), Some(blob)) if !id.is_empty() => Ok((id, blob)),
        _ => Err(SealError::Malformed),
    }
}

/// Keys as operators write them: base64 (standard or URL-safe alphabet) 32-byte keys,
/// separated by commas or whitespace. Used by every key ring (sealing, token signing).
pub fn decode_keys(text: &str) -> Result<Vec<[u8; KEY_LEN]>, SealError> {
    text.split([',', ' ', '\n', '\r', '\t'])
        .filter(|part| !part.is_empty())
        .map(decode_key)
        .collect()
}

/// The id of a key: the first 8 hex digits of its SHA-256.
pub fn key_id(key: &[u8; KEY_LEN]) -> String {
    let digest = Sha256::digest(key);
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_key(text: &str) -> Result<[u8; KEY_LEN], SealError> {
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .map_err(|_| SealError::InvalidKey("not base64".into()))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        SealError::InvalidKey(format!(
            "{} bytes; a key is {KEY_LEN} bytes of base64",
            bytes.len()
        ))
    })
}

/// A fresh random key.
pub fn generate_key() -> [u8; KEY_LEN] {
    rand::random()
}

/// A key as operators store it (standard base64).
pub fn encode_key(key: &[u8; KEY_LEN]) -> String {
    STANDARD.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_names_its_column_and_user_as_formatting_would() {
        let user = UserId::new();
        assert_eq!(
            place("messages.body", user),
            format!("messages.body:{user}")
        );
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_place() {
        let sealer = Sealer::generate();
        let sealed = sealer.seal("notes.body:alice", "meds at 8am");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("meds"));
        assert_eq!(
            sealer.open("notes.body:alice", &sealed).unwrap(),
            "meds at 8am"
        );
        assert_eq!(
            sealer.open("notes.body:bob", &sealed),
            Err(SealError::Tampered)
        );
    }

    #[test]
    fn sealed_values_keep_their_envelope() {
        // nonce ‖ ciphertext ‖ tag in unpadded URL-safe base64, as the values already stored
        // were sealed: checked both ways against the AEAD's one-shot functions.
        use aes_gcm::aead::{Aead, Payload};
        let key = generate_key();
        let sealer = Sealer::new(&[key]).unwrap();
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let sealed = sealer.seal("x", "rappel : médicaments");
        let (id, blob) = split(&sealed).unwrap();
        assert_eq!(id, key_id(&key));
        let blob = URL_SAFE_NO_PAD.decode(blob).unwrap();
        let (nonce, rest) = blob.split_at(NONCE_LEN);
        let payload = Payload {
            msg: rest,
            aad: b"x",
        };
        let opened = cipher
            .decrypt(&Nonce::try_from(nonce).unwrap(), payload)
            .unwrap();
        assert_eq!(opened, "rappel : médicaments".as_bytes());

        let nonce = [7u8; NONCE_LEN];
        let payload = Payload {
            msg: b"stored before",
            aad: b"x",
        };
        let mut blob = nonce.to_vec();
        blob.extend(cipher.encrypt(&Nonce::from(nonce), payload).unwrap());
        let stored = format!("v1.{}.{}", key_id(&key), URL_SAFE_NO_PAD.encode(blob));
        assert_eq!(sealer.open("x", &stored).unwrap(), "stored before");
        assert_eq!(sealer.open("y", &stored), Err(SealError::Tampered));
    }

    #[test]
    fn the_same_text_seals_differently_each_time() {
        let sealer = Sealer::generate();
        assert_ne!(sealer.seal("x", "same"), sealer.seal("x", "same"));
    }

    #[test]
    fn tampering_and_garbage_are_errors_not_panics() {
        let sealer = Sealer::generate();
        let sealed = sealer.seal("x", "hello");
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(sealer.open("x", &flipped), Err(SealError::Tampered));
        for garbage in [
            "",
            "v1",
            "v1..",
            "v2.abc.def",
            "v1.zzzz.!!!",
            "v1.00000000.AAAA",
        ] {
            assert!(sealer.open("x", garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn rotated_rings_open_old_values_and_seal_with_the_new_key() {
        let old_key = generate_key();
        let new_key = generate_key();
        let old = Sealer::new(&[old_key]).unwrap();
        let sealed_old = old.seal("x", "before");
        let ring = Sealer::from_text(&format!(
            "{}, {}",
            encode_key(&new_key),
            encode_key(&old_key)
        ))
        .unwrap();
        assert_eq!(ring.open("x", &sealed_old).unwrap(), "before");
        assert!(ring.needs_reseal(&sealed_old));
        let sealed_new = ring.seal("x", "after");
        assert!(!ring.needs_reseal(&sealed_new));
        assert_eq!(
            old.open("x", &sealed_new),
            Err(SealError::UnknownKey(ring.active_key_id().to_owned()))
        );
    }

    #[test]
    fn bad_key_text_is_refused_with_a_reason() {
        assert!(matches!(
            Sealer::from_text(""),
            Err(SealError::InvalidKey(_))
        ));
        assert!(matches!(
            Sealer::from_text("not base64!"),
            Err(SealError::InvalidKey(_))
        ));
        assert!(matches!(
            Sealer::from_text("AAAA"),
            Err(SealError::InvalidKey(_))
        ));
    }

    #[test]
    fn debug_output_shows_key_ids_never_keys() {
        let key = generate_key();
        let sealer = Sealer::new(&[key]).unwrap();
        let text = format!("{sealer:?}");
        assert!(text.contains(sealer.active_key_id()));
        assert!(!text.contains(&encode_key(&key)));
    }
}
