//! Security-sensitive: encrypted backups of everything a household built (the database, the
//! TLS material, the config), and restoring them.
//!
//! A backup is one file: the encrypted container of [`format`] around a deflate stream of
//! `manifest length (u32) | manifest (JSON) | each file's bytes, in manifest order`. Media files
//! are never in it. Reading one checks everything (passphrase, every chunk, the manifest's
//! names, kinds and sizes, every file's SHA-256, the schema version) while writing into a
//! staging folder; only a complete, verified staging folder is renamed into place as the
//! pending restore, which [`restore::apply_pending`] swaps in at the next start.
//!
//! Domain code: nothing here knows HTTP. Owner-only operations take the [`OwnerProof`].

pub mod find;
pub mod format;
pub mod restore;
pub mod schedule;

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::policy::OwnerProof;
use crate::store::{Store, StoreError};

pub use format::{Kdf, MasterKey, Unlock};

/// What a backup file may hold at most, uncompressed (the database is most of it).
pub const MAX_CONTENT_BYTES: u64 = 8 << 30;
/// Largest backup file accepted for a restore.
pub const MAX_FILE_BYTES: u64 = 4 << 30;
const MAX_MANIFEST: u32 = 1 << 20;
const MAX_ENTRIES: usize = 256;
/// The TLS files are small; a bigger one is not ours.
const MAX_TLS_FILE: u64 = 1 << 20;
const PRODUCT: &str = "hearth";
/// File name of the database inside a backup (and in the data directory).
pub const DB_FILE: &str = "hearth.redb";
pub const CONFIG_FILE: &str = "config.toml";
pub const TLS_DIR: &str = "tls";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("This file is not a Hearth backup: {0}.")]
    NotABackup(String),
    #[error(
        "This backup uses file format {0}, which this Hearth cannot read. Update Hearth first, then restore."
    )]
    FormatTooNew(u16),
    #[error("The passphrase is wrong for this backup file.")]
    WrongPassphrase,
    #[error("The backup file is damaged: {0}. Nothing was changed.")]
    Damaged(String),
    #[error(
        "The backup file is incomplete (it was cut off, perhaps by a full disk or an interrupted copy). Nothing was changed."
    )]
    Truncated,
    #[error("The backup file was refused: {0}. Nothing was changed.")]
    Hostile(String),
    #[error("The backup is too large: {0}. Nothing was changed.")]
    TooLarge(String),
    #[error(
        "This backup was made by Hearth {made_by} (database schema {schema}); this device runs Hearth {running}, which reads schema {known} at most. Update this device to Hearth {made_by} or newer, then restore."
    )]
    TooNew {
        made_by: String,
        schema: u64,
        running: String,
        known: u64,
    },
    #[error(
        "Restoring is only possible from the home network or the device itself, as for claiming."
    )]
    NeedsLan,
    #[error("{0}")]
    WeakPassphrase(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Folder(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl BackupError {
    /// An I/O error that may carry a [`BackupError`] from the container's reader.
    pub fn from_io(e: io::Error) -> BackupError {
        if e.get_ref().is_some_and(|i| i.is::<BackupError>()) {
            if let Some(inner) = e.into_inner()
                && let Ok(b) = inner.downcast::<BackupError>()
            {
                return *b;
            }
            return BackupError::Internal("lost error".into());
        }
        match e.kind() {
            io::ErrorKind::UnexpectedEof => BackupError::Truncated,
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                BackupError::Damaged(format!("its contents do not decompress ({e})"))
            }
            _ => BackupError::Io(e),
        }
    }
}

/// What a backup says about itself, first in the file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `hearth`.
    pub product: String,
    pub hearth_version: String,
    pub schema_version: u64,
    pub board: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    pub server_name: String,
    pub files: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub path: String,
    /// Always `file`: a backup holds no links or devices.
    pub kind: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Checks every name, kind and size before a byte is written.
    fn check(&self) -> Result<(), BackupError> {
        if self.product != PRODUCT {
            return Err(BackupError::NotABackup(format!(
                "its manifest says it comes from \"{}\"",
                self.product
            )));
        }
        if self.files.len() > MAX_ENTRIES {
            return Err(BackupError::Hostile(format!(
                "it lists {} files; a Hearth backup holds a handful",
                self.files.len()
            )));
        }
        let mut total: u64 = 0;
        let mut seen = std::collections::HashSet::new();
        for f in &self.files {
            if f.kind != "file" {
                return Err(BackupError::Hostile(format!(
                    "it holds a {} ({:?}); a Hearth backup holds only plain files",
                    if f.kind == "symlink" {
                        "symbolic link"
                    } else {
                        "non-file entry"
                    },
                    f.path
                )));
            }
            if !allowed_path(&f.path) {
                return Err(BackupError::Hostile(format!(
                    "it names a file outside what a backup may hold ({:?})",
                    f.path
                )));
            }
            if !seen.insert(f.path.as_str()) {
                return Err(BackupError::Hostile(format!("it lists {:?} twice", f.path)));
            }
            if f.path != DB_FILE && f.size > MAX_TLS_FILE {
                return Err(BackupError::TooLarge(format!(
                    "{} claims {} bytes; certificates and the config are small",
                    f.path, f.size
                )));
            }
            if f.sha256.len() != 64 || hex::decode(&f.sha256).is_err() {
                return Err(BackupError::Hostile(format!(
                    "the checksum of {:?} is not a SHA-256",
                    f.path
                )));
            }
            total = total.saturating_add(f.size);
        }
        if total > MAX_CONTENT_BYTES {
            return Err(BackupError::TooLarge(format!(
                "its files add up to {total} bytes, more than the {MAX_CONTENT_BYTES} a backup may hold"
            )));
        }
        if !seen.contains(DB_FILE) {
            return Err(BackupError::Hostile("it holds no database".into()));
        }
        Ok(())
    }

    /// Refuses a backup whose database is newer than this binary knows.
    fn check_schema(&self) -> Result<(), BackupError> {
        if self.schema_version > crate::store::SCHEMA_VERSION {
            return Err(BackupError::TooNew {
                made_by: self.hearth_version.clone(),
                schema: self.schema_version,
                running: crate::model::build::version().to_owned(),
                known: crate::store::SCHEMA_VERSION,
            });
        }
        Ok(())
    }
}

