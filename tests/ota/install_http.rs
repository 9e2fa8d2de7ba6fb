//! Installing through the Updates API on the real server, with a real agent on a socket
//! writing file-backed slots, and a channel on 127.0.0.1: settings, install with progress,
//! trial boot, rollback and install recorded at start, uploads, and altered bundles that
//! change nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Reply, TestServer, get, send};
use crate::device::Device;
use crate::download::{Fault, serve};
use crate::support::{Publisher, noise};
use hearth::ota::Version;

const BOARD: &str = "generic-x86_64";

fn start(data: &std::path::Path, dev: &Device, channel: &str) -> TestServer {
    let (sock, keys, ch) = (dev.socket.clone(), dev.keyring.clone(), channel.to_owned());
    TestServer::start_with(data, move |c| {
        c.agent_socket = Some(sock);
        c.updates.keyring = keys;
        c.updates.channel_url = ch;
        c.updates.check_interval_hours = 0;
    })
}

pub(crate) fn claim(s: &TestServer) -> String {
    let code = hearth::identity::setup_code::read(&s.data)
        .unwrap()
        .unwrap();
    let r = send(
        "POST",
        &s.url("/api/v1/setup/claim"),
        None,
        &json!({"setup_code": code, "server_name": "Den",
                "owner": {"username": "anna", "password": "correct horse battery"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["token"].as_str().unwrap().to_owned()
}

pub(crate) fn login(s: &TestServer) -> String {
    let r = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "anna", "password": "correct horse battery",
                "device": {"name": "t", "platform": "test", "client_id": "t"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["token"].as_str().unwrap().to_owned()
}

/// `POST path` as the signed-in owner.
pub(crate) fn post(s: &TestServer, t: &str, path: &str, body: &Value) -> Reply {
    send("POST", &s.url(path), Some(t), body)
}

/// Polls `GET /api/v1/updates` until the install leaves the running states.
pub(crate) fn wait_install(s: &TestServer, t: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen_progress = false;
    loop {
        let v = get(&s.url("/api/v1/updates"), Some(t)).json();
        let state = v["install"]["state"].as_str().unwrap_or("").to_owned();
        if ["downloading", "writing", "verifying"].contains(&state.as_str()) {
            seen_progress = true;
            for k in [
                "bytes_done",
                "bytes_total",
                "chunks_done",
                "chunks_total",
                "chunks_reused",
                "bytes_per_second",
                "started_at",
            ] {
                assert!(v["install"][k].is_u64(), "{k} missing while {state}: {v}");
            }
        } else {
            let _ = seen_progress;
            return v;
        }
        assert!(Instant::now() < deadline, "install did not finish: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn channel_files(version: &str, bundle: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut files = HashMap::new();
    files.insert(
        format!("/ch/{BOARD}/stable/channel.json"),
        format!(r#"{{"board":"{BOARD}","channel":"stable","version":"{version}","bundle_url":"hearth-{version}.hbundle","size":{},"min_version":"1.0.0","notes":"Faster scans."}}"#, bundle.len()).into_bytes(),
    );
    files.insert(
        format!("/ch/{BOARD}/stable/hearth-{version}.hbundle"),
        bundle.to_vec(),
    );
    files
}

#[test]
fn install_from_the_channel_trial_rollback_and_install_recorded_at_start() {
    let publisher = Publisher::new("release");
    let root_a = noise(10, 600_000);
    let kernel = noise(11, 150_000);
    let mut dev = Device::new(&publisher.keyring_dir, "1.0.0", &root_a, &kernel);
    // The new root keeps most of the old one: those chunks come from slot a, not the network.
    let mut root_new = root_a.clone();
    root_new[300_000..360_000].copy_from_slice(&noise(12, 60_000));
    let initrd = noise(13, 90_000);
    let (bundle, meta) = publisher.bundle(
        "v110",
        Version(1, 1, 0),
        &[
            ("rootfs", &root_new),
            ("kernel", &kernel),
            ("initrd", &initrd),
        ],
    );
    let bundle = std::fs::read(bundle).unwrap();
    let channel = serve(channel_files("1.1.0", &bundle), Fault::None);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = start(&data, &dev, &format!("{}/ch", channel.base));
    let t = claim(&s);

    let v = get(&s.url("/api/v1/updates"), Some(&t)).json();
    assert_eq!(v["slot"], "a", "{v}");
    assert_eq!(
        v["current_version"], "1.0.0",
        "the running entry's version: {v}"
    );
    assert_eq!(v["can_install"], true, "{v}");
    assert_eq!(v["install"], Value::Null);
    assert_eq!(v["allow_downgrade"], false);
    assert_eq!(v["history"], json!([]));
    let r = post(&s, &t, "/api/v1/updates/install", &json!({}));
    assert_eq!(r.status, 409, "nothing offered before a check: {}", r.body);
    assert_eq!(r.error_code(), "nothing_offered");
    let r = post(&s, &t, "/api/v1/updates/reboot", &json!({}));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.error_code(), "nothing_staged");

    let v = post(&s, &t, "/api/v1/updates/check", &json!({})).json();
    assert_eq!(v["available"]["version"], "1.1.0", "{v}");
    let r = post(
        &s,
        &t,
        "/api/v1/updates/install",
        &json!({"reboot": false, "now": true}),
    );
    assert_eq!(r.status, 422, "unknown fields are refused: {}", r.body);
    let r = post(&s, &t, "/api/v1/updates/install", &json!({"reboot": false}));
    assert_eq!(r.status, 202, "{}", r.body);
    let v = wait_install(&s, &t);
    let inst = &v["install"];
    assert_eq!(inst["state"], "staged", "{v}");
    assert_eq!(inst["version"], "1.1.0");
    assert_eq!(inst["error"], Value::Null);
    assert_eq!(inst["chunks_done"], inst["chunks_total"]);
    assert_eq!(inst["chunks_total"], meta.chunks.len() as u64);
    let reused = inst["chunks_reused"].as_u64().unwrap();
    assert!(
        reused >= 9,
        "unchanged root and kernel chunks come from the device: {v}"
    );
    assert!(inst["bytes_done"].as_u64().unwrap() > 0, "{v}");
    println!(
        "install: {} chunks, {} reused from the device, {} bytes fetched",
        inst["chunks_total"], reused, inst["bytes_done"]
    );
    assert_eq!(
        &dev.read("slots/root-b.img")[..root_new.len()],
        &root_new[..]
    );
    assert_eq!(dev.read("esp/hearth/1.1.0/initrd.img"), initrd);
    assert_eq!(
        dev.entries(),
        vec!["hearth-1.0.0.conf", "hearth-1.1.0+3.conf"]
    );
    assert_eq!(dev.reboots(), 0, "reboot: false");
    let r = post(&s, &t, "/api/v1/updates/reboot", &json!({}));
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(dev.reboots(), 1);

    // The trial fails every try; systemd-boot falls back to 1.0.0. The server records it.
    drop(s);
    dev.fall_back("1.1.0", "1.0.0");
    let s = start(&data, &dev, &format!("{}/ch", channel.base));
    let t = login(&s);
    let v = get(&s.url("/api/v1/updates"), Some(&t)).json();
    assert_eq!(v["slot"], "a", "{v}");
    assert_eq!(v["current_version"], "1.0.0");
    assert_eq!(v["last_rollback"]["failed_version"], "1.1.0", "{v}");
    assert!(
        v["last_rollback"]["reason"]
            .as_str()
            .unwrap()
            .contains("did not start"),
        "{v}"
    );
    assert_eq!(v["history"][0]["outcome"], "rolled_back", "{v}");
    assert_eq!(v["history"][0]["from_version"], "1.0.0");
    assert_eq!(v["history"][0]["to_version"], "1.1.0");
    // A restart does not record the same rollback twice.
    drop(s);
    dev.boot("hearth-1.0.0.conf", None);
    let s = start(&data, &dev, &format!("{}/ch", channel.base));
    let t = login(&s);
    let v = get(&s.url("/api/v1/updates"), Some(&t)).json();
    assert_eq!(v["history"].as_array().unwrap().len(), 1, "{v}");
    // The health check passed on the old slot: blessing forgets the failed entry.
    let r = crate::device::Raw::connect(&dev.socket).send(&json!({"verb":"mark_good"}), &[]);
    assert_eq!(crate::device::code(&r), "ok");
    assert_eq!(dev.entries(), vec!["hearth-1.0.0.conf"]);

    // Installed again (slot b holds it all already: nothing but metadata is fetched),
    // rebooted by the server, and this time the trial comes up.
    let r = post(&s, &t, "/api/v1/updates/install", &json!({}));
    assert_eq!(r.status, 202, "{}", r.body);
    let v = wait_install(&s, &t);
    assert_eq!(v["install"]["state"], "rebooting", "{v}");
    assert_eq!(
        v["install"]["chunks_reused"], v["install"]["chunks_total"],
        "{v}"
    );
    assert_eq!(dev.reboots(), 2);
    drop(s);
    dev.boot_trial("1.1.0");
    let s = start(&data, &dev, &format!("{}/ch", channel.base));
    let t = login(&s);
    let v = get(&s.url("/api/v1/updates"), Some(&t)).json();
    assert_eq!(v["slot"], "b", "{v}");
    assert_eq!(v["current_version"], "1.1.0", "{v}");
    assert_eq!(v["history"][0]["outcome"], "installed", "{v}");
    assert_eq!(v["available"], Value::Null, "1.1.0 runs now: {v}");
    let r = post(&s, &t, "/api/v1/updates/install", &json!({}));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.error_code(), "not_newer");
    let r = crate::device::Raw::connect(&dev.socket).send(&json!({"verb":"mark_good"}), &[]);
    assert_eq!(crate::device::code(&r), "ok");
    assert_eq!(
        dev.entries(),
        vec!["hearth-1.0.0.conf", "hearth-1.1.0.conf"]
    );
}

#[test]
fn settings_upload_and_altered_bundles() {
    let publisher = Publisher::new("release");
    let root_a = noise(20, 200_000);
    let kernel = noise(21, 50_000);
    let dev = Device::new(&publisher.keyring_dir, "1.0.0", &root_a, &kernel);
    let (good, _) = publisher.bundle(
        "v120",
        Version(1, 2, 0),
        &[
            ("rootfs", &noise(22, 300_000)),
            ("kernel", &kernel),
            ("initrd", &noise(23, 40_000)),
        ],
    );
    let good = std::fs::read(good).unwrap();
    // The channel serves a bundle whose header was altered after signing.
    let mut altered_header = good.clone();
    altered_header[hearth::ota::bundle::PREAMBLE_LEN + 5] ^= 0x20;
    let channel = serve(channel_files("1.2.0", &altered_header), Fault::None);
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        &tmp.path().join("data"),
        &dev,
        &format!("{}/ch", channel.base),
    );
    let t = claim(&s);

    // Settings: owner only, checked, remembered.
    let url = s.url("/api/v1/updates/settings");
    assert_eq!(
        send("PUT", &url, None, &json!({"channel": "beta"})).status,
        401
    );
    for bad in [
        json!({"channel": "nightly"}),
        json!({"check_interval_hours": 169}),
        json!({"check_interval_hours": -1}),
        json!({"allow_downgrade": "yes"}),
        json!({"colour": "red"}),
    ] {
        let r = send("PUT", &url, Some(&t), &bad);
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    let v = get(&s.url("/api/v1/updates"), Some(&t)).json();
    assert_eq!(
        (v["channel"].as_str(), v["check_interval_hours"].as_u64()),
        (Some("stable"), Some(0))
    );
    let r = send(
        "PUT",
        &url,
        Some(&t),
        &json!({"check_interval_hours": 12, "allow_downgrade": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["check_interval_hours"], 12);
    assert_eq!(v["allow_downgrade"], true);
    assert_eq!(v["channel"], "stable", "untouched fields stay");
    let r = send("PUT", &url, Some(&t), &json!({"allow_downgrade": false}));
    assert_eq!(r.json()["allow_downgrade"], false);

    let snapshot = |d: &Device| {
        (
            d.read("slots/root-b.img"),
            d.entries(),
            d.path("esp/hearth/1.2.0").exists(),
        )
    };
    let before = snapshot(&dev);

    // An altered bundle on the channel: refused before anything is written.
    let v = post(&s, &t, "/api/v1/updates/check", &json!({})).json();
    assert_eq!(v["available"]["version"], "1.2.0", "{v}");
    let r = post(&s, &t, "/api/v1/updates/install", &json!({}));
    assert_eq!(r.status, 202, "{}", r.body);
    let v = wait_install(&s, &t);
    assert_eq!(v["install"]["state"], "failed", "{v}");
    assert!(
        v["install"]["error"].as_str().unwrap().contains("altered"),
        "{v}"
    );
    assert_eq!(v["history"][0]["outcome"], "failed", "{v}");
    assert_eq!(snapshot(&dev), before, "an altered bundle wrote something");

    // Uploads: an altered chunk, a stranger's signature, not a bundle — nothing written.
    let stranger = Publisher::new("stranger");
    let (foreign, _) = stranger.bundle(
        "x",
        Version(1, 2, 0),
        &[
            ("rootfs", &noise(22, 300_000)),
            ("kernel", &kernel),
            ("initrd", &noise(23, 40_000)),
        ],
    );
    let mut altered_chunk = good.clone();
    let n = altered_chunk.len();
    altered_chunk[n - 1000] ^= 1;
    for (what, body, needle) in [
        ("altered chunk", altered_chunk, "chunk"),
        (
            "unknown key",
            std::fs::read(foreign).unwrap(),
            "none of which is trusted",
        ),
        (
            "not a bundle",
            b"hello, not a bundle at all".to_vec(),
            "not a hearth update bundle",
        ),
    ] {
        let r = upload(&s, &t, &body);
        assert_eq!(r.0, 202, "{what}: {}", r.1);
        let v = wait_install(&s, &t);
        assert_eq!(v["install"]["state"], "failed", "{what}: {v}");
        let err = v["install"]["error"].as_str().unwrap();
        assert!(err.contains(needle), "{what}: {err}");
        assert_eq!(snapshot(&dev), before, "{what}: wrote something");
    }
    assert!(
        !s.data.join("ota/upload.hbundle").exists(),
        "uploads are deleted after use"
    );
    let r = upload(&s, &t, b"");
    assert_eq!(r.0, 422, "{}", r.1);

    // The good bundle, uploaded: staged and the device reboots into it.
    let r = upload(&s, &t, &good);
    assert_eq!(r.0, 202, "{}", r.1);
    let v = wait_install(&s, &t);
    assert_eq!(v["install"]["state"], "rebooting", "{v}");
    assert_eq!(v["install"]["version"], "1.2.0");
    assert_eq!(
        dev.entries(),
        vec!["hearth-1.0.0.conf", "hearth-1.2.0+3.conf"]
    );
    assert_eq!(dev.reboots(), 1);
}

fn upload(s: &TestServer, t: &str, body: &[u8]) -> (u16, String) {
    let r = crate::common::agent()
        .post(&s.url("/api/v1/updates/upload"))
        .header("Authorization", &format!("Bearer {t}"))
        .header("Content-Type", "application/octet-stream")
        .send(body)
        .unwrap();
    let status = r.status().as_u16();
    (status, r.into_body().read_to_string().unwrap_or_default())
}
