//! The Privacy page: every flow the device sends ([`crate::system::privacy`]), with its last
//! contact, and the owner's time sync setting (kept by the root agent).

use std::path::Path;
use std::time::UNIX_EPOCH;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Owner;
use super::error::ApiError;
use crate::agent::client::ClientError;
use crate::agent::timesync::{self, TimeSyncMode, TimeSyncState};
use crate::system::privacy::{self, Facts, Flow};

/// timesyncd touches this each time a server answered and the clock was set (its mtime is
/// the last contact; its saved clock file is also written at start and stop, so it is not).
const TIMESYNC_SYNCED: &str = "/run/systemd/timesync/synchronized";
/// systemd-networkd's DHCP leases.
const LEASES: &str = "/run/systemd/netif/leases";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrivacyView {
    /// Everything the device sends, what leaves the house first.
    pub flows: Vec<Flow>,
    /// The time sync setting; `None` where Hearth does not manage time (no root agent).
    pub time_sync: Option<TimeSyncState>,
}

fn mtime(p: &Path) -> Option<u64> {
    let t = std::fs::metadata(p).ok()?.modified().ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

fn newest_in(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| mtime(&e.path()))
        .max()
}

fn view_blocking(state: &AppState) -> Result<PrivacyView, ApiError> {
    let record = crate::ota::service::load_record(&state.store)?;
    let updates = crate::ota::service::effective(&state.config.updates, &record.settings);
    let time_sync = state
        .agent
        .is_some()
        .then(|| timesync::read_state(Path::new(timesync::DEFAULT_DIR)));
    let dlna_active = crate::dlna::settings::presence(&state.store, &state.rules, &state.identity)
        .map(|p| p.announced())
        .unwrap_or(false);
    let facts = Facts {
        channel_url: updates.channel_url.clone(),
        check_interval_hours: updates.check_interval_hours,
        last_update_check: record.last_check,
        time_sync: time_sync.clone(),
        last_time_sync: time_sync
            .as_ref()
            .and_then(|_| mtime(Path::new(TIMESYNC_SYNCED))),
        last_dhcp: time_sync
            .as_ref()
            .and_then(|_| newest_in(Path::new(LEASES))),
        mdns: state.config.discovery.mdns,
        ssdp: state.config.discovery.ssdp,
        dlna_active,
        port_mapping: state.config.reach.upnp && state.rules.snapshot().remote_access,
    };
    Ok(PrivacyView {
        flows: privacy::flows(&facts),
        time_sync,
    })
}

/// Everything the device sends, where, what it carries, how to turn it off, and when it
/// last did; and the time sync setting.
#[utoipa::path(get, path = "/api/v1/privacy", tag = "system",
    responses((status = 200, body = PrivacyView), (status = 401), (status = 403)))]
async fn get_privacy(
    _owner: Owner,
    State(state): State<AppState>,
) -> Result<Json<PrivacyView>, ApiError> {
    Ok(Json(
        tokio::task::spawn_blocking(move || view_blocking(&state)).await??,
    ))
}

/// The owner's time sync choice.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeSyncBody {
    /// `default` (Debian's public pool), `custom` (your own servers) or `off`.
    pub mode: TimeSyncMode,
    /// With `custom`: 1 to 4 host names or addresses.
    #[serde(default)]
    pub servers: Vec<String>,
}

/// Points time sync at Debian's pool or your own servers, or turns it off (appliance only).
#[utoipa::path(put, path = "/api/v1/privacy/time-sync", tag = "system", request_body = TimeSyncBody,
    responses((status = 200, body = PrivacyView), (status = 401), (status = 403), (status = 422),
        (status = 501, description = "no root agent: this machine's own system keeps its time")))]
async fn put_time_sync(
    owner: Owner,
    State(state): State<AppState>,
    body: Result<Json<TimeSyncBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<PrivacyView>, ApiError> {
    let Json(body) = body.map_err(super::error::from_rejection)?;
    let servers = timesync::check(body.mode, &body.servers)
        .map_err(|e| ApiError::invalid("bad_time_sync", e.to_string()))?;
    let agent = state.agent.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "no_agent",
            "this machine's own system keeps its time; Hearth sets time sync only on the appliance",
        )
    })?;
    let applied = agent
        .set_time_sync(body.mode, servers)
        .await
        .map_err(|e| match e {
            ClientError::Refused { code, message } if code == "bad_time_sync" => {
                ApiError::invalid("bad_time_sync", message)
            }
            ClientError::Unreachable { .. } | ClientError::Timeout => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "agent_unavailable",
                e.to_string(),
            ),
            e => ApiError::internal(e),
        })?;
    let store = state.store.clone();
    let (actor, addr) = (owner.proof.user_id(), owner.viewer.client.addr.to_string());
    tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            tx.audit(
                crate::model::clock::now_secs(),
                "time_sync_changed",
                Some(actor),
                Some(addr),
                format!(
                    "time sync {:?}: {}",
                    applied.mode,
                    applied.servers.join(" ")
                ),
            )
        })
    })
    .await??;
    Ok(Json(
        tokio::task::spawn_blocking(move || view_blocking(&state)).await??,
    ))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_privacy))
        .routes(routes!(put_time_sync))
}
