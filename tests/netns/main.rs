//! Network rules with clients that really come from different addresses: network
//! namespaces and veth pairs, made by this test and removed when it ends (also on failure).
//! Needs root and `ip` (iproute2); run by the `netns` tier (`tests/netns/run`), built only
//! with `--features netns-tests`.
//!
//! ```text
//!   lan 10.231.1.2 ──┐
//!   fd31:231:1::2    ├─ server 10.231.1.1 / fd31:231:1::1 (LAN side)
//!                    │        10.231.2.1 ── router 10.231.2.2 / 10.231.3.1 ── remote 10.231.3.2
//! ```
//! Only addresses inside these namespaces are ever contacted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

mod dlna;
#[path = "../common/media.rs"]
mod media;
mod reach;

const SERVER_LAN: &str = "10.231.1.1";
const SERVER_LAN6: &str = "fd31:231:1::1";
const LAN_CLIENT: &str = "10.231.1.2";
const REMOTE_CLIENT: &str = "10.231.3.2";

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces; dropping this removes them (and the veths inside) even after a panic.
struct Topology {
    server: String,
    lan: String,
    router: String,
    remote: String,
}

impl Topology {
    fn create() -> Topology {
        let id = std::process::id();
        let t = Topology {
            server: format!("hnt{id}s"),
            lan: format!("hnt{id}l"),
            router: format!("hnt{id}r"),
            remote: format!("hnt{id}x"),
        };
        for ns in t.all() {
            ip(&["netns", "add", ns]);
        }
        let (s, l, r, x) = (&t.server, &t.lan, &t.router, &t.remote);
        // Each veth end is created directly inside its namespace: nothing touches the host's.
        ip(&[
            "link", "add", "name", "v0", "netns", s, "type", "veth", "peer", "name", "v0", "netns",
            l,
        ]);
        ip(&[
            "link", "add", "name", "v1", "netns", s, "type", "veth", "peer", "name", "v1", "netns",
            r,
        ]);
        ip(&[
            "link", "add", "name", "v2", "netns", r, "type", "veth", "peer", "name", "v2", "netns",
            x,
        ]);
        let exec = |ns: &str, args: &[&str]| {
            let mut all = vec!["netns", "exec", ns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        exec(s, &["addr", "add", "10.231.1.1/24", "dev", "v0"]);
        exec(
            s,
            &[
                "-6",
                "addr",
                "add",
                "fd31:231:1::1/64",
                "dev",
                "v0",
                "nodad",
            ],
        );
        exec(s, &["addr", "add", "10.231.2.1/24", "dev", "v1"]);
        exec(l, &["addr", "add", "10.231.1.2/24", "dev", "v0"]);
        exec(
            l,
            &[
                "-6",
                "addr",
                "add",
                "fd31:231:1::2/64",
                "dev",
                "v0",
                "nodad",
            ],
        );
        exec(r, &["addr", "add", "10.231.2.2/24", "dev", "v1"]);
        exec(r, &["addr", "add", "10.231.3.1/24", "dev", "v2"]);
        exec(x, &["addr", "add", "10.231.3.2/24", "dev", "v2"]);
        for (ns, devs) in [
            (s, &["lo", "v0", "v1"][..]),
            (l, &["lo", "v0"]),
            (r, &["lo", "v1", "v2"]),
            (x, &["lo", "v2"]),
        ] {
            for d in devs {
                exec(ns, &["link", "set", d, "up"]);
            }
        }
        exec(s, &["route", "add", "10.231.3.0/24", "via", "10.231.2.2"]);
        exec(r, &["route", "add", "10.231.1.0/24", "via", "10.231.2.1"]);
        exec(x, &["route", "add", "default", "via", "10.231.3.1"]);
        ip(&[
            "netns",
            "exec",
            r,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
        ]);
        // The kernel adds IPv6 prefix routes from a work queue after the link comes up; wait
        // for them (bounded) rather than race the first request.
        for ns in [s, l] {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let out = Command::new("ip")
                    .args(["-n", ns, "-6", "route", "show", "fd31:231:1::/64"])
                    .output()
                    .expect("ip route");
                if !out.stdout.is_empty() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "IPv6 route never appeared in {ns}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        t
    }

    fn all(&self) -> [&String; 4] {
        [&self.server, &self.lan, &self.router, &self.remote]
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.all() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Moves the calling thread into namespace `ns`; sockets it opens afterwards live there,
/// and threads it starts inherit it.
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

struct Server {
    port: u16,
    data: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// `hearth::serve` inside the server namespace, listening on [::]:0 (IPv4 and IPv6).
    fn start(ns: &str, data: &std::path::Path) -> Server {
        Self::start_with(ns, data, |_| {})
    }

    /// As [`Server::start`], with `tweak` changing the config first.
    fn start_with(
        ns: &str,
        data: &std::path::Path,
        tweak: impl FnOnce(&mut hearth::Config),
    ) -> Server {
        let ns = ns.to_owned();
        let mut config = hearth::Config::load(None, Vec::new()).unwrap();
        config.data_dir = data.to_owned();
        config.https = None;
        tweak(&mut config);
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            enter(&ns);
            // Built after entering, so every runtime thread (and the LAN detection it runs)
            // is in the server's namespace too.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("[::]:0").await.unwrap();
                port_tx.send(l.local_addr().unwrap().port()).unwrap();
                let listeners = hearth::Listeners {
                    http: vec![l],
                    https: vec![],
                };
                hearth::serve(config, listeners, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let port = port_rx.recv().expect("server started");
        Server {
            port,
            data: data.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

/// One HTTP/1.1 request from inside namespace `ns` (on a thread of its own).
fn request(
    ns: &str,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let ns = ns.to_owned();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (method, path) = (method.to_owned(), path.to_owned());
    std::thread::spawn(move || {
        enter(&ns);
        let mut tcp = match TcpStream::connect_timeout(&to, Duration::from_secs(10)) {
            Ok(t) => t,
            Err(e) => {
                let routes = Command::new("ip")
                    .args(["-n", &ns, "route", "get", &to.ip().to_string()])
                    .output()
                    .unwrap();
                let addrs = Command::new("ip")
                    .args(["-n", &ns, "addr"])
                    .output()
                    .unwrap();
                panic!(
                    "connect from {ns} to {to}: {e}\n{}{}\n{}",
                    String::from_utf8_lossy(&routes.stdout),
                    String::from_utf8_lossy(&routes.stderr),
                    String::from_utf8_lossy(&addrs.stdout)
                );
            }
        };
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: hearth\r\nConnection: close\r\n");
        for (k, v) in &headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        tcp.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        Answer {
            status,
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    })
    .join()
    .expect("client thread")
}

#[test]
fn lan_and_remote_clients_meet_the_rules_from_their_own_addresses() {
    let topo = Topology::create();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&topo.server, &tmp.path().join("data"));
    let v4: SocketAddr = format!("{SERVER_LAN}:{}", server.port).parse().unwrap();
    let v6: SocketAddr = format!("[{SERVER_LAN6}]:{}", server.port).parse().unwrap();
    let health = |ns: &str, to: SocketAddr, hs: &[(&str, &str)]| {
        request(ns, to, "GET", "/api/v1/health", hs, None)
    };
    let (lan, remote) = (topo.lan.as_str(), topo.remote.as_str());

    // Defaults: the LAN (IPv4 and IPv6 ULA) is served; the remote client is refused with a
    // reason naming the rule, whatever forwarding headers it makes up.
    assert_eq!(health(lan, v4, &[]).status, 200);
    assert_eq!(health(lan, v6, &[]).status, 200);
    let r = health(remote, v4, &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body["error"]["code"], "remote_access_off");
    for (h, v) in [
        ("X-Forwarded-For", LAN_CLIENT),
        ("X-Forwarded-For", "127.0.0.1"),
        ("Forwarded", "for=10.231.1.2"),
    ] {
        let r = health(remote, v4, &[(h, v)]);
        assert_eq!(r.status, 403, "spoofed {h}: {v} must change nothing: {r:?}");
        assert_eq!(r.body["error"]["code"], "remote_access_off");
    }
    assert_eq!(
        request(remote, v4, "GET", "/api/v1/setup", &[], None).status,
        403
    );

    // The owner claims the device from the LAN.
    let code = hearth::identity::setup_code::read(&server.data)
        .unwrap()
        .unwrap();
    let r = request(
        lan,
        v4,
        "POST",
        "/api/v1/setup/claim",
        &[],
        Some(json!({
            "setup_code": code,
            "server_name": "Den",
            "owner": {"username": "anna", "password": "correct horse battery"},
            "device": {"name": "Laptop", "platform": "web", "client_id": "n1"},
        })),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let token = r.body["token"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {token}");
    let owner = [("Authorization", auth.as_str())];
    let patch = |ns: &str, body: Value| {
        request(
            ns,
            v4,
            "PATCH",
            "/api/v1/settings/network",
            &owner,
            Some(body),
        )
    };

    // The server sees the LAN client's own address and detected its own subnets.
    let r = request(lan, v4, "GET", "/api/v1/settings/network", &owner, None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["this_client"]["address"], LAN_CLIENT);
    assert_eq!(r.body["this_client"]["class"], "lan");
    let detected = r.body["detected_lan_networks"].as_array().unwrap();
    for n in ["10.231.1.0/24", "fd31:231:1::/64", "fe80::/10"] {
        assert!(detected.iter().any(|d| d == n), "{n} in {detected:?}");
    }
    assert!(
        !detected.iter().any(|d| d == "10.231.3.0/24"),
        "{detected:?}"
    );

    // Remote access on: the remote client gets in on its next request, no restart.
    assert_eq!(patch(lan, json!({"remote_access": true})).status, 200);
    assert_eq!(health(remote, v4, &[]).status, 200);

    // Deny list: the remote address is refused, the LAN is not; headers cannot undo it.
    assert_eq!(patch(lan, json!({"ip_deny": [REMOTE_CLIENT]})).status, 200);
    let r = health(remote, v4, &[("X-Forwarded-For", LAN_CLIENT)]);
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (403, Some("ip_denied")),
        "{r:?}"
    );
    assert_eq!(health(lan, v4, &[]).status, 200);

    // Denying the owner's own network is refused unless confirmed...
    let r = patch(lan, json!({"ip_deny": ["10.231.1.0/24"]}));
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(LAN_CLIENT),
        "{r:?}"
    );
    assert_eq!(health(lan, v4, &[]).status, 200);
    // ...and when confirmed, the LAN client (v4) is out while its IPv6 address is not.
    assert_eq!(
        patch(lan, json!({"ip_deny": ["10.231.1.0/24"], "confirm": true})).status,
        200
    );
    assert_eq!(health(lan, v4, &[]).status, 403);
    assert_eq!(health(lan, v6, &[]).status, 200);
    let r = request(
        lan,
        v6,
        "PATCH",
        "/api/v1/settings/network",
        &owner,
        Some(json!({"ip_deny": []})),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(health(lan, v4, &[]).status, 200);

    // A trusted proxy on the remote side: its X-Forwarded-For is believed, from it only.
    let r = patch(
        lan,
        json!({"remote_access": false, "trusted_proxies": [REMOTE_CLIENT]}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        health(remote, v4, &[("X-Forwarded-For", LAN_CLIENT)]).status,
        200
    );
    assert_eq!(health(remote, v4, &[]).status, 403);
    assert_eq!(
        health(remote, v4, &[("X-Forwarded-For", "198.51.100.1")]).status,
        403
    );
    assert_eq!(
        health(remote, v4, &[("X-Forwarded-For", "unknown")]).status,
        403
    );
    // The LAN client is not a trusted proxy: a remote-looking header from it is ignored.
    assert_eq!(
        health(lan, v4, &[("X-Forwarded-For", "198.51.100.1")]).status,
        200
    );

    // The owner's extra LAN networks make a routed subnet count as LAN.
    let r = patch(
        lan,
        json!({"trusted_proxies": [], "lan_networks": ["10.231.3.0/24"]}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(health(remote, v4, &[]).status, 200);

    drop(server);
    drop(topo);
}

/// Waits for start-up (and so the setup code), then claims the device from `ns` as "anna";
/// returns her token.
fn claim_from(ns: &str, to: SocketAddr, data: &std::path::Path) -> String {
    assert_eq!(
        request(ns, to, "GET", "/api/v1/health", &[], None).status,
        200
    );
    let code = hearth::identity::setup_code::read(data).unwrap().unwrap();
    let r = request(
        ns,
        to,
        "POST",
        "/api/v1/setup/claim",
        &[],
        Some(json!({"setup_code": code, "server_name": "Den",
            "owner": {"username": "anna", "password": "correct horse battery"}})),
    );
    assert_eq!(r.status, 201, "{r:?}");
    r.body["token"].as_str().unwrap().to_owned()
}

/// The claim is for people in the house: even with remote access turned on (kept across a
/// `reset-claim`), a client on the internet cannot claim an unclaimed device, with the right
/// code or without; a LAN client then can.
#[test]
fn remote_clients_cannot_claim_even_with_remote_access_on() {
    let topo = Topology::create();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (lan, remote) = (topo.lan.as_str(), topo.remote.as_str());
    let claim_body = |code: &str| {
        json!({
            "setup_code": code,
            "server_name": "Den",
            "owner": {"username": "anna", "password": "correct horse battery"},
        })
    };

    // First life: claimed from the LAN, remote access turned on.
    {
        let server = Server::start(&topo.server, &data);
        let v4: SocketAddr = format!("{SERVER_LAN}:{}", server.port).parse().unwrap();
        let auth = format!("Bearer {}", claim_from(lan, v4, &data));
        let r = request(
            lan,
            v4,
            "PATCH",
            "/api/v1/settings/network",
            &[("Authorization", auth.as_str())],
            Some(json!({"remote_access": true})),
        );
        assert_eq!(r.status, 200, "{r:?}");
    }

    // The owner is locked out and resets the claim on the console; settings stay.
    let code = {
        let store = hearth::store::Store::open(&data.join("hearth.redb")).unwrap();
        hearth::identity::reset_claim(&store, &data, None, "test").unwrap()
    };

    let server = Server::start(&topo.server, &data);
    let v4: SocketAddr = format!("{SERVER_LAN}:{}", server.port).parse().unwrap();
    // Remote access is on, so the remote client reaches the server at all…
    assert_eq!(
        request(remote, v4, "GET", "/api/v1/setup", &[], None).status,
        200
    );
    // …but may not check codes or claim, even with the right code.
    for (path, body) in [
        ("/api/v1/setup/check-code", json!({"setup_code": code})),
        ("/api/v1/setup/claim", claim_body(&code)),
    ] {
        let r = request(remote, v4, "POST", path, &[], Some(body));
        assert_eq!(r.status, 403, "{path}: {r:?}");
        assert_eq!(r.body["error"]["code"], "claim_needs_lan", "{path}: {r:?}");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("home network"), "{msg}");
    }
    assert_eq!(
        hearth::identity::setup_code::read(&data)
            .unwrap()
            .as_deref(),
        Some(code.as_str()),
        "refused claims change nothing"
    );
    // A LAN client claims with the same code.
    let r = request(
        lan,
        v4,
        "POST",
        "/api/v1/setup/claim",
        &[],
        Some(claim_body(&code)),
    );
    assert_eq!(r.status, 201, "{r:?}");
}

/// A network the owner allows without sign-in acts as the guest profile (with the guest's
/// restrictions), never reaches owner routes, and is ignored once home mode is on.
#[test]
fn allowed_networks_act_as_guest_and_are_ignored_in_home_mode() {
    let topo = Topology::create();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&topo.server, &data);
    let v4: SocketAddr = format!("{SERVER_LAN}:{}", server.port).parse().unwrap();
    let lan = topo.lan.as_str();
    let auth = format!("Bearer {}", claim_from(lan, v4, &data));
    let owner = [("Authorization", auth.as_str())];
    let anon = |method: &str, path: &str| request(lan, v4, method, path, &[], None);

    // Nothing is open without sign-in until the owner says so.
    assert_eq!(anon("GET", "/api/v1/libraries").status, 401);

    // A library of the test films; the guest is a little kid; the LAN acts as the guest.
    // Library folders may not contain `..`, so resolve the media's real path.
    let movies = media::test_media()
        .join("Movies")
        .canonicalize()
        .expect("the generated test media");
    let r = request(
        lan,
        v4,
        "POST",
        "/api/v1/libraries",
        &owner,
        Some(json!({"name": "Films", "kind": "movies", "folders": [movies.to_str().unwrap()]})),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let lib = r.body["id"].as_u64().unwrap();
    let r = request(
        lan,
        v4,
        "POST",
        "/api/v1/users",
        &owner,
        Some(json!({"kind": "guest"})),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let guest = r.body["id"].as_u64().unwrap();
    let r = request(
        lan,
        v4,
        "PATCH",
        &format!("/api/v1/users/{guest}"),
        &owner,
        Some(json!({"preset": "little_kid"})),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = request(
        lan,
        v4,
        "PATCH",
        "/api/v1/settings/network",
        &owner,
        Some(json!({"allowed_without_auth": {"networks": ["10.231.1.0/24"], "profile": "guest"}})),
    );
    assert_eq!(r.status, 200, "{r:?}");
    for _ in 0..600 {
        let s = request(
            lan,
            v4,
            "GET",
            &format!("/api/v1/libraries/{lib}/scan"),
            &owner,
            None,
        );
        if s.body["progress"]["running"] == false {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // Without a token the LAN browses as the guest: only what a little kid may see.
    let r = anon("GET", &format!("/api/v1/libraries/{lib}/items"));
    assert_eq!(r.status, 200, "{r:?}");
    let titles: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Sunny Meadow"]);
    // Its stream link works from here, without a device.
    let url = r.body["items"][0]["stream_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = request(lan, v4, "GET", &url, &[("Range", "bytes=0-15")], None);
    assert_eq!(r.status, 206, "{r:?}");
    // Never the owner's routes, nor anything that needs an account.
    for (m, p) in [
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/settings/network"),
        ("GET", "/api/v1/system"),
        ("GET", "/api/v1/audit"),
        ("POST", "/api/v1/libraries"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/continue"),
    ] {
        let r = anon(m, p);
        assert!(
            r.status == 401 || r.status == 403,
            "{m} {p} must be refused: {r:?}"
        );
    }

    // Home mode (a managed profile appears): the allowed network is ignored, and so are
    // links made for it.
    let r = request(
        lan,
        v4,
        "POST",
        "/api/v1/users",
        &owner,
        Some(json!({"kind": "managed", "name": "Mia"})),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = anon("GET", "/api/v1/libraries");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(request(lan, v4, "GET", &url, &[], None).status, 403);
}
