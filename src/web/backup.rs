//! Backups: the owner's schedule and downloads, and restoring (the owner's settings, or the
//! setup wizard of an unclaimed device). Thin: parse, call one `backup::` function, map.
//!
//! A backup file is uploaded as the raw request body; its passphrase comes in the
//! `Hearth-Passphrase` header, percent-encoded (UTF-8), so it never lands in a URL or a log.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Owner;
use super::error::from_rejection;
use super::{ApiError, AppState};
use crate::backup::schedule::{ScheduleInput, Status, View};
use crate::backup::{BackupError, Manifest, RestoreBy};
use crate::net::ClientInfo;

pub const SETUP_RESTORE_PATH: &str = "/api/v1/setup/restore";
pub const OWNER_RESTORE_PATH: &str = "/api/v1/backup/restore";
/// The wizard's search of the disks (mounts, Argon2id) and its restore (the whole file).
pub const SETUP_FIND_PATH: &str = "/api/v1/setup/backups";
pub const SETUP_RESTORE_FOUND_PATH: &str = "/api/v1/setup/backups/restore";
const PASSPHRASE_HEADER: &str = "hearth-passphrase";
const SETUP_CODE_HEADER: &str = "hearth-setup-code";
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

fn backup_error(e: BackupError) -> ApiError {
    let msg = e.to_string();
    match e {
        BackupError::NotABackup(_) => ApiError::invalid("not_a_backup", msg),
        BackupError::FormatTooNew(_) => ApiError::invalid("backup_format_too_new", msg),
        BackupError::WrongPassphrase => ApiError::invalid("wrong_passphrase", msg),
        BackupError::Damaged(_) => ApiError::invalid("backup_damaged", msg),
        BackupError::Truncated => ApiError::invalid("backup_truncated", msg),
        BackupError::Hostile(_) => ApiError::invalid("backup_refused", msg),
        BackupError::TooLarge(_) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "backup_too_large", msg)
        }
        BackupError::TooNew { .. } => ApiError::invalid("backup_too_new", msg),
        BackupError::NeedsLan => ApiError::forbidden("restore_needs_lan", msg),
        BackupError::WeakPassphrase(_) => ApiError::invalid("weak_passphrase", msg),
        BackupError::Invalid(_) => ApiError::invalid("invalid_input", msg),
        BackupError::Folder(_) => ApiError::invalid("backup_folder", msg),
        BackupError::Store(e) => e.into(),
        BackupError::Internal(_) | BackupError::Io(_) => ApiError::internal(msg),
    }
}

/// The percent-encoded passphrase header, decoded.
fn passphrase(headers: &HeaderMap) -> Result<String, ApiError> {
    let missing = || {
        ApiError::invalid(
            "passphrase_missing",
            "Give the backup's passphrase (the Hearth-Passphrase header, percent-encoded).",
        )
    };
    let raw = headers
        .get(PASSPHRASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).map_err(|_| missing())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| missing())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let p = String::from_utf8(out).map_err(|_| missing())?;
    if p.is_empty() {
        return Err(missing());
    }
    Ok(p)
}

/// Streams the body to `path`, at most `cap` bytes, dropping a stalled sender.
async fn receive(body: Body, path: &Path, cap: u64) -> Result<(), ApiError> {
    use http_body::Body as _;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "backup_too_large",
            format!("A backup file is at most {cap} bytes; this is not one. Nothing was changed."),
        )
    };
    if body.size_hint().lower() > cap {
        return Err(too_large());
    }
    let _ = tokio::fs::remove_file(path).await;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::store::perms::FILE_MODE)
        .open(path)
        .await
        .map_err(ApiError::internal)?;
    let mut body = body;
    let mut total = 0u64;
    loop {
        let frame = tokio::time::timeout(
            UPLOAD_IDLE,
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)),
        )
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "upload_stalled",
                "the upload stopped sending data; try again",
            )
        })?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            ApiError::bad_request("upload_broken", format!("the upload broke off: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > cap {
            return Err(too_large());
        }
        file.write_all(&data).await.map_err(ApiError::internal)?;
    }
    if total == 0 {
        return Err(ApiError::invalid(
            "empty_upload",
            "The upload is empty; send the backup file as the request body.",
        ));
    }
    file.flush().await.map_err(ApiError::internal)?;
    Ok(())
}

