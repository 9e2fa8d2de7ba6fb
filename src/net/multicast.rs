//! Security-sensitive: multicast on the home network only (SSDP and mDNS). Decides which
//! interfaces count as LAN interfaces, joins multicast groups only there, learns the
//! interface every datagram arrived on (`IP_PKTINFO`) so answers go back out of that same
//! interface with its own address, and drops datagrams from anywhere else.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Mutex;

use nix::sys::socket::{self, sockopt};

/// One IPv4 address of an interface that announcements go out of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanInterface {
    pub name: String,
    pub index: u32,
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl LanInterface {
    /// Whether `ip` is on this interface's subnet (a neighbour, not something routed).
    pub fn is_neighbour(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(self.addr) & mask == u32::from(ip) & mask
    }
}

/// Addresses a home network uses: RFC 1918 and link-local. A public address means the
/// interface faces the internet (or a network we know nothing about): nothing is announced
/// there unless the owner names the interface in `discovery.interfaces`.
pub fn is_home_address(a: Ipv4Addr) -> bool {
    a.is_private() || a.is_link_local()
}

/// The LAN interfaces now: up, multicast-capable, not loopback, with an IPv4 address; the
/// ones named in `only` if it is not empty, else those with a home address.
pub fn lan_interfaces(only: &[String]) -> Vec<LanInterface> {
    use nix::net::if_::InterfaceFlags as F;
    let mut out = Vec::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    for ifa in addrs {
        if !ifa.flags.contains(F::IFF_UP | F::IFF_MULTICAST) || ifa.flags.contains(F::IFF_LOOPBACK)
        {
            continue;
        }
        let (Some(addr), Some(mask)) = (
            ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()),
            ifa.netmask.as_ref().and_then(|m| m.as_sockaddr_in()),
        ) else {
            continue;
        };
        let ip = addr.ip();
        let wanted = if only.is_empty() {
            is_home_address(ip)
        } else {
            only.contains(&ifa.interface_name)
        };
        if !wanted {
            continue;
        }
        let Ok(index) = nix::net::if_::if_nametoindex(ifa.interface_name.as_str()) else {
            continue;
        };
        let iface = LanInterface {
            name: ifa.interface_name.clone(),
            index,
            addr: ip,
            prefix: u32::from(mask.ip()).count_ones() as u8,
        };
        if !out.contains(&iface) {
            out.push(iface);
        }
    }
    out
}

/// A datagram and where it came from.
#[derive(Debug, Clone)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddrV4,
    /// The interface it arrived on.
    pub ifindex: u32,
    /// The address it was sent to (the group, or ours for unicast).
    pub to: Ipv4Addr,
}

