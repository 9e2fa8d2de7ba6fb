//! Updates: the owner sees the running version, the channel and what it offers, and asks
//! for a check. Installing needs agent verbs (write a slot, set the trial boot) that are
//! not built yet: those routes answer 501 and say so.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Owner;
use super::error::ApiError;
use crate::ota::service::{self, CheckError, UpdatesView};

/// Current version and slot, channel, last check, the available update and last rollback.
#[utoipa::path(get, path = "/api/v1/updates", tag = "updates",
    responses((status = 200, body = UpdatesView), (status = 401), (status = 403)))]
async fn status(
    _owner: Owner,
    State(state): State<AppState>,
) -> Result<Json<UpdatesView>, ApiError> {
    let (config, store) = (state.config.clone(), state.store.clone());
    let view =
        tokio::task::spawn_blocking(move || service::load_view(&config.updates, &store)).await??;
    Ok(Json(view))
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
    let view = tokio::task::spawn_blocking(move || service::check(&config.updates, &store))
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
    Ok(Json(view))
}

fn no_agent() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "agent_unavailable",
        service::NO_AGENT,
    )
}

/// Downloads and installs the available update (needs the agent: 501 in this build).
#[utoipa::path(post, path = "/api/v1/updates/install", tag = "updates",
    responses((status = 401), (status = 403), (status = 501, description = "no agent in this build")))]
async fn install(_owner: Owner) -> ApiError {
    no_agent()
}

/// Installs an uploaded bundle file (offline update; needs the agent: 501 in this build).
#[utoipa::path(post, path = "/api/v1/updates/upload", tag = "updates",
    responses((status = 401), (status = 403), (status = 501, description = "no agent in this build")))]
async fn upload(_owner: Owner) -> ApiError {
    no_agent()
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(check))
        .routes(routes!(install))
        .routes(routes!(upload))
}
