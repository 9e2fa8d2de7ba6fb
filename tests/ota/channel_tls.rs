//! A channel served over real TLS on 127.0.0.1: `updates.ca_file` makes the device trust the
//! publisher's own CA, and only that one.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use hearth::config::UpdatesConfig;
use hearth::ota::download::{Client, DownloadError};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// An https server on 127.0.0.1 whose certificate `issuer` signed; answers every request
/// with `body`. Returns its base URL.
fn serve(issuer: &Ca, body: &'static str) -> String {
    let p = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer.cert, &issuer.key).unwrap();
    let chain = vec![cert.der().clone()];
    let der_key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, der_key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut req = Vec::new();
                let mut byte = [0u8; 1];
                while !req.ends_with(b"\r\n\r\n") && req.len() < 8192 {
                    match tls.read(&mut byte) {
                        Ok(1) => req.push(byte[0]),
                        _ => return, // the client refused the handshake, or went away
                    }
                }
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    base
}

const CHANNEL: &str = r#"{"board":"test-board","channel":"stable","version":"9.9.9","bundle_url":"b.hbundle","size":1234,"min_version":"0.0.0","notes":"n"}"#;

fn config(ca_file: Option<&Path>) -> UpdatesConfig {
    UpdatesConfig {
        ca_file: ca_file.map(Path::to_path_buf),
        ..UpdatesConfig::default()
    }
}

#[test]
fn channel_ca_file_is_the_only_trust() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = ca("Publisher CA");
    let other = ca("Some other CA");
    let url = format!(
        "{}/test-board/stable/channel.json",
        serve(&publisher, CHANNEL)
    );

    let ours = dir.path().join("publisher.pem");
    std::fs::write(&ours, publisher.cert.pem()).unwrap();
    let theirs = dir.path().join("other.pem");
    std::fs::write(&theirs, other.cert.pem()).unwrap();

    // Trusting the publisher's CA: the channel is read, the bundle URL resolved next to it.
    let ch = Client::for_channel(&config(Some(&ours)))
        .unwrap()
        .fetch_channel(&url, "test-board")
        .expect("the channel's own CA must be trusted");
    assert_eq!(ch.version.to_string(), "9.9.9");
    assert!(ch.bundle_url.ends_with("/test-board/stable/b.hbundle"));

    // The public roots do not know that CA; another CA file does not either.
    for (what, cfg) in [
        ("public roots", config(None)),
        ("another CA", config(Some(&theirs))),
    ] {
        match Client::for_channel(&cfg)
            .unwrap()
            .fetch_channel(&url, "test-board")
        {
            Err(DownloadError::Http(msg)) => {
                assert!(
                    msg.to_lowercase().contains("certificate")
                        || msg.to_lowercase().contains("issuer"),
                    "{what}: {msg}"
                )
            }
            other => panic!("{what}: a channel signed by an unknown CA was accepted: {other:?}"),
        }
    }
}

#[test]
fn channel_ca_file_must_hold_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cases: &[(&str, Vec<u8>, &str)] = &[
        ("empty.pem", Vec::new(), "no PEM certificate"),
        ("text.pem", b"hello\n".to_vec(), "no PEM certificate"),
        (
            "key.pem",
            key.serialize_pem().into_bytes(),
            "other than certificates",
        ),
        ("huge.pem", vec![b'A'; 2 * 1024 * 1024], "larger than 1 MiB"),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        match Client::for_channel(&config(Some(&path))) {
            Err(e @ DownloadError::BadCa { .. }) => {
                assert!(e.to_string().contains(want), "{name}: {e}")
            }
            Err(e) => panic!("{name}: wrong error {e}"),
            Ok(_) => panic!("{name}: accepted as the channel's CA"),
        }
    }
    match Client::for_channel(&config(Some(&dir.path().join("missing.pem")))) {
        Err(DownloadError::Source { .. }) => {}
        Err(e) => panic!("missing file: wrong error {e}"),
        Ok(_) => panic!("a missing CA file was accepted"),
    }
}
