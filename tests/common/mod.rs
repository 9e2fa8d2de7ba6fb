//! Starts the real server on 127.0.0.1:0 with a temp data dir, in its own runtime thread,
//! and talks plain HTTP to it. Dropping the `TestServer` shuts the server down.
#![allow(dead_code)] // each test binary uses a different part of this harness

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use hearth::{Config, Listeners};

mod media;
pub mod serve_process;

pub struct TestServer {
    pub addr: SocketAddr,
    pub data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let mut s = Self::start_with(&data, |_| {});
        s._tmp = Some(tmp);
        s
    }

    /// Starts on an existing data dir; `tweak` may change the config first.
    pub fn start_with(data: &Path, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::load(None, Vec::new()).expect("default config");
        config.data_dir = data.to_owned();
        config.https = None;
        tweak(&mut config);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                addr_tx
                    .send(listener.local_addr().map_err(|e| e.to_string())?)
                    .ok();
                let listeners = Listeners {
                    http: vec![listener],
                    https: vec![],
                };
                hearth::serve(config, listeners, async {
                    let _ = stop_rx.await;
                })
                .await
                .map_err(|e| e.to_string())
            })
        });
        // The listener is bound before its address is sent, so a request cannot be refused;
        // it waits in the backlog until start-up (store, setup code) is done. One health
        // request therefore marks the server ready. If start-up failed, the listener is
        // dropped and the request fails, which `stop()` then explains.
        let addr = addr_rx.recv().expect("server thread failed to bind");
        let _ = ureq::get(&format!("http://{addr}/api/v1/health")).call();
        TestServer {
            addr,
            data: data.to_owned(),
            _tmp: None,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and waits for it to finish, returning what `serve` returned.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop.take().map(|s| s.send(()));
        self.thread
            .take()
            .map(|t| t.join().expect("server thread panicked"))
            .unwrap_or(Ok(()))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP agent that returns 4xx/5xx answers as responses instead of errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The `code` of an error answer.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

fn reply(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut resp = resp.expect("request failed at the transport level");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str, token: Option<&str>) -> Reply {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    reply(req.call())
}

pub fn send(method: &str, url: &str, token: Option<&str>, body: &serde_json::Value) -> Reply {
    let a = agent();
    let mut req = match method {
        "POST" => a.post(url),
        "PUT" => a.put(url),
        "PATCH" => a.patch(url),
        other => panic!("send() does not do {other}"),
    };
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    reply(req.send_json(body))
}

pub fn delete(url: &str, token: Option<&str>) -> Reply {
    let mut req = agent().delete(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    reply(req.call())
}

/// A fresh server claimed by "anna" (password "correct horse battery") as "Den", and her token.
pub fn claimed() -> (TestServer, String) {
    let s = TestServer::start();
    let token = claim(&s);
    (s, token)
}

/// Claims `s` as "anna" and returns her token.
pub fn claim(s: &TestServer) -> String {
    let code = hearth::identity::setup_code::read(&s.data)
        .unwrap()
        .expect("an unclaimed server has a setup code");
    let r = send(
        "POST",
        &s.url("/api/v1/setup/claim"),
        None,
        &serde_json::json!({"setup_code": code, "server_name": "Den",
                "owner": {"username": "anna", "password": "correct horse battery"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["token"].as_str().unwrap().to_owned()
}

/// The generated test media library (`tests/media/`); its files are read-only.
pub fn test_media() -> PathBuf {
    media::test_media()
}

/// Copies a tree of test media; the copies are writable even when the originals are not.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
            let mut perm = std::fs::metadata(&dest).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&dest, perm).unwrap();
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
