//! A consistent copy of the whole database, taken in one read transaction while the server
//! keeps running (backups), and a plain dump of every table (to compare two databases).
//!
//! Every table the database holds must be in [`copy_all`]: a table nobody added here would be
//! silently left out of backups, so a snapshot of a database holding an unknown table is
//! refused instead.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, MultimapTableHandle, ReadableTable, TableDefinition, TableHandle};

use super::{META, SCHEMA_KEY, Store, StoreError, perms};
use super::{audit, devices, disks, invites, library, ota, settings, users, watch};

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The schema version of the copied database.
    pub schema_version: u64,
    pub tables: usize,
    pub rows: u64,
}

/// Something done with each table: copied into another database, or dumped as text.
trait Visit {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        rx: &redb::ReadTransaction,
        def: TableDefinition<'static, K, V>,
    ) -> Result<(), StoreError>;
}

/// Visits every table of the schema. Adding a table to the store means adding it here.
fn visit_all(rx: &redb::ReadTransaction, v: &mut impl Visit) -> Result<usize, StoreError> {
    v.table(rx, META)?;
    v.table(rx, users::USERS)?;
    v.table(rx, users::USERNAMES)?;
    v.table(rx, devices::DEVICES)?;
    v.table(rx, devices::DEVICE_TOKENS)?;
    v.table(rx, audit::AUDIT)?;
    v.table(rx, ota::OTA_JOB)?;
    v.table(rx, ota::OTA_CHUNKS)?;
    v.table(rx, invites::INVITES)?;
    v.table(rx, invites::INVITE_TOKENS)?;
    v.table(rx, library::LIBRARIES)?;
    v.table(rx, library::FOLDERS)?;
    v.table(rx, library::ITEMS)?;
    v.table(rx, library::FILES)?;
    v.table(rx, library::BY_TITLE)?;
    v.table(rx, library::BY_YEAR)?;
    v.table(rx, library::BY_ADDED)?;
    v.table(rx, library::TERMS)?;
    v.table(rx, library::SCAN_ERRORS)?;
    v.table(rx, library::SEARCH_ROWS)?;
    v.table(rx, settings::SETTINGS)?;
    v.table(rx, disks::DISKS)?;
    v.table(rx, watch::WATCH)?;
    Ok(23)
}

/// Names of the tables [`visit_all`] knows.
fn known_names(rx: &redb::ReadTransaction) -> Result<Vec<String>, StoreError> {
    struct Names(Vec<String>);
    impl Visit for Names {
        fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
            &mut self,
            _rx: &redb::ReadTransaction,
            def: TableDefinition<'static, K, V>,
        ) -> Result<(), StoreError> {
            self.0.push(def.name().to_owned());
            Ok(())
        }
    }
    let mut names = Names(Vec::new());
    visit_all(rx, &mut names)?;
    Ok(names.0)
}

/// Refuses a database holding a table this module does not know.
fn check_known(rx: &redb::ReadTransaction) -> Result<(), StoreError> {
    let known = known_names(rx)?;
    for t in rx.list_tables()? {
        if !known.iter().any(|k| k == t.name()) {
            return Err(StoreError::Corrupt(format!(
                "the database holds a table \"{}\" that backups do not know; it would be left out",
                t.name()
            )));
        }
    }
    if let Some(t) = rx.list_multimap_tables()?.next() {
        return Err(StoreError::Corrupt(format!(
            "the database holds a multimap table \"{}\" that backups do not know",
            t.name()
        )));
    }
    Ok(())
}

