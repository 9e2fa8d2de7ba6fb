//! Hearth: a private household media appliance in one binary.
//!
//! [`serve`] is what `hearth serve` and the integration tests both start: it takes a
//! config, already-bound listeners and a shutdown future, so a caller chooses its ports
//! (port 0 in tests) and knows the real address before the first request.

// Production code reports failures as errors; tests (here `#[cfg(test)]` modules, and every
// crate under tests/ and benches/, which this attribute does not reach) may unwrap. A spot that
// cannot fail gets `#[allow(...)]` with a comment saying why.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod agent;
pub mod backup;
pub mod blockdev;
pub mod compat;
pub mod config;
pub mod disks;
pub mod dlna;
pub mod identity;
pub mod library;
pub mod model;
pub mod net;
pub mod ota;
pub mod playback;
pub mod policy;
pub mod reach;
pub mod store;
pub mod stream;
pub mod system;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::Config;

pub use model::build::{OS_RELEASE, TARGET, VERSION, image_version, version};
pub use model::clock::now_secs;

/// Sockets the server answers on, bound by the caller.
#[derive(Debug, Default)]
pub struct Listeners {
    pub http: Vec<TcpListener>,
    pub https: Vec<TcpListener>,
}

impl Listeners {
    /// Binds the addresses the config names.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        let http = vec![bind_one(config.http).await?];
        let https = match config.https {
            Some(addr) => vec![bind_one(addr).await?],
            None => Vec::new(),
        };
        Ok(Listeners { http, https })
    }
}

async fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// Time open requests get to finish after shutdown is asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// Runs the server until `shutdown` completes, then drains open requests.
///
/// A verified restore asks for a restart: the server stops as for a shutdown, the staged
/// backup is swapped in ([`backup::restore::apply_pending`]) and it starts again on the same
/// sockets (connections wait in the backlog meanwhile).
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let keep = |ls: Vec<TcpListener>| -> std::io::Result<Vec<std::net::TcpListener>> {
        ls.into_iter().map(|l| l.into_std()).collect()
    };
    let (http, https) = (keep(listeners.http)?, keep(listeners.https)?);
    let again = |ls: &[std::net::TcpListener]| -> std::io::Result<Vec<TcpListener>> {
        ls.iter()
            .map(|l| TcpListener::from_std(l.try_clone()?))
            .collect()
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let listeners = Listeners {
            http: again(&http)?,
            https: again(&https)?,
        };
        match serve_once(config.clone(), listeners, &mut shutdown).await? {
            Ended::Shutdown => return Ok(()),
            Ended::Restart => tracing::warn!("restarting to restore a backup"),
        }
    }
}

enum Ended {
    Shutdown,
    Restart,
}

