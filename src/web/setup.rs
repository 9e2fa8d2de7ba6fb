//! The claim of a new device: its status, and the one-time claim.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::signed_in_cookies;
use super::error::from_rejection;
use super::{ApiError, AppState};
use crate::identity::{ClaimRequest, DeviceInfo};
use crate::net::ClientInfo;

#[derive(Serialize, utoipa::ToSchema)]
pub struct SetupStatus {
    /// Whether an owner has claimed this device.
    claimed: bool,
    server_name: String,
    version: &'static str,
}

/// Whether the device is claimed, and its name.
#[utoipa::path(get, path = "/api/v1/setup", tag = "setup",
    responses((status = 200, body = SetupStatus)))]
async fn status(State(state): State<AppState>) -> Result<Json<SetupStatus>, ApiError> {
    let identity = state.identity.clone();
    let (claimed, server_name) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::StoreError>((identity.is_claimed()?, identity.server_name()?))
    })
    .await??;
    Ok(Json(SetupStatus {
        claimed,
        server_name,
        version: crate::model::build::version(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerInput {
    username: String,
    password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimInput {
    /// The code printed on the device's console, e.g. `ACDE-FGHJ-KMNP`.
    setup_code: String,
    server_name: String,
    owner: OwnerInput,
    #[serde(default)]
    device: DeviceInfo,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: u64,
    pub username: String,
    pub role: crate::store::users::Role,
}

impl From<&crate::store::users::UserRecord> for UserView {
    fn from(u: &crate::store::users::UserRecord) -> Self {
        UserView {
            id: u.id,
            username: u.username.clone(),
            role: u.role,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedInView {
    /// Bearer token for this device; shown once. Browsers also get it as a cookie.
    pub token: String,
    pub user: UserView,
    pub device_id: u64,
}

/// Claims an unclaimed device: creates the owner, names the server and signs this client in.
/// Only from the home network or the device itself, and only with the setup code.
#[utoipa::path(post, path = "/api/v1/setup/claim", tag = "setup", request_body = ClaimInput,
    responses((status = 201, body = SignedInView), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody),
        (status = 429, body = super::error::ErrorBody)))]
async fn claim(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientInfo>,
    body: Result<Json<ClaimInput>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let signed = state
        .identity
        .claim(
            ClaimRequest {
                setup_code: input.setup_code,
                server_name: input.server_name,
                username: input.owner.username,
                password: input.owner.password,
                device: input.device,
            },
            client,
        )
        .await?;
    let cookies = signed_in_cookies(&signed, client.secure);
    let body = SignedInView {
        token: signed.token,
        user: UserView::from(&signed.user),
        device_id: signed.device.id,
    };
    Ok((StatusCode::CREATED, cookies, Json(body)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckCodeInput {
    setup_code: String,
}

/// Checks a setup code without claiming, so the wizard can say at once that a code is
/// wrong. Throttled together with claims.
#[utoipa::path(post, path = "/api/v1/setup/check-code", tag = "setup", request_body = CheckCodeInput,
    responses((status = 204), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)))]
async fn check_code(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientInfo>,
    body: Result<Json<CheckCodeInput>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    state.identity.check_code(&input.setup_code, client)?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(claim))
        .routes(routes!(check_code))
}
