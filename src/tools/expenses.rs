//! Expenses: log an amount in a currency with a category and a note; totals by week, month
//! and category.
//!
//! Money is never a float: amounts are read from decimal text into integer minor units of
//! their ISO 4217 currency (two decimals for EUR, none for JPY, three for KWD), summed as
//! integers per currency (currencies are never added together), and written back as decimal
//! text.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use iso_currency::Currency;
use serde::Serialize;

use crate::store::{Expense, ExpenseTotal, Language, NewExpense, Store, StoreError, UserId};
use crate::tools::tasks::fold;
use crate::tools::when;

/// The largest single expense accepted, in major units: beyond it is surely a typo.
pub const MAX_MAJOR_AMOUNT: i64 = 1_000_000_000;
/// The longest category, in characters.
pub const MAX_CATEGORY_CHARS: usize = 40;
/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 200;

/// Why an expense tool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ExpenseError {
    #[error("{0:?} is not an amount (write it like 12.50)")]
    BadAmount(String),
    #[error("{amount} has more decimals than {currency} allows ({decimals})")]
    TooPrecise {
        amount: String,
        currency: String,
        decimals: u16,
    },
    #[error("the amount must be more than zero and at most {MAX_MAJOR_AMOUNT}")]
    OutOfRange,
    #[error("{0:?} is not an ISO 4217 currency code (like EUR or USD)")]
    UnknownCurrency(String),
    #[error("the category is empty or longer than {MAX_CATEGORY_CHARS} characters")]
    BadCategory,
    #[error("the note is longer than {MAX_NOTE_CHARS} characters")]
    NoteTooLong,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The number of decimals of an ISO 4217 currency; `None` for an unknown code or one without
/// minor units defined (funds, metals).
pub fn decimals(code: &str) -> Option<u16> {
    Currency::from_code(code)?.exponent()
}

/// Checks and upper-cases a currency code.
pub fn currency_code(code: &str) -> Result<String, ExpenseError> {
    let upper = code.trim().to_ascii_uppercase();
    match decimals(&upper) {
        Some(_) => Ok(upper),
        None => Err(ExpenseError::UnknownCurrency(code.trim().to_owned())),
    }
}

/// Reads a decimal amount ("12.50", "12,5", "1 200,00", "1,200.00", "1'200") into minor
/// units of `currency`. Never rounds: more decimals than the currency has is an error.
pub fn minor_units(text: &str, currency: &str) -> Result<i64, ExpenseError> {
    let bad = || ExpenseError::BadAmount(text.to_owned());
    let decimals =
        decimals(currency).ok_or_else(|| ExpenseError::UnknownCurrency(currency.into()))?;
    let cleaned: String = text
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '\'' | '\u{a0}' | '\u{202f}' | '_'))
        .collect();
    if cleaned.is_empty() || cleaned.starts_with('-') {
        return Err(bad());
    }
    // The last '.' or ',' followed by 1 to 3 digits and not by a 3-digit group is the
    // decimal point; the others group thousands.
    let (whole, fraction) = match cleaned.rfind(['.', ',']) {
        Some(i) => {
            let (w, f) = (&cleaned[..i], &cleaned[i + 1..]);
            let other_sep = w.contains(['.', ',']);
            let same_sep_again = w.contains(&cleaned[i..=i]);
            if f.len() == 3 && (same_sep_again || !other_sep && decimals < 3 && !w.is_empty()) {
                // "1,200" / "1.200.000": thousands groups, no decimals.
                (cleaned.replace([',', '.'], ""), String::new())
            } else {
                (w.replace([',', '.'], ""), f.to_owned())
            }
        }
        None => (cleaned.clone(), String::new()),
    };
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > usize::from(decimals) {
        return Err(ExpenseError::TooPrecise {
            amount: text.trim().to_owned(),
            currency: currency.to_owned(),
            decimals,
        });
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| ExpenseError::OutOfRange)?
    };
    if whole > MAX_MAJOR_AMOUNT {
        return Err(ExpenseError::OutOfRange);
    }
    let scale = 10_i64.pow(u32::from(decimals));
    let mut frac_minor: i64 = 0;
    for (k, digit) in fraction.bytes().enumerate() {
        let place = 10_i64.pow(u32::from(decimals) - 1 - u32::try_from(k).unwrap_or(0));
        frac_minor += i64::from(digit - b'0') * place;
    }
    let minor = whole * scale + frac_minor;
    if minor <= 0 {
        return Err(ExpenseError::OutOfRange);
    }
    Ok(minor)
}

