//! The playback decision: one pure function from a file's facts, a client's capabilities and
//! the limits in force to direct play, direct stream or transcode, with the reasons in words.
//! It decides only the shape of the bytes; whether the viewer may have them is `policy`'s,
//! asked before this runs.

use super::caps::ClientCaps;
use super::facts::{AudioStream, MediaFacts, SubtitleStream, VideoStream};
use serde::Serialize;

/// Audio re-encoded for a converted stream, bits per second per channel pair.
pub const AAC_STEREO_BITRATE: u64 = 192_000;

/// How the file reaches the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The file as it is, by byte ranges.
    DirectPlay,
    /// Video copied, container changed, sound copied or converted.
    DirectStream,
    /// Video converted to H.264.
    Transcode,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VideoPlan {
    Copy {
        index: u32,
    },
    H264 {
        index: u32,
        height: u32,
        bitrate: u64,
        deinterlace: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AudioPlan {
    Copy {
        index: u32,
    },
    Aac {
        index: u32,
        channels: u8,
        bitrate: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SubtitlePlan {
    None,
    /// Served beside the video as WebVTT; the player shows it.
    WebVtt {
        index: u32,
    },
    /// Drawn into the picture; needs a transcode.
    Burn {
        index: u32,
    },
}

/// Why the file is not played as it is. Each says what a person would want to know.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    Container { container: String },
    VideoCodec { codec: String },
    VideoProfile { profile: String },
    VideoBitDepth { bits: u8 },
    VideoLevel { level: i32 },
    VideoHeight { height: u32 },
    AudioCodec { codec: String },
    AudioChannels { channels: u8 },
    Bitrate { file: u64, limit: u64 },
    ImageSubtitles { codec: String },
    SubtitlesNotShown { codec: String },
}

impl Reason {
    /// The reason as a sentence fragment: "the sound is AC3, which this player can't play".
    pub fn words(&self) -> String {
        match self {
            Reason::Container { container } => {
                format!(
                    "the file is {}, which this player can't open",
                    container_name(container)
                )
            }
            Reason::VideoCodec { codec } => {
                format!(
                    "the picture is {}, which this player can't show",
                    codec_name(codec)
                )
            }
            Reason::VideoProfile { profile } => {
                format!("the picture uses the {profile} profile, which this player can't show")
            }
            Reason::VideoBitDepth { bits } => {
                format!("the picture is {bits}-bit, which this player can't show")
            }
            Reason::VideoLevel { level } => {
                format!("the picture's level ({level}) is above what this player can show")
            }
            Reason::VideoHeight { height } => {
                format!("the picture is {height} lines tall, more than this player shows")
            }
            Reason::AudioCodec { codec } => {
                format!(
                    "the sound is {}, which this player can't play",
                    codec_name(codec)
                )
            }
            Reason::AudioChannels { channels } => {
                format!("the sound has {channels} channels, more than this player plays")
            }
            Reason::Bitrate { file, limit } => format!(
                "the file needs {} and the limit is {}",
                mbits(*file),
                mbits(*limit)
            ),
            Reason::ImageSubtitles { codec } => format!(
                "the chosen subtitles are pictures ({}), so they are drawn into the video",
                codec_name(codec)
            ),
            Reason::SubtitlesNotShown { codec } => format!(
                "the chosen subtitles ({}) can't be shown by this player",
                codec_name(codec)
            ),
        }
    }
}

fn mbits(b: u64) -> String {
    let m = b as f64 / 1_000_000.0;
    if m >= 10.0 {
        format!("{m:.0} Mbit/s")
    } else {
        format!("{m:.1} Mbit/s")
    }
}

fn container_name(c: &str) -> String {
    match c {
        "matroska" => "MKV".into(),
        "avi" => "AVI".into(),
        "mp4" => "MP4".into(),
        "ts" => "MPEG-TS".into(),
        other => other.to_uppercase(),
    }
}

fn codec_name(c: &str) -> String {
    match c {
        "h264" => "H.264".into(),
        "hevc" => "HEVC (H.265)".into(),
        "mpeg4" => "MPEG-4 Part 2 (XviD/DivX)".into(),
        "mpeg2video" => "MPEG-2".into(),
        "ac3" => "AC3 (Dolby Digital)".into(),
        "eac3" => "E-AC3 (Dolby Digital Plus)".into(),
        "truehd" => "Dolby TrueHD".into(),
        "dts" => "DTS".into(),
        "hdmv_pgs_subtitle" => "Blu-ray PGS".into(),
        "dvd_subtitle" => "DVD VobSub".into(),
        other => other.to_uppercase(),
    }
}

/// The limits in force for this play.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// What the viewer picked in the quality menu (None = Original).
    pub chosen_bitrate: Option<u64>,
    /// The owner's limit for viewers outside the home, when this viewer is outside.
    pub remote_bitrate: Option<u64>,
    /// The tallest picture this device converts to (a Pi 4: 720).
    pub max_transcode_height: u32,
}

/// Which of the file's tracks the viewer asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Choice {
    pub audio: Option<u32>,
    pub subtitle: Option<u32>,
}

/// The answer for one play.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub method: Method,
    pub video: Option<VideoPlan>,
    pub audio: Option<AudioPlan>,
    pub subtitle: SubtitlePlan,
    pub reasons: Vec<Reason>,
    /// The reasons and what is done about them, in one sentence.
    pub summary: String,
}

