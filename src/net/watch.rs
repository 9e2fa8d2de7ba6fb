//! Keeps the LAN list and the device certificate in step with the device's addresses:
//! re-reads the interfaces every [`INTERVAL`] (cheap: one `getifaddrs`), and when they
//! change, or the leaf nears expiry, re-issues the certificate off the async runtime.

use std::sync::Arc;
use std::time::Duration;

use super::client::LanNetworks;
use super::tls::{DeviceNames, TlsManager};

/// How often the interfaces are re-read.
pub const INTERVAL: Duration = Duration::from_secs(30);

/// Runs until aborted.
pub fn spawn(lan: LanNetworks, tls: Option<Arc<TlsManager>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; start-up already detected
        loop {
            tick.tick().await;
            let tls = tls.clone();
            let lan = lan.clone();
            let done = tokio::task::spawn_blocking(move || {
                step(
                    &lan,
                    tls.as_deref(),
                    &DeviceNames::detect(),
                    crate::model::clock::now_secs() as i64,
                );
            })
            .await;
            if let Err(e) = done {
                tracing::error!(error = %e, "network watcher step failed");
            }
        }
    })
}

/// One look at the device: the LAN list follows `names`' interfaces, and the certificate is
/// renewed if they or its expiry call for it. Returns whether the LAN list changed. Blocks.
pub fn step(lan: &LanNetworks, tls: Option<&TlsManager>, names: &DeviceNames, now: i64) -> bool {
    let changed = lan.set(LanNetworks::networks_of(&names.interfaces));
    if changed {
        tracing::info!(networks = ?lan.detected(), "the device's networks changed");
    }
    if let Some(tls) = tls
        && let Err(e) = tls.refresh(names, now)
    {
        tracing::error!(error = %e, "cannot renew the device certificate; the current one stays in use");
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NetClass;
    use crate::net::client::InterfaceAddr;

    fn names(addrs: &[(&str, u8)]) -> DeviceNames {
        DeviceNames::new(
            "den",
            addrs
                .iter()
                .map(|(a, p)| InterfaceAddr {
                    addr: a.parse().unwrap(),
                    prefix: *p,
                })
                .collect(),
        )
    }

    #[test]
    fn a_new_address_moves_the_lan_and_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let before = names(&[("192.168.1.7", 24)]);
        let lan = LanNetworks::new(LanNetworks::networks_of(&before.interfaces));
        let tls = TlsManager::open(&dir.path().join("tls"), &before, 1_800_000_000).unwrap();
        let client = "192.168.5.20".parse().unwrap();
        assert_eq!(lan.classify(client), NetClass::Remote);
        assert!(!step(&lan, Some(&tls), &before, 1_800_000_100));

        // The device moved to another network (new DHCP lease, second interface, ULA).
        let after = names(&[("192.168.5.2", 24), ("fd00:5::2", 64)]);
        assert!(step(&lan, Some(&tls), &after, 1_800_000_200));
        assert_eq!(lan.classify(client), NetClass::Lan);
        assert_eq!(
            lan.classify("192.168.1.9".parse().unwrap()),
            NetClass::Remote
        );
        assert_eq!(lan.classify("fd00:5::77".parse().unwrap()), NetClass::Lan);
        let ips = tls.active().ip_addresses;
        assert!(ips.contains(&"192.168.5.2".to_owned()), "{ips:?}");
        assert!(ips.contains(&"fd00:5::2".to_owned()), "{ips:?}");
        assert!(!ips.contains(&"192.168.1.7".to_owned()), "{ips:?}");
    }
}