/// Writes minor units back as decimal text in the user's language: "12.50" / "12,50",
/// "1500" for JPY.
pub fn decimal_text(minor: i64, currency: &str, lang: Language) -> String {
    let decimals = u32::from(decimals(currency).unwrap_or(2));
    let scale = 10_i64.pow(decimals);
    let sign = if minor < 0 { "-" } else { "" };
    let (whole, frac) = (minor.abs() / scale, minor.abs() % scale);
    let point = match lang {
        Language::En => '.',
        Language::Fr => ',',
    };
    if decimals == 0 {
        format!("{sign}{whole}")
    } else {
        format!(
            "{sign}{whole}{point}{frac:0width$}",
            width = decimals as usize
        )
    }
}

/// An amount as a reply says it: "EUR 12.50" / "12,50 EUR" (codes keep SMS in GSM-7).
pub fn money_text(minor: i64, currency: &str, lang: Language) -> String {
    let amount = decimal_text(minor, currency, lang);
    match (lang, currency) {
        (Language::En, "USD") => format!("${amount}"),
        (Language::En, "GBP") => format!("£{amount}"),
        (Language::En, _) => format!("{amount} {currency}"),
        (Language::Fr, "EUR") => format!("{amount} €"),
        (Language::Fr, _) => format!("{amount} {currency}"),
    }
}

/// The currency a symbol or word names ("€", "euros", "$", "dollars", "£", "yen").
pub fn currency_word(word: &str, default: &str) -> Option<String> {
    let w = fold(word);
    let code = match w.as_str() {
        "€" | "eur" | "euro" | "euros" => "EUR",
        "£" | "gbp" | "pound" | "pounds" | "livre" | "livres" => "GBP",
        "¥" | "jpy" | "yen" | "yens" => "JPY",
        "chf" | "franc suisse" | "francs suisses" => "CHF",
        // A dollar is the user's own dollar when they use one.
        "$" | "dollar" | "dollars" | "bucks" => {
            if matches!(default, "USD" | "CAD" | "AUD" | "NZD" | "SGD" | "HKD") {
                return Some(default.to_owned());
            }
            "USD"
        }
        "us$" | "usd" => "USD",
        "c$" | "ca$" | "cad" => "CAD",
        "a$" | "aud" => "AUD",
        other if other.len() == 3 && decimals(&other.to_ascii_uppercase()).is_some() => {
            return Some(other.to_ascii_uppercase());
        }
        _ => return None,
    };
    Some(code.to_owned())
}

/// The currency a user most likely means when they name none: the one they last used, else
/// the one of their time zone's country, else by language.
pub async fn default_currency(
    store: &Store,
    user: UserId,
    time_zone: &str,
    lang: Language,
) -> Result<String, StoreError> {
    if let Some(last) = store.recent_expenses(user, 1).await?.into_iter().next() {
        return Ok(last.currency);
    }
    Ok(zone_currency(time_zone)
        .unwrap_or(match lang {
            Language::En => "USD",
            Language::Fr => "EUR",
        })
        .to_owned())
}

/// The currency of the country a time zone is in, for the zones people mostly use.
fn zone_currency(zone: &str) -> Option<&'static str> {
    const EURO: &[&str] = &[
        "Paris",
        "Berlin",
        "Madrid",
        "Rome",
        "Brussels",
        "Amsterdam",
        "Vienna",
        "Dublin",
        "Lisbon",
        "Luxembourg",
        "Helsinki",
        "Athens",
        "Monaco",
        "Tallinn",
        "Riga",
        "Vilnius",
        "Bratislava",
        "Ljubljana",
        "Zagreb",
        "Malta",
        "Andorra",
        "Sofia",
    ];
    let (region, city) = zone.split_once('/')?;
    Some(match (region, city) {
        ("Europe", c) if EURO.contains(&c) => "EUR",
        ("Europe", "London") => "GBP",
        ("Europe", "Zurich") => "CHF",
        (
            "America",
            "Toronto" | "Vancouver" | "Montreal" | "Edmonton" | "Winnipeg" | "Halifax" | "Regina"
            | "St_Johns",
        ) => "CAD",
        (
            "America",
            "New_York" | "Chicago" | "Denver" | "Los_Angeles" | "Phoenix" | "Anchorage" | "Detroit",
        ) => "USD",
        ("Pacific", "Honolulu") => "USD",
        ("Asia", "Tokyo") => "JPY",
        ("Australia", _) => "AUD",
        _ => return None,
    })
}

