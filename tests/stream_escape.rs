//! A symlink race against the byte path, over real HTTP: while a client fetches a valid
//! signed stream URL again and again, another thread keeps swapping the item's folder with a
//! symbolic link to a folder outside the library that holds a file of the same name with
//! different bytes (`renameat2(RENAME_EXCHANGE)`, atomic). Every answer must be the item's
//! own bytes or a refusal; not one byte of the outside file may ever come back.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{claimed, get, send};
use nix::fcntl::{RenameFlags, renameat2};
use serde_json::json;

/// Fetches made (at least this many unless the time cap below is reached first).
const FETCHES: usize = 2_400;
/// Upper bound on the fetch loop, so a slow shared machine cannot hang the test run.
const TIME_CAP: Duration = Duration::from_secs(240);
/// Bytes asked for per fetch: the start of the file, where the folders' files differ.
const RANGE_LEN: usize = 64 * 1024;

fn wait_for_scan(s: &common::TestServer, token: &str, lib: u64) {
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

#[test]
fn swapping_an_item_folder_for_a_symlink_never_serves_outside_bytes() {
    let (s, owner) = claimed();
    let tmp = tempfile::tempdir().unwrap();
    let movies = tmp.path().join("Movies");
    let folder_name = "Rocket Club (2019)";
    let file_name = "Rocket Club (2019).mkv";
    let item_dir = movies.join(folder_name);
    std::fs::create_dir_all(&item_dir).unwrap();
    std::fs::copy(
        common::test_media()
            .join("Movies")
            .join(folder_name)
            .join(file_name),
        item_dir.join(file_name),
    )
    .unwrap();
    let real = std::fs::read(item_dir.join(file_name)).unwrap();
    assert!(real.len() >= RANGE_LEN, "test media too small");

    // Outside the library: a folder with a same-named file of other bytes, and (in a
    // folder of its own, so the library watcher does not see it) the link to it that is
    // swapped in for the item's folder.
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let foreign = common::noise(0xbad, real.len());
    std::fs::write(outside.join(file_name), &foreign).unwrap();
    let parking = tmp.path().join("parking");
    std::fs::create_dir(&parking).unwrap();
    let link = parking.join(folder_name);
    std::os::unix::fs::symlink(&outside, &link).unwrap();

    let r = send(
        "POST",
        &s.url("/api/v1/libraries"),
        Some(&owner),
        &json!({"name": "Films", "kind": "movies", "folders": [movies.to_str().unwrap()]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let lib = r.json()["id"].as_u64().unwrap();
    wait_for_scan(&s, &owner, lib);
    let page = get(
        &s.url(&format!("/api/v1/libraries/{lib}/items")),
        Some(&owner),
    )
    .json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let url = s.url(items[0]["stream_url"].as_str().unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let (a, b) = (item_dir.clone(), link.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                renameat2(None, &a, None, &b, RenameFlags::RENAME_EXCHANGE)
                    .expect("RENAME_EXCHANGE");
                swaps.fetch_add(1, Ordering::Relaxed);
            }
            // Leave the real folder in the library.
            if std::fs::symlink_metadata(&a)
                .unwrap()
                .file_type()
                .is_symlink()
            {
                renameat2(None, &a, None, &b, RenameFlags::RENAME_EXCHANGE).unwrap();
            }
        })
    };

    let agent = common::agent();
    let range = format!("bytes=0-{}", RANGE_LEN - 1);
    let (mut good, mut refused, mut foreign_hits, mut other) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut fetches = 0usize;
    while fetches < FETCHES && started.elapsed() < TIME_CAP {
        fetches += 1;
        let Ok(mut resp) = agent.get(&url).header("Range", &range).call() else {
            other += 1;
            continue;
        };
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 * RANGE_LEN as u64)
            .read_to_vec()
            .unwrap_or_default();
        if (status == 200 || status == 206) && body.len() >= 16 {
            if real.starts_with(&body) {
                good += 1;
            } else if foreign.starts_with(&body) {
                foreign_hits += 1;
            } else {
                other += 1;
            }
        } else {
            // A partial body of outside bytes would still be a leak.
            if body.len() >= 16 && foreign.starts_with(&body[..16]) {
                foreign_hits += 1;
            } else {
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!(
        "{fetches} fetches during {} swaps: {good} real bytes, {refused} refused, {foreign_hits} foreign, {other} other",
        swaps.load(Ordering::Relaxed)
    );
    assert_eq!(
        foreign_hits, 0,
        "bytes from outside the library were served"
    );
    assert_eq!(other, 0, "answers that were neither the item nor a refusal");
    // The race must have been run for real: both outcomes happened.
    assert!(
        good > 0,
        "the item was never served: the test proves nothing"
    );
    assert!(
        refused > 0,
        "no fetch met the swapped link: the race never ran"
    );
    // The item is served again once the folder stays put.
    let r = agent.get(&url).header("Range", &range).call().unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert!(Path::new(&item_dir).is_dir());
}
