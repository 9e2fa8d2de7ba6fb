//! Security-sensitive: what DLNA shows and when it runs. The on/off switch is the `dlna`
//! field of the network rules (so `GET /api/v1/settings/network` and `GET /api/v1/dlna` can
//! never disagree); the libraries and the home-mode acknowledgement live here, under the
//! settings key [`SETTINGS_KEY`], and both change in one transaction.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::identity::Identity;
use crate::net::NetRules;
use crate::net::rules::RulesError;
use crate::policy::{Libraries, OwnerProof, Restrictions};
use crate::store::{Store, StoreError};

/// Key of the DLNA settings in the settings table.
pub const SETTINGS_KEY: &str = "dlna";

/// More libraries than anyone has; keeps a request from storing an unbounded list.
pub const MAX_LIBRARIES: usize = 256;

/// Stored DLNA settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DlnaSettings {
    /// Libraries DLNA players may browse. Empty (the default): DLNA is not announced.
    pub libraries: Vec<u64>,
    /// The owner turned DLNA on while home mode was on, after the warning: home mode then
    /// leaves it on. Cleared whenever DLNA is turned off.
    pub enabled_in_home_mode: bool,
    /// The UPnP device UUID, made once so players recognise the server after a restart.
    pub uuid: String,
}

/// The settings page's view (`GET/PUT /api/v1/dlna`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DlnaStatus {
    /// The owner's switch.
    pub enabled: bool,
    /// Library ids DLNA shows.
    pub libraries: Vec<u64>,
    /// Enabled and not switched off by home mode: players on the LAN may browse.
    pub active: bool,
    /// Home mode is on (a managed profile or a PIN exists).
    pub home_mode: bool,
    /// The name players show for this server.
    pub friendly_name: String,
    /// A sentence for the owner about what DLNA exposes now (never empty).
    pub warning: String,
}

/// A change from the settings page; every field optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DlnaUpdate {
    pub enabled: Option<bool>,
    pub libraries: Option<Vec<u64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DlnaError {
    #[error("no library has the id {0}; pick libraries from the list")]
    UnknownLibrary(u64),
    #[error("at most {MAX_LIBRARIES} libraries can be chosen")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<RulesError> for DlnaError {
    fn from(e: RulesError) -> Self {
        match e {
            RulesError::Store(s) => DlnaError::Store(s),
            other => DlnaError::Internal(other.to_string()),
        }
    }
}

/// The stored settings (defaults if never saved). Blocks on the database.
pub fn load(store: &Store) -> Result<DlnaSettings, StoreError> {
    Ok(store
        .read(|rx| rx.setting::<DlnaSettings>(SETTINGS_KEY))?
        .unwrap_or_default())
}

/// The device UUID, made (random, version 4) and stored the first time.
pub fn ensure_uuid(store: &Store) -> Result<String, StoreError> {
    store.write(|tx| {
        let mut s: DlnaSettings = tx.setting(SETTINGS_KEY)?.unwrap_or_default();
        if valid_uuid(&s.uuid) {
            return Ok(s.uuid);
        }
        let mut b = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
            .map_err(|_| StoreError::Corrupt("the system random generator failed".into()))?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        s.uuid = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        tx.set_setting(SETTINGS_KEY, &s)?;
        Ok(s.uuid)
    })
}

fn valid_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The DLNA profile: the same restriction model as a user, limited to the chosen libraries.
pub fn profile_restrictions(s: &DlnaSettings) -> Restrictions {
    Restrictions {
        libraries: Libraries::Only(s.libraries.iter().copied().collect::<BTreeSet<u64>>()),
        ..Restrictions::none()
    }
}

/// Whether DLNA answers now: the owner's switch, unless home mode is on and the owner has
/// not turned it on knowingly during home mode. Derived on every request, never stored: home
/// mode starting or ending does not write over the owner's switch, so when home mode ends
/// (the last PIN cleared, the last managed profile removed) DLNA is back to the owner's choice.
pub fn is_active(enabled: bool, home_mode: bool, s: &DlnaSettings) -> bool {
    enabled && (!home_mode || s.enabled_in_home_mode)
}

/// Everything a DLNA request needs to know, read once per request. Blocks on the database.
#[derive(Debug, Clone)]
pub struct Presence {
    pub settings: DlnaSettings,
    pub active: bool,
    pub home_mode: bool,
}

impl Presence {
    /// Active with something to show: only then is the server announced.
    pub fn announced(&self) -> bool {
        self.active && !self.settings.libraries.is_empty()
    }
}

pub fn presence(
    store: &Store,
    rules: &NetRules,
    identity: &Identity,
) -> Result<Presence, DlnaError> {
    let settings = load(store)?;
    let home_mode = identity
        .home_mode()
        .map_err(|e| DlnaError::Internal(e.to_string()))?
        .on;
    let active = is_active(rules.snapshot().dlna, home_mode, &settings);
    Ok(Presence {
        settings,
        active,
        home_mode,
    })
}

