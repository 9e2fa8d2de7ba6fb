//! Scheduled backups: daily or weekly into a folder the owner picks (a USB disk), the last N
//! kept. Each file is written as `….hbk.part`, fsynced, renamed to `….hbk` and the folder
//! fsynced, so a power cut leaves either no new file or a whole one; a `.part` file never
//! verifies (its last chunk is missing) and is removed at the next run.
//!
//! The schedule keeps the Argon2id-derived key and its salt, never the passphrase: each file
//! still gets its own key (see [`super::format`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BackupError, Backups, Kdf, MasterKey, write_backup};
use crate::policy::OwnerProof;
use crate::store::Store;

const SCHEDULE_KEY: &str = "backup_schedule";
const STATUS_KEY: &str = "backup_status";
pub const FILE_PREFIX: &str = "hearth-backup-";
pub const FILE_SUFFIX: &str = ".hbk";
const PART_SUFFIX: &str = ".part";
const DAY: u64 = 24 * 3600;
/// The owner's page warns when no backup was made for this long.
pub const WARN_AFTER: u64 = 7 * DAY;
/// A failed run (disk unplugged) is tried again after this long.
const RETRY: u64 = 3600;
pub const MAX_KEEP: u32 = 365;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    #[default]
    Off,
    Daily,
    Weekly,
}

