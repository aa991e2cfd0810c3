//! Step 1 of a turn: what a message asks for, read without a store or a clock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, PoisonError};

use super::Intent;
use crate::store::Priority;
use crate::tools::expenses::{ExpenseInput, Period, currency_word};
use crate::tools::groceries::ItemTarget;
use crate::tools::tasks::{ListFilter, Target, TaskTarget, fold};
use crate::tools::when;

/// Reads what a message asks for. Pure: no store, no clock.
///
/// English and French are accepted whatever the user's language; case, accents, punctuation,
/// a greeting in front ("hi, tasks") and "please" / "stp" around a command are ignored. Titles
/// and item names are kept as the user typed them.
///
/// Rule sets kept in their own files (memory commands, …) hook in at the top of this
/// function, before the built-in commands, with one line each.
pub fn parse(text: &str) -> Intent {
    if let Some(on) = digest_switch(text) {
        return Intent::MorningDigest(on);
    }
    if let Some(rest) = urgent_prefix(text)
        && let Intent::CreateReminder { text, when, .. } = parse_plain(rest)
    {
        return Intent::CreateReminder {
            text,
            when,
            urgent: true,
        };
    }
    parse_plain(text)
}

/// "morning digest on", "turn off the morning digest", "active le résumé du matin",
/// "résumé du matin : non": the whole message names the digest and says on or off.
fn digest_switch(text: &str) -> Option<bool> {
    const NAMES: [&str; 4] = [
        "morning digest",
        "résumé du matin",
        "resume du matin",
        "digest",
    ];
    const ON: [&str; 8] = [
        "on", "enable", "start", "active", "activer", "activé", "oui", "yes",
    ];
    const OFF: [&str; 11] = [
        "off",
        "disable",
        "stop",
        "désactive",
        "désactiver",
        "desactive",
        "désactivé",
        "non",
        "no",
        "arrête",
        "arrete",
    ];
    const FILLER: [&str; 10] = [
        "turn", "the", "my", "le", "mon", "please", "stp", "svp", "ma", "la",
    ];
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || matches!(c, ':' | '!' | '.' | ',' | '?'))
        .filter(|w| !w.is_empty())
        .collect();
    let joined = words.join(" ");
    let name = NAMES.iter().find(|n| joined.contains(*n))?;
    let rest = joined.replacen(name, " ", 1);
    let (mut on, mut off) = (false, false);
    for word in rest.split_whitespace() {
        if ON.contains(&word) {
            on = true;
        } else if OFF.contains(&word) {
            off = true;
        } else if !FILLER.contains(&word) {
            return None;
        }
    }
    (on != off).then_some(on)
}

/// What follows a leading "urgent" ("urgent: remind me …", "URGENT ! rappelle-moi …",
/// "urgent, rappelle-moi …"), when there is something after it. Only a reminder takes it
/// ("urgent 2" stays the task command).
fn urgent_prefix(text: &str) -> Option<&str> {
    let text = text.trim_start();
    let word = text.get(..6)?;
    if !word.eq_ignore_ascii_case("urgent") {
        return None;
    }
    let rest = text[6..]
        .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '!' | ',' | '-'));
    (rest.len() < text.len() - 6 && !rest.is_empty()).then_some(rest)
}

fn parse_plain(text: &str) -> Intent {
    let raw = text.trim();
    if raw.is_empty() {
        return Intent::Unknown;
    }
    if raw
        .chars()
        .all(|c| c == '?' || c == '\u{bf}' || c.is_whitespace())
    {
        return Intent::Help;
    }
    let mut toks = tokenize(raw);
    loop {
        let tail = tail_len(&toks, POLITE);
        if tail == 0 {
            break;
        }
        toks.truncate(toks.len() - tail);
    }
    let mut c = Cur::new(&toks);
    let greeted = c.eat(GREETINGS);
    if greeted {
        c.eat(&[
            "nudge",
            "there",
            "toi",
            "vous",
            "you",
            "all",
            "tout le monde",
        ]);
    }
    c.eat(POLITE);
    c.eat(&[
        "can you",
        "could you",
        "would you",
        "can u",
        "peux tu",
        "tu peux",
        "pourrais tu",
    ]);
    let fallback = if greeted {
        Intent::Greeting
    } else {
        Intent::Unknown
    };
    if c.at_end() {
        return fallback;
    }
    command(raw, c).unwrap_or(fallback)
}

