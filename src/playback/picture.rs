//! Pictures for every title: a frame from a film that has no poster, a photo turned upright
//! (EXIF orientation), any image resized to the width a screen asks for. ffmpeg makes them
//! (as an argv, on the opened fd, no network, dies with the server), at most [`MAX_AT_ONCE`]
//! at a time; results are JPEGs cached under the data directory, keyed by what they were made
//! from, and the cache is kept under a size cap.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::ffmpeg::{self, SpawnError};

/// Widths a picture is made at; a request is rounded up to the next one (the largest caps it),
/// so the cache holds a few sizes per title, not one per window width.
pub const WIDTHS: [u32; 6] = [160, 320, 480, 720, 1080, 1920];
/// Pictures made at once on the whole device.
pub const MAX_AT_ONCE: usize = 2;
/// The largest picture ffmpeg may hand back.
const MAX_BYTES: usize = 8 * 1024 * 1024;
/// How long one picture may take.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// The width to make for a request of `asked` pixels (0 or none: 320).
pub fn width_for(asked: Option<u32>) -> u32 {
    let asked = asked.filter(|w| *w > 0).unwrap_or(320);
    WIDTHS
        .iter()
        .copied()
        .find(|w| *w >= asked)
        .unwrap_or(WIDTHS[WIDTHS.len() - 1])
}

/// What a picture is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An image file (poster, cover, photo), with its EXIF orientation (1–8).
    Image { orientation: Option<u16> },
    /// A frame of a video, this far in.
    Frame { at_ms: u64 },
}

impl Source {
    /// A frame a tenth of the way in (past titles and black), at most five minutes in.
    pub fn frame_of(duration_ms: Option<u64>) -> Source {
        let at_ms = match duration_ms {
            Some(d) if d > 0 => (d / 10).min(300_000),
            _ => 0,
        };
        Source::Frame { at_ms }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("making pictures needs ffmpeg, which is not installed (Debian: apt install ffmpeg)")]
    NoFfmpeg,
    #[error("no picture could be made from this file: {0}")]
    Failed(String),
    #[error("the picture could not be stored: {0}")]
    Io(#[from] std::io::Error),
}

/// The filters that turn a picture with EXIF `orientation` upright.
fn upright(orientation: Option<u16>) -> Option<&'static str> {
    match orientation {
        Some(2) => Some("hflip"),
        Some(3) => Some("hflip,vflip"),
        Some(4) => Some("vflip"),
        Some(5) => Some("transpose=0"),
        Some(6) => Some("transpose=1"),
        Some(7) => Some("transpose=3"),
        Some(8) => Some("transpose=2"),
        _ => None,
    }
}

/// ffmpeg's arguments for one JPEG `width` pixels wide (never wider than the source) from
/// the file on fd 3.
pub fn args(source: Source, width: u32) -> Vec<OsString> {
    let mut a: Vec<String> = ["-nostdin", "-hide_banner", "-loglevel", "error"]
        .map(str::to_owned)
        .to_vec();
    a.extend(["-protocol_whitelist".into(), "file,pipe".into()]);
    let mut filters = Vec::new();
    match source {
        Source::Frame { at_ms } => {
            if at_ms > 0 {
                a.extend([
                    "-ss".into(),
                    format!("{}.{:03}", at_ms / 1000, at_ms % 1000),
                ]);
            }
        }
        Source::Image { orientation } => {
            // The scanner's EXIF orientation decides, whatever this ffmpeg would do with it
            // by itself (5.1 turns JPEGs; others do not).
            a.push("-noautorotate".into());
            if let Some(f) = upright(orientation) {
                filters.push(f.to_owned());
            }
        }
    }
    a.extend(["-i".into(), "file:/proc/self/fd/3".into()]);
    filters.push(format!("scale='min({width},iw)':-2"));
    a.extend([
        "-map".into(),
        "0:v:0".into(),
        "-frames:v".into(),
        "1".into(),
        "-vf".into(),
        filters.join(","),
        "-pix_fmt".into(),
        "yuvj420p".into(),
        "-c:v".into(),
        "mjpeg".into(),
        "-q:v".into(),
        "4".into(),
        "-f".into(),
        "image2pipe".into(),
        "pipe:1".into(),
    ]);
    a.into_iter().map(OsString::from).collect()
}

