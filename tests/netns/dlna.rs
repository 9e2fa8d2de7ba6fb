//! DLNA and mDNS across a veth pair, with clients nobody here wrote: `upnp-client` (PyPI
//! async-upnp-client) discovers the server over SSDP multicast and browses it, curl fetches
//! an item's bytes with a range request, `dig` asks the mDNS group for `hearth.local`, and
//! python-zeroconf browses `_hearth._tcp`. Also: SSDP is not answered from outside the
//! LAN, a bounded M-SEARCH flood leaves the server responsive, and a new address is
//! announced. The Python tools live in a venv made by `tests/netns/upnp-venv`
//! (`HEARTH_UPNP_VENV`), which `tests/netns/run` prepares.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    LAN_CLIENT, REMOTE_CLIENT, SERVER_LAN, Server, Topology, claim_from, enter, ip, request,
};

fn venv() -> PathBuf {
    let v = std::env::var("HEARTH_UPNP_VENV").unwrap_or_else(|_| {
        panic!("HEARTH_UPNP_VENV is not set: run the netns tier with tests/netns/run, which makes the venv with tests/netns/upnp-venv")
    });
    PathBuf::from(v)
}

/// Runs a program inside namespace `ns`, bounded by `timeout`.
fn run_in(ns: &str, secs: u32, args: &[&str]) -> Output {
    let secs = secs.to_string();
    let mut all = vec!["netns", "exec", ns, "timeout", secs.as_str()];
    all.extend_from_slice(args);
    Command::new("ip")
        .args(&all)
        .output()
        .expect("run ip netns exec")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The objects of a DIDL-Lite document: (id, title, res URL).
fn didl(doc: &str) -> Vec<(String, String, Option<String>)> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(doc);
    let mut out: Vec<(String, String, Option<String>)> = Vec::new();
    let mut field = String::new();
    loop {
        match r.read_event().expect("DIDL-Lite parses") {
            Event::Start(e) if matches!(e.local_name().as_ref(), b"container" | b"item") => {
                let id = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == b"id")
                    .map(|a| a.unescape_value().unwrap().into_owned())
                    .unwrap();
                out.push((id, String::new(), None));
            }
            Event::Start(e) => field = String::from_utf8_lossy(e.name().as_ref()).into_owned(),
            Event::Text(t) => {
                let t = t.unescape().unwrap().into_owned();
                if let Some(o) = out.last_mut() {
                    match field.as_str() {
                        "dc:title" => o.1 = t,
                        "res" => o.2 = Some(t),
                        _ => {}
                    }
                }
            }
            Event::End(_) => field.clear(),
            Event::Eof => return out,
            _ => {}
        }
    }
}

/// `upnp-client call-action` Browse of `id`; returns the DIDL-Lite objects and TotalMatches.
fn upnp_browse(ns: &str, location: &str, id: &str) -> (Vec<(String, String, Option<String>)>, u64) {
    let client = venv().join("bin/upnp-client");
    let object = format!("ObjectID={id}");
    let o = run_in(
        ns,
        60,
        &[
            client.to_str().unwrap(),
            "--timeout",
            "20",
            "call-action",
            location,
            "ContentDirectory/Browse",
            &object,
            "BrowseFlag=BrowseDirectChildren",
            "Filter=*",
            "StartingIndex=0",
            "RequestedCount=0",
            "SortCriteria=",
        ],
    );
    assert!(o.status.success(), "upnp-client call-action: {}", text(&o));
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let out = &v["out_parameters"];
    let result = out["Result"]
        .as_str()
        .unwrap_or_else(|| panic!("no Result: {v}"));
    (
        didl(result),
        out["TotalMatches"].as_u64().unwrap_or_default(),
    )
}

const MSEARCH: &[u8] = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n";

/// Sends one M-SEARCH from namespace `ns` (bound to `from`) to `to` and collects the answers
/// that arrive within `wait`.
fn msearch(ns: &str, from: &str, to: &str, wait: Duration) -> Vec<String> {
    let (ns, from, to) = (ns.to_owned(), from.to_owned(), to.to_owned());
    std::thread::spawn(move || {
        enter(&ns);
        let s = UdpSocket::bind(format!("{from}:0")).unwrap();
        s.send_to(MSEARCH, format!("{to}:1900")).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 2048];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match s.recv_from(&mut buf) {
                Ok((n, _)) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => break,
            }
        }
        out
    })
    .join()
    .unwrap()
}

