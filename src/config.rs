//! Configuration: built-in defaults, then a TOML file, then `HEARTH_*` environment variables.
//!
//! Every layer is merged into one TOML table before it is checked, so a key nobody knows is
//! refused with its name wherever it came from (file or environment), instead of being
//! silently ignored and leaving the owner wondering why a setting has no effect.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The config format this binary understands. A file that names a newer one is refused.
pub const CONFIG_VERSION: u32 = 1;

/// Prefix of every environment variable that sets a config key.
const ENV_PREFIX: &str = "HEARTH_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error(
        "config file says version {found}, but this hearth understands version {CONFIG_VERSION} at most; update hearth or fix the file"
    )]
    TooNew { found: u32 },
}

/// A value that must never show up in logs or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<empty>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Format version of the file, so a future hearth can migrate or refuse old files.
    pub version: u32,
    /// Where the database, certificates and the setup code live.
    pub data_dir: PathBuf,
    /// Plain-HTTP listener. The setup wizard is reachable here so a new device can be found.
    pub http: SocketAddr,
    /// HTTPS listener; `None` turns HTTPS off.
    pub https: Option<SocketAddr>,
    /// A `tracing` filter such as `info` or `hearth=debug,tower_http=info`.
    pub log: String,
    /// The EFI system partition's `hearth/` folder on the device, where the setup code is
    /// written for the owner to read and where a `reset-claim` file is looked for.
    /// `None` on a laptop.
    pub esp_dir: Option<PathBuf>,
    /// Minutes east of UTC of the household's time zone, for viewing schedules.
    pub utc_offset_minutes: i32,
    /// Unix socket of `hearth agent`, the root helper that mounts and ejects disks. `None`
    /// on a laptop: the disks page then says disk management needs the appliance, and
    /// folders are added by path. The appliance image sets `/run/hearth/agent.sock`.
    pub agent_socket: Option<PathBuf>,
    pub limits: Limits,
    pub users: UsersConfig,
    pub updates: UpdatesConfig,
    pub discovery: DiscoveryConfig,
    pub playback: PlaybackConfig,
    pub backup: BackupConfig,
    pub reach: ReachConfig,
}

/// Converting films a player cannot take as they are.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlaybackConfig {
    /// The ffmpeg to run (ffprobe is looked for beside it). Unset:
    /// `/usr/lib/hearth/ffmpeg` (the appliance's own build), then `/usr/bin/ffmpeg`.
    pub ffmpeg: Option<PathBuf>,
    /// The most a viewer outside the home receives, bits per second; above it films are
    /// converted down. 0: no limit.
    pub remote_bitrate: u64,
    /// The tallest picture this device converts to (a Raspberry Pi 4: 720).
    pub max_transcode_height: u32,
    /// Video conversions at once.
    pub transcodes: usize,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        PlaybackConfig {
            ffmpeg: None,
            remote_bitrate: 4_000_000,
            max_transcode_height: 1080,
            transcodes: 2,
        }
    }
}

/// Backups.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Folders the setup wizard of an unclaimed device looks in for backups to restore,
    /// besides the disks the agent sees (a laptop has no agent: list the folder a backup
    /// disk is mounted at, e.g. `["/media/me/usb-stick"]`). Searched three levels deep.
    pub restore_folders: Vec<PathBuf>,
}

/// How the device keeps its port mapping on the home router while remote access is on
/// (the owner turns that on; these are the timings).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReachConfig {
    /// Whether the device may ask the home router (UPnP IGD) for a port mapping and its
    /// address while the owner has remote access on. Off by default, so `cargo run -- serve`
    /// on a laptop never talks to the router of the network it happens to sit on; the
    /// appliance's `/etc/hearth/hearth.toml` turns it on.
    pub upnp: bool,
    /// Lease asked for each mapping, in seconds (at most 7200); renewed at half of it, so a
    /// device that dies leaves the router open for at most this long.
    pub lease_secs: u32,
    /// Seconds between checks that the router still has the mapping (a router restart
    /// forgets it; it is added again at the next check).
    pub check_secs: u64,
    /// Seconds to wait for routers to answer a search.
    pub search_secs: u64,
}

impl Default for ReachConfig {
    fn default() -> Self {
        ReachConfig {
            upnp: false,
            lease_secs: 7200,
            check_secs: 60,
            search_secs: 2,
        }
    }
}

/// Multicast announcements on the home network. Both are off by default, so `cargo run --
/// serve` on a laptop never announces itself to the LAN it happens to sit on; the appliance's
/// `/etc/hearth/hearth.toml` turns both on.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Answer `hearth.local` and `<hostname>.local` and advertise `_http._tcp`,
    /// `_https._tcp` and `_hearth._tcp` with mDNS/DNS-SD.
    pub mdns: bool,
    /// Announce the DLNA media server with SSDP and answer M-SEARCH, while the owner has
    /// DLNA on. Without it the DLNA HTTP endpoints still answer LAN clients that know them.
    pub ssdp: bool,
    /// Interface names to announce on (e.g. `["eth0"]`). Empty: every interface with a
    /// private (RFC 1918, link-local) IPv4 address.
    pub interfaces: Vec<String>,
}