/// Canonical categories and the words that name them, in English and French.
const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "food",
        &[
            "food",
            "lunch",
            "dinner",
            "breakfast",
            "restaurant",
            "resto",
            "cafe",
            "coffee",
            "snack",
            "takeout",
            "repas",
            "dejeuner",
            "diner",
            "petit dejeuner",
            "bouffe",
            "nourriture",
        ],
    ),
    (
        "groceries",
        &[
            "groceries",
            "grocery",
            "supermarket",
            "courses",
            "epicerie",
            "supermarche",
        ],
    ),
    (
        "transport",
        &[
            "transport",
            "taxi",
            "uber",
            "bus",
            "train",
            "metro",
            "gas",
            "fuel",
            "parking",
            "essence",
            "carburant",
            "peage",
        ],
    ),
    ("housing", &["rent", "housing", "loyer", "logement"]),
    (
        "bills",
        &[
            "bills",
            "bill",
            "electricity",
            "internet",
            "phone",
            "factures",
            "facture",
            "electricite",
            "telephone",
        ],
    ),
    (
        "health",
        &[
            "health",
            "pharmacy",
            "doctor",
            "meds",
            "medicine",
            "sante",
            "pharmacie",
            "medecin",
            "medicaments",
        ],
    ),
    ("shopping", &["shopping", "clothes", "vetements", "achats"]),
    (
        "fun",
        &[
            "fun", "movie", "movies", "cinema", "games", "concert", "sortie", "loisirs",
        ],
    ),
];

/// Normalises a category: a known word maps to its canonical key ("lunch" → "food",
/// "loyer" → "housing"); another word is kept, folded to lower case.
pub fn category_key(text: &str) -> Result<String, ExpenseError> {
    let key = fold(text.trim());
    let key = key.trim_matches(|c: char| !c.is_alphanumeric()).to_owned();
    if key.is_empty() || key.chars().count() > MAX_CATEGORY_CHARS {
        return Err(ExpenseError::BadCategory);
    }
    for (canonical, words) in CATEGORIES {
        if words.contains(&key.as_str()) {
            return Ok((*canonical).to_owned());
        }
    }
    Ok(key)
}

/// A category as a reply names it in the user's language.
pub fn category_text(key: &str, lang: Language) -> &str {
    match (lang, key) {
        (Language::Fr, "food") => "repas",
        (Language::Fr, "groceries") => "courses",
        (Language::Fr, "housing") => "logement",
        (Language::Fr, "bills") => "factures",
        (Language::Fr, "health") => "santé",
        (Language::Fr, "shopping") => "achats",
        (Language::Fr, "fun") => "loisirs",
        (Language::Fr, "other") => "autre",
        _ => key,
    }
}

/// An expense as given by a person or a model, before checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpenseInput {
    /// Decimal text ("12.50").
    pub amount: String,
    /// ISO 4217 code, or a symbol or word ("€", "$", "euros"); the user's default when `None`.
    pub currency: Option<String>,
    /// "other" when `None`.
    pub category: Option<String>,
    pub note: Option<String>,
}

/// A note trimmed; `None` when empty, an error past [`MAX_NOTE_CHARS`].
pub fn note_text(note: &str) -> Result<Option<String>, ExpenseError> {
    let note = note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ExpenseError::NoteTooLong);
    }
    Ok((!note.is_empty()).then(|| note.to_owned()))
}

/// Logs an expense spent at `now`.
pub async fn log(
    store: &Store,
    user: UserId,
    input: &ExpenseInput,
    default_currency: &str,
    now: DateTime<Utc>,
) -> Result<Expense, ExpenseError> {
    let named = input.currency.as_deref().unwrap_or(default_currency);
    let currency =
        currency_code(&currency_word(named, default_currency).unwrap_or_else(|| named.to_owned()))?;
    let amount_minor = minor_units(&input.amount, &currency)?;
    let category = category_key(input.category.as_deref().unwrap_or("other"))?;
    let note = input.note.as_deref().map(note_text).transpose()?.flatten();
    Ok(store
        .add_expense(
            user,
            &NewExpense {
                amount_minor,
                currency,
                category,
                note,
                spent_at: now,
            },
        )
        .await?)
}

/// The period totals cover.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Today,
    /// Since Monday 00:00 in the user's zone.
    #[default]
    Week,
    /// Since the 1st of the month, 00:00 in the user's zone.
    Month,
}

/// Totals of one currency over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrencyTotal {
    pub currency: String,
    pub amount_minor: i64,
    /// Per category, largest first.
    pub categories: Vec<ExpenseTotal>,
}

/// What was spent over a period, per currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub period: Period,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub currencies: Vec<CurrencyTotal>,
}

