//! The device side of updates, without HTTP: what the Updates page shows, and checking the
//! channel. Update checks send nothing but the board and the running version (in the URL
//! path and the User-Agent).

use serde::{Deserialize, Serialize};

use super::download::{Channel, Client, DownloadError};
use super::version::Version;
use crate::config::UpdatesConfig;
use crate::store::{Store, StoreError};

/// Where the image records its board name.
const BOARD_FILE: &str = "/usr/lib/hearth/board";

/// This device's board: from the image, or the generic board of the build's architecture.
pub fn device_board() -> String {
    if let Ok(s) = std::fs::read_to_string(BOARD_FILE) {
        let s = s.trim();
        if !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return s.to_owned();
        }
    }
    if cfg!(target_arch = "aarch64") {
        "generic-aarch64".into()
    } else {
        "generic-x86_64".into()
    }
}

/// `<channel_url>/<board>/<channel>/channel.json`.
pub fn channel_json_url(config: &UpdatesConfig, board: &str) -> Option<String> {
    let base = config.channel_url.trim().trim_end_matches('/');
    (!base.is_empty()).then(|| format!("{base}/{board}/{}/channel.json", config.channel))
}

/// Kept in the database across restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct UpdateRecord {
    /// Unix seconds of the last check, successful or not.
    pub last_check: Option<u64>,
    /// Why the last check failed.
    pub last_error: Option<String>,
    /// What the channel offered at the last successful check.
    pub offered: Option<Channel>,
    /// The last rollback the boot control reported.
    pub last_rollback: Option<RollbackRecord>,
    /// What the owner changed on the Updates page (over the config file's defaults).
    #[serde(default)]
    pub settings: UpdateSettings,
    /// Installs, rollbacks and failures, newest first, at most [`MAX_HISTORY`].
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// A version set up for a trial boot and not yet seen running or rolled back.
    #[serde(default)]
    pub pending: Option<Pending>,
}

/// Entries kept in the update history.
pub const MAX_HISTORY: usize = 50;

/// The owner's update settings; `None` keeps the config file's value.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct UpdateSettings {
    pub channel: Option<String>,
    pub check_interval_hours: Option<u32>,
    #[serde(default)]
    pub allow_downgrade: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub at: u64,
    pub from_version: String,
    pub to_version: String,
    /// `installed`, `rolled_back` or `failed`.
    pub outcome: String,
    pub note: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    pub from_version: String,
    pub to_version: String,
    pub at: u64,
}

impl UpdateRecord {
    pub fn push_history(&mut self, e: HistoryEntry) {
        self.history.insert(0, e);
        self.history.truncate(MAX_HISTORY);
    }
}

/// The config file's update settings with the owner's changes applied.
pub fn effective(config: &UpdatesConfig, settings: &UpdateSettings) -> UpdatesConfig {
    let mut c = config.clone();
    if let Some(ch) = &settings.channel {
        c.channel = ch.clone();
    }
    if let Some(h) = settings.check_interval_hours {
        c.check_interval_hours = h;
    }
    c
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RollbackRecord {
    /// Unix seconds when the device noticed it.
    pub at: u64,
    pub failed_version: Option<String>,
    pub reason: String,
}

/// What `GET /api/v1/updates` shows.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UpdatesView {
    pub current_version: String,
    pub board: String,
    /// The running slot (`a`/`b`); null where there are no slots (a laptop).
    pub slot: Option<String>,
    pub channel: String,
    pub channel_configured: bool,
    /// Hours between automatic checks; 0 = off.
    pub check_interval_hours: u32,
    pub last_check: Option<u64>,
    pub last_error: Option<String>,
    /// A newer version the channel offers, if any.
    pub available: Option<Channel>,
    pub last_rollback: Option<RollbackRecord>,
    /// Whether this device can install updates; if not, `install_note` says why.
    pub can_install: bool,
    pub install_note: Option<String>,
    /// The owner allows installing older versions.
    pub allow_downgrade: bool,
    /// The install in progress or last finished in this run; null if none.
    pub install: Option<super::install::InstallView>,
    /// Newest first.
    pub history: Vec<HistoryEntry>,
}

/// Without the root agent (a laptop, a development box) nothing can write boot slots.
pub const NO_AGENT: &str = "Installing updates needs the Hearth appliance: this machine has no Hearth agent to write the update slot and set the trial boot. Nothing was installed.";

