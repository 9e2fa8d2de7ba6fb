//! Libraries of media: the scanner, name parsing, NFO sidecars, tags and search.
//!
//! A library has a kind (movies, shows, music, photos, videos) and one or more folders.
//! [`Scans`] runs scans off the async runtime and keeps their progress readable;
//! [`browse`] answers listing and search questions, each taking an `allowed` predicate so
//! the policy module decides what a viewer may see.

pub mod browse;
pub mod names;
pub mod nfo;
pub mod parents;
pub mod probe;
pub mod progress;
pub mod scan;
pub mod visible;
pub mod watch;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub use crate::store::library::{
    FolderRecord, ItemKind, ItemRecord, ItemSort, LibraryKind, LibraryRecord, ScanErrorRecord,
};
pub use nfo::ContentRating;
pub use scan::{ProgressSnapshot, ScanOptions, ScanProgress, ScanSummary};

use crate::store::{Store, StoreError};

/// Longest library name we accept.
const MAX_NAME: usize = 100;
/// Folders per library.
const MAX_FOLDERS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("give the library a name of 1 to {MAX_NAME} characters")]
    InvalidName,
    #[error("a library needs 1 to {MAX_FOLDERS} folders")]
    FolderCount,
    #[error("the folder {path:?} cannot be used: {reason}")]
    InvalidFolder { path: String, reason: String },
    #[error("there is no such library")]
    NotFound,
    #[error("a scan of this library is already running; wait for it to finish")]
    ScanRunning,
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the owner asks for when adding a library.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLibrary {
    pub name: String,
    pub kind: LibraryKind,
    /// Absolute paths of folders on the device.
    pub folders: Vec<String>,
}

/// Checks a folder the owner named: absolute, no `..`, an existing directory reached
/// without symbolic links in its last component; returns its canonical path.
pub fn check_folder(raw: &str) -> Result<PathBuf, LibraryError> {
    let bad = |reason: &str| LibraryError::InvalidFolder {
        path: raw.to_owned(),
        reason: reason.to_owned(),
    };
    if raw.len() > 4096 || raw.contains('\0') {
        return Err(bad("the path is not valid"));
    }
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(bad("give the full path, starting with /"));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(bad("the path may not contain `..`"));
    }
    let meta = std::fs::symlink_metadata(path)
        .map_err(|_| bad("it does not exist or cannot be reached"))?;
    if meta.file_type().is_symlink() {
        return Err(bad(
            "it is a symbolic link; add the folder it points to instead",
        ));
    }
    if !meta.is_dir() {
        return Err(bad("it is not a folder"));
    }
    let canonical = std::fs::canonicalize(path).map_err(|_| bad("it cannot be resolved"))?;
    // The whole filesystem or the kernel's own trees are never media: scanning and
    // watching them would read device nodes and process state, not films.
    if canonical == Path::new("/")
        || ["/proc", "/sys", "/dev", "/run"]
            .iter()
            .any(|p| canonical.starts_with(p))
    {
        return Err(bad(
            "it is a system folder; choose the folder that holds your media",
        ));
    }
    std::fs::read_dir(&canonical)
        .map_err(|_| bad("Hearth may not read it; check its permissions"))?;
    Ok(canonical)
}

/// Whether a library folder can be read now. A folder on a pulled disk is gone (its mount
/// point removed) or answers with an I/O error; either way its library is offline, and its
/// items stay until the disk is back (blocking: touches the filesystem).
pub fn folder_online(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        && std::fs::read_dir(path).is_ok_and(|mut rd| rd.next().is_none_or(|e| e.is_ok()))
}

