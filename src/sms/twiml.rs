//! TwiML: the XML a webhook answers Twilio with.
//!
//! Nudge only needs two documents: one `<Message>` (reply with this text) and an empty
//! `<Response/>` (acknowledge, reply nothing — used when the reply is sent later through the
//! REST API, or not at all). [`parse_messages`] reads replies back out of TwiML for the local
//! simulator.

/// The `Content-Type` to send with TwiML.
pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// A TwiML document replying with one SMS whose text is `body`.
///
/// The text is XML-escaped, and characters XML 1.0 cannot carry at all (control characters
/// other than tab, line feed and carriage return; U+FFFE; U+FFFF) are dropped.
pub fn message(body: &str) -> String {
    let mut out = String::with_capacity(DECLARATION.len() + body.len() + 40);
    out.push_str(DECLARATION);
    out.push_str("<Response><Message>");
    escape_into(&mut out, body);
    out.push_str("</Message></Response>");
    out
}

/// A TwiML document that acknowledges the webhook without replying.
pub fn empty() -> String {
    format!("{DECLARATION}<Response/>")
}

/// Whether XML 1.0 allows `c` in a document.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// The unescaped text of every `<Message>` in a TwiML document, in order.
///
/// Accepts `<Message>` with attributes, the nested form `<Message><Body>…</Body></Message>`
/// (other children such as `<Media>` are ignored), CDATA sections, comments, and character
/// references. This is a small lenient scanner for the local simulator, not a validating
/// parser: malformed input yields what could be read, never a panic. A `<Message>` left open at
/// the end of the input is still returned.
pub fn parse_messages(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Inside a <Message>: its own text, its <Body> text if any, and the depth of other children.
    let mut current: Option<(String, Option<String>)> = None;
    let mut in_body = false;
    let mut depth = 0usize;

    let tokens = Tokens { rest: xml };
    for token in tokens {
        match token {
            Token::Start { name, self_closing } => match current.as_mut() {
                None if name == "Message" => {
                    if self_closing {
                        out.push(String::new());
                    } else {
                        current = Some((String::new(), None));
                        in_body = false;
                        depth = 0;
                    }
                }
                None => {}
                Some((_, body)) => {
                    if self_closing {
                        continue;
                    }
                    if name == "Body" && depth == 0 && !in_body {
                        in_body = true;
                        body.get_or_insert_with(String::new);
                    } else {
                        depth += 1;
                    }
                }
            },
            Token::End { name } => {
                if current.is_none() {
                    continue;
                }
                if name == "Message" {
                    if let Some((text, body)) = current.take() {
                        out.push(body.unwrap_or(text));
                    }
                } else if in_body && depth == 0 && name == "Body" {
                    in_body = false;
                } else {
                    depth = depth.saturating_sub(1);
                }
            }
            Token::Text(text) => match current.as_mut() {
                Some((_, Some(body))) if in_body && depth == 0 => body.push_str(&text),
                Some((own, _)) if depth == 0 => own.push_str(&text),
                _ => {}
            },
        }
    }
    if let Some((text, body)) = current {
        out.push(body.unwrap_or(text));
    }
    out
}

/// One piece of markup.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Start {
        name: &'a str,
        self_closing: bool,
    },
    End {
        name: &'a str,
    },
    /// Character data, already unescaped.
    Text(String),
}

/// A lenient tokenizer over an XML string. Declarations, processing instructions, comments and
/// doctypes are skipped.
struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let Some(after_lt) = self.rest.strip_prefix('<') else {
                let end = self.rest.find('<').unwrap_or(self.rest.len());
                let (text, rest) = self.rest.split_at(end);
                self.rest = rest;
                return Some(Token::Text(unescape(text)));
            };
            if let Some(after) = after_lt.strip_prefix("![CDATA[") {
                let (text, rest) = split_once_or_all(after, "]]>");
                self.rest = rest;
                return Some(Token::Text(text.to_owned()));
            }
            if let Some(after) = after_lt.strip_prefix("!--") {
                self.rest = split_once_or_all(after, "-->").1;
                continue;
            }
            if let Some(after) = after_lt.strip_prefix('?') {
                self.rest = split_once_or_all(after, "?>").1;
                continue;
            }
            if let Some(after) = after_lt.strip_prefix('!') {
                self.rest = split_once_or_all(after, ">").1;
                continue;
            }
            if let Some(after) = after_lt.strip_prefix('/') {
                let (inside, rest) = split_once_or_all(after, ">");
                self.rest = rest;
                return Some(Token::End {
                    name: inside.trim(),
                });
            }
            // A start tag: the name, then attributes whose quoted values may contain '>'.
            let name_end = after_lt
                .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
                .unwrap_or(after_lt.len());
            let name = &after_lt[..name_end];
            let mut quote: Option<char> = None;
            let mut close = None;
            for (i, c) in after_lt[name_end..].char_indices() {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '"' | '\'') => quote = Some(c),
                    (None, '>') => {
                        close = Some(name_end + i);
                        break;
                    }
                    _ => {}
                }
            }
            let Some(close) = close else {
                // Unterminated tag: nothing more can be read.
                self.rest = "";
                return None;
            };
            let self_closing = after_lt[..close].ends_with('/');
            self.rest = &after_lt[close + 1..];
            if name.is_empty() {
                continue;
            }
            return Some(Token::Start { name, self_closing });
        }
    }
}

