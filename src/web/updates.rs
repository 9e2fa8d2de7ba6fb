//! Updates: the owner sees the running version and slot, the channel and what it offers,
//! the install in progress, the last rollback and the history; changes the update settings;
//! installs from the channel or from an uploaded bundle file; reboots into a staged update.
//! Installing needs the root agent: without one (a laptop) those routes answer 503.

use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use http_body::Body as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Owner;
use super::error::ApiError;
use crate::ota::install::InstallError;
use crate::ota::service::{self, CheckError, UpdateRecord, UpdatesView};

/// Where `POST /api/v1/updates/upload` lives; the request timeout does not apply to it.
pub const UPLOAD_PATH: &str = "/api/v1/updates/upload";
/// Largest bundle accepted by upload (an image root is far smaller).
const MAX_UPLOAD: u64 = 4 << 30;
/// An upload that sends nothing for this long is dropped.
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

async fn current_view(state: &AppState) -> Result<UpdatesView, ApiError> {
    let (config, store, updates) = (
        state.config.clone(),
        state.store.clone(),
        state.updates.clone(),
    );
    Ok(
        tokio::task::spawn_blocking(move || updates.updates_view(&config.updates, &store))
            .await??,
    )
}

/// Current version and slot, channel, last check, the available update, the install in
/// progress, the last rollback and the history.
#[utoipa::path(get, path = "/api/v1/updates", tag = "updates",
    responses((status = 200, body = UpdatesView), (status = 401), (status = 403)))]
async fn status(
    _owner: Owner,
    State(state): State<AppState>,
) -> Result<Json<UpdatesView>, ApiError> {
    Ok(Json(current_view(&state).await?))
}

/// Fetches the channel's `channel.json` now (sends only the board and running version).
#[utoipa::path(post, path = "/api/v1/updates/check", tag = "updates",
    responses((status = 200, body = UpdatesView), (status = 401), (status = 403),
        (status = 409, description = "no channel configured"),
        (status = 502, description = "the channel could not be read")))]
async fn check(
    _owner: Owner,
    State(state): State<AppState>,
) -> Result<Json<UpdatesView>, ApiError> {
    let (config, store) = (state.config.clone(), state.store.clone());
    tokio::task::spawn_blocking(move || service::check(&config.updates, &store))
        .await?
        .map_err(|e| match e {
            CheckError::NoChannel => ApiError::conflict("no_channel", e.to_string()),
            CheckError::Download(d) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "channel_unreachable",
                d.to_string(),
            ),
            CheckError::Store(s) => ApiError::internal(s),
        })?;
    Ok(Json(current_view(&state).await?))
}

/// The owner's update settings; every field optional.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// `stable` or `beta`.
    pub channel: Option<String>,
    /// 0..=168; 0 = never check by itself.
    pub check_interval_hours: Option<u32>,
    pub allow_downgrade: Option<bool>,
}

/// Changes the channel, the check interval or "allow downgrade".
#[utoipa::path(put, path = "/api/v1/updates/settings", tag = "updates", request_body = SettingsBody,
    responses((status = 200, body = UpdatesView), (status = 401), (status = 403), (status = 422)))]
async fn settings(
    owner: Owner,
    State(state): State<AppState>,
    body: Result<Json<SettingsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<UpdatesView>, ApiError> {
    let Json(body) = body.map_err(super::error::from_rejection)?;
    if let Some(ch) = &body.channel
        && !matches!(ch.as_str(), "stable" | "beta")
    {
        return Err(ApiError::invalid(
            "bad_channel",
            "the channel must be \"stable\" or \"beta\"",
        ));
    }
    if let Some(h) = body.check_interval_hours
        && h > 168
    {
        return Err(ApiError::invalid(
            "bad_interval",
            "check_interval_hours must be between 0 (never) and 168 (once a week)",
        ));
    }
    let store = state.store.clone();
    let (actor, addr) = (owner.proof.user_id(), owner.viewer.client.addr.to_string());
    tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            let mut rec: UpdateRecord = tx.ota_record_for_update()?.unwrap_or_default();
            if let Some(ch) = body.channel {
                rec.settings.channel = Some(ch);
            }
            if let Some(h) = body.check_interval_hours {
                rec.settings.check_interval_hours = Some(h);
            }
            if let Some(d) = body.allow_downgrade {
                rec.settings.allow_downgrade = d;
            }
            tx.ota_set_record(&rec)?;
            tx.audit(
                crate::model::clock::now_secs(),
                "update_settings_changed",
                Some(actor),
                Some(addr),
                format!(
                    "channel {:?}, check every {:?} h, allow downgrade {}",
                    rec.settings.channel,
                    rec.settings.check_interval_hours,
                    rec.settings.allow_downgrade
                ),
            )
        })
    })
    .await??;
    Ok(Json(current_view(&state).await?))
}

