//! Playing an item: the decision for this player (`POST /api/v1/items/{id}/play`), then, when
//! the file must be converted, the session's HLS playlist and segments. A session's URLs are
//! capabilities bound to the item's signed link, checked again (device, profile, policy,
//! network) on every request, exactly as the byte stream is; a refusal ends the session.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Owner as OwnerOnly};
use super::library::{SignedParams, check_link, open_item_path, visible_item};
use super::{ApiError, AppState};
use crate::net::{ClientInfo, NetClass};
use crate::playback::decide::{self, Choice, DecideError, Limits, Method};
use crate::playback::session::{Owner, SessionError, Sessions};
use crate::playback::{ClientCaps, MediaFacts, probe};
use crate::stream::signed;

/// The device's conversion sessions, each bound to the signed link of its item.
pub type PlaybackSessions = Sessions<SignedParams>;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayInput {
    /// What the player can play. Missing: the baseline every browser plays (H.264/AAC in MP4).
    #[schema(value_type = Object)]
    pub(super) caps: Option<ClientCaps>,
    /// The audio track (a stream index from `audio`), default the file's default.
    pub(super) audio: Option<u32>,
    /// The subtitle track to show (a stream index from `subtitles`), default none.
    pub(super) subtitle: Option<u32>,
    /// The quality the viewer picked, bits per second; none = Original.
    pub(super) max_bitrate: Option<u64>,
    /// Only say what would happen (the item page): no session starts, no ffmpeg runs.
    #[serde(default)]
    pub(super) dry_run: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TrackView {
    pub(super) index: u32,
    pub(super) codec: String,
    pub(super) language: Option<String>,
    pub(super) channels: Option<u8>,
    /// For text subtitles: a WebVTT URL.
    pub(super) url: Option<String>,
    /// Picture subtitles are drawn into the video when chosen.
    pub(super) burn_in: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PlayView {
    /// `direct_play`, `direct_stream` or `transcode`.
    #[schema(value_type = String)]
    pub(super) method: Method,
    /// One sentence a person can read: what happens and why.
    pub(super) summary: String,
    /// The reasons, one sentence fragment each.
    pub(super) reasons: Vec<String>,
    /// What the player loads: the file itself, or an HLS playlist.
    pub(super) url: String,
    /// `video/mp4`-like for the file, `application/vnd.apple.mpegurl` for a playlist.
    pub(super) content_type: String,
    /// The conversion session, to stop it (`DELETE /api/v1/play/{session}`).
    pub(super) session: Option<String>,
    pub(super) duration_ms: Option<u64>,
    pub(super) audio: Vec<TrackView>,
    pub(super) subtitles: Vec<TrackView>,
}

fn playback_error(e: SessionError) -> ApiError {
    match e {
        SessionError::Gone => ApiError::new(StatusCode::NOT_FOUND, "playback_ended", e.to_string()),
        SessionError::NoSuchSegment => ApiError::not_found(),
        SessionError::Busy(m) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "playback_busy", m),
        SessionError::Failed(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "conversion_failed",
            e.to_string(),
        ),
        SessionError::EndsEarly => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "media_ends_early",
            e.to_string(),
        ),
        SessionError::Slow => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "conversion_slow",
            e.to_string(),
        ),
        SessionError::NoFfmpeg => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_converter",
            e.to_string(),
        ),
        SessionError::Io(e) => ApiError::internal(e),
    }
}

fn fd_of(file: std::fs::File) -> OwnedFd {
    OwnedFd::from(file)
}

/// How this player gets this item: played as it is, or converted (a session starts).
#[utoipa::path(post, path = "/api/v1/items/{id}/play", tag = "library",
    params(("id" = u64, Path, description = "item id")), request_body = PlayInput,
    responses((status = 200, body = PlayView), (status = 404, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)))]
async fn play(
    State(state): State<AppState>,
    viewer: Caller,
    Path(id): Path<u64>,
    Json(input): Json<PlayInput>,
) -> Result<Json<PlayView>, ApiError> {
    start(&state, &viewer, id, input).await.map(Json)
}

