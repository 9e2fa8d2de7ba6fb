//! Installing an update on the appliance: the bundle (from the channel, or an uploaded
//! file) is verified here, written to the inactive slot by the root agent (which verifies
//! it again and reads the slot back), set up for a trial boot, and the device reboots.
//! At start, what the boot control reports (trial, rollback) is recorded for the owner.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::agent_writer::AgentSlotWriter;
use super::bundle::InstallPolicy;
use super::download::{self, Client, DownloadError, DownloadJob, Progress, Retry};
use super::keys::Keyring;
use super::service::{
    self, DeviceSlots, HistoryEntry, NO_AGENT, Pending, RollbackRecord, UpdateRecord,
};
use super::version::Version;
use crate::agent::protocol::{BootInfo, Request};
use crate::config::UpdatesConfig;
use crate::store::{Store, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstallState {
    Downloading,
    Verifying,
    Writing,
    Staged,
    Rebooting,
    Failed,
}

/// Progress of the install in `GET /api/v1/updates`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct InstallView {
    pub state: InstallState,
    /// The version being installed, once the bundle's signed header says.
    pub version: Option<String>,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub chunks_done: u64,
    pub chunks_total: u64,
    /// Chunks taken from the device's own slots instead of the network.
    pub chunks_reused: u64,
    pub bytes_per_second: u64,
    pub eta_seconds: Option<u64>,
    pub error: Option<String>,
    pub started_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Unavailable(String),
    #[error("an update is already being installed; wait for it to finish")]
    Busy,
    #[error("the channel offers no update; check for updates first")]
    NothingOffered,
    #[error(
        "version {offered} is not newer than the running {running}; tick \"allow downgrade\" to install it anyway"
    )]
    NotNewer { offered: Version, running: Version },
    #[error("no update is staged; install one first")]
    NothingStaged,
    #[error("the agent refused: {0}")]
    Agent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Job {
    state: InstallState,
    version: Option<String>,
    progress: Arc<Progress>,
    error: Option<String>,
    started_at: u64,
}

/// Where the install runs from: the device facts learnt at start and the current job.
#[derive(Clone)]
pub struct Installer {
    inner: Arc<Mutex<Inner>>,
    agent_socket: Option<PathBuf>,
}

struct Inner {
    slots: DeviceSlots,
    job: Option<Job>,
}

fn history(from: &str, to: &str, outcome: &str, note: String) -> HistoryEntry {
    HistoryEntry {
        at: crate::model::clock::now_secs(),
        from_version: from.to_owned(),
        to_version: to.to_owned(),
        outcome: outcome.to_owned(),
        note,
    }
}

