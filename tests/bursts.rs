//! Concurrent bursts of guesses against every credential check: PIN switching, password
//! sign-in (per account), the setup code, invite links and two-factor codes. Each burst
//! comes from several loopback source addresses at once; no more guesses may be evaluated
//! than the throttle's free budget, the rest get 429 with Retry-After, and a right guess
//! past the budget does not get in. A last test watches the server's memory through a
//! burst of sign-ins (argon2 is memory-hard: 19 MiB a guess).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{TestServer, claimed, get, send};
use serde_json::json;

/// An answer from the raw client.
#[derive(Debug, Clone)]
struct Raw {
    status: u16,
    retry_after: Option<u64>,
    code: String,
}

/// Connects to `to` from the loopback address `from` (127.0.0.x: every such address is
/// the host's own), so the server sees a different client address per source.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(from, 0)),
    )
    .expect("bind a loopback source address");
    let SocketAddr::V4(to) = to else {
        panic!("the test server listens on IPv4")
    };
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to)).expect("connect");
    TcpStream::from(fd)
}

/// One HTTP/1.1 request over a fresh connection from `from`.
fn raw(
    from: Ipv4Addr,
    to: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> Raw {
    let mut s = connect_from(from, to);
    s.set_read_timeout(Some(Duration::from_secs(300))).ok();
    let body = body.to_string();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {to}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let retry_after = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok());
    // Connection: close with Content-Length, never chunked, for our JSON answers.
    let code = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Raw {
        status,
        retry_after,
        code,
    }
}

