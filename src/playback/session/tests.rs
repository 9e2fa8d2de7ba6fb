//! Sessions with real ffmpeg children on a clip made here.

use super::*;
use crate::playback::decide::{AudioPlan, SubtitlePlan, VideoPlan};
use std::process::Command;

fn ffmpeg() -> Option<PathBuf> {
    let p = find_ffmpeg();
    if p.is_none() {
        eprintln!("SKIPPED: ffmpeg is missing (scripts/install-deps installs it)");
    }
    p
}

fn clip(dir: &Path, seconds: u32) -> OwnedFd {
    let f = dir.join("clip.mkv");
    let st = Command::new("/usr/bin/ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=duration={seconds}:size=160x90:rate=24"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "24",
            "-c:a",
            "ac3",
            "-shortest",
        ])
        .arg(&f)
        .status()
        .unwrap();
    assert!(st.success());
    OwnedFd::from(std::fs::File::open(&f).unwrap())
}

/// The clip's keyframes, as the web layer reads them before a copy session.
fn keyframes(fd: &OwnedFd) -> Option<Vec<u64>> {
    let probe = crate::playback::probe::ffprobe_beside(&find_ffmpeg()?);
    Some(crate::playback::probe::keyframes(&probe, fd.try_clone().unwrap(), 0).unwrap())
}

fn remux() -> Plan {
    Plan {
        method: Method::DirectStream,
        video: Some(VideoPlan::Copy { index: 0 }),
        audio: Some(AudioPlan::Aac {
            index: 1,
            channels: 2,
            bitrate: 128_000,
        }),
        subtitle: SubtitlePlan::None,
        reasons: vec![],
        summary: String::new(),
    }
}

fn transcode() -> Plan {
    Plan {
        method: Method::Transcode,
        video: Some(VideoPlan::H264 {
            index: 0,
            height: 90,
            bitrate: 300_000,
            deinterlace: false,
        }),
        ..remux()
    }
}

