//! Signed-in devices: the owner sees and revokes all, others their own.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Viewer;
use super::{ApiError, AppState};

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    id: u64,
    user_id: u64,
    name: String,
    platform: String,
    client_id: String,
    first_seen: u64,
    last_seen: u64,
    last_address: String,
    /// This is the device making the request.
    current: bool,
}

/// Devices signed in to this server.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices",
    responses((status = 200, body = [DeviceView]), (status = 401, body = super::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Json<Vec<DeviceView>>, ApiError> {
    let identity = state.identity.clone();
    let (actor, ctx) = (viewer.actor.clone(), viewer.ctx);
    let devices =
        tokio::task::spawn_blocking(move || identity.devices_visible_to(&actor, &ctx)).await??;
    Ok(Json(
        devices
            .into_iter()
            .map(|d| DeviceView {
                current: d.id == viewer.device_id,
                id: d.id,
                user_id: d.user_id,
                name: d.name,
                platform: d.platform,
                client_id: d.client_id,
                first_seen: d.first_seen,
                last_seen: d.last_seen,
                last_address: d.last_address,
            })
            .collect(),
    ))
}

/// Revokes a device: its token stops working on its very next request.
#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = u64, Path, description = "device id")),
    responses((status = 204), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let identity = state.identity.clone();
    tokio::task::spawn_blocking(move || {
        identity.revoke_device(&viewer.actor, &viewer.ctx, id, &viewer.client)
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(revoke))
}
