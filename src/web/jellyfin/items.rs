//! Browsing: views (the libraries this profile may open), items with paging, sorting and the
//! filters apps use, one item, "continue watching", latest, and artwork. Every list is read
//! through `library::visible::access` (policy's filters) at the domain call, so a hidden
//! title is in no answer, however the app asks.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::{JfViewer, check_user, client_auth, query_params, server_id};
use crate::compat::jellyfin::dto;
use crate::compat::jellyfin::ids::{JfId, Kind};
use crate::compat::jellyfin::query::{ItemsQuery, Params};
use crate::library::browse::{self, ItemQuery};
use crate::library::{ItemRecord, LibraryRecord};
use crate::net::ClientInfo;
use crate::stream::access::{self as door, Part};
use crate::stream::signed::{self, LinkKind};
use crate::web::auth::Viewer;
use crate::web::library::{SignedParams, access, open_error, open_linked, visible_item};
use crate::web::{ApiError, AppState};

/// The libraries this profile may open, as views.
fn visible_libraries(state: &AppState, viewer: &Viewer) -> Result<Vec<LibraryRecord>, ApiError> {
    let (lib_ok, _) = access(&viewer.actor, &viewer.ctx);
    Ok(browse::libraries(&state.store, lib_ok)?)
}

fn views_page(state: &AppState, viewer: &Viewer) -> Result<Value, ApiError> {
    let sid = server_id(state);
    let views: Vec<Value> = visible_libraries(state, viewer)?
        .iter()
        .map(|l| dto::view(l, &sid))
        .collect();
    let n = views.len();
    Ok(dto::page(views, n, 0))
}

pub(super) async fn views(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(views_page(&state, &viewer)?))
}

pub(super) async fn user_views(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_user(&viewer, &user_id)?;
    Ok(Json(views_page(&state, &viewer)?))
}

/// The image tag of an item's artwork: a signed link for this viewer and item, so the
/// image URLs apps build (`…/Images/Primary?tag=…`, often fetched without headers) open
/// through the door like any signed media link. `None` when the item has no artwork.
pub(super) fn image_tag(key: &[u8], viewer: &Viewer, item: &ItemRecord) -> Option<String> {
    item.artwork.as_ref()?;
    let p = SignedParams::for_viewer(key, &viewer.caller(), item.id);
    Some(format!("{}-{}-{}-{}", p.u, p.d, p.exp, p.sig))
}

fn parse_tag(tag: &str) -> Option<SignedParams> {
    let mut it = tag.splitn(4, '-');
    let u = it.next()?.parse().ok()?;
    let d = it.next()?.parse().ok()?;
    let exp = it.next()?.parse().ok()?;
    let sig = it.next()?.to_owned();
    Some(SignedParams { u, d, exp, sig })
}

