//! Twilio request validation: the `X-Twilio-Signature` header.
//!
//! Twilio signs every webhook and status callback it sends. The signed string is the full public
//! URL Twilio called (scheme, host, path and query, exactly as configured), followed by every
//! POST parameter sorted by name, each name immediately followed by its value, with no
//! separator. The signature is the base64 (standard alphabet, padded) HMAC-SHA1 of that string,
//! keyed with the account's auth token.
//!
//! Callers must pass *all* form parameters that arrived, including ones Nudge does not know:
//! Twilio adds parameters without notice and signs them too.
//!
//! Behind a reverse proxy the URL must be the public one Twilio called, not the one the server
//! sees (rebuild it from the configured public base URL).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// The signature Twilio would send for a request to `url` carrying the form `params`.
///
/// Parameters are sorted by name (byte order), then by value for repeated names, so the result
/// does not depend on the order in which they arrived.
pub fn expected_signature<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
) -> String {
    STANDARD.encode(mac(auth_token, url, params))
}

/// The HMAC-SHA1 of `url` and `params` (sorted) under `auth_token`.
fn mac<K: AsRef<str>, V: AsRef<str>>(auth_token: &str, url: &str, params: &[(K, V)]) -> [u8; 20] {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_ref(), value.as_ref()))
        .collect();
    sorted.sort_unstable();

    // HMAC accepts keys of any length, so this cannot fail: it is an invariant, not input.
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes())
        .expect("HMAC-SHA1 accepts keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac.finalize().into_bytes().into()
}

/// Whether `header` (the `X-Twilio-Signature` value) is the right signature for this request.
///
/// The comparison runs in constant time. An empty header, or an empty auth token, is never
/// valid.
pub fn verify<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
    header: &str,
) -> bool {
    if header.is_empty() || auth_token.is_empty() {
        return false;
    }
    // Base64 of 20 bytes is 28 characters.
    let mut expected = [0u8; 28];
    let Ok(written) = STANDARD.encode_slice(mac(auth_token, url, params), &mut expected) else {
        return false;
    };
    // `ct_eq` on slices of different lengths is false; the length itself is not secret.
    expected[..written].ct_eq(header.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const SIGNATURE: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn twilio_reference_vector_gives_the_published_signature() {
        assert_eq!(expected_signature(TOKEN, URL, &params()), SIGNATURE);
        assert!(verify(TOKEN, URL, &params(), SIGNATURE));
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let mut reversed = params();
        reversed.reverse();
        assert!(verify(TOKEN, URL, &reversed, SIGNATURE));
    }

    #[test]
    fn repeated_names_are_sorted_by_value() {
        let a = vec![
            ("MediaUrl".to_owned(), "b".to_owned()),
            ("MediaUrl".to_owned(), "a".to_owned()),
        ];
        let b = vec![
            ("MediaUrl".to_owned(), "a".to_owned()),
            ("MediaUrl".to_owned(), "b".to_owned()),
        ];
        assert_eq!(
            expected_signature(TOKEN, URL, &a),
            expected_signature(TOKEN, URL, &b)
        );
    }

    #[test]
    fn a_wrong_token_is_rejected() {
        assert!(!verify("54321", URL, &params(), SIGNATURE));
    }

    #[test]
    fn a_changed_parameter_is_rejected() {
        let mut changed = params();
        changed[2].1 = "1235".to_owned();
        assert!(!verify(TOKEN, URL, &changed, SIGNATURE));
    }

    #[test]
    fn an_extra_parameter_is_rejected() {
        let mut extra = params();
        extra.push(("Body".to_owned(), "hi".to_owned()));
        assert!(!verify(TOKEN, URL, &extra, SIGNATURE));
    }

    #[test]
    fn a_different_url_is_rejected() {
        assert!(!verify(
            TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params(),
            SIGNATURE
        ));
    }

    #[test]
    fn an_empty_header_is_rejected() {
        assert!(!verify(TOKEN, URL, &params(), ""));
    }

    #[test]
    fn an_empty_token_is_rejected_even_with_its_own_signature() {
        let sig = expected_signature("", URL, &params());
        assert!(!verify("", URL, &params(), &sig));
    }

    #[test]
    fn a_truncated_or_padded_header_is_rejected() {
        assert!(!verify(
            TOKEN,
            URL,
            &params(),
            &SIGNATURE[..SIGNATURE.len() - 1]
        ));
        assert!(!verify(TOKEN, URL, &params(), &format!("{SIGNATURE} ")));
    }
}
