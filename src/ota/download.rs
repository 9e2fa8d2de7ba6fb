//! Security-sensitive: brings a bundle from the update channel onto the inactive slot.
//! Nothing from the network is trusted: the header and index are verified against the
//! keyring before they are used, every chunk is hashed before it is written, and the slot
//! is read back and checked against the signed payload hashes at the end.
//!
//! Flow: `channel.json` → one range request for header + index (a second only if the
//! index is unusually large) → chunks the device already has (in either slot, at any
//! 4 KiB position) are copied locally → the rest is fetched by range, in runs of adjacent
//! chunks; a server without range support is read in one sequential pass. A redb journal
//! records each synced batch of chunks, so a cut download resumes where it stopped.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::bundle::{self, BundleMeta, InstallPolicy, PREAMBLE_LEN};
use super::keys::Keyring;
use super::version::Version;
use crate::store::Store;
use crate::store::ota::OtaJob;

pub use super::error::DownloadError;
pub use super::local::{FileSlots, LocalChunks, SlotWriter, fs_extent, scan_sources};

/// `channel.json` is a few hundred bytes.
const MAX_CHANNEL_JSON: u64 = 64 * 1024;
/// First request: preamble, header, signatures and an index for up to ~5000 chunks.
const FIRST_FETCH: u64 = 256 * 1024;
/// Chunks written between syncs + journal commits.
const BATCH_CHUNKS: usize = 32;

/// `channel.json`: what the publisher currently offers on one channel for one board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Channel {
    pub board: String,
    /// `stable` or `beta`.
    pub channel: String,
    #[schema(value_type = String)]
    pub version: Version,
    /// Absolute, or relative to channel.json.
    pub bundle_url: String,
    pub size: u64,
    /// Oldest version the bundle can update from.
    #[schema(value_type = String)]
    pub min_version: Version,
    #[serde(default)]
    pub notes: String,
}

/// Refuses anything but https, except plain http to this machine (tests, local mirrors).
pub fn check_url(url: &str) -> Result<(), DownloadError> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        let host_port = r.split('/').next().unwrap_or("");
        let host = if let Some(h) = host_port.strip_prefix('[') {
            h.split(']').next().unwrap_or("")
        } else {
            host_port.split(':').next().unwrap_or("")
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(DownloadError::InsecureUrl(url.to_owned()));
        }
        r
    } else {
        return Err(DownloadError::BadUrl(url.to_owned()));
    };
    if rest.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_whitespace()) {
        return Err(DownloadError::BadUrl(url.to_owned()));
    }
    Ok(())
}

/// The certificates of a PEM file (`updates.ca_file`); at least one, nothing else in it.
fn channel_roots(
    path: &std::path::Path,
) -> Result<Vec<ureq::tls::Certificate<'static>>, DownloadError> {
    let source = |e: std::io::Error| DownloadError::Source {
        path: path.display().to_string(),
        source: e,
    };
    let bad = |why: String| DownloadError::BadCa {
        path: path.display().to_string(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(source)?;
    if meta.len() > 1024 * 1024 {
        return Err(bad("it is larger than 1 MiB".into()));
    }
    let pem = std::fs::read(path).map_err(source)?;
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|e| bad(e.to_string()))? {
            ureq::tls::PemItem::Certificate(c) => roots.push(c),
            _ => return Err(bad("it holds something other than certificates".into())),
        }
    }
    if roots.is_empty() {
        return Err(bad("it holds no PEM certificate".into()));
    }
    Ok(roots)
}

/// Resolves a bundle URL relative to the channel.json URL.
pub fn resolve(channel_url: &str, bundle_url: &str) -> String {
    if bundle_url.contains("://") {
        return bundle_url.to_owned();
    }
    let base = match channel_url.rfind('/') {
        Some(i) => &channel_url[..=i],
        None => channel_url,
    };
    format!("{base}{}", bundle_url.trim_start_matches("./"))
}