/// Sums the expenses of the current `period` in the user's zone, per currency and category.
pub async fn totals(
    store: &Store,
    user: UserId,
    period: Period,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<Totals, StoreError> {
    let today = now.with_timezone(&tz).date_naive();
    let start: NaiveDate = match period {
        Period::Today => today,
        Period::Week => today - Duration::days(i64::from(today.weekday().num_days_from_monday())),
        Period::Month => today.with_day(1).unwrap_or(today),
    };
    let from = when::resolve_local(tz, start.and_time(NaiveTime::MIN));
    let to = now + Duration::seconds(1);
    let rows = store.expense_totals(user, from, to).await?;
    let mut currencies: Vec<CurrencyTotal> = Vec::new();
    for row in rows {
        match currencies.iter_mut().find(|c| c.currency == row.currency) {
            Some(c) => {
                c.amount_minor = c.amount_minor.saturating_add(row.amount_minor);
                c.categories.push(row);
            }
            None => currencies.push(CurrencyTotal {
                currency: row.currency.clone(),
                amount_minor: row.amount_minor,
                categories: vec![row],
            }),
        }
    }
    currencies.sort_by_key(|c| std::cmp::Reverse(c.amount_minor));
    Ok(Totals {
        period,
        from,
        to,
        currencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_become_integer_minor_units_of_their_currency() {
        let cases = [
            ("12.50", "EUR", 1_250),
            ("12,5", "EUR", 1_250),
            ("12", "EUR", 1_200),
            ("0.99", "USD", 99),
            (".5", "USD", 50),
            ("1,200.00", "USD", 120_000),
            ("1.200,00", "EUR", 120_000),
            ("1 200,50", "EUR", 120_050),
            ("1,200", "USD", 120_000),
            ("1'200", "CHF", 120_000),
            ("1500", "JPY", 1_500),
            ("1.500", "JPY", 1_500),
            ("1.250", "KWD", 1_250),
            ("12.500", "KWD", 12_500),
            ("0.1", "EUR", 10),
        ];
        for (text, currency, minor) in cases {
            assert_eq!(
                minor_units(text, currency).ok(),
                Some(minor),
                "{text} {currency}"
            );
        }
    }

    #[test]
    fn bad_amounts_are_refused_never_rounded() {
        assert!(matches!(
            minor_units("12.3456", "EUR"),
            Err(ExpenseError::TooPrecise { .. })
        ));
        assert!(matches!(
            minor_units("1.5", "JPY"),
            Err(ExpenseError::TooPrecise { .. })
        ));
        for bad in ["", "abc", "-5", "1.2.3x", "12e3", "$12"] {
            assert!(
                matches!(minor_units(bad, "EUR"), Err(ExpenseError::BadAmount(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            minor_units("0", "EUR"),
            Err(ExpenseError::OutOfRange)
        ));
        assert!(matches!(
            minor_units("99999999999", "EUR"),
            Err(ExpenseError::OutOfRange)
        ));
        assert!(matches!(
            minor_units("1", "XYZ"),
            Err(ExpenseError::UnknownCurrency(_))
        ));
    }

    #[test]
    fn minor_units_are_written_back_as_decimal_text_in_each_language() {
        assert_eq!(decimal_text(1_250, "EUR", Language::En), "12.50");
        assert_eq!(decimal_text(1_250, "EUR", Language::Fr), "12,50");
        assert_eq!(decimal_text(5, "USD", Language::En), "0.05");
        assert_eq!(decimal_text(1_500, "JPY", Language::En), "1500");
        assert_eq!(decimal_text(1_250, "KWD", Language::En), "1.250");
        assert_eq!(money_text(1_250, "USD", Language::En), "$12.50");
        assert_eq!(money_text(1_250, "EUR", Language::Fr), "12,50 €");
        assert_eq!(money_text(1_250, "EUR", Language::En), "12.50 EUR");
    }

    #[test]
    fn currency_codes_are_checked_against_iso_4217() {
        assert_eq!(currency_code(" eur ").ok().as_deref(), Some("EUR"));
        assert!(currency_code("EURO").is_err());
        assert!(currency_code("XAU").is_err(), "gold has no minor unit");
        assert_eq!(currency_word("€", "USD").as_deref(), Some("EUR"));
        assert_eq!(currency_word("dollars", "CAD").as_deref(), Some("CAD"));
        assert_eq!(currency_word("$", "EUR").as_deref(), Some("USD"));
        assert_eq!(currency_word("gbp", "EUR").as_deref(), Some("GBP"));
        assert_eq!(currency_word("milk", "EUR"), None);
    }

    #[test]
    fn categories_map_synonyms_in_both_languages_to_one_key() {
        assert_eq!(category_key("Lunch").ok().as_deref(), Some("food"));
        assert_eq!(category_key("déjeuner").ok().as_deref(), Some("food"));
        assert_eq!(category_key("loyer").ok().as_deref(), Some("housing"));
        assert_eq!(category_key("Books").ok().as_deref(), Some("books"));
        assert!(category_key("  ").is_err());
        assert_eq!(category_text("food", Language::Fr), "repas");
    }
}