/// Makes one JPEG. Blocking: run on a blocking thread, at most [`MAX_AT_ONCE`] at a time.
pub fn make(
    ffmpeg: &Path,
    input: OwnedFd,
    source: Source,
    width: u32,
) -> Result<Vec<u8>, PictureError> {
    match ffmpeg::run_to_end(ffmpeg, args(source, width), input, MAX_BYTES, TIME_LIMIT) {
        Ok(out) if out.ok && out.stdout.starts_with(&[0xFF, 0xD8]) => Ok(out.stdout),
        Ok(out) if out.ok => Err(PictureError::Failed(
            "the file has no picture at that point".into(),
        )),
        Ok(out) => Err(PictureError::Failed(out.message)),
        Err(SpawnError::Missing) => Err(PictureError::NoFfmpeg),
        Err(e) => Err(PictureError::Failed(e.to_string())),
    }
}

/// The picture cache: `<root>/<key>.jpg`, written atomically, pruned to a size cap (oldest
/// first).
pub struct Cache {
    root: PathBuf,
    cap_bytes: u64,
    writes: AtomicU32,
}

impl Cache {
    pub fn new(root: PathBuf, cap_bytes: u64) -> std::io::Result<Cache> {
        super::session::private_dir(&root, true)?;
        // Half-written files of a server that died mid-write.
        for e in std::fs::read_dir(&root)?.filter_map(Result::ok) {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Cache {
            root,
            cap_bytes,
            writes: AtomicU32::new(0),
        })
    }

