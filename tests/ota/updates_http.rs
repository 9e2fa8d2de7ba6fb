//! The Updates API on the real server: owner only, check against a channel on 127.0.0.1,
//! and honest 503s where the agent is needed (a laptop).

use std::collections::HashMap;

use serde_json::json;

use crate::common::{TestServer, get, send};
use crate::download::{Fault, serve};

fn claimed(channel_url: &str) -> (tempfile::TempDir, TestServer, String) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let url = channel_url.to_owned();
    let s = TestServer::start_with(&data, move |c| {
        c.updates.channel_url = url;
        c.updates.check_interval_hours = 0;
    });
    let t = crate::install_http::claim(&s);
    (tmp, s, t)
}

#[test]
fn updates_api_is_owner_only_checks_the_channel_and_refuses_install_without_agent() {
    let board = hearth::ota::service::device_board();
    let mut files = HashMap::new();
    files.insert(
        format!("/ch/{board}/stable/channel.json"),
        format!(r#"{{"board":"{board}","channel":"stable","version":"99.0.0","bundle_url":"hearth-99.0.0.hbundle","size":1000,"min_version":"0.0.1","notes":"Big one."}}"#).into_bytes(),
    );
    let channel = serve(files, Fault::None);
    let (_tmp, s, owner) = claimed(&format!("{}/ch", channel.base));

    // Nobody signed in: every route refuses before doing anything.
    for (method, path) in [
        ("GET", "/api/v1/updates"),
        ("POST", "/api/v1/updates/check"),
        ("POST", "/api/v1/updates/install"),
        ("POST", "/api/v1/updates/upload"),
        ("POST", "/api/v1/updates/reboot"),
        ("PUT", "/api/v1/updates/settings"),
    ] {
        let r = if method == "GET" {
            get(&s.url(path), None)
        } else {
            send(method, &s.url(path), None, &json!({}))
        };
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
    }

    let r = get(&s.url("/api/v1/updates"), Some(&owner));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["current_version"], hearth::VERSION);
    assert_eq!(v["available"], serde_json::Value::Null);
    assert_eq!(v["last_check"], serde_json::Value::Null);

    let r = send(
        "POST",
        &s.url("/api/v1/updates/check"),
        Some(&owner),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["available"]["version"], "99.0.0");
    assert_eq!(v["available"]["notes"], "Big one.");
    assert!(
        v["available"]["bundle_url"]
            .as_str()
            .unwrap()
            .ends_with("/stable/hearth-99.0.0.hbundle")
    );
    // Remembered across requests.
    let v = get(&s.url("/api/v1/updates"), Some(&owner)).json();
    assert_eq!(v["available"]["version"], "99.0.0");
    assert!(v["last_check"].as_u64().is_some());

    for path in ["/api/v1/updates/install", "/api/v1/updates/upload"] {
        let r = send("POST", &s.url(path), Some(&owner), &json!({}));
        assert_eq!(r.status, 503, "{path}: {}", r.body);
        assert_eq!(r.error_code(), "agent_unavailable");
        assert!(r.body.contains("Hearth appliance"), "{}", r.body);
    }
}

#[test]
fn a_check_without_channel_or_with_a_dead_channel_says_so() {
    let (_tmp, s, owner) = claimed("");
    let r = send(
        "POST",
        &s.url("/api/v1/updates/check"),
        Some(&owner),
        &json!({}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("channel_url"), "{}", r.body);

    // A port nothing listens on (bound, then closed).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_tmp, s, owner) = claimed(&format!("http://{dead}/ch"));
    let r = send(
        "POST",
        &s.url("/api/v1/updates/check"),
        Some(&owner),
        &json!({}),
    );
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.error_code(), "channel_unreachable");
    let v = get(&s.url("/api/v1/updates"), Some(&owner)).json();
    assert!(
        v["last_error"].as_str().unwrap().contains("cannot reach"),
        "{v}"
    );
}
