//! The scanner: walks a library's folders with a few threads, turns media files into items
//! and unusable files into scan errors, and commits what it found in batches, one redb
//! transaction each.
//!
//! Security-sensitive: it guards the library roots. The walk never follows a symbolic link
//! (entries are classified with `lstat`, files are opened with `O_NOFOLLOW`), never builds a
//! path from anything but names read from a directory (which cannot be `.`/`..` or contain
//! `/`), and a link pointing outside the root is reported, not read.
//!
//! Incremental: the database remembers each file's size and modification time (folded
//! together with its sidecars' times); a file whose stat matches is not opened again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde::Serialize;

use super::names;
use super::nfo::{self, ContentRating, Nfo};
use super::probe::{self, ProbeError};
use crate::store::library::{
    FileChange, FolderRecord, ItemKind, ItemRecord, LibraryKind, LibraryRecord, SubtitleRef,
};
use crate::store::{Store, StoreError};

/// Findings committed per transaction: big enough to amortise the commit, small enough
/// that progress shows up in the database while a long scan runs.
const BATCH: usize = 512;
/// Directory depth the walk goes to; deeper trees are reported, not followed.
const MAX_DEPTH: usize = 32;

/// Counters a running scan updates and anyone may read at any time.
#[derive(Debug, Default)]
pub struct ScanProgress {
    pub running: AtomicBool,
    pub files_expected: AtomicU64,
    pub files_seen: AtomicU64,
    pub new: AtomicU64,
    pub changed: AtomicU64,
    pub removed: AtomicU64,
    pub errors: AtomicU64,
    pub started_at: AtomicU64,
    pub finished_at: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct ProgressSnapshot {
    pub running: bool,
    /// Media files the library's folders held at the last scan (0 before the first one):
    /// about what `files_seen` will reach, so a progress bar's 100%. A first scan has no
    /// such number; show it as busy instead.
    pub files_expected: u64,
    /// Media files looked at so far.
    pub files_seen: u64,
    pub new: u64,
    pub changed: u64,
    pub removed: u64,
    pub errors: u64,
    pub started_at: u64,
    pub finished_at: u64,
}

impl ScanProgress {
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            running: self.running.load(Ordering::Relaxed),
            files_expected: self.files_expected.load(Ordering::Relaxed),
            files_seen: self.files_seen.load(Ordering::Relaxed),
            new: self.new.load(Ordering::Relaxed),
            changed: self.changed.load(Ordering::Relaxed),
            removed: self.removed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            started_at: self.started_at.load(Ordering::Relaxed),
            finished_at: self.finished_at.load(Ordering::Relaxed),
        }
    }

    fn reset(&self, now: u64) {
        for c in [
            &self.files_expected,
            &self.files_seen,
            &self.new,
            &self.changed,
            &self.removed,
            &self.errors,
            &self.finished_at,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.started_at.store(now, Ordering::Relaxed);
        self.running.store(true, Ordering::Relaxed);
    }
}

/// Called with a file's full path just before it is read; tests use it to change the tree
/// mid-scan.
pub type BeforeRead = Arc<dyn Fn(&Path) + Send + Sync>;

