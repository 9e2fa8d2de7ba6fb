//! Libraries, their folders, the media items found in them, and the indexes browsing and
//! search need. Every index row is written in the same transaction as its item, so an item
//! and its index entries always agree.
//!
//! Tables:
//! - `libraries` (id → record), `folders` (id → record);
//! - `items` (id → record);
//! - `library_files` ((folder, relative path) → (size, mtime ns, item id or 0 for a scan
//!   error)): what the incremental scanner compares a stat against;
//! - `items_by_title` / `items_by_year` / `items_by_added` ((library, key, item) → ()):
//!   sorted browsing without loading a whole library;
//! - `search_terms` ((term, item) → ()): prefix search over titles, people and tags;
//! - `search_rows` (item → (library, lower-case title, sort title)): what ranking search hits needs,
//!   without decoding whole items; derived from `items`, and rebuilt from it when missing;
//! - `scan_errors` ((folder, relative path) → record).

use std::collections::HashMap;
use std::path::PathBuf;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{JsonTable, Rx, StoreError, Tx, all_json, decode, encode, get_json, next_id};
use crate::model::media::{ContentRating, ItemOverride, ScannedFacts, VideoFacts, sort_key};

pub(super) const LIBRARIES: JsonTable<u64> = TableDefinition::new("libraries");
pub(super) const FOLDERS: JsonTable<u64> = TableDefinition::new("folders");
pub(super) const ITEMS: JsonTable<u64> = TableDefinition::new("items");
pub(super) const FILES: TableDefinition<(u64, &str), (u64, u64, u64)> =
    TableDefinition::new("library_files");
pub(super) const BY_TITLE: TableDefinition<(u64, &str, u64), ()> =
    TableDefinition::new("items_by_title");
pub(super) const BY_YEAR: TableDefinition<(u64, u64, u64), ()> =
    TableDefinition::new("items_by_year");
pub(super) const BY_ADDED: TableDefinition<(u64, u64, u64), ()> =
    TableDefinition::new("items_by_added");
