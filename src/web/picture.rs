//! `GET /api/v1/items/{id}/picture?w=N`: a picture for every title a viewer may see: its
//! poster or cover resized, a photo turned upright and resized, or a frame of a film that has
//! no poster. Policy first (a hidden item is 404 before any file is opened), the file through
//! the one door (`stream::access`), ffmpeg at most two at a time with a short queue, results
//! cached on disk.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::library::{open_error, visible_item};
use super::{ApiError, AppState};
use crate::playback::picture::{self, Cache, PictureError, Source};
use crate::stream::access::{self as door, Part};
use crate::stream::signed::LinkKind;

/// Requests that may wait for a free picture maker; more are told to come back.
const MAX_WAITING: usize = 64;
/// The cache's size cap.
const CACHE_CAP_BYTES: u64 = 512 * 1024 * 1024;

/// Picture making on this device: the cache, the gate and ffmpeg (if any).
pub struct Pictures {
    cache: Cache,
    gate: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    ffmpeg: Option<PathBuf>,
}

impl Pictures {
    pub fn new(root: PathBuf, ffmpeg: Option<PathBuf>) -> std::io::Result<Pictures> {
        Ok(Pictures {
            cache: Cache::new(root, CACHE_CAP_BYTES)?,
            gate: tokio::sync::Semaphore::new(picture::MAX_AT_ONCE),
            waiting: AtomicUsize::new(0),
            ffmpeg,
        })
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PictureParams {
    /// Width in pixels the screen wants (rounded up to 160, 320, 480, 720, 1080 or 1920).
    w: Option<u32>,
}

fn picture_error(e: PictureError) -> ApiError {
    match e {
        PictureError::NoFfmpeg | PictureError::Failed(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "no_picture", e.to_string())
        }
        PictureError::Io(e) => ApiError::internal(e),
    }
}

/// A picture of the item, as a JPEG.
#[utoipa::path(get, path = "/api/v1/items/{id}/picture", tag = "library",
    params(("id" = u64, Path, description = "item id"), PictureParams),
    responses((status = 200, description = "a JPEG"), (status = 304, description = "not modified"),
        (status = 404, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)))]
async fn item_picture(
    State(state): State<AppState>,
    viewer: Caller,
    Path(id): Path<u64>,
    Query(p): Query<PictureParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let item = visible_item(&state, &viewer.actor, &viewer.ctx, id)?;
    let width = picture::width_for(p.w);
    let (part, source) = if item.artwork.is_some() {
        (Part::Artwork, Source::Image { orientation: None })
    } else if item.content_type.starts_with("image/") {
        (
            Part::Media,
            Source::Image {
                orientation: item.orientation,
            },
        )
    } else if item.content_type.starts_with("video/") {
        (Part::Media, Source::frame_of(item.duration_ms))
    } else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_picture",
            "This item has no picture.",
        ));
    };
    let store = state.store.clone();
    let opened = tokio::task::spawn_blocking(move || door::open_part(&store, item, part))
        .await?
        .map_err(|e| open_error(e, LinkKind::Api))?;
    let meta = opened.file.metadata().map_err(ApiError::internal)?;
    let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    let key = Cache::key(id, &opened.rel_path, width, meta.len(), mtime_ns);
    let etag = format!("\"{key}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let pictures = state.pictures.clone();
    let jpeg = match cached(&pictures, &key).await? {
        Some(j) => j,
        None => make(&pictures, &key, opened.file.into(), source, width).await?,
    };
    if jpeg.is_empty() {
        // Tried before and failed: no ffmpeg run again for the same file.
        return Err(picture_error(PictureError::Failed(
            "the file has no picture that can be shown".into(),
        )));
    }
    let mut r = jpeg.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}

async fn cached(pictures: &Arc<Pictures>, key: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let (p, k) = (pictures.clone(), key.to_owned());
    Ok(tokio::task::spawn_blocking(move || p.cache.get(&k)).await?)
}

/// Makes the picture (waiting for a free maker, or refusing when too many wait) and caches it;
/// a file that gives no picture is cached as empty, so it is not tried on every view.
async fn make(
    pictures: &Arc<Pictures>,
    key: &str,
    fd: OwnedFd,
    source: Source,
    width: u32,
) -> Result<Vec<u8>, ApiError> {
    let ffmpeg = pictures
        .ffmpeg
        .clone()
        .ok_or_else(|| picture_error(PictureError::NoFfmpeg))?;
    if pictures.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
        pictures.waiting.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError {
            retry_after: Some(2),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "pictures_busy",
                "Pictures are being made for many titles; try again in a moment.",
            )
        });
    }
    let permit = pictures.gate.acquire().await;
    pictures.waiting.fetch_sub(1, Ordering::SeqCst);
    let _permit = permit.map_err(|_| ApiError::internal("the picture maker has stopped"))?;
    // Another request may have made it while this one waited.
    if let Some(j) = cached(pictures, key).await? {
        return Ok(j);
    }
    let (p, k) = (pictures.clone(), key.to_owned());
    tokio::task::spawn_blocking(move || {
        let jpeg = match picture::make(&ffmpeg, fd, source, width) {
            Ok(j) => j,
            Err(PictureError::Failed(why)) => {
                tracing::info!(picture = %k, reason = %why, "no picture from this file");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        p.cache.put(&k, &jpeg)?;
        Ok(jpeg)
    })
    .await?
    .map_err(picture_error)
}

/// For anyone admitted to browse.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(item_picture))
}
