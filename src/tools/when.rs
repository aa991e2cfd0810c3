//! Natural time in English and French: "in 20 minutes", "tomorrow at 9", "demain à 9h",
//! "every Monday", "à 18h30", "next friday at 5pm", "dans 2 heures", "tous les lundis".
//!
//! One grammar reads both languages: the words differ but the shapes are the same (a day, a
//! part of the day, a clock time, a repeat, in any order), and a message may mix them. Reading
//! happens in two steps, each testable on its own:
//!
//! 1. [`parse`] turns text into an [`Expr`] without looking at any clock (pure);
//! 2. [`Expr::resolve`] places it in time from a given `now` in the user's IANA zone, giving a
//!    [`When`]: a moment, a day without a time, or a repeating moment with its first occurrence.
//!
//! # Local times that do not exist or exist twice
//!
//! On the day clocks go forward, a wall time inside the gap ("2:30" in Paris on the last Sunday
//! of March) moves forward by the gap's length (03:30 summer time), as RFC 5545 does. On the
//! day clocks go back, a wall time that happens twice resolves to its first occurrence (the
//! summer-time one). [`resolve_local`] applies this everywhere, so every answer is
//! deterministic.
//!
//! # Ambiguous hours
//!
//! "at 9" with no am / pm / "h": hours 1 to 7 read as afternoon (people rarely set 5 am
//! reminders), 8 to 12 as morning; when that moment has already passed today and no day was
//! named, the other half of the day is tried, then tomorrow. A part of the day settles it
//! ("ce soir à 8h" is 20:00). French "9h" / "18h30" and "09:00" are 24-hour clock times.
//!
//! A named weekday ("friday", "next friday", "vendredi prochain") is the next such day after
//! today, one to seven days ahead.

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;

use crate::store::Language;
use crate::tools::tasks::fold;

/// How far ahead a time may be: beyond this it is surely a typo.
pub const MAX_DAYS_AHEAD: i64 = 5 * 366;

/// A time expression as read, before any clock is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// An exact span from now ("in 20 minutes", "dans 1h30").
    After {
        /// The span, in minutes.
        minutes: u32,
    },
    /// A day, a part of a day and/or a clock time ("tomorrow at 9", "ce soir", "à 18h30").
    On(Moment),
    /// A repeating time ("every monday at 9", "tous les jours à 8h").
    Every {
        /// Which days.
        repeat: Repeat,
        /// When in those days (9:00 when neither is given).
        part: Option<Part>,
        clock: Option<Clock>,
    },
}

/// The parts of a one-off time; at least one is present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Moment {
    pub day: Option<Day>,
    pub part: Option<Part>,
    pub clock: Option<Clock>,
}

/// A day named without a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    Today,
    Tomorrow,
    AfterTomorrow,
    /// The next such weekday after today (1 to 7 days ahead).
    Next(Weekday),
    /// A number of whole days ahead ("in 3 days", "dans une semaine").
    InDays(u32),
    /// A calendar date; without a year, the next one that is not past. Without a month, the
    /// next such day of a month ("le 12").
    Date {
        month: Option<u32>,
        day: u32,
        year: Option<i32>,
    },
}

/// A part of the day, which also sets a default time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// 9:00.
    Morning,
    /// 12:00.
    Noon,
    /// 14:00.
    Afternoon,
    /// 19:00.
    Evening,
    /// 22:00.
    Night,
    /// 00:00 at the end of the day.
    Midnight,
}

impl Part {
    fn default_time(self) -> (u32, u32) {
        match self {
            Part::Morning => (9, 0),
            Part::Noon => (12, 0),
            Part::Afternoon => (14, 0),
            Part::Evening => (19, 0),
            Part::Night => (22, 0),
            Part::Midnight => (0, 0),
        }
    }

    /// Whether an hour below 12 in this part means the afternoon / evening one.
    fn is_late(self) -> bool {
        matches!(self, Part::Afternoon | Part::Evening | Part::Night)
    }
}

/// A clock time as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub hour: u32,
    pub minute: u32,
    pub style: Style,
}

/// How a clock time was written, which decides how an hour below 13 is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Am,
    Pm,
    /// "18h30", "9h", "09:00", "17:00": read as written.
    TwentyFour,
    /// "at 9", "at 5:30": morning or afternoon by the rule in the module docs.
    Bare,
}

/// Which days a repeating time falls on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    Daily,
    /// These weekdays, Monday first, no duplicates.
    Weekly(Vec<Weekday>),
}

/// A resolved repeating time: the days, a local wall time, read in the row's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    pub repeat: Repeat,
    pub hour: u32,
    pub minute: u32,
}

/// A time expression placed in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// One moment.
    At(DateTime<Utc>),
    /// A day without a time of day ("friday", "demain"): a due date, or a default hour.
    Day(NaiveDate),
    /// A repeating moment and its first occurrence after now.
    Every {
        first: DateTime<Utc>,
        rule: Recurrence,
    },
}

/// Why a time could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    #[error("not a time I understand")]
    NotUnderstood,
    #[error("that time has already passed")]
    Past,
    #[error("that date does not exist")]
    InvalidDate,
    #[error("that is more than five years ahead")]
    TooFar,
}

// ---------------------------------------------------------------------------------------------
// Resolving
// ---------------------------------------------------------------------------------------------

/// The instant a local wall time names in `tz`: a time in a DST gap moves forward by the gap,
/// a time that happens twice is its first occurrence.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Read the wall time with the offset in force just before the gap: the clock said
            // 02:30 "in winter time", which is 03:30 summer time.
            let before = local - Duration::hours(6);
            let offset = match tz.offset_from_local_datetime(&before) {
                LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => o.fix(),
                LocalResult::None => Utc.fix(),
            };
            (local - Duration::seconds(i64::from(offset.local_minus_utc()))).and_utc()
        }
    }
}

/// The user's zone, or UTC when the stored name is not one (it is checked on entry).
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