/// `hearth.redb`, `config.toml`, or `tls/<plain name>`: nothing else, no `..`, no `/` inside.
fn allowed_path(p: &str) -> bool {
    if p == DB_FILE || p == CONFIG_FILE {
        return true;
    }
    let Some(name) = p.strip_prefix("tls/") else {
        return false;
    };
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// A private work folder under the data directory, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(data_dir: &Path, prefix: &str) -> Result<WorkDir, BackupError> {
        let mut r = [0u8; 6];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r)
            .map_err(|_| BackupError::Internal("random".into()))?;
        let p = data_dir.join(format!("{prefix}-{}", hex::encode(r)));
        private_dir(&p)?;
        Ok(WorkDir(p))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn private_dir(p: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(crate::store::perms::DIR_MODE)
        .create(p)
}

fn private_file(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::store::perms::FILE_MODE)
        .open(p)
}

/// What goes into a backup besides the database.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The running configuration, as TOML (kept for reference; the image provides its own).
    pub config_toml: String,
    pub server_name: String,
}

/// Writes a complete backup of `store` (and `data_dir/tls`) to `out`; returns its manifest
/// and the bytes written. The database is copied in one read transaction: the server keeps
/// serving and writing meanwhile.
pub fn write_backup(
    store: &Store,
    data_dir: &Path,
    extras: &Extras,
    key: &MasterKey,
    out: impl Write,
) -> Result<(Manifest, u64), BackupError> {
    let work = WorkDir::new(data_dir, "backup-work")?;
    let db = work.0.join(DB_FILE);
    let snap = store.snapshot_to(&db)?;
    let db_sha = {
        let mut f = BufReader::new(File::open(&db)?);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        hex::encode(ctx.finish())
    };
    let db_size = std::fs::metadata(&db)?.len();
    let mut small: Vec<(String, Vec<u8>)> = Vec::new();
    let tls = data_dir.join(TLS_DIR);
    if let Ok(entries) = std::fs::read_dir(&tls) {
        let mut names = Vec::new();
        for e in entries {
            let e = e?;
            // Only plain files; a link in the data directory is not ours to follow.
            if !e.file_type()?.is_file() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let path = format!("tls/{name}");
            if allowed_path(&path) && e.metadata()?.len() <= MAX_TLS_FILE {
                names.push((path, e.path()));
            }
        }
        names.sort();
        for (path, file) in names {
            let mut bytes = Vec::new();
            File::open(&file)?
                .take(MAX_TLS_FILE + 1)
                .read_to_end(&mut bytes)?;
            small.push((path, bytes));
        }
    }
    small.push((
        CONFIG_FILE.to_owned(),
        extras.config_toml.clone().into_bytes(),
    ));
    let mut files = vec![Entry {
        path: DB_FILE.into(),
        kind: "file".into(),
        size: db_size,
        sha256: db_sha,
    }];
    for (path, bytes) in &small {
        files.push(Entry {
            path: path.clone(),
            kind: "file".into(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        });
    }
    let manifest = Manifest {
        product: PRODUCT.into(),
        hearth_version: crate::model::build::version().to_owned(),
        schema_version: snap.schema_version,
        board: crate::ota::service::device_board(),
        created_at: crate::model::clock::now_secs(),
        server_name: extras.server_name.clone(),
        files,
    };
    let json = serde_json::to_vec(&manifest).map_err(|e| BackupError::Internal(e.to_string()))?;
    let sealer = format::Sealer::new(out, key)?;
    let mut z = flate2::write::DeflateEncoder::new(sealer, flate2::Compression::new(3));
    z.write_all(&(json.len() as u32).to_be_bytes())?;
    z.write_all(&json)?;
    io::copy(&mut BufReader::new(File::open(&db)?), &mut z)?;
    for (_, bytes) in &small {
        z.write_all(bytes)?;
    }
    let sealer = z.finish()?;
    let (_, written) = sealer.finish()?;
    Ok((manifest, written))
}

/// Opens a backup just far enough to read and check its manifest (what the setup wizard shows
/// before a restore). The rest of the file is not read: [`read_backup`] checks all of it.
pub fn read_manifest(input: impl Read, unlock: Unlock<'_>) -> Result<Manifest, BackupError> {
    let mut opener = format::Opener::new(input, unlock)?;
    let mut z = flate2::read::DeflateDecoder::new(&mut opener);
    let mut len = [0u8; 4];
    z.read_exact(&mut len).map_err(BackupError::from_io)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_MANIFEST {
        return Err(BackupError::Hostile(format!(
            "its manifest claims {len} bytes"
        )));
    }
    let mut json = vec![0u8; len as usize];
    z.read_exact(&mut json).map_err(BackupError::from_io)?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| BackupError::Hostile(format!("its manifest cannot be read ({e})")))?;
    manifest.check()?;
    manifest.check_schema()?;
    Ok(manifest)
}

