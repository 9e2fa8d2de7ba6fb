//! Security-sensitive: guards the byte path out of library folders. [`open_in_root`] is the
//! only way a stored item path becomes an open file (streams, artwork, subtitles, DLNA), and
//! it refuses anything that would leave the library folder (`..`, absolute parts, symbolic
//! links), resolving beneath an open descriptor of the folder so a link swapped in while the
//! file is opened cannot lead out. Also: byte ranges, signed media URLs, subtitles.
//! [`serve_file`] streams from the open file in 256 KiB chunks read off the async runtime; a
//! file is never read into memory whole.

pub mod access;
pub mod range;
pub mod signed;
pub mod subtitles;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use range::RangePlan;

/// Bytes read per disk read and sent per body frame.
pub const CHUNK: usize = 256 * 1024;

/// Opens `rel` under `root` for reading, refusing any way out of `root`: empty, absolute,
/// `.` or `..` components, a symbolic link anywhere below the root, or a non-regular file.
///
/// The path is resolved by the kernel beneath an open descriptor of the root, never as a
/// whole path string, so a folder swapped for a symbolic link while the file is being opened
/// (a rename racing the open) cannot lead out: `openat2` with `RESOLVE_BENEATH` and
/// `RESOLVE_NO_SYMLINKS`, or, where the kernel or a seccomp filter refuses `openat2`, one
/// `openat(O_NOFOLLOW)` per component ([`open_in_root_walk`]).
pub fn open_in_root(root: &Path, rel: &str) -> std::io::Result<File> {
    check_relative(rel)?;
    let dir = open_root(root)?;
    let file = match open_beneath_openat2(&dir, rel) {
        Err(e) if openat2_unavailable(&e) => open_beneath_walk(&dir, rel),
        other => other,
    };
    regular_file(file.map_err(way_out)?)
}

/// [`open_in_root`] without `openat2`: the fallback, callable on its own so it is tested
/// on kernels that have `openat2` too.
pub fn open_in_root_walk(root: &Path, rel: &str) -> std::io::Result<File> {
    check_relative(rel)?;
    let dir = open_root(root)?;
    regular_file(open_beneath_walk(&dir, rel).map_err(way_out)?)
}

fn denied() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "path leaves the library folder",
    )
}

/// The lexical checks: a stored path is relative, plain components only.
fn check_relative(rel: &str) -> std::io::Result<()> {
    if rel.is_empty() || rel.contains('\0') || rel.starts_with('/') || rel.contains('\\') {
        return Err(denied());
    }
    let plain = Path::new(rel)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain
        || rel
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(denied());
    }
    Ok(())
}

/// The library folder itself, the anchor every lookup starts from. It is the folder the
/// owner chose (stored canonical), so it may be reached through links above it.
fn open_root(root: &Path) -> std::io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Flags of the final open: never follow a link, never wait (a FIFO would block an
/// `O_RDONLY` open until a writer came), never become a controlling terminal.
fn file_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY
}

fn open_beneath_openat2(dir: &OwnedFd, rel: &str) -> std::io::Result<File> {
    let how = OpenHow::new().flags(file_flags()).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    );
    let fd = nix::fcntl::openat2(dir.as_raw_fd(), rel, how)?;
    // SAFETY: `openat2` just returned this descriptor and nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// `openat2` missing (ENOSYS: a kernel before 5.6), filtered (EPERM from a seccomp
/// profile), or its flags unknown (E2BIG, EINVAL on an early 5.x).
fn openat2_unavailable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENOSYS | nix::libc::EPERM | nix::libc::E2BIG | nix::libc::EINVAL)
    )
}

/// One `openat` per component, each folder with `O_NOFOLLOW | O_DIRECTORY` relative to the
/// descriptor of the one before: a link anywhere is refused (ELOOP or ENOTDIR), and a
/// folder renamed after it was opened is still the folder that was checked.
fn open_beneath_walk(root: &OwnedFd, rel: &str) -> std::io::Result<File> {
    let mut parts = rel.split('/').peekable();
    let mut dir: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        let at = dir.as_ref().unwrap_or(root).as_raw_fd();
        if parts.peek().is_none() {
            let fd = nix::fcntl::openat(Some(at), part, file_flags(), Mode::empty())?;
            // SAFETY: `openat` just returned this descriptor and nothing else owns it.
            return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        let fd = nix::fcntl::openat(
            Some(at),
            part,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: `openat` just returned this descriptor and nothing else owns it.
        dir = Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Err(denied())
}

/// The kernel's words for "a link or a way out was in the path" become one plain refusal.
fn way_out(e: std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(nix::libc::ELOOP | nix::libc::EXDEV | nix::libc::ENOTDIR) => std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "a symbolic link or a way out of the library folder is in the path",
        ),
        _ => e,
    }
}

