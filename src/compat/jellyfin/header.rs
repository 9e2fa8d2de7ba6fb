//! Security-sensitive: where a Jellyfin app puts its credentials and says what it is.
//!
//! Apps send `Authorization: MediaBrowser Client="…", Device="…", DeviceId="…",
//! Version="…", Token="…"` (older ones `Emby …`, or the same in `X-Emby-Authorization`), a
//! bare `X-Emby-Token` / `X-MediaBrowser-Token`, or, in URLs they hand to a media player,
//! `ApiKey=` / `api_key=`. The token is a Hearth device token; this only finds it.

use crate::identity::DeviceInfo;

/// The longest header value read; real ones are a few hundred bytes.
const MAX_HEADER: usize = 4096;

/// What the client said about itself and the token it presented, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAuth {
    pub token: Option<String>,
    /// The app (`Client="Jellyfin Android"`).
    pub client: String,
    /// The device's name (`Device="Pixel 7"`).
    pub device: String,
    /// The app's id for this installation (`DeviceId="…"`), what the owner may block.
    pub device_id: String,
    pub version: String,
}

/// The request's credential sources, as sent (header values, the query's key).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    pub authorization: Option<&'a str>,
    pub emby_authorization: Option<&'a str>,
    pub emby_token: Option<&'a str>,
    pub mediabrowser_token: Option<&'a str>,
    /// `ApiKey` or `api_key` from the query string.
    pub query_key: Option<&'a str>,
}

impl ClientAuth {
    /// Reads every source; the first token found wins, in the order the list above gives.
    /// A non-`MediaBrowser` `Authorization` (e.g. `Bearer`) is not ours and is ignored here.
    pub fn from_sources(s: Sources<'_>) -> ClientAuth {
        let mut auth = s
            .authorization
            .and_then(parse_mediabrowser)
            .or_else(|| s.emby_authorization.and_then(parse_mediabrowser))
            .unwrap_or_default();
        if auth.token.is_none() {
            auth.token = [s.emby_token, s.mediabrowser_token, s.query_key]
                .into_iter()
                .flatten()
                .map(str::trim)
                .find(|t| !t.is_empty() && t.len() <= MAX_HEADER)
                .map(str::to_owned);
        }
        auth
    }

    /// How the device appears in Hearth's Devices list.
    pub fn device_info(&self) -> DeviceInfo {
        let clip =
            |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(100).collect() };
        let name = match (self.device.is_empty(), self.client.is_empty()) {
            (false, false) => format!("{} ({})", self.device, self.client),
            (false, true) => self.device.clone(),
            (true, false) => self.client.clone(),
            (true, true) => "Jellyfin app".to_owned(),
        };
        DeviceInfo {
            name: clip(&name),
            platform: clip(format!("{} {}", self.client, self.version).trim()),
            client_id: clip(&self.device_id),
        }
    }
}

/// `MediaBrowser k="v", …` (or `Emby …`) → its fields. `None` for another scheme.
fn parse_mediabrowser(value: &str) -> Option<ClientAuth> {
    if value.len() > MAX_HEADER {
        return None;
    }
    let v = value.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    if !scheme.eq_ignore_ascii_case("mediabrowser") && !scheme.eq_ignore_ascii_case("emby") {
        return None;
    }
    let mut auth = ClientAuth::default();
    for part in split_fields(rest) {
        let Some((k, val)) = part.split_once('=') else {
            continue;
        };
        let val = val.trim().trim_matches('"');
        let val = percent_decode(val);
        match k.trim().to_ascii_lowercase().as_str() {
            "token" if !val.is_empty() => auth.token = Some(val),
            "client" => auth.client = val,
            "device" => auth.device = val,
            "deviceid" => auth.device_id = val,
            "version" => auth.version = val,
            _ => {}
        }
    }
    Some(auth)
}

/// Splits on commas outside quotes.
fn split_fields(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Jellyfin's web client percent-encodes the values; others send them plain.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(h) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(s: Sources<'_>) -> ClientAuth {
        ClientAuth::from_sources(s)
    }

    #[test]
    fn where_apps_put_the_token() {
        let mb = r#"MediaBrowser Client="Jellyfin Web", Device="Firefox", DeviceId="TW96aWxsYQ%3D%3D", Version="10.10.7", Token="hx1.abc""#;
        let table: Vec<(Sources<'_>, Option<&str>)> = vec![
            (
                Sources {
                    authorization: Some(mb),
                    ..Default::default()
                },
                Some("hx1.abc"),
            ),
            (
                Sources {
                    emby_authorization: Some(mb),
                    ..Default::default()
                },
                Some("hx1.abc"),
            ),
            (
                Sources {
                    emby_token: Some("t2"),
                    ..Default::default()
                },
                Some("t2"),
            ),
            (
                Sources {
                    mediabrowser_token: Some("t3"),
                    ..Default::default()
                },
                Some("t3"),
            ),
            (
                Sources {
                    query_key: Some("t4"),
                    ..Default::default()
                },
                Some("t4"),
            ),
            // A header without a token, the token elsewhere.
            (
                Sources {
                    authorization: Some(r#"MediaBrowser Client="Kodi", DeviceId="k1""#),
                    emby_token: Some("t5"),
                    ..Default::default()
                },
                Some("t5"),
            ),
            (
                Sources {
                    authorization: Some("Bearer hx1.x"),
                    ..Default::default()
                },
                None,
            ),
            (
                Sources {
                    authorization: Some(r#"Emby Token="e1""#),
                    ..Default::default()
                },
                Some("e1"),
            ),
            (
                Sources {
                    emby_token: Some("  "),
                    ..Default::default()
                },
                None,
            ),
            (Sources::default(), None),
        ];
        for (s, want) in table {
            assert_eq!(auth(s).token.as_deref(), want, "{s:?}");
        }
        let a = auth(Sources {
            authorization: Some(mb),
            ..Default::default()
        });
        assert_eq!(a.device_id, "TW96aWxsYQ==");
        assert_eq!(a.client, "Jellyfin Web");
        let d = a.device_info();
        assert_eq!(d.name, "Firefox (Jellyfin Web)");
        assert_eq!(d.platform, "Jellyfin Web 10.10.7");
        assert_eq!(d.client_id, "TW96aWxsYQ==");
    }

    #[test]
    fn quoted_commas_and_odd_input() {
        let a = auth(Sources {
            authorization: Some(r#"MediaBrowser Device="Living room, TV", Token="x""#),
            ..Default::default()
        });
        assert_eq!(a.device, "Living room, TV");
        assert_eq!(a.token.as_deref(), Some("x"));
        let long = format!("MediaBrowser Token=\"{}\"", "a".repeat(MAX_HEADER));
        assert_eq!(
            auth(Sources {
                authorization: Some(&long),
                ..Default::default()
            })
            .token,
            None
        );
        let ctl = auth(Sources {
            authorization: Some("MediaBrowser Device=\"a%0Ab\""),
            ..Default::default()
        });
        assert_eq!(
            ctl.device_info().name,
            "ab",
            "control characters never reach the Devices list"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
