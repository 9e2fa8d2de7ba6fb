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
pub mod config;
pub mod disks;
pub mod dlna;
pub mod identity;
pub mod library;
pub mod net;
pub mod ota;
pub mod policy;
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

/// `X.Y.Z` of this build of the binary. What the device reports is [`version()`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where an image names its firmware version (`IMAGE_ID=hearth…`, `IMAGE_VERSION=X.Y.Z`).
pub const OS_RELEASE: &str = "/usr/lib/os-release";

/// The version this device runs: the image's `IMAGE_VERSION` when the root filesystem is a
/// Hearth image (image/build writes it; an update bundle carries a new root with a new one),
/// else this binary's [`VERSION`] (a laptop, a development box).
pub fn version() -> &'static str {
    static V: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        std::fs::read_to_string(OS_RELEASE)
            .ok()
            .and_then(|text| image_version(&text))
            .map(|v| &*Box::leak(v.into_boxed_str()))
            .unwrap_or(VERSION)
    })
}

/// `IMAGE_VERSION` of an os-release file, if `IMAGE_ID` says it is a Hearth image and the
/// version is a plain `X.Y.Z` (what update bundles compare).
pub fn image_version(os_release: &str) -> Option<String> {
    let field = |key: &str| {
        os_release.lines().find_map(|l| {
            let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_owned())
        })
    };
    let id = field("IMAGE_ID")?;
    let v = field("IMAGE_VERSION")?;
    let plain = v.parse::<ota::version::Version>().is_ok();
    (id.starts_with("hearth") && plain).then_some(v)
}
/// The target triple this binary was built for.
pub const TARGET: &str = env!("BUILD_TARGET_TRIPLE");

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
    // Private (0700, files 0600) whatever the umask, and repaired if an older version or a
    // hand-made copy left it readable; before the database is opened.
    {
        let dir = config.data_dir.clone();
        tokio::task::spawn_blocking(move || store::perms::secure_data_dir(&dir))
            .await
            .map_err(|e| ServeError::Other(e.to_string()))??;
    }
    // A restore staged before a restart (or a kill) is finished before anything opens the
    // database; an unfinished staging is thrown away.
    {
        let dir = config.data_dir.clone();
        tokio::task::spawn_blocking(move || backup::restore::apply_pending(&dir))
            .await
            .map_err(|e| ServeError::Other(e.to_string()))?
            .map_err(|e| ServeError::Other(format!("cannot finish restoring a backup: {e}")))?;
    }
    let db_path = config.database_path();
    let store = tokio::task::spawn_blocking(move || store::Store::open(&db_path))
        .await
        .map_err(|e| ServeError::Other(e.to_string()))??;

    let claim = {
        let (store, data, esp) = (
            store.clone(),
            config.data_dir.clone(),
            config.esp_dir.clone(),
        );
        tokio::task::spawn_blocking(move || {
            identity::prepare_at_start(&store, &data, esp.as_deref())
        })
        .await
        .map_err(|e| ServeError::Other(e.to_string()))?
        .map_err(|e| ServeError::Other(e.to_string()))?
    };
    let identity = Arc::new(identity::Identity::new(
        store.clone(),
        config.data_dir.clone(),
        config.esp_dir.clone(),
    ));
    let names = net::tls::DeviceNames::detect();
    let lan = net::LanNetworks::following_interfaces();
    let tls = if listeners.https.is_empty() {
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
    };
    // Only a running HTTPS listener counts: without one, "required" cannot be enforced.
    let https_port = match (&tls, listeners.https.first()) {
        (Some(_), Some(l)) => Some(l.local_addr()?.port()),
        _ => None,
    };
    let rules = {
        let (store, lan) = (store.clone(), lan.clone());
        tokio::task::spawn_blocking(move || net::NetRules::load(&store, lan, https_port))
            .await
            .map_err(|e| ServeError::Other(e.to_string()))??
    };
    let watcher = net::watch::spawn(lan.clone(), tls.clone());
    let system = system::SystemMonitor::new();
    let sampler = system.spawn_sampler();
    let agent = config.agent_socket.clone().map(agent::Client::new);
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
    let watch_store = store.clone();
    let watch_scans = scans.clone();
    let library_watcher = tokio::task::spawn_blocking(move || {
        library::watch::LibraryWatcher::start(watch_store, watch_scans, Duration::from_secs(2))
    })
    .await
    .map_err(|e| ServeError::Other(e.to_string()))?
    .map(Arc::new)
    .inspect_err(|e| tracing::warn!(error = %e, "cannot watch library folders; rescan by hand"))
    .ok();
    let dlna = {
        let store = store.clone();
        let uuid = tokio::task::spawn_blocking(move || dlna::settings::ensure_uuid(&store))
            .await
            .map_err(|e| ServeError::Other(e.to_string()))??;
        dlna::Dlna::new(uuid)
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
    };
    let (state_store, state_identity) = (state.store.clone(), state.identity.clone());
    let app = web::app(state);

    let limits = net::listener::ConnLimits {
        max_connections: config.limits.max_connections,
        header_timeout: Duration::from_secs(10),
        max_header_bytes: net::listener::MAX_HEAD_BYTES,
        handshake_timeout: Duration::from_secs(10),
        max_connections_per_client: config.limits.max_connections_per_client,
    };
    let client_slots = net::listener::ClientSlots::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let http_port = match listeners.http.first() {
        Some(l) => Some(l.local_addr()?.port()),
        None => None,
    };
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
    if let Some(tls) = &tls {
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
    // Multicast announcements, only where the config asks for them (the appliance).
    if let Some(port) = http_port {
        let only = config.discovery.interfaces.clone();
        if config.discovery.ssdp {
            let ssdp = dlna::ssdp::Ssdp {
                store: state_store.clone(),
                rules: rules.clone(),
                identity: state_identity.clone(),
                dlna: dlna.clone(),
                http_port: port,
                only: only.clone(),
            };
            tasks.spawn(ssdp.run(stop_rx.clone()));
        }
        if config.discovery.mdns {
            let responder = net::mdns::Responder {
                identity: state_identity.clone(),
                http_port: port,
                https_port,
                only,
            };
            tasks.spawn(responder.run(stop_rx.clone()));
        }
    }
    if let identity::ClaimState::Unclaimed { setup_code } = &claim {
        announce_setup_code(setup_code, &http_urls);
    }
    system::notify::notify("READY=1");
    let watchdog = system::notify::spawn_watchdog();
    let ended = tokio::select! {
        _ = shutdown.as_mut() => Ended::Shutdown,
        _ = backups.restart_requested() => Ended::Restart,
    };
    backup_scheduler.abort();
    tracing::info!("shutting down");
    system::notify::notify("STOPPING=1");
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    disk_follower.abort();
    let _ = disk_follower.await;
    // The watch thread holds a database handle: end it before `serve` returns, so the next
    // opener (a restart, `hearth reset-claim`) finds the database free.
    if let Some(w) = library_watcher {
        let _ = tokio::task::spawn_blocking(move || w.stop()).await;
    }
    sampler.abort();
    disk_task.abort();
    watcher.abort();
    if let Some(c) = update_checker {
        c.abort();
    }
    Ok(ended)
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

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::image_version;

    #[test]
    fn image_version_from_os_release() {
        let debian =
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            (debian, None),
            (
                "IMAGE_ID=hearth-generic-x86_64\nIMAGE_VERSION=0.4.1\n",
                Some("0.4.1"),
            ),
            (
                "IMAGE_ID=\"hearth-rpi4\"\nIMAGE_VERSION=\"1.2.3\"\n",
                Some("1.2.3"),
            ),
            // Someone else's image, or not a version an update can compare.
            ("IMAGE_ID=other\nIMAGE_VERSION=0.4.1\n", None),
            ("IMAGE_ID=hearth\nIMAGE_VERSION=0.4.1-rc1\n", None),
            ("IMAGE_ID=hearth\nIMAGE_VERSION=../../etc\n", None),
            ("IMAGE_ID=hearth\n", None),
            ("IMAGE_VERSION_X=1.0.0\nIMAGE_ID=hearth\n", None),
        ];
        for (text, want) in cases {
            let full = format!("{debian}{text}");
            assert_eq!(image_version(&full).as_deref(), *want, "{text:?}");
        }
    }
}