impl Installer {
    pub fn new(agent_socket: Option<PathBuf>, slots: DeviceSlots) -> Installer {
        Installer {
            inner: Arc::new(Mutex::new(Inner { slots, job: None })),
            agent_socket,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn slots(&self) -> DeviceSlots {
        self.lock().slots.clone()
    }

    pub fn view(&self) -> Option<InstallView> {
        let inner = self.lock();
        let job = inner.job.as_ref()?;
        let p = job.progress.snapshot();
        let state = if job.state == InstallState::Downloading
            && job
                .progress
                .verifying
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            InstallState::Verifying
        } else {
            job.state
        };
        let running = matches!(
            state,
            InstallState::Downloading | InstallState::Writing | InstallState::Verifying
        );
        Some(InstallView {
            state,
            version: job.version.clone(),
            bytes_done: p.bytes_done,
            bytes_total: p.bytes_total,
            chunks_done: p.chunks_done,
            chunks_total: p.chunks_total,
            chunks_reused: p.chunks_local,
            bytes_per_second: if running { p.bytes_per_second } else { 0 },
            eta_seconds: if running { p.eta_seconds } else { None },
            error: job.error.clone(),
            started_at: job.started_at,
        })
    }

    /// The whole Updates view.
    pub fn updates_view(
        &self,
        config: &UpdatesConfig,
        store: &Store,
    ) -> Result<service::UpdatesView, StoreError> {
        let record = service::load_record(store)?;
        Ok(service::view(config, record, &self.slots(), self.view()))
    }

    fn socket(&self) -> Result<PathBuf, InstallError> {
        let inner = self.lock();
        if let Some(why) = &inner.slots.unavailable {
            return Err(InstallError::Unavailable(why.clone()));
        }
        self.agent_socket
            .clone()
            .ok_or_else(|| InstallError::Unavailable(NO_AGENT.into()))
    }

    /// Claims the job slot; refuses while another install runs.
    fn claim(
        &self,
        state: InstallState,
        version: Option<String>,
    ) -> Result<Arc<Progress>, InstallError> {
        let mut inner = self.lock();
        if let Some(job) = &inner.job
            && matches!(
                job.state,
                InstallState::Downloading
                    | InstallState::Writing
                    | InstallState::Verifying
                    | InstallState::Rebooting
            )
        {
            return Err(InstallError::Busy);
        }
        let progress = Arc::new(Progress::default());
        inner.job = Some(Job {
            state,
            version,
            progress: progress.clone(),
            error: None,
            started_at: crate::model::clock::now_secs(),
        });
        Ok(progress)
    }

    fn set_state(&self, state: InstallState, error: Option<String>) {
        if let Some(job) = self.lock().job.as_mut() {
            job.state = state;
            if error.is_some() {
                job.error = error;
            }
        }
    }

    fn set_version(&self, v: &Version) {
        if let Some(job) = self.lock().job.as_mut() {
            job.version = Some(v.to_string());
        }
    }

    /// Starts installing what the channel offers (202: progress by polling the view).
    pub fn start_download(
        &self,
        config: UpdatesConfig,
        store: Store,
        reboot: bool,
    ) -> Result<(), InstallError> {
        let socket = self.socket()?;
        let record = service::load_record(&store)?;
        let allow_downgrade = record.settings.allow_downgrade;
        let offered = record.offered.clone().ok_or(InstallError::NothingOffered)?;
        let running = self.slots().running_version();
        if offered.version == running || (offered.version < running && !allow_downgrade) {
            return Err(InstallError::NotNewer {
                offered: offered.version,
                running,
            });
        }
        let progress = self.claim(InstallState::Downloading, Some(offered.version.to_string()))?;
        let me = self.clone();
        tokio::spawn(async move {
            let (s2, p2, sock2, cfg2) = (
                store.clone(),
                progress.clone(),
                socket.clone(),
                config.clone(),
            );
            let result = tokio::task::spawn_blocking(move || {
                let keyring =
                    Keyring::load_dir(&cfg2.keyring).map_err(|e| DownloadError::Agent {
                        code: "keyring_unreadable".into(),
                        message: format!("the update keys cannot be read: {e}"),
                    })?;
                let client = Client::for_channel(&cfg2)?;
                let policy = InstallPolicy {
                    board: Some(service::device_board()),
                    running: Some(running),
                    allow_downgrade,
                };
                let job = DownloadJob {
                    client: &client,
                    bundle_url: &offered.bundle_url,
                    keyring: &keyring,
                    policy: &policy,
                    sources: &[],
                    store: &s2,
                    target: "agent",
                    progress: p2,
                    retry: Retry::default(),
                };
                let mut writer = AgentSlotWriter::new(&sock2, allow_downgrade);
                download::download(&job, &mut writer).map(|(meta, _)| meta.header.version)
            })
            .await;
            me.after_write(result, running, &store, &socket, reboot)
                .await;
        });
        Ok(())
    }

    /// Starts installing an uploaded bundle file (deleted afterwards).
    pub fn start_upload(
        &self,
        config: UpdatesConfig,
        store: Store,
        file: PathBuf,
        reboot: bool,
    ) -> Result<(), InstallError> {
        let socket = match self.socket() {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                return Err(e);
            }
        };
        let progress = match self.claim(InstallState::Writing, None) {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                return Err(e);
            }
        };
        let record = service::load_record(&store)?;
        let allow_downgrade = record.settings.allow_downgrade;
        let running = self.slots().running_version();
        let me = self.clone();
        tokio::spawn(async move {
            let (p2, sock2, f2, me2) = (progress.clone(), socket.clone(), file.clone(), me.clone());
            let result = tokio::task::spawn_blocking(move || {
                let keyring =
                    Keyring::load_dir(&config.keyring).map_err(|e| DownloadError::Agent {
                        code: "keyring_unreadable".into(),
                        message: format!("the update keys cannot be read: {e}"),
                    })?;
                let policy = InstallPolicy {
                    board: Some(service::device_board()),
                    running: Some(running),
                    allow_downgrade,
                };
                if let Ok(i) = super::bundle::inspect_file(&f2) {
                    me2.set_version(&i.header.version);
                }
                let mut writer = AgentSlotWriter::new(&sock2, allow_downgrade);
                let r = download::install_file(&f2, &keyring, &policy, p2, &mut writer)
                    .map(|(meta, _)| meta.header.version);
                let _ = std::fs::remove_file(&f2);
                r
            })
            .await;
            me.after_write(result, running, &store, &socket, reboot)
                .await;
        });
        Ok(())
    }

    async fn after_write(
        &self,
        result: Result<Result<Version, DownloadError>, tokio::task::JoinError>,
        running: Version,
        store: &Store,
        socket: &std::path::Path,
        reboot: bool,
    ) {
        let version = match result {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return self.fail(store, running, e.to_string()).await,
            Err(e) => {
                return self
                    .fail(store, running, format!("the install task failed: {e}"))
                    .await;
            }
        };
        self.set_version(&version);
        let agent = crate::agent::client::Client::new(socket);
        if let Err(e) = agent
            .call::<BootInfo>(&Request::SetNextBoot { version })
            .await
        {
            return self
                .fail(
                    store,
                    running,
                    format!("the trial boot could not be set up: {e}"),
                )
                .await;
        }
        let (s2, from, to) = (store.clone(), running.to_string(), version.to_string());
        let recorded = tokio::task::spawn_blocking(move || {
            s2.write(|tx| {
                let mut rec: UpdateRecord = tx.ota_record_for_update()?.unwrap_or_default();
                rec.pending = Some(Pending {
                    from_version: from,
                    to_version: to,
                    at: crate::model::clock::now_secs(),
                });
                tx.ota_set_record(&rec)?;
                tx.ota_clear()
            })
        })
        .await;
        if !matches!(recorded, Ok(Ok(()))) {
            tracing::warn!(
                "the staged update could not be recorded; its outcome will not show in the history"
            );
        }
        tracing::info!(%version, "update staged for a trial boot");
        self.set_state(InstallState::Staged, None);
        if reboot && let Err(e) = self.reboot().await {
            tracing::warn!(error = %e, "the reboot into the new version failed");
        }
    }

    async fn fail(&self, store: &Store, running: Version, error: String) {
        tracing::warn!(%error, "update install failed");
        let to = self
            .lock()
            .job
            .as_ref()
            .and_then(|j| j.version.clone())
            .unwrap_or_else(|| "unknown".into());
        let (s2, e2) = (store.clone(), error.clone());
        let _ = tokio::task::spawn_blocking(move || {
            s2.write(|tx| {
                let mut rec: UpdateRecord = tx.ota_record_for_update()?.unwrap_or_default();
                rec.push_history(history(&running.to_string(), &to, "failed", e2));
                tx.ota_set_record(&rec)
            })
        })
        .await;
        self.set_state(InstallState::Failed, Some(error));
    }

    /// Reboots into the staged slot (on trial).
    pub async fn reboot(&self) -> Result<(), InstallError> {
        let socket = self.socket()?;
        {
            let mut inner = self.lock();
            match inner.job.as_mut() {
                Some(job)
                    if matches!(job.state, InstallState::Staged | InstallState::Rebooting) =>
                {
                    job.state = InstallState::Rebooting
                }
                _ => return Err(InstallError::NothingStaged),
            }
        }
        let agent = crate::agent::client::Client::new(socket);
        agent
            .call::<serde_json::Value>(&Request::Reboot {})
            .await
            .map_err(|e| {
                self.set_state(InstallState::Staged, None);
                InstallError::Agent(e.to_string())
            })?;
        Ok(())
    }
}

