//! What leaves the device: the one list of every kind of packet Hearth's appliance sends,
//! what it carries, where it goes and how to turn it off. The Privacy page shows this list
//! (`GET /api/v1/privacy`) and the image tier's packet capture (`tests/image/privacy`) is held
//! against the same answer: a flow the capture sees and this list does not name fails it.
//!
//! Pure: the web layer gathers the facts ([`Facts`]) and this builds the list.

use serde::Serialize;

/// Where a flow's packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Only the home network: LAN peers, link-local and multicast addresses.
    Lan,
    /// Beyond the router.
    Internet,
}

/// How a capture recognises a flow's packets: a protocol and, for UDP/TCP, the service port
/// (the lower of the two ports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WireMatch {
    /// `udp`, `tcp`, `icmpv6`, `icmp`, `igmp` or `arp`.
    pub proto: &'static str,
    /// Service ports; empty for protocols without ports.
    pub ports: Vec<u16>,
}

/// One kind of traffic the device sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Flow {
    /// Stable name for programs (`update-check`, `time-sync`, ...).
    pub id: &'static str,
    pub name: &'static str,
    pub scope: Scope,
    /// Where it goes, in words.
    pub destination: String,
    /// Protocol and port, in words.
    pub protocol: &'static str,
    /// What it carries.
    pub carries: String,
    /// How the owner turns it off (or why it cannot be).
    pub turn_off: &'static str,
    /// Sent at all with the current settings.
    pub enabled: bool,
    /// Unix seconds of the last contact, where the device knows it.
    pub last_contact: Option<u64>,
    /// Host names or addresses it goes to (internet flows; also the only names the device
    /// looks up by DNS).
    pub hosts: Vec<String>,
    #[serde(rename = "match")]
    pub wire: Vec<WireMatch>,
}

/// What the list depends on.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The update channel's base URL (empty: none configured).
    pub channel_url: String,
    /// Hours between automatic checks (0: off).
    pub check_interval_hours: u32,
    pub last_update_check: Option<u64>,
    /// Time sync, where this device manages it (the appliance); `None` on a laptop, whose
    /// own system keeps its time.
    pub time_sync: Option<crate::agent::timesync::TimeSyncState>,
    pub last_time_sync: Option<u64>,
    pub last_dhcp: Option<u64>,
    pub mdns: bool,
    /// SSDP announcements on (config) and DLNA on with libraries (owner).
    pub ssdp: bool,
    pub dlna_active: bool,
    /// The port mapping may talk to the router: UPnP allowed by the config and remote access
    /// on (owner).
    pub port_mapping: bool,
}

/// Host and port of an http(s) URL.
pub fn url_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let default = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after
            .strip_prefix(':')
            .map_or(Some(default), |p| p.parse().ok())?;
        return Some((host.to_owned(), port));
    }
    match authority.split_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
        None => Some((authority.to_owned(), default)),
    }
    .filter(|(h, _)| !h.is_empty())
}

fn m(proto: &'static str, ports: &[u16]) -> WireMatch {
    WireMatch {
        proto,
        ports: ports.to_vec(),
    }
}

