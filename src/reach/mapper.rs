//! Security-sensitive: the task that holds the port mapping. It looks at the owner's
//! remote-access switch every time it changes (and every `reach.check_secs`): on, it finds
//! the router, asks for a mapping with a lease of at most two hours, renews it at half-life
//! and adds it again when the router has lost it (a restart); off, it removes the mapping
//! before doing anything else. At shutdown it removes the mapping it holds.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::igd::{self, Gateway, IgdError};
use super::{PortMode, Reach, Warning, address_warning};
use crate::net::NetRules;

/// What the mapping name on the router says.
const DESCRIPTION: &str = "Hearth remote access";
/// External ports tried when the first choice is taken.
const TRIES: u16 = 4;

/// What the port mapping is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Remote access is off (or the owner forwards by hand): nothing is asked of the router.
    #[default]
    Off,
    /// Looking for the router or asking it.
    Searching,
    /// The router forwards the public port here.
    Mapped,
    /// The owner forwarded a port by hand; the router is only asked for its address.
    Manual,
    /// No mapping: see `error`.
    Failed,
}

/// The router found, as shown to the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GatewayInfo {
    #[schema(value_type = String)]
    pub address: IpAddr,
    pub name: String,
    /// `upnp-igd` (the protocol the mapping was made with).
    pub protocol: &'static str,
    /// This device's address as the router sees it.
    #[schema(value_type = String)]
    pub local_address: IpAddr,
}

/// The router's answers, as last seen.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct MapState {
    pub phase: Phase,
    pub gateway: Option<GatewayInfo>,
    /// The router's address on the internet side, as it reported it.
    #[schema(value_type = Option<String>)]
    pub external_address: Option<IpAddr>,
    /// The port mapped on the router.
    pub external_port: Option<u16>,
    /// Lease asked for, in seconds (0: the router only grants mappings until removed).
    pub lease_secs: Option<u32>,
    /// Unix seconds: first mapped, last (re)newed, when the lease runs out if not renewed.
    pub mapped_at: Option<u64>,
    pub renewed_at: Option<u64>,
    pub expires_at: Option<u64>,
    /// How often the router had lost the mapping (restarted) and it was added again.
    pub restored: u32,
    /// Why there is no mapping, in words.
    pub error: Option<String>,
    pub warnings: Vec<Warning>,
}

/// The mapping this device holds on the router.
#[derive(Debug, Clone)]
struct Mapping {
    external_port: u16,
    internal_port: u16,
    lease: u32,
    renewed: u64,
}

#[derive(Debug, Default)]
struct Held {
    gateway: Option<Gateway>,
    mapping: Option<Mapping>,
}

/// What the owner's settings ask of the router now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Remote access off: nothing, and no mapping may exist.
    Nothing,
    /// Remote access on, automatic: a mapping to this port.
    Map(u16),
    /// Remote access on, forwarded by hand: only the router's address.
    LookOnly,
}

fn want(reach: &Reach, remote_access: bool) -> Want {
    if !remote_access || !reach.inner.config.upnp {
        return Want::Nothing;
    }
    match (reach.settings().port_mode, reach.ports().exposed()) {
        (_, None) => Want::Nothing,
        (PortMode::Manual, _) => Want::LookOnly,
        (PortMode::Automatic, Some((port, _))) => Want::Map(port),
    }
}