/// The settings page's view. `ssdp` says whether this machine announces DLNA at all
/// (`discovery.ssdp` in the config). Blocks on the database.
pub fn status(
    store: &Store,
    rules: &NetRules,
    identity: &Identity,
    ssdp: bool,
) -> Result<DlnaStatus, DlnaError> {
    let p = presence(store, rules, identity)?;
    let enabled = rules.snapshot().dlna;
    let friendly_name = identity.server_name()?;
    let names = {
        let libs = store.read(|rx| rx.libraries())?;
        p.settings
            .libraries
            .iter()
            .filter_map(|id| libs.iter().find(|l| l.id == *id).map(|l| l.name.clone()))
            .collect::<Vec<_>>()
    };
    let warning = warning(enabled, &p, &names, ssdp);
    Ok(DlnaStatus {
        enabled,
        libraries: p.settings.libraries.clone(),
        active: p.active,
        home_mode: p.home_mode,
        friendly_name,
        warning,
    })
}

fn warning(enabled: bool, p: &Presence, names: &[String], ssdp: bool) -> String {
    const NO_ACCOUNTS: &str = "DLNA has no accounts or passwords: any TV, console or app on your home network can play what it shows, whatever profile restrictions you set for people.";
    if !enabled {
        return format!("DLNA is off. {NO_ACCOUNTS}");
    }
    if !p.active {
        return format!(
            "DLNA is switched off by home mode. {NO_ACCOUNTS} Turn it on again only if everyone on your network may see the chosen libraries."
        );
    }
    if names.is_empty() {
        return "DLNA is on, but no library is chosen for it, so players on your network see nothing and the server is not announced. Choose the libraries DLNA may show.".into();
    }
    let what = names.join(", ");
    let announce = if ssdp {
        ""
    } else {
        " This server does not announce itself on the network (discovery.ssdp is off in its configuration), so players must be given its address."
    };
    let home = if p.home_mode {
        " Home mode is on: you turned DLNA on anyway."
    } else {
        ""
    };
    format!(
        "{NO_ACCOUNTS} It shows: {what}. It never answers devices outside your home network.{home}{announce}"
    )
}

/// Applies the owner's change after checking every library id exists. Turning DLNA on while
/// home mode is on records that the owner did so knowingly. Blocks on the database.
pub fn change(
    store: &Store,
    rules: &NetRules,
    identity: &Identity,
    owner: &OwnerProof,
    update: &DlnaUpdate,
    now: u64,
) -> Result<(), DlnaError> {
    let mut next = load(store)?;
    let mut detail = Vec::new();
    if let Some(libs) = &update.libraries {
        if libs.len() > MAX_LIBRARIES {
            return Err(DlnaError::TooMany);
        }
        let known = store.read(|rx| rx.libraries())?;
        let mut chosen = Vec::new();
        for id in libs {
            if !known.iter().any(|l| l.id == *id) {
                return Err(DlnaError::UnknownLibrary(*id));
            }
            if !chosen.contains(id) {
                chosen.push(*id);
            }
        }
        chosen.sort_unstable();
        detail.push(format!("libraries={chosen:?}"));
        next.libraries = chosen;
    }
    if let Some(on) = update.enabled {
        let home_mode = identity
            .home_mode()
            .map_err(|e| DlnaError::Internal(e.to_string()))?
            .on;
        next.enabled_in_home_mode = on && home_mode;
        detail.push(format!(
            "enabled={on}{}",
            if on && home_mode {
                " (in home mode, after the warning)"
            } else {
                ""
            }
        ));
    }
    if detail.is_empty() {
        detail.push("no change".into());
    }
    rules.change_dlna(store, update.enabled, owner, now, detail.join("; "), |tx| {
        tx.set_setting(SETTINGS_KEY, &next)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_table() {
        let ack = DlnaSettings {
            enabled_in_home_mode: true,
            ..Default::default()
        };
        let plain = DlnaSettings::default();
        // (enabled, home mode, settings, active)
        let cases = [
            (false, false, &plain, false),
            (true, false, &plain, true),
            (true, true, &plain, false),
            (true, true, &ack, true),
            (false, true, &ack, false),
        ];
        for (enabled, home, s, want) in cases {
            assert_eq!(is_active(enabled, home, s), want, "{enabled} {home} {s:?}");
        }
    }

    #[test]
    fn the_profile_sees_only_chosen_libraries() {
        let s = DlnaSettings {
            libraries: vec![3, 5],
            ..Default::default()
        };
        let r = profile_restrictions(&s);
        assert!(r.libraries.allows(3) && r.libraries.allows(5));
        assert!(!r.libraries.allows(4));
        let none = profile_restrictions(&DlnaSettings::default());
        assert!(!none.libraries.allows(1), "default: no library at all");
    }

    #[test]
    fn uuids_are_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let a = ensure_uuid(&store).unwrap();
        assert!(valid_uuid(&a), "{a}");
        assert_eq!(&a[14..15], "4");
        assert_eq!(ensure_uuid(&store).unwrap(), a);
    }
}
