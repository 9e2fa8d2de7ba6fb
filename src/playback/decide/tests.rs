//! The decision as a table: the formats real libraries hold × what Chromium plays.

use super::*;
use crate::playback::caps::{AudioCap, VideoCap};

/// What Debian's Chromium reports through the web app: no HEVC, no AC3/E-AC3/DTS, no MKV.
fn chromium() -> ClientCaps {
    let video = |codec: &str| VideoCap {
        codec: codec.into(),
        profiles: vec![],
        max_bit_depth: if codec == "h264" { 8 } else { 10 },
        max_level: None,
        max_height: None,
    };
    let audio = |codec: &str, ch: u8| AudioCap {
        codec: codec.into(),
        max_channels: ch,
    };
    ClientCaps {
        containers: vec![
            "mp4".into(),
            "webm".into(),
            "mp3".into(),
            "ogg".into(),
            "flac".into(),
        ],
        video: vec![video("h264"), video("vp9"), video("av1"), video("vp8")],
        audio: vec![
            audio("aac", 6),
            audio("mp3", 2),
            audio("opus", 8),
            audio("flac", 8),
            audio("vorbis", 8),
        ],
        hls_fmp4: true,
        webvtt: true,
        max_bitrate: None,
    }
}

/// One row: name, file, track choice, limits, then the expected method, sound and summary.
type Row = (
    &'static str,
    MediaFacts,
    Choice,
    Limits,
    Method,
    Option<AudioPlan>,
    &'static str,
);

fn film(container: &str, vcodec: &str, depth: u8, acodec: &str, channels: u8) -> MediaFacts {
    MediaFacts {
        containers: container.split(',').map(str::to_owned).collect(),
        duration_ms: Some(20_000),
        bitrate: Some(3_000_000),
        video: Some(VideoStream {
            index: 0,
            codec: vcodec.into(),
            profile: Some(if depth == 10 { "Main 10" } else { "High" }.into()),
            level: Some(40),
            bit_depth: depth,
            width: 1280,
            height: 720,
            bitrate: Some(2_800_000),
            interlaced: false,
        }),
        audio: vec![AudioStream {
            index: 1,
            codec: acodec.into(),
            channels,
            language: Some("eng".into()),
            bitrate: Some(192_000),
            default: true,
        }],
        subtitles: vec![],
    }
}

fn with_subs(mut f: MediaFacts, codec: &str) -> MediaFacts {
    f.subtitles.push(SubtitleStream {
        index: 2,
        codec: codec.into(),
        language: None,
        forced: false,
    });
    f
}

const LIMITS: Limits = Limits {
    chosen_bitrate: None,
    remote_bitrate: None,
    max_transcode_height: 1080,
};