pub fn running_version() -> Version {
    crate::model::build::version()
        .parse()
        .unwrap_or(Version(0, 0, 0))
}

/// What the server learnt about the device at start.
#[derive(Clone, Debug, Default)]
pub struct DeviceSlots {
    /// The running slot and boot entry; `None` without an agent or slots.
    pub boot: Option<crate::agent::protocol::BootInfo>,
    /// Why updates cannot be installed here; `None` when they can.
    pub unavailable: Option<String>,
}

impl DeviceSlots {
    /// The running version: the boot entry's, else this binary's.
    pub fn running_version(&self) -> Version {
        self.boot
            .as_ref()
            .and_then(|b| b.version)
            .unwrap_or_else(running_version)
    }
}

pub fn view(
    config: &UpdatesConfig,
    record: UpdateRecord,
    slots: &DeviceSlots,
    install: Option<super::install::InstallView>,
) -> UpdatesView {
    let config = effective(config, &record.settings);
    let running = slots.running_version();
    let allow_downgrade = record.settings.allow_downgrade;
    UpdatesView {
        current_version: running.to_string(),
        board: device_board(),
        slot: slots.boot.as_ref().map(|b| b.slot.letter().to_string()),
        channel: config.channel.clone(),
        channel_configured: !config.channel_url.trim().is_empty(),
        check_interval_hours: config.check_interval_hours,
        last_check: record.last_check,
        last_error: record.last_error,
        available: record
            .offered
            .filter(|c| c.version > running || (allow_downgrade && c.version != running)),
        last_rollback: record.last_rollback,
        can_install: slots.unavailable.is_none(),
        install_note: slots.unavailable.clone(),
        allow_downgrade,
        install,
        history: record.history,
    }
}

pub fn load_record(store: &Store) -> Result<UpdateRecord, StoreError> {
    Ok(store.read(|r| r.ota_record())?.unwrap_or_default())
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("no update channel is configured; set `updates.channel_url` in the config")]
    NoChannel,
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Fetches channel.json and records the result (blocking: run off the async runtime).
pub fn check(config: &UpdatesConfig, store: &Store) -> Result<UpdateRecord, CheckError> {
    let board = device_board();
    let config = &effective(config, &load_record(store)?.settings);
    let url = channel_json_url(config, &board).ok_or(CheckError::NoChannel)?;
    let result = Client::for_channel(config).and_then(|c| c.fetch_channel(&url, &board));
    let record = store.write(|tx| {
        let mut rec: UpdateRecord = tx.ota_record_for_update()?.unwrap_or_default();
        rec.last_check = Some(crate::model::clock::now_secs());
        match &result {
            Ok(ch) => {
                rec.offered = Some(ch.clone());
                rec.last_error = None;
            }
            Err(e) => rec.last_error = Some(e.to_string()),
        }
        tx.ota_set_record(&rec)?;
        Ok::<_, StoreError>(rec)
    })?;
    result?;
    Ok(record)
}

/// The first retry after a failed check: the check at start-up runs before the network is
/// up on a device that has just booted, and would otherwise be tried again only a whole
/// interval later.
pub const RETRY_FIRST_SECS: u64 = 120;
/// Retries after failures in a row wait twice as long each time, up to this (and never
/// longer than the interval).
pub const RETRY_MAX_SECS: u64 = 6 * 3600;

/// Seconds from `now` until the next scheduled check (0: due now), or `None` while checks
/// are off (`hours` 0). After a successful check the next is `hours` later; after a failed
/// one (the record's `last_error`) [`RETRY_FIRST_SECS`] later, doubled for each further
/// failure in a row (`failures`, counted by the checker since the server started; 0 counts
/// as the first), at most [`RETRY_MAX_SECS`] or the interval. Never checked, or a last
/// check in the future (the clock was set back, as on a device without a battery-backed
/// clock before time sync): due now.
pub fn next_check_in(now: u64, record: &UpdateRecord, hours: u32, failures: u32) -> Option<u64> {
    if hours == 0 {
        return None;
    }
    let every = u64::from(hours) * 3600;
    let Some(last) = record.last_check.filter(|&t| t <= now) else {
        return Some(0);
    };
    let gap = if record.last_error.is_some() {
        let doublings = failures.saturating_sub(1).min(20);
        (RETRY_FIRST_SECS << doublings)
            .min(RETRY_MAX_SECS)
            .min(every)
    } else {
        every
    };
    Some(last.saturating_add(gap).saturating_sub(now))
}