/// Shared progress counters, read by the Updates page while a download runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub bytes_total: AtomicU64,
    pub bytes_done: AtomicU64,
    pub chunks_total: AtomicU64,
    pub chunks_done: AtomicU64,
    /// Chunks taken from the device's own slots instead of the network.
    pub chunks_local: AtomicU64,
    /// Every chunk is written; the slot is being read back and checked.
    pub verifying: std::sync::atomic::AtomicBool,
    started: std::sync::OnceLock<Instant>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProgressSnapshot {
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub chunks_total: u64,
    pub chunks_done: u64,
    pub chunks_local: u64,
    pub bytes_per_second: u64,
    pub eta_seconds: Option<u64>,
}

impl Progress {
    pub fn snapshot(&self) -> ProgressSnapshot {
        let bytes_total = self.bytes_total.load(Ordering::Relaxed);
        let bytes_done = self.bytes_done.load(Ordering::Relaxed);
        let secs = self
            .started
            .get()
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let rate = if secs > 0.0 {
            (bytes_done as f64 / secs) as u64
        } else {
            0
        };
        ProgressSnapshot {
            bytes_total,
            bytes_done,
            chunks_total: self.chunks_total.load(Ordering::Relaxed),
            chunks_done: self.chunks_done.load(Ordering::Relaxed),
            chunks_local: self.chunks_local.load(Ordering::Relaxed),
            bytes_per_second: rate,
            eta_seconds: (rate > 0).then(|| bytes_total.saturating_sub(bytes_done) / rate),
        }
    }

    fn downloaded(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }
}

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Consecutive failed requests without any new chunk before giving up.
    pub attempts: u32,
    /// Wait before retry `n` is `backoff * n`.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 8,
            backoff: Duration::from_millis(500),
        }
    }
}

/// The HTTP side: one ureq agent, rustls for https.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// Bearer token for a private channel.
    token: Option<String>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

struct Ranged {
    /// Where the body starts in the file (0 when the server ignored the range).
    start: u64,
    /// Size of the whole file, when the server said.
    total: Option<u64>,
    body: Box<dyn Read + Send>,
}

impl Client {
    pub fn new() -> Client {
        Client::with_tls(ureq::tls::TlsConfig::default())
    }

    fn with_tls(tls: ureq::tls::TlsConfig) -> Client {
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .max_redirects(3)
            .user_agent(format!("hearth/{}", crate::model::build::version()))
            .build();
        Client {
            agent: config.into(),
            token: None,
        }
    }

