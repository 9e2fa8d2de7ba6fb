//! The web app's files, compiled into the binary. The list below is the whole set: no
//! request path ever reaches the filesystem.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        path: "/assets/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/style.css"),
    },
    Asset {
        path: "/assets/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/icon.svg"),
    },
];

fn serve(asset: &'static Asset) -> Response {
    let mut resp = asset.body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Assets change with the binary; revalidate so an update shows at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

pub fn router() -> Router {
    let mut r = Router::new();
    for asset in ASSETS {
        r = r.route(asset.path, get(move || async move { serve(asset) }));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
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
}
