//! Security-sensitive: the household — managed profiles, the guest, friends and their
//! invites, PINs, profile switching and home mode. Guards who can become whom on a device.

use std::sync::Arc;
use std::time::Duration;

use super::throttle::Policy;
use super::{Identity, IdentityError, Session, password, token, validate_username};
use crate::model::ClientInfo;
use crate::policy::{Action, Actor, Context, OwnerProof, SwitchTarget};
use crate::store::devices::DeviceRecord;
use crate::store::invites::InviteRecord;
use crate::store::users::{Role, UserRecord};

/// The guest profile's fixed name.
pub const GUEST_NAME: &str = "Guest";
/// Longest an invite link may stay valid.
pub const MAX_INVITE_HOURS: u64 = 24 * 30;

pub(super) fn pin_policy() -> Policy {
    Policy {
        free: 3,
        base: Duration::from_secs(5),
        max: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(3600),
    }
}

/// Why home mode is on, in words for the settings page.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HomeMode {
    pub on: bool,
    pub reasons: Vec<String>,
}

pub fn valid_pin(pin: &str) -> Result<(), IdentityError> {
    if pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(IdentityError::Invalid {
            code: "invalid_pin",
            message: "A PIN is exactly 4 digits.".into(),
        })
    }
}

/// Home mode, decided from the household's users: on as soon as a managed profile exists or
/// the owner or a managed profile has a PIN. This is the only place that decides it.
///
/// Home mode is the household's: a friend's account (perhaps used from far away) is not
/// part of it, so a PIN stored on a friend (or the guest) never counts, even if one was
/// set before policy refused friends a PIN.
pub fn home_mode_of(users: &[UserRecord]) -> HomeMode {
    let mut reasons = Vec::new();
    let managed = users.iter().filter(|u| u.role == Role::Managed).count();
    if managed > 0 {
        reasons.push(format!(
            "{managed} managed profile{} exist{}",
            if managed == 1 { "" } else { "s" },
            if managed == 1 { "s" } else { "" }
        ));
    }
    let pins = users
        .iter()
        .filter(|u| matches!(u.role, Role::Owner | Role::Managed) && u.pin_hash.is_some())
        .count();
    if pins > 0 {
        reasons.push(format!(
            "{pins} profile{} ha{} a PIN",
            if pins == 1 { "" } else { "s" },
            if pins == 1 { "s" } else { "ve" }
        ));
    }
    HomeMode {
        on: !reasons.is_empty(),
        reasons,
    }
}

