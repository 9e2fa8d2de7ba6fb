//! What a client says it can play. The web app builds this from `canPlayType` and
//! `MediaSource.isTypeSupported`; a Jellyfin app sends a device profile that maps onto it. A
//! client's claims only ever choose how bytes are shaped, never whether the viewer may have them.

use serde::{Deserialize, Serialize};

/// The most of each list a client may declare; more is refused as a malformed request.
pub const MAX_ENTRIES: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCaps {
    /// Containers the client plays from a plain byte-range URL: `mp4`, `webm`, `matroska`,
    /// `mp3`, `ogg`, `flac`, `wav`, `ts`, `avi`.
    #[serde(default)]
    pub containers: Vec<String>,
    #[serde(default)]
    pub video: Vec<VideoCap>,
    #[serde(default)]
    pub audio: Vec<AudioCap>,
    /// The client plays HLS with fMP4 segments (natively or through Media Source Extensions).
    #[serde(default)]
    pub hls_fmp4: bool,
    /// The client shows WebVTT text tracks.
    #[serde(default)]
    pub webvtt: bool,
    /// The most the client wants to receive, bits per second.
    #[serde(default)]
    pub max_bitrate: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoCap {
    /// ffmpeg codec name: `h264`, `hevc`, `vp9`, `av1`, `mpeg4`, …
    pub codec: String,
    /// Profiles the client decodes (ffprobe's names, compared ignoring case); empty = any.
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default = "eight")]
    pub max_bit_depth: u8,
    /// ffprobe's level numbering for the codec; none = any.
    #[serde(default)]
    pub max_level: Option<i32>,
    #[serde(default)]
    pub max_height: Option<u32>,
}

fn eight() -> u8 {
    8
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioCap {
    /// ffmpeg codec name: `aac`, `mp3`, `opus`, `flac`, `ac3`, `eac3`, `dts`, `vorbis`, …
    pub codec: String,
    #[serde(default = "two")]
    pub max_channels: u8,
}

fn two() -> u8 {
    2
}

/// A declaration that cannot be meant.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the player's capabilities are malformed: {0}")]
pub struct CapsError(&'static str);

impl ClientCaps {
    /// Refuses lists longer than [`MAX_ENTRIES`] and names longer than 32 bytes.
    pub fn validate(&self) -> Result<(), CapsError> {
        if self.containers.len() > MAX_ENTRIES
            || self.video.len() > MAX_ENTRIES
            || self.audio.len() > MAX_ENTRIES
        {
            return Err(CapsError("too many entries"));
        }
        let names = self
            .containers
            .iter()
            .chain(self.video.iter().map(|v| &v.codec))
            .chain(self.video.iter().flat_map(|v| v.profiles.iter()))
            .chain(self.audio.iter().map(|a| &a.codec));
        for n in names {
            if n.is_empty() || n.len() > 32 {
                return Err(CapsError("a name is empty or too long"));
            }
        }
        if self.video.iter().any(|v| v.profiles.len() > MAX_ENTRIES) {
            return Err(CapsError("too many profiles"));
        }
        Ok(())
    }

    /// A browser that plays only what every browser plays: H.264 8-bit and AAC in MP4, through
    /// HLS. The fallback when a client declares nothing.
    pub fn baseline() -> ClientCaps {
        ClientCaps {
            containers: vec!["mp4".into()],
            video: vec![VideoCap {
                codec: "h264".into(),
                profiles: vec![
                    "Constrained Baseline".into(),
                    "Baseline".into(),
                    "Main".into(),
                    "High".into(),
                ],
                max_bit_depth: 8,
                max_level: Some(51),
                max_height: None,
            }],
            audio: vec![
                AudioCap {
                    codec: "aac".into(),
                    max_channels: 2,
                },
                AudioCap {
                    codec: "mp3".into(),
                    max_channels: 2,
                },
            ],
            hls_fmp4: true,
            webvtt: true,
            max_bitrate: None,
        }
    }
}