/// The client cannot play the file in any way Hearth offers.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecideError {
    #[error("{0}; this player can't play converted streams either")]
    NoConversionPath(String),
    #[error("the file has no track {0} of that kind")]
    NoSuchTrack(u32),
}

/// The file's container as a player names it. A Matroska file holding only WebM codecs is WebM.
pub fn container_of(facts: &MediaFacts) -> String {
    let has = |n: &str| facts.containers.iter().any(|c| c == n);
    if has("matroska") {
        let webm_video = facts
            .video
            .as_ref()
            .is_none_or(|v| matches!(v.codec.as_str(), "vp8" | "vp9" | "av1"));
        let webm_audio = facts
            .audio
            .iter()
            .all(|a| matches!(a.codec.as_str(), "opus" | "vorbis"));
        return if webm_video && webm_audio {
            "webm"
        } else {
            "matroska"
        }
        .into();
    }
    if has("mp4") || has("mov") {
        return "mp4".into();
    }
    if has("mpegts") {
        return "ts".into();
    }
    facts.containers.first().cloned().unwrap_or_default()
}

fn video_misfit(v: &VideoStream, caps: &ClientCaps) -> Option<Reason> {
    let same: Vec<_> = caps.video.iter().filter(|c| c.codec == v.codec).collect();
    if same.is_empty() {
        return Some(Reason::VideoCodec {
            codec: v.codec.clone(),
        });
    }
    let mut last = None;
    for cap in same {
        let misfit = if v.bit_depth > cap.max_bit_depth {
            Some(Reason::VideoBitDepth { bits: v.bit_depth })
        } else if !cap.profiles.is_empty()
            && v.profile
                .as_ref()
                .is_some_and(|p| !cap.profiles.iter().any(|c| c.eq_ignore_ascii_case(p)))
        {
            Some(Reason::VideoProfile {
                profile: v.profile.clone().unwrap_or_default(),
            })
        } else if let (Some(max), Some(level)) = (cap.max_level, v.level) {
            (level > max).then_some(Reason::VideoLevel { level })
        } else {
            None
        };
        let misfit = misfit.or_else(|| {
            cap.max_height
                .filter(|h| v.height > *h)
                .map(|_| Reason::VideoHeight { height: v.height })
        });
        match misfit {
            None => return None,
            Some(r) => last = Some(r),
        }
    }
    last
}

fn audio_misfit(a: &AudioStream, caps: &ClientCaps) -> Option<Reason> {
    let same: Vec<_> = caps.audio.iter().filter(|c| c.codec == a.codec).collect();
    if same.is_empty() {
        return Some(Reason::AudioCodec {
            codec: a.codec.clone(),
        });
    }
    if same.iter().any(|c| a.channels <= c.max_channels) {
        None
    } else {
        Some(Reason::AudioChannels {
            channels: a.channels,
        })
    }
}

