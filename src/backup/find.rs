//! Security-sensitive: the backups the setup wizard of an unclaimed device can restore without
//! an upload: files on the disks plugged into the device (listed and mounted through the root
//! agent, as the Disks page does) and in the folders the config names for it
//! (`backup.restore_folders`, for a laptop, which has no agent).
//!
//! A disk that is not mounted is mounted read-only for the search, under the media folder, and
//! unmounted again before the answer (or before the restart that finishes a restore): the
//! wizard leaves no mount behind, and the restored device re-mounts its remembered disks as
//! they were. The device's own disk (the one holding `/`, the data folder or the boot
//! partition) is never searched. A search walks at most three folders deep, follows no
//! symbolic links, visits a bounded number of entries, and opens at most [`MAX_FOUND`] files,
//! newest first; files made with one passphrase and salt (a schedule's) cost one key
//! derivation together. Only a file the search finds can be restored: a request names it by
//! the id the search gave it, never by a path.

use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Serialize;

use super::format::{Kdf, MasterKey, Unlock, key_params};
use super::{BackupError, MAX_FILE_BYTES, read_manifest};
use crate::agent::client::Client;

/// How deep below a disk's root (or a configured folder) backups are looked for:
/// `/media/usb/hearth-backups/2026/x.hbk` is found.
pub const MAX_DEPTH: usize = 3;
/// Folder entries read per place at most.
const MAX_VISITS: usize = 20_000;
/// Files opened (newest first) per search at most; older ones are listed without facts.
pub const MAX_FOUND: usize = 32;
/// Different passphrase settings (salts) tried per search: each costs an Argon2id run.
const MAX_KEYS: usize = 4;
/// Folders a disk is mounted at that mark it as the device's own.
const SYSTEM_MOUNTS: [&str; 5] = ["/", "/boot", "/efi", "/boot/efi", "/usr"];

/// One search at a time: a second waits, so no search unmounts a disk another one reads.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where backups were looked for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Place {
    /// `disk:<filesystem UUID>` or `folder:<n>`.
    pub id: String,
    /// For people: "USB disk HOLIDAY (sdb1)" or the folder.
    pub label: String,
    /// Why it could not be searched, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What a backup's manifest says, shown before it is chosen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Facts {
    /// When it was made (seconds since the epoch).
    pub created_at: u64,
    pub hearth_version: String,
    pub schema_version: u64,
    pub board: String,
    /// The name of the device it was made on.
    pub server_name: String,
    /// Bytes of the database, certificates and config inside.
    pub content_bytes: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// The error code a restore of this file would answer with (`wrong_passphrase`, …).
    pub code: String,
    pub message: String,
}

/// A backup file found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Found {
    /// Names this file in `POST /api/v1/setup/backups/restore`.
    pub id: String,
    /// The [`Place`] it is on.
    pub place: String,
    /// Its path below the place (`hearth-backups/hearth-backup-20261206-041500.hbk`).
    pub path: String,
    /// Bytes of the file.
    pub size: u64,
    /// When the file was last written (seconds since the epoch).
    pub modified: u64,
    /// What its manifest says, when the passphrase opens it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
    /// Why it cannot be restored, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Search {
    pub places: Vec<Place>,
    /// Newest first.
    pub backups: Vec<Found>,
}

/// A place to search, mounted.
#[derive(Debug, Clone)]
struct Root {
    id: String,
    label: String,
    path: PathBuf,
}

/// What to search: the agent (the appliance's disks) and the configured folders.
pub struct Sources<'a> {
    pub agent: Option<&'a Client>,
    pub folders: &'a [PathBuf],
    pub data_dir: &'a Path,
}

