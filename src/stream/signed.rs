//! Security-sensitive: signed media URLs. A `stream_url` lets a player without our cookie
//! or bearer token fetch one item's bytes, for one user on one device, until it expires.
//! The HMAC-SHA256 key lives in the settings table and never leaves the device; verifying is
//! a pure function here, and the stream handler additionally checks that the device still
//! exists (so revoking a device kills its URLs) and that policy still allows the item.
//! Each front end signs under its own label ([`LinkKind`]): a DLNA link never verifies on
//! the API's stream route, nor an API link on DLNA's, whatever fields they carry.

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// Settings key holding the hex-encoded 32-byte signing key.
const KEY_SETTING: &str = "media_url_key";
/// How long a fresh URL works: long enough for a film with pauses, short enough that a
/// leaked URL dies the same day.
pub const URL_LIFETIME_SECS: u64 = 6 * 3600;

/// What a signature binds together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaGrant {
    pub user_id: u64,
    pub item_id: u64,
    pub device_id: u64,
    /// Unix seconds after which the URL stops working.
    pub expires: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("this media link has expired; open the item again for a fresh one")]
    Expired,
    #[error("this media link is not valid")]
    BadSignature,
}

/// Which front end a link is for. Part of the signed message, so the two kinds of link are
/// separate domains under the one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// `/api/v1/stream/…`: the web app and API clients, bound to a user and device.
    Api,
    /// `/dlna/media/…`: DLNA players, acting as the DLNA profile.
    Dlna,
}

impl LinkKind {
    fn label(self) -> &'static str {
        match self {
            LinkKind::Api => "hearth-media-url-v1",
            LinkKind::Dlna => "hearth-dlna-media-url-v1",
        }
    }
}

fn message(kind: LinkKind, g: &MediaGrant) -> String {
    // A fixed label per kind and one field per line: no two grants share a message.
    format!(
        "{}\n{}\n{}\n{}\n{}",
        kind.label(),
        g.user_id,
        g.item_id,
        g.device_id,
        g.expires
    )
}

/// Signs a grant for one kind of link; the hex signature goes into the URL.
pub fn sign(key: &[u8], kind: LinkKind, g: &MediaGrant) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    hex::encode(hmac::sign(&k, message(kind, g).as_bytes()).as_ref())
}

/// Checks a signature of that kind of link (in constant time) and the expiry.
pub fn verify(
    key: &[u8],
    kind: LinkKind,
    g: &MediaGrant,
    sig_hex: &str,
    now: u64,
) -> Result<(), UrlError> {
    let sig = hex::decode(sig_hex).map_err(|_| UrlError::BadSignature)?;
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&k, message(kind, g).as_bytes(), &sig).map_err(|_| UrlError::BadSignature)?;
    if now > g.expires {
        return Err(UrlError::Expired);
    }
    Ok(())
}

/// The path and query of a signed API stream URL for a grant.
pub fn url(key: &[u8], g: &MediaGrant) -> String {
    format!(
        "/api/v1/stream/{}?u={}&d={}&exp={}&sig={}",
        g.item_id,
        g.user_id,
        g.device_id,
        g.expires,
        sign(key, LinkKind::Api, g)
    )
}

/// The signing key, created (32 random bytes) the first time it is needed.
pub fn key(store: &Store) -> Result<Vec<u8>, StoreError> {
    if let Some(k) = store.read(|rx| rx.setting::<String>(KEY_SETTING))?
        && let Ok(bytes) = hex::decode(&k)
        && bytes.len() == 32
    {
        return Ok(bytes);
    }
    store.write(|tx| {
        // Re-check inside the write transaction so two first callers agree on one key.
        if let Some(k) = tx.setting::<String>(KEY_SETTING)?
            && let Ok(bytes) = hex::decode(&k)
            && bytes.len() == 32
        {
            return Ok(bytes);
        }
        let mut bytes = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| StoreError::Corrupt("the system random generator failed".into()))?;
        tx.set_setting(KEY_SETTING, &hex::encode(&bytes))?;
        Ok(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn grant() -> MediaGrant {
        MediaGrant {
            user_id: 2,
            item_id: 7,
            device_id: 11,
            expires: 1_000,
        }
    }

    #[test]
    fn signature_binds_every_field() {
        let g = grant();
        let sig = sign(KEY, LinkKind::Api, &g);
        assert_eq!(verify(KEY, LinkKind::Api, &g, &sig, 999), Ok(()));
        assert_eq!(verify(KEY, LinkKind::Api, &g, &sig, 1_000), Ok(()));
        let tampered = [
            MediaGrant { user_id: 3, ..g },
            MediaGrant { item_id: 8, ..g },
            MediaGrant { device_id: 12, ..g },
            MediaGrant {
                expires: 99_999,
                ..g
            },
            // Field boundaries cannot be shifted: 2/7 vs 27/...
            MediaGrant {
                user_id: 27,
                item_id: 0,
                ..g
            },
        ];
        for t in tampered {
            assert_eq!(
                verify(KEY, LinkKind::Api, &t, &sig, 0),
                Err(UrlError::BadSignature),
                "{t:?}"
            );
        }
        assert_eq!(
            verify(
                b"another key another key another",
                LinkKind::Api,
                &g,
                &sig,
                0
            ),
            Err(UrlError::BadSignature)
        );
        for bad in [
            "",
            "zz",
            &sig[..sig.len() - 2],
            &format!("{sig}00"),
            &"0".repeat(64),
        ] {
            assert_eq!(
                verify(KEY, LinkKind::Api, &g, bad, 0),
                Err(UrlError::BadSignature),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(KEY, LinkKind::Api, &g, &sig, 1_001),
            Err(UrlError::Expired)
        );
    }

    #[test]
    fn dlna_and_api_links_sign_different_messages() {
        let g = grant();
        assert_ne!(message(LinkKind::Api, &g), message(LinkKind::Dlna, &g));
        assert!(message(LinkKind::Dlna, &g).starts_with("hearth-dlna-media-url-v1\n"));
        let api = sign(KEY, LinkKind::Api, &g);
        let dlna = sign(KEY, LinkKind::Dlna, &g);
        assert_ne!(api, dlna);
        assert_eq!(verify(KEY, LinkKind::Dlna, &g, &dlna, 0), Ok(()));
        assert_eq!(
            verify(KEY, LinkKind::Api, &g, &dlna, 0),
            Err(UrlError::BadSignature),
            "a DLNA link passed as an API link"
        );
        assert_eq!(
            verify(KEY, LinkKind::Dlna, &g, &api, 0),
            Err(UrlError::BadSignature),
            "an API link passed as a DLNA link"
        );
    }

    #[test]
    fn url_carries_the_grant() {
        let u = url(KEY, &grant());
        assert!(
            u.starts_with("/api/v1/stream/7?u=2&d=11&exp=1000&sig="),
            "{u}"
        );
    }

    #[test]
    fn key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let a = key(&store).unwrap();
        let b = key(&store).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(a, b);
        let dir2 = tempfile::tempdir().unwrap();
        let other = Store::open(&dir2.path().join("db.redb")).unwrap();
        assert_ne!(key(&other).unwrap(), a);
    }
}