/// The decision for this player and item, and a conversion session when one is needed: what
/// every front end's "play" calls (the web app's, the Jellyfin API's `PlaybackInfo`).
pub(super) async fn start(
    state: &AppState,
    viewer: &Caller,
    id: u64,
    mut input: PlayInput,
) -> Result<PlayView, ApiError> {
    let state = state.clone();
    // Policy first: a hidden item is 404 before any file is opened or child started.
    let item = visible_item(&state, &viewer.actor, &viewer.ctx, id)?;
    let caps = input.caps.take().unwrap_or_else(ClientCaps::baseline);
    caps.validate()
        .map_err(|e| ApiError::invalid("bad_capabilities", e.to_string()))?;
    let key = signed::key(&state.store)?;
    let link = SignedParams::for_viewer(&key, viewer, item.id);
    let direct_url = format!("/api/v1/stream/{}?{}", item.id, link.query());
    let file = open_item_path(&state, item.folder_id, item.rel_path.clone()).await?;
    let fd = fd_of(file);
    let sessions = state.playback.clone();
    let facts = match sessions.ffmpeg().map(probe::ffprobe_beside) {
        Some(ffprobe) => {
            let probe_fd = fd.try_clone().map_err(ApiError::internal)?;
            tokio::task::spawn_blocking(move || probe::probe(&ffprobe, probe_fd))
                .await?
                .map_err(|e| ApiError::invalid("unreadable_media", e.to_string()))?
        }
        None => {
            // Nothing can be converted here: say so, and offer the file as it is.
            return Ok(PlayView {
                method: Method::DirectPlay,
                summary: "This device cannot convert films (ffmpeg is not installed), so the file is played as it is; if it does not play, install ffmpeg on the device.".into(),
                reasons: vec![],
                content_type: item.content_type.clone(),
                url: direct_url,
                session: None,
                duration_ms: item.duration_ms,
                audio: vec![],
                subtitles: vec![],
            });
        }
    };
    let plan = plan_for(&state, viewer, &facts, &caps, &input).await?;
    let tracks = tracks(&facts, &item, &link, caps.webvtt);
    let duration_ms = facts.duration_ms.or(item.duration_ms);
    if plan.method == Method::DirectPlay || input.dry_run {
        return Ok(PlayView {
            method: plan.method,
            reasons: plan.reasons.iter().map(decide::Reason::words).collect(),
            summary: plan.summary,
            url: if plan.method == Method::DirectPlay {
                direct_url
            } else {
                String::new()
            },
            content_type: item.content_type.clone(),
            session: None,
            duration_ms,
            audio: tracks.0,
            subtitles: tracks.1,
        });
    }
    let owner = Owner {
        user_id: viewer.user.id,
        device_id: viewer.device_id.unwrap_or(0),
        item_id: item.id,
        grant: link,
    };
    let Some(duration) = duration_ms else {
        return Err(ApiError::invalid(
            "unknown_length",
            "This file does not say how long it is, so it cannot be converted.",
        ));
    };
    let reasons = plan.reasons.iter().map(decide::Reason::words).collect();
    let (method, summary) = (plan.method, plan.summary.clone());
    let session = start_session(&sessions, owner, plan, duration, fd).await?;
    tracing::info!(item = item.id, user = viewer.user.id, method = ?method, session = %session.id, "playback: converting");
    Ok(PlayView {
        method,
        summary,
        reasons,
        url: format!("/api/v1/play/{}/main.m3u8", session.id),
        content_type: "application/vnd.apple.mpegurl".into(),
        session: Some(session.id.clone()),
        duration_ms: Some(duration),
        audio: tracks.0,
        subtitles: tracks.1,
    })
}

/// The decision for this viewer: their choices, the owner's limit when they are outside the
/// home, the device's ceiling.
async fn plan_for(
    state: &AppState,
    viewer: &Caller,
    facts: &MediaFacts,
    caps: &ClientCaps,
    input: &PlayInput,
) -> Result<decide::Plan, ApiError> {
    let remote = viewer.client.class == NetClass::Remote;
    let cfg = &state.config.playback;
    let limits = Limits {
        chosen_bitrate: input.max_bitrate.filter(|b| *b > 0),
        remote_bitrate: {
            let limit = remote_limit(state).await?;
            (remote && limit > 0).then_some(limit)
        },
        max_transcode_height: cfg.max_transcode_height,
    };
    let choice = Choice {
        audio: input.audio,
        subtitle: input.subtitle,
    };
    decide::decide(facts, caps, limits, choice).map_err(|e| match e {
        DecideError::NoSuchTrack(_) => ApiError::invalid("no_such_track", e.to_string()),
        DecideError::NoConversionPath(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot_play",
            e.to_string(),
        ),
    })
}