impl Every {
    fn secs(self) -> Option<u64> {
        match self {
            Every::Off => None,
            Every::Daily => Some(DAY),
            Every::Weekly => Some(7 * DAY),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct Stored {
    folder: String,
    every: Every,
    keep: u32,
    key: Option<MasterKey>,
}

/// What happened last.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq, utoipa::ToSchema)]
pub struct Status {
    /// Last scheduled backup written (seconds since the epoch), its size and file name.
    pub last_at: Option<u64>,
    pub last_size: Option<u64>,
    pub last_file: Option<String>,
    /// Last backup downloaded from the web app.
    pub last_download_at: Option<u64>,
    pub last_download_size: Option<u64>,
    pub last_attempt_at: Option<u64>,
    /// Why the last scheduled run failed, if it did.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// An existing folder (a mounted disk), absolute path.
    pub folder: String,
    pub every: Every,
    /// How many scheduled backups to keep (1 to 365).
    pub keep: u32,
    /// Needed the first time, and to change it; never stored (only a key derived from it).
    #[serde(default)]
    pub passphrase: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackupFile {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct View {
    pub folder: String,
    pub every: Every,
    pub keep: u32,
    /// Whether a passphrase was set for scheduled backups.
    pub has_passphrase: bool,
    pub status: Status,
    /// Set when no backup was made for a week (or ever).
    pub warning: Option<String>,
    /// When the next scheduled backup is due (seconds since the epoch).
    pub next_due: Option<u64>,
    /// Scheduled backups found in the folder, oldest first.
    pub files: Vec<BackupFile>,
    pub kdf: Kdf,
}

fn load(store: &Store) -> Result<(Stored, Status), BackupError> {
    Ok(store.read(|r| {
        Ok::<_, crate::store::StoreError>((
            r.setting::<Stored>(SCHEDULE_KEY)?.unwrap_or_default(),
            r.setting::<Status>(STATUS_KEY)?.unwrap_or_default(),
        ))
    })?)
}

fn update_status(store: &Store, f: impl FnOnce(&mut Status)) -> Result<Status, BackupError> {
    Ok(store.write(|tx| {
        let mut s = tx.setting::<Status>(STATUS_KEY)?.unwrap_or_default();
        f(&mut s);
        tx.set_setting(STATUS_KEY, &s)?;
        Ok::<_, crate::store::StoreError>(s)
    })?)
}

pub(super) fn record_download(store: &Store, size: u64) -> Result<(), BackupError> {
    let now = crate::model::clock::now_secs();
    update_status(store, |s| {
        s.last_download_at = Some(now);
        s.last_download_size = Some(size);
    })?;
    Ok(())
}

fn next_due(stored: &Stored, status: &Status) -> Option<u64> {
    let every = stored.every.secs()?;
    stored.key.as_ref()?;
    let after_success = status.last_at.map_or(0, |t| t + every);
    let after_failure = match (&status.last_error, status.last_attempt_at) {
        (Some(_), Some(t)) => t + RETRY,
        _ => 0,
    };
    Some(after_success.max(after_failure))
}

/// `hearth-backup-20261206-041500.hbk` (UTC).
fn file_name(now: u64, n: u32) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(now as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let extra = if n > 0 {
        format!("-{n}")
    } else {
        String::new()
    };
    format!(
        "{FILE_PREFIX}{:04}{:02}{:02}-{:02}{:02}{:02}{extra}{FILE_SUFFIX}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn is_ours(name: &str) -> bool {
    name.strip_prefix(FILE_PREFIX)
        .and_then(|r| r.strip_suffix(FILE_SUFFIX))
        .is_some_and(|mid| mid.len() >= 15 && mid.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
}

/// Our finished backups in `folder`, oldest first (the names sort by time).
pub fn list(folder: &Path) -> Vec<BackupFile> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(folder) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if is_ours(&name)
                && let Ok(m) = e.metadata()
                && m.is_file()
            {
                out.push(BackupFile {
                    name,
                    size: m.len(),
                });
            }
        }
    }
    // By time, then by the `-N` a second backup in the same second gets.
    out.sort_by_key(|f| order_key(&f.name));
    out
}

/// Sorts scheduled backups by when they were made: the time in the name, then the `-N` a
/// second backup in the same second gets. Names that are not ours sort first, by name.
pub fn order_key(name: &str) -> (String, u32) {
    if !is_ours(name) {
        return (String::new(), 0);
    }
    let mid = &name[FILE_PREFIX.len()..name.len() - FILE_SUFFIX.len()];
    let (stamp, n) = mid.split_at(mid.len().min(15));
    (
        stamp.to_owned(),
        n.trim_start_matches('-').parse::<u32>().unwrap_or(0),
    )
}

fn check_folder(folder: &str, data_dir: &Path) -> Result<PathBuf, BackupError> {
    let p = PathBuf::from(folder);
    if !p.is_absolute() {
        return Err(BackupError::Invalid(
            "The backup folder must be a full path, like /media/usb-stick/backups.".into(),
        ));
    }
    let meta = std::fs::metadata(&p).map_err(|_| {
        BackupError::Folder(format!(
            "The backup folder {folder} does not exist. Is the disk plugged in and mounted?"
        ))
    })?;
    if !meta.is_dir() {
        return Err(BackupError::Folder(format!("{folder} is not a folder.")));
    }
    let real = std::fs::canonicalize(&p)?;
    // A folder on a disk (`/media/<disk>/…`, `/mnt/…`, a home folder), never the system's own.
    const SYSTEM: [&str; 12] = [
        "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/efi", "/dev", "/proc",
        "/sys", "/run",
    ];
    if real.components().count() < 3 || SYSTEM.iter().any(|d| real.starts_with(d)) {
        return Err(BackupError::Invalid(format!(
            "{} is a system folder; pick a folder on a disk, like /media/usb-stick/hearth-backups.",
            real.display()
        )));
    }
    if let Ok(data) = std::fs::canonicalize(data_dir)
        && real.starts_with(&data)
    {
        return Err(BackupError::Invalid(
            "The backup folder may not be inside Hearth's own data folder: a backup there dies with the SD card.".into(),
        ));
    }
    Ok(real)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Backups {
    /// The schedule, what happened last, and the files in the folder.
    pub fn view(&self, _owner: &OwnerProof) -> Result<View, BackupError> {
        self.view_inner()
    }

    fn view_inner(&self) -> Result<View, BackupError> {
        let (stored, status) = load(&self.inner.store)?;
        let now = crate::model::clock::now_secs();
        let last = status.last_at.max(status.last_download_at);
        let warning = match last {
            None => Some(
                "No backup has been made yet. Download one, or schedule them to a USB disk."
                    .to_owned(),
            ),
            Some(t) if now.saturating_sub(t) > WARN_AFTER => Some(format!(
                "No backup for {} days. If the SD card fails, what changed since is lost.",
                now.saturating_sub(t) / DAY
            )),
            Some(_) => None,
        };
        let files = if stored.folder.is_empty() {
            Vec::new()
        } else {
            list(Path::new(&stored.folder))
        };
        Ok(View {
            next_due: next_due(&stored, &status),
            folder: stored.folder,
            every: stored.every,
            keep: stored.keep,
            has_passphrase: stored.key.is_some(),
            status,
            warning,
            files,
            kdf: Kdf::DEFAULT,
        })
    }

    /// Sets the schedule. A passphrase given is turned into a key (slow: Argon2id).
    pub fn set_schedule(
        &self,
        _owner: &OwnerProof,
        input: ScheduleInput,
    ) -> Result<View, BackupError> {
        let (mut stored, _) = load(&self.inner.store)?;
        if input.every != Every::Off || !input.folder.is_empty() {
            check_folder(&input.folder, &self.inner.data_dir)?;
        }
        if !(1..=MAX_KEEP).contains(&input.keep) {
            return Err(BackupError::Invalid(format!(
                "Keep between 1 and {MAX_KEEP} backups."
            )));
        }
        let key = match input.passphrase.as_deref() {
            Some(p) if !p.is_empty() => Some(MasterKey::new(p, Kdf::DEFAULT)?),
            _ => stored.key.take(),
        };
        if input.every != Every::Off && key.is_none() {
            return Err(BackupError::WeakPassphrase(
                "Set a passphrase for scheduled backups: restoring one needs it.".into(),
            ));
        }
        let new = Stored {
            folder: input.folder,
            every: input.every,
            keep: input.keep,
            key,
        };
        self.inner.store.write(|tx| {
            tx.set_setting(SCHEDULE_KEY, &new)?;
            tx.audit(
                crate::model::clock::now_secs(),
                "backup_schedule",
                None,
                None,
                format!(
                    "scheduled backups: {:?} to {}, keep {}",
                    new.every, new.folder, new.keep
                ),
            )
        })?;
        self.inner.wake.notify_one();
        self.view_inner()
    }

    /// Makes a scheduled backup now (the owner's "back up now").
    pub fn run_now(&self, _owner: &OwnerProof) -> Result<Status, BackupError> {
        self.run_scheduled()
    }

    /// One scheduled run: write, rename, prune, record. Blocking.
    pub fn run_scheduled(&self) -> Result<Status, BackupError> {
        let _busy = self.lock()?;
        let (stored, _) = load(&self.inner.store)?;
        let now = crate::model::clock::now_secs();
        let result = self.write_scheduled(&stored, now);
        match result {
            Ok((name, size)) => update_status(&self.inner.store, |s| {
                s.last_at = Some(now);
                s.last_size = Some(size);
                s.last_file = Some(name);
                s.last_attempt_at = Some(now);
                s.last_error = None;
            }),
            Err(e) => {
                tracing::warn!(error = %e, "scheduled backup failed");
                let why = e.to_string();
                update_status(&self.inner.store, |s| {
                    s.last_attempt_at = Some(now);
                    s.last_error = Some(why);
                })?;
                Err(e)
            }
        }
    }

    fn write_scheduled(&self, stored: &Stored, now: u64) -> Result<(String, u64), BackupError> {
        let key = stored.key.as_ref().ok_or_else(|| {
            BackupError::Invalid("Scheduled backups have no passphrase yet.".into())
        })?;
        let folder = check_folder(&stored.folder, &self.inner.data_dir)?;
        // Leftovers of a run that was cut off: they never verify, and they take space.
        if let Ok(entries) = std::fs::read_dir(&folder) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(base) = name.strip_suffix(PART_SUFFIX)
                    && is_ours(base)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let mut n = 0;
        let name = loop {
            let name = file_name(now, n);
            if !folder.join(&name).exists() {
                break name;
            }
            n += 1;
        };
        let final_path = folder.join(&name);
        let part = folder.join(format!("{name}{PART_SUFFIX}"));
        let file = super::private_file(&part)?;
        let extras = self.extras()?;
        let written = (|| {
            let out = std::io::BufWriter::new(file);
            let (_, size) =
                write_backup(&self.inner.store, &self.inner.data_dir, &extras, key, out)?;
            Ok::<_, BackupError>(size)
        })();
        let size = match written {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(e);
            }
        };
        // The BufWriter was flushed by `finish`; make the bytes durable, then the name.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&part)?
            .sync_all()?;
        std::fs::rename(&part, &final_path)?;
        sync_dir(&folder)?;
        let all = list(&folder);
        let keep = stored.keep.max(1) as usize;
        if all.len() > keep {
            for old in &all[..all.len() - keep] {
                std::fs::remove_file(folder.join(&old.name))?;
            }
            sync_dir(&folder)?;
        }
        tracing::info!(file = %final_path.display(), size, "scheduled backup written");
        Ok((name, size))
    }

    /// Runs scheduled backups when they are due, until aborted.
    pub fn spawn_scheduler(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let due = {
                    let t = this.clone();
                    tokio::task::spawn_blocking(move || load(&t.inner.store))
                        .await
                        .ok()
                        .and_then(|r| r.ok())
                        .and_then(|(stored, status)| next_due(&stored, &status))
                };
                let now = crate::model::clock::now_secs();
                match due {
                    Some(t) if t <= now => {
                        let t = this.clone();
                        let _ = tokio::task::spawn_blocking(move || t.run_scheduled()).await;
                        continue;
                    }
                    _ => {}
                }
                let wait = due.map_or(3600, |t| (t - now).min(3600));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(wait.max(1))) => {}
                    _ = this.inner.wake.notified() => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_must_be_a_real_folder_on_a_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("inside")).unwrap();
        let usb = tmp.path().join("usb");
        std::fs::create_dir(&usb).unwrap();
        std::fs::write(tmp.path().join("file"), b"x").unwrap();
        let bad = [
            "relative/path".to_owned(),
            "/".to_owned(),
            "/etc".to_owned(),
            "/usr/share".to_owned(),
            "/proc/self".to_owned(),
            tmp.path().join("missing").display().to_string(),
            tmp.path().join("file").display().to_string(),
            data.join("inside").display().to_string(),
        ];
        for f in bad {
            assert!(check_folder(&f, &data).is_err(), "{f}");
        }
        assert!(check_folder(usb.to_str().unwrap(), &data).is_ok());
    }

    #[test]
    fn names_sort_by_time_and_only_ours_count() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            file_name(86_400 * 3, 0),
            file_name(86_400 * 3, 1),
            file_name(86_400, 0),
            file_name(86_400 * 3, 12),
            "hearth-backup-notes.hbk".into(),
            "other.hbk".into(),
            format!("{}{PART_SUFFIX}", file_name(86_400 * 9, 0)),
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let names: Vec<String> = list(dir.path()).into_iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "hearth-backup-19700102-000000.hbk",
                "hearth-backup-19700104-000000.hbk",
                "hearth-backup-19700104-000000-1.hbk",
                "hearth-backup-19700104-000000-12.hbk",
            ]
        );
    }
}