/// `dig` asking port 5353 of `server` for `name` (an mDNS "legacy unicast" query, RFC 6762
/// §6.7), from `from` inside `ns`; the addresses it got. dig 9.18 drops answers to a query
/// sent to the group itself (they come from the responder's address), so multicast
/// resolution is checked with python-zeroconf instead (`RESOLVE`).
fn dig(ns: &str, from: &str, server: &str, name: &str) -> Vec<String> {
    let at = format!("@{server}");
    let o = run_in(
        ns,
        20,
        &[
            "dig", "-b", from, &at, "-p", "5353", name, "A", "+short", "+time=2", "+tries=2",
        ],
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(str::to_owned)
        .collect()
}

/// Resolves a `.local` name by multicast with python-zeroconf bound to argv[1].
const RESOLVE: &str = r#"
import json, sys
from zeroconf import AddressResolverIPv4, Zeroconf
zc = Zeroconf(interfaces=[sys.argv[1]])
r = AddressResolverIPv4(sys.argv[2])
ok = r.request(zc, 5000)
print(json.dumps({"resolved": ok, "addresses": r.parsed_addresses()}))
zc.close()
"#;

fn resolve(ns: &str, from: &str, name: &str) -> Value {
    let py = venv().join("bin/python");
    let o = run_in(ns, 30, &[py.to_str().unwrap(), "-c", RESOLVE, from, name]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

const ZEROCONF: &str = r#"
import json, sys, time
from zeroconf import ServiceBrowser, Zeroconf
zc = Zeroconf(interfaces=[sys.argv[1]])
found = []
class Listener:
    def add_service(self, zc, type_, name): found.append(name)
    def update_service(self, zc, type_, name): pass
    def remove_service(self, zc, type_, name): pass
browser = ServiceBrowser(zc, "_hearth._tcp.local.", Listener())
deadline = time.time() + 15
while not found and time.time() < deadline:
    time.sleep(0.1)
if not found:
    print(json.dumps({"error": "no _hearth._tcp service found"}))
    sys.exit(1)
info = zc.get_service_info("_hearth._tcp.local.", found[0], timeout=5000)
print(json.dumps({
    "name": found[0],
    "server": info.server,
    "port": info.port,
    "addresses": info.parsed_addresses(),
    "txt": {k.decode(): (v or b"").decode() for k, v in info.properties.items()},
}))
zc.close()
"#;

#[test]
fn dlna_and_mdns_across_namespaces() {
    let topo = Topology::create();
    let (lan, remote) = (topo.lan.as_str(), topo.remote.as_str());
    // Multicast leaves the clients' namespaces through their veth (they have no default route).
    ip(&["-n", lan, "route", "add", "224.0.0.0/4", "dev", "v0"]);
    ip(&["-n", remote, "route", "add", "224.0.0.0/4", "dev", "v2"]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_with(&topo.server, &data, |c| {
        c.discovery.mdns = true;
        c.discovery.ssdp = true;
    });
    let v4: SocketAddr = format!("{SERVER_LAN}:{}", server.port).parse().unwrap();
    let auth = format!("Bearer {}", claim_from(lan, v4, &data));
    let owner = [("Authorization", auth.as_str())];

    // mDNS first (it needs no library): a multicast question from the other namespace...
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = resolve(lan, LAN_CLIENT, "hearth.local.");
        if got["resolved"] == true || Instant::now() > deadline {
            break got;
        }
    };
    assert_eq!(
        got["addresses"],
        json!([SERVER_LAN]),
        "zeroconf hearth.local: {got}"
    );
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let label = host.split('.').next().unwrap().to_ascii_lowercase();
    if label != "hearth"
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        let got = resolve(lan, LAN_CLIENT, &format!("{label}.local."));
        assert_eq!(
            got["addresses"],
            json!([SERVER_LAN]),
            "zeroconf {label}.local: {got}"
        );
        assert_eq!(
            dig(lan, LAN_CLIENT, SERVER_LAN, &format!("{label}.local")),
            [SERVER_LAN]
        );
    }
    // ...and plain DNS (dig) to port 5353, answered unicast with a short TTL.
    assert_eq!(
        dig(lan, LAN_CLIENT, SERVER_LAN, "hearth.local"),
        [SERVER_LAN]
    );
    assert!(dig(lan, LAN_CLIENT, SERVER_LAN, "someone-else.local").is_empty());
    // DNS-SD with python-zeroconf: the service, its address and TXT.
    let py = venv().join("bin/python");
    let o = run_in(lan, 60, &[py.to_str().unwrap(), "-c", ZEROCONF, LAN_CLIENT]);
    assert!(o.status.success(), "zeroconf: {}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "Den._hearth._tcp.local.", "{v}");
    assert_eq!(v["server"], "hearth.local.", "{v}");
    assert_eq!(v["port"], server.port, "{v}");
    assert_eq!(v["addresses"], json!([SERVER_LAN]), "{v}");
    assert_eq!(v["txt"]["claimed"], "true", "{v}");
    assert_eq!(v["txt"]["version"], env!("CARGO_PKG_VERSION"), "{v}");
    // The remote client is not a neighbour: its questions are not answered.
    assert!(dig(remote, REMOTE_CLIENT, SERVER_LAN, "hearth.local").is_empty());

    // Nothing announced over SSDP until the owner chooses libraries for DLNA.
    assert!(msearch(lan, LAN_CLIENT, SERVER_LAN, Duration::from_secs(2)).is_empty());
    let movies = super::media::test_media()
        .join("Movies")
        .canonicalize()
        .unwrap();
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
    let r = request(
        lan,
        v4,
        "PUT",
        "/api/v1/dlna",
        &owner,
        Some(json!({"libraries": [lib]})),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["active"], true);

    // A real control point finds the media server by multicast M-SEARCH.
    let location = format!("http://{SERVER_LAN}:{}/dlna/device.xml", server.port);
    let client = venv().join("bin/upnp-client");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = run_in(
            lan,
            30,
            &[
                client.to_str().unwrap(),
                "--timeout",
                "5",
                "search",
                "--bind",
                LAN_CLIENT,
                "--search_target",
                "urn:schemas-upnp-org:device:MediaServer:1",
            ],
        );
        let out = String::from_utf8_lossy(&o.stdout);
        if out.contains(&location) {
            assert!(
                out.contains("urn:schemas-upnp-org:device:MediaServer:1"),
                "{out}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upnp-client never found the server: {}",
            text(&o)
        );
    }

    // It browses the tree and gets an item's link; curl fetches a range of it.
    let (root, total) = upnp_browse(lan, &location, "0");
    assert_eq!(total, 1);
    assert_eq!(root[0].1, "Films");
    let (items, total) = upnp_browse(lan, &location, &root[0].0);
    assert!(total >= 8, "{total}");
    let meadow = items
        .iter()
        .find(|i| i.1 == "Sunny Meadow")
        .expect("Sunny Meadow");
    let url = meadow.2.clone().expect("a res URL");
    assert!(
        url.starts_with(&format!("http://{SERVER_LAN}:{}/dlna/media/", server.port)),
        "{url}"
    );
    let o = run_in(
        lan,
        30,
        &[
            "curl",
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-r",
            "0-99",
            &url,
        ],
    );
    let head = String::from_utf8_lossy(&o.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 206"), "{}", text(&o));
    assert!(head.contains("content-range: bytes 0-99/"), "{head}");
    assert!(head.contains("contentfeatures.dlna.org: "), "{head}");

    // Remote clients never reach DLNA: not over HTTP even with remote access on...
    let r = request(
        lan,
        v4,
        "PATCH",
        "/api/v1/settings/network",
        &owner,
        Some(json!({"remote_access": true})),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        request(remote, v4, "GET", "/api/v1/health", &[], None).status,
        200
    );
    for path in [
        "/dlna/device.xml",
        "/dlna/ContentDirectory.xml",
        url.split_once(&format!("{}", server.port)).unwrap().1,
    ] {
        let r = request(remote, v4, "GET", path, &[], None);
        assert_eq!(r.status, 403, "{path}: {r:?}");
    }
    // ...nor over SSDP: a unicast M-SEARCH routed in from outside gets no answer, while the
    // same from the LAN does.
    assert!(msearch(remote, REMOTE_CLIENT, SERVER_LAN, Duration::from_secs(2)).is_empty());
    let answers = msearch(lan, LAN_CLIENT, SERVER_LAN, Duration::from_secs(2));
    assert_eq!(answers.len(), 5, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| a.contains(&format!("LOCATION: {location}"))),
        "{answers:?}"
    );

    // A bounded M-SEARCH flood from the LAN: answers stay rate-limited, the server stays up.
    const FLOOD: usize = 20_000;
    let lan_ns = lan.to_owned();
    let (sent, answered) = std::thread::spawn(move || {
        enter(&lan_ns);
        let s = UdpSocket::bind(format!("{LAN_CLIENT}:0")).unwrap();
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        let (mut sent, mut answered) = (0usize, 0usize);
        for _ in 0..FLOOD {
            if s.send_to(MSEARCH, "239.255.255.250:1900").is_ok() {
                sent += 1;
            }
            while s.recv_from(&mut buf).is_ok() {
                answered += 1;
            }
        }
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        while s.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
        (sent, answered)
    })
    .join()
    .unwrap();
    println!("SSDP flood: {sent} M-SEARCH sent, {answered} answer datagrams received");
    assert!(sent > FLOOD / 2, "the flood did not go out: {sent}");
    assert!(
        answered < sent / 10,
        "answers are not rate-limited: {answered} for {sent}"
    );
    assert_eq!(
        request(lan, v4, "GET", "/api/v1/health", &[], None).status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while msearch(lan, LAN_CLIENT, SERVER_LAN, Duration::from_secs(1)).len() != 5 {
        assert!(
            Instant::now() < deadline,
            "SSDP never answered again after the flood"
        );
    }
    let (root, _) = upnp_browse(lan, &location, "0");
    assert_eq!(root.len(), 1);

    // A new address on the LAN interface is followed: mDNS answers with it to its neighbours.
    ip(&[
        "-n",
        &topo.server,
        "addr",
        "add",
        "10.231.5.1/24",
        "dev",
        "v0",
    ]);
    ip(&["-n", lan, "addr", "add", "10.231.5.2/24", "dev", "v0"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = dig(lan, "10.231.5.2", "10.231.5.1", "hearth.local");
        if got == ["10.231.5.1"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new address was never answered: {got:?}"
        );
    }

    drop(server);
    drop(topo);
}
