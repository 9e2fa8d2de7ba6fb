//! Remote access through a real home router: Debian's miniupnpd (nftables backend) runs in a
//! router namespace between Hearth's home network and a stand-in internet, and a friend's
//! client sits on that internet.
//!
//! ```text
//!   home  10.231.5.2 (Hearth) ── router 10.231.5.1 | 11.231.0.1 ── wan 11.231.0.2 (friend)
//! ```
//!
//! miniupnpd refuses private and reserved external addresses, so the router's internet side
//! uses 11.231.0.0/24, a public prefix borrowed for the test: it exists only inside these
//! three namespaces, which have no route, bridge or veth to the host's own interfaces (the
//! test checks that before it starts anything) and are removed at the end, also on failure.
//! Each namespace is named `hnt<pid>{h,g,w}`, so `tests/netns/run` sweeps leftovers.
//!
//! Shown: no mapping while remote access is off; on → a mapping `upnpc -l` lists, and the
//! friend reaches Hearth through the router's external address; the lease is renewed; the
//! reachability check's verdicts (router without and with NAT loopback); a router that
//! refuses; a router restart → mapping back; a manual port; off → mapping gone and none
//! while off; shutdown → mapping gone. The times are printed (`--nocapture`), not asserted.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Server, claim_from, enter, ip, request};

const HEARTH: &str = "10.231.5.2";
const ROUTER_LAN: &str = "10.231.5.1";
const EXTERNAL: &str = "11.231.0.1";
const FRIEND: &str = "11.231.0.2";
const WAN_NET: &str = "11.231.0.";
/// The router's permission rules: the home network may map unprivileged ports.
const ALLOW: [&str; 2] = [
    "allow 1024-65535 10.231.5.0/24 1024-65535",
    "deny 0-65535 0.0.0.0/0 0-65535",
];
const ROOT_DESC: &str = "http://10.231.5.1:5000/rootDesc.xml";

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"))
}

fn run_ok(args: &[&str]) -> Output {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    o
}

/// The host's own interfaces and addresses, to show the test leaves them alone.
fn host_links() -> (Vec<String>, String) {
    let links = String::from_utf8(run_ok(&["ip", "-o", "link", "show"]).stdout).unwrap();
    let mut names: Vec<String> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(|n| n.to_owned()))
        .collect();
    names.sort();
    let addrs = String::from_utf8(run_ok(&["ip", "-o", "addr", "show"]).stdout).unwrap();
    (names, addrs)
}

/// The three namespaces and the router process; dropping this stops the router and removes
/// the namespaces (and the veths inside them), even after a panic.
struct Home {
    hearth: String,
    gw: String,
    wan: String,
    dir: tempfile::TempDir,
    router: Option<Child>,
}

