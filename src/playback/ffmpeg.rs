//! ffmpeg as the converter: the argument list for a plan (pure), and the child process that
//! runs it. The child reads only the file the race-proof opener already opened (inherited as
//! fd 3 and named `file:/proc/self/fd/3`), may use no protocol but `file`, runs niced in its
//! own process group, dies with the server (`PR_SET_PDEATHSIG`), and is killed with its group
//! when the session is dropped.

use super::decide::{AudioPlan, Plan, SubtitlePlan, VideoPlan};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Seconds of film in one HLS segment.
pub const SEGMENT_SECONDS: u32 = 4;
/// The fd number the child reads the film from.
const INPUT_FD: i32 = 3;

/// Where a conversion starts and where it writes.
#[derive(Debug, Clone)]
pub struct Job {
    /// The first segment to produce.
    pub first_segment: u32,
    /// Where that segment starts in the film, milliseconds: `first_segment × SEGMENT_SECONDS`
    /// for a converted picture, the keyframe it starts on for a copied one.
    pub start_ms: u64,
    /// Where the film's last segment starts, milliseconds (a converted picture gets no
    /// keyframe forced after it, so a short tail stays in that segment).
    pub last_start_ms: u64,
    /// The session's directory; ffmpeg writes `init.mp4`, `seg00000.m4s`… and `ffmpeg.m3u8`.
    pub dir: PathBuf,
    /// Encoder threads (0 = ffmpeg's choice).
    pub threads: u32,
}

