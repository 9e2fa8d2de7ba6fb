//! The device's vital signs for the owner.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use crate::system::SystemStatus;

/// CPU, memory, load, temperatures, uptime and disk usage, with the last hour of samples.
#[utoipa::path(get, path = "/api/v1/system", tag = "system",
    responses((status = 200, body = SystemStatus), (status = 401), (status = 403)))]
async fn system(State(state): State<AppState>) -> Result<Json<SystemStatus>, ApiError> {
    let monitor = state.system.clone();
    let status = tokio::task::spawn_blocking(move || monitor.status()).await?;
    Ok(Json(status))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(system))
}
