//! The household: managed profiles, the guest, friends and invites, PINs, profile
//! switching, home mode and two-factor sign-in.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Owner, Viewer, signed_in_cookies};
use super::error::{ErrorBody, from_rejection};
use super::setup::SignedInView;
use super::{ApiError, AppState};
use crate::identity::household::HomeMode;
use crate::identity::{DeviceInfo, TotpEnrolment};
use crate::net::ClientInfo;
use crate::store::users::{Role, UserRecord};

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserDetail {
    id: u64,
    username: String,
    role: Role,
    /// False only for a guest profile that is turned off.
    enabled: bool,
    /// The owner suspended this user: no sign-in of any kind, their devices refused (but
    /// kept) until the owner lifts it.
    suspended: bool,
    has_pin: bool,
    two_factor: bool,
    email: Option<String>,
    created_at: u64,
    /// What this user may see (the owner is never restricted).
    restrictions: crate::policy::Restrictions,
    /// The preset whose rating, unrated and label rules `restrictions` has (`null`: custom).
    preset: Option<crate::policy::Preset>,
}

impl From<&UserRecord> for UserDetail {
    fn from(u: &UserRecord) -> Self {
        UserDetail {
            id: u.id,
            username: u.username.clone(),
            role: u.role,
            enabled: u.enabled,
            suspended: u.suspended,
            has_pin: u.pin_hash.is_some(),
            two_factor: u.totp.as_ref().is_some_and(|t| t.confirmed),
            email: u.email.clone(),
            created_at: u.created_at,
            restrictions: u.restrictions.clone(),
            preset: crate::policy::Preset::matching(&u.restrictions),
        }
    }
}

