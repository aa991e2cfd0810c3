//! How an SMS body travels on the air: encoding, segment count, cost, and fitting a reply into a
//! budget of segments.
//!
//! A body made only of characters from the GSM 03.38 default alphabet (plus its extension table)
//! is sent as GSM-7: 160 septets in a single SMS, 153 per part once concatenated (the rest of
//! each part carries the concatenation header). Extension characters (`^ { } \ [ ~ ] | €` and
//! form feed) take two septets: an escape plus the character. One character outside that
//! alphabet makes the *whole* message UCS-2: 70 UTF-16 code units alone, 67 per part, and an
//! emoji (a surrogate pair) takes two.
//!
//! Parts never split an escape pair or a surrogate pair, so counting packs characters into parts
//! one by one rather than dividing the total.

use std::borrow::Cow;

use crate::store::SmsEncoding;

/// Septets in a GSM-7 message sent as a single SMS.
const GSM7_SINGLE: u32 = 160;
/// Septets per part of a concatenated GSM-7 message.
const GSM7_PART: u32 = 153;
/// UTF-16 code units in a UCS-2 message sent as a single SMS.
const UCS2_SINGLE: u32 = 70;
/// UTF-16 code units per part of a concatenated UCS-2 message.
const UCS2_PART: u32 = 67;

/// Estimated price of one outbound segment, in millionths of a US dollar.
///
/// Twilio's US outbound SMS list price is about $0.0083 per segment (carrier fees excluded).
/// Used for usage accounting only; the real price arrives later in Twilio's records.
pub const COST_PER_SEGMENT_MICROS: i64 = 8_300;

/// The shape of an SMS body as a carrier sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsShape {
    /// GSM-7 when every character is in the GSM 03.38 alphabet, otherwise UCS-2.
    pub encoding: SmsEncoding,
    /// How many SMS the body is billed as (at least 1, even when empty).
    pub segments: u32,
    /// Septets (GSM-7, extension characters count 2) or UTF-16 code units (UCS-2).
    pub units: u32,
}

/// Septets a character takes in GSM-7: 1 for the default alphabet, 2 for the extension table,
/// `None` when it is not representable (the message must then be UCS-2).
fn gsm_units(c: char) -> Option<u32> {
    match c {
        // Default alphabet (GSM 03.38), in table order; 0x1B (escape) is not a character.
        '@'
        | '£'
        | '$'
        | '¥'
        | 'è'
        | 'é'
        | 'ù'
        | 'ì'
        | 'ò'
        | 'Ç'
        | '\n'
        | 'Ø'
        | 'ø'
        | '\r'
        | 'Å'
        | 'å'
        | 'Δ'
        | '_'
        | 'Φ'
        | 'Γ'
        | 'Λ'
        | 'Ω'
        | 'Π'
        | 'Ψ'
        | 'Σ'
        | 'Θ'
        | 'Ξ'
        | 'Æ'
        | 'æ'
        | 'ß'
        | 'É'
        | ' '
        | '!'
        | '"'
        | '#'
        | '¤'
        | '%'
        | '&'
        | '\''
        | '('
        | ')'
        | '*'
        | '+'
        | ','
        | '-'
        | '.'
        | '/'
        | '0'..='9'
        | ':'
        | ';'
        | '<'
        | '='
        | '>'
        | '?'
        | '¡'
        | 'A'..='Z'
        | 'Ä'
        | 'Ö'
        | 'Ñ'
        | 'Ü'
        | '§'
        | '¿'
        | 'a'..='z'
        | 'ä'
        | 'ö'
        | 'ñ'
        | 'ü'
        | 'à' => Some(1),
        // Extension table: escape + character.
        '\u{0C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        _ => None,
    }
}

/// Whether every character of `body` can be sent as GSM-7.
pub fn is_gsm7(body: &str) -> bool {
    body.chars().all(|c| gsm_units(c).is_some())
}

/// Packs characters into parts, as a carrier does, to count segments exactly.
#[derive(Debug, Clone, Copy)]
struct Packer {
    single: u32,
    part: u32,
    total: u32,
    parts: u32,
    fill: u32,
}