/// Reads a whole backup, checking everything; with `dest`, writes its files there (a new,
/// private folder the caller removes on error). Returns the manifest.
pub fn read_backup(
    input: impl Read,
    unlock: Unlock<'_>,
    dest: Option<&Path>,
) -> Result<Manifest, BackupError> {
    let mut opener = format::Opener::new(input, unlock)?;
    let manifest = {
        let mut z = flate2::read::DeflateDecoder::new(&mut opener);
        let mut len = [0u8; 4];
        z.read_exact(&mut len).map_err(BackupError::from_io)?;
        let len = u32::from_be_bytes(len);
        if len > MAX_MANIFEST {
            return Err(BackupError::Hostile(format!(
                "its manifest claims {len} bytes"
            )));
        }
        let mut json = vec![0u8; len as usize];
        z.read_exact(&mut json).map_err(BackupError::from_io)?;
        let manifest: Manifest = serde_json::from_slice(&json)
            .map_err(|e| BackupError::Hostile(format!("its manifest cannot be read ({e})")))?;
        manifest.check()?;
        manifest.check_schema()?;
        if let Some(dest) = dest {
            let needed = manifest.total_size();
            if let Some(free) = free_bytes(dest)
                && free < needed.saturating_add(64 << 20)
            {
                return Err(BackupError::TooLarge(format!(
                    "it needs {needed} bytes and the data disk has {free} free"
                )));
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        for f in &manifest.files {
            let mut out = match dest {
                Some(d) => {
                    let p = d.join(&f.path);
                    if let Some(parent) = p.parent() {
                        private_dir(parent)?;
                    }
                    Some(io::BufWriter::new(private_file(&p)?))
                }
                None => None,
            };
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            let mut left = f.size;
            while left > 0 {
                let want = (buf.len() as u64).min(left) as usize;
                let n = z.read(&mut buf[..want]).map_err(BackupError::from_io)?;
                if n == 0 {
                    return Err(BackupError::Damaged(format!(
                        "{} is shorter than its manifest says",
                        f.path
                    )));
                }
                ctx.update(&buf[..n]);
                if let Some(o) = out.as_mut() {
                    o.write_all(&buf[..n])?;
                }
                left -= n as u64;
            }
            if hex::encode(ctx.finish()) != f.sha256 {
                return Err(BackupError::Damaged(format!(
                    "{} does not match its checksum",
                    f.path
                )));
            }
            if let Some(o) = out {
                o.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            }
        }
        // Nothing may follow the last file: a "decompression bomb" ends here, unread.
        let mut one = [0u8; 1];
        if z.read(&mut one).map_err(BackupError::from_io)? != 0 {
            return Err(BackupError::Hostile(
                "it holds more data than its manifest lists".into(),
            ));
        }
        manifest
    };
    opener.finish(0)?;
    Ok(manifest)
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

/// The backup service the web layer and the scheduler use.
#[derive(Clone)]
pub struct Backups {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    data_dir: PathBuf,
    extras: Extras,
    busy: std::sync::Mutex<()>,
    /// Asks the server to restart so a staged restore is swapped in.
    restart: tokio::sync::Notify,
    /// Wakes the scheduler (settings changed).
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Backups")
    }
}

/// Who restores: the signed-in owner, or the setup wizard of an unclaimed device (after the
/// setup code was checked, from the home network).
pub enum RestoreBy<'a> {
    Owner(&'a OwnerProof),
    SetupWizard,
}

impl Backups {
    pub fn new(store: Store, data_dir: PathBuf, config_toml: String) -> Backups {
        Backups {
            inner: Arc::new(Inner {
                store,
                data_dir,
                extras: Extras {
                    config_toml,
                    server_name: String::new(),
                },
                busy: std::sync::Mutex::new(()),
                restart: tokio::sync::Notify::new(),
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// One backup or restore at a time; the next waits for it.
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, BackupError> {
        Ok(self
            .inner
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn extras(&self) -> Result<Extras, BackupError> {
        let name: Option<String> = self
            .inner
            .store
            .read(|r| r.setting(crate::identity::SERVER_NAME_KEY))?;
        Ok(Extras {
            server_name: name.unwrap_or_default(),
            ..self.inner.extras.clone()
        })
    }

    /// Makes a backup with `passphrase` and writes it to `out` (a download). Slow (Argon2id);
    /// call from a blocking thread.
    pub fn download(
        &self,
        _owner: &OwnerProof,
        passphrase: &str,
        out: impl Write,
    ) -> Result<(Manifest, u64), BackupError> {
        let _busy = self.lock()?;
        let key = MasterKey::new(passphrase, Kdf::DEFAULT)?;
        let extras = self.extras()?;
        let made = write_backup(&self.inner.store, &self.inner.data_dir, &extras, &key, out)?;
        schedule::record_download(&self.inner.store, made.1)?;
        Ok(made)
    }

    /// Checks an uploaded backup completely and stages it; the server then restarts and
    /// swaps it in (see [`Backups::restart_requested`]). Nothing is changed on any error.
    pub fn restore(
        &self,
        by: RestoreBy<'_>,
        from: crate::net::NetClass,
        file: &Path,
        passphrase: &str,
    ) -> Result<Manifest, BackupError> {
        let manifest = self.stage(by, from, file, passphrase)?;
        self.request_restart();
        Ok(manifest)
    }

    /// [`Backups::restore`] without the restart: the caller finishes what it must (unmounts a
    /// disk it mounted to read the file), then calls [`Backups::request_restart`].
    pub fn stage(
        &self,
        by: RestoreBy<'_>,
        from: crate::net::NetClass,
        file: &Path,
        passphrase: &str,
    ) -> Result<Manifest, BackupError> {
        // A restore replaces every account: like claiming, never from outside the house.
        if from == crate::net::NetClass::Remote {
            return Err(BackupError::NeedsLan);
        }
        if let RestoreBy::SetupWizard = by
            && crate::identity::is_claimed(&self.inner.store)?
        {
            return Err(BackupError::Invalid(
                "This device is already claimed; the owner restores from Settings → Backups."
                    .into(),
            ));
        }
        let _busy = self.lock()?;
        let manifest = restore::stage(
            &self.inner.data_dir,
            File::open(file)?,
            Unlock::Passphrase(passphrase),
        )?;
        tracing::warn!(
            made = manifest.created_at,
            version = %manifest.hearth_version,
            "a backup was verified and staged; restarting to restore it"
        );
        Ok(manifest)
    }

    /// Asks the server to restart and swap in the staged restore.
    pub fn request_restart(&self) {
        self.inner.restart.notify_one();
    }

    /// Completes when a staged restore waits for the server to restart.
    pub async fn restart_requested(&self) {
        self.inner.restart.notified().await
    }
}