const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "hiya",
    "howdy",
    "yo",
    "good morning",
    "good afternoon",
    "good evening",
    "bonjour",
    "bonsoir",
    "salut",
    "coucou",
    "allo",
    "hey hey",
];
const GREETING_ONLY: &[&str] = &["morning", "good day", "hi nudge", "ca va", "how are you"];
const POLITE: &[&str] = &[
    "please",
    "pls",
    "plz",
    "stp",
    "svp",
    "s'il te plait",
    "s'il vous plait",
];
const HELP: &[&str] = &[
    "help",
    "help me",
    "aide",
    "aide moi",
    "aidez moi",
    "a l'aide",
    "info",
    "commands",
    "menu",
    "what can you do",
    "what do you do",
    "what can i say",
    "what can i do",
    "how does this work",
    "how does it work",
    "how do i use this",
    "que sais tu faire",
    "que peux tu faire",
    "qu'est ce que tu sais faire",
    "qu'est ce que tu peux faire",
    "tu sais faire quoi",
    "tu fais quoi",
    "comment ca marche",
    "comment ca fonctionne",
];
const THANKS: &[&str] = &[
    "thanks",
    "thank you",
    "thank you so much",
    "thanks a lot",
    "thx",
    "ty",
    "ok",
    "okay",
    "k",
    "ok thanks",
    "ok thank you",
    "cool",
    "great",
    "perfect",
    "nice",
    "awesome",
    "got it",
    "merci",
    "merci beaucoup",
    "ok merci",
    "d'accord",
    "dac",
    "super",
    "parfait",
    "genial",
];
/// Verbs that may stand before a list name: "show my tasks", "affiche les courses".
const SHOW: &[&str] = &[
    "show",
    "show me",
    "list",
    "see",
    "view",
    "display",
    "get",
    "check",
    "read",
    "send",
    "send me",
    "give me",
    "montre",
    "montre moi",
    "affiche",
    "afficher",
    "voir",
    "envoie",
    "envoie moi",
    "donne moi",
];
const OWNERS: &[&str] = &[
    "my",
    "the",
    "all",
    "all my",
    "all the",
    "our",
    "mes",
    "ma",
    "la",
    "les",
    "toutes mes",
    "nos",
    "notre",
];
const TASK_LIST_NOUNS: &[&str] = &[
    "tasks",
    "task",
    "todo",
    "todos",
    "to do",
    "to dos",
    "todo list",
    "to do list",
    "task list",
    "tasks list",
    "list",
    "open tasks",
    "taches",
    "tache",
    "liste",
    "liste de taches",
    "liste des taches",
    "a faire",
    "liste a faire",
    "choses a faire",
    "taches en cours",
];
const TASK_QUESTIONS: &[&str] = &[
    "what's on my list",
    "whats on my list",
    "what is on my list",
    "what's on my plate",
    "whats on my plate",
    "what do i have to do",
    "what do i need to do",
    "what should i do",
    "what's next",
    "whats next",
    "what is next",
    "next",
    "qu'est ce que j'ai a faire",
    "j'ai quoi a faire",
    "quoi faire",
    "je fais quoi",
    "quoi de prevu",
    "la suite",
];
const GROCERY_NOUNS: &[&str] = &[
    "groceries",
    "grocery",
    "grocery list",
    "groceries list",
    "list of groceries",
    "shopping list",
    "shopping",
    "courses",
    "course",
    "liste de courses",
    "liste des courses",
    "liste de course",
    "liste courses",
    "epicerie",
    "liste d'epicerie",
    "liste de l'epicerie",
];
const GROCERY_QUESTIONS: &[&str] = &[
    "what do i need to buy",
    "what should i buy",
    "what to buy",
    "what do we need",
    "qu'est ce que je dois acheter",
    "qu'est ce qu'il faut acheter",
    "quoi acheter",
    "on a besoin de quoi",
];
const CLEAR: &[&str] = &[
    "clear",
    "clear out",
    "empty",
    "reset",
    "wipe",
    "erase",
    "delete",
    "clean",
    "vide",
    "vider",
    "videz",
    "efface",
    "effacer",
    "supprime",
    "supprimer",
    "nettoie",
    "reinitialise",
];
const CLEARABLE: &[&str] = &[
    "groceries",
    "grocery",
    "grocery list",
    "groceries list",
    "shopping list",
    "list",
    "courses",
    "liste",
    "liste de courses",
    "liste des courses",
    "liste de course",
    "liste courses",
    "epicerie",
    "liste d'epicerie",
];
const REMIND: &[&str] = &[
    "remind me to",
    "remind me",
    "reminder",
    "don't forget to",
    "dont forget to",
    "rappelle moi de",
    "rappelle moi d'",
    "rappelle moi",
    "rappel",
    "n'oublie pas de",
    "n'oublie pas d'",
];
const NEW: &[&str] = &[
    "new",
    "a",
    "an",
    "a new",
    "another",
    "one more",
    "une",
    "un",
    "nouvelle",
    "nouveau",
    "une nouvelle",
    "une autre",
];
const TASK_NOUNS: &[&str] = &[
    "task", "tasks", "todo", "todos", "to do", "to dos", "reminder", "tache", "taches", "a faire",
    "rappel",
];
const ADD: &[&str] = &[
    "add", "create", "put", "new", "ajoute", "ajouter", "ajoutes", "rajoute", "rajouter", "cree",
    "creer", "mets", "mettre", "met",
];
const GROCERY_PREPS: &[&str] = &[
    "to", "on", "onto", "in", "into", "for", "aux", "au", "a", "dans", "sur", "pour", "en",
];
const TASK_PREPS: &[&str] = &["to", "on", "onto", "in", "into", "a", "dans", "sur"];
const TASK_SUFFIX_NOUNS: &[&str] = &[
    "list",
    "task list",
    "tasks",
    "todo list",
    "to do list",
    "todos",
    "to dos",
    "liste",
    "taches",
    "liste de taches",
    "liste des taches",
    "a faire",
    "liste a faire",
];
const CHECK: &[&str] = &[
    "got",
    "i got",
    "bought",
    "i bought",
    "picked up",
    "i picked up",
    "grabbed",
    "i grabbed",
    "check off",
    "checked off",
    "check",
    "cross off",
    "crossed off",
    "cross out",
    "tick off",
    "ticked off",
    "tick",
    "j'ai achete",
    "jai achete",
    "on a achete",
    "j'ai pris",
    "jai pris",
    "pris",
    "j'ai trouve",
    "jai trouve",
    "coche",
    "cocher",
    "raye",
    "rayer",
    "barre",
    "barrer",
];
const BUY: &[&str] = &[
    "buy",
    "to buy",
    "need to buy",
    "i need to buy",
    "we need to buy",
    "pick up",
    "acheter",
    "achete",
    "il faut acheter",
    "faut acheter",
    "je dois acheter",
    "on doit acheter",
    "a acheter",
];
const DONE: &[&str] = &[
    "done",
    "did",
    "finished",
    "finish",
    "complete",
    "completed",
    "i did",
    "i finished",
    "i completed",
    "i've done",
    "ive done",
    "i have done",
    "i've finished",
    "ive finished",
    "i have finished",
    "just did",
    "just finished",
    "i just did",
    "i just finished",
    "fait",
    "fini",
    "finie",
    "termine",
    "terminee",
    "terminer",
    "j'ai fait",
    "jai fait",
    "j'ai fini",
    "jai fini",
    "j'ai termine",
    "jai termine",
    "c'est fait",
    "accompli",
];
const DONE_SUFFIX: &[&str] = &[
    "done",
    "is done",
    "as done",
    "as complete",
    "as completed",
    "complete",
    "completed",
    "finished",
    "is finished",
    "fait",
    "est fait",
    "c'est fait",
    "comme fait",
    "fini",
    "est fini",
    "termine",
    "est termine",
    "comme termine",
];
const MARK: &[&str] = &["mark", "marque", "marquer"];
const FILLERS: &[&str] = &[
    "and", "et", "number", "no", "numero", "num", "n", "nr", "task", "tache", "item", "article",
    "with", "avec",
];

