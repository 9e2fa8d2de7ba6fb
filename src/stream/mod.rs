//! Serving media bytes: byte ranges, signed media URLs, subtitles.
//!
//! Security-sensitive: [`open_in_root`] is the only way a stored item path becomes an open
//! file, and it refuses anything that would leave the library folder (`..`, absolute parts,
//! symbolic links). [`serve_file`] streams from the open file in 256 KiB chunks read off the
//! async runtime; a file is never read into memory whole.

pub mod range;
pub mod signed;
pub mod subtitles;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use range::RangePlan;

/// Bytes read per disk read and sent per body frame.
pub const CHUNK: usize = 256 * 1024;

/// Opens `rel` under `root` for reading, refusing any way out of `root`: empty, absolute,
/// `.` or `..` components, a symbolic link anywhere below the root, or a non-regular file.
pub fn open_in_root(root: &Path, rel: &str) -> std::io::Result<File> {
    let denied = || {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "path leaves the library folder",
        )
    };
    if rel.is_empty() || rel.contains('\0') || rel.starts_with('/') || rel.contains('\\') {
        return Err(denied());
    }
    let rel_path = Path::new(rel);
    if !rel_path
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        || rel
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(denied());
    }
    // Every component is checked with lstat: no link may stand in for a folder or the file.
    let mut cur = root.to_path_buf();
    for c in rel_path.components() {
        cur.push(c);
        let meta = std::fs::symlink_metadata(&cur)?;
        if meta.file_type().is_symlink() {
            return Err(denied());
        }
    }
    let canonical = std::fs::canonicalize(&cur)?;
    if !canonical.starts_with(root) {
        return Err(denied());
    }
    let file = crate::library::probe::open_nofollow(&canonical)?;
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
/// suffix ranges, 416 for unsatisfiable ones.
pub fn serve_file(file: File, content_type: &str, req: &HeaderMap, head: bool) -> Response {
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return crate::web::ApiError::internal(e).into_response(),
    };
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
        return (StatusCode::NOT_MODIFIED, headers).into_response();
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
            return (StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response();
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
        return (status, headers).into_response();
    }
    let body = body_from(file, segments, total);
    (status, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_in_root_refuses_every_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/ok.mkv"), b"x").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link.mkv")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("inner")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        assert!(open_in_root(&root, "sub/ok.mkv").is_ok());
        let refused = [
            "",
            "/etc/passwd",
            "../secret",
            "sub/../../secret",
            "sub/./ok.mkv",
            "sub//ok.mkv",
            "link.mkv",
            "up/secret",
            "inner/ok.mkv",
            "sub",
            "sub\\ok.mkv",
            "missing.mkv",
            "sub/ok.mkv\0",
        ];
        for rel in refused {
            assert!(open_in_root(&root, rel).is_err(), "{rel:?} was opened");
        }
    }
}
