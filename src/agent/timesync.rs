//! Time sync on the appliance: which NTP servers `systemd-timesyncd` asks, or none.
//!
//! The image links `/etc/systemd/timesyncd.conf.d` to `/data/system/time-sync` (the root is
//! read-only), and `systemd-timesyncd.service` has `ConditionPathExists=!…/off`, so what the
//! agent writes here holds from the next boot's first packet: `hearth.conf` (the owner's own
//! servers; without it, Debian's pool) and `off` (timesyncd does not start at all, so not even
//! servers offered by the router's DHCP are asked). The agent writes; `hearth serve` only reads
//! ([`read_state`]) to show the Privacy page.
//!
//! Security-relevant: the server names come from the (unprivileged) web server and end up in
//! a root-owned config file, so each is checked to be a plain host name or address
//! ([`valid_server`]) before anything is written: no spaces, newlines, `=` or brackets can
//! reach the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Where the image links timesyncd's drop-in folder; the agent's default.
pub const DEFAULT_DIR: &str = "/etc/systemd/timesyncd.conf.d";
/// The drop-in with the owner's servers.
const CONF: &str = "hearth.conf";
/// Present: time sync is off (the service's start condition).
const OFF: &str = "off";
/// Debian's `FallbackNTP=` for timesyncd: what the device asks unless told otherwise.
pub const DEBIAN_POOL: [&str; 4] = [
    "0.debian.pool.ntp.org",
    "1.debian.pool.ntp.org",
    "2.debian.pool.ntp.org",
    "3.debian.pool.ntp.org",
];
/// Most servers the owner may list.
pub const MAX_SERVERS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeSyncMode {
    /// Debian's public pool (`*.debian.pool.ntp.org`).
    Default,
    /// The owner's own servers only.
    Custom,
    /// No time sync at all.
    Off,
}

/// What the device does about time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimeSyncState {
    pub mode: TimeSyncMode,
    /// The servers asked (empty when off).
    pub servers: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeSyncError {
    #[error("give between 1 and {MAX_SERVERS} time servers for your own time sync")]
    ServerCount,
    #[error(
        "`{0}` is not a host name or address (letters, digits, dots, dashes and colons, up to 253 characters)"
    )]
    BadServer(String),
    #[error("servers are only given with the mode \"custom\"")]
    ServersWithoutCustom,
}

