//! `hearth`: parse the command line and hand over to the library.

// Production code reports failures as errors; tests (here `#[cfg(test)]` modules, and every
// crate under tests/ and benches/, which this attribute does not reach) may unwrap. A spot that
// cannot fail gets `#[allow(...)]` with a comment saying why.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hearth::Config;

#[derive(Parser)]
#[command(name = "hearth", version = version(), about = "A private media appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Config file (TOML). Default: built-in defaults plus HEARTH_* variables.
        #[arg(long, env = "HEARTH_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (overrides the config).
        #[arg(long)]
        data: Option<PathBuf>,
        /// HTTP listen address, e.g. 0.0.0.0:8080 (port 0 picks a free port).
        #[arg(long)]
        http: Option<String>,
        /// HTTPS listen address, or `off`.
        #[arg(long)]
        https: Option<String>,
    },
    /// Print the setup code of an unclaimed device.
    SetupCode {
        #[arg(long, env = "HEARTH_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Run the root helper that mounts and ejects disks for the server (appliance only).
    Agent {
        /// Socket to listen on, unless systemd passes one (socket activation).
        #[arg(long, default_value = hearth::agent::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// The user whose server may call the agent (root always may).
        #[arg(long, default_value = "hearth")]
        allow_user: String,
        /// Folder where disks are mounted.
        #[arg(long, default_value = hearth::agent::DEFAULT_MEDIA_ROOT)]
        media_root: PathBuf,
        /// Where the EFI system partition is mounted (systemd-boot devices).
        #[arg(long, default_value = "/efi")]
        esp: PathBuf,
        /// Folder of public keys update bundles must be signed with.
        #[arg(long, default_value = hearth::config::DEFAULT_KEYRING)]
        keyring: PathBuf,
        /// systemd-timesyncd's drop-in folder, where the owner's time sync setting is kept
        /// (the image links it to /data/system/time-sync).
        #[arg(long, default_value = hearth::agent::timesync::DEFAULT_DIR)]
        time_sync_dir: PathBuf,
    },
    /// Boot slots (appliance only, as root): status, keep the running slot, or give up on it.
    #[command(subcommand)]
    Boot(BootCommand),
    /// Return a claimed device to unclaimed (libraries, media and other users stay).
    ResetClaim {
        #[arg(long, env = "HEARTH_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Make, sign and check update bundles (for publishers).
    #[command(subcommand)]
    Bundle(BundleCommand),
}

#[derive(Subcommand)]
enum BootCommand {
    /// Which slot runs, whether it is on trial, whether a trial failed.
    Status {
        #[arg(long, default_value = hearth::agent::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// The running slot is healthy: keep it (hearth-health.service runs this).
    MarkGood {
        #[arg(long, default_value = hearth::agent::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// The running slot did not become healthy: if it is on trial, give up on it and reboot
    /// into the previous slot; if it is not, leave it running.
    Unhealthy {
        #[arg(long, default_value = hearth::agent::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Create an ed25519 key pair: DIR/NAME.key (secret) and DIR/NAME.pub (for keyrings).
    Keygen {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Build and sign a bundle from payload files.
    Create {
        #[arg(long)]
        board: String,
        #[arg(long)]
        version: String,
        /// Oldest running version this bundle may replace.
        #[arg(long)]
        min_version: String,
        /// SLOT=FILE, e.g. rootfs=root.erofs (repeatable).
        #[arg(long = "payload", required = true)]
        payloads: Vec<String>,
        /// Private key file (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Add a second signature (key rotation).
    Sign {
        bundle: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a bundle completely, offline.
    Verify {
        bundle: PathBuf,
        /// Directory of trusted public keys (*.pub).
        #[arg(long)]
        keyring: PathBuf,
        /// Refuse bundles for another board.
        #[arg(long)]
        board: Option<String>,
        /// Refuse bundles that may not replace this version.
        #[arg(long)]
        running_version: Option<String>,
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// Show what a bundle says about itself (signatures not checked).
    Inspect { bundle: PathBuf },
}

fn version() -> &'static str {
    // Leaked once at start-up: clap wants a 'static string and this is computed once.
    Box::leak(format!("{} ({})", hearth::version(), hearth::TARGET).into_boxed_str())
}

fn load_config(
    file: Option<PathBuf>,
    data: Option<PathBuf>,
    http: Option<String>,
    https: Option<String>,
) -> Result<Config, String> {
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    // Command-line flags win over everything, so they go in as the last "variables".
    if let Some(d) = data {
        env.push(("HEARTH_DATA_DIR".into(), toml_string(&d.to_string_lossy())));
    }
    if let Some(h) = http {
        env.push(("HEARTH_HTTP".into(), toml_string(&h)));
    }
    if let Some(h) = https {
        if h == "off" {
            env.push(("HEARTH_HTTPS_OFF".into(), String::new()));
        } else {
            env.push(("HEARTH_HTTPS".into(), toml_string(&h)));
        }
    }
    let https_off = env.iter().any(|(k, _)| k == "HEARTH_HTTPS_OFF");
    env.retain(|(k, _)| k != "HEARTH_HTTPS_OFF");
    let mut config = Config::load(file.as_deref(), env).map_err(|e| e.to_string())?;
    if https_off {
        config.https = None;
    }
    Ok(config)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            data,
            http,
            https,
        } => load_config(config, data, http, https).and_then(run_serve),
        Command::SetupCode { config, data } => {
            load_config(config, data, None, None).and_then(|c| setup_code(&c))
        }
        Command::Agent {
            socket,
            allow_user,
            media_root,
            esp,
            keyring,
            time_sync_dir,
        } => run_agent(socket, &allow_user, media_root, esp, keyring, time_sync_dir),
        Command::Boot(cmd) => run_boot(cmd),
        Command::ResetClaim { config, data } => {
            load_config(config, data, None, None).and_then(|c| reset_claim(&c))
        }
        Command::Bundle(cmd) => run_bundle(cmd).map(|out| println!("{out}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hearth: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the setup code. The code file exists exactly while the device is unclaimed, so
/// this works while the server runs (and holds the database).
fn setup_code(config: &Config) -> Result<(), String> {
    use hearth::identity::{self, ClaimState, setup_code};
    let read = |c: &Config| {
        setup_code::read(&c.data_dir).map_err(|e| {
            format!(
                "cannot read the setup code in {}: {e}",
                c.data_dir.display()
            )
        })
    };
    if let Some(code) = read(config)? {
        println!("{code}");
        return Ok(());
    }
    // No code file: either claimed, or never started. The database tells which.
    let store = match hearth::store::Store::open(&config.database_path()) {
        Ok(s) => s,
        Err(hearth::store::StoreError::Busy { .. }) => {
            return Err("this device is already claimed; sign in, or run `hearth reset-claim` (with the server stopped) if you are locked out".into());
        }
        Err(e) => return Err(e.to_string()),
    };
    match identity::prepare_at_start(&store, &config.data_dir, config.esp_dir.as_deref())
        .map_err(|e| e.to_string())?
    {
        ClaimState::Unclaimed { setup_code } => {
            println!("{setup_code}");
            Ok(())
        }
        ClaimState::Claimed => Err("this device is already claimed; sign in, or run `hearth reset-claim` if you are locked out".into()),
    }
}

/// Returns the device to unclaimed. Needs the database, so the server must be stopped.
fn reset_claim(config: &Config) -> Result<(), String> {
    let store = hearth::store::Store::open(&config.database_path()).map_err(|e| match e {
        hearth::store::StoreError::Busy { .. } => "the server is running and holds the database; stop it first (systemctl stop hearth), then run `hearth reset-claim` again".to_owned(),
        e => e.to_string(),
    })?;
    let code = hearth::identity::reset_claim(
        &store,
        &config.data_dir,
        config.esp_dir.as_deref(),
        "hearth reset-claim on the console",
    )
    .map_err(|e| e.to_string())?;
    println!(
        "This Hearth is unclaimed again. Libraries, media, other users and their history are kept."
    );
    println!("Start the server and claim it with the new setup code: {code}");
    Ok(())
}

fn run_bundle(cmd: BundleCommand) -> Result<String, String> {
    use hearth::ota::cli;
    match cmd {
        BundleCommand::Keygen { dir, name } => cli::keygen(&dir, &name),
        BundleCommand::Create {
            board,
            version,
            min_version,
            payloads,
            key,
            out,
        } => cli::create(&board, &version, &min_version, &payloads, &key, &out),
        BundleCommand::Sign { bundle, key } => cli::sign(&bundle, &key),
        BundleCommand::Verify {
            bundle,
            keyring,
            board,
            running_version,
            allow_downgrade,
        } => cli::verify(
            &bundle,
            &keyring,
            board.as_deref(),
            running_version.as_deref(),
            allow_downgrade,
        ),
        BundleCommand::Inspect { bundle } => cli::inspect(&bundle),
    }
}

fn run_serve(config: Config) -> Result<(), String> {
    init_logging(&config.log);
    tracing::debug!(?config, "configuration");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listeners = hearth::Listeners::bind(&config)
            .await
            .map_err(|e| e.to_string())?;
        hearth::serve(config, listeners, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
}

/// `hearth boot …`: asks the agent, prints its answer.
fn run_boot(cmd: BootCommand) -> Result<(), String> {
    use hearth::agent::protocol::{BootInfo, Request};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let show = |b: &BootInfo| {
            serde_json::to_string(b).unwrap_or_else(|e| format!("(cannot show: {e})"))
        };
        match cmd {
            BootCommand::Status { socket } => {
                let b: BootInfo = hearth::agent::Client::new(socket)
                    .call(&Request::BootStatus {})
                    .await
                    .map_err(|e| e.to_string())?;
                println!("{}", show(&b));
            }
            BootCommand::MarkGood { socket } => {
                let b: BootInfo = hearth::agent::Client::new(socket)
                    .call(&Request::MarkGood {})
                    .await
                    .map_err(|e| e.to_string())?;
                println!("marked good: {}", show(&b));
            }
            BootCommand::Unhealthy { socket } => {
                let agent = hearth::agent::Client::new(socket);
                let b: BootInfo = agent
                    .call(&Request::BootStatus {})
                    .await
                    .map_err(|e| e.to_string())?;
                if !b.on_trial {
                    println!(
                        "the running slot is not on trial; leaving it running: {}",
                        show(&b)
                    );
                    return Ok(());
                }
                let b: BootInfo = match agent.call(&Request::MarkBad {}).await {
                    Ok(b) => b,
                    Err(hearth::agent::ClientError::Refused { code, message })
                        if code == "no_fallback" =>
                    {
                        println!("{message}");
                        return Ok(());
                    }
                    Err(e) => return Err(e.to_string()),
                };
                println!("gave up on the slot on trial: {}; rebooting", show(&b));
                agent
                    .call::<serde_json::Value>(&Request::Reboot {})
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}

/// The agent's A/B update setup on this machine, if it has one: a Raspberry Pi booted by
/// its firmware from the tryboot layout, or UEFI with the ESP mounted and partitions
/// labelled root-a/root-b.
fn update_config(esp: PathBuf, keyring: PathBuf) -> Option<hearth::agent::update::UpdateConfig> {
    use hearth::agent::update::{
        AUTOBOOT_DIR, BootSetup, LoaderEntry, PI_BOOTLOADER_DIR, RebootAction, SlotDevices,
        UpdateConfig, detect_tryboot,
    };
    use std::path::Path;
    let dev_root = PathBuf::from("/dev");
    let missing = hearth::agent::update::wait_for_partition_links(
        &dev_root,
        Path::new("/sys/class/block"),
        &hearth::agent::update::SLOT_LABELS,
        std::time::Duration::from_secs(20),
    );
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "udev made no /dev/disk/by-partlabel link for these partitions"
        );
    }
    let pi = detect_tryboot(
        &dev_root,
        Path::new("/sys/class/block"),
        Path::new(PI_BOOTLOADER_DIR),
        Path::new(AUTOBOOT_DIR),
    );
    let boot = match pi {
        Ok(Some(boot)) => {
            tracing::info!(?boot, "Raspberry Pi tryboot A/B slots");
            boot
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "a Raspberry Pi without a usable tryboot layout; the update verbs will refuse"
            );
            return None;
        }
        Ok(None) => {
            let efi = Path::new("/sys/firmware/efi").exists();
            let slots = Path::new("/dev/disk/by-partlabel/root-a").exists()
                && Path::new("/dev/disk/by-partlabel/root-b").exists();
            if !(efi && slots) {
                tracing::info!(
                    efi,
                    slots,
                    "no UEFI or Raspberry Pi A/B slots on this machine; the update verbs will refuse"
                );
                return None;
            }
            BootSetup::SystemdBoot {
                esp,
                loader_entry: LoaderEntry::EfiVar,
            }
        }
    };
    Some(UpdateConfig {
        board: hearth::ota::service::device_board(),
        keyring_dir: keyring,
        boot,
        slots: SlotDevices::PartLabel { dev_root },
        state_dir: PathBuf::from("/run/hearth-agent"),
        boot_id_path: PathBuf::from("/proc/sys/kernel/random/boot_id"),
        reboot: RebootAction::Systemctl,
    })
}

fn run_agent(
    socket: PathBuf,
    allow_user: &str,
    media_root: PathBuf,
    esp: PathBuf,
    keyring: PathBuf,
    time_sync_dir: PathBuf,
) -> Result<(), String> {
    init_logging("info");
    if !nix::unistd::geteuid().is_root() {
        return Err("the agent mounts disks and must run as root (it is started by hearth-agent.socket on the appliance)".into());
    }
    let user = nix::unistd::User::from_name(allow_user)
        .map_err(|e| format!("cannot look up user {allow_user}: {e}"))?
        .ok_or_else(|| format!("user {allow_user} does not exist; create it, or pass --allow-user with the user `hearth serve` runs as"))?;
    std::fs::create_dir_all(&media_root)
        .map_err(|e| format!("cannot create {}: {e}", media_root.display()))?;
    let config = hearth::agent::AgentConfig {
        sysroot: hearth::disks::Sysroot::default(),
        media_root,
        allowed_uids: vec![0, user.uid.as_raw()],
        mount_owner: Some((user.uid.as_raw(), user.gid.as_raw())),
        update: update_config(esp, keyring),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let std_listener = hearth::agent::server::listener(&socket, Some(user.gid.as_raw()))
            .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
        let listener = tokio::net::UnixListener::from_std(std_listener)
            .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
        if hearth::agent::server::socket_activated() {
            tracing::info!(
                user = allow_user,
                "agent ready on the socket systemd passed"
            );
        } else {
            tracing::info!(socket = %socket.display(), user = allow_user, "agent ready");
        }
        hearth::system::notify::notify("READY=1");
        hearth::agent::Agent::new(config)
            .with_time_sync(hearth::agent::timesync::TimeSyncConfig {
                dir: time_sync_dir,
                restart_service: true,
            })
            .run(listener, shutdown_signal())
            .await;
        Ok(())
    })
}

/// Completes on SIGTERM (systemd stop) or SIGINT (ctrl-c).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only ctrl-c will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
