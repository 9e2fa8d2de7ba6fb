//! The household over HTTP: managed profiles, guest, PINs and switching, home mode,
//! friends' invites, removal, two-factor sign-in, blocked devices.

mod common;

use common::{TestServer, claimed, delete, get, send};
use serde_json::json;

#[test]
fn managed_profiles_pins_switching_and_home_mode() {
    let (s, owner) = claimed();
    let home = get(&s.url("/api/v1/settings/home"), Some(&owner)).json();
    assert_eq!(home["on"], false);

    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Mia"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mia = r.json()["id"].as_u64().unwrap();
    let home = get(&s.url("/api/v1/settings/home"), Some(&owner)).json();
    assert_eq!(home["on"], true, "a managed profile turns home mode on");
    assert!(home["reasons"][0].as_str().unwrap().contains("managed"));
    let dlna = get(&s.url("/api/v1/dlna"), Some(&owner)).json();
    assert_eq!(dlna["active"], false, "home mode switches DLNA off");
    assert_eq!(
        dlna["enabled"], true,
        "…without writing over the owner's switch"
    );

    // Mia gets a PIN; switching to her needs it, wrong PINs are throttled.
    let r = send(
        "PUT",
        &s.url(&format!("/api/v1/users/{mia}/pin")),
        Some(&owner),
        &json!({"pin": "12a4"}),
    );
    assert_eq!(r.status, 422);
    let r = send(
        "PUT",
        &s.url(&format!("/api/v1/users/{mia}/pin")),
        Some(&owner),
        &json!({"pin": "1234"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let profiles = get(&s.url("/api/v1/auth/profiles"), Some(&owner)).json();
    assert_eq!(profiles.as_array().unwrap().len(), 2);

    let sw = |pin: Option<&str>| {
        send(
            "POST",
            &s.url("/api/v1/auth/switch"),
            Some(&owner),
            &json!({"user_id": mia, "pin": pin}),
        )
    };
    assert_eq!(sw(None).error_code(), "pin_required");
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(sw(Some("0000")).status);
    }
    assert_eq!(&codes[..3], &[403, 403, 403], "{codes:?}");
    assert_eq!(codes[4], 429, "wrong PINs are throttled: {codes:?}");

    // A fresh profile without a PIN switches at once; then the device acts as that profile.
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Leo"}),
    );
    let leo = r.json()["id"].as_u64().unwrap();
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&owner),
        &json!({"user_id": leo}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let me = get(&s.url("/api/v1/me"), Some(&owner)).json();
    assert_eq!(me["user"]["username"], "Leo");
    // Leo is not the owner: owner routes are closed to this device now.
    assert_eq!(get(&s.url("/api/v1/users"), Some(&owner)).status, 403);
    // Without an owner PIN there is no way back up on this device: a child cannot become
    // the owner. Leo may not set the owner's PIN either.
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&owner),
        &json!({"user_id": 1}),
    );
    assert_eq!(r.error_code(), "owner_pin_required");
    let r = send(
        "PUT",
        &s.url("/api/v1/users/1/pin"),
        Some(&owner),
        &json!({"pin": "9876"}),
    );
    assert_eq!(r.error_code(), "not_yours");
    // The owner signs in again with the password and sets a PIN; now the PIN is the way back.
    let owner = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "anna", "password": "correct horse battery"}),
    )
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = send(
        "PUT",
        &s.url("/api/v1/users/1/pin"),
        Some(&owner),
        &json!({"pin": "9876"}),
    );
    assert_eq!(r.status, 204);
    send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&owner),
        &json!({"user_id": leo}),
    );
    let back = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&owner),
        &json!({"user_id": 1}),
    );
    assert_eq!(back.error_code(), "pin_required");
    let back = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&owner),
        &json!({"user_id": 1, "pin": "9876"}),
    );
    assert_eq!(back.status, 200);

    // Removal needs confirmation, then takes the profile and its devices.
    let r = delete(&s.url(&format!("/api/v1/users/{leo}")), Some(&owner));
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "confirmation_required");
    let r = delete(
        &s.url(&format!("/api/v1/users/{leo}?confirm=true")),
        Some(&owner),
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        get(&s.url(&format!("/api/v1/users/{leo}")), Some(&owner)).status,
        404
    );
    assert_eq!(
        delete(&s.url("/api/v1/users/1?confirm=true"), Some(&owner)).status,
        422,
        "the owner stays"
    );

    let events: Vec<String> = get(&s.url("/api/v1/audit"), Some(&owner))
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    for e in [
        "user_created",
        "pin_changed",
        "switch_failed",
        "profile_switched",
        "user_removed",
    ] {
        assert!(events.iter().any(|x| x == e), "{e} not audited: {events:?}");
    }
}

