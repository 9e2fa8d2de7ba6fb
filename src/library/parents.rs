//! Security-sensitive: what a parent sets up and checks — the owner's corrections of an
//! item's facts (overrides kept in the database, never written into the media folders), the
//! country whose rating names the editor shows, the labels the libraries use, and a preview
//! of what a profile with some restrictions would see, judged by `policy` item by item.
//! Every function that changes something takes the owner's [`OwnerProof`].

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::visible::policy_view;
use super::{ItemKind, ItemRecord, ItemSort};
use crate::model::media::{ItemOverride, OverrideError};
use crate::policy::{self, Hidden, OwnerProof, RatingSystem, Restrictions};
use crate::store::{Store, StoreError};

/// The settings key of the owner's rating country.
const COUNTRY_KEY: &str = "rating_country";
/// Most items one bulk edit may change.
pub const MAX_BULK: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ParentsError {
    #[error("there is no such item")]
    NotFound,
    #[error("{0}")]
    Invalid(#[from] OverrideError),
    #[error("{0:?} is not a country Hearth has rating names for; pick one from the list")]
    UnknownCountry(String),
    #[error("pick between 1 and {MAX_BULK} items to change at once")]
    BulkSize,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The country whose rating names the owner sees (`us` until the owner picks one).
pub fn rating_country(store: &Store) -> Result<String, StoreError> {
    Ok(store
        .read(|rx| rx.setting::<String>(COUNTRY_KEY))?
        .filter(|c| policy::ratings::systems_for_country(c).is_some())
        .unwrap_or_else(|| "us".to_owned()))
}

pub fn set_rating_country(
    store: &Store,
    _owner: &OwnerProof,
    country: &str,
) -> Result<String, ParentsError> {
    let cc = country.trim().to_ascii_lowercase();
    if !policy::ratings::COUNTRIES.iter().any(|(c, _)| *c == cc) {
        return Err(ParentsError::UnknownCountry(country.to_owned()));
    }
    store.write(|tx| tx.set_setting(COUNTRY_KEY, &cc))?;
    Ok(cc)
}

/// The rating systems for films and TV of `country`.
pub fn systems(country: &str) -> (RatingSystem, RatingSystem) {
    policy::ratings::systems_for_country(country)
        .unwrap_or((RatingSystem::UsMpaa, RatingSystem::UsTv))
}

/// A label the libraries use, and on how many items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LabelUse {
    pub label: String,
    pub items: u64,
}

fn for_each_item(store: &Store, mut visit: impl FnMut(&ItemRecord)) -> Result<(), StoreError> {
    store.read(|rx| {
        for lib in rx.libraries()? {
            rx.visit_items(lib.id, ItemSort::Title, false, |item| {
                visit(&item);
                true
            })?;
        }
        Ok(())
    })
}

/// Every label (tag, or the owner's label override) on any item, lower-cased, with counts.
pub fn labels(store: &Store, _owner: &OwnerProof) -> Result<Vec<LabelUse>, StoreError> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for_each_item(store, |item| {
        let mut seen = HashSet::new();
        for t in &item.tags {
            let l = t.trim().to_lowercase();
            if !l.is_empty() && seen.insert(l.clone()) {
                *counts.entry(l).or_default() += 1;
            }
        }
    })?;
    Ok(counts
        .into_iter()
        .map(|(label, items)| LabelUse { label, items })
        .collect())
}

/// Sets (or with `None` removes) the owner's override of one item.
pub fn set_override(
    store: &Store,
    _owner: &OwnerProof,
    item_id: u64,
    ov: Option<ItemOverride>,
) -> Result<ItemRecord, ParentsError> {
    let ov = ov.map(ItemOverride::checked).transpose()?;
    store
        .write(|tx| tx.set_item_override(item_id, ov))?
        .ok_or(ParentsError::NotFound)
}

/// Changes many items at once: the fields given in `set` replace those of each item's
/// override (others stay), or `reset` removes the overrides. All or nothing: an unknown id
/// changes no item.
pub fn bulk_override(
    store: &Store,
    _owner: &OwnerProof,
    ids: &[u64],
    set: ItemOverride,
    reset: bool,
) -> Result<usize, ParentsError> {
    if ids.is_empty() || ids.len() > MAX_BULK {
        return Err(ParentsError::BulkSize);
    }
    let set = set.checked()?;
    // An error returned from the closure drops the transaction: nothing is written.
    store.write(|tx| {
        for &id in ids {
            let Some(item) = tx.item(id)? else {
                return Err(ParentsError::NotFound);
            };
            let ov = if reset {
                None
            } else {
                Some(item.overrides.unwrap_or_default().merged(set.clone()))
            };
            tx.set_item_override(id, ov)?;
        }
        Ok(ids.len())
    })
}

