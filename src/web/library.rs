//! Libraries, items, search and streaming over HTTP. Thin: parse, call `library`/`stream`,
//! map the result. What a viewer may see is decided by [`access`], the single call point
//! the policy module plugs into.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Owner, Viewer};
use super::{ApiError, AppState};
use crate::library::browse::{self, ItemQuery};
use crate::library::probe::VideoFacts;
use crate::library::{
    ContentRating, ItemKind, ItemRecord, ItemSort, LibraryError, LibraryKind, LibraryRecord,
    NewLibrary, ProgressSnapshot, ScanErrorRecord,
};
use crate::net::ClientInfo;
use crate::policy::{self, Actor, Context};
use crate::stream::signed::{self, LinkKind, MediaGrant, UrlError};

/// What the actor may see: a library filter and an item filter, both asking `policy`.
/// Every listing, search, item, artwork, subtitle and stream goes through these two.
pub(super) use crate::library::visible::access;
use crate::stream::access::{self as door, Door, Link, OpenError, Part, Viewer as Holder};

fn library_error(e: LibraryError) -> ApiError {
    match e {
        LibraryError::InvalidName | LibraryError::FolderCount => {
            ApiError::invalid("invalid_library", e.to_string())
        }
        LibraryError::InvalidFolder { .. } => ApiError::invalid("invalid_folder", e.to_string()),
        LibraryError::NotFound => ApiError::not_found(),
        LibraryError::ScanRunning => ApiError::conflict("scan_running", e.to_string()),
        LibraryError::Scan(e) => ApiError::internal(e),
        LibraryError::Store(e) => ApiError::from(e),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LibraryView {
    id: u64,
    name: String,
    kind: LibraryKind,
    /// Folder paths; only the owner sees them.
    folders: Option<Vec<String>>,
    /// Items this viewer may see (what a full listing of the library returns).
    items: u64,
    /// When the last scan finished; only the owner sees it.
    last_scan: Option<u64>,
    /// The running or last scan's figures; only the owner sees them.
    scan: Option<ProgressSnapshot>,
    /// False while a folder cannot be read (its disk pulled or unmounted): the items stay
    /// listed, but cannot be played until the disk is back.
    online: bool,
    /// The folders that cannot be read now; only the owner sees them.
    offline_folders: Option<Vec<String>>,
}

/// A library as `viewer` may see it. The owner sees everything (policy's rule for media),
/// so the stored count is theirs; anyone else gets the count of the items `policy` lets them
/// see, and no scan figures, folders or times: a hidden item must not show even as a number.
fn library_view(
    state: &AppState,
    lib: LibraryRecord,
    viewer: Option<&Caller>,
) -> Result<LibraryView, ApiError> {
    let owner = viewer.is_none_or(|v| policy::require_owner(&v.actor).is_ok());
    let visible = match viewer {
        Some(v) if !owner => {
            let (_, item_ok) = access(&v.actor, &v.ctx);
            Some(browse::count_items(&state.store, lib.id, item_ok)?)
        }
        _ => None,
    };
    let (items, folders) = state.store.read(|rx| {
        let n = match visible {
            Some(n) => n,
            None => rx.item_count(lib.id)?,
        };
        let mut paths = Vec::new();
        for id in &lib.folder_ids {
            if let Some(f) = rx.folder(*id)? {
                paths.push(f.path);
            }
        }
        Ok::<_, crate::store::StoreError>((n, paths))
    })?;
    // A stat and an open per folder (a few per library): cheap enough to ask every time.
    let offline: Vec<String> = folders
        .iter()
        .filter(|p| !crate::library::folder_online(p))
        .map(|p| p.display().to_string())
        .collect();
    let folders = folders.iter().map(|p| p.display().to_string()).collect();
    Ok(LibraryView {
        id: lib.id,
        name: lib.name,
        kind: lib.kind,
        folders: owner.then_some(folders),
        items,
        last_scan: lib.last_scan.filter(|_| owner),
        scan: state.scans.progress(lib.id).filter(|_| owner),
        online: offline.is_empty(),
        offline_folders: owner.then_some(offline),
    })
}

/// Adds a library and starts scanning it.
#[utoipa::path(post, path = "/api/v1/libraries", tag = "library", request_body = NewLibrary,
    responses((status = 201, body = LibraryView), (status = 422, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    _owner: Owner,
    body: Result<Json<NewLibrary>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<LibraryView>), ApiError> {
    let Json(new) = body.map_err(super::error::from_rejection)?;
    let store = state.store.clone();
    let lib = tokio::task::spawn_blocking(move || {
        crate::library::create_library(&store, &new, crate::model::clock::now_secs())
    })
    .await?
    .map_err(library_error)?;
    if let Some(w) = &state.watcher {
        let folders = state.store.read(|rx| rx.folders())?;
        for f in folders.into_iter().filter(|f| f.library_id == lib.id) {
            w.watch_folder(f.path, lib.id);
        }
    }
    state
        .scans
        .start(state.store.clone(), lib.id)
        .map_err(library_error)?;
    // Only the owner gets here (`Owner`): the whole view.
    let view = library_view(&state, lib, None)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Libraries the signed-in user may see.
#[utoipa::path(get, path = "/api/v1/libraries", tag = "library",
    responses((status = 200, body = [LibraryView]), (status = 401, body = super::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    viewer: Caller,
) -> Result<Json<Vec<LibraryView>>, ApiError> {
    let (lib_ok, _) = access(&viewer.actor, &viewer.ctx);
    let libs = browse::libraries(&state.store, lib_ok)?;
    let views = tokio::task::spawn_blocking(move || {
        libs.into_iter()
            .map(|l| library_view(&state, l, Some(&viewer)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    Ok(Json(views))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScanView {
    progress: Option<ProgressSnapshot>,
    errors: Vec<ScanErrorRecord>,
}

/// Starts an incremental scan.
#[utoipa::path(post, path = "/api/v1/libraries/{id}/scan", tag = "library",
    params(("id" = u64, Path, description = "library id")),
    responses((status = 202, body = ScanView), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody)))]
async fn scan(
    State(state): State<AppState>,
    _owner: Owner,
    Path(id): Path<u64>,
) -> Result<(StatusCode, Json<ScanView>), ApiError> {
    state
        .scans
        .start(state.store.clone(), id)
        .map_err(library_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ScanView {
            progress: state.scans.progress(id),
            errors: Vec::new(),
        }),
    ))
}

/// Progress of the running (or last) scan, and the files it could not use.
#[utoipa::path(get, path = "/api/v1/libraries/{id}/scan", tag = "library",
    params(("id" = u64, Path, description = "library id")),
    responses((status = 200, body = ScanView), (status = 404, body = super::error::ErrorBody)))]
async fn scan_status(
    State(state): State<AppState>,
    _owner: Owner,
    Path(id): Path<u64>,
) -> Result<Json<ScanView>, ApiError> {
    let (lib, errors) = state
        .store
        .read(|rx| Ok::<_, crate::store::StoreError>((rx.library(id)?, rx.scan_errors(id)?)))?;
    if lib.is_none() {
        return Err(ApiError::not_found());
    }
    Ok(Json(ScanView {
        progress: state.scans.progress(id),
        errors,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SubtitleView {
    language: Option<String>,
    format: String,
    /// A signed WebVTT URL.
    url: String,
}

/// An item as clients see it, with its signed `stream_url`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ItemView {
    id: u64,
    library_id: u64,
    kind: Option<ItemKind>,
    title: String,
    year: Option<u16>,
    plot: Option<String>,
    genres: Vec<String>,
    tags: Vec<String>,
    people: Vec<String>,
    rating: Option<ContentRating>,
    show: Option<String>,
    season: Option<u32>,
    episode: Option<u32>,
    air_date: Option<String>,
    part: Option<u32>,
    artist: Option<String>,
    album: Option<String>,
    track: Option<u32>,
    disc: Option<u32>,
    taken_at: Option<String>,
    orientation: Option<u16>,
    duration_ms: Option<u64>,
    video: Option<VideoFacts>,
    content_type: String,
    size: u64,
    added_at: u64,
    has_artwork: bool,
    /// `GET /api/v1/items/{id}/picture` has something to show: the artwork, a frame of the
    /// video or the photo itself.
    has_picture: bool,
    subtitles: Vec<SubtitleView>,
    stream_url: String,
    /// This user's progress and watched flag (item pages only).
    #[serde(skip_serializing_if = "Option::is_none")]
    watch: Option<crate::store::watch::WatchRecord>,
}

fn item_view(key: &[u8], viewer: &Caller, i: ItemRecord) -> ItemView {
    let grant = MediaGrant {
        user_id: viewer.user.id,
        item_id: i.id,
        // 0 is never a device id: it marks a link made for a network allowed without sign-in.
        device_id: viewer.device_id.unwrap_or(0),
        expires: crate::model::clock::now_secs() + signed::URL_LIFETIME_SECS,
    };
    let stream_url = signed::url(key, &grant);
    let query = stream_url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let subtitles = i
        .subtitles
        .iter()
        .enumerate()
        .map(|(n, s)| SubtitleView {
            language: s.language.clone(),
            format: s.format.clone(),
            url: format!("/api/v1/stream/{}/subtitles/{n}?{query}", i.id),
        })
        .collect();
    let has_picture = i.artwork.is_some()
        || i.content_type.starts_with("video/")
        || i.content_type.starts_with("image/");
    ItemView {
        id: i.id,
        library_id: i.library_id,
        kind: i.kind,
        title: i.title,
        year: i.year,
        plot: i.plot,
        genres: i.genres,
        tags: i.tags,
        people: i.people,
        rating: i.rating,
        show: i.show,
        season: i.season,
        episode: i.episode,
        air_date: i.air_date,
        part: i.part,
        artist: i.artist,
        album: i.album,
        track: i.track,
        disc: i.disc,
        taken_at: i.taken_at,
        orientation: i.orientation,
        duration_ms: i.duration_ms,
        video: i.video,
        content_type: i.content_type,
        size: i.size,
        added_at: i.added_at,
        has_artwork: i.artwork.is_some(),
        has_picture,
        subtitles,
        stream_url,
        watch: None,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsParams {
    /// `title` (default), `year` or `added`.
    sort: Option<ItemSort>,
    /// `asc` (default) or `desc`.
    order: Option<String>,
    genre: Option<String>,
    kind: Option<ItemKind>,
    offset: Option<usize>,
    limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ItemPage {
    items: Vec<ItemView>,
    offset: usize,
    more: bool,
}

/// Checks the library exists and the viewer may see it; 404 otherwise (no leak).
fn visible_library(state: &AppState, viewer: &Caller, id: u64) -> Result<LibraryRecord, ApiError> {
    let lib = state
        .store
        .read(|rx| rx.library(id))?
        .ok_or_else(ApiError::not_found)?;
    let (lib_ok, _) = access(&viewer.actor, &viewer.ctx);
    if !lib_ok(&lib) {
        return Err(ApiError::not_found());
    }
    Ok(lib)
}

/// Items of a library, sorted and filtered.
#[utoipa::path(get, path = "/api/v1/libraries/{id}/items", tag = "library",
    params(("id" = u64, Path, description = "library id"), ItemsParams),
    responses((status = 200, body = ItemPage), (status = 404, body = super::error::ErrorBody)))]
async fn items(
    State(state): State<AppState>,
    viewer: Caller,
    Path(id): Path<u64>,
    Query(p): Query<ItemsParams>,
) -> Result<Json<ItemPage>, ApiError> {
    visible_library(&state, &viewer, id)?;
    let descending = match p.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_order",
                "order must be asc or desc.",
            ));
        }
    };
    let q = ItemQuery {
        sort: p.sort.unwrap_or(ItemSort::Title),
        descending,
        genre: p.genre,
        kind: p.kind,
        offset: p.offset.unwrap_or(0),
        limit: p.limit.unwrap_or(100),
    };
    let (_, item_ok) = access(&viewer.actor, &viewer.ctx);
    let store = state.store.clone();
    let page =
        tokio::task::spawn_blocking(move || browse::items(&store, id, &q, |_| true, item_ok))
            .await??;
    let key = signed::key(&state.store)?;
    Ok(Json(ItemPage {
        offset: page.offset,
        more: page.more,
        items: page
            .items
            .into_iter()
            .map(|i| item_view(&key, &viewer, i))
            .collect(),
    }))
}

pub(super) fn visible_item(
    state: &AppState,
    actor: &Actor,
    ctx: &Context,
    id: u64,
) -> Result<ItemRecord, ApiError> {
    crate::library::visible::visible_item(&state.store, actor, ctx, id)?
        .ok_or_else(ApiError::not_found)
}

/// One item.
#[utoipa::path(get, path = "/api/v1/items/{id}", tag = "library",
    params(("id" = u64, Path, description = "item id")),
    responses((status = 200, body = ItemView), (status = 404, body = super::error::ErrorBody)))]
async fn item(
    State(state): State<AppState>,
    viewer: Caller,
    Path(id): Path<u64>,
) -> Result<Json<ItemView>, ApiError> {
    let item = visible_item(&state, &viewer.actor, &viewer.ctx, id)?;
    let key = signed::key(&state.store)?;
    let watch = state.store.read(|rx| rx.watch(viewer.user.id, id))?;
    let mut view = item_view(&key, &viewer, item);
    view.watch = watch;
    Ok(Json(view))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressInput {
    /// Where playback is, in milliseconds.
    position_ms: u64,
}

impl From<crate::library::progress::WatchError> for ApiError {
    fn from(e: crate::library::progress::WatchError) -> Self {
        use crate::library::progress::WatchError;
        match e {
            WatchError::NotFound => ApiError::not_found(),
            WatchError::Denied(d) => d.into(),
            WatchError::Store(s) => s.into(),
        }
    }
}

/// Saves how far this user got in an item (the player calls this as it plays).
#[utoipa::path(put, path = "/api/v1/items/{id}/progress", tag = "library",
    params(("id" = u64, Path, description = "item id")), request_body = ProgressInput,
    responses((status = 200, body = crate::store::watch::WatchRecord), (status = 404, body = super::error::ErrorBody)))]
