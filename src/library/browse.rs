//! Browsing and search. Every function takes an `allowed` predicate: the policy module
//! passes one that answers "may this viewer see this item", so nothing here decides access
//! and nothing a viewer may not see is counted, grouped or returned.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ItemKind, ItemRecord, ItemSort, LibraryRecord};
use crate::store::library::{search_terms, tokenize};
use crate::store::{Store, StoreError};

/// Largest page a client may ask for.
pub const MAX_PAGE: usize = 500;
/// Index rows one search word may read; a word matching more (a single letter in a huge
/// library) is checked on the ranked items instead, so results stay exact.
const MAX_TERM_ROWS: usize = 200_000;

/// Libraries the viewer may see.
pub fn libraries(
    store: &Store,
    allowed: impl Fn(&LibraryRecord) -> bool,
) -> Result<Vec<LibraryRecord>, StoreError> {
    let mut libs = store.read(|rx| rx.libraries())?;
    libs.retain(|l| allowed(l));
    Ok(libs)
}

/// How many items of a library the viewer may see: the number a full listing returns.
pub fn count_items(
    store: &Store,
    library_id: u64,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<u64, StoreError> {
    let mut n = 0u64;
    store.read(|rx| {
        rx.visit_items(library_id, ItemSort::Added, false, |item| {
            if allowed(&item) {
                n += 1;
            }
            true
        })
    })?;
    Ok(n)
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

/// One page of items across `library_ids` in the asked order, and how many match in all (what
/// apps show as the total). One library walks its sort index; several are merged by the same
/// key. Filters as [`items`]; `limit` 0 counts only.
pub fn items_counted(
    store: &Store,
    library_ids: &[u64],
    q: &ItemQuery,
    extra: impl Fn(&ItemRecord) -> bool,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<(Vec<ItemRecord>, usize), StoreError> {
    let limit = q.limit.min(MAX_PAGE);
    let keep = |item: &ItemRecord| {
        (q.kind.is_none() || item.kind == q.kind)
            && q.genre
                .as_ref()
                .is_none_or(|g| item.genres.iter().any(|x| x.eq_ignore_ascii_case(g)))
            && extra(item)
            && allowed(item)
    };
    if let [only] = library_ids {
        let mut total = 0usize;
        let mut out = Vec::with_capacity(limit);
        store.read(|rx| {
            rx.visit_items(*only, q.sort, q.descending, |item| {
                if keep(&item) {
                    if total >= q.offset && out.len() < limit {
                        out.push(item);
                    }
                    total += 1;
                }
                true
            })
        })?;
        return Ok((out, total));
    }
    let mut all = Vec::new();
    for lib in library_ids {
        store.read(|rx| {
            rx.visit_items(*lib, q.sort, false, |item| {
                if keep(&item) {
                    all.push(item);
                }
                true
            })
        })?;
    }
    all.sort_by(|a, b| {
        let ord = match q.sort {
            ItemSort::Title => a.sort_title.cmp(&b.sort_title),
            ItemSort::Year => a.year.cmp(&b.year).then(a.sort_title.cmp(&b.sort_title)),
            ItemSort::Added => a.added_at.cmp(&b.added_at),
        }
        .then(a.id.cmp(&b.id));
        if q.descending { ord.reverse() } else { ord }
    });
    let total = all.len();
    let out = all.into_iter().skip(q.offset).take(limit).collect();
    Ok((out, total))
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
///
/// Best first: the title equals the query, then titles starting with it, then titles
/// containing it, then the rest; each group by sort title. The hits are found in the term
/// index and ranked from the small `search_rows` table; only items in rank order are
/// decoded and shown to `allowed`, and that stops once `limit` are kept, so a one-word
/// query matching most of a big library costs a pass over two index tables, not a decode
/// of every hit.
pub fn search(
    store: &Store,
    query: &str,
    limit: usize,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<ItemRecord>, StoreError> {
    search_capped(store, query, limit, |_| true, allowed, MAX_TERM_ROWS)
}

/// [`search`] for a viewer who may see only some libraries: hits in other libraries are
/// dropped while ranking, before any item is read (`allowed` still sees every item kept).
pub fn search_in(
    store: &Store,
    query: &str,
    limit: usize,
    library_ok: impl Fn(u64) -> bool,
    allowed: impl Fn(&ItemRecord) -> bool,
) -> Result<Vec<ItemRecord>, StoreError> {
    search_capped(store, query, limit, library_ok, allowed, MAX_TERM_ROWS)
}

fn search_capped(
    store: &Store,
    query: &str,
    limit: usize,
    library_ok: impl Fn(u64) -> bool,
    allowed: impl Fn(&ItemRecord) -> bool,
    max_term_rows: usize,
) -> Result<Vec<ItemRecord>, StoreError> {
    let mut words = tokenize(query);
    words.sort();
    words.dedup();
    words.truncate(8);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let limit = limit.clamp(1, MAX_PAGE);
    let q = query.trim().to_lowercase();
    store.read(|rx| {
        // Every word's hits, narrowest first. A word whose index range is too big to read
        // is checked on each ranked item itself below, so the answer stays exact.
        let mut sets = Vec::new();
        let mut broad = Vec::new();
        for w in &words {
            match rx.items_with_term_prefix(w, max_term_rows)? {
                Some(ids) => sets.push(ids),
                None => broad.push(w.clone()),
            }
        }
        sets.sort_by_key(Vec::len);
        let mut sets = sets.into_iter();
        let ids = match sets.next() {
            Some(first) => sets.fold(first, |acc, s| {
                acc.into_iter()
                    .filter(|id| s.binary_search(id).is_ok())
                    .collect()
            }),
            // Every word is broad (e.g. one letter): rank the whole table.
            None => rx.all_item_ids()?,
        };
        let mut ranked: Vec<(u8, String, u64)> = Vec::with_capacity(ids.len());
        rx.search_rows(&ids, |id, lib, title, sort| {
            if !library_ok(lib) {
                return;
            }
            let group = if title == q {
                0
            } else if title.starts_with(&q) {
                1
            } else if title.contains(&q) {
                2
            } else {
                3
            };
            ranked.push((group, sort.to_owned(), id));
        })?;
        ranked.sort_unstable();
        let mut found = Vec::with_capacity(limit);
        for (_, _, id) in ranked {
            if let Some(item) = rx.item(id)?
                && broad.iter().all(|w| {
                    search_terms(&item)
                        .iter()
                        .any(|t| t.starts_with(w.as_str()))
                })
                && allowed(&item)
            {
                found.push(item);
                if found.len() == limit {
                    break;
                }
            }
        }
        Ok(found)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::library::{FileChange, LibraryKind};

    const WORDS: &[&str] = &[
        "the",
        "river",
        "riverside",
        "golden",
        "gold",
        "night",
        "garden",
        "a",
        "lost",
        "Théâtre",
        "upriver",
        "signal",
        "station",
        "2049",
    ];

    fn item(n: usize, folder_id: u64, library_id: u64) -> ItemRecord {
        let w = |k: usize| WORDS[(n * 7 + k * 3 + n / 5) % WORDS.len()];
        let title = match n % 5 {
            0 => format!("The {} {}", w(1), w(2)),
            1 => w(3).to_owned(),
            2 => format!("{} of the {}", w(4), w(5)),
            3 => format!("{}{} {}", w(6), w(7), w(8)),
            _ => format!("A {} ({n})", w(9)),
        };
        ItemRecord {
            library_id,
            folder_id,
            rel_path: format!("{n}.mkv"),
            kind: Some(ItemKind::Movie),
            sort_title: crate::library::names::sort_key(&title),
            title,
            tags: if n.is_multiple_of(4) {
                vec![w(10).to_owned()]
            } else {
                vec![]
            },
            people: if n.is_multiple_of(6) {
                vec![format!("Ana {}", w(11))]
            } else {
                vec![]
            },
            content_type: "video/x-matroska".into(),
            ..ItemRecord::default()
        }
    }

    /// The definition search must meet, by brute force over every item.
    fn reference(
        all: &[ItemRecord],
        query: &str,
        limit: usize,
        allowed: &dyn Fn(&ItemRecord) -> bool,
    ) -> Vec<u64> {
        let words = tokenize(query);
        if words.is_empty() {
            return Vec::new();
        }
        let q = query.trim().to_lowercase();
        let mut hits: Vec<&ItemRecord> = all
            .iter()
            .filter(|i| {
                let terms = search_terms(i);
                words
                    .iter()
                    .all(|w| terms.iter().any(|t| t.starts_with(w.as_str())))
                    && allowed(i)
            })
            .collect();
        hits.sort_by_key(|i| {
            let t = i.title.to_lowercase();
            (
                t != q,
                !t.starts_with(&q),
                !t.contains(&q),
                i.sort_title.clone(),
                i.id,
            )
        });
        hits.into_iter().take(limit).map(|i| i.id).collect()
    }

    fn ids(v: Vec<ItemRecord>) -> Vec<u64> {
        v.into_iter().map(|i| i.id).collect()
    }

    #[test]
    fn search_agrees_with_brute_force_ranking_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let store = Store::open(&path).unwrap();
        let lib = store
            .write(|tx| tx.create_library("Films", LibraryKind::Movies, &[dir.path().into()], 1))
            .unwrap();
        let folder = lib.folder_ids[0];
        let changes = (0..700)
            .map(|n| FileChange::Upsert(Box::new(item(n, folder, lib.id))))
            .collect();
        store.write(|tx| tx.apply_file_changes(changes, 5)).unwrap();
        // A renamed item and a removed one: the ranking rows follow.
        let mut renamed = item(3, folder, lib.id);
        renamed.title = "Zebra Crossing".into();
        renamed.sort_title = "zebra crossing".into();
        store
            .write(|tx| {
                tx.apply_file_changes(
                    vec![
                        FileChange::Upsert(Box::new(renamed)),
                        FileChange::Remove {
                            folder_id: folder,
                            rel_path: "8.mkv".into(),
                        },
                    ],
                    6,
                )
            })
            .unwrap();

        let check = |store: &Store| {
            let mut all = Vec::new();
            store
                .read(|rx| {
                    rx.visit_items(lib.id, ItemSort::Title, false, |i| {
                        all.push(i);
                        true
                    })
                })
                .unwrap();
            assert_eq!(all.len(), 699);
            let everyone: &dyn Fn(&ItemRecord) -> bool = &|_| true;
            let some: &dyn Fn(&ItemRecord) -> bool = &|i| i.id % 3 != 0;
            let queries = [
                "the",
                "river",
                "riv",
                "Gold",
                "golden",
                "t",
                "a",
                "the river",
                "night garden",
                "theatre",
                "théâtre",
                "2049",
                "ana",
                "zebra",
                "upriver",
                "nothing",
                "  ",
                "r g",
            ];
            for q in queries {
                for (name, allowed) in [("everyone", everyone), ("some", some)] {
                    for limit in [1, 5, 50, 500] {
                        let want = reference(&all, q, limit, allowed);
                        // The normal path, and the one for words too broad to read from the
                        // index (every word then checked on the item itself).
                        for cap in [MAX_TERM_ROWS, 1] {
                            let got = ids(
                                search_capped(store, q, limit, |_| true, allowed, cap).unwrap()
                            );
                            assert_eq!(got, want, "{q:?} for {name}, limit {limit}, cap {cap}");
                        }
                        // Another library only: nothing of this one is even read.
                        let none = search_in(
                            store,
                            q,
                            limit,
                            |l| l != lib.id,
                            |_| panic!("an item of a library the viewer may not see was read"),
                        );
                        assert!(none.unwrap().is_empty(), "{q:?}");
                    }
                }
            }
            assert!(!reference(&all, "the", 500, everyone).is_empty());
            assert!(ids(search(store, "zebra", 5, |_| true).unwrap()).contains(&4));
        };
        check(&store);

        // A database from before the ranking rows existed gets them rebuilt at open.
        store.write(|tx| tx.drop_search_rows()).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        check(&store);
    }
}