impl Home {
    fn create() -> Home {
        let before = host_links();
        let id = std::process::id();
        let home = Home {
            hearth: format!("hnt{id}h"),
            gw: format!("hnt{id}g"),
            wan: format!("hnt{id}w"),
            dir: tempfile::tempdir().unwrap(),
            router: None,
        };
        for ns in home.all() {
            ip(&["netns", "add", ns]);
        }
        let (h, g, w) = (&home.hearth, &home.gw, &home.wan);
        // Each veth end is created directly inside its namespace: nothing touches the host's.
        ip(&[
            "link", "add", "name", "lan0", "netns", h, "type", "veth", "peer", "name", "lan0",
            "netns", g,
        ]);
        ip(&[
            "link", "add", "name", "wan0", "netns", g, "type", "veth", "peer", "name", "wan0",
            "netns", w,
        ]);
        for (ns, addr, dev) in [
            (h, "10.231.5.2/24", "lan0"),
            (g, "10.231.5.1/24", "lan0"),
            (g, "11.231.0.1/24", "wan0"),
            (w, "11.231.0.2/24", "wan0"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
        }
        for (ns, devs) in [
            (h, &["lo", "lan0"][..]),
            (g, &["lo", "lan0", "wan0"]),
            (w, &["lo", "wan0"]),
        ] {
            for d in devs {
                ip(&["-n", ns, "link", "set", d, "up"]);
            }
        }
        // Home's default route is the router, as at home; the router and the "internet"
        // have none: 11.231.0.0/24 leads nowhere but here.
        ip(&["-n", h, "route", "add", "default", "via", ROUTER_LAN]);
        ip(&[
            "netns",
            "exec",
            g,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
        ]);
        home.check_isolated(&before);
        // The router's firewall and NAT: forward from home, established back, and what
        // miniupnpd adds in its own chains (its nftables backend's table layout).
        let nft = home.dir.path().join("router.nft");
        std::fs::write(
            &nft,
            r#"table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
    jump miniupnpd
  }
  chain miniupnpd { }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname "wan0" masquerade
  }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
"#,
        )
        .unwrap();
        run_ok(&["ip", "netns", "exec", g, "nft", "-f", nft.to_str().unwrap()]);
        home
    }

    fn all(&self) -> [&String; 3] {
        [&self.hearth, &self.gw, &self.wan]
    }

    /// No link of ours in the host's namespace, no address of the borrowed prefix there, and
    /// in ours only loopback and our own veths.
    fn check_isolated(&self, before: &(Vec<String>, String)) {
        let after = host_links();
        assert_eq!(before.0, after.0, "the host's links changed");
        assert!(
            !after.1.contains(WAN_NET),
            "the borrowed prefix is on the host: {}",
            after.1
        );
        for ns in self.all() {
            let links = String::from_utf8(run_ok(&["ip", "-n", ns, "-o", "link"]).stdout).unwrap();
            for l in links.lines() {
                let name = l.split(": ").nth(1).unwrap_or("");
                let name = name.split('@').next().unwrap();
                assert!(
                    matches!(name, "lo" | "lan0" | "wan0"),
                    "{ns} has a link that is not ours: {l}"
                );
                if name != "lo" {
                    // A veth's peer must sit in one of our namespaces, never the host's.
                    assert!(l.contains("link-netns hnt"), "{ns}: {l}");
                }
            }
        }
        for ns in [&self.gw, &self.wan] {
            let routes = String::from_utf8(run_ok(&["ip", "-n", ns, "route"]).stdout).unwrap();
            assert!(
                !routes.contains("default"),
                "{ns} must have no way out: {routes}"
            );
        }
    }

    /// Starts miniupnpd in the router namespace with `rules` as its permission rules.
    fn start_router(&mut self, rules: &[&str]) {
        assert!(self.router.is_none());
        let conf = self.dir.path().join("miniupnpd.conf");
        let mut text = String::from(
            "ext_ifname=wan0\nlistening_ip=lan0\nhttp_port=5000\nenable_upnp=yes\nenable_natpmp=yes\nsecure_mode=yes\nsystem_uptime=no\nnotify_interval=60\nuuid=3a1f0c5e-9d2b-4c8e-a1f0-0c5e9d2b4c8e\nfriendly_name=Test router\n",
        );
        for r in rules {
            text.push_str(r);
            text.push('\n');
        }
        std::fs::write(&conf, text).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("miniupnpd.log"))
            .unwrap();
        let pid = self.dir.path().join("miniupnpd.pid");
        // `ip netns exec` execs the program: the child is miniupnpd itself.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.gw, "miniupnpd", "-d", "-f"])
            .arg(&conf)
            .arg("-P")
            .arg(&pid)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start miniupnpd (scripts/install-deps installs miniupnpd-nftables)");
        self.router = Some(child);
        // Ready when it serves its description (bounded).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let o = run(&[
                "ip",
                "netns",
                "exec",
                &self.hearth,
                "curl",
                "-sf",
                "-m",
                "1",
                ROOT_DESC,
            ]);
            if o.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "miniupnpd did not start:\n{}",
                self.router_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A router reboot: miniupnpd stops and the rules it made are gone with the old boot's
    /// ruleset (miniupnpd would otherwise read them back at start).
    fn reboot_router(&mut self, rules: &[&str]) {
        self.stop_router();
        for chain in ["miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd"] {
            run_ok(&[
                "ip", "netns", "exec", &self.gw, "nft", "flush", "chain", "inet", "filter", chain,
            ]);
        }
        self.start_router(rules);
    }

    /// Stops miniupnpd (SIGTERM).
    fn stop_router(&mut self) {
        if let Some(mut c) = self.router.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn router_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("miniupnpd.log")).unwrap_or_default()
    }

    /// The TCP mappings as `upnpc -l` (a third-party client, from the home network) lists
    /// them: (external port, internal client, internal port, lease).
    fn mappings(&self) -> Vec<(u16, String, u16, u32)> {
        let o = run(&[
            "ip",
            "netns",
            "exec",
            &self.hearth,
            "timeout",
            "10",
            "upnpc",
            "-u",
            ROOT_DESC,
            "-l",
        ]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        // " 0 TCP  8080->10.231.5.2:8080  'Hearth remote access' '' 7200"
        out.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let _index: u32 = f.next()?.parse().ok()?;
                if f.next()? != "TCP" {
                    return None;
                }
                let (ext, int) = f.next()?.split_once("->")?;
                let (client, port) = int.rsplit_once(':')?;
                let lease = l.rsplit_once(' ')?.1.trim().parse().ok()?;
                Some((
                    ext.parse().ok()?,
                    client.to_owned(),
                    port.parse().ok()?,
                    lease,
                ))
            })
            .collect()
    }

    /// Polls `upnpc -l` until `pred` holds (a 30 s guard against hanging, not a target);
    /// returns the time it took.
    fn wait_mappings(
        &self,
        what: &str,
        pred: impl Fn(&[(u16, String, u16, u32)]) -> bool,
    ) -> Duration {
        let t0 = Instant::now();
        loop {
            let m = self.mappings();
            if pred(&m) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{what}: never happened; mappings {m:?}\nrouter log:\n{}",
                self.router_log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        self.stop_router();
        for ns in self.all() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Whether a TCP connection from inside `ns` to `to` is accepted (3 s at most).
fn connects(ns: &str, to: SocketAddr) -> bool {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter(&ns);
        TcpStream::connect_timeout(&to, Duration::from_secs(3)).is_ok()
    })
    .join()
    .unwrap()
}

