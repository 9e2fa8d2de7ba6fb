//! Security-sensitive: DLNA over HTTP. Two faces:
//! - the owner's settings, `GET/PUT /api/v1/dlna` (JSON, owner only);
//! - what players use, under `/dlna/`: the device and service descriptions, the SOAP
//!   control endpoints and the media bytes. Players have no accounts: every request there
//!   must come from the LAN (or the device itself), DLNA must be on, and what it sees is the
//!   DLNA profile, decided by `policy` like any user's view.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Owner;
use super::error::{ErrorBody, from_rejection};
use super::{ApiError, AppState};
use crate::dlna::control;
use crate::dlna::description as desc;
use crate::dlna::settings::{self, DlnaError, DlnaStatus, DlnaUpdate};
use crate::dlna::soap::{self, CONNECTION_MANAGER, CONTENT_DIRECTORY, Call, Fault};
use crate::dlna::tree::Access;
use crate::net::{ClientInfo, NetClass};
use crate::policy::{self, Actor, Context, DLNA_PROFILE_ID, Presented};
use crate::stream::access::{self as door, Door, Link, OpenError, Part, Viewer as Holder};
use crate::stream::signed::{self, LinkKind, MediaGrant};

/// Largest SOAP request accepted (real ones are well under 2 KiB).
pub const SOAP_MAX_BYTES: usize = 16 * 1024;

impl From<DlnaError> for ApiError {
    fn from(e: DlnaError) -> Self {
        match e {
            DlnaError::UnknownLibrary(_) | DlnaError::TooMany => {
                ApiError::invalid("invalid_dlna_setting", e.to_string())
            }
            DlnaError::Store(s) => ApiError::from(s),
            DlnaError::Internal(m) => ApiError::internal(m),
        }
    }
}

fn status_blocking(state: &AppState) -> Result<DlnaStatus, DlnaError> {
    settings::status(
        &state.store,
        &state.rules,
        &state.identity,
        state.config.discovery.ssdp,
    )
}

/// DLNA on/off, its libraries, whether it is active now, and the warning for the owner.
#[utoipa::path(get, path = "/api/v1/dlna", tag = "dlna",
    responses((status = 200, body = DlnaStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_dlna(
    _owner: Owner,
    State(state): State<AppState>,
) -> Result<Json<DlnaStatus>, ApiError> {
    let s = tokio::task::spawn_blocking(move || status_blocking(&state)).await??;
    Ok(Json(s))
}

/// Turns DLNA on or off and chooses its libraries. Turning it on in home mode is allowed:
/// the owner has seen the warning.
#[utoipa::path(put, path = "/api/v1/dlna", tag = "dlna", request_body = DlnaUpdate,
    responses((status = 200, body = DlnaStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_dlna(
    owner: Owner,
    State(state): State<AppState>,
    body: Result<Json<DlnaUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<DlnaStatus>, ApiError> {
    let Json(update) = body.map_err(from_rejection)?;
    let st = state.clone();
    let s = tokio::task::spawn_blocking(move || {
        settings::change(
            &st.store,
            &st.rules,
            &st.identity,
            &owner.proof,
            &update,
            crate::model::clock::now_secs(),
        )?;
        status_blocking(&st)
    })
    .await??;
    state.dlna.changed.notify_one();
    Ok(Json(s))
}

pub fn owner_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_dlna, put_dlna))
}

/// The routes players use. Not part of the OpenAPI document: they speak UPnP, not JSON.
pub fn player_router(state: AppState) -> axum::Router {
    use axum::routing::{any, get, post};
    axum::Router::new()
        .route(desc::DESCRIPTION_PATH, get(device_description))
        .route(desc::CD_SCPD_PATH, get(cd_scpd))
        .route(desc::CM_SCPD_PATH, get(cm_scpd))
        .route(desc::CD_CONTROL_PATH, post(cd_control))
        .route(desc::CM_CONTROL_PATH, post(cm_control))
        .route(desc::CD_EVENT_PATH, any(events))
        .route(desc::CM_EVENT_PATH, any(events))
        .route("/dlna/media/{id}", get(media))
        .layer(DefaultBodyLimit::max(SOAP_MAX_BYTES))
        .route_layer(middleware::from_fn_with_state(state.clone(), lan_only))
        .with_state(state)
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Players on the LAN (or the device itself) only, whatever the remote-access setting says.
async fn lan_only(req: Request, next: Next) -> Response {
    let class = req.extensions().get::<ClientInfo>().map(|c| c.class);
    match class {
        Some(NetClass::Lan | NetClass::Local) => next.run(req).await,
        _ => plain(
            StatusCode::FORBIDDEN,
            "DLNA only answers players on the home network.\n",
        ),
    }
}

/// The DLNA profile as an actor, with the context of this request; `None` while DLNA is
/// off (or the client is not on the LAN).
async fn dlna_actor(
    state: &AppState,
    client: ClientInfo,
) -> Result<Option<(Actor, Context)>, ApiError> {
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let presence = settings::presence(&st.store, &st.rules, &st.identity)?;
        let ctx = st
            .identity
            .policy_context(client.class, st.config.utc_offset_minutes)
            .map_err(|e| DlnaError::Internal(e.to_string()))?;
        let presented = Presented::Dlna {
            restrictions: settings::profile_restrictions(&presence.settings),
            enabled: presence.active,
        };
        Ok::<_, DlnaError>(policy::admit(presented, &ctx).ok().map(|a| (a, ctx)))
    })
    .await?
    .map_err(ApiError::from)
}

fn xml(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/xml; charset=\"utf-8\""),
            ),
            (header::SERVER, server_value()),
        ],
        body,
    )
        .into_response()
}

