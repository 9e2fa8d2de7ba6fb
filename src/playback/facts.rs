//! What a file holds, as the playback decision needs it: container, every stream with its codec,
//! profile, bit depth, channels and bitrate. Read from `ffprobe -of json` output (the scanner's
//! own header readers know less), parsed here without trusting any of it.

use serde::{Deserialize, Serialize};

/// The facts of one media file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaFacts {
    /// ffprobe's format names, e.g. `["matroska", "webm"]` or `["mov", "mp4", "m4a", …]`.
    pub containers: Vec<String>,
    pub duration_ms: Option<u64>,
    /// Whole-file bitrate in bits per second.
    pub bitrate: Option<u64>,
    pub video: Option<VideoStream>,
    pub audio: Vec<AudioStream>,
    pub subtitles: Vec<SubtitleStream>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoStream {
    /// Index of the stream in the file (ffmpeg's `0:N`).
    pub index: u32,
    /// ffmpeg codec name: `h264`, `hevc`, `mpeg4`, `vp9`, `av1`, …
    pub codec: String,
    /// `High`, `Main 10`, …
    pub profile: Option<String>,
    /// ffprobe's level (H.264: 41 for 4.1; HEVC: 120 for 4.0).
    pub level: Option<i32>,
    pub bit_depth: u8,
    pub width: u32,
    pub height: u32,
    pub bitrate: Option<u64>,
    /// Interlaced content needs deinterlacing when converted.
    pub interlaced: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioStream {
    pub index: u32,
    /// `aac`, `ac3`, `eac3`, `dts`, `mp3`, `opus`, `flac`, `truehd`, …
    pub codec: String,
    pub channels: u8,
    pub language: Option<String>,
    pub bitrate: Option<u64>,
    pub default: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubtitleStream {
    pub index: u32,
    /// `subrip`, `ass`, `ssa`, `webvtt`, `mov_text`, `hdmv_pgs_subtitle`, `dvd_subtitle`, …
    pub codec: String,
    pub language: Option<String>,
    pub forced: bool,
}

impl SubtitleStream {
    /// Text subtitles can be converted to WebVTT; image subtitles must be burned in.
    pub fn is_text(&self) -> bool {
        matches!(
            self.codec.as_str(),
            "subrip" | "srt" | "ass" | "ssa" | "webvtt" | "mov_text" | "text"
        )
    }
}

/// ffprobe's output could not be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FactsError {
    #[error("the file could not be read as media: {0}")]
    Unreadable(String),
    #[error("the file has no video or audio stream")]
    NoStreams,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    format_name: Option<String>,
    duration: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProbeStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    profile: Option<String>,
    level: Option<i32>,
    width: Option<u32>,
    height: Option<u32>,
    pix_fmt: Option<String>,
    bits_per_raw_sample: Option<String>,
    field_order: Option<String>,
    channels: Option<u8>,
    bit_rate: Option<String>,
    disposition: Option<Disposition>,
    tags: Option<Tags>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Disposition {
    default: u8,
    forced: u8,
    attached_pic: u8,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Tags {
    language: Option<String>,
    #[serde(rename = "BPS")]
    bps: Option<String>,
}

/// Bit depth from the pixel format (`yuv420p10le` → 10), or ffprobe's raw sample size.
fn bit_depth(pix_fmt: Option<&str>, raw: Option<&str>) -> u8 {
    if let Some(b) = raw.and_then(|r| r.parse::<u8>().ok()).filter(|b| *b > 0) {
        return b;
    }
    let Some(p) = pix_fmt else { return 8 };
    for (tag, depth) in [
        ("p10", 10),
        ("p12", 12),
        ("p14", 14),
        ("p16", 16),
        ("p9", 9),
    ] {
        if p.contains(tag) {
            return depth;
        }
    }
    8
}

fn language(tags: &Option<Tags>) -> Option<String> {
    tags.as_ref()
        .and_then(|t| t.language.clone())
        .filter(|l| !l.is_empty() && l != "und")
}

fn bitrate(own: &Option<String>, tags: &Option<Tags>) -> Option<u64> {
    own.as_deref()
        .and_then(|b| b.parse().ok())
        .or_else(|| tags.as_ref()?.bps.as_deref()?.parse().ok())
}

/// Parses `ffprobe -of json -show_format -show_streams` output. At most 64 streams of each
/// kind are kept; a cover picture stored as a video stream is not the film's video.
pub fn from_ffprobe_json(json: &[u8]) -> Result<MediaFacts, FactsError> {
    let probe: Probe =
        serde_json::from_slice(json).map_err(|e| FactsError::Unreadable(e.to_string()))?;
    let mut facts = MediaFacts::default();
    if let Some(f) = &probe.format {
        facts.containers = f
            .format_name
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        facts.duration_ms = f
            .duration
            .as_deref()
            .and_then(|d| d.parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(|d| (d * 1000.0) as u64);
        facts.bitrate = f.bit_rate.as_deref().and_then(|b| b.parse().ok());
    }
    for s in probe.streams {
        let disposition = s.disposition.as_ref();
        let codec = s.codec_name.clone().unwrap_or_default();
        match s.codec_type.as_deref() {
            Some("video") if facts.video.is_none() => {
                if disposition.is_some_and(|d| d.attached_pic == 1)
                    || codec == "mjpeg"
                    || codec == "png"
                {
                    continue;
                }
                facts.video = Some(VideoStream {
                    index: s.index,
                    codec,
                    profile: s.profile.clone(),
                    level: s.level.filter(|l| *l > 0),
                    bit_depth: bit_depth(s.pix_fmt.as_deref(), s.bits_per_raw_sample.as_deref()),
                    width: s.width.unwrap_or(0),
                    height: s.height.unwrap_or(0),
                    bitrate: bitrate(&s.bit_rate, &s.tags),
                    interlaced: s
                        .field_order
                        .as_deref()
                        .is_some_and(|f| !matches!(f, "progressive" | "unknown")),
                });
            }
            Some("audio") if facts.audio.len() < 64 => facts.audio.push(AudioStream {
                index: s.index,
                codec,
                channels: s.channels.unwrap_or(2),
                language: language(&s.tags),
                bitrate: bitrate(&s.bit_rate, &s.tags),
                default: disposition.is_some_and(|d| d.default == 1),
            }),
            Some("subtitle") if facts.subtitles.len() < 64 => {
                facts.subtitles.push(SubtitleStream {
                    index: s.index,
                    codec,
                    language: language(&s.tags),
                    forced: disposition.is_some_and(|d| d.forced == 1),
                })
            }
            _ => {}
        }
    }
    if facts.video.is_none() && facts.audio.is_empty() {
        return Err(FactsError::NoStreams);
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_mkv_with_hevc_10_bit_dts_and_subtitles() {
        let json = br#"{
          "streams": [
            {"index":0,"codec_type":"video","codec_name":"hevc","profile":"Main 10","level":120,
             "width":1920,"height":1080,"pix_fmt":"yuv420p10le","field_order":"progressive",
             "tags":{"BPS":"6000000"}},
            {"index":1,"codec_type":"audio","codec_name":"dts","channels":6,
             "disposition":{"default":1},"tags":{"language":"eng"}},
            {"index":2,"codec_type":"subtitle","codec_name":"ass","tags":{"language":"fre"}},
            {"index":3,"codec_type":"subtitle","codec_name":"dvd_subtitle","disposition":{"forced":1}},
            {"index":4,"codec_type":"video","codec_name":"mjpeg","disposition":{"attached_pic":1}}
          ],
          "format": {"format_name":"matroska,webm","duration":"20.000","bit_rate":"6400000"}
        }"#;
        let f = from_ffprobe_json(json).unwrap();
        assert_eq!(f.containers, ["matroska", "webm"]);
        assert_eq!(f.duration_ms, Some(20_000));
        let v = f.video.unwrap();
        assert_eq!(
            (v.codec.as_str(), v.bit_depth, v.height, v.bitrate),
            ("hevc", 10, 1080, Some(6_000_000))
        );
        assert_eq!(f.audio[0].channels, 6);
        assert_eq!(f.audio[0].language.as_deref(), Some("eng"));
        assert!(f.subtitles[0].is_text());
        assert!(!f.subtitles[1].is_text());
        assert!(f.subtitles[1].forced);
    }

    #[test]
    fn a_cover_picture_is_not_the_video() {
        let json =
            br#"{"streams":[{"index":0,"codec_type":"audio","codec_name":"mp3","channels":2},
            {"index":1,"codec_type":"video","codec_name":"mjpeg","disposition":{"attached_pic":1}}],
            "format":{"format_name":"mp3"}}"#;
        let f = from_ffprobe_json(json).unwrap();
        assert!(f.video.is_none());
        assert_eq!(f.audio.len(), 1);
    }

    #[test]
    fn garbage_and_empty_files_are_refused() {
        assert!(matches!(
            from_ffprobe_json(b"not json"),
            Err(FactsError::Unreadable(_))
        ));
        assert_eq!(
            from_ffprobe_json(br#"{"streams":[],"format":{}}"#),
            Err(FactsError::NoStreams)
        );
        assert_eq!(
            from_ffprobe_json(br#"{"format":{"duration":"NaN"}}"#),
            Err(FactsError::NoStreams)
        );
    }
}
