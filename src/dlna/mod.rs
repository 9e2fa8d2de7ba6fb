//! Security-sensitive: DLNA/UPnP. DLNA has no accounts: any player on the home network that
//! finds the server may browse it. This module guards what such a player sees: only the
//! libraries the owner chose for DLNA (none until chosen), through the same restriction
//! model as users (the DLNA profile, see [`profile_restrictions`]), never from outside the
//! LAN, and not at all while home mode has switched DLNA off.
//!
//! - [`settings`]: which libraries, on/off, home mode, the view the settings page shows;
//! - [`tree`]: the ContentDirectory object tree over the libraries, Browse and Search;
//! - [`control`]: the ContentDirectory and ConnectionManager actions (Browse, Search, …);
//! - [`criteria`]: the UPnP search-criteria and sort-criteria languages;
//! - [`soap`]: SOAP envelopes, faults and DIDL-Lite, read and written with quick-xml;
//! - [`profile`]: MIME types → DLNA profile names and `protocolInfo` strings;
//! - [`description`]: the device description and the two service descriptions (SCPD);
//! - [`ssdp`]: SSDP announcements and M-SEARCH answers on the LAN interfaces.

pub mod control;
pub mod criteria;
pub mod description;
pub mod profile;
pub mod settings;
pub mod soap;
pub mod ssdp;
pub mod tree;

pub use settings::{DlnaSettings, DlnaStatus, DlnaUpdate, profile_restrictions};

use std::sync::Arc;

/// What the DLNA parts running in the background share with the web handlers: the device's
/// UPnP identity and a signal that the owner changed something SSDP must react to.
#[derive(Debug, Clone)]
pub struct Dlna {
    /// `uuid:…` without the prefix; stable across restarts (kept in the settings table).
    pub uuid: String,
    /// Woken when DLNA is turned on or off, libraries change, or home mode starts.
    pub changed: Arc<tokio::sync::Notify>,
}

impl Dlna {
    pub fn new(uuid: String) -> Dlna {
        Dlna {
            uuid,
            changed: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

/// The `SERVER` header of SSDP answers and HTTP answers to players (UPnP 1.0 wants the
/// OS, the UPnP version and the product).
pub fn server_header() -> String {
    format!(
        "Linux UPnP/1.0 DLNADOC/1.50 Hearth/{}",
        crate::model::build::version()
    )
}
