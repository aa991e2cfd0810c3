//! Logging set-up: human-readable text or JSON lines on stderr, filtered by `RUST_LOG`.
//!
//! Stdout is left to machine-readable output (the "listening on" line, CLI answers).
//! Message bodies, phone numbers in full, and secrets are never logged: see [`mask_phone`].

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,sqlx=warn,ractor=warn,hyper=warn";

/// Installs the global subscriber. Safe to call once per process; later calls are ignored.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests that start several apps in one process) keeps the first subscriber.
    drop(result);
}

/// A phone number fit for logs: country code and last two digits only (`+1********09`).
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_phones_keep_only_the_ends() {
        assert_eq!(mask_phone("+14155550109"), "+1********09");
        assert_eq!(mask_phone("+123"), "****");
    }
}
