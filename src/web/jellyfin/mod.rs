//! Security-sensitive: the Jellyfin-compatible API over HTTP, a second front end over
//! Hearth's own model so Jellyfin's apps sign in and play. Thin like the rest of `web`: parse
//! (the wire format is `compat::jellyfin`), call the same domain function the web app's
//! handler calls, map the result. Every answer comes through `library::visible` (asking
//! `policy`), every byte through `stream::access`, every sign-in through `identity::login`
//! (throttles, two-factor, audit), and every app that signs in is a Hearth device the owner
//! sees, revokes and blocks.
//!
//! Routing: the list is `compat::jellyfin::routes::ROUTES`. Jellyfin matches paths without
//! regard to case, so a request under one of its prefixes that no Hearth route took is
//! lower-cased and handed to this router ([`dispatch`]); one it does not serve is a 404.

mod items;
mod play;
mod system;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower::ServiceExt;

use super::auth::{Viewer, client_of, viewer_for_token};
use super::{ApiError, AppState};
use crate::compat::jellyfin::header::{ClientAuth, Sources};
use crate::compat::jellyfin::ids::{self, JfId, Kind};
use crate::compat::jellyfin::query::Params;
use crate::compat::jellyfin::routes;

/// The Jellyfin router (paths in lower case; see [`dispatch`]).
pub fn router(state: AppState) -> Router {
    let p = |path: &str| routes::router_path(path);
    Router::new()
        .route(&p("/System/Info/Public"), get(system::public_info))
        .route(&p("/System/Ping"), get(system::ping).post(system::ping))
        .route(&p("/Users/Public"), get(system::public_users))
        .route(
            &p("/QuickConnect/Enabled"),
            get(system::quick_connect_enabled),
        )
        .route(&p("/Branding/Configuration"), get(system::branding))
        .route(
            &p("/Users/AuthenticateByName"),
            post(system::authenticate_by_name),
        )
        .route(&p("/System/Info"), get(system::info))
        .route(&p("/Users/Me"), get(system::me))
        .route(&p("/Users/{userId}"), get(system::user))
        .route(&p("/Users/{userId}/Views"), get(items::user_views))
        .route(&p("/UserViews"), get(items::views))
        .route(&p("/Users/{userId}/Items"), get(items::user_items))
        .route(&p("/Items"), get(items::items))
        .route(&p("/Users/{userId}/Items/Resume"), get(items::user_resume))
        .route(&p("/UserItems/Resume"), get(items::resume))
        .route(&p("/Users/{userId}/Items/Latest"), get(items::user_latest))
        .route(&p("/Items/Latest"), get(items::latest))
        .route(&p("/Users/{userId}/Items/{itemId}"), get(items::user_item))
        .route(&p("/Items/{itemId}"), get(items::item))
        .route(&p("/Items/{itemId}/Images/{imageType}"), get(items::image))
        .route(
            &p("/Items/{itemId}/Images/{imageType}/{imageIndex}"),
            get(items::image_at),
        )
        .route(
            &p("/Items/{itemId}/PlaybackInfo"),
            get(play::playback_info).post(play::playback_info),
        )
        .route(&p("/Videos/{itemId}/stream"), get(play::stream))
        .route(&p("/Sessions/Playing"), post(play::playing))
        .route(&p("/Sessions/Playing/Progress"), post(play::progress))
        .route(&p("/Sessions/Playing/Stopped"), post(play::stopped))
        .route(&p("/Sessions/Playing/Ping"), post(play::ping))
        .route(&p("/Sessions/Capabilities"), post(play::capabilities))
        .route(&p("/Sessions/Capabilities/Full"), post(play::capabilities))
        .route(
            &p("/UserPlayedItems/{itemId}"),
            post(play::played).delete(play::unplayed),
        )
        .route(
            &p("/Users/{userId}/PlayedItems/{itemId}"),
            post(play::user_played).delete(play::user_unplayed),
        )
        .route(
            &p("/DisplayPreferences/{displayPreferencesId}"),
            get(system::display_preferences),
        )
        .route(&p("/Shows/NextUp"), get(items::empty_page))
        .route(&p("/Items/Filters"), get(items::filters))
        .route(&p("/Genres"), get(items::empty_page))
        .route(&p("/Sessions"), get(system::sessions))
        .fallback(not_served)
        .with_state(state)
}