/// Mounts what must be, runs `work` on the places (blocking), unmounts what was mounted.
async fn with_roots<T: Send + 'static>(
    src: &Sources<'_>,
    work: impl FnOnce(Vec<Root>) -> T + Send + 'static,
) -> Result<(Vec<Place>, T), BackupError> {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut places = Vec::new();
    let mut roots = Vec::new();
    let mut mounted_here: Vec<String> = Vec::new();
    if let Some(agent) = src.agent {
        match agent.list_disks().await {
            Ok(list) => {
                for disk in &list.disks {
                    if is_system_disk(disk, src.data_dir) {
                        continue;
                    }
                    for v in &disk.volumes {
                        let (Some(uuid), Some(fs)) = (&v.uuid, v.fs_type) else {
                            continue;
                        };
                        if !crate::blockdev::plan::ALLOWED_FS.contains(&fs) {
                            continue;
                        }
                        let id = format!("disk:{uuid}");
                        let label = format!(
                            "{} {} ({})",
                            if disk.usb { "USB disk" } else { "Disk" },
                            v.label.clone().unwrap_or_else(|| uuid.clone()),
                            v.name
                        );
                        let path = match v.mount_points.first() {
                            Some(mp) => Ok(mp.clone()),
                            None => match agent.mount(uuid, true, None).await {
                                Ok(m) => {
                                    if !m.already_mounted {
                                        mounted_here.push(uuid.clone());
                                    }
                                    Ok(m.mount_point)
                                }
                                Err(e) => Err(format!("it could not be read: {e}")),
                            },
                        };
                        match path {
                            Ok(path) => {
                                places.push(Place {
                                    id: id.clone(),
                                    label: label.clone(),
                                    problem: None,
                                });
                                roots.push(Root { id, label, path });
                            }
                            Err(problem) => places.push(Place {
                                id,
                                label,
                                problem: Some(problem),
                            }),
                        }
                    }
                }
            }
            Err(crate::agent::client::ClientError::NoAgent) => {}
            Err(e) => places.push(Place {
                id: "disks".into(),
                label: "Disks".into(),
                problem: Some(format!("the disks could not be listed: {e}")),
            }),
        }
    }
    for (n, folder) in src.folders.iter().enumerate() {
        let id = format!("folder:{n}");
        let label = folder.display().to_string();
        if folder.is_dir() {
            places.push(Place {
                id: id.clone(),
                label: label.clone(),
                problem: None,
            });
            roots.push(Root {
                id,
                label,
                path: folder.clone(),
            });
        } else {
            places.push(Place {
                id,
                label,
                problem: Some("the folder does not exist (is the disk plugged in?)".into()),
            });
        }
    }
    let out = tokio::task::spawn_blocking(move || work(roots)).await;
    if let Some(agent) = src.agent {
        for uuid in mounted_here {
            if let Err(e) = agent.unmount(&uuid).await {
                tracing::warn!(uuid, error = %e, "cannot unmount a disk the backup search mounted");
            }
        }
    }
    let out = out.map_err(|e| BackupError::Internal(e.to_string()))?;
    Ok((places, out))
}

/// The device's own disk: one of its filesystems is mounted at `/`, a boot folder, or a
/// folder holding the data folder.
fn is_system_disk(disk: &crate::blockdev::Disk, data_dir: &Path) -> bool {
    disk.volumes
        .iter()
        .flat_map(|v| &v.mount_points)
        .any(|mp| SYSTEM_MOUNTS.iter().any(|s| mp == Path::new(s)) || data_dir.starts_with(mp))
}

/// A file found on a root, before it is opened.
struct Candidate {
    id: String,
    place: String,
    rel: String,
    full: PathBuf,
    size: u64,
    modified: u64,
}

/// Backup files (`*.hbk`, plain files, not empty, not over the restore limit) at most
/// [`MAX_DEPTH`] folders below `root`; no link is followed.
fn scan(root: &Root) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut visits = 0usize;
    let mut queue: std::collections::VecDeque<(PathBuf, usize)> =
        std::collections::VecDeque::from([(PathBuf::new(), 0)]);
    while let Some((rel_dir, depth)) = queue.pop_front() {
        let Ok(rd) = std::fs::read_dir(root.path.join(&rel_dir)) else {
            continue;
        };
        for e in rd.flatten() {
            visits += 1;
            if visits > MAX_VISITS {
                return out;
            }
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            // The entry's own type: a symbolic link is neither a file nor a folder here.
            let Ok(ft) = e.file_type() else { continue };
            let rel = rel_dir.join(&name);
            if ft.is_dir() {
                if depth < MAX_DEPTH {
                    queue.push_back((rel, depth + 1));
                }
            } else if ft.is_file()
                && name.ends_with(super::schedule::FILE_SUFFIX)
                && let Ok(m) = e.metadata()
                && m.len() > 0
                && m.len() <= MAX_FILE_BYTES
                && let Some(rel_str) = rel.to_str()
            {
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                out.push(Candidate {
                    id: format!("{}:{rel_str}", root.id),
                    place: root.label.clone(),
                    rel: rel_str.to_owned(),
                    full: root.path.join(&rel),
                    size: m.len(),
                    modified,
                });
            }
        }
    }
    out
}