fn local_date(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

fn at(tz: Tz, date: NaiveDate, hour: u32, minute: u32) -> Result<DateTime<Utc>, WhenError> {
    let time = NaiveTime::from_hms_opt(hour, minute, 0).ok_or(WhenError::InvalidDate)?;
    Ok(resolve_local(tz, date.and_time(time)))
}

fn days_after(date: NaiveDate, days: i64) -> Result<NaiveDate, WhenError> {
    date.checked_add_signed(Duration::days(days))
        .ok_or(WhenError::TooFar)
}

impl Day {
    /// The date this day names, seen from `today`.
    pub fn date(self, today: NaiveDate) -> Result<NaiveDate, WhenError> {
        match self {
            Day::Today => Ok(today),
            Day::Tomorrow => days_after(today, 1),
            Day::AfterTomorrow => days_after(today, 2),
            Day::Next(weekday) => {
                let ahead = (7 + weekday.num_days_from_monday()
                    - today.weekday().num_days_from_monday())
                    % 7;
                days_after(today, i64::from(if ahead == 0 { 7 } else { ahead }))
            }
            Day::InDays(n) => days_after(today, i64::from(n)),
            Day::Date { month, day, year } => {
                let month_of = |y: i32, m: u32| NaiveDate::from_ymd_opt(y, m, day);
                match (month, year) {
                    (Some(m), Some(y)) => month_of(y, m).ok_or(WhenError::InvalidDate),
                    (Some(m), None) => {
                        if !(1..=12).contains(&m) || NaiveDate::from_ymd_opt(2024, m, day).is_none()
                        {
                            return Err(WhenError::InvalidDate);
                        }
                        // This year's, else next year's (a 29 February waits for a leap year).
                        (today.year()..today.year() + 9)
                            .filter_map(|y| month_of(y, m))
                            .find(|d| *d >= today)
                            .ok_or(WhenError::InvalidDate)
                    }
                    (None, _) => {
                        if !(1..=31).contains(&day) {
                            return Err(WhenError::InvalidDate);
                        }
                        let mut y = today.year();
                        let mut m = today.month();
                        for _ in 0..13 {
                            if let Some(d) = month_of(y, m)
                                && d >= today
                            {
                                return Ok(d);
                            }
                            (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                        }
                        Err(WhenError::InvalidDate)
                    }
                }
            }
        }
    }
}

impl Clock {
    /// The 24-hour hour this clock names, given the part of day around it.
    fn hour24(self, part: Option<Part>) -> u32 {
        match self.style {
            Style::Am => self.hour % 12,
            Style::Pm => self.hour % 12 + 12,
            Style::TwentyFour | Style::Bare
                if self.hour < 12 && part.is_some_and(Part::is_late) =>
            {
                self.hour + 12
            }
            Style::TwentyFour => self.hour,
            Style::Bare => {
                if part == Some(Part::Morning) || !(1..=7).contains(&self.hour) {
                    self.hour
                } else {
                    self.hour + 12
                }
            }
        }
    }

    /// The other reading of a bare hour ("9" → 21:00, "5" → 5:00), if any.
    fn other_half(self, part: Option<Part>) -> Option<u32> {
        if self.style != Style::Bare || part.is_some() || self.hour > 12 || self.hour == 0 {
            return None;
        }
        let first = self.hour24(None);
        Some(if first >= 12 { first - 12 } else { first + 12 })
    }
}

/// The wall time of a part and/or clock (9:00 when neither is given).
fn wall_time(part: Option<Part>, clock: Option<Clock>) -> (u32, u32) {
    match (clock, part) {
        (Some(c), p) => (c.hour24(p), c.minute),
        (None, Some(p)) => p.default_time(),
        (None, None) => (9, 0),
    }
}

impl Expr {
    /// Whether this expression repeats.
    pub fn is_recurring(&self) -> bool {
        matches!(self, Expr::Every { .. })
    }

    /// Places the expression in time, seen from `now` in the zone `tz`.
    pub fn resolve(&self, now: DateTime<Utc>, tz: Tz) -> Result<When, WhenError> {
        let when = match self {
            Expr::After { minutes } => When::At(now + Duration::minutes(i64::from(*minutes))),
            Expr::On(moment) => moment.resolve(now, tz)?,
            Expr::Every {
                repeat,
                part,
                clock,
            } => {
                let (hour, minute) = wall_time(*part, *clock);
                let rule = Recurrence {
                    repeat: repeat.clone(),
                    hour,
                    minute,
                };
                When::Every {
                    first: rule.next_after(now, tz),
                    rule,
                }
            }
        };
        let horizon = now + Duration::days(MAX_DAYS_AHEAD);
        let too_far = match &when {
            When::At(t) | When::Every { first: t, .. } => *t > horizon,
            When::Day(d) => *d > horizon.date_naive(),
        };
        if too_far {
            return Err(WhenError::TooFar);
        }
        Ok(when)
    }
}

impl Moment {
    fn resolve(&self, now: DateTime<Utc>, tz: Tz) -> Result<When, WhenError> {
        let today = local_date(now, tz);
        let date = self.day.map(|d| d.date(today)).transpose()?;
        if self.part.is_none() && self.clock.is_none() {
            let date = date.ok_or(WhenError::NotUnderstood)?;
            if date < today {
                return Err(WhenError::Past);
            }
            return Ok(When::Day(date));
        }
        let (hour, minute) = wall_time(self.part, self.clock);
        // Midnight is the end of the day named.
        let shift = i64::from(self.clock.is_none() && self.part == Some(Part::Midnight));
        let on = |d: NaiveDate| -> Result<DateTime<Utc>, WhenError> {
            at(tz, days_after(d, shift)?, hour, minute)
        };
        match date {
            Some(date) => {
                let first = on(date)?;
                if first > now {
                    return Ok(When::At(first));
                }
                if date == today
                    && let Some(other) = self.clock.and_then(|c| c.other_half(self.part))
                {
                    let second = at(tz, date, other, minute)?;
                    if second > now {
                        return Ok(When::At(second));
                    }
                }
                Err(WhenError::Past)
            }
            None => {
                let first = on(today)?;
                if first > now {
                    return Ok(When::At(first));
                }
                if let Some(other) = self.clock.and_then(|c| c.other_half(self.part)) {
                    let second = at(tz, today, other, minute)?;
                    if second > now {
                        return Ok(When::At(second));
                    }
                }
                Ok(When::At(on(days_after(today, 1)?)?))
            }
        }
    }
}

impl Recurrence {
    /// Whether the rule falls on `date`.
    pub fn falls_on(&self, date: NaiveDate) -> bool {
        match &self.repeat {
            Repeat::Daily => true,
            Repeat::Weekly(days) => days.contains(&date.weekday()),
        }
    }

    /// The first occurrence strictly after `after`, reading the wall time in `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let start = local_date(after, tz);
        let time = NaiveTime::from_hms_opt(self.hour, self.minute, 0).unwrap_or(NaiveTime::MIN);
        let mut date = start;
        // A weekly rule falls within 8 days; a rule with no day at all (never built) ends the
        // loop on the 9th day rather than spinning.
        for _ in 0..9 {
            if self.falls_on(date) {
                let candidate = resolve_local(tz, date.and_time(time));
                if candidate > after {
                    return candidate;
                }
            }
            date = date.succ_opt().unwrap_or(date);
        }
        resolve_local(tz, date.and_time(time))
    }

    /// The rule as RFC 5545 RRULE text: `FREQ=DAILY;BYHOUR=9;BYMINUTE=0` or
    /// `FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0`.
    pub fn to_rrule(&self) -> String {
        match &self.repeat {
            Repeat::Daily => format!("FREQ=DAILY;BYHOUR={};BYMINUTE={}", self.hour, self.minute),
            Repeat::Weekly(days) => format!(
                "FREQ=WEEKLY;BYDAY={};BYHOUR={};BYMINUTE={}",
                days.iter()
                    .map(|d| rrule_day(*d))
                    .collect::<Vec<_>>()
                    .join(","),
                self.hour,
                self.minute
            ),
        }
    }

    /// Reads what [`Recurrence::to_rrule`] writes.
    pub fn from_rrule(text: &str) -> Result<Self, String> {
        let mut freq = None;
        let mut days = Vec::new();
        let mut hour = None;
        let mut minute = None;
        for part in text.split(';') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not KEY=VALUE"))?;
            match key {
                "FREQ" => freq = Some(value),
                "BYDAY" => {
                    for d in value.split(',') {
                        days.push(parse_rrule_day(d).ok_or_else(|| format!("bad day {d:?}"))?);
                    }
                }
                "BYHOUR" => hour = value.parse::<u32>().ok().filter(|h| *h < 24),
                "BYMINUTE" => minute = value.parse::<u32>().ok().filter(|m| *m < 60),
                other => return Err(format!("unsupported RRULE part {other:?}")),
            }
        }
        let (Some(hour), Some(minute)) = (hour, minute) else {
            return Err("BYHOUR and BYMINUTE are required".into());
        };
        let repeat = match freq {
            Some("DAILY") if days.is_empty() => Repeat::Daily,
            Some("WEEKLY") if !days.is_empty() => Repeat::Weekly(sorted_days(days)),
            _ => return Err(format!("unsupported rule {text:?}")),
        };
        Ok(Self {
            repeat,
            hour,
            minute,
        })
    }
}