/// Hands a request under a Jellyfin prefix to [`router`] with its path lower-cased (query
/// untouched); anything else is the web app's 404.
pub async fn dispatch(jellyfin: Router, mut req: Request) -> Response {
    if !routes::is_jellyfin_path(req.uri().path()) {
        return ApiError::not_found().into_response();
    }
    let path = routes::canonical(req.uri().path());
    let pq = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    match pq.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return ApiError::not_found().into_response(),
    }
    match jellyfin.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// A Jellyfin path Hearth does not serve: a plain 404 (apps treat it as "not supported").
async fn not_served() -> ApiError {
    ApiError::not_found()
}

/// The credentials and self-description an app sent with this request.
fn client_auth(headers: &HeaderMap, uri: &Uri) -> ClientAuth {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let params = query_params(uri);
    let key = params.get("ApiKey").or_else(|| params.get("api_key"));
    ClientAuth::from_sources(Sources {
        authorization: h("authorization"),
        emby_authorization: h("x-emby-authorization"),
        emby_token: h("x-emby-token"),
        mediabrowser_token: h("x-mediabrowser-token"),
        query_key: key,
    })
}

/// The query string's parameters, names in any case (an unreadable query reads as none).
pub(super) fn query_params(uri: &Uri) -> Params {
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|axum::extract::Query(v)| v)
        .unwrap_or_default();
    Params::from_pairs(pairs)
}

/// A signed-in app: the device token from any place Jellyfin apps put it, resolved and
/// admitted exactly as the web API's bearer token ([`viewer_for_token`]). Jellyfin apps have
/// no cookie, so the web app's session cookie is not read here.
pub struct JfViewer(pub Viewer);

impl FromRequestParts<AppState> for JfViewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(v) = parts.extensions.get::<Viewer>() {
            return Ok(JfViewer(v.clone()));
        }
        let client = client_of(parts)?;
        let token = client_auth(&parts.headers, &parts.uri)
            .token
            .or_else(|| bearer(&parts.headers))
            .ok_or_else(ApiError::unauthorized)?;
        let viewer = viewer_for_token(state, client, token).await?;
        parts.extensions.insert(viewer.clone());
        Ok(JfViewer(viewer))
    }
}

/// Hearth's own `Authorization: Bearer`, for scripts that use one token for both APIs.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

/// The server's id for apps.
pub(super) fn server_id(state: &AppState) -> String {
    ids::server_id(&state.dlna.uuid)
}

/// The `{userId}` of a path must be this device's profile or the account that signed it in
/// (apps keep the id they got at sign-in after the owner switches the device to a child's
/// profile); Hearth answers for the device's current profile either way. Another user's id
/// is refused: an app never reads someone else's view.
pub(super) fn check_user(viewer: &Viewer, path_user: &str) -> Result<(), ApiError> {
    let id = JfId::parse_as(path_user, Kind::User).ok_or_else(ApiError::not_found)?;
    if id == viewer.user.id || id == viewer.session.device.user_id {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "other_user",
            "An app may only ask for the profile it is signed in as.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route in the checked-in list is routed by [`router`], and the fallback answers
    /// only what is not in it. (The contract test in `tests/jellyfin.rs` calls each one.)
    #[test]
    fn every_listed_route_is_routed() {
        let src = include_str!("mod.rs");
        for r in routes::ROUTES {
            let needle = format!("&p(\"{}\")", r.path);
            assert!(
                src.contains(&needle),
                "{} {} is listed but not routed",
                r.method,
                r.path
            );
        }
        let routed = src.matches("&p(\"").count();
        // Each `&p("…")` in `router` is one listed path; the test's own format string is one more.
        let paths: std::collections::BTreeSet<_> = routes::ROUTES.iter().map(|r| r.path).collect();
        assert_eq!(
            routed,
            paths.len() + 1,
            "a routed path is missing from ROUTES"
        );
    }
}
