//! Crash consistency of the real server: `hearth serve` (the built binary) is killed with
//! SIGKILL at a random moment while clients write over HTTP — the claim, managed profiles
//! created, renamed and removed, friends invited, accepting and removed, watch-progress
//! bursts, library scans. After each kill the database must open again, hold every write
//! the server acknowledged, and keep its invariants: every device belongs to a user, every
//! watch state to an existing item and user, no half-created user (a friend without their
//! device, an invite still open for an account that exists), the username index agrees.
//!
//! `HEARTH_CRASH_SERVE_SEEDS` sets the number of seeds (default 3; the security tier's long
//! run uses 50). Each seed kills the server three times on one data directory.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::agent;
use common::serve_process::Serve;
use hearth::store::Store;
use hearth::store::users::Role;
use serde_json::{Value, json};

const OWNER_PASSWORD: &str = "correct horse battery";
const FRIEND_PASSWORD: &str = "a long friendly passphrase";
const ROUNDS: u32 = 3;

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

/// What the server acknowledged, and what was in flight when it died.
#[derive(Default, Debug)]
struct Ledger {
    claimed: bool,
    /// Managed profiles: id → name as last acknowledged.
    managed: HashMap<u64, String>,
    removed: Vec<u64>,
    /// Friends: username → (id, token).
    friends: HashMap<String, (u64, String)>,
    /// The owner's watch progress: item → position.
    progress: HashMap<u64, u64>,
    /// Each worker's request in flight (at most one each), keyed by worker.
    pending: HashMap<&'static str, Pending>,
}

#[derive(Debug, Clone)]
enum Pending {
    CreateManaged(String),
    Rename(u64, String),
    Remove(u64),
    Accept(String),
    Progress(u64, u64),
}

/// A request that either was answered (`Some`) or died with the server (`None`).
fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let a = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let resp = match (method, body) {
        ("GET", _) => {
            let mut r = a.get(url);
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = a.delete(url);
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.call()
        }
        (m, b) => {
            let mut r = match m {
                "POST" => a.post(url),
                "PUT" => a.put(url),
                "PATCH" => a.patch(url),
                _ => unreachable!(),
            };
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.send_json(b.cloned().unwrap_or(json!({})))
        }
    };
    let mut resp = resp.ok()?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().ok()?;
    Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

fn claim(base: &str, data: &Path, ledger: &Mutex<Ledger>) -> Option<String> {
    let code = hearth::identity::setup_code::read(data).ok()??;
    let (status, v) = call(
        "POST",
        &format!("{base}/api/v1/setup/claim"),
        None,
        Some(&json!({"setup_code": code, "server_name": "Den",
            "owner": {"username": "anna", "password": OWNER_PASSWORD}})),
    )?;
    assert_eq!(status, 201, "{v}");
    ledger.lock().unwrap().claimed = true;
    v["token"].as_str().map(str::to_owned)
}

