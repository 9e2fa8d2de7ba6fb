//! The device's vital signs for the owner.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use crate::system::{History, SystemStatus};

/// CPU, memory, load, temperatures, uptime and disk usage, with the last hour of samples.
#[utoipa::path(get, path = "/api/v1/system", tag = "system",
    responses((status = 200, body = SystemStatus), (status = 401), (status = 403)))]
async fn system(State(state): State<AppState>) -> Result<Json<SystemStatus>, ApiError> {
    let monitor = state.system.clone();
    let status = tokio::task::spawn_blocking(move || monitor.status()).await?;
    Ok(Json(status))
}

/// The last hour of CPU, memory, temperature and disk samples (one every 10 s), for graphs.
#[utoipa::path(get, path = "/api/v1/system/history", tag = "system",
    responses((status = 200, body = History), (status = 401), (status = 403)))]
async fn history(State(state): State<AppState>) -> Json<History> {
    Json(state.system.history())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(system))
        .routes(routes!(history))
}