/// Receives the upload into the data directory, restores from it, removes it.
async fn restore_upload(
    state: &AppState,
    body: Body,
    pass: String,
    by: impl FnOnce(&crate::backup::Backups, &Path, &str) -> Result<Manifest, BackupError>
    + Send
    + 'static,
) -> Result<Manifest, ApiError> {
    // A name of its own: two uploads at once never share a file.
    let mut r = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r)
        .map_err(|_| ApiError::internal("the system random generator failed"))?;
    let path: PathBuf = state.config.data_dir.join(format!(
        "{}{}.hbk",
        crate::backup::restore::UPLOAD_PREFIX,
        hex::encode(r)
    ));
    let cap = crate::backup::MAX_FILE_BYTES.min(state.config.limits.upload_bytes);
    let result = match receive(body, &path, cap).await {
        Ok(()) => {
            let (backups, p) = (state.backups.clone(), path.clone());
            tokio::task::spawn_blocking(move || by(&backups, &p, &pass))
                .await
                .map_err(ApiError::from)
                .and_then(|r| r.map_err(backup_error))
        }
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_file(&path).await;
    result
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RestoreView {
    /// The verified backup that will be swapped in.
    manifest: Manifest,
    /// The server restarts now to finish; poll `/api/v1/setup` until it answers again.
    restarting: bool,
}

/// Restores a backup onto an unclaimed device (the setup wizard): only from the home network
/// or the device itself, and only with the setup code. The file is the raw body.
#[utoipa::path(post, path = "/api/v1/setup/restore", tag = "setup",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    params(("Hearth-Passphrase" = String, Header, description = "percent-encoded"),
        ("Hearth-Setup-Code" = String, Header)),
    responses((status = 202, body = RestoreView), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)))]
async fn setup_restore(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientInfo>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<RestoreView>), ApiError> {
    // The same guard as claiming: home network, unclaimed, the setup code, throttled.
    state.identity.check_code(&setup_code(&headers), client)?;
    let pass = passphrase(&headers)?;
    let manifest = restore_upload(&state, body, pass, move |b, p, pass| {
        b.restore(RestoreBy::SetupWizard, client.class, p, pass)
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RestoreView {
            manifest,
            restarting: true,
        }),
    ))
}

fn setup_code(headers: &HeaderMap) -> String {
    headers
        .get(SETUP_CODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn sources(state: &AppState) -> crate::backup::find::Sources<'_> {
    crate::backup::find::Sources {
        agent: state.agent.as_ref(),
        folders: &state.config.backup.restore_folders,
        data_dir: &state.config.data_dir,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindInput {
    /// The backups' passphrase: each one found is opened with it to show what it holds.
    passphrase: String,
}

/// Looks for backups on the disks plugged into an unclaimed device (a disk that is not
/// mounted is mounted read-only for the search and unmounted after) and in the folders the
/// config names, and shows what each one's manifest says. Only from the home network or the
/// device itself, and only with the setup code, as for claiming.
#[utoipa::path(post, path = "/api/v1/setup/backups", tag = "setup", request_body = FindInput,
    params(("Hearth-Setup-Code" = String, Header)),
    responses((status = 200, body = crate::backup::find::Search),
        (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)))]
async fn setup_find(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientInfo>,
    headers: HeaderMap,
    body: Result<Json<FindInput>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::backup::find::Search>, ApiError> {
    state.identity.check_code(&setup_code(&headers), client)?;
    let Json(input) = body.map_err(from_rejection)?;
    if input.passphrase.is_empty() {
        return Err(ApiError::invalid(
            "passphrase_missing",
            "Enter the backup's passphrase: it opens each backup found to show what it holds.",
        ));
    }
    let found = crate::backup::find::search(&sources(&state), input.passphrase)
        .await
        .map_err(backup_error)?;
    Ok(Json(found))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreFoundInput {
    /// The `id` of a backup `POST /api/v1/setup/backups` found.
    id: String,
    passphrase: String,
}

/// Restores a backup found on a disk (or a configured folder) onto an unclaimed device: it is
/// found again by its id, checked completely and staged, its disk unmounted if the search
/// mounted it, and the server restarts as the restored device.
#[utoipa::path(post, path = "/api/v1/setup/backups/restore", tag = "setup", request_body = RestoreFoundInput,
    params(("Hearth-Setup-Code" = String, Header)),
    responses((status = 202, body = RestoreView), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)))]