/// Parses what follows any greeting / politeness; `None` when nothing matches.
fn command(raw: &str, c: Cur<'_>) -> Option<Intent> {
    if c.is(HELP) {
        return Some(Intent::Help);
    }
    if c.is(THANKS) {
        return Some(Intent::Thanks);
    }
    if c.is(GREETING_ONLY) {
        return Some(Intent::Greeting);
    }
    if let Some(intent) = planning(raw, c) {
        return Some(intent);
    }
    if c.is(TASK_QUESTIONS) || c.is_listed(SHOW, OWNERS, TASK_LIST_NOUNS) {
        return Some(Intent::ListTasks);
    }
    if c.is(GROCERY_QUESTIONS) || c.is_listed(SHOW, OWNERS, GROCERY_NOUNS) {
        return Some(Intent::ListGroceries);
    }
    {
        let mut v = c;
        if v.eat(CLEAR) && v.is_listed(&["all", "tout", "toute"], OWNERS, CLEARABLE) {
            return Some(Intent::ClearGroceries);
        }
    }
    // "remind me to call mom at 5": a reminder; without a time, a task.
    let mut r = c;
    if r.eat(REMIND) {
        let body = span(raw, r.rest());
        if let Some(intent) = reminder(body) {
            return Some(intent);
        }
        return Some(Intent::AddTasks(titles(body, false)));
    }
    // "tous les lundis rappelle-moi de sortir les poubelles": the time first.
    let text = span(raw, c.rest());
    if let Some(found) = when::find_at_start(text) {
        let after = &text[found.end..];
        let toks = tokenize(after);
        let mut q = Cur::new(&toks);
        if q.eat(REMIND) && !q.at_end() {
            return Some(Intent::CreateReminder {
                text: clean(span(after, q.rest())),
                when: found.expr,
                urgent: false,
            });
        }
    }
    // "task call mom", "todo: pay rent", "tâche : appeler maman", "new task ..."
    if let Some(t) = c.then(NEW, TASK_NOUNS) {
        return Some(with_due(task_rest(raw, t)));
    }
    // "groceries: milk, eggs", "courses : lait, œufs et pain"
    let mut g = c;
    if g.eat(GROCERY_NOUNS) {
        return Some(Intent::AddGroceries(items(span(raw, g.rest()))));
    }
    let mut a = c;
    if a.eat(ADD) {
        return Some(add(raw, a));
    }
    if let Some(intent) = check_off(raw, c) {
        return Some(intent);
    }
    let mut b = c;
    if b.eat(BUY) {
        return Some(Intent::AddGroceries(items(span(raw, b.rest()))));
    }
    let mut d = c;
    if d.eat(DONE) {
        d.eat(&["with", "avec"]);
        if d.at_end() {
            return Some(Intent::CompleteTask(None));
        }
        return Some(Intent::CompleteTask(Some(task_target(raw, d.rest()))));
    }
    // "call mom done", "mark 2 as done", "appeler maman c'est fait"
    let mut m = c;
    let marked = m.eat(MARK);
    let rest = m.rest();
    let tail = tail_len(rest, DONE_SUFFIX);
    if tail > 0 && tail < rest.len() {
        let target = &rest[..rest.len() - tail];
        return Some(Intent::CompleteTask(Some(task_target(raw, target))));
    }
    if marked && !rest.is_empty() {
        return Some(Intent::CompleteTask(Some(task_target(raw, rest))));
    }
    None
}

/// After a task noun: the titles, plural nouns ("tasks: a, b") splitting on commas too.
fn task_rest(raw: &str, mut t: Cur<'_>) -> Vec<String> {
    let plural = t
        .toks
        .get(t.i.wrapping_sub(1))
        .is_some_and(|w| w.norm.ends_with('s'));
    t.eat(&["to"]);
    titles(span(raw, t.rest()), plural)
}

/// After "add" / "ajoute": a task, unless groceries are named or hinted by a partitive article.
fn add(raw: &str, a: Cur<'_>) -> Intent {
    if let Some(n) = a.then(NEW, TASK_NOUNS) {
        return with_due(task_rest(raw, n));
    }
    // "add to groceries: milk", "ajoute aux courses du lait"
    let mut g = a;
    g.eat(GROCERY_PREPS);
    g.eat(OWNERS);
    if g.eat(GROCERY_NOUNS) {
        return Intent::AddGroceries(items(span(raw, g.rest())));
    }
    let rest = a.rest();
    if let Some(k) = suffix_at(rest, GROCERY_PREPS, GROCERY_NOUNS) {
        return Intent::AddGroceries(items(span(raw, &rest[..k])));
    }
    let content = match suffix_at(rest, TASK_PREPS, TASK_SUFFIX_NOUNS) {
        Some(k) => &rest[..k],
        None => rest,
    };
    if is_partitive(content) {
        return Intent::AddGroceries(items(span(raw, content)));
    }
    with_due(titles(span(raw, content), false))
}

