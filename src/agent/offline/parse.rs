//! Step 1 of a turn: what a message asks for, read without a store or a clock.

use super::Intent;
use crate::tools::groceries::ItemTarget;
use crate::tools::tasks::{TaskTarget, fold};

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

fn phrase_words(phrase: &str) -> Vec<String> {
    tokenize(phrase).into_iter().map(|t| t.norm).collect()
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