fn login(s: &Serve, user: &str, password: &str) -> String {
    let (status, v) = call(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        Some(&json!({"username": user, "password": password,
            "device": {"name": "crash test", "platform": "test", "client_id": "crash"}})),
    )
    .expect("server up");
    assert_eq!(status, 200, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

/// Runs the writers until the server dies under them.
fn workload(
    s: &mut Serve,
    owner: &str,
    items: &[u64],
    ledger: &Arc<Mutex<Ledger>>,
    seed: u64,
    round: u32,
) {
    let dead = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let base = s.base.clone();

    // Managed profiles: create, rename, remove (the household holds at most 15).
    {
        let (base, owner, ledger, dead) =
            (base.clone(), owner.to_owned(), ledger.clone(), dead.clone());
        workers.push(std::thread::spawn(move || {
            let mut rng = seed ^ 0x5eed;
            let mut n = 0u64;
            while !dead.load(Ordering::Relaxed) {
                n += 1;
                let ids: Vec<u64> = ledger.lock().unwrap().managed.keys().copied().collect();
                let op = match lcg(&mut rng) % 3 {
                    _ if ids.is_empty() => 0,
                    _ if ids.len() >= 10 => 2,
                    k => k,
                };
                let id = ids.get(lcg(&mut rng) as usize % ids.len().max(1)).copied();
                let pending = match (op, id) {
                    (1, Some(id)) => Pending::Rename(id, format!("kid{seed}-{round}-{n}")),
                    (2, Some(id)) => Pending::Remove(id),
                    _ => Pending::CreateManaged(format!("kid{seed}-{round}-{n}")),
                };
                ledger
                    .lock()
                    .unwrap()
                    .pending
                    .insert("managed", pending.clone());
                let answer = match &pending {
                    Pending::CreateManaged(name) => call(
                        "POST",
                        &format!("{base}/api/v1/users"),
                        Some(&owner),
                        Some(&json!({"kind": "managed", "name": name})),
                    ),
                    Pending::Rename(id, name) => call(
                        "PATCH",
                        &format!("{base}/api/v1/users/{id}"),
                        Some(&owner),
                        Some(&json!({"name": name})),
                    ),
                    Pending::Remove(id) => call(
                        "DELETE",
                        &format!("{base}/api/v1/users/{id}?confirm=true"),
                        Some(&owner),
                        None,
                    ),
                    _ => unreachable!(),
                };
                let Some((status, v)) = answer else { break };
                assert!(status < 300, "{pending:?}: {status} {v}");
                let mut l = ledger.lock().unwrap();
                l.pending.remove("managed");
                match pending {
                    Pending::CreateManaged(name) => {
                        l.managed.insert(v["id"].as_u64().unwrap(), name);
                    }
                    Pending::Rename(id, name) => {
                        l.managed.insert(id, name);
                    }
                    Pending::Remove(id) => {
                        l.managed.remove(&id);
                        l.removed.push(id);
                    }
                    _ => {}
                }
            }
            dead.store(true, Ordering::Relaxed);
        }));
    }

    // Friends: invite, accept (creates the account and its device), write progress as the
    // friend, and sometimes remove the friend.
    {
        let (base, owner, ledger, dead) =
            (base.clone(), owner.to_owned(), ledger.clone(), dead.clone());
        let items = items.to_vec();
        workers.push(std::thread::spawn(move || {
            let mut rng = seed ^ 0xf12e;
            let mut n = 0u64;
            while !dead.load(Ordering::Relaxed) {
                n += 1;
                let name = format!("friend{seed}x{round}x{n}");
                let Some((status, inv)) = call(
                    "POST",
                    &format!("{base}/api/v1/invites"),
                    Some(&owner),
                    Some(&json!({"invitee": name})),
                ) else {
                    break;
                };
                assert_eq!(status, 201, "{inv}");
                ledger
                    .lock()
                    .unwrap()
                    .pending
                    .insert("friend", Pending::Accept(name.clone()));
                let Some((status, v)) = call(
                    "POST",
                    &format!(
                        "{base}/api/v1/invites/{}/accept",
                        inv["token"].as_str().unwrap()
                    ),
                    None,
                    Some(&json!({"username": name, "password": FRIEND_PASSWORD})),
                ) else {
                    break;
                };
                assert_eq!(status, 201, "{v}");
                let token = v["token"].as_str().unwrap().to_owned();
                let id = v["user"]["id"].as_u64().unwrap();
                {
                    let mut l = ledger.lock().unwrap();
                    l.pending.remove("friend");
                    l.friends.insert(name.clone(), (id, token.clone()));
                }
                for _ in 0..3 {
                    let item = items[lcg(&mut rng) as usize % items.len()];
                    if call(
                        "PUT",
                        &format!("{base}/api/v1/items/{item}/progress"),
                        Some(&token),
                        Some(&json!({"position_ms": 1 + lcg(&mut rng) % 200})),
                    )
                    .is_none()
                    {
                        dead.store(true, Ordering::Relaxed);
                        return;
                    }
                }
                if lcg(&mut rng).is_multiple_of(2) {
                    ledger
                        .lock()
                        .unwrap()
                        .pending
                        .insert("friend", Pending::Remove(id));
                    let Some((status, v)) = call(
                        "DELETE",
                        &format!("{base}/api/v1/users/{id}?confirm=true"),
                        Some(&owner),
                        None,
                    ) else {
                        break;
                    };
                    assert!(status < 300, "{v}");
                    let mut l = ledger.lock().unwrap();
                    l.pending.remove("friend");
                    l.friends.remove(&name);
                    l.removed.push(id);
                }
            }
            dead.store(true, Ordering::Relaxed);
        }));
    }

    // Watch-progress bursts by the owner.
    {
        let (base, owner, ledger, dead) =
            (base.clone(), owner.to_owned(), ledger.clone(), dead.clone());
        let items = items.to_vec();
        workers.push(std::thread::spawn(move || {
            let mut rng = seed ^ 0x9a55;
            while !dead.load(Ordering::Relaxed) {
                let item = items[lcg(&mut rng) as usize % items.len()];
                let pos = 1 + lcg(&mut rng) % 200;
                ledger
                    .lock()
                    .unwrap()
                    .pending
                    .insert("progress", Pending::Progress(item, pos));
                let Some((status, v)) = call(
                    "PUT",
                    &format!("{base}/api/v1/items/{item}/progress"),
                    Some(&owner),
                    Some(&json!({"position_ms": pos})),
                ) else {
                    break;
                };
                assert!(status < 300, "{v}");
                let mut l = ledger.lock().unwrap();
                l.pending.remove("progress");
                l.progress.insert(item, pos);
            }
            dead.store(true, Ordering::Relaxed);
        }));
    }

    // Library scans.
    {
        let (base, owner, dead) = (base.clone(), owner.to_owned(), dead.clone());
        workers.push(std::thread::spawn(move || {
            while !dead.load(Ordering::Relaxed) {
                if call(
                    "POST",
                    &format!("{base}/api/v1/libraries/1/scan"),
                    Some(&owner),
                    Some(&json!({})),
                )
                .is_none()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            dead.store(true, Ordering::Relaxed);
        }));
    }

    // The kill, at a seeded moment.
    let mut rng = seed.wrapping_mul(31).wrapping_add(u64::from(round) + 1);
    std::thread::sleep(Duration::from_millis(50 + lcg(&mut rng) % 1200));
    s.child.kill().expect("SIGKILL");
    s.child.wait().unwrap();
    dead.store(true, Ordering::Relaxed);
    for w in workers {
        w.join()
            .expect("a worker panicked: the server answered something wrong");
    }
}

/// Opens the database the dead server left and checks every acknowledged write and every
/// invariant. Clears `pending` by resolving each in-flight write to what happened.
fn verify(db: &Path, ledger: &Mutex<Ledger>) {
    let store = Store::open(db).expect("the database opens after SIGKILL");
    let mut l = ledger.lock().unwrap();
    let pending: Vec<Pending> = l.pending.values().cloned().collect();
    let users = store.read(|rx| rx.users()).unwrap();
    let devices = store.read(|rx| rx.devices()).unwrap();
    let invites = store.read(|rx| rx.invites()).unwrap();
    let by_id: HashMap<u64, _> = users.iter().map(|u| (u.id, u)).collect();

    // An acknowledged claim is kept; the device is claimed exactly when no setup code waits.
    let has_owner = users.iter().any(|u| u.role == Role::Owner);
    assert!(has_owner || !l.claimed, "the acknowledged claim was lost");
    let has_owner = users.iter().any(|u| u.role == Role::Owner);
    // Unclaimed always has a setup code. A kill between the claim's commit and the code
    // file's removal leaves a stale file, which the next start removes (checked there).
    let code = hearth::identity::setup_code::read(db.parent().unwrap()).unwrap();
    assert!(
        has_owner || code.is_some(),
        "unclaimed without a setup code"
    );
    l.claimed = has_owner;

    // Managed profiles: each acknowledged one exists with its acknowledged name, unless the
    // write in flight renamed or removed it.
    for (id, name) in l.managed.clone() {
        let in_flight = pending
            .iter()
            .find(|p| matches!(p, Pending::Rename(i, _) | Pending::Remove(i) if *i == id));
        match (by_id.get(&id), in_flight) {
            (Some(u), _) if u.username == name => {}
            (Some(u), Some(Pending::Rename(_, new))) if &u.username == new => {
                l.managed.insert(id, new.clone());
            }
            (None, Some(Pending::Remove(_))) => {
                l.managed.remove(&id);
                l.removed.push(id);
            }
            (u, _) => panic!(
                "acknowledged profile {id} {name:?} is now {:?}",
                u.map(|u| &u.username)
            ),
        }
    }
    // A create in flight may or may not have happened; adopt it if it did.
    for p in &pending {
        if let Pending::CreateManaged(name) = p
            && let Some(u) = users.iter().find(|u| &u.username == name)
        {
            l.managed.insert(u.id, name.clone());
        }
    }
    for id in &l.removed {
        assert!(!by_id.contains_key(id), "removed user {id} is back");
        let watch = store.read(|rx| rx.watch_of_user(*id)).unwrap();
        assert!(watch.is_empty(), "removed user {id} kept watch state");
    }
    // Friends: acknowledged accounts exist and their device token still signs them in.
    for (name, (id, token)) in l.friends.clone() {
        match by_id.get(&id) {
            Some(u) => {
                assert_eq!(u.username, name);
                let hash = hearth::identity::token::hash(&token);
                let dev = store.read(|rx| rx.device_by_token_hash(&hash)).unwrap();
                assert!(
                    dev.is_some_and(|d| d.user_id == id),
                    "friend {name} lost their device"
                );
            }
            None if pending
                .iter()
                .any(|p| matches!(p, Pending::Remove(i) if *i == id)) =>
            {
                l.friends.remove(&name);
                l.removed.push(id);
            }
            None => panic!("acknowledged friend {name} is gone"),
        }
    }
    for p in &pending {
        if let Pending::Accept(name) = p
            && let Some(u) = users.iter().find(|u| &u.username == name)
        {
            // The accept happened but its answer was lost: the account is whole (a
            // password to sign in with, the invite used up — checked below for everyone).
            // Its first device is made by a second transaction, so it may have none yet.
            assert!(
                u.password_hash.is_some(),
                "friend {name} without a password"
            );
            assert_eq!(u.role, Role::Friend);
        }
    }
    // Owner progress: the acknowledged position, or the one in flight for that item.
    if let Some(owner) = users.iter().find(|u| u.role == Role::Owner) {
        for (item, pos) in l.progress.clone() {
            let w = store.read(|rx| rx.watch(owner.id, item)).unwrap();
            let got = w.as_ref().map(|w| w.position_ms);
            let ok = got == Some(pos)
                || pending
                    .iter()
                    .any(|p| matches!(p, Pending::Progress(i, q) if *i == item && got == Some(*q)));
            assert!(
                ok,
                "owner progress on item {item}: acknowledged {pos}, found {w:?}"
            );
            l.progress.insert(item, got.unwrap_or(pos));
        }
    }

    // Invariants over everything.
    for d in &devices {
        assert!(
            by_id.contains_key(&d.user_id),
            "device {} of missing user {}",
            d.id,
            d.user_id
        );
        assert!(
            by_id.contains_key(&d.active_user_id),
            "device {} acting as missing user",
            d.id
        );
    }
    for u in &users {
        let again = store.read(|rx| rx.user_by_name(&u.username)).unwrap();
        assert_eq!(
            again.map(|x| x.id),
            Some(u.id),
            "username index disagrees for {}",
            u.username
        );
        if u.role == Role::Friend {
            assert!(
                !invites.iter().any(|i| i.invitee == u.username),
                "the invite of {} is still open after the account was made",
                u.username
            );
        }
        for w in store.read(|rx| rx.watch_of_user(u.id)).unwrap() {
            let item = store.read(|rx| rx.item(w.item_id)).unwrap();
            assert!(
                item.is_some(),
                "watch state of user {} for missing item {}",
                u.id,
                w.item_id
            );
        }
    }
    l.pending.clear();
}

#[test]
fn killing_hearth_serve_mid_write_keeps_every_acknowledged_write() {
    let seeds: u64 = std::env::var("HEARTH_CRASH_SERVE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for seed in 0..seeds {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let db = data.join("hearth.redb");
        let movies = tmp.path().join("Movies");
        common::copy_tree(&common::test_media().join("Movies"), &movies);
        let ledger = Arc::new(Mutex::new(Ledger::default()));

        // Every third seed first kills the server during the claim itself.
        let s = Serve::start(&data);
        if seed.is_multiple_of(3) {
            let mut rng = seed + 7;
            let (base, d, l) = (s.base.clone(), data.clone(), ledger.clone());
            let claimer = std::thread::spawn(move || claim(&base, &d, &l));
            std::thread::sleep(Duration::from_millis(lcg(&mut rng) % 40));
            s.kill();
            let _ = claimer.join().unwrap();
            verify(&db, &ledger);
        } else {
            s.stop();
        }
        let mut films = None;

        for round in 0..ROUNDS {
            let mut s = Serve::start(&data);
            if ledger.lock().unwrap().claimed {
                let code = hearth::identity::setup_code::read(&data).unwrap();
                assert!(code.is_none(), "a claimed device started with a setup code");
            }
            let owner = if ledger.lock().unwrap().claimed {
                login(&s, "anna", OWNER_PASSWORD)
            } else {
                claim(&s.base, &data, &ledger).expect("claim")
            };
            let libs = call("GET", &s.url("/api/v1/libraries"), Some(&owner), None)
                .unwrap()
                .1;
            if libs.as_array().is_none_or(|a| a.is_empty()) {
                let (status, v) = call("POST", &s.url("/api/v1/libraries"), Some(&owner),
                    Some(&json!({"name": "Films", "kind": "movies", "folders": [movies.to_str().unwrap()]}))).unwrap();
                assert_eq!(status, 201, "{v}");
            }
            let items = wait_for_items(&s, &owner);
            films.get_or_insert(items.len());
            workload(&mut s, &owner, &items, &ledger, seed, round);
            verify(&db, &ledger);
        }

        // Last: a clean start, a full rescan, and the library has each film exactly once.
        let s = Serve::start(&data);
        let owner = login(&s, "anna", OWNER_PASSWORD);
        let items = wait_for_items(&s, &owner);
        let mut sorted = items.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), items.len(), "an item listed twice");
        assert_eq!(
            Some(items.len()),
            films,
            "a rescan after the kills finds the same films"
        );
        s.stop();
        verify(&db, &ledger);
        let l = ledger.lock().unwrap();
        eprintln!(
            "seed {seed}: consistent after {} kills; {} profiles, {} friends, {} removed, {} progress marks",
            ROUNDS + u32::from(seed.is_multiple_of(3)),
            l.managed.len(),
            l.friends.len(),
            l.removed.len(),
            l.progress.len()
        );
    }
}

/// Scans library 1 to the end and returns its item ids.
fn wait_for_items(s: &Serve, owner: &str) -> Vec<u64> {
    let _ = call(
        "POST",
        &s.url("/api/v1/libraries/1/scan"),
        Some(owner),
        Some(&json!({})),
    );
    loop {
        let (_, scan) = call("GET", &s.url("/api/v1/libraries/1/scan"), Some(owner), None).unwrap();
        if scan["progress"]["running"] == false {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, page) = call(
        "GET",
        &s.url("/api/v1/libraries/1/items?limit=500"),
        Some(owner),
        None,
    )
    .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_u64())
        .collect()
}