fn rrule_day(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

fn parse_rrule_day(text: &str) -> Option<Weekday> {
    Some(match text {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn sorted_days(mut days: Vec<Weekday>) -> Vec<Weekday> {
    days.sort_by_key(|d| d.num_days_from_monday());
    days.dedup();
    days
}

const WORKDAYS: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Reads `text` as a time expression; `None` unless all of it is one.
pub fn parse(text: &str) -> Option<Expr> {
    let toks = tokenize(text);
    parse_tokens(&toks)
}

/// A time expression found inside a longer text, with its byte range in that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub expr: Expr,
    pub start: usize,
    pub end: usize,
}

/// The longest time expression that ends `text` ("call mom *tomorrow at 9*").
pub fn find_at_end(text: &str) -> Option<Found> {
    let toks = tokenize(text);
    (0..toks.len()).find_map(|i| {
        parse_tokens(&toks[i..]).map(|expr| Found {
            expr,
            start: toks[i].start,
            end: toks[toks.len() - 1].end,
        })
    })
}

/// The longest time expression that starts `text` ("*demain à 9h* appeler maman").
pub fn find_at_start(text: &str) -> Option<Found> {
    let toks = tokenize(text);
    (1..=toks.len()).rev().find_map(|n| {
        parse_tokens(&toks[..n]).map(|expr| Found {
            expr,
            start: toks[0].start,
            end: toks[n - 1].end,
        })
    })
}

/// Reads a time as a model or a person gives it: RFC 3339 (`2026-03-12T09:00:00+01:00`), a
/// local ISO date-time (`2026-03-12T09:00`, `2026-03-12 09:00`) or date (`2026-03-12`) in the
/// user's zone, or natural English / French.
pub fn read(text: &str, now: DateTime<Utc>, tz: Tz) -> Result<When, WhenError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(When::At(t.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(When::At(resolve_local(tz, local)));
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(When::Day(date));
    }
    parse(text)
        .ok_or(WhenError::NotUnderstood)?
        .resolve(now, tz)
}

/// One word of a time expression.
#[derive(Debug, Clone, PartialEq)]
struct Tok {
    /// Byte range in the original text.
    start: usize,
    end: usize,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A folded word: lower case, no accents, plain apostrophes.
    Word(String),
    /// A plain number ("9", "12", "1er", "3rd").
    Num(u32),
    /// "9:30", "9am", "9:30pm", "18h30", "9h".
    Clock(Clock),
    /// "20min", "2hrs", "3d": a number glued to a unit, in minutes (or days for day units).
    Span(Span),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Minutes(u32),
    Days(u32),
}

fn tokenize(text: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut start = None;
    let is_sep = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                ',' | ';'
                    | '!'
                    | '?'
                    | '('
                    | ')'
                    | '"'
                    | '\u{ab}'
                    | '\u{bb}'
                    | '-'
                    | '\u{2013}'
                    | '\u{2014}'
                    | '/'
            )
    };
    for (i, c) in text.char_indices() {
        if is_sep(c) {
            if let Some(s) = start.take() {
                push_word(text, s, i, &mut toks);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        push_word(text, s, text.len(), &mut toks);
    }
    toks
}

/// Pushes a word: trailing full stops dropped ("9am." / "p.m."), an elision split
/// ("l'après" → "l'" "apres"), numbers and clock times recognised.
fn push_word(text: &str, start: usize, end: usize, toks: &mut Vec<Tok>) {
    let raw = &text[start..end];
    let trimmed = raw.trim_end_matches(['.', ':']);
    if trimmed.is_empty() {
        return;
    }
    let end = start + trimmed.len();
    let folded = fold(trimmed).replace(['\u{2019}', '`'], "'");
    let bytes = folded.as_bytes();
    if bytes.len() > 2
        && bytes[1] == b'\''
        && matches!(bytes[0], b'l' | b'd' | b'j' | b'c' | b'n' | b's' | b'm')
    {
        // The elided article keeps its apostrophe; the rest starts after it in the original.
        let split = trimmed
            .char_indices()
            .nth(2)
            .map_or(trimmed.len(), |(i, _)| i);
        toks.push(Tok {
            start,
            end: start + split,
            kind: Kind::Word(folded[..2].to_owned()),
        });
        push_word(text, start + split, end, toks);
        return;
    }
    let folded = folded.replace('.', "");
    toks.push(Tok {
        start,
        end,
        kind: classify(&folded),
    });
}

fn classify(word: &str) -> Kind {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 4 {
        return Kind::Word(word.to_owned());
    }
    let Ok(n) = word[..digits].parse::<u32>() else {
        return Kind::Word(word.to_owned());
    };
    let rest = &word[digits..];
    let clock = |hour: u32, minute: u32, style: Style| {
        if hour < 24 && minute < 60 && !(matches!(style, Style::Am | Style::Pm) && hour > 12) {
            Kind::Clock(Clock {
                hour,
                minute,
                style,
            })
        } else {
            Kind::Word(word.to_owned())
        }
    };
    let meridiem = |suffix: &str| match suffix {
        "am" => Some(Style::Am),
        "pm" => Some(Style::Pm),
        _ => None,
    };
    if rest.is_empty() {
        return Kind::Num(n);
    }
    if matches!(rest, "er" | "re" | "st" | "nd" | "rd" | "th" | "e" | "eme") {
        return Kind::Num(n);
    }
    if let Some(style) = meridiem(rest) {
        return clock(n, 0, style);
    }
    // "9:30", "09:30", "9:30pm"
    if let Some(after) = rest.strip_prefix(':') {
        let m_digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if m_digits == 2 {
            let minute = after[..2].parse().unwrap_or(99);
            let suffix = &after[2..];
            if suffix.is_empty() {
                let style = if digits == 2 && word.starts_with('0') || n > 12 {
                    Style::TwentyFour
                } else {
                    Style::Bare
                };
                return clock(n, minute, style);
            }
            if let Some(style) = meridiem(suffix) {
                return clock(n, minute, style);
            }
        }
        return Kind::Word(word.to_owned());
    }
    // "18h30", "9h", "9h00"
    if let Some(after) = rest.strip_prefix('h')
        && (after.is_empty() || (after.len() == 2 && after.bytes().all(|b| b.is_ascii_digit())))
    {
        let minute = if after.is_empty() {
            0
        } else {
            after.parse().unwrap_or(99)
        };
        return clock(n, minute, Style::TwentyFour);
    }
    match rest {
        "min" | "mins" | "mn" | "m" | "minute" | "minutes" => Kind::Span(Span::Minutes(n)),
        "hr" | "hrs" | "hour" | "hours" | "heure" | "heures" => {
            Kind::Span(Span::Minutes(n.saturating_mul(60)))
        }
        "d" | "j" | "day" | "days" | "jour" | "jours" => Kind::Span(Span::Days(n)),
        "w" | "wk" | "wks" | "week" | "weeks" => Kind::Span(Span::Days(n.saturating_mul(7))),
        _ => Kind::Word(word.to_owned()),
    }
}

/// A position in the tokens, copied freely to try alternatives.
#[derive(Debug, Clone, Copy)]
struct P<'t> {
    toks: &'t [Tok],
    i: usize,
}

impl<'t> P<'t> {
    fn at_end(&self) -> bool {
        self.i >= self.toks.len()
    }

    fn peek(&self) -> Option<&'t Kind> {
        self.toks.get(self.i).map(|t| &t.kind)
    }

    fn word(&self) -> Option<&'t str> {
        match self.peek() {
            Some(Kind::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// Consumes the longest of `phrases` (space-separated folded words) that follows.
    fn eat(&mut self, phrases: &[&str]) -> bool {
        let mut best = 0;
        for phrase in phrases {
            // Word by word, without collecting: this runs for every phrase at every position
            // of every message.
            let mut len = 0;
            let matches = phrase.split(' ').all(|w| {
                let next = self.toks.get(self.i + len).map(|t| &t.kind);
                len += 1;
                matches!(next, Some(Kind::Word(x)) if x == w)
            });
            if matches && len > best {
                best = len;
            }
        }
        self.i += best;
        best > 0
    }

    fn num(&mut self) -> Option<u32> {
        match self.peek() {
            Some(Kind::Num(n)) => {
                self.i += 1;
                Some(*n)
            }
            _ => None,
        }
    }
}

fn parse_tokens(toks: &[Tok]) -> Option<Expr> {
    if toks.is_empty() {
        return None;
    }
    let mut p = P { toks, i: 0 };
    let mut moment = Moment::default();
    let mut repeat: Option<Repeat> = None;
    let mut after: Option<u32> = None;
    let mut any = false;
    // A plain number is a clock time only after "at" / "à" / "vers", or beside a day or a
    // part of the day: "take 2" is not "take at 2pm".
    let mut loose_number = false;
    while !p.at_end() {
        let mut q = p;
        if after.is_none()
            && moment.day.is_none()
            && repeat.is_none()
            && let Some(span) = span_from_now(&mut q)
        {
            match span {
                Span::Minutes(m) => after = Some(m),
                Span::Days(d) => moment.day = Some(Day::InDays(d)),
            }
        } else if repeat.is_none()
            && moment.day.is_none()
            && after.is_none()
            && let Some((r, part)) = repeat_phrase(&mut q)
        {
            repeat = Some(r);
            if part.is_some() {
                if moment.part.is_some() {
                    return None;
                }
                moment.part = part;
            }
        } else if moment.day.is_none()
            && after.is_none()
            && repeat.is_none()
            && let Some((day, part)) = day_phrase(&mut q)
        {
            moment.day = Some(day);
            if part.is_some() {
                if moment.part.is_some() {
                    return None;
                }
                moment.part = part;
            }
        } else if moment.part.is_none()
            && after.is_none()
            && let Some(part) = part_phrase(&mut q)
        {
            moment.part = Some(part);
        } else if moment.clock.is_none()
            && after.is_none()
            && let Some(clock) = clock_phrase(&mut q)
        {
            let plain = matches!(p.peek(), Some(Kind::Num(_))) && clock.style == Style::Bare;
            let anchored = p.i > 0
                && matches!(&toks[p.i - 1].kind, Kind::Word(w) if AT_WORDS.contains(&w.as_str()));
            loose_number = plain && !anchored;
            moment.clock = Some(clock);
        } else if q.eat(FILLERS) {
            // A preposition or article between parts: "at", "à", "on", "le", "vers".
            p = q;
            continue;
        } else {
            return None;
        }
        any = true;
        p = q;
    }
    if !any {
        return None;
    }
    if let Some(minutes) = after {
        return (moment == Moment::default() && repeat.is_none())
            .then_some(Expr::After { minutes });
    }
    if loose_number && moment.day.is_none() && moment.part.is_none() && repeat.is_none() {
        return None;
    }
    if let Some(repeat) = repeat {
        return Some(Expr::Every {
            repeat,
            part: moment.part,
            clock: moment.clock,
        });
    }
    Some(Expr::On(moment))
}

/// Words after which a plain number is a clock time.
const AT_WORDS: &[&str] = &[
    "at", "a", "vers", "around", "about", "by", "for", "pour", "@",
];

const FILLERS: &[&str] = &[
    "at", "a", "on", "le", "la", "the", "vers", "around", "about", "for", "pour", "by", "de", "du",
    "des", "this", "ce", "cet", "cette", "in", "dans", "and", "et", "starting", "from", "des le",
    "l'", "d'",
];

const MINUTE_UNITS: &[&str] = &["minute", "minutes", "min", "mins", "mn", "m"];
const HOUR_UNITS: &[&str] = &["hour", "hours", "hr", "hrs", "h", "heure", "heures"];
const DAY_UNITS: &[&str] = &["day", "days", "jour", "jours", "j", "journee", "journees"];
const WEEK_UNITS: &[&str] = &["week", "weeks", "semaine", "semaines", "wk", "wks"];

/// "in 20 minutes", "dans 1h30", "in an hour and a half", "in 3 days", "20 minutes from now".
fn span_from_now(p: &mut P<'_>) -> Option<Span> {
    let mut q = *p;
    let lead = q.eat(&["in", "dans", "d'ici", "d' ici", "within", "en"]);
    let span = quantity(&mut q)?;
    if !lead && !q.eat(&["from now", "later", "plus tard"]) {
        return None;
    }
    *p = q;
    Some(span)
}

/// Number words a span may start with.
fn amount(p: &mut P<'_>) -> Option<u32> {
    if let Some(n) = p.num() {
        return Some(n);
    }
    const WORDS: &[(&str, u32)] = &[
        ("a", 1),
        ("an", 1),
        ("one", 1),
        ("un", 1),
        ("une", 1),
        ("two", 2),
        ("deux", 2),
        ("couple of", 2),
        ("a couple of", 2),
        ("three", 3),
        ("trois", 3),
        ("four", 4),
        ("quatre", 4),
        ("five", 5),
        ("cinq", 5),
        ("six", 6),
        ("seven", 7),
        ("sept", 7),
        ("eight", 8),
        ("huit", 8),
        ("nine", 9),
        ("neuf", 9),
        ("ten", 10),
        ("dix", 10),
        ("fifteen", 15),
        ("quinze", 15),
        ("twenty", 20),
        ("vingt", 20),
        ("thirty", 30),
        ("trente", 30),
        ("forty five", 45),
        ("quarante cinq", 45),
    ];
    longest(p, WORDS)
}

/// Consumes the longest phrase of `table` that follows and gives its value.
fn longest<T: Copy>(p: &mut P<'_>, table: &[(&str, T)]) -> Option<T> {
    let mut best: Option<(usize, T)> = None;
    for (phrase, value) in table {
        let mut q = *p;
        if q.eat(&[phrase]) && best.is_none_or(|(len, _)| q.i - p.i > len) {
            best = Some((q.i - p.i, *value));
        }
    }
    let (len, value) = best?;
    p.i += len;
    Some(value)
}

/// A sum of spans: "1 hour and 30 minutes", "1h30", "une heure et demie", "half an hour".
fn quantity(p: &mut P<'_>) -> Option<Span> {
    let mut minutes: u32 = 0;
    let mut days: u32 = 0;
    let mut parts = 0;
    loop {
        let mut q = *p;
        if parts > 0 && !q.eat(&["and", "et"]) {
            // Parts may also just follow each other: "1 hour 30 minutes".
            q = *p;
        }
        let Some(span) = one_span(&mut q) else {
            break;
        };
        match span {
            Span::Minutes(m) => minutes = minutes.saturating_add(m),
            Span::Days(d) => days = days.saturating_add(d),
        }
        parts += 1;
        *p = q;
        // "an hour and a half", "une heure et demie"
        let mut h = *p;
        if matches!(span, Span::Minutes(m) if m >= 60 && m % 60 == 0)
            && h.eat(&["and a half", "et demie", "et demi"])
        {
            minutes = minutes.saturating_add(30);
            *p = h;
        }
    }
    match (parts, minutes, days) {
        (0, _, _) => None,
        (_, 0, d) => Some(Span::Days(d)),
        (_, m, 0) => Some(Span::Minutes(m)),
        _ => None,
    }
}

fn one_span(p: &mut P<'_>) -> Option<Span> {
    let mut q = *p;
    if let Some(Kind::Span(span)) = q.peek() {
        q.i += 1;
        *p = q;
        return Some(*span);
    }
    // "1h30" after "in" is a span, not a clock time.
    if let Some(Kind::Clock(c)) = q.peek()
        && c.style == Style::TwentyFour
    {
        q.i += 1;
        *p = q;
        return Some(Span::Minutes(c.hour * 60 + c.minute));
    }
    let mut h = *p;
    if h.eat(&[
        "half an hour",
        "a half hour",
        "half hour",
        "une demi heure",
        "demi heure",
    ]) {
        *p = h;
        return Some(Span::Minutes(30));
    }
    let mut h = *p;
    if h.eat(&[
        "a quarter of an hour",
        "quarter of an hour",
        "a quarter hour",
        "quarter hour",
        "un quart d' heure",
        "quart d' heure",
    ]) {
        *p = h;
        return Some(Span::Minutes(15));
    }
    let n = amount(&mut q)?;
    let span = if q.eat(MINUTE_UNITS) {
        Span::Minutes(n)
    } else if q.eat(HOUR_UNITS) {
        Span::Minutes(n.saturating_mul(60))
    } else if q.eat(DAY_UNITS) {
        Span::Days(n)
    } else if q.eat(WEEK_UNITS) {
        Span::Days(n.saturating_mul(7))
    } else {
        return None;
    };
    *p = q;
    Some(span)
}

const WEEKDAYS: &[(&str, Weekday)] = &[
    ("monday", Weekday::Mon),
    ("mon", Weekday::Mon),
    ("lundi", Weekday::Mon),
    ("tuesday", Weekday::Tue),
    ("tue", Weekday::Tue),
    ("tues", Weekday::Tue),
    ("mardi", Weekday::Tue),
    ("wednesday", Weekday::Wed),
    ("wed", Weekday::Wed),
    ("mercredi", Weekday::Wed),
    ("thursday", Weekday::Thu),
    ("thu", Weekday::Thu),
    ("thur", Weekday::Thu),
    ("thurs", Weekday::Thu),
    ("jeudi", Weekday::Thu),
    ("friday", Weekday::Fri),
    ("fri", Weekday::Fri),
    ("vendredi", Weekday::Fri),
    ("saturday", Weekday::Sat),
    ("sat", Weekday::Sat),
    ("samedi", Weekday::Sat),
    ("sunday", Weekday::Sun),
    ("sun", Weekday::Sun),
    ("dimanche", Weekday::Sun),
];

fn weekday(word: &str) -> Option<Weekday> {
    WEEKDAYS
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, d)| *d)
}

/// A weekday in the plural: "mondays", "lundis".
fn weekday_plural(word: &str) -> Option<Weekday> {
    let singular = word.strip_suffix('s')?;
    weekday(singular).filter(|_| singular.len() > 3)
}

const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("jan", 1),
    ("janvier", 1),
    ("janv", 1),
    ("february", 2),
    ("feb", 2),
    ("fevrier", 2),
    ("fevr", 2),
    ("march", 3),
    ("mars", 3),
    ("april", 4),
    ("apr", 4),
    ("avril", 4),
    ("avr", 4),
    ("may", 5),
    ("mai", 5),
    ("june", 6),
    ("jun", 6),
    ("juin", 6),
    ("july", 7),
    ("jul", 7),
    ("juillet", 7),
    ("juil", 7),
    ("august", 8),
    ("aug", 8),
    ("aout", 8),
    ("september", 9),
    ("sep", 9),
    ("sept", 9),
    ("septembre", 9),
    ("october", 10),
    ("oct", 10),
    ("octobre", 10),
    ("november", 11),
    ("nov", 11),
    ("novembre", 11),
    ("december", 12),
    ("dec", 12),
    ("decembre", 12),
];