#[test]
fn guest_can_be_enabled_but_never_gets_a_pin() {
    let (s, owner) = claimed();
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "guest"}),
    );
    assert_eq!(r.status, 201);
    let guest = r.json()["id"].as_u64().unwrap();
    assert_eq!(r.json()["role"], "guest");
    let r = send(
        "PUT",
        &s.url(&format!("/api/v1/users/{guest}/pin")),
        Some(&owner),
        &json!({"pin": "1111"}),
    );
    assert_eq!(r.error_code(), "guest_cannot_have_pin");
    let r = send(
        "PATCH",
        &s.url(&format!("/api/v1/users/{guest}")),
        Some(&owner),
        &json!({"enabled": false}),
    );
    assert_eq!(r.json()["enabled"], false);
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&owner),
        &json!({"user_id": guest}),
    );
    assert_eq!(
        r.error_code(),
        "guest_disabled",
        "a disabled guest cannot be switched to"
    );
}

#[test]
fn invites_work_once_and_expire() {
    let (s, owner) = claimed();
    let r = send(
        "POST",
        &s.url("/api/v1/invites"),
        Some(&owner),
        &json!({"invitee": "ben@example.org", "expires_in_hours": 2}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&s.url("/api/v1/invites"), Some(&owner))
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let accept = |t: &str, user: &str| {
        send(
            "POST",
            &s.url(&format!("/api/v1/invites/{t}/accept")),
            None,
            &json!({"username": user, "password": "friendly giraffe tune"}),
        )
    };
    let r = accept(&token, "ben");
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["user"]["role"], "friend");
    let ben = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&s.url("/api/v1/me"), Some(&ben)).json()["user"]["username"],
        "ben"
    );
    // The friend is no owner, and cannot switch profiles.
    assert_eq!(get(&s.url("/api/v1/users"), Some(&ben)).status, 403);
    assert_eq!(
        send(
            "POST",
            &s.url("/api/v1/auth/switch"),
            Some(&ben),
            &json!({"user_id": 1})
        )
        .status,
        403
    );
    // Single use.
    assert_eq!(accept(&token, "ben2").error_code(), "invite_invalid");
    assert!(
        get(&s.url("/api/v1/invites"), Some(&owner))
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A revoked invite stops working.
    let r = send(
        "POST",
        &s.url("/api/v1/invites"),
        Some(&owner),
        &json!({"invitee": "carl"}),
    );
    let (t2, id2) = (
        r.json()["token"].as_str().unwrap().to_owned(),
        r.json()["id"].as_u64().unwrap(),
    );
    assert_eq!(
        delete(&s.url(&format!("/api/v1/invites/{id2}")), Some(&owner)).status,
        204
    );
    assert_eq!(accept(&t2, "carl").error_code(), "invite_invalid");
    // Bad input.
    let r = send(
        "POST",
        &s.url("/api/v1/invites"),
        Some(&owner),
        &json!({"invitee": "dora", "expires_in_hours": 100000}),
    );
    assert_eq!(r.error_code(), "invalid_expiry");
}

#[test]
fn expired_invites_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (secret, hash) = hearth::identity::token::generate().unwrap();
    {
        let store = hearth::store::Store::open(&data.join("hearth.redb")).unwrap();
        store
            .write(|tx| {
                tx.create_invite(hearth::store::invites::InviteRecord {
                    id: 0,
                    token_hash: hash,
                    invitee: "late".into(),
                    libraries: None,
                    created_by: 1,
                    created_at: 1,
                    expires_at: 2,
                })
            })
            .unwrap();
    }
    let s = TestServer::start_with(&data, |_| {});
    let r = send(
        "POST",
        &s.url(&format!("/api/v1/invites/{secret}/accept")),
        None,
        &json!({"username": "late", "password": "friendly giraffe tune"}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.error_code(), "invite_invalid");
}

