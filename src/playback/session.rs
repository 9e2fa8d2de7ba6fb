//! Conversion sessions: one per device at a time, each a directory of HLS fMP4 segments under
//! the data dir made by one ffmpeg child. A request for a segment far from what the child is
//! making restarts it there (a seek); a child that runs too far ahead of the viewer is paused;
//! an idle session is ended with its child and its files. Whether the viewer may watch the
//! item is checked by the caller before a session is made and on every request after.

use super::decide::{Method, Plan};
use super::ffmpeg::{self, Converter, Job, SEGMENT_SECONDS};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A session nobody asked anything of for this long is ended.
pub const IDLE_SECS: u64 = 90;
/// The child is paused when it is this many segments ahead of the viewer.
const AHEAD_PAUSE: u32 = 15;
/// A request this many segments past what the child has made restarts it there.
const SEEK_GAP: u32 = 4;
/// Segments this far behind the viewer are deleted.
const BEHIND_KEEP: u32 = 15;
/// How long a segment request waits for ffmpeg.
const SEGMENT_WAIT: Duration = Duration::from_secs(30);

/// Limits for this device (set per board).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Video conversions at once on the whole device.
    pub transcodes: usize,
    /// Sessions (of any kind) one user may have.
    pub per_user: usize,
    /// Sessions on the whole device.
    pub total: usize,
    /// A session nobody asked anything of for this long is ended.
    pub idle_secs: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            transcodes: 2,
            per_user: 3,
            total: 8,
            idle_secs: IDLE_SECS,
        }
    }
}

/// Something went wrong with a session; the message is for a person.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("this playback session has ended; start playing again")]
    Gone,
    #[error("there is no such part of this film")]
    NoSuchSegment,
    #[error("{0}")]
    Busy(String),
    #[error("the file could not be converted: {0}")]
    Failed(String),
    #[error("the file ends before this point; it may be damaged or incomplete")]
    EndsEarly,
    #[error("converting is taking too long; the device may be busy")]
    Slow,
    #[error("converting needs ffmpeg, which is not installed (Debian: apt install ffmpeg)")]
    NoFfmpeg,
    #[error("converting could not start: {0}")]
    Io(#[from] std::io::Error),
}

/// Who a session belongs to and what it plays: checked again on every request.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner<G> {
    pub user_id: u64,
    pub device_id: u64,
    pub item_id: u64,
    /// The caller's proof that the viewer may still watch (e.g. the item's signed link).
    pub grant: G,
}

struct Run {
    conv: Option<Converter>,
    /// The segment the running child started at.
    first: u32,
    paused: bool,
    failed: Option<String>,
    /// The child finished every segment from `first` on.
    done: bool,
    /// Segments below this were deleted behind the viewer.
    deleted_below: u32,
}

pub struct Session<G> {
    pub id: String,
    pub owner: Owner<G>,
    pub plan: Plan,
    /// Segments in the whole film.
    pub segments: u32,
    pub duration_ms: u64,
    /// Where each segment starts, milliseconds: the keyframes of a copied picture, or every
    /// SEGMENT_SECONDS of a converted one.
    starts: Vec<u64>,
    dir: PathBuf,
    input: Mutex<OwnedFd>,
    run: Mutex<Run>,
    last_used: AtomicU64,
    last_asked: AtomicU32,
    ffmpeg: PathBuf,
    threads: u32,
}