    /// The client for the configured channel: its bearer token, and when `updates.ca_file`
    /// is set, only that file's certificates as the roots an https channel must chain to
    /// (a private channel or a local mirror with its own CA) instead of the public ones.
    pub fn for_channel(config: &crate::config::UpdatesConfig) -> Result<Client, DownloadError> {
        let token = config.token.expose();
        let client = match &config.ca_file {
            None => Client::new(),
            Some(path) => Client::with_tls(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&channel_roots(path)?))
                    .build(),
            ),
        };
        Ok(client.with_token((!token.is_empty()).then(|| token.to_owned())))
    }

    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token;
        self
    }

    fn get(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let req = self.agent.get(url);
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    /// Fetches and checks `channel.json`. Sends nothing but what the URL holds.
    pub fn fetch_channel(&self, url: &str, board: &str) -> Result<Channel, DownloadError> {
        check_url(url)?;
        let resp = self
            .get(url)
            .call()
            .map_err(|e| DownloadError::Http(e.to_string()))?;
        if resp.status() != 200 {
            return Err(DownloadError::Status {
                status: resp.status().as_u16(),
                url: url.to_owned(),
            });
        }
        let mut text = Vec::new();
        resp.into_body()
            .into_reader()
            .take(MAX_CHANNEL_JSON + 1)
            .read_to_end(&mut text)
            .map_err(|e| DownloadError::Http(e.to_string()))?;
        if text.len() as u64 > MAX_CHANNEL_JSON {
            return Err(DownloadError::BadChannel(format!(
                "larger than {MAX_CHANNEL_JSON} bytes"
            )));
        }
        let mut ch: Channel =
            serde_json::from_slice(&text).map_err(|e| DownloadError::BadChannel(e.to_string()))?;
        if ch.board != board {
            return Err(DownloadError::WrongBoard {
                offered: ch.board,
                device: board.to_owned(),
            });
        }
        if ch.min_version > ch.version || ch.size == 0 {
            return Err(DownloadError::BadChannel(
                "min_version is newer than version, or size is 0".into(),
            ));
        }
        ch.bundle_url = resolve(url, &ch.bundle_url);
        check_url(&ch.bundle_url)?;
        Ok(ch)
    }

    /// GET with `Range: bytes=start-(end-1)`. A 200 answer means the server ignored the
    /// range and the body is the whole file.
    fn get_range(&self, url: &str, start: u64, end: u64) -> Result<Ranged, String> {
        let resp = self
            .get(url)
            .header("Range", format!("bytes={start}-{}", end.saturating_sub(1)))
            .call()
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (body_start, total) = match status {
            206 => {
                // Content-Range: bytes a-b/total
                let cr = header("content-range").ok_or("206 without Content-Range")?;
                let spec = cr.strip_prefix("bytes ").ok_or("malformed Content-Range")?;
                let (range, total) = spec.split_once('/').ok_or("malformed Content-Range")?;
                let a: u64 = range
                    .split('-')
                    .next()
                    .and_then(|a| a.parse().ok())
                    .ok_or("malformed Content-Range")?;
                (a, total.parse::<u64>().ok())
            }
            200 => (
                0,
                header("content-length").and_then(|l| l.parse::<u64>().ok()),
            ),
            s => return Err(format!("the server answered {s}")),
        };
        if status == 206 && body_start != start {
            return Err(format!(
                "asked for bytes from {start}, the server sent from {body_start}"
            ));
        }
        Ok(Ranged {
            start: body_start,
            total,
            body: Box::new(resp.into_body().into_reader()),
        })
    }
}

/// What a finished download did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DownloadReport {
    pub version: Option<String>,
    /// Bytes received from the network, metadata included.
    pub bytes_downloaded: u64,
    pub chunks_downloaded: u64,
    pub chunks_local: u64,
    /// Chunks the journal said were already on the slot.
    pub chunks_resumed: u64,
    pub requests: u64,
    pub total_chunks: u64,
}

/// Everything a download needs besides the slot writer.
pub struct DownloadJob<'a> {
    pub client: &'a Client,
    pub bundle_url: &'a str,
    pub keyring: &'a Keyring,
    pub policy: &'a InstallPolicy,
    /// Files or block devices that may already hold some chunks.
    pub sources: &'a [PathBuf],
    pub store: &'a Store,
    /// Names the target slot in the journal (device path or file).
    pub target: &'a str,
    pub progress: Arc<Progress>,
    pub retry: Retry,
}