#[test]
fn two_factor_sign_in() {
    let (s, owner) = claimed();
    let r = send("POST", &s.url("/api/v1/me/totp"), Some(&owner), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let e = r.json();
    assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret_b32 = e["secret"].as_str().unwrap().to_owned();
    let recovery = e["recovery_codes"][0].as_str().unwrap().to_owned();
    let secret = decode_b32(&secret_b32);
    let now = hearth::now_secs();
    let code = |t: u64| format!("{:06}", hearth::identity::totp::code_at(&secret, t / 30));
    assert_eq!(
        send(
            "POST",
            &s.url("/api/v1/me/totp/confirm"),
            Some(&owner),
            &json!({"code": "000000"})
        )
        .status,
        if code(now) == "000000" { 204 } else { 401 }
    );
    let r = send(
        "POST",
        &s.url("/api/v1/me/totp/confirm"),
        Some(&owner),
        &json!({"code": code(now)}),
    );
    assert_eq!(r.status, 204, "{}", r.body);

    let login = |totp: Option<String>| {
        send(
            "POST",
            &s.url("/api/v1/auth/login"),
            None,
            &json!({"username": "anna", "password": "correct horse battery", "totp": totp}),
        )
    };
    assert_eq!(login(None).error_code(), "totp_required");
    // The code used to confirm cannot be replayed; the next step's code works.
    assert_eq!(login(Some(code(now))).error_code(), "wrong_totp");
    assert_eq!(login(Some(code(now + 30))).status, 200);
    assert_eq!(login(Some(recovery.clone())).status, 200);
    assert_eq!(
        login(Some(recovery)).error_code(),
        "wrong_totp",
        "recovery codes work once"
    );
}

fn decode_b32(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u64, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("bad base32"),
        };
        buf = (buf << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

#[test]
fn blocked_devices_cannot_sign_in_again() {
    let (s, owner) = claimed();
    let login = || {
        send(
            "POST",
            &s.url("/api/v1/auth/login"),
            None,
            &json!({"username": "anna", "password": "correct horse battery", "device": {"name": "Old tablet", "client_id": "tab-1"}}),
        )
    };
    let r = login();
    let id = r.json()["device_id"].as_u64().unwrap();
    let tablet = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        send(
            "POST",
            &s.url(&format!("/api/v1/devices/{id}/block")),
            Some(&owner),
            &json!({})
        )
        .status,
        204
    );
    assert_eq!(get(&s.url("/api/v1/me"), Some(&tablet)).status, 401);
    assert_eq!(login().error_code(), "device_blocked");
}

/// Invites a friend and accepts as `name`, signing in with `client_id`; returns
/// (user id, token).
fn friend(s: &TestServer, owner: &str, name: &str, client_id: &str) -> (u64, String) {
    let r = send(
        "POST",
        &s.url("/api/v1/invites"),
        Some(owner),
        &json!({"invitee": name}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let t = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(
        "POST",
        &s.url(&format!("/api/v1/invites/{t}/accept")),
        None,
        &json!({"username": name, "password": "friendly giraffe tune",
                "device": {"name": "Phone", "client_id": client_id}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    (
        r.json()["user"]["id"].as_u64().unwrap(),
        r.json()["token"].as_str().unwrap().to_owned(),
    )
}

/// (enabled, active, home mode) of DLNA, and the stored network switch.
fn dlna_state(s: &TestServer, owner: &str) -> (bool, bool, bool, bool) {
    let v = get(&s.url("/api/v1/dlna"), Some(owner)).json();
    let net = get(&s.url("/api/v1/settings/network"), Some(owner)).json();
    (
        v["enabled"].as_bool().unwrap(),
        v["active"].as_bool().unwrap(),
        v["home_mode"].as_bool().unwrap(),
        net["dlna"].as_bool().unwrap(),
    )
}

#[test]
fn a_friends_pin_is_refused_and_never_turns_on_home_mode() {
    let (s, owner) = claimed();
    // The guest, for everyone on loopback without signing in.
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "guest"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = send(
        "PATCH",
        &s.url("/api/v1/settings/network"),
        Some(&owner),
        &json!({"allowed_without_auth": {"networks": ["127.0.0.0/8"], "profile": "guest"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&s.url("/api/v1/libraries"), None).status, 200);
    let before = dlna_state(&s, &owner);
    assert_eq!(before, (true, true, false, true));

    let (fred, fred_token) = friend(&s, &owner, "fred", "fred-phone");
    let r = send(
        "PUT",
        &s.url(&format!("/api/v1/users/{fred}/pin")),
        Some(&fred_token),
        &json!({"pin": "1234"}),
    );
    assert_eq!(r.status, 403, "a friend cannot set a PIN: {}", r.body);
    assert_eq!(r.error_code(), "friend_cannot_have_pin");
    assert!(r.body.contains("friend"), "{}", r.body);
    // Nor can the owner give a friend one.
    let r = send(
        "PUT",
        &s.url(&format!("/api/v1/users/{fred}/pin")),
        Some(&owner),
        &json!({"pin": "1234"}),
    );
    assert_eq!(r.error_code(), "friend_cannot_have_pin", "{}", r.body);

    let home = get(&s.url("/api/v1/settings/home"), Some(&owner)).json();
    assert_eq!(home["on"], false, "{home}");
    assert_eq!(dlna_state(&s, &owner), before, "DLNA untouched");
    assert_eq!(
        get(&s.url("/api/v1/libraries"), None).status,
        200,
        "the allowed network still works"
    );
}

#[test]
fn home_modes_dlna_effect_is_derived_and_ends_with_home_mode() {
    let (s, owner) = claimed();
    assert_eq!(dlna_state(&s, &owner), (true, true, false, true));
    // A managed profile with a PIN: home mode, DLNA not answering, the owner's switch kept.
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Mia"}),
    );
    let mia = r.json()["id"].as_u64().unwrap();
    let pin = |id: u64, pin: Option<&str>| {
        let r = send(
            "PUT",
            &s.url(&format!("/api/v1/users/{id}/pin")),
            Some(&owner),
            &json!({ "pin": pin }),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    };
    pin(mia, Some("1234"));
    assert_eq!(dlna_state(&s, &owner), (true, false, true, true));
    pin(mia, None);
    assert_eq!(
        delete(
            &s.url(&format!("/api/v1/users/{mia}?confirm=true")),
            Some(&owner)
        )
        .status,
        204
    );
    assert_eq!(
        dlna_state(&s, &owner),
        (true, true, false, true),
        "home mode over: DLNA is back to the owner's choice"
    );

    // The owner's own PIN, set and cleared: the same.
    pin(1, Some("4321"));
    assert_eq!(dlna_state(&s, &owner), (true, false, true, true));
    pin(1, None);
    assert_eq!(dlna_state(&s, &owner), (true, true, false, true));

    // The owner's "off" survives home mode coming and going too.
    let r = send(
        "PUT",
        &s.url("/api/v1/dlna"),
        Some(&owner),
        &json!({"enabled": false}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    pin(1, Some("4321"));
    pin(1, None);
    assert_eq!(dlna_state(&s, &owner), (false, false, false, false));
}

#[test]
fn a_suspended_user_cannot_sign_in_and_lifting_restores_their_devices() {
    let (s, owner) = claimed();
    let (fred, phone) = friend(&s, &owner, "fred", "fred-phone");
    assert_eq!(get(&s.url("/api/v1/me"), Some(&phone)).status, 200);
    let login = |client_id: &str| {
        send(
            "POST",
            &s.url("/api/v1/auth/login"),
            None,
            &json!({"username": "fred", "password": "friendly giraffe tune",
                    "device": {"name": "Laptop", "client_id": client_id}}),
        )
    };
    let suspend = |id: u64, on: bool| {
        send(
            "PATCH",
            &s.url(&format!("/api/v1/users/{id}")),
            Some(&owner),
            &json!({ "suspended": on }),
        )
    };

    let r = suspend(fred, true);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["suspended"], true);
    let r = get(&s.url("/api/v1/me"), Some(&phone));
    assert_eq!(r.status, 401, "the old token is refused: {}", r.body);
    assert_eq!(r.error_code(), "account_suspended");
    // A new client id (or none) is no way around it.
    for id in ["fred-phone", "brand-new-id", ""] {
        let r = login(id);
        assert_eq!(r.status, 403, "{id}: {}", r.body);
        assert_eq!(r.error_code(), "account_suspended");
        assert!(r.body.contains("suspended by the owner"), "{}", r.body);
    }
    // The device is kept, so lifting the suspension restores it.
    let devices = get(&s.url("/api/v1/devices"), Some(&owner)).body;
    assert!(devices.contains("fred-phone"), "{devices}");
    assert_eq!(suspend(fred, false).json()["suspended"], false);
    assert_eq!(get(&s.url("/api/v1/me"), Some(&phone)).status, 200);
    assert_eq!(login("brand-new-id").status, 200);

    // A suspended guest is not the profile of an allowed network; a suspended managed
    // profile cannot be switched to.
    let guest = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "guest"}),
    );
    let guest = guest.json()["id"].as_u64().unwrap();
    send(
        "PATCH",
        &s.url("/api/v1/settings/network"),
        Some(&owner),
        &json!({"allowed_without_auth": {"networks": ["127.0.0.0/8"], "profile": "guest"}}),
    );
    assert_eq!(get(&s.url("/api/v1/libraries"), None).status, 200);
    assert_eq!(suspend(guest, true).status, 200);
    let r = get(&s.url("/api/v1/libraries"), None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.error_code(), "account_suspended");
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Mia"}),
    );
    let mia = r.json()["id"].as_u64().unwrap();
    assert_eq!(suspend(mia, true).status, 200);
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&owner),
        &json!({"user_id": mia}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error_code(), "profile_suspended");

    // Never the owner.
    assert_eq!(suspend(1, true).error_code(), "cannot_suspend_owner");
    assert_eq!(get(&s.url("/api/v1/me"), Some(&owner)).status, 200);

    let events = get(&s.url("/api/v1/audit"), Some(&owner)).body;
    for e in ["user_suspended", "user_resumed", "login_refused"] {
        assert!(events.contains(e), "{e} not audited");
    }
}

/// Names that read like someone already on the device are refused wherever a name is
/// made: a new profile, a rename, an accepted invite. Names are kept in NFKC.
#[test]
fn lookalike_usernames_are_refused() {
    let (s, owner) = claimed();
    let create = |name: &str| {
        send(
            "POST",
            &s.url("/api/v1/users"),
            Some(&owner),
            &json!({"kind": "managed", "name": name}),
        )
    };
    let lookalikes = [
        "\u{430}nna",         // Cyrillic а
        "\u{ff41}\u{ff4e}na", // full-width ａｎ
        "ANNA",               // case
        "\u{3b1}nn\u{3b1}",   // Greek α
        "\u{1d41a}nna",       // mathematical bold a
    ];
    for name in lookalikes {
        let r = create(name);
        assert_eq!(r.status, 422, "{name:?}: {}", r.body);
        assert_eq!(r.error_code(), "username_lookalike", "{name:?}");
        assert!(
            r.body.contains("anna"),
            "the owner is told whom it looks like: {}",
            r.body
        );
    }
    let r = create("\u{ff2c}ily"); // full-width Ｌ: kept as plain "Lily"
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.json()["username"],
        "Lily",
        "names are kept in NFKC: {}",
        r.body
    );
    let lily = r.json()["id"].as_u64().unwrap();
    let r = create("Mia");
    assert_eq!(r.status, 201, "{}", r.body);
    let mia = r.json()["id"].as_u64().unwrap();
    // Renaming Mia to look like Lily is refused; renaming Lily to her own look is fine.
    let rename = |id: u64, name: &str| {
        send(
            "PATCH",
            &s.url(&format!("/api/v1/users/{id}")),
            Some(&owner),
            &json!({"name": name}),
        )
    };
    let r = rename(mia, "1ily");
    assert_eq!(r.error_code(), "username_lookalike", "{}", r.body);
    assert_eq!(rename(lily, "LILY").status, 200);
    // An invite accepted under a look-alike name is refused without naming anyone.
    let r = send(
        "POST",
        &s.url("/api/v1/invites"),
        Some(&owner),
        &json!({"invitee": "ben", "expires_in_hours": 2}),
    );
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(
        "POST",
        &s.url(&format!("/api/v1/invites/{token}/accept")),
        None,
        &json!({"username": "\u{43e}wner", "password": "friendly giraffe tune"}),
    );
    assert_eq!(r.status, 201, "no one is called owner here: {}", r.body);
    let r = send(
        "POST",
        &s.url("/api/v1/invites"),
        Some(&owner),
        &json!({"invitee": "cat", "expires_in_hours": 2}),
    );
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(
        "POST",
        &s.url(&format!("/api/v1/invites/{token}/accept")),
        None,
        &json!({"username": "0wner", "password": "friendly giraffe tune"}),
    );
    assert_eq!(r.error_code(), "username_lookalike", "{}", r.body);
    assert!(
        !r.body.contains("\u{43e}wner"),
        "a stranger is not told names: {}",
        r.body
    );
    // Sign-in finds the account whatever compatibility form is typed.
    let r = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "\u{ff41}nna", "password": "correct horse battery"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Being reached from outside is the owner's alone: the port mapping's state (which shows
/// the home's internet address), its settings and the reachability check. Each refused
/// request would change something if it ran, and the checks after the table fail loudly if
/// one did.
#[test]
fn only_the_owner_may_see_or_change_how_the_device_is_reached() {
    let (s, owner) = claimed();
    let (_, ben) = friend(&s, &owner, "ben", "c-ben");
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Leo"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let leo_id = r.json()["id"].as_u64().unwrap();
    // A second device of the owner's, switched to Leo.
    let leo = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "anna", "password": "correct horse battery"}),
    )
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&leo),
        &json!({"user_id": leo_id}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let manual = json!({"port_mode": "manual", "manual_public_port": 8443, "public_name": "elsewhere.example.org"});
    let who: Vec<(&str, Option<&str>)> = vec![
        ("managed", Some(&leo)),
        ("friend", Some(&ben)),
        ("anonymous", None),
        ("bad token", Some("not-a-token")),
    ];
    for (name, token) in &who {
        let rows: Vec<(&str, u16)> = vec![
            ("view", get(&s.url("/api/v1/reach"), *token).status),
            (
                "change settings",
                send("PUT", &s.url("/api/v1/reach/settings"), *token, &manual).status,
            ),
            (
                "run the check",
                send("POST", &s.url("/api/v1/reach/check"), *token, &json!({})).status,
            ),
        ];
        for (action, status) in rows {
            assert!(
                status == 401 || status == 403,
                "{name} may not {action}: got {status}"
            );
        }
    }
    // Nothing changed and no check ran.
    let v = get(&s.url("/api/v1/reach"), Some(&owner));
    assert_eq!(v.status, 200, "{}", v.body);
    let v = v.json();
    assert_eq!(v["settings"]["port_mode"], "automatic");
    assert_eq!(v["settings"]["public_name"], json!(null));
    assert_eq!(v["last_check"], json!(null));
    assert_eq!(v["mapping"]["phase"], "off");
    assert!(
        !get(&s.url("/api/v1/audit"), Some(&owner))
            .body
            .contains("reach_settings_changed")
    );
    // A probe with a made-up token is nobody's.
    assert_eq!(
        get(
            &s.url("/api/v1/reach/probe/00112233445566778899aabbccddeeff"),
            None
        )
        .status,
        404
    );

    // The owner may, and each change is audited; the check says plainly that remote access
    // is off.
    let r = send(
        "PUT",
        &s.url("/api/v1/reach/settings"),
        Some(&owner),
        &manual,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["settings"]["public_name"], "elsewhere.example.org");
    assert_eq!(r.json()["public_url"], json!(null), "remote access is off");
    let r = send(
        "POST",
        &s.url("/api/v1/reach/check"),
        Some(&owner),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["verdict"], "off");
    assert_eq!(
        get(&s.url("/api/v1/audit"), Some(&owner))
            .body
            .matches("reach_settings_changed")
            .count(),
        1
    );
}
