//! The routes Hearth serves to Jellyfin apps: one checked-in list, read by the router's test
//! (every entry is routed, nothing routed is missing here) and by the contract test in
//! `tests/jellyfin.rs` (every entry answered, as the owner and as a child, never a 5xx).
//!
//! Paths are matched without regard to case, as Jellyfin does (apps differ:
//! `System/Info/Public`, `system/info/public`). A path under a Jellyfin prefix that is not
//! listed answers 404 with the JSON error shape.

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who reaches the server (the network rules still apply).
    Public,
    /// A signed-in device (a Hearth device token in any of the app's places for it).
    SignedIn,
    /// A signed-in device, or the holder of a signed link or image tag made for one: what
    /// media players fetch without headers. Checked by `stream::access`, the one door.
    Media,
}

/// What a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Served from Hearth's model.
    Served,
    /// Well-formed and empty: something apps ask for that Hearth has nothing of (yet).
    Empty,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    /// Jellyfin's spelling; `{…}` segments are parameters.
    pub path: &'static str,
    pub access: Access,
    pub answer: Answer,
}

const fn r(method: &'static str, path: &'static str, access: Access, answer: Answer) -> Route {
    Route {
        method,
        path,
        access,
        answer,
    }
}

use Access::{Media, Public, SignedIn};
use Answer::{Empty, Served};

/// Every route, in the order an app meets them.
pub const ROUTES: &[Route] = &[
    r("GET", "/System/Info/Public", Public, Served),
    r("GET", "/System/Ping", Public, Served),
    r("POST", "/System/Ping", Public, Served),
    r("GET", "/Users/Public", Public, Empty),
    r("GET", "/QuickConnect/Enabled", Public, Served),
    r("GET", "/Branding/Configuration", Public, Empty),
    r("POST", "/Users/AuthenticateByName", Public, Served),
    r("GET", "/System/Info", SignedIn, Served),
    r("GET", "/Users/Me", SignedIn, Served),
    r("GET", "/Users/{userId}", SignedIn, Served),
    r("GET", "/Users/{userId}/Views", SignedIn, Served),
    r("GET", "/UserViews", SignedIn, Served),
    r("GET", "/Users/{userId}/Items", SignedIn, Served),
    r("GET", "/Items", SignedIn, Served),
    r("GET", "/Users/{userId}/Items/Resume", SignedIn, Served),
    r("GET", "/UserItems/Resume", SignedIn, Served),
    r("GET", "/Users/{userId}/Items/Latest", SignedIn, Served),
    r("GET", "/Items/Latest", SignedIn, Served),
    r("GET", "/Users/{userId}/Items/{itemId}", SignedIn, Served),
    r("GET", "/Items/{itemId}", SignedIn, Served),
    r("GET", "/Items/{itemId}/Images/{imageType}", Media, Served),
    r(
        "GET",
        "/Items/{itemId}/Images/{imageType}/{imageIndex}",
        Media,
        Served,
    ),
    r("GET", "/Items/{itemId}/PlaybackInfo", SignedIn, Served),
    r("POST", "/Items/{itemId}/PlaybackInfo", SignedIn, Served),
    r("GET", "/Videos/{itemId}/stream", Media, Served),
    r("POST", "/Sessions/Playing", SignedIn, Served),
    r("POST", "/Sessions/Playing/Progress", SignedIn, Served),
    r("POST", "/Sessions/Playing/Stopped", SignedIn, Served),
    r("POST", "/Sessions/Playing/Ping", SignedIn, Served),
    r("POST", "/Sessions/Capabilities", SignedIn, Served),
    r("POST", "/Sessions/Capabilities/Full", SignedIn, Served),
    r("POST", "/UserPlayedItems/{itemId}", SignedIn, Served),
    r("DELETE", "/UserPlayedItems/{itemId}", SignedIn, Served),
    r(
        "POST",
        "/Users/{userId}/PlayedItems/{itemId}",
        SignedIn,
        Served,
    ),
    r(
        "DELETE",
        "/Users/{userId}/PlayedItems/{itemId}",
        SignedIn,
        Served,
    ),
    r(
        "GET",
        "/DisplayPreferences/{displayPreferencesId}",
        SignedIn,
        Empty,
    ),
    r("GET", "/Shows/NextUp", SignedIn, Empty),
    r("GET", "/Items/Filters", SignedIn, Empty),
    r("GET", "/Genres", SignedIn, Empty),
    r("GET", "/Sessions", SignedIn, Empty),
];

/// First path segments that belong to the Jellyfin API (lower case): a request under one of
/// them that matches no route is the Jellyfin layer's 404, not the web app's.
pub const PREFIXES: &[&str] = &[
    "system",
    "users",
    "userviews",
    "useritems",
    "items",
    "videos",
    "audio",
    "sessions",
    "userplayeditems",
    "userfavoriteitems",
    "quickconnect",
    "branding",
    "displaypreferences",
    "shows",
    "genres",
    "persons",
    "studios",
    "artists",
    "search",
    "library",
    "localization",
    "playlists",
    "livetv",
    "mediasegments",
    "plugins",
    "socket",
    "web",
    "startup",
];

/// Whether a request path belongs to the Jellyfin layer.
pub fn is_jellyfin_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    PREFIXES.iter().any(|p| first.eq_ignore_ascii_case(p))
}

/// A route's path as the router matches it: lower case, parameters in axum's `{name}` form.
pub fn router_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                seg.to_owned()
            } else if let Some((lit, param)) = seg.split_once('{') {
                format!("{}{{{}", lit.to_ascii_lowercase(), param)
            } else {
                seg.to_ascii_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A request path as the router matches it: literal segments lower-cased (ids are hex, so
/// lower-casing them changes nothing a parser cares about).
pub fn canonical(path: &str) -> String {
    path.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(["GET", "POST", "DELETE"].contains(&r.method), "{r:?}");
            assert!(r.path.starts_with('/'), "{r:?}");
            assert!(is_jellyfin_path(r.path), "{r:?} is outside the prefixes");
            assert!(
                seen.insert((r.method, router_path(r.path))),
                "{r:?} is listed twice"
            );
        }
    }

    #[test]
    fn paths_match_in_any_case() {
        assert_eq!(
            router_path("/Items/{itemId}/Images/{imageType}"),
            "/items/{itemId}/images/{imageType}"
        );
        assert!(is_jellyfin_path("/SYSTEM/info/public"));
        assert!(!is_jellyfin_path("/api/v1/items"));
        assert!(!is_jellyfin_path("/"));
        assert_eq!(canonical("/System/Info/Public"), "/system/info/public");
    }
}
