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
                let names = DeviceNames::detect();
                if lan.set(LanNetworks::networks_of(&names.interfaces)) {
                    tracing::info!(networks = ?lan.detected(), "the device's networks changed");
                }
                if let Some(tls) = tls
                    && let Err(e) = tls.refresh(&names, crate::now_secs() as i64)
                {
                    tracing::error!(error = %e, "cannot renew the device certificate; the current one stays in use");
                }
            })
            .await;
            if let Err(e) = done {
                tracing::error!(error = %e, "network watcher step failed");
            }
        }
    })
}