async fn setup_restore_found(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientInfo>,
    headers: HeaderMap,
    body: Result<Json<RestoreFoundInput>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<RestoreView>), ApiError> {
    state.identity.check_code(&setup_code(&headers), client)?;
    let Json(input) = body.map_err(from_rejection)?;
    if input.passphrase.is_empty() {
        return Err(ApiError::invalid(
            "passphrase_missing",
            "Enter the backup's passphrase.",
        ));
    }
    let backups = state.backups.clone();
    let pass = input.passphrase;
    let manifest = crate::backup::find::with_backup(&sources(&state), &input.id, move |path| {
        backups.stage(RestoreBy::SetupWizard, client.class, path, &pass)
    })
    .await
    .map_err(backup_error)?;
    // Staged, and the disk the search mounted is unmounted again: now the restart.
    state.backups.request_restart();
    Ok((
        StatusCode::ACCEPTED,
        Json(RestoreView {
            manifest,
            restarting: true,
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ConfirmQuery {
    /// Must be `replace-everything`.
    confirm: Option<String>,
}

/// Replaces everything on this device with a backup (owner, with confirmation). The file
/// is the raw body; the server restarts to finish.
#[utoipa::path(post, path = "/api/v1/backup/restore", tag = "backup",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    params(ConfirmQuery, ("Hearth-Passphrase" = String, Header, description = "percent-encoded")),
    responses((status = 202, body = RestoreView), (status = 401), (status = 403),
        (status = 409, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
async fn owner_restore(
    owner: Owner,
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientInfo>,
    Query(q): Query<ConfirmQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<RestoreView>), ApiError> {
    if q.confirm.as_deref() != Some("replace-everything") {
        return Err(ApiError::invalid(
            "confirmation_needed",
            "Restoring replaces everyone, every setting and all history on this device with the backup's. Confirm with ?confirm=replace-everything.",
        ));
    }
    let pass = passphrase(&headers)?;
    let proof = owner.proof;
    let manifest = restore_upload(&state, body, pass, move |b, p, pass| {
        b.restore(RestoreBy::Owner(&proof), client.class, p, pass)
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RestoreView {
            manifest,
            restarting: true,
        }),
    ))
}

/// The schedule, the last backups and a warning when none was made for a week.
#[utoipa::path(get, path = "/api/v1/backup", tag = "backup",
    responses((status = 200, body = View), (status = 401), (status = 403)))]
async fn view(owner: Owner, State(state): State<AppState>) -> Result<Json<View>, ApiError> {
    let b = state.backups.clone();
    let v = tokio::task::spawn_blocking(move || b.view(&owner.proof))
        .await?
        .map_err(backup_error)?;
    Ok(Json(v))
}

/// Sets scheduled backups (daily or weekly into a folder, keeping the last N).
#[utoipa::path(put, path = "/api/v1/backup/schedule", tag = "backup", request_body = ScheduleInput,
    responses((status = 200, body = View), (status = 401), (status = 403),
        (status = 422, body = super::error::ErrorBody)))]
async fn set_schedule(
    owner: Owner,
    State(state): State<AppState>,
    body: Result<Json<ScheduleInput>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<View>, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let b = state.backups.clone();
    let v = tokio::task::spawn_blocking(move || b.set_schedule(&owner.proof, input))
        .await?
        .map_err(backup_error)?;
    Ok(Json(v))
}

/// Makes a scheduled backup now.
#[utoipa::path(post, path = "/api/v1/backup/run", tag = "backup",
    responses((status = 200, body = Status), (status = 401), (status = 403),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
async fn run_now(owner: Owner, State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let b = state.backups.clone();
    let s = tokio::task::spawn_blocking(move || b.run_now(&owner.proof))
        .await?
        .map_err(backup_error)?;
    Ok(Json(s))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadInput {
    /// At least 10 characters; needed to restore, never stored.
    passphrase: String,
}

type Item = Result<Vec<u8>, BackupError>;

/// Writes bytes from a blocking thread into the response body.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Item>,
    buf: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| std::io::Error::other("the download was cancelled"))?;
        }
        Ok(())
    }
}

/// The response body: what the blocking thread sends. An error after the first bytes
/// breaks the connection, and a backup cut off there never verifies (no last chunk).
struct ChannelBody {
    first: Option<Vec<u8>>,
    rx: tokio::sync::mpsc::Receiver<Item>,
}

impl http_body::Body for ChannelBody {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        if let Some(f) = self.first.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(f.into()))));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(v))) => Poll::Ready(Some(Ok(http_body::Frame::data(v.into())))),
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Makes a backup now and downloads it. The passphrase is needed to restore it; Hearth
/// keeps no copy.
#[utoipa::path(post, path = "/api/v1/backup/download", tag = "backup", request_body = DownloadInput,
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401), (status = 403), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
async fn download(
    owner: Owner,
    State(state): State<AppState>,
    body: Result<Json<DownloadInput>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(input) = body.map_err(from_rejection)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(4);
    let b = state.backups.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::new(),
        };
        let result = b
            .download(&owner.proof, &input.passphrase, &mut w)
            .and_then(|_| Ok(std::io::Write::flush(&mut w)?));
        if let Err(e) = result {
            tracing::warn!(error = %e, "backup download failed");
            let _ = tx.blocking_send(Err(e));
        }
    });
    // The first bytes come after the key is derived: an error before them (a weak
    // passphrase, a busy device) is an ordinary error answer.
    let first = match rx.recv().await {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(backup_error(e)),
        None => return Err(ApiError::internal("the backup produced nothing")),
    };
    let name = format!(
        "{}{}.hbk",
        crate::backup::schedule::FILE_PREFIX,
        crate::model::clock::now_secs()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::new(ChannelBody {
            first: Some(first),
            rx,
        }),
    )
        .into_response())
}

pub fn setup_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(setup_restore))
        .routes(routes!(setup_find))
        .routes(routes!(setup_restore_found))
}

pub fn owner_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(view))
        .routes(routes!(set_schedule))
        .routes(routes!(run_now))
        .routes(routes!(download))
        .routes(routes!(owner_restore))
}
