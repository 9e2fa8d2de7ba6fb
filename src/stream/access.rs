//! Security-sensitive: the one door to an item's bytes. Every front end (the web app's
//! signed links, DLNA players) calls [`open_for`]: it verifies the signed link, works out
//! who the link speaks for and asks `policy` whether they may see the item now (from this
//! network, at this time), then opens the file beneath its library root with the race-proof
//! opener. The front end only maps [`OpenError`] to its own answer.

use std::fs::File;

use super::signed::{self, LinkKind, MediaGrant, UrlError};
use crate::identity::Identity;
use crate::library::visible;
use crate::model::ClientInfo;
use crate::model::restrictions::Restrictions;
use crate::net::NetRules;
use crate::net::rules::ProfileRef;
use crate::policy::{self, DLNA_PROFILE_ID, Presented};
use crate::store::library::ItemRecord;
use crate::store::{Store, StoreError};

/// What the door needs to look things up.
#[derive(Clone, Copy)]
pub struct Door<'a> {
    pub store: &'a Store,
    pub identity: &'a Identity,
    pub rules: &'a NetRules,
    /// The device's offset from UTC, for viewing hours.
    pub utc_offset_minutes: i32,
}

/// A signed link as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    pub kind: LinkKind,
    /// The user and device it was made for (DLNA links: the DLNA profile, device 0).
    pub user_id: u64,
    pub device_id: u64,
    /// Unix seconds.
    pub expires: u64,
    /// Hex HMAC.
    pub sig: &'a str,
}

/// Who holds the link.
#[derive(Debug, Clone)]
pub enum Viewer {
    /// Whoever the API link names: the device must still be signed in as that user (or, for
    /// device 0, the client must still be on a network allowed without sign-in that acts as
    /// that profile).
    LinkHolder,
    /// A DLNA player: the DLNA profile, with the restrictions the owner set for it now and
    /// whether DLNA is on.
    Dlna {
        restrictions: Restrictions,
        enabled: bool,
    },
}

/// Which file of the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The media file itself.
    Media,
    /// The n-th subtitle sidecar.
    Subtitle(usize),
    /// The poster, cover or folder image.
    Artwork,
}

/// Why the bytes are refused. Front ends answer "not found" for [`OpenError::NotFound`] and
/// never say whether a hidden item exists.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Link(#[from] UrlError),
    #[error(
        "This media link belongs to a device that was signed out or switched profile; open the item again."
    )]
    Revoked,
    /// DLNA is off (or home mode turned it off): the player gets nothing.
    #[error("DLNA is turned off")]
    DlnaOff,
    #[error(transparent)]
    Denied(#[from] policy::Denied),
    /// Missing, or hidden from this viewer.
    #[error("not found")]
    NotFound,
    #[error(
        "The file is not on the disk any more (was the disk unplugged?). Plug it in or rescan the library."
    )]
    MediaMissing,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// An opened file of a visible item.
#[derive(Debug)]
pub struct Opened {
    pub item: ItemRecord,
    pub file: File,
    /// The path of the opened file below its folder.
    pub rel_path: String,
}

/// Verifies `link` for `item_id`, admits the viewer it speaks for and checks with policy
/// that they may see the item now. Blocking (database reads).
pub fn authorize(
    door: Door<'_>,
    client: ClientInfo,
    viewer: &Viewer,
    item_id: u64,
    link: &Link<'_>,
    now: u64,
) -> Result<ItemRecord, OpenError> {
    let key = signed::key(door.store)?;
    let grant = MediaGrant {
        user_id: link.user_id,
        item_id,
        device_id: link.device_id,
        expires: link.expires,
    };
    signed::verify(&key, link.kind, &grant, link.sig, now)?;
    let ctx = door
        .identity
        .policy_context(client.class, door.utc_offset_minutes)
        .map_err(|e| OpenError::Internal(e.to_string()))?;
    let actor = match viewer {
        Viewer::Dlna {
            restrictions,
            enabled,
        } => {
            if link.kind != LinkKind::Dlna || link.user_id != DLNA_PROFILE_ID {
                return Err(OpenError::Link(UrlError::BadSignature));
            }
            let presented = Presented::Dlna {
                restrictions: restrictions.clone(),
                enabled: *enabled,
            };
            policy::admit(presented, &ctx).map_err(|_| OpenError::DlnaOff)?
        }
        Viewer::LinkHolder => {
            let (device, user) = door.store.read(|rx| {
                Ok::<_, StoreError>((rx.device(link.device_id)?, rx.user(link.user_id)?))
            })?;
            let user = user.ok_or(OpenError::Revoked)?;
            let account = policy::Account::from_user(&user, user.restrictions.clone());
            let presented = if link.device_id == 0 {
                // A link made for a network allowed without sign-in works only from such a
                // network, outside home mode, while it still acts as the same profile.
                let same = match door.rules.no_signin_profile(&client, ctx.home_mode) {
                    Some(ProfileRef::Guest) => user.role == policy::Role::Guest,
                    Some(ProfileRef::User(id)) => id == user.id,
                    None => false,
                };
                if !same {
                    return Err(OpenError::Revoked);
                }
                Presented::AllowedNetwork { profile: account }
            } else {
                let device = device.ok_or(OpenError::Revoked)?;
                if device.active_user_id != link.user_id {
                    return Err(OpenError::Revoked);
                }
                Presented::Device {
                    status: policy::DeviceStatus::Active,
                    account,
                }
            };
            policy::admit(presented, &ctx)?
        }
    };
    visible::visible_item(door.store, &actor, &ctx, item_id)?.ok_or(OpenError::NotFound)
}

/// [`authorize`], then opens the asked part of the item beneath its library folder.
/// Blocking.
pub fn open_for(
    door: Door<'_>,
    client: ClientInfo,
    viewer: &Viewer,
    item_id: u64,
    link: &Link<'_>,
    now: u64,
    part: Part,
) -> Result<Opened, OpenError> {
    let item = authorize(door, client, viewer, item_id, link, now)?;
    open_part(door.store, item, part)
}

/// Opens a part of an item the caller already found visible. Blocking.
pub fn open_part(store: &Store, item: ItemRecord, part: Part) -> Result<Opened, OpenError> {
    let rel = match part {
        Part::Media => item.rel_path.clone(),
        Part::Subtitle(n) => item
            .subtitles
            .get(n)
            .map(|s| s.rel_path.clone())
            .ok_or(OpenError::NotFound)?,
        Part::Artwork => item.artwork.clone().ok_or(OpenError::NotFound)?,
    };
    let file = open_item_path(store, item.folder_id, &rel)?;
    Ok(Opened {
        item,
        file,
        rel_path: rel,
    })
}

/// Opens `rel` beneath the folder's root with [`super::open_in_root`]. Blocking.
pub fn open_item_path(store: &Store, folder_id: u64, rel: &str) -> Result<File, OpenError> {
    let folder = store
        .read(|rx| rx.folder(folder_id))?
        .ok_or(OpenError::NotFound)?;
    super::open_in_root(&folder.path, rel).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => OpenError::MediaMissing,
        _ => {
            // A link swapped in, a way out of the folder, or not a plain file: someone may
            // be trying to reach what the library does not hold. Names only, never bytes.
            tracing::warn!(
                folder_id,
                folder = %folder.path.display(),
                item_path = %rel,
                error = %e,
                "refused to open a media file"
            );
            OpenError::NotFound
        }
    })
}