/// Caps that keep one client from exhausting the appliance.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest JSON request body accepted, in bytes.
    pub body_bytes: usize,
    /// Largest uploaded file (certificates, offline update bundles), in bytes.
    pub upload_bytes: u64,
    /// A request that has not produced a response by then is answered 408.
    pub request_timeout_secs: u64,
    /// Simultaneous connections; past this, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Simultaneous connections from one client address (one /64 for IPv6); past this,
    /// that client's new connections are closed, so it cannot crowd out everyone else.
    /// Clients behind one proxy or NAT share it.
    pub max_connections_per_client: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    /// How many managed (password-less) household profiles may exist.
    pub max_managed: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdatesConfig {
    /// Base URL of the update channel (static files). Empty: no channel configured.
    pub channel_url: String,
    /// `stable` or `beta`.
    pub channel: String,
    /// Hours between automatic update checks; 0 turns automatic checks off.
    pub check_interval_hours: u32,
    /// Bearer token for a private channel. Also settable as `HEARTH_UPDATES__TOKEN_FILE`.
    pub token: Secret,
    /// Folder of public keys (`*.pub`) update bundles must be signed with. The image ships
    /// them in its read-only root; the agent checks against its own copy as well.
    pub keyring: PathBuf,
    /// PEM file of the certificates an https channel must chain to, instead of the public
    /// roots: for a private channel or a local mirror with its own CA. Unset: public roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            data_dir: PathBuf::from("hearth-data"),
            http: SocketAddr::from(([0, 0, 0, 0], 8080)),
            https: Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
            log: "info".into(),
            esp_dir: None,
            utc_offset_minutes: 0,
            agent_socket: None,
            limits: Limits::default(),
            users: UsersConfig::default(),
            updates: UpdatesConfig::default(),
            discovery: DiscoveryConfig::default(),
            playback: PlaybackConfig::default(),
            backup: BackupConfig::default(),
            reach: ReachConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 64 * 1024,
            upload_bytes: 2 * 1024 * 1024 * 1024,
            request_timeout_secs: 30,
            max_connections: 512,
            max_connections_per_client: 64,
        }
    }
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig { max_managed: 15 }
    }
}

/// Where the image keeps the update keys.
pub const DEFAULT_KEYRING: &str = "/usr/share/hearth/keys";

impl Default for UpdatesConfig {
    fn default() -> Self {
        UpdatesConfig {
            channel_url: String::new(),
            channel: "stable".into(),
            check_interval_hours: 24,
            token: Secret::default(),
            keyring: PathBuf::from(DEFAULT_KEYRING),
            ca_file: None,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then the `HEARTH_*` variables in `env`.
    ///
    /// `env` is passed in rather than read here so tests can give their own.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            table = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // Variables read by the CLI itself, not config keys.
            if key == "CONFIG" {
                continue;
            }
            apply_env(&mut table, key, &value)?;
        }
        Self::from_table(table)
    }

    /// Checks a merged table and turns it into a `Config`.
    pub fn from_table(table: toml::Table) -> Result<Config, ConfigError> {
        if let Some(v) = table.get("version") {
            let found = v
                .as_integer()
                .ok_or_else(|| ConfigError::Invalid("`version` must be a number".into()))?;
            if found > i64::from(CONFIG_VERSION) {
                return Err(ConfigError::TooNew {
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                });
            }
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.limits.body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "limits.body_bytes must be at least 1024".into(),
            ));
        }
        if self.limits.request_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "limits.request_timeout_secs must be at least 1".into(),
            ));
        }
        if self.limits.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_connections must be at least 1".into(),
            ));
        }
        if self.limits.max_connections_per_client == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_connections_per_client must be at least 1".into(),
            ));
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return Err(ConfigError::Invalid(
                "utc_offset_minutes must be between -840 and 840".into(),
            ));
        }
        if let Some(bad) =
            self.discovery.interfaces.iter().find(|n| {
                n.is_empty() || n.len() > 15 || n.contains(['/', ' ']) || n.as_str() == "lo"
            })
        {
            return Err(ConfigError::Invalid(format!(
                "discovery.interfaces: {bad:?} is not a network interface name (like \"eth0\")"
            )));
        }
        if !(2..=7200).contains(&self.reach.lease_secs) {
            return Err(ConfigError::Invalid(
                "reach.lease_secs must be between 2 and 7200 (two hours)".into(),
            ));
        }
        if self.reach.check_secs == 0 || !(1..=10).contains(&self.reach.search_secs) {
            return Err(ConfigError::Invalid(
                "reach.check_secs must be at least 1 and reach.search_secs between 1 and 10".into(),
            ));
        }
        if !matches!(self.updates.channel.as_str(), "stable" | "beta") {
            return Err(ConfigError::Invalid(format!(
                "updates.channel must be \"stable\" or \"beta\", not {:?}",
                self.updates.channel
            )));
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("hearth.redb")
    }
}

