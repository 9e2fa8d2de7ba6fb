//! Security-sensitive: finds the real client address behind reverse proxies. Headers such
//! as `X-Forwarded-For` are believed only when the TCP peer is one of the owner's
//! `trusted_proxies`; otherwise anyone could claim to be in the house by sending one.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};

use super::client::{IpNet, canonical};

/// More hops than this in one request is not a real proxy chain; the client is treated as
/// unknown (and therefore remote).
const MAX_HOPS: usize = 32;

/// Who a request came from after looking through trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddr {
    /// The address, either the TCP peer or a hop a trusted proxy vouched for.
    Known(IpAddr),
    /// A trusted proxy said the client is unknown, hidden or sent something unreadable.
    /// Such a client is never treated as local or LAN.
    Unknown,
}

/// Resolves the client of a request whose TCP peer is `peer`: the rightmost hop that is not
/// a trusted proxy, walking leftwards from the peer only while each hop is trusted.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> ClientAddr {
    let peer = canonical(peer);
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(peer) {
        return ClientAddr::Known(peer);
    }
    let hops = if headers.contains_key(header::FORWARDED) {
        forwarded_hops(headers)
    } else if headers.contains_key("x-forwarded-for") {
        x_forwarded_for_hops(headers)
    } else {
        // A trusted proxy that adds no header: the proxy itself is the client we know.
        return ClientAddr::Known(peer);
    };
    let Some(hops) = hops else {
        return ClientAddr::Unknown;
    };
    let mut current = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                current = canonical(*ip);
                if !trusted(current) {
                    return ClientAddr::Known(current);
                }
            }
            None => return ClientAddr::Unknown,
        }
    }
    // Every hop was a trusted proxy: the leftmost one is as far as we can see.
    ClientAddr::Known(current)
}

/// Whether a trusted proxy says the client reached it over HTTPS (`Forwarded: proto=https`
/// or `X-Forwarded-Proto: https`, the hop nearest to us). From anyone else: never.
pub fn proxied_https(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> bool {
    let peer = canonical(peer);
    if !trusted_proxies.iter().any(|n| n.contains(peer)) {
        return false;
    }
    if headers.contains_key(header::FORWARDED) {
        let Some(items) = joined_values(headers, header::FORWARDED.as_str()) else {
            return false;
        };
        return items.last().is_some_and(|element| {
            element.split(';').any(|pair| {
                pair.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        });
    }
    joined_values(headers, "x-forwarded-proto")
        .and_then(|items| items.last().cloned())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// All values of `name`, joined in order as one comma-separated list (RFC 9110 §5.3).
/// `None` if any value is not text or the list is longer than [`MAX_HOPS`].
fn joined_values(headers: &HeaderMap, name: &str) -> Option<Vec<String>> {
    let mut items = Vec::new();
    for v in headers.get_all(name) {
        let text = v.to_str().ok()?;
        for item in text.split(',') {
            items.push(item.trim().to_owned());
            if items.len() > MAX_HOPS {
                return None;
            }
        }
    }
    Some(items)
}

fn x_forwarded_for_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let items = joined_values(headers, "x-forwarded-for")?;
    Some(items.iter().map(|s| parse_node(s)).collect())
}

/// `Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::1]:4711"`
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let items = joined_values(headers, header::FORWARDED.as_str())?;
    Some(
        items
            .iter()
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    if !k.trim().eq_ignore_ascii_case("for") {
                        return None;
                    }
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    Some(parse_node(v))
                })?
            })
            .collect(),
    )
}