/// "got milk", "bought 2", "j'ai acheté le lait", "pris lait", "acheté le pain".
fn check_off(raw: &str, c: Cur<'_>) -> Option<Intent> {
    let mut k = c;
    let bought_fr = k.peek().is_some_and(|w| w.lower.starts_with("acheté"));
    if bought_fr {
        k.i += 1;
    } else if !k.eat(CHECK) {
        return None;
    }
    k.eat(&["off"]);
    let rest = k.rest();
    if rest.is_empty() {
        return Some(Intent::ListGroceries);
    }
    let targets = match positions(rest) {
        Some(ps) => ps.into_iter().map(ItemTarget::Position).collect(),
        None => items(span(raw, rest))
            .into_iter()
            .map(ItemTarget::Name)
            .collect(),
    };
    Some(Intent::CheckOffGroceries(targets))
}

fn task_target(raw: &str, toks: &[Tok]) -> TaskTarget {
    match positions(toks) {
        Some(ps) => TaskTarget::Positions(ps),
        None => TaskTarget::Title(clean(span(raw, toks))),
    }
}

/// Numbers only (with "and", "et", "#", "no." between): the positions, else `None`.
fn positions(toks: &[Tok]) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for t in toks {
        if !t.norm.is_empty() && t.norm.chars().all(|c| c.is_ascii_digit()) {
            out.push(t.norm.parse().unwrap_or(usize::MAX));
        } else if !FILLERS.contains(&t.norm.as_str()) {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

fn is_partitive(toks: &[Tok]) -> bool {
    match toks {
        [first, ..] if matches!(first.norm.as_str(), "du" | "des" | "some") => true,
        [first, second, ..] if first.norm == "de" => matches!(second.norm.as_str(), "la" | "l'"),
        _ => false,
    }
}

/// Where a trailing "to (my) groceries"-like phrase starts in `toks`, leaving content before it.
fn suffix_at(
    toks: &[Tok],
    preps: &'static [&'static str],
    nouns: &'static [&'static str],
) -> Option<usize> {
    (1..toks.len()).rev().find(|&k| {
        let mut s = Cur { toks, i: k };
        s.eat(preps) && s.is_listed(&[], OWNERS, nouns)
    })
}

/// Splits task titles: on new lines and semicolons, and on commas when `by_comma`.
fn titles(raw: &str, by_comma: bool) -> Vec<String> {
    raw.split(|c: char| c == '\n' || c == ';' || (by_comma && c == ','))
        .map(clean)
        .filter(|t| !t.is_empty())
        .collect()
}

/// Splits grocery items on commas, semicolons, new lines, "+", "&", "and" and "et", and drops
/// leading articles (the, some, du, de la, des, le, la, les, l', …).
fn items(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in raw.split([',', ';', '\n', '+', '&']) {
        let mut words: Vec<&str> = Vec::new();
        for word in piece.split_whitespace() {
            if matches!(fold(word).as_str(), "and" | "et") {
                push_item(&mut out, &words);
                words.clear();
            } else {
                words.push(word);
            }
        }
        push_item(&mut out, &words);
    }
    out
}

fn push_item(out: &mut Vec<String>, words: &[&str]) {
    let mut words = words;
    if let [first, rest @ ..] = words {
        let f = fold(first);
        let article = matches!(
            f.as_str(),
            "the" | "some" | "a" | "an" | "du" | "des" | "le" | "la" | "les" | "un" | "une"
        );
        if f == "de" && rest.first().is_some_and(|w| fold(w) == "la") {
            words = &rest[1..];
        } else if (f == "de" && rest.first().is_some_and(|w| starts_with_elision(w)))
            || (article && !rest.is_empty())
        {
            words = rest;
        }
    }
    let mut item = words.join(" ");
    if let Some(first) = words.first()
        && starts_with_elision(first)
        && first.chars().count() > 2
    {
        item = item.chars().skip(2).collect();
    }
    let item = clean(&item);
    if !item.is_empty() {
        out.push(item);
    }
}

/// "l'huile", "d'eau": an elided article in front of a word.
fn starts_with_elision(word: &str) -> bool {
    let mut cs = word.chars();
    matches!(
        (cs.next().map(|c| c.to_ascii_lowercase()), cs.next()),
        (Some('l' | 'd'), Some(a)) if is_apostrophe(a)
    )
}

/// Trims spaces and punctuation around a title or item and collapses inner whitespace.
fn clean(text: &str) -> String {
    let trimmed = text.trim_matches(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '.' | ','
                    | ';'
                    | ':'
                    | '!'
                    | '?'
                    | '"'
                    | '-'
                    | '*'
                    | '\u{ab}'
                    | '\u{bb}'
                    | '\u{201c}'
                    | '\u{201d}'
                    | '\u{2026}'
                    | '\u{2013}'
                    | '\u{2014}'
            )
    });
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
}

// --- tokens -----------------------------------------------------------------------------------

/// One word of the message, with where it sits in the original text.
#[derive(Debug, Clone)]
struct Tok {
    /// Byte offset of the word in the trimmed message.
    start: usize,
    /// Byte offset just past the word.
    end: usize,
    /// Folded: lower case, no accents, plain apostrophes. What phrases are compared with.
    norm: String,
    /// Lower case with accents, for the few words whose accent matters (acheté / achète).
    lower: String,
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '\u{02bc}' | '`')
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            ':' | ','
                | ';'
                | '.'
                | '!'
                | '?'
                | '\u{bf}'
                | '\u{a1}'
                | '-'
                | '\u{2013}'
                | '\u{2014}'
                | '('
                | ')'
                | '['
                | ']'
                | '"'
                | '\u{201c}'
                | '\u{201d}'
                | '\u{ab}'
                | '\u{bb}'
                | '#'
                | '\u{b0}'
                | '/'
                | '*'
                | '\u{2026}'
                | '+'
                | '&'
        )
}

