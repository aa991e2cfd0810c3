//! The rolling conversation summary.
//!
//! When a user's unfolded history grows past [`FOLD_AT`] messages, the `UserActor` folds
//! all but the last [`KEEP_AFTER_FOLD`] into the summary (the model writes it when one is
//! configured; [`extractive`] otherwise, or when the model fails), stores it, and the prompt
//! carries the summary plus the messages after it. A restart reloads both.

use std::borrow::Cow;

use super::Said;
use crate::store::{Direction, Language};

/// Unfolded messages in memory beyond this trigger a fold.
pub const FOLD_AT: usize = 12;
/// Messages kept verbatim after a fold (the rest is summarised).
pub const KEEP_AFTER_FOLD: usize = 6;
/// An extractive summary stays within this many characters, dropping its oldest lines.
pub const MAX_EXTRACTIVE_CHARS: usize = 1_200;
/// Each message contributes at most this many characters to an extractive summary.
const LINE_CHARS: usize = 100;

/// A summary made without a model: the previous summary's lines, then one line per folded
/// message (its beginning), the oldest lines dropped to stay within
/// [`MAX_EXTRACTIVE_CHARS`].
pub fn extractive(language: Language, previous: Option<&str>, messages: &[Said]) -> String {
    let user_label = match language {
        Language::En => "User",
        Language::Fr => "Utilisateur",
    };
    // Each line with its length in characters; the previous summary's lines as they are.
    let mut lines: Vec<(Cow<'_, str>, usize)> = previous
        .into_iter()
        .flat_map(str::lines)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| (Cow::Borrowed(l), l.chars().count()))
        .collect();
    let mut flat = String::new();
    for message in messages {
        let who = match message.direction() {
            Direction::Inbound => user_label,
            Direction::Outbound => "Nudge",
        };
        flat.clear();
        for word in message.body().split_whitespace() {
            if !flat.is_empty() {
                flat.push(' ');
            }
            flat.push_str(word);
        }
        if flat.is_empty() {
            continue;
        }
        let line = format!("- {who}: {}", shorten(&flat, LINE_CHARS));
        let chars = line.chars().count();
        lines.push((Cow::Owned(line), chars));
    }
    let mut total: usize = lines.iter().map(|(_, chars)| chars + 1).sum();
    let mut start = 0;
    while total > MAX_EXTRACTIVE_CHARS && start + 1 < lines.len() {
        total -= lines[start].1 + 1;
        start += 1;
    }
    let kept = &lines[start..];
    let mut summary = String::with_capacity(kept.iter().map(|(l, _)| l.len() + 1).sum());
    for (i, (line, _)) in kept.iter().enumerate() {
        if i > 0 {
            summary.push('\n');
        }
        summary.push_str(line);
    }
    summary
}

/// The first `max` characters of `text`, cut at a word and marked with an ellipsis.
fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    if text.chars().count() <= max {
        return Cow::Borrowed(text);
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > max / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    Cow::Owned(format!("{}…", cut.trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Channel, Message, UserId};
    use chrono::Utc;

    fn message(id: i64, direction: Direction, body: &str) -> Said {
        Said::from(Message {
            id,
            user_id: UserId::new(),
            channel: Channel::Sms,
            direction,
            body: body.into(),
            provider_message_id: None,
            in_reply_to: None,
            created_at: Utc::now(),
        })
    }

    #[test]
    fn an_extractive_summary_keeps_who_said_what_after_the_previous_summary() {
        let messages = [
            message(1, Direction::Inbound, "add task  call\nmom"),
            message(2, Direction::Outbound, "Added: call mom."),
        ];
        let text = extractive(Language::En, Some("- User: hi"), &messages);
        assert_eq!(
            text,
            "- User: hi\n- User: add task call mom\n- Nudge: Added: call mom."
        );
        let fr = extractive(Language::Fr, None, &messages[..1]);
        assert_eq!(fr, "- Utilisateur: add task call mom");
    }

    #[test]
    fn an_extractive_summary_stays_bounded_by_dropping_its_oldest_lines() {
        let long = "word ".repeat(60);
        let messages: Vec<Said> = (0..40)
            .map(|i| message(i, Direction::Inbound, &format!("{i} {long}")))
            .collect();
        let text = extractive(Language::En, None, &messages);
        assert!(
            text.chars().count() <= MAX_EXTRACTIVE_CHARS,
            "{}",
            text.len()
        );
        assert!(text.ends_with('…'));
        assert!(text.contains("- User: 39 word"), "the newest line stays");
        assert!(!text.contains("- User: 0 word"), "the oldest line goes");
    }
}
