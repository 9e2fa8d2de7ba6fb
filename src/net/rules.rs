//! Security-sensitive: the owner's network rules (who may connect from where, and how) and
//! the decision applied to every request before anything else runs. A mistake here lets
//! the internet in while remote access is off, or locks the household out.
//!
//! The rules live in the database (setting [`SETTINGS_KEY`]); [`NetRules`] keeps an
//! in-memory snapshot that each request reads, replaced atomically by a change, so a change
//! takes effect on the next request without a restart.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::client::{ClientInfo, IpNet, LanNetworks, NetClass, UNSPECIFIED};
use super::forwarded::{self, ClientAddr};
use crate::store::{Store, StoreError};

/// Key of the network rules in the settings table.
pub const SETTINGS_KEY: &str = "network";

/// Most entries any one network list may have.
pub const MAX_LIST: usize = 256;

/// How the device treats plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecureConnections {
    /// Plain HTTP is redirected (browsers) or refused (API calls); HSTS is sent.
    Required,
    /// Both are served; the UI offers the HTTPS address.
    #[default]
    Preferred,
    /// No HTTPS: the HTTPS listener refuses every handshake.
    Disabled,
}

/// The profile a client acts as when its network may use the device without signing in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProfileRef {
    /// The guest profile.
    #[default]
    Guest,
    /// A managed household profile, by user id.
    User(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AllowedWithoutAuth {
    /// Networks (inside the LAN) whose clients act as `profile` without signing in.
    #[schema(value_type = Vec<String>, example = json!(["192.168.1.0/24"]))]
    pub networks: Vec<IpNet>,
    pub profile: ProfileRef,
}

/// The owner's network rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NetSettings {
    /// Whether clients outside the LAN may connect at all. Off by default.
    pub remote_access: bool,
    /// Networks counted as LAN in addition to the device's own interface subnets.
    #[schema(value_type = Vec<String>)]
    pub lan_networks: Vec<IpNet>,
    pub allowed_without_auth: AllowedWithoutAuth,
    pub secure_connections: SecureConnections,
    /// Addresses and networks that are refused before anything else.
    #[schema(value_type = Vec<String>)]
    pub ip_deny: Vec<IpNet>,
    /// Reverse proxies whose `Forwarded`/`X-Forwarded-For` headers are believed.
    #[schema(value_type = Vec<String>)]
    pub trusted_proxies: Vec<IpNet>,
    /// Whether DLNA players on the LAN may browse the libraries.
    pub dlna: bool,
}

impl Default for NetSettings {
    fn default() -> Self {
        NetSettings {
            remote_access: false,
            lan_networks: Vec::new(),
            allowed_without_auth: AllowedWithoutAuth::default(),
            secure_connections: SecureConnections::Preferred,
            ip_deny: Vec::new(),
            trusted_proxies: Vec::new(),
            dlna: true,
        }
    }
}

