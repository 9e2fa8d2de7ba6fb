//! Browsing and search. Every function takes an `allowed` predicate: the policy module
//! passes one that answers "may this viewer see this item", so nothing here decides access
//! and nothing a viewer may not see is counted, grouped or returned.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ItemKind, ItemRecord, ItemSort, LibraryRecord};
use crate::store::library::tokenize;
use crate::store::{Store, StoreError};

/// Largest page a client may ask for.
pub const MAX_PAGE: usize = 500;
/// Upper bound on ids one search term may contribute (keeps a one-letter query cheap).
const MAX_TERM_HITS: usize = 20_000;

/// Libraries the viewer may see.
pub fn libraries(
    store: &Store,
    allowed: impl Fn(&LibraryRecord) -> bool,
) -> Result<Vec<LibraryRecord>, StoreError> {
    let mut libs = store.read(|rx| rx.libraries())?;
    libs.retain(|l| allowed(l));
    Ok(libs)
}

/// What a listing asks for.
#[derive(Debug, Clone)]
pub struct ItemQuery {
    pub sort: ItemSort,
    pub descending: bool,
    /// Only items with this genre (case-insensitive).
    pub genre: Option<String>,
    pub kind: Option<ItemKind>,
    pub offset: usize,
    pub limit: usize,
}

impl Default for ItemQuery {
    fn default() -> Self {
        ItemQuery {
            sort: ItemSort::Title,
            descending: false,
            genre: None,
            kind: None,
            offset: 0,
            limit: 100,
        }
    }
}

/// One page of items, and whether more follow.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub offset: usize,
    pub more: bool,
}

