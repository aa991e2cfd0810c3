//! Matching what people type: accent- and case-blind prefixes that hand back the rest of the
//! text as it was typed, and the key two memories are "the same text" by.

use std::ops::ControlFlow;

/// `text` folded: accents to ASCII, lower case, `-` and runs of white space as one space.
/// Always ASCII. [`fold_with_offsets`] without the offsets.
pub fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    let _whole = fold_each(text, |byte, _| {
        folded.push(char::from(byte));
        ControlFlow::Continue(())
    });
    folded
}

/// `text` folded as [`fold`] folds it, with, for each folded byte, the byte of `text` it
/// came from.
pub fn fold_with_offsets(text: &str) -> (String, Vec<usize>) {
    fold_prefix_with_offsets(text, usize::MAX)
}

/// The beginning of `text` folded as [`fold_with_offsets`] folds it: at least `bytes` folded
/// bytes (all of `text` when it folds to fewer), and, after the last folded byte's offset, the
/// offset where the next folded byte would come from (the length of `text` at its end). The
/// folding of a text starts with the folding of each of its beginnings, so this is the start
/// of `fold_with_offsets(text)`.
fn fold_prefix_with_offsets(text: &str, bytes: usize) -> (String, Vec<usize>) {
    let room = text.len().min(bytes.saturating_add(8));
    let mut folded = String::with_capacity(room);
    let mut offsets = Vec::with_capacity(room + 1);
    let stopped = fold_each(text, |byte, at| {
        if folded.len() >= bytes {
            offsets.push(at);
            return ControlFlow::Break(());
        }
        folded.push(char::from(byte));
        offsets.push(at);
        ControlFlow::Continue(())
    });
    if stopped.is_continue() {
        offsets.push(text.len());
    }
    (folded, offsets)
}

/// Calls `folded` with each byte of `text` folded (always ASCII) and the byte of `text` it
/// came from. A printable ASCII character folds as `deunicode` would fold it, without its
/// table; control characters go through the table, which drops them. It stops, and says so,
/// when `folded` breaks.
fn fold_each(text: &str, mut folded: impl FnMut(u8, usize) -> ControlFlow<()>) -> ControlFlow<()> {
    let mut last_space = true;
    for (at, c) in text.char_indices() {
        if c.is_whitespace() || c == '-' {
            if !last_space {
                folded(b' ', at)?;
                last_space = true;
            }
            continue;
        }
        last_space = false;
        if c.is_ascii_graphic() {
            folded((c as u8).to_ascii_lowercase(), at)?;
            continue;
        }
        match deunicode::deunicode_char(c) {
            Some(ascii) if ascii.is_ascii() => {
                for b in ascii.bytes() {
                    folded(b.to_ascii_lowercase(), at)?;
                }
            }
            _ => folded(b'?', at)?,
        }
    }
    ControlFlow::Continue(())
}

/// When `text` (folded) starts with one of `prefixes` (written folded, words separated by one
/// space) followed by the end or a non-letter, the prefix matched and the rest of `text` as
/// typed, trimmed of spaces and `:`/`,`. The longest prefix wins.
pub fn strip_prefix<'t>(
    text: &'t str,
    prefixes: &[&'static str],
) -> Option<(&'static str, &'t str)> {
    // Only as much of the text as the longest prefix and the byte after it: the rest of a
    // long message is never looked at.
    let longest = prefixes.iter().map(|p| p.len()).max().unwrap_or(0);
    let (folded, offsets) = fold_prefix_with_offsets(text.trim_start(), longest + 1);
    let start = text.len() - text.trim_start().len();
    let mut best: Option<&'static str> = None;
    for prefix in prefixes {
        // "d'" ends a word itself; other prefixes must not stop mid-word.
        let boundary = prefix.ends_with(|c: char| !c.is_ascii_alphanumeric())
            || folded
                .as_bytes()
                .get(prefix.len())
                .is_none_or(|b| !b.is_ascii_alphanumeric());
        if folded.starts_with(prefix) && boundary && best.is_none_or(|b| b.len() < prefix.len()) {
            best = Some(prefix);
        }
    }
    let prefix = best?;
    let rest = &text[start + offsets[prefix.len()]..];
    Some((
        prefix,
        rest.trim_start_matches([' ', ':', ',', '\u{a0}'])
            .trim_end(),
    ))
}