/// Starts a conversion session: a copied picture is cut on its own keyframes, read first
/// (no decoding).
async fn start_session(
    sessions: &Arc<PlaybackSessions>,
    owner: Owner<SignedParams>,
    plan: decide::Plan,
    duration: u64,
    fd: OwnedFd,
) -> Result<Arc<crate::playback::session::Session<SignedParams>>, ApiError> {
    let keyframes = match (&plan.video, sessions.ffmpeg().map(probe::ffprobe_beside)) {
        (Some(decide::VideoPlan::Copy { index }), Some(ffprobe)) => {
            let (index, kf_fd) = (*index, fd.try_clone().map_err(ApiError::internal)?);
            Some(
                tokio::task::spawn_blocking(move || probe::keyframes(&ffprobe, kf_fd, index))
                    .await?
                    .map_err(|e| ApiError::invalid("unreadable_media", e.to_string()))?,
            )
        }
        _ => None,
    };
    let s2 = sessions.clone();
    tokio::task::spawn_blocking(move || s2.start(owner, plan, duration, keyframes, fd))
        .await?
        .map_err(playback_error)
}

fn tracks(
    facts: &MediaFacts,
    item: &crate::library::ItemRecord,
    link: &SignedParams,
    webvtt: bool,
) -> (Vec<TrackView>, Vec<TrackView>) {
    let audio = facts
        .audio
        .iter()
        .map(|a| TrackView {
            index: a.index,
            codec: a.codec.clone(),
            language: a.language.clone(),
            channels: Some(a.channels),
            url: None,
            burn_in: false,
        })
        .collect();
    let subtitles = facts
        .subtitles
        .iter()
        .map(|s| TrackView {
            index: s.index,
            codec: s.codec.clone(),
            language: s.language.clone(),
            channels: None,
            url: (s.is_text() && webvtt).then(|| {
                format!(
                    "/api/v1/stream/{}/track/{}?{}",
                    item.id,
                    s.index,
                    link.query()
                )
            }),
            burn_in: !s.is_text() || !webvtt,
        })
        .collect();
    (audio, subtitles)
}