impl Packer {
    const fn new(single: u32, part: u32) -> Self {
        Self {
            single,
            part,
            total: 0,
            parts: 1,
            fill: 0,
        }
    }

    const fn gsm7() -> Self {
        Self::new(GSM7_SINGLE, GSM7_PART)
    }

    const fn ucs2() -> Self {
        Self::new(UCS2_SINGLE, UCS2_PART)
    }

    /// Adds one character taking `units` units; it never straddles two parts.
    fn push(&mut self, units: u32) {
        self.total = self.total.saturating_add(units);
        if self.fill + units > self.part {
            self.parts = self.parts.saturating_add(1);
            self.fill = units;
        } else {
            self.fill += units;
        }
    }

    fn segments(&self) -> u32 {
        if self.total <= self.single {
            1
        } else {
            self.parts
        }
    }

    /// Segments if `units` more units (one character) were appended.
    fn segments_with(mut self, units: u32) -> u32 {
        self.push(units);
        self.segments()
    }
}

/// The encoding, segment count and size of `body`. An empty body is one GSM-7 segment.
pub fn analyze(body: &str) -> SmsShape {
    let (encoding, packer) = if is_gsm7(body) {
        let mut p = Packer::gsm7();
        for c in body.chars() {
            p.push(gsm_units(c).unwrap_or(1));
        }
        (SmsEncoding::Gsm7, p)
    } else {
        let mut p = Packer::ucs2();
        for c in body.chars() {
            p.push(utf16_units(c));
        }
        (SmsEncoding::Ucs2, p)
    };
    SmsShape {
        encoding,
        segments: packer.segments(),
        units: packer.total,
    }
}

fn utf16_units(c: char) -> u32 {
    // 1 or 2: the cast cannot truncate.
    c.len_utf16() as u32
}

/// Estimated cost of `segments` outbound segments, in millionths of a US dollar
/// ([`COST_PER_SEGMENT_MICROS`] each).
pub fn estimated_cost_micros(segments: u32) -> i64 {
    i64::from(segments).saturating_mul(COST_PER_SEGMENT_MICROS)
}

/// Shortens `body` so that it fits in `max_segments` segments (0 is treated as 1).
///
/// A body that already fits is returned unchanged. Otherwise the body is cut at a word boundary
/// (or mid-word when the only boundary would throw away more than half the text) and ends with an
/// ellipsis: `"..."` when the kept text is GSM-7, so that the message stays GSM-7, and `"…"`
/// (itself UCS-2) when the kept text is UCS-2 anyway. Trailing `, ; : - (` before the ellipsis are
/// dropped.
pub fn fit(body: &str, max_segments: u32) -> String {
    let max = max_segments.max(1);
    if analyze(body).segments <= max {
        return body.to_owned();
    }

    let mut gsm = Packer::gsm7();
    let mut ucs = Packer::ucs2();
    let mut all_gsm = true;
    let mut best_word: Option<usize> = None;
    let mut best_char = 0usize;
    let mut prev_whitespace = true;

    for (i, c) in body.char_indices() {
        // Would `body[..i]` plus the ellipsis fit?
        if i > 0 {
            let fits = if all_gsm {
                gsm.segments_with(3) <= max
            } else {
                ucs.segments_with(1) <= max
            };
            if !fits {
                // Prefixes only grow: a longer one cannot fit either (a GSM-7 prefix too long for
                // GSM-7 parts is also too long for the smaller UCS-2 parts).
                break;
            }
            best_char = i;
            if c.is_whitespace() && !prev_whitespace {
                best_word = Some(i);
            }
        }
        match gsm_units(c) {
            Some(u) => gsm.push(u),
            None => all_gsm = false,
        }
        ucs.push(utf16_units(c));
        prev_whitespace = c.is_whitespace();
    }

    let cut = match best_word {
        Some(word) if word >= best_char / 2 => word,
        _ => best_char,
    };
    let mut kept = body.get(..cut).unwrap_or_default().trim_end();
    let tidy = kept.trim_end_matches([',', ';', ':', '-', '(']).trim_end();
    if !tidy.is_empty() {
        kept = tidy;
    }
    let ellipsis = if is_gsm7(kept) { "..." } else { "…" };
    format!("{kept}{ellipsis}")
}

