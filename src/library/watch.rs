//! Filesystem watching: inotify (through `notify`) on every library folder; a burst of
//! changes becomes one incremental scan of the library a short quiet time after the last
//! event, so new files show up within seconds and a big copy does not start a hundred scans.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use super::{LibraryError, Scans};
use crate::store::Store;

enum Msg {
    Event(notify::Result<notify::Event>),
    Stop,
}

/// Watches library folders; [`LibraryWatcher::stop`] (or dropping it) stops watching and
/// waits for its thread, so the database handle it holds is released.
pub struct LibraryWatcher {
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    roots: Arc<Mutex<Vec<(PathBuf, u64)>>>,
    tx: Sender<Msg>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for LibraryWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LibraryWatcher")
    }
}

impl LibraryWatcher {
    /// Starts watching every folder of every library; `quiet` is how long events must stop
    /// before a scan starts.
    pub fn start(
        store: Store,
        scans: Scans,
        quiet: Duration,
    ) -> Result<LibraryWatcher, notify::Error> {
        let (tx, rx) = std::sync::mpsc::channel::<Msg>();
        let event_tx = tx.clone();
        let watcher = notify::recommended_watcher(move |ev| {
            let _ = event_tx.send(Msg::Event(ev));
        })?;
        let roots: Arc<Mutex<Vec<(PathBuf, u64)>>> = Arc::default();
        let this = LibraryWatcher {
            watcher: Mutex::new(Some(watcher)),
            roots: roots.clone(),
            tx,
            thread: Mutex::new(None),
        };
        if let Ok(folders) = store.read(|rx| rx.folders()) {
            for f in folders {
                this.watch_folder(f.path, f.library_id);
            }
        }
        let thread_store = store.clone();
        let handle = std::thread::Builder::new()
            .name("library-watch".into())
            .spawn(move || {
                // library id → time of its last event.
                let mut dirty: HashMap<u64, Instant> = HashMap::new();
                loop {
                    match rx.recv_timeout(quiet / 2) {
                        Ok(Msg::Event(Ok(ev))) => {
                            if matches!(ev.kind, notify::EventKind::Access(_)) {
                                continue;
                            }
                            let Ok(roots) = roots.lock() else { return };
                            for path in &ev.paths {
                                for (root, lib) in roots.iter() {
                                    if path.starts_with(root) {
                                        dirty.insert(*lib, Instant::now());
                                    }
                                }
                            }
                        }
                        Ok(Msg::Event(Err(e))) => tracing::warn!(error = %e, "watch error"),
                        Ok(Msg::Stop) => return,
                        Err(RecvTimeoutError::Timeout) => {}
                        // The watcher (and its sender) were dropped: stop.
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let due: Vec<u64> = dirty
                        .iter()
                        .filter(|(_, t)| t.elapsed() >= quiet)
                        .map(|(l, _)| *l)
                        .collect();
                    for lib in due {
                        match scans.start(thread_store.clone(), lib) {
                            // A running scan may have missed the change: try again later.
                            Err(LibraryError::ScanRunning) => {
                                dirty.insert(lib, Instant::now());
                            }
                            Err(e) => {
                                tracing::warn!(library_id = lib, error = %e, "cannot rescan");
                                dirty.remove(&lib);
                            }
                            Ok(()) => {
                                dirty.remove(&lib);
                            }
                        }
                    }
                }
            })
            .map_err(notify::Error::io)?;
        if let Ok(mut t) = this.thread.lock() {
            *t = Some(handle);
        }
        Ok(this)
    }

    /// Stops watching and waits for the watch thread to end.
    pub fn stop(&self) {
        if let Ok(mut w) = self.watcher.lock() {
            w.take();
        }
        let _ = self.tx.send(Msg::Stop);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Adds a folder (e.g. of a library created after start).
    pub fn watch_folder(&self, path: PathBuf, library_id: u64) {
        if let Ok(mut guard) = self.watcher.lock()
            && let Some(w) = guard.as_mut()
            && let Err(e) = w.watch(&path, RecursiveMode::Recursive)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot watch folder; changes there need a manual scan");
            return;
        }
        if let Ok(mut roots) = self.roots.lock() {
            roots.push((path, library_id));
        }
    }
}

impl Drop for LibraryWatcher {
    fn drop(&mut self) {
        self.stop();
    }
}
