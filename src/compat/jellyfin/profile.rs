//! An app's `DeviceProfile` (sent with `PlaybackInfo`) as the playback engine's
//! [`ClientCaps`]: the same decision the web app gets, from Jellyfin's way of saying it.
//! Like the web app's declaration, it only shapes bytes; it never decides access.

use serde_json::Value;

use super::query::field;
use crate::playback::ClientCaps;
use crate::playback::caps::{AudioCap, MAX_ENTRIES, VideoCap};

/// What "any codec" (an empty list in a profile) stands for.
const ANY_VIDEO: &[&str] = &["h264", "hevc", "vp9", "av1", "vp8", "mpeg4", "mpeg2video"];
const ANY_AUDIO: &[&str] = &[
    "aac", "mp3", "ac3", "eac3", "flac", "opus", "vorbis", "dts", "truehd", "alac",
];
const ANY_CONTAINER: &[&str] = &[
    "mp4", "matroska", "webm", "ts", "avi", "mp3", "flac", "ogg", "wav",
];

fn text<'a>(v: &'a Value, name: &str) -> &'a str {
    field(v, name).and_then(Value::as_str).unwrap_or("")
}

fn list(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(',')
        .map(|x| x.trim().to_ascii_lowercase())
        .filter(|x| !x.is_empty() && x.len() <= 32)
}

/// Jellyfin's container names as the engine's.
fn container(c: &str) -> &str {
    match c {
        "mkv" | "matroska" => "matroska",
        "mp4" | "m4v" | "mov" | "m4a" => "mp4",
        "ts" | "mpegts" | "m2ts" => "ts",
        "oga" | "ogg" => "ogg",
        other => other,
    }
}

fn video_codec(c: &str) -> &str {
    match c {
        "avc" | "h264" => "h264",
        "h265" | "hevc" => "hevc",
        other => other,
    }
}

fn audio_codec(c: &str) -> &str {
    match c {
        "dca" => "dts",
        other => other,
    }
}

/// A `LessThanEqual` limit on `property` in the profile's codec conditions, if any.
fn limit(profile: &Value, codec_type: &str, property: &str) -> Option<u64> {
    let codecs = field(profile, "CodecProfiles")?.as_array()?;
    codecs
        .iter()
        .filter(|c| text(c, "Type").eq_ignore_ascii_case(codec_type))
        .filter_map(|c| field(c, "Conditions")?.as_array())
        .flatten()
        .filter(|cond| {
            text(cond, "Property").eq_ignore_ascii_case(property)
                && text(cond, "Condition").eq_ignore_ascii_case("LessThanEqual")
        })
        .filter_map(|cond| text(cond, "Value").parse::<u64>().ok())
        .min()
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if v.len() < MAX_ENTRIES && !v.iter().any(|x| x == s) {
        v.push(s.to_owned());
    }
}

/// What an app that sends no device profile gets (a `GET PlaybackInfo`, or Kodi-like clients
/// that play whatever they are given): every common container and codec, and HLS. The file is
/// then offered as it is, which is what such apps ask for.
pub fn undeclared(max_bitrate: Option<u64>) -> ClientCaps {
    ClientCaps {
        containers: ANY_CONTAINER.iter().map(|c| (*c).to_owned()).collect(),
        video: ANY_VIDEO
            .iter()
            .map(|c| VideoCap {
                codec: (*c).to_owned(),
                profiles: vec![],
                max_bit_depth: 10,
                max_level: None,
                max_height: None,
            })
            .collect(),
        audio: ANY_AUDIO
            .iter()
            .map(|c| AudioCap {
                codec: (*c).to_owned(),
                max_channels: 8,
            })
            .collect(),
        hls_fmp4: true,
        webvtt: true,
        max_bitrate: max_bitrate.filter(|b| *b > 0),
    }
}