/// Every flow, in the order the Privacy page shows them: what leaves the house first.
pub fn flows(f: &Facts) -> Vec<Flow> {
    let mut out = Vec::new();
    let channel = url_host_port(&f.channel_url);
    let channel_on = channel.is_some() && f.check_interval_hours > 0;
    out.push(Flow {
        id: "update-check",
        name: "Update checks",
        scope: Scope::Internet,
        destination: match &channel {
            Some((h, _)) => format!("the update channel of this device's image ({h})"),
            None => "none: no update channel is configured".into(),
        },
        protocol: "HTTPS (TCP)",
        carries: format!(
            "the board type and the running version (in the address asked for and the User-Agent), {}; the channel answers with a short list of versions. Installing an update downloads it from the same place.",
            if channel.is_none() {
                "never, as long as no channel is configured".to_owned()
            } else if f.check_interval_hours > 0 {
                format!(
                    "at start and every {} hours (a check that fails is tried again after 2 minutes, then less often), and when you press Check now",
                    f.check_interval_hours
                )
            } else {
                "only when you press Check now".to_owned()
            }
        ),
        turn_off: "Settings > Updates > Check for updates > Never (Check now still works by hand).",
        enabled: channel_on,
        last_contact: f.last_update_check,
        hosts: channel.iter().map(|(h, _)| h.to_lowercase()).collect(),
        wire: vec![m("tcp", &[channel.as_ref().map_or(443, |(_, p)| *p)])],
    });
    if let Some(ts) = &f.time_sync {
        use crate::agent::timesync::TimeSyncMode;
        out.push(Flow {
            id: "time-sync",
            name: "Time sync",
            scope: Scope::Internet,
            destination: match ts.mode {
                TimeSyncMode::Default => format!("Debian's public time servers ({})", ts.servers.join(", ")),
                TimeSyncMode::Custom => format!("your own time servers ({})", ts.servers.join(", ")),
                TimeSyncMode::Off => "none: time sync is off".into(),
            },
            protocol: "NTP (UDP 123)",
            carries: "a 48-byte request for the time, with nothing about the device, its owner or its media; the server sees your home's public address. About every 30 minutes to a few hours, and at start. Servers your router offers by DHCP are asked too.".into(),
            turn_off: "Settings > Privacy > Time sync: your own server, or Off (the clock then drifts; a device without a clock battery, such as a Raspberry Pi, starts at the last time it saved).",
            enabled: ts.mode != TimeSyncMode::Off,
            last_contact: f.last_time_sync,
            hosts: ts.servers.iter().map(|s| s.to_lowercase()).collect(),
            wire: vec![m("udp", &[123])],
        });
    }
    let names_needed = out.iter().any(|fl| {
        fl.enabled
            && fl
                .hosts
                .iter()
                .any(|h| h.parse::<std::net::IpAddr>().is_err())
    });
    out.push(Flow {
        id: "name-lookups",
        name: "Name lookups (DNS)",
        scope: Scope::Lan,
        destination: "the name server your router hands out".into(),
        protocol: "DNS (UDP/TCP 53)",
        carries: "only the names of the servers above (time servers, the update channel): never a title, a file name or a person's name.".into(),
        turn_off: "Off by itself when the flows above are off or name their servers by address.",
        enabled: names_needed,
        last_contact: None,
        hosts: Vec::new(),
        wire: vec![m("udp", &[53]), m("tcp", &[53])],
    });
    out.push(Flow {
        id: "dhcp",
        name: "Getting an address (DHCP)",
        scope: Scope::Lan,
        destination: "your router".into(),
        protocol: "DHCP (UDP 67/68), DHCPv6 (UDP 546/547)",
        carries:
            "the device's network card address and its host name (hearth-xxxx), to get an address."
                .into(),
        turn_off: "Cannot be turned off: the device needs an address on your network.",
        enabled: true,
        last_contact: f.last_dhcp,
        hosts: Vec::new(),
        wire: vec![m("udp", &[67, 68, 546, 547])],
    });
    out.push(Flow {
        id: "link",
        name: "Finding neighbours on the network",
        scope: Scope::Lan,
        destination: "devices on your network, link-local and multicast addresses".into(),
        protocol: "ARP, IPv6 neighbour discovery, IGMP/MLD, ICMP",
        carries: "the device's own addresses and which multicast groups it listens to (mDNS, SSDP): what every networked device sends.".into(),
        turn_off: "Cannot be turned off: it is how devices on a network find each other.",
        enabled: true,
        last_contact: None,
        hosts: Vec::new(),
        wire: vec![m("arp", &[]), m("icmpv6", &[]), m("igmp", &[]), m("icmp", &[])],
    });
    out.push(Flow {
        id: "mdns",
        name: "The device's name on the network (mDNS)",
        scope: Scope::Lan,
        destination: "the mDNS group on your network (224.0.0.251), never beyond the router".into(),
        protocol: "mDNS (UDP 5353)",
        carries: "hearth.local, the device's host name, its address and its web ports, so browsers and apps find it.".into(),
        turn_off: "discovery.mdns = false in /etc/hearth/hearth.toml (then use the device's address).",
        enabled: f.mdns,
        last_contact: None,
        hosts: Vec::new(),
        wire: vec![m("udp", &[5353])],
    });
    out.push(Flow {
        id: "ssdp",
        name: "DLNA announcements (SSDP)",
        scope: Scope::Lan,
        destination: "the SSDP group on your network (239.255.255.250), never beyond the router".into(),
        protocol: "SSDP (UDP 1900)",
        carries: "that a media server is here and where its description is; TVs then read the server's name and the libraries chosen for DLNA.".into(),
        turn_off: "Settings > DLNA > off.",
        enabled: f.ssdp && f.dlna_active,
        last_contact: None,
        hosts: Vec::new(),
        wire: vec![m("udp", &[1900])],
    });
    out.push(Flow {
        id: "port-mapping",
        name: "Opening a port on your router (UPnP)",
        scope: Scope::Lan,
        destination: "your home router only: a search to the SSDP group (239.255.255.250), then the router's own UPnP address".into(),
        protocol: "SSDP (UDP 1900), then HTTP to the router's UPnP port",
        carries: "a request to forward one port to this device for at most two hours, renewed while remote access is on, and a question for the router's internet address; the mapping is removed when remote access goes off.".into(),
        turn_off: "Settings > Network > remote access off (or a port forwarded by hand); reach.upnp = false in /etc/hearth/hearth.toml.",
        enabled: f.port_mapping,
        last_contact: None,
        hosts: Vec::new(),
        wire: vec![m("udp", &[1900])],
    });
    out.push(Flow {
        id: "answers",
        name: "Answers to your devices",
        scope: Scope::Lan,
        destination: "the browsers, apps and TVs that connect to this device".into(),
        protocol: "HTTP/HTTPS (TCP 80/443)",
        carries: "what a signed-in person asked for: pages, pictures and the films they play. Remote access (off by default) lets those devices be outside the house.".into(),
        turn_off: "Nothing is sent unless a device asks.",
        enabled: true,
        last_contact: None,
        hosts: Vec::new(),
        wire: vec![m("tcp", &[80, 443])],
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::timesync::{TimeSyncMode, TimeSyncState};

    #[test]
    fn channel_urls_table() {
        let cases = [
            ("https://10.0.2.100", Some(("10.0.2.100", 443))),
            (
                "https://updates.example/hearth/",
                Some(("updates.example", 443)),
            ),
            ("http://mirror.lan:8080/x", Some(("mirror.lan", 8080))),
            ("https://[fd00::1]:8443/", Some(("fd00::1", 8443))),
            ("https://[fd00::1]/", Some(("fd00::1", 443))),
            ("", None),
            ("ftp://x", None),
            ("https://", None),
            ("https://h:port/", None),
        ];
        for (url, want) in cases {
            assert_eq!(
                url_host_port(url),
                want.map(|(h, p)| (h.to_owned(), p)),
                "{url}"
            );
        }
    }

    fn ids(fl: &[Flow], scope: Scope, enabled: bool) -> Vec<&'static str> {
        fl.iter()
            .filter(|f| f.scope == scope && f.enabled == enabled)
            .map(|f| f.id)
            .collect()
    }

    #[test]
    fn defaults_off_and_laptop() {
        let pool = TimeSyncState {
            mode: TimeSyncMode::Default,
            servers: vec!["0.debian.pool.ntp.org".into()],
        };
        let on = Facts {
            channel_url: "https://updates.example/hearth".into(),
            check_interval_hours: 24,
            time_sync: Some(pool),
            mdns: true,
            ..Facts::default()
        };
        let fl = flows(&on);
        assert_eq!(
            ids(&fl, Scope::Internet, true),
            ["update-check", "time-sync"]
        );
        let ts = fl.iter().find(|f| f.id == "time-sync").unwrap();
        assert_eq!(ts.hosts, ["0.debian.pool.ntp.org"]);
        assert!(fl.iter().find(|f| f.id == "name-lookups").unwrap().enabled);
        let off = Facts {
            check_interval_hours: 0,
            time_sync: Some(TimeSyncState {
                mode: TimeSyncMode::Off,
                servers: vec![],
            }),
            ..on.clone()
        };
        let fl = flows(&off);
        assert!(ids(&fl, Scope::Internet, true).is_empty());
        assert!(!fl.iter().find(|f| f.id == "name-lookups").unwrap().enabled);
        // An own server by address needs no name lookups.
        let own = Facts {
            check_interval_hours: 0,
            time_sync: Some(TimeSyncState {
                mode: TimeSyncMode::Custom,
                servers: vec!["192.168.1.1".into()],
            }),
            ..on.clone()
        };
        assert!(
            !flows(&own)
                .iter()
                .find(|f| f.id == "name-lookups")
                .unwrap()
                .enabled
        );
        // A laptop keeps its own time: no time-sync flow of Hearth's.
        let laptop = Facts {
            time_sync: None,
            ..on
        };
        assert!(!flows(&laptop).iter().any(|f| f.id == "time-sync"));
    }
}