async fn serve_once(
    config: Arc<Config>,
    listeners: Listeners,
    shutdown: &mut std::pin::Pin<&mut (impl Future<Output = ()> + Send)>,
) -> Result<Ended, ServeError> {
    // A restore staged before a restart (or a kill) is finished before anything opens the
    // database; an unfinished staging is thrown away.
    {
        let dir = config.data_dir.clone();
        tokio::task::spawn_blocking(move || backup::restore::apply_pending(&dir))
            .await
            .map_err(|e| ServeError::Other(e.to_string()))?
            .map_err(|e| ServeError::Other(format!("cannot finish restoring a backup: {e}")))?;
    }
    // Private (0700, files 0600) whatever the umask, then the database.
    let store = open_store(&config).await?;

    let claim = prepare_claim(&config, &store).await?;
    let identity = Arc::new(identity::Identity::new(
        store.clone(),
        config.data_dir.clone(),
        config.esp_dir.clone(),
    ));
    let names = net::tls::DeviceNames::detect();
    let lan = net::LanNetworks::following_interfaces();
    let tls = open_tls(&config, &listeners, &names).await?;
    // Only a running HTTPS listener counts: without one, "required" cannot be enforced.
    let https_port = match (&tls, listeners.https.first()) {
        (Some(_), Some(l)) => Some(l.local_addr()?.port()),
        _ => None,
    };
    let rules = {
        let (store, lan) = (store.clone(), lan.clone());
        blocking(move || net::NetRules::load(&store, lan, https_port)).await??
    };
    let http_port = match listeners.http.first() {
        Some(l) => Some(l.local_addr()?.port()),
        None => None,
    };
    let reach = {
        let store = store.clone();
        let (config, ports) = (
            config.reach.clone(),
            reach::Ports {
                http: http_port,
                https: https_port,
            },
        );
        blocking(move || reach::Reach::load(&store, config, ports)).await??
    };
    let watcher = net::watch::spawn(lan.clone(), tls.clone());
    let system = system::SystemMonitor::new();
    let sampler = system.spawn_sampler();
    let agent = config.agent_socket.clone().map(agent::client::Client::new);
    let (disk_monitor, disk_task) = disks::DiskMonitor::spawn(
        disks::Sysroot::default(),
        agent.clone(),
        Some(store.clone()),
        disks::POLL_INTERVAL,
    );
    let update_checker = ota::service::spawn_checker(config.updates.clone(), store.clone());
    // Before any request is answered: a rollback is recorded before the health check can
    // pass and the boot is blessed (blessing forgets the failed entry).
    let slots = ota::install::learn_slots(agent.as_ref(), &store).await;
    let updates = ota::install::Installer::new(config.agent_socket.clone(), slots);
    let scans = library::Scans::default();
    let library_watcher = watch_libraries(&store, &scans).await?;
    let dlna = {
        let store = store.clone();
        dlna::Dlna::new(blocking(move || dlna::settings::ensure_uuid(&store)).await??)
    };
    let disk_follower = tokio::spawn(library::follow_disks(
        disk_monitor.subscribe(),
        store.clone(),
        scans.clone(),
        library_watcher.clone(),
    ));
    let backups = backup::Backups::new(
        store.clone(),
        config.data_dir.clone(),
        toml::to_string(&*config).unwrap_or_default(),
    );
    let backup_scheduler = backups.spawn_scheduler();
    let (playback, tender) = open_playback(&config)?;
    let pictures = Arc::new(
        web::picture::Pictures::new(
            config.data_dir.join("pictures"),
            playback.ffmpeg().map(std::path::Path::to_owned),
        )
        .map_err(|e| ServeError::Other(format!("the picture cache: {e}")))?,
    );
    let state = web::AppState {
        backups: backups.clone(),
        config: config.clone(),
        store,
        lan,
        rules: rules.clone(),
        tls: tls.clone(),
        system,
        identity,
        agent,
        disks: disk_monitor,
        scans: scans.clone(),
        updates,
        watcher: library_watcher.clone(),
        dlna: dlna.clone(),
        playback: playback.clone(),
        pictures,
        reach: reach.clone(),
    };
    let (state_store, state_identity) = (state.store.clone(), state.identity.clone());
    let app = web::app(state);

    let limits = conn_limits(&config);
    let client_slots = net::listener::ClientSlots::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    // The port mapping follows the remote-access switch; at shutdown it removes the mapping
    // before the task ends (the join below waits for it).
    tasks.spawn(reach.run(rules.clone(), stop_rx.clone()));
    let http_urls = spawn_listeners(
        &mut tasks,
        listeners,
        &app,
        tls.as_ref(),
        &rules,
        limits,
        &client_slots,
        &stop_rx,
    )?;
    // Multicast announcements, only where the config asks for them (the appliance).
    if let Some(port) = http_port {
        spawn_discovery(
            &mut tasks,
            &config,
            Discovery {
                store: state_store,
                rules: rules.clone(),
                identity: state_identity,
                dlna,
                http_port: port,
                https_port,
            },
            &stop_rx,
        );
    }
    if let identity::ClaimState::Unclaimed { setup_code } = &claim {
        announce_setup_code(setup_code, &http_urls);
    }
    system::notify::notify("READY=1");
    let background = Background {
        watchdog: system::notify::spawn_watchdog(),
        stop_tx,
        tasks,
        disk_follower,
        library_watcher,
        playback,
        tender,
        aborts: [
            Some(sampler),
            Some(disk_task),
            Some(watcher),
            update_checker,
        ],
    };
    let ended = tokio::select! {
        _ = shutdown.as_mut() => Ended::Shutdown,
        _ = backups.restart_requested() => Ended::Restart,
    };
    backup_scheduler.abort();
    background.stop().await;
    Ok(ended)
}

/// What runs beside the accept loops, stopped in order at shutdown.
struct Background {
    watchdog: Option<tokio::task::JoinHandle<()>>,
    stop_tx: tokio::sync::watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
    disk_follower: tokio::task::JoinHandle<()>,
    library_watcher: Option<Arc<library::watch::LibraryWatcher>>,
    /// Conversions, ended (their ffmpeg children killed) before `serve` returns.
    playback: Arc<web::playback::PlaybackSessions>,
    tender: tokio::task::JoinHandle<()>,
    /// Samplers, pollers and checkers that just stop.
    aborts: [Option<tokio::task::JoinHandle<()>>; 4],
}