/// How many titles of one kind a profile would see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KindCount {
    pub visible: u64,
    pub total: u64,
    /// Hidden only because they have no rating (or one the tables do not know).
    pub unrated_hidden: u64,
}

/// Why a title is hidden, in one word for the app and a sentence for the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HiddenBecause {
    Library,
    Rating,
    Unrated,
    Label,
}

/// One film or show in the preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PreviewTitle {
    /// The film's item id, or the first episode's for a show.
    pub id: u64,
    pub library_id: u64,
    /// `film` or `show`.
    pub kind: &'static str,
    pub title: String,
    pub year: Option<u16>,
    /// The rating as Hearth uses it (after the owner's override), if any.
    pub rating: Option<String>,
    pub visible: bool,
    pub hidden_because: Option<HiddenBecause>,
    /// Why it is hidden, in words.
    pub reason: Option<String>,
}

/// What a profile with some restrictions would see, inside its viewing hours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub films: KindCount,
    pub shows: KindCount,
    /// Films then shows, each by title.
    pub titles: Vec<PreviewTitle>,
}

fn because(h: Hidden) -> HiddenBecause {
    match h {
        Hidden::LibraryNotGranted => HiddenBecause::Library,
        Hidden::RatingAboveCeiling { .. } => HiddenBecause::Rating,
        Hidden::Unrated | Hidden::UnknownRating => HiddenBecause::Unrated,
        Hidden::LabelDenied | Hidden::LabelNotAllowed => HiddenBecause::Label,
    }
}

struct ShowAcc {
    first_id: u64,
    library_id: u64,
    rating: Option<String>,
    visible: bool,
    hidden: Option<Hidden>,
}

/// Judges every film and show with `policy` as a profile with `r` would be judged (hours
/// aside: the preview shows what the profile sees while it may watch).
pub fn preview(
    store: &Store,
    _owner: &OwnerProof,
    r: &Restrictions,
) -> Result<Preview, StoreError> {
    let mut out = Preview::default();
    let mut films = Vec::new();
    let mut shows: BTreeMap<(String, u64, String), ShowAcc> = BTreeMap::new();
    for_each_item(store, |item| {
        let verdict = policy::restrictions_allow(r, &policy_view(item));
        let rating = item.rating.as_ref().map(|c| c.raw.clone());
        match item.kind {
            Some(ItemKind::Movie) | Some(ItemKind::Video) | None => {
                out.films.total += 1;
                match verdict {
                    Ok(()) => out.films.visible += 1,
                    Err(Hidden::Unrated | Hidden::UnknownRating) => out.films.unrated_hidden += 1,
                    Err(_) => {}
                }
                films.push(PreviewTitle {
                    id: item.id,
                    library_id: item.library_id,
                    kind: "film",
                    title: item.title.clone(),
                    year: item.year,
                    rating,
                    visible: verdict.is_ok(),
                    hidden_because: verdict.err().map(because),
                    reason: verdict.err().map(|h| h.to_string()),
                });
            }
            Some(ItemKind::Episode) => {
                let name = item.show.clone().unwrap_or_else(|| item.title.clone());
                let key = (super::names::sort_key(&name), item.library_id, name);
                let acc = shows.entry(key).or_insert(ShowAcc {
                    first_id: item.id,
                    library_id: item.library_id,
                    rating: None,
                    visible: false,
                    hidden: None,
                });
                if acc.rating.is_none() {
                    acc.rating = rating;
                }
                match verdict {
                    Ok(()) => acc.visible = true,
                    Err(h) => {
                        acc.hidden.get_or_insert(h);
                    }
                }
            }
            Some(ItemKind::Track) | Some(ItemKind::Photo) => {}
        }
    })?;
    films.sort_by_cached_key(|t| super::names::sort_key(&t.title));
    out.titles = films;
    for ((_, _, name), acc) in shows {
        out.shows.total += 1;
        let hidden = (!acc.visible).then_some(acc.hidden).flatten();
        if acc.visible {
            out.shows.visible += 1;
        } else if matches!(hidden, Some(Hidden::Unrated | Hidden::UnknownRating)) {
            out.shows.unrated_hidden += 1;
        }
        out.titles.push(PreviewTitle {
            id: acc.first_id,
            library_id: acc.library_id,
            kind: "show",
            title: name,
            year: None,
            rating: acc.rating,
            visible: acc.visible,
            hidden_because: hidden.map(because),
            reason: hidden.map(|h| h.to_string()),
        });
    }
    Ok(out)
}
