//! Security-sensitive: the Jellyfin-compatible API, as a Jellyfin app uses it, over real HTTP.
//!
//! - sign-in: public info without secrets, `AuthenticateByName` through Hearth's own login
//!   (wrong password, throttling, two-factor), every place apps put the token, each sign-in a
//!   device in Hearth's list;
//! - a grid of roles (the owner, a friend limited to one library, a little kid's profile) over
//!   every route: each role sees exactly the titles the web app shows it, and a hidden title
//!   appears in no answer — listings, ids guessed, search, images, playback, the stream,
//!   progress and played — each denial loud;
//! - the contract: every route of `compat::jellyfin::routes::ROUTES` answered (never a 5xx),
//!   in any case, signed out where it must be; unknown routes a 404;
//! - playback: `PlaybackInfo` with an app's device profile → direct play and a 206 range of
//!   the stream, or the engine's HLS; progress, stopped and played in Hearth's one watch state.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{TestServer, claimed, get, send};
use hearth::compat::jellyfin::routes::{Access, ROUTES};
use serde_json::{Value, json};

const ANNA_PW: &str = "correct horse battery";

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How an app presents its token.
#[derive(Debug, Clone, Copy)]
enum Cred<'a> {
    None,
    /// `Authorization: MediaBrowser …, Token="…"`, what current apps send.
    MediaBrowser(&'a str),
    XEmbyAuthorization(&'a str),
    XEmbyToken(&'a str),
    /// `?ApiKey=` in the URL, what media players get.
    ApiKey(&'a str),
}

const APP: &str = r#"MediaBrowser Client="Hearth Test", Device="Test Phone", DeviceId="test-device-1", Version="1.0.0""#;

fn call(
    method: &str,
    url: &str,
    cred: Cred<'_>,
    extra: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let a = common::agent();
    let url = match cred {
        Cred::ApiKey(t) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}ApiKey={t}")
        }
        _ => url.to_owned(),
    };
    let mut headers: Vec<(String, String)> = match cred {
        Cred::MediaBrowser(t) => vec![("Authorization".into(), format!("{APP}, Token=\"{t}\""))],
        Cred::XEmbyAuthorization(t) => {
            vec![(
                "X-Emby-Authorization".into(),
                format!("{APP}, Token=\"{t}\""),
            )]
        }
        Cred::XEmbyToken(t) => vec![
            ("X-Emby-Token".into(), t.to_owned()),
            ("Authorization".into(), APP.to_owned()),
        ],
        Cred::None | Cred::ApiKey(_) => vec![("Authorization".into(), APP.to_owned())],
    };
    headers.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let resp = match (method, body) {
        ("GET", _) => {
            let mut r = a.get(&url);
            for (k, v) in &headers {
                r = r.header(k, v);
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = a.delete(&url);
            for (k, v) in &headers {
                r = r.header(k, v);
            }
            r.call()
        }
        ("POST", b) => {
            let mut r = a.post(&url);
            for (k, v) in &headers {
                r = r.header(k, v);
            }
            match b {
                Some(b) => r.send_json(b),
                None => r.send_empty(),
            }
        }
        (m, _) => panic!("call() does not do {m}"),
    };
    let mut resp = resp.expect("transport");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

fn jget(s: &TestServer, path: &str, token: &str) -> Reply {
    call("GET", &s.url(path), Cred::MediaBrowser(token), &[], None)
}

fn jpost(s: &TestServer, path: &str, token: &str, body: &Value) -> Reply {
    call(
        "POST",
        &s.url(path),
        Cred::MediaBrowser(token),
        &[],
        Some(body),
    )
}

/// Signs in the way a Jellyfin app does; returns (token, user id).
fn jf_login(s: &TestServer, user: &str, pw: &str) -> (String, String) {
    let r = call(
        "POST",
        &s.url("/Users/AuthenticateByName"),
        Cred::None,
        &[],
        Some(&json!({"Username": user, "Pw": pw})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    (
        v["AccessToken"].as_str().unwrap().to_owned(),
        v["User"]["Id"].as_str().unwrap().to_owned(),
    )
}

fn wait_for_scan(s: &TestServer, token: &str, lib: u64) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let r = get(
            &s.url(&format!("/api/v1/libraries/{lib}/scan")),
            Some(token),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        if r.json()["progress"]["running"] == false {
            return;
        }
        assert!(Instant::now() < deadline, "scan never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The household: two libraries (Films: the test movies; Shows), a friend limited to Films,
/// and Mia, a little kid, whose app signed in as the owner and was switched to her profile
/// through Hearth's own API (how a device gets a profile until Quick Connect).
struct House {
    s: TestServer,
    _media: tempfile::TempDir,
    owner: String,
    films: u64,
    shows: u64,
    /// Jellyfin tokens and user ids.
    jf_owner: (String, String),
    jf_friend: (String, String),
    jf_kid: (String, String),
    /// Hearth's own ids → titles, as the owner lists them.
    all: Vec<(u64, String, u64)>,
}

fn house() -> House {
    let (s, owner) = claimed();
    let media = tempfile::tempdir().unwrap();
    common::copy_tree(&common::test_media(), media.path());
    let lib = |name: &str, kind: &str, dir: &str| {
        let r = send(
            "POST",
            &s.url("/api/v1/libraries"),
            Some(&owner),
            &json!({"name": name, "kind": kind, "folders": [media.path().join(dir).to_str().unwrap()]}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["id"].as_u64().unwrap();
        wait_for_scan(&s, &owner, id);
        id
    };
    let films = lib("Films", "movies", "Movies");
    let shows = lib("Shows", "shows", "Shows");
    let mut all = Vec::new();
    for l in [films, shows] {
        let r = get(
            &s.url(&format!("/api/v1/libraries/{l}/items?limit=500")),
            Some(&owner),
        );
        for i in r.json()["items"].as_array().unwrap() {
            all.push((
                i["id"].as_u64().unwrap(),
                i["title"].as_str().unwrap().to_owned(),
                l,
            ));
        }
    }
    // The friend.
    let r = send(
        "POST",
        &s.url("/api/v1/invites"),
        Some(&owner),
        &json!({"invitee": "ben"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let invite = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(
        "POST",
        &s.url(&format!("/api/v1/invites/{invite}/accept")),
        None,
        &json!({"username": "ben", "password": "friendly giraffe tune"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let ben = r.json()["user"]["id"].as_u64().unwrap();
    let r = send(
        "PATCH",
        &s.url(&format!("/api/v1/users/{ben}")),
        Some(&owner),
        &json!({"restrictions": {"libraries": [films]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The little kid.
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Mia", "preset": "little_kid"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mia = r.json()["id"].as_u64().unwrap();

    let jf_owner = jf_login(&s, "anna", ANNA_PW);
    let jf_friend = jf_login(&s, "ben", "friendly giraffe tune");
    let jf_kid = jf_login(&s, "anna", ANNA_PW);
    // The app's token is a Hearth device token: the owner switches that device to Mia.
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&jf_kid.0),
        &json!({"user_id": mia}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    House {
        s,
        _media: media,
        owner,
        films,
        shows,
        jf_owner,
        jf_friend,
        jf_kid,
        all,
    }
}

fn jid_item(id: u64) -> String {
    format!("48450003{:08x}{id:016x}", 0)
}

fn jid_library(id: u64) -> String {
    format!("48450002{:08x}{id:016x}", 0)
}

/// Items the web app shows this token (Hearth's own API), across both libraries, by id.
fn web_items(h: &House, token: &str) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for l in [h.films, h.shows] {
        let r = get(
            &h.s.url(&format!("/api/v1/libraries/{l}/items?limit=500")),
            Some(token),
        );
        if r.status == 404 {
            continue;
        }
        for i in r.json()["items"].as_array().unwrap() {
            out.insert(i["id"].as_u64().unwrap());
        }
    }
    out
}

/// The Hearth ids of a page's items (or of a plain array of items).
fn ids(page: &Value) -> BTreeSet<u64> {
    page.get("Items")
        .unwrap_or(page)
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|i| {
            let id = i["Id"].as_str().unwrap();
            assert!(id.starts_with("48450003"), "not an item id: {i}");
            u64::from_str_radix(&id[16..], 16).unwrap()
        })
        .collect()
}

fn names(page: &Value) -> BTreeSet<String> {
    page["Items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|i| i["Name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn public_info_and_sign_in() {
    let (s, owner) = claimed();
    // Public info: name, id, version; nothing else, no token needed, any case.
    for path in [
        "/System/Info/Public",
        "/system/info/public",
        "/SYSTEM/INFO/PUBLIC",
    ] {
        let r = call("GET", &s.url(path), Cred::None, &[], None);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let v = r.json();
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "LocalAddress",
                "ServerName",
                "Version",
                "ProductName",
                "OperatingSystem",
                "Id",
                "StartupWizardCompleted"
            ]),
            "{v}"
        );
        assert_eq!(v["ServerName"], "Den");
        assert_eq!(v["ProductName"], "Jellyfin Server");
        assert_eq!(v["Id"].as_str().unwrap().len(), 32);
    }
    assert_eq!(
        call("GET", &s.url("/Users/Public"), Cred::None, &[], None).json(),
        json!([])
    );

    // A wrong password: 401, and no device.
    let before = get(&s.url("/api/v1/devices"), Some(&owner)).json();
    let r = call(
        "POST",
        &s.url("/Users/AuthenticateByName"),
        Cred::None,
        &[],
        Some(&json!({"Username": "anna", "Pw": "wrong"})),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.json().get("AccessToken").is_none());
    assert_eq!(get(&s.url("/api/v1/devices"), Some(&owner)).json(), before);
    // Names in any case, as Jellyfin binds them (jellyfin-apiclient-python sends "username").
    let r = call(
        "POST",
        &s.url("/users/authenticatebyname"),
        Cred::None,
        &[],
        Some(&json!({"username": "anna", "pw": ANNA_PW})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let token = v["AccessToken"].as_str().unwrap().to_owned();
    assert_eq!(v["User"]["Name"], "anna");
    assert_eq!(v["User"]["Policy"]["IsAdministrator"], true);
    assert_eq!(v["ServerId"].as_str().unwrap().len(), 32);
    // The app is a device in Hearth's list, named after what it said it is.
    let devices = get(&s.url("/api/v1/devices"), Some(&owner)).json();
    assert!(
        devices.to_string().contains("Test Phone (Hearth Test)"),
        "the app's sign-in is not in the Devices list: {devices}"
    );
    // Every place apps put the token works; a forged or missing one does not.
    for cred in [
        Cred::MediaBrowser(&token),
        Cred::XEmbyAuthorization(&token),
        Cred::XEmbyToken(&token),
        Cred::ApiKey(&token),
    ] {
        let r = call("GET", &s.url("/Users/Me"), cred, &[], None);
        assert_eq!(r.status, 200, "{cred:?}: {}", r.text());
        assert_eq!(r.json()["Name"], "anna");
    }
    let forged = "hx1.".to_owned() + &"A".repeat(43);
    for cred in [
        Cred::None,
        Cred::MediaBrowser(&forged),
        Cred::ApiKey("nonsense"),
    ] {
        assert_eq!(
            call("GET", &s.url("/Users/Me"), cred, &[], None).status,
            401,
            "{cred:?}"
        );
    }
    // Signing the device out (from Hearth's own API) ends the app's token at once.
    let r = send(
        "POST",
        &s.url("/api/v1/auth/logout"),
        Some(&token),
        &json!({}),
    );
    assert!(r.status < 300, "{}", r.body);
    assert_eq!(jget(&s, "/Users/Me", &token).status, 401);

    // Two-factor: the password alone is refused with the web app's own answer.
    let r = send("POST", &s.url("/api/v1/me/totp"), Some(&owner), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = decode_b32(r.json()["secret"].as_str().unwrap());
    let code = format!(
        "{:06}",
        hearth::identity::totp::code_at(&secret, hearth::now_secs() / 30)
    );
    let r = send(
        "POST",
        &s.url("/api/v1/me/totp/confirm"),
        Some(&owner),
        &json!({"code": code}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = call(
        "POST",
        &s.url("/Users/AuthenticateByName"),
        Cred::None,
        &[],
        Some(&json!({"Username": "anna", "Pw": ANNA_PW})),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "totp_required");
    assert!(r.json().get("AccessToken").is_none());
}

/// Guessing passwords through the Jellyfin door is throttled like the web app's login: the
/// same counters, so switching doors gives no more guesses.
#[test]
fn sign_in_is_throttled_like_the_web_login() {
    let (s, _owner) = claimed();
    let mut throttled = None;
    for n in 0..30 {
        let body = json!({"Username": "anna", "Pw": format!("guess {n}")});
        let r = if n % 2 == 0 {
            call(
                "POST",
                &s.url("/Users/AuthenticateByName"),
                Cred::None,
                &[],
                Some(&body),
            )
        } else {
            let r = send(
                "POST",
                &s.url("/api/v1/auth/login"),
                None,
                &json!({"username": "anna", "password": format!("guess {n}")}),
            );
            Reply {
                status: r.status,
                headers: r.headers,
                body: r.body.into_bytes(),
            }
        };
        if r.status == 429 {
            assert!(r.header("retry-after").is_some(), "429 without Retry-After");
            throttled = Some(n);
            break;
        }
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let n = throttled.expect("30 wrong passwords and never throttled");
    assert!(n >= 2, "throttled before any guess was wrong ({n})");
    // While throttled, the right password through the Jellyfin door is refused too.
    let r = call(
        "POST",
        &s.url("/Users/AuthenticateByName"),
        Cred::None,
        &[],
        Some(&json!({"Username": "anna", "Pw": ANNA_PW})),
    );
    assert_eq!(r.status, 429, "{}", r.text());
}

/// The grid: every role × every route that names or lists items. Each role's app sees exactly
/// the titles the web app shows it; every title it may not see is absent or 404 everywhere.
#[test]
fn role_grid_hidden_titles_appear_in_no_answer() {
    let h = house();
    let roles: [(&str, &(String, String), &str); 3] = [
        ("owner", &h.jf_owner, h.owner.as_str()),
        ("friend", &h.jf_friend, h.jf_friend.0.as_str()),
        ("little kid", &h.jf_kid, h.jf_kid.0.as_str()),
    ];
    let all_titles: BTreeSet<String> = h.all.iter().map(|(_, t, _)| t.clone()).collect();
    for (role, (token, uid), web_token) in roles {
        let allowed = web_items(&h, web_token);
        assert!(!allowed.is_empty(), "{role} sees nothing at all");
        let hidden: Vec<&(u64, String, u64)> = h
            .all
            .iter()
            .filter(|(id, _, _)| !allowed.contains(id))
            .collect();
        match role {
            "owner" => assert!(hidden.is_empty(), "the owner misses {hidden:?}"),
            _ => assert!(!hidden.is_empty(), "{role} is limited, yet sees everything"),
        }

        // Views: the libraries this profile may open.
        let views = jget(&h.s, &format!("/Users/{uid}/Views"), token);
        assert_eq!(views.status, 200, "{role}: {}", views.text());
        let view_names = names(&views.json());
        let want_views: BTreeSet<String> = match role {
            "friend" => ["Films".to_owned()].into(),
            _ => ["Films".to_owned(), "Shows".to_owned()].into(),
        };
        assert_eq!(view_names, want_views, "{role}");
        assert_eq!(
            names(&jget(&h.s, "/UserViews", token).json()),
            want_views,
            "{role}"
        );

        // Every item, recursively, paged by 3: exactly the web app's titles.
        let mut seen = BTreeSet::new();
        let mut start = 0;
        loop {
            let r = jget(
                &h.s,
                &format!(
                    "/Users/{uid}/Items?Recursive=true&StartIndex={start}&Limit=3&SortBy=SortName"
                ),
                token,
            );
            assert_eq!(r.status, 200, "{role}: {}", r.text());
            let v = r.json();
            assert_eq!(
                v["TotalRecordCount"].as_u64().unwrap() as usize,
                allowed.len(),
                "{role}: {v}"
            );
            let page = ids(&v);
            if page.is_empty() {
                break;
            }
            seen.extend(page);
            start += 3;
        }
        assert_eq!(
            seen, allowed,
            "{role}: the app's items differ from the web app's"
        );
        // Under each view, and with item types, and latest: never a hidden title.
        for lib in [h.films, h.shows] {
            let r = jget(
                &h.s,
                &format!(
                    "/Items?ParentId={}&Recursive=true&Limit=500",
                    jid_library(lib)
                ),
                token,
            );
            if role == "friend" && lib == h.shows {
                assert_eq!(
                    r.status,
                    404,
                    "{role} opened a library not granted: {}",
                    r.text()
                );
                continue;
            }
            assert_eq!(r.status, 200, "{role}: {}", r.text());
            assert!(ids(&r.json()).is_subset(&allowed), "{role}");
        }
        for path in [
            format!("/Items?Recursive=true&IncludeItemTypes=Movie,Episode&Limit=500&userId={uid}"),
            format!("/Users/{uid}/Items/Latest?Limit=100"),
            "/Items/Latest?Limit=100".to_owned(),
        ] {
            let r = jget(&h.s, &path, token);
            assert_eq!(r.status, 200, "{role} {path}: {}", r.text());
            let got = ids(&r.json());
            assert!(
                got.is_subset(&allowed),
                "{role} {path}: {:?}",
                got.difference(&allowed)
            );
        }

        // Search: every title's name, found only if allowed.
        for t in &all_titles {
            let first = t.split_whitespace().next().unwrap();
            let r = jget(
                &h.s,
                &format!("/Items?Recursive=true&SearchTerm={first}&Limit=100"),
                token,
            );
            assert_eq!(r.status, 200, "{role}: {}", r.text());
            let got = ids(&r.json());
            assert!(
                got.is_subset(&allowed),
                "{role} found {:?} by search",
                got.difference(&allowed)
            );
        }

        // Each hidden title, by its guessed id, through every route: 404, loudly.
        for (id, title, _) in &hidden {
            let j = jid_item(*id);
            for path in [
                format!("/Items/{j}"),
                format!("/Users/{uid}/Items/{j}"),
                format!("/Items?Ids={j}"),
                format!("/Items/{j}/Images/Primary"),
                format!("/Videos/{j}/stream?static=true"),
                format!("/Items/{j}/PlaybackInfo"),
            ] {
                let r = jget(&h.s, &path, token);
                if path.starts_with("/Items?Ids=") {
                    assert_eq!(r.status, 200, "{role} {path}: {}", r.text());
                    assert_eq!(
                        r.json()["TotalRecordCount"],
                        0,
                        "{role} got hidden {title} by id"
                    );
                    continue;
                }
                assert_eq!(
                    r.status,
                    404,
                    "{role} reached hidden {title:?} at {path}: {}",
                    r.text()
                );
                assert!(
                    !r.text().contains(title.as_str()),
                    "{role}: the refusal names {title}"
                );
            }
            for (path, body) in [
                (format!("/Items/{j}/PlaybackInfo"), json!({})),
                (
                    "/Sessions/Playing/Progress".to_owned(),
                    json!({"ItemId": j, "PositionTicks": 10_000_000}),
                ),
                ("/Sessions/Playing".to_owned(), json!({"ItemId": j})),
                (format!("/UserPlayedItems/{j}"), json!({})),
                (format!("/Users/{uid}/PlayedItems/{j}"), json!({})),
            ] {
                let r = jpost(&h.s, &path, token, &body);
                assert_eq!(
                    r.status,
                    404,
                    "{role} reached hidden {title:?} at POST {path}: {}",
                    r.text()
                );
            }
        }
        // Nothing hidden was recorded: the resume row holds allowed titles only.
        let resume = jget(&h.s, &format!("/Users/{uid}/Items/Resume"), token);
        assert_eq!(resume.status, 200, "{role}: {}", resume.text());
        assert!(ids(&resume.json()).is_subset(&allowed), "{role}");
    }

    // The owner's image tags do not open what the kid may not see for the kid, and the kid's
    // own tags open only its own items: an image URL is bound to the device and checked now.
    let (kid_token, kid_uid) = &h.jf_kid;
    let kid_items = jget(
        &h.s,
        &format!("/Users/{kid_uid}/Items?Recursive=true&Limit=500"),
        kid_token,
    )
    .json();
    let with_art = kid_items["Items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ImageTags"]["Primary"].is_string())
        .expect("some item the kid may see has a poster")
        .clone();
    let url = format!(
        "/Items/{}/Images/Primary?tag={}&maxWidth=300",
        with_art["Id"].as_str().unwrap(),
        with_art["ImageTags"]["Primary"].as_str().unwrap()
    );
    let r = call("GET", &h.s.url(&url), Cred::None, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap_or("").starts_with("image/"));
    // The same tag on a hidden item's id: refused.
    let hidden_for_kid = h
        .all
        .iter()
        .find(|(_, t, _)| t == "Crimson Alley")
        .expect("Crimson Alley is in the test media");
    let tag = with_art["ImageTags"]["Primary"].as_str().unwrap();
    let r = call(
        "GET",
        &h.s.url(&format!(
            "/Items/{}/Images/Primary?tag={tag}",
            jid_item(hidden_for_kid.0)
        )),
        Cred::None,
        &[],
        None,
    );
    assert!(
        r.status == 403 || r.status == 404,
        "a tag opened another item: {}",
        r.status
    );
    // Without any credential: refused.
    let r = call(
        "GET",
        &h.s.url(&format!(
            "/Items/{}/Images/Primary",
            with_art["Id"].as_str().unwrap()
        )),
        Cred::None,
        &[],
        None,
    );
    assert_eq!(r.status, 401);
    // Another user's id in a path is refused, not answered for them.
    let (_, owner_uid) = &h.jf_owner;
    let (friend_token, _) = &h.jf_friend;
    let r = jget(
        &h.s,
        &format!("/Users/{owner_uid}/Items?Recursive=true"),
        friend_token,
    );
    assert_eq!(r.status, 403, "{}", r.text());
}

/// The contract: every listed route answers, with the access it is listed with, as the owner
/// and as the kid, in any case; a route Hearth does not serve is a 404 with the error shape.
#[test]
fn every_listed_route_answers() {
    let h = house();
    let (token, uid) = &h.jf_owner;
    // A film the kid may see too (rated G).
    let film = h
        .all
        .iter()
        .find(|(_, t, _)| t == "Sunny Meadow")
        .unwrap()
        .0;
    let fill = |path: &str| {
        path.replace("{userId}", uid)
            .replace("{itemId}", &jid_item(film))
            .replace("{imageType}", "Primary")
            .replace("{imageIndex}", "0")
            .replace("{displayPreferencesId}", "usersettings")
    };
    let body_for = |path: &str| -> Option<Value> {
        if path.starts_with("/Sessions/Playing") && path != "/Sessions/Playing/Ping" {
            Some(json!({"ItemId": jid_item(film), "PositionTicks": 10_000_000}))
        } else if path == "/Users/AuthenticateByName" {
            Some(json!({"Username": "anna", "Pw": ANNA_PW}))
        } else {
            Some(json!({}))
        }
    };
    for r in ROUTES {
        let path = fill(r.path);
        for (who, tok) in [("owner", token.as_str()), ("kid", h.jf_kid.0.as_str())] {
            for p in [path.clone(), path.to_lowercase()] {
                let body = if r.method == "GET" {
                    None
                } else {
                    body_for(r.path)
                };
                let res = call(
                    r.method,
                    &h.s.url(&p),
                    Cred::MediaBrowser(tok),
                    &[],
                    body.as_ref(),
                );
                assert!(
                    (200..300).contains(&res.status),
                    "{who}: {} {p} answered {}: {}",
                    r.method,
                    res.status,
                    res.text()
                );
                let ct = res.header("content-type").unwrap_or("");
                if ct.starts_with("application/json") {
                    res.json();
                }
            }
        }
        // Without a token.
        let body = if r.method == "GET" {
            None
        } else {
            body_for(r.path)
        };
        let res = call(r.method, &h.s.url(&path), Cred::None, &[], body.as_ref());
        match r.access {
            Access::Public => assert!(
                res.status < 300,
                "{} {path} public: {}",
                r.method,
                res.status
            ),
            Access::SignedIn | Access::Media => {
                assert_eq!(
                    res.status,
                    401,
                    "{} {path} answered signed out: {}",
                    r.method,
                    res.text()
                )
            }
        }
    }
    // Routes apps call that Hearth does not serve: 404 with the error shape, never a 5xx.
    for (method, path) in [
        ("GET", "/Studios".to_owned()),
        ("GET", format!("/Items/{}/Similar", jid_item(film))),
        ("GET", "/LiveTv/Channels".to_owned()),
        ("GET", "/Plugins".to_owned()),
        ("POST", "/QuickConnect/Initiate".to_owned()),
        (
            "GET",
            format!("/Items/{}/Images/Backdrop/0", jid_item(film)),
        ),
        ("GET", "/Items/not-an-id".to_owned()),
        ("GET", format!("/Users/{uid}/Items/zzzz")),
        ("GET", "/Items?StartIndex=-4".to_owned()),
    ] {
        let r = call(
            method,
            &h.s.url(&path),
            Cred::MediaBrowser(token),
            &[],
            Some(&json!({})),
        );
        assert!(
            r.status == 404 || r.status == 400 || r.status == 422,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            r.json()["error"]["code"].is_string(),
            "{path}: {}",
            r.text()
        );
    }
}

fn have_ffmpeg() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An Android-like device profile: MP4 and Matroska with H.264, AAC; HLS for the rest.
fn profile(containers: &str) -> Value {
    json!({
        "MaxStreamingBitrate": 120_000_000u64,
        "DirectPlayProfiles": [{"Container": containers, "Type": "Video", "VideoCodec": "h264", "AudioCodec": "aac"}],
        "TranscodingProfiles": [{"Container": "mp4", "Type": "Video", "Protocol": "hls", "VideoCodec": "h264", "AudioCodec": "aac"}],
    })
}

#[test]
fn playback_progress_and_played() {
    let h = house();
    let (token, uid) = &h.jf_owner;
    let film = h.all.iter().find(|(_, t, _)| t == "Paper Boats").unwrap().0;
    let j = jid_item(film);

    // Direct play: PlaybackInfo with the profile, then a 206 range of the stream.
    let r = jpost(
        &h.s,
        &format!("/Items/{j}/PlaybackInfo?UserId={uid}"),
        token,
        &json!({"DeviceProfile": profile("mp4,mkv")}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let src = &v["MediaSources"][0];
    assert_eq!(src["SupportsDirectPlay"], true, "{v}");
    assert_eq!(src["Id"], j.as_str());
    let direct = src["DirectStreamUrl"].as_str().unwrap().to_owned();
    // The URL PlaybackInfo handed out works without headers (a media player's request)…
    let r = call(
        "GET",
        &h.s.url(&direct),
        Cred::None,
        &[("Range", "bytes=0-99")],
        None,
    );
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.body.len(), 100);
    // …and so does the URL apps build themselves, with the token in the query.
    let r = call(
        "GET",
        &h.s.url(&format!("/Videos/{j}/stream?static=true&MediaSourceId={j}")),
        Cred::ApiKey(token),
        &[("Range", "bytes=100-199")],
        None,
    );
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(
        r.header("content-range").unwrap_or("").split('/').next(),
        Some("bytes 100-199")
    );

    // Conversion: a profile without Matroska gets the engine's HLS for a Matroska film.
    if have_ffmpeg() {
        let mkv = h
            .all
            .iter()
            .find(|(_, t, _)| t == "Sunny Meadow")
            .unwrap()
            .0;
        let r = jpost(
            &h.s,
            &format!("/Items/{}/PlaybackInfo", jid_item(mkv)),
            token,
            &json!({"DeviceProfile": profile("mp4")}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let src = &v["MediaSources"][0];
        assert_eq!(src["SupportsDirectPlay"], false, "{v}");
        assert_eq!(src["TranscodingSubProtocol"], "hls");
        let playlist = src["TranscodingUrl"].as_str().unwrap().to_owned();
        let r = call("GET", &h.s.url(&playlist), Cred::None, &[], None);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().starts_with("#EXTM3U"), "{}", r.text());
        let session = v["PlaySessionId"].as_str().unwrap().to_owned();
        assert!(!session.is_empty());
        // Stopping ends the conversion.
        let r = jpost(
            &h.s,
            "/Sessions/Playing/Stopped",
            token,
            &json!({"ItemId": jid_item(mkv), "PlaySessionId": session, "PositionTicks": 0}),
        );
        assert_eq!(r.status, 204, "{}", r.text());
        assert_eq!(
            call("GET", &h.s.url(&playlist), Cred::None, &[], None).status,
            404
        );
    } else {
        eprintln!("SKIPPED the HLS part: ffmpeg is missing (scripts/install-deps installs it)");
    }

    // Progress: Hearth's one watch state, which the web app shows.
    let r = jpost(&h.s, "/Sessions/Playing", token, &json!({"ItemId": j}));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = jpost(
        &h.s,
        "/Sessions/Playing/Progress",
        token,
        &json!({"ItemId": j, "PositionTicks": 20_000_000u64}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let web = get(&h.s.url(&format!("/api/v1/items/{film}")), Some(&h.owner)).json();
    assert_eq!(web["watch"]["position_ms"], 2000, "{web}");
    let resume = jget(&h.s, &format!("/Users/{uid}/Items/Resume"), token).json();
    assert!(names(&resume).contains("Paper Boats"), "{resume}");
    let item = jget(&h.s, &format!("/Users/{uid}/Items/{j}"), token).json();
    assert_eq!(
        item["UserData"]["PlaybackPositionTicks"], 20_000_000u64,
        "{item}"
    );
    // Stopped near the end counts as watched (the web app's rule).
    let r = jpost(
        &h.s,
        "/Sessions/Playing/Stopped",
        token,
        &json!({"ItemId": j, "PositionTicks": 59_900_000u64}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let web = get(&h.s.url(&format!("/api/v1/items/{film}")), Some(&h.owner)).json();
    assert_eq!(web["watch"]["watched"], true, "{web}");
    // Played / unplayed.
    let r = call(
        "DELETE",
        &h.s.url(&format!("/UserPlayedItems/{j}")),
        Cred::MediaBrowser(token),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Played"], false);
    assert_eq!(
        get(&h.s.url(&format!("/api/v1/items/{film}")), Some(&h.owner)).json()["watch"]["watched"],
        false
    );
    let r = jpost(
        &h.s,
        &format!("/Users/{uid}/PlayedItems/{j}"),
        token,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Played"], true);
    assert_eq!(
        get(&h.s.url(&format!("/api/v1/items/{film}")), Some(&h.owner)).json()["watch"]["watched"],
        true
    );
    // A bad report is a clear 4xx, never a 5xx.
    for body in [json!({}), json!({"ItemId": "nope"}), json!([1, 2])] {
        let r = jpost(&h.s, "/Sessions/Playing/Progress", token, &body);
        assert!(
            r.status == 404 || r.status == 422 || r.status == 400,
            "{body}: {} {}",
            r.status,
            r.text()
        );
    }
}

fn decode_b32(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u64, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {s}"),
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
