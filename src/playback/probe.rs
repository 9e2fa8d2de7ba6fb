//! Asking ffprobe what a file holds, and ffmpeg for a text subtitle track as WebVTT, both over
//! the already-opened file (fd 3), bounded in output and time.

use super::facts::{self, FactsError, MediaFacts};
use super::ffmpeg::{self, SpawnError};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most ffprobe may print about one file.
const MAX_PROBE_BYTES: usize = 1 << 20;
/// The largest subtitle track we convert.
pub const MAX_SUBTITLE_BYTES: usize = 8 << 20;

/// ffprobe beside the given ffmpeg.
pub fn ffprobe_beside(ffmpeg: &Path) -> PathBuf {
    ffmpeg.with_file_name("ffprobe")
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// What the file behind `input` holds.
pub fn probe(ffprobe: &Path, input: OwnedFd) -> Result<MediaFacts, FactsError> {
    let args = os(&[
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-of",
        "json",
        "-show_format",
        "-show_streams",
        "-i",
        "file:/proc/self/fd/3",
    ]);
    let out = ffmpeg::run_to_end(
        ffprobe,
        args,
        input,
        MAX_PROBE_BYTES,
        Duration::from_secs(30),
    )
    .map_err(|e| match e {
        SpawnError::Missing => FactsError::Unreadable("ffprobe is not installed".into()),
        SpawnError::Io(e) => FactsError::Unreadable(e.to_string()),
    })?;
    if !out.ok {
        return Err(FactsError::Unreadable(if out.message.is_empty() {
            "ffprobe could not read it".into()
        } else {
            out.message
        }));
    }
    facts::from_ffprobe_json(&out.stdout)
}

/// The most keyframes kept for one film (a 10-hour film with a keyframe a second).
const MAX_KEYFRAMES: usize = 40_000;

/// The times (milliseconds) of the video stream's keyframes, read from the packets without
/// decoding. Segments of a copied picture must start on them.
pub fn keyframes(ffprobe: &Path, input: OwnedFd, stream: u32) -> Result<Vec<u64>, FactsError> {
    let select = format!("{stream}");
    let args = os(&[
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-select_streams",
        &select,
        "-show_entries",
        "packet=pts_time,flags",
        "-of",
        "csv=p=0",
        "-i",
        "file:/proc/self/fd/3",
    ]);
    let out = ffmpeg::run_to_end(ffprobe, args, input, 64 << 20, Duration::from_secs(300))
        .map_err(|e| FactsError::Unreadable(e.to_string()))?;
    if !out.ok {
        return Err(FactsError::Unreadable(out.message));
    }
    let mut times = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.split(',');
        let (Some(t), Some(flags)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !flags.starts_with('K') {
            continue;
        }
        let Ok(secs) = t.parse::<f64>() else { continue };
        if !secs.is_finite() || secs < 0.0 {
            continue;
        }
        times.push((secs * 1000.0).round() as u64);
        if times.len() > MAX_KEYFRAMES {
            return Err(FactsError::Unreadable("too many keyframes".into()));
        }
    }
    times.sort_unstable();
    times.dedup();
    Ok(times)
}

/// A subtitle track could not be made WebVTT.
#[derive(Debug, thiserror::Error)]
pub enum SubtitleError {
    #[error("this subtitle track could not be converted: {0}")]
    Failed(String),
    #[error("this subtitle track is too large to convert")]
    TooLarge,
}

/// Track `index` of the file behind `input` as WebVTT text.
pub fn subtitle_vtt(ffmpeg: &Path, input: OwnedFd, index: u32) -> Result<String, SubtitleError> {
    let map = format!("0:{index}");
    let args = os(&[
        "-nostdin",
        "-v",
        "error",
        "-protocol_whitelist",
        "file,pipe",
        "-i",
        "file:/proc/self/fd/3",
        "-map",
        &map,
        "-f",
        "webvtt",
        "pipe:1",
    ]);
    match ffmpeg::run_to_end(
        ffmpeg,
        args,
        input,
        MAX_SUBTITLE_BYTES,
        Duration::from_secs(120),
    ) {
        Ok(out) if out.ok => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(SubtitleError::Failed(out.message)),
        Err(SpawnError::Io(e)) if e.to_string().contains("too large") => {
            Err(SubtitleError::TooLarge)
        }
        Err(e) => Err(SubtitleError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn probes_and_extracts_an_ass_track() {
        let Some(ffmpeg) = crate::playback::session::find_ffmpeg() else {
            eprintln!("SKIPPED: ffmpeg is missing");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let ass = tmp.path().join("s.ass");
        std::fs::write(&ass, "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\nStyle: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\nDialogue: 0,0:00:00.50,0:00:01.50,Default,,0,0,0,,Hello from ASS\n").unwrap();
        let clip = tmp.path().join("c.mkv");
        let st = Command::new(&ffmpeg)
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=duration=2:size=160x90:rate=24",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=2",
            ])
            .arg("-i")
            .arg(&ass)
            .args([
                "-map",
                "0",
                "-map",
                "1",
                "-map",
                "2",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-c:a",
                "ac3",
                "-c:s",
                "ass",
                "-metadata:s:s:0",
                "language=fre",
            ])
            .arg(&clip)
            .status()
            .unwrap();
        assert!(st.success());
        let open = || OwnedFd::from(std::fs::File::open(&clip).unwrap());
        let f = probe(&ffprobe_beside(&ffmpeg), open()).unwrap();
        assert_eq!(f.video.as_ref().unwrap().codec, "h264");
        assert_eq!(f.audio[0].codec, "ac3");
        assert_eq!(f.subtitles[0].codec, "ass");
        assert_eq!(f.subtitles[0].language.as_deref(), Some("fre"));
        let vtt = subtitle_vtt(&ffmpeg, open(), f.subtitles[0].index).unwrap();
        assert!(
            vtt.starts_with("WEBVTT") && vtt.contains("Hello from ASS"),
            "{vtt}"
        );
        // A track that is not a subtitle: a clear failure, no panic.
        assert!(subtitle_vtt(&ffmpeg, open(), 0).is_err());
        // Not media at all.
        let junk = tmp.path().join("junk.mkv");
        std::fs::write(&junk, b"junk").unwrap();
        let err = probe(
            &ffprobe_beside(&ffmpeg),
            OwnedFd::from(std::fs::File::open(&junk).unwrap()),
        )
        .unwrap_err();
        assert!(matches!(err, FactsError::Unreadable(_)), "{err}");
    }
}