async fn progress(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<u64>,
    body: Result<Json<ProgressInput>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::store::watch::WatchRecord>, ApiError> {
    let Json(input) = body.map_err(super::error::from_rejection)?;
    let store = state.store.clone();
    let rec = tokio::task::spawn_blocking(move || {
        crate::library::progress::record_position(
            &store,
            &viewer.actor,
            &viewer.ctx,
            viewer.user.id,
            id,
            input.position_ms,
        )
    })
    .await??;
    Ok(Json(rec))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchedInput {
    /// `true` marks the item watched, `false` unwatched.
    watched: bool,
}

/// Marks an item watched or unwatched for this user.
#[utoipa::path(post, path = "/api/v1/items/{id}/watched", tag = "library",
    params(("id" = u64, Path, description = "item id")), request_body = WatchedInput,
    responses((status = 200, body = crate::store::watch::WatchRecord), (status = 404, body = super::error::ErrorBody)))]
async fn watched(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<u64>,
    body: Result<Json<WatchedInput>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::store::watch::WatchRecord>, ApiError> {
    let Json(input) = body.map_err(super::error::from_rejection)?;
    let store = state.store.clone();
    let rec = tokio::task::spawn_blocking(move || {
        crate::library::progress::set_watched(
            &store,
            &viewer.actor,
            &viewer.ctx,
            viewer.user.id,
            id,
            input.watched,
        )
    })
    .await??;
    Ok(Json(rec))
}

/// Items this user started and did not finish, most recent first (the continue-watching
/// row), filtered by what they may see now.
#[utoipa::path(get, path = "/api/v1/continue", tag = "library",
    responses((status = 200, body = [ItemView])))]
