//! Security-sensitive: who is making this request. Extractors that handlers take as
//! arguments, so a handler that needs a signed-in user or the owner cannot run without one.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::identity::Session;
use crate::net::{ClientInfo, NetClass};
use crate::policy::{self, Account, Actor, Context, DeviceStatus, OwnerProof, Presented};
use crate::store::users::UserRecord;

/// The web UI's session cookie.
pub const SESSION_COOKIE: &str = "hearth_session";

/// Any signed-in user (or the profile switched to on a signed-in device), admitted by
/// policy, with the facts policy needs to decide what they may do now.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: UserRecord,
    pub device_id: u64,
    pub client: ClientInfo,
    pub session: Session,
    pub actor: Actor,
    pub ctx: Context,
}

impl Viewer {
    /// The same signed-in user as a [`Caller`].
    pub fn caller(&self) -> Caller {
        Caller {
            user: self.user.clone(),
            device_id: Some(self.device_id),
            client: self.client,
            actor: self.actor.clone(),
            ctx: self.ctx,
        }
    }
}

/// Anyone policy admits to browse: a signed-in device, or (outside home mode) a client on a
/// network the owner allows without sign-in, acting as the profile chosen for it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRecord,
    /// `None` when acting for a network allowed without sign-in.
    pub device_id: Option<u64>,
    pub client: ClientInfo,
    pub actor: Actor,
    pub ctx: Context,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let caller = if token_of(&parts.headers).is_some() {
            Viewer::from_request_parts(parts, state).await?.caller()
        } else {
            let client = client_of(parts)?;
            let (identity, rules) = (state.identity.clone(), state.rules.clone());
            let offset = state.config.utc_offset_minutes;
            tokio::task::spawn_blocking(move || anonymous(&identity, &rules, client, offset))
                .await??
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// The caller without credentials: admitted only from a network allowed without sign-in,
/// never in home mode, as the profile the owner chose for that network.
fn anonymous(
    identity: &crate::identity::Identity,
    rules: &crate::net::rules::NetRules,
    client: ClientInfo,
    utc_offset_minutes: i32,
) -> Result<Caller, crate::identity::IdentityError> {
    use crate::net::rules::ProfileRef;
    use crate::store::users::Role;
    let ctx = identity.policy_context(client.class, utc_offset_minutes)?;
    let Some(profile) = rules.no_signin_profile(&client, ctx.home_mode) else {
        return Err(policy::Denied::NotSignedIn.into());
    };
    let user = match profile {
        ProfileRef::Guest => identity
            .users()?
            .into_iter()
            .find(|u| u.role == Role::Guest),
        ProfileRef::User(id) => identity.users()?.into_iter().find(|u| u.id == id),
    }
    .ok_or(policy::Denied::NotSignedIn)?;
    let presented = Presented::AllowedNetwork {
        profile: Account::from_user(&user, user.restrictions.clone()),
    };
    let actor = policy::admit(presented, &ctx)?;
    Ok(Caller {
        user,
        device_id: None,
        client,
        actor,
        ctx,
    })
}

/// Guards the routes anyone admitted may use (browsing, search, artwork).
pub async fn admitted(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    if let Err(e) = Caller::from_request_parts(&mut parts, &state).await {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// The owner, signed in: carries the [`OwnerProof`] that only policy hands out, which
/// owner-only domain functions require.
#[derive(Debug)]
pub struct Owner {
    pub viewer: Viewer,
    pub proof: OwnerProof,
}

pub fn client_of(parts: &Parts) -> Result<ClientInfo, ApiError> {
    parts
        .extensions
        .get::<ClientInfo>()
        .copied()
        .ok_or_else(|| ApiError::forbidden("no_client", "The client address is unknown."))
}

/// The bearer token, or else the session cookie.
pub fn token_of(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(t.trim().to_owned());
        }
        return None;
    }
    cookie_of(headers, SESSION_COOKIE)
}

/// The value of the cookie called `name`, if the request carries one.
pub fn cookie_of(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=')
                && k == name
            {
                return Some(val.to_owned());
            }
        }
    }
    None
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(v) = parts.extensions.get::<Viewer>() {
            return Ok(v.clone());
        }
        let client = client_of(parts)?;
        let Some(token) = token_of(&parts.headers) else {
            return Err(ApiError::unauthorized());
        };
        let viewer = viewer_for_token(state, client, token).await?;
        parts.extensions.insert(viewer.clone());
        Ok(viewer)
    }
}