pub(super) const TERMS: TableDefinition<(&str, u64), ()> = TableDefinition::new("search_terms");
pub(super) const SCAN_ERRORS: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("scan_errors");
pub(super) const SEARCH_ROWS: TableDefinition<u64, (u64, &str, &str)> =
    TableDefinition::new("search_rows");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(LIBRARIES)?;
    tx.open_table(FOLDERS)?;
    tx.open_table(ITEMS)?;
    tx.open_table(FILES)?;
    tx.open_table(BY_TITLE)?;
    tx.open_table(BY_YEAR)?;
    tx.open_table(BY_ADDED)?;
    tx.open_table(TERMS)?;
    tx.open_table(SCAN_ERRORS)?;
    // `search_rows` is derived from `items`: a database written before it existed (or one
    // whose rows were lost) gets it rebuilt here, once, instead of a schema step.
    let mut rows = tx.open_table(SEARCH_ROWS)?;
    if rows.is_empty()? {
        let items = tx.open_table(ITEMS)?;
        for row in items.iter()? {
            let (k, v) = row?;
            let item: ItemRecord = decode(v.value())?;
            rows.insert(
                k.value(),
                (
                    item.library_id,
                    item.title.to_lowercase().as_str(),
                    item.sort_title.as_str(),
                ),
            )?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LibraryKind {
    Movies,
    Shows,
    Music,
    Photos,
    Videos,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LibraryRecord {
    pub id: u64,
    pub name: String,
    pub kind: LibraryKind,
    pub folder_ids: Vec<u64>,
    pub created_at: u64,
    /// End of the last finished scan (Unix seconds).
    pub last_scan: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FolderRecord {
    pub id: u64,
    pub library_id: u64,
    /// Canonical absolute path of the folder; the scanner never leaves it.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Movie,
    Episode,
    Track,
    Photo,
    Video,
}

/// A subtitle file next to a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubtitleRef {
    /// Relative to the item's folder root.
    pub rel_path: String,
    pub language: Option<String>,
    /// `srt`, `vtt`, `ass`.
    pub format: String,
}

/// One playable (or viewable) file and what we know about it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ItemRecord {
    pub id: u64,
    pub library_id: u64,
    pub folder_id: u64,
    /// Relative to the folder root, `/`-separated, never containing `..`.
    pub rel_path: String,
    pub kind: Option<ItemKind>,
    pub title: String,
    pub sort_title: String,
    pub year: Option<u16>,
    pub plot: Option<String>,
    pub genres: Vec<String>,
    pub tags: Vec<String>,
    pub people: Vec<String>,
    pub rating: Option<ContentRating>,
    pub show: Option<String>,
    pub season: Option<u32>,
    pub episode: Option<u32>,
    pub episode_end: Option<u32>,
    pub air_date: Option<String>,
    pub part: Option<u32>,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub track: Option<u32>,
    pub disc: Option<u32>,
    pub taken_at: Option<String>,
    pub orientation: Option<u16>,
    pub duration_ms: Option<u64>,
    pub video: Option<VideoFacts>,
    /// Poster / folder / cover image, relative to the folder root.
    pub artwork: Option<String>,
    pub fanart: Option<String>,
    pub subtitles: Vec<SubtitleRef>,
    pub content_type: String,
    pub size: u64,
    pub mtime_ns: u64,
    /// When this file first appeared in the library (Unix seconds).
    pub added_at: u64,
    /// The owner's corrections, already applied to `title`, `sort_title`, `year`, `rating`
    /// and `tags` above, so every reader (lists, search, policy, DLNA) sees the same facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<ItemOverride>,
    /// What the scanner found for the overridden fields, while an override is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned: Option<ScannedFacts>,
}

impl ItemRecord {
    /// The facts as the scanner found them (undoing any override).
    pub fn scanned_facts(&self) -> ScannedFacts {
        self.scanned.clone().unwrap_or_else(|| ScannedFacts {
            title: self.title.clone(),
            sort_title: self.sort_title.clone(),
            year: self.year,
            rating: self.rating.clone(),
            tags: self.tags.clone(),
        })
    }

    /// Puts the scanned facts back, then applies `ov` (a checked override) on top of them.
    /// `None` or an empty override leaves the scanned facts.
    pub fn apply_override(&mut self, ov: Option<ItemOverride>) {
        let facts = self.scanned_facts();
        self.title = facts.title.clone();
        self.sort_title = facts.sort_title.clone();
        self.year = facts.year;
        self.rating = facts.rating.clone();
        self.tags = facts.tags.clone();
        self.overrides = None;
        self.scanned = None;
        let Some(ov) = ov.filter(|o| !o.is_empty()) else {
            return;
        };
        if let Some(t) = &ov.title {
            self.title = t.clone();
            self.sort_title = sort_key(t);
        }
        if let Some(y) = ov.year {
            self.year = Some(y);
        }
        if let Some(r) = &ov.rating {
            self.rating = ContentRating::parse(r);
        }
        if let Some(l) = &ov.labels {
            self.tags = l.clone();
        }
        self.overrides = Some(ov);
        self.scanned = Some(facts);
    }
}

/// A file the scanner could not use, with a sentence saying why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanErrorRecord {
    pub library_id: u64,
    pub folder_id: u64,
    pub rel_path: String,
    pub message: String,
    pub at: u64,
}

/// What the scanner found for one file.
#[derive(Debug, Clone)]
pub enum FileChange {
    /// New or changed; `item.id`, `item.added_at` are filled in here for new files.
    Upsert(Box<ItemRecord>),
    /// The file exists but cannot be used. `size`/`mtime_ns` let a rescan skip it until it
    /// changes.
    Error {
        library_id: u64,
        folder_id: u64,
        rel_path: String,
        size: u64,
        mtime_ns: u64,
        message: String,
    },
    /// A problem with no file behind it to remember (a symlink pointing outside).
    Note {
        library_id: u64,
        folder_id: u64,
        rel_path: String,
        message: String,
    },
    /// The file is gone.
    Remove { folder_id: u64, rel_path: String },
}

/// Sort orders the item indexes serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemSort {
    Title,
    Year,
    Added,
}