fn month(p: &mut P<'_>) -> Option<u32> {
    let word = p.word()?;
    let m = MONTHS.iter().find(|(name, _)| *name == word)?.1;
    p.i += 1;
    Some(m)
}

fn year(p: &mut P<'_>) -> Option<i32> {
    let mut q = *p;
    let n = q.num()?;
    if (2000..=2100).contains(&n) {
        *p = q;
        return i32::try_from(n).ok();
    }
    None
}

/// A day, possibly with a part of it: "tomorrow", "demain matin", "next friday", "lundi
/// prochain", "le 12 mars", "march 12th 2027", "tonight", "ce soir", "in 3 days" (by
/// [`span_from_now`]).
fn day_phrase(p: &mut P<'_>) -> Option<(Day, Option<Part>)> {
    let mut q = *p;
    let with_part: &[(&str, (Day, Part))] = &[
        ("tonight", (Day::Today, Part::Evening)),
        ("this evening", (Day::Today, Part::Evening)),
        ("this morning", (Day::Today, Part::Morning)),
        ("this afternoon", (Day::Today, Part::Afternoon)),
        ("ce soir", (Day::Today, Part::Evening)),
        ("ce matin", (Day::Today, Part::Morning)),
        ("cet apres midi", (Day::Today, Part::Afternoon)),
        ("cet aprem", (Day::Today, Part::Afternoon)),
        ("cette nuit", (Day::Today, Part::Night)),
        ("tomorrow night", (Day::Tomorrow, Part::Night)),
        ("demain soir", (Day::Tomorrow, Part::Evening)),
    ];
    if let Some((day, part)) = longest(&mut q, with_part) {
        *p = q;
        return Some((day, Some(part)));
    }
    let simple: &[(&str, Day)] = &[
        ("today", Day::Today),
        ("aujourd'hui", Day::Today),
        ("auj", Day::Today),
        ("tomorrow", Day::Tomorrow),
        ("tmrw", Day::Tomorrow),
        ("tmr", Day::Tomorrow),
        ("tomorow", Day::Tomorrow),
        ("demain", Day::Tomorrow),
        ("day after tomorrow", Day::AfterTomorrow),
        ("the day after tomorrow", Day::AfterTomorrow),
        ("apres demain", Day::AfterTomorrow),
        ("next week", Day::InDays(7)),
        ("la semaine prochaine", Day::InDays(7)),
        ("semaine prochaine", Day::InDays(7)),
    ];
    if let Some(day) = longest(&mut q, simple) {
        *p = q;
        return Some((day, None));
    }
    // "next friday", "this friday", "friday", "vendredi prochain", "friday next week"
    let mut r = q;
    r.eat(&["next", "this", "coming", "this coming", "ce", "ce prochain"]);
    if let Some(d) = r.word().and_then(weekday) {
        r.i += 1;
        r.eat(&["prochain", "prochaine", "next week", "qui vient"]);
        *p = r;
        return Some((Day::Next(d), None));
    }
    // "le 12 mars", "12 march", "12th of march 2027", "le 12"
    let mut r = q;
    r.eat(&["le", "the"]);
    if let Some(day) = r.num().filter(|d| (1..=31).contains(d)) {
        let mut s = r;
        s.eat(&["of", "de"]);
        if let Some(m) = month(&mut s) {
            let y = year(&mut s);
            *p = s;
            return Some((
                Day::Date {
                    month: Some(m),
                    day,
                    year: y,
                },
                None,
            ));
        }
        // "le 12" on its own names a day of the month; a bare number does not.
        if q.word() == Some("le") || q.word() == Some("the") {
            *p = r;
            return Some((
                Day::Date {
                    month: None,
                    day,
                    year: None,
                },
                None,
            ));
        }
    }
    // "march 12", "march 12th, 2027"
    let mut r = q;
    if let Some(m) = month(&mut r)
        && let Some(day) = r.num().filter(|d| (1..=31).contains(d))
    {
        let y = year(&mut r);
        *p = r;
        return Some((
            Day::Date {
                month: Some(m),
                day,
                year: y,
            },
            None,
        ));
    }
    None
}