fn data_dir(home: &Home) -> PathBuf {
    home.dir.path().join("data")
}

/// Polls `GET /api/v1/reach` until `pred` holds (30 s guard).
fn wait_reach(
    ns: &str,
    to: SocketAddr,
    owner: &[(&str, &str)],
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let t0 = Instant::now();
    loop {
        let r = request(ns, to, "GET", "/api/v1/reach", owner, None);
        assert_eq!(r.status, 200, "{r:?}");
        if pred(&r.body) {
            return r.body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{what}: never happened; last {}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn remote_access_maps_a_port_on_a_real_router_and_takes_it_away() {
    let mut home = Home::create();
    home.start_router(&ALLOW);
    let data = data_dir(&home);
    let server = Server::start_with(&home.hearth, &data, |c| {
        // Short lease and checks so renewal and a router restart show within seconds.
        c.reach.upnp = true;
        c.reach.lease_secs = 6;
        c.reach.check_secs = 1;
        c.reach.search_secs = 1;
    });
    let port = server.port;
    let local: SocketAddr = format!("{HEARTH}:{port}").parse().unwrap();
    let h = home.hearth.clone();
    let auth = format!("Bearer {}", claim_from(&h, local, &data));
    let owner = [("Authorization", auth.as_str())];
    let patch_network = |body: Value| {
        let r = request(
            &h,
            local,
            "PATCH",
            "/api/v1/settings/network",
            &owner,
            Some(body),
        );
        assert_eq!(r.status, 200, "{r:?}");
    };
    let ours = |m: &[(u16, String, u16, u32)]| {
        m.iter()
            .filter(|(_, c, p, _)| c == HEARTH && *p == port)
            .cloned()
            .collect::<Vec<_>>()
    };

    // Off (the default): nothing asked of the router, and the page says why.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        home.mappings(),
        vec![],
        "no mapping while remote access is off"
    );
    let r = request(&h, local, "GET", "/api/v1/reach", &owner, None);
    assert_eq!(r.body["mapping"]["phase"], "off", "{r:?}");
    assert_eq!(r.body["public_url"], Value::Null);
    assert!(
        r.body["not_reachable_because"]
            .as_str()
            .unwrap()
            .contains("Remote access is off")
    );

    // On: the router lists the mapping.
    let t0 = Instant::now();
    patch_network(json!({"remote_access": true}));
    let to_mapping = home.wait_mappings("mapping after remote access on", |m| !ours(m).is_empty());
    let switch_to_mapping = t0.elapsed();
    let mapped = ours(&home.mappings());
    assert_eq!(mapped.len(), 1, "{mapped:?}");
    let (ext_port, _, _, lease) = mapped[0].clone();
    assert!(lease <= 6, "lease {lease} > the 6 s asked");
    let view = wait_reach(&h, local, &owner, "mapped state", |v| {
        v["mapping"]["phase"] == "mapped"
    });
    assert_eq!(view["mapping"]["gateway"]["address"], ROUTER_LAN, "{view}");
    assert_eq!(view["mapping"]["gateway"]["name"], "Test router", "{view}");
    assert_eq!(view["mapping"]["external_address"], EXTERNAL, "{view}");
    assert_eq!(view["mapping"]["external_port"], ext_port, "{view}");
    assert_eq!(view["public_port"], ext_port);
    let public_url = format!("http://{EXTERNAL}:{ext_port}");
    assert_eq!(view["public_url"], public_url.as_str(), "{view}");
    // No HTTPS listener in this test: the page says friends would connect in the clear.
    let codes: Vec<&str> = view["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["plain_http"], "{view}");

    // The friend on the internet reaches Hearth through the router's external address, and
    // counts as remote (the rules for remote clients apply).
    let public: SocketAddr = format!("{EXTERNAL}:{ext_port}").parse().unwrap();
    let r = request(&home.wan, public, "GET", "/api/v1/health", &[], None);
    assert_eq!(r.status, 200, "{r:?}");
    let r = request(
        &home.wan,
        public,
        "GET",
        "/api/v1/settings/network",
        &owner,
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["this_client"]["address"], FRIEND);
    assert_eq!(r.body["this_client"]["class"], "remote");

    // An invite made now carries the whole public link; the friend opens it from outside,
    // accepts, and browses as a remote client.
    let invite = |ns: &str, who: &str| {
        let r = request(
            ns,
            local,
            "POST",
            "/api/v1/invites",
            &owner,
            Some(json!({"invitee": who})),
        );
        assert_eq!(r.status, 201, "{r:?}");
        r.body
    };
    let inv = invite(&h, "ben");
    let token = inv["token"].as_str().unwrap();
    assert_eq!(
        inv["url"],
        format!("{public_url}/#/invite/{token}").as_str(),
        "{inv}"
    );
    assert!(
        inv["qr_svg"].as_str().unwrap().starts_with("<?xml"),
        "{inv}"
    );
    assert_eq!(inv["outside_note"], Value::Null);
    let r = request(
        &home.wan,
        public,
        "POST",
        &format!("/api/v1/invites/{token}/accept"),
        &[],
        Some(
            json!({"username": "ben", "password": "friendly giraffe tune",
            "device": {"name": "Phone", "client_id": "ben-phone"}}),
        ),
    );
    assert_eq!(r.status, 201, "the friend accepts from outside: {r:?}");
    let ben = format!("Bearer {}", r.body["token"].as_str().unwrap());
    let r = request(
        &home.wan,
        public,
        "GET",
        "/api/v1/me",
        &[("Authorization", ben.as_str())],
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");

    // The lease is renewed at half-life (3 s of 6): same mapping, renewed later than made.
    let v = wait_reach(&h, local, &owner, "lease renewal", |v| {
        v["mapping"]["renewed_at"].as_u64() > v["mapping"]["mapped_at"].as_u64()
    });
    assert_eq!(v["mapping"]["external_port"], ext_port);
    assert_eq!(ours(&home.mappings()).len(), 1);

    // The reachability check: miniupnpd's rules only take packets from the internet side,
    // so from inside the home the router does not loop back: a plain "cannot confirm".
    let r = request(&h, local, "POST", "/api/v1/reach/check", &owner, None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["verdict"], "unconfirmed", "{r:?}");
    assert!(
        r.body["message"].as_str().unwrap().contains(&public_url),
        "{r:?}"
    );
    // A router with NAT loopback (the owner's router might offer it; here three nft rules):
    // the check's request comes back through the external address.
    let g = home.gw.clone();
    let dnat = format!(
        "iifname \"lan0\" ip daddr {EXTERNAL} tcp dport {ext_port} dnat ip to {HEARTH}:{port}"
    );
    let mut args: Vec<&str> = vec![
        "ip",
        "netns",
        "exec",
        &g,
        "nft",
        "add",
        "rule",
        "inet",
        "filter",
        "prerouting",
    ];
    args.extend(dnat.split(' '));
    run_ok(&args);
    run_ok(&[
        "ip", "netns", "exec", &g, "nft", "insert", "rule", "inet", "filter", "forward", "iifname",
        "lan0", "oifname", "lan0", "accept",
    ]);
    run_ok(&[
        "ip",
        "netns",
        "exec",
        &g,
        "nft",
        "add",
        "rule",
        "inet",
        "filter",
        "postrouting",
        "iifname",
        "lan0",
        "oifname",
        "lan0",
        "masquerade",
    ]);
    let r = request(&h, local, "POST", "/api/v1/reach/check", &owner, None);
    assert_eq!(r.body["verdict"], "reachable", "{r:?}");
    let r = request(&h, local, "GET", "/api/v1/reach", &owner, None);
    assert_eq!(r.body["last_check"]["verdict"], "reachable", "{r:?}");
    // The probe answers only the running check's token.
    let r = request(
        &home.wan,
        public,
        "GET",
        "/api/v1/reach/probe/00112233445566778899aabbccddeeff",
        &[],
        None,
    );
    assert_eq!(r.status, 404, "{r:?}");

    // The router restarts (and forgets its mappings): the mapping comes back by itself.
    home.reboot_router(&ALLOW);
    let t0 = Instant::now();
    home.wait_mappings("mapping after the router restarted", |m| {
        ours(m).iter().any(|x| x.0 == ext_port)
    });
    let restart_to_mapping = t0.elapsed();
    let v = wait_reach(&h, local, &owner, "restored count", |v| {
        v["mapping"]["restored"].as_u64() >= Some(1)
    });
    assert_eq!(v["mapping"]["phase"], "mapped");
    assert_eq!(
        request(&home.wan, public, "GET", "/api/v1/health", &[], None).status,
        200
    );

    // A router that refuses this device: a plain message, no mapping, nothing half-done.
    home.reboot_router(&["deny 0-65535 0.0.0.0/0 0-65535"]);
    let v = wait_reach(&h, local, &owner, "refusal shown", |v| {
        v["mapping"]["phase"] == "failed"
    });
    let codes: Vec<&str> = v["mapping"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["gateway_refused"], "{v}");
    assert!(
        v["mapping"]["error"].as_str().unwrap().contains("refused"),
        "{v}"
    );
    assert_eq!(v["public_url"], Value::Null, "{v}");
    assert_eq!(home.mappings(), vec![]);
    home.reboot_router(&ALLOW);
    home.wait_mappings("mapping once the router allows it", |m| !ours(m).is_empty());

    // Manual port: bad input changes nothing; a good one removes the automatic mapping and
    // the public address uses the forwarded port.
    let put = |body: Value| {
        request(
            &h,
            local,
            "PUT",
            "/api/v1/reach/settings",
            &owner,
            Some(body),
        )
    };
    for bad in [
        json!({"port_mode": "manual"}),
        json!({"port_mode": "manual", "manual_public_port": 0}),
        json!({"public_name": "hearth.local"}),
        json!({"port_mode": "sideways"}),
        json!({"nonsense": 1}),
    ] {
        let r = put(bad.clone());
        assert!(r.status == 422 || r.status == 400, "{bad}: {r:?}");
    }
    let r = request(&h, local, "GET", "/api/v1/reach", &owner, None);
    assert_eq!(r.body["settings"]["port_mode"], "automatic");
    let r = put(json!({"port_mode": "manual", "manual_public_port": 8443}));
    assert_eq!(r.status, 200, "{r:?}");
    home.wait_mappings("automatic mapping removed for a manual port", |m| {
        ours(m).is_empty()
    });
    let v = wait_reach(&h, local, &owner, "manual state", |v| {
        v["mapping"]["phase"] == "manual" && v["mapping"]["external_address"] == EXTERNAL
    });
    assert_eq!(
        v["public_url"],
        format!("http://{EXTERNAL}:8443").as_str(),
        "{v}"
    );
    let r = put(json!({"port_mode": "automatic"}));
    assert_eq!(r.status, 200, "{r:?}");
    home.wait_mappings("automatic mapping again", |m| !ours(m).is_empty());

    // Off: the mapping goes at once, the friend is turned away at the router, and no mapping
    // appears while off (several check periods).
    let ext_now = ours(&home.mappings())[0].0;
    let t0 = Instant::now();
    patch_network(json!({"remote_access": false}));
    let to_removal = home.wait_mappings("mapping removed after off", |m| ours(m).is_empty());
    let switch_to_removal = t0.elapsed();
    let public_now: SocketAddr = format!("{EXTERNAL}:{ext_now}").parse().unwrap();
    assert!(
        !connects(&home.wan, public_now),
        "the router still forwards"
    );
    for _ in 0..12 {
        assert_eq!(home.mappings(), vec![], "a mapping appeared while off");
        std::thread::sleep(Duration::from_millis(250));
    }

    // An invite made while off says plainly that it only works at home.
    let inv = invite(&h, "cleo");
    assert_eq!(inv["url"], Value::Null, "{inv}");
    let note = inv["outside_note"].as_str().unwrap();
    assert!(note.contains("only works on your home network"), "{note}");
    assert!(note.contains("Remote access is off"), "{note}");

    // Shutdown takes the mapping away too.
    patch_network(json!({"remote_access": true}));
    home.wait_mappings("mapping before shutdown", |m| !ours(m).is_empty());
    drop(server);
    assert_eq!(home.mappings(), vec![], "the mapping outlived the server");

    println!(
        "reach figures: remote access on -> mapping listed by upnpc: {:.0} ms (from the PATCH: {:.0} ms); off -> mapping gone: {:.0} ms (from the PATCH: {:.0} ms); router back after a reboot -> mapping back: {:.0} ms",
        to_mapping.as_secs_f64() * 1000.0,
        switch_to_mapping.as_secs_f64() * 1000.0,
        to_removal.as_secs_f64() * 1000.0,
        switch_to_removal.as_secs_f64() * 1000.0,
        restart_to_mapping.as_secs_f64() * 1000.0,
    );
    drop(home);
}