/// Words an item can be found by: lower-case runs of letters and digits.
pub fn search_terms(item: &ItemRecord) -> Vec<String> {
    let mut texts: Vec<&str> = vec![item.title.as_str()];
    for s in [&item.show, &item.artist, &item.album]
        .into_iter()
        .flatten()
    {
        texts.push(s);
    }
    texts.extend(item.tags.iter().map(String::as_str));
    texts.extend(item.genres.iter().map(String::as_str));
    texts.extend(item.people.iter().map(String::as_str));
    let mut terms: Vec<String> = texts.iter().flat_map(|t| tokenize(t)).collect();
    terms.sort();
    terms.dedup();
    terms.truncate(256);
    terms
}

/// Splits text into search terms; queries and items use the same rule.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().chars().take(64).collect())
        .collect()
}

impl Tx<'_> {
    /// Tests: loses the derived `search_rows` table, as a database from before it had.
    #[cfg(test)]
    pub(crate) fn drop_search_rows(&self) -> Result<(), StoreError> {
        self.tx.delete_table(SEARCH_ROWS)?;
        Ok(())
    }

    /// Creates a library with its folders (paths already checked and canonical).
    pub fn create_library(
        &self,
        name: &str,
        kind: LibraryKind,
        paths: &[PathBuf],
        now: u64,
    ) -> Result<LibraryRecord, StoreError> {
        let id = next_id(self.tx, "next_library_id")?;
        let mut folders = self.tx.open_table(FOLDERS)?;
        let mut folder_ids = Vec::new();
        for path in paths {
            let fid = next_id(self.tx, "next_folder_id")?;
            let rec = FolderRecord {
                id: fid,
                library_id: id,
                path: path.clone(),
            };
            folders.insert(fid, encode(&rec)?.as_slice())?;
            folder_ids.push(fid);
        }
        let lib = LibraryRecord {
            id,
            name: name.to_owned(),
            kind,
            folder_ids,
            created_at: now,
            last_scan: None,
        };
        self.tx
            .open_table(LIBRARIES)?
            .insert(id, encode(&lib)?.as_slice())?;
        Ok(lib)
    }

    pub fn library(&self, id: u64) -> Result<Option<LibraryRecord>, StoreError> {
        get_json(&self.tx.open_table(LIBRARIES)?, id)
    }

    pub fn libraries(&self) -> Result<Vec<LibraryRecord>, StoreError> {
        all_json(&self.tx.open_table(LIBRARIES)?)
    }

    pub fn set_library_scanned(&self, id: u64, at: u64) -> Result<(), StoreError> {
        let mut libs = self.tx.open_table(LIBRARIES)?;
        let lib: Option<LibraryRecord> = get_json(&libs, id)?;
        if let Some(mut lib) = lib {
            lib.last_scan = Some(at);
            libs.insert(id, encode(&lib)?.as_slice())?;
        }
        Ok(())
    }

    /// Applies a batch of scanner findings; the caller commits them as one transaction.
    pub fn apply_file_changes(&self, changes: Vec<FileChange>, now: u64) -> Result<(), StoreError> {
        let mut t = Tables {
            items: self.tx.open_table(ITEMS)?,
            files: self.tx.open_table(FILES)?,
            by_title: self.tx.open_table(BY_TITLE)?,
            by_year: self.tx.open_table(BY_YEAR)?,
            by_added: self.tx.open_table(BY_ADDED)?,
            terms: self.tx.open_table(TERMS)?,
            rows: self.tx.open_table(SEARCH_ROWS)?,
            errors: self.tx.open_table(SCAN_ERRORS)?,
        };
        for change in changes {
            match change {
                FileChange::Upsert(mut item) => {
                    let old_id = t
                        .files
                        .get((item.folder_id, item.rel_path.as_str()))?
                        .map(|v| v.value().2)
                        .unwrap_or(0);
                    let old: Option<ItemRecord> = if old_id != 0 {
                        get_json(&t.items, old_id)?
                    } else {
                        None
                    };
                    if let Some(old) = &old {
                        t.unindex(old)?;
                        item.id = old.id;
                        item.added_at = old.added_at;
                        // A rescan refreshes the scanned facts; the owner's corrections stay.
                        item.scanned = None;
                        item.apply_override(old.overrides.clone());
                    } else {
                        item.id = next_id(self.tx, "next_item_id")?;
                        item.added_at = now;
                    }
                    t.errors.remove((item.folder_id, item.rel_path.as_str()))?;
                    t.files.insert(
                        (item.folder_id, item.rel_path.as_str()),
                        (item.size, item.mtime_ns, item.id),
                    )?;
                    t.index(&item)?;
                    t.items.insert(item.id, encode(&*item)?.as_slice())?;
                }
                FileChange::Error {
                    library_id,
                    folder_id,
                    rel_path,
                    size,
                    mtime_ns,
                    message,
                } => {
                    t.remove_item_at(folder_id, &rel_path)?;
                    t.files
                        .insert((folder_id, rel_path.as_str()), (size, mtime_ns, 0))?;
                    let rec = ScanErrorRecord {
                        library_id,
                        folder_id,
                        rel_path: rel_path.clone(),
                        message,
                        at: now,
                    };
                    t.errors
                        .insert((folder_id, rel_path.as_str()), encode(&rec)?.as_slice())?;
                }
                FileChange::Note {
                    library_id,
                    folder_id,
                    rel_path,
                    message,
                } => {
                    let rec = ScanErrorRecord {
                        library_id,
                        folder_id,
                        rel_path: rel_path.clone(),
                        message,
                        at: now,
                    };
                    t.errors
                        .insert((folder_id, rel_path.as_str()), encode(&rec)?.as_slice())?;
                }
                FileChange::Remove {
                    folder_id,
                    rel_path,
                } => {
                    t.remove_item_at(folder_id, &rel_path)?;
                    t.files.remove((folder_id, rel_path.as_str()))?;
                    t.errors.remove((folder_id, rel_path.as_str()))?;
                }
            }
        }
        Ok(())
    }

    pub fn item(&self, id: u64) -> Result<Option<ItemRecord>, StoreError> {
        get_json(&self.tx.open_table(ITEMS)?, id)
    }

    /// Sets (or with `None` removes) the owner's override of an item's facts, re-indexing it
    /// in the same transaction. `None` if there is no such item.
    pub fn set_item_override(
        &self,
        id: u64,
        ov: Option<ItemOverride>,
    ) -> Result<Option<ItemRecord>, StoreError> {
        let mut t = Tables {
            items: self.tx.open_table(ITEMS)?,
            files: self.tx.open_table(FILES)?,
            by_title: self.tx.open_table(BY_TITLE)?,
            by_year: self.tx.open_table(BY_YEAR)?,
            by_added: self.tx.open_table(BY_ADDED)?,
            terms: self.tx.open_table(TERMS)?,
            rows: self.tx.open_table(SEARCH_ROWS)?,
            errors: self.tx.open_table(SCAN_ERRORS)?,
        };
        let Some(mut item): Option<ItemRecord> = get_json(&t.items, id)? else {
            return Ok(None);
        };
        t.unindex(&item)?;
        item.apply_override(ov);
        t.index(&item)?;
        t.items.insert(item.id, encode(&item)?.as_slice())?;
        Ok(Some(item))
    }

    /// Drops notes (errors without a remembered file) of a folder before a new scan
    /// re-finds them.
    pub fn clear_scan_notes(&self, folder_id: u64) -> Result<(), StoreError> {
        let files = self.tx.open_table(FILES)?;
        let mut errors = self.tx.open_table(SCAN_ERRORS)?;
        let mut stale = Vec::new();
        for row in errors.range((folder_id, "")..(folder_id + 1, ""))? {
            let (k, _) = row?;
            let (f, rel) = k.value();
            if files.get((f, rel))?.is_none() {
                stale.push(rel.to_owned());
            }
        }
        for rel in stale {
            errors.remove((folder_id, rel.as_str()))?;
        }
        Ok(())
    }
}

