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