/// "morning", "le matin", "du soir", "in the afternoon", "noon", "midi", "minuit".
fn part_phrase(p: &mut P<'_>) -> Option<Part> {
    let phrases: &[(&str, Part)] = &[
        ("morning", Part::Morning),
        ("in the morning", Part::Morning),
        ("matin", Part::Morning),
        ("le matin", Part::Morning),
        ("du matin", Part::Morning),
        ("dans la matinee", Part::Morning),
        ("matinee", Part::Morning),
        ("noon", Part::Noon),
        ("midday", Part::Noon),
        ("midi", Part::Noon),
        ("afternoon", Part::Afternoon),
        ("in the afternoon", Part::Afternoon),
        ("apres midi", Part::Afternoon),
        ("l' apres midi", Part::Afternoon),
        ("de l' apres midi", Part::Afternoon),
        ("aprem", Part::Afternoon),
        ("evening", Part::Evening),
        ("in the evening", Part::Evening),
        ("soir", Part::Evening),
        ("le soir", Part::Evening),
        ("du soir", Part::Evening),
        ("night", Part::Night),
        ("at night", Part::Night),
        ("nuit", Part::Night),
        ("la nuit", Part::Night),
        ("midnight", Part::Midnight),
        ("minuit", Part::Midnight),
    ];
    longest(p, phrases)
}

/// "9", "9am", "9 am", "9:30", "9:30 pm", "18h30", "9h", "9 heures", "9 o'clock".
fn clock_phrase(p: &mut P<'_>) -> Option<Clock> {
    let mut q = *p;
    let mut clock = match q.peek()? {
        Kind::Clock(c) => {
            q.i += 1;
            *c
        }
        Kind::Num(n) if *n <= 24 => {
            q.i += 1;
            Clock {
                hour: *n,
                minute: 0,
                style: Style::Bare,
            }
        }
        _ => return None,
    };
    if clock.style == Style::Bare || clock.style == Style::TwentyFour {
        let mut r = q;
        if r.eat(&["am", "a m"]) && clock.hour <= 12 {
            clock.style = Style::Am;
            q = r;
        } else if r.eat(&["pm", "p m"]) && clock.hour <= 12 {
            clock.style = Style::Pm;
            q = r;
        } else if clock.style == Style::Bare && clock.minute == 0 {
            let mut r = q;
            if r.eat(&["heures", "heure", "h"]) {
                clock.style = Style::TwentyFour;
                q = r;
                // "9 heures 30"
                let mut s = q;
                if let Some(m) = s.num().filter(|m| *m < 60) {
                    clock.minute = m;
                    q = s;
                }
            } else if r.eat(&["o'clock", "oclock"]) {
                q = r;
            }
        }
    }
    if clock.hour == 24 && clock.minute == 0 {
        clock.hour = 0;
    }
    if clock.hour > 23 {
        return None;
    }
    *p = q;
    Some(clock)
}

