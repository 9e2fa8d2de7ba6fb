//! Signed-in devices. A device's bearer token is kept only as its SHA-256 in the
//! `device_tokens` index, so a copy of the database does not hand out sessions.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::{JsonTable, Rx, StoreError, Tx, all_json, encode, get_json, next_id};

pub(super) const DEVICES: JsonTable<u64> = TableDefinition::new("devices");
pub(super) const DEVICE_TOKENS: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("device_tokens");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(DEVICES)?;
    tx.open_table(DEVICE_TOKENS)?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: u64,
    /// The account that signed in on this device.
    pub user_id: u64,
    /// The profile currently active on this device (differs from `user_id` after a switch).
    pub active_user_id: u64,
    pub name: String,
    pub platform: String,
    pub client_id: String,
    pub token_hash: [u8; 32],
    pub first_seen: u64,
    pub last_seen: u64,
    pub last_address: String,
}

impl Tx<'_> {
    /// Stores a new device; `record.id` is assigned here and returned.
    pub fn create_device(&self, mut record: DeviceRecord) -> Result<DeviceRecord, StoreError> {
        record.id = next_id(self.tx, "next_device_id")?;
        self.tx
            .open_table(DEVICE_TOKENS)?
            .insert(&record.token_hash, record.id)?;
        self.tx
            .open_table(DEVICES)?
            .insert(record.id, encode(&record)?.as_slice())?;
        Ok(record)
    }

    pub fn update_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        self.tx
            .open_table(DEVICES)?
            .insert(record.id, encode(record)?.as_slice())?;
        Ok(())
    }

    pub fn device(&self, id: u64) -> Result<Option<DeviceRecord>, StoreError> {
        get_json(&self.tx.open_table(DEVICES)?, id)
    }

    /// Removes a device and its token; the token stops working with this commit.
    pub fn delete_device(&self, id: u64) -> Result<Option<DeviceRecord>, StoreError> {
        let mut devices = self.tx.open_table(DEVICES)?;
        let old: Option<DeviceRecord> = get_json(&devices, id)?;
        if let Some(old) = &old {
            devices.remove(id)?;
            self.tx.open_table(DEVICE_TOKENS)?.remove(&old.token_hash)?;
        }
        Ok(old)
    }

    /// Removes every device signed in as, or switched to, `user_id`.
    pub fn delete_devices_of(&self, user_id: u64) -> Result<Vec<DeviceRecord>, StoreError> {
        let all: Vec<DeviceRecord> = all_json(&self.tx.open_table(DEVICES)?)?;
        let mut removed = Vec::new();
        for d in all {
            if d.user_id == user_id || d.active_user_id == user_id {
                self.delete_device(d.id)?;
                removed.push(d);
            }
        }
        Ok(removed)
    }

    pub fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        all_json(&self.tx.open_table(DEVICES)?)
    }
}

impl Rx {
    pub fn device_by_token_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let tokens = self.tx.open_table(DEVICE_TOKENS)?;
        let id = tokens.get(hash)?.map(|v| v.value());
        match id {
            Some(id) => get_json(&self.tx.open_table(DEVICES)?, id),
            None => Ok(None),
        }
    }

    pub fn device(&self, id: u64) -> Result<Option<DeviceRecord>, StoreError> {
        get_json(&self.tx.open_table(DEVICES)?, id)
    }

    pub fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        all_json(&self.tx.open_table(DEVICES)?)
    }
}
