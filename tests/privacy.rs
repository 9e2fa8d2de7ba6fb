//! The Privacy page's API: the list of every flow the device sends (the one the image tier's
//! packet capture is held against), who may read it, and the time sync setting (refused
//! where there is no root agent, checked before anything is asked of one).

mod common;

use common::{TestServer, claim, get, send};
use serde_json::{Value, json};

fn flow<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no flow {id} in {v}"))
}

/// (who, token, method, path, body, status)
type Case<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, Value, u16);

#[test]
fn the_list_follows_the_settings_and_only_the_owner_changes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(&tmp.path().join("data"), |c| {
        // Loopback (nothing listens on port 9): the check at start fails at once, on this
        // machine.
        c.updates.channel_url = "https://127.0.0.1:9/hearth".into();
        c.updates.check_interval_hours = 24;
    });
    let owner = claim(&s);
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Mia"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mia = r.json()["id"].as_u64().unwrap();
    // A second device of the owner's, handed to Mia.
    let r = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "anna", "password": "correct horse battery",
            "device": {"name": "tablet", "platform": "web", "client_id": "tablet"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let tablet = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&tablet),
        &json!({"user_id": mia}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Who may do what: (who, method, path, body, status).
    let good = json!({"mode": "off"});
    let cases: Vec<Case> = vec![
        (
            "anonymous",
            None,
            "GET",
            "/api/v1/privacy",
            Value::Null,
            401,
        ),
        (
            "anonymous",
            None,
            "PUT",
            "/api/v1/privacy/time-sync",
            good.clone(),
            401,
        ),
        (
            "managed",
            Some(&tablet),
            "GET",
            "/api/v1/privacy",
            Value::Null,
            403,
        ),
        (
            "managed",
            Some(&tablet),
            "PUT",
            "/api/v1/privacy/time-sync",
            good.clone(),
            403,
        ),
        (
            "owner",
            Some(&owner),
            "GET",
            "/api/v1/privacy",
            Value::Null,
            200,
        ),
        // Checked before any agent is asked; a laptop has none, so a valid request says so.
        (
            "owner",
            Some(&owner),
            "PUT",
            "/api/v1/privacy/time-sync",
            json!({"mode": "sometimes"}),
            422,
        ),
        (
            "owner",
            Some(&owner),
            "PUT",
            "/api/v1/privacy/time-sync",
            json!({"mode": "custom", "servers": []}),
            422,
        ),
        (
            "owner",
            Some(&owner),
            "PUT",
            "/api/v1/privacy/time-sync",
            json!({"mode": "custom", "servers": ["ntp.lan\nx"]}),
            422,
        ),
        (
            "owner",
            Some(&owner),
            "PUT",
            "/api/v1/privacy/time-sync",
            json!({"mode": "off", "servers": ["ntp.lan"]}),
            422,
        ),
        (
            "owner",
            Some(&owner),
            "PUT",
            "/api/v1/privacy/time-sync",
            json!({"mode": "off", "file": "/etc/passwd"}),
            422,
        ),
        (
            "owner",
            Some(&owner),
            "PUT",
            "/api/v1/privacy/time-sync",
            good.clone(),
            501,
        ),
        (
            "owner",
            Some(&owner),
            "PUT",
            "/api/v1/privacy/time-sync",
            json!({"mode": "custom", "servers": ["192.168.1.1"]}),
            501,
        ),
    ];
    for (who, token, method, path, body, want) in cases {
        let r = if method == "GET" {
            get(&s.url(path), token)
        } else {
            send(method, &s.url(path), token, &body)
        };
        assert_eq!(r.status, want, "{who} {method} {path} {body}: {}", r.body);
        if want >= 400 {
            assert!(
                !r.error_code().is_empty(),
                "{who} {method} {path}: {}",
                r.body
            );
        }
    }

    let v = get(&s.url("/api/v1/privacy"), Some(&owner)).json();
    // A laptop keeps its own time: no time sync of Hearth's, and no setting for it.
    assert_eq!(v["time_sync"], Value::Null);
    assert!(
        !v["flows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "time-sync")
    );
    let up = flow(&v, "update-check");
    assert_eq!(up["scope"], "internet");
    assert_eq!(up["enabled"], true);
    assert_eq!(up["hosts"], json!(["127.0.0.1"]));
    assert_eq!(up["match"], json!([{"proto": "tcp", "ports": [9]}]));
    // Given by address: nothing to look up.
    assert_eq!(flow(&v, "name-lookups")["enabled"], false);
    for id in ["dhcp", "link", "mdns", "ssdp", "port-mapping", "answers"] {
        assert_eq!(flow(&v, id)["scope"], "lan", "{id}");
    }
    // Remote access is off (and UPnP is not allowed on a laptop): the router is never asked.
    assert_eq!(flow(&v, "port-mapping")["enabled"], false);
    // Every internet flow comes first and says how to turn it off.
    let scopes: Vec<&str> = v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["scope"].as_str().unwrap())
        .collect();
    assert!(
        scopes
            .windows(2)
            .all(|w| !(w[0] == "lan" && w[1] == "internet")),
        "{scopes:?}"
    );

    // Update checks off: the list says so.
    let r = send(
        "PUT",
        &s.url("/api/v1/updates/settings"),
        Some(&owner),
        &json!({"check_interval_hours": 0}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = get(&s.url("/api/v1/privacy"), Some(&owner)).json();
    assert_eq!(flow(&v, "update-check")["enabled"], false);
    assert!(
        flow(&v, "update-check")["carries"]
            .as_str()
            .unwrap()
            .contains("only when you press Check now")
    );
}
