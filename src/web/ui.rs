//! The web app's files, compiled into the binary. The list below is the whole set: no
//! request path ever reaches the filesystem.
//!
//! The files are gzipped at build time (build.rs) and only the compressed bytes are in the
//! binary. They are sent as they are to every browser that accepts gzip (all do), and
//! unpacked once for a client that does not; each answer carries a strong `ETag` so a reload
//! costs a 304. On a Pi over Wi-Fi the first load is what people notice.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    /// The source file, relative to `src/web/`.
    #[cfg_attr(not(test), allow(dead_code))]
    file: &'static str,
    gzip: &'static [u8],
}

/// Text types are worth compressing; images here are tiny SVG (also text).
macro_rules! asset {
    ($path:literal, $file:literal, $ct:literal) => {
        Asset {
            path: $path,
            content_type: $ct,
            file: $file,
            gzip: include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".gz")),
        }
    };
}

#[cfg(test)]
const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("/", "assets/index.html", "text/html; charset=utf-8"),
    asset!(
        "/assets/app.js",
        "assets/app.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/core.js",
        "assets/core.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/wizard.js",
        "assets/wizard.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/account.js",
        "assets/account.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/browse.js",
        "assets/browse.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/grid.js",
        "assets/grid.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/player.js",
        "assets/player.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/settings.js",
        "assets/settings.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/restrictions.js",
        "assets/restrictions.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/admin.js",
        "assets/admin.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/backup.js",
        "assets/backup.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/assets/style.css",
        "assets/style.css",
        "text/css; charset=utf-8"
    ),
    asset!("/assets/icon.svg", "assets/icon.svg", "image/svg+xml"),
];

/// The entity tag of one asset, and its plain body once a client needed it.
struct Prepared {
    etag: HeaderValue,
    plain: OnceLock<Vec<u8>>,
}

static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();

fn prepared() -> &'static [Prepared] {
    PREPARED.get_or_init(|| ASSETS.iter().map(prepare).collect())
}

fn prepare(asset: &Asset) -> Prepared {
    // The gzip bytes are made from the file alone (no name, no time), so they name it.
    let digest = ring::digest::digest(&ring::digest::SHA256, asset.gzip);
    let tag = format!("\"{}\"", hex::encode(&digest.as_ref()[..12]));
    Prepared {
        // Hex in quotes is always a valid header value.
        etag: HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\"")),
        plain: OnceLock::new(),
    }
}

/// The uncompressed body of asset `index`.
fn plain(index: usize) -> &'static [u8] {
    prepared()[index].plain.get_or_init(|| {
        use std::io::Read;
        let mut out = Vec::new();
        // build.rs wrote these bytes with flate2; they always unpack.
        let _ = flate2::read::GzDecoder::new(ASSETS[index].gzip).read_to_end(&mut out);
        out
    })
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn serve(index: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let prep = &prepared()[index];
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == prep.etag)
        });
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(headers) {
        let mut r = asset.gzip.into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        plain(index).into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::ETAG, prep.etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    // Assets change with the binary; revalidate so an update shows at once (a 304 is cheap).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

pub fn router() -> Router {
    let mut r = Router::new();
    for (index, asset) in ASSETS.iter().enumerate() {
        r = r.route(
            asset.path,
            get(move |headers: HeaderMap| async move { serve(index, &headers) }),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html() -> &'static str {
        std::str::from_utf8(plain(0)).unwrap()
    }

    #[test]
    fn html_has_no_inline_script_or_style() {
        let html = html();
        for tag in html.split("<script").skip(1) {
            let head = &tag[..tag.find('>').unwrap()];
            assert!(head.contains("src="), "inline <script> in index.html");
        }
        assert!(
            !html.contains("style="),
            "inline style attribute in index.html"
        );
        assert!(!html.contains("<style"), "inline <style> in index.html");
        assert!(!html.contains("onclick="), "inline handler in index.html");
    }

    /// Every module the app imports, and every file the page links, is in the list (an
    /// unlisted file would be a 404 only a browser would notice).
    #[test]
    fn every_referenced_asset_is_listed() {
        let listed: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        let mut referenced = Vec::new();
        for part in html().split("\"/assets/").skip(1) {
            referenced.push(format!("/assets/{}", &part[..part.find('"').unwrap()]));
        }
        for (i, a) in ASSETS
            .iter()
            .enumerate()
            .filter(|(_, a)| a.content_type == JS)
        {
            let text = std::str::from_utf8(plain(i)).unwrap();
            for part in text.split("from \"./").skip(1) {
                referenced.push(format!("/assets/{}", &part[..part.find('"').unwrap()]));
            }
            assert!(!text.contains("import("), "{}: no dynamic imports", a.path);
        }
        assert!(referenced.len() > ASSETS.len() / 2);
        for r in &referenced {
            assert!(
                listed.contains(&r.as_str()),
                "{r} is referenced but not listed"
            );
        }
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        let cases = [
            ("gzip, deflate, br", true),
            ("br;q=1.0, gzip;q=0.8", true),
            ("*", true),
            ("identity", false),
            ("gzip;q=0", false),
            ("", false),
        ];
        for (value, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            assert_eq!(accepts_gzip(&h), want, "Accept-Encoding: {value}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn compressed_assets_round_trip_and_revalidate() {
        use std::io::Read;
        for (i, a) in ASSETS.iter().enumerate() {
            let p = &prepared()[i];
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(a.gzip)
                .read_to_end(&mut out)
                .unwrap();
            let source =
                std::fs::read(format!("{}/src/web/{}", env!("CARGO_MANIFEST_DIR"), a.file))
                    .unwrap();
            assert_eq!(out, source, "{}", a.path);
            assert_eq!(plain(i), source, "{}", a.path);
            assert!(
                a.gzip.len() < source.len() || source.len() < 512,
                "{}",
                a.path
            );
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, p.etag.clone());
            assert_eq!(
                serve(i, &h).status(),
                StatusCode::NOT_MODIFIED,
                "{}",
                a.path
            );
        }
    }
}