fn server_value() -> HeaderValue {
    HeaderValue::from_str(&crate::dlna::server_header())
        .unwrap_or(HeaderValue::from_static("Hearth"))
}

const DLNA_OFF: &str = "DLNA is turned off on this server.\n";

async fn device_description(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
) -> Result<Response, ApiError> {
    if dlna_actor(&state, client).await?.is_none() {
        return Ok(plain(StatusCode::NOT_FOUND, DLNA_OFF));
    }
    let identity = state.identity.clone();
    let name = tokio::task::spawn_blocking(move || identity.server_name()).await??;
    Ok(xml(desc::device(&name, &state.dlna.uuid)))
}

async fn cd_scpd() -> Response {
    xml(desc::content_directory())
}

async fn cm_scpd() -> Response {
    xml(desc::connection_manager())
}

/// Eventing (GENA) is not offered: players that subscribe are told so and browse anyway.
async fn events() -> Response {
    plain(
        StatusCode::NOT_IMPLEMENTED,
        "This server does not send UPnP events; browse to see changes.\n",
    )
}

fn fault_response(f: Fault) -> Response {
    let mut r = xml(soap::fault(f));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

/// Why a control request was not read.
enum Unread {
    TooLarge,
    Fault(Fault),
}

impl Unread {
    fn response(self) -> Response {
        match self {
            Unread::TooLarge => plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.\n",
            ),
            Unread::Fault(f) => fault_response(f),
        }
    }
}

/// Reads the body and the SOAP envelope; checks the call is for `service` and that the
/// SOAPACTION header, if sent, names the same action.
fn read_call(
    service: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Call, Unread> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Unread::TooLarge
        } else {
            Unread::Fault(Fault::InvalidAction)
        }
    })?;
    let call = soap::parse_call(&body).map_err(Unread::Fault)?;
    if call.service != service {
        return Err(Unread::Fault(Fault::InvalidAction));
    }
    if let Some(h) = headers.get("soapaction").and_then(|v| v.to_str().ok()) {
        let h = h.trim().trim_matches('"');
        if h != format!("{service}#{}", call.action) {
            return Err(Unread::Fault(Fault::InvalidAction));
        }
    }
    Ok(call)
}

/// The base URL players reach us at (from `Host`; they resolved it themselves).
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        .map(|a| a.to_string())
        .unwrap_or_else(|| "hearth.local".into());
    format!("http://{host}")
}

struct MediaLinks {
    base: String,
    key: Vec<u8>,
    expires: u64,
}

