//! Security-sensitive: a UPnP Internet Gateway Device client, just the part Hearth needs —
//! find the home router (SSDP), read its description, and ask its WANIPConnection (or
//! WANPPPConnection) service for the external address and for one TCP port mapping.
//!
//! Everything here talks to the LAN only, and everything it reads comes from any device on
//! the LAN: an SSDP answer's `LOCATION` must point at the very address that answered (so a
//! stranger cannot make the device fetch arbitrary URLs), only `http` on that host is
//! followed, and every body read is capped. Blocking: call it off the async runtime.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use quick_xml::events::Event;

/// The SSDP group and port.
const SSDP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)), 1900);
/// Largest device description or SOAP answer read.
const MAX_BODY: u64 = 64 * 1024;
/// XML events read before giving up on a document.
const MAX_EVENTS: usize = 20_000;
/// Service types that can map ports, best first.
const SERVICES: &[&str] = &[
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];
/// Search targets sent: an IGD:2 also answers an IGD:1 search, but some only answer the
/// service search.
const TARGETS: &[&str] = &[
    "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
];

#[derive(Debug, thiserror::Error)]
pub enum IgdError {
    /// Nothing answered the search.
    #[error("no router answered a UPnP search on the home network")]
    NoGateway,
    /// The router answered but its description is unusable.
    #[error("the router at {0} {1}")]
    BadGateway(IpAddr, String),
    /// The router could not be reached over HTTP.
    #[error("the router at {0} does not answer: {1}")]
    Unreachable(IpAddr, String),
    /// The router refused the action with a UPnP error.
    #[error("the router refused {action}: {description} (UPnP error {code})")]
    Refused {
        action: &'static str,
        code: u16,
        description: String,
    },
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
}

impl IgdError {
    /// The UPnP error code, if the router refused with one.
    pub fn upnp_code(&self) -> Option<u16> {
        match self {
            IgdError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A router found on the LAN, with the service that maps ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The address that answered the search (and serves the description).
    pub addr: IpAddr,
    /// The router's own name for itself.
    pub name: String,
    /// Where its description was.
    pub location: String,
    /// The service type used (`…:WANIPConnection:2`…).
    pub service: String,
    /// The absolute control URL of that service.
    pub control_url: String,
    /// This device's address as the router sees it (the source of packets sent to it).
    pub local_addr: IpAddr,
}

/// One mapping as the router lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingEntry {
    pub internal_client: String,
    pub internal_port: u16,
    pub description: String,
    /// Seconds left, as the router says (0: permanent).
    pub lease_secs: u32,
}

/// Searches the LAN for a router for up to `wait`, and returns the first whose description
/// names a port-mapping service.
pub fn discover(wait: Duration) -> Result<Gateway, IgdError> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    // Two hops at most: the router is on the LAN.
    sock.set_multicast_ttl_v4(2)?;
    let mx = wait.as_secs().clamp(1, 5);
    for st in TARGETS {
        let msg = format!(
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: {mx}\r\nST: {st}\r\n\r\n"
        );
        sock.send_to(msg.as_bytes(), SSDP)?;
    }
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 2048];
    let mut last_err = None;
    let mut tried = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last_err.unwrap_or(IgdError::NoGateway));
        }
        sock.set_read_timeout(Some(left))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(last_err.unwrap_or(IgdError::NoGateway));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(location) = ssdp_location(&buf[..n]) else {
            continue;
        };
        if tried.contains(&location) {
            continue;
        }
        tried.push(location.clone());
        match from_location(from.ip(), &location) {
            Ok(gw) => return Ok(gw),
            Err(e) => {
                tracing::debug!(from = %from, error = %e, "an SSDP answer is not a usable router");
                last_err = Some(e);
            }
        }
    }
}

/// The `LOCATION` of an SSDP answer (`HTTP/1.1 200 OK` or a `NOTIFY`).
fn ssdp_location(packet: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(packet).ok()?;
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    if !(first.starts_with("HTTP/1.1 200") || first.starts_with("NOTIFY ")) {
        return None;
    }
    lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("location")
            .then(|| v.trim().to_owned())
    })
}

/// `http://host:port/path` split into (host, port, path). Only plain `http`.
fn split_http_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().ok()?),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port, path.to_owned()))
}

