//! The offline rules engine: Nudge's answer when no model is configured, and the last resort
//! behind the LLM providers.
//!
//! A turn goes through three plain steps, each testable on its own:
//!
//! 1. [`parse`] turns the text into an [`Intent`]. English and French are both understood
//!    whatever the user's language; case, accents and punctuation do not matter.
//! 2. [`execute`] runs the intent through the task and grocery tools, scoped to the user, and
//!    returns an [`Outcome`].
//! 3. [`render`] words the outcome in the user's language, short enough for SMS: at most
//!    [`SMS_MAX_ITEMS`] list items, never more than [`SMS_MAX_CHARS`] characters. English
//!    replies keep to GSM-7 characters.
//!
//! The engine never logs what the user wrote.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use async_trait::async_trait;

use crate::agent::{AgentError, TurnEngine, TurnInput};
use crate::store::{Channel, GroceryItem, Language, Store, Task, User};
use crate::tools::groceries::{self, AddedItems, CheckOff, GroceryError, ItemTarget};
use crate::tools::tasks::{self, Added, Completion, TaskError, TaskTarget, fold};

/// The hard cap on an SMS reply, in characters.
pub const SMS_MAX_CHARS: usize = 320;
/// How many list items an SMS reply shows before "+N more".
pub const SMS_MAX_ITEMS: usize = 5;

/// The rules engine. Stateless: every turn reads what it needs from the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineRules;

#[async_trait]
impl TurnEngine for OfflineRules {
    async fn respond(&self, store: &Store, input: TurnInput<'_>) -> Result<String, AgentError> {
        let outcome = execute(store, input.user, parse(input.text)).await?;
        Ok(render(&outcome, input.user.language, input.channel))
    }
}

// ---------------------------------------------------------------------------------------------
// Intents
// ---------------------------------------------------------------------------------------------

/// What a message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Add these tasks (empty when the user said "add task" and nothing else).
    AddTasks(Vec<String>),
    /// Show the open tasks.
    ListTasks,
    /// Complete tasks; `None` when the user said only "done".
    CompleteTask(Option<TaskTarget>),
    /// Add these grocery items (empty when none could be read).
    AddGroceries(Vec<String>),
    /// Show the grocery list.
    ListGroceries,
    /// Check these items off the grocery list.
    CheckOffGroceries(Vec<ItemTarget>),
    /// Empty the grocery list.
    ClearGroceries,
    /// Say what Nudge can do.
    Help,
    /// Hello.
    Greeting,
    /// Thanks / ok: acknowledge.
    Thanks,
    /// Anything else.
    Unknown,
}