impl soap::Links for MediaLinks {
    fn media_url(&self, item_id: u64) -> String {
        let grant = MediaGrant {
            user_id: DLNA_PROFILE_ID,
            item_id,
            device_id: 0,
            expires: self.expires,
        };
        format!(
            "{}/dlna/media/{item_id}?exp={}&sig={}",
            self.base,
            self.expires,
            signed::sign(&self.key, LinkKind::Dlna, &grant)
        )
    }
}

async fn cd_control(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let call = match read_call(CONTENT_DIRECTORY, &headers, body) {
        Ok(c) => c,
        Err(u) => return u.response(),
    };
    let (actor, ctx) = match dlna_actor(&state, client).await {
        Ok(Some(a)) => a,
        Ok(None) => return plain(StatusCode::NOT_FOUND, DLNA_OFF),
        Err(e) => return e.into_response(),
    };
    let base = base_url(&headers);
    let st = state.clone();
    let done = tokio::task::spawn_blocking(move || {
        let (lib_ok, item_ok) = super::library::access(&actor, &ctx);
        let access = Access {
            library: &lib_ok,
            item: &item_ok,
        };
        let links = MediaLinks {
            base,
            key: signed::key(&st.store).map_err(|_| Fault::ActionFailed)?,
            expires: crate::model::clock::now_secs() + signed::URL_LIFETIME_SECS,
        };
        control::content_directory(&st.store, &access, &links, &call)
    })
    .await;
    match done {
        Ok(Ok(body)) => xml(body),
        Ok(Err(f)) => fault_response(f),
        Err(e) => {
            tracing::error!(error = %e, "a ContentDirectory action failed");
            fault_response(Fault::ActionFailed)
        }
    }
}

async fn cm_control(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let call = match read_call(CONNECTION_MANAGER, &headers, body) {
        Ok(c) => c,
        Err(u) => return u.response(),
    };
    match dlna_actor(&state, client).await {
        Ok(Some(_)) => {}
        Ok(None) => return plain(StatusCode::NOT_FOUND, DLNA_OFF),
        Err(e) => return e.into_response(),
    }
    match control::connection_manager(&call) {
        Ok(body) => xml(body),
        Err(f) => fault_response(f),
    }
}

#[derive(Deserialize)]
struct MediaParams {
    exp: u64,
    sig: String,
}

/// An item's bytes for a player: ranges, `HEAD`, `ETag`, plus the DLNA headers.
async fn media(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    method: Method,
    Path(id): Path<u64>,
    Query(p): Query<MediaParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Who a DLNA player is now (the DLNA profile, on or off) is DLNA's to say; the link,
    // policy and the file are the one door's (`stream::access::open_for`).
    let st = state.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let presence = settings::presence(&st.store, &st.rules, &st.identity)?;
        let viewer = Holder::Dlna {
            restrictions: settings::profile_restrictions(&presence.settings),
            enabled: presence.active,
        };
        let door = Door {
            store: &st.store,
            identity: &st.identity,
            rules: &st.rules,
            utc_offset_minutes: st.config.utc_offset_minutes,
        };
        let link = Link {
            kind: LinkKind::Dlna,
            user_id: DLNA_PROFILE_ID,
            device_id: 0,
            expires: p.exp,
            sig: &p.sig,
        };
        let now = crate::model::clock::now_secs();
        Ok::<_, DlnaError>(door::open_for(
            door,
            client,
            &viewer,
            id,
            &link,
            now,
            Part::Media,
        ))
    })
    .await?
    .map_err(ApiError::from)?;
    let door::Opened { item, file, .. } = match opened {
        Ok(o) => o,
        Err(OpenError::DlnaOff) => return Ok(plain(StatusCode::NOT_FOUND, DLNA_OFF)),
        Err(e) => return Err(super::library::open_error(e, LinkKind::Dlna)),
    };
    let mut resp =
        crate::stream::serve_file(file, &item.content_type, &headers, method == Method::HEAD)
            .map_err(ApiError::internal)?;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&crate::dlna::profile::dlna_features(&item)) {
        h.insert("contentfeatures.dlna.org", v);
    }
    let mode = if item.content_type.starts_with("image/") {
        "Interactive"
    } else {
        "Streaming"
    };
    h.insert("transfermode.dlna.org", HeaderValue::from_static(mode));
    h.insert(header::SERVER, server_value());
    Ok(resp)
}
