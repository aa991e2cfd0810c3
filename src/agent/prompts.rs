//! The prompts of `prompts/`, compiled in, and their rendering for a user and a turn.
//!
//! Placeholders are `{{name}}`-style and filled in one pass; values are inserted as they are
//! (a user's text containing `{{x}}` is not expanded again).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::RecalledMemory;
use super::Said;
use crate::store::{Channel, Direction, Language, User};

/// The prompts' version folder; part of every cache key.
pub const PROMPT_VERSION: &str = "v1";

/// One language's prompt texts.
struct Texts {
    system: &'static str,
    length_sms: &'static str,
    length_web: &'static str,
    summary_section: &'static str,
    memories_section: &'static str,
    wrap_up: &'static str,
    fold: &'static str,
    fold_input: &'static str,
    channel_sms: &'static str,
    channel_web: &'static str,
    none: &'static str,
    speaker_user: &'static str,
}

const EN: Texts = Texts {
    system: include_str!("../../prompts/v1/system.en.txt"),
    length_sms: include_str!("../../prompts/v1/length.sms.en.txt"),
    length_web: include_str!("../../prompts/v1/length.web.en.txt"),
    summary_section: include_str!("../../prompts/v1/summary_section.en.txt"),
    memories_section: include_str!("../../prompts/v1/memories_section.en.txt"),
    wrap_up: include_str!("../../prompts/v1/wrap_up.en.txt"),
    fold: include_str!("../../prompts/v1/fold.en.txt"),
    fold_input: include_str!("../../prompts/v1/fold_input.en.txt"),
    channel_sms: "by SMS",
    channel_web: "in the web chat",
    none: "(none)",
    speaker_user: "User",
};

const FR: Texts = Texts {
    system: include_str!("../../prompts/v1/system.fr.txt"),
    length_sms: include_str!("../../prompts/v1/length.sms.fr.txt"),
    length_web: include_str!("../../prompts/v1/length.web.fr.txt"),
    summary_section: include_str!("../../prompts/v1/summary_section.fr.txt"),
    memories_section: include_str!("../../prompts/v1/memories_section.fr.txt"),
    wrap_up: include_str!("../../prompts/v1/wrap_up.fr.txt"),
    fold: include_str!("../../prompts/v1/fold.fr.txt"),
    fold_input: include_str!("../../prompts/v1/fold_input.fr.txt"),
    channel_sms: "par SMS",
    channel_web: "dans le chat web",
    none: "(aucun)",
    speaker_user: "Utilisateur",
};

fn texts(language: Language) -> &'static Texts {
    match language {
        Language::En => &EN,
        Language::Fr => &FR,
    }
}