/// Downloads, verifies and writes a bundle; returns when every payload has been written,
/// synced and read back against its signed hash.
pub fn download(
    job: &DownloadJob<'_>,
    writer: &mut dyn SlotWriter,
) -> Result<(BundleMeta, DownloadReport), DownloadError> {
    check_url(job.bundle_url)?;
    let _ = job.progress.started.set(Instant::now());
    let mut report = DownloadReport::default();

    // 1. Header, signatures and index.
    let (meta_bytes, total) = fetch_meta(job, &mut report)?;
    let meta = bundle::open_meta(&meta_bytes, total, job.keyring)?;
    job.policy.check(&meta.header)?;
    report.version = Some(meta.header.version.to_string());
    report.total_chunks = meta.chunks.len() as u64;
    let target = writer
        .begin(&meta_bytes, &meta)?
        .unwrap_or_else(|| job.target.to_owned());

    // 2. The journal says what is already on the slot.
    let digest = hex::encode(meta.digest);
    let mut done_list = job.store.write(|tx| {
        tx.ota_begin(&OtaJob {
            bundle: digest.clone(),
            target: target.clone(),
            chunks: meta.chunks.len() as u32,
            complete: false,
        })
    })?;
    done_list.sort_unstable();
    let done: HashSet<u32> = done_list.iter().copied().collect();
    report.chunks_resumed = done.len() as u64;
    let mut todo: Vec<usize> = (0..meta.chunks.len())
        .filter(|i| !done.contains(&(*i as u32)))
        .collect();
    let p = &job.progress;
    p.chunks_total
        .store(meta.chunks.len() as u64, Ordering::Relaxed);
    p.chunks_done.store(done.len() as u64, Ordering::Relaxed);

    // 3. Chunks the device already has.
    let mut journal = Journal::new(job.store);
    if let Some(filled) = writer.reuse_local(&meta, &done_list)? {
        // The writer copied and synced them already; record them.
        for i in filled {
            if i < meta.chunks.len() && !done.contains(&(i as u32)) {
                journal.pending.push(i as u32);
                journal.written.insert(i);
                p.chunks_local.fetch_add(1, Ordering::Relaxed);
                p.chunks_done.fetch_add(1, Ordering::Relaxed);
                report.chunks_local += 1;
            }
        }
    }
    let local = if job.sources.is_empty() {
        LocalChunks {
            files: Vec::new(),
            found: HashMap::new(),
        }
    } else {
        scan_sources(&meta, &todo, job.sources)?
    };
    let mut buf = vec![0u8; bundle::CHUNK_SIZE as usize];
    for &i in &todo {
        let Some(&(fi, off)) = local.found.get(&i) else {
            continue;
        };
        let c = &meta.chunks[i];
        let w = &mut buf[..c.len as usize];
        // Re-read and re-hash: the source could have changed since the scan.
        let ok = local.files[fi].read_exact_at(w, off).is_ok() && bundle::sha256_of(w) == c.sha256;
        if !ok {
            continue;
        }
        writer.write_chunk(&meta, i, w)?;
        journal.push(i, writer)?;
        p.chunks_local.fetch_add(1, Ordering::Relaxed);
        p.chunks_done.fetch_add(1, Ordering::Relaxed);
        report.chunks_local += 1;
    }
    journal.flush(writer)?;
    todo.retain(|i| !journal.written.contains(i));
    let remaining: u64 = todo.iter().map(|&i| meta.chunks[i].stored_len as u64).sum();
    p.bytes_total.store(
        p.bytes_done.load(Ordering::Relaxed) + remaining,
        Ordering::Relaxed,
    );

    // 4. The rest from the network.
    fetch_chunks(job, &meta, &todo, writer, &mut journal, &mut report)?;
    journal.flush(writer)?;

    // 5. Read the slot back and check every payload against the signed hash.
    p.verifying.store(true, Ordering::Relaxed);
    match writer.finish(&meta) {
        Ok(()) => {}
        Err(e @ DownloadError::ReadBack(_)) => {
            job.store.write(|tx| tx.ota_clear())?;
            return Err(e);
        }
        Err(e) => return Err(e),
    }
    job.store.write(|tx| tx.ota_mark_complete())?;
    Ok((meta, report))
}

fn fetch_meta(
    job: &DownloadJob<'_>,
    report: &mut DownloadReport,
) -> Result<(Vec<u8>, Option<u64>), DownloadError> {
    let mut attempt = 0;
    loop {
        match try_fetch_meta(job, report) {
            Ok(v) => return Ok(v),
            Err(Fetch::Fatal(e)) => return Err(e),
            Err(Fetch::Retry(why)) => {
                attempt += 1;
                if attempt >= job.retry.attempts {
                    return Err(DownloadError::GaveUp(why));
                }
                std::thread::sleep(job.retry.backoff * attempt);
            }
        }
    }
}

enum Fetch {
    Retry(String),
    Fatal(DownloadError),
}

impl From<DownloadError> for Fetch {
    fn from(e: DownloadError) -> Fetch {
        Fetch::Fatal(e)
    }
}