fn candidates(roots: &[Root]) -> Vec<Candidate> {
    let mut all: Vec<Candidate> = roots.iter().flat_map(scan).collect();
    // Newest first: by the file's time, then (a FAT disk keeps it to two seconds) by the time
    // in a scheduled backup's name and its `-N`.
    let key = |c: &Candidate| {
        let name = Path::new(&c.rel)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        (c.modified, super::schedule::order_key(name), c.rel.clone())
    };
    all.sort_by_key(|c| std::cmp::Reverse(key(c)));
    all
}

/// The error code the web layer answers a restore of this file with.
pub fn problem_code(e: &BackupError) -> &'static str {
    match e {
        BackupError::NotABackup(_) => "not_a_backup",
        BackupError::FormatTooNew(_) => "backup_format_too_new",
        BackupError::TooNew { .. } => "backup_too_new",
        BackupError::WrongPassphrase => "wrong_passphrase",
        BackupError::Damaged(_) => "backup_damaged",
        BackupError::Truncated => "backup_truncated",
        BackupError::Hostile(_) => "backup_refused",
        BackupError::TooLarge(_) => "backup_too_large",
        _ => "unreadable",
    }
}

/// Opens each candidate's manifest with keys derived from `passphrase` (one per salt).
fn open_all(found: Vec<Candidate>, passphrase: &str) -> Vec<Found> {
    let mut keys: Vec<MasterKey> = Vec::new();
    let mut key_errors: Vec<((Kdf, [u8; 16]), BackupError)> = Vec::new();
    let mut out = Vec::new();
    for (i, c) in found.into_iter().enumerate() {
        let result = if i >= MAX_FOUND {
            Err(BackupError::Invalid(format!(
                "Not opened: only the newest {MAX_FOUND} backups found are checked. Remove older ones from the disk to see it."
            )))
        } else {
            open_one(&c.full, passphrase, &mut keys, &mut key_errors)
        };
        let (facts, problem) = match result {
            Ok(m) => (
                Some(Facts {
                    created_at: m.created_at,
                    content_bytes: m.total_size(),
                    hearth_version: m.hearth_version,
                    schema_version: m.schema_version,
                    board: m.board,
                    server_name: m.server_name,
                }),
                None,
            ),
            Err(e) => (
                None,
                Some(Problem {
                    code: problem_code(&e).into(),
                    message: e.to_string(),
                }),
            ),
        };
        out.push(Found {
            id: c.id,
            place: c.place,
            path: c.rel,
            size: c.size,
            modified: c.modified,
            facts,
            problem,
        });
    }
    out
}

fn open_one(
    path: &Path,
    passphrase: &str,
    keys: &mut Vec<MasterKey>,
    key_errors: &mut Vec<((Kdf, [u8; 16]), BackupError)>,
) -> Result<super::Manifest, BackupError> {
    let params = key_params(std::fs::File::open(path)?)?;
    let key = match keys.iter().find(|k| (k.kdf, k.salt) == params) {
        Some(k) => k.clone(),
        None => {
            if let Some((_, e)) = key_errors.iter().find(|(p, _)| *p == params) {
                return Err(copy_error(e));
            }
            if keys.len() + key_errors.len() >= MAX_KEYS {
                return Err(BackupError::Invalid(format!(
                    "Not opened: this search already tried {MAX_KEYS} different passphrase settings. Restore it from its file, or remove other backups from the disk."
                )));
            }
            match MasterKey::derive(passphrase, params.0, params.1) {
                Ok(k) => {
                    keys.push(k.clone());
                    k
                }
                Err(e) => {
                    key_errors.push((params, copy_error(&e)));
                    return Err(e);
                }
            }
        }
    };
    read_manifest(std::fs::File::open(path)?, Unlock::Key(&key))
}

