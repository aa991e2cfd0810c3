//! The grocery list: add several items at once, list them, check them off, clear the list.
//!
//! Every function takes the [`UserId`] whose list it touches and passes it to the store. Numbers
//! are 1-based positions in the unchecked items ordered oldest first, as [`list`] returns them.

use crate::store::{GroceryItem, Store, StoreError, UserId};
use crate::tools::tasks::{Matches, Titled, best_matches, match_key};

/// The longest item name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The most items one message may add.
pub const MAX_ITEMS_PER_MESSAGE: usize = 30;

/// Why a grocery tool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum GroceryError {
    /// No item was given, or an item is empty once trimmed.
    #[error("no grocery item given")]
    EmptyName,
    /// An item name is longer than [`MAX_NAME_CHARS`].
    #[error("a grocery item is {chars} characters long, the limit is {MAX_NAME_CHARS}")]
    NameTooLong {
        /// How long the refused name was.
        chars: usize,
    },
    /// More than [`MAX_ITEMS_PER_MESSAGE`] items in one call.
    #[error("{count} grocery items in one message, the limit is {MAX_ITEMS_PER_MESSAGE}")]
    TooMany {
        /// How many items were given.
        count: usize,
    },
    /// The store failed; nothing about the input was wrong.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One thing a user points at when checking items off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemTarget {
    /// 1-based position in the unchecked list ("got 2").
    Position(usize),
    /// An item name, matched case- and accent-insensitively ("got milk").
    Name(String),
}

/// The result of adding items.
#[derive(Debug, Clone, PartialEq)]
pub struct AddedItems {
    /// The items just stored, in the order given.
    pub added: Vec<GroceryItem>,
    /// Names not stored because the same item is already unchecked on the list (or was given
    /// twice), so the list stays free of duplicates.
    pub already_listed: Vec<String>,
    /// How many unchecked items the list holds afterwards.
    pub total: usize,
}

/// Candidates for a name that matched several items.
#[derive(Debug, Clone, PartialEq)]
pub struct AmbiguousName {
    /// The name as the user wrote it.
    pub name: String,
    /// The matching items with the positions the user can answer with.
    pub candidates: Vec<(usize, GroceryItem)>,
}

/// The result of checking items off.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOff {
    /// Items now checked, in the order asked.
    pub checked: Vec<GroceryItem>,
    /// Names or positions that matched nothing on the list.
    pub not_found: Vec<ItemTarget>,
    /// Names that matched several items; those were left alone.
    pub ambiguous: Vec<AmbiguousName>,
    /// The unchecked items left, oldest first.
    pub remaining: Vec<GroceryItem>,
}

impl Titled for GroceryItem {
    fn title(&self) -> &str {
        &self.name
    }
}

/// Trims a name and checks it against the limits.
pub fn validate_name(name: &str) -> Result<&str, GroceryError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(GroceryError::EmptyName);
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(GroceryError::NameTooLong { chars });
    }
    Ok(name)
}

/// Adds items in the order given, in one transaction, after validating all of them.
///
/// An item already unchecked on the list (same name ignoring case and accents) is not added
/// again; it is reported in [`AddedItems::already_listed`].
pub async fn add_many(
    store: &Store,
    user: UserId,
    names: &[String],
) -> Result<AddedItems, GroceryError> {
    if names.is_empty() {
        return Err(GroceryError::EmptyName);
    }
    if names.len() > MAX_ITEMS_PER_MESSAGE {
        return Err(GroceryError::TooMany { count: names.len() });
    }
    let names = names
        .iter()
        .map(|n| validate_name(n))
        .collect::<Result<Vec<_>, _>>()?;
    let existing = store.groceries(user).await?;
    let mut seen: Vec<String> = existing.iter().map(|i| match_key(&i.name)).collect();
    let mut fresh = Vec::new();
    let mut already_listed = Vec::new();
    for name in names {
        let key = match_key(name);
        if seen.contains(&key) {
            already_listed.push(name.to_owned());
        } else {
            seen.push(key);
            fresh.push(name.to_owned());
        }
    }
    let added = if fresh.is_empty() {
        Vec::new()
    } else {
        store.add_groceries(user, &fresh).await?
    };
    Ok(AddedItems {
        total: existing.len() + added.len(),
        added,
        already_listed,
    })
}

/// The unchecked items, oldest first.
pub async fn list(store: &Store, user: UserId) -> Result<Vec<GroceryItem>, StoreError> {
    store.groceries(user).await
}

/// Checks off one item, by position or by name. See [`check_off`].
pub async fn check_off_by_name_or_position(
    store: &Store,
    user: UserId,
    target: &ItemTarget,
) -> Result<CheckOff, StoreError> {
    check_off(store, user, std::slice::from_ref(target)).await
}

/// Checks off several items. All targets are resolved against one snapshot of the list, so
/// "got 1 and 2" means the first two items the user was shown. A name picks the item whose name
/// equals it (ignoring case, accents, punctuation and a plural s), else the one containing it.
pub async fn check_off(
    store: &Store,
    user: UserId,
    targets: &[ItemTarget],
) -> Result<CheckOff, StoreError> {
    let items = store.groceries(user).await?;
    let mut ids: Vec<i64> = Vec::new();
    let mut not_found = Vec::new();
    let mut ambiguous = Vec::new();
    for target in targets {
        match target {
            ItemTarget::Position(p) => match p.checked_sub(1).and_then(|i| items.get(i)) {
                Some(item) if !ids.contains(&item.id) => ids.push(item.id),
                Some(_) => {}
                None => not_found.push(target.clone()),
            },
            ItemTarget::Name(name) => match best_matches(&items, name) {
                Matches::None => not_found.push(target.clone()),
                Matches::One(i) => {
                    if !ids.contains(&items[i].id) {
                        ids.push(items[i].id);
                    }
                }
                Matches::Many(indexes) => ambiguous.push(AmbiguousName {
                    name: name.clone(),
                    candidates: indexes
                        .into_iter()
                        .map(|i| (i + 1, items[i].clone()))
                        .collect(),
                }),
            },
        }
    }
    let mut checked = Vec::with_capacity(ids.len());
    for id in ids {
        checked.push(store.check_grocery(user, id).await?);
    }
    let remaining = if checked.is_empty() {
        items
    } else {
        store.groceries(user).await?
    };
    Ok(CheckOff {
        checked,
        not_found,
        ambiguous,
        remaining,
    })
}

