//! The data directory is private whatever the umask: the real `hearth serve`, started with
//! umask 022 (what a plain shell gives), makes a fresh data directory 0700 with files 0600,
//! and repairs an existing one whose files are 0644 and folders 0755, without following a
//! symbolic link out of it. The database holds the stream-signing key, password hashes and
//! TOTP secrets.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts `hearth serve` on `data` with umask 022 and waits until it listens.
fn start(data: &Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HEARTH_")) {
        cmd.env_remove(k);
    }
    cmd.args(["serve", "--data"])
        .arg(data)
        .args(["--http", "127.0.0.1:0", "--https", "off"])
        .env("HEARTH_LOG", "warn,hearth=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: umask is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start hearth serve");
    let (tx, rx) = std::sync::mpsc::channel();
    for out in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("hearth serve: {line}");
                if let Some(i) = line.find("listening on http://") {
                    let url = line[i + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let _ = tx.send(url);
                }
            }
        });
    }
    let Ok(base) = rx.recv_timeout(Duration::from_secs(120)) else {
        let status = child.try_wait();
        let _ = child.kill();
        panic!("hearth serve did not start (exit status {status:?})");
    };
    assert_eq!(
        common::get(&format!("{base}/api/v1/health"), None).status,
        200
    );
    child
}

/// The permission bits, as octal text so a failure reads `755`, not `493`.
fn mode(p: &Path) -> String {
    format!(
        "{:o}",
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    )
}

/// Every folder in `dir` (and `dir`) is 0700 and every file 0600; links are not looked at.
fn assert_private(dir: &Path) -> usize {
    assert_eq!(mode(dir), "700", "{}", dir.display());
    let mut n = 1;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            n += assert_private(&e.path());
        } else if t.is_file() {
            assert_eq!(mode(&e.path()), "600", "{}", e.path().display());
            n += 1;
        }
    }
    n
}

fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_fresh_data_dir_is_private_under_umask_022() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let child = start(&data);
    let checked = assert_private(&data);
    stop(child);
    assert!(data.join("hearth.redb").is_file());
    assert_eq!(mode(&data.join("hearth.redb")), "600");
    eprintln!("fresh: {checked} entries private");
}

#[test]
fn an_existing_open_data_dir_is_repaired_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // As an older version under umask 022 left it: the database and the setup code 0644,
    // a folder 0755 with a key in it.
    std::fs::create_dir_all(data.join("tls")).unwrap();
    drop(hearth::store::Store::open(&data.join("hearth.redb")).unwrap());
    std::fs::write(data.join("tls/ca.key.pem"), b"not really a key").unwrap();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, b"not ours").unwrap();
    std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
    for (p, m) in [
        (data.clone(), 0o755),
        (data.join("tls"), 0o755),
        (data.join("hearth.redb"), 0o644),
        (data.join("tls/ca.key.pem"), 0o644),
        (outside.clone(), 0o644),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let child = start(&data);
    let checked = assert_private(&data);
    stop(child);
    assert_eq!(mode(&data.join("hearth.redb")), "600");
    assert_eq!(mode(&data.join("tls/ca.key.pem")), "600");
    assert_eq!(
        mode(&outside),
        "644",
        "a link was followed out of the data dir"
    );
    eprintln!("existing: {checked} entries private, the link's target untouched");
}
