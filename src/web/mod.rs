//! HTTP: one router per feature, merged into groups by the security policy each needs.
//!
//! - public: health, the OpenAPI document, setup status and claim, sign-in, UI assets;
//! - signed in: any user's own things (me, own devices, sign-out, watch state);
//! - admitted: browsing, also for networks the owner allows without sign-in;
//! - owner: everything that changes or reveals the device's state.
//!
//! Every request first passes [`client_info`] (who is this, from where) and gets the
//! security headers; handlers stay thin and call into the domain modules.

mod account;
mod audit;
pub mod auth;
mod backup;
mod devices;
mod disks;
mod dlna;
pub mod error;
mod health;
mod jellyfin;
mod library;
mod network;
mod parents;
pub mod picture;
pub mod playback;
mod privacy;
mod reach;
mod setup;
pub mod state;
mod system;
mod ui;
mod updates;
mod users;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;
pub use state::AppState;

use crate::net::ConnInfo;
use crate::net::rules::{RequestFacts, SecureConnections, Verdict};

#[derive(OpenApi)]
#[openapi(
    info(title = "Hearth", description = "The private media appliance's API."),
    tags(
        (name = "system", description = "Health and device status"),
        (name = "setup", description = "Claiming a new device"),
        (name = "auth", description = "Signing in and out"),
        (name = "devices", description = "Signed-in devices"),
        (name = "disks", description = "Disks, mounting and ejecting (appliance only)"),
        (name = "users", description = "The household: profiles, guest, friends, invites"),
        (name = "network", description = "Network rules and secure connections"),
        (name = "updates", description = "Over-the-air updates"),
        (name = "library", description = "Libraries, items, search and streaming"),
        (name = "parents", description = "Rating names, restriction previews and the owner's overrides of item facts"),
        (name = "dlna", description = "DLNA/UPnP: which libraries players on the LAN may browse"),
        (name = "backup", description = "Encrypted backups: downloads, the schedule, restoring"),
    )
)]
struct ApiDoc;

/// Content-Security-Policy for every answer: our own scripts and styles only, nothing inline.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Builds the whole application.
pub fn app(state: AppState) -> Router {
    let (router, mut openapi) = api(state.clone()).split_for_parts();
    document_errors(&mut openapi);
    let openapi_json = openapi.to_pretty_json().unwrap_or_else(|_| "{}".into());
    let timeout = Duration::from_secs(state.config.limits.request_timeout_secs);
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], openapi_json)
            }),
        )
        .merge(ui::router())
        .merge(dlna::player_router(state.clone()))
        .fallback({
            let jf = jellyfin::router(state.clone());
            move |req: Request| jellyfin::dispatch(jf.clone(), req)
        })
        .layer(DefaultBodyLimit::max(state.config.limits.body_bytes))
        .layer(middleware::from_fn_with_state(timeout, request_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), client_info))
        .layer(middleware::from_fn(api_error_shape))
        .layer(middleware::map_response(security_headers))
        .layer(
            TraceLayer::new_for_http()
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                )
                .make_span_with(|req: &Request| {
                let peer = req
                    .extensions()
                    .get::<ConnInfo>()
                    .map(|c| c.peer.ip().to_string())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), client = %peer)
            }),
        )
}

/// Every operation can answer a 4xx with the error shape (signed out, refused by a network
/// rule, throttled, body too large, …) even where its handler lists only its own errors:
/// say so in the document with a `4XX` answer of `ErrorBody`, so clients and the API
/// fuzzer can hold every error to that shape.
pub fn document_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = ResponseBuilder::new()
        .description("An error: `{\"error\": {\"code\", \"message\"}}`")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    for item in openapi.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
        ];
        for op in ops.into_iter().flatten() {
            op.responses
                .responses
                .entry("4XX".into())
                .or_insert_with(|| RefOr::T(error.clone()));
        }
    }
    let components = openapi.components.get_or_insert_with(Default::default);
    allow_flattened_extras(&mut components.schemas);
    components
        .schemas
        .entry("ErrorBody".into())
        .or_insert_with(<error::ErrorBody as utoipa::PartialSchema>::schema);
    components
        .schemas
        .entry("ErrorDetail".into())
        .or_insert_with(<error::ErrorDetail as utoipa::PartialSchema>::schema);
}