/// Every session on this device.
pub struct Sessions<G> {
    map: Mutex<HashMap<String, Arc<Session<G>>>>,
    root: PathBuf,
    ffmpeg: Option<PathBuf>,
    limits: SessionLimits,
    epoch: Instant,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves data that is still consistent enough to end.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Finds ffmpeg: the configured one (`[playback] ffmpeg`, `HEARTH_PLAYBACK__FFMPEG`), else
/// the appliance's own build, else Debian's.
pub fn find_ffmpeg_from(configured: Option<&Path>) -> Option<PathBuf> {
    match configured {
        Some(p) => p.is_file().then(|| p.to_owned()),
        None => ["/usr/lib/hearth/ffmpeg", "/usr/bin/ffmpeg"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file()),
    }
}

/// [`find_ffmpeg_from`] with nothing configured.
pub fn find_ffmpeg() -> Option<PathBuf> {
    find_ffmpeg_from(None)
}

impl<G: Clone + Send + Sync + 'static> Sessions<G> {
    /// Sessions kept under `root` (wiped: nothing survives a restart).
    pub fn new(
        root: PathBuf,
        ffmpeg: Option<PathBuf>,
        limits: SessionLimits,
    ) -> std::io::Result<Self> {
        match std::fs::remove_dir_all(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        private_dir(&root, true)?;
        Ok(Sessions {
            map: Mutex::new(HashMap::new()),
            root,
            ffmpeg,
            limits,
            epoch: Instant::now(),
        })
    }

    pub fn ffmpeg(&self) -> Option<&Path> {
        self.ffmpeg.as_deref()
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }

    /// Starts a session for `plan` over the already-opened `input`. One device has one
    /// session: a new one ends the old.
    pub fn start(
        &self,
        owner: Owner<G>,
        plan: Plan,
        duration_ms: u64,
        keyframes: Option<Vec<u64>>,
        input: OwnedFd,
    ) -> Result<Arc<Session<G>>, SessionError> {
        let ffmpeg = self.ffmpeg.clone().ok_or(SessionError::NoFfmpeg)?;
        let mut map = lock(&self.map);
        let old: Vec<String> = map
            .values()
            .filter(|s| s.owner.device_id == owner.device_id && s.owner.user_id == owner.user_id)
            .map(|s| s.id.clone())
            .collect();
        for id in old {
            if let Some(s) = map.remove(&id) {
                s.end();
            }
        }
        if map.len() >= self.limits.total {
            return Err(SessionError::Busy(format!(
                "This device is already converting {} films; stop one and try again.",
                map.len()
            )));
        }
        if map
            .values()
            .filter(|s| s.owner.user_id == owner.user_id)
            .count()
            >= self.limits.per_user
        {
            return Err(SessionError::Busy(
                "You are already watching on several devices; stop one of them first.".into(),
            ));
        }
        if plan.method == Method::Transcode
            && map
                .values()
                .filter(|s| s.plan.method == Method::Transcode)
                .count()
                >= self.limits.transcodes
        {
            return Err(SessionError::Busy(
                "This device is converting as many films as it can right now; try again when one ends, or pick Original quality on a player that plays the file as it is.".into(),
            ));
        }
        let id = session_id()?;
        let dir = self.root.join(&id);
        private_dir(&dir, false)?;
        let starts = segment_starts(duration_ms, keyframes);
        let session = Arc::new(Session {
            id: id.clone(),
            owner,
            plan,
            segments: u32::try_from(starts.len()).unwrap_or(u32::MAX),
            duration_ms,
            starts,
            dir,
            input: Mutex::new(input),
            run: Mutex::new(Run {
                conv: None,
                first: 0,
                paused: false,
                failed: None,
                done: false,
                deleted_below: 0,
            }),
            last_used: AtomicU64::new(self.now()),
            last_asked: AtomicU32::new(0),
            ffmpeg,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        });
        session.restart(0)?;
        map.insert(id, session.clone());
        Ok(session)
    }

    /// The session `id`, marked as used now.
    pub fn get(&self, id: &str) -> Option<Arc<Session<G>>> {
        let s = lock(&self.map).get(id).cloned()?;
        s.last_used.store(self.now(), Ordering::Relaxed);
        Some(s)
    }

    /// Ends the session `id` (the viewer stopped, or lost the right to watch).
    pub fn end(&self, id: &str) {
        if let Some(s) = lock(&self.map).remove(id) {
            s.end();
        }
    }

    /// Sessions running now.
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One round of housekeeping: end idle sessions, pause children far ahead of their
    /// viewer and resume the rest, delete segments long behind. Run every second or so.
    pub fn tend(&self) {
        let now = self.now();
        let mut ended = Vec::new();
        {
            let mut map = lock(&self.map);
            map.retain(|_, s| {
                let idle =
                    now.saturating_sub(s.last_used.load(Ordering::Relaxed)) > self.limits.idle_secs;
                if idle {
                    ended.push(s.clone());
                }
                !idle
            });
        }
        for s in ended {
            tracing::info!(session = %s.id, item = s.owner.item_id, "playback session idle: ended");
            s.end();
        }
        for s in lock(&self.map).values().cloned().collect::<Vec<_>>() {
            s.pace();
        }
    }

    /// Ends every session (shutdown).
    pub fn end_all(&self) {
        for (_, s) in lock(&self.map).drain() {
            s.end();
        }
    }
}

impl<G> Session<G> {
    fn segment_path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("seg{n:05}.m4s"))
    }

    /// The init segment (written by whichever child ran first).
    pub fn init_path(&self) -> PathBuf {
        self.dir.join("init.mp4")
    }

    /// The VOD playlist of the whole film, so a player can seek anywhere.
    pub fn playlist(&self) -> String {
        let mut out = String::with_capacity(64 + self.segments as usize * 32);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
        let len_of = |n: usize| {
            let start = self.starts[n];
            let end = self.starts.get(n + 1).copied().unwrap_or(self.duration_ms);
            end.saturating_sub(start).max(1)
        };
        let longest = (0..self.starts.len()).map(len_of).max().unwrap_or(1);
        out.push_str(&format!(
            "#EXT-X-TARGETDURATION:{}\n",
            longest.div_ceil(1000)
        ));
        out.push_str(
            "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        );
        out.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n");
        for n in 0..self.starts.len() {
            let len = len_of(n);
            out.push_str(&format!(
                "#EXTINF:{}.{:03},\n{n}.m4s\n",
                len / 1000,
                len % 1000
            ));
        }
        out.push_str("#EXT-X-ENDLIST\n");
        out
    }

    fn restart(&self, first: u32) -> Result<(), SessionError> {
        let mut run = lock(&self.run);
        run.conv = None; // kills the old child
        run.failed = None;
        run.done = false;
        run.paused = false;
        run.first = first;
        run.deleted_below = 0;
        let fd = lock(&self.input).try_clone()?;
        let job = Job {
            first_segment: first,
            start_ms: self.starts.get(first as usize).copied().unwrap_or(0),
            last_start_ms: self.starts.last().copied().unwrap_or(0),
            dir: self.dir.clone(),
            threads: self.threads,
        };
        let args = ffmpeg::args(&self.plan, &job);
        let log = std::fs::File::create(self.dir.join("ffmpeg.log"))?;
        run.conv = Some(launch(&self.ffmpeg, args, fd, log)?);
        Ok(())
    }

    /// The first segment at or after `from` that is not made yet.
    fn made_until(&self, from: u32) -> u32 {
        let mut n = from;
        while n < self.segments && self.segment_path(n).exists() {
            n += 1;
        }
        n
    }

    /// Waits until segment `n` exists (restarting the child there if it is far away) and
    /// returns its path. Blocking: call from a blocking thread.
    pub fn segment(&self, n: u32) -> Result<PathBuf, SessionError> {
        if n >= self.segments {
            return Err(SessionError::NoSuchSegment);
        }
        self.last_asked.store(n, Ordering::Relaxed);
        let path = self.segment_path(n);
        let deadline = Instant::now() + SEGMENT_WAIT;
        loop {
            if path.exists() {
                self.resume();
                return Ok(path);
            }
            let restart = {
                let mut run = lock(&self.run);
                if run.conv.is_none() && run.failed.is_none() && !run.done {
                    return Err(SessionError::Gone);
                }
                if let Some(conv) = run.conv.as_mut()
                    && let Ok(Some(status)) = conv.try_wait()
                {
                    let err = self.last_message();
                    run.conv = None;
                    if status.success() {
                        run.done = true;
                    } else {
                        run.failed = Some(err);
                    }
                }
                if let Some(f) = &run.failed {
                    return Err(SessionError::Failed(f.clone()));
                }
                let low = run.first.max(run.deleted_below);
                let made = self.made_until(low);
                if n >= low && run.done && n >= made {
                    // The child began before `n` and ended without reaching it.
                    return Err(SessionError::EndsEarly);
                }
                n < low || (!run.done && n > made + SEEK_GAP)
            };
            if restart {
                tracing::debug!(segment = n, "playback: restarting the conversion at a seek");
                self.restart(n)?;
            } else {
                self.resume();
            }
            if Instant::now() > deadline {
                return Err(SessionError::Slow);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last line ffmpeg wrote to its log, for the person whose film failed.
    fn last_message(&self) -> String {
        let log = std::fs::read(self.dir.join("ffmpeg.log")).unwrap_or_default();
        let tail = &log[log.len().saturating_sub(4096)..];
        String::from_utf8_lossy(tail)
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("ffmpeg stopped")
            .chars()
            .take(300)
            .collect()
    }

    fn signal(&self, run: &Run, sig: nix::sys::signal::Signal) {
        if let Some(conv) = &run.conv
            && let Ok(pid) = i32::try_from(conv.pid())
        {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), sig);
        }
    }

    fn resume(&self) {
        let mut run = lock(&self.run);
        if run.paused {
            self.signal(&run, nix::sys::signal::Signal::SIGCONT);
            run.paused = false;
        }
    }

    /// Pauses a child far ahead of the viewer, resumes one that is not, deletes old segments.
    fn pace(&self) {
        let asked = self.last_asked.load(Ordering::Relaxed);
        let mut run = lock(&self.run);
        let made = self.made_until(run.first.max(asked));
        let far = made > asked + AHEAD_PAUSE;
        if far && !run.paused && run.conv.is_some() {
            self.signal(&run, nix::sys::signal::Signal::SIGSTOP);
            run.paused = true;
        } else if !far && run.paused {
            self.signal(&run, nix::sys::signal::Signal::SIGCONT);
            run.paused = false;
        }
        if asked > BEHIND_KEEP {
            let below = asked - BEHIND_KEEP;
            if below > run.deleted_below {
                run.deleted_below = below;
            }
            drop(run);
            for n in below.saturating_sub(64)..below {
                let _ = std::fs::remove_file(self.segment_path(n));
            }
        }
    }

    fn end(&self) {
        let mut run = lock(&self.run);
        // A stopped child must be continued to die of SIGKILL promptly; SIGKILL does that.
        run.conv = None;
        drop(run);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where each segment starts: on the keyframes for a copied picture (a keyframe closer than a
/// second to the previous start is folded into that segment only if ffmpeg would do the same,
/// which it does not: every keyframe starts a segment), else every SEGMENT_SECONDS, a tail
/// shorter than half a segment joining the last one.
fn segment_starts(duration_ms: u64, keyframes: Option<Vec<u64>>) -> Vec<u64> {
    match keyframes {
        Some(mut k) if !k.is_empty() => {
            k.retain(|t| *t < duration_ms.max(1));
            // ffmpeg's first segment begins with the first packet: a first keyframe just after
            // the start (timestamps rarely begin at exactly 0) is segment 0's start.
            match k.first_mut() {
                Some(first) if *first < 1000 => *first = 0,
                _ => k.insert(0, 0),
            }
            k
        }
        _ => {
            let step = u64::from(SEGMENT_SECONDS) * 1000;
            let mut starts: Vec<u64> = (0..duration_ms.div_ceil(step).max(1))
                .map(|n| n * step)
                .collect();
            // A tail shorter than half a segment (often only the sound running past the
            // picture: no picture frame there to cut on) stays in the segment before it.
            if starts.len() > 1 && starts.last().is_some_and(|l| duration_ms - l < step / 2) {
                starts.pop();
            }
            starts
        }
    }
}

/// Makes a directory only the server's user can open (0700), whatever the umask.
pub(crate) fn private_dir(path: &Path, parents: bool) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(parents)
        .mode(0o700)
        .create(path)
}

/// 256 random bits, hex: the session's name in its URLs.
fn session_id() -> Result<String, SessionError> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| SessionError::Io(std::io::Error::other("no randomness")))?;
    Ok(hex::encode(b))
}

fn launch(
    program: &Path,
    args: Vec<std::ffi::OsString>,
    fd: OwnedFd,
    log: std::fs::File,
) -> Result<Converter, SessionError> {
    let program = program.to_owned();
    match ffmpeg::on_launcher(move || Converter::spawn(&program, &args, fd, log.into())) {
        Some(Ok(c)) => Ok(c),
        Some(Err(ffmpeg::SpawnError::Missing)) => Err(SessionError::NoFfmpeg),
        Some(Err(ffmpeg::SpawnError::Io(e))) => Err(SessionError::Io(e)),
        None => Err(SessionError::Io(std::io::Error::other(
            "the ffmpeg launcher has stopped",
        ))),
    }
}

#[cfg(test)]
mod tests;