/// Follows disk events for as long as the monitor runs: when a library folder that could
/// not be read becomes readable again (its disk plugged back in and re-mounted), it is
/// watched again and its library rescanned, so changes made elsewhere show up. Nothing is
/// deleted while a folder is away (the scanner keeps the items of an offline folder).
pub async fn follow_disks(
    mut events: tokio::sync::broadcast::Receiver<crate::disks::DiskEvent>,
    store: Store,
    scans: Scans,
    watcher: Option<Arc<watch::LibraryWatcher>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let check = |store: Store| async move {
        tokio::task::spawn_blocking(move || {
            let folders = store.read(|rx| rx.folders()).unwrap_or_default();
            folders
                .into_iter()
                .map(|f| {
                    let online = folder_online(&f.path);
                    (f, online)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default()
    };
    let mut offline: std::collections::HashSet<u64> = check(store.clone())
        .await
        .into_iter()
        .filter(|(_, online)| !online)
        .map(|(f, _)| f.id)
        .collect();
    loop {
        match events.recv().await {
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
        let now = check(store.clone()).await;
        for (f, online) in &now {
            if *online && offline.contains(&f.id) {
                tracing::info!(path = %f.path.display(), library_id = f.library_id, "library folder is back; rescanning");
                if let Some(w) = &watcher {
                    w.watch_folder(f.path.clone(), f.library_id);
                }
                match scans.start(store.clone(), f.library_id) {
                    Ok(()) | Err(LibraryError::ScanRunning) => {}
                    Err(e) => {
                        tracing::warn!(library_id = f.library_id, error = %e, "cannot rescan")
                    }
                }
            } else if !*online && !offline.contains(&f.id) {
                tracing::warn!(path = %f.path.display(), library_id = f.library_id, "library folder went offline; its items are kept");
            }
        }
        offline = now
            .into_iter()
            .filter(|(_, online)| !online)
            .map(|(f, _)| f.id)
            .collect();
    }
}

/// Validates and stores a new library (blocking: checks the filesystem).
pub fn create_library(
    store: &Store,
    new: &NewLibrary,
    now: u64,
) -> Result<LibraryRecord, LibraryError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(LibraryError::InvalidName);
    }
    if new.folders.is_empty() || new.folders.len() > MAX_FOLDERS {
        return Err(LibraryError::FolderCount);
    }
    let mut paths = Vec::new();
    for raw in &new.folders {
        let p = check_folder(raw)?;
        if !paths.contains(&p) {
            paths.push(p);
        }
    }
    Ok(store.write(|tx| tx.create_library(name, new.kind, &paths, now))?)
}

/// Hands memory a finished scan freed back to the system. A full scan of a big library
/// allocates tens of megabytes across its threads; glibc keeps what they free in per-thread
/// arenas for good, which would leave an idle server that much bigger. (musl, the device's
/// libc, returns large free blocks by itself.)
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own allocator state, under its own locks; any
    // thread may call it at any time.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Scans that are running or have run since start, one progress record per library.
#[derive(Clone, Default)]
pub struct Scans {
    inner: Arc<Mutex<HashMap<u64, Arc<ScanProgress>>>>,
}

impl std::fmt::Debug for Scans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scans")
    }
}

impl Scans {
    /// The latest progress of a library's scan, if one ran since start.
    pub fn progress(&self, library_id: u64) -> Option<ProgressSnapshot> {
        let map = self.inner.lock().ok()?;
        map.get(&library_id).map(|p| p.snapshot())
    }

    /// Marks a scan as running; `None` if one already is.
    fn claim(&self, library_id: u64) -> Option<Arc<ScanProgress>> {
        let mut map = self.inner.lock().ok()?;
        let p = map.entry(library_id).or_default().clone();
        if p.running.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(p)
    }

    /// Runs a scan on the calling thread (which must not be an async worker).
    pub fn run_blocking(
        &self,
        store: &Store,
        library_id: u64,
        options: &ScanOptions,
    ) -> Result<ScanSummary, LibraryError> {
        let progress = self.claim(library_id).ok_or(LibraryError::ScanRunning)?;
        let out = scan::scan_library(store, library_id, &progress, options);
        progress.running.store(false, Ordering::Release);
        match out {
            Ok(s) => Ok(s),
            Err(scan::ScanError::NoLibrary(_)) => Err(LibraryError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a scan on its own thread and returns at once.
    pub fn start(&self, store: Store, library_id: u64) -> Result<(), LibraryError> {
        let exists = store.read(|rx| rx.library(library_id))?.is_some();
        if !exists {
            return Err(LibraryError::NotFound);
        }
        let progress = self.claim(library_id).ok_or(LibraryError::ScanRunning)?;
        std::thread::Builder::new()
            .name(format!("scan-{library_id}"))
            .spawn(move || {
                let options = ScanOptions::default();
                match scan::scan_library(&store, library_id, &progress, &options) {
                    Ok(s) => tracing::info!(library_id, ?s, "scan finished"),
                    Err(e) => tracing::warn!(library_id, error = %e, "scan failed"),
                }
                progress.running.store(false, Ordering::Release);
                release_freed_memory();
            })
            .map_err(|e| LibraryError::Store(StoreError::Io(e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_checks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("file"), b"x").unwrap();
        std::os::unix::fs::symlink(&root, dir.path().join("link")).unwrap();
        let ok = check_folder(root.to_str().unwrap()).unwrap();
        assert_eq!(ok, std::fs::canonicalize(&root).unwrap());
        let cases = [
            "relative/path".to_owned(),
            format!("{}/../media", root.display()),
            format!("{}/missing", dir.path().display()),
            format!("{}/file", root.display()),
            format!("{}/link", dir.path().display()),
            "/nul\0byte".to_owned(),
        ];
        for c in cases {
            assert!(
                matches!(check_folder(&c), Err(LibraryError::InvalidFolder { .. })),
                "{c:?} was accepted"
            );
        }
    }

    #[test]
    fn library_creation_validates_everything() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let folder = dir.path().to_str().unwrap().to_owned();
        let bad = [
            NewLibrary {
                name: " ".into(),
                kind: LibraryKind::Movies,
                folders: vec![folder.clone()],
            },
            NewLibrary {
                name: "x".repeat(101),
                kind: LibraryKind::Movies,
                folders: vec![folder.clone()],
            },
            NewLibrary {
                name: "Films".into(),
                kind: LibraryKind::Movies,
                folders: vec![],
            },
            NewLibrary {
                name: "Films".into(),
                kind: LibraryKind::Movies,
                folders: vec!["/no/such".into()],
            },
            NewLibrary {
                name: "Root".into(),
                kind: LibraryKind::Movies,
                folders: vec!["/".into()],
            },
            NewLibrary {
                name: "Kernel".into(),
                kind: LibraryKind::Movies,
                folders: vec!["/sys/kernel".into()],
            },
        ];
        for b in &bad {
            assert!(create_library(&store, b, 1).is_err(), "{b:?}");
        }
        assert!(store.read(|rx| rx.libraries()).unwrap().is_empty());
        let lib = create_library(
            &store,
            &NewLibrary {
                name: " Films ".into(),
                kind: LibraryKind::Movies,
                folders: vec![folder.clone(), folder],
            },
            1,
        )
        .unwrap();
        assert_eq!(lib.name, "Films");
        assert_eq!(lib.folder_ids.len(), 1);
    }
}