fn tokenize(text: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_separator(c) {
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

/// Pushes one word, splitting a French elision ("j'ai" → "j'" "ai", "qu'est" → "qu'" "est").
fn push_word(text: &str, start: usize, end: usize, toks: &mut Vec<Tok>) {
    let word = &text[start..end];
    let mut cs = word.char_indices();
    let split = match (cs.next(), cs.next(), cs.next()) {
        (Some((_, a)), Some((i, b)), _)
            if is_apostrophe(b) && "cdjlmnst".contains(a.to_ascii_lowercase()) =>
        {
            Some(i + b.len_utf8())
        }
        (Some((_, 'q' | 'Q')), Some((_, 'u' | 'U')), Some((i, b))) if is_apostrophe(b) => {
            Some(i + b.len_utf8())
        }
        _ => None,
    };
    let mut push = |s: usize, e: usize| {
        let w = &text[s..e];
        toks.push(Tok {
            start: s,
            end: e,
            norm: fold(w),
            lower: w.to_lowercase(),
        });
    };
    match split {
        Some(k) if k < word.len() => {
            push(start, start + k);
            push(start + k, end);
        }
        _ => push(start, end),
    }
}

/// The original text a run of tokens covers (inner punctuation included).
fn span<'a>(raw: &'a str, toks: &[Tok]) -> &'a str {
    match (toks.first(), toks.last()) {
        (Some(first), Some(last)) => raw.get(first.start..last.end).unwrap_or_default(),
        _ => "",
    }
}

/// How many of the last tokens spell one of `phrases` (the longest), 0 if none.
fn tail_len(toks: &[Tok], phrases: &'static [&'static str]) -> usize {
    phrase_list(phrases)
        .iter()
        .filter(|w| w.len() <= toks.len() && same_words(&toks[toks.len() - w.len()..], w))
        .map(|w| w.len())
        .max()
        .unwrap_or(0)
}

/// The words of each of a list of the parser's phrases as tokens compare them (folded),
/// worked out once per list: the parser tries hundreds of phrases, in a few dozen lists, on
/// every message.
///
/// The lists are static, and so is what is worked out from them: once for the process (a few
/// kilobytes for all of them), then found through a cache of each thread's, which is keyed by
/// where the list lives, not by its text: a static list's address and length name it for the
/// life of the process, and hashing two words is cheaper than hashing its phrases.
fn phrase_list(phrases: &'static [&'static str]) -> &'static [Box<[String]>] {
    thread_local! {
        static SEEN: RefCell<ListCache> = RefCell::new(HashMap::default());
    }
    static WORKED_OUT: Mutex<ListCache> =
        Mutex::new(HashMap::with_hasher(BuildHasherDefault::new()));
    let key = (phrases.as_ptr() as usize, phrases.len());
    if let Some(words) = SEEN.with(|seen| seen.borrow().get(&key).copied()) {
        return words;
    }
    let words = *WORKED_OUT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_insert_with(|| {
            let words: Vec<Box<[String]>> = phrases
                .iter()
                .map(|phrase| tokenize(phrase).into_iter().map(|t| t.norm).collect())
                .collect();
            Box::leak(words.into_boxed_slice())
        });
    SEEN.with(|seen| seen.borrow_mut().insert(key, words));
    words
}

/// Each list's phrases' words, by the list's address and length.
type ListCache =
    HashMap<(usize, usize), &'static [Box<[String]>], BuildHasherDefault<AddressHasher>>;

/// Hashes the address and length of a static list ([`phrase_list`]): a multiply per word.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn write_u64(&mut self, word: u64) {
        // Fibonacci hashing: the high bits (which hashbrown uses) depend on every input bit.
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn same_words(toks: &[Tok], words: &[String]) -> bool {
    toks.len() == words.len() && toks.iter().zip(words).all(|(t, w)| t.norm == *w)
}

/// A position in the token list, copied freely to try alternatives.
#[derive(Debug, Clone, Copy)]
struct Cur<'t> {
    toks: &'t [Tok],
    i: usize,
}

impl<'t> Cur<'t> {
    fn new(toks: &'t [Tok]) -> Self {
        Self { toks, i: 0 }
    }

    fn rest(&self) -> &'t [Tok] {
        self.toks.get(self.i..).unwrap_or_default()
    }

    fn peek(&self) -> Option<&'t Tok> {
        self.toks.get(self.i)
    }

    fn at_end(&self) -> bool {
        self.i >= self.toks.len()
    }

    /// Consumes the longest of `phrases` the next words spell.
    fn eat(&mut self, phrases: &'static [&'static str]) -> bool {
        let rest = self.rest();
        let best = phrase_list(phrases)
            .iter()
            .filter(|w| !w.is_empty() && w.len() <= rest.len() && same_words(&rest[..w.len()], w))
            .map(|w| w.len())
            .max();
        match best {
            Some(n) => {
                self.i += n;
                true
            }
            None => false,
        }
    }

    /// Consumes `[optional] required`, trying with the optional words first; `None` (and
    /// nothing consumed) when `required` does not follow either way.
    fn then(
        &self,
        optional: &'static [&'static str],
        required: &'static [&'static str],
    ) -> Option<Self> {
        let mut with = *self;
        if with.eat(optional) && with.eat(required) {
            return Some(with);
        }
        let mut without = *self;
        without.eat(required).then_some(without)
    }

    /// Whether the remaining words are exactly one of `phrases`.
    fn is(&self, phrases: &'static [&'static str]) -> bool {
        let rest = self.rest();
        phrase_list(phrases)
            .iter()
            .any(|words| same_words(rest, words))
    }

    /// Whether the rest is `[verb] [owner] noun`, each optional part in `verbs` / `owners`.
    fn is_listed(
        &self,
        verbs: &'static [&'static str],
        owners: &'static [&'static str],
        nouns: &'static [&'static str],
    ) -> bool {
        for with_verb in [false, true] {
            let mut v = *self;
            if with_verb && !v.eat(verbs) {
                continue;
            }
            for with_owner in [false, true] {
                let mut o = v;
                if with_owner && !o.eat(owners) {
                    continue;
                }
                if o.is(nouns) {
                    return true;
                }
            }
        }
        false
    }
}