impl Background {
    async fn stop(mut self) {
        tracing::info!("shutting down");
        system::notify::notify("STOPPING=1");
        if let Some(w) = self.watchdog {
            w.abort();
        }
        let _ = self.stop_tx.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.disk_follower.abort();
        let _ = self.disk_follower.await;
        self.tender.abort();
        let _ = self.tender.await;
        let playback = self.playback;
        let _ = tokio::task::spawn_blocking(move || playback.end_all()).await;
        // The watch thread holds a database handle: end it before `serve` returns, so the
        // next opener (a restart, `hearth reset-claim`) finds the database free.
        if let Some(w) = self.library_watcher {
            let _ = tokio::task::spawn_blocking(move || w.stop()).await;
        }
        for t in self.aborts.into_iter().flatten() {
            t.abort();
        }
    }
}

/// Runs blocking work off the runtime; a panicked task is an error, not a crash.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServeError::Other(e.to_string()))
}

/// Whether the device is claimed, after the reset-claim request and setup code at start.
async fn prepare_claim(
    config: &Config,
    store: &store::Store,
) -> Result<identity::ClaimState, ServeError> {
    let (store, data, esp) = (
        store.clone(),
        config.data_dir.clone(),
        config.esp_dir.clone(),
    );
    blocking(move || identity::prepare_at_start(&store, &data, esp.as_deref()))
        .await?
        .map_err(|e| ServeError::Other(e.to_string()))
}

/// The library folder watcher, or `None` (rescans by hand) when folders cannot be watched.
async fn watch_libraries(
    store: &store::Store,
    scans: &library::Scans,
) -> Result<Option<Arc<library::watch::LibraryWatcher>>, ServeError> {
    let (store, scans) = (store.clone(), scans.clone());
    Ok(blocking(move || {
        library::watch::LibraryWatcher::start(store, scans, Duration::from_secs(2))
    })
    .await?
    .map(Arc::new)
    .inspect_err(|e| tracing::warn!(error = %e, "cannot watch library folders; rescan by hand"))
    .ok())
}

/// The conversion sessions (ffmpeg found once at start) and the task that tends them every
/// second: ends idle sessions, paces encoders, removes their files.
fn open_playback(
    config: &Config,
) -> Result<
    (
        Arc<web::playback::PlaybackSessions>,
        tokio::task::JoinHandle<()>,
    ),
    ServeError,
> {
    let found = playback::session::find_ffmpeg_from(config.playback.ffmpeg.as_deref());
    match &found {
        Some(p) => tracing::info!(ffmpeg = %p.display(), "playback: converting with this ffmpeg"),
        None => tracing::warn!(
            "playback: ffmpeg not found; films a browser cannot play as they are will not play (Debian: apt install ffmpeg)"
        ),
    }
    let limits = playback::session::SessionLimits {
        transcodes: config.playback.transcodes,
        ..Default::default()
    };
    let root = config.data_dir.join("transcode");
    let sessions = Arc::new(
        web::playback::PlaybackSessions::new(root, found, limits)
            .map_err(|e| ServeError::Other(format!("the conversion cache: {e}")))?,
    );
    let tended = sessions.clone();
    let tender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let s = tended.clone();
            let _ = tokio::task::spawn_blocking(move || s.tend()).await;
        }
    });
    Ok((sessions, tender))
}

/// Connection limits of the accept loops, from the config.
fn conn_limits(config: &Config) -> net::listener::ConnLimits {
    net::listener::ConnLimits {
        max_connections: config.limits.max_connections,
        header_timeout: Duration::from_secs(10),
        max_header_bytes: net::listener::MAX_HEAD_BYTES,
        handshake_timeout: Duration::from_secs(10),
        max_connections_per_client: config.limits.max_connections_per_client,
    }
}

/// The database, after making the data directory private (0700, files 0600) whatever the
/// umask, and repairing it if an older version or a hand-made copy left it readable.
async fn open_store(config: &Config) -> Result<store::Store, ServeError> {
    let dir = config.data_dir.clone();
    tokio::task::spawn_blocking(move || store::perms::secure_data_dir(&dir))
        .await
        .map_err(|e| ServeError::Other(e.to_string()))??;
    let db_path = config.database_path();
    Ok(
        tokio::task::spawn_blocking(move || store::Store::open(&db_path))
            .await
            .map_err(|e| ServeError::Other(e.to_string()))??,
    )
}