fn try_fetch_meta(
    job: &DownloadJob<'_>,
    report: &mut DownloadReport,
) -> Result<(Vec<u8>, Option<u64>), Fetch> {
    report.requests += 1;
    let mut r = job
        .client
        .get_range(job.bundle_url, 0, FIRST_FETCH)
        .map_err(Fetch::Retry)?;
    let mut meta = vec![0u8; PREAMBLE_LEN];
    read_counted(&mut r.body, &mut meta, &job.progress, report).map_err(Fetch::Retry)?;
    let pre = bundle::parse_preamble(&meta).map_err(|e| Fetch::Fatal(e.into()))?;
    // Capped by parse_preamble.
    let need = pre.meta_len() as usize;
    let first = if r.start == 0 && r.total.is_none_or(|t| t >= FIRST_FETCH) {
        // 206 for our range, or the whole file: read what this body holds of the meta.
        need.min(FIRST_FETCH as usize)
    } else {
        need
    };
    meta.resize(need, 0);
    read_counted(
        &mut r.body,
        &mut meta[PREAMBLE_LEN..first],
        &job.progress,
        report,
    )
    .map_err(Fetch::Retry)?;
    let mut total = r.total;
    if first < need {
        report.requests += 1;
        let mut r2 = job
            .client
            .get_range(job.bundle_url, first as u64, need as u64)
            .map_err(Fetch::Retry)?;
        let mut skip = first as u64 - r2.start.min(first as u64);
        if r2.start > first as u64 {
            return Err(Fetch::Retry("server skipped bytes".into()));
        }
        while skip > 0 {
            let n = skip.min(buf_len()) as usize;
            let mut sink = vec![0u8; n];
            read_counted(&mut r2.body, &mut sink, &job.progress, report).map_err(Fetch::Retry)?;
            skip -= n as u64;
        }
        read_counted(&mut r2.body, &mut meta[first..], &job.progress, report)
            .map_err(Fetch::Retry)?;
        total = total.or(r2.total);
    }
    // Only a 206 tells the file size reliably via Content-Range; a 200 says it in
    // Content-Length. Either way the signed index decides; a mismatch is caught there.
    Ok((meta, total))
}

fn buf_len() -> u64 {
    bundle::CHUNK_SIZE as u64
}

fn read_counted(
    r: &mut dyn Read,
    buf: &mut [u8],
    progress: &Progress,
    report: &mut DownloadReport,
) -> Result<(), String> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => return Err("the connection closed early".into()),
            Ok(k) => {
                n += k;
                progress.downloaded(k as u64);
                report.bytes_downloaded += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Batches chunk completions: data synced on the slot first, then one journal commit.
struct Journal<'a> {
    store: &'a Store,
    pending: Vec<u32>,
    written: HashSet<usize>,
}

impl<'a> Journal<'a> {
    fn new(store: &'a Store) -> Journal<'a> {
        Journal {
            store,
            pending: Vec::new(),
            written: HashSet::new(),
        }
    }

    fn push(&mut self, i: usize, w: &mut dyn SlotWriter) -> Result<(), DownloadError> {
        self.pending.push(i as u32);
        self.written.insert(i);
        if self.pending.len() >= BATCH_CHUNKS {
            self.flush(w)?;
        }
        Ok(())
    }

    fn flush(&mut self, w: &mut dyn SlotWriter) -> Result<(), DownloadError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        w.sync().map_err(DownloadError::Slot)?;
        let batch = std::mem::take(&mut self.pending);
        self.store.write(|tx| tx.ota_mark_done(&batch))?;
        Ok(())
    }
}

/// Groups chunk numbers into runs of adjacent stored bytes.
fn runs(todo: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &i in todo {
        match out.last_mut() {
            Some((_, end)) if *end == i => *end = i + 1,
            _ => out.push((i, i + 1)),
        }
    }
    out
}

