//! Crash consistency: a writer process is killed with SIGKILL at random moments while it
//! commits multi-table transactions; the database must reopen with every acknowledged
//! write present and no transaction half-applied.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use hearth::store::Store;
use hearth::store::devices::DeviceRecord;
use hearth::store::users::Role;

const CHILD_ENV: &str = "HEARTH_CRASH_TEST_DB";

/// The writer. Under a normal `cargo test` run (no env var) it returns at once; the crash
/// test below re-runs this test binary with the env var set to make it the victim.
#[test]
fn crash_writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(std::path::Path::new(&path)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        // One transaction: a user, their device (and token index), a setting and an audit
        // entry. A crash must leave all four or none.
        store
            .write(|tx| {
                let user = tx
                    .create_user(&format!("user{i}"), Role::Friend, None, i)?
                    .expect("fresh name");
                tx.create_device(DeviceRecord {
                    id: 0,
                    user_id: user.id,
                    active_user_id: user.id,
                    name: format!("device of user{i}"),
                    platform: "test".into(),
                    client_id: String::new(),
                    token_hash: hearth::identity::token::hash(&format!("hth_{i}")),
                    first_seen: i,
                    last_seen: i,
                    last_address: "127.0.0.1".into(),
                })?;
                tx.set_setting("last_written", &i)?;
                tx.audit(i, "test_write", Some(user.id), None, format!("write {i}"))
            })
            .unwrap();
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
}

/// A tiny deterministic generator so each seed kills at a different, repeatable moment.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[test]
fn killing_a_writer_leaves_a_consistent_database() {
    let seeds: u64 = std::env::var("HEARTH_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let exe = std::env::current_exe().unwrap();
    for seed in 0..seeds {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hearth.redb");
        // Several kills against the same file: each run continues where the last one died.
        let mut acked: Option<u64> = None;
        let mut rng = seed + 1;
        for round in 0..3 {
            let mut child = Command::new(&exe)
                .args([
                    "--exact",
                    "crash_writer_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &db)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let kill_after = 1 + lcg(&mut rng) % 40;
            let mut seen = 0;
            while let Some(Ok(line)) = lines.next() {
                if let Some(n) = line.strip_prefix("ack ") {
                    acked = Some(n.parse().unwrap());
                    seen += 1;
                    if seen == kill_after {
                        break;
                    }
                }
            }
            // Let it get a little way into the next transaction, then pull the plug.
            for _ in 0..(lcg(&mut rng) % 2000) {
                std::hint::spin_loop();
            }
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            // Acks the child wrote before dying were acknowledged writes too.
            for line in lines.map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ack ") {
                    acked = Some(n.parse().unwrap());
                }
            }
            child.wait().unwrap();

            let store = Store::open(&db).unwrap_or_else(|e| {
                panic!("seed {seed} round {round}: database did not reopen: {e}")
            });
            let users = store.read(|r| r.users()).unwrap();
            let devices = store.read(|r| r.devices()).unwrap();
            let last: Option<u64> = store.read(|r| r.setting("last_written")).unwrap();
            let audit = store.read(|r| r.audit_entries(100_000)).unwrap();
            let acked_n = acked.expect("the writer acknowledged at least one write");
            // Every acknowledged write is there; at most one more (committed, ack unsent).
            let last = last.expect("some write survived");
            assert!(
                last == acked_n || last == acked_n + 1,
                "seed {seed}: last write {last}, acknowledged {acked_n}"
            );
            // No transaction is half there: all four parts agree on the count.
            assert_eq!(users.len() as u64, last + 1, "seed {seed}: users");
            assert_eq!(devices.len(), users.len(), "seed {seed}: devices");
            assert_eq!(audit.len(), users.len(), "seed {seed}: audit entries");
            for d in &devices {
                assert!(
                    users.iter().any(|u| u.id == d.user_id),
                    "seed {seed}: device {} has no user",
                    d.id
                );
                let by_token = store
                    .read(|r| r.device_by_token_hash(&d.token_hash))
                    .unwrap();
                assert_eq!(by_token.map(|x| x.id), Some(d.id), "token index agrees");
            }
            for u in &users {
                let by_name = store.read(|r| r.user_by_name(&u.username)).unwrap();
                assert_eq!(by_name.map(|x| x.id), Some(u.id), "username index agrees");
            }
        }
    }
}