/// Fills `{{key}}` placeholders in one left-to-right pass. Unknown placeholders are left.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = &after[..end];
                match values.iter().find(|(k, _)| *k == key) {
                    Some((_, value)) => out.push_str(value),
                    None => {
                        out.push_str("{{");
                        out.push_str(key);
                        out.push_str("}}");
                    }
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The user's local time, written out in their language (`Tuesday 3 March 2026, 09:05`),
/// and the zone's name. An unknown zone reads as UTC.
pub fn local_time(user: &User, now: DateTime<Utc>) -> (String, String) {
    let tz: Tz = user.time_zone.parse().unwrap_or(Tz::UTC);
    let local = now.with_timezone(&tz);
    let text = match user.language {
        Language::En => local.format("%A %-d %B %Y, %H:%M").to_string(),
        Language::Fr => {
            use chrono::Datelike;
            const DAYS: [&str; 7] = [
                "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
            ];
            const MONTHS: [&str; 12] = [
                "janvier",
                "février",
                "mars",
                "avril",
                "mai",
                "juin",
                "juillet",
                "août",
                "septembre",
                "octobre",
                "novembre",
                "décembre",
            ];
            let day = DAYS[local.weekday().num_days_from_monday() as usize];
            let month = MONTHS[local.month0() as usize];
            format!(
                "{day} {} {month} {}, {}",
                local.day(),
                local.year(),
                local.format("%H:%M")
            )
        }
    };
    (text, tz.name().to_owned())
}

/// The system instruction of a turn.
pub fn system(
    user: &User,
    channel: Channel,
    now: DateTime<Utc>,
    summary: Option<&str>,
    memories: &[RecalledMemory],
) -> String {
    let t = texts(user.language);
    let (time, zone) = local_time(user, now);
    let summary_section = match summary.map(str::trim).filter(|s| !s.is_empty()) {
        Some(summary) => render(t.summary_section, &[("summary", summary)]),
        None => String::new(),
    };
    let memories_section = if memories.is_empty() {
        String::new()
    } else {
        let lines: Vec<String> = memories
            .iter()
            .map(|m| format!("- [{}] {}", m.kind, m.text))
            .collect();
        render(t.memories_section, &[("memories", &lines.join("\n"))])
    };
    let (channel_text, length) = match channel {
        Channel::Sms => (t.channel_sms, t.length_sms),
        Channel::Web => (t.channel_web, t.length_web),
    };
    render(
        t.system,
        &[
            ("name", &user.display_name),
            ("channel", channel_text),
            ("length_rule", length.trim()),
            ("local_time", &time),
            ("time_zone", &zone),
            ("summary_section", summary_section.trim_end()),
            ("memories_section", memories_section.trim_end()),
        ],
    )
    .trim_end()
    .to_owned()
}

/// The runtime's note for a turn's last call, once its budget is used up.
pub fn wrap_up(user: &User) -> String {
    render(
        texts(user.language).wrap_up,
        &[("name", &user.display_name)],
    )
    .trim()
    .to_owned()
}

/// The system instruction and the user content of a summary fold.
pub fn fold(user: &User, previous: Option<&str>, messages: &[Said]) -> (String, String) {
    let t = texts(user.language);
    let system = render(t.fold, &[("name", &user.display_name)])
        .trim()
        .to_owned();
    let transcript: Vec<String> = messages
        .iter()
        .map(|m| {
            let who = match m.direction() {
                Direction::Inbound => t.speaker_user,
                Direction::Outbound => "Nudge",
            };
            format!("{who}: {}", m.body())
        })
        .collect();
    let input = render(
        t.fold_input,
        &[
            ("previous", previous.unwrap_or(t.none)),
            ("transcript", &transcript.join("\n")),
        ],
    )
    .trim()
    .to_owned();
    (system, input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Role, UserId};
    use chrono::TimeZone;

    fn user(language: Language, zone: &str) -> User {
        User {
            id: UserId::new(),
            display_name: "Ana".into(),
            phone: Some("+14155550101".into()),
            number: Some("+14155559001".into()),
            language,
            time_zone: zone.into(),
            role: Role::Standard,
            sms_opted_out: false,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn placeholders_fill_once_and_unknown_ones_stay() {
        assert_eq!(
            render("{{a}} and {{b}} and {{c", &[("a", "{{b}}"), ("b", "B")]),
            "{{b}} and B and {{c"
        );
    }

    #[test]
    fn the_system_prompt_speaks_the_users_language_and_local_time() {
        let now = Utc.with_ymd_and_hms(2026, 3, 3, 17, 5, 0).unwrap();
        let en = system(
            &user(Language::En, "America/Los_Angeles"),
            Channel::Sms,
            now,
            None,
            &[],
        );
        assert!(en.contains("for Ana, who has ADHD"), "{en}");
        assert!(
            en.contains("Tuesday 3 March 2026, 09:05 (America/Los_Angeles)"),
            "{en}"
        );
        assert!(en.contains("at most 300 characters"), "{en}");
        assert!(!en.contains("{{") && !en.contains("Summary of"), "{en}");

        let fr = system(
            &user(Language::Fr, "Europe/Paris"),
            Channel::Web,
            now,
            Some("Ana prépare un déménagement."),
            &[RecalledMemory {
                id: 1,
                text: "préfère les rappels le matin".into(),
                kind: "preference".into(),
                score: 0.9,
            }],
        );
        assert!(
            fr.contains("mardi 3 mars 2026, 18:05 (Europe/Paris)"),
            "{fr}"
        );
        assert!(fr.contains("dans le chat web"), "{fr}");
        assert!(
            fr.contains("Résumé de vos échanges précédents :\nAna prépare un déménagement."),
            "{fr}"
        );
        assert!(
            fr.contains("- [preference] préfère les rappels le matin"),
            "{fr}"
        );
    }

    #[test]
    fn an_unknown_zone_reads_as_utc() {
        let now = Utc.with_ymd_and_hms(2026, 3, 3, 17, 5, 0).unwrap();
        let (time, zone) = local_time(&user(Language::En, "Mars/Olympus"), now);
        assert_eq!(
            (time.as_str(), zone.as_str()),
            ("Tuesday 3 March 2026, 17:05", "UTC")
        );
    }
}
