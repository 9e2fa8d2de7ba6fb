//! The download engine against a fault-injecting HTTP server on 127.0.0.1.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth::ota::Version;
use hearth::ota::bundle::InstallPolicy;
use hearth::ota::download::{
    self, Client, DownloadError, DownloadJob, FileSlots, Progress, Retry, SlotWriter,
};
use hearth::store::Store;

use crate::support::{Publisher, codeish, noise};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Fault {
    None,
    /// Always answers 200 with the whole file.
    NoRange,
    /// Every other response is cut halfway through its body.
    DropMidway,
    /// Bodies trickle out in small pieces with pauses.
    Slow,
    /// Every other response announces a wrong Content-Length (too long, then too short).
    WrongLength,
    /// Every other response has one byte flipped mid-body.
    Corrupt,
}

pub(crate) struct Server {
    pub(crate) base: String,
    requests: Arc<AtomicU64>,
    /// Body bytes the server may still send; below zero it closes every connection.
    budget: Arc<AtomicI64>,
}

pub(crate) fn serve(files: HashMap<String, Vec<u8>>, fault: Fault) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(AtomicI64::new(i64::MAX));
    let files = Arc::new(files);
    let (r, b) = (requests.clone(), budget.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let n = r.fetch_add(1, Ordering::SeqCst);
            let (files, b) = (files.clone(), b.clone());
            std::thread::spawn(move || {
                let _ = answer(conn, &files, fault, n, &b);
            });
        }
    });
    Server {
        base,
        requests,
        budget,
    }
}