/// Reads what a message asks for. Pure: no store, no clock.
///
/// English and French are accepted whatever the user's language; case, accents, punctuation,
/// a greeting in front ("hi, tasks") and "please" / "stp" around a command are ignored. Titles
/// and item names are kept as the user typed them.
pub fn parse(text: &str) -> Intent {
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
    "creer", "mets", "mettre", "met", "note", "noter",
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
    // "remind me to call mom": a task for now.
    let mut r = c;
    if r.eat(REMIND) {
        return Some(Intent::AddTasks(titles(span(raw, r.rest()), false)));
    }
    // "task call mom", "todo: pay rent", "tâche : appeler maman", "new task ..."
    if let Some(t) = c.then(NEW, TASK_NOUNS) {
        return Some(Intent::AddTasks(task_rest(raw, t)));
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
        return Intent::AddTasks(task_rest(raw, n));
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
    Intent::AddTasks(titles(span(raw, content), false))
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
fn suffix_at(toks: &[Tok], preps: &[&str], nouns: &[&str]) -> Option<usize> {
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
fn tail_len(toks: &[Tok], phrases: &[&str]) -> usize {
    phrases
        .iter()
        .map(|p| phrase_words(p))
        .filter(|w| w.len() <= toks.len() && same_words(&toks[toks.len() - w.len()..], w))
        .map(|w| w.len())
        .max()
        .unwrap_or(0)
}

/// The folded words of a phrase of this file's tables. Tokenizing them for every message
/// cost more than the rest of a turn's parsing, so each thread remembers them (the tables
/// are constants: a few hundred phrases in all).
fn phrase_words(phrase: &str) -> Rc<[String]> {
    thread_local! {
        static WORDS: RefCell<HashMap<String, Rc<[String]>>> = RefCell::new(HashMap::new());
    }
    WORDS.with(|words| {
        if let Some(known) = words.borrow().get(phrase) {
            return known.clone();
        }
        let tokenized: Rc<[String]> = tokenize(phrase).into_iter().map(|t| t.norm).collect();
        words
            .borrow_mut()
            .insert(phrase.to_owned(), tokenized.clone());
        tokenized
    })
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
    fn eat(&mut self, phrases: &[&str]) -> bool {
        let rest = self.rest();
        let best = phrases
            .iter()
            .map(|p| phrase_words(p))
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
    fn then(&self, optional: &[&str], required: &[&str]) -> Option<Self> {
        let mut with = *self;
        if with.eat(optional) && with.eat(required) {
            return Some(with);
        }
        let mut without = *self;
        without.eat(required).then_some(without)
    }

    /// Whether the remaining words are exactly one of `phrases`.
    fn is(&self, phrases: &[&str]) -> bool {
        let rest = self.rest();
        phrases.iter().any(|p| same_words(rest, &phrase_words(p)))
    }

    /// Whether the rest is `[verb] [owner] noun`, each optional part in `verbs` / `owners`.
    fn is_listed(&self, verbs: &[&str], owners: &[&str], nouns: &[&str]) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------------

/// What running an intent produced: everything [`render`] needs, nothing more.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Tasks were saved.
    TasksAdded(Added),
    /// The open tasks, oldest first.
    TaskList(Vec<Task>),
    /// The result of "done …".
    TasksCompleted(Completion),
    /// "done" with no target: the open tasks to choose from.
    AskWhichTask(Vec<Task>),
    /// Grocery items were saved (or were already there).
    GroceriesAdded(AddedItems),
    /// The unchecked grocery items, oldest first.
    GroceryList(Vec<GroceryItem>),
    /// The result of "got …".
    GroceriesChecked(CheckOff),
    /// The list was cleared; how many items it held.
    GroceriesCleared(u64),
    /// A hello, with the first name to greet and the open tasks.
    Greeting {
        /// The user's first name, possibly empty.
        name: String,
        /// Open tasks, oldest first, to suggest the next one.
        open: Vec<Task>,
    },
    /// The help text.
    Help,
    /// An acknowledgement of thanks.
    Thanks,
    /// The message was not understood.
    Fallback,
    /// A tool refused the input; nothing was saved.
    Refused(Refusal),
}

/// Why nothing was saved, in words the user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// "add task" with no title.
    NoTaskTitle,
    /// A title over [`tasks::MAX_TITLE_CHARS`].
    TaskTooLong,
    /// Over [`tasks::MAX_TASKS_PER_MESSAGE`] tasks in one message.
    TooManyTasks,
    /// "buy" with no item.
    NoGroceryItem,
    /// An item name over [`groceries::MAX_NAME_CHARS`].
    ItemTooLong,
    /// Over [`groceries::MAX_ITEMS_PER_MESSAGE`] items in one message.
    TooManyItems,
}

fn task_refusal(e: TaskError) -> Result<Outcome, AgentError> {
    Ok(Outcome::Refused(match e {
        TaskError::EmptyTitle => Refusal::NoTaskTitle,
        TaskError::TitleTooLong { .. } => Refusal::TaskTooLong,
        TaskError::TooMany { .. } => Refusal::TooManyTasks,
        TaskError::Store(e) => return Err(e.into()),
    }))
}

fn grocery_refusal(e: GroceryError) -> Result<Outcome, AgentError> {
    Ok(Outcome::Refused(match e {
        GroceryError::EmptyName => Refusal::NoGroceryItem,
        GroceryError::NameTooLong { .. } => Refusal::ItemTooLong,
        GroceryError::TooMany { .. } => Refusal::TooManyItems,
        GroceryError::Store(e) => return Err(e.into()),
    }))
}

/// Runs an intent for `user` through the tools. Every call is scoped to `user.id`.
pub async fn execute(store: &Store, user: &User, intent: Intent) -> Result<Outcome, AgentError> {
    let id = user.id;
    let outcome = match intent {
        Intent::AddTasks(titles) => match tasks::add_many(store, id, &titles).await {
            Ok(added) => Outcome::TasksAdded(added),
            Err(e) => return task_refusal(e),
        },
        Intent::ListTasks => Outcome::TaskList(tasks::list_open(store, id).await?),
        Intent::CompleteTask(None) => Outcome::AskWhichTask(tasks::list_open(store, id).await?),
        Intent::CompleteTask(Some(target)) => {
            Outcome::TasksCompleted(tasks::complete_by_position_or_title(store, id, &target).await?)
        }
        Intent::AddGroceries(names) => match groceries::add_many(store, id, &names).await {
            Ok(added) => Outcome::GroceriesAdded(added),
            Err(e) => return grocery_refusal(e),
        },
        Intent::ListGroceries => Outcome::GroceryList(groceries::list(store, id).await?),
        Intent::CheckOffGroceries(targets) => {
            Outcome::GroceriesChecked(groceries::check_off(store, id, &targets).await?)
        }
        Intent::ClearGroceries => Outcome::GroceriesCleared(groceries::clear(store, id).await?),
        Intent::Greeting => Outcome::Greeting {
            name: user
                .display_name
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
            open: tasks::list_open(store, id).await?,
        },
        Intent::Help => Outcome::Help,
        Intent::Thanks => Outcome::Thanks,
        Intent::Unknown => Outcome::Fallback,
    };
    Ok(outcome)
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// The help text (also the answer to the SMS HELP / AIDE keyword).
pub fn help_text(lang: Language) -> &'static str {
    match lang {
        Language::En => {
            "Nudge keeps your tasks and groceries.\n\
             Tasks: task call mom / tasks / done 1\n\
             Groceries: buy milk, eggs / groceries / got milk / clear groceries\n\
             Text STOP to opt out."
        }
        Language::Fr => {
            "Nudge garde tes tâches et tes courses.\n\
             Tâches : tâche appeler maman / tâches / fait 1\n\
             Courses : acheter lait, œufs / courses / pris lait / vide les courses\n\
             STOP pour ne plus recevoir de SMS."
        }
    }
}

/// What Nudge answers to a message it did not understand.
pub fn fallback_text(lang: Language) -> &'static str {
    match lang {
        Language::En => {
            "I'm not sure what to do with that yet. Try: task call mom / tasks / done 1 / \
             buy milk / groceries. Text HELP for more."
        }
        Language::Fr => {
            "Je ne sais pas encore quoi faire de ça. Essaie : tâche appeler maman / tâches / \
             fait 1 / acheter du lait / courses. Écris AIDE pour plus."
        }
    }
}

/// How much a reply may hold on a channel.
#[derive(Debug, Clone, Copy)]
struct Room {
    /// List items shown before "+N more".
    items: usize,
    /// Characters a title keeps inside a reply.
    title: usize,
    /// Names shown in a comma-separated run ("milk, eggs, bread +2 more").
    inline: usize,
    /// Characters a name keeps inside such a run.
    inline_title: usize,
    /// Characters of the whole reply.
    total: usize,
}

fn room(channel: Channel) -> Room {
    match channel {
        Channel::Sms => Room {
            items: SMS_MAX_ITEMS,
            title: 40,
            inline: 3,
            inline_title: 30,
            total: SMS_MAX_CHARS,
        },
        Channel::Web => Room {
            items: 10,
            title: 120,
            inline: 10,
            inline_title: 60,
            total: 2000,
        },
    }
}

/// Words an outcome in `lang`, sized for `channel` (on SMS: at most [`SMS_MAX_CHARS`]).
pub fn render(outcome: &Outcome, lang: Language, channel: Channel) -> String {
    let r = Render {
        lang,
        room: room(channel),
    };
    let text = match outcome {
        Outcome::TasksAdded(added) => r.tasks_added(added),
        Outcome::TaskList(open) => r.task_list(open),
        Outcome::TasksCompleted(c) => r.completion(c),
        Outcome::AskWhichTask(open) => r.ask_which(open),
        Outcome::GroceriesAdded(added) => r.groceries_added(added),
        Outcome::GroceryList(items) => r.grocery_list(items),
        Outcome::GroceriesChecked(c) => r.checked(c),
        Outcome::GroceriesCleared(n) => r.cleared(*n),
        Outcome::Greeting { name, open } => r.greeting(name, open),
        Outcome::Help => help_text(lang).to_owned(),
        Outcome::Thanks => r
            .pick(
                "Anytime! Text me whenever you need a hand.",
                "Avec plaisir ! Écris-moi quand tu veux.",
            )
            .to_owned(),
        Outcome::Fallback => fallback_text(lang).to_owned(),
        Outcome::Refused(why) => r.refused(*why),
    };
    cap(text, r.room.total)
}

struct Render {
    lang: Language,
    room: Room,
}

const CHEERS_EN: [&str; 4] = ["Nice work!", "Well done!", "Great job!", "One down!"];
const CHEERS_FR: [&str; 4] = ["Bravo !", "Bien joué !", "Super !", "Une de moins !"];

impl Render {
    fn pick<'a>(&self, en: &'a str, fr: &'a str) -> &'a str {
        match self.lang {
            Language::En => en,
            Language::Fr => fr,
        }
    }

    fn t(&self, title: &str) -> String {
        clip(title, self.room.title)
    }

    /// A title ending a sentence: clipped, with a full stop unless it has one.
    fn t_stop(&self, title: &str) -> String {
        stop(&self.t(title))
    }

    fn more(&self, n: usize) -> String {
        match self.lang {
            Language::En => format!("+{n} more"),
            Language::Fr => format!("+{n} autres"),
        }
    }

    /// "1. call mom\n2. pay rent\n+3 more"
    fn numbered<'a>(&self, rows: impl ExactSizeIterator<Item = (usize, &'a str)>) -> String {
        let total = rows.len();
        let mut lines: Vec<String> = rows
            .take(self.room.items)
            .map(|(n, title)| format!("{n}. {}", self.t(title)))
            .collect();
        if total > self.room.items {
            lines.push(self.more(total - self.room.items));
        }
        lines.join("\n")
    }

    fn numbered_tasks(&self, tasks: &[Task]) -> String {
        self.numbered(
            tasks
                .iter()
                .enumerate()
                .map(|(i, t)| (i + 1, t.title.as_str())),
        )
    }

    fn numbered_items(&self, items: &[GroceryItem]) -> String {
        self.numbered(
            items
                .iter()
                .enumerate()
                .map(|(i, t)| (i + 1, t.name.as_str())),
        )
    }

    /// "milk, eggs, bread +2 more"
    fn inline<'a>(&self, names: impl ExactSizeIterator<Item = &'a str>) -> String {
        let total = names.len();
        let shown = self.room.inline;
        let mut out = names
            .take(shown)
            .map(|n| clip(n, self.room.inline_title))
            .collect::<Vec<_>>()
            .join(", ");
        if total > shown {
            out.push(' ');
            out.push_str(&self.more(total - shown));
        }
        stop(&out)
    }

    fn open_count(&self, n: usize) -> String {
        match (self.lang, n) {
            (Language::En, 1) => "1 open task".to_owned(),
            (Language::En, n) => format!("{n} open tasks"),
            (Language::Fr, 1) => "1 tâche en cours".to_owned(),
            (Language::Fr, n) => format!("{n} tâches en cours"),
        }
    }

    fn item_count(&self, n: usize) -> String {
        match (self.lang, n) {
            (Language::En, 1) => "1 item".to_owned(),
            (Language::En, n) => format!("{n} items"),
            (Language::Fr, 1) => "1 article".to_owned(),
            (Language::Fr, n) => format!("{n} articles"),
        }
    }

    fn no_tasks(&self) -> String {
        self.pick(
            "No open tasks - a clean slate! Add one anytime: task call mom",
            "Aucune tâche en cours — table rase ! Pour en ajouter : tâche appeler maman",
        )
        .to_owned()
    }

    /// "You have 3 open tasks - next up: pay rent."
    fn next_up(&self, open: &[Task]) -> String {
        match (self.lang, open) {
            (_, []) => String::new(),
            (Language::En, [_]) => "It's your only task - start with 2 minutes?".to_owned(),
            (Language::Fr, [_]) => "C'est ta seule tâche — on s'y met 2 minutes ?".to_owned(),
            (Language::En, [first, ..]) => format!(
                "You have {} - next up: {}",
                self.open_count(open.len()),
                self.t_stop(&first.title)
            ),
            (Language::Fr, [first, ..]) => format!(
                "{} — prochaine : {}",
                self.open_count(open.len()),
                self.t_stop(&first.title)
            ),
        }
    }

    fn tasks_added(&self, added: &Added) -> String {
        let head = match (self.lang, added.added.as_slice()) {
            (Language::En, [one]) => format!("Added: {}", self.t_stop(&one.title)),
            (Language::Fr, [one]) => format!("Ajouté : {}", self.t_stop(&one.title)),
            (Language::En, many) => format!(
                "Added {} tasks: {}",
                many.len(),
                self.inline(many.iter().map(|t| t.title.as_str()))
            ),
            (Language::Fr, many) => format!(
                "{} tâches ajoutées : {}",
                many.len(),
                self.inline(many.iter().map(|t| t.title.as_str()))
            ),
        };
        format!("{head} {}", self.next_up(&added.open))
    }

    fn task_list(&self, open: &[Task]) -> String {
        if open.is_empty() {
            return self.no_tasks();
        }
        let list = self.numbered_tasks(open);
        match self.lang {
            Language::En => format!(
                "Your tasks ({}):\n{list}\nDone one? Reply: done 1",
                open.len()
            ),
            Language::Fr => format!(
                "Tes tâches ({}) :\n{list}\nUne de faite ? Réponds : fait 1",
                open.len()
            ),
        }
    }

    fn ask_which(&self, open: &[Task]) -> String {
        if open.is_empty() {
            return self.no_tasks();
        }
        let list = self.numbered_tasks(open);
        match self.lang {
            Language::En => format!("Which one did you finish?\n{list}\nReply: done 1"),
            Language::Fr => format!("Laquelle as-tu terminée ?\n{list}\nRéponds : fait 1"),
        }
    }

    fn completion(&self, c: &Completion) -> String {
        match c {
            Completion::Done {
                completed,
                missing,
                remaining,
            } => {
                let names = self.inline(completed.iter().map(|t| t.title.as_str()));
                let seed = completed
                    .first()
                    .map_or(0, |t| t.id.unsigned_abs() as usize);
                let cheer = match self.lang {
                    Language::En => CHEERS_EN[seed % CHEERS_EN.len()],
                    Language::Fr => CHEERS_FR[seed % CHEERS_FR.len()],
                };
                let mut out = match self.lang {
                    Language::En => format!("Done: {names} {cheer}"),
                    Language::Fr => format!("Fait : {names} {cheer}"),
                };
                out.push(' ');
                out.push_str(&match (self.lang, remaining.first()) {
                    (Language::En, None) => {
                        "That was your last task - enjoy the clear list.".to_owned()
                    }
                    (Language::Fr, None) => "C'était ta dernière tâche — profite !".to_owned(),
                    (Language::En, Some(next)) => format!("Next up: {}", self.t_stop(&next.title)),
                    (Language::Fr, Some(next)) => {
                        format!("Prochaine : {}", self.t_stop(&next.title))
                    }
                });
                if !missing.is_empty() {
                    let nums = join_numbers(missing);
                    out.push_str(&match self.lang {
                        Language::En => format!(" (No task {nums}.)"),
                        Language::Fr => format!(" (Pas de tâche {nums}.)"),
                    });
                }
                out
            }
            Completion::NoSuchPosition { positions, open } => {
                if open.is_empty() {
                    return self.no_tasks();
                }
                let nums = join_numbers(positions);
                let list = self.numbered_tasks(open);
                match self.lang {
                    Language::En => {
                        format!("There's no task {nums}. Your tasks:\n{list}\nReply: done 1")
                    }
                    Language::Fr => {
                        format!("Pas de tâche {nums}. Tes tâches :\n{list}\nRéponds : fait 1")
                    }
                }
            }
            Completion::NoMatch { open } => {
                if open.is_empty() {
                    return self.no_tasks();
                }
                let list = self.numbered_tasks(open);
                match self.lang {
                    Language::En => format!(
                        "I couldn't find that in your open tasks:\n{list}\nReply with its number, like: done 1"
                    ),
                    Language::Fr => format!(
                        "Je ne la trouve pas dans tes tâches :\n{list}\nRéponds avec son numéro, comme : fait 1"
                    ),
                }
            }
            Completion::Ambiguous { candidates } => {
                let first = candidates.first().map_or(1, |c| c.position);
                let list = self.numbered(
                    candidates
                        .iter()
                        .map(|c| (c.position, c.task.title.as_str())),
                );
                match self.lang {
                    Language::En => format!("Which one?\n{list}\nReply: done {first}"),
                    Language::Fr => format!("Laquelle ?\n{list}\nRéponds : fait {first}"),
                }
            }
        }
    }

    fn groceries_added(&self, a: &AddedItems) -> String {
        let mut parts = Vec::new();
        if !a.added.is_empty() {
            let names = self.inline(a.added.iter().map(|i| i.name.as_str()));
            parts.push(match self.lang {
                Language::En => format!("Added to groceries: {names}"),
                Language::Fr => format!("Ajouté aux courses : {names}"),
            });
        }
        if !a.already_listed.is_empty() {
            let names = self.inline(a.already_listed.iter().map(String::as_str));
            parts.push(match self.lang {
                Language::En => format!("Already on the list: {names}"),
                Language::Fr => format!("Déjà sur la liste : {names}"),
            });
        }
        parts.push(match self.lang {
            Language::En => format!("{} on your list.", self.item_count(a.total)),
            Language::Fr => format!("{} sur ta liste.", self.item_count(a.total)),
        });
        parts.join(" ")
    }

    fn empty_groceries(&self) -> String {
        self.pick(
            "Your grocery list is empty. Add items like: buy milk, eggs",
            "Ta liste de courses est vide. Pour ajouter : acheter lait, œufs",
        )
        .to_owned()
    }

    fn grocery_list(&self, items: &[GroceryItem]) -> String {
        if items.is_empty() {
            return self.empty_groceries();
        }
        let list = self.numbered_items(items);
        match self.lang {
            Language::En => format!(
                "Groceries ({}):\n{list}\nGot one? Reply: got 1",
                items.len()
            ),
            Language::Fr => format!(
                "Courses ({}) :\n{list}\nC'est pris ? Réponds : pris 1",
                items.len()
            ),
        }
    }

    fn checked(&self, c: &CheckOff) -> String {
        let mut parts = Vec::new();
        if !c.checked.is_empty() {
            let names = self.inline(c.checked.iter().map(|i| i.name.as_str()));
            parts.push(match self.lang {
                Language::En => format!("Checked off: {names}"),
                Language::Fr => format!("Coché : {names}"),
            });
        }
        let mut names = Vec::new();
        let mut numbers = Vec::new();
        for target in &c.not_found {
            match target {
                ItemTarget::Name(n) => names.push(n.as_str()),
                ItemTarget::Position(p) => numbers.push(*p),
            }
        }
        if !names.is_empty() {
            let names = self.inline(names.into_iter());
            parts.push(match self.lang {
                Language::En => format!("Not on your list: {names}"),
                Language::Fr => format!("Pas sur ta liste : {names}"),
            });
        }
        if !numbers.is_empty() {
            let nums = join_numbers(&numbers);
            parts.push(match self.lang {
                Language::En => format!("No item {nums}."),
                Language::Fr => format!("Pas d'article {nums}."),
            });
        }
        for amb in &c.ambiguous {
            let first = amb.candidates.first().map_or(1, |(p, _)| *p);
            let list = self.numbered(amb.candidates.iter().map(|(p, i)| (*p, i.name.as_str())));
            let name = self.t(&amb.name);
            parts.push(match self.lang {
                Language::En => format!("Which \"{name}\"?\n{list}\nReply: got {first}"),
                Language::Fr => format!("Quel « {name} » ?\n{list}\nRéponds : pris {first}"),
            });
        }
        if !c.ambiguous.is_empty() {
            return parts.join(" ");
        }
        if c.remaining.is_empty() {
            parts.push(if c.checked.is_empty() {
                self.pick(
                    "Your grocery list is empty.",
                    "Ta liste de courses est vide.",
                )
                .to_owned()
            } else {
                self.pick(
                    "That's everything - list done!",
                    "C'est tout — liste terminée !",
                )
                .to_owned()
            });
        } else if c.checked.is_empty() {
            let list = self.numbered_items(&c.remaining);
            parts.push(match self.lang {
                Language::En => format!("Your list:\n{list}\nReply: got 1"),
                Language::Fr => format!("Ta liste :\n{list}\nRéponds : pris 1"),
            });
        } else {
            let left = self.inline(c.remaining.iter().map(|i| i.name.as_str()));
            parts.push(match self.lang {
                Language::En => format!("{} left: {left}", c.remaining.len()),
                Language::Fr => format!("Reste {} : {left}", c.remaining.len()),
            });
        }
        parts.join(" ")
    }

    fn cleared(&self, n: u64) -> String {
        match (self.lang, n) {
            (Language::En, 0) => {
                "Your grocery list was already empty. Add items like: buy milk".to_owned()
            }
            (Language::Fr, 0) => {
                "Ta liste de courses était déjà vide. Pour ajouter : acheter du lait".to_owned()
            }
            (Language::En, 1) => "Cleared your grocery list (1 item). Fresh start!".to_owned(),
            (Language::Fr, 1) => {
                "Liste de courses vidée (1 article). On repart à zéro !".to_owned()
            }
            (Language::En, n) => format!("Cleared your grocery list ({n} items). Fresh start!"),
            (Language::Fr, n) => {
                format!("Liste de courses vidée ({n} articles). On repart à zéro !")
            }
        }
    }

    fn greeting(&self, name: &str, open: &[Task]) -> String {
        let name = clip(name, 20);
        let hello = match (self.lang, name.is_empty()) {
            (Language::En, true) => "Hi!".to_owned(),
            (Language::En, false) => format!("Hi {name}!"),
            (Language::Fr, true) => "Salut !".to_owned(),
            (Language::Fr, false) => format!("Salut {name} !"),
        };
        let rest = match (self.lang, open.first()) {
            (Language::En, None) => {
                "Your list is clear. Add a task anytime: task call mom".to_owned()
            }
            (Language::Fr, None) => {
                "Rien en cours. Pour ajouter une tâche : tâche appeler maman".to_owned()
            }
            (Language::En, Some(first)) => format!(
                "You have {} - next up: {} Reply 'tasks' to see them.",
                self.open_count(open.len()),
                self.t_stop(&first.title)
            ),
            (Language::Fr, Some(first)) => format!(
                "{} — prochaine : {} Écris « tâches » pour les voir.",
                self.open_count(open.len()),
                self.t_stop(&first.title)
            ),
        };
        format!("{hello} {rest}")
    }

    fn refused(&self, why: Refusal) -> String {
        match (self.lang, why) {
            (Language::En, Refusal::NoTaskTitle) => {
                "What's the task? Try: task call mom".to_owned()
            }
            (Language::Fr, Refusal::NoTaskTitle) => {
                "Quelle tâche ? Essaie : tâche appeler maman".to_owned()
            }
            (Language::En, Refusal::TaskTooLong) => format!(
                "That one's a bit long (max {} characters). Try a short name, like: task call mom",
                tasks::MAX_TITLE_CHARS
            ),
            (Language::Fr, Refusal::TaskTooLong) => format!(
                "Un peu long ({} caractères max). Essaie un nom court, comme : tâche appeler maman",
                tasks::MAX_TITLE_CHARS
            ),
            (Language::En, Refusal::TooManyTasks) => format!(
                "That's a lot at once! Send up to {} tasks per message.",
                tasks::MAX_TASKS_PER_MESSAGE
            ),
            (Language::Fr, Refusal::TooManyTasks) => format!(
                "Ça fait beaucoup d'un coup ! Envoie {} tâches max par message.",
                tasks::MAX_TASKS_PER_MESSAGE
            ),
            (Language::En, Refusal::NoGroceryItem) => {
                "What should I add? Try: buy milk, eggs".to_owned()
            }
            (Language::Fr, Refusal::NoGroceryItem) => {
                "J'ajoute quoi ? Essaie : acheter lait, œufs".to_owned()
            }
            (Language::En, Refusal::ItemTooLong) => format!(
                "One item is a bit long (max {} characters). Try a short name, like: buy milk",
                groceries::MAX_NAME_CHARS
            ),
            (Language::Fr, Refusal::ItemTooLong) => format!(
                "Un article est un peu long ({} caractères max). Essaie plus court, comme : acheter du lait",
                groceries::MAX_NAME_CHARS
            ),
            (Language::En, Refusal::TooManyItems) => format!(
                "That's a lot at once! Send up to {} items per message.",
                groceries::MAX_ITEMS_PER_MESSAGE
            ),
            (Language::Fr, Refusal::TooManyItems) => format!(
                "Ça fait beaucoup d'un coup ! Envoie {} articles max par message.",
                groceries::MAX_ITEMS_PER_MESSAGE
            ),
        }
    }
}

