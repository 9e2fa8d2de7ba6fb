//! Network rules and secure connections against the real server: real HTTP, real TLS
//! handshakes with a rustls client, the certificate parsed with x509-parser.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::{agent, get, send};
use hearth::Config;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

// ---------------------------------------------------------------------------------------
// A server with both listeners.

struct Server {
    http: SocketAddr,
    https: SocketAddr,
    data: std::path::PathBuf,
    _tmp: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        Self::start_with(|_| {})
    }

    fn start_with(tweak: impl FnOnce(&mut Config)) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut config = Config::load(None, Vec::new()).unwrap();
        config.data_dir = data.clone();
        tweak(&mut config);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let https = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx
                    .send((http.local_addr().unwrap(), https.local_addr().unwrap()))
                    .unwrap();
                let listeners = hearth::Listeners {
                    http: vec![http],
                    https: vec![https],
                };
                hearth::serve(config, listeners, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            })
        });
        let (http, https) = addr_rx.recv().unwrap();
        // Readiness: the first answer comes once start-up (certificates included) is done.
        assert_eq!(
            get(&format!("http://{http}/api/v1/health"), None).status,
            200
        );
        Server {
            http,
            https,
            data,
            _tmp: tmp,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data.join("tls/ca.pem")).unwrap()
    }

    fn claim(&self) -> String {
        let code = hearth::identity::setup_code::read(&self.data)
            .unwrap()
            .unwrap();
        let r = send(
            "POST",
            &self.url("/api/v1/setup/claim"),
            None,
            &json!({
                "setup_code": code,
                "server_name": "Den",
                "owner": {"username": "anna", "password": "correct horse battery"},
                "device": {"name": "Test", "platform": "web", "client_id": "t1"},
            }),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["token"].as_str().unwrap().to_owned()
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

// ---------------------------------------------------------------------------------------
// A small blocking HTTPS client on rustls: one TLS connection, several requests.

fn client_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    // Every connection does a full handshake, so it sees the certificate served now.
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

struct Tls {
    s: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Tls {
    fn connect(
        addr: SocketAddr,
        name: &str,
        cfg: Arc<rustls::ClientConfig>,
    ) -> Result<Tls, String> {
        let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let server_name = ServerName::try_from(name.to_owned()).unwrap();
        let conn = rustls::ClientConnection::new(cfg, server_name).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).map_err(|e| e.to_string())?;
        }
        Ok(Tls { s, buf: Vec::new() })
    }

    fn leaf(&self) -> Vec<u8> {
        self.s.conn.peer_certificates().unwrap()[0].to_vec()
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or(""));
        self.s.write_all(req.as_bytes()).unwrap();
        self.s.flush().unwrap();
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            self.fill();
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).unwrap();
        self.buf.drain(..head_end + 4);
        let status = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while self.buf.len() < len {
            self.fill();
        }
        let body = String::from_utf8(self.buf.drain(..len).collect()).unwrap();
        Answer { status, head, body }
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed mid-answer");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn ca_from_pem(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

// ---------------------------------------------------------------------------------------

#[test]
fn https_serves_a_leaf_that_chains_to_the_name_constrained_device_ca() {
    let s = Server::start();
    let ca_pem = s.ca_pem();

    // The CA is offered to clients on the device/LAN, and it is the one on disk.
    let r = get(&s.url("/api/v1/tls/ca.pem"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-pem-file"));
    assert_eq!(r.body, ca_pem);
    for key in ["ca.key", "leaf.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data.join("tls").join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }

    let tls13 = client_config(&ca_pem, &[&rustls::version::TLS13]);
    let tls12 = client_config(&ca_pem, &[&rustls::version::TLS12]);
    for (name, cfg) in [
        ("localhost", &tls13),
        ("127.0.0.1", &tls13),
        ("localhost", &tls12),
    ] {
        let mut c =
            Tls::connect(s.https, name, cfg.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let suite = format!("{:?}", c.s.conn.negotiated_cipher_suite().unwrap().suite());
        assert!(
            suite.starts_with("TLS13_")
                || (suite.starts_with("TLS_ECDHE_")
                    && (suite.contains("GCM") || suite.contains("CHACHA20"))),
            "{suite}"
        );
        let a = c.request("GET", "/api/v1/health", &[], None);
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["status"], "ok");
        // Preferred (the default): HTTPS is offered, not forced, so no HSTS.
        assert_eq!(a.header("strict-transport-security"), None);
    }

    // A client that does not trust the device CA refuses the certificate: the check is real.
    let stranger = {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["stranger".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    };
    let e = Tls::connect(
        s.https,
        "localhost",
        client_config(&stranger, &[&rustls::version::TLS13]),
    )
    .err()
    .unwrap();
    assert!(
        e.contains("UnknownIssuer") || e.contains("invalid peer certificate"),
        "{e}"
    );

    // The leaf: names and addresses, and signed by the CA.
    let c = Tls::connect(s.https, "localhost", tls13.clone()).unwrap();
    let leaf_der = c.leaf();
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    let ca_der = ca_from_pem(&ca_pem);
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    leaf.verify_signature(Some(ca.public_key())).unwrap();
    assert_eq!(leaf.issuer(), ca.subject());
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for n in &san.value.general_names {
        match n {
            x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_string()),
            x509_parser::extensions::GeneralName::IPAddress(b) => ips.push(b.to_vec()),
            _ => {}
        }
    }
    let host = hearth::net::tls::DeviceNames::detect().hostname;
    let label = host.split('.').next().unwrap().to_owned();
    assert!(dns.contains(&host), "{dns:?}");
    assert!(dns.contains(&format!("{label}.local")), "{dns:?}");
    assert!(dns.contains(&"localhost".to_owned()), "{dns:?}");
    assert!(ips.contains(&vec![127, 0, 0, 1]), "{ips:?}");
    assert!(!leaf.is_ca());
    // The leaf points at the device's CRL, which the device serves (signed by the CA).
    let info =
        hearth::net::tls::cert_info(&leaf_der, hearth::net::tls::CertSource::Device).unwrap();
    assert_eq!(
        info.crl_urls,
        [format!(
            "http://{label}.local:{}/api/v1/tls/crl",
            s.http.port()
        )]
    );
    let crl = agent().get(&s.url("/api/v1/tls/crl")).call().unwrap();
    assert_eq!(crl.status().as_u16(), 200);
    assert_eq!(
        crl.headers().get("content-type").unwrap(),
        "application/pkix-crl"
    );
    let crl_der = crl.into_body().read_to_vec().unwrap();
    let (_, crl) = <x509_parser::revocation_list::CertificateRevocationList as x509_parser::prelude::FromDer<_>>::from_der(&crl_der).unwrap();
    assert_eq!(crl.issuer(), ca.subject());
    let eku = leaf.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.server_auth);

    // The CA: a CA, with critical name constraints naming only this device.
    assert!(ca.is_ca());
    let nc_ext = ca
        .extensions()
        .iter()
        .find(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_NAME_CONSTRAINTS)
        .expect("the CA has a name constraints extension");
    assert!(nc_ext.critical, "name constraints must be critical");
    let nc = ca.name_constraints().unwrap().unwrap();
    let permitted = nc.value.permitted_subtrees.as_ref().unwrap();
    let mut permitted_dns = Vec::new();
    let mut permitted_ip = Vec::new();
    for sub in permitted {
        match &sub.base {
            x509_parser::extensions::GeneralName::DNSName(d) => permitted_dns.push(d.to_string()),
            x509_parser::extensions::GeneralName::IPAddress(b) => permitted_ip.push(b.to_vec()),
            other => panic!("unexpected permitted subtree {other:?}"),
        }
    }
    permitted_dns.sort();
    let mut want = vec![
        host.clone(),
        format!("{label}.local"),
        "localhost".to_owned(),
    ];
    want.sort();
    want.dedup();
    assert_eq!(permitted_dns, want);
    assert!(
        permitted_ip.contains(&vec![127, 0, 0, 0, 255, 0, 0, 0]),
        "{permitted_ip:?}"
    );
    // Nothing as broad as "any address".
    assert!(
        permitted_ip
            .iter()
            .all(|b| b[b.len() / 2..].iter().any(|m| *m != 0)),
        "{permitted_ip:?}"
    );
}

#[test]
fn network_rules_apply_on_the_next_request_and_protect_the_owner() {
    let s = Server::start();
    let token = s.claim();
    let net = s.url("/api/v1/settings/network");

    // Read: defaults, this client's classification, the detected networks.
    let r = get(&net, Some(&token));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["remote_access"], false);
    assert_eq!(v["secure_connections"], "preferred");
    assert_eq!(v["allowed_without_auth"]["profile"], "guest");
    assert_eq!(v["this_client"]["class"], "local");
    assert_eq!(v["https_port"], s.https.port());
    assert!(
        v["detected_lan_networks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "fe80::/10")
    );

    // Not the owner: refused.
    assert_eq!(get(&net, None).status, 401);

    // A bad network is named, and nothing changes.
    let r = send(
        "PATCH",
        &net,
        Some(&token),
        &json!({"lan_networks": ["10.0.0.0/8", "10.1.0.0/33"], "remote_access": true}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10.1.0.0/33"),
        "{}",
        r.body
    );
    assert_eq!(get(&net, Some(&token)).json()["remote_access"], false);

    // A spoofed X-Forwarded-For from an untrusted peer changes nothing.
    let spoof = |xff: &str| {
        agent()
            .get(&s.url("/api/v1/health"))
            .header("X-Forwarded-For", xff)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(spoof("198.51.100.7"), 200);

    // Trusting the loopback as a proxy: its header now counts, from the very next request.
    let r = send(
        "PATCH",
        &net,
        Some(&token),
        &json!({"trusted_proxies": ["127.0.0.1"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let refused = agent()
        .get(&s.url("/api/v1/health"))
        .header("X-Forwarded-For", "198.51.100.7")
        .call()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let body: serde_json::Value =
        serde_json::from_str(&refused.into_body().read_to_string().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "remote_access_off");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Remote access is turned off")
    );
    assert_eq!(spoof("127.0.0.9"), 200);
    // The CA is not handed to remote clients either (once they are let in).
    let r = send("PATCH", &net, Some(&token), &json!({"remote_access": true}));
    assert_eq!(r.status, 200, "{}", r.body);
    let ca = agent()
        .get(&s.url("/api/v1/tls/ca.pem"))
        .header("X-Forwarded-For", "198.51.100.7")
        .call()
        .unwrap();
    assert_eq!(ca.status().as_u16(), 403);
    assert_eq!(spoof("198.51.100.7"), 200);

    // Blocking my own address: refused with an explanation unless confirmed.
    let r = send(
        "PATCH",
        &net,
        Some(&token),
        &json!({"ip_deny": ["127.0.0.0/8"]}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.error_code(), "would_lock_you_out");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("confirm")
    );
    let r = send(
        "PATCH",
        &net,
        Some(&token),
        &json!({"ip_deny": ["198.51.100.0/24"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(spoof("198.51.100.7"), 403);
    assert_eq!(spoof("203.0.113.1"), 200);

    // Requiring HTTPS from a plain-HTTP session is refused; over HTTPS it is accepted.
    let r = send(
        "PATCH",
        &net,
        Some(&token),
        &json!({"secure_connections": "required"}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let cfg = client_config(&s.ca_pem(), &[&rustls::version::TLS13]);
    let mut c = Tls::connect(s.https, "localhost", cfg.clone()).unwrap();
    let a = c.request(
        "PATCH",
        "/api/v1/settings/network",
        &[("Authorization", &bearer(&token))],
        Some(r#"{"secure_connections": "required", "ip_deny": [], "trusted_proxies": []}"#),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.header("strict-transport-security").as_deref(),
        Some("max-age=31536000")
    );

    // Now plain HTTP: browsers are sent to HTTPS, API calls refused, health still answers.
    let page = agent()
        .get(&s.url("/some/page?x=1"))
        .header("Accept", "text/html,application/xhtml+xml")
        .config()
        .max_redirects(0)
        .build()
        .call()
        .unwrap();
    assert_eq!(page.status().as_u16(), 308);
    assert_eq!(
        page.headers().get("location").unwrap().to_str().unwrap(),
        format!("https://127.0.0.1:{}/some/page?x=1", s.https.port())
    );
    let api = get(&net, Some(&token));
    assert_eq!(api.status, 403);
    assert_eq!(api.error_code(), "secure_connection_required");
    assert_eq!(get(&s.url("/api/v1/health"), None).status, 200);

    // The TLS status, matching what the handshake showed.
    let a = c.request(
        "GET",
        "/api/v1/tls",
        &[("Authorization", &bearer(&token))],
        None,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let info = a.json();
    assert_eq!(info["available"], true);
    assert_eq!(info["active"]["source"], "device");
    let fp: String = {
        let d = ring::digest::digest(&ring::digest::SHA256, &c.leaf());
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    assert_eq!(info["active"]["fingerprint_sha256"], fp);
    assert!(
        info["active"]["dns_names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "localhost")
    );

    // Turning HTTPS off from an HTTPS session: refused unless confirmed; then handshakes stop.
    let a = c.request(
        "PATCH",
        "/api/v1/settings/network",
        &[("Authorization", &bearer(&token))],
        Some(r#"{"secure_connections": "disabled"}"#),
    );
    assert_eq!(a.status, 409, "{}", a.body);
    let a = c.request(
        "PATCH",
        "/api/v1/settings/network",
        &[("Authorization", &bearer(&token))],
        Some(r#"{"secure_connections": "disabled", "confirm": true}"#),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(Tls::connect(s.https, "localhost", cfg).is_err());
    assert_eq!(get(&net, Some(&token)).status, 200);

    // Every change is in the audit log.
    let audit = get(&s.url("/api/v1/audit"), Some(&token));
    assert_eq!(audit.status, 200, "{}", audit.body);
    let n = audit.body.matches("network_settings_changed").count();
    assert_eq!(n, 5, "{}", audit.body);
}

// ---------------------------------------------------------------------------------------
// Certificates at the domain level with the real accept loop.

fn custom_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    (p.self_signed(&key).unwrap(), key)
}

fn custom_leaf(
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
    expired: bool,
) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "my own cert");
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    } else {
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2090, 1, 1);
    }
    (p.signed_by(&key, ca, ca_key).unwrap(), key)
}

/// Runs the real accept loop with the manager's resolver on 127.0.0.1:0.
fn serve_tls(
    m: &Arc<hearth::net::tls::TlsManager>,
) -> (
    SocketAddr,
    tokio::sync::watch::Sender<bool>,
    std::thread::JoinHandle<()>,
) {
    let config = hearth::net::tls::server_config(m.resolver()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
            let limits = hearth::net::listener::ConnLimits {
                max_connections: 16,
                header_timeout: Duration::from_secs(10),
                max_header_bytes: 16 * 1024,
                handshake_timeout: Duration::from_secs(10),
                max_connections_per_client: 16,
            };
            hearth::net::listener::run(
                l,
                hearth::net::listener::Tls::new(config, None),
                router,
                limits,
                hearth::net::listener::ClientSlots::default(),
                stop_rx,
                Duration::from_secs(2),
            )
            .await;
        })
    });
    (addr_rx.recv().unwrap(), stop_tx, thread)
}

fn names(addrs: &[(&str, u8)]) -> hearth::net::tls::DeviceNames {
    hearth::net::tls::DeviceNames::new(
        "swaptest",
        addrs
            .iter()
            .map(|(a, p)| hearth::net::client::InterfaceAddr {
                addr: a.parse().unwrap(),
                prefix: *p,
            })
            .collect(),
    )
}

/// The owner's proof, made the only way there is: policy admitting a signed-in owner.
fn owner() -> hearth::policy::OwnerProof {
    use hearth::policy::{Account, Context, DeviceStatus, Presented, admit, require_owner};
    let account = Account {
        user_id: 1,
        role: hearth::policy::Role::Owner,
        has_pin: false,
        restrictions: Default::default(),
        suspended: false,
    };
    let ctx = Context {
        now: hearth::policy::restrictions::LocalTime::from_unix(0, 0),
        home_mode: false,
        network: hearth::net::NetClass::Lan,
        guest_enabled: false,
    };
    let actor = admit(
        Presented::Device {
            status: DeviceStatus::Active,
            account,
        },
        &ctx,
    )
    .unwrap();
    require_owner(&actor).unwrap()
}

fn now() -> i64 {
    hearth::now_secs() as i64
}

#[test]
fn a_new_certificate_reaches_new_connections_while_open_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    let m = Arc::new(
        hearth::net::tls::TlsManager::open(&tls_dir, &names(&[("10.231.9.1", 24)]), now()).unwrap(),
    );
    let (addr, stop, thread) = serve_tls(&m);
    let cfg = client_config(
        &m.ca_pem(),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );

    let mut before = Tls::connect(addr, "localhost", cfg.clone()).unwrap();
    assert_eq!(before.request("GET", "/", &[], None).body, "hello");
    let old_leaf = before.leaf();

    // The device got a new address: a new leaf is issued and swapped in.
    assert!(
        m.refresh(&names(&[("10.231.9.1", 24), ("10.231.9.2", 24)]), now())
            .unwrap()
    );
    let new_fp = m.active().fingerprint_sha256;

    // The connection opened before the swap still works, on its old certificate.
    assert_eq!(before.request("GET", "/", &[], None).body, "hello");
    assert_eq!(before.leaf(), old_leaf);

    // A new connection sees the new certificate, which names the new address and still
    // chains to the same CA.
    let mut after = Tls::connect(addr, "10.231.9.2", cfg.clone()).unwrap();
    assert_eq!(after.request("GET", "/", &[], None).body, "hello");
    let new_leaf = after.leaf();
    assert_ne!(new_leaf, old_leaf);
    let info =
        hearth::net::tls::cert_info(&new_leaf, hearth::net::tls::CertSource::Device).unwrap();
    assert_eq!(info.fingerprint_sha256, new_fp);
    assert!(info.ip_addresses.contains(&"10.231.9.2".to_owned()));

    // An owner's certificate replaces it for new connections; a mismatched key changes nothing.
    let (ca, ca_key) = custom_ca("Household Root");
    let (leaf, leaf_key) = custom_leaf(&ca, &ca_key, false);
    let (_, other_key) = custom_leaf(&ca, &ca_key, false);
    let chain = format!("{}{}", leaf.pem(), ca.pem());
    let e = m
        .set_custom(&owner(), &chain, &other_key.serialize_pem(), now())
        .unwrap_err();
    assert!(e.to_string().contains("does not belong"), "{e}");
    assert_eq!(m.active().fingerprint_sha256, new_fp);
    assert!(!tls_dir.join("custom.pem").exists());
    assert_eq!(
        Tls::connect(addr, "localhost", cfg.clone()).unwrap().leaf(),
        new_leaf
    );

    let info = m
        .set_custom(&owner(), &chain, &leaf_key.serialize_pem(), now())
        .unwrap();
    assert_eq!(info.source, hearth::net::tls::CertSource::Custom);
    let custom_cfg = client_config(&ca.pem(), &[&rustls::version::TLS13]);
    let mut c = Tls::connect(addr, "localhost", custom_cfg.clone()).unwrap();
    assert_eq!(c.request("GET", "/", &[], None).body, "hello");
    assert_eq!(c.leaf(), leaf.der().to_vec());
    // The old connection still works.
    assert_eq!(after.request("GET", "/", &[], None).body, "hello");

    // It survives a restart of the manager, and removing it brings the device leaf back.
    drop(c);
    let reopened = hearth::net::tls::TlsManager::open(
        &tls_dir,
        &names(&[("10.231.9.1", 24), ("10.231.9.2", 24)]),
        now(),
    )
    .unwrap();
    assert_eq!(
        reopened.active().source,
        hearth::net::tls::CertSource::Custom
    );
    drop(reopened);
    m.remove_custom(&owner()).unwrap();
    assert_eq!(
        Tls::connect(addr, "localhost", cfg).unwrap().leaf(),
        new_leaf
    );

    let _ = stop.send(true);
    thread.join().unwrap();
}

#[test]
fn uploaded_certificates_are_checked_before_use() {
    let dir = tempfile::tempdir().unwrap();
    let m =
        hearth::net::tls::TlsManager::open(&dir.path().join("tls"), &names(&[]), now()).unwrap();
    let device = m.active();
    let (ca, ca_key) = custom_ca("Household Root");
    let (other_ca, other_ca_key) = custom_ca("Someone Else");
    let (leaf, key) = custom_leaf(&ca, &ca_key, false);
    let (old, old_key) = custom_leaf(&ca, &ca_key, true);
    let (_, stray_key) = custom_leaf(&other_ca, &other_ca_key, false);
    let no_san = {
        let k = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2090, 1, 1);
        (p.signed_by(&k, &ca, &ca_key).unwrap(), k)
    };
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "mismatched key",
            format!("{}{}", leaf.pem(), ca.pem()),
            stray_key.serialize_pem(),
            "does not belong",
        ),
        (
            "expired",
            format!("{}{}", old.pem(), ca.pem()),
            old_key.serialize_pem(),
            "expired",
        ),
        (
            "wrong issuer in chain",
            format!("{}{}", leaf.pem(), other_ca.pem()),
            key.serialize_pem(),
            "not in order",
        ),
        (
            "chain reversed",
            format!("{}{}", ca.pem(), leaf.pem()),
            key.serialize_pem(),
            "does not belong",
        ),
        (
            "not PEM",
            "hello".into(),
            key.serialize_pem(),
            "No certificate",
        ),
        ("key not PEM", leaf.pem(), "hello".into(), "private key"),
        (
            "no names",
            no_san.0.pem(),
            no_san.1.serialize_pem(),
            "names no host",
        ),
        (
            "too large",
            "A".repeat(70_000),
            key.serialize_pem(),
            "larger than",
        ),
    ];
    for (what, chain, k, needle) in cases {
        let e = m.set_custom(&owner(), &chain, &k, now()).expect_err(what);
        assert!(
            matches!(e, hearth::net::tls::TlsError::Rejected(_)),
            "{what}: {e}"
        );
        assert!(e.to_string().contains(needle), "{what}: {e}");
        assert_eq!(m.active(), device, "{what}: nothing changed");
    }
    assert!(!dir.path().join("tls/custom.key").exists());
    // The leaf alone (no intermediates) is fine too.
    let info = m
        .set_custom(&owner(), &leaf.pem(), &key.serialize_pem(), now())
        .unwrap();
    assert_eq!(info.dns_names, ["localhost"]);
}

#[test]
fn custom_certificate_over_http_rejects_a_mismatched_key() {
    let s = Server::start();
    let token = s.claim();
    let (ca, ca_key) = custom_ca("Household Root");
    let (leaf, _key) = custom_leaf(&ca, &ca_key, false);
    let (_, wrong) = custom_leaf(&ca, &ca_key, false);
    let url = s.url("/api/v1/tls/custom");
    let body =
        json!({"chain": format!("{}{}", leaf.pem(), ca.pem()), "key": wrong.serialize_pem()});
    assert_eq!(send("PUT", &url, None, &body).status, 401);
    let r = send("PUT", &url, Some(&token), &body);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.error_code(), "certificate_rejected");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not belong")
    );
    let c = Tls::connect(
        s.https,
        "localhost",
        client_config(&s.ca_pem(), &[&rustls::version::TLS13]),
    )
    .unwrap();
    let (_, served) = x509_parser::parse_x509_certificate(&c.leaf())
        .map(|(r, c)| (r.len(), c.issuer().to_string()))
        .unwrap();
    assert!(served.contains("Hearth device CA"), "{served}");
}

#[test]
fn the_device_ca_cannot_vouch_for_anyone_else() {
    // Even someone holding the CA key (say, a stolen backup) cannot make a certificate the
    // household's browsers accept for another site or another network's address.
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let m = hearth::net::tls::TlsManager::open(&tls, &names(&[("10.231.9.1", 24)]), now()).unwrap();
    let ca_pem = m.ca_pem();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(tls.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::CertificateParams::from_ca_cert_pem(&ca_pem)
        .unwrap()
        .self_signed(&ca_key)
        .unwrap();
    let forge = |sans: Vec<String>| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(sans).unwrap();
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2090, 1, 1);
        p.use_authority_key_identifier_extension = true;
        p.signed_by(&key, &issuer, &ca_key).unwrap().der().clone()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let check = |cert: &CertificateDer<'static>, name: &str| {
        verifier.verify_server_cert(
            cert,
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            rustls::pki_types::UnixTime::now(),
        )
    };
    let cases: Vec<(Vec<&str>, &str, bool)> = vec![
        (vec!["swaptest.local"], "swaptest.local", true),
        (vec!["localhost"], "localhost", true),
        (vec!["10.231.9.77"], "10.231.9.77", true),
        (vec!["bank.example"], "bank.example", false),
        (
            vec!["swaptest.local", "bank.example"],
            "swaptest.local",
            false,
        ),
        (vec!["router.lan"], "router.lan", false),
        (vec!["10.231.10.1"], "10.231.10.1", false),
        (vec!["192.168.1.1"], "192.168.1.1", false),
        (vec!["2001:db8::1"], "2001:db8::1", false),
    ];
    for (sans, name, ok) in cases {
        let cert = forge(sans.iter().map(|s| s.to_string()).collect());
        let r = check(&cert, name);
        assert_eq!(r.is_ok(), ok, "{sans:?} as {name}: {r:?}");
        if !ok {
            let e = format!("{:?}", r.unwrap_err());
            assert!(e.contains("NameConstraint") || e.contains("Name"), "{e}");
        }
    }
}

/// Idle TLS handshakes (connections that never send a ClientHello) from many addresses
/// fill every connection slot; each is dropped when the handshake timeout runs out, and a
/// real client waiting behind them is then served. No slot is held for ever.
#[test]
fn idle_tls_handshakes_cannot_hold_the_server() {
    const SLOTS: usize = 24;
    let s = Server::start_with(|c| {
        c.limits.max_connections = SLOTS;
        c.limits.max_connections_per_client = 4;
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Ten addresses, four idle handshakes each (their cap): more than the server's slots.
    let idle: Vec<tokio::net::TcpStream> = rt.block_on(async {
        let mut v = Vec::new();
        for a in 1..=10u8 {
            for _ in 0..4 {
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.bind(SocketAddr::from(([127, 0, 3, a], 0))).unwrap();
                v.push(sock.connect(s.https).await.unwrap());
            }
        }
        v
    });
    assert!(idle.len() > SLOTS);
    let cfg = client_config(
        &s.ca_pem(),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let mut c =
        Tls::connect(s.https, "localhost", cfg).expect("handshake after the idle ones time out");
    let a = c.request("GET", "/api/v1/health", &[], None);
    assert_eq!(a.status, 200, "{}", a.body);
    drop(idle);
}

/// SECURITY.md promises 32 KiB request heads: a bigger head is refused (431) on both
/// listeners, never served; a head just under the cap still is.
#[test]
fn request_heads_over_32_kib_are_refused_on_http_and_https() {
    let s = Server::start();
    let pad = |n: usize| "a".repeat(n);
    let plain = |n: usize| -> Option<u16> {
        let mut c = TcpStream::connect(s.http).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let req = format!(
            "GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            pad(n)
        );
        if c.write_all(req.as_bytes()).is_err() {
            return None;
        }
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf)
            .split(' ')
            .nth(1)
            .and_then(|v| v.parse().ok())
    };
    let status = plain(40_000);
    assert!(
        status.is_none_or(|st| st == 431),
        "a 40,000-byte header over plain HTTP: {status:?}"
    );
    assert_eq!(plain(30_000), Some(200), "a 30,000-byte header is served");

    let cfg = client_config(&s.ca_pem(), &[&rustls::version::TLS13]);
    let mut c = Tls::connect(s.https, "localhost", cfg.clone()).unwrap();
    let a = c.request("GET", "/api/v1/health", &[("X-Pad", &pad(40_000))], None);
    assert_eq!(a.status, 431, "a 40,000-byte header over HTTPS");
    let mut c = Tls::connect(s.https, "localhost", cfg).unwrap();
    let a = c.request("GET", "/api/v1/health", &[("X-Pad", &pad(30_000))], None);
    assert_eq!(a.status, 200);
}

/// The HTTPS redirect names the device, never whatever `Host` the request carried: a forged
/// Host must not turn the device into an open redirect to someone else's site.
#[test]
fn the_https_redirect_ignores_a_forged_host() {
    let s = Server::start();
    let token = s.claim();
    let cfg = client_config(&s.ca_pem(), &[&rustls::version::TLS13]);
    let mut c = Tls::connect(s.https, "localhost", cfg).unwrap();
    let a = c.request(
        "PATCH",
        "/api/v1/settings/network",
        &[("Authorization", &bearer(&token))],
        Some(r#"{"secure_connections": "required"}"#),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let redirect = |host: &str| -> (u16, String) {
        let mut t = TcpStream::connect(s.http).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let req = format!(
            "GET /some/page?x=1 HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
        );
        t.write_all(req.as_bytes()).unwrap();
        let mut buf = String::new();
        let _ = t.read_to_string(&mut buf);
        let status = buf
            .split(' ')
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let location = buf
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default();
        (status, location)
    };
    let port = s.https.port();
    for forged in ["evil.example", "evil.example:8080", "attacker.test:443"] {
        let (status, location) = redirect(forged);
        assert_eq!(status, 308, "{forged}");
        assert!(
            !location.contains("evil") && !location.contains("attacker"),
            "{forged}: {location}"
        );
        assert_eq!(
            location,
            format!("https://127.0.0.1:{port}/some/page?x=1"),
            "{forged}"
        );
    }
    // The device's own names are kept, so the certificate matches.
    assert_eq!(
        redirect(&format!("localhost:{}", s.http.port())).1,
        format!("https://localhost:{port}/some/page?x=1")
    );
}