/// Only regular files are media: not folders, devices, FIFOs or sockets.
fn regular_file(file: File) -> std::io::Result<File> {
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// One piece of a response body: literal bytes or a span of the file.
enum Segment {
    Literal(Bytes),
    File { start: u64, len: u64 },
}

/// A response body fed by a task that reads the file chunk by chunk.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(http_body::Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

fn body_from(file: Arc<File>, segments: Vec<Segment>, total: u64) -> Body {
    // One chunk read ahead while one is being sent is enough to keep the socket busy;
    // more only multiplies the memory each open stream holds.
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        for seg in segments {
            match seg {
                Segment::Literal(b) => {
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
                Segment::File { mut start, len } => {
                    let end = start + len;
                    while start < end {
                        let want = ((end - start) as usize).min(CHUNK);
                        let f = file.clone();
                        let read = tokio::task::spawn_blocking(move || {
                            // Read into the vector's spare capacity: no zero-fill of a buffer
                            // that the read overwrites anyway (a third of the copying work).
                            let mut buf = Vec::with_capacity(want);
                            let mut reader = &*f;
                            reader.seek(SeekFrom::Start(start))?;
                            reader.take(want as u64).read_to_end(&mut buf)?;
                            if buf.len() < want {
                                // The file shrank under us: end the body rather than pad it.
                                return Err(std::io::Error::new(
                                    std::io::ErrorKind::UnexpectedEof,
                                    "the file got shorter while it was being sent",
                                ));
                            }
                            Ok(Bytes::from(buf))
                        })
                        .await;
                        let chunk = match read {
                            Ok(r) => r,
                            Err(e) => Err(std::io::Error::other(e)),
                        };
                        let failed = chunk.is_err();
                        if tx.send(chunk).await.is_err() || failed {
                            return;
                        }
                        start += want as u64;
                    }
                }
            }
        }
    });
    Body::new(ChannelBody {
        rx,
        remaining: total,
    })
}