/// "every monday", "every day", "every weekday", "each morning", "chaque lundi", "tous les
/// lundis", "tous les jours", "daily", "on mondays", "en semaine", "lundis et jeudis".
fn repeat_phrase(p: &mut P<'_>) -> Option<(Repeat, Option<Part>)> {
    let mut q = *p;
    if q.eat(&[
        "daily",
        "every day",
        "everyday",
        "each day",
        "chaque jour",
        "tous les jours",
        "quotidiennement",
        "chaque jours",
    ]) {
        *p = q;
        return Some((Repeat::Daily, None));
    }
    let mut q = *p;
    if q.eat(&[
        "every weekday",
        "every weekdays",
        "weekdays",
        "on weekdays",
        "every week day",
        "en semaine",
        "tous les jours de semaine",
        "du lundi au vendredi",
        "chaque jour de semaine",
    ]) {
        *p = q;
        return Some((Repeat::Weekly(WORKDAYS.to_vec()), None));
    }
    let mut q = *p;
    if q.eat(&[
        "every",
        "each",
        "chaque",
        "tous les",
        "toutes les",
        "on",
        "les",
    ]) {
        // "every morning", "tous les soirs"
        let parts: &[(&str, Part)] = &[
            ("morning", Part::Morning),
            ("mornings", Part::Morning),
            ("matin", Part::Morning),
            ("matins", Part::Morning),
            ("evening", Part::Evening),
            ("evenings", Part::Evening),
            ("night", Part::Night),
            ("soir", Part::Evening),
            ("soirs", Part::Evening),
            ("afternoon", Part::Afternoon),
            ("apres midi", Part::Afternoon),
        ];
        let lead_is_every = !matches!(p.word(), Some("on" | "les"));
        if lead_is_every {
            let mut r = q;
            if let Some(part) = longest(&mut r, parts) {
                *p = r;
                return Some((Repeat::Daily, Some(part)));
            }
        }
        let mut r = q;
        if let Some(days) = weekday_list(&mut r, lead_is_every) {
            *p = r;
            return Some((Repeat::Weekly(days), None));
        }
        return None;
    }
    // "mondays and thursdays", "lundis et jeudis": plural weekdays repeat on their own.
    let mut r = *p;
    if let Some(days) = weekday_list(&mut r, false) {
        *p = r;
        return Some((Repeat::Weekly(days), None));
    }
    None
}

/// "monday", "monday and thursday", "lundis, mercredis et vendredis"; singular forms only
/// when `singular_ok` (after "every" / "chaque").
fn weekday_list(p: &mut P<'_>, singular_ok: bool) -> Option<Vec<Weekday>> {
    let mut days = Vec::new();
    let mut q = *p;
    loop {
        let mut r = q;
        if !days.is_empty() && !r.eat(&["and", "et", "&"]) {
            r = q;
        }
        let Some(word) = r.word() else { break };
        let day = weekday_plural(word).or_else(|| singular_ok.then(|| weekday(word)).flatten());
        let Some(day) = day else { break };
        r.i += 1;
        days.push(day);
        q = r;
    }
    if days.is_empty() {
        return None;
    }
    *p = q;
    Some(sorted_days(days))
}

// ---------------------------------------------------------------------------------------------
// Describing
// ---------------------------------------------------------------------------------------------

/// A clock time as people write it: "9am", "5:30pm" in English; "9h", "17h30" in French.
pub fn clock_text(hour: u32, minute: u32, lang: Language) -> String {
    match lang {
        Language::En => {
            let (h, suffix) = match hour {
                0 => (12, "am"),
                1..=11 => (hour, "am"),
                12 => (12, "pm"),
                _ => (hour - 12, "pm"),
            };
            if minute == 0 {
                format!("{h}{suffix}")
            } else {
                format!("{h}:{minute:02}{suffix}")
            }
        }
        Language::Fr => {
            if minute == 0 {
                format!("{hour}h")
            } else {
                format!("{hour}h{minute:02}")
            }
        }
    }
}

const DAYS_EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const DAYS_FR: [&str; 7] = ["lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."];
const DAYS_LONG_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const DAYS_LONG_FR: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];
const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MONTHS_FR: [&str; 12] = [
    "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
    "déc.",
];

/// A date as a short reply says it, relative to `today`: "today", "tomorrow", "Fri 14 Mar"
/// ("aujourd'hui", "demain", "ven. 14 mars").
pub fn day_text(date: NaiveDate, today: NaiveDate, lang: Language) -> String {
    let ahead = (date - today).num_days();
    let wd = date.weekday().num_days_from_monday() as usize;
    let month = date.month0() as usize;
    match (lang, ahead) {
        (Language::En, 0) => "today".to_owned(),
        (Language::En, 1) => "tomorrow".to_owned(),
        (Language::En, -1) => "yesterday".to_owned(),
        (Language::Fr, 0) => "aujourd'hui".to_owned(),
        (Language::Fr, 1) => "demain".to_owned(),
        (Language::Fr, -1) => "hier".to_owned(),
        (Language::En, _) => format!("{} {} {}", DAYS_EN[wd], date.day(), MONTHS_EN[month]),
        (Language::Fr, _) => format!("{} {} {}", DAYS_FR[wd], date.day(), MONTHS_FR[month]),
    }
}

/// A moment as a short reply says it in the user's zone: "today 9am", "Fri 14 Mar 5:30pm",
/// "demain 9h".
pub fn moment_text(at: DateTime<Utc>, now: DateTime<Utc>, tz: Tz, lang: Language) -> String {
    let local = at.with_timezone(&tz);
    let day = day_text(local.date_naive(), local_date(now, tz), lang);
    let clock = clock_text(local.hour_of_day(), local.minute_of_hour(), lang);
    format!("{day} {clock}")
}

/// A rule as a reply says it: "every Monday at 9am", "every day at 8am", "tous les lundis à 9h".
pub fn rule_text(rule: &Recurrence, lang: Language) -> String {
    let clock = clock_text(rule.hour, rule.minute, lang);
    match (&rule.repeat, lang) {
        (Repeat::Daily, Language::En) => format!("every day at {clock}"),
        (Repeat::Daily, Language::Fr) => format!("tous les jours à {clock}"),
        (Repeat::Weekly(days), Language::En) if days.as_slice() == WORKDAYS => {
            format!("every weekday at {clock}")
        }
        (Repeat::Weekly(days), Language::Fr) if days.as_slice() == WORKDAYS => {
            format!("en semaine à {clock}")
        }
        (Repeat::Weekly(days), Language::En) => {
            let names: Vec<&str> = days
                .iter()
                .map(|d| DAYS_LONG_EN[d.num_days_from_monday() as usize])
                .collect();
            format!("every {} at {clock}", join_and(&names, "and"))
        }
        (Repeat::Weekly(days), Language::Fr) => {
            let names: Vec<String> = days
                .iter()
                .map(|d| format!("{}s", DAYS_LONG_FR[d.num_days_from_monday() as usize]))
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            format!("tous les {} à {clock}", join_and(&names, "et"))
        }
    }
}

fn join_and(names: &[&str], and: &str) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} {and} {last}", init.join(", ")),
    }
}

/// Hour and minute of a local time, without importing `Timelike` at every call site.
trait HourMinute {
    fn hour_of_day(&self) -> u32;
    fn minute_of_hour(&self) -> u32;
}

impl<T: chrono::Timelike> HourMinute for T {
    fn hour_of_day(&self) -> u32 {
        self.hour()
    }
    fn minute_of_hour(&self) -> u32 {
        self.minute()
    }
}

