//! Security-sensitive: classifies each client as Local, LAN or Remote. A wrong answer here
//! would let someone on the internet act as if they were in the house.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use serde::Serialize;

/// What the accept loop knows about a connection; put on every request.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The connection arrived over TLS.
    pub secure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetClass {
    /// Loopback: someone on the device itself.
    Local,
    /// One of the LAN networks.
    Lan,
    /// Anywhere else.
    Remote,
}

/// The resolved client of one request.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    pub addr: IpAddr,
    pub class: NetClass,
    pub secure: bool,
}

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
        Ok(IpNet { addr, prefix })
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

/// The networks counted as "in the house": the device's own interface subnets plus the
/// owner's additions.
#[derive(Debug, Clone, Default)]
pub struct LanNetworks {
    inner: Arc<RwLock<Vec<IpNet>>>,
}

impl LanNetworks {
    pub fn new(nets: Vec<IpNet>) -> Self {
        LanNetworks {
            inner: Arc::new(RwLock::new(nets)),
        }
    }

    /// The subnets of the device's own non-loopback interfaces, plus IPv6 link-local.
    pub fn detect() -> Vec<IpNet> {
        let mut nets = Vec::new();
        if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
            for ifa in addrs {
                let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
                    continue;
                };
                let net = if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in())
                {
                    let prefix = u32::from(m.ip()).count_ones() as u8;
                    IpNet::new(IpAddr::V4(a.ip()), prefix)
                } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6())
                {
                    let prefix = u128::from(m.ip()).count_ones() as u8;
                    IpNet::new(IpAddr::V6(a.ip()), prefix)
                } else {
                    None
                };
                if let Some(net) = net
                    && !net.addr.is_loopback()
                    && !nets.contains(&net)
                {
                    nets.push(net);
                }
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

    pub fn set(&self, nets: Vec<IpNet>) {
        // A poisoned lock only means a writer panicked mid-assignment of a Vec; the old
        // value is still a valid list, so keep using it.
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        *guard = nets;
    }

    pub fn list(&self) -> Vec<IpNet> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn classify(&self, ip: IpAddr) -> NetClass {
        let ip = canonical(ip);
        if ip.is_loopback() {
            return NetClass::Local;
        }
        let nets = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if nets.iter().any(|n| n.contains(ip)) {
            NetClass::Lan
        } else {
            NetClass::Remote
        }
    }
}

/// Unspecified addresses are never a real client; used as a safe default in tests.
pub const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

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