// --- planning: due dates, lists, goals, expenses, notes, reminders -----------------------------

/// Words that introduce a due date at the end of a task title.
const DUE_MARKERS: &[&str] = &[
    "by", "due", "due by", "before", "avant", "pour", "for", "until",
];

/// One task with a due date named after a marker ("pay rent by friday", "appeler maman pour
/// demain") becomes a task with a due date; anything else stays as it is.
fn with_due(titles: Vec<String>) -> Intent {
    if let [title] = titles.as_slice()
        && let Some(found) = time_after_head(title)
        && !found.expr.is_recurring()
    {
        let expr_text = &title[found.start..];
        let first = fold(expr_text.split_whitespace().next().unwrap_or_default());
        let before = title[..found.start].trim_end();
        let toks = tokenize(before);
        let marker_tail = tail_len(&toks, DUE_MARKERS);
        let marked_inside = DUE_MARKERS.contains(&first.as_str());
        if marker_tail > 0 || marked_inside {
            let kept = &toks[..toks.len() - marker_tail];
            let head = clean(span(before, kept));
            if !head.is_empty() {
                return Intent::AddTasksDue {
                    titles: vec![head],
                    due: found.expr,
                };
            }
        }
    }
    Intent::AddTasks(titles)
}

/// A reminder's text and time, the time at either end: "call mom tomorrow at 9",
/// "dans 2 heures : sortir le linge", "every monday to take out the trash".
fn reminder(body: &str) -> Option<Intent> {
    let strip = |text: &str| {
        let toks = tokenize(text);
        let mut c = Cur::new(&toks);
        c.eat(&["to", "de", "d'", "that", "que", "qu'", "about"]);
        clean(span(text, c.rest()))
    };
    if let Some(found) = time_after_head(body) {
        let text = strip(&body[..found.start]);
        if !text.is_empty() {
            return Some(Intent::CreateReminder {
                text,
                when: found.expr,
                urgent: false,
            });
        }
    }
    if let Some(found) = when::find_at_start(body) {
        let text = strip(&body[found.end..]);
        return Some(Intent::CreateReminder {
            text,
            when: found.expr,
            urgent: false,
        });
    }
    None
}

/// The longest time expression ending `text` that leaves at least one word before it
/// ("2 à demain" is the task 2 and "demain", not 2 o'clock tomorrow).
fn time_after_head(text: &str) -> Option<when::Found> {
    let toks = tokenize(text);
    (1..toks.len()).find_map(|k| {
        let start = toks[k].start;
        when::parse(&text[start..]).map(|expr| when::Found {
            expr,
            start,
            end: text.len(),
        })
    })
}

/// A single item pointed at: a number ("2", "#2", "number 2") or words.
fn one_target(raw: &str, toks: &[Tok]) -> Option<Target> {
    if let Some(ps) = positions(toks) {
        return ps.first().map(|p| Target::Position(*p));
    }
    let words = clean(span(raw, toks));
    (!words.is_empty()).then_some(Target::Title(words))
}

const OVERDUE: &[&str] = &[
    "overdue",
    "late",
    "late tasks",
    "overdue tasks",
    "what's overdue",
    "whats overdue",
    "what is overdue",
    "en retard",
    "taches en retard",
    "mes taches en retard",
    "quoi en retard",
];
const DUE_TODAY: &[&str] = &[
    "due today",
    "what's due today",
    "whats due today",
    "what is due today",
    "tasks today",
    "today's tasks",
    "todays tasks",
    "today",
    "pour aujourd'hui",
    "taches du jour",
    "a faire aujourd'hui",
    "aujourd'hui",
    "quoi aujourd'hui",
];
const DUE_WEEK: &[&str] = &[
    "this week",
    "due this week",
    "tasks this week",
    "cette semaine",
    "taches de la semaine",
    "pour cette semaine",
    "a faire cette semaine",
];
const URGENT_LIST: &[&str] = &[
    "urgent",
    "urgent tasks",
    "high priority",
    "priorities",
    "urgentes",
    "taches urgentes",
    "priorites",
    "prioritaires",
    "taches prioritaires",
];
const STATS: &[&str] = &[
    "stats",
    "my stats",
    "statistics",
    "progress",
    "my progress",
    "how am i doing",
    "how's it going",
    "hows it going",
    "done this week",
    "what did i do this week",
    "bilan",
    "mon bilan",
    "mes stats",
    "statistiques",
    "mes progres",
    "progres",
    "ou j'en suis",
    "ou j'en suis",
    "qu'est ce que j'ai fait cette semaine",
];
const GOAL_LIST: &[&str] = &[
    "goals",
    "my goals",
    "list goals",
    "show goals",
    "show my goals",
    "objectifs",
    "mes objectifs",
    "liste des objectifs",
    "montre mes objectifs",
];
const NOTE_LIST: &[&str] = &[
    "notes",
    "my notes",
    "show notes",
    "show my notes",
    "list notes",
    "mes notes",
    "les notes",
    "montre mes notes",
    "affiche mes notes",
];
const REMINDER_LIST: &[&str] = &[
    "reminders",
    "my reminders",
    "show reminders",
    "show my reminders",
    "list reminders",
    "rappels",
    "mes rappels",
    "liste des rappels",
    "montre mes rappels",
];
const SPENT_WEEK: &[&str] = &[
    "expenses",
    "my expenses",
    "spending",
    "expenses this week",
    "spending this week",
    "spent this week",
    "how much did i spend",
    "how much have i spent",
    "how much did i spend this week",
    "depenses",
    "mes depenses",
    "depenses de la semaine",
    "depenses cette semaine",
    "combien j'ai depense",
    "combien j'ai depense cette semaine",
];
const SPENT_MONTH: &[&str] = &[
    "expenses this month",
    "spending this month",
    "spent this month",
    "how much did i spend this month",
    "monthly expenses",
    "depenses du mois",
    "depenses ce mois",
    "mes depenses du mois",
    "combien j'ai depense ce mois",
    "depenses ce mois ci",
];
const SPENT_TODAY: &[&str] = &[
    "expenses today",
    "spent today",
    "spending today",
    "how much did i spend today",
    "depenses du jour",
    "depenses aujourd'hui",
    "combien j'ai depense aujourd'hui",
];
const CANCEL_VERBS: &[&str] = &[
    "cancel",
    "delete",
    "remove",
    "stop",
    "annule",
    "annuler",
    "supprime",
    "supprimer",
    "efface",
    "effacer",
    "retire",
];
const THE: &[&str] = &[
    "the", "my", "this", "le", "la", "mon", "ma", "ce", "cette", "l'",
];
const UNDO: &[&str] = &[
    "undo",
    "oops",
    "oups",
    "reopen",
    "rouvre",
    "rouvrir",
    "not done",
    "pas fini",
    "pas fait",
    "annule",
    "annuler",
    "undo that",
    "annule ca",
];
const BREAK_DOWN: &[&str] = &[
    "break down",
    "breakdown",
    "split",
    "steps",
    "steps for",
    "smaller",
    "small steps",
    "smaller steps",
    "decoupe",
    "decouper",
    "etapes",
    "etapes pour",
    "petites etapes",
];
const MOVE: &[&str] = &[
    "move",
    "reschedule",
    "push",
    "postpone",
    "delay",
    "deplace",
    "deplacer",
    "decale",
    "decaler",
    "reporte",
    "reporter",
    "repousse",
];
const GOAL_WORDS: &[&str] = &[
    "goal",
    "new goal",
    "add goal",
    "add a goal",
    "objectif",
    "nouvel objectif",
    "ajoute objectif",
    "ajoute un objectif",
];
const PROGRESS: &[&str] = &[
    "progress",
    "progres",
    "avancement",
    "progress on",
    "progres sur",
];
const LINK: &[&str] = &["link", "attach", "lie", "relie", "lier", "rattache"];
const NOTE_SEARCH: &[&str] = &[
    "search notes",
    "search my notes",
    "find note",
    "find notes",
    "find my notes",
    "search note",
    "notes about",
    "notes on",
    "note about",
    "cherche note",
    "cherche notes",
    "cherche dans mes notes",
    "chercher note",
    "notes sur",
    "trouve note",
    "cherche la note",
    "cherche mes notes",
];
const NOTE_SAVE: &[&str] = &[
    "note",
    "save note",
    "note that",
    "take a note",
    "note down",
    "prends note",
    "prends note que",
    "note que",
    "noter",
    "nouvelle note",
    "new note",
    "save a note",
];
const SPEND: &[&str] = &[
    "spent",
    "i spent",
    "paid",
    "i paid",
    "expense",
    "log expense",
    "depense",
    "j'ai depense",
    "jai depense",
    "paye",
    "j'ai paye",
    "jai paye",
    "depenses",
];

