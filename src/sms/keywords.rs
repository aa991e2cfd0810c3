//! Carrier keywords: STOP, START, HELP and their synonyms.
//!
//! Twilio handles the standard keywords itself on long codes: it answers STOP, blocks the
//! (user, Twilio number) pair, and *still* forwards the message to the webhook; later sends to
//! that user fail with error 21610. Nudge keeps its own opt-out state from these keywords and
//! checks it before every send.
//!
//! A keyword is recognised only when the whole message is that single word: "stop it" or
//! "cancel my task" are ordinary messages for the assistant.
//!
//! # For callers
//!
//! - [`Keyword::OptIn`] for `YES` must only be acted upon when the user is currently opted out:
//!   otherwise "yes" is an ordinary answer to the assistant's last question and must reach it.
//!   `START` and `UNSTOP` are unambiguous.
//! - Handle [`Keyword::OptOut`] before anything else and do not let the assistant answer it.

/// A carrier keyword recognised in an inbound SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    /// The user asks to receive no more messages (STOP, UNSUBSCRIBE, ARRÊT, …).
    OptOut,
    /// The user asks to receive messages again (START, UNSTOP, and YES — see the module docs:
    /// YES counts only for a user who is opted out).
    OptIn,
    /// The user asks what this number is and how to stop it (HELP, INFO, AIDE).
    Help,
}

/// The keyword `body` is, if it is exactly one (ignoring case, surrounding whitespace and
/// trailing punctuation such as `.` or `!`).
pub fn classify(body: &str) -> Option<Keyword> {
    let word = body
        .trim()
        .trim_end_matches(|c: char| {
            c.is_whitespace() || matches!(c, '.' | '!' | '?' | ',' | ';' | ':' | '¡' | '¿')
        })
        .trim_start();
    // Cheap rejection of ordinary messages before allocating.
    if word.is_empty() || word.len() > 16 || word.contains(char::is_whitespace) {
        return None;
    }
    match word.to_uppercase().as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE" | "OPTOUT"
        | "ARRET" | "ARRÊT" | "ARRE\u{302}T" => Some(Keyword::OptOut),
        "START" | "YES" | "UNSTOP" => Some(Keyword::OptIn),
        "HELP" | "INFO" | "AIDE" => Some(Keyword::Help),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opt_out_word_is_recognised() {
        for w in [
            "STOP",
            "STOPALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
            "ARRET",
            "ARRÊT",
        ] {
            assert_eq!(classify(w), Some(Keyword::OptOut), "{w}");
        }
    }

    #[test]
    fn opt_in_and_help_words_are_recognised() {
        for w in ["START", "YES", "UNSTOP"] {
            assert_eq!(classify(w), Some(Keyword::OptIn), "{w}");
        }
        for w in ["HELP", "INFO", "AIDE"] {
            assert_eq!(classify(w), Some(Keyword::Help), "{w}");
        }
    }

    #[test]
    fn case_whitespace_and_trailing_punctuation_are_ignored() {
        assert_eq!(classify("  stop\n"), Some(Keyword::OptOut));
        assert_eq!(classify("Stop."), Some(Keyword::OptOut));
        assert_eq!(classify("STOP!!"), Some(Keyword::OptOut));
        assert_eq!(classify("arrêt !"), Some(Keyword::OptOut));
        assert_eq!(classify("Help?"), Some(Keyword::Help));
        assert_eq!(classify("yes"), Some(Keyword::OptIn));
    }

    #[test]
    fn a_decomposed_circumflex_still_reads_as_arret() {
        assert_eq!(classify("arre\u{302}t"), Some(Keyword::OptOut));
    }

    #[test]
    fn a_keyword_inside_a_sentence_is_not_a_keyword() {
        assert_eq!(classify("stop it"), None);
        assert_eq!(classify("cancel my task"), None);
        assert_eq!(classify("help me plan my day"), None);
        assert_eq!(classify("yes please"), None);
        assert_eq!(classify("STOP STOP"), None);
    }

    #[test]
    fn other_words_and_empty_bodies_are_not_keywords() {
        assert_eq!(classify(""), None);
        assert_eq!(classify("   "), None);
        assert_eq!(classify("..."), None);
        assert_eq!(classify("stopp"), None);
        assert_eq!(classify("ok"), None);
        assert_eq!(classify("no"), None);
    }
}
