//! The agent's socket server.
//!
//! Security-relevant: guards root. Each connection's peer is checked with SO_PEERCRED
//! before a single byte of its request is read; only allowed uids get an answer other than
//! `forbidden_peer`. Requests are capped, connections time out, and verbs run one at a time.

pub mod boot;
pub mod update;
pub mod verbs;

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::agent::protocol::{
    MAX_REQUEST_BYTES, ParseOutcome, Request, Response, True, parse_request,
};

use self::verbs::{AgentConfig, AgentError};

/// A connection that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;

/// The running agent's shared parts.
#[derive(Clone)]
pub struct Agent {
    config: Arc<AgentConfig>,
    /// Serialises verbs: two mounts must not race for the same mount point name.
    lock: Arc<tokio::sync::Mutex<()>>,
    verbs_run: Arc<AtomicU64>,
    refused_peers: Arc<AtomicU64>,
    /// Where time sync is configured; `None`: `set_time_sync` is refused.
    time_sync: Option<Arc<crate::agent::timesync::TimeSyncConfig>>,
}

impl Agent {
    pub fn new(config: AgentConfig) -> Agent {
        Agent {
            config: Arc::new(config),
            lock: Arc::default(),
            verbs_run: Arc::default(),
            refused_peers: Arc::default(),
            time_sync: None,
        }
    }

    /// Lets `set_time_sync` write timesyncd's settings there (the appliance).
    pub fn with_time_sync(mut self, config: crate::agent::timesync::TimeSyncConfig) -> Agent {
        self.time_sync = Some(Arc::new(config));
        self
    }

    /// How many verbs have run (after all checks passed), for logs and tests.
    pub fn verbs_run(&self) -> u64 {
        self.verbs_run.load(Ordering::SeqCst)
    }

    /// How many connections were refused for their peer's uid.
    pub fn refused_peers(&self) -> u64 {
        self.refused_peers.load(Ordering::SeqCst)
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, listener: UnixListener, shutdown: impl Future<Output = ()>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let stream = tokio::select! {
                _ = &mut shutdown => break,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let agent = self.clone();
            tokio::spawn(async move {
                agent.connection(stream).await;
                drop(permit);
            });
        }
    }

    async fn connection(&self, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let uid = match getsockopt(&read.as_ref().as_fd(), PeerCredentials) {
            Ok(c) => Some(c.uid()),
            Err(_) => None,
        };
        if !uid.is_some_and(|u| self.config.allowed_uids.contains(&u)) {
            self.refused_peers.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(
                ?uid,
                "refused a caller that is not allowed to use the agent"
            );
            let r = Response::error(
                "forbidden_peer",
                "this user may not use the Hearth agent; only root and the hearth server may",
            );
            let _ = write_line(&mut write, &r).await;
            return;
        }
        let mut reader = BufReader::new(read);
        loop {
            let mut line = Vec::new();
            let limit = (MAX_REQUEST_BYTES + 1) as u64;
            let n = match tokio::time::timeout(
                IDLE,
                (&mut reader).take(limit).read_until(b'\n', &mut line),
            )
            .await
            {
                Ok(Ok(n)) => n,
                Ok(Err(_)) | Err(_) => return,
            };
            if n == 0 {
                return;
            }
            if line.last() != Some(&b'\n') {
                let r = if line.len() > MAX_REQUEST_BYTES {
                    Response::error(
                        "request_too_large",
                        format!("requests are at most {MAX_REQUEST_BYTES} bytes; nothing was done"),
                    )
                } else {
                    Response::error("malformed_request", "the request line has no newline")
                };
                let _ = write_line(&mut write, &r).await;
                // The rest of an oversized line cannot be told from a new request: hang up.
                return;
            }
            line.pop();
            let response = match parse_request(&line) {
                ParseOutcome::Refused(r) => r,
                ParseOutcome::Request(Request::WriteSlot {
                    meta_len,
                    allow_downgrade,
                }) => {
                    // The session takes over the connection until it finishes or fails.
                    let leftover = reader.buffer().to_vec();
                    let read = reader.into_inner();
                    let Ok(stream) = read.reunite(write) else {
                        return;
                    };
                    self.write_slot(stream, leftover, meta_len, allow_downgrade)
                        .await;
                    return;
                }
                ParseOutcome::Request(req) => self.execute(req).await,
            };
            if write_line(&mut write, &response).await.is_err() {
                return;
            }
        }
    }

    async fn execute(&self, req: Request) -> Response {
        let _guard = self.lock.lock().await;
        self.verbs_run.fetch_add(1, Ordering::SeqCst);
        let config = self.config.clone();
        let time_sync = self.time_sync.clone();
        let verb = req.verb();
        let result =
            tokio::task::spawn_blocking(move || -> Result<serde_json::Value, AgentError> {
                let v = match req {
                    Request::ListDisks {} => serde_json::to_value(verbs::list_disks(&config)),
                    Request::Mount {
                        uuid,
                        read_only,
                        name,
                    } => serde_json::to_value(verbs::mount(
                        &config,
                        &uuid,
                        read_only,
                        name.as_deref(),
                    )?),
                    Request::Unmount { uuid } => {
                        serde_json::to_value(verbs::unmount(&config, &uuid)?)
                    }
                    Request::Eject { uuid } => serde_json::to_value(verbs::eject(&config, &uuid)?),
                    Request::BootStatus {} => {
                        serde_json::to_value(update::boot_status(config.update.as_ref())?)
                    }
                    Request::SetNextBoot { version } => serde_json::to_value(
                        update::set_next_boot(config.update.as_ref(), version)?,
                    ),
                    Request::MarkGood {} => {
                        serde_json::to_value(update::mark_good(config.update.as_ref())?)
                    }
                    Request::MarkBad {} => {
                        serde_json::to_value(update::mark_bad(config.update.as_ref())?)
                    }
                    Request::Reboot {} => Ok(update::reboot(config.update.as_ref())?),
                    Request::SetTimeSync { mode, servers } => {
                        let Some(ts) = time_sync.as_deref() else {
                            return Err(AgentError::TimeSyncUnavailable);
                        };
                        serde_json::to_value(crate::agent::timesync::set(ts, mode, &servers)?)
                    }
                    // Handled as a session by `connection`; never reaches here.
                    Request::WriteSlot { .. } => {
                        return Err(AgentError::Update(update::UpdateError::Protocol(
                            "write_slot runs as a session".into(),
                        )));
                    }
                };
                v.map_err(|e| AgentError::Io(io::Error::other(e)))
            })
            .await;
        match result {
            Ok(Ok(result)) => Response::Ok { ok: True, result },
            Ok(Err(e)) => {
                tracing::info!(verb, code = e.code(), error = %e, "verb refused or failed");
                Response::error(e.code(), e.to_string())
            }
            Err(e) => {
                tracing::error!(verb, error = %e, "verb panicked");
                Response::error("internal", "the agent failed; the details are in its log")
            }
        }
    }
}