/// Items as apps see them, with this user's watch state (one read for the page).
pub(super) fn item_dtos(
    state: &AppState,
    viewer: &Viewer,
    items: &[ItemRecord],
) -> Result<Vec<Value>, ApiError> {
    let key = signed::key(&state.store)?;
    let sid = server_id(state);
    let uid = viewer.user.id;
    let watch = state.store.read(|rx| {
        items
            .iter()
            .map(|i| rx.watch(uid, i.id))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(items
        .iter()
        .zip(watch)
        .map(|(i, w)| dto::item(i, &sid, w.as_ref(), image_tag(&key, viewer, i)))
        .collect())
}

/// `GET /Items`: by ids, by search term, under a view, or across every view this profile may
/// open; with no parent and not recursive, the views themselves (the root folder's children).
async fn query_items(state: AppState, viewer: Viewer, p: Params) -> Result<Value, ApiError> {
    let q = ItemsQuery::from_params(&p).map_err(|m| ApiError::invalid("invalid_query", m))?;
    if !q.ids.is_empty() {
        let mut found = Vec::new();
        for id in &q.ids {
            if let Some(id) = JfId::parse_as(id, Kind::Item)
                && let Ok(item) = visible_item(&state, &viewer.actor, &viewer.ctx, id)
                && q.kinds.admits(item.kind)
            {
                found.push(item);
            }
        }
        let total = found.len();
        let page: Vec<_> = found.into_iter().skip(q.start).take(q.limit).collect();
        return Ok(dto::page(
            item_dtos(&state, &viewer, &page)?,
            total,
            q.start,
        ));
    }
    let libs = visible_libraries(&state, &viewer)?;
    let lib_ids: Vec<u64> = match q.parent_id.as_deref().map(JfId::parse) {
        None => {
            if !q.recursive && q.search.is_none() {
                return views_page(&state, &viewer);
            }
            libs.iter().map(|l| l.id).collect()
        }
        Some(Some(JfId {
            kind: Kind::Library,
            id,
        })) if libs.iter().any(|l| l.id == id) => vec![id],
        // An item is no folder: nothing under it. Checked visible first, so a hidden id
        // answers exactly as a missing one.
        Some(Some(JfId {
            kind: Kind::Item,
            id,
        })) => {
            visible_item(&state, &viewer.actor, &viewer.ctx, id)?;
            return Ok(dto::page(vec![], 0, q.start));
        }
        _ => return Err(ApiError::not_found()),
    };
    let (_, item_ok) = access(&viewer.actor, &viewer.ctx);
    let store = state.store.clone();
    let (page, total) = if let Some(term) = q.search.clone() {
        let kinds = q.kinds.clone();
        let libs2 = lib_ids.clone();
        let found = tokio::task::spawn_blocking(move || {
            browse::search_in(
                &store,
                &term,
                crate::compat::jellyfin::query::MAX_LIMIT,
                |lib| libs2.contains(&lib),
                |i| lib_ids.contains(&i.library_id) && kinds.admits(i.kind) && item_ok(i),
            )
        })
        .await??;
        let total = found.len();
        (
            found.into_iter().skip(q.start).take(q.limit).collect(),
            total,
        )
    } else {
        let iq = ItemQuery {
            sort: q.sort,
            descending: q.descending,
            genre: None,
            kind: None,
            offset: q.start,
            limit: q.limit,
        };
        let kinds = q.kinds.clone();
        tokio::task::spawn_blocking(move || {
            browse::items_counted(&store, &lib_ids, &iq, |i| kinds.admits(i.kind), item_ok)
        })
        .await??
    };
    Ok(dto::page(
        item_dtos(&state, &viewer, &page)?,
        total,
        q.start,
    ))
}

pub(super) async fn items(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(query_items(state, viewer, query_params(&uri)).await?))
}

pub(super) async fn user_items(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path(user_id): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    check_user(&viewer, &user_id)?;
    Ok(Json(query_items(state, viewer, query_params(&uri)).await?))
}

/// One item, or one view.
async fn one(state: &AppState, viewer: &Viewer, id: &str) -> Result<Value, ApiError> {
    match JfId::parse(id) {
        Some(JfId {
            kind: Kind::Item,
            id,
        }) => {
            let item = visible_item(state, &viewer.actor, &viewer.ctx, id)?;
            let mut v = item_dtos(state, viewer, std::slice::from_ref(&item))?;
            v.pop().ok_or_else(ApiError::not_found)
        }
        Some(JfId {
            kind: Kind::Library,
            id,
        }) => visible_libraries(state, viewer)?
            .iter()
            .find(|l| l.id == id)
            .map(|l| dto::view(l, &server_id(state)))
            .ok_or_else(ApiError::not_found),
        _ => Err(ApiError::not_found()),
    }
}

pub(super) async fn item(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(one(&state, &viewer, &id).await?))
}