struct Tables<'t> {
    items: redb::Table<'t, u64, &'static [u8]>,
    files: redb::Table<'t, (u64, &'static str), (u64, u64, u64)>,
    by_title: redb::Table<'t, (u64, &'static str, u64), ()>,
    by_year: redb::Table<'t, (u64, u64, u64), ()>,
    by_added: redb::Table<'t, (u64, u64, u64), ()>,
    terms: redb::Table<'t, (&'static str, u64), ()>,
    rows: redb::Table<'t, u64, (u64, &'static str, &'static str)>,
    errors: redb::Table<'t, (u64, &'static str), &'static [u8]>,
}

impl Tables<'_> {
    fn index(&mut self, item: &ItemRecord) -> Result<(), StoreError> {
        let lib = item.library_id;
        self.by_title
            .insert((lib, item.sort_title.as_str(), item.id), ())?;
        self.by_year
            .insert((lib, item.year.unwrap_or(0) as u64, item.id), ())?;
        self.by_added.insert((lib, item.added_at, item.id), ())?;
        for term in search_terms(item) {
            self.terms.insert((term.as_str(), item.id), ())?;
        }
        self.rows.insert(
            item.id,
            (
                item.library_id,
                item.title.to_lowercase().as_str(),
                item.sort_title.as_str(),
            ),
        )?;
        Ok(())
    }

    fn unindex(&mut self, item: &ItemRecord) -> Result<(), StoreError> {
        let lib = item.library_id;
        self.by_title
            .remove((lib, item.sort_title.as_str(), item.id))?;
        self.by_year
            .remove((lib, item.year.unwrap_or(0) as u64, item.id))?;
        self.by_added.remove((lib, item.added_at, item.id))?;
        for term in search_terms(item) {
            self.terms.remove((term.as_str(), item.id))?;
        }
        self.rows.remove(item.id)?;
        Ok(())
    }

    fn remove_item_at(&mut self, folder_id: u64, rel_path: &str) -> Result<(), StoreError> {
        let id = self
            .files
            .get((folder_id, rel_path))?
            .map(|v| v.value().2)
            .unwrap_or(0);
        if id == 0 {
            return Ok(());
        }
        let old: Option<ItemRecord> = get_json(&self.items, id)?;
        if let Some(old) = old {
            self.unindex(&old)?;
            self.items.remove(id)?;
        }
        Ok(())
    }
}