/// A view that `#[serde(flatten)]`s a struct with `deny_unknown_fields` (NetworkView over
/// NetSettings) becomes `allOf: [NetSettings, {its own fields}]`, and NetSettings' own
/// `additionalProperties: false` then forbids the view's other fields: no real answer could
/// match. A schema that is part of an `allOf` may not forbid extra properties.
fn allow_flattened_extras(
    schemas: &mut std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    >,
) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    let mut parts = Vec::new();
    for schema in schemas.values_mut() {
        if let RefOr::T(Schema::AllOf(all)) = schema {
            for item in &mut all.items {
                match item {
                    RefOr::Ref(r) => parts.push(
                        r.ref_location
                            .trim_start_matches("#/components/schemas/")
                            .to_owned(),
                    ),
                    RefOr::T(Schema::Object(o)) => o.additional_properties = None,
                    RefOr::T(_) => {}
                }
            }
        }
    }
    for name in parts {
        if let Some(RefOr::T(Schema::Object(o))) = schemas.get_mut(&name) {
            o.additional_properties = None;
        }
    }
}

/// The API routes and their OpenAPI description, grouped by policy.
pub fn api(state: AppState) -> OpenApiRouter {
    let public = OpenApiRouter::new()
        .merge(health::router())
        .merge(setup::router())
        .merge(backup::setup_router())
        .merge(account::public_router())
        .merge(users::public_router())
        .merge(network::public_router())
        .merge(reach::public_router())
        .merge(library::media_router())
        .merge(playback::media_router());
    let signed_in = OpenApiRouter::new()
        .merge(account::signed_in_router())
        .merge(devices::router())
        .merge(users::signed_in_router())
        .merge(library::signed_in_router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::signed_in,
        ));
    // Browsing: signed-in devices, and networks the owner allows without sign-in.
    let admitted = OpenApiRouter::new()
        .merge(library::admitted_router())
        .merge(playback::admitted_router())
        .merge(picture::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::admitted,
        ));
    let owner = OpenApiRouter::new()
        .merge(system::router())
        .merge(privacy::router())
        .merge(audit::router())
        .merge(disks::router())
        .merge(users::owner_router())
        .merge(parents::owner_router())
        .merge(network::owner_router())
        .merge(reach::owner_router())
        .merge(updates::router())
        .merge(library::owner_router())
        .merge(dlna::owner_router())
        .merge(backup::owner_router())
        .merge(playback::owner_router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::owner_only,
        ));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public)
        .merge(signed_in)
        .merge(admitted)
        .merge(owner)
        .with_state(state)
}

