//! Security-sensitive: classifies each client as Local, LAN or Remote. A wrong answer here
//! would let someone on the internet act as if they were in the house.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use serde::Serialize;

/// What the accept loop knows about a connection; put on every request.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The device's address this connection arrived on: an address the device owns.
    pub local: SocketAddr,
    /// The connection arrived over TLS.
    pub secure: bool,
}

pub use crate::model::net::{ClientInfo, NetClass};

/// An IP network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// The same network with the host bits cleared (`192.168.1.7/24` → `192.168.1.0/24`).
    pub fn network(&self) -> IpNet {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        IpNet {
            addr,
            prefix: self.prefix,
        }
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has an invalid prefix length"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix }.network())
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The networks counted as "in the house": the device's own interface subnets (found at
/// start and re-detected while running) plus the owner's additions (`lan_networks`).
#[derive(Debug, Clone, Default)]
pub struct LanNetworks {
    inner: Arc<RwLock<LanLists>>,
}

#[derive(Debug, Clone, Default)]
struct LanLists {
    detected: Vec<IpNet>,
    extra: Vec<IpNet>,
    /// Set by the running server: a client that looks remote makes the interfaces be read
    /// again (at most every [`REREAD_AFTER`]) before it is refused.
    follow: bool,
    last_read: Option<std::time::Instant>,
}

/// A device that just booted starts serving before DHCP has given it an address; without a
/// fresh look, the first LAN clients (the owner opening the wizard) would count as remote
/// until the watcher's next pass. A read is one netlink dump, so even a stream of remote
/// clients costs at most five a second.
pub const REREAD_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// One address of one of the device's interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl LanNetworks {
    pub fn new(detected: Vec<IpNet>) -> Self {
        LanNetworks {
            inner: Arc::new(RwLock::new(LanLists {
                detected,
                ..LanLists::default()
            })),
        }
    }

    /// The device's own networks, read now and again whenever a client looks remote and the
    /// last read is older than [`REREAD_AFTER`] (what the server uses).
    pub fn following_interfaces() -> Self {
        let lan = LanNetworks::new(LanNetworks::networks_of(&LanNetworks::interface_addrs()));
        {
            let mut g = lan.write();
            g.follow = true;
            g.last_read = Some(std::time::Instant::now());
        }
        lan
    }

    /// Every non-loopback address of the device's interfaces, as the kernel reports it now.
    pub fn interface_addrs() -> Vec<InterfaceAddr> {
        let mut out = Vec::new();
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
            return out;
        };
        for ifa in addrs {
            let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
                continue;
            };
            let found = if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
                Some((IpAddr::V4(a.ip()), u32::from(m.ip()).count_ones() as u8))
            } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                Some((IpAddr::V6(a.ip()), u128::from(m.ip()).count_ones() as u8))
            } else {
                None
            };
            if let Some((addr, prefix)) = found
                && !addr.is_loopback()
                && !out.contains(&InterfaceAddr { addr, prefix })
            {
                out.push(InterfaceAddr { addr, prefix });
            }
        }
        out
    }

    /// The subnets of the device's own non-loopback interfaces, plus IPv6 link-local.
    pub fn detect() -> Vec<IpNet> {
        Self::networks_of(&Self::interface_addrs())
    }

    /// The networks the given interface addresses sit in, plus fe80::/10.
    pub fn networks_of(addrs: &[InterfaceAddr]) -> Vec<IpNet> {
        let mut nets = Vec::new();
        for a in addrs {
            if let Some(net) = IpNet::new(a.addr, a.prefix).map(|n| n.network())
                && !nets.contains(&net)
            {
                nets.push(net);
            }
        }
        // fe80::/10 is on-link by definition: nobody outside the LAN can use it.
        let link_local = IpNet {
            addr: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
            prefix: 10,
        };
        if !nets.contains(&link_local) {
            nets.push(link_local);
        }
        nets
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, LanLists> {
        // A poisoned lock only means a writer panicked mid-assignment of a Vec; the old
        // value is still a valid list, so keep using it.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, LanLists> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the detected interface networks; returns whether they changed.
    pub fn set(&self, nets: Vec<IpNet>) -> bool {
        let mut guard = self.write();
        let changed = guard.detected != nets;
        guard.detected = nets;
        changed
    }

    /// Replaces the owner's additional LAN networks.
    pub fn set_extra(&self, nets: Vec<IpNet>) {
        self.write().extra = nets;
    }

    /// Detected networks followed by the owner's additions.
    pub fn list(&self) -> Vec<IpNet> {
        let g = self.read();
        let mut all = g.detected.clone();
        for n in &g.extra {
            if !all.contains(n) {
                all.push(*n);
            }
        }
        all
    }

    pub fn detected(&self) -> Vec<IpNet> {
        self.read().detected.clone()
    }

    pub fn classify(&self, ip: IpAddr) -> NetClass {
        let g = self.read();
        classify_in(ip, &[&g.detected, &g.extra])
    }

    /// Classification as it would be if the owner's additions were `extra` (used to check a
    /// settings change before it is made).
    pub fn classify_with_extra(&self, ip: IpAddr, extra: &[IpNet]) -> NetClass {
        let class = {
            let g = self.read();
            classify_in(ip, &[&g.detected, extra])
        };
        if class != NetClass::Remote || !self.reread_if_stale() {
            return class;
        }
        let g = self.read();
        classify_in(ip, &[&g.detected, extra])
    }

    /// Reads the interfaces again when following them and the last read is stale; returns
    /// whether it did.
    fn reread_if_stale(&self) -> bool {
        {
            let g = self.read();
            if !g.follow || g.last_read.is_some_and(|t| t.elapsed() < REREAD_AFTER) {
                return false;
            }
        }
        let nets = LanNetworks::networks_of(&LanNetworks::interface_addrs());
        let mut g = self.write();
        g.last_read = Some(std::time::Instant::now());
        if g.detected != nets {
            tracing::info!(networks = ?nets, "the device's networks changed (seen on a request)");
            g.detected = nets;
        }
        true
    }
}

fn classify_in(ip: IpAddr, lists: &[&[IpNet]]) -> NetClass {
    let ip = canonical(ip);
    if ip.is_loopback() {
        return NetClass::Local;
    }
    if lists.iter().any(|l| l.iter().any(|n| n.contains(ip))) {
        NetClass::Lan
    } else {
        NetClass::Remote
    }
}

/// Unspecified addresses are never a real client; used as a safe default in tests.
pub const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that started before its interface had an address (an empty list) sees a
    /// client on the network that appeared since as LAN, after one fresh read.
    #[test]
    fn a_remote_looking_client_makes_the_server_look_again() {
        let Some(own) = LanNetworks::interface_addrs()
            .into_iter()
            .find(|a| a.addr.is_ipv4())
        else {
            return; // a machine with no IPv4 address but loopback: nothing to look at
        };
        let lan = LanNetworks::following_interfaces();
        lan.set(Vec::new());
        // Just read: not again so soon, the client stays remote.
        assert_eq!(lan.classify_with_extra(own.addr, &[]), NetClass::Remote);
        lan.write().last_read = Some(std::time::Instant::now() - 2 * REREAD_AFTER);
        assert_eq!(lan.classify_with_extra(own.addr, &[]), NetClass::Lan);
        // A list that is not following never looks again.
        let fixed = LanNetworks::new(Vec::new());
        assert_eq!(fixed.classify_with_extra(own.addr, &[]), NetClass::Remote);
        assert_eq!(
            lan.classify_with_extra("203.0.113.9".parse().unwrap(), &[]),
            NetClass::Remote
        );
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn classification_table() {
        let lan = LanNetworks::new(vec![
            net("192.168.1.0/24"),
            net("fd00:1::/64"),
            net("fe80::/10"),
        ]);
        let cases = [
            ("127.0.0.1", NetClass::Local),
            ("127.8.9.10", NetClass::Local),
            ("::1", NetClass::Local),
            ("::ffff:127.0.0.1", NetClass::Local),
            ("192.168.1.77", NetClass::Lan),
            ("::ffff:192.168.1.77", NetClass::Lan),
            ("fd00:1::5", NetClass::Lan),
            ("fe80::1234", NetClass::Lan),
            ("192.168.2.1", NetClass::Remote),
            ("10.0.0.1", NetClass::Remote),
            ("8.8.8.8", NetClass::Remote),
            ("fd00:2::5", NetClass::Remote),
            ("2001:db8::1", NetClass::Remote),
        ];
        for (ip, want) in cases {
            assert_eq!(lan.classify(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn parsing_networks() {
        assert_eq!(net("10.0.0.0/8").prefix, 8);
        assert_eq!(net("10.1.2.3").prefix, 32);
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("banana".parse::<IpNet>().is_err());
        assert!(net("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(!net("10.0.0.0/8").contains("::1".parse().unwrap()));
    }
}