/// A UDP socket on `0.0.0.0:port` that is a member of one multicast group on the LAN
/// interfaces only.
pub struct MulticastSocket {
    sock: tokio::net::UdpSocket,
    group: Ipv4Addr,
    joined: Mutex<Vec<LanInterface>>,
}

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl MulticastSocket {
    /// Binds (shared with other responders on the machine through SO_REUSEPORT) and sets
    /// the multicast TTL. Joins nothing yet: see [`MulticastSocket::sync`].
    pub fn bind(group: Ipv4Addr, port: u16, ttl: u8) -> io::Result<MulticastSocket> {
        let fd = socket::socket(
            socket::AddressFamily::Inet,
            socket::SockType::Datagram,
            socket::SockFlag::SOCK_NONBLOCK | socket::SockFlag::SOCK_CLOEXEC,
            socket::SockProtocol::Udp,
        )
        .map_err(nix_io)?;
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(nix_io)?;
        socket::setsockopt(&fd, sockopt::ReusePort, &true).map_err(nix_io)?;
        socket::setsockopt(&fd, sockopt::Ipv4PacketInfo, &true).map_err(nix_io)?;
        socket::setsockopt(&fd, sockopt::IpMulticastTtl, &ttl).map_err(nix_io)?;
        socket::setsockopt(&fd, sockopt::IpMulticastLoop, &false).map_err(nix_io)?;
        let addr = socket::SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        socket::bind(fd.as_raw_fd(), &addr).map_err(nix_io)?;
        let std = std::net::UdpSocket::from(fd);
        Ok(MulticastSocket {
            sock: tokio::net::UdpSocket::from_std(std)?,
            group,
            joined: Mutex::new(Vec::new()),
        })
    }

    /// Follows the interfaces: joins the group on new ones, leaves it on vanished ones.
    /// Returns the interfaces joined by this call (to announce on).
    pub fn sync(&self, now: &[LanInterface]) -> Vec<LanInterface> {
        let mut joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
        let mut added = Vec::new();
        joined.retain(|old| {
            if now.contains(old) {
                return true;
            }
            // The address may be gone already, in which case the kernel left for us.
            let req = socket::IpMembershipRequest::new(self.group, Some(old.addr));
            let _ = socket::setsockopt(&self.sock, sockopt::IpDropMembership, &req);
            tracing::info!(interface = %old.name, address = %old.addr, "stopped announcing on an interface");
            false
        });
        for iface in now {
            if joined.contains(iface) {
                continue;
            }
            let req = socket::IpMembershipRequest::new(self.group, Some(iface.addr));
            match socket::setsockopt(&self.sock, sockopt::IpAddMembership, &req) {
                // EADDRINUSE: another address of the same interface joined it already.
                Ok(()) | Err(nix::Error::EADDRINUSE) => {
                    tracing::info!(interface = %iface.name, address = %iface.addr, group = %self.group, "announcing on a LAN interface");
                    joined.push(iface.clone());
                    added.push(iface.clone());
                }
                Err(e) => {
                    tracing::warn!(interface = %iface.name, error = %e, "cannot join the multicast group")
                }
            }
        }
        added
    }

    /// The interfaces joined now.
    pub fn interfaces(&self) -> Vec<LanInterface> {
        self.joined
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The joined interface a datagram arrived on, if its sender is a neighbour there:
    /// anything else (routed, spoofed from elsewhere, another interface) is not answered.
    pub fn lan_origin(&self, r: &Received) -> Option<LanInterface> {
        self.interfaces()
            .into_iter()
            .find(|i| i.index == r.ifindex && i.is_neighbour(*r.from.ip()))
    }

    /// The next datagram, with the interface it arrived on.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            self.sock.readable().await?;
            let fd = self.sock.as_fd().as_raw_fd();
            let got = self.sock.try_io(tokio::io::Interest::READABLE, || {
                let mut iov = [io::IoSliceMut::new(buf)];
                let mut space = nix::cmsg_space!(nix::libc::in_pktinfo);
                let msg = socket::recvmsg::<socket::SockaddrIn>(
                    fd,
                    &mut iov,
                    Some(&mut space),
                    socket::MsgFlags::MSG_TRUNC,
                )
                .map_err(nix_io)?;
                let mut info = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let socket::ControlMessageOwned::Ipv4PacketInfo(p) = c {
                            info = Some((
                                p.ipi_ifindex as u32,
                                Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr)),
                            ));
                        }
                    }
                }
                let from = msg.address.map(|a| SocketAddrV4::new(a.ip(), a.port()));
                Ok((msg.bytes, from, info))
            });
            match got {
                Ok((len, Some(from), Some((ifindex, to)))) => {
                    return Ok(Received {
                        len,
                        from,
                        ifindex,
                        to,
                    });
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `data` to `to` out of `iface`, from its address (for the group and for
    /// unicast answers alike).
    pub async fn send_on(
        &self,
        data: &[u8],
        to: SocketAddrV4,
        iface: &LanInterface,
    ) -> io::Result<()> {
        let info = nix::libc::in_pktinfo {
            ipi_ifindex: iface.index as i32,
            ipi_spec_dst: nix::libc::in_addr {
                s_addr: u32::from(iface.addr).to_be(),
            },
            ipi_addr: nix::libc::in_addr { s_addr: 0 },
        };
        let dest = socket::SockaddrIn::from(to);
        let fd = self.sock.as_fd().as_raw_fd();
        loop {
            self.sock.writable().await?;
            let sent = self.sock.try_io(tokio::io::Interest::WRITABLE, || {
                let iov = [io::IoSlice::new(data)];
                let cmsg = [socket::ControlMessage::Ipv4PacketInfo(&info)];
                socket::sendmsg(fd, &iov, &cmsg, socket::MsgFlags::empty(), Some(&dest))
                    .map_err(nix_io)
            });
            match sent {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn group(&self) -> Ipv4Addr {
        self.group
    }
}

/// A simple rate limit: at most `per_second` events in any one-second window, per key and
/// in total, so a flood on the LAN costs a bounded amount of work and answers.
pub struct RateLimit {
    per_key: u32,
    total: u32,
    window: std::time::Instant,
    counts: std::collections::HashMap<Ipv4Addr, u32>,
    sum: u32,
}

impl RateLimit {
    pub fn new(per_key: u32, total: u32) -> RateLimit {
        RateLimit {
            per_key,
            total,
            window: std::time::Instant::now(),
            counts: Default::default(),
            sum: 0,
        }
    }

    /// Whether one more event from `key` is allowed now.
    pub fn allow(&mut self, key: Ipv4Addr) -> bool {
        if self.window.elapsed() >= std::time::Duration::from_secs(1) {
            self.window = std::time::Instant::now();
            self.counts.clear();
            self.sum = 0;
        }
        if self.sum >= self.total || self.counts.len() >= 4096 && !self.counts.contains_key(&key) {
            return false;
        }
        let c = self.counts.entry(key).or_default();
        if *c >= self.per_key {
            return false;
        }
        *c += 1;
        self.sum += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_addresses_and_neighbours() {
        for (a, home) in [
            ("192.168.1.5", true),
            ("10.0.0.1", true),
            ("172.20.1.1", true),
            ("169.254.3.4", true),
            ("172.32.0.1", false),
            ("8.8.8.8", false),
            ("100.64.0.1", false),
        ] {
            assert_eq!(is_home_address(a.parse().unwrap()), home, "{a}");
        }
        let i = LanInterface {
            name: "eth0".into(),
            index: 2,
            addr: "192.168.1.5".parse().unwrap(),
            prefix: 24,
        };
        assert!(i.is_neighbour("192.168.1.200".parse().unwrap()));
        assert!(!i.is_neighbour("192.168.2.200".parse().unwrap()));
    }

    #[test]
    fn rate_limit_caps_per_source_and_total() {
        let mut r = RateLimit::new(3, 5);
        let a: Ipv4Addr = "10.0.0.1".parse().unwrap();
        let b: Ipv4Addr = "10.0.0.2".parse().unwrap();
        let c: Ipv4Addr = "10.0.0.3".parse().unwrap();
        assert_eq!((0..10).filter(|_| r.allow(a)).count(), 3);
        assert_eq!((0..10).filter(|_| r.allow(b)).count(), 2);
        assert!(!r.allow(c));
    }
}