fn answer(
    mut conn: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    fault: Fault,
    n: u64,
    budget: &AtomicI64,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = Vec::new();
    let mut byte = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") && req.len() < 8192 {
        if conn.read(&mut byte)? == 0 {
            return Ok(());
        }
        req.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&req).to_string();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let Some(file) = files.get(&path) else {
        return conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let range = text.lines().find_map(|l| {
        let l = l.to_ascii_lowercase();
        let spec = l.strip_prefix("range: bytes=")?.trim().to_owned();
        let (a, b) = spec.split_once('-')?;
        Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
    });
    let total = file.len();
    let (status, start, body) = match range {
        Some((a, b)) if fault != Fault::NoRange && a < total => {
            let end = (b + 1).min(total);
            (206, a, file[a..end].to_vec())
        }
        _ => (200, 0, file.clone()),
    };
    // Faults hit every other request for the bundle (the first, for the header and
    // index, is request 1; chunk runs start at 2), so each fault meets chunk data.
    let odd = path.ends_with(".hbundle") && n.is_multiple_of(2);
    let mut body = body;
    let mut announced = body.len();
    let mut send = body.len();
    match fault {
        Fault::DropMidway if odd => send = body.len() / 2,
        Fault::WrongLength if odd && n.is_multiple_of(4) => {
            announced += 1000;
        }
        Fault::WrongLength if odd => announced = body.len() / 3,
        Fault::Corrupt if odd && !body.is_empty() => {
            let m = body.len() / 2;
            body[m] ^= 0x40;
        }
        _ => {}
    }
    if budget.load(Ordering::SeqCst) < 0 {
        return Ok(());
    }
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {announced}\r\nConnection: close\r\n",
        status,
        if status == 206 {
            "Partial Content"
        } else {
            "OK"
        }
    );
    if status == 206 {
        head += &format!(
            "Content-Range: bytes {start}-{}/{total}\r\n",
            start + body.len() - 1
        );
    } else if fault != Fault::NoRange {
        head += "Accept-Ranges: bytes\r\n";
    }
    head += "\r\n";
    conn.write_all(head.as_bytes())?;
    let piece = if fault == Fault::Slow {
        8 * 1024
    } else {
        256 * 1024
    };
    let mut sent = 0;
    while sent < send.min(body.len()) {
        let k = piece.min(send - sent);
        if budget.fetch_sub(k as i64, Ordering::SeqCst) < k as i64 {
            return Ok(()); // out of budget: the line goes dead mid-body
        }
        conn.write_all(&body[sent..sent + k])?;
        sent += k;
        if fault == Fault::Slow {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    conn.flush()
}

/// A slot writer that panics if any byte it is asked to write differs from the true
/// payload: proves no unverified byte reaches the slot.
struct Checked {
    inner: FileSlots,
    truth: HashMap<String, Vec<u8>>,
    writes: Arc<Mutex<u64>>,
}

impl SlotWriter for Checked {
    fn write_at(&mut self, slot: &str, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let t = &self.truth[slot][offset as usize..offset as usize + data.len()];
        assert!(t == data, "UNVERIFIED BYTES WRITTEN to {slot} at {offset}");
        *self.writes.lock().unwrap() += 1;
        self.inner.write_at(slot, offset, data)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.inner.sync()
    }
    fn read_at(&mut self, slot: &str, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(slot, offset, buf)
    }
}

struct Fixture {
    p: Publisher,
    files: HashMap<String, Vec<u8>>,
    truth: HashMap<String, Vec<u8>>,
}

fn fixture() -> Fixture {
    let p = Publisher::new("release");
    let mut rootfs = codeish(11, 40 * 65536 + 777);
    rootfs.extend(noise(12, 20 * 65536));
    let kernel = codeish(13, 300_000);
    let (path, _) = p.bundle(
        "net",
        Version(1, 3, 0),
        &[("rootfs", &rootfs), ("kernel", &kernel)],
    );
    let mut files = HashMap::new();
    files.insert(
        "/stable/u.hbundle".to_owned(),
        std::fs::read(&path).unwrap(),
    );
    let size = files["/stable/u.hbundle"].len();
    files.insert(
        "/stable/channel.json".to_owned(),
        format!(
            r#"{{"board":"generic-x86_64","channel":"stable","version":"1.3.0","bundle_url":"u.hbundle","size":{size},"min_version":"1.0.0","notes":"Faster scans."}}"#
        )
        .into_bytes(),
    );
    let truth = HashMap::from([("rootfs".to_owned(), rootfs), ("kernel".to_owned(), kernel)]);
    Fixture { p, files, truth }
}

fn policy() -> InstallPolicy {
    InstallPolicy {
        board: Some("generic-x86_64".into()),
        running: Some(Version(1, 2, 0)),
        allow_downgrade: false,
    }
}

struct Run {
    result: Result<download::DownloadReport, DownloadError>,
    slots: tempfile::TempDir,
    writes: u64,
}

fn run(
    f: &Fixture,
    server: &Server,
    db: &std::path::Path,
    sources: &[PathBuf],
    slots: Option<tempfile::TempDir>,
) -> Run {
    let client = Client::new();
    let ch = client
        .fetch_channel(
            &format!("{}/stable/channel.json", server.base),
            "generic-x86_64",
        )
        .unwrap();
    let slots = slots.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let writes = Arc::new(Mutex::new(0));
    let mut w = Checked {
        inner: FileSlots::open(&[
            ("rootfs", slots.path().join("rootfs.img")),
            ("kernel", slots.path().join("kernel.img")),
        ])
        .unwrap(),
        truth: f.truth.clone(),
        writes: writes.clone(),
    };
    let store = Store::open(db).unwrap();
    let keyring = f.p.keyring();
    let pol = policy();
    let job = DownloadJob {
        client: &client,
        bundle_url: &ch.bundle_url,
        keyring: &keyring,
        policy: &pol,
        sources,
        store: &store,
        target: "slot-b",
        progress: Arc::new(Progress::default()),
        retry: Retry {
            attempts: 6,
            backoff: Duration::from_millis(5),
        },
    };
    let result = download::download(&job, &mut w).map(|(_, r)| r);
    let n = *writes.lock().unwrap();
    Run {
        result,
        slots,
        writes: n,
    }
}

fn assert_slots_match(f: &Fixture, slots: &std::path::Path) {
    for (slot, data) in &f.truth {
        let got = std::fs::read(slots.join(format!("{slot}.img"))).unwrap();
        assert!(got == *data, "slot {slot} differs from the payload");
    }
}

#[test]
fn download_survives_every_kind_of_server_fault() {
    let f = fixture();
    for fault in [
        Fault::None,
        Fault::NoRange,
        Fault::DropMidway,
        Fault::Slow,
        Fault::WrongLength,
        Fault::Corrupt,
    ] {
        let server = serve(f.files.clone(), fault);
        let db = tempfile::tempdir().unwrap();
        let r = run(&f, &server, &db.path().join("h.redb"), &[], None);
        let report = r.result.unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_slots_match(&f, r.slots.path());
        assert_eq!(report.chunks_downloaded, report.total_chunks, "{fault:?}");
        assert!(r.writes >= report.total_chunks);
        let requests = server.requests.load(Ordering::SeqCst);
        if !matches!(fault, Fault::None | Fault::NoRange | Fault::Slow) {
            assert!(
                requests > 3,
                "{fault:?}: the fault never struck ({requests} requests)"
            );
        }
        println!(
            "{fault:?}: {} requests, {} bytes, {} chunks",
            server.requests.load(Ordering::SeqCst),
            report.bytes_downloaded,
            report.chunks_downloaded
        );
    }
}

#[test]
fn a_cut_download_resumes_from_the_journal_after_restart() {
    let f = fixture();
    let db = tempfile::tempdir().unwrap();
    let dbp = db.path().join("h.redb");
    let total = f.files["/stable/u.hbundle"].len() as i64;
    let server = serve(f.files.clone(), Fault::None);
    server.budget.store(total / 2, Ordering::SeqCst);
    let first = run(&f, &server, &dbp, &[], None);
    let err = first.result.unwrap_err();
    assert!(matches!(err, DownloadError::GaveUp(_)), "{err}");
    assert!(err.to_string().contains("resume"), "{err}");
    // "Restart": a new store handle on the same file, the same slot files, a working server.
    server.budget.store(i64::MAX, Ordering::SeqCst);
    let second = run(&f, &server, &dbp, &[], Some(first.slots));
    let report = second.result.unwrap();
    assert!(report.chunks_resumed > 0, "{report:?}");
    assert_eq!(
        report.chunks_resumed + report.chunks_downloaded,
        report.total_chunks
    );
    assert_slots_match(&f, second.slots.path());
    println!(
        "resume: {} of {} chunks kept from the cut run",
        report.chunks_resumed, report.total_chunks
    );
}

#[test]
fn plain_http_elsewhere_and_foreign_channels_are_refused() {
    for url in [
        "http://192.0.2.1/c.json",
        "ftp://x/c.json",
        "http://example.org/c.json",
    ] {
        assert!(download::check_url(url).is_err(), "{url}");
    }
    for url in [
        "https://updates.example/c.json",
        "http://127.0.0.1:8/c.json",
        "http://[::1]:8/c",
        "http://localhost/c",
    ] {
        assert!(download::check_url(url).is_ok(), "{url}");
    }
    let f = fixture();
    let server = serve(f.files.clone(), Fault::None);
    let e = Client::new()
        .fetch_channel(&format!("{}/stable/channel.json", server.base), "rpi4")
        .unwrap_err();
    assert!(e.to_string().contains("board `generic-x86_64`"), "{e}");
}

/// An "erofs-like" image: files laid out back to back on 4 KiB boundaries.
fn image(files: &[Vec<u8>]) -> Vec<u8> {
    let mut img = Vec::new();
    for f in files {
        img.extend_from_slice(f);
        img.resize(img.len().div_ceil(4096) * 4096, 0);
    }
    img
}

#[test]
fn delta_update_of_one_binary_downloads_little_more_than_that_binary() {
    const MB: usize = 1 << 20;
    let mut files: Vec<Vec<u8>> = (0..30)
        .map(|i| {
            if i % 3 == 0 {
                noise(100 + i, 3 * MB + 1000 * i as usize)
            } else {
                codeish(100 + i, 3 * MB - 777 * i as usize)
            }
        })
        .collect();
    let old_bin = codeish(1, 10 * MB);
    let new_bin = codeish(2, 10 * MB + 123 * 1024 + 5);
    files.insert(15, old_bin);
    let old_img = image(&files);
    files[15] = new_bin.clone();
    let new_img = image(&files);

    let p = Publisher::new("release");
    let (path, _) = p.bundle("big", Version(1, 3, 0), &[("rootfs", &new_img)]);
    let mut served = HashMap::new();
    served.insert(
        "/stable/u.hbundle".to_owned(),
        std::fs::read(&path).unwrap(),
    );
    served.insert(
        "/stable/channel.json".to_owned(),
        format!(r#"{{"board":"generic-x86_64","channel":"stable","version":"1.3.0","bundle_url":"u.hbundle","size":{},"min_version":"1.0.0"}}"#, served["/stable/u.hbundle"].len()).into_bytes(),
    );
    let f = Fixture {
        p,
        files: served,
        truth: HashMap::from([("rootfs".to_owned(), new_img.clone())]),
    };
    let src_dir = tempfile::tempdir().unwrap();
    let running = src_dir.path().join("root-a.img");
    std::fs::write(&running, &old_img).unwrap();
    let server = serve(f.files.clone(), Fault::None);
    let db = tempfile::tempdir().unwrap();
    let client = Client::new();
    let slots = tempfile::tempdir().unwrap();
    let mut w = FileSlots::open(&[("rootfs", slots.path().join("rootfs.img"))]).unwrap();
    let store = Store::open(&db.path().join("h.redb")).unwrap();
    let keyring = f.p.keyring();
    let pol = policy();
    let url = format!("{}/stable/u.hbundle", server.base);
    let job = DownloadJob {
        client: &client,
        bundle_url: &url,
        keyring: &keyring,
        policy: &pol,
        sources: &[running],
        store: &store,
        target: "slot-b",
        progress: Arc::new(Progress::default()),
        retry: Retry::default(),
    };
    let (_, report) = download::download(&job, &mut w).unwrap();
    assert_eq!(
        std::fs::read(slots.path().join("rootfs.img")).unwrap(),
        new_img
    );
    let bin_compressed = ruzstd::encoding::compress_to_vec(
        &new_bin[..],
        ruzstd::encoding::CompressionLevel::Fastest,
    )
    .len();
    let ratio = report.bytes_downloaded as f64 / bin_compressed as f64;
    println!(
        "delta: image {} MB, bundle {} bytes, downloaded {} bytes in {} requests ({} chunks fetched, {} found locally); binary {} bytes, {} compressed; ratio {:.3}",
        new_img.len() / MB,
        f.files["/stable/u.hbundle"].len(),
        report.bytes_downloaded,
        report.requests,
        report.chunks_downloaded,
        report.chunks_local,
        new_bin.len(),
        bin_compressed,
        ratio
    );
    assert!(
        report.bytes_downloaded < f.files["/stable/u.hbundle"].len() as u64 / 4,
        "{report:?}"
    );
}