#[test]
fn the_clip_matrix_in_chromium() {
    use Method::*;
    let sub = Choice {
        audio: None,
        subtitle: Some(2),
    };
    let none = Choice::default();
    let mut big = film("mov,mp4,m4a,3gp,3g2,mj2", "h264", 8, "aac", 2);
    big.bitrate = Some(8_500_000);
    if let Some(v) = big.video.as_mut() {
        v.height = 1080;
    }
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("MP4 H.264/AAC", film("mov,mp4,m4a,3gp,3g2,mj2", "h264", 8, "aac", 2), none, LIMITS,
            DirectPlay, Some(AudioPlan::Copy { index: 1 }), "Playing the file as it is."),
        ("MKV H.264/AAC", film("matroska,webm", "h264", 8, "aac", 2), none, LIMITS,
            DirectStream, Some(AudioPlan::Copy { index: 1 }),
            "The file is MKV, which this player can't open: repackaging the file, picture and sound unchanged."),
        ("MKV H.264/AC3 5.1", film("matroska,webm", "h264", 8, "ac3", 6), none, LIMITS,
            DirectStream, Some(AudioPlan::Aac { index: 1, channels: 2, bitrate: AAC_STEREO_BITRATE }),
            "The file is MKV, which this player can't open; the sound is AC3 (Dolby Digital), which this player can't play: converting the sound only."),
        ("MKV H.264/E-AC3", film("matroska,webm", "h264", 8, "eac3", 6), none, LIMITS,
            DirectStream, Some(AudioPlan::Aac { index: 1, channels: 2, bitrate: AAC_STEREO_BITRATE }),
            "The file is MKV, which this player can't open; the sound is E-AC3 (Dolby Digital Plus), which this player can't play: converting the sound only."),
        ("MKV HEVC/AAC", film("matroska,webm", "hevc", 8, "aac", 2), none, LIMITS,
            Transcode, Some(AudioPlan::Copy { index: 1 }),
            "The file is MKV, which this player can't open; the picture is HEVC (H.265), which this player can't show: converting the picture to H.264 at 720p."),
        ("MKV HEVC 10-bit/DTS", film("matroska,webm", "hevc", 10, "dts", 6), none, LIMITS,
            Transcode, Some(AudioPlan::Aac { index: 1, channels: 2, bitrate: AAC_STEREO_BITRATE }),
            "The file is MKV, which this player can't open; the picture is HEVC (H.265), which this player can't show; the sound is DTS, which this player can't play: converting the picture to H.264 at 720p."),
        ("AVI MPEG-4 ASP/MP3", film("avi", "mpeg4", 8, "mp3", 2), none, LIMITS,
            Transcode, Some(AudioPlan::Aac { index: 1, channels: 2, bitrate: AAC_STEREO_BITRATE }),
            "The file is AVI, which this player can't open; the picture is MPEG-4 Part 2 (XviD/DivX), which this player can't show: converting the picture to H.264 at 720p."),
        ("MKV with ASS subtitles chosen", with_subs(film("matroska,webm", "h264", 8, "aac", 2), "ass"), sub, LIMITS,
            DirectStream, Some(AudioPlan::Copy { index: 1 }),
            "The file is MKV, which this player can't open: repackaging the file, picture and sound unchanged."),
        ("MKV with VobSub chosen", with_subs(film("matroska,webm", "h264", 8, "aac", 2), "dvd_subtitle"), sub, LIMITS,
            Transcode, Some(AudioPlan::Copy { index: 1 }),
            "The file is MKV, which this player can't open; the chosen subtitles are pictures (DVD VobSub), so they are drawn into the video: converting the picture to H.264 at 720p."),
        ("MP4 H.264 10-bit", film("mov,mp4,m4a,3gp,3g2,mj2", "h264", 10, "aac", 2), none, LIMITS,
            Transcode, Some(AudioPlan::Copy { index: 1 }),
            "The picture is 10-bit, which this player can't show: converting the picture to H.264 at 720p."),
        ("1080p 8.5 Mbit/s, remote limit 2", big.clone(), none,
            Limits { remote_bitrate: Some(2_000_000), ..LIMITS },
            Transcode, Some(AudioPlan::Copy { index: 1 }),
            "The file needs 8.5 Mbit/s and the limit is 2.0 Mbit/s: converting the picture to H.264 at 720p."),
        ("1080p 8.5 Mbit/s, viewer picks 1", big.clone(), none,
            Limits { chosen_bitrate: Some(1_000_000), remote_bitrate: Some(4_000_000), ..LIMITS },
            Transcode, Some(AudioPlan::Copy { index: 1 }),
            "The file needs 8.5 Mbit/s and the limit is 1.0 Mbit/s: converting the picture to H.264 at 480p."),
        ("1080p 8.5 Mbit/s at home", big, none, LIMITS,
            DirectPlay, Some(AudioPlan::Copy { index: 1 }), "Playing the file as it is."),
    ];
    for (name, facts, choice, limits, method, audio, summary) in table {
        let plan =
            decide(&facts, &chromium(), limits, choice).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(plan.method, method, "{name}: {plan:?}");
        assert_eq!(plan.audio, audio, "{name}");
        assert_eq!(plan.summary, summary, "{name}");
        match (&plan.method, &plan.video) {
            (
                Method::Transcode,
                Some(VideoPlan::H264 {
                    bitrate, height, ..
                }),
            ) => {
                if let Some(l) = [limits.chosen_bitrate, limits.remote_bitrate]
                    .into_iter()
                    .flatten()
                    .min()
                {
                    assert!(
                        bitrate + AAC_STEREO_BITRATE <= l,
                        "{name}: {bitrate} over {l}"
                    );
                }
                assert!(*height <= 1080 && height % 2 == 0, "{name}: {height}");
            }
            (Method::Transcode, other) => {
                panic!("{name}: a transcode without an H.264 plan: {other:?}")
            }
            (_, Some(VideoPlan::Copy { index })) => assert_eq!(*index, 0, "{name}"),
            (_, other) => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn subtitles_are_served_as_webvtt_or_burned() {
    let f = with_subs(film("mov,mp4", "h264", 8, "aac", 2), "mov_text");
    let plan = decide(
        &f,
        &chromium(),
        LIMITS,
        Choice {
            audio: None,
            subtitle: Some(2),
        },
    )
    .unwrap();
    assert_eq!(plan.method, Method::DirectPlay);
    assert_eq!(plan.subtitle, SubtitlePlan::WebVtt { index: 2 });
    let mut no_vtt = chromium();
    no_vtt.webvtt = false;
    let plan = decide(
        &f,
        &no_vtt,
        LIMITS,
        Choice {
            audio: None,
            subtitle: Some(2),
        },
    )
    .unwrap();
    assert_eq!(plan.method, Method::Transcode);
    assert_eq!(plan.subtitle, SubtitlePlan::Burn { index: 2 });
}

#[test]
fn a_pi_converts_down_to_720p() {
    let mut f = film("matroska,webm", "hevc", 8, "aac", 2);
    if let Some(v) = f.video.as_mut() {
        v.height = 2160;
    }
    let pi = Limits {
        max_transcode_height: 720,
        ..LIMITS
    };
    let plan = decide(&f, &chromium(), pi, Choice::default()).unwrap();
    assert!(
        matches!(plan.video, Some(VideoPlan::H264 { height: 720, .. })),
        "{plan:?}"
    );
    // Never taller than the source.
    let mut small = film("avi", "mpeg4", 8, "mp3", 2);
    if let Some(v) = small.video.as_mut() {
        v.height = 576;
    }
    let plan = decide(&small, &chromium(), LIMITS, Choice::default()).unwrap();
    assert!(
        matches!(plan.video, Some(VideoPlan::H264 { height: 576, .. })),
        "{plan:?}"
    );
}

#[test]
fn chosen_audio_tracks_and_missing_ones() {
    let mut f = film("matroska,webm", "h264", 8, "ac3", 6);
    f.audio.push(AudioStream {
        index: 3,
        codec: "aac".into(),
        channels: 2,
        default: false,
        ..Default::default()
    });
    let plan = decide(
        &f,
        &chromium(),
        LIMITS,
        Choice {
            audio: Some(3),
            subtitle: None,
        },
    )
    .unwrap();
    assert_eq!(plan.audio, Some(AudioPlan::Copy { index: 3 }));
    assert_eq!(
        decide(
            &f,
            &chromium(),
            LIMITS,
            Choice {
                audio: Some(9),
                subtitle: None
            }
        ),
        Err(DecideError::NoSuchTrack(9))
    );
    assert_eq!(
        decide(
            &f,
            &chromium(),
            LIMITS,
            Choice {
                audio: None,
                subtitle: Some(1)
            }
        ),
        Err(DecideError::NoSuchTrack(1))
    );
}

#[test]
fn a_player_without_hls_is_told_why() {
    let mut caps = chromium();
    caps.hls_fmp4 = false;
    let err = decide(
        &film("matroska,webm", "hevc", 8, "aac", 2),
        &caps,
        LIMITS,
        Choice::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "The file is MKV, which this player can't open; the picture is HEVC (H.265), which this player can't show; this player can't play converted streams either"
    );
    // What it can play still plays.
    let plan = decide(
        &film("mp4", "h264", 8, "aac", 2),
        &caps,
        LIMITS,
        Choice::default(),
    )
    .unwrap();
    assert_eq!(plan.method, Method::DirectPlay);
}

#[test]
fn music() {
    let mut mp3 = film("mp3", "h264", 8, "mp3", 2);
    mp3.video = None;
    assert_eq!(
        decide(&mp3, &chromium(), LIMITS, Choice::default())
            .unwrap()
            .method,
        Method::DirectPlay
    );
    let mut alac = film("mov,mp4,m4a", "h264", 8, "alac", 2);
    alac.video = None;
    let plan = decide(&alac, &chromium(), LIMITS, Choice::default()).unwrap();
    assert_eq!(plan.method, Method::DirectStream);
    assert_eq!(
        plan.summary,
        "The sound is ALAC, which this player can't play: converting the sound."
    );
    assert_eq!(plan.video, None);
}

#[test]
fn webm_is_told_apart_from_mkv() {
    let mut f = film("matroska,webm", "vp9", 8, "opus", 2);
    assert_eq!(container_of(&f), "webm");
    assert_eq!(
        decide(&f, &chromium(), LIMITS, Choice::default())
            .unwrap()
            .method,
        Method::DirectPlay
    );
    f.audio[0].codec = "aac".into();
    assert_eq!(container_of(&f), "matroska");
}

#[test]
fn caps_are_bounded() {
    let mut caps = chromium();
    assert!(caps.validate().is_ok());
    caps.containers = vec!["mp4".into(); 33];
    assert!(caps.validate().is_err());
    let mut caps = chromium();
    caps.audio[0].codec = "x".repeat(33);
    assert!(caps.validate().is_err());
    assert!(ClientCaps::baseline().validate().is_ok());
}
