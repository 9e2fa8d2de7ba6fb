//! Network & security settings and the device's certificates: thin handlers over
//! `net::rules` and `net::tls`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Owner;
use super::error::{ErrorBody, from_rejection};
use super::{ApiError, AppState};
use crate::net::rules::{NetSettings, NetSettingsPatch, RulesError};
use crate::net::tls::{CertInfo, TlsError};
use crate::net::{ClientInfo, ConnInfo, NetClass};

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

impl From<RulesError> for ApiError {
    fn from(e: RulesError) -> Self {
        match e {
            RulesError::Invalid { .. } => {
                ApiError::invalid("invalid_network_setting", e.to_string())
            }
            RulesError::WouldLockOut { message } => {
                ApiError::conflict("would_lock_you_out", message)
            }
            RulesError::Store(e) => ApiError::from(e),
        }
    }
}

impl From<TlsError> for ApiError {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Rejected(m) => ApiError::invalid("certificate_rejected", m),
            other => ApiError::internal(other),
        }
    }
}

/// How the request asking was classified.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ThisClient {
    pub address: String,
    pub class: NetClass,
    pub secure: bool,
}

impl From<&ClientInfo> for ThisClient {
    fn from(c: &ClientInfo) -> Self {
        ThisClient {
            address: c.addr.to_string(),
            class: c.class,
            secure: c.secure,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NetworkView {
    /// The rules themselves, at the top level (the fields PATCH takes).
    #[serde(flatten)]
    pub settings: NetSettings,
    /// This request's address and classification.
    pub this_client: ThisClient,
    /// The subnets of the device's own interfaces, re-detected while running.
    pub detected_lan_networks: Vec<String>,
    /// The port HTTPS answers on, if this server has an HTTPS listener.
    pub https_port: Option<u16>,
}

fn view(state: &AppState, client: &ClientInfo) -> NetworkView {
    NetworkView {
        settings: (*state.rules.snapshot()).clone(),
        this_client: client.into(),
        detected_lan_networks: state
            .rules
            .lan()
            .detected()
            .iter()
            .map(|n| n.to_string())
            .collect(),
        https_port: state.rules.https_port(),
    }
}

/// The network rules in force, this request's classification and the detected LAN.
#[utoipa::path(get, path = "/api/v1/settings/network", tag = "network",
    responses((status = 200, body = NetworkView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_network(State(state): State<AppState>, owner: Owner) -> Json<NetworkView> {
    Json(view(&state, &owner.viewer.client))
}

/// Changes the network rules; they apply from the next request. A change that would refuse
/// the owner's own current connection answers 409 unless `"confirm": true`.
#[utoipa::path(patch, path = "/api/v1/settings/network", tag = "network", request_body = NetSettingsPatch,
    responses((status = 200, body = NetworkView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_network(
    State(state): State<AppState>,
    owner: Owner,
    axum::Extension(conn): axum::Extension<ConnInfo>,
    headers: HeaderMap,
    body: JsonBody<NetSettingsPatch>,
) -> Result<Json<NetworkView>, ApiError> {
    let Json(patch) = body.map_err(from_rejection)?;
    let (rules, store) = (state.rules.clone(), state.store.clone());
    let client = owner.viewer.client;
    let proof = owner.proof;
    tokio::task::spawn_blocking(move || {
        rules.change(
            &store,
            &patch,
            (conn.peer.ip(), conn.secure, &headers),
            &proof,
            crate::model::clock::now_secs(),
        )
    })
    .await??;
    Ok(Json(view(&state, &client)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceCaView {
    pub fingerprint_sha256: String,
    /// Unix seconds.
    pub not_after: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TlsView {
    /// Whether this server answers HTTPS at all (listener configured and certificates ready).
    pub available: bool,
    /// The certificate new connections get.
    pub active: Option<CertInfo>,
    pub device_ca: Option<DeviceCaView>,
}

/// The certificate in use: names, expiry, fingerprint, and whether it is the device's own or
/// the owner's.
#[utoipa::path(get, path = "/api/v1/tls", tag = "network",
    responses((status = 200, body = TlsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_tls(State(state): State<AppState>, _owner: Owner) -> Result<Json<TlsView>, ApiError> {
    let Some(tls) = state.tls.clone() else {
        return Ok(Json(TlsView {
            available: false,
            active: None,
            device_ca: None,
        }));
    };
    let view = tokio::task::spawn_blocking(move || {
        let (fingerprint_sha256, not_after) = tls.ca_summary();
        TlsView {
            available: true,
            active: Some(tls.active()),
            device_ca: Some(DeviceCaView {
                fingerprint_sha256,
                not_after,
            }),
        }
    })
    .await?;
    Ok(Json(view))
}

/// The device CA, for the household to trust once. Only for devices on the LAN or the
/// device itself: the CA is what makes HTTPS trustworthy, so it is not handed out remotely.
#[utoipa::path(get, path = "/api/v1/tls/ca.pem", tag = "network",
    responses((status = 200, content_type = "application/x-pem-file", body = String),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn ca_pem(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientInfo>,
) -> Result<Response, ApiError> {
    if client.class == NetClass::Remote {
        return Err(ApiError::forbidden(
            "lan_only",
            "The device certificate authority can only be downloaded on the home network.",
        ));
    }
    let Some(tls) = state.tls.clone() else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "https_unavailable",
            "This server has no HTTPS listener, so there is no certificate authority to download.",
        ));
    };
    let pem = tokio::task::spawn_blocking(move || tls.ca_pem()).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"hearth-ca.pem\"",
            ),
        ],
        pem,
    )
        .into_response())
}

/// The device CA's revocation list (DER): device certificates it issued and then replaced.
/// Plain HTTP is fine (and expected): the list is signed by the CA.
#[utoipa::path(get, path = "/api/v1/tls/crl", tag = "network",
    responses((status = 200, content_type = "application/pkix-crl", body = Vec<u8>), (status = 404, body = ErrorBody)))]
async fn crl(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(tls) = state.tls.clone() else {
        return Err(ApiError::not_found());
    };
    let der =
        tokio::task::spawn_blocking(move || tls.crl_der(crate::model::clock::now_secs() as i64))
            .await??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pkix-crl"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        der,
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomCertificate {
    /// PEM: your certificate first, then its intermediates.
    pub chain: String,
    /// PEM: the unencrypted private key of the certificate.
    pub key: String,
}

/// Uses the owner's own certificate instead of the device's. Checked first: the key must
/// match, the chain must be in order and nothing may be expired.
#[utoipa::path(put, path = "/api/v1/tls/custom", tag = "network", request_body = CustomCertificate,
    responses((status = 200, body = CertInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_custom(
    State(state): State<AppState>,
    owner: Owner,
    body: JsonBody<CustomCertificate>,
) -> Result<Json<CertInfo>, ApiError> {
    let Json(upload) = body.map_err(from_rejection)?;
    let Some(tls) = state.tls.clone() else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "https_unavailable",
            "This server has no HTTPS listener; turn on `https` in its configuration first.",
        ));
    };
    let store = state.store.clone();
    let info = tokio::task::spawn_blocking(move || -> Result<CertInfo, ApiError> {
        let info = tls.set_custom(
            &owner.proof,
            &upload.chain,
            &upload.key,
            crate::model::clock::now_secs() as i64,
        )?;
        store.write(|tx| {
            tx.audit(
                crate::model::clock::now_secs(),
                "custom_certificate_installed",
                Some(owner.proof.user_id()),
                Some(owner.viewer.client.addr.to_string()),
                format!("{} ({})", info.subject, info.fingerprint_sha256),
            )
        })?;
        Ok(info)
    })
    .await??;
    Ok(Json(info))
}

/// Goes back to the device's own certificate.
#[utoipa::path(delete, path = "/api/v1/tls/custom", tag = "network",
    responses((status = 200, body = CertInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_custom(
    State(state): State<AppState>,
    owner: Owner,
) -> Result<Json<CertInfo>, ApiError> {
    let Some(tls) = state.tls.clone() else {
        return Err(ApiError::not_found());
    };
    let store = state.store.clone();
    let info = tokio::task::spawn_blocking(move || -> Result<CertInfo, ApiError> {
        tls.remove_custom(&owner.proof)?;
        store.write(|tx| {
            tx.audit(
                crate::model::clock::now_secs(),
                "custom_certificate_removed",
                Some(owner.proof.user_id()),
                Some(owner.viewer.client.addr.to_string()),
                "back to the device certificate",
            )
        })?;
        Ok(tls.active())
    })
    .await??;
    Ok(Json(info))
}

/// Anyone the network rules let in (the handler itself refuses remote clients).
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ca_pem))
        .routes(routes!(crl))
}

pub fn owner_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_network, patch_network))
        .routes(routes!(get_tls))
        .routes(routes!(put_custom, delete_custom))
}