pub(super) async fn run(
    reach: Reach,
    rules: NetRules,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut rules_rx = rules.subscribe();
    let mut settings_rx = reach.inner.changes.subscribe();
    let mut held = Held::default();
    loop {
        if *stop.borrow() {
            break;
        }
        let next = match want(&reach, rules.snapshot().remote_access) {
            Want::Nothing => {
                if held.mapping.is_some() {
                    held = blocking(&reach, held, release).await;
                }
                let stuck = held.mapping.is_some();
                reach.set_state(|s| {
                    let restored = s.restored;
                    *s = super::MapState {
                        restored,
                        error: s.error.take().filter(|_| stuck),
                        ..Default::default()
                    };
                });
                // A mapping the router would not remove yet is tried again.
                stuck.then(|| Instant::now() + Duration::from_secs(reach.inner.config.check_secs))
            }
            Want::LookOnly => {
                if held.mapping.is_some() {
                    held = blocking(&reach, held, release).await;
                }
                let (h, wait) = blocking_with(&reach, held, look_only).await;
                held = h;
                Some(Instant::now() + wait)
            }
            Want::Map(port) => {
                let (h, wait) = blocking_with(&reach, held, move |r, h| ensure(r, h, port)).await;
                held = h;
                Some(Instant::now() + wait)
            }
        };
        tokio::select! {
            r = stop.changed() => if r.is_err() { break },
            r = rules_rx.changed() => if r.is_err() { break },
            r = settings_rx.changed() => if r.is_err() { break },
            _ = sleep_until(next) => {}
        }
    }
    if held.mapping.is_some() {
        let held = blocking(&reach, held, release).await;
        if held.mapping.is_some() {
            tracing::error!(
                "could not remove the port mapping at shutdown; it ends with its lease"
            );
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs `f` off the runtime with the held mapping and gives it back (a panicked step
/// forgets nothing it did not do: the mapping, if any, is still listed as held).
async fn blocking(reach: &Reach, held: Held, f: fn(&Reach, &mut Held)) -> Held {
    blocking_with(reach, held, move |r, h| {
        f(r, h);
        Duration::ZERO
    })
    .await
    .0
}

async fn blocking_with(
    reach: &Reach,
    mut held: Held,
    f: impl FnOnce(&Reach, &mut Held) -> Duration + Send + 'static,
) -> (Held, Duration) {
    let reach = reach.clone();
    let check = Duration::from_secs(reach.inner.config.check_secs);
    // What is held is copied out first, so a panic in `f` cannot lose a live mapping.
    let keep = Held {
        gateway: held.gateway.clone(),
        mapping: held.mapping.clone(),
    };
    match tokio::task::spawn_blocking(move || {
        let wait = f(&reach, &mut held);
        (held, wait)
    })
    .await
    {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(error = %e, "port mapping step failed");
            (keep, check)
        }
    }
}

fn now() -> u64 {
    crate::model::clock::now_secs()
}

/// Finds the router if none is known; records the failure for the owner if it cannot.
fn gateway(reach: &Reach, held: &mut Held) -> Option<Gateway> {
    if let Some(g) = &held.gateway {
        return Some(g.clone());
    }
    let wait = Duration::from_secs(reach.inner.config.search_secs);
    match igd::discover(wait) {
        Ok(g) => {
            tracing::info!(router = %g.addr, name = %g.name, "found the home router");
            held.gateway = Some(g.clone());
            Some(g)
        }
        Err(e) => {
            failed(reach, &e, None);
            None
        }
    }
}

fn gateway_info(g: &Gateway) -> GatewayInfo {
    GatewayInfo {
        address: g.addr,
        name: g.name.clone(),
        protocol: "upnp-igd",
        local_address: g.local_addr,
    }
}

/// Records a failure with the warning that explains it.
fn failed(reach: &Reach, e: &IgdError, gw: Option<&Gateway>) {
    let (code, hint) = match e {
        IgdError::NoGateway => (
            "no_gateway",
            "No router answered on the home network: turn on UPnP (sometimes called \"automatic port forwarding\") on the router, or forward a port by hand and enter it here.",
        ),
        IgdError::Refused { .. } => (
            "gateway_refused",
            "The router refused to open a port for this device: allow UPnP port mapping for it in the router's settings, or forward a port by hand and enter it here.",
        ),
        IgdError::BadGateway(..) | IgdError::Unreachable(..) | IgdError::Io(_) => (
            "gateway_unreachable",
            "The router stopped answering; the device tries again shortly.",
        ),
    };
    tracing::warn!(error = %e, "port mapping failed");
    reach.set_state(|s| {
        s.phase = Phase::Failed;
        s.gateway = gw.map(gateway_info);
        s.error = Some(format!("{e}."));
        s.warnings = vec![Warning {
            code,
            message: hint.into(),
        }];
        if gw.is_none() {
            s.external_address = None;
        }
        s.external_port = None;
        s.lease_secs = None;
        s.expires_at = None;
    });
}

/// Manual forward: the router is asked for its address only.
fn look_only(reach: &Reach, held: &mut Held) -> Duration {
    let check = Duration::from_secs(reach.inner.config.check_secs);
    reach.set_state(|s| s.phase = Phase::Manual);
    let Some(gw) = gateway(reach, held) else {
        // Without UPnP the manual forward may still work; only the address is unknown.
        reach.set_state(|s| {
            s.phase = Phase::Manual;
            s.error = None;
            s.warnings.clear();
        });
        return check;
    };
    let external = igd::external_address(&gw);
    reach.set_state(|s| {
        *s = super::MapState {
            phase: Phase::Manual,
            gateway: Some(gateway_info(&gw)),
            restored: s.restored,
            ..Default::default()
        };
        match external {
            Ok(a) => {
                s.external_address = a;
                s.warnings = address_warning(a).into_iter().collect();
            }
            Err(_) => held.gateway = None,
        }
    });
    check
}

/// Remote access on, automatic: makes sure the router maps a port here, renewing the lease
/// at half-life and re-adding a mapping the router lost. Returns when to look again.
fn ensure(reach: &Reach, held: &mut Held, internal_port: u16) -> Duration {
    let cfg = &reach.inner.config;
    let check = Duration::from_secs(cfg.check_secs);
    if held.mapping.is_none() {
        reach.set_state(|s| {
            s.phase = Phase::Searching;
        });
    }
    let Some(gw) = gateway(reach, held) else {
        return check;
    };
    let external = match igd::external_address(&gw) {
        Ok(a) => a,
        Err(e) => {
            held.gateway = None;
            failed(reach, &e, Some(&gw));
            return check;
        }
    };
    let now = now();
    let mut restored = false;
    let mut preferred = None;
    if let Some(m) = held.mapping.clone() {
        preferred = Some(m.external_port);
        match igd::get_mapping(&gw, m.external_port) {
            Ok(Some(e))
                if e.internal_client == gw.local_addr.to_string()
                    && e.internal_port == internal_port
                    && m.internal_port == internal_port =>
            {
                let renew_at = m.renewed + u64::from(m.lease / 2);
                if m.lease == 0 || now < renew_at {
                    return until_next(reach, &m, check, now);
                }
                // Half-life: renew (same ports).
            }
            Ok(_) => {
                tracing::warn!(
                    port = m.external_port,
                    "the router no longer has this device's port mapping (restarted?); adding it again"
                );
                restored = true;
            }
            Err(e) => {
                held.gateway = None;
                failed(reach, &e, Some(&gw));
                return check;
            }
        }
    }
    match add(&gw, internal_port, preferred, cfg.lease_secs) {
        Ok((external_port, lease)) => {
            let first = held.mapping.is_none();
            let m = Mapping {
                external_port,
                internal_port,
                lease,
                renewed: now,
            };
            held.mapping = Some(m.clone());
            if first {
                tracing::info!(router = %gw.addr, external_port, internal_port, lease, "port mapped on the home router");
            }
            reach.set_state(|s| {
                s.phase = Phase::Mapped;
                s.gateway = Some(gateway_info(&gw));
                s.external_address = external;
                s.external_port = Some(external_port);
                s.lease_secs = Some(lease);
                if first || restored || s.mapped_at.is_none() {
                    s.mapped_at = Some(now);
                }
                s.renewed_at = Some(now);
                s.expires_at = (lease > 0).then(|| now + u64::from(lease));
                if restored {
                    s.restored += 1;
                }
                s.error = None;
                s.warnings = address_warning(external).into_iter().collect();
                if lease == 0 {
                    s.warnings.push(Warning {
                        code: "permanent_lease",
                        message: "The router only grants mappings until they are removed: the device removes it when remote access goes off, but if the device is unplugged first the port stays open until you remove it on the router.".into(),
                    });
                }
            });
            until_next(reach, &m, check, now)
        }
        Err(e) => {
            // The old mapping, if any, is the router's to forget; nothing is held now.
            held.mapping = None;
            failed(reach, &e, Some(&gw));
            reach.set_state(|s| s.external_address = external);
            check
        }
    }
}

fn until_next(_reach: &Reach, m: &Mapping, check: Duration, now: u64) -> Duration {
    if m.lease == 0 {
        return check;
    }
    let renew_at = m.renewed + u64::from(m.lease / 2);
    check.min(Duration::from_secs(renew_at.saturating_sub(now)))
}

/// Asks for a mapping: the preferred external port, then the internal port's number, then
/// a few others if those are taken. A router that grants only permanent mappings (error
/// 725) gets a lease of 0. Returns the external port and the lease granted.
fn add(
    gw: &Gateway,
    internal_port: u16,
    preferred: Option<u16>,
    lease: u32,
) -> Result<(u16, u32), IgdError> {
    let mut candidates: Vec<u16> = preferred.into_iter().collect();
    candidates.push(internal_port);
    for i in 0..TRIES {
        let spread = (u32::from(internal_port) * 7 + u32::from(i) * 7919) % 20_000;
        candidates.push(40_000 + spread as u16);
    }
    candidates.dedup();
    let mut last = None;
    for port in candidates {
        let mut lease = lease;
        let mut result = igd::add_mapping(gw, port, internal_port, DESCRIPTION, lease);
        if result.as_ref().err().and_then(IgdError::upnp_code) == Some(725) {
            lease = 0;
            result = igd::add_mapping(gw, port, internal_port, DESCRIPTION, 0);
        }
        match result {
            Ok(()) => return Ok((port, lease)),
            // 718 ConflictInMappingEntry: the port is someone else's; try another.
            Err(e) if e.upnp_code() == Some(718) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(IgdError::NoGateway))
}

/// Removes the mapping held, if the router can be found; keeps it listed as held if not.
fn release(reach: &Reach, held: &mut Held) {
    let Some(m) = held.mapping.clone() else {
        return;
    };
    let Some(gw) = gateway(reach, held) else {
        return;
    };
    match igd::delete_mapping(&gw, m.external_port) {
        Ok(()) => {
            tracing::info!(router = %gw.addr, port = m.external_port, "port mapping removed");
            held.mapping = None;
        }
        Err(e) => {
            held.gateway = None;
            tracing::error!(error = %e, "could not remove the port mapping");
            reach.set_state(|s| {
                s.error = Some(format!(
                    "Could not remove the port mapping: {e}. It ends with its lease."
                ));
            });
        }
    }
}