/// Checks every `check_interval_hours` (the owner's setting, re-read each hour) while the
/// server runs, and retries a failed check after a few minutes (see [`next_check_in`]);
/// nothing without a channel, and nothing while the interval is 0.
pub fn spawn_checker(config: UpdatesConfig, store: Store) -> Option<tokio::task::JoinHandle<()>> {
    if config.channel_url.trim().is_empty() {
        return None;
    }
    const TICK: u64 = 3600;
    Some(tokio::spawn(async move {
        let mut failures: u32 = 0;
        loop {
            let s2 = store.clone();
            let record = tokio::task::spawn_blocking(move || load_record(&s2))
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default();
            let hours = effective(&config, &record.settings).check_interval_hours;
            let now = crate::model::clock::now_secs();
            match next_check_in(now, &record, hours, failures) {
                Some(0) => {}
                wait => {
                    let wait = wait.unwrap_or(TICK).min(TICK);
                    tokio::time::sleep(std::time::Duration::from_secs(wait.max(1))).await;
                    continue;
                }
            }
            let (c, s) = (config.clone(), store.clone());
            match tokio::task::spawn_blocking(move || check(&c, &s)).await {
                Ok(Ok(r)) => {
                    failures = 0;
                    tracing::info!(offered = ?r.offered.map(|a| a.version.to_string()), "update check done")
                }
                Ok(Err(e)) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "update check failed; retrying sooner")
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "update check task failed")
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(last_check: Option<u64>, failed: bool) -> UpdateRecord {
        UpdateRecord {
            last_check,
            last_error: failed.then(|| "connection refused".to_owned()),
            ..UpdateRecord::default()
        }
    }

    /// When the checker checks next, for every kind of last check.
    #[test]
    fn next_check_after_success_failure_and_backoff() {
        let n = 1_000_000;
        let (h, day) = (3600, 24 * 3600);
        let (ok, failed) = (false, true);
        // (what, last_check, it failed, interval hours, failures in a row, expected wait)
        type Row = (&'static str, Option<u64>, bool, u32, u32, Option<u64>);
        let table: &[Row] = &[
            ("checks off", Some(n), ok, 0, 0, None),
            ("checks off after a failure", Some(n), failed, 0, 3, None),
            ("never checked", None, ok, 24, 0, Some(0)),
            ("just succeeded", Some(n), ok, 24, 0, Some(day)),
            (
                "succeeded an hour ago",
                Some(n - h),
                ok,
                24,
                0,
                Some(day - h),
            ),
            ("succeeded a day ago", Some(n - day), ok, 24, 0, Some(0)),
            (
                "failed at start-up (no network yet)",
                Some(n),
                failed,
                24,
                0,
                Some(120),
            ),
            ("failed once", Some(n), failed, 24, 1, Some(120)),
            (
                "failed once, a minute ago",
                Some(n - 60),
                failed,
                24,
                1,
                Some(60),
            ),
            ("failed twice in a row", Some(n), failed, 24, 2, Some(240)),
            (
                "failed three times in a row",
                Some(n),
                failed,
                24,
                3,
                Some(480),
            ),
            (
                "failed 8 times in a row",
                Some(n),
                failed,
                24,
                8,
                Some(120 << 7),
            ),
            (
                "failed 9 times: capped at 6 h",
                Some(n),
                failed,
                24,
                9,
                Some(6 * h),
            ),
            (
                "failed 1000 times: still 6 h",
                Some(n),
                failed,
                24,
                1000,
                Some(6 * h),
            ),
            (
                "a 1 h interval caps retries",
                Some(n),
                failed,
                1,
                30,
                Some(h),
            ),
            (
                "failed long ago: due now",
                Some(n - day),
                failed,
                24,
                5,
                Some(0),
            ),
            (
                "last check in the future",
                Some(n + day),
                ok,
                24,
                0,
                Some(0),
            ),
        ];
        for &(what, last, failed, hours, failures, want) in table {
            let got = next_check_in(n, &record(last, failed), hours, failures);
            assert_eq!(got, want, "{what}");
        }
    }
}
