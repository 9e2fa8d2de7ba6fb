//! Security-sensitive: being reachable from outside the home. While the owner has remote
//! access on, this module opens one TCP port on the home router (UPnP IGD), keeps its lease
//! and takes it away again the moment remote access goes off or the server stops; it also
//! works out the address friends use ([`ReachView::public_url`]) and checks that it leads
//! here. A mistake here opens the household's server to the internet when the owner said
//! no: nothing in this module ever asks the router for a mapping while remote access is off.
//!
//! The owner's choices ([`ReachSettings`]) live in the database; the router's answers live in
//! memory ([`Reach`]) and are shown on the Network page.

pub mod check;
pub mod igd;
mod mapper;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::config::ReachConfig;
use crate::net::NetRules;
use crate::store::{Store, StoreError};

pub use mapper::MapState;

/// Key of the owner's reach settings in the settings table.
pub const SETTINGS_KEY: &str = "reach";

/// How the port from the internet to the device is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PortMode {
    /// The device asks the router (UPnP IGD) while remote access is on.
    #[default]
    Automatic,
    /// The owner forwarded a port on the router by hand; the device asks for nothing.
    Manual,
}

/// The owner's choices about being reached from outside.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReachSettings {
    pub port_mode: PortMode,
    /// With `manual`: the port the owner forwarded on the router to this device's HTTPS (or,
    /// without HTTPS, HTTP) port.
    pub manual_public_port: Option<u16>,
    /// A name the owner controls that points at the home (their domain or a dynamic-DNS
    /// name); invite links use it instead of the bare external address.
    pub public_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReachSettings {
    /// Checks the settings as the owner sent them; a name is kept in lower case.
    pub fn validated(mut self) -> Result<ReachSettings, ReachError> {
        if self.port_mode == PortMode::Manual && self.manual_public_port.is_none() {
            return Err(ReachError::Invalid {
                field: "manual_public_port",
                message: "a manual port forward needs the public port you forwarded on the router (1–65535)".into(),
            });
        }
        if self.manual_public_port == Some(0) {
            return Err(ReachError::Invalid {
                field: "manual_public_port",
                message: "0 is not a port; use 1–65535".into(),
            });
        }
        if let Some(name) = &self.public_name {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                self.public_name = None;
            } else {
                check_public_name(&name).map_err(|message| ReachError::Invalid {
                    field: "public_name",
                    message,
                })?;
                self.public_name = Some(name);
            }
        }
        Ok(self)
    }
}

/// A DNS name with at least two labels, letters, digits and hyphens only (IDNs in their
/// `xn--` form), not an address.
fn check_public_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("a name has at most 253 characters".into());
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err("give a name (like home.example.org), not an address".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "{name:?} is not a full domain name (like home.example.org)"
        ));
    }
    for l in &labels {
        let ok = !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "{name:?} is not a valid domain name: each part between dots may hold letters, digits and hyphens (write international names in their xn-- form)"
            ));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("{name:?} is not a valid domain name"));
    }
    if matches!(labels.last(), Some(&"local") | Some(&"lan") | Some(&"home")) {
        return Err(format!(
            "{name:?} is a home-network name; friends outside cannot look it up"
        ));
    }
    Ok(())
}

/// The ports this server answers on, from the listeners.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub http: Option<u16>,
    pub https: Option<u16>,
}

impl Ports {
    /// The port opened to the internet: HTTPS where there is one.
    pub fn exposed(&self) -> Option<(u16, &'static str)> {
        match (self.https, self.http) {
            (Some(p), _) => Some((p, "https")),
            (None, Some(p)) => Some((p, "http")),
            (None, None) => None,
        }
    }
}

/// The handle the web layer and the mapping task share; cheap to clone.
#[derive(Clone)]
pub struct Reach {
    inner: Arc<Inner>,
}

struct Inner {
    config: ReachConfig,
    ports: Ports,
    settings: RwLock<Arc<ReachSettings>>,
    /// Serialises read-modify-write changes of the settings.
    update: Mutex<()>,
    state: Mutex<MapState>,
    /// Bumped when the settings change, so the mapping task looks again.
    changes: tokio::sync::watch::Sender<()>,
    /// The last reachability check.
    last_check: Mutex<Option<check::CheckResult>>,
    /// The token the probe route answers to while a check runs.
    probe: Mutex<Option<String>>,
}

