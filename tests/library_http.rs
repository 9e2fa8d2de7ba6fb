//! Libraries over real HTTP: the owner adds a library of the generated test media (copied to a
//! temp dir, with symlink escape attempts), the scan runs, items are listed, searched and
//! streamed through signed URLs with range-request conformance checks; a signed URL cannot
//! fetch another item, is bound to its user and dies with its device.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, claimed, delete, get, send};
use serde_json::{Value, json};

struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn raw(method: &str, url: &str, headers: &[(&str, &str)]) -> Raw {
    let agent = common::agent();
    let mut req = match method {
        "GET" => agent.get(url),
        "HEAD" => agent.head(url),
        other => panic!("{other}"),
    };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().expect("transport");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        resp.body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_default()
    };
    Raw {
        status,
        headers,
        body,
    }
}

fn wait_for_scan(s: &TestServer, token: &str, lib: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = get(
            &s.url(&format!("/api/v1/libraries/{lib}/scan")),
            Some(token),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if v["progress"]["running"] == false {
            return v;
        }
        assert!(Instant::now() < deadline, "scan never finished: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn libraries_items_search_and_streaming() {
    let (s, owner) = claimed();
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    common::copy_tree(&common::test_media(), &media);
    let movies = media.join("Movies");
    // Escape attempts inside the library folder.
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::copy(
        movies.join("Rocket Club (2019)/Rocket Club (2019).mkv"),
        outside.join("Secret (2001).mkv"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, movies.join("Escape (2001)")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", movies.join("Passwd (2001).mkv")).unwrap();
    std::os::unix::fs::symlink("../../outside", movies.join("Dots (2001)")).unwrap();

    // Not signed in, not the owner, bad input.
    let body = json!({"name": "Films", "kind": "movies", "folders": [movies.to_str().unwrap()]});
    assert_eq!(
        send("POST", &s.url("/api/v1/libraries"), None, &body).status,
        401
    );
    assert_eq!(get(&s.url("/api/v1/libraries"), None).status, 401);
    for bad in [
        json!({"name": "Films", "kind": "movies", "folders": [format!("{}/../Movies", movies.display())]}),
        json!({"name": "Films", "kind": "movies", "folders": [format!("{}/Escape (2001)", movies.display())]}),
        json!({"name": "Films", "kind": "movies", "folders": ["relative"]}),
        json!({"name": "", "kind": "movies", "folders": [movies.to_str().unwrap()]}),
        json!({"name": "Films", "kind": "films", "folders": [movies.to_str().unwrap()]}),
    ] {
        let r = send("POST", &s.url("/api/v1/libraries"), Some(&owner), &bad);
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    assert_eq!(
        get(&s.url("/api/v1/libraries"), Some(&owner)).json(),
        json!([])
    );

    let r = send("POST", &s.url("/api/v1/libraries"), Some(&owner), &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let lib = r.json()["id"].as_u64().unwrap();
    let scan = wait_for_scan(&s, &owner, lib);
    assert_eq!(scan["progress"]["new"], 12, "{scan}");
    let errors: Vec<String> = scan["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rel_path"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "Broken Things (2000)/Empty File (2000).mkv",
        "Broken Things (2000)/Truncated (2000).mkv",
        "Broken Things (2000)/Fake (2000).mp4",
        "Broken Things (2000)/movie.nfo",
        "Escape (2001)",
        "Passwd (2001).mkv",
        "Dots (2001)",
    ] {
        assert!(
            errors.iter().any(|e| e == expected),
            "{expected} missing in {errors:?}"
        );
    }
    // A second scan request while idle is accepted; scan of a missing library is 404.
    assert_eq!(
        send(
            "POST",
            &s.url("/api/v1/libraries/999/scan"),
            Some(&owner),
            &json!({})
        )
        .status,
        404
    );

    let libs = get(&s.url("/api/v1/libraries"), Some(&owner)).json();
    assert_eq!(libs[0]["items"], 12, "{libs}");
    assert_eq!(libs[0]["kind"], "movies");

    let page = get(
        &s.url(&format!(
            "/api/v1/libraries/{lib}/items?sort=year&order=desc&limit=100"
        )),
        Some(&owner),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let items = page.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 12);
    let years: Vec<u64> = items.iter().map(|i| i["year"].as_u64().unwrap()).collect();
    assert!(years.windows(2).all(|w| w[0] >= w[1]), "{years:?}");
    assert!(
        items
            .iter()
            .all(|i| !i["title"].as_str().unwrap().contains("Secret"))
    );
    assert_eq!(
        get(
            &s.url(&format!("/api/v1/libraries/{lib}/items?order=sideways")),
            Some(&owner)
        )
        .status,
        422
    );
    assert_eq!(
        get(&s.url("/api/v1/libraries/999/items"), Some(&owner)).status,
        404
    );

    let find = |title: &str| -> Value {
        items
            .iter()
            .find(|i| i["title"] == title)
            .unwrap_or_else(|| panic!("{title}"))
            .clone()
    };
    let fjord = find("Fjord Light");
    assert_eq!(fjord["rating"]["system_hint"], "gb");
    assert_eq!(fjord["rating"]["value"], "12A");
    let one = get(
        &s.url(&format!("/api/v1/items/{}", fjord["id"])),
        Some(&owner),
    );
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["title"], "Fjord Light");
    assert_eq!(get(&s.url("/api/v1/items/99999"), Some(&owner)).status, 404);
    let art = raw(
        "GET",
        &s.url(&format!("/api/v1/items/{}/artwork", fjord["id"])),
        &[("Authorization", &format!("Bearer {owner}"))],
    );
    assert_eq!(art.status, 200);
    assert_eq!(art.header("content-type"), Some("image/jpeg"));

    let found = get(&s.url("/api/v1/search?q=harb"), Some(&owner)).json();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["title"], "Night Harbour");
    assert_eq!(
        get(&s.url("/api/v1/search?q=secret"), Some(&owner)).json(),
        json!([])
    );
    assert_eq!(get(&s.url("/api/v1/search?q=harb"), None).status, 401);

    // --- streaming: the whole file, ranges, conditionals.
    let rocket = find("Rocket Club");
    let rocket_bytes =
        std::fs::read(movies.join("Rocket Club (2019)/Rocket Club (2019).mkv")).unwrap();
    let len = rocket_bytes.len();
    let url = s.url(rocket["stream_url"].as_str().unwrap());
    let full = raw("GET", &url, &[]);
    assert_eq!(full.status, 200);
    assert_eq!(full.body, rocket_bytes);
    assert_eq!(full.header("content-type"), Some("video/x-matroska"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let etag = full.header("etag").unwrap().to_owned();

    let head = raw("HEAD", &url, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let r = raw("GET", &url, &[("Range", "bytes=0-99")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-99/{len}").as_str())
    );
    assert_eq!(r.body, rocket_bytes[..100]);

    let r = raw("GET", &url, &[("Range", "bytes=-10")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, rocket_bytes[len - 10..]);
    let r = raw("GET", &url, &[("Range", &format!("bytes={}-", len - 5))]);
    assert_eq!(r.body, rocket_bytes[len - 5..]);

    // Bigger than one 256 KiB chunk? The file is ~220 KB; ask for a range across the middle.
    let r = raw("GET", &url, &[("Range", "bytes=1000-150000")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, rocket_bytes[1000..=150000]);

    let r = raw("GET", &url, &[("Range", "bytes=0-9,20-29,-5")]);
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let parts = split_multipart(&r.body, boundary);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].0, format!("bytes 0-9/{len}"));
    assert_eq!(parts[0].1, rocket_bytes[0..10]);
    assert_eq!(parts[1].1, rocket_bytes[20..30]);
    assert_eq!(parts[2].0, format!("bytes {}-{}/{len}", len - 5, len - 1));
    assert_eq!(parts[2].1, rocket_bytes[len - 5..]);

    let r = raw("GET", &url, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    let r = raw("GET", &url, &[("Range", "bytes=oops")]);
    assert_eq!(r.status, 200, "a malformed Range is ignored");

    let r = raw("GET", &url, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = raw("GET", &url, &[("Range", "bytes=0-9"), ("If-Range", &etag)]);
    assert_eq!(r.status, 206);
    let r = raw(
        "GET",
        &url,
        &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), len);

    // MP4 content type and the SRT sidecar as WebVTT.
    let paper = find("Paper Boats");
    let r = raw("HEAD", &s.url(paper["stream_url"].as_str().unwrap()), &[]);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    let sub_url = paper["subtitles"][0]["url"].as_str().unwrap();
    let vtt = raw("GET", &s.url(sub_url), &[]);
    assert_eq!(vtt.status, 200);
    assert!(vtt.header("content-type").unwrap().starts_with("text/vtt"));
    let text = String::from_utf8(vtt.body).unwrap();
    assert!(text.starts_with("WEBVTT\n\n"), "{text}");
    assert!(text.contains("00:00:01.000 --> 00:00:03.000"), "{text}");

    // --- signed URLs: bound to item, user and device.
    let crimson = find("Crimson Alley");
    let rocket_path = rocket["stream_url"].as_str().unwrap();
    let crimson_id = crimson["id"].as_u64().unwrap();
    let rocket_id = rocket["id"].as_u64().unwrap();
    let other_item = rocket_path.replace(
        &format!("/stream/{rocket_id}?"),
        &format!("/stream/{crimson_id}?"),
    );
    assert_ne!(other_item, rocket_path);
    let r = raw("GET", &s.url(&other_item), &[]);
    assert_eq!(r.status, 403, "a URL for one item fetched another");
    let (query_user, _) = rocket_path.split_once("&d=").unwrap();
    let user_id: u64 = query_user.rsplit("u=").next().unwrap().parse().unwrap();
    let other_user = rocket_path.replace(&format!("u={user_id}&"), &format!("u={}&", user_id + 1));
    assert_eq!(raw("GET", &s.url(&other_user), &[]).status, 403);
    let later = {
        let exp: u64 = rocket_path
            .split("exp=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        rocket_path.replace(&format!("exp={exp}"), &format!("exp={}", exp + 3600))
    };
    assert_eq!(
        raw("GET", &s.url(&later), &[]).status,
        403,
        "expiry cannot be extended"
    );
    let no_sig = rocket_path.split("&sig=").next().unwrap();
    assert_ne!(raw("GET", &s.url(no_sig), &[]).status, 200);

    // A second device of the same user; its URLs die when it is revoked.
    let login = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "anna", "password": "correct horse battery",
                "device": {"name": "TV", "platform": "tv", "client_id": "tv-1"}}),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let tv_token = login.json()["token"].as_str().unwrap().to_owned();
    let tv_device = login.json()["device_id"].as_u64().unwrap();
    let tv_item = get(
        &s.url(&format!("/api/v1/items/{rocket_id}")),
        Some(&tv_token),
    )
    .json();
    let tv_url = s.url(tv_item["stream_url"].as_str().unwrap());
    assert_eq!(raw("GET", &tv_url, &[("Range", "bytes=0-0")]).status, 206);
    let r = delete(
        &s.url(&format!("/api/v1/devices/{tv_device}")),
        Some(&owner),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = raw("GET", &tv_url, &[]);
    assert_eq!(r.status, 403, "a revoked device's URL still works");
    // The owner's own URL is unaffected.
    assert_eq!(raw("GET", &url, &[("Range", "bytes=0-0")]).status, 206);

    // A file removed from disk: the URL answers a clear 404, not a crash.
    std::fs::remove_file(movies.join("Rocket Club (2019)/Rocket Club (2019).mkv")).unwrap();
    let r = get(&url, None);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "media_missing");
}

#[test]
fn shows_music_and_photos_browse_over_http() {
    let (s, owner) = claimed();
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    common::copy_tree(&common::test_media(), &media);
    let mut ids = Vec::new();
    for (name, kind, sub) in [
        ("TV", "shows", "Shows"),
        ("Music", "music", "Music"),
        ("Photos", "photos", "Photos"),
    ] {
        let r = send(
            "POST",
            &s.url("/api/v1/libraries"),
            Some(&owner),
            &json!({"name": name, "kind": kind, "folders": [media.join(sub).to_str().unwrap()]}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["id"].as_u64().unwrap();
        wait_for_scan(&s, &owner, id);
        ids.push(id);
    }
    let b = |lib: u64, q: &str| {
        get(
            &s.url(&format!("/api/v1/libraries/{lib}/browse/{q}")),
            Some(&owner),
        )
    };
    let shows = b(ids[0], "shows").json();
    assert_eq!(shows.as_array().unwrap().len(), 3, "{shows}");
    let eps = b(ids[0], "episodes?show=Garden%20Friends&season=1").json();
    assert_eq!(eps.as_array().unwrap().len(), 2, "{eps}");
    assert_eq!(eps[0]["title"], "The Seed");
    assert!(
        eps[0]["stream_url"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/stream/")
    );
    assert_eq!(b(ids[0], "episodes").status, 422);
    assert_eq!(b(ids[0], "nonsense").status, 422);
    let artists = b(ids[1], "artists").json();
    assert_eq!(artists[0]["name"], "The Test Tones");
    let tracks = b(
        ids[1],
        "tracks?artist=The%20Test%20Tones&album=First%20Light",
    )
    .json();
    assert_eq!(tracks.as_array().unwrap().len(), 3);
    let flac = raw(
        "HEAD",
        &s.url(tracks[0]["stream_url"].as_str().unwrap()),
        &[],
    );
    assert_eq!(flac.header("content-type"), Some("audio/flac"));
    let timeline = b(ids[2], "timeline").json();
    assert!(
        timeline[0]["month"].as_str().unwrap().len() == 7,
        "{timeline}"
    );
}

/// Splits a multipart/byteranges body into (Content-Range, bytes) pairs.
fn split_multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = find(rest, delim.as_bytes()) {
        rest = &rest[start + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .unwrap()
            .to_owned();
        let data_start = head_end + 4;
        let next = find(&rest[data_start..], format!("\r\n{delim}").as_bytes()).unwrap();
        out.push((range, rest[data_start..data_start + next].to_vec()));
        rest = &rest[data_start + next + 2..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn restrictions_filter_lists_search_items_and_streams() {
    let (s, owner) = claimed();
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    common::copy_tree(&common::test_media(), &media);
    let r = send(
        "POST",
        &s.url("/api/v1/libraries"),
        Some(&owner),
        &json!({"name": "Films", "kind": "movies", "folders": [media.join("Movies").to_str().unwrap()]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let lib = r.json()["id"].as_u64().unwrap();
    wait_for_scan(&s, &owner, lib);
    let all = get(
        &s.url(&format!("/api/v1/libraries/{lib}/items")),
        Some(&owner),
    )
    .json();
    let all = all["items"].as_array().unwrap().clone();
    assert_eq!(all.len(), 12);
    let crimson = all
        .iter()
        .find(|i| i["title"] == "Crimson Alley")
        .unwrap()
        .clone();
    let owner_url = s.url(crimson["stream_url"].as_str().unwrap());
    assert_eq!(
        raw("GET", &owner_url, &[("Range", "bytes=0-0")]).status,
        206
    );

    // A little kid's profile; the owner's device switches to it.
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Mia", "preset": "little_kid"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mia = r.json()["id"].as_u64().unwrap();
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&owner),
        &json!({"user_id": mia}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    let page = get(
        &s.url(&format!("/api/v1/libraries/{lib}/items")),
        Some(&owner),
    )
    .json();
    let titles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"Sunny Meadow"), "{titles:?}");
    for adult in [
        "Crimson Alley",
        "Midnight Ledger",
        "Night Harbour",
        "Waldlauf",
        "Volpe Nera",
    ] {
        assert!(
            !titles.contains(&adult),
            "{adult} visible to a little kid: {titles:?}"
        );
    }
    assert_eq!(
        get(&s.url("/api/v1/search?q=violence"), Some(&owner)).json(),
        json!([])
    );
    let r = get(
        &s.url(&format!("/api/v1/items/{}", crimson["id"])),
        Some(&owner),
    );
    assert_eq!(r.status, 404, "a hidden item must look like a missing one");
    // The URL minted for the owner stops working once the device acts as Mia.
    let r = raw("GET", &owner_url, &[]);
    assert_eq!(r.status, 403);
}

/// Watch state is per user: the owner's progress is not Mia's; the continue-watching row
/// shows each their own; marking watched clears it; removing Mia removes her history.
#[test]
fn watch_state_is_per_user_and_goes_with_the_user() {
    // Its own data dir, so the database can be opened after the server stops.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = TestServer::start_with(&data, |_| {});
    let owner = common::claim(&s);
    let media = tmp.path().join("media");
    common::copy_tree(&common::test_media(), &media);
    let r = send(
        "POST",
        &s.url("/api/v1/libraries"),
        Some(&owner),
        &json!({"name": "Films", "kind": "movies", "folders": [media.join("Movies").to_str().unwrap()]}),
    );
    let lib = r.json()["id"].as_u64().unwrap();
    wait_for_scan(&s, &owner, lib);
    let items = get(
        &s.url(&format!("/api/v1/libraries/{lib}/items")),
        Some(&owner),
    )
    .json();
    let id_of = |title: &str| {
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["title"] == title)
            .unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let (meadow, crimson) = (id_of("Sunny Meadow"), id_of("Crimson Alley"));

    // Mia, a little kid, on the owner's device after a switch; the owner keeps a second
    // device of their own.
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Mia", "preset": "little_kid"}),
    );
    let mia = r.json()["id"].as_u64().unwrap();
    let owner2 = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "anna", "password": "correct horse battery"}),
    )
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        send(
            "POST",
            &s.url("/api/v1/auth/switch"),
            Some(&owner),
            &json!({"user_id": mia})
        )
        .status,
        200
    );
    let kid = owner; // this device now acts as Mia

    let put = |t: &str, id: u64, ms: u64| {
        send(
            "PUT",
            &s.url(&format!("/api/v1/items/{id}/progress")),
            Some(t),
            &json!({"position_ms": ms}),
        )
    };
    assert_eq!(put(&owner2, meadow, 1_000).status, 200);
    assert_eq!(put(&kid, meadow, 2_000).status, 200);
    // Mia may not record progress on what she may not see: 404, as for everything hidden.
    assert_eq!(put(&kid, crimson, 1_000).status, 404);
    assert_eq!(
        get(&s.url(&format!("/api/v1/items/{meadow}")), Some(&owner2)).json()["watch"]["position_ms"],
        1_000
    );
    assert_eq!(
        get(&s.url(&format!("/api/v1/items/{meadow}")), Some(&kid)).json()["watch"]["position_ms"],
        2_000
    );
    let row = get(&s.url("/api/v1/continue"), Some(&kid)).json();
    assert_eq!(row.as_array().unwrap().len(), 1);
    assert_eq!(row[0]["title"], "Sunny Meadow");

    // Marking watched empties the row.
    let r = send(
        "POST",
        &s.url(&format!("/api/v1/items/{meadow}/watched")),
        Some(&kid),
        &json!({"watched": true}),
    );
    assert_eq!(r.json()["watched"], true);
    assert!(
        get(&s.url("/api/v1/continue"), Some(&kid))
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        get(&s.url("/api/v1/continue"), Some(&owner2))
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Removing Mia takes her watch history in the same step.
    assert_eq!(
        delete(
            &s.url(&format!("/api/v1/users/{mia}?confirm=true")),
            Some(&owner2)
        )
        .status,
        204
    );
    s.stop().unwrap();
    let store = hearth::store::Store::open(&data.join("hearth.redb")).unwrap();
    assert!(store.read(|r| r.watch_of_user(mia)).unwrap().is_empty());
    assert_eq!(
        store.read(|r| r.watch_of_user(1)).unwrap().len(),
        1,
        "the owner's history stays"
    );
}

/// Counts never leak what a profile cannot see: for the owner, a little kid, a friend and
/// the guest, the library list's `items` is exactly how many items that profile can list,
/// and only the owner gets scan figures (`scan`, `last_scan`) and folders.
#[test]
fn library_counts_are_what_each_profile_can_list() {
    let (s, owner) = claimed();
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    common::copy_tree(&common::test_media(), &media);
    let r = send(
        "POST",
        &s.url("/api/v1/libraries"),
        Some(&owner),
        &json!({"name": "Films", "kind": "movies", "folders": [media.join("Movies").to_str().unwrap()]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let lib = r.json()["id"].as_u64().unwrap();
    wait_for_scan(&s, &owner, lib);

    let login = || {
        let r = send(
            "POST",
            &s.url("/api/v1/auth/login"),
            None,
            &json!({"username": "anna", "password": "correct horse battery"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["token"].as_str().unwrap().to_owned()
    };
    let create = |body: Value| {
        let r = send("POST", &s.url("/api/v1/users"), Some(&owner), &body);
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_u64().unwrap()
    };
    let switch = |token: &str, user: u64| {
        let r = send(
            "POST",
            &s.url("/api/v1/auth/switch"),
            Some(token),
            &json!({"user_id": user}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };

    // A little kid: a device of the owner's switched to her profile.
    let mia = create(json!({"kind": "managed", "name": "Mia", "preset": "little_kid"}));
    let kid = login();
    switch(&kid, mia);
    // The guest, turned on and limited to what an older kid may see.
    let guest_id = create(json!({"kind": "guest"}));
    let r = send(
        "PATCH",
        &s.url(&format!("/api/v1/users/{guest_id}")),
        Some(&owner),
        &json!({"enabled": true, "preset": "older_kid"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let guest = login();
    switch(&guest, guest_id);
    // A friend who may see everything but what is labelled violence.
    let r = send(
        "POST",
        &s.url("/api/v1/invites"),
        Some(&owner),
        &json!({"invitee": "ben@example.org", "expires_in_hours": 2}),
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
    let friend = r.json()["token"].as_str().unwrap().to_owned();
    let ben = r.json()["user"]["id"].as_u64().unwrap();
    let r = send(
        "PATCH",
        &s.url(&format!("/api/v1/users/{ben}")),
        Some(&owner),
        &json!({"restrictions": {"labels_deny": ["violence"]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    let mut seen = Vec::new();
    for (role, token, is_owner) in [
        ("owner", &owner, true),
        ("little kid", &kid, false),
        ("friend", &friend, false),
        ("guest", &guest, false),
    ] {
        let libs = get(&s.url("/api/v1/libraries"), Some(token));
        assert_eq!(libs.status, 200, "{role}: {}", libs.body);
        let libs = libs.json();
        let films = libs
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == lib)
            .unwrap_or_else(|| panic!("{role} cannot see the library: {libs}"));
        let listed = get(
            &s.url(&format!("/api/v1/libraries/{lib}/items?limit=500")),
            Some(token),
        )
        .json();
        assert_eq!(listed["more"], false);
        let listed = listed["items"].as_array().unwrap().len() as u64;
        assert_eq!(
            films["items"].as_u64(),
            Some(listed),
            "{role}: the count is not what the listing holds: {films}"
        );
        assert_eq!(
            !films["scan"].is_null(),
            is_owner,
            "{role}: scan figures: {films}"
        );
        assert_eq!(
            !films["last_scan"].is_null(),
            is_owner,
            "{role}: last scan: {films}"
        );
        assert_eq!(!films["folders"].is_null(), is_owner, "{role}: {films}");
        seen.push((role, listed));
    }
    eprintln!("items each profile lists and is told: {seen:?}");
    // The table means something: the restricted profiles see fewer than the owner.
    let all = seen[0].1;
    assert_eq!(all, 12);
    assert!(seen[1..].iter().all(|(_, n)| *n < all), "{seen:?}");
}
