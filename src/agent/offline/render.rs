//! Step 3 of a turn: an outcome worded in the user's language, sized for the channel.

use super::{Clock, Outcome, Refusal};
use crate::store::{Channel, Due, Goal, GroceryItem, Language, Note, Priority, Task};
use crate::tools::expenses::{self, Period, Totals};
use crate::tools::goals::{LinkMiss, Linked, Progress};
use crate::tools::groceries::{self, AddedItems, CheckOff, ItemTarget};
use crate::tools::reminders::Scheduled;
use crate::tools::tasks::{
    self, Added, BrokenDown, Completion, ListFilter, Listing, Pick, Reopen, TaskStats,
};
use crate::tools::when;

/// The hard cap on an SMS reply, in characters.
pub const SMS_MAX_CHARS: usize = 320;
/// How many list items an SMS reply shows before "+N more".
pub const SMS_MAX_ITEMS: usize = 5;

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// The help text (also the answer to the SMS HELP / AIDE keyword).
pub fn help_text(lang: Language) -> &'static str {
    match lang {
        Language::En => {
            "Nudge keeps tasks, groceries, goals, notes, expenses, reminders.\n\
             Tasks: task call mom by friday / tasks / done 1 / overdue / stats\n\
             Groceries: buy milk, eggs / got milk\n\
             Reminders: remind me to stretch in 20 min\n\
             Also: goal: run 10k / note: ... / spent 12.50 on lunch\n\
             Text STOP to opt out."
        }
        Language::Fr => {
            "Nudge garde tâches, courses, objectifs, notes, dépenses, rappels.\n\
             Tâches : tâche appeler maman pour vendredi / tâches / fait 1\n\
             Courses : acheter lait / pris lait\n\
             Rappels : rappelle-moi dans 20 min de boire\n\
             Aussi : objectif : courir / note : ... / dépensé 12 € resto\n\
             STOP pour arrêter."
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
        Outcome::TasksAddedDue(added, clock) => r.tasks_added_due(added, *clock),
        Outcome::TaskListing(listing, clock) => r.listing(listing, *clock),
        Outcome::TaskStats(stats) => r.stats(stats),
        Outcome::Rescheduled(pick, clock) => r.rescheduled(pick, *clock),
        Outcome::Prioritized(pick) => r.prioritized(pick),
        Outcome::BrokenDown(pick) => r.broken_down(pick),
        Outcome::Reopened(reopen) => r.reopened(reopen),
        Outcome::GoalAdded(goal, number) => r.goal_added(goal, *number),
        Outcome::GoalList(goals) => r.goal_list(goals),
        Outcome::Linked(linked) => r.linked(linked),
        Outcome::Progress(pick) => r.progress(pick),
        Outcome::ExpenseLogged(e) => r.expense_logged(e),
        Outcome::ExpenseTotals(t) => r.expense_totals(t),
        Outcome::NoteSaved(_) => r
            .pick(
                "Saved your note. Find it later: search notes <word>",
                "Note enregistrée. Pour la retrouver : cherche note <mot>",
            )
            .to_owned(),
        Outcome::NoteList(notes) => r.note_list(notes, false),
        Outcome::NotesFound(notes) => r.note_list(notes, true),
        Outcome::NoteDeleted(pick) => r.note_deleted(pick),
        Outcome::ReminderSet(s, clock) => r.reminder_set(s, *clock),
        Outcome::ReminderList(list, clock) => r.reminder_list(list, *clock),
        Outcome::ReminderCancelled(pick, _) => r.reminder_cancelled(pick),
        Outcome::MorningDigest(at) => r.morning_digest(*at),
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
            (Language::En, Refusal::PastTime) => {
                "That time has already passed. Try a later one, like: tomorrow at 9".to_owned()
            }
            (Language::Fr, Refusal::PastTime) => {
                "Cette heure est déjà passée. Essaie plus tard, comme : demain à 9h".to_owned()
            }
            (Language::En, Refusal::BadTime) => {
                "I couldn't read that time. Try: in 20 minutes / tomorrow at 9 / friday".to_owned()
            }
            (Language::Fr, Refusal::BadTime) => {
                "Je n'ai pas compris l'heure. Essaie : dans 20 minutes / demain à 9h / vendredi"
                    .to_owned()
            }
            (Language::En, Refusal::RepeatingDue) => {
                "A task can't repeat, but a reminder can: remind me every monday to ...".to_owned()
            }
            (Language::Fr, Refusal::RepeatingDue) => {
                "Une tâche ne se répète pas, un rappel oui : rappelle-moi tous les lundis de ..."
                    .to_owned()
            }
            (Language::En, Refusal::NoText) => {
                "I need a few words for that - add them after the command.".to_owned()
            }
            (Language::Fr, Refusal::NoText) => {
                "Il me manque le texte : ajoute quelques mots après la commande.".to_owned()
            }
            (Language::En, Refusal::TextTooLong) => {
                "That's a bit long. Try a shorter version.".to_owned()
            }
            (Language::Fr, Refusal::TextTooLong) => "Un peu long. Essaie plus court.".to_owned(),
            (Language::En, Refusal::BadAmount) => {
                "I couldn't read that amount. Try: spent 12.50 on lunch".to_owned()
            }
            (Language::Fr, Refusal::BadAmount) => {
                "Je n'ai pas compris le montant. Essaie : dépensé 12,50 € resto".to_owned()
            }
            (Language::En, Refusal::UnknownCurrency) => {
                "I don't know that currency. Use a code like EUR or USD.".to_owned()
            }
            (Language::Fr, Refusal::UnknownCurrency) => {
                "Je ne connais pas cette devise. Utilise un code comme EUR ou USD.".to_owned()
            }
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

impl Render {
    /// When a task is due, as a reply says it: "Fri 14 Mar", "tomorrow 5pm".
    fn due(&self, due: Due, clock: Clock) -> String {
        let today = clock.now.with_timezone(&clock.tz).date_naive();
        if due.all_day {
            when::day_text(
                due.at.with_timezone(&clock.tz).date_naive(),
                today,
                self.lang,
            )
        } else {
            when::moment_text(due.at, clock.now, clock.tz, self.lang)
        }
    }

    fn tasks_added_due(&self, added: &Added, clock: Clock) -> String {
        let due = added.added.first().and_then(|t| t.due);
        let head = match (self.lang, added.added.as_slice(), due) {
            (Language::En, [one], Some(d)) => {
                format!("Added: {}, due {}.", self.t(&one.title), self.due(d, clock))
            }
            (Language::Fr, [one], Some(d)) => {
                format!(
                    "Ajouté : {}, pour {}.",
                    self.t(&one.title),
                    self.due(d, clock)
                )
            }
            _ => return self.tasks_added(added),
        };
        format!("{head} {}", self.next_up(&added.open))
    }

    fn listing(&self, listing: &Listing, clock: Clock) -> String {
        if listing.open_count == 0 {
            return self.no_tasks();
        }
        let n = listing.tasks.len();
        if n == 0 {
            return match (self.lang, listing.filter) {
                (Language::En, ListFilter::Overdue) => {
                    "Nothing overdue - nice. Reply 'tasks' to see your list.".to_owned()
                }
                (Language::Fr, ListFilter::Overdue) => {
                    "Rien en retard, bien joué. Écris « tâches » pour voir ta liste.".to_owned()
                }
                (Language::En, ListFilter::HighPriority) => {
                    "No urgent tasks. Reply 'tasks' to see your list.".to_owned()
                }
                (Language::Fr, ListFilter::HighPriority) => {
                    "Aucune tâche urgente. Écris « tâches » pour voir ta liste.".to_owned()
                }
                (Language::En, _) => "Nothing due then. Reply 'tasks' to see your list.".to_owned(),
                (Language::Fr, _) => {
                    "Rien de prévu pour cette période. Écris « tâches » pour voir ta liste."
                        .to_owned()
                }
            };
        }
        let head = match (self.lang, listing.filter) {
            (Language::En, ListFilter::Open) => format!("Your tasks ({n}):"),
            (Language::Fr, ListFilter::Open) => format!("Tes tâches ({n}) :"),
            (Language::En, ListFilter::Overdue) => format!("Overdue ({n}) - no stress, pick one:"),
            (Language::Fr, ListFilter::Overdue) => {
                format!("En retard ({n}), pas de stress, choisis-en une :")
            }
            (Language::En, ListFilter::DueToday) => format!("Due today ({n}):"),
            (Language::Fr, ListFilter::DueToday) => format!("Pour aujourd'hui ({n}) :"),
            (Language::En, ListFilter::DueThisWeek) => format!("Due this week ({n}):"),
            (Language::Fr, ListFilter::DueThisWeek) => format!("Cette semaine ({n}) :"),
            (Language::En, ListFilter::HighPriority) => format!("Urgent ({n}):"),
            (Language::Fr, ListFilter::HighPriority) => format!("Urgentes ({n}) :"),
        };
        let any_due = listing.tasks.iter().any(|t| t.task.due.is_some());
        let width = if any_due { 28 } else { self.room.title };
        let lines: Vec<String> = listing
            .tasks
            .iter()
            .map(|t| {
                let mut line = format!("{}. {}", t.position, clip(&t.task.title, width));
                if t.task.priority == Priority::High {
                    line.push_str(" (!)");
                }
                if let Some(d) = t.task.due {
                    line.push_str(&match self.lang {
                        Language::En => format!(" - {}", self.due(d, clock)),
                        Language::Fr => format!(" - {}", self.due(d, clock)),
                    });
                }
                line
            })
            .collect();
        let foot = match (self.lang, listing.needs_breakdown.first()) {
            (Language::En, Some(t)) => format!(
                "Task {p} keeps slipping - that happens. Smaller steps? Reply: steps {p}",
                p = t.position
            ),
            (Language::Fr, Some(t)) => format!(
                "La tâche {p} glisse souvent, ça arrive. Plus petit ? Réponds : étapes {p}",
                p = t.position
            ),
            (Language::En, None) => {
                format!("Done one? Reply: done {}", listing.tasks[0].position)
            }
            (Language::Fr, None) => {
                format!(
                    "Une de faite ? Réponds : fait {}",
                    listing.tasks[0].position
                )
            }
        };
        self.fit_list(&head, &lines, &foot)
    }

    fn stats(&self, s: &TaskStats) -> String {
        let overdue = match (self.lang, s.overdue) {
            (_, 0) => String::new(),
            (Language::En, k) => format!(", {k} overdue"),
            (Language::Fr, k) => format!(", {k} en retard"),
        };
        match self.lang {
            Language::En => {
                let cheer = if s.done_this_week == 0 {
                    "A fresh week - one small task is a great start."
                } else {
                    "Nice momentum!"
                };
                format!(
                    "This week: {} done ({} today). {} open{overdue}. {cheer} Reply 'tasks' to pick the next one.",
                    s.done_this_week, s.done_today, s.open
                )
            }
            Language::Fr => {
                let cheer = if s.done_this_week == 0 {
                    "Nouvelle semaine : une petite tâche suffit pour démarrer."
                } else {
                    "Beau rythme !"
                };
                format!(
                    "Cette semaine : {} faites ({} aujourd'hui). {} en cours{overdue}. {cheer} Écris « tâches » pour choisir la suivante.",
                    s.done_this_week, s.done_today, s.open
                )
            }
        }
    }

    /// The answer when a number or words named no single task.
    fn task_miss<T>(&self, pick: &Pick<T>) -> String {
        match pick {
            Pick::Ambiguous(candidates) => {
                let nums = join_numbers(&candidates.iter().map(|(p, _)| *p).collect::<Vec<_>>());
                match self.lang {
                    Language::En => {
                        format!("Several tasks match ({nums}). Use its number instead.")
                    }
                    Language::Fr => {
                        format!("Plusieurs tâches correspondent ({nums}). Utilise son numéro.")
                    }
                }
            }
            _ => self
                .pick(
                    "I couldn't find that task. Reply 'tasks' to see the numbers.",
                    "Je ne trouve pas cette tâche. Écris « tâches » pour voir les numéros.",
                )
                .to_owned(),
        }
    }

    fn rescheduled(&self, pick: &Pick<Task>, clock: Clock) -> String {
        let Pick::One(_, task) = pick else {
            return self.task_miss(pick);
        };
        match (self.lang, task.due) {
            (Language::En, Some(d)) => format!(
                "Moved: {}, now due {}. Plans change - that's fine.",
                self.t(&task.title),
                self.due(d, clock)
            ),
            (Language::Fr, Some(d)) => format!(
                "Déplacée : {}, pour {}. Les plans changent, c'est normal.",
                self.t(&task.title),
                self.due(d, clock)
            ),
            (Language::En, None) => format!("No due date for {} now.", self.t(&task.title)),
            (Language::Fr, None) => format!("Plus de date pour {}.", self.t(&task.title)),
        }
    }

    fn prioritized(&self, pick: &Pick<Task>) -> String {
        let Pick::One(_, task) = pick else {
            return self.task_miss(pick);
        };
        let title = self.t(&task.title);
        match (self.lang, task.priority) {
            (Language::En, Priority::High) => {
                format!("Marked urgent: {title}. Want to start it now?")
            }
            (Language::Fr, Priority::High) => format!("Urgente : {title}. On s'y met maintenant ?"),
            (Language::En, Priority::Low) => format!("Low priority now: {title}."),
            (Language::Fr, Priority::Low) => format!("Priorité basse : {title}."),
            (Language::En, Priority::Normal) => format!("Normal priority: {title}."),
            (Language::Fr, Priority::Normal) => format!("Priorité normale : {title}."),
        }
    }

    fn broken_down(&self, pick: &Pick<BrokenDown>) -> String {
        let Pick::One(_, b) = pick else {
            return self.task_miss(pick);
        };
        let steps = self.numbered(
            b.steps
                .iter()
                .enumerate()
                .map(|(i, t)| (i + 1, t.title.as_str())),
        );
        match self.lang {
            Language::En => format!(
                "Smaller steps for {}, added to your list:\n{steps}\nStart with the first - 2 minutes is enough.",
                self.t(&b.task.title)
            ),
            Language::Fr => format!(
                "Petites étapes pour {}, ajoutées à ta liste :\n{steps}\nCommence par la première, 2 minutes suffisent.",
                self.t(&b.task.title)
            ),
        }
    }

    fn reopened(&self, reopen: &Reopen) -> String {
        match (self.lang, reopen) {
            (Language::En, Reopen::Reopened(t)) => {
                format!("Back on your list: {}. No problem.", self.t(&t.title))
            }
            (Language::Fr, Reopen::Reopened(t)) => {
                format!(
                    "De retour sur ta liste : {}. Pas de souci.",
                    self.t(&t.title)
                )
            }
            (Language::En, Reopen::NothingRecent) => {
                "Nothing to undo: no task was completed this week.".to_owned()
            }
            (Language::Fr, Reopen::NothingRecent) => {
                "Rien à annuler : aucune tâche terminée cette semaine.".to_owned()
            }
            (Language::En, Reopen::NoMatch(_)) => {
                "I couldn't find that among tasks done this week.".to_owned()
            }
            (Language::Fr, Reopen::NoMatch(_)) => {
                "Je ne la trouve pas parmi les tâches faites cette semaine.".to_owned()
            }
            (Language::En, Reopen::Ambiguous(ts)) => format!(
                "Which one? {} Reply: reopen <its words>",
                self.inline(ts.iter().map(|t| t.title.as_str()))
            ),
            (Language::Fr, Reopen::Ambiguous(ts)) => format!(
                "Laquelle ? {} Réponds : rouvre <ses mots>",
                self.inline(ts.iter().map(|t| t.title.as_str()))
            ),
        }
    }

    fn goal_added(&self, goal: &Goal, number: usize) -> String {
        match self.lang {
            Language::En => format!(
                "New goal {number}: {} Link a task to it: link 1 to goal {number}",
                self.t_stop(&goal.title)
            ),
            Language::Fr => format!(
                "Nouvel objectif {number} : {} Pour y lier une tâche : lie 1 à objectif {number}",
                self.t_stop(&goal.title)
            ),
        }
    }

    fn goal_list(&self, goals: &[Goal]) -> String {
        if goals.is_empty() {
            return self
                .pick(
                    "No goals yet. Add one: goal: run a 10k",
                    "Pas encore d'objectif. Ajoutes-en un : objectif : courir 10 km",
                )
                .to_owned();
        }
        let lines: Vec<String> = goals
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let title = clip(&g.title, self.room.title);
                format!("{}. {title} ({}/{})", i + 1, g.tasks_done, g.tasks_total)
            })
            .collect();
        match self.lang {
            Language::En => self.fit_list(
                "Your goals (tasks done):",
                &lines,
                "Reply: goal 1 for details",
            ),
            Language::Fr => self.fit_list(
                "Tes objectifs (tâches faites) :",
                &lines,
                "Réponds : objectif 1 pour le détail",
            ),
        }
    }

    fn linked(&self, linked: &Result<Linked, LinkMiss>) -> String {
        match linked {
            Ok(l) => match self.lang {
                Language::En => format!(
                    "Linked {} to {} ({}/{} done).",
                    clip(&l.task.title, 30),
                    clip(&l.goal.title, 30),
                    l.goal.tasks_done,
                    l.goal.tasks_total
                ),
                Language::Fr => format!(
                    "{} liée à {} ({}/{} faites).",
                    clip(&l.task.title, 30),
                    clip(&l.goal.title, 30),
                    l.goal.tasks_done,
                    l.goal.tasks_total
                ),
            },
            Err(LinkMiss::Goal(_)) => self
                .pick(
                    "I couldn't find that goal. Reply 'goals' to see the numbers.",
                    "Je ne trouve pas cet objectif. Écris « objectifs » pour voir les numéros.",
                )
                .to_owned(),
            Err(LinkMiss::Task(pick)) => self.task_miss(pick),
        }
    }

    fn progress(&self, pick: &Pick<Progress>) -> String {
        let Pick::One(n, p) = pick else {
            return self
                .pick(
                    "I couldn't find that goal. Reply 'goals' to see the numbers.",
                    "Je ne trouve pas cet objectif. Écris « objectifs » pour voir les numéros.",
                )
                .to_owned();
        };
        let (done, total) = (p.goal.tasks_done, p.goal.tasks_total);
        let title = self.t(&p.goal.title);
        match (self.lang, total, &p.next) {
            (Language::En, 0, _) => {
                format!("{title}: no tasks linked yet. Link one: link 1 to goal {n}")
            }
            (Language::Fr, 0, _) => {
                format!("{title} : aucune tâche liée. Pour en lier une : lie 1 à objectif {n}")
            }
            (Language::En, _, Some(next)) => format!(
                "{title}: {done}/{total} tasks done. Next step: {}",
                self.t_stop(&next.title)
            ),
            (Language::Fr, _, Some(next)) => format!(
                "{title} : {done}/{total} tâches faites. Prochaine étape : {}",
                self.t_stop(&next.title)
            ),
            (Language::En, _, None) => format!("{title}: all {total} tasks done - amazing!"),
            (Language::Fr, _, None) => {
                format!("{title} : les {total} tâches sont faites, bravo !")
            }
        }
    }

    fn expense_logged(&self, e: &crate::store::Expense) -> String {
        let money = expenses::money_text(e.amount_minor, &e.currency, self.lang);
        let category = expenses::category_text(&e.category, self.lang);
        match self.lang {
            Language::En => {
                format!("Logged {money} for {category}. Reply 'expenses' for this week's total.")
            }
            Language::Fr => format!(
                "Noté : {money} en {category}. Écris « dépenses » pour le total de la semaine."
            ),
        }
    }

    fn expense_totals(&self, t: &Totals) -> String {
        let period = match (self.lang, t.period) {
            (Language::En, Period::Today) => "Today",
            (Language::En, Period::Week) => "This week",
            (Language::En, Period::Month) => "This month",
            (Language::Fr, Period::Today) => "Aujourd'hui",
            (Language::Fr, Period::Week) => "Cette semaine",
            (Language::Fr, Period::Month) => "Ce mois-ci",
        };
        if t.currencies.is_empty() {
            return match self.lang {
                Language::En => {
                    format!("{period}: no expenses logged. Log one: spent 12.50 on lunch")
                }
                Language::Fr => format!(
                    "{period} : aucune dépense notée. Pour en noter une : dépensé 12,50 € resto"
                ),
            };
        }
        let parts: Vec<String> = t
            .currencies
            .iter()
            .map(|c| {
                let cats: Vec<String> = c
                    .categories
                    .iter()
                    .take(4)
                    .map(|k| {
                        format!(
                            "{} {}",
                            expenses::category_text(&k.category, self.lang),
                            expenses::decimal_text(k.amount_minor, &c.currency, self.lang)
                        )
                    })
                    .collect();
                format!(
                    "{} ({})",
                    expenses::money_text(c.amount_minor, &c.currency, self.lang),
                    cats.join(", ")
                )
            })
            .collect();
        match self.lang {
            Language::En => format!("{period}: {}.", parts.join("; ")),
            Language::Fr => format!("{period} : {}.", parts.join(" ; ")),
        }
    }

    fn note_list(&self, notes: &[Note], found: bool) -> String {
        if notes.is_empty() {
            return match (self.lang, found) {
                (Language::En, false) => {
                    "No notes yet. Save one: note: wifi code is on the router".to_owned()
                }
                (Language::Fr, false) => {
                    "Pas encore de notes. Pour en garder une : note : code wifi sous la box"
                        .to_owned()
                }
                (Language::En, true) => {
                    "No note has those words. Reply 'notes' to see the latest.".to_owned()
                }
                (Language::Fr, true) => {
                    "Aucune note avec ces mots. Écris « notes » pour voir les dernières.".to_owned()
                }
            };
        }
        let list = self.numbered(
            notes
                .iter()
                .enumerate()
                .map(|(i, n)| (i + 1, n.body.as_str())),
        );
        match (self.lang, found) {
            (Language::En, false) => format!("Your latest notes:\n{list}"),
            (Language::Fr, false) => format!("Tes dernières notes :\n{list}"),
            (Language::En, true) => format!("Found {}:\n{list}", notes.len()),
            (Language::Fr, true) => format!("Trouvé {} :\n{list}", notes.len()),
        }
    }

    fn note_deleted(&self, pick: &Pick<Note>) -> String {
        match (self.lang, pick) {
            (Language::En, Pick::One(_, n)) => {
                format!("Deleted the note: {}", self.t_stop(&n.body))
            }
            (Language::Fr, Pick::One(_, n)) => format!("Note supprimée : {}", self.t_stop(&n.body)),
            (Language::En, _) => "I couldn't find that note. Reply 'notes' to see them.".to_owned(),
            (Language::Fr, _) => {
                "Je ne trouve pas cette note. Écris « notes » pour les voir.".to_owned()
            }
        }
    }

    fn morning_digest(&self, at: Option<u16>) -> String {
        let Some(minute) = at else {
            return self
                .pick("Morning digest off.", "Résumé du matin désactivé.")
                .to_owned();
        };
        let time = when::clock_text(u32::from(minute / 60), u32::from(minute % 60), self.lang);
        match self.lang {
            Language::En => format!(
                "Morning digest on: every day at {time}, your top 3 tasks and today's reminders. Send \"morning digest off\" to stop."
            ),
            Language::Fr => format!(
                "Résumé du matin activé : chaque jour à {time}, tes 3 priorités et tes rappels du jour. Envoie \"résumé du matin off\" pour l'arrêter."
            ),
        }
    }

    fn reminder_set(&self, s: &Scheduled, clock: Clock) -> String {
        let next = when::moment_text(s.reminder.due_at, clock.now, clock.tz, self.lang);
        let text = self.t_stop(&s.reminder.body);
        let (en, fr) = if s.reminder.urgent {
            ("Urgent reminder", "Rappel urgent")
        } else {
            ("Reminder", "Rappel")
        };
        match (self.lang, &s.rule) {
            (Language::En, None) => format!("{en} set for {next}: {text}"),
            (Language::Fr, None) => format!("{fr} prévu {next} : {text}"),
            (Language::En, Some(rule)) => format!(
                "{en} set {}: {text} First one: {next}.",
                when::rule_text(rule, self.lang)
            ),
            (Language::Fr, Some(rule)) => format!(
                "{fr} {} : {text} Premier : {next}.",
                when::rule_text(rule, self.lang)
            ),
        }
    }

    fn reminder_list(&self, list: &[Scheduled], clock: Clock) -> String {
        if list.is_empty() {
            return self
                .pick(
                    "No reminders set. Try: remind me to stretch in 20 minutes",
                    "Aucun rappel. Essaie : rappelle-moi dans 20 minutes de m'étirer",
                )
                .to_owned();
        }
        let lines: Vec<String> = list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let when = when::moment_text(s.reminder.due_at, clock.now, clock.tz, self.lang);
                let repeat = match (self.lang, s.rule.is_some()) {
                    (_, false) => "",
                    (Language::En, true) => " (repeats)",
                    (Language::Fr, true) => " (répété)",
                };
                format!("{}. {when}{repeat}: {}", i + 1, clip(&s.reminder.body, 30))
            })
            .collect();
        match self.lang {
            Language::En => self.fit_list("Your reminders:", &lines, "Reply: cancel reminder 1"),
            Language::Fr => self.fit_list("Tes rappels :", &lines, "Réponds : annule rappel 1"),
        }
    }

    /// `head`, as many of `lines` as fit in one reply with `foot` (at most the channel's
    /// item count), and "+N more" for the rest: the next step is never cut off.
    fn fit_list(&self, head: &str, lines: &[String], foot: &str) -> String {
        let width = |t: &str| t.chars().count() + 1;
        let more_room = width(&self.more(lines.len()));
        let mut used = width(head) + width(foot) + more_room;
        let mut shown: Vec<&str> = Vec::new();
        for line in lines.iter().take(self.room.items) {
            if used + width(line) > self.room.total {
                break;
            }
            used += width(line);
            shown.push(line);
        }
        let mut body = shown.join("\n");
        if shown.len() < lines.len() {
            if !body.is_empty() {
                body.push('\n');
            }
            body.push_str(&self.more(lines.len() - shown.len()));
        }
        format!("{head}\n{body}\n{foot}")
    }

    fn reminder_cancelled(&self, pick: &Pick<crate::store::Reminder>) -> String {
        match (self.lang, pick) {
            (Language::En, Pick::One(_, r)) => {
                format!("Cancelled the reminder: {}", self.t_stop(&r.body))
            }
            (Language::Fr, Pick::One(_, r)) => format!("Rappel annulé : {}", self.t_stop(&r.body)),
            (Language::En, _) => {
                "I couldn't find that reminder. Reply 'reminders' to see them.".to_owned()
            }
            (Language::Fr, _) => {
                "Je ne trouve pas ce rappel. Écris « rappels » pour les voir.".to_owned()
            }
        }
    }
}
