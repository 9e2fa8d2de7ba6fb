//! Disks, for the owner: what is attached, mount (read-only or read-write) and eject.
//! The work happens in the agent; on a laptop there is none and the page says so.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Owner;
use super::error::{ErrorBody, from_rejection};
use super::{ApiError, AppState};
use crate::agent::client::ClientError;
use crate::agent::protocol::{Ejected, Mounted};
use crate::disks::{self, Disk};

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

const NO_AGENT_MESSAGE: &str =
    "Disk management needs the Hearth appliance; add folders by path instead.";

#[derive(Serialize, utoipa::ToSchema)]
pub struct DisksReply {
    /// Whether a disk agent is available to mount and eject.
    agent: bool,
    /// Why disks cannot be managed here, when `agent` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    disks: Vec<Disk>,
    /// Disks Hearth mounted before, attached or not: a pulled disk shows here as offline,
    /// and its libraries come back when it does.
    known: Vec<KnownDisk>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KnownDisk {
    uuid: String,
    label: Option<String>,
    /// Where it is mounted when attached.
    mount_point: String,
    read_only: bool,
    online: bool,
    /// Unix seconds when it was last seen attached.
    last_seen: u64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MountBody {
    /// Mount read-only (Hearth can then never change a file on the disk).
    read_only: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MountReply {
    mount_point: String,
    already_mounted: bool,
    read_only: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EjectReply {
    unmounted: Vec<String>,
    powered_off: bool,
    note: String,
}

fn agent_error(e: ClientError) -> ApiError {
    let msg = e.to_string();
    match e {
        ClientError::NoAgent => {
            ApiError::new(StatusCode::NOT_IMPLEMENTED, "no_agent", NO_AGENT_MESSAGE)
        }
        ClientError::Unreachable { .. } => {
            tracing::error!(error = %msg, "agent unreachable");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "agent_unavailable", msg)
        }
        ClientError::Timeout => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "agent_timeout", msg),
        ClientError::Protocol(_) => ApiError::internal(msg),
        ClientError::Refused { code, message } => match code.as_str() {
            "unknown_disk" => ApiError::new(StatusCode::NOT_FOUND, "unknown_disk", message),
            "busy" => ApiError::conflict("disk_busy", message),
            "mounted_elsewhere" => ApiError::conflict("mounted_elsewhere", message),
            "mount_point_exists" => ApiError::conflict("mount_point_exists", message),
            "no_free_name" => ApiError::conflict("no_free_name", message),
            "no_filesystem" => ApiError::invalid("no_filesystem", message),
            "fs_not_allowed" => ApiError::invalid("fs_not_allowed", message),
            "kernel_unsupported" => ApiError::invalid("kernel_unsupported", message),
            "not_a_block_device" => ApiError::invalid("not_a_block_device", message),
            "mount_failed" => ApiError::invalid("mount_failed", message),
            _ => ApiError::internal(format!("agent: {code}: {message}")),
        },
    }
}

/// Attached disks, their partitions, filesystems, mounts and free space.
#[utoipa::path(get, path = "/api/v1/disks", tag = "disks",
    responses((status = 200, body = DisksReply), (status = 401), (status = 403),
        (status = 503, body = ErrorBody)))]
async fn list(State(state): State<AppState>, _owner: Owner) -> Result<Json<DisksReply>, ApiError> {
    let sysroot = disks::Sysroot::default();
    let mut from_agent = None;
    if let Some(agent) = &state.agent {
        match agent.list_disks().await {
            Ok(l) => from_agent = Some(l.disks),
            Err(ClientError::NoAgent) => {}
            Err(e) => return Err(agent_error(e)),
        }
    }
    let agent = from_agent.is_some();
    let disks = match from_agent {
        Some(d) => d,
        // No agent: show what this (unprivileged) process can see, read-only.
        None => tokio::task::spawn_blocking(move || disks::discover(&sysroot)).await?,
    };
    let store = state.store.clone();
    let remembered =
        tokio::task::spawn_blocking(move || store.read(|r| r.remembered_disks())).await??;
    let known = remembered
        .into_iter()
        .map(|r| KnownDisk {
            online: disks::find_uuid(&disks, &r.uuid).is_some(),
            uuid: r.uuid,
            label: r.label,
            mount_point: r.mount_point,
            read_only: r.read_only,
            last_seen: r.last_seen,
        })
        .collect();
    Ok(Json(DisksReply {
        agent,
        message: (!agent).then(|| NO_AGENT_MESSAGE.into()),
        disks,
        known,
    }))
}

/// Mounts a filesystem (by its UUID) under the media folder.
#[utoipa::path(post, path = "/api/v1/disks/{id}/mount", tag = "disks",
    params(("id" = String, Path, description = "Filesystem UUID")), request_body = MountBody,
    responses((status = 200, body = MountReply), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 501, body = ErrorBody)))]
async fn mount(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    body: JsonBody<MountBody>,
) -> Result<Json<MountReply>, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let agent = state
        .agent
        .as_ref()
        .ok_or_else(|| agent_error(ClientError::NoAgent))?;
    let remembered_name = {
        let (store, uuid) = (state.store.clone(), id.clone());
        tokio::task::spawn_blocking(move || store.read(|r| r.remembered_disk(&uuid)))
            .await??
            .and_then(|r| {
                std::path::Path::new(&r.mount_point)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_owned)
            })
    };
    let m: Mounted = agent
        .mount(&id, input.read_only, remembered_name.as_deref())
        .await
        .map_err(agent_error)?;
    let label = state.disks.state().borrow().disks.iter().find_map(|d| {
        d.volumes
            .iter()
            .find(|v| v.uuid.as_deref() == Some(id.as_str()))
            .and_then(|v| v.label.clone())
    });
    let (store, uuid, mp, ro) = (
        state.store.clone(),
        id.clone(),
        m.mount_point.clone(),
        m.read_only,
    );
    let by = requester(&owner);
    tokio::task::spawn_blocking(move || disks::record_mount(&store, &uuid, &mp, label, ro, &by))
        .await??;
    Ok(Json(MountReply {
        mount_point: m.mount_point.display().to_string(),
        already_mounted: m.already_mounted,
        read_only: m.read_only,
    }))
}

/// Unmounts every filesystem of the disk holding this UUID, flushes it, and powers it off
/// where the kernel allows. The disk is remembered and comes back at the same place.
#[utoipa::path(post, path = "/api/v1/disks/{id}/eject", tag = "disks",
    params(("id" = String, Path, description = "Filesystem UUID")),
    responses((status = 200, body = EjectReply), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 501, body = ErrorBody)))]
async fn eject(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<EjectReply>, ApiError> {
    let agent = state
        .agent
        .as_ref()
        .ok_or_else(|| agent_error(ClientError::NoAgent))?;
    let e: Ejected = agent.eject(&id).await.map_err(agent_error)?;
    let (store, by) = (state.store.clone(), requester(&owner));
    tokio::task::spawn_blocking(move || disks::record_eject(&store, &id, &by)).await??;
    Ok(Json(EjectReply {
        unmounted: e
            .unmounted
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        powered_off: e.powered_off,
        note: e.note,
    }))
}

fn requester(owner: &Owner) -> disks::Requester {
    disks::Requester {
        user_id: owner.viewer.user.id,
        address: owner.viewer.client.addr.to_string(),
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(mount))
        .routes(routes!(eject))
}
