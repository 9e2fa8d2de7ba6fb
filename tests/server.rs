//! The server as a client sees it: health, OpenAPI, errors, limits, headers, shutdown.

mod common;

use common::{TestServer, get};

#[test]
fn health_answers_with_version() {
    let s = TestServer::start();
    let r = get(&s.url("/api/v1/health"), None);
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["status"], "ok");
    assert_eq!(j["version"], hearth::VERSION);
}

#[test]
fn openapi_document_lists_the_core_endpoints() {
    let s = TestServer::start();
    let r = get(&s.url("/api/v1/openapi.json"), None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/api/v1/health", "/api/v1/system"] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
}

#[test]
fn unknown_paths_get_the_error_shape_and_security_headers() {
    let s = TestServer::start();
    let r = get(&s.url("/api/v1/nothing-here"), None);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn oversized_bodies_are_refused() {
    let s = TestServer::start();
    // 100 KiB: over the 64 KiB JSON limit, small enough to sit in loopback socket buffers,
    // so the client finishes writing before the server answers and always reads the 413.
    let big = format!("{{\"setup_code\": \"{}\"}}", "x".repeat(100 * 1024));
    let r = common::agent()
        .post(&s.url("/api/v1/setup/claim"))
        .header("Content-Type", "application/json")
        .send(big.as_bytes())
        .expect("the server answers");
    assert_eq!(r.status().as_u16(), 413);
    // Nothing changed and the server still answers.
    assert_eq!(get(&s.url("/api/v1/setup"), None).json()["claimed"], false);
    assert_eq!(get(&s.url("/api/v1/health"), None).status, 200);
}

#[test]
fn shutdown_is_clean_and_releases_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = TestServer::start_with(&data, |_| {});
    assert_eq!(get(&s.url("/api/v1/health"), None).status, 200);
    s.stop().unwrap();
    // The database lock is released: a second server can open the same data dir.
    let s2 = TestServer::start_with(&data, |_| {});
    assert_eq!(get(&s2.url("/api/v1/health"), None).status, 200);
}

#[test]
fn a_held_database_is_refused_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let _first = TestServer::start_with(&data, |_| {});
    let second = TestServer::start_with(&data, |_| {});
    let err = second.stop().unwrap_err();
    assert!(err.contains("in use by another hearth"), "{err}");
}

/// One raw HTTP/1.1 exchange with `Connection: close`: (status, head, body).
fn raw(s: &TestServer, request: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Cookie-authenticated (web app) changes must come from the device's own origin: a page on
/// another site cannot make the owner's browser change anything, even if a browser sent the
/// SameSite=Strict cookie along. Apps with a bearer token and requests without `Origin` are
/// not affected.
#[test]
fn cookie_changes_from_another_origin_are_refused() {
    let s = TestServer::start();
    let owner = common::claim(&s);
    let post = |name: &str, headers: &[(&str, String)]| {
        let body = format!(r#"{{"kind": "managed", "name": "{name}"}}"#);
        let mut req = format!(
            "POST /api/v1/users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            s.addr,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        raw(&s, &req)
    };
    let cookie = ("Cookie", format!("hearth_session={owner}"));
    let own = format!("http://{}", s.addr);

    let (status, _, body) = post(
        "Evil",
        &[cookie.clone(), ("Origin", "https://evil.example".into())],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cross_origin"), "{body}");
    let (status, _, body) = post(
        "Evil2",
        &[cookie.clone(), ("Sec-Fetch-Site", "cross-site".into())],
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(
        "Evil3",
        &[
            cookie.clone(),
            ("Origin", own.clone()),
            ("Sec-Fetch-Site", "same-site".into()),
        ],
    );
    assert_eq!(status, 403, "same-site is another origin: {body}");
    // The same origin on another port is another origin.
    let (status, _, body) = post(
        "Evil4",
        &[
            cookie.clone(),
            ("Origin", format!("http://127.0.0.1:{}", s.addr.port() ^ 1)),
        ],
    );
    assert_eq!(status, 403, "{body}");
    let users = get(&s.url("/api/v1/users"), Some(&owner)).body;
    assert!(!users.contains("Evil"), "nothing changed: {users}");

    // The web app itself: the device's own origin.
    let (status, _, body) = post(
        "Mia",
        &[
            cookie.clone(),
            ("Origin", own.clone()),
            ("Sec-Fetch-Site", "same-origin".into()),
        ],
    );
    assert_eq!(status, 201, "{body}");
    // No Origin (an older client) and bearer-token apps are not affected.
    let (status, _, body) = post("Leo", std::slice::from_ref(&cookie));
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = post(
        "Ada",
        &[
            ("Authorization", format!("Bearer {owner}")),
            ("Origin", "https://evil.example".into()),
        ],
    );
    assert_eq!(status, 201, "{body}");
}