/// The device certificate manager when there is an HTTPS listener; `None` (plain HTTP goes
/// on) when there is none or it cannot be set up.
async fn open_tls(
    config: &Config,
    listeners: &Listeners,
    names: &net::tls::DeviceNames,
) -> Result<Option<Arc<net::tls::TlsManager>>, ServeError> {
    Ok(if listeners.https.is_empty() {
        None
    } else {
        let dir = config.data_dir.join("tls");
        let names = names.clone();
        let http_port = match listeners.http.first() {
            Some(l) => Some(l.local_addr()?.port()),
            None => None,
        };
        let opened = tokio::task::spawn_blocking(move || {
            net::tls::TlsManager::open_with(&dir, &names, http_port, now_secs() as i64)
        })
        .await
        .map_err(|e| ServeError::Other(e.to_string()))?;
        match opened {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                // Plain HTTP keeps working so the owner can still reach the device and see why.
                tracing::error!(error = %e, "HTTPS is unavailable: the device certificate cannot be set up");
                None
            }
        }
    })
}

/// Starts the accept loops; returns the addresses a person would type, for the console.
#[allow(clippy::too_many_arguments)] // wiring: each is one thing the loops share
fn spawn_listeners(
    tasks: &mut tokio::task::JoinSet<()>,
    listeners: Listeners,
    app: &axum::Router,
    tls: Option<&Arc<net::tls::TlsManager>>,
    rules: &net::NetRules,
    limits: net::listener::ConnLimits,
    client_slots: &net::listener::ClientSlots,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<String>, ServeError> {
    let mut http_urls = Vec::new();
    for listener in listeners.http {
        let addr = listener.local_addr()?;
        tracing::info!("listening on http://{addr}");
        http_urls.push(browser_url(addr));
        tasks.spawn(net::listener::run(
            listener,
            net::listener::Plain,
            app.clone(),
            limits,
            client_slots.clone(),
            stop_rx.clone(),
            DRAIN,
        ));
    }
    if let Some(tls) = tls {
        let server_config = net::tls::server_config(tls.resolver())
            .map_err(|e| ServeError::Other(e.to_string()))?;
        let acceptor = net::listener::Tls::new(server_config, Some(rules.clone()));
        if rules.snapshot().secure_connections == net::rules::SecureConnections::Disabled {
            tracing::info!(
                "secure connections are turned off in the network settings; the HTTPS port refuses handshakes until they are turned on"
            );
        }
        for listener in listeners.https {
            tracing::info!("listening on https://{}", listener.local_addr()?);
            tasks.spawn(net::listener::run(
                listener,
                acceptor.clone(),
                app.clone(),
                limits,
                client_slots.clone(),
                stop_rx.clone(),
                DRAIN,
            ));
        }
    }
    Ok(http_urls)
}

/// What the SSDP and mDNS announcers tell and read.
struct Discovery {
    store: store::Store,
    rules: net::NetRules,
    identity: Arc<identity::Identity>,
    dlna: dlna::Dlna,
    http_port: u16,
    https_port: Option<u16>,
}

/// Starts the multicast announcers the config asks for.
fn spawn_discovery(
    tasks: &mut tokio::task::JoinSet<()>,
    config: &Config,
    d: Discovery,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) {
    let only = config.discovery.interfaces.clone();
    if config.discovery.ssdp {
        let ssdp = dlna::ssdp::Ssdp {
            store: d.store.clone(),
            rules: d.rules.clone(),
            identity: d.identity.clone(),
            dlna: d.dlna.clone(),
            http_port: d.http_port,
            only: only.clone(),
        };
        tasks.spawn(ssdp.run(stop_rx.clone()));
    }
    if config.discovery.mdns {
        let identity = d.identity.clone();
        let responder = net::mdns::Responder {
            facts: Arc::new(move || {
                Some(net::mdns::DeviceFacts {
                    server_name: identity.server_name().ok()?,
                    claimed: identity.is_claimed().ok()?,
                })
            }),
            http_port: d.http_port,
            https_port: d.https_port,
            only,
        };
        tasks.spawn(responder.run(stop_rx.clone()));
    }
}

/// The address a person would type: the wildcard address becomes localhost.
fn browser_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        "localhost".to_owned()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    if addr.port() == 80 {
        format!("http://{host}/")
    } else {
        format!("http://{host}:{}/", addr.port())
    }
}

/// Tells whoever watches the console how to claim the device; also goes to the log.
fn announce_setup_code(code: &str, urls: &[String]) {
    let url = urls
        .first()
        .map(String::as_str)
        .unwrap_or("http://hearth.local/");
    tracing::info!(setup_code = %code, "this device is not claimed yet: open {url} and enter the setup code");
    eprintln!();
    eprintln!("  ┌──────────────────────────────────────────────┐");
    eprintln!("  │ Hearth is ready to be claimed.               │");
    eprintln!("  │ Open   {url:<38}│");
    eprintln!("  │ Code   {code:<38}│");
    eprintln!("  └──────────────────────────────────────────────┘");
    eprintln!();
}