/// One hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:80`.
/// `unknown`, obfuscated names (`_hidden`) and garbage give `None`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn known(s: &str) -> ClientAddr {
        ClientAddr::Known(s.parse().unwrap())
    }

    #[test]
    fn resolution_table() {
        let proxies: Vec<IpNet> = vec!["10.0.0.2".parse().unwrap(), "fd00::/64".parse().unwrap()];
        let xff = "x-forwarded-for";
        let fwd = "forwarded";
        let too_long = "1.1.1.1,".repeat(40);
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, ClientAddr);
        let cases: Vec<Case> = vec![
            // No proxy involved: the peer, headers ignored.
            ("192.168.1.9", vec![], known("192.168.1.9")),
            // Spoofing from an untrusted peer changes nothing, whatever the header says.
            (
                "203.0.113.7",
                vec![(xff, "192.168.1.20")],
                known("203.0.113.7"),
            ),
            (
                "203.0.113.7",
                vec![(xff, "127.0.0.1")],
                known("203.0.113.7"),
            ),
            (
                "203.0.113.7",
                vec![(fwd, "for=127.0.0.1")],
                known("203.0.113.7"),
            ),
            ("192.168.1.9", vec![(xff, "garbage")], known("192.168.1.9")),
            // A trusted proxy: its rightmost untrusted hop.
            (
                "10.0.0.2",
                vec![(xff, "198.51.100.4")],
                known("198.51.100.4"),
            ),
            (
                "10.0.0.2",
                vec![(xff, "127.0.0.1, 198.51.100.4")],
                known("198.51.100.4"),
            ),
            // The client prepended a fake hop; the trusted chain is walked from the right.
            (
                "10.0.0.2",
                vec![(xff, "192.168.1.1, 198.51.100.4, fd00::9")],
                known("198.51.100.4"),
            ),
            // Several header lines form one list, in order.
            (
                "10.0.0.2",
                vec![(xff, "192.168.1.1"), (xff, "198.51.100.4")],
                known("198.51.100.4"),
            ),
            // Every hop trusted: the leftmost.
            (
                "10.0.0.2",
                vec![(xff, "fd00::3, 10.0.0.2")],
                known("fd00::3"),
            ),
            // Trusted proxy without any header: the proxy is the client.
            ("10.0.0.2", vec![], known("10.0.0.2")),
            // IPv4-mapped peers are the IPv4 address.
            (
                "::ffff:10.0.0.2",
                vec![(xff, "198.51.100.4")],
                known("198.51.100.4"),
            ),
            // Ports and brackets.
            (
                "10.0.0.2",
                vec![(xff, "198.51.100.4:5555")],
                known("198.51.100.4"),
            ),
            (
                "10.0.0.2",
                vec![(xff, "[2001:db8::5]:80")],
                known("2001:db8::5"),
            ),
            // Unreadable or unknown hops from a trusted proxy: unknown, never local.
            ("10.0.0.2", vec![(xff, "not-an-ip")], ClientAddr::Unknown),
            ("10.0.0.2", vec![(xff, "")], ClientAddr::Unknown),
            (
                "10.0.0.2",
                vec![(xff, too_long.as_str())],
                ClientAddr::Unknown,
            ),
            // Forwarded (RFC 7239), preferred over X-Forwarded-For.
            (
                "10.0.0.2",
                vec![(fwd, "for=198.51.100.4;proto=https"), (xff, "192.168.1.1")],
                known("198.51.100.4"),
            ),
            (
                "10.0.0.2",
                vec![(fwd, "For=\"[2001:db8:cafe::17]:4711\"")],
                known("2001:db8:cafe::17"),
            ),
            (
                "10.0.0.2",
                vec![(fwd, "for=192.168.1.1, for=198.51.100.4;by=10.0.0.2")],
                known("198.51.100.4"),
            ),
            ("10.0.0.2", vec![(fwd, "for=unknown")], ClientAddr::Unknown),
            ("10.0.0.2", vec![(fwd, "for=_hidden")], ClientAddr::Unknown),
            ("10.0.0.2", vec![(fwd, "proto=https")], ClientAddr::Unknown),
        ];
        for (peer, hs, want) in cases {
            let got = resolve(peer.parse().unwrap(), &headers(&hs), &proxies);
            assert_eq!(got, want, "peer {peer} headers {hs:?}");
        }
    }

    #[test]
    fn https_is_believed_only_from_a_trusted_proxy() {
        let proxies: Vec<IpNet> = vec!["10.0.0.2".parse().unwrap()];
        let cases = [
            ("10.0.0.2", vec![("x-forwarded-proto", "https")], true),
            ("10.0.0.2", vec![("x-forwarded-proto", "http")], false),
            ("10.0.0.2", vec![("x-forwarded-proto", "http, https")], true),
            (
                "10.0.0.2",
                vec![("forwarded", "for=1.2.3.4;proto=https")],
                true,
            ),
            (
                "10.0.0.2",
                vec![("forwarded", "for=1.2.3.4;proto=\"https\"")],
                true,
            ),
            (
                "10.0.0.2",
                vec![("forwarded", "proto=https, for=1.2.3.4;proto=http")],
                false,
            ),
            // Forwarded wins over X-Forwarded-Proto.
            (
                "10.0.0.2",
                vec![("forwarded", "for=1.2.3.4"), ("x-forwarded-proto", "https")],
                false,
            ),
            ("10.0.0.2", vec![], false),
            ("10.0.0.3", vec![("x-forwarded-proto", "https")], false),
            ("203.0.113.1", vec![("forwarded", "proto=https")], false),
        ];
        for (peer, hs, want) in cases {
            let got = proxied_https(peer.parse().unwrap(), &headers(&hs), &proxies);
            assert_eq!(got, want, "{peer} {hs:?}");
        }
    }

    #[test]
    fn no_trusted_proxies_means_headers_never_count() {
        let h = headers(&[
            ("x-forwarded-for", "127.0.0.1"),
            ("forwarded", "for=127.0.0.1"),
        ]);
        for peer in ["127.0.0.1", "10.0.0.2", "::1"] {
            assert_eq!(resolve(peer.parse().unwrap(), &h, &[]), known(peer));
        }
    }
}
