//! The agent over a real unix socket: who may call it (SO_PEERCRED, with a real second uid),
//! what it refuses (malformed, oversized, unknown, update verbs on a machine without slots, non-block devices), and the
//! laptop case of the disk API where there is no agent.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use hearth::agent::{Agent, AgentConfig};
use hearth::disks::Sysroot;
use serde_json::{Value, json};

/// Root-only tests skip (saying so) for a normal user, and fail when the `disks` tier,
/// which runs as root in CI, asks for them.
fn need_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("HEARTH_REQUIRE_ROOT_TESTS").is_none(),
        "{test} needs root, and HEARTH_REQUIRE_ROOT_TESTS is set"
    );
    // Written to the real stderr, not the test harness's captured output, so it shows.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs root (run tests/disks/run as root, as CI does)"
    );
    false
}

/// A fixture machine: one USB stick `sdb` whose partition is an image file (not a block
/// device), one `sdc` whose device node is a symlink out of /dev, and a mount table.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    media: PathBuf,
    socket: PathBuf,
}

const STICK_UUID: &str = "0BAD-CAFE";
const ESCAPE_UUID: &str = "CAFE-0BAD";

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // Other users must reach the socket, so that only SO_PEERCRED stands in their way.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("root");
    let mkvfat = |img: &Path, serial: &str| {
        std::fs::File::create(img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let out = std::process::Command::new("mkfs.vfat")
            .args(["-n", "STICK", "-i", serial])
            .arg(img)
            .output()
            .expect("mkfs.vfat missing; run scripts/install-deps");
        assert!(out.status.success());
    };
    for (disk, dev_t) in [("sdb", "8:16"), ("sdc", "8:32")] {
        let sys = root.join("sys/block").join(disk);
        std::fs::create_dir_all(&sys).unwrap();
        std::fs::write(sys.join("size"), "16384").unwrap();
        std::fs::write(sys.join("dev"), dev_t).unwrap();
    }
    std::fs::create_dir_all(root.join("dev")).unwrap();
    mkvfat(&root.join("dev/sdb"), "0badcafe");
    mkvfat(&dir.path().join("outside.img"), "cafe0bad");
    std::os::unix::fs::symlink("../../outside.img", root.join("dev/sdc")).unwrap();
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    std::fs::write(root.join("proc/self/mountinfo"), "").unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let socket = dir.path().join("agent.sock");
    Fixture {
        root,
        media,
        socket,
        _dir: dir,
    }
}

/// Runs an agent on the fixture in its own thread; dropping the handle stops it.
struct Running {
    agent: Agent,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(f: &Fixture, allowed_uids: Vec<u32>) -> Running {
    start_with(f, allowed_uids, None)
}

fn start_with(
    f: &Fixture,
    allowed_uids: Vec<u32>,
    time_sync: Option<hearth::agent::timesync::TimeSyncConfig>,
) -> Running {
    let mut agent = Agent::new(AgentConfig {
        sysroot: Sysroot::new(&f.root),
        media_root: f.media.clone(),
        allowed_uids,
        mount_owner: None,
        update: None,
    });
    if let Some(ts) = time_sync {
        agent = agent.with_time_sync(ts);
    }
    let listener = hearth::agent::server::listener(&f.socket, None).unwrap();
    std::fs::set_permissions(&f.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let a = agent.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::UnixListener::from_std(listener).unwrap();
            a.run(l, async {
                let _ = stop_rx.await;
            })
            .await;
        });
    });
    Running {
        agent,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// One connection speaking raw lines, so tests can send what a real client never would.
struct Conn {
    write: UnixStream,
    read: BufReader<UnixStream>,
}

impl Conn {
    fn open(socket: &Path) -> Conn {
        let s = UnixStream::connect(socket).unwrap();
        Conn {
            read: BufReader::new(s.try_clone().unwrap()),
            write: s,
        }
    }
    fn send_raw(&mut self, bytes: &[u8]) -> Option<Value> {
        // The agent may hang up before an oversized request is fully written; its answer
        // is still waiting to be read, so a failed write is not the end.
        let _ = self.write.write_all(bytes);
        let mut line = String::new();
        match self.read.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("agent answers JSON")),
        }
    }
    fn send(&mut self, v: &Value) -> Value {
        let mut b = serde_json::to_vec(v).unwrap();
        b.push(b'\n');
        self.send_raw(&b).expect("no answer")
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("(ok)")
}

