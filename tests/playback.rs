//! Security-sensitive: conversions over HTTP. Who may start one (every kind of caller × every
//! library), that a refusal happens before any ffmpeg starts, that a session dies the moment
//! its viewer may no longer watch (device switched, access taken away, signed out), and that
//! no ffmpeg outlives `hearth serve` killed with SIGKILL.
//!
//! The clips are made here with ffmpeg (HEVC in Matroska: a browser's baseline capabilities
//! need the picture converted). Without ffmpeg the tests say SKIPPED and pass: conversion is
//! then off on the server too, which `no_ffmpeg_plays_files_as_they_are` covers elsewhere.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::serve_process::Serve;
use common::{TestServer, claimed, delete, get, send};
use serde_json::{Value, json};

fn have_ffmpeg() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: ffmpeg is missing (scripts/install-deps installs it)");
    }
    ok
}

/// A clip a baseline browser cannot play as it is: HEVC + AAC in Matroska.
fn hevc_clip(path: &Path, seconds: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=160x90:rate=12:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args([
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg could not make {}", path.display());
}

fn wait_for_scan(base: &str, owner: &str, lib: u64) {
    for _ in 0..1200 {
        let r = get(&format!("{base}/api/v1/libraries/{lib}/scan"), Some(owner));
        assert_eq!(r.status, 200, "{}", r.body);
        if r.json()["progress"]["running"] == false {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("library {lib} was not scanned");
}

fn library(base: &str, owner: &str, name: &str, folder: &Path) -> u64 {
    let r = send(
        "POST",
        &format!("{base}/api/v1/libraries"),
        Some(owner),
        &json!({"name": name, "kind": "movies", "folders": [folder.to_str().unwrap()]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let lib = r.json()["id"].as_u64().unwrap();
    wait_for_scan(base, owner, lib);
    lib
}

fn first_item(base: &str, token: &str, lib: u64) -> u64 {
    let items = get(
        &format!("{base}/api/v1/libraries/{lib}/items?limit=10"),
        Some(token),
    )
    .json();
    items["items"][0]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("library {lib} has no items: {items}"))
}

/// Sessions on the server: one directory each under the conversion cache.
fn sessions_on_disk(data: &Path) -> usize {
    std::fs::read_dir(data.join("transcode"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .count()
        })
        .unwrap_or(0)
}

fn play(base: &str, token: Option<&str>, item: u64) -> common::Reply {
    send(
        "POST",
        &format!("{base}/api/v1/items/{item}/play"),
        token,
        &json!({}),
    )
}

struct House {
    s: TestServer,
    _media: tempfile::TempDir,
    owner: String,
    films: u64,
    private: u64,
    film: u64,
    secret: u64,
    mia: u64,
}

fn login(s: &TestServer) -> String {
    let r = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "anna", "password": "correct horse battery"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["token"].as_str().unwrap().to_owned()
}

fn switch(s: &TestServer, token: &str, user: u64) {
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(token),
        &json!({"user_id": user}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The owner, two libraries ("Films", "Private") with one convertible clip each, and Mia, a
/// managed profile who may open "Films" only.
fn house() -> House {
    let (s, owner) = claimed();
    let media = tempfile::tempdir().unwrap();
    hevc_clip(&media.path().join("Films/Harbour (2001).mkv"), 30);
    hevc_clip(&media.path().join("Private/Ledger (2002).mkv"), 30);
    let base = format!("http://{}", s.addr);
    let films = library(&base, &owner, "Films", &media.path().join("Films"));
    let private = library(&base, &owner, "Private", &media.path().join("Private"));
    let film = first_item(&base, &owner, films);
    let secret = first_item(&base, &owner, private);
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Mia"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mia = r.json()["id"].as_u64().unwrap();
    let r = send(
        "PATCH",
        &s.url(&format!("/api/v1/users/{mia}")),
        Some(&owner),
        &json!({"restrictions": {"libraries": [films]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    House {
        s,
        _media: media,
        owner,
        films,
        private,
        film,
        secret,
        mia,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Owner,
    /// A device of the owner's switched to Mia.
    Child,
    /// A friend the owner invited, granted "Films" only.
    Friend,
    /// No token.
    Nobody,
    /// A token whose device the owner signed out.
    SignedOut,
    /// A made-up token.
    Forged,
}

/// Every caller × both libraries: who may start a conversion. A refused start must leave no
/// session behind (no ffmpeg, no directory); an allowed one must make one.
#[test]
fn who_may_start_a_conversion() {
    if !have_ffmpeg() {
        return;
    }
    let h = house();
    let base = format!("http://{}", h.s.addr);
    let child = login(&h.s);
    switch(&h.s, &child, h.mia);
    // The friend.
    let r = send(
        "POST",
        &h.s.url("/api/v1/invites"),
        Some(&h.owner),
        &json!({"invitee": "ben"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let invite = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(
        "POST",
        &h.s.url(&format!("/api/v1/invites/{invite}/accept")),
        None,
        &json!({"username": "ben", "password": "friendly giraffe tune"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let friend = r.json()["token"].as_str().unwrap().to_owned();
    let ben = r.json()["user"]["id"].as_u64().unwrap();
    let r = send(
        "PATCH",
        &h.s.url(&format!("/api/v1/users/{ben}")),
        Some(&h.owner),
        &json!({"restrictions": {"libraries": [h.films]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let signed_out = login(&h.s);
    let r = send(
        "POST",
        &h.s.url("/api/v1/auth/logout"),
        Some(&signed_out),
        &json!({}),
    );
    assert!(r.status < 300, "{}", r.body);
    let forged = "hx1.".to_owned() + &"A".repeat(43);

    // (who, item, expected status) — the table.
    let table: Vec<(Who, u64, u16)> = vec![
        (Who::Owner, h.film, 200),
        (Who::Owner, h.secret, 200),
        (Who::Child, h.film, 200),
        (Who::Child, h.secret, 404),
        (Who::Friend, h.film, 200),
        (Who::Friend, h.secret, 404),
        (Who::Nobody, h.film, 401),
        (Who::Nobody, h.secret, 401),
        (Who::SignedOut, h.film, 401),
        (Who::SignedOut, h.secret, 401),
        (Who::Forged, h.film, 401),
        (Who::Forged, h.secret, 401),
    ];
    for (who, item, want) in table {
        let token = match who {
            Who::Owner => Some(h.owner.as_str()),
            Who::Child => Some(child.as_str()),
            Who::Friend => Some(friend.as_str()),
            Who::Nobody => None,
            Who::SignedOut => Some(signed_out.as_str()),
            Who::Forged => Some(forged.as_str()),
        };
        let before = sessions_on_disk(&h.s.data);
        let r = play(&base, token, item);
        let lib = if item == h.film { "Films" } else { "Private" };
        assert_eq!(r.status, want, "{who:?} playing from {lib}: {}", r.body);
        let after = sessions_on_disk(&h.s.data);
        if want == 200 {
            let v = r.json();
            assert_eq!(v["method"], "transcode", "{v}");
            let sid = v["session"].as_str().unwrap().to_owned();
            // The first segment really comes from ffmpeg, for this caller's session.
            let seg = get(&h.s.url(&format!("/api/v1/play/{sid}/0.m4s")), None);
            assert_eq!(seg.status, 200, "{who:?}: {}", seg.body);
            assert!(after > before || after >= 1, "{who:?}: no session was made");
            assert_eq!(
                delete(&h.s.url(&format!("/api/v1/play/{sid}")), None).status,
                204
            );
        } else {
            // Refused before anything started: fail loudly if a session appeared.
            assert!(
                after <= before,
                "{who:?} was refused from {lib} but a conversion started anyway ({before} -> {after})"
            );
            assert!(
                r.json().get("session").is_none(),
                "{who:?}: a refusal carried a session: {}",
                r.body
            );
        }
    }
}

/// A running conversion is checked on every request: switching the device to a child, taking
/// a library away from the child, or signing out ends it at the next segment.
#[test]
fn a_session_ends_when_its_viewer_may_no_longer_watch() {
    if !have_ffmpeg() {
        return;
    }
    let h = house();
    let base = format!("http://{}", h.s.addr);
    let seg = |sid: &str, n: u32| get(&h.s.url(&format!("/api/v1/play/{sid}/{n}.m4s")), None);
    let start = |token: &str, item: u64| -> String {
        let r = play(&base, Some(token), item);
        assert_eq!(r.status, 200, "{}", r.body);
        let sid = r.json()["session"].as_str().unwrap().to_owned();
        assert_eq!(seg(&sid, 0).status, 200);
        sid
    };

    // 1. The owner watches "Private" on a device, then switches that device to Mia.
    let device = login(&h.s);
    let sid = start(&device, h.secret);
    switch(&h.s, &device, h.mia);
    let r = seg(&sid, 1);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error_code(), "media_link_revoked");
    assert_eq!(seg(&sid, 1).error_code(), "playback_ended");

    // 2. Mia watches "Films"; the owner takes "Films" away from her.
    let sid = start(&device, h.film);
    let r = send(
        "PATCH",
        &h.s.url(&format!("/api/v1/users/{}", h.mia)),
        Some(&h.owner),
        &json!({"restrictions": {"libraries": [h.private]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = seg(&sid, 1);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(seg(&sid, 2).error_code(), "playback_ended");

    // 3. The owner signs out on a device that was converting.
    let other = login(&h.s);
    let sid = start(&other, h.film);
    let r = send(
        "POST",
        &h.s.url("/api/v1/auth/logout"),
        Some(&other),
        &json!({}),
    );
    assert!(r.status < 300, "{}", r.body);
    let r = seg(&sid, 1);
    assert_eq!(r.status, 403, "{}", r.body);

    // Every ended session's files are gone.
    for _ in 0..100 {
        if sessions_on_disk(&h.s.data) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sessions_on_disk(&h.s.data), 0, "ended sessions left files");

    // Made-up or malformed session names and files are 404 and change nothing.
    for path in [
        format!("/api/v1/play/{}/main.m3u8", "0".repeat(64)),
        format!("/api/v1/play/{}/0.m4s", "f".repeat(64)),
        "/api/v1/play/..%2F..%2Fetc/passwd".to_owned(),
        "/api/v1/play/x/main.m3u8".to_owned(),
    ] {
        let r = get(&h.s.url(&path), None);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
}

/// The ffmpeg children of a process (by parent pid), from /proc.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = &stat[stat.find('(').unwrap_or(0) + 1..close];
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if comm == name && rest.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            out.push(pid);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// `hearth serve` killed with SIGKILL while converting: its ffmpeg children die with it
/// (`PR_SET_PDEATHSIG`), running or paused ahead of the viewer.
#[test]
fn no_ffmpeg_outlives_a_killed_server() {
    if !have_ffmpeg() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Long enough that the conversion is still running (or paused ahead) when the kill comes.
    hevc_clip(&tmp.path().join("media/Films/Long Night (2003).mkv"), 300);
    let serve = Serve::start(&data);
    let code = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["setup-code", "--data"])
        .arg(&data)
        .env_clear()
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&code.stdout).trim().to_owned();
    let r = send(
        "POST",
        &serve.url("/api/v1/setup/claim"),
        None,
        &json!({"setup_code": code, "server_name": "Den",
                "owner": {"username": "anna", "password": "correct horse battery"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let owner = r.json()["token"].as_str().unwrap().to_owned();
    let lib = library(
        &serve.base,
        &owner,
        "Films",
        &tmp.path().join("media/Films"),
    );
    let item = first_item(&serve.base, &owner, lib);
    let mut sids = Vec::new();
    // Two devices, two conversions.
    for token in [owner.clone(), {
        let r = send(
            "POST",
            &serve.url("/api/v1/auth/login"),
            None,
            &json!({"username": "anna", "password": "correct horse battery"}),
        );
        r.json()["token"].as_str().unwrap().to_owned()
    }] {
        let r = play(&serve.base, Some(&token), item);
        assert_eq!(r.status, 200, "{}", r.body);
        let v: Value = r.json();
        let sid = v["session"].as_str().unwrap().to_owned();
        assert_eq!(
            get(&serve.url(&format!("/api/v1/play/{sid}/0.m4s")), None).status,
            200
        );
        sids.push(sid);
    }
    let pid = serve.child.id();
    let kids = children_named(pid, "ffmpeg");
    assert_eq!(kids.len(), 2, "two conversions, two ffmpeg: {kids:?}");
    serve.kill();
    let mut left = kids.clone();
    for _ in 0..300 {
        left.retain(|p| alive(*p));
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        left.is_empty(),
        "ffmpeg outlived the killed server: {left:?} (of {kids:?})"
    );
    // The next start clears what the dead server left in the cache.
    let serve = Serve::start(&data);
    let cache: Vec<PathBuf> = std::fs::read_dir(data.join("transcode"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        cache.is_empty(),
        "stale sessions after a restart: {cache:?}"
    );
    serve.stop();
}

/// A JPEG from ffmpeg with an EXIF block saying "rotate 90° clockwise to view" (orientation 6).
fn rotated_photo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let plain = path.with_extension("plain.jpg");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=400x300:rate=1:duration=1")
        .args(["-frames:v", "1"])
        .arg(&plain)
        .status()
        .unwrap();
    assert!(st.success());
    let jpeg = std::fs::read(&plain).unwrap();
    std::fs::remove_file(&plain).unwrap();
    // TIFF (little endian), one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend([1, 0]);
    tiff.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    tiff.extend([0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(&tiff);
    let len = u16::try_from(app1.len() + 2).unwrap().to_be_bytes();
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1, len[0], len[1]];
    out.extend(&app1);
    out.extend(&jpeg[2..]);
    std::fs::write(path, out).unwrap();
}

/// (width, height) of a JPEG, from its start-of-frame marker.
fn jpeg_size(j: &[u8]) -> (u32, u32) {
    let mut i = 2;
    while i + 9 < j.len() {
        let marker = j[i + 1];
        let len = usize::from(j[i + 2]) << 8 | usize::from(j[i + 3]);
        if (0xC0..=0xC2).contains(&marker) {
            let h = u32::from(j[i + 5]) << 8 | u32::from(j[i + 6]);
            let w = u32::from(j[i + 7]) << 8 | u32::from(j[i + 8]);
            return (w, h);
        }
        i += 2 + len;
    }
    panic!("no start-of-frame marker");
}

struct Picture {
    status: u16,
    headers: Vec<(String, String)>,
    bytes: Vec<u8>,
}

impl Picture {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// GET with the raw body (a JPEG), optionally revalidating an ETag.
fn picture(url: &str, token: Option<&str>, etag: Option<&str>) -> Picture {
    let mut req = common::agent().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    if let Some(e) = etag {
        req = req.header("If-None-Match", e);
    }
    let mut resp = req.call().unwrap();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    Picture {
        status: resp.status().as_u16(),
        headers,
        bytes: resp.body_mut().read_to_vec().unwrap_or_default(),
    }
}

fn pictures_on_disk(data: &Path) -> usize {
    std::fs::read_dir(data.join("pictures"))
        .map(|d| d.filter_map(Result::ok).count())
        .unwrap_or(0)
}

/// Every title gets a picture: a frame of a film without a poster, a photo turned upright;
/// cached (ETag, 304); refused (no ffmpeg run, nothing cached) for a viewer who may not see
/// the item; a burst of requests is answered 200 or 503 with Retry-After, never 500.
#[test]
fn pictures_for_every_title() {
    if !have_ffmpeg() {
        return;
    }
    let h = house();
    let photos_dir = h._media.path().join("Photos");
    rotated_photo(&photos_dir.join("Beach.jpg"));
    let base = format!("http://{}", h.s.addr);
    let r = send(
        "POST",
        &h.s.url("/api/v1/libraries"),
        Some(&h.owner),
        &json!({"name": "Photos", "kind": "photos", "folders": [photos_dir.to_str().unwrap()]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let photos = r.json()["id"].as_u64().unwrap();
    wait_for_scan(&base, &h.owner, photos);
    let photo = first_item(&base, &h.owner, photos);
    let seen = get(&h.s.url(&format!("/api/v1/items/{photo}")), Some(&h.owner)).json();
    assert_eq!(
        seen["orientation"], 6,
        "the scanner read the EXIF orientation: {seen}"
    );

    let pic = |token: Option<&str>, item: u64, w: u32| {
        picture(
            &h.s.url(&format!("/api/v1/items/{item}/picture?w={w}")),
            token,
            None,
        )
    };
    // A film with no poster: a frame, 320 wide (the clip is 160 wide: never enlarged).
    let r = pic(Some(&h.owner), h.film, 300);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(jpeg_size(&r.bytes), (160, 90));
    let etag = r.header("etag").unwrap().to_owned();
    let again = picture(
        &h.s.url(&format!("/api/v1/items/{}/picture?w=300", h.film)),
        Some(&h.owner),
        Some(&etag),
    );
    assert_eq!(again.status, 304);
    // The photo, stored landscape with "rotate 90°" in its EXIF, comes out portrait.
    let r = pic(Some(&h.owner), photo, 160);
    assert_eq!(r.status, 200);
    assert_eq!(jpeg_size(&r.bytes), (160, 214));

    // Mia may not open "Private": 404, and no picture was made for her.
    let child = login(&h.s);
    switch(&h.s, &child, h.mia);
    let before = pictures_on_disk(&h.s.data);
    let r = pic(Some(&child), h.secret, 320);
    assert_eq!(r.status, 404);
    assert_eq!(
        pictures_on_disk(&h.s.data),
        before,
        "a refused picture was made anyway"
    );
    assert_eq!(pic(None, h.film, 320).status, 401);
    assert_eq!(pic(Some(&child), h.film, 320).status, 200);

    // A burst: every size of every picture at once.
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..48)
            .map(|n| {
                let item = [h.film, h.secret, photo][n % 3];
                let w = [160, 320, 480, 720, 1080, 1920][n % 6];
                let (owner, s) = (&h.owner, &h.s);
                scope.spawn(move || {
                    let r = get(
                        &s.url(&format!("/api/v1/items/{item}/picture?w={w}")),
                        Some(owner),
                    );
                    if r.status == 503 {
                        assert!(r.header("retry-after").is_some(), "503 without Retry-After");
                    }
                    r.status
                })
            })
            .collect();
        handles.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(
        answers.iter().all(|s| *s == 200 || *s == 503),
        "{answers:?}"
    );
    assert_eq!(get(&h.s.url("/api/v1/health"), None).status, 200);
}

/// The owner's limit for viewers outside the home: only the owner reads or sets it, only the
/// offered values are taken, and a bad one changes nothing. A dry run (the item page's "what
/// will happen") starts nothing.
#[test]
fn playback_settings_and_dry_runs() {
    if !have_ffmpeg() {
        return;
    }
    let h = house();
    let base = format!("http://{}", h.s.addr);
    let child = login(&h.s);
    switch(&h.s, &child, h.mia);
    let url = h.s.url("/api/v1/settings/playback");
    // (who, method, body, expected status)
    let table: Vec<(&str, Option<&str>, &str, Value, u16)> = vec![
        ("owner", Some(&h.owner), "GET", json!(null), 200),
        ("child", Some(&child), "GET", json!(null), 403),
        ("nobody", None, "GET", json!(null), 401),
        (
            "owner",
            Some(&h.owner),
            "PUT",
            json!({"remote_bitrate": 2_000_000}),
            200,
        ),
        (
            "child",
            Some(&child),
            "PUT",
            json!({"remote_bitrate": 0}),
            403,
        ),
        ("nobody", None, "PUT", json!({"remote_bitrate": 0}), 401),
        (
            "owner",
            Some(&h.owner),
            "PUT",
            json!({"remote_bitrate": 3}),
            422,
        ),
        (
            "owner",
            Some(&h.owner),
            "PUT",
            json!({"remote_bitrate": "fast"}),
            422,
        ),
        (
            "owner",
            Some(&h.owner),
            "PUT",
            json!({"remote_bitrate": 0, "x": 1}),
            422,
        ),
    ];
    for (who, token, method, body, want) in table {
        let r = if method == "GET" {
            get(&url, token)
        } else {
            send(method, &url, token, &body)
        };
        assert_eq!(r.status, want, "{who} {method} {body}: {}", r.body);
        // Whatever was refused, the limit is still the one the owner set.
        let now = get(&url, Some(&h.owner)).json();
        if method == "PUT" && want == 200 {
            assert_eq!(now["remote_bitrate"], body["remote_bitrate"]);
        } else if now["remote_bitrate"] != json!(4_000_000) {
            assert_eq!(
                now["remote_bitrate"], 2_000_000,
                "{who} {method} {body} changed it"
            );
        }
    }

    let before = sessions_on_disk(&h.s.data);
    let r = send(
        "POST",
        &format!("{base}/api/v1/items/{}/play", h.film),
        Some(&h.owner),
        &json!({"dry_run": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["method"], "transcode", "{v}");
    assert!(v["session"].is_null(), "{v}");
    assert!(
        v["summary"].as_str().unwrap().contains("HEVC"),
        "the answer says why: {v}"
    );
    assert_eq!(
        sessions_on_disk(&h.s.data),
        before,
        "a dry run started a conversion"
    );
    // A child asking about a title she may not see: 404 as for playing it.
    let r = send(
        "POST",
        &format!("{base}/api/v1/items/{}/play", h.secret),
        Some(&child),
        &json!({"dry_run": true}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
}
