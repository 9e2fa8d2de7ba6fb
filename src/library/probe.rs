//! Facts read from inside media files, in pure Rust: Matroska/WebM (a small EBML reader)
//! and MP4/MOV (a box reader) for duration, resolution and codecs; music tags (lofty);
//! photo EXIF date and orientation (kamadak-exif). Every reader is bounded: a corrupt,
//! empty or truncated file is an error value, never a panic or an unbounded read.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Opens a file for reading without following a symlink in its last component, so a link
/// swapped in after the scanner checked the path cannot redirect the read.
pub fn open_nofollow(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the file is empty (0 bytes); copy it again from its source")]
    Empty,
    #[error("the file is cut short: {0}; copy it again from its source")]
    Truncated(String),
    #[error("the file is not a valid {format} file: {reason}")]
    Invalid {
        format: &'static str,
        reason: String,
    },
    #[error("the file could not be read: {0}")]
    Io(#[from] std::io::Error),
}

fn invalid(format: &'static str, reason: impl Into<String>) -> ProbeError {
    ProbeError::Invalid {
        format,
        reason: reason.into(),
    }
}

pub use crate::model::media::VideoFacts;

/// Tags and length of a music file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MusicFacts {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub album_artist: Option<String>,
    pub album: Option<String>,
    pub genre: Option<String>,
    pub year: Option<u16>,
    pub track: Option<u32>,
    pub disc: Option<u32>,
    pub duration_ms: Option<u64>,
    pub codec: String,
    /// The file embeds cover art.
    pub embedded_cover: bool,
}

/// What a photo's EXIF says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhotoFacts {
    pub format: String,
    /// `YYYY-MM-DDTHH:MM:SS` from DateTimeOriginal (or DateTime), camera local time.
    pub taken_at: Option<String>,
    /// EXIF orientation 1–8; 1 (or none) means upright.
    pub orientation: Option<u16>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

// ---------------------------------------------------------------------------------------
// Matroska

mod ebml_id {
    pub const EBML: u64 = 0x1A45_DFA3;
    pub const DOC_TYPE: u64 = 0x4282;
    pub const SEGMENT: u64 = 0x1853_8067;
    pub const INFO: u64 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u64 = 0x2A_D7B1;
    pub const DURATION: u64 = 0x4489;
    pub const TRACKS: u64 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u64 = 0xAE;
    pub const TRACK_TYPE: u64 = 0x83;
    pub const CODEC_ID: u64 = 0x86;
    pub const LANGUAGE: u64 = 0x22_B59C;
    pub const VIDEO: u64 = 0xE0;
    pub const PIXEL_WIDTH: u64 = 0xB0;
    pub const PIXEL_HEIGHT: u64 = 0xBA;
    pub const CLUSTER: u64 = 0x1F43_B675;
}

/// The most of Info or Tracks we read; real ones are a few hundred bytes.
const MAX_EBML_MASTER: u64 = 1024 * 1024;
/// Elements we step over before giving up on finding Info and Tracks.
const MAX_TOP_ELEMENTS: usize = 256;

/// An EBML variable-length integer; `marker` keeps the length bits (for element ids).
fn read_vint(r: &mut impl Read, keep_marker: bool) -> std::io::Result<Option<(u64, usize)>> {
    let mut first = [0u8; 1];
    if r.read(&mut first)? == 0 {
        return Ok(None);
    }
    let b = first[0];
    if b == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "an EBML number longer than 8 bytes",
        ));
    }
    let len = b.leading_zeros() as usize + 1;
    let mut value = if keep_marker {
        b as u64
    } else {
        (b as u64) & ((1u64 << (8 - len)) - 1)
    };
    let mut rest = [0u8; 7];
    r.read_exact(&mut rest[..len - 1])?;
    for &byte in &rest[..len - 1] {
        value = (value << 8) | byte as u64;
    }
    Ok(Some((value, len)))
}

/// All size bits set: "unknown size" (live streams); the element runs to its parent's end.
fn unknown_size(value: u64, len: usize) -> bool {
    value == (1u64 << (7 * len)) - 1
}

struct Element {
    id: u64,
    /// `None` for unknown size.
    size: Option<u64>,
    data_start: u64,
}