pub(super) async fn user_item(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path((user_id, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_user(&viewer, &user_id)?;
    Ok(Json(one(&state, &viewer, &id).await?))
}

/// "Continue watching": the one watch state the web app shows too.
async fn resume_page(state: AppState, viewer: Viewer, p: Params) -> Result<Value, ApiError> {
    let limit = p.number("Limit").ok().flatten().unwrap_or(20).min(100) as usize;
    let store = state.store.clone();
    let v2 = viewer.clone();
    let started = tokio::task::spawn_blocking(move || {
        crate::library::progress::continue_watching(&store, &v2.actor, &v2.ctx, v2.user.id, limit)
    })
    .await??;
    let items: Vec<ItemRecord> = started.into_iter().map(|(i, _)| i).collect();
    let n = items.len();
    Ok(dto::page(item_dtos(&state, &viewer, &items)?, n, 0))
}

pub(super) async fn resume(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(resume_page(state, viewer, query_params(&uri)).await?))
}

pub(super) async fn user_resume(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path(user_id): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    check_user(&viewer, &user_id)?;
    Ok(Json(resume_page(state, viewer, query_params(&uri)).await?))
}

/// Latest additions (a plain array, as Jellyfin answers), newest first.
async fn latest_items(state: AppState, viewer: Viewer, mut p: Params) -> Result<Value, ApiError> {
    let limit = p.number("Limit").ok().flatten().unwrap_or(16).min(100);
    p = Params::from_pairs(
        [
            ("SortBy", "DateCreated".to_owned()),
            ("SortOrder", "Descending".to_owned()),
            ("Recursive", "true".to_owned()),
            ("Limit", limit.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(
            ["ParentId", "IncludeItemTypes"]
                .into_iter()
                .filter_map(|k| p.get(k).map(|v| (k.to_owned(), v.to_owned()))),
        ),
    );
    let page = query_items(state, viewer, p).await?;
    Ok(page.get("Items").cloned().unwrap_or_else(|| json!([])))
}

pub(super) async fn latest(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(latest_items(state, viewer, query_params(&uri)).await?))
}

pub(super) async fn user_latest(
    State(state): State<AppState>,
    JfViewer(viewer): JfViewer,
    Path(user_id): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    check_user(&viewer, &user_id)?;
    Ok(Json(latest_items(state, viewer, query_params(&uri)).await?))
}

/// An item's primary image (its poster, cover or folder image), through the door: for a
/// signed-in app, policy's visibility then the race-proof open; for a bare URL, its tag is the
/// signed link `stream::access::open_for` checks (device still signed in, policy now).
async fn artwork(
    state: AppState,
    client: ClientInfo,
    headers: HeaderMap,
    uri: Uri,
    id: String,
    image_type: String,
) -> Result<Response, ApiError> {
    if image_type != "primary" {
        return Err(ApiError::not_found());
    }
    let id = JfId::parse_as(&id, Kind::Item).ok_or_else(ApiError::not_found)?;
    let opened = if let Some(token) = client_auth(&headers, &uri).token {
        let viewer = crate::web::auth::viewer_for_token(&state, client, token).await?;
        let item = visible_item(&state, &viewer.actor, &viewer.ctx, id)?;
        let store = state.store.clone();
        tokio::task::spawn_blocking(move || door::open_part(&store, item, Part::Artwork))
            .await?
            .map_err(|e| open_error(e, LinkKind::Api))?
    } else {
        let tag = query_params(&uri)
            .get("tag")
            .and_then(parse_tag)
            .ok_or_else(ApiError::unauthorized)?;
        open_linked(&state, client, id, &tag, Part::Artwork).await?
    };
    let (file, rel) = (opened.file, opened.rel_path);
    crate::stream::serve_file(
        file,
        crate::library::scan::content_type(&rel),
        &headers,
        false,
    )
    .map_err(ApiError::internal)
}

pub(super) async fn image(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, image_type)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    artwork(state, client, headers, uri, id, image_type).await
}

pub(super) async fn image_at(
    State(state): State<AppState>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, image_type, index)): Path<(String, String, u32)>,
) -> Result<Response, ApiError> {
    if index != 0 {
        return Err(ApiError::not_found());
    }
    artwork(state, client, headers, uri, id, image_type).await
}

/// Lists Hearth has nothing of yet (next up, genres): an empty page, for a signed-in app.
pub(super) async fn empty_page(JfViewer(_viewer): JfViewer) -> Json<Value> {
    Json(dto::page(vec![], 0, 0))
}

pub(super) async fn filters(JfViewer(_viewer): JfViewer) -> Json<Value> {
    Json(json!({"Genres": [], "Tags": [], "OfficialRatings": [], "Years": []}))
}
