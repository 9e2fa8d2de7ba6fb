//! Playing: `PlaybackInfo` asks the playback engine (`web::playback::start`, the web app's
//! own call) with the app's device profile as capabilities, and answers direct play
//! (`Videos/{id}/stream?static=true`, bytes with ranges through the door) or the engine's HLS
//! session; progress, stop and played/unplayed write Hearth's one watch state
//! (`library::progress`), which the web app shows too.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{JfViewer, check_user, client_auth, query_params};
use crate::compat::jellyfin::ids::{JfId, Kind};
use crate::compat::jellyfin::query::{Params, field};
use crate::compat::jellyfin::{TICKS_PER_MS, dto, profile};
use crate::net::ClientInfo;
use crate::playback::decide::Method as PlayMethod;
use crate::stream::access::{self as door, Part};
use crate::stream::signed::LinkKind;
use crate::web::auth::Viewer;
use crate::web::library::{SignedParams, open_error, open_linked, visible_item};
use crate::web::playback::{PlayInput, start};
use crate::web::{ApiError, AppState};

fn item_id(id: &str) -> Result<u64, ApiError> {
    JfId::parse_as(id, Kind::Item).ok_or_else(ApiError::not_found)
}

/// A number from the JSON body or, failing that, the query (apps use both).
fn number(body: &Value, p: &Params, name: &str) -> Option<u64> {
    field(body, name)
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .or_else(|| p.number(name).ok().flatten())
}

/// `POST /Items/{id}/PlaybackInfo`: the engine's decision for this app's device profile.
pub(super) async fn playback_info(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path(id): Path<String>,
    uri: Uri,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = item_id(&id)?;
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid("invalid_json", format!("The body is not JSON: {e}")))?
    };
    let p = query_params(&uri);
    let max_bitrate = number(&body, &p, "MaxStreamingBitrate");
    let caps = profile::caps_of(field(&body, "DeviceProfile"), max_bitrate)
        .unwrap_or_else(|| profile::undeclared(max_bitrate));
    let input = PlayInput {
        caps: Some(caps),
        audio: number(&body, &p, "AudioStreamIndex").and_then(|n| u32::try_from(n).ok()),
        subtitle: number(&body, &p, "SubtitleStreamIndex").and_then(|n| u32::try_from(n).ok()),
        max_bitrate,
        dry_run: false,
    };
    let caller = viewer.caller();
    let view = start(&state, &caller, id, input).await?;
    // The item was visible a moment ago (start checked); read it again for its facts.
    let item = visible_item(&state, &viewer.actor, &viewer.ctx, id)?;
    let jid = JfId::item(id).to_string();
    let direct = view.method == PlayMethod::DirectPlay;
    let query = view.url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut streams: Vec<Value> = Vec::new();
    for (n, a) in view.audio.iter().enumerate() {
        streams.push(json!({
            "Type": "Audio", "Index": a.index, "Codec": a.codec, "Language": a.language,
            "Channels": a.channels, "IsDefault": n == 0, "IsExternal": false,
        }));
    }
    for s in &view.subtitles {
        streams.push(json!({
            "Type": "Subtitle", "Index": s.index, "Codec": s.codec, "Language": s.language,
            "IsExternal": false, "IsTextSubtitleStream": !s.burn_in,
            "DeliveryMethod": if s.url.is_some() { "External" } else { "Encode" },
            "DeliveryUrl": s.url,
        }));
    }
    let source = json!({
        "Id": jid,
        "Protocol": "File",
        "Type": "Default",
        "Name": item.title,
        "Container": dto::container_of(&item.content_type, &item.rel_path),
        "Size": item.size,
        "IsRemote": false,
        "ETag": format!("{:x}", item.mtime_ns),
        "RunTimeTicks": view.duration_ms.map(|d| d * TICKS_PER_MS),
        "SupportsDirectPlay": direct,
        "SupportsDirectStream": direct,
        "SupportsTranscoding": !direct,
        "DirectStreamUrl": direct.then(|| format!("/Videos/{jid}/stream?static=true&MediaSourceId={jid}&{query}")),
        "TranscodingUrl": (!direct).then(|| view.url.clone()),
        "TranscodingSubProtocol": if direct { Value::Null } else { json!("hls") },
        "TranscodingContainer": if direct { Value::Null } else { json!("mp4") },
        "RequiresOpening": false,
        "RequiresClosing": false,
        "ReadAtNativeFramerate": false,
        "MediaStreams": streams,
        "DefaultAudioStreamIndex": view.audio.first().map(|a| a.index),
        // Hearth's own words for the decision, for apps (and people) that show them.
        "HearthSummary": view.summary,
    });
    // Apps send this back with their reports; a direct play has no conversion to name.
    let session = view
        .session
        .clone()
        .unwrap_or_else(|| format!("direct-{jid}"));
    Ok(Json(
        json!({"MediaSources": [source], "PlaySessionId": session}),
    ))
}