fn read_element(r: &mut (impl Read + Seek)) -> std::io::Result<Option<Element>> {
    let Some((id, _)) = read_vint(r, true)? else {
        return Ok(None);
    };
    let Some((size, len)) = read_vint(r, false)? else {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    };
    let data_start = r.stream_position()?;
    Ok(Some(Element {
        id,
        size: (!unknown_size(size, len)).then_some(size),
        data_start,
    }))
}

fn be_uint(bytes: &[u8]) -> u64 {
    bytes.iter().take(8).fold(0u64, |v, &b| (v << 8) | b as u64)
}

fn be_float(bytes: &[u8]) -> Option<f64> {
    match bytes.len() {
        4 => Some(f32::from_be_bytes(bytes.try_into().ok()?) as f64),
        8 => Some(f64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

/// Children of a master element held in memory: (id, payload).
fn children(mut data: &[u8]) -> Result<Vec<(u64, &[u8])>, ProbeError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let mut cur = std::io::Cursor::new(data);
        let (id, size) = match (read_vint(&mut cur, true), read_vint(&mut cur, false)) {
            (Ok(Some((id, _))), Ok(Some((size, len)))) => (
                id,
                if unknown_size(size, len) {
                    None
                } else {
                    Some(size)
                },
            ),
            _ => {
                return Err(ProbeError::Truncated(
                    "a Matroska header element is cut".into(),
                ));
            }
        };
        let start = cur.position() as usize;
        let size = size.unwrap_or((data.len() - start) as u64) as usize;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| ProbeError::Truncated("a Matroska header element is cut".into()))?;
        out.push((id, &data[start..end]));
        data = &data[end..];
    }
    Ok(out)
}

fn mkv_codec(id: &str) -> String {
    let friendly = match id {
        "V_MPEG4/ISO/AVC" => "h264",
        "V_MPEGH/ISO/HEVC" => "hevc",
        "V_AV1" => "av1",
        "V_VP8" => "vp8",
        "V_VP9" => "vp9",
        "V_MPEG2" => "mpeg2video",
        "V_MPEG4/ISO/ASP" | "V_MPEG4/ISO/SP" => "mpeg4",
        "A_AAC" => "aac",
        "A_OPUS" => "opus",
        "A_VORBIS" => "vorbis",
        "A_FLAC" => "flac",
        "A_AC3" => "ac3",
        "A_EAC3" => "eac3",
        "A_DTS" => "dts",
        "A_TRUEHD" => "truehd",
        "A_MPEG/L3" => "mp3",
        _ if id.starts_with("A_AAC") => "aac",
        _ if id.starts_with("A_PCM") => "pcm",
        other => return other.to_ascii_lowercase(),
    };
    friendly.to_owned()
}