/// "7", "7, 9", at most five numbers: "1, 2, 3, 4, 5, ..."
fn join_numbers(ns: &[usize]) -> String {
    let mut out = ns
        .iter()
        .take(5)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ns.len() > 5 {
        out.push_str(", ...");
    }
    out
}

/// Ends a sentence with a full stop unless it already ends with punctuation.
fn stop(text: &str) -> String {
    if text.ends_with(['.', '!', '?']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// Shortens `text` to `max` characters, ending in "..." when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{}...", kept.trim_end())
}

/// Cuts a whole reply to `max` characters, preferring a line or word boundary.
fn cap(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let kept: String = text.chars().take(max.saturating_sub(3)).collect();
    let cut = kept
        .rfind(['\n', ' '])
        .filter(|&i| i > kept.len() / 2)
        .unwrap_or(kept.len());
    format!("{}...", kept[..cut].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::tasks::Numbered;
    use chrono::Utc;

    fn tasks_(titles: &[&str]) -> Vec<String> {
        titles.iter().map(|t| (*t).to_owned()).collect()
    }

    fn add_tasks(titles: &[&str]) -> Intent {
        Intent::AddTasks(tasks_(titles))
    }

    fn add_groceries(items: &[&str]) -> Intent {
        Intent::AddGroceries(tasks_(items))
    }

    fn done_at(ps: &[usize]) -> Intent {
        Intent::CompleteTask(Some(TaskTarget::Positions(ps.to_vec())))
    }

    fn done_title(t: &str) -> Intent {
        Intent::CompleteTask(Some(TaskTarget::Title(t.to_owned())))
    }

    fn got(names: &[&str]) -> Intent {
        Intent::CheckOffGroceries(
            names
                .iter()
                .map(|n| ItemTarget::Name((*n).to_owned()))
                .collect(),
        )
    }

    fn check_table(cases: &[(&str, Intent)]) {
        let mut failures = Vec::new();
        for (text, want) in cases {
            let got = parse(text);
            if got != *want {
                failures.push(format!("{text:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn adding_tasks_is_understood_in_english_and_french() {
        check_table(&[
            ("add task call mom", add_tasks(&["call mom"])),
            ("Add a task: Call Mom!", add_tasks(&["Call Mom"])),
            ("add a task to call mom", add_tasks(&["call mom"])),
            ("todo: pay rent", add_tasks(&["pay rent"])),
            ("TODO pay rent.", add_tasks(&["pay rent"])),
            ("to-do: pay rent", add_tasks(&["pay rent"])),
            ("task buy stamps", add_tasks(&["buy stamps"])),
            ("new task: book dentist", add_tasks(&["book dentist"])),
            ("remind me to call the bank", add_tasks(&["call the bank"])),
            (
                "Remind me to water plants please",
                add_tasks(&["water plants"]),
            ),
            ("add call mom", add_tasks(&["call mom"])),
            ("add call mom to my list", add_tasks(&["call mom"])),
            ("add call mom to my to-do list", add_tasks(&["call mom"])),
            (
                "tasks: call mom, pay rent; book flights",
                add_tasks(&["call mom", "pay rent", "book flights"]),
            ),
            (
                "task email Sam, Jo and Ana",
                add_tasks(&["email Sam, Jo and Ana"]),
            ),
            ("add task", Intent::AddTasks(vec![])),
            ("ajoute tâche appeler maman", add_tasks(&["appeler maman"])),
            (
                "ajouter une tâche : payer le loyer",
                add_tasks(&["payer le loyer"]),
            ),
            (
                "Ajoute une tache appeler maman",
                add_tasks(&["appeler maman"]),
            ),
            ("tâche: appeler maman", add_tasks(&["appeler maman"])),
            ("TÂCHE : Appeler Maman", add_tasks(&["Appeler Maman"])),
            (
                "à faire: sortir les poubelles",
                add_tasks(&["sortir les poubelles"]),
            ),
            (
                "a faire sortir les poubelles",
                add_tasks(&["sortir les poubelles"]),
            ),
            (
                "nouvelle tâche réserver le resto",
                add_tasks(&["réserver le resto"]),
            ),
            (
                "rappelle-moi d'appeler maman",
                add_tasks(&["appeler maman"]),
            ),
            (
                "rappelle moi de payer le loyer stp",
                add_tasks(&["payer le loyer"]),
            ),
            ("hi, add task call mom", add_tasks(&["call mom"])),
            (
                "bonjour ! tâche appeler maman",
                add_tasks(&["appeler maman"]),
            ),
            ("please add task call mom", add_tasks(&["call mom"])),
        ]);
    }

    #[test]
    fn listing_tasks_is_understood_in_english_and_french() {
        check_table(&[
            ("tasks", Intent::ListTasks),
            ("Tasks?", Intent::ListTasks),
            ("list", Intent::ListTasks),
            ("my tasks", Intent::ListTasks),
            ("show my tasks", Intent::ListTasks),
            ("list tasks", Intent::ListTasks),
            ("what's on my list?", Intent::ListTasks),
            ("What\u{2019}s on my list", Intent::ListTasks),
            ("whats on my list", Intent::ListTasks),
            ("todo", Intent::ListTasks),
            ("to-do list", Intent::ListTasks),
            ("what's next", Intent::ListTasks),
            ("mes tâches", Intent::ListTasks),
            ("MES TACHES", Intent::ListTasks),
            ("tâches", Intent::ListTasks),
            ("liste", Intent::ListTasks),
            ("ma liste", Intent::ListTasks),
            ("montre-moi mes tâches", Intent::ListTasks),
            ("qu'est-ce que j'ai à faire ?", Intent::ListTasks),
            ("tasks please", Intent::ListTasks),
        ]);
    }

    #[test]
    fn completing_tasks_is_understood_by_number_and_by_title() {
        check_table(&[
            ("done 2", done_at(&[2])),
            ("Done #2!", done_at(&[2])),
            ("did 2", done_at(&[2])),
            ("complete 1", done_at(&[1])),
            ("done 1, 3 and 4", done_at(&[1, 3, 4])),
            ("done task 2", done_at(&[2])),
            ("finished call mom", done_title("call mom")),
            ("I finished Call Mom!", done_title("Call Mom")),
            ("done with the report", done_title("the report")),
            ("2 done", done_at(&[2])),
            ("mark 3 as done", done_at(&[3])),
            ("call mom is done", done_title("call mom")),
            ("fait 2", done_at(&[2])),
            ("terminé 1", done_at(&[1])),
            ("Fini appeler maman", done_title("appeler maman")),
            ("j'ai fini appeler maman", done_title("appeler maman")),
            ("fait 1 et 2", done_at(&[1, 2])),
            ("n°2 fait", done_at(&[2])),
            ("appeler maman c'est fait", done_title("appeler maman")),
            ("done", Intent::CompleteTask(None)),
            ("Done!", Intent::CompleteTask(None)),
            ("c'est fait", Intent::CompleteTask(None)),
            ("fait", Intent::CompleteTask(None)),
        ]);
    }

    #[test]
    fn adding_groceries_splits_items_and_drops_articles() {
        check_table(&[
            (
                "add milk, eggs and bread to groceries",
                add_groceries(&["milk", "eggs", "bread"]),
            ),
            (
                "add some milk to my shopping list",
                add_groceries(&["milk"]),
            ),
            ("groceries: milk, eggs", add_groceries(&["milk", "eggs"])),
            ("buy milk and eggs", add_groceries(&["milk", "eggs"])),
            (
                "buy the milk & 2 avocados",
                add_groceries(&["milk", "2 avocados"]),
            ),
            ("grocery milk", add_groceries(&["milk"])),
            ("shopping list: oat milk", add_groceries(&["oat milk"])),
            ("need to buy batteries", add_groceries(&["batteries"])),
            (
                "courses: lait, œufs et pain",
                add_groceries(&["lait", "œufs", "pain"]),
            ),
            ("ajoute du lait aux courses", add_groceries(&["lait"])),
            (
                "ajoute de la farine et des œufs à la liste de courses",
                add_groceries(&["farine", "œufs"]),
            ),
            ("ajoute du beurre", add_groceries(&["beurre"])),
            ("acheter du pain", add_groceries(&["pain"])),
            ("achète de l'huile", add_groceries(&["huile"])),
            (
                "Acheter: le lait, les pommes",
                add_groceries(&["lait", "pommes"]),
            ),
            ("il faut acheter du café", add_groceries(&["café"])),
            (
                "add to groceries: rice, beans",
                add_groceries(&["rice", "beans"]),
            ),
            ("buy", Intent::AddGroceries(vec![])),
        ]);
    }

    #[test]
    fn listing_checking_off_and_clearing_groceries_are_understood() {
        check_table(&[
            ("groceries", Intent::ListGroceries),
            ("grocery list", Intent::ListGroceries),
            ("shopping list", Intent::ListGroceries),
            ("show my grocery list", Intent::ListGroceries),
            ("courses", Intent::ListGroceries),
            ("liste de courses", Intent::ListGroceries),
            ("la liste des courses ?", Intent::ListGroceries),
            ("got milk", got(&["milk"])),
            ("Got the milk and eggs", got(&["milk", "eggs"])),
            ("bought milk", got(&["milk"])),
            ("picked up bread", got(&["bread"])),
            ("check off eggs", got(&["eggs"])),
            ("j'ai acheté le lait", got(&["lait"])),
            ("J\u{2019}ai achete le lait", got(&["lait"])),
            ("pris lait", got(&["lait"])),
            ("acheté le pain", got(&["pain"])),
            (
                "got 2",
                Intent::CheckOffGroceries(vec![ItemTarget::Position(2)]),
            ),
            (
                "pris 1 et 3",
                Intent::CheckOffGroceries(vec![ItemTarget::Position(1), ItemTarget::Position(3)]),
            ),
            ("clear groceries", Intent::ClearGroceries),
            ("clear the list", Intent::ClearGroceries),
            ("Clear my grocery list.", Intent::ClearGroceries),
            ("empty the shopping list", Intent::ClearGroceries),
            ("vide les courses", Intent::ClearGroceries),
            ("efface la liste de courses", Intent::ClearGroceries),
            ("vider la liste", Intent::ClearGroceries),
        ]);
    }

    #[test]
    fn help_greetings_thanks_and_nonsense_are_recognised() {
        check_table(&[
            ("help", Intent::Help),
            ("HELP", Intent::Help),
            ("?", Intent::Help),
            ("??", Intent::Help),
            ("aide", Intent::Help),
            ("what can you do?", Intent::Help),
            ("que sais-tu faire ?", Intent::Help),
            ("Que sais tu faire", Intent::Help),
            ("hi", Intent::Greeting),
            ("Hello!", Intent::Greeting),
            ("hey there", Intent::Greeting),
            ("bonjour", Intent::Greeting),
            ("Salut !", Intent::Greeting),
            ("hi, how are you?", Intent::Greeting),
            ("thanks!", Intent::Thanks),
            ("merci", Intent::Thanks),
            ("ok", Intent::Thanks),
            ("", Intent::Unknown),
            ("   ", Intent::Unknown),
            ("...", Intent::Unknown),
            ("the weather is nice", Intent::Unknown),
            ("blorp", Intent::Unknown),
        ]);
    }

    // --- rendering ---

    fn task(id: i64, title: &str) -> Task {
        Task {
            id,
            title: title.to_owned(),
            done: false,
            created_at: Utc::now(),
            completed_at: None,
        }
    }

    fn item(id: i64, name: &str) -> GroceryItem {
        GroceryItem {
            id,
            name: name.to_owned(),
            checked: false,
            created_at: Utc::now(),
        }
    }

    fn many_tasks(n: usize, len: usize) -> Vec<Task> {
        (0..n)
            .map(|i| task(i as i64, &format!("{i} {}", "é".repeat(len))))
            .collect()
    }

    fn many_items(n: usize, len: usize) -> Vec<GroceryItem> {
        (0..n)
            .map(|i| item(i as i64, &format!("{i} {}", "x".repeat(len))))
            .collect()
    }

    /// Every outcome shape, small and worst-case long.
    fn outcomes() -> Vec<Outcome> {
        let long = many_tasks(40, 200);
        let long_items = many_items(30, 100);
        vec![
            Outcome::TasksAdded(Added {
                added: vec![task(1, "call mom")],
                open: vec![task(0, "pay rent"), task(1, "call mom")],
            }),
            Outcome::TasksAdded(Added {
                added: vec![task(1, "call mom")],
                open: vec![task(1, "call mom")],
            }),
            Outcome::TasksAdded(Added {
                added: long.clone(),
                open: long.clone(),
            }),
            Outcome::TaskList(vec![]),
            Outcome::TaskList(long.clone()),
            Outcome::AskWhichTask(long.clone()),
            Outcome::AskWhichTask(vec![]),
            Outcome::TasksCompleted(Completion::Done {
                completed: long.clone(),
                missing: (1..40).collect(),
                remaining: long.clone(),
            }),
            Outcome::TasksCompleted(Completion::Done {
                completed: vec![task(1, "call mom")],
                missing: vec![],
                remaining: vec![],
            }),
            Outcome::TasksCompleted(Completion::NoSuchPosition {
                positions: vec![9],
                open: long.clone(),
            }),
            Outcome::TasksCompleted(Completion::NoMatch { open: long.clone() }),
            Outcome::TasksCompleted(Completion::NoMatch { open: vec![] }),
            Outcome::TasksCompleted(Completion::Ambiguous {
                candidates: long
                    .iter()
                    .enumerate()
                    .map(|(i, t)| Numbered {
                        position: i + 1,
                        task: t.clone(),
                    })
                    .collect(),
            }),
            Outcome::GroceriesAdded(AddedItems {
                added: long_items.clone(),
                already_listed: vec!["y".repeat(100); 30],
                total: 60,
            }),
            Outcome::GroceryList(vec![]),
            Outcome::GroceryList(long_items.clone()),
            Outcome::GroceriesChecked(CheckOff {
                checked: long_items.clone(),
                not_found: vec![ItemTarget::Name("z".repeat(100)), ItemTarget::Position(99)],
                ambiguous: vec![groceries::AmbiguousName {
                    name: "milk".repeat(25),
                    candidates: long_items.iter().cloned().enumerate().collect(),
                }],
                remaining: long_items.clone(),
            }),
            Outcome::GroceriesChecked(CheckOff {
                checked: vec![],
                not_found: vec![ItemTarget::Name("milk".into())],
                ambiguous: vec![],
                remaining: long_items.clone(),
            }),
            Outcome::GroceriesCleared(0),
            Outcome::GroceriesCleared(12),
            Outcome::Greeting {
                name: "Bartholomew-Maximilian".into(),
                open: long.clone(),
            },
            Outcome::Greeting {
                name: String::new(),
                open: vec![],
            },
            Outcome::Help,
            Outcome::Thanks,
            Outcome::Fallback,
            Outcome::Refused(Refusal::NoTaskTitle),
            Outcome::Refused(Refusal::TaskTooLong),
            Outcome::Refused(Refusal::TooManyTasks),
            Outcome::Refused(Refusal::NoGroceryItem),
            Outcome::Refused(Refusal::ItemTooLong),
            Outcome::Refused(Refusal::TooManyItems),
        ]
    }

    fn is_gsm7(c: char) -> bool {
        const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                             ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
        BASIC.contains(c)
    }

    #[test]
    fn every_sms_reply_fits_in_320_characters_in_both_languages() {
        for outcome in outcomes() {
            for lang in [Language::En, Language::Fr] {
                let text = render(&outcome, lang, Channel::Sms);
                let n = text.chars().count();
                assert!(
                    n <= SMS_MAX_CHARS,
                    "{n} chars for {outcome:?} in {lang:?}:\n{text}"
                );
                assert!(!text.trim().is_empty());
            }
        }
    }

    #[test]
    fn english_replies_use_only_gsm7_characters() {
        for outcome in outcomes() {
            let text = render(&outcome, Language::En, Channel::Sms);
            let odd: Vec<char> = text.chars().filter(|c| !is_gsm7(*c) && *c != 'é').collect();
            assert!(odd.is_empty(), "{odd:?} in {text:?}");
        }
    }

    #[test]
    fn sms_lists_show_five_items_then_how_many_more() {
        let open: Vec<Task> = (1..=8).map(|i| task(i, &format!("task {i}"))).collect();
        let en = render(&Outcome::TaskList(open.clone()), Language::En, Channel::Sms);
        assert!(en.contains("1. task 1\n2. task 2"), "{en}");
        assert!(en.contains("5. task 5\n+3 more"), "{en}");
        assert!(!en.contains("task 6"), "{en}");
        let fr = render(&Outcome::TaskList(open), Language::Fr, Channel::Sms);
        assert!(fr.contains("+3 autres"), "{fr}");
    }

    #[test]
    fn adding_a_task_confirms_it_and_names_what_is_next_in_both_languages() {
        let outcome = Outcome::TasksAdded(Added {
            added: vec![task(3, "call mom")],
            open: vec![
                task(1, "pay rent"),
                task(2, "book dentist"),
                task(3, "call mom"),
            ],
        });
        assert_eq!(
            render(&outcome, Language::En, Channel::Sms),
            "Added: call mom. You have 3 open tasks - next up: pay rent."
        );
        let outcome = Outcome::TasksAdded(Added {
            added: vec![task(3, "appeler maman")],
            open: vec![
                task(1, "payer le loyer"),
                task(2, "dentiste"),
                task(3, "appeler maman"),
            ],
        });
        assert_eq!(
            render(&outcome, Language::Fr, Channel::Sms),
            "Ajouté : appeler maman. 3 tâches en cours — prochaine : payer le loyer."
        );
    }

    #[test]
    fn completing_a_task_celebrates_and_names_the_next_one() {
        let outcome = Outcome::TasksCompleted(Completion::Done {
            completed: vec![task(4, "call mom")],
            missing: vec![],
            remaining: vec![task(5, "pay rent")],
        });
        let en = render(&outcome, Language::En, Channel::Sms);
        assert!(en.starts_with("Done: call mom. "), "{en}");
        assert!(en.ends_with("Next up: pay rent."), "{en}");
        let fr = render(&outcome, Language::Fr, Channel::Sms);
        assert!(fr.starts_with("Fait : call mom. "), "{fr}");
        assert!(fr.ends_with("Prochaine : pay rent."), "{fr}");
    }

    #[test]
    fn empty_lists_are_answered_with_encouragement_and_a_next_step() {
        let en = render(&Outcome::TaskList(vec![]), Language::En, Channel::Sms);
        assert!(
            en.contains("clean slate") && en.contains("task call mom"),
            "{en}"
        );
        let fr = render(&Outcome::GroceryList(vec![]), Language::Fr, Channel::Sms);
        assert!(fr.contains("vide") && fr.contains("acheter"), "{fr}");
    }

    #[test]
    fn an_ambiguous_title_lists_the_candidates_under_their_list_numbers() {
        let outcome = Outcome::TasksCompleted(Completion::Ambiguous {
            candidates: vec![
                Numbered {
                    position: 1,
                    task: task(1, "call mom"),
                },
                Numbered {
                    position: 3,
                    task: task(3, "call dentist"),
                },
            ],
        });
        assert_eq!(
            render(&outcome, Language::En, Channel::Sms),
            "Which one?\n1. call mom\n3. call dentist\nReply: done 1"
        );
    }

    #[test]
    fn the_web_channel_shows_longer_titles_than_sms() {
        let title = "a".repeat(80);
        let outcome = Outcome::TaskList(vec![task(1, &title)]);
        assert!(!render(&outcome, Language::En, Channel::Sms).contains(&title));
        assert!(render(&outcome, Language::En, Channel::Web).contains(&title));
    }

    #[test]
    fn help_and_fallback_texts_fit_one_reply_in_both_languages() {
        for lang in [Language::En, Language::Fr] {
            assert!(help_text(lang).chars().count() <= SMS_MAX_CHARS);
            assert!(fallback_text(lang).chars().count() <= SMS_MAX_CHARS);
        }
        assert!(help_text(Language::En).chars().all(is_gsm7));
        assert!(fallback_text(Language::En).chars().all(is_gsm7));
    }

    // --- end to end, over a real store ---

    mod engine {
        use super::super::*;
        use crate::store::{NewUser, Store, connect};
        use chrono::Utc;

        struct Fixture {
            store: Store,
            en: User,
            fr: User,
        }

        async fn fixture() -> Fixture {
            let store = connect("sqlite::memory:", crate::store::Sealer::generate())
                .await
                .expect("store");
            let en = store
                .create_user(&NewUser {
                    display_name: "Sam Doe".into(),
                    phone: "+15550000001".into(),
                    number: "+15559990001".into(),
                    language: Language::En,
                    time_zone: "America/New_York".into(),
                })
                .await
                .expect("en user");
            let fr = store
                .create_user(&NewUser {
                    display_name: "Camille".into(),
                    phone: "+33600000002".into(),
                    number: "+15559990002".into(),
                    language: Language::Fr,
                    time_zone: "Europe/Paris".into(),
                })
                .await
                .expect("fr user");
            Fixture { store, en, fr }
        }

        async fn say(store: &Store, user: &User, text: &str) -> String {
            let reply = OfflineRules
                .respond(
                    store,
                    TurnInput {
                        user,
                        text,
                        channel: Channel::Sms,
                        now: Utc::now(),
                        recent: &[],
                        memories: &[],
                    },
                )
                .await
                .expect("reply");
            assert!(reply.chars().count() <= SMS_MAX_CHARS, "{reply}");
            reply
        }

        async fn open_titles(store: &Store, user: &User) -> Vec<String> {
            store
                .open_tasks(user.id)
                .await
                .expect("open tasks")
                .into_iter()
                .map(|t| t.title)
                .collect()
        }

        async fn grocery_names(store: &Store, user: &User) -> Vec<String> {
            store
                .groceries(user.id)
                .await
                .expect("groceries")
                .into_iter()
                .map(|i| i.name)
                .collect()
        }

        #[tokio::test]
        async fn an_english_user_adds_lists_and_completes_tasks_by_number_and_title() {
            let Fixture { store, en, .. } = fixture().await;
            let r = say(&store, &en, "add task pay rent").await;
            assert_eq!(
                r,
                "Added: pay rent. It's your only task - start with 2 minutes?"
            );
            say(&store, &en, "todo: call mom").await;
            let r = say(&store, &en, "remind me to book dentist").await;
            assert_eq!(
                r,
                "Added: book dentist. You have 3 open tasks - next up: pay rent."
            );
            let r = say(&store, &en, "tasks").await;
            assert!(
                r.contains("1. pay rent\n2. call mom\n3. book dentist"),
                "{r}"
            );
            let r = say(&store, &en, "done 2").await;
            assert!(r.starts_with("Done: call mom."), "{r}");
            assert!(r.ends_with("Next up: pay rent."), "{r}");
            let r = say(&store, &en, "finished Book Dentist!").await;
            assert!(r.starts_with("Done: book dentist."), "{r}");
            assert_eq!(open_titles(&store, &en).await, ["pay rent"]);
            let r = say(&store, &en, "done 7").await;
            assert!(r.starts_with("There's no task 7."), "{r}");
            let r = say(&store, &en, "done 1").await;
            assert!(r.contains("last task"), "{r}");
            let r = say(&store, &en, "tasks").await;
            assert!(r.contains("clean slate"), "{r}");
        }

        #[tokio::test]
        async fn an_ambiguous_title_asks_which_and_changes_nothing() {
            let Fixture { store, en, .. } = fixture().await;
            say(&store, &en, "task call mom").await;
            say(&store, &en, "task pay rent").await;
            say(&store, &en, "task call dentist").await;
            let r = say(&store, &en, "done call").await;
            assert_eq!(r, "Which one?\n1. call mom\n3. call dentist\nReply: done 1");
            assert_eq!(open_titles(&store, &en).await.len(), 3);
            let r = say(&store, &en, "done with taxes").await;
            assert!(r.starts_with("I couldn't find that"), "{r}");
            let r = say(&store, &en, "done").await;
            assert!(r.starts_with("Which one did you finish?"), "{r}");
            assert_eq!(open_titles(&store, &en).await.len(), 3);
        }

        #[tokio::test]
        async fn a_french_user_gets_french_replies_and_may_write_english() {
            let Fixture { store, fr, .. } = fixture().await;
            let r = say(&store, &fr, "ajoute une tâche payer le loyer").await;
            assert_eq!(
                r,
                "Ajouté : payer le loyer. C'est ta seule tâche — on s'y met 2 minutes ?"
            );
            let r = say(&store, &fr, "task appeler maman").await;
            assert_eq!(
                r,
                "Ajouté : appeler maman. 2 tâches en cours — prochaine : payer le loyer."
            );
            let r = say(&store, &fr, "mes tâches").await;
            assert!(r.starts_with("Tes tâches (2) :\n1. payer le loyer"), "{r}");
            let r = say(&store, &fr, "fini APPELER maman").await;
            assert!(r.starts_with("Fait : appeler maman."), "{r}");
            let r = say(&store, &fr, "courses : lait, œufs et pain").await;
            assert_eq!(
                r,
                "Ajouté aux courses : lait, œufs, pain. 3 articles sur ta liste."
            );
            let r = say(&store, &fr, "j'ai acheté les oeufs").await;
            assert_eq!(r, "Coché : œufs. Reste 2 : lait, pain.");
            let r = say(&store, &fr, "aide").await;
            assert_eq!(r, help_text(Language::Fr));
            let r = say(&store, &fr, "blorp").await;
            assert_eq!(r, fallback_text(Language::Fr));
        }

        #[tokio::test]
        async fn groceries_are_added_listed_checked_off_and_cleared() {
            let Fixture { store, en, .. } = fixture().await;
            let r = say(&store, &en, "add milk, eggs and bread to groceries").await;
            assert_eq!(
                r,
                "Added to groceries: milk, eggs, bread. 3 items on your list."
            );
            let r = say(&store, &en, "buy Milk and oat milk").await;
            assert_eq!(
                r,
                "Added to groceries: oat milk. Already on the list: Milk. 4 items on your list."
            );
            let r = say(&store, &en, "grocery list").await;
            assert!(r.contains("1. milk\n2. eggs\n3. bread\n4. oat milk"), "{r}");
            let r = say(&store, &en, "got egg").await;
            assert_eq!(r, "Checked off: eggs. 3 left: milk, bread, oat milk.");
            let r = say(&store, &en, "got 2").await;
            assert_eq!(r, "Checked off: bread. 2 left: milk, oat milk.");
            let r = say(&store, &en, "bought cheese").await;
            assert!(r.starts_with("Not on your list: cheese. Your list:"), "{r}");
            assert_eq!(grocery_names(&store, &en).await, ["milk", "oat milk"]);
            let r = say(&store, &en, "clear the list").await;
            assert_eq!(r, "Cleared your grocery list (2 items). Fresh start!");
            let r = say(&store, &en, "groceries").await;
            assert!(r.starts_with("Your grocery list is empty."), "{r}");
        }

        #[tokio::test]
        async fn limits_are_refused_kindly_and_nothing_is_saved() {
            let Fixture { store, en, .. } = fixture().await;
            let long = format!("task {}", "a".repeat(201));
            let r = say(&store, &en, &long).await;
            assert!(r.contains("max 200 characters"), "{r}");
            let many = format!(
                "groceries: {}",
                (0..31)
                    .map(|i| format!("item{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let r = say(&store, &en, &many).await;
            assert!(r.contains("up to 30 items"), "{r}");
            let r = say(&store, &en, "add task").await;
            assert_eq!(r, "What's the task? Try: task call mom");
            assert!(open_titles(&store, &en).await.is_empty());
            assert!(grocery_names(&store, &en).await.is_empty());
        }

        #[tokio::test]
        async fn a_users_turn_never_sees_or_changes_another_users_lists() {
            let Fixture { store, en, fr } = fixture().await;
            say(&store, &en, "task secret plan").await;
            say(&store, &en, "buy milk").await;
            let r = say(&store, &fr, "tasks").await;
            assert!(!r.contains("secret"), "{r}");
            let r = say(&store, &fr, "done 1").await;
            assert!(r.starts_with("Aucune tâche"), "{r}");
            let r = say(&store, &fr, "finished secret plan").await;
            assert!(r.starts_with("Aucune tâche"), "{r}");
            let r = say(&store, &fr, "got milk").await;
            assert!(!r.contains("Coché"), "{r}");
            say(&store, &fr, "clear groceries").await;
            assert_eq!(open_titles(&store, &en).await, ["secret plan"]);
            assert_eq!(grocery_names(&store, &en).await, ["milk"]);
        }

        #[tokio::test]
        async fn a_greeting_names_the_user_and_the_next_task() {
            let Fixture { store, en, .. } = fixture().await;
            let r = say(&store, &en, "hi").await;
            assert_eq!(
                r,
                "Hi Sam! Your list is clear. Add a task anytime: task call mom"
            );
            say(&store, &en, "task pay rent").await;
            let r = say(&store, &en, "Hello!").await;
            assert_eq!(
                r,
                "Hi Sam! You have 1 open task - next up: pay rent. Reply 'tasks' to see them."
            );
        }
    }
}