/// The argument list (without the program name) for `plan` run as `job`.
pub fn args(plan: &Plan, job: &Job) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&["-nostdin", "-hide_banner", "-loglevel", "error", "-nostats"]);
    push(&["-protocol_whitelist", "file"]);
    let copy = matches!(plan.video, Some(VideoPlan::Copy { .. }));
    let secs = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
    if job.start_ms > 0 {
        // A copied picture starts on the keyframe at `start_ms`: seek a hair past it, and the
        // input seek lands on it (the last keyframe at or before the position).
        let at = if copy { job.start_ms + 1 } else { job.start_ms };
        push(&["-ss", &secs(at)]);
    }
    if copy {
        // The file's own timestamps, so every child's segment N carries the same times.
        push(&["-copyts", "-start_at_zero"]);
    }
    push(&["-i", &format!("file:/proc/self/fd/{INPUT_FD}")]);
    push(&["-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn"]);
    match &plan.video {
        None => push(&["-vn"]),
        Some(VideoPlan::Copy { index }) => {
            push(&["-map", &format!("0:{index}"), "-c:v", "copy"]);
        }
        Some(VideoPlan::H264 {
            index,
            height,
            bitrate,
            deinterlace,
        }) => {
            let enc = H264 {
                index: *index,
                height: *height,
                bitrate: *bitrate,
                deinterlace: *deinterlace,
            };
            let enc = h264_args(&enc, &plan.subtitle, job);
            push(&enc.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
    match &plan.audio {
        None => push(&["-an"]),
        Some(AudioPlan::Copy { index }) => push(&["-map", &format!("0:{index}"), "-c:a", "copy"]),
        Some(AudioPlan::Aac {
            index,
            channels,
            bitrate,
        }) => push(&[
            "-map",
            &format!("0:{index}"),
            "-c:a",
            "aac",
            "-ac",
            &channels.to_string(),
            "-b:a",
            &format!("{}k", bitrate / 1000),
        ]),
    }
    // Timestamps continue from where this conversion starts, so segment N carries the times
    // the playlist gives it whichever conversion made it.
    if !copy && job.start_ms > 0 {
        push(&["-output_ts_offset", &secs(job.start_ms)]);
    }
    a.extend(hls_args(job, copy));
    a.push(job.dir.join("seg%05d.m4s").into_os_string());
    a.push(job.dir.join("ffmpeg.m3u8").into_os_string());
    a
}

/// A picture to convert to H.264.
struct H264 {
    index: u32,
    height: u32,
    bitrate: u64,
    deinterlace: bool,
}

/// The filter graph and encoder settings of a converted picture.
fn h264_args(v: &H264, subtitle: &SubtitlePlan, job: &Job) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
    let secs = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let mut chain = Vec::new();
    if v.deinterlace {
        chain.push("yadif".to_owned());
    }
    let index = v.index;
    let mut graph = String::new();
    match subtitle {
        SubtitlePlan::Burn { index: s } => {
            // Picture subtitles are overlaid; the chain scales the result.
            graph.push_str(&format!("[0:{index}][0:{s}]overlay"));
        }
        _ => graph.push_str(&format!("[0:{index}]null")),
    }
    chain.push(format!("scale=-2:{}", v.height));
    chain.push("format=yuv420p".into());
    graph.push(',');
    graph.push_str(&chain.join(","));
    graph.push_str("[v]");
    let kbits = (v.bitrate / 1000).max(100);
    push(&["-filter_complex", &graph, "-map", "[v]"]);
    push(&[
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
    ]);
    push(&[
        "-b:v",
        &format!("{kbits}k"),
        "-maxrate",
        &format!("{}k", kbits * 12 / 10),
    ]);
    push(&["-bufsize", &format!("{}k", kbits * 2)]);
    // A keyframe at every segment boundary, so every segment starts cleanly and a seek to a
    // segment lands where the playlist says; none after the last boundary (`t` counts from
    // this conversion's start), where the playlist has no segment.
    let last = job.last_start_ms.saturating_sub(job.start_ms) + 1000;
    push(&[
        "-force_key_frames",
        &format!(
            "expr:gte(t,n_forced*{SEGMENT_SECONDS})*lt(t,{})",
            secs(last)
        ),
        "-sc_threshold",
        "0",
    ]);
    if job.threads > 0 {
        push(&["-threads", &job.threads.to_string()]);
    }
    a
}

/// The HLS muxer: fMP4 segments named by their number in the whole film.
fn hls_args(job: &Job, copy: bool) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    // A copied picture is cut at every keyframe (the playlist lists them); a converted one
    // every SEGMENT_SECONDS, where the encoder was told to put keyframes.
    let hls_time = if copy {
        "0.05".to_owned()
    } else {
        SEGMENT_SECONDS.to_string()
    };
    push(&["-f", "hls", "-hls_time", &hls_time]);
    push(&[
        "-hls_segment_type",
        "fmp4",
        "-hls_fmp4_init_filename",
        "init.mp4",
    ]);
    push(&[
        "-hls_flags",
        "independent_segments+temp_file",
        "-hls_playlist_type",
        "event",
    ]);
    push(&[
        "-hls_list_size",
        "0",
        "-start_number",
        &job.first_segment.to_string(),
    ]);
    a.push("-hls_segment_filename".into());
    a
}

/// Starting ffmpeg failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("ffmpeg is not installed; converting needs it (Debian: apt install ffmpeg)")]
    Missing,
    #[error("ffmpeg could not be started: {0}")]
    Io(#[from] std::io::Error),
}

/// A running conversion. Dropping it kills ffmpeg and everything it started.
#[derive(Debug)]
pub struct Converter {
    child: Child,
}

impl Converter {
    /// Runs `program` (normally `ffmpeg`) with `args`, reading `input` as fd 3.
    pub fn spawn(
        program: &Path,
        args: &[OsString],
        input: OwnedFd,
        stderr: Stdio,
    ) -> Result<Converter, SpawnError> {
        Self::start(program, args, input, Stdio::null(), stderr)
    }

    /// As [`Converter::spawn`], with the child's stdout piped to us.
    pub fn spawn_piped(
        program: &Path,
        args: &[OsString],
        input: OwnedFd,
        stderr: Stdio,
    ) -> Result<Converter, SpawnError> {
        Self::start(program, args, input, Stdio::piped(), stderr)
    }

