//! Slow, greedy and oversized clients against the real server: slowloris connections, a
//! client past its connection cap, huge request heads, oversized bodies and a thousand
//! concurrent range requests. Each must be refused or queued while other clients keep
//! getting answers. Loopback has all of 127.0.0.0/8, so "other clients" are real, different
//! source addresses.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{TestServer, get, send};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const PER_CLIENT: usize = 8;
const MAX_CONNECTIONS: usize = 48;

async fn connect(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    socket.connect(to).await
}

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Sends `request` (a whole HTTP/1.1 request with `Connection: close`) from `from` and
/// reads to the end. `None` if the server closed the connection without an answer.
async fn exchange(from: &str, to: SocketAddr, request: &[u8]) -> Option<Answer> {
    let mut s = connect(from, to).await.ok()?;
    // A refused connection may be closed before or while we write; both mean no answer.
    if s.write_all(request).await.is_err() {
        return None;
    }
    let mut buf = Vec::new();
    // A safety net against a hung test, not a timing assertion.
    match tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut buf)).await {
        Ok(Ok(_)) | Ok(Err(_)) => {}
        Err(_) => panic!("no answer and no close from the server in 120 s"),
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head,
        body: buf[end + 4..].to_vec(),
    })
}

fn get_request(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: hearth\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

/// A claimed server with one scanned movie library; returns the server, the owner's token,
/// the stream path of one film and that film's bytes.
fn server_with_a_film() -> (TestServer, tempfile::TempDir, String, String, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(&tmp.path().join("data"), |c| {
        c.limits.max_connections = MAX_CONNECTIONS;
        c.limits.max_connections_per_client = PER_CLIENT;
    });
    let owner = common::claim(&s);
    let movies = tmp.path().join("Movies");
    common::copy_tree(&common::test_media().join("Movies"), &movies);
    let r = send(
        "POST",
        &s.url("/api/v1/libraries"),
        Some(&owner),
        &json!({"name": "Films", "kind": "movies", "folders": [movies.to_str().unwrap()]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let lib = r.json()["id"].as_u64().unwrap();
    let items = loop {
        let scan = get(
            &s.url(&format!("/api/v1/libraries/{lib}/scan")),
            Some(&owner),
        )
        .json();
        if scan["progress"]["running"] == false {
            break get(
                &s.url(&format!("/api/v1/libraries/{lib}/items?limit=100")),
                Some(&owner),
            )
            .json();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let film = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"] == "Rocket Club")
        .cloned()
        .unwrap_or(Value::Null);
    let stream = film["stream_url"]
        .as_str()
        .expect("a stream url")
        .to_owned();
    let bytes = std::fs::read(movies.join("Rocket Club (2019)/Rocket Club (2019).mkv")).unwrap();
    (s, tmp, owner, stream, bytes)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn slow_greedy_and_oversized_clients_do_not_starve_the_household() {
    let (s, _tmp, _owner, stream, film) = server_with_a_film();
    let addr = s.addr;
    let rt = runtime();
    rt.block_on(async move {
        let health = get_request("/api/v1/health", "");

        // Slowloris: a client opens its whole allowance and sends half a request head on
        // each, then a few more connections. The extra ones are closed unanswered; another
        // client is answered meanwhile.
        let mut slow = Vec::new();
        for _ in 0..PER_CLIENT {
            let mut c = connect("127.0.0.2", addr).await.unwrap();
            c.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: hea").await.unwrap();
            slow.push(c);
        }
        // Let the accept loop count them (they are accepted in order, the probe is last).
        let a = exchange("127.0.0.9", addr, &health).await.expect("answered");
        assert_eq!(a.status, 200);
        for _ in 0..3 {
            assert!(
                exchange("127.0.0.2", addr, &health).await.is_none(),
                "a connection past the per-client cap must be closed unanswered"
            );
        }
        let a = exchange("127.0.0.1", addr, &health).await.expect("answered");
        assert_eq!(a.status, 200, "another client is served while one is at its cap");
        // When the slow client gives up, its allowance comes back.
        drop(slow);
        let mut again = None;
        for _ in 0..250 {
            again = exchange("127.0.0.2", addr, &health).await;
            if again.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(again.expect("served again after closing").status, 200);

        // Huge request heads: one enormous header, and very many headers. Refused with 431,
        // the connection closed; nobody else notices.
        let big = format!("X-Pad: {}\r\n", "a".repeat(64 * 1024));
        let a = exchange("127.0.0.3", addr, &get_request("/api/v1/health", &big))
            .await
            .expect("an answer");
        assert_eq!(a.status, 431, "{}", a.head);
        let many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
        let a = exchange("127.0.0.3", addr, &get_request("/api/v1/health", &many))
            .await
            .expect("an answer");
        assert_eq!(a.status, 431, "{}", a.head);
        let long_path = format!("/api/v1/{}", "p".repeat(64 * 1024));
        let a = exchange("127.0.0.3", addr, &get_request(&long_path, "")).await;
        assert!(
            a.as_ref().is_none_or(|a| a.status == 431 || a.status == 414),
            "a 64 KiB request line is refused"
        );

        // A body over limits.body_bytes: 413 with the error shape, declared or not.
        for declared in [true, false] {
            let body = format!(
                r#"{{"username": "anna", "password": "{}"}}"#,
                "x".repeat(128 * 1024)
            );
            let head = if declared {
                format!("Content-Length: {}\r\n", body.len())
            } else {
                "Transfer-Encoding: chunked\r\n".into()
            };
            let payload = if declared {
                body.clone()
            } else {
                format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len())
            };
            let req = format!(
                "POST /api/v1/auth/login HTTP/1.1\r\nHost: hearth\r\nContent-Type: application/json\r\n{head}Connection: close\r\n\r\n{payload}"
            );
            let a = exchange("127.0.0.4", addr, req.as_bytes())
                .await
                .expect("an answer");
            assert_eq!(a.status, 413, "declared={declared}: {}", a.head);
            let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
            assert!(
                v["error"]["code"].is_string(),
                "413 carries the error shape: {}",
                String::from_utf8_lossy(&a.body)
            );
        }

        // A thousand concurrent range requests from 125 clients (8 each, at their cap):
        // more than the server's connection limit, so most wait in the backlog; every one
        // is answered with exactly the bytes asked for, and a health check from another
        // client gets through while they run.
        let mut tasks = tokio::task::JoinSet::new();
        let len = film.len() as u64;
        for i in 0..1000u64 {
            let from = format!("127.0.{}.{}", 10 + i / 8 / 250, 1 + (i / 8) % 250);
            let start = (i * 7919) % (len - 1);
            let end = (start + 1 + (i * 104_729) % 65_536).min(len - 1);
            let req = get_request(&stream, &format!("Range: bytes={start}-{end}\r\n"));
            tasks.spawn(async move { (start, end, exchange(&from, addr, &req).await) });
        }
        let a = exchange("127.0.0.5", addr, &health).await.expect("answered");
        assert_eq!(a.status, 200);
        let mut answered = 0;
        while let Some(r) = tasks.join_next().await {
            let (start, end, a) = r.unwrap();
            let a = a.expect("every range request within the per-client cap is answered");
            assert_eq!(a.status, 206, "{}", a.head);
            assert_eq!(
                a.body,
                film[start as usize..=end as usize],
                "bytes {start}-{end}"
            );
            answered += 1;
        }
        assert_eq!(answered, 1000);

        // The same thousand from ONE client: only its cap's worth run at once; the rest
        // are closed unanswered rather than crowding the server.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000u64 {
            let req = get_request(&stream, &format!("Range: bytes={}-{}\r\n", i, i + 4096));
            tasks.spawn(async move { exchange("127.0.0.6", addr, &req).await });
        }
        let a = exchange("127.0.0.7", addr, &health).await.expect("answered");
        assert_eq!(a.status, 200);
        let (mut served, mut refused) = (0, 0);
        while let Some(r) = tasks.join_next().await {
            match r.unwrap() {
                Some(a) => {
                    assert_eq!(a.status, 206);
                    served += 1;
                }
                None => refused += 1,
            }
        }
        assert!(served >= PER_CLIENT, "served {served}");
        assert!(refused > 0, "one client got all 1000 at once");
    });
}

/// Answers the framework makes before a handler runs (a path or query that does not parse,
/// a method the route does not take) carry the same error shape as every other error.
#[test]
fn framework_rejections_carry_the_error_shape() {
    let (s, owner) = common::claimed();
    let cases = [
        ("GET", "/api/v1/items/not-a-number", 400),
        ("GET", "/api/v1/libraries/1/items?limit=lots", 400),
        ("DELETE", "/api/v1/health", 405),
        ("GET", "/api/v1/users/18446744073709551616", 400),
    ];
    for (method, path, want) in cases {
        let r = match method {
            "GET" => get(&s.url(path), Some(&owner)),
            _ => common::delete(&s.url(path), Some(&owner)),
        };
        assert_eq!(r.status, want, "{method} {path}: {}", r.body);
        let v = r.json();
        assert!(
            v["error"]["code"].as_str().is_some_and(|c| !c.is_empty())
                && v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
            "{method} {path}: {}",
            r.body
        );
        if want == 405 {
            assert!(r.header("allow").is_some(), "405 keeps its Allow header");
        }
    }
    // The served OpenAPI document says so for every operation.
    let doc = get(&s.url("/api/v1/openapi.json"), None).json();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                continue;
            }
            assert_eq!(
                op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
        }
    }
}