/// Codecs an fMP4 segment can carry as they are.
fn copyable_to_fmp4_video(codec: &str) -> bool {
    matches!(codec, "h264" | "hevc" | "av1" | "vp9")
}

/// Sound copied into HLS fMP4 as it is: only what every HLS player takes there. Browsers that
/// play MP3 or FLAC files do not all take them inside fMP4 segments (Chromium's HLS refuses
/// MP3), so those are converted to AAC.
fn copyable_to_fmp4_audio(codec: &str) -> bool {
    matches!(codec, "aac" | "ac3" | "eac3")
}

/// The height a conversion aims at for a bitrate (Plex's and Jellyfin's ladders, roughly).
fn ladder_height(video_bitrate: u64) -> u32 {
    match video_bitrate {
        b if b >= 6_000_000 => 1080,
        b if b >= 1_800_000 => 720,
        b if b >= 700_000 => 480,
        _ => 360,
    }
}

fn pick_audio(
    facts: &MediaFacts,
    choice: Option<u32>,
) -> Result<Option<&AudioStream>, DecideError> {
    match choice {
        Some(i) => facts
            .audio
            .iter()
            .find(|a| a.index == i)
            .map(Some)
            .ok_or(DecideError::NoSuchTrack(i)),
        None => Ok(facts
            .audio
            .iter()
            .find(|a| a.default)
            .or(facts.audio.first())),
    }
}

fn pick_subtitle(
    facts: &MediaFacts,
    choice: Option<u32>,
) -> Result<Option<&SubtitleStream>, DecideError> {
    match choice {
        Some(i) => facts
            .subtitles
            .iter()
            .find(|s| s.index == i)
            .map(Some)
            .ok_or(DecideError::NoSuchTrack(i)),
        None => Ok(None),
    }
}

/// Decides how `facts` reaches a client with `caps` under `limits`.
pub fn decide(
    facts: &MediaFacts,
    caps: &ClientCaps,
    limits: Limits,
    choice: Choice,
) -> Result<Plan, DecideError> {
    let audio = pick_audio(facts, choice.audio)?;
    let subtitle = pick_subtitle(facts, choice.subtitle)?;
    let container = container_of(facts);

    let limit = effective_limit(&limits, caps);
    let file_bitrate = facts.bitrate.or_else(|| {
        let v = facts.video.as_ref()?.bitrate?;
        Some(v + audio.and_then(|a| a.bitrate).unwrap_or(0))
    });

    let mut reasons = Vec::new();
    let container_fits = caps.containers.contains(&container);
    if !container_fits {
        reasons.push(Reason::Container {
            container: container.clone(),
        });
    }
    let video_misfit = facts.video.as_ref().and_then(|v| video_misfit(v, caps));
    reasons.extend(video_misfit.clone());
    let audio_misfit = audio.and_then(|a| audio_misfit(a, caps));
    reasons.extend(audio_misfit.clone());
    let over_limit = match (limit, file_bitrate) {
        (Some(l), Some(f)) if f > l => {
            reasons.push(Reason::Bitrate { file: f, limit: l });
            true
        }
        _ => false,
    };
    let subtitle_plan = plan_subtitle(subtitle, caps, &mut reasons);
    let burn = matches!(subtitle_plan, SubtitlePlan::Burn { .. });

    // A file without a picture (music) converts its sound only.
    let audio_plan = |copy: bool| {
        audio.map(|a| {
            if copy {
                AudioPlan::Copy { index: a.index }
            } else {
                AudioPlan::Aac {
                    index: a.index,
                    channels: a.channels.min(2),
                    bitrate: AAC_STEREO_BITRATE,
                }
            }
        })
    };

    if reasons.is_empty() {
        return Ok(Plan {
            method: Method::DirectPlay,
            video: facts
                .video
                .as_ref()
                .map(|v| VideoPlan::Copy { index: v.index }),
            audio: audio_plan(true),
            subtitle: subtitle_plan,
            reasons,
            summary: "Playing the file as it is.".into(),
        });
    }
    let why = reasons
        .iter()
        .map(Reason::words)
        .collect::<Vec<_>>()
        .join("; ");
    if !caps.hls_fmp4 {
        return Err(DecideError::NoConversionPath(capitalise(&why)));
    }
    let audio_copy =
        audio.is_some_and(|a| audio_misfit.is_none() && copyable_to_fmp4_audio(&a.codec));
    let video_copy = facts.video.as_ref().is_none_or(|v| {
        video_misfit.is_none() && !over_limit && !burn && copyable_to_fmp4_video(&v.codec)
    });

    if video_copy {
        return Ok(Plan {
            audio: audio_plan(audio_copy),
            ..direct_stream(
                facts,
                audio_copy || audio.is_none(),
                subtitle_plan,
                reasons,
                &why,
            )
        });
    }

    let Some(v) = facts.video.as_ref() else {
        // Unreachable by construction (no video means video_copy), kept total.
        return Err(DecideError::NoConversionPath(capitalise(&why)));
    };
    Ok(Plan {
        audio: audio_plan(audio_copy),
        ..transcode(
            v,
            audio.is_some(),
            limit,
            &limits,
            subtitle_plan,
            reasons,
            &why,
        )
    })
}