impl fmt::Display for Recurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rrule())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Asia::Tokyo;
    use chrono_tz::Europe::Paris;

    /// A fixed instant, given as a wall time in `tz`.
    fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_opt(h, mi, 0))
            .expect("a valid wall time");
        resolve_local(tz, naive)
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("a valid UTC time")
    }

    fn date(y: i32, mo: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, d).expect("a valid date")
    }

    /// Reads `text` at `now` in `tz`, expecting a single moment; returns it as wall time.
    fn moment(text: &str, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        match read(text, now, tz) {
            Ok(When::At(t)) => t,
            other => panic!("{text:?}: expected a moment, got {other:?}"),
        }
    }

    fn wall(t: DateTime<Utc>, tz: Tz) -> String {
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
    }

    // Wednesday 11 March 2026, 10:00 in Paris.
    fn paris_wednesday() -> DateTime<Utc> {
        local(Paris, 2026, 3, 11, 10, 0)
    }

    #[test]
    fn every_example_of_the_brief_reads_in_both_languages() {
        let now = paris_wednesday();
        let cases = [
            ("in 20 minutes", "2026-03-11 10:20 CET"),
            ("tomorrow at 9", "2026-03-12 09:00 CET"),
            ("demain à 9h", "2026-03-12 09:00 CET"),
            ("à 18h30", "2026-03-11 18:30 CET"),
            ("next friday at 5pm", "2026-03-13 17:00 CET"),
            ("dans 2 heures", "2026-03-11 12:00 CET"),
            ("vendredi prochain à 17h", "2026-03-13 17:00 CET"),
            ("in half an hour", "2026-03-11 10:30 CET"),
            ("dans une demi-heure", "2026-03-11 10:30 CET"),
            ("dans 1h30", "2026-03-11 11:30 CET"),
            ("in an hour and a half", "2026-03-11 11:30 CET"),
            ("dans un quart d'heure", "2026-03-11 10:15 CET"),
            ("20 minutes from now", "2026-03-11 10:20 CET"),
            ("tonight", "2026-03-11 19:00 CET"),
            ("ce soir à 8h", "2026-03-11 20:00 CET"),
            ("tomorrow morning", "2026-03-12 09:00 CET"),
            ("demain matin à 7h30", "2026-03-12 07:30 CET"),
            ("at noon", "2026-03-11 12:00 CET"),
            ("à midi", "2026-03-11 12:00 CET"),
            ("à minuit", "2026-03-12 00:00 CET"),
            ("9:30pm", "2026-03-11 21:30 CET"),
            ("at 9 p.m.", "2026-03-11 21:00 CET"),
            ("le 12 mars à 9h", "2026-03-12 09:00 CET"),
            ("march 20th at 3pm", "2026-03-20 15:00 CET"),
            ("après-demain à 10h", "2026-03-13 10:00 CET"),
            ("dans 3 jours à 9h", "2026-03-14 09:00 CET"),
            ("Monday at 8:15am", "2026-03-16 08:15 CET"),
            ("2026-04-01T08:00", "2026-04-01 08:00 CEST"),
            ("2026-04-01T08:00:00Z", "2026-04-01 10:00 CEST"),
        ];
        let mut failures = Vec::new();
        for (text, want) in cases {
            match read(text, now, Paris) {
                Ok(When::At(t)) if wall(t, Paris) == want => {}
                other => failures.push(format!("{text:?}: got {other:?}, want {want}")),
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn a_day_without_a_time_stays_a_day() {
        let now = paris_wednesday();
        let cases = [
            ("tomorrow", date(2026, 3, 12)),
            ("demain", date(2026, 3, 12)),
            ("friday", date(2026, 3, 13)),
            ("vendredi", date(2026, 3, 13)),
            ("on wednesday", date(2026, 3, 18)),
            ("in 3 days", date(2026, 3, 14)),
            ("dans une semaine", date(2026, 3, 18)),
            ("next week", date(2026, 3, 18)),
            ("12 avril", date(2026, 4, 12)),
            ("le 1er mai", date(2026, 5, 1)),
            ("le 5", date(2026, 4, 5)),
            ("march 1", date(2027, 3, 1)),
            ("2026-12-24", date(2026, 12, 24)),
        ];
        for (text, want) in cases {
            assert_eq!(read(text, now, Paris), Ok(When::Day(want)), "{text:?}");
        }
    }

    #[test]
    fn repeating_times_read_in_both_languages_with_their_first_occurrence() {
        let now = paris_wednesday();
        let weekly = |days: &[Weekday], hour, minute| Recurrence {
            repeat: Repeat::Weekly(days.to_vec()),
            hour,
            minute,
        };
        let daily = |hour, minute| Recurrence {
            repeat: Repeat::Daily,
            hour,
            minute,
        };
        let cases = [
            (
                "every Monday",
                weekly(&[Weekday::Mon], 9, 0),
                "2026-03-16 09:00 CET",
            ),
            (
                "tous les lundis",
                weekly(&[Weekday::Mon], 9, 0),
                "2026-03-16 09:00 CET",
            ),
            (
                "every monday and thursday at 6pm",
                weekly(&[Weekday::Mon, Weekday::Thu], 18, 0),
                "2026-03-12 18:00 CET",
            ),
            (
                "tous les mardis et vendredis à 18h30",
                weekly(&[Weekday::Tue, Weekday::Fri], 18, 30),
                "2026-03-13 18:30 CET",
            ),
            (
                "chaque mercredi à 11h",
                weekly(&[Weekday::Wed], 11, 0),
                "2026-03-11 11:00 CET",
            ),
            ("every day at 8", daily(8, 0), "2026-03-12 08:00 CET"),
            ("tous les jours à 8h", daily(8, 0), "2026-03-12 08:00 CET"),
            ("daily at 9:30pm", daily(21, 30), "2026-03-11 21:30 CET"),
            ("every morning", daily(9, 0), "2026-03-12 09:00 CET"),
            ("tous les soirs", daily(19, 0), "2026-03-11 19:00 CET"),
            (
                "every weekday at 7:45am",
                weekly(&WORKDAYS, 7, 45),
                "2026-03-12 07:45 CET",
            ),
            (
                "en semaine à 7h",
                weekly(&WORKDAYS, 7, 0),
                "2026-03-12 07:00 CET",
            ),
            (
                "on sundays at 10am",
                weekly(&[Weekday::Sun], 10, 0),
                "2026-03-15 10:00 CET",
            ),
            ("at 9 every day", daily(9, 0), "2026-03-12 09:00 CET"),
        ];
        let mut failures = Vec::new();
        for (text, rule, first) in cases {
            match read(text, now, Paris) {
                Ok(When::Every { first: f, rule: r }) if r == rule && wall(f, Paris) == first => {}
                other => failures.push(format!("{text:?}: got {other:?}")),
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn text_that_is_not_a_time_is_refused() {
        for text in [
            "",
            "blah",
            "at",
            "2 hours",
            "take 2",
            "call mom",
            "every",
            "every 2 hours",
            "in",
            "tomorrow tomorrow",
            "dans 2 heures demain",
            "at 25",
            "13pm",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn impossible_or_past_dates_are_errors_not_guesses() {
        let now = paris_wednesday();
        assert_eq!(read("30 février", now, Paris), Err(WhenError::InvalidDate));
        assert_eq!(read("today at 8am", now, Paris), Err(WhenError::Past));
        assert_eq!(read("in 9999 days", now, Paris), Err(WhenError::TooFar));
        assert_eq!(read("gibberish", now, Paris), Err(WhenError::NotUnderstood));
        // A 29 February waits for the next leap year.
        assert_eq!(
            read("29 february", now, Paris),
            Ok(When::Day(date(2028, 2, 29)))
        );
    }

    #[test]
    fn a_bare_hour_picks_the_next_sensible_half_of_the_day() {
        // 10:00: "at 9" is 21:00 today; "at 5" is 17:00; "at 11" is 11:00.
        let now = paris_wednesday();
        assert_eq!(
            wall(moment("at 9", now, Paris), Paris),
            "2026-03-11 21:00 CET"
        );
        assert_eq!(
            wall(moment("at 5", now, Paris), Paris),
            "2026-03-11 17:00 CET"
        );
        assert_eq!(
            wall(moment("at 11", now, Paris), Paris),
            "2026-03-11 11:00 CET"
        );
        // 22:30: both halves have passed, so tomorrow morning.
        let late = local(Paris, 2026, 3, 11, 22, 30);
        assert_eq!(
            wall(moment("at 9", late, Paris), Paris),
            "2026-03-12 09:00 CET"
        );
        // "9h" is a 24-hour time: passed at 10:00, so tomorrow 9:00.
        assert_eq!(
            wall(moment("à 9h", now, Paris), Paris),
            "2026-03-12 09:00 CET"
        );
    }

    #[test]
    fn a_named_weekday_is_never_today() {
        let now = paris_wednesday();
        assert_eq!(
            read("wednesday", now, Paris),
            Ok(When::Day(date(2026, 3, 18)))
        );
        assert_eq!(
            wall(moment("mercredi à 18h", now, Paris), Paris),
            "2026-03-18 18:00 CET"
        );
    }

    #[test]
    fn the_same_words_name_different_instants_in_different_zones() {
        // 16:00 UTC: 17:00 in Paris, 12:00 in New York (summer time since 8 March), and
        // already 01:00 on the 12th in Tokyo, where "tomorrow" is the 13th.
        let now = utc(2026, 3, 11, 16, 0);
        assert_eq!(
            moment("tomorrow at 9am", now, Paris),
            utc(2026, 3, 12, 8, 0)
        );
        assert_eq!(
            moment("tomorrow at 9am", now, New_York),
            utc(2026, 3, 12, 13, 0)
        );
        assert_eq!(
            moment("tomorrow at 9am", now, Tokyo),
            utc(2026, 3, 13, 0, 0)
        );
        assert_eq!(
            read("tomorrow", now, Tokyo),
            Ok(When::Day(date(2026, 3, 13)))
        );
        // "in 20 minutes" is the same instant everywhere.
        assert_eq!(
            moment("in 20 minutes", now, Tokyo),
            utc(2026, 3, 11, 16, 20)
        );
        assert_eq!(
            moment("in 20 minutes", now, New_York),
            utc(2026, 3, 11, 16, 20)
        );
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_moves_forward_by_the_gap() {
        // Paris: 29 March 2026, 02:00 CET → 03:00 CEST. 02:30 does not exist.
        let saturday = local(Paris, 2026, 3, 28, 12, 0);
        let t = moment("demain à 2h30", saturday, Paris);
        assert_eq!(t, utc(2026, 3, 29, 1, 30));
        assert_eq!(wall(t, Paris), "2026-03-29 03:30 CEST");
        // New York: 8 March 2026, 02:00 EST → 03:00 EDT.
        let saturday = local(New_York, 2026, 3, 7, 12, 0);
        let t = moment("tomorrow at 2:30am", saturday, New_York);
        assert_eq!(wall(t, New_York), "2026-03-08 03:30 EDT");
        assert_eq!(t, utc(2026, 3, 8, 7, 30));
    }

    #[test]
    fn a_time_that_happens_twice_in_the_fall_back_resolves_to_the_first() {
        // Paris: 25 October 2026, 03:00 CEST → 02:00 CET. 02:30 happens twice.
        let saturday = local(Paris, 2026, 10, 24, 12, 0);
        let t = moment("demain à 2h30", saturday, Paris);
        assert_eq!(t, utc(2026, 10, 25, 0, 30));
        assert_eq!(wall(t, Paris), "2026-10-25 02:30 CEST");
        // New York: 1 November 2026, 02:00 EDT → 01:00 EST. 01:30 happens twice.
        let saturday = local(New_York, 2026, 10, 31, 12, 0);
        let t = moment("tomorrow at 1:30am", saturday, New_York);
        assert_eq!(t, utc(2026, 11, 1, 5, 30));
        assert_eq!(wall(t, New_York), "2026-11-01 01:30 EDT");
    }

    #[test]
    fn spans_count_real_minutes_and_day_spans_keep_the_wall_time_across_dst() {
        // 01:30 CET on the spring-forward night: two real hours later is 04:30 CEST.
        let night = local(Paris, 2026, 3, 29, 1, 30);
        assert_eq!(
            wall(moment("in 2 hours", night, Paris), Paris),
            "2026-03-29 04:30 CEST"
        );
        // A day span keeps 9:00 on the wall though the offset changed.
        let before = local(Paris, 2026, 3, 28, 8, 0);
        let t = moment("dans 1 jour à 9h", before, Paris);
        assert_eq!(wall(t, Paris), "2026-03-29 09:00 CEST");
        assert_eq!(t, utc(2026, 3, 29, 7, 0));
    }

    #[test]
    fn a_daily_rule_keeps_its_wall_time_across_dst_in_both_zones() {
        let rule = Recurrence {
            repeat: Repeat::Daily,
            hour: 9,
            minute: 0,
        };
        // New York, 7 March 2026 10:00 EST: next is the 8th at 9:00 EDT (13:00 UTC).
        let t = rule.next_after(local(New_York, 2026, 3, 7, 10, 0), New_York);
        assert_eq!(t, utc(2026, 3, 8, 13, 0));
        let t = rule.next_after(local(New_York, 2026, 3, 6, 10, 0), New_York);
        assert_eq!(t, utc(2026, 3, 7, 14, 0));
        // Paris, in the gap: a 02:30 rule fires at 03:30 CEST that day and 02:30 the next.
        let gap = Recurrence {
            repeat: Repeat::Daily,
            hour: 2,
            minute: 30,
        };
        let first = gap.next_after(local(Paris, 2026, 3, 28, 12, 0), Paris);
        assert_eq!(wall(first, Paris), "2026-03-29 03:30 CEST");
        let second = gap.next_after(first, Paris);
        assert_eq!(wall(second, Paris), "2026-03-30 02:30 CEST");
        // Fall back: 02:30 happens twice on 25 October; the rule fires once, at the first.
        let first = gap.next_after(local(Paris, 2026, 10, 24, 12, 0), Paris);
        assert_eq!(first, utc(2026, 10, 25, 0, 30));
        let second = gap.next_after(first, Paris);
        assert_eq!(wall(second, Paris), "2026-10-26 02:30 CET");
    }

    #[test]
    fn a_weekly_rule_fires_today_while_its_time_is_ahead_then_next_week() {
        let rule = Recurrence {
            repeat: Repeat::Weekly(vec![Weekday::Wed]),
            hour: 11,
            minute: 0,
        };
        let now = paris_wednesday();
        assert_eq!(
            wall(rule.next_after(now, Paris), Paris),
            "2026-03-11 11:00 CET"
        );
        let later = local(Paris, 2026, 3, 11, 11, 0);
        assert_eq!(
            wall(rule.next_after(later, Paris), Paris),
            "2026-03-18 11:00 CET"
        );
    }

    #[test]
    fn rules_round_trip_through_rrule_text() {
        let rules = [
            Recurrence {
                repeat: Repeat::Daily,
                hour: 8,
                minute: 5,
            },
            Recurrence {
                repeat: Repeat::Weekly(vec![Weekday::Mon, Weekday::Thu]),
                hour: 18,
                minute: 30,
            },
        ];
        assert_eq!(rules[0].to_rrule(), "FREQ=DAILY;BYHOUR=8;BYMINUTE=5");
        assert_eq!(
            rules[1].to_rrule(),
            "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=18;BYMINUTE=30"
        );
        for rule in rules {
            assert_eq!(Recurrence::from_rrule(&rule.to_rrule()), Ok(rule));
        }
        for bad in [
            "",
            "FREQ=HOURLY;BYHOUR=1;BYMINUTE=0",
            "FREQ=WEEKLY;BYHOUR=1;BYMINUTE=0",
            "FREQ=DAILY;BYHOUR=24;BYMINUTE=0",
            "FREQ=WEEKLY;BYDAY=XX;BYHOUR=1;BYMINUTE=0",
        ] {
            assert!(Recurrence::from_rrule(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_time_is_found_at_either_end_of_a_longer_text() {
        let text = "call mom tomorrow at 9";
        let found = find_at_end(text).expect("a time at the end");
        assert_eq!(&text[..found.start].trim_end(), &"call mom");
        let text = "put the cake in the oven in 20 minutes";
        let found = find_at_end(text).expect("a time at the end");
        assert_eq!(found.expr, Expr::After { minutes: 20 });
        assert_eq!(&text[..found.start], "put the cake in the oven ");
        let text = "demain à 9h d'appeler maman";
        let found = find_at_start(text).expect("a time at the start");
        // The elided "d'" reads as a preposition of the time and goes with it.
        assert_eq!(&text[found.end..], "appeler maman");
        assert_eq!(find_at_end("take 2"), None);
        assert_eq!(find_at_end("buy sun cream"), None);
    }

    #[test]
    fn times_are_described_in_the_users_language() {
        let now = paris_wednesday();
        let t = local(Paris, 2026, 3, 12, 17, 30);
        assert_eq!(moment_text(t, now, Paris, Language::En), "tomorrow 5:30pm");
        assert_eq!(moment_text(t, now, Paris, Language::Fr), "demain 17h30");
        let t = local(Paris, 2026, 3, 20, 9, 0);
        assert_eq!(moment_text(t, now, Paris, Language::En), "Fri 20 Mar 9am");
        assert_eq!(moment_text(t, now, Paris, Language::Fr), "ven. 20 mars 9h");
        let rule = Recurrence {
            repeat: Repeat::Weekly(vec![Weekday::Mon, Weekday::Thu]),
            hour: 9,
            minute: 0,
        };
        assert_eq!(
            rule_text(&rule, Language::En),
            "every Monday and Thursday at 9am"
        );
        assert_eq!(
            rule_text(&rule, Language::Fr),
            "tous les lundis et jeudis à 9h"
        );
    }
}