/// Works out, at start, what the boot control says: the running slot, a trial, a rollback.
/// Records a finished install or a rollback in the history once.
pub async fn learn_slots(
    agent: Option<&crate::agent::client::Client>,
    store: &Store,
) -> DeviceSlots {
    let Some(agent) = agent else {
        return DeviceSlots {
            boot: None,
            unavailable: Some(NO_AGENT.into()),
        };
    };
    let asked = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        agent.call::<BootInfo>(&Request::BootStatus {}),
    )
    .await;
    let info = match asked {
        Ok(Ok(info)) => info,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the agent cannot report the boot slots; updates cannot be installed");
            return DeviceSlots {
                boot: None,
                unavailable: Some(format!("Updates cannot be installed: {e}")),
            };
        }
        Err(_) => {
            return DeviceSlots {
                boot: None,
                unavailable: Some(
                    "Updates cannot be installed: the Hearth agent did not answer in time.".into(),
                ),
            };
        }
    };
    let (s2, i2) = (store.clone(), info.clone());
    let r = tokio::task::spawn_blocking(move || record_boot(&s2, &i2)).await;
    if !matches!(r, Ok(Ok(()))) {
        tracing::warn!("cannot record the boot status in the database");
    }
    tracing::info!(slot = ?info.slot, version = ?info.version, on_trial = info.on_trial, rollback = info.rollback.is_some(), "boot slots");
    DeviceSlots {
        boot: Some(info),
        unavailable: None,
    }
}