/// A host name (`ntp.home.arpa`, `time-1.example`) or an IPv4/IPv6 address.
pub fn valid_server(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Checks a request; the servers of a valid custom request, trimmed.
pub fn check(mode: TimeSyncMode, servers: &[String]) -> Result<Vec<String>, TimeSyncError> {
    match mode {
        TimeSyncMode::Custom => {
            if servers.is_empty() || servers.len() > MAX_SERVERS {
                return Err(TimeSyncError::ServerCount);
            }
            servers
                .iter()
                .map(|s| {
                    let t = s.trim();
                    if valid_server(t) {
                        Ok(t.to_owned())
                    } else {
                        Err(TimeSyncError::BadServer(s.chars().take(80).collect()))
                    }
                })
                .collect()
        }
        _ if !servers.is_empty() => Err(TimeSyncError::ServersWithoutCustom),
        _ => Ok(Vec::new()),
    }
}

/// What the files in `dir` say (absent files: Debian's pool).
pub fn read_state(dir: &Path) -> TimeSyncState {
    if dir.join(OFF).exists() {
        return TimeSyncState {
            mode: TimeSyncMode::Off,
            servers: Vec::new(),
        };
    }
    let servers: Vec<String> = std::fs::read_to_string(dir.join(CONF))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.trim().strip_prefix("NTP=").map(str::to_owned))
        })
        .map(|v| {
            v.split_whitespace()
                .filter(|s| valid_server(s))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if servers.is_empty() {
        TimeSyncState {
            mode: TimeSyncMode::Default,
            servers: DEBIAN_POOL.iter().map(|s| (*s).to_owned()).collect(),
        }
    } else {
        TimeSyncState {
            mode: TimeSyncMode::Custom,
            servers,
        }
    }
}

/// Writes `contents` to `path` (temp file, fsync, rename).
fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Where the agent keeps time sync, and whether it tells systemd (not in tests).
#[derive(Debug, Clone)]
pub struct TimeSyncConfig {
    pub dir: PathBuf,
    pub restart_service: bool,
}

/// The agent's `set_time_sync`: checks, writes the files, and stops or restarts timesyncd.
pub fn set(
    config: &TimeSyncConfig,
    mode: TimeSyncMode,
    servers: &[String],
) -> Result<TimeSyncState, SetError> {
    let servers = check(mode, servers)?;
    std::fs::create_dir_all(&config.dir)?;
    let conf = config.dir.join(CONF);
    let off = config.dir.join(OFF);
    match mode {
        TimeSyncMode::Default => {
            remove(&conf)?;
            remove(&off)?;
        }
        TimeSyncMode::Custom => {
            write_atomic(
                &conf,
                &format!(
                    "# Written by hearth agent (Settings > Privacy > Time sync).\n[Time]\nNTP={}\nFallbackNTP=\n",
                    servers.join(" ")
                ),
            )?;
            remove(&off)?;
        }
        TimeSyncMode::Off => {
            write_atomic(&off, "Time sync is off (Settings > Privacy > Time sync).\n")?;
        }
    }
    if let Ok(d) = std::fs::File::open(&config.dir) {
        let _ = d.sync_all();
    }
    if config.restart_service {
        let action = if mode == TimeSyncMode::Off {
            "stop"
        } else {
            "restart"
        };
        let out = Command::new("systemctl")
            .args([action, "systemd-timesyncd.service"])
            .output()?;
        if !out.status.success() {
            return Err(SetError::Service(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
    }
    Ok(read_state(&config.dir))
}

#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error(transparent)]
    Invalid(#[from] TimeSyncError),
    #[error("systemd did not apply the time sync setting: {0}")]
    Service(String),
    #[error("the time sync setting could not be written: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_table() {
        let cases = [
            ("pool.ntp.org", true),
            ("ntp.home.arpa", true),
            ("time-1.example", true),
            ("192.168.1.1", true),
            ("fd00::1", true),
            ("", false),
            ("a b", false),
            ("ntp\nFallbackNTP=evil", false),
            ("host=1", false),
            ("-lead.example", false),
            ("trail-.example", false),
            ("a..b", false),
            ("[::1]", false),
            ("ex\u{e4}mple.org", false),
        ];
        for (s, ok) in cases {
            assert_eq!(valid_server(s), ok, "{s:?}");
        }
    }

    #[test]
    fn requests_table() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        use TimeSyncMode::*;
        assert_eq!(check(Default, &[]), Ok(vec![]));
        assert_eq!(check(Off, &[]), Ok(vec![]));
        assert_eq!(
            check(Off, &s(&["a.example"])),
            Err(TimeSyncError::ServersWithoutCustom)
        );
        assert_eq!(check(Custom, &[]), Err(TimeSyncError::ServerCount));
        assert_eq!(
            check(Custom, &s(&["a", "b", "c", "d", "e"])),
            Err(TimeSyncError::ServerCount)
        );
        assert_eq!(
            check(Custom, &s(&[" ntp.lan "])),
            Ok(vec!["ntp.lan".to_owned()])
        );
        assert!(matches!(
            check(Custom, &s(&["ok.lan", "bad name"])),
            Err(TimeSyncError::BadServer(_))
        ));
    }

    #[test]
    fn set_writes_and_reads_back_each_mode() {
        let dir = tempfile::tempdir().unwrap();
        let config = TimeSyncConfig {
            dir: dir.path().join("time-sync"),
            restart_service: false,
        };
        assert_eq!(read_state(&config.dir).mode, TimeSyncMode::Default);
        let st = set(&config, TimeSyncMode::Custom, &["ntp.lan".into()]).unwrap();
        assert_eq!(st.mode, TimeSyncMode::Custom);
        assert_eq!(st.servers, vec!["ntp.lan"]);
        let conf = std::fs::read_to_string(config.dir.join(CONF)).unwrap();
        assert!(conf.contains("\nNTP=ntp.lan\nFallbackNTP=\n"), "{conf}");
        let st = set(&config, TimeSyncMode::Off, &[]).unwrap();
        assert_eq!(st.mode, TimeSyncMode::Off);
        assert!(st.servers.is_empty());
        // A refused request changes nothing.
        assert!(set(&config, TimeSyncMode::Custom, &["a b".into()]).is_err());
        assert_eq!(read_state(&config.dir).mode, TimeSyncMode::Off);
        let st = set(&config, TimeSyncMode::Default, &[]).unwrap();
        assert_eq!(st.mode, TimeSyncMode::Default);
        assert_eq!(st.servers.len(), 4);
        assert!(!config.dir.join(CONF).exists() && !config.dir.join(OFF).exists());
    }
}
