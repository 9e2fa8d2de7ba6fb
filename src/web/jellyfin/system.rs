//! Who the server is, and signing in: public info (no secrets), `AuthenticateByName` through
//! `identity::login` (the web app's throttles, two-factor rule and audit), the user objects.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{JfViewer, check_user, client_auth, server_id};
use crate::compat::jellyfin::ids::JfId;
use crate::compat::jellyfin::query::field;
use crate::compat::jellyfin::{API_VERSION, PRODUCT_NAME, dto};
use crate::net::ClientInfo;
use crate::policy;
use crate::web::{ApiError, AppState};

/// The address apps should use, from the request's own `Host` (only if it is a plain
/// authority; it is the client's own word, repeated back to it).
fn local_address(headers: &HeaderMap, secure: bool) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let auth = host.parse::<axum::http::uri::Authority>().ok()?;
    Some(format!(
        "{}://{auth}",
        if secure { "https" } else { "http" }
    ))
}

fn public_fields(state: &AppState, name: String, claimed: bool, address: Option<String>) -> Value {
    json!({
        "LocalAddress": address,
        "ServerName": name,
        "Version": API_VERSION,
        "ProductName": PRODUCT_NAME,
        "OperatingSystem": "",
        "Id": server_id(state),
        "StartupWizardCompleted": claimed,
    })
}

/// Name, id and version: what an app shows before anyone signs in. Nothing else.
pub(super) async fn public_info(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let identity = state.identity.clone();
    let (name, claimed) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::StoreError>((identity.server_name()?, identity.is_claimed()?))
    })
    .await??;
    let address = local_address(&headers, client.secure);
    Ok(Json(public_fields(&state, name, claimed, address)))
}

/// The same for a signed-in app, with the few more fields apps read.
pub(super) async fn info(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let identity = state.identity.clone();
    let name = tokio::task::spawn_blocking(move || identity.server_name()).await??;
    let mut v = public_fields(
        &state,
        name,
        true,
        local_address(&headers, viewer.client.secure),
    );
    if let Some(o) = v.as_object_mut() {
        for (k, val) in [
            ("OperatingSystemDisplayName", json!("")),
            ("HasPendingRestart", json!(false)),
            ("IsShuttingDown", json!(false)),
            ("SupportsLibraryMonitor", json!(true)),
            ("CanSelfRestart", json!(false)),
            ("CanLaunchWebBrowser", json!(false)),
            ("HasUpdateAvailable", json!(false)),
            ("HearthVersion", json!(crate::model::build::version())),
        ] {
            o.insert(k.into(), val);
        }
    }
    Ok(Json(v))
}

pub(super) async fn ping() -> Json<&'static str> {
    Json(PRODUCT_NAME)
}

/// Hearth never lists its accounts to someone who has not signed in.
pub(super) async fn public_users() -> Json<Value> {
    Json(json!([]))
}

/// Quick Connect is not served yet: apps then offer the password form only.
pub(super) async fn quick_connect_enabled() -> Json<bool> {
    Json(false)
}

pub(super) async fn branding() -> Json<Value> {
    Json(json!({"LoginDisclaimer": "", "CustomCss": "", "SplashscreenEnabled": false}))
}

/// Signs in with name and password: `identity::login`, exactly as `/api/v1/auth/login`
/// (throttled per address and account, the attempt reserved before the slow check; an account
/// with two-factor sign-in is refused here, since Jellyfin's form has no place for the code;
/// audited). The app becomes a device named after what it said it is.
pub(super) async fn authenticate_by_name(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(crate::web::error::from_rejection)?;
    let text = |name: &str| {
        field(&body, name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let username = text("Username").ok_or_else(|| {
        ApiError::invalid("missing_username", "Send the Username to sign in with.")
    })?;
    let password = text("Pw").or_else(|| text("Password")).unwrap_or_default();
    let app = client_auth(&headers, &uri);
    let signed = state
        .identity
        .login(&username, password, None, app.device_info(), client, None)
        .await?;
    let sid = server_id(&state);
    // The new token, resolved and admitted as every later request of this app will be.
    let viewer = crate::web::auth::viewer_for_token(&state, client, signed.token.clone()).await?;
    let user = user_dto(&state, &viewer);
    let body = json!({
        "User": user,
        "SessionInfo": {
            "Id": format!("{:032x}", signed.device.id),
            "UserId": JfId::user(signed.user.id).to_string(),
            "UserName": signed.user.username,
            "Client": app.client,
            "DeviceName": app.device,
            "DeviceId": app.device_id,
            "ApplicationVersion": app.version,
            "IsActive": true,
            "SupportsMediaControl": false,
            "SupportsRemoteControl": false,
            "PlayableMediaTypes": [],
            "ServerId": sid,
        },
        "AccessToken": signed.token,
        "ServerId": sid,
    });
    Ok(Json(body).into_response())
}

fn user_dto(state: &AppState, viewer: &crate::web::auth::Viewer) -> Value {
    let is_admin = policy::require_owner(&viewer.actor).is_ok();
    dto::user(&viewer.user, &server_id(state), is_admin)
}

/// The profile this device acts as.
pub(super) async fn me(State(state): State<AppState>, JfViewer(viewer): JfViewer) -> Json<Value> {
    Json(user_dto(&state, &viewer))
}

pub(super) async fn user(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_user(&viewer, &user_id)?;
    Ok(Json(user_dto(&state, &viewer)))
}

/// Display settings are the app's own; Hearth keeps none and answers the defaults.
pub(super) async fn display_preferences(
    JfViewer(_viewer): JfViewer,
    Path(id): Path<String>,
) -> Json<Value> {
    let id: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    Json(json!({
        "Id": id,
        "SortBy": "SortName",
        "SortOrder": "Ascending",
        "RememberIndexing": false,
        "PrimaryImageHeight": 250,
        "PrimaryImageWidth": 250,
        "CustomPrefs": {},
        "ScrollDirection": "Horizontal",
        "ShowBackdrop": true,
        "RememberSorting": false,
        "ShowSidebar": false,
        "Client": "emby",
    }))
}

/// Other sessions (remote control) are not served: none are listed.
pub(super) async fn sessions(JfViewer(_viewer): JfViewer) -> Json<Value> {
    Json(json!([]))
}