/// Task planning, goals, notes, reminders and expenses; `None` when the message is none of
/// those.
fn planning(raw: &str, c: Cur<'_>) -> Option<Intent> {
    let lists: [(&[&str], Intent); 11] = [
        (OVERDUE, Intent::ListTasksFiltered(ListFilter::Overdue)),
        (DUE_TODAY, Intent::ListTasksFiltered(ListFilter::DueToday)),
        (DUE_WEEK, Intent::ListTasksFiltered(ListFilter::DueThisWeek)),
        (
            URGENT_LIST,
            Intent::ListTasksFiltered(ListFilter::HighPriority),
        ),
        (STATS, Intent::TaskStats),
        (GOAL_LIST, Intent::ListGoals),
        (NOTE_LIST, Intent::ListNotes),
        (REMINDER_LIST, Intent::ListReminders),
        (SPENT_WEEK, Intent::ExpenseTotals(Period::Week)),
        (SPENT_MONTH, Intent::ExpenseTotals(Period::Month)),
        (SPENT_TODAY, Intent::ExpenseTotals(Period::Today)),
    ];
    for (phrases, intent) in lists {
        if c.is(phrases) {
            return Some(intent);
        }
    }
    // "cancel reminder 2", "supprime la note 3"
    let mut k = c;
    if k.eat(CANCEL_VERBS) {
        k.eat(THE);
        let mut r = k;
        if r.eat(&["reminder", "reminders", "rappel", "rappels"]) {
            r.eat(&["number", "no", "numero", "n"]);
            return one_target(raw, r.rest()).map(Intent::CancelReminder);
        }
        let mut n = k;
        if n.eat(&["note", "notes"]) {
            n.eat(&["number", "no", "numero", "n"]);
            return one_target(raw, n.rest()).map(Intent::DeleteNote);
        }
    }
    let mut u = c;
    if u.eat(UNDO) {
        if u.at_end() {
            return Some(Intent::Reopen(None));
        }
        u.eat(&["task", "tache"]);
        return Some(Intent::Reopen(Some(clean(span(raw, u.rest())))));
    }
    let mut b = c;
    if b.eat(BREAK_DOWN) {
        b.eat(&["task", "tache", "la tache", "the task"]);
        return one_target(raw, b.rest()).map(Intent::BreakDown);
    }
    if let Some(intent) = priority(raw, c) {
        return Some(intent);
    }
    let mut m = c;
    if m.eat(MOVE) && !m.at_end() {
        let text = span(raw, m.rest());
        let toks = tokenize(text);
        let clear = tail_len(
            &toks,
            &["no date", "no due date", "sans date", "off", "later"],
        );
        if clear > 0 && clear < toks.len() {
            let target_toks = &toks[..toks.len() - clear];
            return one_target(text, target_toks)
                .map(|target| Intent::Reschedule { target, due: None });
        }
        let found = time_after_head(text)?;
        let before = tokenize(&text[..found.start]);
        let tail = tail_len(
            &before,
            &["to", "until", "till", "til", "a", "au", "pour", "for"],
        );
        let target_toks = &before[..before.len() - tail];
        return one_target(&text[..found.start], target_toks).map(|target| Intent::Reschedule {
            target,
            due: Some(found.expr),
        });
    }
    let mut p = c;
    if p.eat(PROGRESS) && !p.at_end() {
        p.eat(&["of", "on", "for", "de", "sur", "du"]);
        p.eat(THE);
        p.eat(&["goal", "objectif"]);
        return one_target(raw, p.rest()).map(Intent::GoalProgress);
    }
    let mut l = c;
    if l.eat(LINK) {
        return link(raw, l.rest());
    }
    let mut g = c;
    if g.eat(GOAL_WORDS) {
        if g.at_end() {
            return Some(Intent::ListGoals);
        }
        if let Some(ps) = positions(g.rest()) {
            return ps
                .first()
                .map(|p| Intent::GoalProgress(Target::Position(*p)));
        }
        return Some(Intent::AddGoal(clean(span(raw, g.rest()))));
    }
    let mut n = c;
    if n.eat(NOTE_SEARCH) && !n.at_end() {
        return Some(Intent::SearchNotes(clean(span(raw, n.rest()))));
    }
    let mut n = c;
    if n.eat(NOTE_SAVE) {
        return Some(Intent::SaveNote(clean(span(raw, n.rest()))));
    }
    let mut e = c;
    if e.eat(SPEND) {
        e.eat(&["of", "de"]);
        return Some(Intent::LogExpense(expense(span(raw, e.rest()))));
    }
    None
}

