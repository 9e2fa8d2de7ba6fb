//! Security-sensitive: SSDP (UPnP discovery). Announces the media server (`NOTIFY
//! ssdp:alive`, `ssdp:byebye`) and answers `M-SEARCH` on the LAN interfaces only, from
//! neighbours only, while DLNA is on and has libraries to show. Searches are rate-limited per
//! sender and in total, so a flood costs bounded work and provokes bounded answers.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use super::description::{DESCRIPTION_PATH, DEVICE_TYPE};
use super::soap::{CONNECTION_MANAGER, CONTENT_DIRECTORY};
use crate::identity::Identity;
use crate::net::NetRules;
use crate::net::multicast::{LanInterface, MulticastSocket, RateLimit, lan_interfaces};
use crate::store::Store;

pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
pub const PORT: u16 = 1900;
/// How long players may remember us without hearing from us again.
const MAX_AGE: u64 = 1800;
/// Announcements repeat well inside MAX_AGE.
const REANNOUNCE: Duration = Duration::from_secs(600);
/// How often interfaces and the owner's settings are looked at again.
const LOOK_AGAIN: Duration = Duration::from_secs(5);
/// Searches answered per sender and in total, per second.
const PER_SENDER: u32 = 10;
const TOTAL: u32 = 100;

/// What SSDP needs from the rest of the server.
#[derive(Clone)]
pub struct Ssdp {
    pub store: Store,
    pub rules: NetRules,
    pub identity: Arc<Identity>,
    pub dlna: super::Dlna,
    pub http_port: u16,
    /// `discovery.interfaces` from the config.
    pub only: Vec<String>,
}

/// The notification types (NT/ST) of this device, each with its USN.
pub fn targets(uuid: &str) -> Vec<(String, String)> {
    let u = format!("uuid:{uuid}");
    vec![
        ("upnp:rootdevice".into(), format!("{u}::upnp:rootdevice")),
        (u.clone(), u.clone()),
        (DEVICE_TYPE.into(), format!("{u}::{DEVICE_TYPE}")),
        (
            CONTENT_DIRECTORY.into(),
            format!("{u}::{CONTENT_DIRECTORY}"),
        ),
        (
            CONNECTION_MANAGER.into(),
            format!("{u}::{CONNECTION_MANAGER}"),
        ),
    ]
}

fn location(iface: &LanInterface, port: u16) -> String {
    format!("http://{}:{port}{DESCRIPTION_PATH}", iface.addr)
}

/// `NOTIFY` messages: alive (with location) or byebye.
pub fn notify(uuid: &str, loc: Option<&str>) -> Vec<String> {
    targets(uuid)
        .into_iter()
        .map(|(nt, usn)| match loc {
            Some(loc) => format!(
                "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age={MAX_AGE}\r\nLOCATION: {loc}\r\nNT: {nt}\r\nNTS: ssdp:alive\r\nSERVER: {}\r\nUSN: {usn}\r\n\r\n",
                super::server_header()
            ),
            None => format!(
                "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: {nt}\r\nNTS: ssdp:byebye\r\nUSN: {usn}\r\n\r\n"
            ),
        })
        .collect()
}

/// A search request's target, if `data` is a well-formed `M-SEARCH` for discovery.
pub fn parse_search(data: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    if !first.eq_ignore_ascii_case("M-SEARCH * HTTP/1.1") {
        return None;
    }
    let (mut man, mut st) = (false, None);
    for line in lines.take(32) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("MAN") {
            man = v == "\"ssdp:discover\"";
        } else if k.eq_ignore_ascii_case("ST") && !v.is_empty() && v.len() <= 256 {
            st = Some(v.to_owned());
        }
    }
    if man { st } else { None }
}

/// The answers to a search for `st` (none if it is not for us).
pub fn answers(uuid: &str, st: &str, loc: &str) -> Vec<String> {
    targets(uuid)
        .into_iter()
        .filter(|(nt, _)| st == "ssdp:all" || st == nt)
        .map(|(nt, usn)| {
            format!(
                "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age={MAX_AGE}\r\nEXT:\r\nLOCATION: {loc}\r\nSERVER: {}\r\nST: {nt}\r\nUSN: {usn}\r\nContent-Length: 0\r\n\r\n",
                super::server_header()
            )
        })
        .collect()
}

