//! Security-sensitive tests of backups against the real server: a whole household backed up,
//! the data directory wiped, restored through the setup wizard's API and compared table by
//! table; every kind of bad file refused with its own error and nothing changed; who may do
//! what (only the owner); and `hearth serve` killed during scheduled backups.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TestServer, get, send};
use hearth::backup::format::{Kdf, MasterKey, Sealer, Unlock};
use hearth::store::Store;
use serde_json::{Value, json};

const PASS: &str = "correct horse battery staple";

/// A raw POST with headers; returns (status, body bytes).
fn post_raw(
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut req = common::agent().post(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req
        .header("Content-Type", "application/octet-stream")
        .send(body)
        .expect("transport");
    let status = resp.status().as_u16();
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap_or_default();
    (status, bytes)
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

fn download(s: &TestServer, token: &str, pass: &str) -> (u16, Vec<u8>) {
    let mut resp = common::agent()
        .post(&s.url("/api/v1/backup/download"))
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(json!({ "passphrase": pass }))
        .expect("transport");
    let status = resp.status().as_u16();
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    (status, bytes)
}

fn setup_restore(s: &TestServer, file: &[u8], pass: &str, code: &str) -> (u16, Vec<u8>) {
    let enc = percent(pass);
    post_raw(
        &s.url("/api/v1/setup/restore"),
        None,
        &[("Hearth-Passphrase", &enc), ("Hearth-Setup-Code", code)],
        file,
    )
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn wait_for_scan(s: &TestServer, token: &str, lib: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = get(
            &s.url(&format!("/api/v1/libraries/{lib}/scan")),
            Some(token),
        )
        .json();
        if v["progress"]["running"] == false {
            return;
        }
        assert!(Instant::now() < deadline, "scan never finished: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_claimed(s: &TestServer, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A restore restarts the server: a request it cuts off is asked again.
        let r = common::agent().get(&s.url("/api/v1/setup")).call();
        if let Ok(mut r) = r
            && r.status() == 200
            && serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap_or_default())
                .is_ok_and(|v| v["claimed"] == want)
        {
            return;
        }
        assert!(Instant::now() < deadline, "never became claimed={want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Builds a household: libraries scanned, a managed profile with a PIN and restrictions, a
/// friend, watch progress, TOTP, a custom network rule. Returns the owner's token.
fn household(s: &TestServer, media: &Path) -> String {
    let owner = common::claim(s);
    let r = send(
        "POST",
        &s.url("/api/v1/libraries"),
        Some(&owner),
        &json!({"name": "Films", "kind": "movies", "folders": [media.join("Movies").to_str().unwrap()]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let lib = r.json()["id"].as_u64().unwrap();
    wait_for_scan(s, &owner, lib);
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Mia", "preset": "little_kid"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mia = r.json()["id"].as_u64().unwrap();
    let r = send(
        "PUT",
        &s.url(&format!("/api/v1/users/{mia}/pin")),
        Some(&owner),
        &json!({"pin": "1234"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = send(
        "PATCH",
        &s.url(&format!("/api/v1/users/{mia}")),
        Some(&owner),
        &json!({"restrictions": {"labels_deny": ["violence"]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A friend.
    let r = send(
        "POST",
        &s.url("/api/v1/invites"),
        Some(&owner),
        &json!({"invitee": "ben"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let t = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(
        "POST",
        &s.url(&format!("/api/v1/invites/{t}/accept")),
        None,
        &json!({"username": "ben", "password": "friendly giraffe tune"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // Watch progress.
    let items = get(
        &s.url(&format!("/api/v1/libraries/{lib}/items")),
        Some(&owner),
    )
    .json();
    let first = items["items"][0]["id"].as_u64().unwrap();
    let r = send(
        "PUT",
        &s.url(&format!("/api/v1/items/{first}/progress")),
        Some(&owner),
        &json!({"position_ms": 61_000}),
    );
    assert!(r.status < 300, "{}", r.body);
    // TOTP enrolment (started: its secret is stored).
    let r = send("POST", &s.url("/api/v1/me/totp"), Some(&owner), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    // A custom network rule.
    let r = send(
        "PATCH",
        &s.url("/api/v1/settings/network"),
        Some(&owner),
        &json!({"allowed_without_auth": {"networks": ["192.0.2.0/24"], "profile": "guest"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    owner
}

fn dump(data: &Path) -> BTreeMap<String, Vec<String>> {
    Store::open(&data.join("hearth.redb"))
        .unwrap()
        .dump()
        .unwrap()
}

fn tls_files(data: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(data.join("tls")) {
        for e in rd.flatten() {
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    out
}

/// The device's real certificate authority, as an HTTPS-enabled device has it.
fn make_tls(data: &Path) {
    std::fs::create_dir_all(data).unwrap();
    hearth::net::tls::TlsManager::open(
        &data.join("tls"),
        &hearth::net::tls::DeviceNames::detect(),
        hearth::now_secs() as i64,
    )
    .unwrap();
}

#[test]
fn a_household_comes_back_through_the_setup_wizard() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let media = tmp.path().join("media");
    common::copy_tree(&common::test_media(), &media);
    make_tls(&data);
    let s = TestServer::start_with(&data, |_| {});
    let owner = household(&s, &media);

    let t0 = Instant::now();
    let (status, file) = download(&s, &owner, PASS);
    let backup_time = t0.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&file));
    let view = get(&s.url("/api/v1/backup"), Some(&owner)).json();
    assert!(view["status"]["last_download_at"].is_u64(), "{view}");
    assert_eq!(view["warning"], Value::Null, "{view}");
    s.stop().unwrap();
    let original = dump(&data);
    let original_tls = tls_files(&data);
    assert!(original_tls.contains_key("ca.key"));

    // The backup opened offline holds exactly what is restored below.
    let check = tmp.path().join("check");
    std::fs::create_dir(&check).unwrap();
    let manifest =
        hearth::backup::read_backup(&file[..], Unlock::Passphrase(PASS), Some(&check)).unwrap();
    assert_eq!(manifest.server_name, "Den");
    assert!(
        manifest.files.iter().all(|f| !f.path.contains("Movies")),
        "no media"
    );
    let in_backup = dump(&check);

    // The SD card dies: a fresh data directory, a fresh start, the wizard restores.
    std::fs::remove_dir_all(&data).unwrap();
    let s = TestServer::start_with(&data, |_| {});
    wait_claimed(&s, false);
    let code = hearth::identity::setup_code::read(&data).unwrap().unwrap();
    let t0 = Instant::now();
    let (status, body) = setup_restore(&s, &file, PASS, &code);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    wait_claimed(&s, true);
    let restore_time = t0.elapsed();
    s.stop().unwrap();
    println!(
        "backup: {} bytes in {:?}; restore (upload, verify, restart) in {:?}",
        file.len(),
        backup_time,
        restore_time
    );

    // The restore adds one entry to the audit log (and its counter): set it aside.
    let mut restored = dump(&data);
    let added: Vec<String> = restored["audit"]
        .iter()
        .filter(|r| !in_backup["audit"].contains(r))
        .cloned()
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    assert!(
        added[0].contains("\"restore\"") && added[0].contains("Den"),
        "{added:?}"
    );
    for t in restored.values_mut() {
        t.retain(|r| !added.contains(r) && !r.starts_with("\"next_audit_id\""));
    }
    let mut in_backup = in_backup;
    let mut original = original;
    for t in in_backup.values_mut().chain(original.values_mut()) {
        t.retain(|r| !r.starts_with("\"next_audit_id\""));
    }
    assert_eq!(
        restored, in_backup,
        "the restore is the backup, table by table"
    );
    assert_eq!(tls_files(&data), original_tls, "the certificates came back");
    // Against the household as it was: every table and setting, except the download's own
    // record, written after the snapshot.
    for (table, rows) in &original {
        let mut a = rows.clone();
        let mut b = restored[table].clone();
        if table == "settings" {
            a.retain(|r| !r.starts_with("\"backup_status\""));
            b.retain(|r| !r.starts_with("\"backup_status\""));
        }
        assert_eq!(a, b, "table {table}");
    }
    for table in [
        "users",
        "devices",
        "watch_state",
        "libraries",
        "items",
        "settings",
    ] {
        assert!(!restored[table].is_empty(), "{table} is empty");
    }
    assert!(!data.join("restore-ready").exists() && !data.join("restore-previous").exists());

    // The owner's old token works again; the setup code is gone.
    let s = TestServer::start_with(&data, |_| {});
    assert_eq!(get(&s.url("/api/v1/me"), Some(&owner)).status, 200);
    assert!(hearth::identity::setup_code::read(&data).unwrap().is_none());
    let users = get(&s.url("/api/v1/users"), Some(&owner)).json();
    assert!(users.to_string().contains("Mia") && users.to_string().contains("ben"));
}

/// A JSON POST with the setup code header; returns (status, body).
fn setup_json(s: &TestServer, path: &str, code: &str, body: &Value) -> (u16, Value) {
    setup_json_as(s, None, path, code, body)
}

fn setup_json_as(
    s: &TestServer,
    token: Option<&str>,
    path: &str,
    code: &str,
    body: &Value,
) -> (u16, Value) {
    let mut req = common::agent()
        .post(&s.url(path))
        .header("Hearth-Setup-Code", code);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.send_json(body).expect("transport");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!(text)),
    )
}

fn libraries(s: &TestServer, token: &str) -> Vec<Value> {
    get(&s.url("/api/v1/libraries"), Some(token))
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// The SD card dies; the backups were scheduled to a USB disk. On the fresh device the wizard
/// finds them (a folder the config names stands for the disk: a laptop has no agent), shows
/// each one's manifest after the passphrase, names what is wrong with the others, refuses
/// every bad choice without changing anything, and restores the chosen one. The library comes
/// back online where its folder is, and offline (items kept) where it is not.
#[test]
fn the_wizard_restores_a_backup_found_on_a_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let media = tmp.path().join("media");
    common::copy_tree(&common::test_media(), &media);
    let usb = tmp.path().join("usb");
    std::fs::create_dir_all(usb.join("hearth-backups")).unwrap();
    let s = TestServer::start_with(&data, |_| {});
    let owner = household(&s, &media);
    let items_before = libraries(&s, &owner)[0]["items"].as_u64().unwrap();
    let r = send(
        "PUT",
        &s.url("/api/v1/backup/schedule"),
        Some(&owner),
        &json!({"folder": usb.join("hearth-backups").to_str().unwrap(), "every": "weekly", "keep": 3, "passphrase": PASS}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(
        "POST",
        &s.url("/api/v1/backup/run"),
        Some(&owner),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let scheduled = format!("hearth-backups/{}", r.json()["last_file"].as_str().unwrap());
    // Beside it: a download with another passphrase, a file that is not a backup, a link to
    // a backup outside the disk (not followed), and one cut short.
    let (status, other) = download(&s, &owner, "another passphrase entirely");
    assert_eq!(status, 200);
    std::fs::write(usb.join("older-download.hbk"), &other).unwrap();
    std::fs::write(usb.join("notes.hbk"), b"shopping list: milk, bread").unwrap();
    let outside = tmp.path().join("outside.hbk");
    std::fs::write(&outside, &other).unwrap();
    std::os::unix::fs::symlink(&outside, usb.join("link.hbk")).unwrap();
    let full = std::fs::read(usb.join(&scheduled)).unwrap();
    std::fs::write(usb.join("cut.hbk"), &full[..full.len() / 2]).unwrap();
    let version = get(&s.url("/api/v1/health"), None).json()["version"].clone();
    s.stop().unwrap();

    std::fs::remove_dir_all(&data).unwrap();
    let missing = tmp.path().join("not-plugged-in");
    let folders = vec![usb.clone(), missing.clone()];
    let start = |folders: Vec<PathBuf>| {
        TestServer::start_with(&data, move |c| c.backup.restore_folders = folders)
    };
    let s = start(folders.clone());
    wait_claimed(&s, false);
    let code = hearth::identity::setup_code::read(&data).unwrap().unwrap();
    let before = listing(&data);
    let pass = json!({"passphrase": PASS});

    // The setup code first, as for claiming; then the passphrase.
    let (status, body) = setup_json(&s, "/api/v1/setup/backups", "AAAA-BBBB-CCCC", &pass);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("wrong_setup_code")),
        "{body}"
    );
    let (status, body) = setup_json(
        &s,
        "/api/v1/setup/backups",
        &code,
        &json!({"passphrase": ""}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("passphrase_missing")),
        "{body}"
    );
    let (status, body) = setup_json(
        &s,
        "/api/v1/setup/backups",
        &code,
        &json!({"passphrase": PASS, "path": "/etc"}),
    );
    assert!(status == 400 || status == 422, "{status} {body}");

    let (status, found) = setup_json(&s, "/api/v1/setup/backups", &code, &pass);
    assert_eq!(status, 200, "{found}");
    let places = found["places"].as_array().unwrap();
    assert_eq!(places.len(), 2, "{found}");
    assert!(places[0]["problem"].is_null(), "{found}");
    assert!(
        places[1]["problem"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{found}"
    );
    let backups = found["backups"].as_array().unwrap();
    let by_path: BTreeMap<String, &Value> = backups
        .iter()
        .map(|b| (b["path"].as_str().unwrap().to_owned(), b))
        .collect();
    // Setting the schedule made one backup at once, "back up now" the newest.
    let mut want: Vec<String> = listing(&usb.join("hearth-backups"))
        .into_iter()
        .map(|n| format!("hearth-backups/{n}"))
        .collect();
    assert!(want.contains(&scheduled), "{want:?}");
    want.extend(["cut.hbk", "notes.hbk", "older-download.hbk"].map(String::from));
    want.sort();
    assert_eq!(
        by_path.keys().cloned().collect::<Vec<_>>(),
        want,
        "only plain .hbk files, no link: {found}"
    );
    let good = by_path[&scheduled];
    assert_eq!(good["facts"]["server_name"], "Den", "{good}");
    assert_eq!(good["facts"]["hearth_version"], version, "{good}");
    assert!(good["facts"]["board"].is_string(), "{good}");
    assert!(good["facts"]["created_at"].as_u64().unwrap() > 0, "{good}");
    assert!(
        good["facts"]["content_bytes"].as_u64().unwrap() > 0,
        "{good}"
    );
    assert_eq!(good["size"].as_u64().unwrap(), full.len() as u64);
    assert!(good["problem"].is_null(), "{good}");
    let problem = |p: &str| by_path[p]["problem"]["code"].as_str().unwrap().to_owned();
    assert_eq!(problem("older-download.hbk"), "wrong_passphrase");
    assert_eq!(problem("notes.hbk"), "not_a_backup");
    // Its manifest is in the first chunk: the cut shows only when the whole file is read.
    assert!(by_path["cut.hbk"]["facts"].is_object() || by_path["cut.hbk"]["problem"].is_object());
    assert!(!found.to_string().contains(PASS));

    // Every bad choice: its own error, nothing changed, still unclaimed.
    let id = |p: &str| by_path[p]["id"].as_str().unwrap().to_owned();
    let restore = "/api/v1/setup/backups/restore";
    let link_id = id("notes.hbk").replace("notes.hbk", "link.hbk");
    let bad: Vec<(Value, &str, &str)> = vec![
        (
            json!({"id": id(&scheduled), "passphrase": PASS}),
            "AAAA-BBBB-CCCC",
            "wrong_setup_code",
        ),
        (
            json!({"id": id(&scheduled), "passphrase": "not the right one"}),
            &code,
            "wrong_passphrase",
        ),
        (
            json!({"id": id(&scheduled), "passphrase": ""}),
            &code,
            "passphrase_missing",
        ),
        (
            json!({"id": id("older-download.hbk"), "passphrase": PASS}),
            &code,
            "wrong_passphrase",
        ),
        (
            json!({"id": id("notes.hbk"), "passphrase": PASS}),
            &code,
            "not_a_backup",
        ),
        (
            json!({"id": id("cut.hbk"), "passphrase": PASS}),
            &code,
            "backup_truncated",
        ),
        (
            json!({"id": link_id, "passphrase": PASS}),
            &code,
            "backup_folder",
        ),
        (
            json!({"id": format!("{}/../../outside.hbk", id("notes.hbk")), "passphrase": PASS}),
            &code,
            "invalid_input",
        ),
        (
            json!({"id": format!("folder:0:{}", outside.display()), "passphrase": PASS}),
            &code,
            "backup_folder",
        ),
        (
            json!({"id": "folder:7:notes.hbk", "passphrase": PASS}),
            &code,
            "backup_folder",
        ),
        (
            json!({"id": "", "passphrase": PASS}),
            &code,
            "invalid_input",
        ),
    ];
    for (body, c, want) in &bad {
        let (status, answer) = setup_json(&s, restore, c, body);
        assert_eq!(
            answer["error"]["code"].as_str(),
            Some(*want),
            "{body}: {status} {answer}"
        );
        assert!((400..500).contains(&status), "{body}: {status}");
        assert_eq!(listing(&data), before, "{body} changed the data folder");
        assert_eq!(get(&s.url("/api/v1/setup"), None).json()["claimed"], false);
    }

    let t0 = Instant::now();
    let (status, answer) = setup_json(
        &s,
        restore,
        &code,
        &json!({"id": id(&scheduled), "passphrase": PASS}),
    );
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["manifest"]["server_name"], "Den");
    wait_claimed(&s, true);
    println!(
        "restore from the folder (find, verify, restart): {:?}",
        t0.elapsed()
    );
    // The owner is back, and the library with its folder where it was: online, items kept.
    assert_eq!(get(&s.url("/api/v1/me"), Some(&owner)).status, 200);
    let lib = &libraries(&s, &owner)[0];
    assert_eq!(lib["online"], true, "{lib}");
    assert_eq!(lib["items"].as_u64(), Some(items_before), "{lib}");
    // A restored device is claimed: the wizard's search is closed.
    let (status, _) = setup_json(&s, "/api/v1/setup/backups", &code, &pass);
    assert_eq!(status, 409);
    s.stop().unwrap();

    // The disk with the films is not plugged in when the device starts: the library is
    // offline with its items kept; plugged in again, it is back.
    let away = tmp.path().join("media-away");
    std::fs::rename(&media, &away).unwrap();
    let s = start(folders.clone());
    let lib = &libraries(&s, &owner)[0];
    assert_eq!(lib["online"], false, "{lib}");
    assert_eq!(lib["items"].as_u64(), Some(items_before), "{lib}");
    assert!(
        lib["offline_folders"].to_string().contains("Movies"),
        "{lib}"
    );
    s.stop().unwrap();
    std::fs::rename(&away, &media).unwrap();
    let s = start(folders);
    let lib = &libraries(&s, &owner)[0];
    assert_eq!(lib["online"], true, "{lib}");
    assert_eq!(lib["items"].as_u64(), Some(items_before), "{lib}");
}

/// A backup file made with the library's own writer around a payload the test chooses.
fn craft(manifest: &Value, content: &[u8], pass: &str) -> Vec<u8> {
    let key = MasterKey::new(
        pass,
        Kdf {
            memory_kib: 8 * 1024,
            passes: 1,
            lanes: 1,
        },
    )
    .unwrap();
    let sealer = Sealer::new(Vec::new(), &key).unwrap();
    let mut z = flate2::write::DeflateEncoder::new(sealer, flate2::Compression::fast());
    let json = serde_json::to_vec(manifest).unwrap();
    z.write_all(&(json.len() as u32).to_be_bytes()).unwrap();
    z.write_all(&json).unwrap();
    z.write_all(content).unwrap();
    z.finish().unwrap().finish().unwrap().0
}

fn manifest_with(files: Value, schema: u64) -> Value {
    json!({"product": "hearth", "hearth_version": "9.9.9", "schema_version": schema,
        "board": "generic-x86_64", "created_at": 1, "server_name": "X", "files": files})
}

fn sha(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn bad_backups_are_refused_each_with_its_own_error_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    // A real backup from another device.
    let src = TestServer::start_with(&tmp.path().join("src"), |_| {});
    let src_owner = common::claim(&src);
    let (_, good) = download(&src, &src_owner, PASS);
    drop(src);

    let data = tmp.path().join("data");
    let s = TestServer::start_with(&data, |_| {});
    let code = hearth::identity::setup_code::read(&data).unwrap().unwrap();
    let before = listing(&data);

    let db = std::fs::read(tmp.path().join("src/hearth.redb")).unwrap();
    let db_entry =
        |path: &str| json!([{"path": path, "kind": "file", "size": db.len(), "sha256": sha(&db)}]);
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    let mut tar = vec![0u8; 2048];
    tar[257..262].copy_from_slice(b"ustar");
    let zeros = vec![0u8; 64 << 20];
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "wrong passphrase",
            good.clone(),
            "not the passphrase at all",
            "wrong_passphrase",
        ),
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            PASS,
            "backup_truncated",
        ),
        (
            "cut at the header",
            good[..60].to_vec(),
            PASS,
            "backup_truncated",
        ),
        ("flipped byte", flipped, PASS, "backup_damaged"),
        ("another product's tar", tar, PASS, "not_a_backup"),
        (
            "an update bundle",
            b"HEARTHUP\0\0\0\0 not a backup at all".to_vec(),
            PASS,
            "not_a_backup",
        ),
        (
            "path traversal",
            craft(&manifest_with(db_entry("../../etc/passwd"), 1), &db, PASS),
            PASS,
            "backup_refused",
        ),
        (
            "absolute path",
            craft(&manifest_with(db_entry("/etc/hearth.redb"), 1), &db, PASS),
            PASS,
            "backup_refused",
        ),
        (
            "symlink",
            craft(
                &manifest_with(
                    json!([{"path": "tls/ca.key", "kind": "symlink", "size": 0, "sha256": sha(b"")}]),
                    1,
                ),
                b"",
                PASS,
            ),
            PASS,
            "backup_refused",
        ),
        (
            "decompression bomb",
            craft(
                &manifest_with(
                    json!([{"path": "hearth.redb", "kind": "file", "size": 1024, "sha256": sha(&zeros[..1024])}]),
                    1,
                ),
                &zeros,
                PASS,
            ),
            PASS,
            "backup_refused",
        ),
        (
            "oversized",
            craft(
                &manifest_with(
                    json!([{"path": "hearth.redb", "kind": "file", "size": 1u64 << 40, "sha256": sha(b"")}]),
                    1,
                ),
                b"",
                PASS,
            ),
            PASS,
            "backup_too_large",
        ),
        (
            "from a newer hearth",
            craft(&manifest_with(db_entry("hearth.redb"), 99), &db, PASS),
            PASS,
            "backup_too_new",
        ),
        ("empty", Vec::new(), PASS, "empty_upload"),
    ];
    for (what, file, pass, want) in &cases {
        let (status, body) = setup_restore(&s, file, pass, &code);
        let got = error_code(&body);
        assert_eq!(
            &got,
            want,
            "{what}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        assert!((400..500).contains(&status), "{what}: {status}");
        if *want == "backup_too_new" {
            let msg = String::from_utf8_lossy(&body);
            assert!(msg.contains("9.9.9"), "names the version needed: {msg}");
        }
        assert_eq!(listing(&data), before, "{what} changed the data directory");
        let st = get(&s.url("/api/v1/setup"), None).json();
        assert_eq!(st["claimed"], false, "{what}");
    }
    drop(s);
    // A file larger than the device accepts is cut off while it arrives, not stored.
    let s = TestServer::start_with(&data, |c| c.limits.upload_bytes = 4096);
    let (status, body) = setup_restore(&s, &good, PASS, &code);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (413, "backup_too_large")
    );
    assert_eq!(listing(&data), before);
    drop(s);
    let s = TestServer::start_with(&data, |_| {});
    // No passphrase, a wrong setup code.
    let (_, body) = post_raw(
        &s.url("/api/v1/setup/restore"),
        None,
        &[("Hearth-Setup-Code", &code)],
        &good,
    );
    assert_eq!(error_code(&body), "passphrase_missing");
    let (status, _) = setup_restore(&s, &good, PASS, "AAAA-BBBB-CCCC");
    assert!(status == 401 || status == 403 || status == 422, "{status}");
    assert_eq!(listing(&data), before);
    // And the good one still works after all that.
    let (status, body) = setup_restore(&s, &good, PASS, &code);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    wait_claimed(&s, true);
}

/// Only the owner may back up, download, configure or restore. Each forbidden request is
/// one that would change something if it ran (a valid file, a valid schedule), and the
/// checks after the table fail loudly if any of them did.
#[test]
fn only_the_owner_may_touch_backups() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let media = tmp.path().join("media");
    common::copy_tree(&common::test_media(), &media);
    let folder = tmp.path().join("usb");
    std::fs::create_dir(&folder).unwrap();
    let s = TestServer::start_with(&data, |_| {});
    let owner = household(&s, &media);
    // Mia on a device of her own: the owner signs in again and switches it to her.
    let mia_id = get(&s.url("/api/v1/users"), Some(&owner))
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "Mia" || u["username"] == "Mia")
        .map(|u| u["id"].as_u64().unwrap())
        .unwrap();
    let login = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "anna", "password": "correct horse battery"}),
    );
    let mia = login.json()["token"].as_str().unwrap().to_owned();
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&mia),
        &json!({"user_id": mia_id, "pin": "1234"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ben = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "ben", "password": "friendly giraffe tune"}),
    )
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, good) = download(&s, &owner, PASS);
    let schedule = json!({"folder": folder.to_str().unwrap(), "every": "daily", "keep": 3, "passphrase": PASS});
    let before_view = get(&s.url("/api/v1/backup"), Some(&owner)).json();

    let who: Vec<(&str, Option<&str>)> = vec![
        ("managed", Some(&mia)),
        ("friend", Some(&ben)),
        ("anonymous", None),
        ("bad token", Some("not-a-token")),
    ];
    let enc = percent(PASS);
    for (name, token) in &who {
        let rows: Vec<(&str, u16)> = vec![
            ("view", get(&s.url("/api/v1/backup"), *token).status),
            (
                "schedule",
                send("PUT", &s.url("/api/v1/backup/schedule"), *token, &schedule).status,
            ),
            (
                "run",
                send("POST", &s.url("/api/v1/backup/run"), *token, &json!({})).status,
            ),
            (
                "download",
                send(
                    "POST",
                    &s.url("/api/v1/backup/download"),
                    *token,
                    &json!({"passphrase": PASS}),
                )
                .status,
            ),
            (
                "restore",
                post_raw(
                    &s.url("/api/v1/backup/restore?confirm=replace-everything"),
                    *token,
                    &[("Hearth-Passphrase", &enc)],
                    &good,
                )
                .0,
            ),
            (
                "setup restore",
                setup_restore(&s, &good, PASS, "AAAA-BBBB-CCCC").0,
            ),
            (
                "setup find backups",
                setup_json_as(&s, *token, "/api/v1/setup/backups", "AAAA-BBBB-CCCC", &json!({"passphrase": PASS})).0,
            ),
            (
                "setup restore a found backup",
                setup_json_as(&s, *token, "/api/v1/setup/backups/restore", "AAAA-BBBB-CCCC",
                    &json!({"id": format!("folder:0:{}", folder.join("x.hbk").display()), "passphrase": PASS})).0,
            ),
        ];
        for (action, status) in rows {
            assert!(
                status == 401 || status == 403 || status == 409,
                "{name} may not {action}: got {status}"
            );
        }
    }
    // The owner too: a claimed device's wizard finds and restores nothing, even with the
    // right setup code of old (gone once claimed).
    for (path, body) in [
        ("/api/v1/setup/backups", json!({"passphrase": PASS})),
        (
            "/api/v1/setup/backups/restore",
            json!({"id": "folder:0:x.hbk", "passphrase": PASS}),
        ),
    ] {
        let (status, answer) = setup_json_as(&s, Some(&owner), path, "AAAA-BBBB-CCCC", &body);
        assert_eq!(status, 409, "owner {path}: {answer}");
    }
    // Nothing ran: no file in the folder, the schedule as it was, no restore staged.
    assert!(listing(&folder).is_empty(), "a refused backup ran");
    assert_eq!(
        get(&s.url("/api/v1/backup"), Some(&owner)).json()["every"],
        before_view["every"]
    );
    assert!(!data.join("restore-ready").exists() && !data.join("restore-staging").exists());
    assert_eq!(
        get(&s.url("/api/v1/me"), Some(&ben)).status,
        200,
        "no restore restarted the server"
    );

    // The owner may do all of it; the restore needs its confirmation.
    let r = send(
        "PUT",
        &s.url("/api/v1/backup/schedule"),
        Some(&owner),
        &schedule,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["has_passphrase"], true);
    assert!(!r.body.contains(PASS));
    let r = send(
        "POST",
        &s.url("/api/v1/backup/run"),
        Some(&owner),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Setting a schedule makes the first backup at once; "back up now" another.
    assert!(!listing(&folder).is_empty());
    let (status, body) = post_raw(
        &s.url("/api/v1/backup/restore"),
        Some(&owner),
        &[("Hearth-Passphrase", &enc)],
        &good,
    );
    assert_eq!(error_code(&body), "confirmation_needed", "{status}");
    let (status, body) = post_raw(
        &s.url("/api/v1/backup/restore?confirm=replace-everything"),
        Some(&owner),
        &[("Hearth-Passphrase", &enc)],
        &good,
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    // After the restart, the state of the backup: no schedule yet (it was set after).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The restore restarts the server: a request it cuts off is asked again.
        let v = common::agent()
            .get(&s.url("/api/v1/backup"))
            .header("Authorization", &format!("Bearer {owner}"))
            .call();
        let body = match v {
            Ok(mut r) if r.status() == 200 => r.body_mut().read_to_string().unwrap_or_default(),
            Ok(r) => format!("status {}", r.status()),
            Err(e) => format!("cut off by the restart: {e}"),
        };
        if serde_json::from_str::<Value>(&body).is_ok_and(|v| v["every"] == "off") {
            break;
        }
        assert!(Instant::now() < deadline, "restore never finished: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `hearth serve`, as a real process, killed at varying points of scheduled backups.
struct Serve {
    child: std::process::Child,
    base: String,
}

impl Serve {
    fn start(data: &Path) -> Serve {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HEARTH_")) {
            cmd.env_remove(k);
        }
        let mut child = cmd
            .args(["serve", "--data"])
            .arg(data)
            .args(["--http", "127.0.0.1:0", "--https", "off"])
            .env("HEARTH_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let url = line[i + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .trim_end_matches('/')
                        .to_owned();
                    let _ = tx.send(url);
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server started");
        Serve { child, base }
    }
    fn url(&self, p: &str) -> String {
        format!("{}{}", self.base, p)
    }
    fn kill(self) {
        drop(self);
    }
}

impl Drop for Serve {
    /// SIGKILL, also when a test fails midway: no server outlives its test.
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

fn seeds() -> u64 {
    std::env::var("BACKUP_KILL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// Opens every file in `folder`: finished backups must verify, and nothing unfinished may.
fn check_folder(folder: &Path, pass: &str) -> (usize, usize) {
    let mut key: Option<MasterKey> = None;
    let (mut whole, mut parts) = (0, 0);
    for name in listing(folder) {
        let bytes = std::fs::read(folder.join(&name)).unwrap();
        let unlock_key = if bytes.len() >= 40 {
            let kdf = Kdf {
                memory_kib: u32::from_be_bytes(bytes[12..16].try_into().unwrap()),
                passes: u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
                lanes: u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
            };
            let salt: [u8; 16] = bytes[24..40].try_into().unwrap();
            if key.as_ref().is_none_or(|k| k.salt != salt) {
                key = Some(MasterKey::derive(pass, kdf, salt).unwrap());
            }
            key.clone()
        } else {
            None
        };
        let verified = match &unlock_key {
            Some(k) => hearth::backup::read_backup(&bytes[..], Unlock::Key(k), None).is_ok(),
            None => false,
        };
        if name.ends_with(".hbk") {
            assert!(verified, "{name} is a finished backup that does not verify");
            whole += 1;
        } else {
            assert!(!verified, "{name} is unfinished but verifies");
            parts += 1;
        }
    }
    (whole, parts)
}

#[test]
fn killing_the_server_during_scheduled_backups_never_leaves_a_half_backup_that_looks_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let media = tmp.path().join("media");
    common::copy_tree(&common::test_media(), &media);
    let folder: PathBuf = tmp.path().join("usb");
    std::fs::create_dir(&folder).unwrap();
    // A household with some weight, so a backup takes a while to write.
    {
        let s = TestServer::start_with(&data, |_| {});
        let owner = household(&s, &media);
        let r = send(
            "PUT",
            &s.url("/api/v1/backup/schedule"),
            Some(&owner),
            // Off: only "back up now" runs (the same code as a scheduled run), so this test
            // alone decides when a backup starts.
            &json!({"folder": folder.to_str().unwrap(), "every": "off", "keep": 3, "passphrase": PASS}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        for _ in 0..2 {
            let r = send(
                "POST",
                &s.url("/api/v1/backup/run"),
                Some(&owner),
                &json!({}),
            );
            assert_eq!(r.status, 200, "{}", r.body);
        }
        std::fs::write(tmp.path().join("token"), owner).unwrap();
    }
    let owner = std::fs::read_to_string(tmp.path().join("token")).unwrap();
    let (whole, _) = check_folder(&folder, PASS);
    assert_eq!(whole, 2);
    let mut cut_mid_write = 0;
    for seed in 0..seeds() {
        let s = Serve::start(&data);
        let url = s.url("/api/v1/backup/run");
        let token = owner.clone();
        std::thread::spawn(move || {
            // The connection dies with the server: the answer does not matter.
            let _ = common::agent()
                .post(&url)
                .header("Authorization", &format!("Bearer {token}"))
                .send_json(json!({}));
        });
        // Vary the kill point across the run: before it starts, while the snapshot is
        // taken, while chunks are written, around the rename.
        std::thread::sleep(Duration::from_micros(seed * 1_500 + (seed * 7919) % 1000));
        let before_kill = listing(&folder);
        s.kill();
        if before_kill.iter().any(|n| n.ends_with(".part")) {
            cut_mid_write += 1;
        }
        let (whole, parts) = check_folder(&folder, PASS);
        assert!(
            whole >= 2,
            "seed {seed}: previous backups are intact ({whole})"
        );
        let _ = parts;
    }
    println!(
        "kills that landed mid-write: {cut_mid_write} of {}",
        seeds()
    );
    // The next start cleans up and a run works.
    let s = Serve::start(&data);
    let r = send(
        "POST",
        &s.url("/api/v1/backup/run"),
        Some(&owner),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let names = listing(&folder);
    assert!(names.iter().all(|n| n.ends_with(".hbk")), "{names:?}");
    assert_eq!(names.len(), 3, "keeps the last three");
    check_folder(&folder, PASS);
    s.kill();
}

/// `hearth serve` killed at varying points of a restore from the wizard: the next start is
/// either the unclaimed device, clean, or the fully restored one, never anything between.
#[test]
fn a_restore_killed_midway_leaves_the_old_or_the_restored_device() {
    let tmp = tempfile::tempdir().unwrap();
    let src = TestServer::start_with(&tmp.path().join("src"), |_| {});
    let owner = common::claim(&src);
    let (_, good) = download(&src, &owner, PASS);
    drop(src);
    let (mut old, mut restored) = (0, 0);
    for seed in 0..seeds().min(12) {
        let data = tmp.path().join(format!("data{seed}"));
        let s = Serve::start(&data);
        let code = hearth::identity::setup_code::read(&data).unwrap().unwrap();
        let (url, file) = (s.url("/api/v1/setup/restore"), good.clone());
        std::thread::spawn(move || {
            let _ = common::agent()
                .post(&url)
                .header("Hearth-Passphrase", &percent(PASS))
                .header("Hearth-Setup-Code", &code)
                .send(&file[..]);
        });
        // From before the upload to after the restart.
        std::thread::sleep(Duration::from_millis(seed * 120 + (seed * 7919) % 50));
        s.kill();
        let s = Serve::start(&data);
        let claimed = get(&s.url("/api/v1/setup"), None).json()["claimed"] == true;
        if claimed {
            assert_eq!(
                get(&s.url("/api/v1/me"), Some(&owner)).status,
                200,
                "seed {seed}"
            );
            restored += 1;
        } else {
            assert_eq!(
                get(&s.url("/api/v1/me"), Some(&owner)).status,
                401,
                "seed {seed}"
            );
            old += 1;
        }
        let left: Vec<String> = listing(&data)
            .into_iter()
            .filter(|n| n.starts_with("restore") || n.starts_with("backup-work"))
            .collect();
        assert!(left.is_empty(), "seed {seed}: leftovers {left:?}");
        s.kill();
    }
    println!("restore kills: {old} left the device unclaimed, {restored} restored it");
}

fn wait_scan_long(s: &TestServer, token: &str, lib: u64) {
    let deadline = Instant::now() + Duration::from_secs(3 * 3600);
    loop {
        let v = get(
            &s.url(&format!("/api/v1/libraries/{lib}/scan")),
            Some(token),
        )
        .json();
        if v["progress"]["running"] == false {
            return;
        }
        assert!(Instant::now() < deadline, "scan never finished: {v}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Figures for the note (issue #25): backup size and time of the 22k-item synthetic library,
/// restore time by upload and from a disk folder. Prints numbers; asserts nothing about time.
///   ../shared/tools/make-synthetic-library /var/tmp/hearth-synth
///   HEARTH_SYNTH_LIB=/var/tmp/hearth-synth cargo test --test backup figures -- --ignored --nocapture
#[test]
#[ignore = "needs the synthetic library (../shared/tools/make-synthetic-library)"]
fn figures_for_the_synthetic_library() {
    let root = PathBuf::from(
        std::env::var("HEARTH_SYNTH_LIB").unwrap_or_else(|_| "/var/tmp/hearth-synth".into()),
    );
    assert!(
        root.join(".peers-library").exists(),
        "no synthetic library at {}",
        root.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let usb = tmp.path().join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let s = TestServer::start_with(&data, |_| {});
    let owner = common::claim(&s);
    let t0 = Instant::now();
    for (name, kind, sub) in [("Movies", "movies", "Movies"), ("TV", "shows", "TV")] {
        let r = send(
            "POST",
            &s.url("/api/v1/libraries"),
            Some(&owner),
            &json!({"name": name, "kind": kind, "folders": [root.join(sub).to_str().unwrap()]}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        wait_scan_long(&s, &owner, r.json()["id"].as_u64().unwrap());
    }
    let items: u64 = libraries(&s, &owner)
        .iter()
        .map(|l| l["items"].as_u64().unwrap_or(0))
        .sum();
    println!("scanned {items} items in {:?}", t0.elapsed());
    let db = std::fs::metadata(data.join("hearth.redb")).unwrap().len();

    let t0 = Instant::now();
    let (status, file) = download(&s, &owner, PASS);
    let download_time = t0.elapsed();
    assert_eq!(status, 200);
    let r = send(
        "PUT",
        &s.url("/api/v1/backup/schedule"),
        Some(&owner),
        &json!({"folder": usb.to_str().unwrap(), "every": "off", "keep": 3, "passphrase": PASS}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t0 = Instant::now();
    let r = send(
        "POST",
        &s.url("/api/v1/backup/run"),
        Some(&owner),
        &json!({}),
    );
    let run_time = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    let run_size = r.json()["last_size"].as_u64().unwrap();
    s.stop().unwrap();

    std::fs::remove_dir_all(&data).unwrap();
    let s = TestServer::start_with(&data, |_| {});
    let code = hearth::identity::setup_code::read(&data).unwrap().unwrap();
    let t0 = Instant::now();
    let (status, body) = setup_restore(&s, &file, PASS, &code);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let staged = t0.elapsed();
    wait_claimed(&s, true);
    let upload_restore = t0.elapsed();
    s.stop().unwrap();

    std::fs::remove_dir_all(&data).unwrap();
    let folders = vec![usb.clone()];
    let s = TestServer::start_with(&data, move |c| c.backup.restore_folders = folders);
    let code = hearth::identity::setup_code::read(&data).unwrap().unwrap();
    let t0 = Instant::now();
    let (status, found) = setup_json(
        &s,
        "/api/v1/setup/backups",
        &code,
        &json!({"passphrase": PASS}),
    );
    let find_time = t0.elapsed();
    assert_eq!(status, 200, "{found}");
    let id = found["backups"][0]["id"].as_str().unwrap().to_owned();
    let t0 = Instant::now();
    let (status, answer) = setup_json(
        &s,
        "/api/v1/setup/backups/restore",
        &code,
        &json!({"id": id, "passphrase": PASS}),
    );
    assert_eq!(status, 202, "{answer}");
    let disk_staged = t0.elapsed();
    wait_claimed(&s, true);
    let disk_restore = t0.elapsed();
    assert_eq!(
        libraries(&s, &owner)
            .iter()
            .map(|l| l["items"].as_u64().unwrap_or(0))
            .sum::<u64>(),
        items
    );
    s.stop().unwrap();
    println!(
        "{items} items, database {db} bytes\n\
         download: {} bytes in {download_time:?} (Argon2id included)\n\
         scheduled run: {run_size} bytes in {run_time:?} (key kept, no Argon2id)\n\
         restore by upload: staged (upload, verify, migrate) {staged:?}, claimed again {upload_restore:?}\n\
         wizard search of the folder {find_time:?}; restore from it: staged {disk_staged:?}, claimed again {disk_restore:?}",
        file.len()
    );
}
