//! Accounts. Usernames are unique case-insensitively through the `usernames` index, which
//! is written in the same transaction as the user record.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{JsonTable, Rx, StoreError, Tx, all_json, encode, get_json, next_id};

pub(super) const USERS: JsonTable<u64> = TableDefinition::new("users");
pub(super) const USERNAMES: TableDefinition<&str, u64> = TableDefinition::new("usernames");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(USERS)?;
    tx.open_table(USERNAMES)?;
    Ok(())
}

pub use crate::model::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: u64,
    pub username: String,
    pub role: Role,
    /// argon2id PHC string; `None` for profiles that cannot sign in with a password.
    pub password_hash: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// argon2id of a 4-digit PIN guarding profile switches to this user.
    #[serde(default)]
    pub pin_hash: Option<String>,
    /// Only the guest is ever disabled (the owner turns guest access off).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// A friend's e-mail address, when invited by e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Two-factor sign-in, when turned on.
    #[serde(default)]
    pub totp: Option<TotpRecord>,
    /// What this user may see; ignored for the owner.
    #[serde(default)]
    pub restrictions: crate::model::restrictions::Restrictions,
    /// The owner suspended this account (never the owner's own): no sign-in of any kind
    /// until lifted. Its devices are kept, refused while this is set, so lifting it brings
    /// them back. Records written before this field existed read as not suspended.
    #[serde(default)]
    pub suspended: bool,
}

fn enabled_default() -> bool {
    true
}

/// An RFC 6238 secret and its recovery codes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TotpRecord {
    pub secret: Vec<u8>,
    /// False until the user has proven their app shows the right codes.
    pub confirmed: bool,
    /// SHA-256 of each unused recovery code.
    pub recovery_hashes: Vec<[u8; 32]>,
    /// The last time step accepted, so a code cannot be replayed.
    pub last_step: u64,
}

impl UserRecord {
    pub fn new(
        id: u64,
        username: &str,
        role: Role,
        password_hash: Option<String>,
        now: u64,
    ) -> Self {
        UserRecord {
            id,
            username: username.to_owned(),
            role,
            password_hash,
            created_at: now,
            pin_hash: None,
            enabled: true,
            email: None,
            totp: None,
            restrictions: crate::model::restrictions::Restrictions::none(),
            suspended: false,
        }
    }
}

fn username_key(name: &str) -> String {
    name.to_lowercase()
}

impl Tx<'_> {
    /// Creates a user; `Ok(None)` if the username is taken.
    pub fn create_user(
        &self,
        username: &str,
        role: Role,
        password_hash: Option<String>,
        now: u64,
    ) -> Result<Option<UserRecord>, StoreError> {
        let mut names = self.tx.open_table(USERNAMES)?;
        let key = username_key(username);
        if names.get(key.as_str())?.is_some() {
            return Ok(None);
        }
        let id = next_id(self.tx, "next_user_id")?;
        let user = UserRecord::new(id, username, role, password_hash, now);
        names.insert(key.as_str(), id)?;
        self.tx
            .open_table(USERS)?
            .insert(id, encode(&user)?.as_slice())?;
        Ok(Some(user))
    }

    pub fn update_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let mut users = self.tx.open_table(USERS)?;
        let old: Option<UserRecord> = get_json(&users, user.id)?;
        let Some(old) = old else {
            return Err(StoreError::Corrupt(format!("no user {}", user.id)));
        };
        if username_key(&old.username) != username_key(&user.username) {
            let mut names = self.tx.open_table(USERNAMES)?;
            names.remove(username_key(&old.username).as_str())?;
            names.insert(username_key(&user.username).as_str(), user.id)?;
        }
        users.insert(user.id, encode(user)?.as_slice())?;
        Ok(())
    }

    pub fn delete_user(&self, id: u64) -> Result<Option<UserRecord>, StoreError> {
        let mut users = self.tx.open_table(USERS)?;
        let old: Option<UserRecord> = get_json(&users, id)?;
        if let Some(old) = &old {
            users.remove(id)?;
            self.tx
                .open_table(USERNAMES)?
                .remove(username_key(&old.username).as_str())?;
        }
        Ok(old)
    }

    pub fn user(&self, id: u64) -> Result<Option<UserRecord>, StoreError> {
        get_json(&self.tx.open_table(USERS)?, id)
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        all_json(&self.tx.open_table(USERS)?)
    }
}

impl Rx {
    pub fn user(&self, id: u64) -> Result<Option<UserRecord>, StoreError> {
        get_json(&self.tx.open_table(USERS)?, id)
    }

    pub fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let names = self.tx.open_table(USERNAMES)?;
        let id = names
            .get(username_key(username).as_str())?
            .map(|v| v.value());
        match id {
            Some(id) => self.user(id),
            None => Ok(None),
        }
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        all_json(&self.tx.open_table(USERS)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as written before `suspended` existed still reads, as not suspended.
    #[test]
    fn old_records_read_as_not_suspended() {
        let old = r#"{"id":3,"username":"mia","role":"managed","password_hash":null,"created_at":5,
            "pin_hash":null,"enabled":true,"email":null,"totp":null}"#;
        let u: UserRecord = serde_json::from_str(old).unwrap();
        assert_eq!((u.id, u.suspended), (3, false));
        let mut u = u;
        u.suspended = true;
        let back: UserRecord = serde_json::from_slice(&encode(&u).unwrap()).unwrap();
        assert!(back.suspended);
    }
}
