//! Security-sensitive: restoring is two steps, each safe to kill at any point.
//!
//! 1. [`stage`], while the server runs: the backup is read and checked completely into
//!    `<data>/restore-staging/`; the staged database is opened (migrations run, a newer one is
//!    refused); only then is the folder renamed to `<data>/restore-ready/` (one atomic rename,
//!    the directory fsynced). A kill before the rename leaves a staging folder that the next
//!    start throws away: the device is as it was.
//! 2. [`apply_pending`], at start, before the database is opened: each of `hearth.redb` and
//!    `tls/` is moved aside into `restore-previous/` and the staged one renamed into place.
//!    Every step can be redone after a kill (the state on disk says which steps are done), so
//!    once `restore-ready/` exists the restore always completes; then `restore-ready/` is
//!    renamed to `restore-applied/` and both leftovers are removed.

use std::io::Read;
use std::path::Path;

use super::{BackupError, DB_FILE, Manifest, TLS_DIR, Unlock, private_dir};

pub const STAGING: &str = "restore-staging";
pub const READY: &str = "restore-ready";
const PREVIOUS: &str = "restore-previous";
const APPLIED: &str = "restore-applied";
const MANIFEST: &str = "manifest.json";
/// Where an uploaded backup file waits while it is checked: `restore-upload-<random>.hbk`.
pub const UPLOAD_PREFIX: &str = "restore-upload-";
/// What a restore replaces, in order.
const SWAPPED: [&str; 2] = [DB_FILE, TLS_DIR];

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads and checks a backup into the staging folder and marks it ready. Changes nothing
/// else; on any error the staging folder is removed.
pub fn stage(
    data_dir: &Path,
    input: impl Read,
    unlock: Unlock<'_>,
) -> Result<Manifest, BackupError> {
    if data_dir.join(READY).exists() {
        return Err(BackupError::Invalid(
            "A verified restore is already waiting for the server to restart.".into(),
        ));
    }
    let staging = data_dir.join(STAGING);
    remove_any(&staging)?;
    private_dir(&staging)?;
    let staged = (|| {
        let manifest = super::read_backup(input, unlock, Some(&staging))?;
        // The config is kept in the backup for reference: the image (or the command line)
        // provides the running one, so it is not restored.
        remove_any(&staging.join(super::CONFIG_FILE))?;
        private_dir(&staging.join(TLS_DIR))?;
        // Open it once: a database that redb cannot read, or that is newer than this binary,
        // is refused here; an older one is migrated now.
        let store = crate::store::Store::open(&staging.join(DB_FILE))?;
        // The restored device's own log says where its state came from.
        store.write(|tx| {
            tx.audit(
                crate::model::clock::now_secs(),
                "restore",
                None,
                None,
                format!(
                    "restored from a backup of \"{}\" made at {} by Hearth {} (schema {})",
                    manifest.server_name,
                    manifest.created_at,
                    manifest.hearth_version,
                    manifest.schema_version
                ),
            )
        })?;
        drop(store);
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BackupError::Internal(e.to_string()))?;
        std::fs::write(staging.join(MANIFEST), json)?;
        sync_dir(&staging.join(TLS_DIR))?;
        sync_dir(&staging)?;
        Ok::<_, BackupError>(manifest)
    })();
    match staged {
        Ok(m) => {
            std::fs::rename(&staging, data_dir.join(READY))?;
            sync_dir(data_dir)?;
            Ok(m)
        }
        Err(e) => {
            let _ = remove_any(&staging);
            Err(e)
        }
    }
}

/// Finishes a restore left ready by [`stage`] (and cleans up after an interrupted one).
/// Runs at start, before the database is opened. Returns whether a restore was applied.
pub fn apply_pending(data_dir: &Path) -> Result<bool, BackupError> {
    apply_steps(data_dir, usize::MAX)
}

