//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew either
//! way, as authenticator apps expect), and one-time recovery codes.
//!
//! Every check takes the time from its caller, so tests run on a fixed clock. A code is
//! accepted once: the caller stores the step it matched and passes it back as `last_step`.

use base64::Engine;
use chrono::{DateTime, Utc};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Issuer shown in authenticator apps.
const ISSUER: &str = "Nudge";
/// Secret length in bytes (RFC 4226 recommends 160 bits).
const SECRET_BYTES: usize = 20;
/// How many recovery codes an enrollment hands out.
pub const RECOVERY_CODES: usize = 10;

/// Why a TOTP secret could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid TOTP secret")]
pub struct TotpError;

/// A fresh random secret, base32 (how authenticator apps and the store take it).
pub fn new_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    Secret::from(bytes.to_vec()).to_base32()
}

fn totp(secret_base32: &str, account: &str) -> Result<Totp, TotpError> {
    let secret = Secret::try_from_base32(secret_base32).map_err(|_| TotpError)?;
    // Colons are not allowed in the label's account part.
    let account = account.replace(':', "_");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .map_err(|_| TotpError)
}

/// The `otpauth://totp/…` URI an authenticator app scans (as a QR code) or takes as text.
pub fn otpauth_uri(secret_base32: &str, account: &str) -> Result<String, TotpError> {
    totp(secret_base32, account)?
        .to_url()
        .map_err(|_| TotpError)
}

/// The code for `now` (tests, and nothing else: the server only checks codes).
pub fn code_at(secret_base32: &str, now: DateTime<Utc>) -> Result<String, TotpError> {
    let t = totp(secret_base32, "x")?;
    Ok(t.generate(unix(now)).to_string())
}

/// Checks `code` at `now`; returns the time step it matched, if it is newer than
/// `last_step` (a code already used is refused, as RFC 6238 asks).
pub fn check(
    secret_base32: &str,
    code: &str,
    now: DateTime<Utc>,
    last_step: Option<i64>,
) -> Result<Option<i64>, TotpError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret_base32, "x")?;
    let step = t
        .check(&code, unix(now))
        .and_then(|s| i64::try_from(s).ok());
    Ok(step.filter(|s| last_step.is_none_or(|last| *s > last)))
}

fn unix(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

/// Fresh recovery codes: 10 characters of base32 each (50 bits), shown as `xxxxx-xxxxx`.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes: [u8; 8] = rand::random();
            let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
            let clean: String = text
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .filter(|c| !matches!(c, '0' | 'o' | '1' | 'l' | 'i'))
                .collect();
            let mut code: String = clean.chars().take(10).collect();
            while code.len() < 10 {
                code.push(char::from(b'a' + rand::random_range(0..26u8)));
            }
            format!("{}-{}", &code[..5], &code[5..])
        })
        .collect()
}

/// The form a recovery code is hashed in: lower case, without separators or spaces.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// True for input shaped like a recovery code rather than a TOTP code.
pub fn looks_like_recovery_code(code: &str) -> bool {
    normalize_recovery_code(code).len() == 10
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret, "12345678901234567890", in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    #[test]
    fn codes_match_the_rfc_test_vectors_on_a_fixed_clock() {
        // RFC 6238 gives 8 digits; the 6-digit codes are their last six.
        assert_eq!(code_at(RFC_SECRET, at(59)).unwrap(), "287082");
        assert_eq!(code_at(RFC_SECRET, at(1_111_111_109)).unwrap(), "081804");
        assert_eq!(code_at(RFC_SECRET, at(1_234_567_890)).unwrap(), "005924");
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_only_once() {
        let now = at(1_234_567_890);
        let code = code_at(RFC_SECRET, now).unwrap();
        let step = check(RFC_SECRET, &code, now, None).unwrap().unwrap();
        assert_eq!(step, 1_234_567_890 / 30);
        assert!(
            check(RFC_SECRET, &code, at(1_234_567_890 + 30), None)
                .unwrap()
                .is_some()
        );
        assert!(
            check(RFC_SECRET, &code, at(1_234_567_890 - 30), None)
                .unwrap()
                .is_some()
        );
        assert!(
            check(RFC_SECRET, &code, at(1_234_567_890 + 90), None)
                .unwrap()
                .is_none()
        );
        assert!(
            check(RFC_SECRET, &code, now, Some(step)).unwrap().is_none(),
            "replayed"
        );
    }

    #[test]
    fn malformed_codes_are_refused_without_error() {
        let now = at(1_234_567_890);
        for bad in ["", "12345", "1234567", "abcdef", "12 34 5x", "٠١٢٣٤٥"] {
            assert_eq!(check(RFC_SECRET, bad, now, None), Ok(None), "{bad}");
        }
        assert!(check("not base32!", "123456", now, None).is_err());
    }

    #[test]
    fn the_otpauth_uri_names_the_issuer_and_account_and_carries_the_secret() {
        let secret = new_secret();
        let uri = otpauth_uri(&secret, "ana@example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Nudge:ana%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={secret}")), "{uri}");
        assert!(uri.contains("issuer=Nudge"), "{uri}");
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalize() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        for code in &codes {
            assert_eq!(code.len(), 11);
            assert!(looks_like_recovery_code(code));
            assert_eq!(
                normalize_recovery_code(&code.to_uppercase()),
                normalize_recovery_code(code)
            );
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        assert!(!looks_like_recovery_code("123456"));
    }
}
