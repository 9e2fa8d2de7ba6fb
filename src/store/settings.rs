//! Small named settings (server name, claim state, network rules), each a JSON value.

use redb::{ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Rx, StoreError, Tx, decode, encode};

pub(super) const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(SETTINGS)?;
    Ok(())
}

impl Tx<'_> {
    pub fn set_setting<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.tx
            .open_table(SETTINGS)?
            .insert(key, encode(value)?.as_slice())?;
        Ok(())
    }

    pub fn remove_setting(&self, key: &str) -> Result<(), StoreError> {
        self.tx.open_table(SETTINGS)?.remove(key)?;
        Ok(())
    }

    pub fn setting<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let table = self.tx.open_table(SETTINGS)?;
        let v = table.get(key)?;
        v.map(|v| decode(v.value())).transpose()
    }
}

impl Rx {
    pub fn setting<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let table = self.tx.open_table(SETTINGS)?;
        let v = table.get(key)?;
        v.map(|v| decode(v.value())).transpose()
    }
}

/// A 32-byte secret kept under `key`, drawn from the system's random generator the first
/// time anyone asks for it. It never leaves the device.
pub fn secret_key(store: &super::Store, key: &str) -> Result<Vec<u8>, StoreError> {
    let valid = |hex_key: Option<String>| {
        hex_key
            .and_then(|k| hex::decode(k).ok())
            .filter(|b| b.len() == 32)
    };
    if let Some(bytes) = valid(store.read(|rx| rx.setting::<String>(key))?) {
        return Ok(bytes);
    }
    store.write(|tx| {
        // Re-checked inside the write transaction so two first callers agree on one key.
        if let Some(bytes) = valid(tx.setting::<String>(key)?) {
            return Ok(bytes);
        }
        let mut bytes = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| StoreError::Corrupt("the system random generator failed".into()))?;
        tx.set_setting(key, &hex::encode(&bytes))?;
        Ok(bytes)
    })
}
