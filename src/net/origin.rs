//! Security-sensitive: which hosts and origins are the device's own. Two things depend on
//! it: the HTTPS redirect (it must never send a browser to a host a request merely claimed)
//! and the second line of defence behind `SameSite=Strict` for the web app's changes (a page
//! on another site must not be able to make a signed-in browser change anything).
//!
//! `Host` is chosen by the client, so it is never believed on its own: a host counts as the
//! device's when it is one of the device's names (its hostname, `<hostname>.local`,
//! `localhost`, any name on the certificate it serves) or an address the device owns (the
//! address the connection arrived on, loopback, or an address on its certificate).

use std::net::IpAddr;

use super::client::canonical;

/// What the device knows about itself for one request.
#[derive(Debug, Clone)]
pub struct OwnNames {
    /// The address this connection arrived on: the client reached the device there.
    pub local: IpAddr,
    /// Names and addresses (as text) on the certificate the device serves, if any.
    pub cert_names: Vec<String>,
    /// The system hostname.
    pub hostname: String,
}

impl OwnNames {
    /// The names for a connection that arrived on `local`.
    pub fn for_connection(local: IpAddr, cert_names: Vec<String>) -> OwnNames {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        OwnNames {
            local,
            cert_names,
            hostname,
        }
    }

    /// Whether `host` (without a port; IPv6 in brackets or not) names this device.
    pub fn is_own(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let ip = canonical(ip);
            return ip.is_loopback()
                || ip == canonical(self.local)
                || self
                    .cert_names
                    .iter()
                    .any(|n| n.parse::<IpAddr>().is_ok_and(|c| canonical(c) == ip));
        }
        super::tls::DeviceNames::new(&self.hostname, Vec::new())
            .dns_names()
            .iter()
            .chain(&self.cert_names)
            .any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(&host))
    }

    /// The host for a redirect to HTTPS: the one the request named if it is the device's,
    /// else the address the client reached the device on. Never a host only the request
    /// vouches for.
    pub fn redirect_host(&self, requested: Option<&str>) -> String {
        match requested {
            Some(h) if self.is_own(h) => h.to_owned(),
            _ => match canonical(self.local) {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            },
        }
    }
}

/// The facts about a state-changing, cookie-authenticated request that say where it came from.
#[derive(Debug, Clone, Copy)]
pub struct RequestOrigin<'a> {
    /// The `Origin` header, if sent.
    pub origin: Option<&'a str>,
    /// The `Sec-Fetch-Site` header, if sent.
    pub fetch_site: Option<&'a str>,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// The client used HTTPS (directly, or to a trusted proxy).
    pub secure: bool,
    /// The request came through a trusted proxy, which answers for `Host`.
    pub proxied: bool,
}

/// Why a cookie-authenticated change is refused as coming from another site, if it is.
pub fn foreign(req: &RequestOrigin<'_>, own: &OwnNames) -> Option<&'static str> {
    match req
        .fetch_site
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        // `same-site` is another origin on the same site (another port, a sibling name).
        Some("cross-site") | Some("same-site") => {
            return Some("the browser says it came from another site");
        }
        _ => {}
    }
    let origin = req.origin?;
    let Some((scheme, origin_host, origin_port)) = split_origin(origin) else {
        return Some("its Origin is not a web address");
    };
    let want_scheme = if req.secure { "https" } else { "http" };
    if scheme != want_scheme {
        return Some("its Origin uses another scheme than this connection");
    }
    let default_port = if req.secure { 443 } else { 80 };
    let Some(host) = req
        .host
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
    else {
        return Some("it names no host");
    };
    let same = host.host().eq_ignore_ascii_case(&origin_host)
        && host.port_u16().unwrap_or(default_port) == origin_port;
    if !same {
        return Some("its Origin is another site than the one it was sent to");
    }
    if !req.proxied && !own.is_own(host.host()) {
        return Some("it was sent to a name that is not this device's");
    }
    None
}

/// `scheme://host[:port]` → (scheme, host, port with the scheme's default).
fn split_origin(origin: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = origin.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.parse::<axum::http::uri::Authority>().ok()?;
    if authority.as_str() != rest || rest.contains('@') {
        return None;
    }
    Some((
        scheme,
        authority.host().to_ascii_lowercase(),
        authority.port_u16().unwrap_or(default),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> OwnNames {
        OwnNames {
            local: "192.168.1.20".parse().unwrap(),
            cert_names: vec!["media.example.org".into(), "10.0.0.5".into()],
            hostname: "den".into(),
        }
    }

    #[test]
    fn own_hosts() {
        let o = own();
        for h in [
            "den",
            "DEN.local",
            "localhost",
            "127.0.0.1",
            "[::1]",
            "192.168.1.20",
            "media.example.org",
            "10.0.0.5",
        ] {
            assert!(o.is_own(h), "{h}");
        }
        for h in [
            "evil.example",
            "den.evil.example",
            "192.168.1.21",
            "",
            "[::2]",
        ] {
            assert!(!o.is_own(h), "{h}");
        }
        assert_eq!(o.redirect_host(Some("evil.example")), "192.168.1.20");
        assert_eq!(o.redirect_host(None), "192.168.1.20");
        assert_eq!(o.redirect_host(Some("den.local")), "den.local");
    }

    #[test]
    fn origins() {
        let o = own();
        let req = |origin: Option<&'static str>, site: Option<&'static str>, host: &'static str| {
            RequestOrigin {
                origin,
                fetch_site: site,
                host: Some(host),
                secure: false,
                proxied: false,
            }
        };
        // (origin, Sec-Fetch-Site, Host, refused)
        let cases = [
            (None, None, "den.local", false),
            (
                Some("http://den.local"),
                Some("same-origin"),
                "den.local",
                false,
            ),
            (Some("http://den.local:80"), None, "den.local", false),
            (
                Some("http://192.168.1.20:8080"),
                None,
                "192.168.1.20:8080",
                false,
            ),
            (None, Some("none"), "den.local", false),
            (Some("https://evil.example"), None, "den.local", true),
            (Some("http://evil.example"), None, "evil.example", true),
            (Some("null"), None, "den.local", true),
            (Some("https://den.local"), None, "den.local", true),
            (Some("http://den.local:8081"), None, "den.local:8080", true),
            (None, Some("cross-site"), "den.local", true),
            (
                Some("http://den.local"),
                Some("same-site"),
                "den.local",
                true,
            ),
            (Some("http://user@den.local"), None, "den.local", true),
        ];
        for (origin, site, host, refused) in cases {
            assert_eq!(
                foreign(&req(origin, site, host), &o).is_some(),
                refused,
                "{origin:?} {site:?} {host}"
            );
        }
        // Behind a trusted proxy, its Host is believed (the public name is the proxy's).
        let mut r = req(Some("https://films.example.net"), None, "films.example.net");
        r.secure = true;
        r.proxied = true;
        assert!(foreign(&r, &o).is_none());
    }
}
