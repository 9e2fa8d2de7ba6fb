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
    /// Whether this build can install updates; if not, `install_note` says why.
    pub can_install: bool,
    pub install_note: Option<String>,
}

/// Installing needs agent verbs (write slot, set trial boot) that are not built yet.
pub const NO_AGENT: &str = "Installing updates needs the agent's slot-writing and boot-control verbs, which this build does not have yet; nothing was installed.";

pub fn running_version() -> Version {
    crate::VERSION.parse().unwrap_or(Version(0, 0, 0))
}

pub fn view(config: &UpdatesConfig, record: UpdateRecord) -> UpdatesView {
    let running = running_version();
    UpdatesView {
        current_version: crate::VERSION.to_owned(),
        board: device_board(),
        slot: None,
        channel: config.channel.clone(),
        channel_configured: !config.channel_url.trim().is_empty(),
        check_interval_hours: config.check_interval_hours,
        last_check: record.last_check,
        last_error: record.last_error,
        available: record.offered.filter(|c| c.version > running),
        last_rollback: record.last_rollback,
        can_install: false,
        install_note: Some(NO_AGENT.to_owned()),
    }
}

pub fn load_view(config: &UpdatesConfig, store: &Store) -> Result<UpdatesView, StoreError> {
    let record: UpdateRecord = store.read(|r| r.ota_record())?.unwrap_or_default();
    Ok(view(config, record))
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
pub fn check(config: &UpdatesConfig, store: &Store) -> Result<UpdatesView, CheckError> {
    let board = device_board();
    let url = channel_json_url(config, &board).ok_or(CheckError::NoChannel)?;
    let token = config.token.expose();
    let client = Client::new().with_token((!token.is_empty()).then(|| token.to_owned()));
    let result = client.fetch_channel(&url, &board);
    let record = store.write(|tx| {
        let mut rec: UpdateRecord = tx.ota_record_for_update()?.unwrap_or_default();
        rec.last_check = Some(crate::now_secs());
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
    Ok(view(config, record))
}

/// Checks every `check_interval_hours` while the server runs (nothing if 0 or no channel).
pub fn spawn_checker(config: UpdatesConfig, store: Store) -> Option<tokio::task::JoinHandle<()>> {
    if config.check_interval_hours == 0 || config.channel_url.trim().is_empty() {
        return None;
    }
    let every = std::time::Duration::from_secs(u64::from(config.check_interval_hours) * 3600);
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let (c, s) = (config.clone(), store.clone());
            match tokio::task::spawn_blocking(move || check(&c, &s)).await {
                Ok(Ok(v)) => {
                    tracing::info!(available = ?v.available.map(|a| a.version.to_string()), "update check done")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "update check failed"),
                Err(e) => tracing::warn!(error = %e, "update check task failed"),
            }
        }
    }))
}