fn media_is_empty(f: &Fixture) -> bool {
    std::fs::read_dir(&f.media).unwrap().next().is_none()
}

#[test]
fn every_verb_revalidates_its_arguments() {
    let f = fixture();
    let me = nix::unistd::geteuid().as_raw();
    let _agent = start(&f, vec![me]);
    let mut c = Conn::open(&f.socket);

    let list = c.send(&json!({"verb": "list_disks"}));
    assert_eq!(list["ok"], true, "{list}");
    let uuids: Vec<&str> = list["result"]["disks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["volumes"].as_array().unwrap())
        .filter_map(|v| v["uuid"].as_str())
        .collect();
    assert_eq!(uuids, [STICK_UUID, ESCAPE_UUID]);

    let cases: &[(Value, &str)] = &[
        (
            json!({"verb": "mount", "uuid": "1234-5678", "read_only": true}),
            "unknown_disk",
        ),
        (
            json!({"verb": "mount", "uuid": "", "read_only": true}),
            "unknown_disk",
        ),
        (
            json!({"verb": "mount", "uuid": "x".repeat(500), "read_only": true}),
            "unknown_disk",
        ),
        // The image file behind sdb is a regular file, not a block device.
        (
            json!({"verb": "mount", "uuid": STICK_UUID, "read_only": true}),
            "not_a_block_device",
        ),
        (
            json!({"verb": "mount", "uuid": STICK_UUID, "read_only": false, "name": "../../etc"}),
            "not_a_block_device",
        ),
        // sdc's node is a symlink leading out of /dev through `..`.
        (
            json!({"verb": "mount", "uuid": ESCAPE_UUID, "read_only": true}),
            "not_a_block_device",
        ),
        // No path can be smuggled in: the verb has no such argument.
        (
            json!({"verb": "mount", "uuid": STICK_UUID, "read_only": true, "device": "/dev/sda"}),
            "malformed_request",
        ),
        (
            json!({"verb": "mount", "uuid": STICK_UUID}),
            "malformed_request",
        ),
        (
            json!({"verb": "unmount", "uuid": "1234-5678"}),
            "unknown_disk",
        ),
        (
            json!({"verb": "eject", "uuid": "1234-5678"}),
            "unknown_disk",
        ),
        (
            json!({"verb": "format", "uuid": STICK_UUID}),
            "unknown_verb",
        ),
        // The caller never names a slot; the agent works it out.
        (
            json!({"verb": "write_slot", "slot": "b"}),
            "malformed_request",
        ),
        (
            json!({"verb": "set_next_boot", "slot": "b"}),
            "malformed_request",
        ),
        // This fixture machine has no A/B slots: update verbs refuse, and it never reboots.
        (
            json!({"verb": "set_next_boot", "version": "1.2.3"}),
            "not_updatable",
        ),
        (json!({"verb": "mark_good"}), "not_updatable"),
        (json!({"verb": "mark_bad"}), "not_updatable"),
        (json!({"verb": "boot_status"}), "not_updatable"),
        (json!({"verb": "reboot"}), "not_updatable"),
        (json!({"uuid": STICK_UUID}), "malformed_request"),
        // Each verb takes exactly its own arguments: nothing extra, nothing missing.
        (
            json!({"verb": "list_disks", "path": "/"}),
            "malformed_request",
        ),
        (json!({"verb": "unmount"}), "malformed_request"),
        (
            json!({"verb": "unmount", "uuid": STICK_UUID, "path": "/"}),
            "malformed_request",
        ),
        (
            json!({"verb": "unmount", "uuid": "../../etc"}),
            "unknown_disk",
        ),
        (json!({"verb": "eject"}), "malformed_request"),
        (
            json!({"verb": "eject", "uuid": STICK_UUID, "device": "/dev/sda"}),
            "malformed_request",
        ),
        (json!({"verb": "eject", "uuid": "/dev/sda"}), "unknown_disk"),
    ];
    for (req, want) in cases {
        let r = c.send(req);
        assert_eq!(code(&r), *want, "{req} -> {r}");
        assert!(!r["error"]["message"].as_str().unwrap().is_empty());
    }
    // Not mounted: unmounting the stick is a no-op, not an error.
    let r = c.send(&json!({"verb": "unmount", "uuid": STICK_UUID}));
    assert_eq!(r["result"]["unmounted"], json!([]), "{r}");

    // Malformed JSON gets an answer and the connection stays usable.
    let r = c.send_raw(b"{\"verb\": \"list_disks\"\n").unwrap();
    assert_eq!(code(&r), "malformed_request");
    let r = c.send_raw(b"\xff\xfe\n").unwrap();
    assert_eq!(code(&r), "malformed_request");
    assert_eq!(c.send(&json!({"verb": "list_disks"}))["ok"], true);
    assert!(media_is_empty(&f), "a refused mount left something behind");

    // Oversized: refused, and the connection is closed (its rest cannot be trusted).
    let mut big = br#"{"verb":"list_disks","pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 10_000));
    big.extend(b"\"}\n");
    let r = c.send_raw(&big).unwrap();
    assert_eq!(code(&r), "request_too_large");
    let mut line = String::new();
    assert_eq!(
        c.read.read_line(&mut line).unwrap_or(0),
        0,
        "still open: {line}"
    );

    // A fresh connection works.
    let mut c = Conn::open(&f.socket);
    assert_eq!(c.send(&json!({"verb": "list_disks"}))["ok"], true);
}

/// Time sync: the owner's servers reach timesyncd's drop-in only as checked host names or
/// addresses; a refused request changes nothing; an agent without a time sync folder refuses.
#[test]
fn time_sync_writes_only_checked_servers() {
    let f = fixture();
    let me = nix::unistd::geteuid().as_raw();
    {
        let _agent = start(&f, vec![me]);
        let mut c = Conn::open(&f.socket);
        let r = c.send(&json!({"verb": "set_time_sync", "mode": "off"}));
        assert_eq!(code(&r), "time_sync_unavailable", "{r}");
    }
    let dir = f.root.join("data/system/time-sync");
    let _agent = start_with(
        &f,
        vec![me],
        Some(hearth::agent::timesync::TimeSyncConfig {
            dir: dir.clone(),
            restart_service: false,
        }),
    );
    let mut c = Conn::open(&f.socket);
    let files = || {
        let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read_to_string(e.path()).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // (request, expected code or "ok", expected mode after it)
    let cases: &[(Value, &str, &str)] = &[
        (json!({"verb": "set_time_sync", "mode": "off"}), "ok", "off"),
        (
            json!({"verb": "set_time_sync", "mode": "custom", "servers": ["ntp.lan\nFallbackNTP=evil.example"]}),
            "bad_time_sync",
            "off",
        ),
        (
            json!({"verb": "set_time_sync", "mode": "custom", "servers": ["a b"]}),
            "bad_time_sync",
            "off",
        ),
        (
            json!({"verb": "set_time_sync", "mode": "custom", "servers": []}),
            "bad_time_sync",
            "off",
        ),
        (
            json!({"verb": "set_time_sync", "mode": "off", "servers": ["ntp.lan"]}),
            "bad_time_sync",
            "off",
        ),
        (
            json!({"verb": "set_time_sync", "mode": "custom", "servers": ["ntp.lan"], "dir": "/etc"}),
            "malformed_request",
            "off",
        ),
        (
            json!({"verb": "set_time_sync", "mode": "custom", "servers": ["ntp.lan", "192.168.1.1"]}),
            "ok",
            "custom",
        ),
        (
            json!({"verb": "set_time_sync", "mode": "later"}),
            "malformed_request",
            "custom",
        ),
        (
            json!({"verb": "set_time_sync", "mode": "default"}),
            "ok",
            "default",
        ),
    ];
    for (req, want, mode) in cases {
        let before = files();
        let r = c.send(req);
        if *want == "ok" {
            assert_eq!(r["ok"], true, "{req} -> {r}");
            assert_eq!(r["result"]["mode"], *mode, "{req} -> {r}");
        } else {
            assert_eq!(code(&r), *want, "{req} -> {r}");
            assert_eq!(
                files(),
                before,
                "{req}: a refused request changed the files"
            );
        }
        assert_eq!(
            hearth::agent::timesync::read_state(&dir).mode,
            serde_json::from_value(json!(mode)).unwrap(),
            "{req}"
        );
    }
    // Custom wrote exactly the two servers and no fallback; default removed everything.
    assert!(files().is_empty(), "{:?}", files());
}

/// A filesystem mounted outside the media folder is the system's: neither unmount nor
/// eject may touch it.
#[test]
fn the_systems_own_mounts_are_left_alone() {
    let f = fixture();
    std::fs::write(
        f.root.join("proc/self/mountinfo"),
        "90 22 8:16 / /srv/hearth-test-not-a-mount rw,nosuid - vfat /dev/sdb rw\n",
    )
    .unwrap();
    let me = nix::unistd::geteuid().as_raw();
    let _agent = start(&f, vec![me]);
    let mut c = Conn::open(&f.socket);
    for verb in ["unmount", "eject"] {
        let r = c.send(&json!({"verb": verb, "uuid": STICK_UUID}));
        assert_eq!(code(&r), "mounted_elsewhere", "{verb}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/srv/hearth-test-not-a-mount")
        );
    }
    let r = c.send(&json!({"verb": "mount", "uuid": STICK_UUID, "read_only": true}));
    assert_eq!(code(&r), "mounted_elsewhere", "{r}");
}

#[test]
fn other_users_are_refused_before_any_verb_runs() {
    if !need_root("other_users_are_refused_before_any_verb_runs") {
        return;
    }
    let f = fixture();
    let running = start(&f, vec![0]);
    const NOBODY: u32 = 65534;

    // Everything the child needs is prepared before fork: it only makes system calls.
    let addr = nix::sys::socket::UnixAddr::new(&f.socket).unwrap();
    // Every verb the agent knows (and one it does not): each is refused for the wrong
    // caller before it is even read.
    let requests = [
        r#"{"verb":"list_disks"}"#.to_owned(),
        format!(r#"{{"verb":"mount","uuid":"{STICK_UUID}","read_only":false}}"#),
        format!(r#"{{"verb":"unmount","uuid":"{STICK_UUID}"}}"#),
        format!(r#"{{"verb":"eject","uuid":"{STICK_UUID}"}}"#),
        r#"{"verb":"write_slot","slot":"b"}"#.to_owned(),
        r#"{"verb":"set_next_boot","slot":"b"}"#.to_owned(),
        r#"{"verb":"mark_good"}"#.to_owned(),
        r#"{"verb":"reboot"}"#.to_owned(),
        r#"{"verb":"set_time_sync","mode":"off"}"#.to_owned(),
        r#"{"verb":"format","uuid":"x"}"#.to_owned(),
    ];
    for (n, request) in requests.iter().enumerate() {
        let request = format!("{request}\n");
        let request = request.as_bytes();
        // SAFETY: the child only calls async-signal-safe system calls (setgid, setuid, socket,
        // connect, write, read, _exit) and allocates nothing.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                use nix::sys::socket::{AddressFamily, SockFlag, SockType, connect, socket};
                let code = (|| {
                    if nix::unistd::setgid(nix::unistd::Gid::from_raw(NOBODY)).is_err()
                        || nix::unistd::setuid(nix::unistd::Uid::from_raw(NOBODY)).is_err()
                    {
                        return 10;
                    }
                    let Ok(fd) = socket(
                        AddressFamily::Unix,
                        SockType::Stream,
                        SockFlag::empty(),
                        None,
                    ) else {
                        return 11;
                    };
                    if connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).is_err() {
                        return 12;
                    }
                    // The agent refuses before reading anything and may close first: a
                    // failed write is fine as long as its refusal arrives.
                    let _ = nix::unistd::write(&fd, request);
                    let mut buf = [0u8; 1024];
                    let mut len = 0;
                    while len < buf.len() {
                        match nix::unistd::read(
                            std::os::fd::AsRawFd::as_raw_fd(&fd),
                            &mut buf[len..],
                        ) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => len += n,
                        }
                    }
                    let answer = &buf[..len];
                    if answer.windows(14).any(|w| w == b"forbidden_peer") {
                        0
                    } else {
                        14
                    }
                })();
                // SAFETY: _exit ends the forked child without running the parent's destructors.
                unsafe { nix::libc::_exit(code) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                // The forbidden path must never be reached: fail loudly if it was.
                assert_eq!(
                    running.agent.verbs_run(),
                    0,
                    "FORBIDDEN PATH REACHED: the agent ran a verb for uid {NOBODY}"
                );
                assert!(
                    media_is_empty(&f),
                    "FORBIDDEN PATH REACHED: the agent touched the media folder for uid {NOBODY}"
                );
                assert_eq!(
                    status,
                    nix::sys::wait::WaitStatus::Exited(child, 0),
                    "the uid {NOBODY} client did not get forbidden_peer for {} (exit codes: 10 setuid, 12 connect, 14 no refusal received)",
                    requests[n]
                );
                assert_eq!(
                    running.agent.refused_peers(),
                    n as u64 + 1,
                    "{}",
                    requests[n]
                );
            }
        }
    }
    // A request from root is served, which shows the counter counts.
    let mut c = Conn::open(&f.socket);
    let r = c.send(&json!({"verb": "list_disks"}));
    assert_eq!(r["ok"], true);
    assert_eq!(running.agent.verbs_run(), 1);
}

/// A laptop: no agent configured, or one configured whose socket is absent.
#[test]
fn laptop_disk_api_says_it_needs_the_appliance() {
    let dir = tempfile::tempdir().unwrap();
    for socket in [None, Some(dir.path().join("no-agent.sock"))] {
        let data = tempfile::tempdir().unwrap();
        let s = common::TestServer::start_with(data.path(), |c| c.agent_socket = socket.clone());
        let code = hearth::identity::setup_code::read(&s.data)
            .unwrap()
            .unwrap();
        let r = common::send(
            "POST",
            &s.url("/api/v1/setup/claim"),
            None,
            &json!({"setup_code": code, "server_name": "Den",
                    "owner": {"username": "anna", "password": "correct horse battery"}}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let token = r.json()["token"].as_str().unwrap().to_owned();

        assert_eq!(common::get(&s.url("/api/v1/disks"), None).status, 401);
        let r = common::get(&s.url("/api/v1/disks"), Some(&token));
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["agent"], false);
        assert_eq!(
            v["message"],
            "Disk management needs the Hearth appliance; add folders by path instead."
        );
        assert!(v["disks"].is_array());
        assert_eq!(v["known"], json!([]));
        let r = common::send(
            "POST",
            &s.url("/api/v1/disks/1234-ABCD/mount"),
            Some(&token),
            &json!({"read_only": true}),
        );
        assert_eq!(r.status, 501, "{}", r.body);
        assert_eq!(r.error_code(), "no_agent");
        let r = common::send(
            "POST",
            &s.url("/api/v1/disks/1234-ABCD/eject"),
            Some(&token),
            &json!({}),
        );
        assert_eq!(r.status, 501, "{}", r.body);
        let r = common::send(
            "POST",
            &s.url("/api/v1/disks/1234-ABCD/mount"),
            Some(&token),
            &json!({"read_only": "yes"}),
        );
        assert_eq!(r.status, 422, "{}", r.body);
    }
}