impl Store {
    /// Copies every table, as one read transaction sees them, into a new database at `path`
    /// (which must not exist). Writers are not blocked: they go on committing while the copy
    /// reads the snapshot.
    pub fn snapshot_to(&self, path: &Path) -> Result<SnapshotInfo, StoreError> {
        let rx = self.db.begin_read()?;
        check_known(&rx)?;
        let schema_version = rx
            .open_table(META)?
            .get(SCHEMA_KEY)?
            .map(|v| v.value())
            .unwrap_or(0);
        if path.exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists already", path.display()),
            )));
        }
        let out = Database::builder().create(path)?;
        perms::secure_file(path)?;
        let wx = out.begin_write()?;
        struct Copy<'a> {
            wx: &'a redb::WriteTransaction,
            rows: u64,
        }
        impl Visit for Copy<'_> {
            fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
                &mut self,
                rx: &redb::ReadTransaction,
                def: TableDefinition<'static, K, V>,
            ) -> Result<(), StoreError> {
                let src = match rx.open_table(def) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                let mut dst = self.wx.open_table(def)?;
                for row in src.iter()? {
                    let (k, v) = row?;
                    dst.insert(k.value(), v.value())?;
                    self.rows += 1;
                }
                Ok(())
            }
        }
        let mut copy = Copy { wx: &wx, rows: 0 };
        let tables = visit_all(&rx, &mut copy)?;
        let rows = copy.rows;
        wx.commit()?;
        drop(out);
        // The copy is a file of its own: make it durable before anyone reads it.
        std::fs::File::open(path)?.sync_all()?;
        Ok(SnapshotInfo {
            schema_version,
            tables,
            rows,
        })
    }

    /// Every table as text, one line a row (`key => value`), in key order. For comparing two
    /// databases (a restored one against the original), not for reading records.
    pub fn dump(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let rx = self.db.begin_read()?;
        check_known(&rx)?;
        struct Dump(BTreeMap<String, Vec<String>>);
        impl Visit for Dump {
            fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
                &mut self,
                rx: &redb::ReadTransaction,
                def: TableDefinition<'static, K, V>,
            ) -> Result<(), StoreError> {
                let rows = self.0.entry(def.name().to_owned()).or_default();
                let src = match rx.open_table(def) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                for row in src.iter()? {
                    let (k, v) = row?;
                    let (k, v) = (k.value(), v.value());
                    let v = format!("{v:?}");
                    // JSON records read better as text than as a byte list.
                    let v = match serde_json::from_str::<Vec<u8>>(&v) {
                        Ok(bytes) => String::from_utf8(bytes).unwrap_or(v),
                        Err(_) => v,
                    };
                    rows.push(format!("{k:?} => {v}"));
                }
                Ok(())
            }
        }
        let mut dump = Dump(BTreeMap::new());
        visit_all(&rx, &mut dump)?;
        Ok(dump.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_copies_every_table_and_keeps_writers_going() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hearth.redb")).unwrap();
        store
            .write(|tx| tx.set_setting("server_name", &"Den".to_string()))
            .unwrap();
        let snap = dir.path().join("snap.redb");
        let info = store.snapshot_to(&snap).unwrap();
        assert_eq!(info.schema_version, super::super::SCHEMA_VERSION);
        // The server's handle still writes after the snapshot.
        store
            .write(|tx| tx.set_setting("server_name", &"Later".to_string()))
            .unwrap();
        let before = store.dump().unwrap();
        drop(store);
        let copy = Store::open(&snap).unwrap();
        let name: Option<String> = copy.read(|r| r.setting("server_name")).unwrap();
        assert_eq!(name.as_deref(), Some("Den"));
        let after = copy.dump().unwrap();
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn snapshot_refuses_an_existing_file_and_unknown_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.redb");
        let store = Store::open(&path).unwrap();
        let snap = dir.path().join("snap.redb");
        std::fs::write(&snap, b"x").unwrap();
        assert!(store.snapshot_to(&snap).is_err());
        assert_eq!(std::fs::read(&snap).unwrap(), b"x");
        drop(store);
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            let t: TableDefinition<u64, u64> = TableDefinition::new("mystery");
            tx.open_table(t).unwrap().insert(1, 2).unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let err = store
            .snapshot_to(&dir.path().join("snap2.redb"))
            .unwrap_err();
        assert!(err.to_string().contains("mystery"), "{err}");
    }
}