/// Reads the description at `location`, which must be served by `from` (the address that
/// answered the search).
pub fn from_location(from: IpAddr, location: &str) -> Result<Gateway, IgdError> {
    let bad = |m: &str| IgdError::BadGateway(from, m.to_owned());
    let (host, port, _) = split_http_url(location)
        .ok_or_else(|| bad("gave a description address that is not http"))?;
    let host_ip: IpAddr = host
        .parse()
        .map_err(|_| bad("named its description by a host name, not its address"))?;
    if host_ip != from {
        return Err(bad("pointed its description at another address"));
    }
    let text = http_get(from, location)?;
    let desc = parse_description(&text).map_err(|m| bad(&m))?;
    let control = resolve(&host, port, &desc.control_url)
        .ok_or_else(|| bad("gave a control address on another host"))?;
    Ok(Gateway {
        addr: from,
        name: desc.name,
        location: location.to_owned(),
        service: desc.service,
        control_url: control,
        local_addr: local_addr_towards(from)?,
    })
}

/// The address this device uses to reach `peer` (no packet is sent: a UDP `connect` only
/// picks the route).
pub fn local_addr_towards(peer: IpAddr) -> std::io::Result<IpAddr> {
    let bind: IpAddr = match peer {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind((bind, 0))?;
    sock.connect((peer, 1900))?;
    Ok(sock.local_addr()?.ip())
}

/// A control URL from a description, made absolute against `host:port`; `None` if it names
/// another host.
fn resolve(host: &str, port: u16, url: &str) -> Option<String> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    if url.starts_with("http://") {
        let (h, p, path) = split_http_url(url)?;
        return (h == host && p == port).then(|| format!("http://{authority}{path}"));
    }
    if url.contains("://") {
        return None;
    }
    let path = if url.starts_with('/') {
        url.to_owned()
    } else {
        format!("/{url}")
    };
    Some(format!("http://{authority}{path}"))
}

#[derive(Debug, PartialEq, Eq)]
struct Description {
    name: String,
    service: String,
    control_url: String,
}

/// The root device's friendly name and the best port-mapping service of a description.
fn parse_description(text: &str) -> Result<Description, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut name = String::new();
    let (mut svc_type, mut svc_control) = (String::new(), String::new());
    let mut found: Vec<(String, String)> = Vec::new();
    for _ in 0..MAX_EVENTS {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let tag = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if tag == "service" {
                    svc_type.clear();
                    svc_control.clear();
                }
                path.push(tag);
                if path.len() > 32 {
                    return Err("sent a description nested too deeply".into());
                }
            }
            Ok(Event::End(_)) => {
                if path.last().map(String::as_str) == Some("service") && !svc_type.is_empty() {
                    found.push((svc_type.clone(), svc_control.clone()));
                }
                path.pop();
            }
            Ok(Event::Text(t)) => {
                let value = t
                    .unescape()
                    .map_err(|e| format!("sent a broken description: {e}"))?
                    .trim()
                    .to_owned();
                let tail: Vec<&str> = path.iter().rev().take(3).map(String::as_str).collect();
                match tail.as_slice() {
                    ["friendlyName", "device", "root", ..] => name = value,
                    ["serviceType", "service", ..] => svc_type = value,
                    ["controlURL", "service", ..] => svc_control = value,
                    _ => {}
                }
            }
            Ok(Event::DocType(_)) => return Err("sent a description with a DTD".into()),
            Ok(Event::Eof) => {
                for want in SERVICES {
                    if let Some((service, control_url)) =
                        found.iter().find(|(t, c)| t == want && !c.is_empty())
                    {
                        return Ok(Description {
                            name: if name.is_empty() {
                                "router".into()
                            } else {
                                name
                            },
                            service: service.clone(),
                            control_url: control_url.clone(),
                        });
                    }
                }
                return Err(
                    "offers no port-mapping service (it is not an internet gateway)".into(),
                );
            }
            Ok(_) => {}
            Err(e) => return Err(format!("sent a broken description: {e}")),
        }
    }
    Err("sent a description too long to read".into())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .max_redirects(0)
        .user_agent(format!("hearth/{}", crate::model::build::version()))
        .build()
        .into()
}

