//! The security audit log, for the owner.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};
use crate::store::audit::AuditEntry;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Most entries to return (default 100, at most 1000).
    limit: Option<usize>,
}

/// Security events, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "system", params(AuditQuery),
    responses((status = 200, body = [AuditEntry]), (status = 401), (status = 403)))]
async fn audit(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let store = state.store.clone();
    let entries =
        tokio::task::spawn_blocking(move || store.read(|r| r.audit_entries(limit))).await??;
    Ok(Json(entries))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit))
}