/// Reads a Matroska/WebM file's Info and Tracks.
pub fn probe_mkv(path: &Path) -> Result<VideoFacts, ProbeError> {
    let file = open_nofollow(path)?;
    let file_len = file.metadata()?.len();
    if file_len == 0 {
        return Err(ProbeError::Empty);
    }
    let mut r = BufReader::with_capacity(16 * 1024, file);
    let eof = |_| ProbeError::Truncated("the Matroska header ends early".into());
    let header = read_element(&mut r)
        .map_err(eof)?
        .ok_or(ProbeError::Empty)?;
    if header.id != ebml_id::EBML {
        return Err(invalid("Matroska", "it does not start with an EBML header"));
    }
    let header_size = header
        .size
        .filter(|&s| s <= 4096)
        .ok_or_else(|| invalid("Matroska", "the EBML header has an impossible size"))?;
    let mut hbytes = vec![0u8; header_size as usize];
    r.read_exact(&mut hbytes).map_err(eof)?;
    let doc_type = children(&hbytes)?
        .into_iter()
        .find(|(id, _)| *id == ebml_id::DOC_TYPE)
        .map(|(_, v)| String::from_utf8_lossy(v).trim_end_matches('\0').to_owned())
        .unwrap_or_default();
    if doc_type != "matroska" && doc_type != "webm" {
        return Err(invalid(
            "Matroska",
            format!("its document type is {doc_type:?}"),
        ));
    }

    let segment = read_element(&mut r)
        .map_err(eof)?
        .ok_or_else(|| ProbeError::Truncated("there is no Segment after the header".into()))?;
    if segment.id != ebml_id::SEGMENT {
        return Err(invalid(
            "Matroska",
            "the header is not followed by a Segment",
        ));
    }
    let segment_end = match segment.size {
        Some(size) => {
            let end = segment.data_start.saturating_add(size);
            if end > file_len {
                return Err(ProbeError::Truncated(format!(
                    "it is {file_len} bytes but its header says {end}"
                )));
            }
            end
        }
        None => file_len,
    };

    let mut facts = VideoFacts {
        container: if doc_type == "webm" { "webm" } else { "mkv" }.to_owned(),
        ..VideoFacts::default()
    };
    let mut seen_info = false;
    let mut seen_tracks = false;
    let mut pos = segment.data_start;
    for _ in 0..MAX_TOP_ELEMENTS {
        if seen_info && seen_tracks || pos >= segment_end {
            break;
        }
        r.seek(SeekFrom::Start(pos))?;
        let Some(el) = read_element(&mut r).map_err(eof)? else {
            break;
        };
        if el.id == ebml_id::CLUSTER {
            // Media data starts; headers that matter always come before it.
            break;
        }
        let size = el
            .size
            .ok_or_else(|| invalid("Matroska", "a header element has unknown size"))?;
        let end = el.data_start.saturating_add(size);
        if end > segment_end {
            return Err(ProbeError::Truncated(format!(
                "element {:#x} runs past the end of the file",
                el.id
            )));
        }
        if el.id == ebml_id::INFO || el.id == ebml_id::TRACKS {
            if size > MAX_EBML_MASTER {
                return Err(invalid("Matroska", "a header element is implausibly large"));
            }
            let mut buf = vec![0u8; size as usize];
            r.read_exact(&mut buf).map_err(eof)?;
            if el.id == ebml_id::INFO {
                seen_info = true;
                read_info(&buf, &mut facts)?;
            } else {
                seen_tracks = true;
                read_tracks(&buf, &mut facts)?;
            }
        }
        pos = end;
    }
    if !seen_tracks {
        return Err(ProbeError::Truncated(
            "no track list was found before the media data".into(),
        ));
    }
    Ok(facts)
}

fn read_info(buf: &[u8], facts: &mut VideoFacts) -> Result<(), ProbeError> {
    let mut scale = 1_000_000u64;
    let mut duration = None;
    for (id, v) in children(buf)? {
        match id {
            ebml_id::TIMESTAMP_SCALE => scale = be_uint(v).max(1),
            ebml_id::DURATION => duration = be_float(v),
            _ => {}
        }
    }
    if let Some(d) = duration
        && d.is_finite()
        && d >= 0.0
    {
        // Duration counts ticks of `scale` nanoseconds.
        facts.duration_ms = Some((d * scale as f64 / 1_000_000.0) as u64);
    }
    Ok(())
}