fn read_capped(body: ureq::Body, gw: IpAddr) -> Result<String, IgdError> {
    let mut bytes = Vec::new();
    body.into_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| IgdError::Unreachable(gw, e.to_string()))?;
    if bytes.len() as u64 > MAX_BODY {
        return Err(IgdError::BadGateway(
            gw,
            "sent an answer too large to read".into(),
        ));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn http_get(gw: IpAddr, url: &str) -> Result<String, IgdError> {
    let resp = agent()
        .get(url)
        .call()
        .map_err(|e| IgdError::Unreachable(gw, e.to_string()))?;
    if resp.status() != 200 {
        return Err(IgdError::BadGateway(
            gw,
            format!("answered {} for its description", resp.status().as_u16()),
        ));
    }
    read_capped(resp.into_body(), gw)
}

/// Calls `action` with `args` (in order) and returns the answer's values by element name.
fn soap(
    gw: &Gateway,
    action: &'static str,
    args: &[(&str, String)],
) -> Result<Vec<(String, String)>, IgdError> {
    let mut body = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{action} xmlns:u=\"{}\">",
        quick_xml::escape::escape(gw.service.as_str())
    );
    for (k, v) in args {
        body.push_str(&format!(
            "<{k}>{}</{k}>",
            quick_xml::escape::escape(v.as_str())
        ));
    }
    body.push_str(&format!("</u:{action}></s:Body></s:Envelope>\r\n"));
    let resp = agent()
        .post(&gw.control_url)
        .header("SOAPAction", format!("\"{}#{action}\"", gw.service))
        .content_type("text/xml; charset=\"utf-8\"")
        .send(body.as_bytes())
        .map_err(|e| IgdError::Unreachable(gw.addr, e.to_string()))?;
    let status = resp.status().as_u16();
    let text = read_capped(resp.into_body(), gw.addr)?;
    let values = parse_values(&text).map_err(|m| IgdError::BadGateway(gw.addr, m))?;
    let get = |name: &str| {
        values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(code) = get("errorCode") {
        return Err(IgdError::Refused {
            action,
            code: code.parse().unwrap_or(0),
            description: get("errorDescription").unwrap_or_else(|| "no reason given".into()),
        });
    }
    if status != 200 {
        return Err(IgdError::BadGateway(
            gw.addr,
            format!("answered {status} to {action}"),
        ));
    }
    Ok(values)
}

/// Every leaf element's text, by local name, in document order.
fn parse_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut current: Option<String> = None;
    let mut out = Vec::new();
    for _ in 0..MAX_EVENTS {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                current = Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
            }
            Ok(Event::Empty(e)) => {
                out.push((
                    String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    String::new(),
                ));
            }
            Ok(Event::Text(t)) => {
                if let Some(name) = current.take() {
                    let v = t
                        .unescape()
                        .map_err(|e| format!("sent a broken answer: {e}"))?;
                    out.push((name, v.trim().to_owned()));
                }
            }
            Ok(Event::End(_)) => current = None,
            Ok(Event::DocType(_)) => return Err("sent an answer with a DTD".into()),
            Ok(Event::Eof) => return Ok(out),
            Ok(_) => {}
            Err(e) => return Err(format!("sent a broken answer: {e}")),
        }
        if out.len() > 64 {
            return Err("sent an answer with too many values".into());
        }
    }
    Err("sent an answer too long to read".into())
}

