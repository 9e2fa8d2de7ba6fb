//! What a parent sets up, over real HTTP: the rating names and presets the restrictions
//! editor shows, the preview of what restrictions let through, and the owner's overrides of an
//! item's rating, labels and title — which every path (lists, search, item pages, artwork,
//! streams, DLNA, the preview) must see at once, and which survive a rescan. Only the owner
//! may use any of it: the new routes are tried by every role.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, claimed, delete, get, send};
use serde_json::{Value, json};

fn media(dir: &str) -> String {
    common::test_media()
        .join(dir)
        .canonicalize()
        .expect("the generated test media")
        .to_str()
        .unwrap()
        .to_owned()
}

fn wait_scan(s: &TestServer, token: &str, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = get(&s.url(&format!("/api/v1/libraries/{id}/scan")), Some(token)).json();
        if v["progress"]["running"] == false {
            return;
        }
        assert!(Instant::now() < deadline, "scan never finished: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn library(s: &TestServer, token: &str, name: &str, kind: &str, folder: &str) -> u64 {
    let r = send(
        "POST",
        &s.url("/api/v1/libraries"),
        Some(token),
        &json!({"name": name, "kind": kind, "folders": [folder]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_u64().unwrap();
    wait_scan(s, token, id);
    id
}

fn titles(v: &Value) -> Vec<String> {
    let list = v
        .as_array()
        .or_else(|| v["items"].as_array())
        .unwrap_or_else(|| panic!("no list: {v}"));
    let mut t: Vec<String> = list
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_owned())
        .collect();
    t.sort();
    t
}

fn list(s: &TestServer, token: &str, lib: u64) -> Vec<String> {
    titles(
        &get(
            &s.url(&format!("/api/v1/libraries/{lib}/items?limit=500")),
            Some(token),
        )
        .json(),
    )
}

fn item_id(s: &TestServer, owner: &str, lib: u64, title: &str) -> u64 {
    let v = get(
        &s.url(&format!("/api/v1/libraries/{lib}/items?limit=500")),
        Some(owner),
    )
    .json();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"] == title)
        .unwrap_or_else(|| panic!("no {title}"))["id"]
        .as_u64()
        .unwrap()
}

fn login(s: &TestServer) -> String {
    let r = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "anna", "password": "correct horse battery",
                "device": {"name": "Tablet", "client_id": format!("tablet-{}", rand_id())}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["token"].as_str().unwrap().to_owned()
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A DLNA search for titles containing `word` in the whole tree.
fn dlna_titles(s: &TestServer, word: &str) -> Vec<String> {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:Search xmlns:u="urn:schemas-upnp-org:service:ContentDirectory:1"><ContainerID>0</ContainerID><SearchCriteria>dc:title contains &quot;{word}&quot;</SearchCriteria><Filter>*</Filter><StartingIndex>0</StartingIndex><RequestedCount>0</RequestedCount><SortCriteria>+dc:title</SortCriteria></u:Search></s:Body></s:Envelope>"#
    );
    let mut resp = common::agent()
        .post(&s.url("/dlna/control/ContentDirectory"))
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .header(
            "SOAPACTION",
            "\"urn:schemas-upnp-org:service:ContentDirectory:1#Search\"",
        )
        .send(body.as_bytes())
        .expect("transport");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.body_mut().read_to_string().unwrap();
    // The DIDL-Lite result is escaped inside the SOAP body: titles are `&lt;dc:title&gt;…`.
    text.split("dc:title&gt;")
        .skip(1)
        .step_by(2)
        .map(|t| t.trim_end_matches("&lt;/").to_owned())
        .collect()
}

#[test]
fn overrides_reach_every_path_and_only_the_owner_sets_them() {
    let (s, owner) = claimed();
    // The films are a copy: the rescan below needs a file that changed.
    let tmp = tempfile::tempdir().unwrap();
    let movies = tmp.path().join("Movies");
    common::copy_tree(&common::test_media().join("Movies"), &movies);
    let films = library(&s, &owner, "Films", "movies", movies.to_str().unwrap());
    let shows = library(&s, &owner, "Shows", "shows", &media("Shows"));
    let reel = item_id(&s, &owner, films, "Untitled Home Reel");
    let fjord = item_id(&s, &owner, films, "Fjord Light");
    let sunny = item_id(&s, &owner, films, "Sunny Meadow");

    // The editor's facts: US names by default, ages beside them, presets, labels in use.
    let info = get(&s.url("/api/v1/settings/ratings"), Some(&owner)).json();
    assert_eq!(info["country"], "us");
    assert_eq!(info["films"][1]["code"], "PG");
    assert_eq!(info["films"][1]["min_age"], 10);
    assert_eq!(info["tv"][0]["code"], "TV-Y");
    assert_eq!(info["presets"][0]["id"], "little_kid");
    assert_eq!(info["presets"][0]["max_age"], 7);
    let labels: Vec<&str> = info["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"violence") && labels.contains(&"noir"),
        "{labels:?}"
    );
    let r = send(
        "PUT",
        &s.url("/api/v1/settings/ratings"),
        Some(&owner),
        &json!({"country": "gb"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["films"][2]["code"], "PG");
    assert_eq!(r.json()["films"][2]["min_age"], 8);
    let r = send(
        "PUT",
        &s.url("/api/v1/settings/ratings"),
        Some(&owner),
        &json!({"country": "jp"}),
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "unknown_country")
    );
    assert_eq!(
        get(&s.url("/api/v1/settings/ratings"), Some(&owner)).json()["country"],
        "gb",
        "a refused country changes nothing"
    );

    // DLNA sees the owner's title before any profile exists (a profile turns home mode on,
    // and home mode turns DLNA off).
    let r = send(
        "PUT",
        &s.url("/api/v1/dlna"),
        Some(&owner),
        &json!({"libraries": [films]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(dlna_titles(&s, "Reel"), ["Untitled Home Reel"]);
    let r = send(
        "PUT",
        &s.url(&format!("/api/v1/items/{reel}/override")),
        Some(&owner),
        &json!({"title": "Summer at the Lake", "year": 2019}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["scanned"]["title"], "Untitled Home Reel");
    assert_eq!(dlna_titles(&s, "Lake"), ["Summer at the Lake"]);
    assert!(dlna_titles(&s, "Reel").is_empty());
    // Search and lists use the new title; the old one no longer finds it.
    let found = titles(&get(&s.url("/api/v1/search?q=lake"), Some(&owner)).json());
    assert_eq!(found, ["Summer at the Lake"]);
    assert!(titles(&get(&s.url("/api/v1/search?q=untitled"), Some(&owner)).json()).is_empty());
    assert!(list(&s, &owner, films).contains(&"Summer at the Lake".to_owned()));

    // A little kid (preset) on a second tablet of the owner, switched to the profile.
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Lily", "preset": "little_kid"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["preset"], "little_kid", "{}", r.body);
    assert_eq!(r.json()["restrictions"]["max_rating"]["movies"], 7);
    let lily = r.json()["id"].as_u64().unwrap();
    let lily_restrictions = r.json()["restrictions"].clone();
    let kid = login(&s);
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&kid),
        &json!({"user_id": lily}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let friend = {
        let r = send(
            "POST",
            &s.url("/api/v1/invites"),
            Some(&owner),
            &json!({"invitee": "ben"}),
        );
        let t = r.json()["token"].as_str().unwrap().to_owned();
        let r = send(
            "POST",
            &s.url(&format!("/api/v1/invites/{t}/accept")),
            None,
            &json!({"username": "ben", "password": "friendly giraffe tune",
                    "device": {"name": "Phone", "client_id": "ben-phone"}}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["token"].as_str().unwrap().to_owned()
    };

    // The preview: Lily sees Sunny Meadow only; the reel is hidden for having no rating.
    let preview = |restrictions: &Value| {
        let r = send(
            "POST",
            &s.url("/api/v1/restrictions/preview"),
            Some(&owner),
            &json!({ "restrictions": restrictions }),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let p = preview(&lily_restrictions);
    let seen: Vec<&str> = p["titles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["visible"] == true)
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["Sunny Meadow", "Garden Friends"], "{p}");
    assert_eq!(p["films"]["visible"], 1);
    assert!(p["films"]["total"].as_u64().unwrap() >= 10, "{p}");
    assert_eq!(p["shows"]["visible"], 1);
    assert_eq!(p["shows"]["total"], 3, "{p}");
    assert!(p["films"]["unrated_hidden"].as_u64().unwrap() >= 1, "{p}");
    let reel_row = p["titles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == reel)
        .unwrap()
        .clone();
    assert_eq!(reel_row["hidden_because"], "unrated", "{reel_row}");
    // What the preview says is what Lily gets.
    assert_eq!(list(&s, &kid, films), ["Sunny Meadow"]);
    assert_eq!(
        list(&s, &kid, shows).len(),
        3,
        "the three episodes of Garden Friends (TV-Y7), nothing else"
    );
    let mut allowed = lily_restrictions.clone();
    allowed["unrated"]["movies"] = json!("allow");
    let p2 = preview(&allowed);
    assert_eq!(
        p2["films"]["visible"].as_u64().unwrap(),
        1 + p["films"]["unrated_hidden"].as_u64().unwrap(),
        "allowing unrated shows exactly the unrated films: {p2}"
    );

    // Every role × every new route: only the owner gets through; others change nothing.
    let routes: Vec<(&str, String, Value)> = vec![
        ("GET", "/api/v1/settings/ratings".into(), Value::Null),
        (
            "PUT",
            "/api/v1/settings/ratings".into(),
            json!({"country": "de"}),
        ),
        (
            "POST",
            "/api/v1/restrictions/preview".into(),
            json!({"restrictions": {}}),
        ),
        ("GET", format!("/api/v1/items/{reel}/override"), Value::Null),
        (
            "PUT",
            format!("/api/v1/items/{reel}/override"),
            json!({"rating": "us/G"}),
        ),
        (
            "DELETE",
            format!("/api/v1/items/{reel}/override"),
            Value::Null,
        ),
        (
            "POST",
            "/api/v1/items/overrides".into(),
            json!({"ids": [reel, fjord], "set": {"rating": "us/G"}}),
        ),
    ];
    let call = |method: &str, path: &str, token: Option<&str>, body: &Value| match method {
        "GET" => get(&s.url(path), token),
        "DELETE" => delete(&s.url(path), token),
        m => send(m, &s.url(path), token, body),
    };
    for (who, token, want) in [
        ("managed profile", Some(kid.as_str()), 403),
        ("friend", Some(friend.as_str()), 403),
        ("nobody", None, 401),
    ] {
        for (method, path, body) in &routes {
            let r = call(method, path, token, body);
            assert_eq!(r.status, want, "{who} {method} {path}: {}", r.body);
        }
    }
    assert_eq!(
        list(&s, &kid, films),
        ["Sunny Meadow"],
        "refused edits changed nothing"
    );
    assert_eq!(
        get(&s.url("/api/v1/settings/ratings"), Some(&owner)).json()["country"],
        "gb"
    );
    for (method, path, body) in &routes[..4] {
        let r = call(method, path, Some(&owner), body);
        assert_eq!(r.status, 200, "owner {method} {path}: {}", r.body);
    }

    // Bad overrides are refused with a reason and change nothing.
    for (bad, code) in [
        (json!({"rating": "PG-14"}), "invalid_override"),
        (json!({"rating": "NR"}), "invalid_override"),
        (json!({"title": "  "}), "invalid_override"),
        (json!({"year": 99}), "invalid_override"),
        (json!({"labels": [""]}), "invalid_override"),
        (json!({"colour": "red"}), "invalid_body"),
    ] {
        let r = send(
            "PUT",
            &s.url(&format!("/api/v1/items/{reel}/override")),
            Some(&owner),
            &bad,
        );
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        if code != "invalid_body" {
            assert_eq!(r.error_code(), code, "{bad}");
        }
    }
    let r = send(
        "PUT",
        &s.url("/api/v1/items/999999/override"),
        Some(&owner),
        &json!({"rating": "us/G"}),
    );
    assert_eq!(r.status, 404);
    let r = send(
        "POST",
        &s.url("/api/v1/items/overrides"),
        Some(&owner),
        &json!({"ids": [fjord, 999999], "set": {"rating": "us/G"}}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = send(
        "POST",
        &s.url("/api/v1/items/overrides"),
        Some(&owner),
        &json!({"ids": [], "set": {"rating": "us/G"}}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        list(&s, &kid, films),
        ["Sunny Meadow"],
        "a refused bulk edit changed nothing"
    );

    // Before: the reel and Fjord Light (gb/12A) are hidden from Lily on every path.
    let item = |id: u64| get(&s.url(&format!("/api/v1/items/{id}")), Some(&kid));
    let art = |id: u64| get(&s.url(&format!("/api/v1/items/{id}/artwork")), Some(&kid));
    assert_eq!(item(reel).status, 404);
    assert_eq!(item(fjord).status, 404);
    assert_eq!(art(fjord).status, 404);
    assert!(titles(&get(&s.url("/api/v1/search?q=fjord"), Some(&kid)).json()).is_empty());
    let owner_view = get(&s.url(&format!("/api/v1/items/{fjord}")), Some(&owner)).json();
    let fjord_stream = s.url(owner_view["stream_url"].as_str().unwrap());
    assert_eq!(
        get(&fjord_stream, None).status,
        200,
        "the owner's link plays"
    );

    // The owner rates the reel G and, in one bulk edit, Fjord Light U (UK names).
    let r = send(
        "PUT",
        &s.url(&format!("/api/v1/items/{reel}/override")),
        Some(&owner),
        &json!({"rating": "G"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["overrides"]["rating"], "us/G");
    assert_eq!(
        r.json()["overrides"]["title"],
        Value::Null,
        "a PUT replaces the whole override"
    );
    let r = send(
        "POST",
        &s.url("/api/v1/items/overrides"),
        Some(&owner),
        &json!({"ids": [fjord], "set": {"rating": "gb/U"}}),
    );
    assert_eq!(
        (r.status, r.json()["changed"].clone()),
        (200, json!(1)),
        "{}",
        r.body
    );

    // After: lists, search, item pages, artwork, streams and the preview all see it.
    assert_eq!(
        list(&s, &kid, films),
        ["Fjord Light", "Sunny Meadow", "Untitled Home Reel"]
    );
    assert_eq!(
        titles(&get(&s.url("/api/v1/search?q=fjord"), Some(&kid)).json()),
        ["Fjord Light"]
    );
    let v = item(reel);
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.json()["rating"]["raw"], "us/G");
    assert_eq!(item(fjord).status, 200);
    assert_eq!(art(fjord).status, 200, "artwork follows the override");
    let kid_stream = s.url(item(reel).json()["stream_url"].as_str().unwrap());
    assert_eq!(
        get(&kid_stream, None).status,
        200,
        "the stream follows the override"
    );
    let p = preview(&lily_restrictions);
    assert_eq!(p["films"]["visible"], 3, "{p}");

    // Labels: the owner labels Sunny Meadow "horror", which the little-kid preset hides.
    let r = send(
        "POST",
        &s.url("/api/v1/items/overrides"),
        Some(&owner),
        &json!({"ids": [sunny], "set": {"labels": ["Horror"]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(list(&s, &kid, films), ["Fjord Light", "Untitled Home Reel"]);
    assert_eq!(item(sunny).status, 404);
    let info = get(&s.url("/api/v1/settings/ratings"), Some(&owner)).json();
    assert!(
        info["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["label"] == "horror"),
        "{info}"
    );

    // A rescan of changed files refreshes the scanned facts but keeps the owner's
    // corrections (and writes nothing into the media folder).
    for dir in [
        "Untitled Home Reel (2022)",
        "Fjord Light (2020)",
        "Sunny Meadow (2021)",
    ] {
        for e in std::fs::read_dir(movies.join(dir)).unwrap() {
            let p = e.unwrap().path();
            let mut perms = std::fs::metadata(&p).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&p, perms).unwrap();
            let f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
                .unwrap();
        }
    }
    let before: Vec<_> = walk(&movies);
    let r = send(
        "POST",
        &s.url(&format!("/api/v1/libraries/{films}/scan")),
        Some(&owner),
        &json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    wait_scan(&s, &owner, films);
    assert_eq!(list(&s, &kid, films), ["Fjord Light", "Untitled Home Reel"]);
    assert_eq!(
        walk(&movies),
        before,
        "Hearth wrote nothing into the media folder"
    );

    // Undo: the reel is as scanned (no rating) and hidden again; the file was never touched.
    let r = delete(
        &s.url(&format!("/api/v1/items/{reel}/override")),
        Some(&owner),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["overrides"], Value::Null);
    assert_eq!(item(reel).status, 404);
    assert_eq!(list(&s, &kid, films), ["Fjord Light"]);
    let owner_titles = list(&s, &owner, films);
    assert!(
        owner_titles.contains(&"Untitled Home Reel".to_owned()),
        "{owner_titles:?}"
    );
    s.stop().unwrap();
}

/// Every file under `dir` with its size and contents' length, sorted: what a writer would change.
fn walk(dir: &std::path::Path) -> Vec<(String, u64, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "nfo") || p.metadata().unwrap().len() < 4096 {
            out.push((
                p.display().to_string(),
                p.metadata().unwrap().len(),
                std::fs::read(&p).unwrap(),
            ));
        } else {
            out.push((
                p.display().to_string(),
                p.metadata().unwrap().len(),
                Vec::new(),
            ));
        }
    }
    out.sort();
    out
}
