//! Invitations for friends. The link's secret is stored only as its SHA-256; an invite is
//! removed in the same transaction that creates the friend's account, so it works once.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{JsonTable, Rx, StoreError, Tx, all_json, encode, get_json, next_id};

pub(super) const INVITES: JsonTable<u64> = TableDefinition::new("invites");
pub(super) const INVITE_TOKENS: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("invite_tokens");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(INVITES)?;
    tx.open_table(INVITE_TOKENS)?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteRecord {
    pub id: u64,
    pub token_hash: [u8; 32],
    /// Who it is for: a username or an e-mail address, as the owner typed it.
    pub invitee: String,
    /// Libraries the friend will see: `None` for all.
    pub libraries: Option<Vec<u64>>,
    pub created_by: u64,
    pub created_at: u64,
    pub expires_at: u64,
}

impl Tx<'_> {
    pub fn create_invite(&self, mut invite: InviteRecord) -> Result<InviteRecord, StoreError> {
        invite.id = next_id(self.tx, "next_invite_id")?;
        self.tx
            .open_table(INVITE_TOKENS)?
            .insert(&invite.token_hash, invite.id)?;
        self.tx
            .open_table(INVITES)?
            .insert(invite.id, encode(&invite)?.as_slice())?;
        Ok(invite)
    }

    pub fn invite_by_token_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<InviteRecord>, StoreError> {
        let id = self
            .tx
            .open_table(INVITE_TOKENS)?
            .get(hash)?
            .map(|v| v.value());
        match id {
            Some(id) => get_json(&self.tx.open_table(INVITES)?, id),
            None => Ok(None),
        }
    }

    pub fn delete_invite(&self, id: u64) -> Result<Option<InviteRecord>, StoreError> {
        let mut invites = self.tx.open_table(INVITES)?;
        let old: Option<InviteRecord> = get_json(&invites, id)?;
        if let Some(old) = &old {
            invites.remove(id)?;
            self.tx.open_table(INVITE_TOKENS)?.remove(&old.token_hash)?;
        }
        Ok(old)
    }

    pub fn invites(&self) -> Result<Vec<InviteRecord>, StoreError> {
        all_json(&self.tx.open_table(INVITES)?)
    }
}

impl Rx {
    pub fn invites(&self) -> Result<Vec<InviteRecord>, StoreError> {
        all_json(&self.tx.open_table(INVITES)?)
    }
}