#[derive(Clone)]
pub struct ScanOptions {
    pub threads: usize,
    pub before_read: Option<BeforeRead>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        ScanOptions {
            threads: cores.clamp(2, 4),
            before_read: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("there is no library {0}")]
    NoLibrary(u64),
    #[error(
        "the folder {0} cannot be read (is its disk unplugged?); its items are kept until it is back"
    )]
    FolderOffline(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one scan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScanSummary {
    pub files_seen: u64,
    pub new: u64,
    pub changed: u64,
    pub removed: u64,
    pub errors: u64,
    /// Folders skipped because they could not be read.
    pub offline_folders: u64,
}

/// Scans every folder of a library. Blocking: run it on its own thread.
pub fn scan_library(
    store: &Store,
    library_id: u64,
    progress: &ScanProgress,
    options: &ScanOptions,
) -> Result<ScanSummary, ScanError> {
    let (lib, folders) = store.read(|rx| {
        let lib = rx.library(library_id)?;
        let mut folders = Vec::new();
        if let Some(lib) = &lib {
            for id in &lib.folder_ids {
                if let Some(f) = rx.folder(*id)? {
                    folders.push(f);
                }
            }
        }
        Ok::<_, StoreError>((lib, folders))
    })?;
    let lib = lib.ok_or(ScanError::NoLibrary(library_id))?;
    progress.reset(crate::model::clock::now_secs());
    let expected = store.read(|rx| {
        folders
            .iter()
            .try_fold(0, |n, f| Ok::<_, StoreError>(n + rx.file_count(f.id)?))
    })?;
    progress.files_expected.store(expected, Ordering::Relaxed);
    let mut summary = ScanSummary::default();
    let mut result = Ok(());
    for folder in &folders {
        match scan_folder(store, &lib, folder, progress, options) {
            Ok(()) => {}
            Err(ScanError::FolderOffline(path)) => {
                tracing::warn!(%path, "library folder is offline; keeping its items");
                summary.offline_folders += 1;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let now = crate::model::clock::now_secs();
    if result.is_ok() {
        store.write(|tx| tx.set_library_scanned(library_id, now))?;
    }
    progress.finished_at.store(now, Ordering::Relaxed);
    progress.running.store(false, Ordering::Relaxed);
    result?;
    let s = progress.snapshot();
    summary.files_seen = s.files_seen;
    summary.new = s.new;
    summary.changed = s.changed;
    summary.removed = s.removed;
    summary.errors = s.errors;
    Ok(summary)
}

/// What a directory passes down to its subdirectories.
#[derive(Clone, Default)]
struct Inherited {
    /// The show folder's `tvshow.nfo` (shows libraries).
    show: Option<Arc<ShowInfo>>,
    season: Option<u32>,
    /// Newest modification time of sidecars above this directory that items depend on.
    sidecar_mtime: u64,
}

#[derive(Default)]
struct ShowInfo {
    title: String,
    nfo: Option<Nfo>,
    artwork: Option<String>,
    fanart: Option<String>,
}

struct DirJob {
    rel: String,
    depth: usize,
    inherited: Inherited,
}

enum Found {
    /// Paths looked at and still present (unchanged or handled in `changes`).
    Seen(Vec<String>),
    Changes(Vec<(FileChange, Kind)>),
    /// A directory could not be read; nothing under it may be removed.
    Unreadable(String),
}

#[derive(Clone, Copy)]
enum Kind {
    New,
    Changed,
    Error,
    Note,
}

struct Queue {
    state: Mutex<(VecDeque<DirJob>, usize)>,
    ready: Condvar,
}

struct Walk<'a> {
    lib: &'a LibraryRecord,
    folder: &'a FolderRecord,
    root: PathBuf,
    known: &'a HashMap<String, (u64, u64, u64)>,
    progress: &'a ScanProgress,
    options: &'a ScanOptions,
}

fn scan_folder(
    store: &Store,
    lib: &LibraryRecord,
    folder: &FolderRecord,
    progress: &ScanProgress,
    options: &ScanOptions,
) -> Result<(), ScanError> {
    let root = folder.path.clone();
    let offline = || ScanError::FolderOffline(root.display().to_string());
    // The root itself must still be a real directory (not a link swapped in for it).
    match std::fs::symlink_metadata(&root) {
        Ok(m) if m.is_dir() => {}
        _ => return Err(offline()),
    }
    if std::fs::read_dir(&root).is_err() {
        return Err(offline());
    }
    let known = store.read(|rx| rx.known_files(folder.id))?;
    store.write(|tx| tx.clear_scan_notes(folder.id))?;

    let queue = Queue {
        state: Mutex::new((
            VecDeque::from([DirJob {
                rel: String::new(),
                depth: 0,
                inherited: Inherited::default(),
            }]),
            1,
        )),
        ready: Condvar::new(),
    };
    let walk = Walk {
        lib,
        folder,
        root: root.clone(),
        known: &known,
        progress,
        options,
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Found>(64);
    let mut seen: HashSet<String> = HashSet::with_capacity(known.len());
    let mut unreadable: Vec<String> = Vec::new();
    let mut outcome: Result<(), ScanError> = Ok(());
    std::thread::scope(|s| {
        for _ in 0..options.threads.max(1) {
            let tx = tx.clone();
            let walk = &walk;
            let queue = &queue;
            s.spawn(move || worker(walk, queue, tx));
        }
        drop(tx);
        let mut batch: Vec<FileChange> = Vec::new();
        for found in rx {
            match found {
                Found::Seen(paths) => seen.extend(paths),
                Found::Changes(changes) => {
                    for (change, kind) in changes {
                        // Anything written in this scan is present, whatever `known` said.
                        match &change {
                            FileChange::Upsert(item) => {
                                seen.insert(item.rel_path.clone());
                            }
                            FileChange::Error { rel_path, .. } => {
                                seen.insert(rel_path.clone());
                            }
                            _ => {}
                        }
                        let counter = match kind {
                            Kind::New => &progress.new,
                            Kind::Changed => &progress.changed,
                            Kind::Error | Kind::Note => &progress.errors,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        batch.push(change);
                    }
                    if batch.len() >= BATCH && outcome.is_ok() {
                        outcome = commit(store, std::mem::take(&mut batch));
                    }
                }
                Found::Unreadable(rel) => unreadable.push(rel),
            }
        }
        if outcome.is_ok() && !batch.is_empty() {
            outcome = commit(store, batch);
        }
    });
    outcome?;

    // Whatever the database knows and the walk did not see is gone, unless it lies under a
    // directory that could not be read this time.
    let gone: Vec<FileChange> = known
        .keys()
        .filter(|rel| !seen.contains(*rel))
        .filter(|rel| {
            !unreadable
                .iter()
                .any(|dir| dir.is_empty() || rel.starts_with(&format!("{dir}/")))
        })
        .map(|rel| FileChange::Remove {
            folder_id: folder.id,
            rel_path: rel.clone(),
        })
        .collect();
    for chunk in gone.chunks(BATCH) {
        progress
            .removed
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        commit(store, chunk.to_vec())?;
    }
    Ok(())
}

fn commit(store: &Store, changes: Vec<FileChange>) -> Result<(), ScanError> {
    let now = crate::model::clock::now_secs();
    // Batches are flushed by the durable write that ends every scan
    // (`set_library_scanned`); a crash before it loses only this scan's progress.
    store.write_unflushed(|tx| tx.apply_file_changes(changes, now))?;
    Ok(())
}

fn worker(walk: &Walk<'_>, queue: &Queue, tx: std::sync::mpsc::SyncSender<Found>) {
    loop {
        let job = {
            let Ok(mut state) = queue.state.lock() else {
                return;
            };
            loop {
                if let Some(job) = state.0.pop_front() {
                    break job;
                }
                if state.1 == 0 {
                    queue.ready.notify_all();
                    return;
                }
                state = match queue.ready.wait(state) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
        };
        let subdirs = scan_dir(walk, &job, &tx);
        if let Ok(mut state) = queue.state.lock() {
            state.1 += subdirs.len();
            state.0.extend(subdirs);
            state.1 -= 1;
        }
        queue.ready.notify_all();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FileClass {
    Video,
    Audio,
    Photo,
    Nfo,
    Subtitle,
    Other,
}

fn extension(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

fn classify(name: &str) -> FileClass {
    match extension(name).as_str() {
        "mkv" | "webm" | "mp4" | "m4v" | "mov" | "avi" | "ts" | "m2ts" | "mts" | "mpg" | "mpeg"
        | "wmv" | "ogv" | "flv" => FileClass::Video,
        "flac" | "mp3" | "m4a" | "aac" | "ogg" | "oga" | "opus" | "wav" | "aiff" | "aif"
        | "wma" | "ape" | "wv" | "mka" => FileClass::Audio,
        "jpg" | "jpeg" | "png" | "gif" | "webp" | "heic" | "heif" | "avif" | "tif" | "tiff" => {
            FileClass::Photo
        }
        "nfo" => FileClass::Nfo,
        "srt" | "vtt" | "ass" | "ssa" => FileClass::Subtitle,
        _ => FileClass::Other,
    }
}

/// The MIME type a browser needs to play or show a file.
pub fn content_type(name: &str) -> &'static str {
    match extension(name).as_str() {
        "mkv" | "mka" => "video/x-matroska",
        "webm" => "video/webm",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "avi" => "video/x-msvideo",
        "ts" | "m2ts" | "mts" => "video/mp2t",
        "mpg" | "mpeg" => "video/mpeg",
        "wmv" => "video/x-ms-wmv",
        "ogv" => "video/ogg",
        "flv" => "video/x-flv",
        "flac" => "audio/flac",
        "mp3" => "audio/mpeg",
        "m4a" | "aac" => "audio/mp4",
        "ogg" | "oga" => "audio/ogg",
        "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "aiff" | "aif" => "audio/aiff",
        "wma" => "audio/x-ms-wma",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" | "heif" => "image/heic",
        "avif" => "image/avif",
        "tif" | "tiff" => "image/tiff",
        "srt" => "application/x-subrip",
        "vtt" => "text/vtt",
        "ass" | "ssa" => "text/x-ssa",
        _ => "application/octet-stream",
    }
}

fn mtime_ns(m: &Metadata) -> u64 {
    (m.mtime().max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec().max(0) as u64)
}

fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

struct Entry {
    name: String,
    size: u64,
    mtime: u64,
}

/// Lists one directory, handles its files, and returns its subdirectories to walk.
fn scan_dir(walk: &Walk<'_>, job: &DirJob, tx: &std::sync::mpsc::SyncSender<Found>) -> Vec<DirJob> {
    let dir_path = if job.rel.is_empty() {
        walk.root.clone()
    } else {
        walk.root.join(&job.rel)
    };
    let note = |rel: String, message: String| {
        (
            FileChange::Note {
                library_id: walk.lib.id,
                folder_id: walk.folder.id,
                rel_path: rel,
                message,
            },
            Kind::Note,
        )
    };
    let mut changes: Vec<(FileChange, Kind)> = Vec::new();
    let reader = match std::fs::read_dir(&dir_path) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Found::Unreadable(job.rel.clone()));
            let _ = tx.send(Found::Changes(vec![note(
                job.rel.clone(),
                format!("this folder could not be read ({e}); check its permissions"),
            )]));
            return Vec::new();
        }
    };
    let mut files: Vec<Entry> = Vec::new();
    let mut subdirs: Vec<String> = Vec::new();
    for entry in reader {
        let Ok(entry) = entry else { continue };
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str().map(str::to_owned) else {
            changes.push(note(
                join_rel(&job.rel, &os_name.to_string_lossy()),
                "this name is not valid UTF-8; rename it to be scanned".into(),
            ));
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        // lstat: a symbolic link is seen as a link, never as what it points to.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target_inside = std::fs::canonicalize(entry.path())
                .map(|t| t.starts_with(&walk.root))
                .unwrap_or(false);
            if !target_inside {
                changes.push(note(
                    join_rel(&job.rel, &name),
                    "this is a symbolic link pointing outside the library folder; it was skipped"
                        .into(),
                ));
            }
            // Links inside the root only repeat what the walk finds anyway.
            continue;
        }
        if ft.is_dir() {
            subdirs.push(name);
        } else if ft.is_file() {
            files.push(Entry {
                name,
                size: meta.len(),
                mtime: mtime_ns(&meta),
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));

    let mut inherited = job.inherited.clone();
    let dir_name = job.rel.rsplit('/').next().unwrap_or("").to_owned();
    let kind = walk.lib.kind;

    // Sidecars of this directory.
    let sidecar_mtime = files
        .iter()
        .filter(|f| {
            !matches!(classify(&f.name), FileClass::Video | FileClass::Audio)
                && !is_media_photo(kind, &f.name)
        })
        .map(|f| f.mtime)
        .max()
        .unwrap_or(0);
    let dir_sig = inherited.sidecar_mtime.max(sidecar_mtime);

    let mut seen = Vec::new();
    let mut processed_any = false;
    let mut dir_ctx = DirContext {
        walk,
        rel: &job.rel,
        dir_path: &dir_path,
        files: &files,
        nfo_cache: HashMap::new(),
        changes: &mut changes,
    };

    // A show folder: `tvshow.nfo` here, or the first level under a shows root.
    if kind == LibraryKind::Shows {
        let has_tvshow = files
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case("tvshow.nfo"));
        if has_tvshow || (job.depth == 1 && inherited.show.is_none()) {
            let nfo = if has_tvshow {
                dir_ctx.nfo("tvshow.nfo")
            } else {
                None
            };
            let title = nfo
                .as_ref()
                .and_then(|n| n.title.clone())
                .unwrap_or_else(|| names::parse_movie(&dir_name).title);
            inherited.show = Some(Arc::new(ShowInfo {
                title,
                artwork: dir_ctx.artwork(&["poster", "folder", "cover"], None),
                fanart: dir_ctx.artwork(&["fanart", "backdrop"], None),
                nfo,
            }));
            inherited.season = None;
        }
        if let Some(season) = names::parse_season_dir(&dir_name)
            && job.depth >= 1
        {
            inherited.season = Some(season);
        }
    }

    for f in &files {
        let class = classify(&f.name);
        let is_media = match kind {
            LibraryKind::Movies | LibraryKind::Shows | LibraryKind::Videos => {
                class == FileClass::Video
            }
            LibraryKind::Music => class == FileClass::Audio,
            LibraryKind::Photos => class == FileClass::Photo,
        };
        let rel = join_rel(&job.rel, &f.name);
        if class == FileClass::Nfo {
            // A known-bad NFO that has not changed stays reported without being read.
            if let Some(&(size, mtime, 0)) = walk.known.get(&rel)
                && size == f.size
                && mtime == f.mtime
            {
                seen.push(rel);
            }
            continue;
        }
        if !is_media {
            continue;
        }
        walk.progress.files_seen.fetch_add(1, Ordering::Relaxed);
        let sig = f.mtime.max(dir_sig);
        seen.push(rel.clone());
        let previous = walk.known.get(&rel);
        if let Some(&(size, mtime, _)) = previous
            && size == f.size
            && mtime == sig
        {
            continue;
        }
        let counter = if previous.is_some() {
            Kind::Changed
        } else {
            Kind::New
        };
        processed_any = true;
        let full = dir_path.join(&f.name);
        if let Some(hook) = &walk.options.before_read {
            hook(&full);
        }
        match dir_ctx.build_item(f, &rel, &full, &inherited) {
            Ok(mut item) => {
                item.mtime_ns = sig;
                dir_ctx
                    .changes
                    .push((FileChange::Upsert(Box::new(item)), counter));
            }
            Err(message) => dir_ctx.changes.push((
                FileChange::Error {
                    library_id: walk.lib.id,
                    folder_id: walk.folder.id,
                    rel_path: rel,
                    size: f.size,
                    mtime_ns: sig,
                    message,
                },
                Kind::Error,
            )),
        }
    }
    // Sidecars are read when a file needs them; a broken one must be reported even when
    // every file it describes is broken too.
    if processed_any && !matches!(kind, LibraryKind::Music | LibraryKind::Photos) {
        for f in files.iter().filter(|f| classify(&f.name) == FileClass::Nfo) {
            dir_ctx.nfo(&f.name);
        }
    }
    let _ = tx.send(Found::Seen(seen));
    if !changes.is_empty() {
        let _ = tx.send(Found::Changes(changes));
    }

    if job.depth + 1 > MAX_DEPTH {
        if !subdirs.is_empty() {
            let _ = tx.send(Found::Unreadable(job.rel.clone()));
        }
        return Vec::new();
    }
    inherited.sidecar_mtime = if inherited.show.is_some() {
        // Episodes depend on the show's NFO and artwork above them.
        dir_sig
    } else {
        job.inherited.sidecar_mtime
    };
    subdirs
        .into_iter()
        .map(|name| DirJob {
            rel: join_rel(&job.rel, &name),
            depth: job.depth + 1,
            inherited: inherited.clone(),
        })
        .collect()
}

fn is_media_photo(kind: LibraryKind, name: &str) -> bool {
    kind == LibraryKind::Photos && classify(name) == FileClass::Photo
}

struct DirContext<'a, 'w> {
    walk: &'a Walk<'w>,
    rel: &'a str,
    dir_path: &'a Path,
    files: &'a [Entry],
    /// NFOs of this directory, parsed at most once (`None`: missing or broken).
    nfo_cache: HashMap<String, Option<Nfo>>,
    changes: &'a mut Vec<(FileChange, Kind)>,
}

impl DirContext<'_, '_> {
    fn find(&self, name: &str) -> Option<&Entry> {
        self.files
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Parses an NFO of this directory once; a broken one becomes a scan error.
    fn nfo(&mut self, name: &str) -> Option<Nfo> {
        let entry = self.find(name)?;
        let real_name = entry.name.clone();
        let (size, mtime) = (entry.size, entry.mtime);
        if let Some(cached) = self.nfo_cache.get(&real_name) {
            return cached.clone();
        }
        let rel = join_rel(self.rel, &real_name);
        let parsed = match nfo::read(&self.dir_path.join(&real_name)) {
            Ok(n) => Some(n),
            Err(e) => {
                self.changes.push((
                    FileChange::Error {
                        library_id: self.walk.lib.id,
                        folder_id: self.walk.folder.id,
                        rel_path: rel,
                        size,
                        mtime_ns: mtime,
                        message: e.to_string(),
                    },
                    Kind::Error,
                ));
                None
            }
        };
        self.nfo_cache.insert(real_name, parsed.clone());
        parsed
    }

    /// The first existing image named `<base>.<ext>` (or `<stem>-<base>.<ext>`).
    fn artwork(&self, bases: &[&str], stem: Option<&str>) -> Option<String> {
        for base in bases {
            for ext in ["jpg", "jpeg", "png", "webp"] {
                let mut candidates = vec![format!("{base}.{ext}")];
                if let Some(stem) = stem {
                    candidates.insert(0, format!("{stem}-{base}.{ext}"));
                }
                for c in candidates {
                    if let Some(e) = self.find(&c) {
                        return Some(join_rel(self.rel, &e.name));
                    }
                }
            }
        }
        None
    }

    fn subtitles(&self, stem: &str) -> Vec<SubtitleRef> {
        let mut out = Vec::new();
        let lower_stem = stem.to_lowercase();
        for f in self.files {
            if classify(&f.name) != FileClass::Subtitle {
                continue;
            }
            let Some((base, ext)) = f.name.rsplit_once('.') else {
                continue;
            };
            let lower = base.to_lowercase();
            let language = if lower == lower_stem {
                None
            } else if let Some(rest) = lower.strip_prefix(&format!("{lower_stem}.")) {
                rest.split('.').next().map(str::to_owned)
            } else {
                continue;
            };
            out.push(SubtitleRef {
                rel_path: join_rel(self.rel, &f.name),
                language,
                format: ext.to_ascii_lowercase(),
            });
        }
        out
    }

    fn build_item(
        &mut self,
        f: &Entry,
        rel: &str,
        full: &Path,
        inherited: &Inherited,
    ) -> Result<ItemRecord, String> {
        let walk = self.walk;
        let stem = f
            .name
            .rsplit_once('.')
            .map(|(s, _)| s)
            .unwrap_or(&f.name)
            .to_owned();
        let mut item = ItemRecord {
            library_id: walk.lib.id,
            folder_id: walk.folder.id,
            rel_path: rel.to_owned(),
            content_type: content_type(&f.name).to_owned(),
            size: f.size,
            ..ItemRecord::default()
        };
        let probe_err = |e: ProbeError| match e {
            ProbeError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                "the file disappeared while it was being scanned".to_owned()
            }
            other => other.to_string(),
        };
        if f.size == 0 {
            return Err(ProbeError::Empty.to_string());
        }
        match walk.lib.kind {
            LibraryKind::Movies | LibraryKind::Videos | LibraryKind::Shows => {
                let facts = match extension(&f.name).as_str() {
                    "mkv" | "webm" => Some(probe::probe_mkv(full).map_err(probe_err)?),
                    "mp4" | "m4v" | "mov" => Some(probe::probe_mp4(full).map_err(probe_err)?),
                    _ => {
                        // No reader for this container: at least make sure it is still there.
                        probe::open_nofollow(full).map_err(|e| probe_err(ProbeError::Io(e)))?;
                        None
                    }
                };
                item.duration_ms = facts.as_ref().and_then(|v| v.duration_ms);
                item.video = facts;
                item.subtitles = self.subtitles(&stem);
            }
            LibraryKind::Music => {
                let m = probe::probe_music(full).map_err(probe_err)?;
                let parsed = names::parse_track(&stem);
                let parent = Path::new(rel)
                    .parent()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .map(str::to_owned);
                let grandparent = Path::new(rel)
                    .parent()
                    .and_then(|p| p.parent())
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .map(str::to_owned);
                item.kind = Some(ItemKind::Track);
                item.title = m.title.clone().unwrap_or(parsed.title);
                item.artist = m
                    .album_artist
                    .clone()
                    .or(m.artist.clone())
                    .or(grandparent)
                    .or_else(|| Some("Unknown Artist".into()));
                item.album = m
                    .album
                    .clone()
                    .or(parent)
                    .or_else(|| Some("Unknown Album".into()));
                item.track = m.track.or(parsed.number);
                item.disc = m.disc.or(parsed.disc);
                item.year = m.year;
                if let Some(g) = &m.genre {
                    item.genres.push(g.clone());
                }
                if let Some(a) = &m.artist
                    && Some(a) != item.artist.as_ref()
                {
                    item.people.push(a.clone());
                }
                item.duration_ms = m.duration_ms;
                item.artwork = self.artwork(&["cover", "folder", "front", "album"], None);
                item.sort_title = names::sort_key(&item.title);
                return Ok(item);
            }
            LibraryKind::Photos => {
                let p = probe::probe_photo(full).map_err(probe_err)?;
                item.kind = Some(ItemKind::Photo);
                item.title = stem.clone();
                item.year = p
                    .taken_at
                    .as_ref()
                    .and_then(|t| t.get(..4))
                    .and_then(|y| y.parse().ok());
                item.taken_at = p.taken_at.or_else(|| {
                    // No EXIF date: the file's own time is the best we have.
                    Some(format_unix(f.mtime / 1_000_000_000))
                });
                item.orientation = p.orientation;
                item.sort_title = names::sort_key(&item.title);
                return Ok(item);
            }
        }

        // Videos of all three kinds.
        match walk.lib.kind {
            LibraryKind::Shows => {
                let parsed = names::parse_episode(&stem).unwrap_or_default();
                let own_nfo = self.nfo(&format!("{stem}.nfo"));
                let show = inherited.show.clone();
                item.kind = Some(ItemKind::Episode);
                item.show = show
                    .as_ref()
                    .map(|s| s.title.clone())
                    .or(parsed.show.clone())
                    .or_else(|| Some(names::parse_movie(&stem).title));
                item.season = own_nfo
                    .as_ref()
                    .and_then(|n| n.season)
                    .or(parsed.season)
                    .or(inherited.season)
                    .or(if parsed.air_date.is_none() {
                        Some(1)
                    } else {
                        None
                    });
                item.episode = own_nfo.as_ref().and_then(|n| n.episode).or(parsed.episode);
                item.episode_end = parsed.episode_end;
                item.air_date = own_nfo
                    .as_ref()
                    .and_then(|n| n.aired.clone())
                    .or(parsed.air_date.clone());
                item.title = own_nfo
                    .as_ref()
                    .and_then(|n| n.title.clone())
                    .or(parsed.title.clone())
                    .or(parsed.air_date.clone())
                    .or(item.episode.map(|e| format!("Episode {e}")))
                    .unwrap_or_else(|| stem.clone());
                if let Some(show) = &show
                    && let Some(n) = &show.nfo
                {
                    item.year = n.year;
                    item.rating = n.rating.clone();
                    item.genres = n.genres.clone();
                    item.tags = n.tags.clone();
                    item.people = n.people.clone();
                    item.plot = n.plot.clone();
                }
                if let Some(n) = &own_nfo {
                    apply_nfo(&mut item, n, false);
                }
                item.year = item.year.or(item
                    .air_date
                    .as_ref()
                    .and_then(|d| d.get(..4))
                    .and_then(|y| y.parse().ok()));
                item.artwork = self
                    .artwork(&["thumb"], Some(&stem))
                    .or_else(|| show.as_ref().and_then(|s| s.artwork.clone()));
                item.fanart = show.as_ref().and_then(|s| s.fanart.clone());
            }
            LibraryKind::Movies => {
                let mut parsed = names::parse_movie(&stem);
                let dir_name = self.rel.rsplit('/').next().unwrap_or("");
                if parsed.year.is_none() && !dir_name.is_empty() {
                    let from_dir = names::parse_movie(dir_name);
                    if from_dir.year.is_some() {
                        parsed.title = from_dir.title;
                        parsed.year = from_dir.year;
                    }
                }
                item.kind = Some(ItemKind::Movie);
                item.title = if parsed.title.is_empty() {
                    stem.clone()
                } else {
                    parsed.title
                };
                item.year = parsed.year;
                item.part = parsed.part;
                let nfo = self
                    .nfo(&format!("{stem}.nfo"))
                    .or_else(|| self.nfo("movie.nfo"));
                if let Some(n) = &nfo {
                    let single_file = item.part.is_none();
                    apply_nfo(&mut item, n, single_file);
                }
                item.artwork = self.artwork(&["poster", "folder", "cover"], Some(&stem));
                item.fanart = self.artwork(&["fanart", "backdrop"], Some(&stem));
            }
            LibraryKind::Videos | LibraryKind::Music | LibraryKind::Photos => {
                let parsed = names::parse_movie(&stem);
                item.kind = Some(ItemKind::Video);
                item.title = if parsed.title.is_empty() {
                    stem.clone()
                } else {
                    parsed.title
                };
                item.year = parsed.year;
                item.part = parsed.part;
                if let Some(n) = self.nfo(&format!("{stem}.nfo")) {
                    apply_nfo(&mut item, &n, true);
                }
                item.artwork = self.artwork(&["poster", "thumb", "folder"], Some(&stem));
            }
        }
        item.sort_title = names::sort_key(&item.title);
        if let Some(part) = item.part {
            item.sort_title = format!("{} {part:03}", item.sort_title);
        }
        Ok(item)
    }
}

fn apply_nfo(item: &mut ItemRecord, n: &Nfo, take_title: bool) {
    if take_title && let Some(t) = &n.title {
        item.title = t.clone();
    }
    if n.year.is_some() {
        item.year = n.year;
    }
    if n.plot.is_some() {
        item.plot = n.plot.clone();
    }
    if !n.genres.is_empty() {
        item.genres = n.genres.clone();
    }
    if !n.tags.is_empty() {
        item.tags = n.tags.clone();
    }
    if !n.people.is_empty() {
        item.people = n.people.clone();
    }
    if let Some(r) = &n.rating {
        item.rating = Some::<ContentRating>(r.clone());
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for Unix seconds, without a date crate.
pub fn format_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_dates() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00");
        assert_eq!(format_unix(1_709_251_200), "2024-03-01T00:00:00");
        assert_eq!(format_unix(951_782_400 + 3661), "2000-02-29T01:01:01");
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("a.MKV"), "video/x-matroska");
        assert_eq!(content_type("a.mp4"), "video/mp4");
        assert_eq!(content_type("a.flac"), "audio/flac");
        assert_eq!(content_type("a.mp3"), "audio/mpeg");
        assert_eq!(content_type("a.jpg"), "image/jpeg");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