/// `(before, after)` around the first `pat`, or `(all, "")` when it is missing.
fn split_once_or_all<'a>(s: &'a str, pat: &str) -> (&'a str, &'a str) {
    s.split_once(pat).unwrap_or((s, ""))
}

/// Replaces the five predefined entities and numeric character references. Anything that does
/// not parse is kept as written.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after
            .find(';')
            .filter(|&semi| semi <= 10)
            .and_then(|semi| decode_entity(&after[..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse::<u32>().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_wrapped_in_a_response_with_the_xml_declaration() {
        assert_eq!(
            message("Salut"),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Salut</Message></Response>"#
        );
    }

    #[test]
    fn the_empty_response_acknowledges_without_a_message() {
        assert_eq!(
            empty(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#
        );
        assert!(parse_messages(&empty()).is_empty());
    }

    #[test]
    fn markup_characters_are_escaped() {
        let xml = message(r#"a & b < c > d "e" 'f'"#);
        assert!(
            xml.contains("<Message>a &amp; b &lt; c &gt; d &quot;e&quot; &apos;f&apos;</Message>")
        );
    }

    #[test]
    fn characters_xml_forbids_are_dropped_but_whitespace_is_kept() {
        let xml = message("a\u{0}b\u{1}c\u{1B}d\u{7}\te\nf\rg\u{FFFE}h\u{FFFF}");
        assert!(xml.contains("<Message>abcd\te\nf\rgh</Message>"), "{xml}");
    }

    #[test]
    fn hostile_text_round_trips_through_message_and_parse() {
        let hostile = [
            "</Message><Message>injected</Message>",
            "]]><![CDATA[",
            "<!-- not a comment -->",
            "&amp; already escaped &lt;",
            "emoji 👋 and accents é ê ç",
            "<?xml version=\"1.0\"?>",
            "'\"<>&",
            "multi\nline\r\nwith\ttabs",
            "&#x41; &#65; &bogus; & ;",
            "",
        ];
        for text in hostile {
            assert_eq!(
                parse_messages(&message(text)),
                vec![text.to_owned()],
                "{text:?}"
            );
        }
    }

    #[test]
    fn stripped_control_characters_do_not_survive_the_round_trip() {
        assert_eq!(parse_messages(&message("a\u{0}b")), vec!["ab".to_owned()]);
    }

    #[test]
    fn messages_with_attributes_and_nested_bodies_are_read() {
        let xml = r#"<?xml version="1.0"?>
            <Response>
              <Message to="+15550001111" from='+1555>2'>First &amp; foremost</Message>
              <Message>
                <Body>Second</Body>
                <Media>https://example.com/cat.jpg</Media>
              </Message>
              <!-- <Message>commented out</Message> -->
              <Message><![CDATA[Third <raw>]]></Message>
              <Message/>
            </Response>"#;
        assert_eq!(
            parse_messages(xml),
            vec![
                "First & foremost".to_owned(),
                "Second".to_owned(),
                "Third <raw>".to_owned(),
                String::new(),
            ]
        );
    }

    #[test]
    fn other_verbs_are_ignored() {
        let xml = "<Response><Redirect>/next</Redirect><Message>hi</Message></Response>";
        assert_eq!(parse_messages(xml), vec!["hi".to_owned()]);
    }

    #[test]
    fn malformed_input_never_panics() {
        let inputs = [
            "<",
            "<Message",
            "<Message>unterminated",
            "<Message attr=\"never closed>",
            "</Message></Message>",
            "<Message><Body>x",
            "<Message><Body></Message>",
            "&",
            "&#xFFFFFFFFFF;",
            "&#xD800;",
            "<Message>&#",
            "<><//><!><?",
            "<Message><![CDATA[",
            "<Message><!--",
            "\u{0}<Message>é\u{1}</Message>",
        ];
        for input in inputs {
            let _ = parse_messages(input);
        }
        assert_eq!(
            parse_messages("<Message>unterminated"),
            vec!["unterminated"]
        );
        assert_eq!(
            parse_messages("&#xD800;<Message>&#xD800;</Message>"),
            vec!["&#xD800;"]
        );
    }
}
