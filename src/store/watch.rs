//! Per-user watch state: how far each person got in each item, and what they finished.
//! Keyed by (user, item) so one user's state is one contiguous range, removed in the same
//! transaction as the user.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Rx, StoreError, Tx, decode, encode};

pub(super) const WATCH: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("watch_state");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(WATCH)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchRecord {
    pub user_id: u64,
    pub item_id: u64,
    /// Where playback stopped, in milliseconds.
    pub position_ms: u64,
    pub watched: bool,
    /// Unix seconds.
    pub updated_at: u64,
}

impl Tx<'_> {
    pub fn set_watch(&self, rec: &WatchRecord) -> Result<(), StoreError> {
        self.tx
            .open_table(WATCH)?
            .insert((rec.user_id, rec.item_id), encode(rec)?.as_slice())?;
        Ok(())
    }

    pub fn watch(&self, user_id: u64, item_id: u64) -> Result<Option<WatchRecord>, StoreError> {
        let t = self.tx.open_table(WATCH)?;
        let v = t.get((user_id, item_id))?;
        v.map(|v| decode(v.value())).transpose()
    }

    /// Removes all of one user's watch state; returns how many entries went.
    pub fn delete_watch_of_user(&self, user_id: u64) -> Result<u64, StoreError> {
        let mut t = self.tx.open_table(WATCH)?;
        let keys: Vec<(u64, u64)> = t
            .range((user_id, 0)..=(user_id, u64::MAX))?
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?;
        for k in &keys {
            t.remove(k)?;
        }
        Ok(keys.len() as u64)
    }
}

impl Rx {
    pub fn watch(&self, user_id: u64, item_id: u64) -> Result<Option<WatchRecord>, StoreError> {
        let t = self.tx.open_table(WATCH)?;
        let v = t.get((user_id, item_id))?;
        v.map(|v| decode(v.value())).transpose()
    }

    /// One user's watch state, in item order.
    pub fn watch_of_user(&self, user_id: u64) -> Result<Vec<WatchRecord>, StoreError> {
        let t = self.tx.open_table(WATCH)?;
        let mut out = Vec::new();
        for row in t.range((user_id, 0)..=(user_id, u64::MAX))? {
            let (_, v) = row?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }
}