/// Everyone with an account or profile on this Hearth.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = [UserDetail]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<Vec<UserDetail>>, ApiError> {
    let identity = state.identity.clone();
    let users = tokio::task::spawn_blocking(move || identity.users()).await??;
    Ok(Json(users.iter().map(UserDetail::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NewUserKind {
    /// A household profile without a password.
    Managed,
    /// Turns the guest profile on (creating it the first time).
    Guest,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    kind: NewUserKind,
    /// The profile's name (managed profiles).
    #[serde(default)]
    name: Option<String>,
    /// Start from a preset: `little_kid`, `older_kid` or `teen`.
    #[serde(default)]
    preset: Option<crate::policy::Preset>,
}

/// Adds a managed profile, or turns the guest profile on. Friends join through invites.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserDetail), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    owner: Owner,
    body: JsonBody<NewUser>,
) -> Result<(StatusCode, Json<UserDetail>), ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let identity = state.identity.clone();
    let max = state.config.users.max_managed;
    let user = tokio::task::spawn_blocking(move || match input.kind {
        NewUserKind::Managed => {
            let name = input.name.unwrap_or_default();
            let user = identity.create_managed(&owner.proof, &name, max)?;
            match input.preset {
                Some(p) => identity.set_restrictions(&owner.proof, user.id, p.restrictions()),
                None => Ok(user),
            }
        }
        NewUserKind::Guest => identity.set_guest(&owner.proof, true),
    })
    .await??;
    household_changed(&state);
    Ok((StatusCode::CREATED, Json(UserDetail::from(&user))))
}

/// Home mode may have started or ended. Its DLNA effect is derived at every request from
/// the household and the owner's switch (`dlna::settings::is_active`), never written over
/// the owner's choice; only the SSDP announcer has to be told to look again.
fn household_changed(state: &AppState) {
    state.dlna.changed.notify_one();
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = u64, Path)),
    responses((status = 200, body = UserDetail), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    _owner: Owner,
    Path(id): Path<u64>,
) -> Result<Json<UserDetail>, ApiError> {
    let identity = state.identity.clone();
    let user = tokio::task::spawn_blocking(move || identity.user(id)).await??;
    Ok(Json(UserDetail::from(&user)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    name: Option<String>,
    /// Guest profile only: turn guest access on or off.
    #[serde(default)]
    enabled: Option<bool>,
    /// Suspend the user (`true`) or lift the suspension (`false`); never the owner. While
    /// suspended they cannot sign in in any way and their devices are refused; the devices
    /// are kept, so lifting it restores them. This is how to stop a person: blocking a
    /// device only stops that app's client id.
    #[serde(default)]
    suspended: Option<bool>,
    /// Replace the user's restrictions with a preset…
    #[serde(default)]
    preset: Option<crate::policy::Preset>,
    /// …or with these (`libraries`, `max_rating`, `unrated`, `labels_allow`, `labels_deny`,
    /// `schedule`).
    #[serde(default)]
    restrictions: Option<crate::policy::Restrictions>,
}

/// Renames a user, turns the guest on or off, suspends a user or lifts the suspension, or
/// changes their restrictions.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = u64, Path)), request_body = UserPatch,
    responses((status = 200, body = UserDetail), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_user(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<u64>,
    body: JsonBody<UserPatch>,
) -> Result<Json<UserDetail>, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let identity = state.identity.clone();
    let user = tokio::task::spawn_blocking(move || {
        let mut user = identity.user(id)?;
        if let Some(enabled) = input.enabled {
            if user.role != Role::Guest {
                return Err(crate::identity::IdentityError::Invalid {
                    code: "not_guest",
                    message: "Only the guest profile can be turned on and off; remove other users instead.".into(),
                });
            }
            user = identity.set_guest(&owner.proof, enabled)?;
        }
        if let Some(name) = input.name {
            user = identity.rename_user(&owner.proof, id, &name)?;
        }
        if let Some(suspended) = input.suspended {
            user = identity.set_suspended(&owner.proof, id, suspended)?;
        }
        if let Some(r) = input.preset.map(|p| p.restrictions()).or(input.restrictions) {
            user = identity.set_restrictions(&owner.proof, id, r)?;
        }
        Ok(user)
    })
    .await??;
    Ok(Json(UserDetail::from(&user)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ConfirmQuery {
    /// Must be `true`: removing a user deletes their devices and watch history for good.
    #[serde(default)]
    confirm: bool,
}

/// Removes a user with their devices, sessions and watch history, in one step.
/// Needs `?confirm=true`.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = u64, Path), ConfirmQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn delete_user(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<u64>,
    Query(q): Query<ConfirmQuery>,
) -> Result<StatusCode, ApiError> {
    if !q.confirm {
        return Err(ApiError::conflict(
            "confirmation_required",
            "Removing a user deletes their devices and watch history for good. Repeat the request with ?confirm=true to go ahead.",
        ));
    }
    let identity = state.identity.clone();
    tokio::task::spawn_blocking(move || {
        identity.remove_user(&owner.proof, id, |tx, user_id| {
            tx.delete_watch_of_user(user_id).map(|_| ())
        })
    })
    .await??;
    household_changed(&state);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinInput {
    /// Four digits, or `null` to clear the PIN.
    pin: Option<String>,
}

/// Sets or clears a PIN: the owner for any household profile, a user for themselves. The
/// guest and friends cannot have one (a PIN guards household profiles and turns home mode on).
#[utoipa::path(put, path = "/api/v1/users/{id}/pin", tag = "users", params(("id" = u64, Path)), request_body = PinInput,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_pin(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<u64>,
    body: JsonBody<PinInput>,
) -> Result<StatusCode, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    state
        .identity
        .set_pin(&viewer.actor, &viewer.ctx, id, input.pin)
        .await?;
    household_changed(&state);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Profile {
    id: u64,
    name: String,
    role: Role,
    has_pin: bool,
    /// The profile active on this device now.
    current: bool,
}

/// The profiles this device may switch to (the profile picker).
#[utoipa::path(get, path = "/api/v1/auth/profiles", tag = "auth",
    responses((status = 200, body = [Profile]), (status = 401, body = ErrorBody)))]
async fn profiles(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Json<Vec<Profile>>, ApiError> {
    let identity = state.identity.clone();
    let account_id = viewer.session.device.user_id;
    let users =
        tokio::task::spawn_blocking(move || -> Result<_, crate::identity::IdentityError> {
            let account = identity.user(account_id)?;
            if !matches!(account.role, Role::Owner | Role::Managed) {
                return Ok(Vec::new());
            }
            identity.users()
        })
        .await??;
    Ok(Json(
        users
            .iter()
            .filter(|u| match u.role {
                Role::Owner | Role::Managed => true,
                Role::Guest => u.enabled,
                Role::Friend => false,
            })
            .map(|u| Profile {
                id: u.id,
                name: u.username.clone(),
                role: u.role,
                has_pin: u.pin_hash.is_some(),
                current: u.id == viewer.user.id,
            })
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchInput {
    user_id: u64,
    #[serde(default)]
    pin: Option<String>,
}

/// Switches the profile on this signed-in home device. A profile with a PIN needs it;
/// wrong PINs are throttled per profile.
#[utoipa::path(post, path = "/api/v1/auth/switch", tag = "auth", request_body = SwitchInput,
    responses((status = 200, body = UserDetail), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn switch(
    State(state): State<AppState>,
    viewer: Viewer,
    body: JsonBody<SwitchInput>,
) -> Result<Json<UserDetail>, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let user = state
        .identity
        .switch_profile(
            &viewer.actor,
            &viewer.ctx,
            &viewer.session,
            input.user_id,
            input.pin,
            &viewer.client,
        )
        .await?;
    Ok(Json(UserDetail::from(&user)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteInput {
    /// A username or an e-mail address.
    invitee: String,
    /// Library ids to share, or omit for all libraries.
    #[serde(default)]
    libraries: Option<Vec<u64>>,
    /// How long the link works (default 72 hours).
    #[serde(default)]
    expires_in_hours: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InviteView {
    id: u64,
    invitee: String,
    libraries: Option<Vec<u64>>,
    created_at: u64,
    expires_at: u64,
    /// Only when just created: the secret part of the link, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// Only when just created: the path of the link to send.
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    /// Only when just created: the whole link through the device's public address, when it
    /// has one (remote access on, a port open on the router, a public address or name).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// Only when just created: that link as a QR code (SVG), for a phone to scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    qr_svg: Option<String>,
    /// Only when just created and there is no public address: why the link only works on the
    /// home network, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    outside_note: Option<String>,
}

impl InviteView {
    fn from(i: &crate::store::invites::InviteRecord, token: Option<String>) -> Self {
        InviteView {
            id: i.id,
            invitee: i.invitee.clone(),
            libraries: i.libraries.clone(),
            created_at: i.created_at,
            expires_at: i.expires_at,
            link: token.as_ref().map(|t| format!("/#/invite/{t}")),
            token,
            url: None,
            qr_svg: None,
            outside_note: None,
        }
    }

    /// Adds the full link through `reach`'s public address, or says why there is none.
    fn with_public(mut self, reach: &crate::reach::ReachView) -> Self {
        let Some(link) = &self.link else {
            return self;
        };
        match &reach.public_url {
            Some(base) => {
                let url = format!("{base}{link}");
                self.qr_svg = crate::identity::totp::qr_svg(&url).ok();
                self.url = Some(url);
            }
            None => {
                self.outside_note = Some(format!(
                    "This link only works on your home network: the device cannot be reached from outside yet. {}",
                    reach.not_reachable_because.clone().unwrap_or_default()
                ).trim().to_owned());
            }
        }
        self
    }
}

/// Invites a friend to chosen libraries with a link that expires and works once.
#[utoipa::path(post, path = "/api/v1/invites", tag = "users", request_body = InviteInput,
    responses((status = 201, body = InviteView), (status = 422, body = ErrorBody)))]
async fn create_invite(
    State(state): State<AppState>,
    owner: Owner,
    body: JsonBody<InviteInput>,
) -> Result<(StatusCode, Json<InviteView>), ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let identity = state.identity.clone();
    let (token, rec) = tokio::task::spawn_blocking(move || {
        identity.create_invite(
            &owner.proof,
            &input.invitee,
            input.libraries,
            input.expires_in_hours.unwrap_or(72),
        )
    })
    .await??;
    let reach = state.reach.view(state.rules.snapshot().remote_access);
    Ok((
        StatusCode::CREATED,
        Json(InviteView::from(&rec, Some(token)).with_public(&reach)),
    ))
}

/// Pending invites.
#[utoipa::path(get, path = "/api/v1/invites", tag = "users",
    responses((status = 200, body = [InviteView])))]
async fn list_invites(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<Vec<InviteView>>, ApiError> {
    let identity = state.identity.clone();
    let invites = tokio::task::spawn_blocking(move || identity.invites()).await??;
    Ok(Json(
        invites.iter().map(|i| InviteView::from(i, None)).collect(),
    ))
}

/// Withdraws a pending invite; its link stops working.
#[utoipa::path(delete, path = "/api/v1/invites/{id}", tag = "users", params(("id" = u64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_invite(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let identity = state.identity.clone();
    tokio::task::spawn_blocking(move || identity.revoke_invite(&owner.proof, id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInput {
    username: String,
    password: String,
    #[serde(default)]
    device: DeviceInfo,
}

/// Accepts an invite: creates the friend's account and signs them in.
#[utoipa::path(post, path = "/api/v1/invites/{token}/accept", tag = "users", params(("token" = String, Path)),
    request_body = AcceptInput,
    responses((status = 201, body = SignedInView), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn accept_invite(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientInfo>,
    Path(token): Path<String>,
    body: JsonBody<AcceptInput>,
) -> Result<Response, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let password = input.password.clone();
    let (user, _libraries) = state
        .identity
        .accept_invite(&token, &input.username, input.password, &client)
        .await?;
    let signed = state
        .identity
        .login(&user.username, password, None, input.device, client, None)
        .await?;
    let cookies = signed_in_cookies(&signed, client.secure);
    Ok((
        StatusCode::CREATED,
        cookies,
        Json(SignedInView {
            token: signed.token,
            user: (&signed.user).into(),
            device_id: signed.device.id,
        }),
    )
        .into_response())
}

/// Whether home mode is on, and why.
#[utoipa::path(get, path = "/api/v1/settings/home", tag = "users",
    responses((status = 200, body = HomeMode)))]
async fn home_mode(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<HomeMode>, ApiError> {
    let identity = state.identity.clone();
    Ok(Json(
        tokio::task::spawn_blocking(move || identity.home_mode()).await??,
    ))
}

/// Starts two-factor enrolment for the signed-in user.
#[utoipa::path(post, path = "/api/v1/me/totp", tag = "auth",
    responses((status = 200, body = TotpEnrolment), (status = 422, body = ErrorBody)))]
async fn totp_begin(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Json<TotpEnrolment>, ApiError> {
    let identity = state.identity.clone();
    Ok(Json(
        tokio::task::spawn_blocking(move || identity.totp_begin(viewer.user.id)).await??,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeInput {
    code: String,
}

/// Confirms two-factor enrolment with a code from the app.
#[utoipa::path(post, path = "/api/v1/me/totp/confirm", tag = "auth", request_body = CodeInput,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn totp_confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    body: JsonBody<CodeInput>,
) -> Result<StatusCode, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let identity = state.identity.clone();
    tokio::task::spawn_blocking(move || identity.totp_confirm(viewer.user.id, &input.code))
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns two-factor sign-in off (needs a current code or a recovery code).
#[utoipa::path(delete, path = "/api/v1/me/totp", tag = "auth", request_body = CodeInput,
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn totp_disable(
    State(state): State<AppState>,
    viewer: Viewer,
    body: JsonBody<CodeInput>,
) -> Result<StatusCode, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let identity = state.identity.clone();
    tokio::task::spawn_blocking(move || identity.totp_disable(viewer.user.id, &input.code))
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Blocks an app: this device is revoked (signed out), and sign-ins that present the same
/// client id are refused from now on. The app chooses its client id, so this does not stop a
/// person who signs in with another app: to stop a person, suspend their account
/// (`PATCH /api/v1/users/{id}` with `"suspended": true`).
#[utoipa::path(post, path = "/api/v1/devices/{id}/block", tag = "devices", params(("id" = u64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn block_device(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let identity = state.identity.clone();
    tokio::task::spawn_blocking(move || identity.block_client(&owner.proof, id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(accept_invite))
}

pub fn signed_in_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_pin))
        .routes(routes!(profiles))
        .routes(routes!(switch))
        .routes(routes!(totp_begin, totp_disable))
        .routes(routes!(totp_confirm))
}

pub fn owner_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, patch_user, delete_user))
        .routes(routes!(create_invite, list_invites))
        .routes(routes!(revoke_invite))
        .routes(routes!(home_mode))
        .routes(routes!(block_device))
}