/// Answers 408 when a request takes longer than the configured limit. A bundle upload is
/// exempt: it can be large on a slow link, and drops a sender that stalls on its own.
async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    // Restoring reads and checks the whole uploaded backup (and Argon2id) before answering.
    let path = req.uri().path();
    if path == updates::UPLOAD_PATH
        || path == backup::SETUP_RESTORE_PATH
        || path == backup::OWNER_RESTORE_PATH
        || path == backup::SETUP_FIND_PATH
        || path == backup::SETUP_RESTORE_FOUND_PATH
    {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

/// Longest plain-text rejection kept as an error message.
const MAX_REJECTION_TEXT: usize = 300;

/// Every error answer under `/api/` carries the JSON error shape, including the ones our
/// handlers never see: axum's own path and query rejections, 405, the 408 of the request
/// timeout. Answers that already are JSON pass untouched.
async fn api_error_shape(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    let status = resp.status();
    if !api || status.as_u16() < 400 {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => ("bad_request", "The request is not valid"),
        StatusCode::NOT_FOUND => ("not_found", "There is nothing here."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "This address does not take that method; the Allow header lists the ones it takes.",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "The request took too long and was stopped. Try again.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "The request body is too large."),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "Send the request body as JSON with Content-Type: application/json.",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ("invalid_input", "The request is not valid"),
        StatusCode::RANGE_NOT_SATISFIABLE => (
            "range_not_satisfiable",
            "The requested byte range is outside the file.",
        ),
        s if s.is_server_error() => (
            "internal_error",
            "Something went wrong inside Hearth. The details are in the device log.",
        ),
        _ => ("request_refused", "The request was refused"),
    };
    // axum's rejection texts say what was wrong with the path or query ("Cannot parse
    // `abc` to a `u64`"); they name no internals, so pass them on for 400/422.
    let message = if matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
    ) && !text.is_empty()
    {
        let text: String = text.chars().take(MAX_REJECTION_TEXT).collect();
        format!("{message}: {text}")
    } else if message.ends_with('.') {
        message.to_owned()
    } else {
        format!("{message}.")
    };
    let body = serde_json::to_vec(&error::ErrorBody {
        error: error::ErrorDetail {
            code: code.to_owned(),
            message,
        },
    })
    .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Adds the security headers to every answer (unless a handler set its own).
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    resp
}

/// Works out who the client is (through trusted proxies only), applies the owner's network
/// rules, and puts a [`crate::net::ClientInfo`] on the request for everything after it.
async fn client_info(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(conn) = req.extensions().get::<ConnInfo>().copied() else {
        // Only our accept loop builds requests; anything else is a programming error, and
        // treating it as remote is the safe side.
        return ApiError::forbidden("no_client", "The client address is unknown.").into_response();
    };
    let info = state
        .rules
        .client(conn.peer.ip(), conn.secure, req.headers());
    let wants_page = matches!(*req.method(), Method::GET | Method::HEAD)
        && req
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("text/html")));
    let facts = RequestFacts {
        peer: conn.peer.ip(),
        // The TLS of this connection, or of a trusted proxy in front of it.
        secure: info.secure,
        wants_page,
        // DLNA players cannot do HTTPS with the device's own CA; their routes answer only
        // the LAN (see `dlna::lan_only`), so they stay plain whatever the rule says.
        plain_http_ok: matches!(req.uri().path(), "/api/v1/health" | "/api/v1/tls/crl")
            || req.uri().path().starts_with("/dlna/"),
    };
    match state.rules.check(&info, &facts) {
        Verdict::Allow => {}
        Verdict::Refuse { code, message } => {
            return ApiError::forbidden(code, message).into_response();
        }
        Verdict::RedirectToHttps => {
            return redirect_to_https(&req, state.rules.https_port(), own_names(&state, &conn));
        }
    }
    if let Some(refusal) = cookie_change_from_elsewhere(&req, &state, &conn, &info) {
        return refusal;
    }
    req.extensions_mut().insert(info);
    let mut resp = next.run(req).await;
    // Read after the handler, so the answer to the change that requires HTTPS carries it.
    let hsts =
        info.secure && state.rules.snapshot().secure_connections == SecureConnections::Required;
    if hsts {
        resp.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

/// What the device calls itself, for this connection (see [`crate::net::origin`]).
fn own_names(state: &AppState, conn: &ConnInfo) -> crate::net::origin::OwnNames {
    let cert_names = state
        .tls
        .as_ref()
        .map(|t| {
            let info = t.active();
            info.dns_names
                .into_iter()
                .chain(info.ip_addresses)
                .collect()
        })
        .unwrap_or_default();
    crate::net::origin::OwnNames::for_connection(conn.local.ip(), cert_names)
}

/// The second line behind `SameSite=Strict`: a change (POST/PUT/PATCH/DELETE) made with the
/// web app's session cookie must come from the device's own origin. Bearer-token clients
/// (apps, scripts) and requests without `Origin` (older clients) are not affected; browsers
/// send `Origin` on every such request.
fn cookie_change_from_elsewhere(
    req: &Request,
    state: &AppState,
    conn: &ConnInfo,
    info: &crate::net::ClientInfo,
) -> Option<Response> {
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return None;
    }
    let h = req.headers();
    let cookie_session = !h.contains_key(header::AUTHORIZATION) && auth::token_of(h).is_some();
    if !cookie_session {
        return None;
    }
    let text = |name: header::HeaderName| h.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let facts = crate::net::origin::RequestOrigin {
        origin: text(header::ORIGIN),
        fetch_site: text(header::HeaderName::from_static("sec-fetch-site")),
        host: text(header::HOST),
        secure: info.secure,
        proxied: crate::net::client::canonical(info.addr)
            != crate::net::client::canonical(conn.peer.ip()),
    };
    let why = crate::net::origin::foreign(&facts, &own_names(state, conn))?;
    tracing::warn!(client = %info.addr, why, "refused a cookie-authenticated change from another site");
    Some(
        ApiError::forbidden(
            "cross_origin",
            "This change was sent from a page that is not this Hearth's own, so it was refused. Open Hearth at its own address and try again.",
        )
        .into_response(),
    )
}

/// 308 to the HTTPS port on a name of the device (the request's `Host` only if it is one):
/// never to a host the request merely claimed. Refused if there is no HTTPS listener.
fn redirect_to_https(
    req: &Request,
    https_port: Option<u16>,
    own: crate::net::origin::OwnNames,
) -> Response {
    let refuse = || {
        ApiError::forbidden(
            "secure_connection_required",
            "This server only accepts secure connections: use its https:// address.",
        )
        .into_response()
    };
    let Some(port) = https_port else {
        return refuse();
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok());
    let host = own.redirect_host(host.as_ref().map(|a| a.host()));
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => refuse(),
    }
}
