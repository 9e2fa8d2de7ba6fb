//! The database: one redb file, `<data>/hearth.redb`. Only this module touches redb.
//!
//! Records are stored as JSON values in typed tables, one module per table family. Every
//! change that has to be all-or-nothing (a claim creates the owner, their device, the
//! server name and an audit entry) happens inside one [`Store::write`] call, which is one
//! redb transaction: a crash leaves the old state or the new one, never half.

pub mod audit;
pub mod devices;
pub mod disks;
pub mod invites;
pub mod library;
pub mod ota;
pub mod perms;
pub mod settings;
pub mod snapshot;
pub mod users;
pub mod watch;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Schema this binary writes. Bump it and add a step to [`MIGRATIONS`] when a table's shape
/// changes.
pub const SCHEMA_VERSION: u64 = 1;

/// redb's page cache. Its default (1 GiB) lets a full scan of a big library leave tens of
/// megabytes of pages resident for good; the kernel's page cache keeps hot pages close
/// anyway, and an appliance's idle memory is what the household notices.
const CACHE_BYTES: usize = 8 << 20;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_KEY: &str = "schema_version";

/// One migration step: from version `index + 1` to `index + 2`, inside the open transaction.
type Migration = fn(&redb::WriteTransaction) -> Result<(), StoreError>;
const MIGRATIONS: &[Migration] = &[];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database at {path} is in use by another hearth process (is `hearth serve` running?); stop it first"
    )]
    Busy { path: String },
    #[error(
        "the database was written by a newer hearth (schema {found}, this binary knows {SCHEMA_VERSION}); install that version again or restore a backup"
    )]
    TooNew { found: u64 },
    #[error("database error: {0}")]
    Db(Box<redb::Error>),
    #[error("a stored record could not be read: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(Box::new(e.into())) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let db = match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
            Ok(db) => {
                // redb creates the file with the umask's mode; it holds keys and secrets.
                perms::secure_file(path)?;
                db
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::Busy {
                    path: path.display().to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let store = Store { db: Arc::new(db) };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let found = meta.get(SCHEMA_KEY)?.map(|v| v.value());
            match found {
                None => {
                    // A fresh database: create every table so readers never meet a missing one.
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                }
                Some(v) if v > SCHEMA_VERSION => return Err(StoreError::TooNew { found: v }),
                Some(v) => {
                    for step in (v..SCHEMA_VERSION).map(|from| MIGRATIONS[(from - 1) as usize]) {
                        step(&tx)?;
                    }
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                }
            }
        }
        users::create_tables(&tx)?;
        devices::create_tables(&tx)?;
        settings::create_tables(&tx)?;
        audit::create_tables(&tx)?;
        invites::create_tables(&tx)?;
        watch::create_tables(&tx)?;
        disks::create_tables(&tx)?;
        ota::create_tables(&tx)?;
        library::create_tables(&tx)?;
        tx.commit()?;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        Ok(meta.get(SCHEMA_KEY)?.map(|v| v.value()).unwrap_or(0))
    }

    /// Runs `f` in one write transaction and commits it if `f` returns `Ok`.
    /// Dropping the transaction on `Err` aborts every change `f` made.
    pub fn write<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = self.db.begin_write().map_err(StoreError::from)?;
        let out = f(&Tx { tx: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Like [`Store::write`], but the commit is not flushed to disk: a crash loses it (and
    /// every unflushed commit after the last flushed one) and leaves the database as it was
    /// then, never half-written. For bulk work that ends with an ordinary [`Store::write`],
    /// which makes everything before it durable (the scanner's batches).
    pub fn write_unflushed<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut tx = self.db.begin_write().map_err(StoreError::from)?;
        tx.set_durability(redb::Durability::None);
        let out = f(&Tx { tx: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` against a consistent snapshot.
    pub fn read<T, E>(&self, f: impl FnOnce(&Rx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = self.db.begin_read().map_err(StoreError::from)?;
        f(&Rx { tx })
    }
}

/// An open write transaction; table modules add typed methods to it.
pub struct Tx<'a> {
    tx: &'a redb::WriteTransaction,
}

/// An open read transaction; table modules add typed methods to it.
pub struct Rx {
    tx: redb::ReadTransaction,
}

/// A table whose values are JSON-encoded records.
type JsonTable<K> = TableDefinition<'static, K, &'static [u8]>;

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Next value of a named counter kept in `meta` (ids for users, devices, audit entries).
fn next_id(tx: &redb::WriteTransaction, name: &str) -> Result<u64, StoreError> {
    let mut meta = tx.open_table(META)?;
    let next = meta.get(name)?.map(|v| v.value()).unwrap_or(0) + 1;
    meta.insert(name, next)?;
    Ok(next)
}

fn get_json<K, T>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: K::SelfType<'_>,
) -> Result<Option<T>, StoreError>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    match table.get(key)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

fn all_json<K, T>(table: &impl ReadableTable<K, &'static [u8]>) -> Result<Vec<T>, StoreError>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, v) = row?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_gets_current_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hearth.redb")).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn reopening_keeps_data_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.redb");
        {
            let store = Store::open(&path).unwrap();
            store
                .write(|tx| tx.set_setting("server_name", &"Den".to_string()))
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let name: Option<String> = store.read(|r| r.setting("server_name")).unwrap();
        assert_eq!(name.as_deref(), Some("Den"));
    }

    #[test]
    fn newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(SCHEMA_KEY, SCHEMA_VERSION + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("newer hearth"));
    }

    #[test]
    fn second_open_is_refused_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.redb");
        let _held = Store::open(&path).unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    }

    #[test]
    fn failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hearth.redb")).unwrap();
        let r: Result<(), StoreError> = store.write(|tx| {
            tx.set_setting("server_name", &"Half".to_string())?;
            Err(StoreError::Corrupt("abort".into()))
        });
        assert!(r.is_err());
        let name: Option<String> = store.read(|r| r.setting("server_name")).unwrap();
        assert_eq!(name, None);
    }
}
