//! Being reached from outside: the port mapping's state, the owner's choices (automatic or
//! manual port, public name) and the reachability check. Thin handlers over `reach`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Owner;
use super::error::{ErrorBody, from_rejection};
use super::{ApiError, AppState};
use crate::reach::check::{CheckResult, PROBE_ANSWER};
use crate::reach::{ReachError, ReachSettings, ReachView};

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

impl From<ReachError> for ApiError {
    fn from(e: ReachError) -> Self {
        match e {
            ReachError::Invalid { .. } => ApiError::invalid("invalid_reach_setting", e.to_string()),
            ReachError::Store(e) => ApiError::from(e),
        }
    }
}

fn view(state: &AppState) -> ReachView {
    state.reach.view(state.rules.snapshot().remote_access)
}

/// Whether and how friends outside reach this server: the router found, its external
/// address, the mapped port and its lease, warnings, the public address.
#[utoipa::path(get, path = "/api/v1/reach", tag = "network",
    responses((status = 200, body = ReachView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_reach(State(state): State<AppState>, _owner: Owner) -> Json<ReachView> {
    Json(view(&state))
}

/// Automatic port mapping or a port forwarded by hand, and the public name. Takes effect at
/// once (a mapping is removed when the owner switches to a manual port).
#[utoipa::path(put, path = "/api/v1/reach/settings", tag = "network", request_body = ReachSettings,
    responses((status = 200, body = ReachView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_settings(
    State(state): State<AppState>,
    owner: Owner,
    body: JsonBody<ReachSettings>,
) -> Result<Json<ReachView>, ApiError> {
    let Json(next) = body.map_err(from_rejection)?;
    let (reach, store) = (state.reach.clone(), state.store.clone());
    tokio::task::spawn_blocking(move || {
        reach.change(
            &store,
            next,
            &owner.proof,
            Some(owner.viewer.client.addr.to_string()),
            crate::model::clock::now_secs(),
        )
    })
    .await??;
    Ok(Json(view(&state)))
}

/// Checks, from inside the home, that the public address leads back to this server.
#[utoipa::path(post, path = "/api/v1/reach/check", tag = "network",
    responses((status = 200, body = CheckResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn run_check(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<CheckResult>, ApiError> {
    let reach = state.reach.clone();
    let on = state.rules.snapshot().remote_access;
    Ok(Json(
        tokio::task::spawn_blocking(move || reach.check(on)).await?,
    ))
}

/// The reachability check's own request: answers only the one-time token of a check in
/// progress, to anyone the network rules let in.
#[utoipa::path(get, path = "/api/v1/reach/probe/{token}", tag = "network",
    params(("token" = String, Path, description = "the running check's one-time token")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
async fn probe(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if state.reach.probe_matches(&token) {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            PROBE_ANSWER,
        )
            .into_response()
    } else {
        ApiError::not_found().into_response()
    }
}

pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(probe))
}

pub fn owner_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_reach))
        .routes(routes!(put_settings))
        .routes(routes!(run_check))
}