/// An embedded text subtitle track as WebVTT, for holders of the item's signed link.
#[utoipa::path(get, path = "/api/v1/stream/{id}/track/{index}", tag = "library",
    params(("id" = u64, Path, description = "item id"), ("index" = u32, Path, description = "stream index"), SignedParams),
    responses((status = 200, description = "WebVTT text"), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
async fn track(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    Path((id, index)): Path<(u64, u32)>,
    Query(p): Query<SignedParams>,
) -> Result<Response, ApiError> {
    let item = check_link(&state, client, id, &p).await?;
    let ffmpeg = state
        .playback
        .ffmpeg()
        .map(std::path::Path::to_owned)
        .ok_or_else(|| playback_error(SessionError::NoFfmpeg))?;
    let file = open_item_path(&state, item.folder_id, item.rel_path.clone()).await?;
    let fd = fd_of(file);
    let vtt = tokio::task::spawn_blocking(move || probe::subtitle_vtt(&ffmpeg, fd, index))
        .await?
        .map_err(|e| ApiError::invalid("subtitle_track", e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/vtt; charset=utf-8")], vtt).into_response())
}

/// Checks the session's link again now and returns the session; a refusal ends it.
async fn admitted(
    state: &AppState,
    client: ClientInfo,
    sid: &str,
) -> Result<Arc<crate::playback::session::Session<SignedParams>>, ApiError> {
    let session = state
        .playback
        .get(sid)
        .ok_or_else(|| playback_error(SessionError::Gone))?;
    if let Err(e) = check_link(state, client, session.owner.item_id, &session.owner.grant).await {
        state.playback.end(sid);
        return Err(e);
    }
    Ok(session)
}

/// The session's playlist, init segment or a media segment (`main.m3u8`, `init.mp4`,
/// `{n}.m4s`).
#[utoipa::path(get, path = "/api/v1/play/{session}/{file}", tag = "library",
    params(("session" = String, Path, description = "session id"), ("file" = String, Path, description = "main.m3u8, init.mp4 or N.m4s")),
    responses((status = 200, description = "playlist or segment"), (status = 404, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
async fn session_file(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    Path((sid, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let session = admitted(&state, client, &sid).await?;
    let no_store = (header::CACHE_CONTROL, "no-store");
    if file == "main.m3u8" {
        return Ok((
            [
                (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
                no_store,
            ],
            session.playlist(),
        )
            .into_response());
    }
    let (path, kind) = if file == "init.mp4" {
        // The init segment exists once the first child has begun.
        let s = session.clone();
        tokio::task::spawn_blocking(move || s.segment(0).map(|_| s.init_path()))
            .await?
            .map_err(playback_error)?;
        (session.init_path(), "video/mp4")
    } else if let Some(n) = file
        .strip_suffix(".m4s")
        .and_then(|n| n.parse::<u32>().ok())
    {
        let s = session.clone();
        let path = tokio::task::spawn_blocking(move || s.segment(n))
            .await?
            .map_err(playback_error)?;
        (path, "video/iso.segment")
    } else {
        return Err(ApiError::not_found());
    };
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| playback_error(SessionError::Gone))?;
    Ok(([(header::CONTENT_TYPE, kind), no_store], Body::from(bytes)).into_response())
}

/// Ends a session (the viewer stopped or left the page).
#[utoipa::path(delete, path = "/api/v1/play/{session}", tag = "library",
    params(("session" = String, Path, description = "session id")),
    responses((status = 204, description = "ended"), (status = 404, body = super::error::ErrorBody)))]
async fn stop(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    Path(sid): Path<String>,
) -> Result<StatusCode, ApiError> {
    admitted(&state, client, &sid).await?;
    state.playback.end(&sid);
    Ok(StatusCode::NO_CONTENT)
}

/// The setting key of the owner's limit for viewers outside the home (bits per second).
const REMOTE_BITRATE_KEY: &str = "playback.remote_bitrate";
/// The limits the owner may choose, bits per second (0: no limit).
const REMOTE_CHOICES: [u64; 7] = [
    0, 20_000_000, 8_000_000, 4_000_000, 2_000_000, 1_000_000, 500_000,
];

/// The owner's limit for viewers outside the home: the setting, else the config's default.
async fn remote_limit(state: &AppState) -> Result<u64, ApiError> {
    let store = state.store.clone();
    let set: Option<u64> =
        tokio::task::spawn_blocking(move || store.read(|rx| rx.setting(REMOTE_BITRATE_KEY)))
            .await??;
    Ok(set.unwrap_or(state.config.playback.remote_bitrate))
}

/// Playback on this device, for the owner's settings page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlaybackSettings {
    /// The most a viewer outside the home receives, bits per second; 0: no limit.
    remote_bitrate: u64,
    /// The limits that may be chosen.
    remote_choices: Vec<u64>,
    /// The ffmpeg converting here, or none (films that need converting do not play).
    ffmpeg: Option<String>,
    /// The tallest picture this device converts to.
    max_transcode_height: u32,
    /// Video conversions at once.
    transcodes: usize,
    /// Conversions running now.
    running: usize,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybackSettingsInput {
    /// One of `remote_choices`.
    remote_bitrate: u64,
}

async fn playback_settings(state: &AppState) -> Result<PlaybackSettings, ApiError> {
    Ok(PlaybackSettings {
        remote_bitrate: remote_limit(state).await?,
        remote_choices: REMOTE_CHOICES.to_vec(),
        ffmpeg: state.playback.ffmpeg().map(|p| p.display().to_string()),
        max_transcode_height: state.config.playback.max_transcode_height,
        transcodes: state.config.playback.transcodes,
        running: state.playback.len(),
    })
}

/// How films reach viewers here: the limit for viewers outside the home, and the converter.
#[utoipa::path(get, path = "/api/v1/settings/playback", tag = "library",
    responses((status = 200, body = PlaybackSettings), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
async fn get_playback_settings(
    _owner: OwnerOnly,
    State(state): State<AppState>,
) -> Result<Json<PlaybackSettings>, ApiError> {
    Ok(Json(playback_settings(&state).await?))
}

/// Sets the limit for viewers outside the home.
#[utoipa::path(put, path = "/api/v1/settings/playback", tag = "library", request_body = PlaybackSettingsInput,
    responses((status = 200, body = PlaybackSettings), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
async fn put_playback_settings(
    _owner: OwnerOnly,
    State(state): State<AppState>,
    body: Result<Json<PlaybackSettingsInput>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<PlaybackSettings>, ApiError> {
    let Json(input) = body.map_err(super::error::from_rejection)?;
    if !REMOTE_CHOICES.contains(&input.remote_bitrate) {
        return Err(ApiError::invalid(
            "bad_bitrate",
            "Choose one of the offered limits (no limit, 20, 8, 4, 2, 1 or 0.5 Mbit/s).",
        ));
    }
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        store.write(|tx| tx.set_setting(REMOTE_BITRATE_KEY, &input.remote_bitrate))
    })
    .await??;
    Ok(Json(playback_settings(&state).await?))
}

/// The owner's playback settings.
pub fn owner_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_playback_settings, put_playback_settings))
}

/// Deciding how to play: for anyone admitted to browse.
pub fn admitted_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(play))
}

/// Session and track URLs: capabilities, checked like signed media links.
pub fn media_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(session_file))
        .routes(routes!(stop))
        .routes(routes!(track))
}