fn fetch_chunks(
    job: &DownloadJob<'_>,
    meta: &BundleMeta,
    todo: &[usize],
    writer: &mut dyn SlotWriter,
    journal: &mut Journal<'_>,
    report: &mut DownloadReport,
) -> Result<(), DownloadError> {
    let wanted: HashSet<usize> = todo.iter().copied().collect();
    let mut failures = 0u32;
    loop {
        let left: Vec<usize> = todo
            .iter()
            .copied()
            .filter(|i| !journal.written.contains(i))
            .collect();
        let Some(&(first, end)) = runs(&left).first() else {
            return Ok(());
        };
        let (start, _) = meta.stored_range(&meta.chunks[first]);
        let (_, stop) = meta.stored_range(&meta.chunks[end - 1]);
        report.requests += 1;
        let before = journal.written.len();
        let result = job
            .client
            .get_range(job.bundle_url, start, stop)
            .map_err(StreamError::Retry)
            .and_then(|mut r| {
                // A 206 body covers this run; a 200 body is the whole file, so it serves
                // every chunk still wanted in one pass.
                let last = if r.start == start {
                    end
                } else {
                    meta.chunks.len()
                };
                stream_chunks(
                    job, meta, &mut r, first, last, &wanted, writer, journal, report,
                )
            });
        journal.flush(writer)?;
        match result {
            Ok(()) => failures = 0,
            Err(StreamError::Fatal(e)) => return Err(e),
            Err(StreamError::Retry(why)) => {
                if journal.written.len() > before {
                    failures = 0;
                }
                failures += 1;
                tracing::debug!(error = %why, failures, "update download interrupted; retrying");
                if failures >= job.retry.attempts {
                    return Err(DownloadError::GaveUp(why));
                }
                std::thread::sleep(job.retry.backoff * failures);
            }
        }
    }
}

enum StreamError {
    Retry(String),
    Fatal(DownloadError),
}

/// Reads chunks `first..last` from a body that starts at `r.start`, writing the wanted
/// ones after verification and skipping the others.
#[allow(clippy::too_many_arguments)]
fn stream_chunks(
    job: &DownloadJob<'_>,
    meta: &BundleMeta,
    r: &mut Ranged,
    first: usize,
    last: usize,
    wanted: &HashSet<usize>,
    writer: &mut dyn SlotWriter,
    journal: &mut Journal<'_>,
    report: &mut DownloadReport,
) -> Result<(), StreamError> {
    let mut pos = r.start;
    let mut buf = vec![0u8; bundle::CHUNK_SIZE as usize];
    for i in first..last {
        if !wanted.contains(&i) || journal.written.contains(&i) {
            continue;
        }
        let c = &meta.chunks[i];
        let (a, b) = meta.stored_range(c);
        // Skip to the chunk (a 200 body starts at 0; gaps hold chunks we have).
        while pos < a {
            let n = (a - pos).min(buf.len() as u64) as usize;
            read_counted(&mut r.body, &mut buf[..n], &job.progress, report)?;
            pos += n as u64;
        }
        let stored = &mut buf[..(b - a) as usize];
        read_counted(&mut r.body, stored, &job.progress, report)?;
        pos = b;
        // Verified here; a bad chunk is never written, and the request is retried.
        let plain = meta
            .decode_chunk(i, stored)
            .map_err(|e| StreamError::Retry(e.to_string()))?;
        writer
            .write_chunk(meta, i, &plain)
            .map_err(StreamError::Fatal)?;
        journal.push(i, writer).map_err(StreamError::Fatal)?;
        job.progress.chunks_done.fetch_add(1, Ordering::Relaxed);
        report.chunks_downloaded += 1;
    }
    Ok(())
}

impl From<String> for StreamError {
    fn from(s: String) -> StreamError {
        StreamError::Retry(s)
    }
}

/// Where a payload file for `slot` lives under a directory (file-backed slots).
pub fn slot_file(dir: &Path, slot: &str) -> PathBuf {
    dir.join(format!("{slot}.img"))
}

