//! MIME types and DLNA media profiles. Players pick what they can play from the fourth field
//! of `protocolInfo`: `DLNA.ORG_PN` names the profile where the container alone (or the
//! container plus the codecs the scanner found) decides it; otherwise the field carries only
//! the operations and flags, which every DLNA 1.5 player accepts.

use crate::library::ItemRecord;

/// Byte ranges are served (`DLNA.ORG_OP=01`: range seek, no time seek).
const OP: &str = "DLNA.ORG_OP=01;DLNA.ORG_CI=0";
/// Streaming transfer, background transfer, connection stalling, DLNA 1.5.
const FLAGS_STREAMING: &str = "DLNA.ORG_FLAGS=01700000000000000000000000000000";
/// Interactive transfer (images), background transfer, connection stalling, DLNA 1.5.
const FLAGS_INTERACTIVE: &str = "DLNA.ORG_FLAGS=00f00000000000000000000000000000";

/// The DLNA profile name of an item, where one applies.
pub fn profile_name(item: &ItemRecord) -> Option<&'static str> {
    let v = item.video.as_ref();
    let height = v.and_then(|v| v.height).unwrap_or(0);
    let vcodec = v
        .and_then(|v| v.video_codec.as_deref())
        .unwrap_or("")
        .to_ascii_lowercase();
    let aac = v.is_some_and(|v| {
        v.audio_codecs
            .iter()
            .all(|a| a.to_ascii_lowercase().contains("aac"))
            && !v.audio_codecs.is_empty()
    });
    let h264 = vcodec.contains("264") || vcodec.contains("avc");
    match item.content_type.as_str() {
        "audio/mpeg" => Some("MP3"),
        "audio/mp4" => Some("AAC_ISO_320"),
        "image/jpeg" => Some("JPEG_LRG"),
        "image/png" => Some("PNG_LRG"),
        "image/gif" => Some("GIF_LRG"),
        "video/mpeg" if height == 576 => Some("MPEG_PS_PAL"),
        "video/mpeg" if height == 480 => Some("MPEG_PS_NTSC"),
        "video/mp4" if h264 && aac && height > 0 && height <= 576 => {
            Some("AVC_MP4_MP_SD_AAC_MULT5")
        }
        "video/mp4" if h264 && aac && height > 576 && height <= 1080 => Some("AVC_MP4_HP_HD_AAC"),
        _ => None,
    }
}

/// The MIME type players are told. Some TVs only accept `video/x-mkv` for Matroska; the
/// registered-looking `video/x-matroska` is what most accept, and what we serve.
pub fn mime(item: &ItemRecord) -> &str {
    &item.content_type
}

/// The fourth `protocolInfo` field for an item.
pub fn dlna_features(item: &ItemRecord) -> String {
    let flags = if item.content_type.starts_with("image/") {
        FLAGS_INTERACTIVE
    } else {
        FLAGS_STREAMING
    };
    match profile_name(item) {
        Some(pn) => format!("DLNA.ORG_PN={pn};{OP};{flags}"),
        None => format!("{OP};{flags}"),
    }
}

/// The whole `protocolInfo` of an item's `res`.
pub fn protocol_info(item: &ItemRecord) -> String {
    format!("http-get:*:{}:{}", mime(item), dlna_features(item))
}

/// What `GetProtocolInfo` lists as Source: every profile and container this server may send.
pub fn source_protocols() -> String {
    let named = [
        ("audio/mpeg", "MP3"),
        ("audio/mp4", "AAC_ISO_320"),
        ("image/jpeg", "JPEG_LRG"),
        ("image/png", "PNG_LRG"),
        ("image/gif", "GIF_LRG"),
        ("video/mpeg", "MPEG_PS_PAL"),
        ("video/mpeg", "MPEG_PS_NTSC"),
        ("video/mp4", "AVC_MP4_MP_SD_AAC_MULT5"),
        ("video/mp4", "AVC_MP4_HP_HD_AAC"),
    ];
    let plain = [
        "video/x-matroska",
        "video/mp4",
        "video/webm",
        "video/quicktime",
        "video/x-msvideo",
        "video/mp2t",
        "video/mpeg",
        "video/x-ms-wmv",
        "video/ogg",
        "audio/flac",
        "audio/ogg",
        "audio/wav",
        "audio/aiff",
        "audio/x-ms-wma",
        "image/webp",
        "image/heic",
        "image/tiff",
    ];
    named
        .iter()
        .map(|(m, pn)| format!("http-get:*:{m}:DLNA.ORG_PN={pn}"))
        .chain(plain.iter().map(|m| format!("http-get:*:{m}:*")))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::probe::VideoFacts;

    fn item(ct: &str, video: Option<VideoFacts>) -> ItemRecord {
        ItemRecord {
            content_type: ct.into(),
            video,
            ..Default::default()
        }
    }

    #[test]
    fn profiles_for_common_containers() {
        let hd = VideoFacts {
            container: "mp4".into(),
            height: Some(1080),
            video_codec: Some("h264".into()),
            audio_codecs: vec!["aac".into()],
            ..Default::default()
        };
        let cases = [
            (item("audio/mpeg", None), Some("MP3")),
            (item("audio/mp4", None), Some("AAC_ISO_320")),
            (item("image/jpeg", None), Some("JPEG_LRG")),
            (item("image/png", None), Some("PNG_LRG")),
            (
                item("video/mp4", Some(hd.clone())),
                Some("AVC_MP4_HP_HD_AAC"),
            ),
            (
                item(
                    "video/mp4",
                    Some(VideoFacts {
                        height: Some(480),
                        ..hd.clone()
                    }),
                ),
                Some("AVC_MP4_MP_SD_AAC_MULT5"),
            ),
            (
                item(
                    "video/mp4",
                    Some(VideoFacts {
                        video_codec: Some("hevc".into()),
                        ..hd.clone()
                    }),
                ),
                None,
            ),
            (item("video/x-matroska", Some(hd)), None),
            (item("audio/flac", None), None),
        ];
        for (i, want) in cases {
            assert_eq!(profile_name(&i), want, "{} {:?}", i.content_type, i.video);
        }
        assert_eq!(
            protocol_info(&item("audio/mpeg", None)),
            "http-get:*:audio/mpeg:DLNA.ORG_PN=MP3;DLNA.ORG_OP=01;DLNA.ORG_CI=0;DLNA.ORG_FLAGS=01700000000000000000000000000000"
        );
        assert_eq!(
            protocol_info(&item("video/x-matroska", None)),
            "http-get:*:video/x-matroska:DLNA.ORG_OP=01;DLNA.ORG_CI=0;DLNA.ORG_FLAGS=01700000000000000000000000000000"
        );
        assert!(
            protocol_info(&item("image/jpeg", None)).ends_with("00f00000000000000000000000000000")
        );
    }
}