async fn continue_watching(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Json<Vec<ItemView>>, ApiError> {
    let store = state.store.clone();
    let v2 = viewer.clone();
    let started = tokio::task::spawn_blocking(move || {
        crate::library::progress::continue_watching(&store, &v2.actor, &v2.ctx, v2.user.id, 20)
    })
    .await??;
    let key = signed::key(&state.store)?;
    let caller = viewer.caller();
    Ok(Json(
        started
            .into_iter()
            .map(|(item, w)| {
                let mut v = item_view(&key, &caller, item);
                v.watch = Some(w);
                v
            })
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    q: String,
    limit: Option<usize>,
}

/// Search titles, shows, artists, albums, people, genres and tags.
#[utoipa::path(get, path = "/api/v1/search", tag = "library", params(SearchParams),
    responses((status = 200, body = [ItemView]), (status = 401, body = super::error::ErrorBody)))]
async fn search(
    State(state): State<AppState>,
    viewer: Caller,
    Query(p): Query<SearchParams>,
) -> Result<Json<Vec<ItemView>>, ApiError> {
    if p.q.len() > 200 {
        return Err(ApiError::invalid(
            "query_too_long",
            "Search for at most 200 characters.",
        ));
    }
    let (lib_ok, item_ok) = access(&viewer.actor, &viewer.ctx);
    let store = state.store.clone();
    let libs: Vec<u64> = browse::libraries(&state.store, lib_ok)?
        .into_iter()
        .map(|l| l.id)
        .collect();
    let limit = p.limit.unwrap_or(50);
    let found = tokio::task::spawn_blocking(move || {
        browse::search_in(
            &store,
            &p.q,
            limit,
            |lib| libs.contains(&lib),
            |i| libs.contains(&i.library_id) && item_ok(i),
        )
    })
    .await??;
    let key = signed::key(&state.store)?;
    Ok(Json(
        found
            .into_iter()
            .map(|i| item_view(&key, &viewer, i))
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupParams {
    show: Option<String>,
    season: Option<u32>,
    artist: Option<String>,
    album: Option<String>,
}

/// Browsing by group: `shows`, `seasons` (show=), `episodes` (show=, season=), `artists`,
/// `albums` (artist=), `tracks` (artist=, album=), `timeline` (photos by month).
#[utoipa::path(get, path = "/api/v1/libraries/{id}/browse/{group}", tag = "library",
    params(("id" = u64, Path, description = "library id"),
        ("group" = String, Path, description = "shows, seasons, episodes, artists, albums, tracks or timeline"),
        GroupParams),
    responses((status = 200, description = "the group's entries"), (status = 404, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
async fn browse_group(
    State(state): State<AppState>,
    viewer: Caller,
    Path((id, group)): Path<(u64, String)>,
    Query(p): Query<GroupParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    visible_library(&state, &viewer, id)?;
    let (_, ok) = access(&viewer.actor, &viewer.ctx);
    let store = state.store.clone();
    let key = signed::key(&state.store)?;
    let need = |v: Option<String>, name: &str| {
        v.ok_or_else(|| {
            ApiError::invalid("missing_parameter", format!("Add the {name} parameter."))
        })
    };
    let value = match group.as_str() {
        "shows" => to_json(blocking(move || browse::shows(&store, id, ok)).await?),
        "seasons" => {
            let show = need(p.show, "show")?;
            to_json(blocking(move || browse::seasons(&store, id, &show, ok)).await?)
        }
        "episodes" => {
            let show = need(p.show, "show")?;
            let season = p.season;
            let eps = blocking(move || browse::episodes(&store, id, &show, season, ok)).await?;
            to_json(
                eps.into_iter()
                    .map(|i| item_view(&key, &viewer, i))
                    .collect::<Vec<_>>(),
            )
        }
        "artists" => to_json(blocking(move || browse::artists(&store, id, ok)).await?),
        "albums" => {
            let artist = need(p.artist, "artist")?;
            to_json(blocking(move || browse::albums(&store, id, &artist, ok)).await?)
        }
        "tracks" => {
            let artist = need(p.artist, "artist")?;
            let album = need(p.album, "album")?;
            let ts = blocking(move || browse::tracks(&store, id, &artist, &album, ok)).await?;
            to_json(
                ts.into_iter()
                    .map(|i| item_view(&key, &viewer, i))
                    .collect::<Vec<_>>(),
            )
        }
        "timeline" => {
            let months = blocking(move || browse::photo_timeline(&store, id, ok)).await?;
            let months: Vec<serde_json::Value> = months
                .into_iter()
                .map(|m| {
                    serde_json::json!({
                        "month": m.month,
                        "items": m.items.into_iter().map(|i| item_view(&key, &viewer, i)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::Value::Array(months)
        }
        _ => {
            return Err(ApiError::invalid(
                "unknown_group",
                "Browse by shows, seasons, episodes, artists, albums, tracks or timeline.",
            ));
        }
    };
    Ok(Json(value))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

fn to_json<T: Serialize>(v: T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// An item's poster, cover or folder image.
#[utoipa::path(get, path = "/api/v1/items/{id}/artwork", tag = "library",
    params(("id" = u64, Path, description = "item id")),
    responses((status = 200, description = "the image"), (status = 404, body = super::error::ErrorBody)))]
async fn artwork(
    State(state): State<AppState>,
    viewer: Caller,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let item = visible_item(&state, &viewer.actor, &viewer.ctx, id)?;
    let store = state.store.clone();
    let opened = tokio::task::spawn_blocking(move || door::open_part(&store, item, Part::Artwork))
        .await?
        .map_err(|e| open_error(e, LinkKind::Api))?;
    let (file, rel) = (opened.file, opened.rel_path);
    crate::stream::serve_file(
        file,
        crate::library::scan::content_type(&rel),
        &headers,
        false,
    )
    .map_err(ApiError::internal)
}

/// The front end's answer to a refused or failed open: the codes and words the API has
/// always given.
pub(super) fn open_error(e: OpenError, kind: LinkKind) -> ApiError {
    let msg = e.to_string();
    match e {
        OpenError::Link(UrlError::Expired) if kind == LinkKind::Api => {
            ApiError::forbidden("media_link_expired", msg)
        }
        OpenError::Link(_) => ApiError::forbidden("invalid_media_link", msg),
        OpenError::Revoked => ApiError::forbidden("media_link_revoked", msg),
        OpenError::Denied(d) => d.into(),
        OpenError::NotFound | OpenError::DlnaOff => ApiError::not_found(),
        OpenError::MediaMissing => ApiError::new(StatusCode::NOT_FOUND, "media_missing", msg),
        OpenError::Store(e) => e.into(),
        OpenError::Internal(e) => ApiError::internal(e),
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedParams {
    /// User id the link was made for.
    pub(super) u: u64,
    /// Device id the link was made for.
    pub(super) d: u64,
    /// Expiry, Unix seconds.
    pub(super) exp: u64,
    /// HMAC-SHA256, hex.
    pub(super) sig: String,
}

impl SignedParams {
    /// The link a viewer gets for an item now (what `stream_url` carries).
    pub(super) fn for_viewer(key: &[u8], viewer: &Caller, item_id: u64) -> SignedParams {
        let grant = MediaGrant {
            user_id: viewer.user.id,
            item_id,
            device_id: viewer.device_id.unwrap_or(0),
            expires: crate::model::clock::now_secs() + signed::URL_LIFETIME_SECS,
        };
        SignedParams {
            u: grant.user_id,
            d: grant.device_id,
            exp: grant.expires,
            sig: signed::sign(key, LinkKind::Api, &grant),
        }
    }

    /// The query string of the link.
    pub(super) fn query(&self) -> String {
        format!(
            "u={}&d={}&exp={}&sig={}",
            self.u, self.d, self.exp, self.sig
        )
    }
}

/// Opens a part of an item for the holder of its signed link, through the one door
/// ([`crate::stream::access::open_for`]).
pub(super) async fn open_linked(
    state: &AppState,
    client: ClientInfo,
    item_id: u64,
    p: &SignedParams,
    part: Part,
) -> Result<door::Opened, ApiError> {
    // `door::open_for` is exactly this: authorize, then open the part beneath its folder.
    let item = check_link(state, client, item_id, p).await?;
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || door::open_part(&store, item, part))
        .await?
        .map_err(|e| open_error(e, LinkKind::Api))
}

/// Checks a signed media link through the door ([`crate::stream::access::authorize`]) and
/// returns the item it opens, for front ends that open the bytes themselves (conversions).
pub(super) async fn check_link(
    state: &AppState,
    client: ClientInfo,
    item_id: u64,
    p: &SignedParams,
) -> Result<crate::store::library::ItemRecord, ApiError> {
    let (st, sig) = (state.clone(), p.sig.clone());
    let (user_id, device_id, expires) = (p.u, p.d, p.exp);
    tokio::task::spawn_blocking(move || {
        let door = Door {
            store: &st.store,
            identity: &st.identity,
            rules: &st.rules,
            utc_offset_minutes: st.config.utc_offset_minutes,
        };
        let link = Link {
            kind: LinkKind::Api,
            user_id,
            device_id,
            expires,
            sig: &sig,
        };
        let now = crate::model::clock::now_secs();
        door::authorize(door, client, &Holder::LinkHolder, item_id, &link, now)
    })
    .await?
    .map_err(|e| open_error(e, LinkKind::Api))
}

/// Opens `rel` beneath a library folder with the race-proof opener, for an item the caller
/// already found visible.
pub(super) async fn open_item_path(
    state: &AppState,
    folder_id: u64,
    rel: String,
) -> Result<std::fs::File, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || door::open_item_path(&store, folder_id, &rel))
        .await?
        .map_err(|e| open_error(e, LinkKind::Api))
}

/// The bytes of an item, for holders of its signed link: ranges, `HEAD`, `ETag`.
#[utoipa::path(get, path = "/api/v1/stream/{id}", tag = "library",
    params(("id" = u64, Path, description = "item id"), SignedParams),
    responses((status = 200, description = "the whole file"), (status = 206, description = "byte ranges"),
        (status = 304, description = "not modified"), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 416, description = "no range overlaps the file")))]
async fn stream(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    method: Method,
    Path(id): Path<u64>,
    Query(p): Query<SignedParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let door::Opened { item, file, .. } = open_linked(&state, client, id, &p, Part::Media).await?;
    crate::stream::serve_file(file, &item.content_type, &headers, method == Method::HEAD)
        .map_err(ApiError::internal)
}

/// A subtitle sidecar as WebVTT (SRT is converted), for holders of the item's signed link.
#[utoipa::path(get, path = "/api/v1/stream/{id}/subtitles/{n}", tag = "library",
    params(("id" = u64, Path, description = "item id"), ("n" = usize, Path, description = "subtitle index"), SignedParams),
    responses((status = 200, description = "WebVTT text"), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
async fn subtitle(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    Path((id, n)): Path<(u64, usize)>,
    Query(p): Query<SignedParams>,
) -> Result<Response, ApiError> {
    let door::Opened { item, file, .. } =
        open_linked(&state, client, id, &p, Part::Subtitle(n)).await?;
    let sub = item
        .subtitles
        .get(n)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let text = tokio::task::spawn_blocking(move || -> std::io::Result<Option<String>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        file.take(crate::stream::subtitles::MAX_SUBTITLE_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > crate::stream::subtitles::MAX_SUBTITLE_BYTES {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    })
    .await?
    .map_err(ApiError::internal)?
    .ok_or_else(|| {
        ApiError::invalid(
            "subtitle_too_large",
            "This subtitle file is too large to convert.",
        )
    })?;
    let vtt = match sub.format.as_str() {
        "srt" => crate::stream::subtitles::srt_to_vtt(&text),
        "vtt" => text,
        _ => {
            return Err(ApiError::invalid(
                "subtitle_format",
                "Only SRT and WebVTT subtitles can be shown in the browser.",
            ));
        }
    };
    Ok(([(header::CONTENT_TYPE, "text/vtt; charset=utf-8")], vtt).into_response())
}

/// Browsing routes for anyone admitted, including a network allowed without sign-in (the
/// handlers take `Caller`, or `Owner` for creating a library).
pub fn admitted_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(items))
        .routes(routes!(browse_group))
        .routes(routes!(item))
        .routes(routes!(artwork))
        .routes(routes!(search))
}

/// Routes for signed-in users only: watch state belongs to an account.
pub fn signed_in_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(progress))
        .routes(routes!(watched))
        .routes(routes!(continue_watching))
}

/// Owner-only routes.
pub fn owner_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scan, scan_status))
}

/// Signed-link routes: no session, the signature is the credential.
pub fn media_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // axum answers HEAD with the GET handler; it sees the method and sends no body.
        .routes(routes!(stream))
        .routes(routes!(subtitle))
}