fn copy_error(e: &BackupError) -> BackupError {
    BackupError::Invalid(e.to_string())
}

/// Looks for backups and opens each one's manifest with the passphrase.
pub async fn search(src: &Sources<'_>, passphrase: String) -> Result<Search, BackupError> {
    let (places, backups) =
        with_roots(src, move |roots| open_all(candidates(&roots), &passphrase)).await?;
    Ok(Search { places, backups })
}

/// Finds the backup `id` names (a fresh search: only a file found can be restored) and runs
/// `work` on its path while its disk is mounted; the disk is unmounted after.
pub async fn with_backup<T: Send + 'static>(
    src: &Sources<'_>,
    id: &str,
    work: impl FnOnce(&Path) -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    if id.is_empty()
        || id.len() > 4096
        || Path::new(id)
            .components()
            .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(BackupError::Invalid(
            "That is not a backup this device found; search again.".into(),
        ));
    }
    let id = id.to_owned();
    let (_, result) = with_roots(src, move |roots| {
        let found = candidates(&roots).into_iter().find(|c| c.id == id);
        match found {
            Some(c) => work(&c.full),
            None => Err(BackupError::Folder(
                "That backup is no longer there (was the disk pulled?). Search again.".into(),
            )),
        }
    })
    .await?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(p: &Path) -> Root {
        Root {
            id: "folder:0".into(),
            label: "test".into(),
            path: p.to_owned(),
        }
    }

    #[test]
    fn scan_finds_backups_three_deep_and_follows_no_links() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let deep = r.join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(r.join("a/b/c/d")).unwrap();
        std::fs::create_dir_all(r.join(".hidden")).unwrap();
        for f in [
            "top.hbk",
            "a/b/c/deep.hbk",
            "a/b/c/d/too-deep.hbk",
            ".hidden/x.hbk",
            "a/notes.txt",
            "a/b/empty.hbk",
        ] {
            let content: &[u8] = if f.ends_with("empty.hbk") { b"" } else { b"x" };
            std::fs::write(r.join(f), content).unwrap();
        }
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("elsewhere.hbk"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), r.join("link-dir")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("elsewhere.hbk"), r.join("link.hbk"))
            .unwrap();
        let mut names: Vec<String> = scan(&root(r)).into_iter().map(|c| c.id).collect();
        names.sort();
        assert_eq!(names, ["folder:0:a/b/c/deep.hbk", "folder:0:top.hbk"]);
    }

    #[test]
    fn the_devices_own_disk_is_not_searched() {
        let vol = |mp: &str| crate::blockdev::Volume {
            name: "x1".into(),
            device: "/dev/x1".into(),
            dev_t: "8:1".into(),
            size_bytes: 1,
            fs_type: None,
            uuid: None,
            label: None,
            mount_points: if mp.is_empty() {
                vec![]
            } else {
                vec![mp.into()]
            },
            mounted_read_only: false,
            free_bytes: None,
            total_bytes: None,
        };
        let disk = |mps: &[&str]| crate::blockdev::Disk {
            name: "x".into(),
            model: None,
            vendor: None,
            size_bytes: 1,
            removable: false,
            usb: false,
            read_only: false,
            diskseq: None,
            volumes: mps.iter().map(|m| vol(m)).collect(),
        };
        let data = Path::new("/data/hearth");
        assert!(is_system_disk(&disk(&["", "/"]), data));
        assert!(is_system_disk(&disk(&["/data"]), data));
        assert!(is_system_disk(&disk(&["/boot/efi", ""]), data));
        assert!(!is_system_disk(&disk(&["/media/STICK", ""]), data));
        assert!(!is_system_disk(&disk(&[""]), data));
    }
}