/// The lowest of the viewer's choice, the owner's limit for viewers outside and the player's.
fn effective_limit(limits: &Limits, caps: &ClientCaps) -> Option<u64> {
    [
        limits.chosen_bitrate,
        limits.remote_bitrate,
        caps.max_bitrate,
    ]
    .into_iter()
    .flatten()
    .min()
}

/// How a chosen subtitle is shown: by the player (WebVTT) or drawn into the picture.
fn plan_subtitle(
    subtitle: Option<&SubtitleStream>,
    caps: &ClientCaps,
    reasons: &mut Vec<Reason>,
) -> SubtitlePlan {
    match subtitle {
        None => SubtitlePlan::None,
        Some(s) if s.is_text() && caps.webvtt => SubtitlePlan::WebVtt { index: s.index },
        Some(s) if s.is_text() => {
            reasons.push(Reason::SubtitlesNotShown {
                codec: s.codec.clone(),
            });
            SubtitlePlan::Burn { index: s.index }
        }
        Some(s) => {
            reasons.push(Reason::ImageSubtitles {
                codec: s.codec.clone(),
            });
            SubtitlePlan::Burn { index: s.index }
        }
    }
}

/// The picture copied into fMP4; the sound copied or converted (the caller's plan).
fn direct_stream(
    facts: &MediaFacts,
    sound_unchanged: bool,
    subtitle: SubtitlePlan,
    reasons: Vec<Reason>,
    why: &str,
) -> Plan {
    let what = match (facts.video.is_some(), sound_unchanged) {
        (_, true) => "repackaging the file, picture and sound unchanged",
        (true, false) => "converting the sound only",
        (false, false) => "converting the sound",
    };
    Plan {
        method: Method::DirectStream,
        video: facts
            .video
            .as_ref()
            .map(|v| VideoPlan::Copy { index: v.index }),
        audio: None,
        subtitle,
        reasons,
        summary: format!("{}: {what}.", capitalise(why)),
    }
}

/// The picture converted to H.264: as tall as the bitrate allows, never taller than the file
/// or the device's ceiling. The sound plan is the caller's.
fn transcode(
    v: &VideoStream,
    has_audio: bool,
    limit: Option<u64>,
    limits: &Limits,
    subtitle: SubtitlePlan,
    reasons: Vec<Reason>,
    why: &str,
) -> Plan {
    let audio_bits = if has_audio { AAC_STEREO_BITRATE } else { 0 };
    let video_bitrate = match limit {
        Some(l) => l.saturating_sub(audio_bits).max(300_000),
        // No limit: enough for the picture at the height it gets.
        None => 8_000_000,
    };
    let mut height = ladder_height(video_bitrate).min(limits.max_transcode_height.max(240));
    if v.height > 0 {
        height = height.min(v.height);
    }
    let height = height & !1;
    Plan {
        method: Method::Transcode,
        video: Some(VideoPlan::H264 {
            index: v.index,
            height,
            bitrate: video_bitrate,
            deinterlace: v.interlaced,
        }),
        audio: None,
        subtitle,
        reasons,
        summary: format!(
            "{}: converting the picture to H.264 at {height}p.",
            capitalise(why)
        ),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
