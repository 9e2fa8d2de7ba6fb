//! Claiming a device and signing in, over real HTTP against the real server.

mod common;

use common::{TestServer, delete, get, send};
use serde_json::json;

fn code(s: &TestServer) -> String {
    hearth::identity::setup_code::read(&s.data)
        .unwrap()
        .expect("an unclaimed server has a setup code file")
}

fn claim_body(code: &str, user: &str, password: &str) -> serde_json::Value {
    json!({
        "setup_code": code,
        "server_name": "Den",
        "owner": {"username": user, "password": password},
        "device": {"name": "Test browser", "platform": "web", "client_id": "t1"},
    })
}

fn claim(s: &TestServer) -> String {
    let r = send(
        "POST",
        &s.url("/api/v1/setup/claim"),
        None,
        &claim_body(&code(s), "anna", "correct horse battery"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["token"].as_str().unwrap().to_owned()
}

#[test]
fn unclaimed_device_reports_itself_and_claim_signs_in_the_owner() {
    let s = TestServer::start();
    let st = get(&s.url("/api/v1/setup"), None).json();
    assert_eq!(st["claimed"], false);

    let r = send(
        "POST",
        &s.url("/api/v1/setup/claim"),
        None,
        &claim_body(&code(&s), "anna", "correct horse battery"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap().to_owned();
    for flag in ["hearth_session=hth_", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["user"]["role"], "owner");

    let st = get(&s.url("/api/v1/setup"), None).json();
    assert_eq!(st["claimed"], true);
    assert_eq!(st["server_name"], "Den");
    assert!(
        hearth::identity::setup_code::read(&s.data)
            .unwrap()
            .is_none(),
        "the setup code is gone once claimed"
    );

    let me = get(&s.url("/api/v1/me"), Some(&token));
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"]["username"], "anna");
    assert_eq!(me.json()["network"], "local");
    assert_eq!(me.json()["secure"], false);
    assert!(
        me.json()["https_port"].is_null(),
        "this test server has no HTTPS listener"
    );

    // The cookie works as well as the bearer token (the web UI uses it).
    let cookie_value = cookie.split(';').next().unwrap();
    let r = common::agent()
        .get(&s.url("/api/v1/me"))
        .header("Cookie", cookie_value)
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A second claim, even with a right-looking body, is refused.
    let again = send(
        "POST",
        &s.url("/api/v1/setup/claim"),
        None,
        &claim_body("AAAA-AAAA-AAAA", "mallory", "correct horse battery"),
    );
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "already_claimed");

    let devices = get(&s.url("/api/v1/devices"), Some(&token)).json();
    assert_eq!(devices.as_array().unwrap().len(), 1);
    assert_eq!(devices[0]["name"], "Test browser");
    assert_eq!(devices[0]["current"], true);

    let audit = get(&s.url("/api/v1/audit"), Some(&token)).json();
    assert_eq!(audit[0]["event"], "claim");
}

#[test]
fn wrong_codes_are_refused_then_throttled() {
    let s = TestServer::start();
    let right = code(&s);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = send(
            "POST",
            &s.url("/api/v1/setup/claim"),
            None,
            &claim_body("WRNG-WRNG-WRNG", "anna", "correct horse battery"),
        );
        if r.status == 429 {
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!(retry >= 1);
        } else {
            assert_eq!(r.error_code(), "wrong_setup_code");
        }
        statuses.push(r.status);
    }
    assert_eq!(&statuses[..5], &[403; 5], "{statuses:?}");
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");
    // While throttled even the right code waits: guessing cannot be sped up by luck.
    let r = send(
        "POST",
        &s.url("/api/v1/setup/claim"),
        None,
        &claim_body(&right, "anna", "correct horse battery"),
    );
    assert_eq!(r.status, 429);
    assert_eq!(get(&s.url("/api/v1/setup"), None).json()["claimed"], false);
}

#[test]
fn weak_passwords_and_bad_input_are_refused_and_change_nothing() {
    let s = TestServer::start();
    let c = code(&s);
    let cases = [
        ("anna", "short", "weak_password", "too short"),
        ("anna", "password123", "weak_password", "commonly used"),
        ("annabelle", "annabelle1234", "weak_password", "username"),
        (
            "has space",
            "correct horse battery",
            "invalid_username",
            "no spaces",
        ),
    ];
    for (user, pw, want_code, want_text) in cases {
        let r = send(
            "POST",
            &s.url("/api/v1/setup/claim"),
            None,
            &claim_body(&c, user, pw),
        );
        assert_eq!(r.status, 422, "{user}/{pw}: {}", r.body);
        assert_eq!(r.error_code(), want_code);
        let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(want_text), "{msg}");
    }
    // Malformed bodies: the error shape, never a 5xx.
    for body in [json!({"setup_code": c}), json!([1, 2]), json!({"x": 1})] {
        let r = send("POST", &s.url("/api/v1/setup/claim"), None, &body);
        assert!(r.status == 422 || r.status == 400, "{}", r.body);
        assert!(!r.error_code().is_empty());
    }
    assert_eq!(get(&s.url("/api/v1/setup"), None).json()["claimed"], false);
    assert_eq!(code(&s), c, "the setup code is unchanged");
}

#[test]
fn concurrent_claims_have_exactly_one_winner() {
    let s = TestServer::start();
    let c = code(&s);
    let url = s.url("/api/v1/setup/claim");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (url, c) = (url.clone(), c.clone());
            std::thread::spawn(move || {
                send(
                    "POST",
                    &url,
                    None,
                    &claim_body(&c, &format!("owner{i}"), "correct horse battery"),
                )
                .status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
}

#[test]
fn sign_in_sign_out_and_revocation() {
    let s = TestServer::start();
    let first = claim(&s);
    let login = |user: &str, pw: &str| {
        send(
            "POST",
            &s.url("/api/v1/auth/login"),
            None,
            &json!({"username": user, "password": pw, "device": {"name": "Phone", "platform": "android"}}),
        )
    };
    // Unknown user and wrong password look the same.
    let a = login("nobody", "correct horse battery");
    let b = login("anna", "wrong horse battery");
    assert_eq!((a.status, b.status), (401, 401));
    assert_eq!(a.body, b.body);

    let ok = login("ANNA", "correct horse battery");
    assert_eq!(ok.status, 200, "{}", ok.body);
    let phone = ok.json()["token"].as_str().unwrap().to_owned();
    let phone_id = ok.json()["device_id"].as_u64().unwrap();
    assert_eq!(get(&s.url("/api/v1/me"), Some(&phone)).status, 200);

    // The owner revokes the phone from the first device: refused on its very next request.
    let r = delete(&s.url(&format!("/api/v1/devices/{phone_id}")), Some(&first));
    assert_eq!(r.status, 204);
    let r = get(&s.url("/api/v1/me"), Some(&phone));
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "not_signed_in");

    // Logout ends the first session too.
    assert_eq!(
        send(
            "POST",
            &s.url("/api/v1/auth/logout"),
            Some(&first),
            &json!({})
        )
        .status,
        204
    );
    assert_eq!(get(&s.url("/api/v1/me"), Some(&first)).status, 401);

    // Forged and malformed tokens.
    for t in [
        "hth_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "garbage",
        "hth_<>",
    ] {
        assert_eq!(get(&s.url("/api/v1/me"), Some(t)).status, 401);
    }

    let events: Vec<String> = {
        let t = login("anna", "correct horse battery").json()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        get(&s.url("/api/v1/audit"), Some(&t))
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect()
    };
    for e in ["claim", "login_failed", "login", "device_revoked", "logout"] {
        assert!(events.iter().any(|x| x == e), "{e} missing from {events:?}");
    }
}

#[test]
fn repeated_failed_sign_ins_are_throttled_with_retry_after() {
    let s = TestServer::start();
    claim(&s);
    let mut saw_429 = false;
    for _ in 0..8 {
        let r = send(
            "POST",
            &s.url("/api/v1/auth/login"),
            None,
            &json!({"username": "anna", "password": "not the password"}),
        );
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
            saw_429 = true;
            break;
        }
        assert_eq!(r.status, 401);
    }
    assert!(saw_429, "failed sign-ins were never throttled");
}

#[test]
fn owner_routes_need_the_owner_once_claimed() {
    let s = TestServer::start();
    // Before claiming, the device itself (loopback) may look at its vital signs.
    assert_eq!(get(&s.url("/api/v1/system"), None).status, 200);
    let token = claim(&s);
    let r = get(&s.url("/api/v1/system"), None);
    assert_eq!(r.status, 401);
    let r = get(&s.url("/api/v1/system"), Some(&token));
    assert_eq!(r.status, 200);
    assert!(r.json()["memory_total_bytes"].as_u64().unwrap() > 0);
    assert_eq!(get(&s.url("/api/v1/system/history"), None).status, 401);
    let r = get(&s.url("/api/v1/system/history"), Some(&token));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["interval_secs"], 10);
    assert!(r.json()["samples"].is_array());
    assert_eq!(get(&s.url("/api/v1/audit"), None).status, 401);
}