/// The capabilities a profile declares; `None` when the app sent none (the caller picks a
/// default). `max_bitrate` is `MaxStreamingBitrate` from the request or the profile.
pub fn caps_of(profile: Option<&Value>, max_bitrate: Option<u64>) -> Option<ClientCaps> {
    let profile = profile.filter(|p| p.is_object())?;
    let mut containers = Vec::new();
    let (mut video, mut audio) = (Vec::<String>::new(), Vec::<String>::new());
    for dp in field(profile, "DirectPlayProfiles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cs: Vec<String> = list(text(dp, "Container")).collect();
        if cs.is_empty() {
            ANY_CONTAINER
                .iter()
                .for_each(|c| push_unique(&mut containers, c));
        }
        for c in &cs {
            push_unique(&mut containers, container(c));
        }
        let is_video = text(dp, "Type").eq_ignore_ascii_case("video");
        if is_video {
            let vs: Vec<String> = list(text(dp, "VideoCodec")).collect();
            if vs.is_empty() {
                ANY_VIDEO.iter().for_each(|c| push_unique(&mut video, c));
            }
            vs.iter()
                .for_each(|c| push_unique(&mut video, video_codec(c)));
        }
        let as_: Vec<String> = list(text(dp, "AudioCodec")).collect();
        if !as_.is_empty() {
            as_.iter()
                .for_each(|c| push_unique(&mut audio, audio_codec(c)));
        } else if !is_video && !cs.is_empty() {
            // An audio profile without codecs names them by container (`mp3`, `flac`).
            cs.iter()
                .for_each(|c| push_unique(&mut audio, audio_codec(c)));
        } else {
            ANY_AUDIO.iter().for_each(|c| push_unique(&mut audio, c));
        }
    }
    let hls = field(profile, "TranscodingProfiles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|t| text(t, "Protocol").eq_ignore_ascii_case("hls"));
    let bit_depth = limit(profile, "Video", "VideoBitDepth");
    let channels = limit(profile, "VideoAudio", "AudioChannels")
        .or_else(|| limit(profile, "Audio", "AudioChannels"));
    let max_height = limit(profile, "Video", "Height").map(|h| h.min(u32::MAX as u64) as u32);
    let profile_rate = field(profile, "MaxStreamingBitrate").and_then(Value::as_u64);
    Some(ClientCaps {
        containers,
        video: video
            .into_iter()
            .map(|codec| VideoCap {
                // Without a stated limit: what such a decoder plays in practice.
                max_bit_depth: bit_depth
                    .map(|b| b.min(16) as u8)
                    .unwrap_or(if codec == "h264" { 8 } else { 10 }),
                codec,
                profiles: vec![],
                max_level: None,
                max_height,
            })
            .collect(),
        audio: audio
            .into_iter()
            .map(|codec| AudioCap {
                codec,
                max_channels: channels.map(|c| c.min(16) as u8).unwrap_or(8),
            })
            .collect(),
        hls_fmp4: hls,
        webvtt: true,
        max_bitrate: max_bitrate.or(profile_rate).filter(|b| *b > 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_android_like_profile() {
        let p = json!({
            "MaxStreamingBitrate": 20_000_000u64,
            "DirectPlayProfiles": [
                {"Container": "mp4,mkv", "Type": "Video", "VideoCodec": "h264,h265", "AudioCodec": "aac,ac3"},
                {"Container": "mp3,flac", "Type": "Audio"}
            ],
            "TranscodingProfiles": [{"Container": "ts", "Type": "Video", "Protocol": "hls"}],
            "CodecProfiles": [
                {"Type": "VideoAudio", "Conditions": [{"Condition": "LessThanEqual", "Property": "AudioChannels", "Value": "6"}]}
            ]
        });
        let c = caps_of(Some(&p), None).unwrap();
        assert_eq!(c.containers, ["mp4", "matroska", "mp3", "flac"]);
        let v: Vec<_> = c
            .video
            .iter()
            .map(|v| (v.codec.as_str(), v.max_bit_depth))
            .collect();
        assert_eq!(v, [("h264", 8), ("hevc", 10)]);
        let a: Vec<_> = c
            .audio
            .iter()
            .map(|a| (a.codec.as_str(), a.max_channels))
            .collect();
        assert_eq!(a, [("aac", 6), ("ac3", 6), ("mp3", 6), ("flac", 6)]);
        assert!(c.hls_fmp4);
        assert_eq!(c.max_bitrate, Some(20_000_000));
        assert!(c.validate().is_ok());
        assert_eq!(
            caps_of(Some(&p), Some(1000)).unwrap().max_bitrate,
            Some(1000)
        );
    }

    #[test]
    fn no_profile_and_empty_lists() {
        assert!(caps_of(None, None).is_none());
        assert!(undeclared(None).validate().is_ok());
        assert!(caps_of(Some(&json!("x")), None).is_none());
        let c = caps_of(
            Some(&json!({"DirectPlayProfiles": [{"Type": "Video"}]})),
            None,
        )
        .unwrap();
        assert!(c.containers.contains(&"matroska".to_owned()));
        assert!(c.video.iter().any(|v| v.codec == "hevc"));
        assert!(!c.hls_fmp4, "no HLS transcoding profile: no HLS");
        // A flood of entries is cut to what the engine accepts, never refused as a 500.
        let many: Vec<_> = (0..200).map(|i| json!({"Container": format!("c{i}"), "Type": "Video", "VideoCodec": format!("v{i}")})).collect();
        let c = caps_of(Some(&json!({"DirectPlayProfiles": many})), None).unwrap();
        assert!(c.validate().is_ok());
    }
}
