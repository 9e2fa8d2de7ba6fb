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
use crate::dlna::criteria;
use crate::dlna::description as desc;
use crate::dlna::settings::{self, DlnaError, DlnaStatus, DlnaUpdate};
use crate::dlna::soap::{self, CONNECTION_MANAGER, CONTENT_DIRECTORY, Call, Fault, PropertyFilter};
use crate::dlna::tree::{self, Access, Object, ObjectId};
use crate::net::{ClientInfo, NetClass};
use crate::policy::{self, Actor, Context, DLNA_PROFILE_ID, Presented};
use crate::stream::signed::{self, MediaGrant};

/// Largest SOAP request accepted (real ones are well under 2 KiB).
pub const SOAP_MAX_BYTES: usize = 16 * 1024;
/// Most objects one Browse or Search returns; players page for more.
const MAX_RETURNED: usize = 1000;

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
            crate::now_secs(),
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
            signed::sign(&self.key, &grant)
        )
    }
}

fn arg<'a>(call: &'a Call, name: &str) -> Result<&'a str, Fault> {
    call.arg(name).ok_or(Fault::InvalidArgs)
}

fn ui4(call: &Call, name: &str) -> Result<usize, Fault> {
    let v = arg(call, name)?.trim();
    v.parse::<u32>()
        .map(|n| n as usize)
        .map_err(|_| Fault::InvalidArgs)
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
    let done =
        tokio::task::spawn_blocking(move || content_directory(&st, &actor, &ctx, &call, base))
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

/// SystemUpdateID: changes when a chosen library is rescanned (the end of its last scan).
fn system_update_id(state: &AppState, access: &Access<'_>) -> Result<u32, Fault> {
    let libs = state
        .store
        .read(|rx| rx.libraries())
        .map_err(|_| Fault::ActionFailed)?;
    Ok(libs
        .iter()
        .filter(|l| (access.library)(l))
        .filter_map(|l| l.last_scan)
        .max()
        .unwrap_or(0) as u32)
}

/// Runs one ContentDirectory action as the DLNA profile. Blocks on the database.
fn content_directory(
    state: &AppState,
    actor: &Actor,
    ctx: &Context,
    call: &Call,
    base: String,
) -> Result<Vec<u8>, Fault> {
    let (lib_ok, item_ok) = super::library::access(actor, ctx);
    let access = Access {
        library: &lib_ok,
        item: &item_ok,
    };
    let out = |args: &[(&str, String)]| soap::response(CONTENT_DIRECTORY, &call.action, args);
    match call.action.as_str() {
        "GetSearchCapabilities" => Ok(out(&[("SearchCaps", criteria::SEARCH_CAPABILITIES.into())])),
        "GetSortCapabilities" => Ok(out(&[("SortCaps", criteria::SORT_CAPABILITIES.into())])),
        "GetSystemUpdateID" => Ok(out(&[(
            "Id",
            system_update_id(state, &access)?.to_string(),
        )])),
        "Browse" | "Search" => {
            let browse = call.action == "Browse";
            let id_arg = if browse { "ObjectID" } else { "ContainerID" };
            let id = ObjectId::parse(arg(call, id_arg)?.trim());
            let filter = PropertyFilter::parse(arg(call, "Filter")?);
            let start = ui4(call, "StartingIndex")?;
            let count = ui4(call, "RequestedCount")?;
            let keys = criteria::parse_sort(arg(call, "SortCriteria")?)
                .map_err(|_| Fault::InvalidSortCriteria)?;
            let store = &state.store;
            let mut objects: Vec<Object> = if browse {
                let flag = arg(call, "BrowseFlag")?;
                let Some(id) = id else {
                    return Err(Fault::NoSuchObject);
                };
                match flag {
                    "BrowseMetadata" => {
                        if start != 0 {
                            return Err(Fault::InvalidArgs);
                        }
                        match tree::object(store, &id, &access).map_err(|_| Fault::ActionFailed)? {
                            Some(o) => vec![o],
                            None => return Err(Fault::NoSuchObject),
                        }
                    }
                    "BrowseDirectChildren" => match tree::children(store, &id, &access)
                        .map_err(|_| Fault::ActionFailed)?
                    {
                        Some(c) => c,
                        None if matches!(id, ObjectId::Item(_)) => {
                            // An item has no children; the spec allows an empty answer.
                            match tree::object(store, &id, &access)
                                .map_err(|_| Fault::ActionFailed)?
                            {
                                Some(_) => Vec::new(),
                                None => return Err(Fault::NoSuchObject),
                            }
                        }
                        None => return Err(Fault::NoSuchObject),
                    },
                    _ => return Err(Fault::InvalidArgs),
                }
            } else {
                let crit = criteria::parse(arg(call, "SearchCriteria")?)
                    .map_err(|_| Fault::InvalidSearchCriteria)?;
                let Some(id) = id else {
                    return Err(Fault::NoSuchContainer);
                };
                tree::search(store, &id, &crit, &access)
                    .map_err(|_| Fault::ActionFailed)?
                    .ok_or(Fault::NoSuchContainer)?
            };
            tree::sort(&mut objects, &keys);
            let total = objects.len();
            let take = if count == 0 {
                MAX_RETURNED
            } else {
                count.min(MAX_RETURNED)
            };
            let page: Vec<Object> = objects.into_iter().skip(start).take(take).collect();
            let key = signed::key(store).map_err(|_| Fault::ActionFailed)?;
            let links = MediaLinks {
                base,
                key,
                expires: crate::now_secs() + signed::URL_LIFETIME_SECS,
            };
            let didl = soap::didl(&page, &filter, &links);
            let update = system_update_id(state, &access)?;
            Ok(out(&[
                ("Result", didl),
                ("NumberReturned", page.len().to_string()),
                ("TotalMatches", total.to_string()),
                ("UpdateID", update.to_string()),
            ]))
        }
        _ => Err(Fault::InvalidAction),
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
    let out = |args: &[(&str, String)]| xml(soap::response(CONNECTION_MANAGER, &call.action, args));
    match call.action.as_str() {
        "GetProtocolInfo" => out(&[
            ("Source", crate::dlna::profile::source_protocols()),
            ("Sink", String::new()),
        ]),
        "GetCurrentConnectionIDs" => out(&[("ConnectionIDs", "0".into())]),
        "GetCurrentConnectionInfo" => match call.arg("ConnectionID").map(str::trim) {
            Some("0") => out(&[
                ("RcsID", "-1".into()),
                ("AVTransportID", "-1".into()),
                ("ProtocolInfo", String::new()),
                ("PeerConnectionManager", String::new()),
                ("PeerConnectionID", "-1".into()),
                ("Direction", "Output".into()),
                ("Status", "OK".into()),
            ]),
            Some(_) => fault_response(Fault::InvalidConnectionReference),
            None => fault_response(Fault::InvalidArgs),
        },
        _ => fault_response(Fault::InvalidAction),
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
    let key = signed::key(&state.store)?;
    let grant = MediaGrant {
        user_id: DLNA_PROFILE_ID,
        item_id: id,
        device_id: 0,
        expires: p.exp,
    };
    signed::verify(&key, &grant, &p.sig, crate::now_secs())
        .map_err(|e| ApiError::forbidden("invalid_media_link", e.to_string()))?;
    let Some((actor, ctx)) = dlna_actor(&state, client).await? else {
        return Ok(plain(StatusCode::NOT_FOUND, DLNA_OFF));
    };
    let item = super::library::visible_item(&state, &actor, &ctx, id)?;
    let file =
        super::library::open_item_path(&state, item.folder_id, item.rel_path.clone()).await?;
    let mut resp =
        crate::stream::serve_file(file, &item.content_type, &headers, method == Method::HEAD);
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
