//! Small named settings (server name, claim state, network rules), each a JSON value.

use redb::{ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Rx, StoreError, Tx, decode, encode};

const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");

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