fn value(values: &[(String, String)], name: &str) -> Option<String> {
    values
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The router's address on the internet side, as it says (may be empty or private).
pub fn external_address(gw: &Gateway) -> Result<Option<IpAddr>, IgdError> {
    let v = soap(gw, "GetExternalIPAddress", &[])?;
    Ok(value(&v, "NewExternalIPAddress").and_then(|s| s.parse().ok()))
}

/// Asks for `external_port` (TCP) to lead to this device's `internal_port` for `lease_secs`
/// (0: until removed).
pub fn add_mapping(
    gw: &Gateway,
    external_port: u16,
    internal_port: u16,
    description: &str,
    lease_secs: u32,
) -> Result<(), IgdError> {
    soap(
        gw,
        "AddPortMapping",
        &[
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", external_port.to_string()),
            ("NewProtocol", "TCP".into()),
            ("NewInternalPort", internal_port.to_string()),
            ("NewInternalClient", gw.local_addr.to_string()),
            ("NewEnabled", "1".into()),
            ("NewPortMappingDescription", description.to_owned()),
            ("NewLeaseDuration", lease_secs.to_string()),
        ],
    )
    .map(|_| ())
}

/// Removes the TCP mapping of `external_port`. A mapping already gone is not an error.
pub fn delete_mapping(gw: &Gateway, external_port: u16) -> Result<(), IgdError> {
    match soap(
        gw,
        "DeletePortMapping",
        &[
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", external_port.to_string()),
            ("NewProtocol", "TCP".into()),
        ],
    ) {
        // 714 NoSuchEntryInArray: already gone (expired, router restarted).
        Err(e) if e.upnp_code() == Some(714) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// The TCP mapping of `external_port`, if the router has one.
pub fn get_mapping(gw: &Gateway, external_port: u16) -> Result<Option<MappingEntry>, IgdError> {
    match soap(
        gw,
        "GetSpecificPortMappingEntry",
        &[
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", external_port.to_string()),
            ("NewProtocol", "TCP".into()),
        ],
    ) {
        Err(e) if e.upnp_code() == Some(714) => Ok(None),
        Err(e) => Err(e),
        Ok(v) => Ok(Some(MappingEntry {
            internal_client: value(&v, "NewInternalClient").unwrap_or_default(),
            internal_port: value(&v, "NewInternalPort")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            description: value(&v, "NewPortMappingDescription").unwrap_or_default(),
            lease_secs: value(&v, "NewLeaseDuration")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESC: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><friendlyName>Debian router</friendlyName>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F</controlURL></service></serviceList>
<deviceList><device><friendlyName>WANDevice</friendlyName><deviceList><device><serviceList>
<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL>/ctl/IPConn1</controlURL></service>
<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><controlURL>/ctl/IPConn</controlURL></service>
</serviceList></device></deviceList></device></deviceList></device></root>"#;

    #[test]
    fn the_best_mapping_service_and_the_root_name_are_read() {
        assert_eq!(
            parse_description(DESC).unwrap(),
            Description {
                name: "Debian router".into(),
                service: "urn:schemas-upnp-org:service:WANIPConnection:2".into(),
                control_url: "/ctl/IPConn".into(),
            }
        );
    }

    #[test]
    fn descriptions_without_a_mapping_service_or_with_a_dtd_are_refused() {
        let media = DESC.replace("WANIPConnection", "ContentDirectory");
        assert!(
            parse_description(&media)
                .unwrap_err()
                .contains("no port-mapping service")
        );
        let dtd = format!("<!DOCTYPE root [<!ENTITY x \"y\">]>{DESC}");
        assert!(parse_description(&dtd).unwrap_err().contains("DTD"));
        assert!(parse_description("<root><device>").is_err());
    }

    #[test]
    fn ssdp_answers_give_their_location_only_when_well_formed() {
        let ok = b"HTTP/1.1 200 OK\r\nST: x\r\nlocation: http://10.0.0.1:5000/rootDesc.xml\r\n\r\n";
        assert_eq!(
            ssdp_location(ok).as_deref(),
            Some("http://10.0.0.1:5000/rootDesc.xml")
        );
        assert_eq!(
            ssdp_location(b"M-SEARCH * HTTP/1.1\r\nLOCATION: x\r\n\r\n"),
            None
        );
        assert_eq!(ssdp_location(b"HTTP/1.1 200 OK\r\nST: x\r\n\r\n"), None);
        assert_eq!(ssdp_location(&[0xff, 0xfe]), None);
    }

    #[test]
    fn control_urls_stay_on_the_router_that_answered() {
        let table: &[(&str, Option<&str>)] = &[
            ("/ctl/IPConn", Some("http://10.0.0.1:5000/ctl/IPConn")),
            ("ctl/IPConn", Some("http://10.0.0.1:5000/ctl/IPConn")),
            (
                "http://10.0.0.1:5000/ctl/x",
                Some("http://10.0.0.1:5000/ctl/x"),
            ),
            ("http://10.0.0.9:5000/ctl/x", None),
            ("http://10.0.0.1:5001/ctl/x", None),
            ("https://10.0.0.1:5000/ctl/x", None),
            ("http://user@10.0.0.1:5000/ctl/x", None),
            ("file:///etc/passwd", None),
        ];
        for (url, want) in table {
            assert_eq!(resolve("10.0.0.1", 5000, url).as_deref(), *want, "{url}");
        }
    }

    #[test]
    fn a_description_elsewhere_than_the_answering_address_is_not_fetched() {
        let from: IpAddr = "10.0.0.1".parse().unwrap();
        for loc in [
            "http://10.0.0.2:5000/rootDesc.xml",
            "https://10.0.0.1/rootDesc.xml",
            "http://router.example/rootDesc.xml",
            "ftp://10.0.0.1/x",
        ] {
            let e = from_location(from, loc).unwrap_err();
            assert!(matches!(e, IgdError::BadGateway(..)), "{loc}: {e}");
        }
    }

    #[test]
    fn soap_faults_and_values_are_read() {
        let fault = r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"#;
        let v = parse_values(fault).unwrap();
        assert_eq!(value(&v, "errorCode").as_deref(), Some("718"));
        assert_eq!(
            value(&v, "errorDescription").as_deref(),
            Some("ConflictInMappingEntry")
        );
        let ok = r#"<s:Envelope xmlns:s="x"><s:Body><u:GetExternalIPAddressResponse xmlns:u="y"><NewExternalIPAddress>11.231.0.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>"#;
        assert_eq!(
            value(&parse_values(ok).unwrap(), "NewExternalIPAddress").as_deref(),
            Some("11.231.0.1")
        );
    }
}
