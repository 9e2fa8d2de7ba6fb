//! The state every handler sees: cheap-to-clone handles, never a lock held across `.await`.

use std::sync::Arc;

use crate::agent::client as agent;
use crate::config::Config;
use crate::disks::DiskMonitor;
use crate::identity::Identity;
use crate::net::tls::TlsManager;
use crate::net::{LanNetworks, NetRules};
use crate::store::Store;
use crate::system::SystemMonitor;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub lan: LanNetworks,
    /// The owner's network rules, applied to every request.
    pub rules: NetRules,
    /// The device's certificates; `None` when this server has no HTTPS listener.
    pub tls: Option<Arc<TlsManager>>,
    pub system: SystemMonitor,
    pub identity: Arc<Identity>,
    /// The root helper that mounts disks; `None` on a laptop.
    pub agent: Option<agent::Client>,
    /// Disks as last seen, and hot-plug events (libraries go offline when theirs is pulled).
    pub disks: DiskMonitor,
    /// Running and finished library scans.
    pub scans: crate::library::Scans,
    /// Update installs and what the boot control said at start.
    pub updates: crate::ota::install::Installer,
    /// Filesystem watching of library folders (`None` if inotify is unavailable).
    pub watcher: Option<Arc<crate::library::watch::LibraryWatcher>>,
    /// The UPnP identity and the "DLNA settings changed" signal for SSDP.
    pub dlna: crate::dlna::Dlna,
    /// Backups: downloads, the schedule, restores.
    pub backups: crate::backup::Backups,
    /// Conversions running for players that cannot take a file as it is.
    pub playback: Arc<super::playback::PlaybackSessions>,
    /// Posters, frames and photo thumbnails, made and cached.
    pub pictures: Arc<super::picture::Pictures>,
    /// Being reached from outside: the port mapping, the public address, the check.
    pub reach: crate::reach::Reach,
}