/// Sends every request at once (released together by a barrier), each from source address
/// `127.0.0.(first + i % spread)`. Returns the answers in request order.
fn burst(
    to: SocketAddr,
    first: u8,
    spread: u8,
    reqs: Vec<(String, String, Option<String>, serde_json::Value)>,
) -> Vec<Raw> {
    let gate = Arc::new(Barrier::new(reqs.len()));
    let handles: Vec<_> = reqs
        .into_iter()
        .enumerate()
        .map(|(i, (method, path, token, body))| {
            let gate = gate.clone();
            let from = Ipv4Addr::new(127, 0, 0, first + (i % usize::from(spread)) as u8);
            std::thread::spawn(move || {
                gate.wait();
                raw(from, to, &method, &path, token.as_deref(), &body)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Checks the shape of a burst's answers: at most `budget` evaluated (answered with
/// `wrong`), every other one a 429 with Retry-After. Returns how many were evaluated.
fn evaluated_within(answers: &[Raw], wrong: &str, budget: usize, what: &str) -> usize {
    let evaluated = answers.iter().filter(|a| a.code == wrong).count();
    let throttled = answers.iter().filter(|a| a.status == 429).count();
    println!(
        "{what}: {} guesses, {evaluated} evaluated, {throttled} answered 429 (budget {budget})",
        answers.len()
    );
    for a in answers {
        assert!(
            a.code == wrong || a.status == 429,
            "{what}: an answer that is neither a wrong guess nor 429: {a:?}"
        );
        if a.status == 429 {
            assert!(
                a.retry_after.is_some_and(|s| s >= 1),
                "{what}: 429 without Retry-After: {a:?}"
            );
        }
    }
    assert!(
        evaluated <= budget,
        "{what}: {evaluated} guesses evaluated, more than the budget of {budget}"
    );
    assert!(evaluated >= 1, "{what}: nothing was evaluated at all");
    evaluated
}

/// A little kid's device guesses the owner's PIN: 96 at once from four addresses, then the
/// right PIN once the budget is spent. The device must still be the kid's.
#[test]
fn a_burst_of_pin_guesses_gets_the_free_budget_and_no_more() {
    let (s, owner) = claimed();
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Lily"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let lily = r.json()["id"].as_u64().unwrap();
    let r = send(
        "PUT",
        &s.url("/api/v1/users/1/pin"),
        Some(&owner),
        &json!({"pin": "4821"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    // The owner hands the tablet to Lily: the device now acts as her.
    let r = send(
        "POST",
        &s.url("/api/v1/auth/switch"),
        Some(&owner),
        &json!({"user_id": lily}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let tablet = owner;

    let guess = |pin: String| {
        (
            "POST".to_owned(),
            "/api/v1/auth/switch".to_owned(),
            Some(tablet.clone()),
            json!({"user_id": 1, "pin": pin}),
        )
    };
    let answers = burst(
        s.addr,
        2,
        4,
        (0..96).map(|i| guess(format!("{:04}", 9000 + i))).collect(),
    );
    evaluated_within(&answers, "wrong_pin", 3, "PIN burst");
    // The budget is spent and a delay runs: the right PIN now is refused like any guess.
    let right = raw(
        Ipv4Addr::new(127, 0, 0, 6),
        s.addr,
        "POST",
        "/api/v1/auth/switch",
        Some(&tablet),
        &json!({"user_id": 1, "pin": "4821"}),
    );
    assert_eq!(
        right.status, 429,
        "the right PIN past the budget: {right:?}"
    );
    let me = get(&s.url("/api/v1/me"), Some(&tablet)).json();
    assert_eq!(me["user"]["id"], lily, "the device is still Lily's: {me}");
}

/// 96 wrong passwords for the owner at once from four strangers' addresses: the account's
/// budget holds. A stranger with the right password then waits too, but the owner, from
/// an address she has signed in from or with her known-device cookie, gets in.
#[test]
fn a_burst_of_password_guesses_gets_the_free_budget_and_the_owner_still_gets_in() {
    let (s, _owner) = claimed();
    let login = |password: &str| {
        (
            "POST".to_owned(),
            "/api/v1/auth/login".to_owned(),
            None,
            json!({"username": "anna", "password": password}),
        )
    };
    // A known-device cookie from an ordinary sign-in, before the attack.
    let r = common::agent()
        .post(&s.url("/api/v1/auth/login"))
        .send_json(json!({"username": "anna", "password": "correct horse battery"}))
        .unwrap();
    assert_eq!(r.status(), 200);
    let known = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("hearth_known="))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
        .expect("a known-device cookie after signing in");

    let answers = burst(
        s.addr,
        2,
        4,
        (0..96)
            .map(|i| login(&format!("wrong guess {i:03}")))
            .collect(),
    );
    // Per address 5, per account 10: the account's budget is the smaller.
    evaluated_within(&answers, "bad_credentials", 10, "password burst");

    let stranger = raw(
        Ipv4Addr::new(127, 0, 0, 7),
        s.addr,
        "POST",
        "/api/v1/auth/login",
        None,
        &json!({"username": "anna", "password": "correct horse battery"}),
    );
    assert_eq!(
        stranger.status, 429,
        "a new address with the right password waits out the account's delay: {stranger:?}"
    );
    // 127.0.0.1 is where the owner claimed the device and signed in.
    let home = send(
        "POST",
        &s.url("/api/v1/auth/login"),
        None,
        &json!({"username": "anna", "password": "correct horse battery"}),
    );
    assert_eq!(
        home.status, 200,
        "the owner at a known address: {}",
        home.body
    );
    // The known-device cookie works from an address the account has never used.
    let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 8), s.addr);
    let body = json!({"username": "anna", "password": "correct horse battery"}).to_string();
    write!(
        c,
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {}\r\nCookie: hearth_known={known}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        s.addr,
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "the owner's browser with its known-device cookie: {resp}"
    );
    // A forged cookie is just a stranger.
    let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 9), s.addr);
    let forged = format!("1.{}.{}", "ab".repeat(16), "cd".repeat(32));
    write!(
        c,
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {}\r\nCookie: hearth_known={forged}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        s.addr,
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 429"), "a forged cookie: {resp}");
}

#[test]
fn a_burst_of_setup_code_guesses_gets_the_free_budget() {
    let s = TestServer::start();
    let answers = burst(
        s.addr,
        2,
        4,
        (0..96)
            .map(|i| {
                (
                    "POST".to_owned(),
                    "/api/v1/setup/check-code".to_owned(),
                    None,
                    json!({"setup_code": format!("AAAA-BBBB-{i:04}")}),
                )
            })
            .collect(),
    );
    // Per address 5 (four addresses: 20), everyone together 20.
    evaluated_within(&answers, "wrong_setup_code", 20, "setup-code burst");
}

#[test]
fn a_burst_of_invite_guesses_gets_the_free_budget() {
    let (s, _owner) = claimed();
    let answers = burst(
        s.addr,
        2,
        4,
        (0..96)
            .map(|i| {
                (
                    "POST".to_owned(),
                    format!(
                        "/api/v1/invites/hth_{}/accept",
                        "0".repeat(59) + &format!("{i:04}")
                    ),
                    None,
                    json!({"username": format!("guesser{i}"), "password": "friendly giraffe tune"}),
                )
            })
            .collect(),
    );
    evaluated_within(&answers, "invite_invalid", 20, "invite burst");
}

#[test]
fn a_burst_of_two_factor_guesses_gets_the_free_budget() {
    let (s, owner) = claimed();
    let r = send("POST", &s.url("/api/v1/me/totp"), Some(&owner), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let answers = burst(
        s.addr,
        2,
        4,
        (0..96)
            .map(|i| {
                (
                    "POST".to_owned(),
                    "/api/v1/me/totp/confirm".to_owned(),
                    Some(owner.clone()),
                    // Six digits no authenticator shows at once: each is a wrong guess
                    // unless it happens to be the current code (then this test reruns clean).
                    json!({"code": format!("{:06}", 100_000 + i * 7919)}),
                )
            })
            .collect(),
    );
    evaluated_within(&answers, "wrong_totp", 3, "two-factor burst");
}

/// `hearth serve` as its own process, so its memory can be read.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start(data: &Path) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HEARTH_")) {
            cmd.env_remove(k);
        }
        let mut child = cmd
            .args(["serve", "--data"])
            .arg(data)
            .args(["--http", "127.0.0.1:0", "--https", "off"])
            .env("HEARTH_LOG", "warn,hearth=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hearth serve");
        let (tx, rx) = std::sync::mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(i) = line.find("listening on http://") {
                        let addr = line[i + "listening on http://".len()..]
                            .split(|c: char| c.is_whitespace() || c == '/')
                            .next()
                            .unwrap_or("")
                            .to_owned();
                        let _ = tx.send(addr);
                    }
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("hearth serve did not start")
            .parse()
            .expect("a socket address");
        Serve { child, addr }
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (kib("VmRSS:"), kib("VmHWM:"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 80 sign-ins at once, each for a different name from sixteen addresses, so every one is
/// inside the throttles' budgets and reaches argon2 (or is told to wait when too many are
/// queued): the server's peak memory stays under 100 MB and what it took comes back.
#[test]
fn memory_stays_bounded_through_a_burst_of_sign_ins() {
    let tmp = tempfile::tempdir().unwrap();
    let serve = Serve::start(&tmp.path().join("data"));
    let base = format!("http://{}", serve.addr);
    assert_eq!(get(&format!("{base}/api/v1/health"), None).status, 200);
    let (before, _) = serve.memory();
    let answers = burst(
        serve.addr,
        10,
        16,
        (0..80)
            .map(|i| {
                (
                    "POST".to_owned(),
                    "/api/v1/auth/login".to_owned(),
                    None,
                    json!({"username": format!("nobody{i}"), "password": "not the password at all"}),
                )
            })
            .collect(),
    );
    let (during, peak) = serve.memory();
    let evaluated = answers.iter().filter(|a| a.status == 401).count();
    let turned_away = answers.iter().filter(|a| a.status == 429).count();
    assert_eq!(evaluated + turned_away, 80, "{answers:?}");
    // Give the allocator its chance; memory given back is given back at once with mmap.
    let mut after = during;
    for _ in 0..60 {
        after = serve.memory().0;
        if after < before + 8 * 1024 {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "sign-in burst: {evaluated} evaluated, {turned_away} told to wait; RSS {} MiB before, \
         peak {} MiB, {} MiB right after, {} MiB later",
        before / 1024,
        peak / 1024,
        during / 1024,
        after / 1024
    );
    assert!(peak < 100 * 1024, "peak RSS {} MiB", peak / 1024);
    // The test binary is a debug build whose idle RSS is already near 30 MiB (the release
    // build idles near 11): what must come back is what the burst took.
    assert!(
        after < before + 8 * 1024,
        "RSS stayed at {} MiB after the burst (was {} MiB)",
        after / 1024,
        before / 1024
    );
}