impl Rx {
    pub fn library(&self, id: u64) -> Result<Option<LibraryRecord>, StoreError> {
        get_json(&self.tx.open_table(LIBRARIES)?, id)
    }

    pub fn libraries(&self) -> Result<Vec<LibraryRecord>, StoreError> {
        all_json(&self.tx.open_table(LIBRARIES)?)
    }

    pub fn folder(&self, id: u64) -> Result<Option<FolderRecord>, StoreError> {
        get_json(&self.tx.open_table(FOLDERS)?, id)
    }

    pub fn folders(&self) -> Result<Vec<FolderRecord>, StoreError> {
        all_json(&self.tx.open_table(FOLDERS)?)
    }

    pub fn item(&self, id: u64) -> Result<Option<ItemRecord>, StoreError> {
        get_json(&self.tx.open_table(ITEMS)?, id)
    }

    /// Everything the scanner remembers about a folder's files: relative path →
    /// (size, mtime ns, item id or 0).
    pub fn known_files(
        &self,
        folder_id: u64,
    ) -> Result<HashMap<String, (u64, u64, u64)>, StoreError> {
        let files = self.tx.open_table(FILES)?;
        let mut out = HashMap::new();
        for row in files.range((folder_id, "")..(folder_id + 1, ""))? {
            let (k, v) = row?;
            out.insert(k.value().1.to_owned(), v.value());
        }
        Ok(out)
    }

    /// How many files the scanner remembers in a folder.
    pub fn file_count(&self, folder_id: u64) -> Result<u64, StoreError> {
        let files = self.tx.open_table(FILES)?;
        let mut n = 0;
        for row in files.range((folder_id, "")..(folder_id + 1, ""))? {
            row?;
            n += 1;
        }
        Ok(n)
    }

