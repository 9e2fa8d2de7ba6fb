//! Security-sensitive: recognising a client that has signed in to an account before, so
//! strangers' wrong guesses against that account cannot keep its owner out (OWASP's
//! "device cookie" pattern). A known client is throttled on its own lane; everyone else
//! stays on the per-address and per-account lanes.

use std::net::IpAddr;
use std::time::Instant;

use ring::hmac;

use super::throttle::{Attempt, Throttle};
use super::{Identity, IdentityError};
use crate::store::StoreError;

/// The cookie a browser gets after a successful sign-in. It proves nothing by itself (the
/// password is still needed); it only picks the throttle lane.
pub const KNOWN_COOKIE: &str = "hearth_known";
/// Settings key of the HMAC key that signs known-device cookies.
const KEY_SETTING: &str = "known_device_key";
/// Label of the signed message, so this key's signatures mean nothing anywhere else.
const LABEL: &str = "hearth-known-device-v1";

/// Which lane a sign-in attempt is throttled on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lane {
    /// A browser holding a known-device cookie for this account (the cookie's id).
    Cookie(String),
    /// An address this account has signed in from and still has a device at.
    KnownAddress(IpAddr),
    /// Anyone else: per address and per account.
    Stranger,
}

/// The throttles a sign-in reserved, settled together.
pub(super) struct LoginAttempt<'a> {
    pub(super) parts: Vec<Part<'a>>,
}

pub(super) enum Part<'a> {
    Addr(Attempt<'a, IpAddr>),
    Account(Attempt<'a, String>),
    Known(Attempt<'a, String>),
}

impl LoginAttempt<'_> {
    /// The guess was wrong, as of `now` (the identity's clock).
    pub(super) fn failed_at(self, now: std::time::Instant) {
        for p in self.parts {
            match p {
                Part::Addr(a) => drop(a.failed_at(now)),
                Part::Account(a) => drop(a.failed_at(now)),
                Part::Known(a) => drop(a.failed_at(now)),
            }
        }
    }

    pub(super) fn withdraw(self) {
        for p in self.parts {
            match p {
                Part::Addr(a) => a.withdraw(),
                Part::Account(a) => a.withdraw(),
                Part::Known(a) => a.withdraw(),
            }
        }
    }

    pub(super) fn succeeded(self) {
        for p in self.parts {
            match p {
                Part::Addr(a) => a.succeeded(),
                Part::Account(a) => a.succeeded(),
                Part::Known(a) => a.succeeded(),
            }
        }
    }
}

/// Reserves every throttle of `lane`, or returns the longest wait, withdrawing what was
/// already reserved.
pub(super) fn reserve<'a>(
    by_addr: &'a Throttle<IpAddr>,
    by_account: &'a Throttle<String>,
    by_known: &'a Throttle<String>,
    lane: &Lane,
    addr: IpAddr,
    account: &str,
    now: Instant,
) -> Result<LoginAttempt<'a>, IdentityError> {
    let throttled = super::throttled;
    match lane {
        Lane::Cookie(id) => Ok(LoginAttempt {
            parts: vec![Part::Known(by_known.begin(id, now).map_err(throttled)?)],
        }),
        Lane::KnownAddress(_) => Ok(LoginAttempt {
            parts: vec![Part::Addr(by_addr.begin(&addr, now).map_err(throttled)?)],
        }),
        Lane::Stranger => {
            let a = by_addr.begin(&addr, now).map_err(throttled)?;
            match by_account.begin(&account.to_owned(), now) {
                Ok(b) => Ok(LoginAttempt {
                    parts: vec![Part::Addr(a), Part::Account(b)],
                }),
                Err(wait) => {
                    a.withdraw();
                    Err(throttled(wait))
                }
            }
        }
    }
}

fn message(user_id: u64, id: &str) -> String {
    format!("{LABEL}\n{user_id}\n{id}")
}

impl Identity {
    fn known_key(&self) -> Result<hmac::Key, StoreError> {
        let bytes = match self.known_key.get() {
            Some(b) => b,
            None => {
                let b = crate::store::settings::secret_key(&self.store, KEY_SETTING)?;
                self.known_key.get_or_init(|| b)
            }
        };
        Ok(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// A fresh known-device cookie value for `user_id`.
    pub(super) fn known_cookie_for(&self, user_id: u64) -> Result<String, IdentityError> {
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| IdentityError::Internal("the random generator failed".into()))?;
        let id = hex::encode(id);
        let sig = hmac::sign(&self.known_key()?, message(user_id, &id).as_bytes());
        Ok(format!("{user_id}.{id}.{}", hex::encode(sig.as_ref())))
    }

    /// The lane for a sign-in as `user` (if the name exists) from `addr`, presenting
    /// `cookie` (the known-device cookie's value, if any).
    pub(super) fn lane_for(
        &self,
        user_id: Option<u64>,
        addr: IpAddr,
        cookie: Option<&str>,
    ) -> Result<Lane, IdentityError> {
        let Some(user_id) = user_id else {
            return Ok(Lane::Stranger);
        };
        if let Some(c) = cookie
            && let Some(id) = self.verified_cookie(user_id, c)?
        {
            return Ok(Lane::Cookie(id));
        }
        let addr_s = addr.to_string();
        let known = self
            .store
            .read(|r| r.devices())?
            .iter()
            .any(|d| d.user_id == user_id && d.last_address == addr_s);
        Ok(if known {
            Lane::KnownAddress(addr)
        } else {
            Lane::Stranger
        })
    }

    /// The cookie's id if it is a valid known-device cookie for `user_id`.
    fn verified_cookie(&self, user_id: u64, cookie: &str) -> Result<Option<String>, StoreError> {
        let mut parts = cookie.trim().splitn(3, '.');
        let (Some(uid), Some(id), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return Ok(None);
        };
        if uid.parse::<u64>().ok() != Some(user_id) || id.len() != 32 || sig.len() != 64 {
            return Ok(None);
        }
        let Ok(sig) = hex::decode(sig) else {
            return Ok(None);
        };
        let ok = hmac::verify(&self.known_key()?, message(user_id, id).as_bytes(), &sig).is_ok();
        Ok(ok.then(|| id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_labelled_and_unambiguous() {
        assert_ne!(message(1, "23"), message(12, "3"));
        assert!(message(1, "x").starts_with("hearth-known-device-v1\n"));
    }
}