    /// The cache key of a picture: the item, what it is made from and the file's identity
    /// (size and modification time), so a replaced file gets a new picture.
    pub fn key(item_id: u64, part: &str, width: u32, len: u64, mtime_ns: i128) -> String {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{part}\0{len}\0{mtime_ns}").as_bytes(),
        );
        format!("{item_id}-{width}-{}", hex::encode(&digest.as_ref()[..8]))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}.jpg"))
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(key)).ok()
    }

    /// Stores a picture (temp file, then rename: a power cut never leaves half a JPEG under
    /// its real name) and now and then prunes the cache back under its cap.
    pub fn put(&self, key: &str, jpeg: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = self.root.join(format!("{key}.tmp"));
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?
            .write_all(jpeg)?;
        std::fs::rename(&tmp, self.path(key))?;
        if self
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(32)
        {
            self.prune()?;
        }
        Ok(())
    }

    /// Deletes the least recently written pictures until the cache is under its cap.
    pub fn prune(&self) -> std::io::Result<()> {
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(&self.root)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        if total <= self.cap_bytes {
            return Ok(());
        }
        files.sort();
        for (_, len, path) in files {
            if total <= self.cap_bytes * 9 / 10 {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn widths_round_up_and_are_capped() {
        assert_eq!(width_for(None), 320);
        assert_eq!(width_for(Some(0)), 320);
        assert_eq!(width_for(Some(1)), 160);
        assert_eq!(width_for(Some(161)), 320);
        assert_eq!(width_for(Some(1920)), 1920);
        assert_eq!(width_for(Some(100_000)), 1920);
    }

    #[test]
    fn frames_come_a_tenth_in_and_at_most_five_minutes_in() {
        assert_eq!(Source::frame_of(None), Source::Frame { at_ms: 0 });
        assert_eq!(
            Source::frame_of(Some(60_000)),
            Source::Frame { at_ms: 6_000 }
        );
        assert_eq!(
            Source::frame_of(Some(7_200_000)),
            Source::Frame { at_ms: 300_000 }
        );
    }

    #[test]
    fn no_argument_names_a_network_protocol() {
        for s in [
            Source::Frame { at_ms: 1234 },
            Source::Image {
                orientation: Some(6),
            },
        ] {
            let a: Vec<String> = args(s, 320)
                .into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert!(a.contains(&"file,pipe".to_owned()), "{a:?}");
            assert!(a.contains(&"file:/proc/self/fd/3".to_owned()), "{a:?}");
            assert!(!a.iter().any(|x| x.contains("://")), "{a:?}");
        }
    }

    fn ffmpeg() -> Option<PathBuf> {
        let p = crate::playback::session::find_ffmpeg();
        if p.is_none() {
            eprintln!("SKIPPED: ffmpeg is missing (scripts/install-deps installs it)");
        }
        p
    }

    /// (width, height) of a JPEG, from its SOF0 marker.
    fn jpeg_size(j: &[u8]) -> (u32, u32) {
        let mut i = 2;
        while i + 9 < j.len() {
            let marker = j[i + 1];
            let len = usize::from(j[i + 2]) << 8 | usize::from(j[i + 3]);
            if (0xC0..=0xC2).contains(&marker) {
                let h = u32::from(j[i + 5]) << 8 | u32::from(j[i + 6]);
                let w = u32::from(j[i + 7]) << 8 | u32::from(j[i + 8]);
                return (w, h);
            }
            i += 2 + len;
        }
        panic!("no SOF marker");
    }

    #[test]
    fn a_frame_of_a_film_and_an_upright_photo() {
        let Some(ff) = ffmpeg() else { return };
        let dir = tempfile::tempdir().unwrap();
        let film = dir.path().join("f.mkv");
        let st = Command::new(&ff)
            .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=640x360:rate=10:duration=5")
            .args(["-c:v", "libx264", "-preset", "ultrafast"])
            .arg(&film)
            .status()
            .unwrap();
        assert!(st.success());
        let fd = OwnedFd::from(std::fs::File::open(&film).unwrap());
        let j = make(&ff, fd, Source::frame_of(Some(5_000)), 320).unwrap();
        assert_eq!(jpeg_size(&j), (320, 180));
        // Never wider than the source.
        let fd = OwnedFd::from(std::fs::File::open(&film).unwrap());
        let j = make(&ff, fd, Source::frame_of(Some(5_000)), 1920).unwrap();
        assert_eq!(jpeg_size(&j), (640, 360));

        // A landscape-stored photo whose EXIF says "rotate 90° clockwise" comes out portrait.
        let photo = dir.path().join("p.jpg");
        let st = Command::new(&ff)
            .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=400x300:rate=1:duration=1")
            .args(["-frames:v", "1"])
            .arg(&photo)
            .status()
            .unwrap();
        assert!(st.success());
        let fd = OwnedFd::from(std::fs::File::open(&photo).unwrap());
        let j = make(
            &ff,
            fd,
            Source::Image {
                orientation: Some(6),
            },
            160,
        )
        .unwrap();
        assert_eq!(jpeg_size(&j), (160, 214));

        // Not a picture at all: a clear error, no panic.
        let junk = dir.path().join("junk.jpg");
        std::fs::write(&junk, b"not an image at all").unwrap();
        let fd = OwnedFd::from(std::fs::File::open(&junk).unwrap());
        assert!(matches!(
            make(&ff, fd, Source::Image { orientation: None }, 320),
            Err(PictureError::Failed(_))
        ));
    }

    #[test]
    fn the_cache_stays_under_its_cap_and_forgets_half_writes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1-320-x.tmp"), b"half").unwrap();
        let c = Cache::new(dir.path().to_owned(), 10_000).unwrap();
        assert!(!dir.path().join("1-320-x.tmp").exists());
        for n in 0..40u64 {
            c.put(&format!("{n}-320-k"), &[0u8; 1000]).unwrap();
        }
        c.prune().unwrap();
        let total: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= 10_000, "{total}");
        assert!(c.get("39-320-k").is_some(), "the newest picture is kept");
        let a = Cache::key(1, "a.mkv", 320, 10, 5);
        assert_ne!(a, Cache::key(1, "a.mkv", 320, 10, 6), "a replaced file");
        assert_ne!(a, Cache::key(1, "a.mkv", 480, 10, 5), "another width");
    }
}