/// Installs a bundle file already on this machine (an upload): the whole file is checked
/// first — signatures, policy, every chunk and every payload hash — so a damaged or altered
/// file changes nothing; then it takes the same writer steps as a download.
pub fn install_file(
    path: &Path,
    keyring: &Keyring,
    policy: &InstallPolicy,
    progress: Arc<Progress>,
    writer: &mut dyn SlotWriter,
) -> Result<(BundleMeta, DownloadReport), DownloadError> {
    let _ = progress.started.set(Instant::now());
    bundle::verify_file(path, keyring, policy)?;
    let (f, meta) = bundle::open_file(path, keyring)?;
    let mut meta_bytes = vec![0u8; meta.data_offset as usize];
    f.read_exact_at(&mut meta_bytes, 0)
        .map_err(|source| DownloadError::Source {
            path: path.display().to_string(),
            source,
        })?;
    let mut report = DownloadReport {
        version: Some(meta.header.version.to_string()),
        total_chunks: meta.chunks.len() as u64,
        ..DownloadReport::default()
    };
    writer.begin(&meta_bytes, &meta)?;
    let p = &progress;
    p.chunks_total
        .store(meta.chunks.len() as u64, Ordering::Relaxed);
    let mut have: HashSet<usize> = HashSet::new();
    if let Some(filled) = writer.reuse_local(&meta, &[])? {
        for i in filled {
            if i < meta.chunks.len() && have.insert(i) {
                p.chunks_local.fetch_add(1, Ordering::Relaxed);
                p.chunks_done.fetch_add(1, Ordering::Relaxed);
                report.chunks_local += 1;
            }
        }
    }
    let todo: Vec<usize> = (0..meta.chunks.len())
        .filter(|i| !have.contains(i))
        .collect();
    p.bytes_total.store(
        todo.iter().map(|&i| meta.chunks[i].stored_len as u64).sum(),
        Ordering::Relaxed,
    );
    let mut stored = vec![0u8; bundle::CHUNK_SIZE as usize];
    for (n, &i) in todo.iter().enumerate() {
        let c = &meta.chunks[i];
        let (a, b) = meta.stored_range(c);
        let s = &mut stored[..(b - a) as usize];
        f.read_exact_at(s, a)
            .map_err(|source| DownloadError::Source {
                path: path.display().to_string(),
                source,
            })?;
        // Checked again: the file could have changed since the full check.
        let plain = meta.decode_chunk(i, s)?;
        writer.write_chunk(&meta, i, &plain)?;
        p.downloaded(s.len() as u64);
        p.chunks_done.fetch_add(1, Ordering::Relaxed);
        if (n + 1) % BATCH_CHUNKS == 0 {
            writer.sync().map_err(DownloadError::Slot)?;
        }
    }
    writer.sync().map_err(DownloadError::Slot)?;
    p.verifying.store(true, Ordering::Relaxed);
    writer.finish(&meta)?;
    Ok((meta, report))
}

#[cfg(test)]
mod tests {
    use super::fs_extent;

    #[test]
    fn filesystem_extent_from_the_superblock() {
        let erofs = |bits: u8, blocks: u32| {
            let mut b = vec![0u8; 4096];
            b[1024..1028].copy_from_slice(&0xE0F5_E1E2u32.to_le_bytes());
            b[1024 + 12] = bits;
            b[1024 + 36..1024 + 40].copy_from_slice(&blocks.to_le_bytes());
            b
        };
        assert_eq!(fs_extent(&erofs(12, 23_000)), Some(23_000 * 4096));
        assert_eq!(fs_extent(&erofs(9, 1)), Some(512));
        assert_eq!(fs_extent(&erofs(40, 1)), None, "absurd block size");
        assert_eq!(fs_extent(&erofs(12, 1)[..1030]), None, "cut short");
        assert_eq!(fs_extent(&[0u8; 4096]), None, "an empty slot");
        assert_eq!(fs_extent(&[0x5Au8; 4096]), None);
        assert_eq!(fs_extent(&[]), None);

        // A real FAT boot sector (what a Raspberry Pi boot slot holds), FAT16 and FAT32.
        let dir = tempfile::tempdir().unwrap();
        for (fat, mib) in [("16", 32u64), ("32", 64)] {
            let img = dir.path().join(format!("fat{fat}.img"));
            std::fs::File::create(&img)
                .unwrap()
                .set_len(mib << 20)
                .unwrap();
            let ok = std::process::Command::new("mkfs.vfat")
                .args(["-F", fat])
                .arg(&img)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("mkfs.vfat missing; run scripts/install-deps");
            assert!(ok.success());
            let head = std::fs::read(&img).unwrap()[..4096].to_vec();
            assert_eq!(fs_extent(&head), Some(mib << 20), "FAT{fat}");
        }
    }
}