fn boundary() -> String {
    let mut b = [0u8; 12];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    format!("hearth-{}", hex::encode(b))
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Answers GET or HEAD for an open file: conditional requests, single and multiple ranges,
/// suffix ranges, 416 for unsatisfiable ones. Fails only when the open file cannot be
/// looked at (its metadata); the front end says so in its own terms.
pub fn serve_file(
    file: File,
    content_type: &str,
    req: &HeaderMap,
    head: bool,
) -> std::io::Result<Response> {
    let meta = file.metadata()?;
    let len = meta.len();
    let mtime_ns = (meta.mtime().max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec().max(0) as u64);
    let etag = range::etag(len, mtime_ns);
    let last_modified = range::http_date(meta.mtime().max(0) as u64);
    let hv = |name: header::HeaderName| req.get(name).and_then(|v| v.to_str().ok());

    let mut headers = HeaderMap::new();
    set(&mut headers, header::ETAG, &etag);
    set(&mut headers, header::LAST_MODIFIED, &last_modified);
    set(&mut headers, header::ACCEPT_RANGES, "bytes");
    set(
        &mut headers,
        header::CACHE_CONTROL,
        "private, max-age=0, must-revalidate",
    );

    if range::none_match_hits(hv(header::IF_NONE_MATCH), &etag) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    let plan = if range::if_range_allows(hv(header::IF_RANGE), &etag, &last_modified) {
        range::plan(hv(header::RANGE), len)
    } else {
        RangePlan::Full
    };
    let file = Arc::new(file);
    let (status, segments, total) = match plan {
        RangePlan::Unsatisfiable => {
            set(
                &mut headers,
                header::CONTENT_RANGE,
                &format!("bytes */{len}"),
            );
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response());
        }
        RangePlan::Full => {
            set(&mut headers, header::CONTENT_TYPE, content_type);
            (StatusCode::OK, vec![Segment::File { start: 0, len }], len)
        }
        RangePlan::Partial(ranges) if ranges.len() == 1 => {
            let (s, e) = ranges[0];
            set(&mut headers, header::CONTENT_TYPE, content_type);
            set(
                &mut headers,
                header::CONTENT_RANGE,
                &format!("bytes {s}-{e}/{len}"),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                vec![Segment::File {
                    start: s,
                    len: e - s + 1,
                }],
                e - s + 1,
            )
        }
        RangePlan::Partial(ranges) => {
            let b = boundary();
            set(
                &mut headers,
                header::CONTENT_TYPE,
                &format!("multipart/byteranges; boundary={b}"),
            );
            let mut segs = Vec::new();
            let mut total = 0u64;
            for (i, (s, e)) in ranges.iter().enumerate() {
                let part_head = format!(
                    "{}--{b}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {s}-{e}/{len}\r\n\r\n",
                    if i == 0 { "" } else { "\r\n" }
                );
                total += part_head.len() as u64 + (e - s + 1);
                segs.push(Segment::Literal(Bytes::from(part_head)));
                segs.push(Segment::File {
                    start: *s,
                    len: e - s + 1,
                });
            }
            let tail = format!("\r\n--{b}--\r\n");
            total += tail.len() as u64;
            segs.push(Segment::Literal(Bytes::from(tail)));
            (StatusCode::PARTIAL_CONTENT, segs, total)
        }
    };
    set(&mut headers, header::CONTENT_LENGTH, &total.to_string());
    if head {
        return Ok((status, headers).into_response());
    }
    let body = body_from(file, segments, total);
    Ok((status, headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Opener = fn(&Path, &str) -> std::io::Result<File>;

    /// Both ways of opening beneath the root: the `openat2` one, and the walk that stands
    /// in for it where `openat2` is refused.
    fn openers() -> Vec<(&'static str, Opener)> {
        fn via_openat2(root: &Path, rel: &str) -> std::io::Result<File> {
            check_relative(rel)?;
            let dir = open_root(root)?;
            regular_file(open_beneath_openat2(&dir, rel).map_err(way_out)?)
        }
        vec![
            ("open_in_root", open_in_root),
            ("openat2", via_openat2),
            ("walk", open_in_root_walk),
        ]
    }

    #[test]
    fn open_in_root_refuses_every_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("sub/ok.mkv"), b"x").unwrap();
        std::fs::write(root.join("sub/deeper/ok.mkv"), b"y").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/ok.mkv"), b"o").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link.mkv")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("inner")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("sub/rel")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root", root.join("magic")).unwrap();
        std::os::unix::fs::symlink("ok.mkv", root.join("sub/same-dir.mkv")).unwrap();
        nix::unistd::mkfifo(&root.join("sub/fifo.mkv"), Mode::from_bits_truncate(0o600)).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let refused = [
            "",
            "/etc/passwd",
            "../secret",
            "sub/../../secret",
            "sub/./ok.mkv",
            "sub//ok.mkv",
            "link.mkv",
            "up/secret",
            "up/root/sub/ok.mkv",
            "inner/ok.mkv",
            "sub/rel/ok.mkv",
            "magic/etc/passwd",
            "sub/same-dir.mkv",
            "sub",
            "sub/fifo.mkv",
            "sub/ok.mkv/more",
            "sub\\ok.mkv",
            "missing.mkv",
            "sub/ok.mkv\0",
        ];
        for (name, open) in openers() {
            if name == "openat2" {
                let dirfd = open_root(&root).unwrap();
                if let Err(e) = open_beneath_openat2(&dirfd, "sub/ok.mkv")
                    && openat2_unavailable(&e)
                {
                    eprintln!("openat2 is not available here ({e}); only the walk is tested");
                    continue;
                }
            }
            let mut got = String::new();
            std::io::Read::read_to_string(&mut open(&root, "sub/ok.mkv").unwrap(), &mut got)
                .unwrap();
            assert_eq!(got, "x", "{name}");
            assert!(open(&root, "sub/deeper/ok.mkv").is_ok(), "{name}");
            for rel in refused {
                assert!(open(&root, rel).is_err(), "{name}: {rel:?} was opened");
            }
        }
    }

    /// A folder swapped for a link after it was looked at is still refused: the walk holds
    /// the folder it opened, and a link in its place is never followed.
    #[test]
    fn a_folder_swapped_for_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("film")).unwrap();
        std::fs::write(root.join("film/a.mkv"), b"real").unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/a.mkv"), b"foreign").unwrap();
        std::fs::rename(root.join("film"), dir.path().join("parked")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("film")).unwrap();
        for (name, open) in openers() {
            let e = open(&root, "film/a.mkv").expect_err(name);
            if name == "openat2" && openat2_unavailable(&e) {
                // qemu-user (the aarch64 tier) and old kernels have no openat2: the other
                // openers, which fall back to the walk, are what such a device runs.
                eprintln!("openat2 is not available here ({e}); only the walk is tested");
                continue;
            }
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{name}: {e}"
            );
        }
    }
}