impl std::fmt::Debug for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reach")
            .field("settings", &self.settings())
            .finish_non_exhaustive()
    }
}

/// A plain warning for the owner: what breaks reachability, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Warning {
    /// Stable name: `no_gateway`, `gateway_refused`, `gateway_unreachable`, `double_nat`,
    /// `cgnat`, `no_external_address`, `plain_http`, `permanent_lease`.
    pub code: &'static str,
    pub message: String,
}

/// Everything the Network page shows about being reached from outside.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReachView {
    pub settings: ReachSettings,
    /// The owner's remote-access switch (Settings → Network).
    pub remote_access: bool,
    /// What the port mapping is doing.
    pub mapping: MapState,
    /// The port opened to the internet on this device, and its scheme.
    pub internal_port: Option<u16>,
    pub internal_scheme: Option<&'static str>,
    /// The port friends connect to on the router (mapped or forwarded by hand).
    pub public_port: Option<u16>,
    /// The full address friends use, when the device can be reached at all.
    pub public_url: Option<String>,
    /// Why the device is not (or may not be) reachable from outside, in plain words.
    pub not_reachable_because: Option<String>,
    pub warnings: Vec<Warning>,
    /// The last reachability check, if the owner ran one.
    pub last_check: Option<check::CheckResult>,
}

impl Reach {
    /// Loads the owner's settings (defaults if none). Blocks on the database.
    pub fn load(store: &Store, config: ReachConfig, ports: Ports) -> Result<Reach, StoreError> {
        let settings: Option<ReachSettings> = store.read(|rx| rx.setting(SETTINGS_KEY))?;
        Ok(Reach::new(settings.unwrap_or_default(), config, ports))
    }

    pub fn new(settings: ReachSettings, config: ReachConfig, ports: Ports) -> Reach {
        Reach {
            inner: Arc::new(Inner {
                config,
                ports,
                settings: RwLock::new(Arc::new(settings)),
                update: Mutex::new(()),
                state: Mutex::new(MapState::default()),
                changes: tokio::sync::watch::Sender::new(()),
                last_check: Mutex::new(None),
                probe: Mutex::new(None),
            }),
        }
    }