/// The signed-in viewer a device token speaks for, admitted by policy now: what every front
/// end that takes device tokens (the web API, the Jellyfin API) resolves a token with.
pub async fn viewer_for_token(
    state: &AppState,
    client: ClientInfo,
    token: String,
) -> Result<Viewer, ApiError> {
    {
        let identity = state.identity.clone();
        let offset = state.config.utc_offset_minutes;
        let (session, ctx) = tokio::task::spawn_blocking(move || {
            let session = identity.authenticate(&token, &client)?;
            let ctx = identity.policy_context(client.class, offset)?;
            Ok::<_, crate::identity::IdentityError>((session, ctx))
        })
        .await??;
        let session = session.ok_or_else(ApiError::unauthorized)?;
        let presented = Presented::Device {
            status: DeviceStatus::Active,
            account: Account::from_user(&session.user, session.user.restrictions.clone()),
        };
        let actor = policy::admit(presented, &ctx)?;
        Ok(Viewer {
            user: session.user.clone(),
            device_id: session.device.id,
            client,
            session,
            actor,
            ctx,
        })
    }
}

impl FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        let proof = policy::require_owner(&viewer.actor)?;
        Ok(Owner { viewer, proof })
    }
}

/// Guards the owner group: the signed-in owner; before the device is claimed, only someone
/// on the device itself (there is no owner yet to sign in).
pub async fn owner_only(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let claimed = match state.identity.is_claimed() {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if !claimed {
        let local = parts
            .extensions
            .get::<ClientInfo>()
            .is_some_and(|c| c.class == NetClass::Local);
        if !local {
            return ApiError::forbidden(
                "owner_only",
                "This device is not claimed yet: finish the setup wizard first.",
            )
            .into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    if let Err(e) = Owner::from_request_parts(&mut parts, &state).await {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Guards the signed-in group.
pub async fn signed_in(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    if let Err(e) = Viewer::from_request_parts(&mut parts, &state).await {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` headers of a new sign-in: the session, and the known-device cookie that
/// keeps this browser on its own throttle lane for this account (sent only to sign-in).
pub fn signed_in_cookies(
    signed: &crate::identity::SignedIn,
    secure: bool,
) -> axum::response::AppendHeaders<[(header::HeaderName, String); 2]> {
    let known = format!(
        "{}={}; Path=/api/v1/auth; HttpOnly; SameSite=Strict; Max-Age=31536000{}",
        crate::identity::known::KNOWN_COOKIE,
        signed.known_cookie,
        if secure { "; Secure" } else { "" }
    );
    axum::response::AppendHeaders([
        (header::SET_COOKIE, session_cookie(&signed.token, secure)),
        (header::SET_COOKIE, known),
    ])
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn token_sources() {
        let mut h = HeaderMap::new();
        assert_eq!(token_of(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; hearth_session=hth_x"),
        );
        assert_eq!(token_of(&h).as_deref(), Some("hth_x"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer hth_y"),
        );
        assert_eq!(token_of(&h).as_deref(), Some("hth_y"), "header wins");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(
            token_of(&h),
            None,
            "a non-bearer header is not silently replaced by the cookie"
        );
    }

    #[test]
    fn cookie_flags() {
        let c = session_cookie("hth_t", true);
        for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(c.contains(flag), "{c}");
        }
        assert!(!session_cookie("hth_t", false).contains("Secure"));
    }
}
