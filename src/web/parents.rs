//! What a parent uses (owner only): the rating names of the owner's country, the labels in
//! the libraries and the presets for the restrictions editor; a preview of what restrictions
//! let through; and the owner's overrides of an item's rating, labels, title and year.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Owner;
use super::error::{ErrorBody, from_rejection};
use super::{ApiError, AppState};
use crate::library::parents::{self, LabelUse, ParentsError, Preview};
use crate::model::media::{ItemOverride, ScannedFacts};
use crate::policy::{Classification, Preset, Restrictions};

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn parents_error(e: ParentsError) -> ApiError {
    match e {
        ParentsError::NotFound => ApiError::not_found(),
        ParentsError::Invalid(e) => ApiError::invalid("invalid_override", e.to_string()),
        ParentsError::UnknownCountry(_) => ApiError::invalid("unknown_country", e.to_string()),
        ParentsError::BulkSize => ApiError::invalid("bulk_size", e.to_string()),
        ParentsError::Store(e) => ApiError::from(e),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Country {
    code: &'static str,
    name: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PresetInfo {
    id: Preset,
    /// The oldest age rating it lets through.
    max_age: u8,
    restrictions: Restrictions,
}

/// Everything the restrictions editor needs to show real limits.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RatingsInfo {
    /// The owner's country (`us` until chosen).
    country: String,
    countries: Vec<Country>,
    /// The country's film ratings, mildest first, each with the age it is meant for.
    films: Vec<Classification>,
    /// The country's TV ratings (the film table where one board rates both).
    tv: Vec<Classification>,
    presets: Vec<PresetInfo>,
    /// Labels on items in the libraries, with how many items carry each.
    labels: Vec<LabelUse>,
}

fn ratings_info(state: &AppState, owner: &Owner) -> Result<RatingsInfo, ApiError> {
    let country = parents::rating_country(&state.store)?;
    let (films, tv) = parents::systems(&country);
    Ok(RatingsInfo {
        countries: crate::policy::ratings::COUNTRIES
            .iter()
            .map(|&(code, name)| Country { code, name })
            .collect(),
        films: films.ratings().collect(),
        tv: tv.ratings().collect(),
        presets: Preset::ALL
            .into_iter()
            .map(|p| PresetInfo {
                id: p,
                max_age: p.max_age(),
                restrictions: p.restrictions(),
            })
            .collect(),
        labels: parents::labels(&state.store, &owner.proof)?,
        country,
    })
}

/// The rating names of the owner's country, the presets and the labels in the libraries.
#[utoipa::path(get, path = "/api/v1/settings/ratings", tag = "parents",
    responses((status = 200, body = RatingsInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_ratings(
    State(state): State<AppState>,
    owner: Owner,
) -> Result<Json<RatingsInfo>, ApiError> {
    let info = tokio::task::spawn_blocking(move || ratings_info(&state, &owner)).await??;
    Ok(Json(info))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountryInput {
    /// An ISO code from `countries`: `us`, `gb`, `de`, `fr`, `nl`, `au`, `ca`, `it`, `se`.
    country: String,
}

/// Picks the country whose rating names the editor shows. Ceilings are ages, so changing
/// the country changes no one's limits.
#[utoipa::path(put, path = "/api/v1/settings/ratings", tag = "parents", request_body = CountryInput,
    responses((status = 200, body = RatingsInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_ratings(
    State(state): State<AppState>,
    owner: Owner,
    body: JsonBody<CountryInput>,
) -> Result<Json<RatingsInfo>, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let info = tokio::task::spawn_blocking(move || {
        parents::set_rating_country(&state.store, &owner.proof, &input.country)
            .map_err(parents_error)?;
        ratings_info(&state, &owner)
    })
    .await??;
    Ok(Json(info))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    /// The restrictions to try (saved or not).
    restrictions: Restrictions,
}

/// What a profile with these restrictions would see, film by film and show by show, judged
/// by the same policy as real requests (viewing hours aside).
#[utoipa::path(post, path = "/api/v1/restrictions/preview", tag = "parents", request_body = PreviewInput,
    responses((status = 200, body = Preview), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn preview(
    State(state): State<AppState>,
    owner: Owner,
    body: JsonBody<PreviewInput>,
) -> Result<Json<Preview>, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let r = input
        .restrictions
        .checked()
        .map_err(|e| ApiError::invalid("invalid_restrictions", e.to_string()))?;
    let out = tokio::task::spawn_blocking(move || parents::preview(&state.store, &owner.proof, &r))
        .await??;
    Ok(Json(out))
}

/// An item's override next to what the scanner found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OverrideView {
    id: u64,
    /// The owner's corrections (`null`: none).
    overrides: Option<ItemOverride>,
    /// The facts as scanned.
    scanned: ScannedFacts,
}

fn override_view(item: &crate::library::ItemRecord) -> OverrideView {
    OverrideView {
        id: item.id,
        overrides: item.overrides.clone(),
        scanned: item.scanned_facts(),
    }
}

/// The owner's override of an item, and the scanned facts.
#[utoipa::path(get, path = "/api/v1/items/{id}/override", tag = "parents", params(("id" = u64, Path)),
    responses((status = 200, body = OverrideView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_override(
    State(state): State<AppState>,
    _owner: Owner,
    Path(id): Path<u64>,
) -> Result<Json<OverrideView>, ApiError> {
    let item = state
        .store
        .read(|rx| rx.item(id))?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(override_view(&item)))
}

/// Sets the owner's corrections of an item (fields left `null` keep the scanned value).
/// Kept by Hearth, never written into the media folder; every list, search, page, stream and
/// DLNA answer uses them at once.
#[utoipa::path(put, path = "/api/v1/items/{id}/override", tag = "parents", params(("id" = u64, Path)), request_body = ItemOverride,
    responses((status = 200, body = OverrideView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_override(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<u64>,
    body: JsonBody<ItemOverride>,
) -> Result<Json<OverrideView>, ApiError> {
    let Json(ov) = body.map_err(from_rejection)?;
    let item = tokio::task::spawn_blocking(move || {
        parents::set_override(&state.store, &owner.proof, id, Some(ov))
    })
    .await?
    .map_err(parents_error)?;
    Ok(Json(override_view(&item)))
}

/// Removes the owner's corrections: the item is as scanned again.
#[utoipa::path(delete, path = "/api/v1/items/{id}/override", tag = "parents", params(("id" = u64, Path)),
    responses((status = 200, body = OverrideView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_override(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<u64>,
) -> Result<Json<OverrideView>, ApiError> {
    let item = tokio::task::spawn_blocking(move || {
        parents::set_override(&state.store, &owner.proof, id, None)
    })
    .await?
    .map_err(parents_error)?;
    Ok(Json(override_view(&item)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkOverride {
    /// The items to change (1–1000); an unknown id changes nothing at all.
    ids: Vec<u64>,
    /// Fields to set on each (others keep what each item has).
    #[serde(default)]
    set: ItemOverride,
    /// Remove the overrides of these items instead.
    #[serde(default)]
    reset: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    changed: usize,
}

/// Changes the override of many items at once (a grid selection), all or nothing.
#[utoipa::path(post, path = "/api/v1/items/overrides", tag = "parents", request_body = BulkOverride,
    responses((status = 200, body = BulkResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn bulk(
    State(state): State<AppState>,
    owner: Owner,
    body: JsonBody<BulkOverride>,
) -> Result<Json<BulkResult>, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let changed = tokio::task::spawn_blocking(move || {
        parents::bulk_override(
            &state.store,
            &owner.proof,
            &input.ids,
            input.set,
            input.reset,
        )
    })
    .await?
    .map_err(parents_error)?;
    Ok(Json(BulkResult { changed }))
}

pub fn owner_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_ratings, put_ratings))
        .routes(routes!(preview))
        .routes(routes!(get_override, put_override, delete_override))
        .routes(routes!(bulk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn errors_map_to_statuses() {
        use axum::response::IntoResponse;
        for (e, status) in [
            (ParentsError::NotFound, StatusCode::NOT_FOUND),
            (
                ParentsError::Invalid(crate::model::media::OverrideError::EmptyTitle),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                ParentsError::UnknownCountry("jp".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (ParentsError::BulkSize, StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            assert_eq!(parents_error(e).into_response().status(), status);
        }
    }
}