    pub fn settings(&self) -> Arc<ReachSettings> {
        self.inner
            .settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn ports(&self) -> Ports {
        self.inner.ports
    }

    fn state(&self) -> MapState {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_state(&self, f: impl FnOnce(&mut MapState)) {
        f(&mut self.inner.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Stores new settings for the owner (with an audit entry) and wakes the mapping task.
    /// Blocks on the database.
    pub fn change(
        &self,
        store: &Store,
        next: ReachSettings,
        owner: &crate::policy::OwnerProof,
        address: Option<String>,
        now: u64,
    ) -> Result<Arc<ReachSettings>, ReachError> {
        let next = next.validated()?;
        let _guard = self.inner.update.lock().unwrap_or_else(|e| e.into_inner());
        let detail = format!(
            "port_mode={:?} manual_public_port={:?} public_name={:?}",
            next.port_mode, next.manual_public_port, next.public_name
        );
        store.write(|tx| {
            tx.set_setting(SETTINGS_KEY, &next)?;
            tx.audit(
                now,
                "reach_settings_changed",
                Some(owner.user_id()),
                address,
                detail,
            )
        })?;
        let next = Arc::new(next);
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner()) = next.clone();
        self.inner.changes.send_replace(());
        Ok(next)
    }

    /// The public address of the device, if it has one now: the owner's name or the
    /// router's public external address, the mapped or forwarded port, and the scheme.
    pub fn public_url(&self, remote_access: bool) -> Option<String> {
        self.view(remote_access).public_url
    }

    /// What the Network page shows.
    pub fn view(&self, remote_access: bool) -> ReachView {
        let settings = (*self.settings()).clone();
        let mapping = self.state();
        let exposed = self.inner.ports.exposed();
        let public_port = match settings.port_mode {
            PortMode::Manual => settings.manual_public_port,
            PortMode::Automatic => mapping.external_port,
        };
        let mut warnings = mapping.warnings.clone();
        if remote_access && self.inner.ports.https.is_none() {
            warnings.push(Warning {
                code: "plain_http",
                message: "This server has no HTTPS listener: friends would connect without encryption. Turn on `https` in its configuration.".into(),
            });
        }
        let host = settings.public_name.clone().or_else(|| {
            mapping
                .external_address
                .filter(|a| public_address(*a))
                .map(|a| a.to_string())
        });
        let (public_url, not_reachable_because) = match (remote_access, exposed, public_port, host)
        {
            (false, ..) => (
                None,
                Some("Remote access is off: only devices on the home network can connect.".into()),
            ),
            (true, None, ..) => (None, Some("This server has no listener to open.".into())),
            (true, Some((_, scheme)), Some(port), Some(host)) => {
                let default = matches!((scheme, port), ("https", 443) | ("http", 80));
                let url = if default {
                    format!("{scheme}://{host}")
                } else {
                    format!("{scheme}://{host}:{port}")
                };
                (Some(url), None)
            }
            (true, _, None, _) => (
                None,
                Some(match settings.port_mode {
                    PortMode::Automatic if !self.inner.config.upnp => {
                        "Automatic port mapping is turned off in this server's configuration (`reach.upnp`): forward a port on the router by hand and enter it here.".into()
                    }
                    PortMode::Automatic => mapping.error.clone().unwrap_or_else(|| {
                        "The router has not opened a port for this server yet.".into()
                    }),
                    PortMode::Manual => "No public port is set.".into(),
                }),
            ),
            (true, _, Some(_), None) => (
                None,
                Some(
                    "The device does not know a public address for the home: the router did not say, or its address is not a public one. Enter a name you control that points at your home."
                        .into(),
                ),
            ),
        };
        ReachView {
            settings,
            remote_access,
            internal_port: exposed.map(|(p, _)| p),
            internal_scheme: exposed.map(|(_, s)| s),
            public_port,
            public_url,
            not_reachable_because,
            warnings,
            mapping,
            last_check: self
                .inner
                .last_check
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Runs the port mapping until `stop` turns true, then removes the mapping it holds.
    pub async fn run(self, rules: NetRules, stop: tokio::sync::watch::Receiver<bool>) {
        mapper::run(self, rules, stop).await
    }
}

/// Whether friends on the internet could reach `addr`: not private, shared (carrier-grade
/// NAT), loopback, link-local, documentation or unspecified.
pub fn public_address(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_multicast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// Why an external address the router reports cannot be reached from the internet.
pub fn address_warning(addr: Option<IpAddr>) -> Option<Warning> {
    let Some(IpAddr::V4(a)) = addr else {
        return addr.is_none().then(|| Warning {
            code: "no_external_address",
            message: "The router does not know its internet address: it may not be connected to the internet.".into(),
        });
    };
    let o = a.octets();
    if o[0] == 100 && (o[1] & 0xc0) == 64 {
        return Some(Warning {
            code: "cgnat",
            message: format!(
                "The router's internet address {a} is shared with other customers of your provider (carrier-grade NAT): nobody outside can reach this server through it. Ask your provider for a public IPv4 address, or use a relay."
            ),
        });
    }
    if a.is_private() || a.is_link_local() || a.is_unspecified() {
        return Some(Warning {
            code: "double_nat",
            message: format!(
                "The router's internet address {a} is a private one: there is a second router between it and the internet (double NAT). Open the port on that one too, or put this router in bridge mode."
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_before_they_are_kept() {
        let table: &[(ReachSettings, Result<Option<&str>, &str>)] = &[
            (ReachSettings::default(), Ok(None)),
            (
                ReachSettings {
                    port_mode: PortMode::Manual,
                    ..Default::default()
                },
                Err("manual_public_port"),
            ),
            (
                ReachSettings {
                    manual_public_port: Some(0),
                    ..Default::default()
                },
                Err("manual_public_port"),
            ),
            (
                ReachSettings {
                    public_name: Some(" Home.Example.ORG. ".into()),
                    ..Default::default()
                },
                Ok(Some("home.example.org")),
            ),
            (
                ReachSettings {
                    public_name: Some("".into()),
                    ..Default::default()
                },
                Ok(None),
            ),
        ];
        for (s, want) in table {
            match (s.clone().validated(), want) {
                (Ok(v), Ok(name)) => assert_eq!(v.public_name.as_deref(), *name, "{s:?}"),
                (Err(ReachError::Invalid { field, .. }), Err(f)) => assert_eq!(field, *f),
                (got, _) => panic!("{s:?}: {got:?}"),
            }
        }
        for bad in [
            "localhost",
            "hearth.local",
            "10.0.0.1",
            "a..b",
            "-a.org",
            "a_b.org",
            "exa mple.org",
            "1.2",
            "router.lan",
        ] {
            assert!(check_public_name(bad).is_err(), "{bad}");
        }
        for good in ["home.example.org", "x-1.dyndns.example", "xn--bcher-kva.de"] {
            assert!(check_public_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn external_addresses_are_judged_for_reachability() {
        let table: &[(Option<&str>, Option<&str>, bool)] = &[
            (Some("11.231.0.1"), None, true),
            (Some("192.168.1.1"), Some("double_nat"), false),
            (Some("10.0.0.1"), Some("double_nat"), false),
            (Some("172.20.0.1"), Some("double_nat"), false),
            (Some("100.64.0.1"), Some("cgnat"), false),
            (Some("100.127.255.254"), Some("cgnat"), false),
            (Some("100.128.0.1"), None, true),
            (Some("0.0.0.0"), Some("double_nat"), false),
            (None, Some("no_external_address"), false),
        ];
        for (addr, code, public) in table {
            let a = addr.map(|a| a.parse().unwrap());
            assert_eq!(address_warning(a).map(|w| w.code), *code, "{addr:?}");
            if let Some(a) = a {
                assert_eq!(public_address(a), *public, "{addr:?}");
            }
        }
    }

    #[test]
    fn the_public_url_needs_remote_access_a_port_and_a_public_address() {
        let ports = Ports {
            http: Some(8080),
            https: Some(8443),
        };
        let r = Reach::new(ReachSettings::default(), ReachConfig::default(), ports);
        let v = r.view(false);
        assert_eq!(v.public_url, None);
        assert!(
            v.not_reachable_because
                .unwrap()
                .contains("Remote access is off")
        );
        // On, but nothing mapped yet.
        assert_eq!(r.view(true).public_url, None);
        r.set_state(|s| {
            s.external_address = Some("11.231.0.1".parse().unwrap());
            s.external_port = Some(8443);
        });
        assert_eq!(
            r.view(true).public_url.as_deref(),
            Some("https://11.231.0.1:8443")
        );
        assert_eq!(r.view(false).public_url, None, "never while off");
        // A private external address is no public address; the owner's name is.
        r.set_state(|s| s.external_address = Some("192.168.0.2".parse().unwrap()));
        assert_eq!(r.view(true).public_url, None);
        let r2 = Reach::new(
            ReachSettings {
                port_mode: PortMode::Manual,
                manual_public_port: Some(443),
                public_name: Some("home.example.org".into()),
            },
            ReachConfig::default(),
            ports,
        );
        assert_eq!(
            r2.view(true).public_url.as_deref(),
            Some("https://home.example.org")
        );
        // Without HTTPS the plain address is given, with a warning.
        let r3 = Reach::new(
            ReachSettings {
                port_mode: PortMode::Manual,
                manual_public_port: Some(80),
                public_name: Some("home.example.org".into()),
            },
            ReachConfig::default(),
            Ports {
                http: Some(8080),
                https: None,
            },
        );
        let v = r3.view(true);
        assert_eq!(v.public_url.as_deref(), Some("http://home.example.org"));
        assert!(v.warnings.iter().any(|w| w.code == "plain_http"));
    }
}