/// Applies what the boot control reported to the update record (one transaction).
pub fn record_boot(store: &Store, info: &BootInfo) -> Result<(), StoreError> {
    store.write(|tx| {
        let mut rec: UpdateRecord = tx.ota_record_for_update()?.unwrap_or_default();
        let running = info
            .version
            .map(|v| v.to_string())
            .unwrap_or_else(|| crate::model::build::version().to_owned());
        let pending = rec.pending.clone();
        if let Some(rb) = &info.rollback {
            let failed = rb.failed_version.map(|v| v.to_string());
            let expected = pending
                .as_ref()
                .is_some_and(|p| Some(&p.to_version) == failed.as_ref());
            let new = rec
                .last_rollback
                .as_ref()
                .is_none_or(|l| l.failed_version != failed);
            if expected || new {
                let at = crate::model::clock::now_secs();
                rec.last_rollback = Some(RollbackRecord {
                    at,
                    failed_version: failed.clone(),
                    reason: rb.reason.clone(),
                });
                rec.push_history(history(
                    &pending
                        .as_ref()
                        .map(|p| p.from_version.clone())
                        .unwrap_or_else(|| running.clone()),
                    failed.as_deref().unwrap_or("unknown"),
                    "rolled_back",
                    rb.reason.clone(),
                ));
                rec.pending = None;
            }
        } else if let Some(p) = &pending
            && p.to_version == running
        {
            rec.push_history(history(
                &p.from_version,
                &p.to_version,
                "installed",
                if info.on_trial {
                    format!(
                        "version {} started on trial; it is kept once it answers its health check",
                        p.to_version
                    )
                } else {
                    format!("version {} is installed and running", p.to_version)
                },
            ));
            rec.pending = None;
        }
        tx.ota_set_record(&rec)
    })
}