/// Sets one `HEARTH_*` variable into the table. `__` separates sections
/// (`HEARTH_LIMITS__BODY_BYTES` → `limits.body_bytes`); a `_FILE` suffix reads the value
/// from that file (for secrets kept out of the environment).
fn apply_env(table: &mut toml::Table, key: &str, value: &str) -> Result<(), ConfigError> {
    let lower = key.to_ascii_lowercase();
    let (lower, value) = match lower.strip_suffix("_file") {
        Some(base) if !base.is_empty() => {
            let text = std::fs::read_to_string(value).map_err(|source| ConfigError::Read {
                path: PathBuf::from(value),
                source,
            })?;
            (
                base.to_owned(),
                text.trim_end_matches(['\n', '\r']).to_owned(),
            )
        }
        _ => (lower, value.to_owned()),
    };
    let path: Vec<&str> = lower.split("__").collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::Invalid(format!(
            "environment variable {ENV_PREFIX}{key} does not name a config key"
        )));
    }
    let mut node = table;
    for section in &path[..path.len() - 1] {
        let entry = node
            .entry((*section).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry.as_table_mut().ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{ENV_PREFIX}{key}: `{section}` is not a section of the config"
            ))
        })?;
    }
    let leaf = path[path.len() - 1].to_owned();
    node.insert(leaf, parse_env_value(&value));
    Ok(())
}

/// Environment values are typed like TOML values where they parse as one (`8080`, `true`,
/// `["a", "b"]`); anything else is a string, so `HEARTH_HTTP=0.0.0.0:80` needs no quotes.
fn parse_env_value(value: &str) -> toml::Value {
    let doc = format!("v = {value}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_laptop_defaults() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("hearth-data"));
        assert_eq!(c.http.port(), 8080);
        assert_eq!(c.https.unwrap().port(), 8443);
        assert_eq!(c.version, CONFIG_VERSION);
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hearth.toml");
        std::fs::write(
            &f,
            "version = 1\ndata_dir = \"/data/hearth\"\nhttp = \"0.0.0.0:80\"\n[limits]\nbody_bytes = 4096\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&f),
            env(&[
                ("HEARTH_HTTP", "127.0.0.1:9000"),
                ("HEARTH_LIMITS__REQUEST_TIMEOUT_SECS", "5"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/data/hearth"));
        assert_eq!(c.http, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.limits.body_bytes, 4096);
        assert_eq!(c.limits.request_timeout_secs, 5);
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hearth.toml");
        std::fs::write(&f, "[limits]\nbody_byts = 10\n").unwrap();
        let e = Config::load(Some(&f), env(&[])).unwrap_err().to_string();
        assert!(e.contains("body_byts"), "{e}");

        let e = Config::load(None, env(&[("HEARTH_COLOUR", "blue")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn discovery_is_off_unless_configured() {
        // A laptop's `cargo run -- serve` must not announce itself on the LAN.
        let c = Config::load(None, env(&[])).unwrap();
        assert!(!c.discovery.mdns && !c.discovery.ssdp);
        let c = Config::load(
            None,
            env(&[
                ("HEARTH_DISCOVERY__MDNS", "true"),
                ("HEARTH_DISCOVERY__INTERFACES", "[\"eth0\"]"),
            ]),
        )
        .unwrap();
        assert!(c.discovery.mdns && !c.discovery.ssdp);
        assert_eq!(c.discovery.interfaces, ["eth0"]);
        for bad in [
            "[\"\"]",
            "[\"lo\"]",
            "[\"eth0/1\"]",
            "[\"a-very-long-interface-name\"]",
        ] {
            let e = Config::load(None, env(&[("HEARTH_DISCOVERY__INTERFACES", bad)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("discovery.interfaces"), "{bad}: {e}");
        }
        // The appliance's own config turns both on.
        let image =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("image/rootfs/etc/hearth/hearth.toml");
        let c = Config::load(Some(&image), env(&[])).unwrap();
        assert!(c.discovery.mdns && c.discovery.ssdp);
    }

    #[test]
    fn newer_version_refused() {
        let e = Config::load(None, env(&[("HEARTH_VERSION", "99")])).unwrap_err();
        assert!(matches!(e, ConfigError::TooNew { found: 99 }), "{e}");
    }

    #[test]
    fn bad_values_explain_themselves() {
        let e = Config::load(None, env(&[("HEARTH_UPDATES__CHANNEL", "nightly")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("stable"), "{e}");
        let e = Config::load(None, env(&[("HEARTH_HTTP", "not-an-address")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_and_readable_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "s3cret-token\n").unwrap();
        let c = Config::load(
            None,
            env(&[("HEARTH_UPDATES__TOKEN_FILE", f.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(c.updates.token.expose(), "s3cret-token");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }
}