fn owner(user: u64, device: u64) -> Owner<()> {
    Owner {
        user_id: user,
        device_id: device,
        item_id: 7,
        grant: (),
    }
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purpose; the session reaps it on drop.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn pid_of(s: &Session<()>) -> Option<u32> {
    lock(&s.run).conv.as_ref().map(Converter::pid)
}

#[test]
fn segments_a_seek_and_the_end() {
    let Some(bin) = ffmpeg() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let sessions = Sessions::new(
        tmp.path().join("cache"),
        Some(bin),
        SessionLimits::default(),
    )
    .unwrap();
    let fd = clip(tmp.path(), 60);
    let kf = keyframes(&fd);
    assert_eq!(kf.as_ref().map(Vec::len), Some(60), "a keyframe a second");
    let s = sessions
        .start(owner(1, 10), remux(), 60_000, kf, fd)
        .unwrap();
    assert_eq!(s.segments, 60);
    let list = s.playlist();
    assert!(
        list.contains("#EXT-X-MAP:URI=\"init.mp4\"")
            && list.contains("59.m4s")
            && list.contains("#EXTINF:1.000,")
            && list.ends_with("#EXT-X-ENDLIST\n"),
        "{list}"
    );
    assert!(s.segment(0).unwrap().exists());
    assert!(s.init_path().exists());
    let first = pid_of(&s);
    // Far ahead of the child: a seek restarts it there.
    let p = s.segment(48).unwrap();
    assert!(p.exists());
    assert_eq!(lock(&s.run).first, 48);
    let _ = first;
    assert!(matches!(s.segment(60), Err(SessionError::NoSuchSegment)));
    let dir = s.dir.clone();
    let pid = pid_of(&s);
    sessions.end(&s.id);
    assert!(!dir.exists());
    if let Some(pid) = pid {
        assert!(!alive(pid), "ffmpeg {pid} outlived its session");
    }
    assert!(sessions.get(&s.id).is_none());
}

#[test]
fn one_session_per_device_and_limits_per_user() {
    let Some(bin) = ffmpeg() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let limits = SessionLimits {
        transcodes: 1,
        per_user: 2,
        total: 3,
        idle_secs: 0,
    };
    let sessions = Sessions::new(tmp.path().join("cache"), Some(bin), limits).unwrap();
    let a = sessions
        .start(owner(1, 10), remux(), 20_000, None, clip(tmp.path(), 20))
        .unwrap();
    let b = sessions
        .start(owner(1, 10), remux(), 20_000, None, clip(tmp.path(), 20))
        .unwrap();
    assert!(
        sessions.get(&a.id).is_none(),
        "the device's new session ends its old one"
    );
    assert!(sessions.get(&b.id).is_some());
    sessions
        .start(owner(1, 11), remux(), 20_000, None, clip(tmp.path(), 20))
        .unwrap();
    let third = sessions.start(owner(1, 12), remux(), 20_000, None, clip(tmp.path(), 20));
    assert!(matches!(third, Err(SessionError::Busy(_))), "per user");
    let mut t = remux();
    t.method = Method::Transcode;
    t.video = Some(VideoPlan::H264 {
        index: 0,
        height: 90,
        bitrate: 300_000,
        deinterlace: false,
    });
    sessions
        .start(owner(2, 20), t.clone(), 20_000, None, clip(tmp.path(), 20))
        .unwrap();
    let busy = sessions.start(owner(3, 30), t, 20_000, None, clip(tmp.path(), 20));
    assert!(matches!(busy, Err(SessionError::Busy(_))), "total");
    // Idle for more than 0 s: tending ends them all.
    std::thread::sleep(Duration::from_millis(1100));
    sessions.tend();
    assert!(sessions.is_empty());
}

#[test]
fn a_corrupt_file_fails_with_a_message_and_no_child() {
    let Some(bin) = ffmpeg() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.mkv");
    std::fs::write(&f, b"\x1a\x45\xdf\xa3 this is not a film at all").unwrap();
    let sessions = Sessions::new(
        tmp.path().join("cache"),
        Some(bin),
        SessionLimits::default(),
    )
    .unwrap();
    let s = sessions
        .start(
            owner(1, 1),
            remux(),
            8_000,
            None,
            OwnedFd::from(std::fs::File::open(&f).unwrap()),
        )
        .unwrap();
    match s.segment(0) {
        Err(SessionError::Failed(msg)) => assert!(!msg.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(pid_of(&s).is_none());
}

#[test]
fn no_ffmpeg_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let sessions: Sessions<()> =
        Sessions::new(tmp.path().join("c"), None, SessionLimits::default()).unwrap();
    let f = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let err = sessions
        .start(owner(1, 1), remux(), 1000, None, f)
        .err()
        .unwrap();
    assert!(err.to_string().contains("apt install ffmpeg"), "{err}");
}

#[test]
fn a_file_cut_short_ends_with_a_message() {
    let Some(bin) = ffmpeg() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("clip.mkv");
    drop(clip(tmp.path(), 20));
    let bytes = std::fs::read(&whole).unwrap();
    let cut = tmp.path().join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let sessions = Sessions::new(
        tmp.path().join("cache"),
        Some(bin),
        SessionLimits::default(),
    )
    .unwrap();
    // The header says 20 s; the data stops near 7 s.
    let s = sessions
        .start(
            owner(1, 1),
            transcode(),
            20_000,
            None,
            OwnedFd::from(std::fs::File::open(&cut).unwrap()),
        )
        .unwrap();
    assert!(s.segment(0).is_ok());
    match s.segment(4) {
        Err(SessionError::EndsEarly) => {}
        other => panic!("{other:?}"),
    }
    assert!(pid_of(&s).is_none(), "the child ended");
}

#[test]
fn a_converted_picture_is_cut_every_four_seconds_and_a_short_tail_joins_the_last_segment() {
    // 12.083 s: the sound runs 83 ms past the picture, where no frame can start a segment.
    assert_eq!(segment_starts(12_083, None), vec![0, 4_000, 8_000]);
    assert_eq!(segment_starts(13_999, None), vec![0, 4_000, 8_000]);
    assert_eq!(segment_starts(14_000, None), vec![0, 4_000, 8_000, 12_000]);
    assert_eq!(segment_starts(12_000, None), vec![0, 4_000, 8_000]);
    assert_eq!(segment_starts(1_500, None), vec![0]);
    assert_eq!(segment_starts(0, None), vec![0]);
}