/// Removes every item of the list (checked ones too) and returns how many unchecked items it
/// held: the number the user saw on their list.
pub async fn clear(store: &Store, user: UserId) -> Result<u64, StoreError> {
    let unchecked = store.groceries(user).await?.len();
    store.clear_groceries(user).await?;
    Ok(u64::try_from(unchecked).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn item(id: i64, name: &str) -> GroceryItem {
        GroceryItem {
            id,
            name: name.to_owned(),
            checked: false,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_name_over_the_limit_is_refused_and_a_blank_one_too() {
        assert!(validate_name(&"x".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(matches!(
            validate_name(&"x".repeat(MAX_NAME_CHARS + 1)),
            Err(GroceryError::NameTooLong { chars: 101 })
        ));
        assert!(matches!(validate_name(" "), Err(GroceryError::EmptyName)));
    }

    #[test]
    fn a_plural_finds_its_singular_item_and_accents_do_not_matter() {
        let items = [item(1, "egg"), item(2, "Pâtes"), item(3, "oat milk")];
        assert_eq!(best_matches(&items, "eggs"), Matches::One(0));
        assert_eq!(best_matches(&items, "pates"), Matches::One(1));
        assert_eq!(best_matches(&items, "milk"), Matches::One(2));
    }

    #[test]
    fn two_kinds_of_milk_make_milk_ambiguous_but_an_exact_name_wins() {
        let items = [item(1, "oat milk"), item(2, "almond milk")];
        assert_eq!(best_matches(&items, "milk"), Matches::Many(vec![0, 1]));
        let items = [item(1, "oat milk"), item(2, "milk")];
        assert_eq!(best_matches(&items, "milk"), Matches::One(1));
    }

    mod over_a_store {
        use super::super::*;
        use crate::store::{Language, NewUser, Store, connect};

        async fn store_and_user() -> (Store, UserId) {
            let store = connect("sqlite::memory:", crate::store::Sealer::generate())
                .await
                .expect("store");
            let user = store
                .create_user(&NewUser {
                    display_name: "G".into(),
                    phone: "+15550000201".into(),
                    number: "+15559990201".into(),
                    language: Language::En,
                    time_zone: "UTC".into(),
                })
                .await
                .expect("user");
            (store, user.id)
        }

        fn names(items: &[GroceryItem]) -> Vec<&str> {
            items.iter().map(|i| i.name.as_str()).collect()
        }

        #[tokio::test]
        async fn adding_skips_items_already_on_the_list_or_repeated_in_the_message() {
            let (store, user) = store_and_user().await;
            let first = ["milk".to_owned()];
            add_many(&store, user, &first).await.expect("add");
            let more = ["Milk", "eggs", "EGGS", "pâtes"].map(String::from);
            let added = add_many(&store, user, &more).await.expect("add");
            assert_eq!(names(&added.added), ["eggs", "pâtes"]);
            assert_eq!(added.already_listed, ["Milk", "EGGS"]);
            assert_eq!(added.total, 3);
        }

        #[tokio::test]
        async fn thirty_one_items_are_refused_and_thirty_are_accepted() {
            let (store, user) = store_and_user().await;
            let many: Vec<String> = (0..=MAX_ITEMS_PER_MESSAGE)
                .map(|i| format!("i{i}"))
                .collect();
            let err = add_many(&store, user, &many).await;
            assert!(
                matches!(err, Err(GroceryError::TooMany { count: 31 })),
                "{err:?}"
            );
            let ok = add_many(&store, user, &many[..MAX_ITEMS_PER_MESSAGE])
                .await
                .expect("add");
            assert_eq!(ok.total, MAX_ITEMS_PER_MESSAGE);
        }

        #[tokio::test]
        async fn checking_off_reports_checked_missing_and_ambiguous_items() {
            let (store, user) = store_and_user().await;
            let items = ["oat milk", "almond milk", "bread"].map(String::from);
            add_many(&store, user, &items).await.expect("add");
            let report = check_off(
                &store,
                user,
                &[
                    ItemTarget::Name("milk".into()),
                    ItemTarget::Name("Bread".into()),
                    ItemTarget::Name("cheese".into()),
                    ItemTarget::Position(7),
                ],
            )
            .await
            .expect("check off");
            assert_eq!(names(&report.checked), ["bread"]);
            assert_eq!(
                report.not_found,
                [ItemTarget::Name("cheese".into()), ItemTarget::Position(7)]
            );
            assert_eq!(report.ambiguous.len(), 1);
            assert_eq!(
                report.ambiguous[0]
                    .candidates
                    .iter()
                    .map(|(p, _)| *p)
                    .collect::<Vec<_>>(),
                [1, 2]
            );
            assert_eq!(names(&report.remaining), ["oat milk", "almond milk"]);
            assert_eq!(clear(&store, user).await.expect("clear"), 2);
            assert!(list(&store, user).await.expect("list").is_empty());
        }
    }
}