impl Ssdp {
    /// Whether the server should be visible now (DLNA on, libraries chosen). Blocks.
    fn announced(&self) -> bool {
        match super::settings::presence(&self.store, &self.rules, &self.identity) {
            Ok(p) => p.announced(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the DLNA settings; SSDP stays quiet");
                false
            }
        }
    }

    async fn announced_now(&self) -> bool {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.announced())
            .await
            .unwrap_or(false)
    }

    async fn send_all(&self, sock: &MulticastSocket, ifaces: &[LanInterface], alive: bool) {
        for iface in ifaces {
            let loc = location(iface, self.http_port);
            for msg in notify(&self.dlna.uuid, alive.then_some(loc.as_str())) {
                if let Err(e) = sock
                    .send_on(msg.as_bytes(), SocketAddrV4::new(GROUP, PORT), iface)
                    .await
                {
                    tracing::debug!(interface = %iface.name, error = %e, "SSDP notify not sent");
                }
            }
        }
    }

    /// Runs until `stop` turns true; says byebye on the way out if it had announced.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let sock = match MulticastSocket::bind(GROUP, PORT, 2) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "SSDP cannot listen on UDP port 1900; DLNA players will not find this server by themselves");
                return;
            }
        };
        let mut limit = RateLimit::new(PER_SENDER, TOTAL);
        let mut announced = false;
        let mut tick = tokio::time::interval(LOOK_AGAIN);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_alive = tokio::time::Instant::now();
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {
                    let added = sock.sync(&lan_interfaces(&self.only));
                    let now = self.announced_now().await;
                    if now != announced {
                        tracing::info!(announced = now, "DLNA announcement changed");
                        self.send_all(&sock, &sock.interfaces(), now).await;
                        announced = now;
                        last_alive = tokio::time::Instant::now();
                    } else if announced && (!added.is_empty() || last_alive.elapsed() >= REANNOUNCE) {
                        let to = if last_alive.elapsed() >= REANNOUNCE { sock.interfaces() } else { added };
                        self.send_all(&sock, &to, true).await;
                        if to.len() == sock.interfaces().len() {
                            last_alive = tokio::time::Instant::now();
                        }
                    }
                }
                _ = self.dlna.changed.notified() => {
                    // Look again at once rather than at the next tick.
                    tick.reset_immediately();
                }
                got = sock.recv(&mut buf) => {
                    let r = match got {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(error = %e, "SSDP receive failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    if !announced || r.len > buf.len() {
                        continue;
                    }
                    let Some(iface) = sock.lan_origin(&r) else { continue };
                    let Some(st) = parse_search(&buf[..r.len]) else { continue };
                    if !limit.allow(*r.from.ip()) {
                        continue;
                    }
                    let loc = location(&iface, self.http_port);
                    for a in answers(&self.dlna.uuid, &st, &loc) {
                        if let Err(e) = sock.send_on(a.as_bytes(), r.from, &iface).await {
                            tracing::debug!(error = %e, "SSDP answer not sent");
                        }
                    }
                }
            }
        }
        if announced {
            self.send_all(&sock, &sock.interfaces(), false).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_and_answers() {
        let ok = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: ssdp:all\r\n\r\n";
        assert_eq!(parse_search(ok).as_deref(), Some("ssdp:all"));
        for bad in [
            &b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n"[..],
            b"NOTIFY * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\n\r\n",
            b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\n\r\n",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_search(bad), None);
        }
        let loc = "http://10.0.0.1:80/dlna/device.xml";
        assert_eq!(answers("u", "ssdp:all", loc).len(), 5);
        let a = answers("u", DEVICE_TYPE, loc);
        assert_eq!(a.len(), 1);
        assert!(a[0].contains("USN: uuid:u::urn:schemas-upnp-org:device:MediaServer:1\r\n"));
        assert!(a[0].contains("LOCATION: http://10.0.0.1:80/dlna/device.xml\r\n"));
        assert!(answers("u", "urn:schemas-upnp-org:device:MediaRenderer:1", loc).is_empty());
        assert!(answers("u", "uuid:other", loc).is_empty());
        assert_eq!(answers("u", "uuid:u", loc).len(), 1);
        let bye = notify("u", None);
        assert!(
            bye.iter()
                .all(|m| m.contains("NTS: ssdp:byebye") && !m.contains("LOCATION"))
        );
    }
}