/// "urgent 2", "prioritize call mom", "priority 2 low", "priorité 2 haute", "2 is urgent".
fn priority(raw: &str, c: Cur<'_>) -> Option<Intent> {
    let mut p = c;
    if p.eat(&[
        "urgent",
        "prioritize",
        "prioritise",
        "priorise",
        "prioriser",
        "make urgent",
    ]) && !p.at_end()
    {
        return one_target(raw, p.rest()).map(|target| Intent::Prioritize {
            target,
            priority: Priority::High,
        });
    }
    let mut p = c;
    if p.eat(&["priority", "priorite", "set priority"]) {
        let rest = p.rest();
        let (last, before) = rest.split_last()?;
        let priority = match last.norm.as_str() {
            "high" | "haute" | "urgent" | "urgente" | "elevee" => Priority::High,
            "low" | "basse" | "faible" => Priority::Low,
            "normal" | "normale" | "medium" | "moyenne" => Priority::Normal,
            _ => return None,
        };
        let mut t = Cur::new(before);
        t.eat(&["of", "de", "for", "pour"]);
        let target_toks = t.rest();
        let target_toks = match target_toks.split_last() {
            Some((l, init)) if matches!(l.norm.as_str(), "to" | "a" | "is" | "en") => init,
            _ => target_toks,
        };
        return one_target(raw, target_toks).map(|target| Intent::Prioritize { target, priority });
    }
    let rest = c.rest();
    let tail = tail_len(
        rest,
        &[
            "is urgent",
            "urgent",
            "est urgent",
            "est urgente",
            "urgente",
        ],
    );
    if tail > 0 && tail < rest.len() {
        return positions(&rest[..rest.len() - tail]).and_then(|ps| {
            ps.first().map(|p| Intent::Prioritize {
                target: Target::Position(*p),
                priority: Priority::High,
            })
        });
    }
    None
}

/// "2 to goal 1", "call mom to run a 10k", "2 à l'objectif 1".
fn link(raw: &str, rest: &[Tok]) -> Option<Intent> {
    let k = (1..rest.len())
        .find(|&k| matches!(rest[k].norm.as_str(), "to" | "a" | "au" | "with" | "avec"))?;
    let task = one_target(raw, &rest[..k])?;
    let mut g = Cur::new(&rest[k + 1..]);
    g.eat(THE);
    g.eat(&["goal", "objectif"]);
    let goal = one_target(raw, g.rest())?;
    Some(Intent::LinkToGoal { task, goal })
}

/// "12.50 on lunch", "$12 lunch", "30 eur taxi", "12,50 € resto", "1500 yen ramen".
fn expense(text: &str) -> ExpenseInput {
    let mut amount = String::new();
    let mut currency = None;
    let mut description: Vec<&str> = Vec::new();
    let mut words = text.split_whitespace().peekable();
    while let Some(word) = words.next() {
        if amount.is_empty() && word.chars().any(|c| c.is_ascii_digit()) {
            let (prefix, rest) =
                word.split_at(word.find(|c: char| c.is_ascii_digit()).unwrap_or(0));
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ',' | '\'')))
                .unwrap_or(rest.len());
            let (digits, suffix) = rest.split_at(end);
            amount = digits.trim_end_matches(['.', ',']).to_owned();
            let symbol = if prefix.is_empty() { suffix } else { prefix };
            // The symbol or word as written: "$" is the user's own dollar, decided at logging.
            if !symbol.is_empty() && currency_word(symbol, "").is_some() {
                currency = Some(symbol.to_owned());
            }
            if currency.is_none()
                && let Some(next) = words.peek()
                && currency_word(next, "").is_some()
            {
                currency = Some((*next).to_owned());
                words.next();
            }
            continue;
        }
        description.push(word);
    }
    // Leading prepositions: "on lunch", "pour le resto", "en courses".
    const PREPS: &[&str] = &[
        "on", "for", "at", "in", "pour", "en", "de", "au", "chez", "d'", "le", "la", "les", "du",
        "the", "a",
    ];
    while description
        .first()
        .is_some_and(|w| PREPS.contains(&fold(w).as_str()))
    {
        description.remove(0);
    }
    let note = clean(&description.join(" "));
    let category = note
        .split_whitespace()
        .next()
        .map(clean)
        .filter(|w| !w.is_empty());
    ExpenseInput {
        amount,
        currency,
        category,
        note: (!note.is_empty()).then_some(note),
    }
}