fn install_error(e: InstallError) -> ApiError {
    match e {
        InstallError::Unavailable(m) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "agent_unavailable", m)
        }
        InstallError::Busy => ApiError::conflict("install_running", e.to_string()),
        InstallError::NothingOffered => ApiError::conflict("nothing_offered", e.to_string()),
        InstallError::NotNewer { .. } => ApiError::conflict("not_newer", e.to_string()),
        InstallError::NothingStaged => ApiError::conflict("nothing_staged", e.to_string()),
        InstallError::Agent(m) => ApiError::new(StatusCode::BAD_GATEWAY, "agent_refused", m),
        InstallError::Store(s) => ApiError::internal(s),
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallBody {
    /// Reboot into the new version once it is written (default true).
    pub reboot: Option<bool>,
}

/// Downloads and installs the update the channel offers; answers at once (202) and shows
/// progress in `GET /api/v1/updates`.
#[utoipa::path(post, path = "/api/v1/updates/install", tag = "updates", request_body = InstallBody,
    responses((status = 202, body = UpdatesView), (status = 401), (status = 403),
        (status = 409, description = "nothing offered, not newer, or an install is running"),
        (status = 503, description = "no agent: not an appliance")))]
async fn install(
    _owner: Owner,
    State(state): State<AppState>,
    body: Option<Json<InstallBody>>,
) -> Result<(StatusCode, Json<UpdatesView>), ApiError> {
    let reboot = body.and_then(|b| b.0.reboot).unwrap_or(true);
    let (config, store, updates) = (
        state.config.clone(),
        state.store.clone(),
        state.updates.clone(),
    );
    tokio::task::spawn_blocking(move || {
        // `start_download` spawns on the runtime; this thread may enter it.
        updates.start_download(config.updates.clone(), store, reboot)
    })
    .await?
    .map_err(install_error)?;
    Ok((StatusCode::ACCEPTED, Json(current_view(&state).await?)))
}

/// Installs an uploaded bundle file (offline update): the raw bytes as the body
/// (`application/octet-stream`). Checked completely before anything is written.
#[utoipa::path(post, path = "/api/v1/updates/upload", tag = "updates",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 202, body = UpdatesView), (status = 401), (status = 403),
        (status = 409, description = "an install is running"),
        (status = 413, description = "larger than any bundle"),
        (status = 503, description = "no agent: not an appliance")))]
async fn upload(
    _owner: Owner,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<UpdatesView>), ApiError> {
    // Refuse before reading a byte when nothing could install it.
    if let Some(why) = state.updates.slots().unavailable {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "agent_unavailable",
            why,
        ));
    }
    let dir = state.config.data_dir.join("ota");
    // Private like the rest of the data directory (a file in it is then out of reach too).
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true).mode(crate::store::perms::DIR_MODE);
    builder.create(&dir).await.map_err(ApiError::internal)?;
    let path = dir.join("upload.hbundle");
    let cap = MAX_UPLOAD.min(state.config.limits.upload_bytes);
    if let Err(e) = receive(body, &path, cap).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    let (config, store, updates) = (
        state.config.clone(),
        state.store.clone(),
        state.updates.clone(),
    );
    let p2 = path.clone();
    tokio::task::spawn_blocking(move || {
        updates.start_upload(config.updates.clone(), store, p2, true)
    })
    .await?
    .map_err(install_error)?;
    Ok((StatusCode::ACCEPTED, Json(current_view(&state).await?)))
}

/// Streams the body to `path`, at most `cap` bytes, dropping a stalled sender.
async fn receive(body: Body, path: &PathBuf, cap: u64) -> Result<(), ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("an update bundle is at most {cap} bytes; this is not one"),
        )
    };
    if body.size_hint().lower() > cap {
        return Err(too_large());
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let mut body = body;
    let mut total = 0u64;
    loop {
        let frame = tokio::time::timeout(
            UPLOAD_IDLE,
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)),
        )
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "upload_stalled",
                "the upload stopped sending data; try again",
            )
        })?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            ApiError::bad_request("upload_broken", format!("the upload broke off: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > cap {
            return Err(too_large());
        }
        file.write_all(&data).await.map_err(ApiError::internal)?;
    }
    if total == 0 {
        return Err(ApiError::invalid(
            "empty_upload",
            "the upload is empty; send the bundle file as the request body",
        ));
    }
    file.sync_all().await.map_err(ApiError::internal)?;
    Ok(())
}

/// Reboots into the staged update (it boots on trial and falls back by itself if unhealthy).
#[utoipa::path(post, path = "/api/v1/updates/reboot", tag = "updates",
    responses((status = 202), (status = 401), (status = 403),
        (status = 409, description = "nothing staged"),
        (status = 503, description = "no agent: not an appliance")))]
async fn reboot(_owner: Owner, State(state): State<AppState>) -> Result<StatusCode, ApiError> {
    state.updates.reboot().await.map_err(install_error)?;
    Ok(StatusCode::ACCEPTED)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(check))
        .routes(routes!(settings))
        .routes(routes!(install))
        .routes(routes!(upload))
        .routes(routes!(reboot))
}