    /// Walks a library's items in `sort` order (reversed if `descending`), decoding one at a
    /// time, until `visit` returns `false`.
    pub fn visit_items(
        &self,
        library_id: u64,
        sort: ItemSort,
        descending: bool,
        mut visit: impl FnMut(ItemRecord) -> bool,
    ) -> Result<(), StoreError> {
        let items = self.tx.open_table(ITEMS)?;
        let mut on_id = |id: u64| -> Result<bool, StoreError> {
            match items.get(id)? {
                Some(v) => Ok(visit(decode(v.value())?)),
                None => Ok(true),
            }
        };
        macro_rules! walk {
            ($table:expr, $lo:expr, $hi:expr) => {{
                let table = self.tx.open_table($table)?;
                let range = table.range($lo..$hi)?;
                if descending {
                    for row in range.rev() {
                        if !on_id(row?.0.value().2)? {
                            break;
                        }
                    }
                } else {
                    for row in range {
                        if !on_id(row?.0.value().2)? {
                            break;
                        }
                    }
                }
            }};
        }
        match sort {
            ItemSort::Title => walk!(BY_TITLE, (library_id, "", 0), (library_id + 1, "", 0)),
            ItemSort::Year => walk!(BY_YEAR, (library_id, 0, 0), (library_id + 1, 0, 0)),
            ItemSort::Added => walk!(BY_ADDED, (library_id, 0, 0), (library_id + 1, 0, 0)),
        }
        Ok(())
    }

    /// Item ids having a term that starts with `prefix`, sorted, at most `cap` index rows
    /// looked at (`None` when the cap was hit: the answer would be incomplete).
    pub fn items_with_term_prefix(
        &self,
        prefix: &str,
        cap: usize,
    ) -> Result<Option<Vec<u64>>, StoreError> {
        let terms = self.tx.open_table(TERMS)?;
        let mut out = Vec::new();
        for row in terms.range((prefix, 0)..)? {
            let (k, _) = row?;
            let (term, id) = k.value();
            if !term.starts_with(prefix) {
                break;
            }
            if out.len() >= cap {
                return Ok(None);
            }
            out.push(id);
        }
        out.sort_unstable();
        out.dedup();
        Ok(Some(out))
    }

    /// Every item id, sorted.
    pub fn all_item_ids(&self) -> Result<Vec<u64>, StoreError> {
        let rows = self.tx.open_table(SEARCH_ROWS)?;
        let mut out = Vec::new();
        for row in rows.iter()? {
            out.push(row?.0.value());
        }
        Ok(out)
    }

    /// The library, lower-case title and sort title of each of `ids` (sorted), for ranking
    /// search hits; `visit(id, library, title, sort_title)`. Many ids are read in one ordered pass over the
    /// table, a few by point look-ups.
    pub fn search_rows(
        &self,
        ids: &[u64],
        mut visit: impl FnMut(u64, u64, &str, &str),
    ) -> Result<(), StoreError> {
        let rows = self.tx.open_table(SEARCH_ROWS)?;
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            return Ok(());
        };
        if ids.len() < 256 {
            for &id in ids {
                if let Some(v) = rows.get(id)? {
                    let (lib, title, sort) = v.value();
                    visit(id, lib, title, sort);
                }
            }
            return Ok(());
        }
        let mut want = ids.iter().copied().peekable();
        for row in rows.range(first..=last)? {
            let (k, v) = row?;
            let id = k.value();
            while want.next_if(|w| *w < id).is_some() {}
            if want.next_if_eq(&id).is_some() {
                let (lib, title, sort) = v.value();
                visit(id, lib, title, sort);
            }
            if want.peek().is_none() {
                break;
            }
        }
        Ok(())
    }

    pub fn scan_errors(&self, library_id: u64) -> Result<Vec<ScanErrorRecord>, StoreError> {
        let errors = self.tx.open_table(SCAN_ERRORS)?;
        let mut out = Vec::new();
        for row in errors.iter()? {
            let (_, v) = row?;
            let rec: ScanErrorRecord = decode(v.value())?;
            if rec.library_id == library_id {
                out.push(rec);
            }
        }
        Ok(out)
    }

    pub fn item_count(&self, library_id: u64) -> Result<u64, StoreError> {
        let t = self.tx.open_table(BY_ADDED)?;
        let mut n = 0;
        for row in t.range((library_id, 0, 0)..(library_id + 1, 0, 0))? {
            row?;
            n += 1;
        }
        Ok(n)
    }
}