fn read_tracks(buf: &[u8], facts: &mut VideoFacts) -> Result<(), ProbeError> {
    for (id, entry) in children(buf)? {
        if id != ebml_id::TRACK_ENTRY {
            continue;
        }
        let mut kind = 0u64;
        let mut codec = String::new();
        let mut lang = None;
        let mut size = (None, None);
        for (id, v) in children(entry)? {
            match id {
                ebml_id::TRACK_TYPE => kind = be_uint(v),
                ebml_id::CODEC_ID => {
                    codec = String::from_utf8_lossy(v).trim_end_matches('\0').into()
                }
                ebml_id::LANGUAGE => {
                    lang = Some(String::from_utf8_lossy(v).trim_end_matches('\0').to_owned())
                }
                ebml_id::VIDEO => {
                    for (id, v) in children(v)? {
                        match id {
                            ebml_id::PIXEL_WIDTH => size.0 = u32::try_from(be_uint(v)).ok(),
                            ebml_id::PIXEL_HEIGHT => size.1 = u32::try_from(be_uint(v)).ok(),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        match kind {
            1 if facts.video_codec.is_none() => {
                facts.video_codec = Some(mkv_codec(&codec));
                facts.width = size.0;
                facts.height = size.1;
            }
            2 => {
                facts.audio_codecs.push(mkv_codec(&codec));
                facts
                    .audio_languages
                    .push(lang.unwrap_or_else(|| "eng".into()));
            }
            17 => facts.subtitle_tracks += 1,
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// MP4 / MOV

/// Largest `moov` we read into memory; big files with huge sample tables stay well below.
const MAX_MOOV: u64 = 32 * 1024 * 1024;

/// Boxes of an in-memory container: (fourcc, payload).
/// A box's four-character type and its payload.
type Mp4Box<'a> = ([u8; 4], &'a [u8]);

fn boxes(mut data: &[u8]) -> Result<Vec<Mp4Box<'_>>, ProbeError> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let size32 = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as u64;
        let kind = [data[4], data[5], data[6], data[7]];
        let (size, header) = match size32 {
            0 => (data.len() as u64, 8),
            1 => {
                if data.len() < 16 {
                    return Err(ProbeError::Truncated("an MP4 box header is cut".into()));
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[8..16]);
                (u64::from_be_bytes(b), 16)
            }
            s => (s, 8),
        };
        if size < header as u64 || size > data.len() as u64 {
            return Err(ProbeError::Truncated(format!(
                "the MP4 box {} is cut",
                String::from_utf8_lossy(&kind)
            )));
        }
        out.push((kind, &data[header..size as usize]));
        data = &data[size as usize..];
    }
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

fn find_box<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, ProbeError> {
    Ok(boxes(data)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, v)| v))
}

fn mp4_codec(fourcc: &[u8]) -> String {
    match fourcc {
        b"avc1" | b"avc3" => "h264".into(),
        b"hvc1" | b"hev1" => "hevc".into(),
        b"av01" => "av1".into(),
        b"vp09" => "vp9".into(),
        b"mp4a" => "aac".into(),
        b"ac-3" => "ac3".into(),
        b"ec-3" => "eac3".into(),
        b"Opus" => "opus".into(),
        b"fLaC" => "flac".into(),
        b".mp3" => "mp3".into(),
        other => String::from_utf8_lossy(other).trim().to_ascii_lowercase(),
    }
}

/// Reads an MP4/MOV/M4V file's `moov` box.
pub fn probe_mp4(path: &Path) -> Result<VideoFacts, ProbeError> {
    let file = open_nofollow(path)?;
    let file_len = file.metadata()?.len();
    if file_len == 0 {
        return Err(ProbeError::Empty);
    }
    let mut r = BufReader::with_capacity(16 * 1024, file);
    let mut pos = 0u64;
    let mut first = true;
    let mut container = "mp4".to_owned();
    for _ in 0..MAX_TOP_ELEMENTS {
        if pos >= file_len {
            break;
        }
        r.seek(SeekFrom::Start(pos))?;
        let mut head = [0u8; 16];
        let avail = (file_len - pos).min(16) as usize;
        if avail < 8 {
            return Err(ProbeError::Truncated("an MP4 box header is cut".into()));
        }
        r.read_exact(&mut head[..avail])?;
        let kind: [u8; 4] = [head[4], head[5], head[6], head[7]];
        if first {
            if !matches!(
                &kind,
                b"ftyp" | b"moov" | b"free" | b"skip" | b"wide" | b"mdat"
            ) {
                return Err(invalid("MP4", "it does not start with an MP4 box"));
            }
            if &kind == b"ftyp" && &head[8..12] == b"qt  " {
                container = "mov".into();
            }
            first = false;
        }
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as u64;
        let (size, header) = match size32 {
            0 => (file_len - pos, 8),
            1 => {
                let large = u64_at(&head, 8)
                    .ok_or_else(|| ProbeError::Truncated("an MP4 box header is cut".into()))?;
                (large, 16)
            }
            s => (s, 8),
        };
        if size < header {
            return Err(invalid("MP4", "a box has an impossible size"));
        }
        let end = pos.saturating_add(size);
        if end > file_len {
            return Err(ProbeError::Truncated(format!(
                "it is {file_len} bytes but its {} box ends at {end}",
                String::from_utf8_lossy(&kind)
            )));
        }
        if &kind == b"moov" {
            if size > MAX_MOOV {
                return Err(invalid("MP4", "the movie header is implausibly large"));
            }
            r.seek(SeekFrom::Start(pos + header))?;
            let mut buf = vec![0u8; (size - header) as usize];
            r.read_exact(&mut buf)?;
            let mut facts = read_moov(&buf)?;
            facts.container = container;
            return Ok(facts);
        }
        pos = end;
    }
    Err(invalid("MP4", "there is no movie header (moov box)"))
}

fn read_moov(moov: &[u8]) -> Result<VideoFacts, ProbeError> {
    let mut facts = VideoFacts::default();
    if let Some(mvhd) = find_box(moov, b"mvhd")? {
        let (scale, duration) = if mvhd.first() == Some(&1) {
            (u32_at(mvhd, 20), u64_at(mvhd, 24))
        } else {
            (u32_at(mvhd, 12), u32_at(mvhd, 16).map(u64::from))
        };
        if let (Some(scale), Some(d)) = (scale, duration)
            && scale > 0
            && d != u64::MAX
            && d != u32::MAX as u64
        {
            facts.duration_ms = Some((d as u128 * 1000 / scale as u128) as u64);
        }
    }
    for (kind, trak) in boxes(moov)? {
        if &kind != b"trak" {
            continue;
        }
        let Some(mdia) = find_box(trak, b"mdia")? else {
            continue;
        };
        let handler = find_box(mdia, b"hdlr")?
            .and_then(|h| h.get(8..12))
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let language = find_box(mdia, b"mdhd")?.and_then(|m| {
            let at = if m.first() == Some(&1) { 32 } else { 20 };
            let packed = u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]);
            let chars: String = (0..3)
                .rev()
                .map(|i| (((packed >> (i * 5)) & 0x1f) as u8 + 0x60) as char)
                .collect();
            chars
                .chars()
                .all(|c| c.is_ascii_lowercase())
                .then_some(chars)
        });
        let codec = find_box(mdia, b"minf")?
            .map(|minf| find_box(minf, b"stbl"))
            .transpose()?
            .flatten()
            .map(|stbl| find_box(stbl, b"stsd"))
            .transpose()?
            .flatten()
            .and_then(|stsd| stsd.get(12..16).map(mp4_codec));
        match handler.as_slice() {
            b"vide" if facts.video_codec.is_none() => {
                facts.video_codec = codec;
                if let Some(tkhd) = find_box(trak, b"tkhd")? {
                    let at = if tkhd.first() == Some(&1) { 88 } else { 76 };
                    facts.width = u32_at(tkhd, at).map(|w| w >> 16);
                    facts.height = u32_at(tkhd, at + 4).map(|h| h >> 16);
                }
            }
            b"soun" => {
                facts.audio_codecs.push(codec.unwrap_or_default());
                facts
                    .audio_languages
                    .push(language.unwrap_or_else(|| "und".into()));
            }
            b"sbtl" | b"subt" | b"text" | b"clcp" => facts.subtitle_tracks += 1,
            _ => {}
        }
    }
    if facts.video_codec.is_none() && facts.audio_codecs.is_empty() {
        return Err(invalid("MP4", "it has no video or audio track"));
    }
    Ok(facts)
}

// ---------------------------------------------------------------------------------------
// Music and photos

/// Reads a music file's tags and length with lofty.
pub fn probe_music(path: &Path) -> Result<MusicFacts, ProbeError> {
    use lofty::prelude::*;
    let file = open_nofollow(path)?;
    if file.metadata()?.len() == 0 {
        return Err(ProbeError::Empty);
    }
    let probe = lofty::probe::Probe::new(BufReader::new(file))
        .guess_file_type()
        .map_err(ProbeError::Io)?;
    let codec = probe
        .file_type()
        .map(|t| format!("{t:?}").to_ascii_lowercase())
        .unwrap_or_else(|| "unknown".into());
    let tagged = probe.read().map_err(|e| invalid("audio", e.to_string()))?;
    let mut facts = MusicFacts {
        codec,
        ..MusicFacts::default()
    };
    let duration = tagged.properties().duration();
    if !duration.is_zero() {
        facts.duration_ms = Some(duration.as_millis() as u64);
    }
    if let Some(tag) = tagged.primary_tag().or_else(|| tagged.first_tag()) {
        let keep = |s: Option<std::borrow::Cow<'_, str>>| {
            s.map(|v| v.trim().chars().take(512).collect::<String>())
                .filter(|v| !v.is_empty())
        };
        facts.title = keep(tag.title());
        facts.artist = keep(tag.artist());
        facts.album = keep(tag.album());
        facts.genre = keep(tag.genre());
        facts.album_artist = tag
            .get_string(lofty::tag::ItemKey::AlbumArtist)
            .map(|s| s.trim().chars().take(512).collect::<String>())
            .filter(|s| !s.is_empty());
        facts.year = tag.date().map(|d| d.year).filter(|y| *y > 0);
        facts.track = tag.track();
        facts.disc = tag.disk();
        facts.embedded_cover = !tag.pictures().is_empty();
    }
    Ok(facts)
}

fn image_format(magic: &[u8]) -> Option<&'static str> {
    match magic {
        [0xFF, 0xD8, 0xFF, ..] => Some("jpeg"),
        [0x89, b'P', b'N', b'G', ..] => Some("png"),
        [b'G', b'I', b'F', b'8', ..] => Some("gif"),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Some("webp"),
        [
            _,
            _,
            _,
            _,
            b'f',
            b't',
            b'y',
            b'p',
            b'h',
            b'e',
            b'i',
            b'c' | b'f' | b'x',
            ..,
        ] => Some("heic"),
        [
            _,
            _,
            _,
            _,
            b'f',
            b't',
            b'y',
            b'p',
            b'm',
            b'i',
            b'f',
            b'1',
            ..,
        ] => Some("heic"),
        [
            _,
            _,
            _,
            _,
            b'f',
            b't',
            b'y',
            b'p',
            b'a',
            b'v',
            b'i',
            b'f',
            ..,
        ] => Some("avif"),
        [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => Some("tiff"),
        _ => None,
    }
}

/// Checks a photo's format by its magic bytes and reads its EXIF date and orientation.
/// A photo without EXIF is fine; a file that is no image at all is an error.
pub fn probe_photo(path: &Path) -> Result<PhotoFacts, ProbeError> {
    let mut file = open_nofollow(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Err(ProbeError::Empty);
    }
    let mut magic = [0u8; 16];
    let n = read_up_to(&mut file, &mut magic)?;
    let format = image_format(&magic[..n])
        .ok_or_else(|| invalid("image", "its first bytes match no image format"))?;
    let mut facts = PhotoFacts {
        format: format.to_owned(),
        ..PhotoFacts::default()
    };
    if format == "png" && n >= 16 {
        // IHDR follows the signature: width and height at bytes 16..24.
        let mut ihdr = [0u8; 8];
        file.seek(SeekFrom::Start(16))?;
        if read_up_to(&mut file, &mut ihdr)? == 8 {
            facts.width = u32_at(&ihdr, 0);
            facts.height = u32_at(&ihdr, 4);
        }
    }
    file.seek(SeekFrom::Start(0))?;
    // EXIF lives near the start; cap what the EXIF reader may pull in.
    let mut limited = BufReader::new(file.take(16 * 1024 * 1024));
    if let Ok(exif) = exif::Reader::new().read_from_container(&mut limited) {
        use exif::{In, Tag, Value};
        for tag in [Tag::DateTimeOriginal, Tag::DateTimeDigitized, Tag::DateTime] {
            if facts.taken_at.is_some() {
                break;
            }
            if let Some(f) = exif.get_field(tag, In::PRIMARY)
                && let Value::Ascii(ref v) = f.value
                && let Some(raw) = v.first()
                && let Ok(dt) = exif::DateTime::from_ascii(raw)
                && dt.year > 0
            {
                facts.taken_at = Some(format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second
                ));
            }
        }
        facts.orientation = exif
            .get_field(Tag::Orientation, In::PRIMARY)
            .and_then(|f| f.value.get_uint(0))
            .and_then(|o| u16::try_from(o).ok())
            .filter(|o| (1..=8).contains(o));
        for (tag, slot) in [
            (Tag::PixelXDimension, &mut facts.width),
            (Tag::PixelYDimension, &mut facts.height),
        ] {
            if slot.is_none() {
                *slot = exif
                    .get_field(tag, In::PRIMARY)
                    .and_then(|f| f.value.get_uint(0));
            }
        }
    }
    Ok(facts)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ebml(id: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        assert!(payload.len() < 0x3fff);
        v.push(0x40 | (payload.len() >> 8) as u8);
        v.push(payload.len() as u8);
        v.extend_from_slice(payload);
        v
    }

    fn tiny_mkv() -> Vec<u8> {
        let header = ebml(&[0x1A, 0x45, 0xDF, 0xA3], &ebml(&[0x42, 0x82], b"matroska"));
        let info = ebml(
            &[0x15, 0x49, 0xA9, 0x66],
            &[
                ebml(&[0x2A, 0xD7, 0xB1], &[0x0F, 0x42, 0x40]),
                ebml(&[0x44, 0x89], &2500.0f64.to_be_bytes()),
            ]
            .concat(),
        );
        let video = ebml(
            &[0xAE],
            &[
                ebml(&[0x83], &[1]),
                ebml(&[0x86], b"V_MPEG4/ISO/AVC"),
                ebml(
                    &[0xE0],
                    &[ebml(&[0xB0], &[0x01, 0x40]), ebml(&[0xBA], &[0xF0])].concat(),
                ),
            ]
            .concat(),
        );
        let audio = ebml(
            &[0xAE],
            &[
                ebml(&[0x83], &[2]),
                ebml(&[0x86], b"A_AAC"),
                ebml(&[0x22, 0xB5, 0x9C], b"ger"),
            ]
            .concat(),
        );
        let tracks = ebml(&[0x16, 0x54, 0xAE, 0x6B], &[video, audio].concat());
        let segment = ebml(&[0x18, 0x53, 0x80, 0x67], &[info, tracks].concat());
        [header, segment].concat()
    }

    #[test]
    fn mkv_facts_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mkv");
        let bytes = tiny_mkv();
        std::fs::write(&p, &bytes).unwrap();
        let f = probe_mkv(&p).unwrap();
        assert_eq!(f.duration_ms, Some(2500));
        assert_eq!((f.width, f.height), (Some(320), Some(240)));
        assert_eq!(f.video_codec.as_deref(), Some("h264"));
        assert_eq!(f.audio_codecs, vec!["aac"]);
        assert_eq!(f.audio_languages, vec!["ger"]);
        // Every shorter prefix is an error, never a panic.
        for cut in 0..bytes.len() {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            assert!(probe_mkv(&p).is_err(), "prefix of {cut} bytes was accepted");
        }
        // Random byte flips must not panic.
        let mut seed = 7u32;
        for _ in 0..500 {
            let mut b = bytes.clone();
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (seed as usize >> 8) % b.len();
            b[i] = (seed >> 16) as u8;
            std::fs::write(&p, &b).unwrap();
            let _ = probe_mkv(&p);
            let _ = probe_mp4(&p);
        }
    }

    fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn mp4_facts_and_damage() {
        let mut mvhd = vec![0u8; 100];
        mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
        mvhd[16..20].copy_from_slice(&4200u32.to_be_bytes());
        let mut tkhd = vec![0u8; 84];
        tkhd[76..80].copy_from_slice(&(640u32 << 16).to_be_bytes());
        tkhd[80..84].copy_from_slice(&(360u32 << 16).to_be_bytes());
        let mut hdlr = vec![0u8; 24];
        hdlr[8..12].copy_from_slice(b"vide");
        let mut stsd = vec![0u8; 16];
        stsd[12..16].copy_from_slice(b"avc1");
        let stbl = mp4_box(b"stbl", &mp4_box(b"stsd", &stsd));
        let minf = mp4_box(b"minf", &stbl);
        let mdia = mp4_box(b"mdia", &[mp4_box(b"hdlr", &hdlr), minf].concat());
        let trak = mp4_box(b"trak", &[mp4_box(b"tkhd", &tkhd), mdia].concat());
        let moov = mp4_box(b"moov", &[mp4_box(b"mvhd", &mvhd), trak].concat());
        let file = [
            mp4_box(b"ftyp", b"isom\0\0\0\0"),
            moov,
            mp4_box(b"mdat", &[0; 64]),
        ]
        .concat();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mp4");
        std::fs::write(&p, &file).unwrap();
        let f = probe_mp4(&p).unwrap();
        assert_eq!(f.duration_ms, Some(4200));
        assert_eq!((f.width, f.height), (Some(640), Some(360)));
        assert_eq!(f.video_codec.as_deref(), Some("h264"));
        std::fs::write(&p, b"not a video at all\n").unwrap();
        assert!(matches!(probe_mp4(&p), Err(ProbeError::Invalid { .. })));
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(probe_mp4(&p), Err(ProbeError::Empty)));
        for cut in 0..file.len() - 72 {
            std::fs::write(&p, &file[..cut]).unwrap();
            assert!(probe_mp4(&p).is_err(), "prefix of {cut} bytes was accepted");
        }
    }

    #[test]
    fn symlinks_are_not_followed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        assert!(open_nofollow(&dir.path().join("real")).is_ok());
        assert!(open_nofollow(&dir.path().join("link")).is_err());
    }
}