/// Items of a library in the asked order, filtered by `allowed` and the query's filters.
/// Walks the sort index and stops once the page is full.
pub fn items(
    store: &Store,
    library_id: u64,
    q: &ItemQuery,
    extra: impl Fn(&ItemRecord) -> bool,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Page<ItemRecord>, StoreError> {
    let limit = q.limit.clamp(1, MAX_PAGE);
    let mut skipped = 0usize;
    let mut out = Vec::with_capacity(limit);
    let mut more = false;
    store.read(|rx| {
        rx.visit_items(library_id, q.sort, q.descending, |item| {
            if q.kind.is_some() && item.kind != q.kind {
                return true;
            }
            if let Some(g) = &q.genre
                && !item.genres.iter().any(|x| x.eq_ignore_ascii_case(g))
            {
                return true;
            }
            if !extra(&item) || !allowed(&item) {
                return true;
            }
            if skipped < q.offset {
                skipped += 1;
                return true;
            }
            if out.len() == limit {
                more = true;
                return false;
            }
            out.push(item);
            true
        })
    })?;
    Ok(Page {
        items: out,
        offset: q.offset,
        more,
    })
}

fn all_items(
    store: &Store,
    library_id: u64,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<ItemRecord>, StoreError> {
    let mut out = Vec::new();
    store.read(|rx| {
        rx.visit_items(library_id, ItemSort::Title, false, |item| {
            if allowed(&item) {
                out.push(item);
            }
            true
        })
    })?;
    Ok(out)
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ShowSummary {
    pub name: String,
    pub year: Option<u16>,
    pub seasons: usize,
    pub episodes: usize,
    pub artwork_item: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SeasonSummary {
    /// `None` for dated episodes without a season.
    pub season: Option<u32>,
    pub episodes: usize,
}

/// Shows of a library, by name, counting only episodes the viewer may see.
pub fn shows(
    store: &Store,
    library_id: u64,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<ShowSummary>, StoreError> {
    let mut by_show: BTreeMap<String, (String, Vec<ItemRecord>)> = BTreeMap::new();
    for item in all_items(store, library_id, |i| {
        i.kind == Some(ItemKind::Episode) && allowed(i)
    })? {
        let name = item.show.clone().unwrap_or_default();
        by_show
            .entry(super::names::sort_key(&name))
            .or_insert_with(|| (name, Vec::new()))
            .1
            .push(item);
    }
    Ok(by_show
        .into_values()
        .map(|(name, eps)| {
            let mut seasons: Vec<Option<u32>> = eps.iter().map(|e| e.season).collect();
            seasons.sort();
            seasons.dedup();
            ShowSummary {
                name,
                year: eps.iter().filter_map(|e| e.year).min(),
                seasons: seasons.len(),
                episodes: eps.len(),
                artwork_item: eps.iter().find(|e| e.artwork.is_some()).map(|e| e.id),
            }
        })
        .collect())
}

/// Seasons of one show.
pub fn seasons(
    store: &Store,
    library_id: u64,
    show: &str,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<SeasonSummary>, StoreError> {
    let mut counts: BTreeMap<Option<u32>, usize> = BTreeMap::new();
    for e in episodes(store, library_id, show, None, allowed)? {
        *counts.entry(e.season).or_default() += 1;
    }
    Ok(counts
        .into_iter()
        .map(|(season, episodes)| SeasonSummary { season, episodes })
        .collect())
}

/// Episodes of a show (one season, or all), in airing order.
pub fn episodes(
    store: &Store,
    library_id: u64,
    show: &str,
    season: Option<u32>,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<ItemRecord>, StoreError> {
    let mut eps = all_items(store, library_id, |i| {
        i.kind == Some(ItemKind::Episode)
            && i.show
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(show))
            && (season.is_none() || i.season == season)
            && allowed(i)
    })?;
    eps.sort_by(|a, b| {
        (a.season, a.episode, &a.air_date, &a.sort_title).cmp(&(
            b.season,
            b.episode,
            &b.air_date,
            &b.sort_title,
        ))
    });
    Ok(eps)
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ArtistSummary {
    pub name: String,
    pub albums: usize,
    pub tracks: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AlbumSummary {
    pub name: String,
    pub artist: String,
    pub year: Option<u16>,
    pub tracks: usize,
    pub artwork_item: Option<u64>,
}

/// Artists of a music library.
pub fn artists(
    store: &Store,
    library_id: u64,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<ArtistSummary>, StoreError> {
    let mut by: BTreeMap<String, (String, Vec<String>, usize)> = BTreeMap::new();
    for t in all_items(store, library_id, |i| {
        i.kind == Some(ItemKind::Track) && allowed(i)
    })? {
        let artist = t.artist.clone().unwrap_or_default();
        let e = by
            .entry(super::names::sort_key(&artist))
            .or_insert_with(|| (artist, Vec::new(), 0));
        let album = t.album.clone().unwrap_or_default();
        if !e.1.contains(&album) {
            e.1.push(album);
        }
        e.2 += 1;
    }
    Ok(by
        .into_values()
        .map(|(name, albums, tracks)| ArtistSummary {
            name,
            albums: albums.len(),
            tracks,
        })
        .collect())
}

/// Albums of one artist.
pub fn albums(
    store: &Store,
    library_id: u64,
    artist: &str,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<AlbumSummary>, StoreError> {
    let mut by: BTreeMap<String, AlbumSummary> = BTreeMap::new();
    for t in all_items(store, library_id, |i| {
        i.kind == Some(ItemKind::Track)
            && i.artist
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(artist))
            && allowed(i)
    })? {
        let name = t.album.clone().unwrap_or_default();
        let e = by
            .entry(super::names::sort_key(&name))
            .or_insert_with(|| AlbumSummary {
                name,
                artist: t.artist.clone().unwrap_or_default(),
                year: t.year,
                tracks: 0,
                artwork_item: None,
            });
        e.tracks += 1;
        e.year = e.year.or(t.year);
        if e.artwork_item.is_none() && t.artwork.is_some() {
            e.artwork_item = Some(t.id);
        }
    }
    Ok(by.into_values().collect())
}

/// Tracks of one album, in disc and track order.
pub fn tracks(
    store: &Store,
    library_id: u64,
    artist: &str,
    album: &str,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<ItemRecord>, StoreError> {
    let mut ts = all_items(store, library_id, |i| {
        i.kind == Some(ItemKind::Track)
            && i.artist
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(artist))
            && i.album
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(album))
            && allowed(i)
    })?;
    ts.sort_by(|a, b| (a.disc, a.track, &a.sort_title).cmp(&(b.disc, b.track, &b.sort_title)));
    Ok(ts)
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineMonth {
    /// `YYYY-MM`.
    pub month: String,
    pub items: Vec<ItemRecord>,
}

/// Photos grouped by the month they were taken, newest first.
pub fn photo_timeline(
    store: &Store,
    library_id: u64,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<TimelineMonth>, StoreError> {
    let mut by: BTreeMap<String, Vec<ItemRecord>> = BTreeMap::new();
    for p in all_items(store, library_id, |i| {
        i.kind == Some(ItemKind::Photo) && allowed(i)
    })? {
        let month = p
            .taken_at
            .as_deref()
            .and_then(|t| t.get(..7))
            .unwrap_or("unknown")
            .to_owned();
        by.entry(month).or_default().push(p);
    }
    Ok(by
        .into_iter()
        .rev()
        .map(|(month, mut items)| {
            items.sort_by(|a, b| b.taken_at.cmp(&a.taken_at));
            TimelineMonth { month, items }
        })
        .collect())
}

/// Items matching every word of `query` (as a prefix of a word in their title, show,
/// artist, album, tags, genres or people), best matches first, at most `limit`.
pub fn search(
    store: &Store,
    query: &str,
    limit: usize,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<ItemRecord>, StoreError> {
    let mut words = tokenize(query);
    words.sort();
    words.dedup();
    words.truncate(8);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let limit = limit.clamp(1, MAX_PAGE);
    store.read(|rx| {
        let mut ids: Option<Vec<u64>> = None;
        for w in &words {
            let hits = rx.items_with_term_prefix(w, MAX_TERM_HITS)?;
            ids = Some(match ids {
                None => hits,
                Some(prev) => prev
                    .into_iter()
                    .filter(|id| hits.binary_search(id).is_ok())
                    .collect(),
            });
        }
        let mut found = Vec::new();
        for id in ids.unwrap_or_default() {
            if let Some(item) = rx.item(id)?
                && allowed(&item)
            {
                found.push(item);
            }
        }
        // Title matches first, then by title.
        let q = query.trim().to_lowercase();
        found.sort_by_key(|i| {
            let t = i.title.to_lowercase();
            (
                t != q,
                !t.starts_with(&q),
                !t.contains(&q),
                i.sort_title.clone(),
            )
        });
        found.truncate(limit);
        Ok(found)
    })
}