/// Replaces typographic punctuation that has a plain GSM-7 equivalent (curly quotes, dashes,
/// the ellipsis character, non-breaking spaces), as Twilio's "smart encoding" does.
///
/// One curly apostrophe, common in generated text, turns a whole message into UCS-2 and can
/// more than double its segments; this keeps such a message GSM-7 when nothing else prevents it.
pub fn normalize_punctuation(body: &str) -> Cow<'_, str> {
    fn replacement(c: char) -> Option<&'static str> {
        Some(match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{02BC}' => "'",
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '«' | '»' => "\"",
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
            | '\u{2212}' => "-",
            '\u{2026}' => "...",
            '\u{00A0}' | '\u{2002}' | '\u{2003}' | '\u{2009}' | '\u{202F}' => " ",
            '\u{2022}' => "-",
            _ => return None,
        })
    }
    if !body.chars().any(|c| replacement(c).is_some()) {
        return Cow::Borrowed(body);
    }
    let mut out = String::with_capacity(body.len());
    for c in body.chars() {
        match replacement(c) {
            Some(r) => out.push_str(r),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(encoding: SmsEncoding, segments: u32, units: u32) -> SmsShape {
        SmsShape {
            encoding,
            segments,
            units,
        }
    }

    #[test]
    fn an_empty_body_is_one_gsm7_segment() {
        assert_eq!(analyze(""), shape(SmsEncoding::Gsm7, 1, 0));
    }

    #[test]
    fn french_accents_in_the_gsm_table_stay_gsm7() {
        let s = analyze("é è ù à É ì ò Ç");
        assert_eq!(s.encoding, SmsEncoding::Gsm7);
        assert_eq!(s.units, 15);
    }

    #[test]
    fn french_accents_outside_the_gsm_table_force_ucs2() {
        for c in ['ê', 'â', 'î', 'ô', 'û', 'ë', 'ï', 'ç', 'È', 'À'] {
            let body = format!("Tu as fini {c}");
            assert_eq!(analyze(&body).encoding, SmsEncoding::Ucs2, "{c}");
        }
    }

    #[test]
    fn one_hundred_sixty_gsm_chars_are_one_segment_and_161_are_two() {
        assert_eq!(analyze(&"a".repeat(160)), shape(SmsEncoding::Gsm7, 1, 160));
        assert_eq!(analyze(&"a".repeat(161)), shape(SmsEncoding::Gsm7, 2, 161));
        assert_eq!(analyze(&"a".repeat(306)).segments, 2);
        assert_eq!(analyze(&"a".repeat(307)).segments, 3);
    }

    #[test]
    fn seventy_ucs2_units_are_one_segment_and_71_are_two() {
        assert_eq!(analyze(&"ê".repeat(70)), shape(SmsEncoding::Ucs2, 1, 70));
        assert_eq!(analyze(&"ê".repeat(71)), shape(SmsEncoding::Ucs2, 2, 71));
        assert_eq!(analyze(&"ê".repeat(134)).segments, 2);
        assert_eq!(analyze(&"ê".repeat(135)).segments, 3);
    }

    #[test]
    fn extension_characters_count_two_septets() {
        for c in ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{0C}'] {
            assert_eq!(
                analyze(&c.to_string()),
                shape(SmsEncoding::Gsm7, 1, 2),
                "{c:?}"
            );
        }
        assert_eq!(analyze(&"{".repeat(80)), shape(SmsEncoding::Gsm7, 1, 160));
        assert_eq!(analyze(&"{".repeat(81)), shape(SmsEncoding::Gsm7, 2, 162));
    }

    #[test]
    fn an_extension_pair_is_never_split_across_parts() {
        // 306 septets would be 2 parts, but the escape pair cannot straddle part 1 and 2.
        let body = format!("{}{{{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(analyze(&body), shape(SmsEncoding::Gsm7, 3, 306));
    }

    #[test]
    fn an_emoji_forces_ucs2_and_counts_two_units() {
        assert_eq!(analyze("Hi 👋"), shape(SmsEncoding::Ucs2, 1, 5));
        let body = format!("{}👋", "a".repeat(69));
        assert_eq!(analyze(&body), shape(SmsEncoding::Ucs2, 2, 71));
    }

    #[test]
    fn a_surrogate_pair_is_never_split_across_parts() {
        let body = format!("{}👋{}", "a".repeat(66), "a".repeat(66));
        assert_eq!(analyze(&body), shape(SmsEncoding::Ucs2, 3, 134));
    }

    #[test]
    fn a_tab_or_a_curly_apostrophe_is_not_gsm7() {
        assert_eq!(analyze("a\tb").encoding, SmsEncoding::Ucs2);
        assert_eq!(analyze("c’est").encoding, SmsEncoding::Ucs2);
    }

    #[test]
    fn cost_is_linear_in_segments() {
        assert_eq!(estimated_cost_micros(0), 0);
        assert_eq!(estimated_cost_micros(1), 8_300);
        assert_eq!(estimated_cost_micros(3), 24_900);
    }

    #[test]
    fn fit_leaves_a_body_that_already_fits_unchanged() {
        let body = "Tu veux que je te rappelle de sortir les poubelles ?";
        assert_eq!(fit(body, 1), body);
        let long = "a".repeat(300);
        assert_eq!(fit(&long, 2), long);
    }

    #[test]
    fn fit_cuts_gsm_text_at_a_word_boundary_with_three_dots() {
        let body = "word ".repeat(100);
        let out = fit(&body, 1);
        let s = analyze(&out);
        assert_eq!(s.encoding, SmsEncoding::Gsm7);
        assert_eq!(s.segments, 1);
        assert!(out.ends_with("word..."), "{out}");
        assert!(s.units > 150, "kept too little: {out}");
    }

    #[test]
    fn fit_cuts_ucs2_text_with_the_ellipsis_character() {
        let body = "fête ".repeat(100);
        let out = fit(&body, 2);
        let s = analyze(&out);
        assert_eq!(s.encoding, SmsEncoding::Ucs2);
        assert!(s.segments <= 2);
        assert!(out.ends_with("fête…"), "{out}");
    }

    #[test]
    fn fit_drops_a_late_emoji_and_keeps_gsm7() {
        let body = format!("{} 🎉", "ok ".repeat(60));
        let out = fit(&body, 2);
        assert_eq!(analyze(&out).encoding, SmsEncoding::Gsm7);
        assert!(out.ends_with("ok..."), "{out}");
    }

    #[test]
    fn fit_cuts_a_single_huge_word_mid_word() {
        let out = fit(&"x".repeat(1000), 1);
        assert_eq!(analyze(&out), shape(SmsEncoding::Gsm7, 1, 160));
        assert!(out.ends_with("x..."));
    }

    #[test]
    fn fit_prefers_a_hard_cut_to_losing_most_of_the_text() {
        let body = format!("Lien: https://example.com/{}", "a".repeat(400));
        let out = fit(&body, 1);
        assert_eq!(analyze(&out).segments, 1);
        assert!(out.len() > 100, "{out}");
    }

    #[test]
    fn fit_drops_trailing_commas_before_the_ellipsis() {
        let body = format!("{}, {}", "a ".repeat(77).trim_end(), "b".repeat(200));
        let out = fit(&body, 1);
        assert!(out.ends_with("a..."), "{out}");
    }

    #[test]
    fn fit_treats_zero_segments_as_one() {
        let out = fit(&"word ".repeat(100), 0);
        assert_eq!(analyze(&out).segments, 1);
    }

    #[test]
    fn fit_output_always_fits_for_many_lengths() {
        let sample = "Réveil à 7h 🌅 {rappel} ~ c’est l’heure de boire un verre d’eau. ";
        for n in 0..60 {
            let body = sample.repeat(n);
            for max in 1..4 {
                let out = fit(&body, max);
                assert!(analyze(&out).segments <= max, "n={n} max={max}");
            }
        }
    }

    #[test]
    fn normalize_punctuation_turns_curly_quotes_into_gsm7() {
        let out = normalize_punctuation("C’est «fini» — bravo…");
        assert_eq!(out, "C'est \"fini\" - bravo...");
        assert!(is_gsm7(&out));
        assert!(matches!(normalize_punctuation("plain"), Cow::Borrowed(_)));
    }
}