/// [`apply_pending`] that stops (as if killed) after `budget` changes on disk.
pub fn apply_steps(data_dir: &Path, mut budget: usize) -> Result<bool, BackupError> {
    let mut step = || {
        if budget == 0 {
            return Err(BackupError::Internal("stopped (test)".into()));
        }
        budget -= 1;
        Ok(())
    };
    let ready = data_dir.join(READY);
    let previous = data_dir.join(PREVIOUS);
    // Leftovers of a kill during an upload or a backup: an uploaded file, a snapshot.
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(UPLOAD_PREFIX) || name.starts_with("backup-work-") {
                step()?;
                remove_any(&e.path())?;
            }
        }
    }
    // A staging folder never became ready: the restore was not checked to the end.
    if data_dir.join(STAGING).exists() {
        step()?;
        remove_any(&data_dir.join(STAGING))?;
        tracing::warn!("an unfinished restore was found and discarded; nothing was changed");
    }
    if !ready.exists() {
        for leftover in [APPLIED, PREVIOUS] {
            if data_dir.join(leftover).exists() {
                step()?;
                remove_any(&data_dir.join(leftover))?;
            }
        }
        return Ok(false);
    }
    let manifest: Option<Manifest> = std::fs::read(ready.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    private_dir(&previous)?;
    for name in SWAPPED {
        let (new, cur, old) = (ready.join(name), data_dir.join(name), previous.join(name));
        if !new.exists() {
            // Moved in already (a kill after this step), or not in the backup.
            continue;
        }
        if std::fs::symlink_metadata(&cur).is_ok() {
            if std::fs::symlink_metadata(&old).is_ok() {
                step()?;
                remove_any(&old)?;
            }
            step()?;
            std::fs::rename(&cur, &old)?;
            sync_dir(data_dir)?;
        }
        step()?;
        std::fs::rename(&new, &cur)?;
        sync_dir(data_dir)?;
    }
    step()?;
    std::fs::rename(&ready, data_dir.join(APPLIED))?;
    sync_dir(data_dir)?;
    step()?;
    remove_any(&data_dir.join(APPLIED))?;
    remove_any(&previous)?;
    sync_dir(data_dir)?;
    if let Some(m) = &manifest {
        tracing::warn!(
            made = m.created_at,
            version = %m.hearth_version,
            server = %m.server_name,
            "restored the backup"
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{Extras, Kdf, MasterKey, write_backup};
    use crate::store::Store;

    const FAST: Kdf = Kdf {
        memory_kib: 8 * 1024,
        passes: 1,
        lanes: 1,
    };

    fn name_of(data: &Path) -> Option<String> {
        let s = Store::open(&data.join(DB_FILE)).unwrap();
        s.read(|r| r.setting::<String>("server_name")).unwrap()
    }

    /// A data dir named "Old" and a backup of one named "New", staged and ready.
    fn ready_restore() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let (old, new) = (tmp.path().join("data"), tmp.path().join("other"));
        for (dir, name) in [(&old, "Old"), (&new, "New")] {
            std::fs::create_dir_all(dir.join("tls")).unwrap();
            std::fs::write(dir.join("tls/ca.pem"), name).unwrap();
            let s = Store::open(&dir.join(DB_FILE)).unwrap();
            s.write(|tx| tx.set_setting("server_name", &name.to_string()))
                .unwrap();
        }
        let key = MasterKey::new("correct horse battery", FAST).unwrap();
        let store = Store::open(&new.join(DB_FILE)).unwrap();
        let mut file = Vec::new();
        write_backup(&store, &new, &Extras::default(), &key, &mut file).unwrap();
        stage(&old, &file[..], Unlock::Passphrase("correct horse battery")).unwrap();
        assert_eq!(
            name_of(&old).as_deref(),
            Some("Old"),
            "staging changes nothing"
        );
        tmp
    }

    #[test]
    fn a_restore_killed_at_any_step_completes_at_the_next_start() {
        let mut step = 0;
        loop {
            let tmp = ready_restore();
            let data = tmp.path().join("data");
            let cut = apply_steps(&data, step).is_err();
            // The next start: whatever was done, the restore completes.
            assert!(apply_pending(&data).is_ok());
            assert_eq!(
                name_of(&data).as_deref(),
                Some("New"),
                "killed after {step}"
            );
            assert_eq!(std::fs::read(data.join("tls/ca.pem")).unwrap(), b"New");
            for leftover in [STAGING, READY, PREVIOUS, APPLIED] {
                assert!(!data.join(leftover).exists(), "{leftover} after {step}");
            }
            if !cut {
                break;
            }
            step += 1;
        }
        assert!(step >= 5, "the apply has steps to cut: {step}");
    }

    #[test]
    fn an_unfinished_staging_is_discarded_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join(STAGING)).unwrap();
        std::fs::write(data.join(STAGING).join(DB_FILE), b"half").unwrap();
        let s = Store::open(&data.join(DB_FILE)).unwrap();
        s.write(|tx| tx.set_setting("server_name", &"Old".to_string()))
            .unwrap();
        drop(s);
        assert!(!apply_pending(&data).unwrap());
        assert!(!data.join(STAGING).exists());
        assert_eq!(name_of(&data).as_deref(), Some("Old"));
    }
}
