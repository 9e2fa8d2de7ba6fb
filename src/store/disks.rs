//! Remembered disks: filesystem UUID → where it was mounted, so a known disk comes back at
//! the same place after a reboot or a re-plug, and libraries on it keep their paths.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::{JsonTable, Rx, StoreError, Tx, all_json, encode, get_json};

pub(super) const DISKS: JsonTable<&str> = TableDefinition::new("disks");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(DISKS)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedDisk {
    pub uuid: String,
    /// The full mount point, e.g. `/media/Films`.
    pub mount_point: String,
    pub label: Option<String>,
    /// Mounted read-only last time, so a re-mount keeps the owner's choice.
    pub read_only: bool,
    /// Unix seconds when the disk was last seen attached.
    pub last_seen: u64,
}

impl Tx<'_> {
    pub fn remember_disk(&self, disk: &RememberedDisk) -> Result<(), StoreError> {
        self.tx
            .open_table(DISKS)?
            .insert(disk.uuid.as_str(), encode(disk)?.as_slice())?;
        Ok(())
    }

    pub fn remembered_disk(&self, uuid: &str) -> Result<Option<RememberedDisk>, StoreError> {
        get_json(&self.tx.open_table(DISKS)?, uuid)
    }

    pub fn forget_disk(&self, uuid: &str) -> Result<bool, StoreError> {
        Ok(self.tx.open_table(DISKS)?.remove(uuid)?.is_some())
    }
}

impl Rx {
    pub fn remembered_disk(&self, uuid: &str) -> Result<Option<RememberedDisk>, StoreError> {
        get_json(&self.tx.open_table(DISKS)?, uuid)
    }

    pub fn remembered_disks(&self) -> Result<Vec<RememberedDisk>, StoreError> {
        all_json(&self.tx.open_table(DISKS)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn remembered_disks_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.redb");
        let d = RememberedDisk {
            uuid: "1234-ABCD".into(),
            mount_point: "/media/Films".into(),
            label: Some("Films".into()),
            read_only: true,
            last_seen: 1,
        };
        {
            let s = Store::open(&path).unwrap();
            s.write(|tx| tx.remember_disk(&d)).unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.read(|r| r.remembered_disk("1234-ABCD")).unwrap(),
            Some(d.clone())
        );
        assert_eq!(s.read(|r| r.remembered_disks()).unwrap(), vec![d]);
        assert!(s.write(|tx| tx.forget_disk("1234-ABCD")).unwrap());
        assert!(!s.write(|tx| tx.forget_disk("1234-ABCD")).unwrap());
        assert_eq!(s.read(|r| r.remembered_disk("1234-ABCD")).unwrap(), None);
    }
}