/// A change to the rules: every field optional; network lists as text so a bad entry can
/// be named in the answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NetSettingsPatch {
    pub remote_access: Option<bool>,
    pub lan_networks: Option<Vec<String>>,
    pub allowed_without_auth: Option<AllowedWithoutAuthPatch>,
    pub secure_connections: Option<SecureConnections>,
    pub ip_deny: Option<Vec<String>>,
    pub trusted_proxies: Option<Vec<String>>,
    pub dlna: Option<bool>,
    /// Make the change even though it would refuse the client making it.
    pub confirm: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AllowedWithoutAuthPatch {
    pub networks: Option<Vec<String>>,
    pub profile: Option<ProfileRef>,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A value the owner sent is not acceptable; `field` names where it is.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The change would refuse the client asking for it.
    #[error("{message}")]
    WouldLockOut { message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn parse_list(
    field: &'static str,
    items: &[String],
    allow_everything: bool,
) -> Result<Vec<IpNet>, RulesError> {
    if items.len() > MAX_LIST {
        return Err(RulesError::Invalid {
            field,
            message: format!("at most {MAX_LIST} entries are allowed"),
        });
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let net: IpNet = item
            .parse()
            .map_err(|message: String| RulesError::Invalid {
                field,
                message: format!(
                    "{message}; write an address like 192.168.1.20 or a network like 192.168.1.0/24"
                ),
            })?;
        if net.prefix == 0 && !allow_everything {
            return Err(RulesError::Invalid {
                field,
                message: format!(
                    "{item:?} would match every address on the internet; name a smaller network"
                ),
            });
        }
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}

impl NetSettings {
    /// The settings after `patch`, validated. Changes nothing by itself.
    pub fn apply(&self, patch: &NetSettingsPatch) -> Result<NetSettings, RulesError> {
        let mut next = self.clone();
        if let Some(v) = patch.remote_access {
            next.remote_access = v;
        }
        if let Some(v) = &patch.lan_networks {
            next.lan_networks = parse_list("lan_networks", v, false)?;
        }
        if let Some(a) = &patch.allowed_without_auth {
            if let Some(v) = &a.networks {
                next.allowed_without_auth.networks =
                    parse_list("allowed_without_auth.networks", v, false)?;
            }
            if let Some(p) = a.profile {
                next.allowed_without_auth.profile = p;
            }
        }
        if let Some(v) = patch.secure_connections {
            next.secure_connections = v;
        }
        if let Some(v) = &patch.ip_deny {
            next.ip_deny = parse_list("ip_deny", v, true)?;
        }
        if let Some(v) = &patch.trusted_proxies {
            next.trusted_proxies = parse_list("trusted_proxies", v, false)?;
        }
        if let Some(v) = patch.dlna {
            next.dlna = v;
        }
        Ok(next)
    }
}

/// What the rules say about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// 403 with this code and sentence.
    Refuse {
        code: &'static str,
        message: String,
    },
    /// Plain HTTP from a browser while secure connections are required: 308 to HTTPS.
    RedirectToHttps,
}

/// The facts about a request the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    /// The TCP peer (a proxy, if there is one).
    pub peer: IpAddr,
    pub secure: bool,
    /// A browser asking for a page (GET/HEAD accepting `text/html`): redirected, not refused.
    pub wants_page: bool,
    /// The health check and the CRL stay answerable over plain HTTP whatever the rules say:
    /// a supervisor on the device must always be able to tell whether the server is up, and
    /// a CRL is fetched over plain HTTP by design (it is signed; HTTPS would be circular).
    pub plain_http_ok: bool,
}

/// The rules, in order: deny list, remote access, secure connections.
pub fn evaluate(settings: &NetSettings, client: &ClientInfo, facts: &RequestFacts) -> Verdict {
    let peer = super::client::canonical(facts.peer);
    let denied = |ip: IpAddr| settings.ip_deny.iter().any(|n| n.contains(ip));
    if denied(client.addr) || denied(peer) {
        return Verdict::Refuse {
            code: "ip_denied",
            message: format!(
                "Connections from {} are blocked by the owner's deny list (Settings → Network → Blocked addresses).",
                client.addr
            ),
        };
    }
    if !settings.remote_access && client.class == NetClass::Remote {
        return Verdict::Refuse {
            code: "remote_access_off",
            message: "Remote access is turned off: this server only answers devices on its home network. The owner can turn on remote access in Settings → Network.".into(),
        };
    }
    if settings.secure_connections == SecureConnections::Required
        && !facts.secure
        && !facts.plain_http_ok
    {
        if facts.wants_page {
            return Verdict::RedirectToHttps;
        }
        return Verdict::Refuse {
            code: "secure_connection_required",
            message: "This server only accepts secure connections: use its https:// address."
                .into(),
        };
    }
    Verdict::Allow
}

/// The owner's rules plus the live LAN list; cheap to clone.
#[derive(Clone)]
pub struct NetRules {
    current: Arc<RwLock<Arc<NetSettings>>>,
    /// Serialises read-modify-write changes so two owners' edits cannot interleave.
    update: Arc<Mutex<()>>,
    /// Bumped after every change, for tasks that follow the rules (the port mapping).
    changes: Arc<tokio::sync::watch::Sender<()>>,
    lan: LanNetworks,
    https_port: Option<u16>,
}

impl std::fmt::Debug for NetRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetRules")
            .field("current", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl NetRules {
    /// Rules from `settings`, not stored anywhere (tests and start-up).
    pub fn new(settings: NetSettings, lan: LanNetworks, https_port: Option<u16>) -> NetRules {
        lan.set_extra(settings.lan_networks.clone());
        NetRules {
            current: Arc::new(RwLock::new(Arc::new(settings))),
            update: Arc::new(Mutex::new(())),
            changes: Arc::new(tokio::sync::watch::Sender::new(())),
            lan,
            https_port,
        }
    }

    /// Loads the stored rules (defaults if none were ever saved). Blocks on the database.
    pub fn load(
        store: &Store,
        lan: LanNetworks,
        https_port: Option<u16>,
    ) -> Result<NetRules, StoreError> {
        let settings: Option<NetSettings> = store.read(|rx| rx.setting(SETTINGS_KEY))?;
        Ok(Self::new(settings.unwrap_or_default(), lan, https_port))
    }

    /// The rules in force now. Cheap: one lock read and an `Arc` clone.
    pub fn snapshot(&self) -> Arc<NetSettings> {
        // Poisoning only means a writer panicked between two whole-Arc assignments.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Wakes after each change of the rules.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<()> {
        self.changes.subscribe()
    }

    /// Swaps `next` in and tells the followers.
    fn swap(&self, next: Arc<NetSettings>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        self.changes.send_replace(());
    }

    pub fn lan(&self) -> &LanNetworks {
        &self.lan
    }

    /// The port of the running HTTPS listener, if there is one.
    pub fn https_port(&self) -> Option<u16> {
        self.https_port
    }

    /// Who the client is under the rules in force: the address through trusted proxies and
    /// its class. A client a trusted proxy cannot name is Remote.
    pub fn client(&self, peer: IpAddr, secure: bool, headers: &HeaderMap) -> ClientInfo {
        let s = self.snapshot();
        client_under(&s, &self.lan, &s.lan_networks, peer, secure, headers)
    }

    /// The verdict for a request under the rules in force.
    pub fn check(&self, client: &ClientInfo, facts: &RequestFacts) -> Verdict {
        evaluate(&self.effective(self.snapshot()), client, facts)
    }

    /// The settings as enforced: with no HTTPS listener running, "required" cannot be met
    /// and is enforced as "preferred", so a failed certificate set-up never locks everyone
    /// out of plain HTTP.
    fn effective(&self, s: Arc<NetSettings>) -> Arc<NetSettings> {
        if self.https_port.is_none() && s.secure_connections == SecureConnections::Required {
            let mut relaxed = (*s).clone();
            relaxed.secure_connections = SecureConnections::Preferred;
            Arc::new(relaxed)
        } else {
            s
        }
    }

    /// The profile a client acts as without signing in, if its network allows that.
    /// Always `None` in home mode (every client must sign in there) and for clients outside
    /// the LAN.
    pub fn no_signin_profile(&self, client: &ClientInfo, home_mode: bool) -> Option<ProfileRef> {
        if home_mode || client.class == NetClass::Remote || client.addr == UNSPECIFIED {
            return None;
        }
        let s = self.snapshot();
        s.allowed_without_auth
            .networks
            .iter()
            .any(|n| n.contains(client.addr))
            .then_some(s.allowed_without_auth.profile)
    }

    /// Applies `patch` for the owner's client described by `peer`/`secure`/`headers` (only the
    /// owner may: the [`crate::policy::OwnerProof`] says so): validates it,
    /// refuses a change that would refuse this very client unless `patch.confirm`, stores it
    /// with an audit entry in one transaction, then swaps it in. Blocks on the database.
    pub fn change(
        &self,
        store: &Store,
        patch: &NetSettingsPatch,
        asker: (IpAddr, bool, &HeaderMap),
        owner: &crate::policy::OwnerProof,
        now: u64,
    ) -> Result<Arc<NetSettings>, RulesError> {
        let _guard = self.update.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.snapshot();
        let next = current.apply(patch)?;
        if next.secure_connections == SecureConnections::Required && self.https_port.is_none() {
            return Err(RulesError::Invalid {
                field: "secure_connections",
                message: "secure connections cannot be required: this server has no HTTPS listener (the `https` setting of its configuration is off)".into(),
            });
        }
        let (peer, secure, headers) = asker;
        if !patch.confirm
            && let Some(why) = self.lockout(&next, peer, secure, headers)
        {
            return Err(RulesError::WouldLockOut { message: why });
        }
        let client = client_under(&next, &self.lan, &next.lan_networks, peer, secure, headers);
        let detail = describe_change(&current, &next);
        store.write(|tx| {
            tx.set_setting(SETTINGS_KEY, &next)?;
            tx.audit(
                now,
                "network_settings_changed",
                Some(owner.user_id()),
                Some(client.addr.to_string()),
                detail,
            )
        })?;
        self.lan.set_extra(next.lan_networks.clone());
        let next = Arc::new(next);
        self.swap(next.clone());
        Ok(next)
    }

    /// Turns DLNA on or off for the owner (`enabled: None` leaves it), writing `also` (the
    /// DLNA settings) in the same transaction, with one audit entry. Blocks on the database.
    pub fn change_dlna(
        &self,
        store: &Store,
        enabled: Option<bool>,
        owner: &crate::policy::OwnerProof,
        now: u64,
        detail: String,
        also: impl FnOnce(&crate::store::Tx<'_>) -> Result<(), StoreError>,
    ) -> Result<Arc<NetSettings>, RulesError> {
        let _guard = self.update.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.snapshot();
        let mut next = (*current).clone();
        if let Some(v) = enabled {
            next.dlna = v;
        }
        store.write(|tx| {
            tx.set_setting(SETTINGS_KEY, &next)?;
            also(tx)?;
            tx.audit(
                now,
                "dlna_settings_changed",
                Some(owner.user_id()),
                None,
                detail,
            )
        })?;
        let next = Arc::new(next);
        self.swap(next.clone());
        Ok(next)
    }

    /// Why `next` would refuse the client asking for it, if it would.
    fn lockout(
        &self,
        next: &NetSettings,
        peer: IpAddr,
        secure: bool,
        headers: &HeaderMap,
    ) -> Option<String> {
        let client = client_under(next, &self.lan, &next.lan_networks, peer, secure, headers);
        let facts = RequestFacts {
            peer,
            secure: client.secure,
            wants_page: false,
            plain_http_ok: false,
        };
        if let Verdict::Refuse { code, .. } = evaluate(next, &client, &facts) {
            let why = match code {
                "ip_denied" => format!(
                    "this change would block your own address {} (it is in the new deny list)",
                    client.addr
                ),
                "remote_access_off" => format!(
                    "your address {} would count as remote while remote access is off",
                    client.addr
                ),
                _ => "you are connected over plain HTTP and the change requires secure connections; open the https:// address first".into(),
            };
            return Some(format!(
                "Not changed: {why}, so you would lose access from this device. Send the change again with \"confirm\": true if you are sure."
            ));
        }
        if secure && next.secure_connections == SecureConnections::Disabled {
            return Some("Not changed: you are connected over HTTPS and turning secure connections off closes HTTPS, so you would lose this connection. Send the change again with \"confirm\": true if you are sure.".into());
        }
        None
    }
}

fn client_under(
    settings: &NetSettings,
    lan: &LanNetworks,
    extra: &[IpNet],
    peer: IpAddr,
    secure: bool,
    headers: &HeaderMap,
) -> ClientInfo {
    // A TLS-terminating proxy we trust speaks for how the client reached it.
    let secure = secure || forwarded::proxied_https(peer, headers, &settings.trusted_proxies);
    match forwarded::resolve(peer, headers, &settings.trusted_proxies) {
        ClientAddr::Known(addr) => ClientInfo {
            addr,
            class: lan.classify_with_extra(addr, extra),
            secure,
        },
        ClientAddr::Unknown => ClientInfo {
            addr: UNSPECIFIED,
            class: NetClass::Remote,
            secure,
        },
    }
}

/// One line for the audit log naming what changed.
fn describe_change(old: &NetSettings, new: &NetSettings) -> String {
    let mut parts = Vec::new();
    let list = |l: &[IpNet]| {
        l.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if old.remote_access != new.remote_access {
        parts.push(format!("remote_access={}", new.remote_access));
    }
    if old.lan_networks != new.lan_networks {
        parts.push(format!("lan_networks=[{}]", list(&new.lan_networks)));
    }
    if old.allowed_without_auth != new.allowed_without_auth {
        parts.push(format!(
            "allowed_without_auth=[{}] as {:?}",
            list(&new.allowed_without_auth.networks),
            new.allowed_without_auth.profile
        ));
    }
    if old.secure_connections != new.secure_connections {
        parts.push(format!("secure_connections={:?}", new.secure_connections));
    }
    if old.ip_deny != new.ip_deny {
        parts.push(format!("ip_deny=[{}]", list(&new.ip_deny)));
    }
    if old.trusted_proxies != new.trusted_proxies {
        parts.push(format!("trusted_proxies=[{}]", list(&new.trusted_proxies)));
    }
    if old.dlna != new.dlna {
        parts.push(format!("dlna={}", new.dlna));
    }
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(l: &[&str]) -> Vec<IpNet> {
        l.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn owner() -> crate::policy::OwnerProof {
        use crate::policy::{Account, Context, DeviceStatus, Presented, admit, require_owner};
        let account = Account {
            user_id: 1,
            role: crate::policy::Role::Owner,
            has_pin: false,
            restrictions: Default::default(),
            suspended: false,
        };
        let ctx = Context {
            now: crate::policy::restrictions::LocalTime::from_unix(0, 0),
            home_mode: false,
            network: NetClass::Lan,
            guest_enabled: false,
        };
        let actor = admit(
            Presented::Device {
                status: DeviceStatus::Active,
                account,
            },
            &ctx,
        )
        .unwrap();
        require_owner(&actor).unwrap()
    }

    fn lan() -> LanNetworks {
        LanNetworks::new(nets(&["192.168.1.0/24", "fd00:1::/64", "fe80::/10"]))
    }

    fn facts(peer: &str, secure: bool, wants_page: bool) -> RequestFacts {
        RequestFacts {
            peer: peer.parse().unwrap(),
            secure,
            wants_page,
            plain_http_ok: false,
        }
    }

    /// Every rule × client class × connection kind, with the expected verdict.
    #[test]
    fn rules_grid() {
        let deny = NetSettings {
            ip_deny: nets(&["192.168.1.66", "203.0.113.0/24"]),
            ..Default::default()
        };
        let remote_on = NetSettings {
            remote_access: true,
            ..Default::default()
        };
        let required = NetSettings {
            secure_connections: SecureConnections::Required,
            remote_access: true,
            ..Default::default()
        };
        let off = NetSettings::default();
        use Verdict::*;
        let refuse = |code: &'static str| Refuse {
            code,
            message: String::new(),
        };
        let cases: Vec<(&str, &NetSettings, &str, bool, bool, Verdict)> = vec![
            ("defaults, local", &off, "127.0.0.1", false, false, Allow),
            ("defaults, LAN", &off, "192.168.1.5", false, false, Allow),
            (
                "defaults, LAN v6 ULA",
                &off,
                "fd00:1::5",
                false,
                false,
                Allow,
            ),
            (
                "defaults, link-local",
                &off,
                "fe80::99",
                false,
                false,
                Allow,
            ),
            (
                "defaults, remote",
                &off,
                "198.51.100.1",
                false,
                false,
                refuse("remote_access_off"),
            ),
            (
                "defaults, remote https",
                &off,
                "198.51.100.1",
                true,
                true,
                refuse("remote_access_off"),
            ),
            (
                "defaults, remote v6",
                &off,
                "2001:db8::1",
                false,
                false,
                refuse("remote_access_off"),
            ),
            (
                "remote on, remote",
                &remote_on,
                "198.51.100.1",
                false,
                false,
                Allow,
            ),
            (
                "deny, listed LAN host",
                &deny,
                "192.168.1.66",
                false,
                false,
                refuse("ip_denied"),
            ),
            (
                "deny, other LAN host",
                &deny,
                "192.168.1.67",
                false,
                false,
                Allow,
            ),
            (
                "deny before remote rule",
                &deny,
                "203.0.113.9",
                false,
                false,
                refuse("ip_denied"),
            ),
            (
                "required, plain page",
                &required,
                "192.168.1.5",
                false,
                true,
                RedirectToHttps,
            ),
            (
                "required, plain api",
                &required,
                "192.168.1.5",
                false,
                false,
                refuse("secure_connection_required"),
            ),
            (
                "required, https",
                &required,
                "192.168.1.5",
                true,
                false,
                Allow,
            ),
            (
                "required, local plain",
                &required,
                "127.0.0.1",
                false,
                false,
                refuse("secure_connection_required"),
            ),
        ];
        let lan = lan();
        for (name, settings, ip, secure, page, want) in cases {
            let rules = NetRules::new(settings.clone(), lan.clone(), Some(443));
            let f = facts(ip, secure, page);
            let client = rules.client(f.peer, secure, &HeaderMap::new());
            let got = rules.check(&client, &f);
            match (&got, &want) {
                (Refuse { code: a, message }, Refuse { code: b, .. }) => {
                    assert_eq!(a, b, "{name}");
                    assert!(message.len() > 20, "{name}: a reason a person can read");
                }
                _ => assert_eq!(got, want, "{name}"),
            }
        }
    }

    #[test]
    fn health_checks_pass_the_https_requirement_but_not_the_others() {
        let required = NetSettings {
            secure_connections: SecureConnections::Required,
            ip_deny: nets(&["192.168.1.66"]),
            ..Default::default()
        };
        let rules = NetRules::new(required, lan(), Some(443));
        for (ip, want_allow) in [
            ("192.168.1.5", true),
            ("192.168.1.66", false),
            ("198.51.100.1", false),
        ] {
            let f = RequestFacts {
                plain_http_ok: true,
                ..facts(ip, false, false)
            };
            let c = rules.client(f.peer, false, &HeaderMap::new());
            assert_eq!(rules.check(&c, &f) == Verdict::Allow, want_allow, "{ip}");
        }
    }

    #[test]
    fn spoofed_forwarding_from_untrusted_peer_changes_nothing() {
        let rules = NetRules::new(NetSettings::default(), lan(), None);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "192.168.1.5".parse().unwrap());
        h.insert("forwarded", "for=127.0.0.1".parse().unwrap());
        let c = rules.client("198.51.100.1".parse().unwrap(), false, &h);
        assert_eq!(c.class, NetClass::Remote);
        assert_eq!(c.addr, "198.51.100.1".parse::<IpAddr>().unwrap());
        // The same headers through a trusted proxy are believed.
        let trusting = NetRules::new(
            NetSettings {
                trusted_proxies: nets(&["192.168.1.2"]),
                ..Default::default()
            },
            lan(),
            None,
        );
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        let c = trusting.client("192.168.1.2".parse().unwrap(), false, &h);
        assert_eq!(c.class, NetClass::Remote);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "unknown".parse().unwrap());
        let c = trusting.client("192.168.1.2".parse().unwrap(), false, &h);
        assert_eq!((c.class, c.addr), (NetClass::Remote, UNSPECIFIED));
    }

    #[test]
    fn no_signin_profile_table() {
        let settings = NetSettings {
            allowed_without_auth: AllowedWithoutAuth {
                networks: nets(&["192.168.1.0/25", "198.51.100.0/24"]),
                profile: ProfileRef::Guest,
            },
            remote_access: true,
            ..Default::default()
        };
        let rules = NetRules::new(settings, lan(), None);
        let cases = [
            ("192.168.1.5", false, Some(ProfileRef::Guest)),
            ("192.168.1.5", true, None),    // home mode ignores it
            ("192.168.1.200", false, None), // LAN, but not the allowed part
            ("127.0.0.1", false, None),
            ("198.51.100.7", false, None), // listed, but remote: never without sign-in
        ];
        for (ip, home, want) in cases {
            let c = rules.client(ip.parse().unwrap(), false, &HeaderMap::new());
            assert_eq!(rules.no_signin_profile(&c, home), want, "{ip} home={home}");
        }
    }

    #[test]
    fn patch_validation_names_the_bad_entry() {
        let base = NetSettings::default();
        let bad: Vec<(NetSettingsPatch, &str, &str)> = vec![
            (
                NetSettingsPatch {
                    lan_networks: Some(vec!["10.0.0.0/8".into(), "10.0.0.0/33".into()]),
                    ..Default::default()
                },
                "lan_networks",
                "10.0.0.0/33",
            ),
            (
                NetSettingsPatch {
                    ip_deny: Some(vec!["banana".into()]),
                    ..Default::default()
                },
                "ip_deny",
                "banana",
            ),
            (
                NetSettingsPatch {
                    trusted_proxies: Some(vec!["0.0.0.0/0".into()]),
                    ..Default::default()
                },
                "trusted_proxies",
                "0.0.0.0/0",
            ),
            (
                NetSettingsPatch {
                    allowed_without_auth: Some(AllowedWithoutAuthPatch {
                        networks: Some(vec!["::/0".into()]),
                        profile: None,
                    }),
                    ..Default::default()
                },
                "allowed_without_auth.networks",
                "::/0",
            ),
        ];
        for (patch, field, item) in bad {
            let e = base.apply(&patch).unwrap_err();
            match &e {
                RulesError::Invalid { field: f, message } => {
                    assert_eq!(*f, field);
                    assert!(message.contains(item), "{message}");
                }
                other => panic!("{other}"),
            }
        }
        let good = base
            .apply(&NetSettingsPatch {
                lan_networks: Some(vec!["10.8.0.7/24".into(), "fd12::/48".into()]),
                remote_access: Some(true),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(good.lan_networks, nets(&["10.8.0.0/24", "fd12::/48"]));
        assert!(good.remote_access);
        assert_eq!(good.secure_connections, SecureConnections::Preferred);
    }

    #[test]
    fn changes_are_stored_take_effect_at_once_and_refuse_lockout() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hearth.redb")).unwrap();
        let rules = NetRules::load(&store, lan(), Some(8443)).unwrap();
        assert_eq!(*rules.snapshot(), NetSettings::default());
        let none = HeaderMap::new();
        let me: IpAddr = "192.168.1.5".parse().unwrap();
        let remote: IpAddr = "10.9.9.9".parse().unwrap();

        // A remote client is refused now...
        let c = rules.client(remote, false, &none);
        assert_eq!(c.class, NetClass::Remote);
        // ...and counts as LAN as soon as the owner adds its network.
        let patch = NetSettingsPatch {
            lan_networks: Some(vec!["10.9.0.0/16".into()]),
            ..Default::default()
        };
        rules
            .change(&store, &patch, (me, false, &none), &owner(), 7)
            .unwrap();
        assert_eq!(rules.client(remote, false, &none).class, NetClass::Lan);

        // Blocking my own address is refused without confirm, and nothing changes.
        let patch = NetSettingsPatch {
            ip_deny: Some(vec!["192.168.1.0/24".into()]),
            ..Default::default()
        };
        let e = rules
            .change(&store, &patch, (me, false, &none), &owner(), 8)
            .unwrap_err();
        assert!(matches!(e, RulesError::WouldLockOut { .. }), "{e}");
        assert!(e.to_string().contains("192.168.1.5"), "{e}");
        assert!(rules.snapshot().ip_deny.is_empty());
        // Removing the network the owner's remote session counts as LAN through.
        let patch = NetSettingsPatch {
            lan_networks: Some(vec![]),
            ..Default::default()
        };
        let e = rules
            .change(&store, &patch, (remote, false, &none), &owner(), 8)
            .unwrap_err();
        assert!(e.to_string().contains("remote access is off"), "{e}");
        // Requiring HTTPS while on plain HTTP.
        let patch = NetSettingsPatch {
            secure_connections: Some(SecureConnections::Required),
            ..Default::default()
        };
        let e = rules
            .change(&store, &patch, (me, false, &none), &owner(), 8)
            .unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
        // Turning HTTPS off while on it.
        let patch = NetSettingsPatch {
            secure_connections: Some(SecureConnections::Disabled),
            ..Default::default()
        };
        let e = rules
            .change(&store, &patch, (me, true, &none), &owner(), 8)
            .unwrap_err();
        assert!(matches!(e, RulesError::WouldLockOut { .. }), "{e}");

        // With confirm it goes through.
        let patch = NetSettingsPatch {
            ip_deny: Some(vec!["192.168.1.0/24".into()]),
            confirm: true,
            ..Default::default()
        };
        rules
            .change(&store, &patch, (me, false, &none), &owner(), 9)
            .unwrap();
        let c = rules.client(me, false, &none);
        let f = facts("192.168.1.5", false, false);
        assert!(matches!(
            rules.check(&c, &f),
            Verdict::Refuse {
                code: "ip_denied",
                ..
            }
        ));

        // Stored: a fresh load sees the same rules; the audit log has both changes.
        drop(rules);
        let again = NetRules::load(&store, lan(), Some(8443)).unwrap();
        assert_eq!(again.snapshot().ip_deny, nets(&["192.168.1.0/24"]));
        assert_eq!(again.snapshot().lan_networks, nets(&["10.9.0.0/16"]));
        assert_eq!(again.client(remote, false, &none).class, NetClass::Lan);
        let log = store.read(|rx| rx.audit_entries(10)).unwrap();
        assert_eq!(log.len(), 2);
        assert!(log.iter().all(|e| e.event == "network_settings_changed"));
    }

    #[test]
    fn required_is_not_enforced_while_there_is_no_https() {
        let required = NetSettings {
            secure_connections: SecureConnections::Required,
            ..Default::default()
        };
        let none = HeaderMap::new();
        let f = facts("192.168.1.5", false, false);
        let without = NetRules::new(required.clone(), lan(), None);
        let c = without.client(f.peer, false, &none);
        assert_eq!(without.check(&c, &f), Verdict::Allow);
        let with = NetRules::new(required, lan(), Some(443));
        let c = with.client(f.peer, false, &none);
        assert!(matches!(with.check(&c, &f), Verdict::Refuse { .. }));
        // Behind a trusted TLS-terminating proxy the request counts as secure.
        let proxied = NetRules::new(
            NetSettings {
                secure_connections: SecureConnections::Required,
                trusted_proxies: nets(&["192.168.1.2"]),
                ..Default::default()
            },
            lan(),
            Some(443),
        );
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert("x-forwarded-for", "192.168.1.5".parse().unwrap());
        let f = facts("192.168.1.2", false, false);
        let c = proxied.client(f.peer, false, &h);
        assert!(c.secure);
        assert_eq!(c.addr, "192.168.1.5".parse::<IpAddr>().unwrap());
        let f = RequestFacts {
            secure: c.secure,
            ..f
        };
        assert_eq!(proxied.check(&c, &f), Verdict::Allow);
        // The same header from the client itself is ignored.
        let f = facts("192.168.1.5", false, false);
        let c = proxied.client(f.peer, false, &h);
        assert!(!c.secure);
        assert!(matches!(proxied.check(&c, &f), Verdict::Refuse { .. }));
    }

    #[test]
    fn required_without_https_listener_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("hearth.redb")).unwrap();
        let rules = NetRules::load(&store, lan(), None).unwrap();
        let patch = NetSettingsPatch {
            secure_connections: Some(SecureConnections::Required),
            confirm: true,
            ..Default::default()
        };
        let e = rules
            .change(
                &store,
                &patch,
                ("127.0.0.1".parse().unwrap(), false, &HeaderMap::new()),
                &owner(),
                1,
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                RulesError::Invalid {
                    field: "secure_connections",
                    ..
                }
            ),
            "{e}"
        );
    }
}