    fn stdout_nonblocking(&mut self) {
        if let Some(out) = &self.child.stdout {
            let fd = out.as_raw_fd();
            if let Ok(flags) = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL) {
                let flags =
                    nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
                let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags));
            }
        }
    }

    fn start(
        program: &Path,
        args: &[OsString],
        input: OwnedFd,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Converter, SpawnError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        let fd = input.as_raw_fd();
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // async-signal-safe functions (prctl, getppid, setpgid, setpriority, dup2, fcntl).
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || child_setup(fd));
        }
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SpawnError::Missing,
            _ => SpawnError::Io(e),
        })?;
        // The parent's copy of the fd is no longer needed once the child holds it.
        drop(input);
        Ok(Converter { child })
    }

    /// The child's process id (its process group has the same id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stderr, for the message a failed conversion leaves.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Whether ffmpeg has exited, and how.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }
}

impl Drop for Converter {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // The whole group: ffmpeg starts no children today, but a filter could.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file with no name (memfd) for a child's messages.
fn anonymous_file() -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: a plain syscall with a static C string; the fd returned is ours alone.
    let fd = unsafe { libc::memfd_create(c"hearth-ffmpeg-log".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

type Task = Box<dyn FnOnce() + Send>;

/// Runs `f` on the one long-lived thread that starts children, and returns its result
/// (`None` if that thread is gone). `PR_SET_PDEATHSIG` fires when the *thread* that forked
/// dies, and the runtime's blocking threads come and go; this one lives as long as the
/// process. (A process-wide thread, not configuration: hence the static.)
pub fn on_launcher<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    use std::sync::mpsc;
    static LAUNCHER: std::sync::OnceLock<std::sync::Mutex<mpsc::Sender<Task>>> =
        std::sync::OnceLock::new();
    let tx = LAUNCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Task>();
        let spawned = std::thread::Builder::new()
            .name("hearth-ffmpeg-launcher".into())
            .spawn(move || {
                for task in rx {
                    task();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the ffmpeg launcher thread could not start");
        }
        std::sync::Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    let task: Task = Box::new(move || {
        let _ = reply_tx.send(f());
    });
    tx.lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(task)
        .ok()?;
    reply_rx.recv().ok()
}

/// A child that ran to its end: what it wrote and whether it succeeded.
#[derive(Debug)]
pub struct Output {
    pub ok: bool,
    pub stdout: Vec<u8>,
    /// The last line it complained with.
    pub message: String,
}

/// Runs `program` with `args` over `input` (fd 3) to its end, keeping at most `max_out` bytes
/// of its output; killed (and an error) past `limit` time or output. For ffprobe and for
/// extracting a subtitle track.
pub fn run_to_end(
    program: &Path,
    args: Vec<OsString>,
    input: OwnedFd,
    max_out: usize,
    limit: std::time::Duration,
) -> Result<Output, SpawnError> {
    use std::io::Read;
    let log = anonymous_file()?;
    let log_for_child = log.try_clone()?;
    let program = program.to_owned();
    let mut conv = on_launcher(move || {
        let mut cmd_out = Converter::spawn_piped(&program, &args, input, log_for_child.into());
        if let Ok(c) = cmd_out.as_mut() {
            c.stdout_nonblocking();
        }
        cmd_out
    })
    .ok_or_else(|| SpawnError::Io(std::io::Error::other("the ffmpeg launcher has stopped")))??;
    let mut stdout = conv.child.stdout.take();
    let deadline = std::time::Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let mut progressed = false;
        if let Some(s) = stdout.as_mut() {
            match s.read(&mut buf) {
                Ok(0) => stdout = None,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    progressed = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => stdout = None,
            }
        }
        if out.len() > max_out {
            return Err(SpawnError::Io(std::io::Error::other(
                "the output is too large",
            )));
        }
        if stdout.is_none()
            && let Some(status) = conv.child.try_wait()?
        {
            let mut log = log;
            let mut text = String::new();
            use std::io::Seek;
            log.seek(std::io::SeekFrom::Start(0))?;
            (&mut log).take(64 * 1024).read_to_string(&mut text).ok();
            let message = text
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_owned();
            return Ok(Output {
                ok: status.success(),
                stdout: out,
                message,
            });
        }
        if std::time::Instant::now() > deadline {
            return Err(SpawnError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "it took too long",
            )));
        }
        if !progressed {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// In the child before exec: die with the parent, own group, lower priority, fd 3 = the film.
fn child_setup(fd: i32) -> std::io::Result<()> {
    // SAFETY: plain syscalls on integers; no allocation.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The parent may have died before prctl took effect.
        if libc::getppid() == 1 {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        if libc::setpgid(0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        // Segments land in the private data directory: private files (0600), whatever the
        // server's umask.
        libc::umask(0o077);
        if fd == INPUT_FD {
            // dup2 onto itself keeps CLOEXEC; clear it instead.
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        } else if libc::dup2(fd, INPUT_FD) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::decide::{Method, Plan};

    fn plan(video: Option<VideoPlan>, audio: Option<AudioPlan>, subtitle: SubtitlePlan) -> Plan {
        Plan {
            method: Method::Transcode,
            video,
            audio,
            subtitle,
            reasons: vec![],
            summary: String::new(),
        }
    }

    fn joined(a: &[OsString]) -> String {
        a.iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_remux_copies_and_segments() {
        let p = plan(
            Some(VideoPlan::Copy { index: 0 }),
            Some(AudioPlan::Aac {
                index: 1,
                channels: 2,
                bitrate: 192_000,
            }),
            SubtitlePlan::None,
        );
        let job = Job {
            first_segment: 0,
            start_ms: 0,
            last_start_ms: 60_000,
            dir: "/cache/s1".into(),
            threads: 0,
        };
        let a = joined(&args(&p, &job));
        assert!(a.starts_with("-nostdin -hide_banner -loglevel error -nostats -protocol_whitelist file -copyts -start_at_zero -i file:/proc/self/fd/3"), "{a}");
        assert!(
            a.contains("-map 0:0 -c:v copy -map 0:1 -c:a aac -ac 2 -b:a 192k"),
            "{a}"
        );
        assert!(!a.contains("-ss"), "{a}");
        assert!(
            a.ends_with("-hls_segment_filename /cache/s1/seg%05d.m4s /cache/s1/ffmpeg.m3u8"),
            "{a}"
        );
    }

    #[test]
    fn a_transcode_from_segment_ten_starts_at_forty_seconds() {
        let p = plan(
            Some(VideoPlan::H264 {
                index: 0,
                height: 720,
                bitrate: 1_808_000,
                deinterlace: true,
            }),
            Some(AudioPlan::Copy { index: 1 }),
            SubtitlePlan::Burn { index: 3 },
        );
        let job = Job {
            first_segment: 10,
            start_ms: 40_000,
            last_start_ms: 120_000,
            dir: "/c".into(),
            threads: 2,
        };
        let a = joined(&args(&p, &job));
        assert!(a.contains("-ss 40.000 -i file:/proc/self/fd/3"), "{a}");
        assert!(
            a.contains(
                "-filter_complex [0:0][0:3]overlay,yadif,scale=-2:720,format=yuv420p[v] -map [v]"
            ),
            "{a}"
        );
        assert!(
            a.contains("-b:v 1808k -maxrate 2169k -bufsize 3616k"),
            "{a}"
        );
        assert!(a.contains("-output_ts_offset 40.000"), "{a}");
        assert!(a.contains("-start_number 10"), "{a}");
        assert!(a.contains("-threads 2"), "{a}");
    }

    #[test]
    fn no_argument_can_name_a_network_protocol() {
        let p = plan(Some(VideoPlan::Copy { index: 0 }), None, SubtitlePlan::None);
        let a = args(
            &p,
            &Job {
                first_segment: 0,
                start_ms: 0,
                last_start_ms: 0,
                dir: "/x".into(),
                threads: 0,
            },
        );
        let s = joined(&a);
        assert!(s.contains("-protocol_whitelist file"));
        for bad in ["http", "tcp", "udp", "rtmp", "concat", "subfile"] {
            assert!(!s.contains(&format!("{bad}:")), "{s}");
        }
        assert!(s.contains("-an"));
    }
}

#[cfg(test)]
mod runs {
    //! ffmpeg itself, on a clip made here. Skipped (loudly) only where ffmpeg is absent.
    use super::*;
    use crate::playback::decide::{Method, Plan};

    fn ffmpeg() -> Option<PathBuf> {
        let p = PathBuf::from("/usr/bin/ffmpeg");
        if p.exists() {
            Some(p)
        } else {
            eprintln!("SKIPPED: /usr/bin/ffmpeg is missing (scripts/install-deps installs it)");
            None
        }
    }

    fn make_clip(dir: &Path, seconds: u32) -> PathBuf {
        let f = dir.join("clip.mkv");
        let st = Command::new("/usr/bin/ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=duration={seconds}:size=320x180:rate=24"))
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
        f
    }

    #[test]
    fn a_remux_through_the_fd_makes_segments() {
        let Some(bin) = ffmpeg() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let clip = make_clip(tmp.path(), 10);
        let out = tmp.path().join("session");
        std::fs::create_dir(&out).unwrap();
        let plan = Plan {
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
        };
        let job = Job {
            first_segment: 1,
            start_ms: 4_000,
            last_start_ms: 8_000,
            dir: out.clone(),
            threads: 1,
        };
        let fd = OwnedFd::from(std::fs::File::open(&clip).unwrap());
        // The film's path is gone before ffmpeg starts: only the fd can reach it.
        std::fs::remove_file(&clip).unwrap();
        let mut conv = Converter::spawn(&bin, &args(&plan, &job), fd, Stdio::piped()).unwrap();
        let status = loop {
            if let Some(s) = conv.try_wait().unwrap() {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut err = String::new();
        if let Some(mut e) = conv.take_stderr() {
            use std::io::Read;
            e.read_to_string(&mut err).unwrap();
        }
        assert!(status.success(), "{err}");
        assert!(out.join("init.mp4").exists());
        // Starting at segment 1 (4 s) of a 10 s clip: segments 1 and 2 (4–8 s, 8–10 s).
        assert!(
            out.join("seg00001.m4s").exists(),
            "{:?}",
            std::fs::read_dir(&out).unwrap().collect::<Vec<_>>()
        );
        assert!(!out.join("seg00000.m4s").exists());
        let list = std::fs::read_to_string(out.join("ffmpeg.m3u8")).unwrap();
        assert!(list.contains("#EXT-X-MEDIA-SEQUENCE:1"), "{list}");
        assert!(list.contains("#EXT-X-ENDLIST"), "{list}");
    }

    #[test]
    fn dropping_the_converter_kills_ffmpeg() {
        let Some(bin) = ffmpeg() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let clip = make_clip(tmp.path(), 2);
        // Read the clip forever (-stream_loop) while encoding slowly, so it would outlive us.
        let mut a: Vec<OsString> = [
            "-nostdin",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file",
            "-stream_loop",
            "-1",
            "-re",
            "-i",
            "file:/proc/self/fd/3",
            "-f",
            "null",
            "-",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        a.shrink_to_fit();
        let fd = OwnedFd::from(std::fs::File::open(&clip).unwrap());
        let conv = Converter::spawn(&bin, &a, fd, Stdio::piped()).unwrap();
        let pid = conv.pid();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // Field 19 after the comm is the nice value.
        let nice: i32 = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(16)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(nice, 10, "{stat}");
        drop(conv);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "ffmpeg {pid} outlived its converter"
        );
    }

    #[test]
    fn a_network_input_is_refused_by_ffmpeg() {
        let Some(bin) = ffmpeg() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let clip = make_clip(tmp.path(), 1);
        let a: Vec<OsString> = [
            "-nostdin",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file",
            "-i",
            "http://127.0.0.1:9/x.mkv",
            "-f",
            "null",
            "-",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let fd = OwnedFd::from(std::fs::File::open(&clip).unwrap());
        let mut conv = Converter::spawn(&bin, &a, fd, Stdio::piped()).unwrap();
        let status = loop {
            if let Some(s) = conv.try_wait().unwrap() {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = conv.take_stderr() {
            use std::io::Read;
            e.read_to_string(&mut err).unwrap();
        }
        assert!(!status.success());
        assert!(
            err.contains("not on whitelist") || err.contains("Protocol"),
            "{err}"
        );
    }
}
