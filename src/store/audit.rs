//! The audit log: append-only and bounded, oldest entries dropped first.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{JsonTable, Rx, StoreError, Tx, decode, encode, next_id};

pub(super) const AUDIT: JsonTable<u64> = TableDefinition::new("audit");

/// Entries kept; a household generates a few dozen a day, so this is months of history.
pub const AUDIT_CAP: u64 = 10_000;

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(AUDIT)?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: u64,
    /// Unix seconds.
    pub at: u64,
    /// What happened, e.g. `claim`, `login_failed`, `device_revoked`, `reset_claim`.
    pub event: String,
    /// Who did it, when known.
    pub user_id: Option<u64>,
    /// The client address, when the event came over the network.
    pub address: Option<String>,
    /// A short human-readable detail.
    pub detail: String,
}

impl Tx<'_> {
    pub fn audit(
        &self,
        at: u64,
        event: &str,
        user_id: Option<u64>,
        address: Option<String>,
        detail: impl Into<String>,
    ) -> Result<(), StoreError> {
        let id = next_id(self.tx, "next_audit_id")?;
        let entry = AuditEntry {
            id,
            at,
            event: event.to_owned(),
            user_id,
            address,
            detail: detail.into(),
        };
        let mut table = self.tx.open_table(AUDIT)?;
        table.insert(id, encode(&entry)?.as_slice())?;
        if table.len()? > AUDIT_CAP {
            table.pop_first()?;
        }
        Ok(())
    }
}

impl Rx {
    /// Newest first.
    pub fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let table = self.tx.open_table(AUDIT)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(limit) {
            let (_, v) = row?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }
}