impl Identity {
    /// Home mode now (see [`home_mode_of`]).
    pub fn home_mode(&self) -> Result<HomeMode, IdentityError> {
        let users = self.store.read(|r| r.users())?;
        Ok(home_mode_of(&users))
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, IdentityError> {
        Ok(self.store.read(|r| r.users())?)
    }

    pub fn user(&self, id: u64) -> Result<UserRecord, IdentityError> {
        self.store
            .read(|r| r.user(id))?
            .ok_or(IdentityError::NotFound)
    }

    /// Adds a managed profile (no password; used by switching on a home device).
    pub fn create_managed(
        &self,
        owner: &OwnerProof,
        name: &str,
        max_managed: u32,
    ) -> Result<UserRecord, IdentityError> {
        let name = validate_username(name)?;
        let name = name.as_str();
        let now = self.clock.now_secs();
        self.store.write(|tx| {
            let count = tx.users()?.iter().filter(|u| u.role == Role::Managed).count();
            if count as u64 >= u64::from(max_managed) {
                return Err(IdentityError::Invalid {
                    code: "too_many_profiles",
                    message: format!(
                        "This Hearth already has {count} managed profiles, the most allowed. Remove one first."
                    ),
                });
            }
            super::refuse_lookalike(tx, name, None, true)?;
            let user = tx
                .create_user(name, Role::Managed, None, now)?
                .ok_or_else(|| IdentityError::Invalid {
                    code: "username_taken",
                    message: format!("There is already someone called {name:?}."),
                })?;
            tx.audit(now, "user_created", Some(owner.user_id()), None, format!("managed profile {name:?}"))?;
            Ok(user)
        })
    }

    /// Turns the guest profile on or off (creating it the first time).
    pub fn set_guest(
        &self,
        owner: &OwnerProof,
        enabled: bool,
    ) -> Result<UserRecord, IdentityError> {
        let now = self.clock.now_secs();
        self.store.write(|tx| {
            let existing = tx.users()?.into_iter().find(|u| u.role == Role::Guest);
            let mut guest = match existing {
                Some(g) => g,
                None => tx
                    .create_user(GUEST_NAME, Role::Guest, None, now)?
                    .ok_or_else(|| IdentityError::Invalid {
                        code: "username_taken",
                        message: format!("Rename the user called {GUEST_NAME:?} first."),
                    })?,
            };
            guest.enabled = enabled;
            tx.update_user(&guest)?;
            if !enabled {
                // Nobody stays signed in as a disabled guest.
                tx.delete_devices_of(guest.id)?;
            }
            tx.audit(
                now,
                "guest_changed",
                Some(owner.user_id()),
                None,
                if enabled {
                    "guest access on"
                } else {
                    "guest access off"
                },
            )?;
            Ok(guest)
        })
    }

    /// Renames a user.
    pub fn rename_user(
        &self,
        owner: &OwnerProof,
        id: u64,
        name: &str,
    ) -> Result<UserRecord, IdentityError> {
        let name = validate_username(name)?;
        let name = name.as_str();
        self.store.write(|tx| {
            let mut user = tx.user(id)?.ok_or(IdentityError::NotFound)?;
            if user.role == Role::Guest {
                return Err(IdentityError::Invalid {
                    code: "guest_fixed",
                    message: "The guest profile keeps its name.".into(),
                });
            }
            super::refuse_lookalike(tx, name, Some(id), true)?;
            let old = std::mem::replace(&mut user.username, name.to_owned());
            tx.update_user(&user)?;
            tx.audit(
                self.clock.now_secs(),
                "user_renamed",
                Some(owner.user_id()),
                None,
                format!("{old:?} is now {name:?}"),
            )?;
            Ok(user)
        })
    }

    /// Removes a user with their devices and sessions in one transaction. `also` runs in
    /// the same transaction to remove what other modules keep per user (watch history).
    pub fn remove_user(
        &self,
        owner: &OwnerProof,
        id: u64,
        also: impl FnOnce(&crate::store::Tx<'_>, u64) -> Result<(), crate::store::StoreError>,
    ) -> Result<UserRecord, IdentityError> {
        self.store.write(|tx| {
            let user = tx.user(id)?.ok_or(IdentityError::NotFound)?;
            if user.role == Role::Owner {
                return Err(IdentityError::Invalid {
                    code: "cannot_remove_owner",
                    message: "The owner cannot be removed. Use `hearth reset-claim` on the device to hand it over.".into(),
                });
            }
            tx.delete_devices_of(id)?;
            also(tx, id)?;
            tx.delete_user(id)?;
            tx.audit(
                self.clock.now_secs(),
                "user_removed",
                Some(owner.user_id()),
                None,
                format!("removed {:?} ({:?}) with their devices and history", user.username, user.role),
            )?;
            Ok(user)
        })
    }

    /// Sets or clears a user's PIN: the owner for anyone, a user for themselves (policy
    /// decides). A 4-digit PIN is hashed like a password.
    pub async fn set_pin(
        self: &Arc<Self>,
        actor: &Actor,
        ctx: &Context,
        id: u64,
        pin: Option<String>,
    ) -> Result<(), IdentityError> {
        let target = self.user(id)?;
        crate::policy::authorize(
            actor,
            &Action::SetPin {
                user_id: id,
                role: target.role,
            },
            ctx,
        )
        .then(|| ())?;
        let hash = match pin {
            Some(p) => {
                valid_pin(&p)?;
                Some(self.hash_password(p).await?)
            }
            None => None,
        };
        let set = hash.is_some();
        self.store.write(|tx| {
            let mut user = tx.user(id)?.ok_or(IdentityError::NotFound)?;
            user.pin_hash = hash;
            tx.update_user(&user)?;
            tx.audit(
                self.clock.now_secs(),
                "pin_changed",
                Some(actor.user_id()),
                None,
                format!(
                    "PIN {} for {:?}",
                    if set { "set" } else { "cleared" },
                    user.username
                ),
            )?;
            Ok(())
        })
    }

    /// Switches the profile active on a signed-in home device. The PIN (if any) is checked
    /// and throttled here; whether the switch is allowed at all is policy's decision.
    pub async fn switch_profile(
        self: &Arc<Self>,
        actor: &Actor,
        ctx: &Context,
        session: &Session,
        target_id: u64,
        pin: Option<String>,
        client: &ClientInfo,
    ) -> Result<UserRecord, IdentityError> {
        let target = self
            .store
            .read(|r| r.user(target_id))?
            .ok_or(IdentityError::NotFound)?;
        let to = SwitchTarget {
            user_id: target.id,
            role: target.role,
            has_pin: target.pin_hash.is_some(),
            suspended: target.suspended,
        };
        // Ask first without a PIN: refusals that no PIN can fix (friends, guest off, an
        // owner without a PIN) are answered before any PIN is tried or counted.
        let first = crate::policy::authorize(
            actor,
            &Action::SwitchProfile {
                to,
                pin_verified: false,
            },
            ctx,
        );
        let needs_pin = matches!(
            first,
            crate::policy::Decision::Denied(crate::policy::Denied::PinRequired)
        );
        if !needs_pin {
            first.then(|| ())?;
        } else {
            let Some(pin) = pin else {
                if let Err(wait) = self.pin_throttle.check(&target.id, self.clock.monotonic()) {
                    return Err(super::throttled(wait));
                }
                return Err(IdentityError::PinRequired);
            };
            // Reserved before the slow check: a burst of guesses gets the same few a
            // patient guesser would.
            let attempt = self
                .pin_throttle
                .begin(&target.id, self.clock.monotonic())
                .map_err(super::throttled)?;
            let hash = target.pin_hash.clone().unwrap_or_default();
            let ok = valid_pin(&pin).is_ok() && self.verify_password(pin, hash).await?;
            if !ok {
                attempt.failed_at(self.clock.monotonic());
                let addr = client.addr.to_string();
                self.store.write(|tx| {
                    tx.audit(
                        self.clock.now_secs(),
                        "switch_failed",
                        Some(session.user.id),
                        Some(addr),
                        format!("wrong PIN for {:?}", target.username),
                    )
                })?;
                return Err(IdentityError::WrongPin);
            }
            attempt.succeeded();
            crate::policy::authorize(
                actor,
                &Action::SwitchProfile {
                    to,
                    pin_verified: true,
                },
                ctx,
            )
            .then(|| ())?;
        }
        let addr = client.addr.to_string();
        let device_id = session.device.id;
        self.store.write(|tx| {
            let mut device = tx.device(device_id)?.ok_or(IdentityError::NotFound)?;
            device.active_user_id = target.id;
            tx.update_device(&device)?;
            tx.audit(
                self.clock.now_secs(),
                "profile_switched",
                Some(session.user.id),
                Some(addr),
                format!("device {device_id} switched to {:?}", target.username),
            )?;
            Ok::<_, IdentityError>(())
        })?;
        Ok(target)
    }

    /// Sets what a user may see.
    pub fn set_restrictions(
        &self,
        owner: &OwnerProof,
        id: u64,
        restrictions: crate::policy::Restrictions,
    ) -> Result<UserRecord, IdentityError> {
        let restrictions = restrictions.checked().map_err(|e| IdentityError::Invalid {
            code: "invalid_restrictions",
            message: e.to_string(),
        })?;
        self.store.write(|tx| {
            let mut user = tx.user(id)?.ok_or(IdentityError::NotFound)?;
            if user.role == Role::Owner {
                return Err(IdentityError::Invalid {
                    code: "owner_unrestricted",
                    message: "The owner always sees everything; restrictions apply to other users."
                        .into(),
                });
            }
            user.restrictions = restrictions;
            tx.update_user(&user)?;
            tx.audit(
                self.clock.now_secs(),
                "restrictions_changed",
                Some(owner.user_id()),
                None,
                format!("restrictions of {:?} changed", user.username),
            )?;
            Ok(user)
        })
    }

    /// Creates an invite link secret for a friend. Returns the one-time token.
    pub fn create_invite(
        &self,
        owner: &OwnerProof,
        invitee: &str,
        libraries: Option<Vec<u64>>,
        hours: u64,
    ) -> Result<(String, InviteRecord), IdentityError> {
        let invitee = invitee.trim();
        if invitee.is_empty()
            || invitee.chars().count() > 254
            || invitee.chars().any(char::is_control)
        {
            return Err(IdentityError::Invalid {
                code: "invalid_invitee",
                message: "Say who the invite is for: a username or an e-mail address.".into(),
            });
        }
        if hours == 0 || hours > MAX_INVITE_HOURS {
            return Err(IdentityError::Invalid {
                code: "invalid_expiry",
                message: format!("An invite lasts between 1 and {MAX_INVITE_HOURS} hours."),
            });
        }
        let (secret, hash) = token::generate().map_err(IdentityError::Internal)?;
        let now = self.clock.now_secs();
        let record = self.store.write(|tx| {
            let rec = tx.create_invite(InviteRecord {
                id: 0,
                token_hash: hash,
                invitee: invitee.to_owned(),
                libraries,
                created_by: owner.user_id(),
                created_at: now,
                expires_at: now + hours * 3600,
            })?;
            tx.audit(
                now,
                "invite_created",
                Some(owner.user_id()),
                None,
                format!("invited {invitee:?}"),
            )?;
            Ok::<_, IdentityError>(rec)
        })?;
        Ok((secret, record))
    }

    pub fn invites(&self) -> Result<Vec<InviteRecord>, IdentityError> {
        let now = self.clock.now_secs();
        Ok(self
            .store
            .read(|r| r.invites())?
            .into_iter()
            .filter(|i| i.expires_at > now)
            .collect())
    }

    pub fn revoke_invite(&self, owner: &OwnerProof, id: u64) -> Result<(), IdentityError> {
        self.store.write(|tx| {
            let inv = tx.delete_invite(id)?.ok_or(IdentityError::NotFound)?;
            tx.audit(
                self.clock.now_secs(),
                "invite_revoked",
                Some(owner.user_id()),
                None,
                format!("invite for {:?} revoked", inv.invitee),
            )?;
            Ok(())
        })
    }

    /// Accepts an invite: creates the friend's account and uses up the invite, in one
    /// transaction. Returns the new user and the libraries they were invited to.
    pub async fn accept_invite(
        self: &Arc<Self>,
        secret: &str,
        username: &str,
        password: String,
        client: &ClientInfo,
    ) -> Result<(UserRecord, Option<Vec<u64>>), IdentityError> {
        let bad = || {
            IdentityError::Invalid {
            code: "invite_invalid",
            message: "This invite link is not valid: it may have expired, been used already, or been revoked. Ask for a new one.".into(),
        }
        };
        if !token::plausible(secret) {
            return Err(bad());
        }
        let attempt = self
            .login_by_addr
            .begin(&client.addr, self.clock.monotonic())
            .map_err(super::throttled)?;
        let hash = token::hash(secret);
        let found = self.store.read(|r| {
            Ok::<_, crate::store::StoreError>(
                r.invites()?.into_iter().find(|i| i.token_hash == hash),
            )
        })?;
        let now_s = self.clock.now_secs();
        let Some(invite) = found.filter(|i| i.expires_at > now_s) else {
            attempt.failed_at(self.clock.monotonic());
            return Err(bad());
        };
        // A real link: what follows (name, password) is not a guess.
        attempt.withdraw();
        let username = validate_username(username)?;
        let username = username.as_str();
        if let Some(why) = password::weakness(&password, username) {
            return Err(IdentityError::WeakPassword(why));
        }
        let phc = self.hash_password(password).await?;
        let email = invite.invitee.contains('@').then(|| invite.invitee.clone());
        let addr = client.addr.to_string();
        self.store.write(|tx| {
            // Re-read inside the transaction: two accepts of one link, exactly one wins.
            let Some(invite) = tx.invite_by_token_hash(&hash)? else {
                return Err(bad());
            };
            tx.delete_invite(invite.id)?;
            super::refuse_lookalike(tx, username, None, false)?;
            let mut user = tx
                .create_user(username, Role::Friend, Some(phc), now_s)?
                .ok_or_else(|| IdentityError::Invalid {
                    code: "username_taken",
                    message: "That username is taken; choose another.".into(),
                })?;
            user.email = email;
            user.restrictions = match &invite.libraries {
                None => crate::policy::Restrictions::none(),
                Some(ids) => crate::policy::Restrictions {
                    libraries: crate::policy::Libraries::Only(ids.iter().copied().collect()),
                    ..crate::policy::Restrictions::none()
                },
            };
            tx.update_user(&user)?;
            tx.audit(
                now_s,
                "invite_accepted",
                Some(user.id),
                Some(addr),
                format!(
                    "{:?} joined (invited as {:?})",
                    user.username, invite.invitee
                ),
            )?;
            Ok((user, invite.libraries))
        })
    }

    /// Suspends a user (or lifts it): while suspended, no password sign-in, no profile switch
    /// to them, no network allowed without sign-in acting as them, and their devices are
    /// refused on their next request. The devices are kept, so lifting restores them. The
    /// owner cannot be suspended.
    pub fn set_suspended(
        &self,
        owner: &OwnerProof,
        id: u64,
        suspended: bool,
    ) -> Result<UserRecord, IdentityError> {
        self.store.write(|tx| {
            let mut user = tx.user(id)?.ok_or(IdentityError::NotFound)?;
            if user.role == Role::Owner {
                return Err(IdentityError::Invalid {
                    code: "cannot_suspend_owner",
                    message: "The owner cannot be suspended.".into(),
                });
            }
            if user.suspended == suspended {
                return Ok(user);
            }
            user.suspended = suspended;
            tx.update_user(&user)?;
            tx.audit(
                self.clock.now_secs(),
                if suspended {
                    "user_suspended"
                } else {
                    "user_resumed"
                },
                Some(owner.user_id()),
                None,
                format!(
                    "{:?} {}",
                    user.username,
                    if suspended {
                        "suspended: cannot sign in; their devices are refused until lifted"
                    } else {
                        "may sign in again; their devices work again"
                    }
                ),
            )?;
            Ok(user)
        })
    }

    /// Blocks an app: this device is revoked, and later sign-ins presenting the same client
    /// id are refused. The client chooses its id, so this does not stop a person who signs in
    /// with another app or id: to stop a person, suspend their account.
    pub fn block_client(
        &self,
        owner: &OwnerProof,
        device_id: u64,
    ) -> Result<DeviceRecord, IdentityError> {
        self.store.write(|tx| {
            let device = tx.device(device_id)?.ok_or(IdentityError::NotFound)?;
            if device.client_id.is_empty() {
                return Err(IdentityError::Invalid {
                    code: "no_client_id",
                    message: "This device did not say who it is, so it cannot be blocked; revoke it instead.".into(),
                });
            }
            let mut blocked: Vec<String> = tx.setting(super::BLOCKED_KEY)?.unwrap_or_default();
            if !blocked.contains(&device.client_id) {
                blocked.push(device.client_id.clone());
            }
            tx.set_setting(super::BLOCKED_KEY, &blocked)?;
            tx.delete_device(device_id)?;
            tx.audit(
                self.clock.now_secs(),
                "device_blocked",
                Some(owner.user_id()),
                None,
                format!("blocked \"{}\" ({})", device.name, device.client_id),
            )?;
            Ok(device)
        })
    }
}