/// The key two texts are "the same" by: folded, letters and digits only, one space apart.
/// `"My meds: 8am!"` and `"my meds 8am"` share a key.
pub fn key(text: &str) -> String {
    let folded = fold(text);
    folded
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fact as it is stored: trimmed, closing punctuation dropped, first letter kept as typed.
pub fn tidy(text: &str) -> String {
    let mut tidy = text.trim();
    loop {
        let next = tidy
            .trim_end_matches(['.', '!', ';', ','])
            .trim_matches(['"', '\u{201c}', '\u{201d}', '\u{ab}', '\u{bb}'])
            .trim();
        if next == tidy {
            return tidy.to_owned();
        }
        tidy = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_matches_whatever_the_accents_and_case_and_the_rest_is_kept_as_typed() {
        let prefixes = ["souviens toi que", "remember that", "remember"];
        assert_eq!(
            strip_prefix("Souviens-toi que j'adore le thé", &prefixes),
            Some(("souviens toi que", "j'adore le thé"))
        );
        assert_eq!(
            strip_prefix("  REMEMBER THAT: Élodie is my sister ", &prefixes),
            Some(("remember that", "Élodie is my sister"))
        );
        assert_eq!(strip_prefix("remembering", &prefixes), None);
        assert_eq!(strip_prefix("rem", &prefixes), None);
    }

    #[test]
    fn a_beginning_folds_as_the_start_of_the_whole_text() {
        for text in [
            "Œuf  à-la CRÈME brûlée\tß ☕ 8:30",
            "remember that: my sister's name is Élodie",
            "  -- spaced   out ",
            "",
        ] {
            let (whole, whole_offsets) = fold_with_offsets(text);
            for bytes in 0..whole.len() + 3 {
                let (folded, offsets) = fold_prefix_with_offsets(text, bytes);
                let kept = bytes.min(whole.len());
                assert_eq!(folded, whole[..kept], "{text:?}, {bytes} bytes");
                assert_eq!(offsets, whole_offsets[..=kept], "{text:?}, {bytes} bytes");
            }
        }
    }

    #[test]
    fn folding_without_offsets_folds_the_same() {
        let ascii: String = (' '..='~').collect();
        for text in [
            ascii.as_str(),
            "Œuf  à-la CRÈME brûlée\tß ☕ 8:30",
            "",
            "  - ",
        ] {
            assert_eq!(fold(text), fold_with_offsets(text).0, "{text}");
        }
        // Each ASCII character folds as deunicode's table folds it, printable ones without it.
        for c in (char::MIN..='\u{7f}').filter(|c| !c.is_whitespace() && *c != '-') {
            let table = deunicode::deunicode_char(c).map(str::to_ascii_lowercase);
            assert_eq!(Some(fold(&c.to_string())), table, "{c:?}");
        }
    }

    #[test]
    fn folding_maps_every_byte_back_to_the_text() {
        let (folded, offsets) = fold_with_offsets("Œuf  à-la");
        assert_eq!(folded, "oeuf a la");
        assert_eq!(offsets.len(), folded.len() + 1);
        assert_eq!(offsets[5], "Œuf  ".len());
    }

    #[test]
    fn keys_ignore_case_accents_and_punctuation() {
        assert_eq!(key("My meds: 8am!"), key("my  meds 8AM"));
        assert_eq!(key("Je préfère le thé."), "je prefere le the");
        assert_eq!(tidy("  \"I work night shifts.\" "), "I work night shifts");
    }
}