impl Agent {
    /// A `write_slot` session: metadata, then chunk steps, on this connection alone.
    async fn write_slot(
        &self,
        stream: UnixStream,
        leftover: Vec<u8>,
        meta_len: u32,
        allow_downgrade: bool,
    ) {
        let _guard = self.lock.lock().await;
        self.verbs_run.fetch_add(1, Ordering::SeqCst);
        let config = self.config.clone();
        let Ok(std_stream) = stream.into_std() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || {
            session_blocking(&config, std_stream, leftover, meta_len, allow_downgrade)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::info!(verb = "write_slot", code = e.code(), error = %e, "update session ended")
            }
            Err(e) => tracing::error!(verb = "write_slot", error = %e, "update session panicked"),
        }
    }
}

/// Session timeout: a server that stops sending for this long is hung up on.
const SESSION_IDLE: Duration = Duration::from_secs(120);

fn session_blocking(
    config: &AgentConfig,
    stream: std::os::unix::net::UnixStream,
    leftover: Vec<u8>,
    meta_len: u32,
    allow_downgrade: bool,
) -> Result<(), update::UpdateError> {
    use std::io::{BufReader as StdBufReader, Read as _, Write as _};
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(SESSION_IDLE))?;
    stream.set_write_timeout(Some(SESSION_IDLE))?;
    let mut out = stream.try_clone()?;
    let mut input = StdBufReader::with_capacity(
        256 * 1024,
        std::io::Read::chain(std::io::Cursor::new(leftover), stream),
    );
    let refuse = |out: &mut std::os::unix::net::UnixStream, e: &update::UpdateError| {
        let mut bytes =
            serde_json::to_vec(&Response::error(e.code(), e.to_string())).unwrap_or_default();
        bytes.push(b'\n');
        let _ = out.write_all(&bytes);
    };
    if u64::from(meta_len) > update::MAX_META {
        let e = update::UpdateError::MetaTooLarge(meta_len);
        refuse(&mut out, &e);
        return Err(e);
    }
    let mut meta = vec![0u8; meta_len as usize];
    input.read_exact(&mut meta)?;
    let (session, staging) = match update::begin(config.update.as_ref(), &meta, allow_downgrade) {
        Ok(v) => v,
        Err(e) => {
            refuse(&mut out, &e);
            return Err(e);
        }
    };
    let ok = Response::Ok {
        ok: True,
        result: serde_json::to_value(&staging).map_err(std::io::Error::other)?,
    };
    let mut bytes = serde_json::to_vec(&ok).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    out.write_all(&bytes)?;
    session.run(&mut input, &mut out)
}

async fn write_line(w: &mut tokio::net::unix::OwnedWriteHalf, r: &Response) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(r).map_err(io::Error::other)?;
    bytes.push(b'\n');
    w.write_all(&bytes).await
}

/// The listening socket: the one systemd passed (`LISTEN_FDS`, fd 3) when socket-activated
/// for this process, else a fresh socket at `path` that only root and `group` may open.
pub fn listener(path: &Path, group: Option<u32>) -> io::Result<std::os::unix::net::UnixListener> {
    if socket_activated() {
        return inherited_listener();
    }
    bind_listener(path, group)
}

/// True when systemd passed this process its listening socket.
pub fn socket_activated() -> bool {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    ours && fds >= 1
}

fn inherited_listener() -> io::Result<std::os::unix::net::UnixListener> {
    // SAFETY: systemd's socket-activation protocol hands this process fd 3 (SD_LISTEN_FDS_START)
    // as an open listening socket when LISTEN_PID is our pid; nothing else in this
    // process owns fd 3, so taking ownership here is sound.
    let fd = unsafe { OwnedFd::from_raw_fd(3) };
    let st =
        nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).map_err(io::Error::from)?;
    if nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT
        != nix::sys::stat::SFlag::S_IFSOCK
    {
        return Err(io::Error::other(
            "systemd passed fd 3, but it is not a socket; check hearth-agent.socket",
        ));
    }
    let l = std::os::unix::net::UnixListener::from(fd);
    l.set_nonblocking(true)?;
    Ok(l)
}

fn bind_listener(path: &Path, group: Option<u32>) -> io::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A stale socket from an earlier run is removed; anything else at the path is not ours.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(io::Error::other(format!(
                "{} exists and is not a socket; remove it or pick another --socket",
                path.display()
            )));
        }
    }
    let l = std::os::unix::net::UnixListener::bind(path)?;
    l.set_nonblocking(true)?;
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(io::Error::from)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    } else {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(l)
}