#[test]
fn reset_claim_returns_to_unclaimed_and_keeps_everyone_else() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = TestServer::start_with(&data, |_| {});
    let _ = claim(&s);
    s.stop().unwrap();

    // Another household member with a device of their own.
    let store = hearth::store::Store::open(&data.join("hearth.redb")).unwrap();
    let friend = store
        .write(|tx| {
            tx.create_user(
                "ben",
                hearth::store::users::Role::Friend,
                Some("x".into()),
                1,
            )
            .map(|u| u.unwrap())
        })
        .unwrap();
    let code = hearth::identity::reset_claim(&store, &data, None, "test").unwrap();
    drop(store);

    let s = TestServer::start_with(&data, |_| {});
    assert_eq!(get(&s.url("/api/v1/setup"), None).json()["claimed"], false);
    assert_eq!(
        hearth::identity::setup_code::read(&data).unwrap().unwrap(),
        code
    );
    let r = send(
        "POST",
        &s.url("/api/v1/setup/claim"),
        None,
        &claim_body(&code, "anna2", "another good passphrase"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // The owner's record was taken over (same id), the friend is still there.
    assert_eq!(r.json()["user"]["id"], 1);
    s.stop().unwrap();
    let store = hearth::store::Store::open(&data.join("hearth.redb")).unwrap();
    let users = store.read(|r| r.users()).unwrap();
    assert!(
        users
            .iter()
            .any(|u| u.id == friend.id && u.username == "ben")
    );
    let audit = store.read(|r| r.audit_entries(50)).unwrap();
    assert!(audit.iter().any(|e| e.event == "reset_claim"));
}

#[test]
fn reset_file_on_the_esp_resets_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let esp = tmp.path().join("esp/hearth");
    let s = TestServer::start_with(&data, |c| c.esp_dir = Some(esp.clone()));
    assert!(
        esp.join("setup-code.txt").exists(),
        "code written to the ESP"
    );
    claim(&s);
    assert!(
        !esp.join("setup-code.txt").exists(),
        "ESP copy removed on claim"
    );
    s.stop().unwrap();

    std::fs::write(esp.join("reset-claim"), b"").unwrap();
    let s = TestServer::start_with(&data, |c| c.esp_dir = Some(esp.clone()));
    assert_eq!(get(&s.url("/api/v1/setup"), None).json()["claimed"], false);
    assert!(
        !esp.join("reset-claim").exists(),
        "the flag file is used once"
    );
    let on_esp = std::fs::read_to_string(esp.join("setup-code.txt")).unwrap();
    assert_eq!(on_esp.trim(), code(&s));
}