/// The bytes, with ranges, for a signed-in app (its token) or a signed link made for one
/// (what `PlaybackInfo` hands out): both through the door.
pub(super) async fn stream(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = item_id(&id)?;
    let opened = if let Some(token) = client_auth(&headers, &uri).token {
        let viewer = crate::web::auth::viewer_for_token(&state, client, token).await?;
        let item = visible_item(&state, &viewer.actor, &viewer.ctx, id)?;
        let store = state.store.clone();
        tokio::task::spawn_blocking(move || door::open_part(&store, item, Part::Media))
            .await?
            .map_err(|e| open_error(e, LinkKind::Api))?
    } else {
        let p = query_params(&uri);
        let link = (|| {
            Some(SignedParams {
                u: p.get("u")?.parse().ok()?,
                d: p.get("d")?.parse().ok()?,
                exp: p.get("exp")?.parse().ok()?,
                sig: p.get("sig")?.to_owned(),
            })
        })()
        .ok_or_else(ApiError::unauthorized)?;
        open_linked(&state, client, id, &link, Part::Media).await?
    };
    crate::stream::serve_file(
        opened.file,
        &opened.item.content_type,
        &headers,
        method == Method::HEAD,
    )
    .map_err(ApiError::internal)
}

/// A playback report's body (`PlaybackProgressInfo` / `PlaybackStopInfo`).
fn report(body: &Value) -> Result<(u64, Option<u64>, Option<String>), ApiError> {
    let id = field(body, "ItemId")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("missing_item", "Send the ItemId being played."))?;
    let ticks = field(body, "PositionTicks").and_then(Value::as_u64);
    let session = field(body, "PlaySessionId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok((item_id(id)?, ticks, session))
}

fn json_body(body: &axum::body::Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("invalid_json", format!("The body is not JSON: {e}")))
}

async fn record(state: &AppState, viewer: &Viewer, item: u64, ticks: u64) -> Result<(), ApiError> {
    let store = state.store.clone();
    let v = viewer.clone();
    tokio::task::spawn_blocking(move || {
        crate::library::progress::record_position(
            &store,
            &v.actor,
            &v.ctx,
            v.user.id,
            item,
            ticks / TICKS_PER_MS,
        )
    })
    .await??;
    Ok(())
}

/// Playback started: nothing to write until there is a position.
pub(super) async fn playing(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let (item, ticks, _) = report(&json_body(&body)?)?;
    match ticks.filter(|t| *t > 0) {
        Some(t) => record(&state, &viewer, item, t).await?,
        // Still refuse a hidden item, as every other route does.
        None => {
            visible_item(&state, &viewer.actor, &viewer.ctx, item)?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn progress(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let (item, ticks, _) = report(&json_body(&body)?)?;
    if let Some(t) = ticks {
        record(&state, &viewer, item, t).await?;
    } else {
        visible_item(&state, &viewer.actor, &viewer.ctx, item)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Playback stopped: the last position is saved, and this device's conversion ends.
pub(super) async fn stopped(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let (item, ticks, session) = report(&json_body(&body)?)?;
    if let Some(t) = ticks {
        record(&state, &viewer, item, t).await?;
    }
    if let Some(sid) = session
        && let Some(s) = state.playback.get(&sid)
        && s.owner.user_id == viewer.user.id
        && s.owner.device_id == viewer.device_id
    {
        state.playback.end(&sid);
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn ping(JfViewer(_viewer): JfViewer) -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Remote control is not served; the app's capabilities are noted by nobody.
pub(super) async fn capabilities(JfViewer(_viewer): JfViewer) -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn mark(
    state: AppState,
    viewer: Viewer,
    id: &str,
    watched: bool,
) -> Result<Response, ApiError> {
    let id = item_id(id)?;
    let store = state.store.clone();
    let v = viewer.clone();
    let rec = tokio::task::spawn_blocking(move || {
        crate::library::progress::set_watched(&store, &v.actor, &v.ctx, v.user.id, id, watched)
    })
    .await??;
    let item = visible_item(&state, &viewer.actor, &viewer.ctx, id)?;
    Ok(Json(dto::user_data(id, item.duration_ms, Some(&rec))).into_response())
}

pub(super) async fn played(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    mark(state, viewer, &id, true).await
}

pub(super) async fn unplayed(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    mark(state, viewer, &id, false).await
}

pub(super) async fn user_played(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path((user_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_user(&viewer, &user_id)?;
    mark(state, viewer, &id, true).await
}

pub(super) async fn user_unplayed(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path((user_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_user(&viewer, &user_id)?;
    mark(state, viewer, &id, false).await
}
