//! Signing in and out, and who am I.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Viewer, clear_cookie, cookie_of, signed_in_cookies};
use super::error::from_rejection;
use super::setup::{SignedInView, UserView};
use super::{ApiError, AppState};
use crate::identity::DeviceInfo;
use crate::net::ClientInfo;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    username: String,
    password: String,
    /// Two-factor code, when the account has it turned on.
    #[serde(default)]
    totp: Option<String>,
    #[serde(default)]
    device: DeviceInfo,
}

/// Signs in with username and password; the answer is the same for an unknown user and a
/// wrong password. Repeated failures are slowed down (429 with Retry-After).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginInput,
    responses((status = 200, body = SignedInView), (status = 401, body = super::error::ErrorBody),
        (status = 429, body = super::error::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientInfo>,
    headers: axum::http::HeaderMap,
    body: Result<Json<LoginInput>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let known = cookie_of(&headers, crate::identity::known::KNOWN_COOKIE);
    let signed = state
        .identity
        .login(
            &input.username,
            input.password,
            input.totp,
            input.device,
            client,
            known.as_deref(),
        )
        .await?;
    let cookies = signed_in_cookies(&signed, client.secure);
    let body = SignedInView {
        token: signed.token,
        user: UserView::from(&signed.user),
        device_id: signed.device.id,
    };
    Ok((cookies, Json(body)).into_response())
}

/// Ends this device's session; its token stops working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = super::error::ErrorBody)))]
async fn logout(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ApiError> {
    let identity = state.identity.clone();
    let client = viewer.client;
    tokio::task::spawn_blocking(move || identity.logout(&viewer.session, &viewer.client)).await??;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_cookie(client.secure))],
    )
        .into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    user: UserView,
    device_id: u64,
    /// How this request reached the server: `local`, `lan` or `remote`.
    network: crate::net::NetClass,
    server_name: String,
    /// What this user may see (empty restrictions for the owner).
    restrictions: crate::policy::Restrictions,
    /// This request came over TLS.
    secure: bool,
    /// Where HTTPS answers, so apps on a plain connection can offer the secure address
    /// (`null` when secure connections are off or unavailable).
    https_port: Option<u16>,
}

/// The signed-in user and this device.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = super::error::ErrorBody)))]
async fn me(State(state): State<AppState>, viewer: Viewer) -> Result<Json<Me>, ApiError> {
    let identity = state.identity.clone();
    let server_name = tokio::task::spawn_blocking(move || identity.server_name()).await??;
    Ok(Json(Me {
        user: UserView::from(&viewer.user),
        device_id: viewer.device_id,
        network: viewer.client.class,
        server_name,
        restrictions: viewer.user.restrictions.clone(),
        secure: viewer.client.secure,
        https_port: match state.rules.snapshot().secure_connections {
            crate::net::rules::SecureConnections::Disabled => None,
            _ => state.rules.https_port(),
        },
    }))
}

pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login))
}

pub fn signed_in_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(me))
}
