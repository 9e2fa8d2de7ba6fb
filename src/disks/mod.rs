//! Block devices and filesystems: discovery, mount plans, hot-plug, and requests to the
//! agent, which alone may mount.
//!
//! [`DiskMonitor`] polls cheaply (a `/sys/block` listing and the mount table, every two
//! seconds) and, when something changed, re-discovers and publishes the new state on a
//! `watch` channel plus added/removed events on a broadcast channel. A disk that comes back
//! and is remembered in the store is re-mounted at its old place through the agent.

// Discovery, superblocks and mount plans live in `blockdev` (the agent uses them too); the
// old paths stay.
pub use crate::blockdev::{discover, plan, superblock};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, watch};

pub use crate::blockdev::{Disk, FsType, Sysroot, Volume, find_uuid};

use crate::agent::client as agent;
use crate::store::Store;
use crate::store::disks::RememberedDisk;

/// How often the monitor looks for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What the monitor last saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskSnapshot {
    pub disks: Vec<Disk>,
    /// Filesystem UUID → mount points, for every attached filesystem with a UUID.
    pub online: BTreeMap<String, Vec<PathBuf>>,
    /// Filesystem UUID → (disk name, media sequence number), to tell a re-plug from nothing.
    pub media: BTreeMap<String, (String, Option<u64>)>,
}

impl DiskSnapshot {
    fn new(disks: Vec<Disk>) -> Self {
        let online = disks
            .iter()
            .flat_map(|d| &d.volumes)
            .filter_map(|v| v.uuid.clone().map(|u| (u, v.mount_points.clone())))
            .collect();
        let media = disks
            .iter()
            .flat_map(|d| {
                d.volumes
                    .iter()
                    .filter_map(|v| v.uuid.clone().map(|u| (u, (d.name.clone(), d.diskseq))))
            })
            .collect();
        DiskSnapshot {
            disks,
            online,
            media,
        }
    }

    pub fn is_online(&self, uuid: &str) -> bool {
        self.online.contains_key(uuid)
    }
}

/// A change the library (and the UI) cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskEvent {
    /// A filesystem appeared (plugged in, or present at start).
    Added { uuid: String },
    /// A filesystem disappeared: its libraries go offline, nothing is deleted.
    Removed { uuid: String },
    /// Mounted, unmounted or moved.
    MountsChanged {
        uuid: String,
        mount_points: Vec<PathBuf>,
    },
}

/// Pure: the events that turn `old` into `new`.
pub fn diff(old: &DiskSnapshot, new: &DiskSnapshot) -> Vec<DiskEvent> {
    let mut events = Vec::new();
    for (uuid, mps) in &new.online {
        let replugged = old.media.get(uuid) != new.media.get(uuid);
        match old.online.get(uuid) {
            None => events.push(DiskEvent::Added { uuid: uuid.clone() }),
            Some(_) if replugged => {
                events.push(DiskEvent::Removed { uuid: uuid.clone() });
                events.push(DiskEvent::Added { uuid: uuid.clone() });
            }
            Some(old_mps) if old_mps != mps => events.push(DiskEvent::MountsChanged {
                uuid: uuid.clone(),
                mount_points: mps.clone(),
            }),
            Some(_) => {}
        }
    }
    for uuid in old.online.keys() {
        if !new.online.contains_key(uuid) {
            events.push(DiskEvent::Removed { uuid: uuid.clone() });
        }
    }
    events
}

/// Cheap fingerprint of the block devices and mounts: names, sizes and the mount table.
/// No device is opened, so polling it every two seconds costs next to nothing.
pub fn fingerprint(sysroot: &Sysroot) -> String {
    let mut names = BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir(sysroot.sys_block()) {
        for e in rd.filter_map(|e| e.ok()).take(256) {
            let name = e.file_name().to_string_lossy().into_owned();
            let size = std::fs::read_to_string(e.path().join("size")).unwrap_or_default();
            let seq = std::fs::read_to_string(e.path().join("diskseq")).unwrap_or_default();
            let parts = std::fs::read_dir(e.path())
                .map(|rd| rd.filter_map(|e| e.ok()).take(256).count())
                .unwrap_or(0);
            names.insert(format!("{name}:{}:{}:{parts}", size.trim(), seq.trim()));
        }
    }
    let mounts = discover::mounts(sysroot);
    let mut out = names.into_iter().collect::<Vec<_>>().join(",");
    for m in mounts {
        out.push_str(&format!(";{}={}", m.dev_t, m.mount_point.display()));
    }
    out
}

/// Handle to the hot-plug monitor; cheap to clone.
#[derive(Clone)]
pub struct DiskMonitor {
    state: watch::Receiver<DiskSnapshot>,
    events: broadcast::Sender<DiskEvent>,
}

impl DiskMonitor {
    /// The current disks; `changed().await` on it to follow along.
    pub fn state(&self) -> watch::Receiver<DiskSnapshot> {
        self.state.clone()
    }

    /// Added/removed/mount events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DiskEvent> {
        self.events.subscribe()
    }

    /// Starts polling. With an agent, the full list (superblocks need root) comes from it;
    /// without one, discovery runs here with whatever this user can read. With a store,
    /// remembered disks are re-mounted at their old place when they appear.
    pub fn spawn(
        sysroot: Sysroot,
        agent: Option<agent::Client>,
        store: Option<Store>,
        interval: Duration,
    ) -> (DiskMonitor, tokio::task::JoinHandle<()>) {
        let (state_tx, state) = watch::channel(DiskSnapshot::default());
        let (events, _) = broadcast::channel(64);
        let monitor = DiskMonitor {
            state,
            events: events.clone(),
        };
        let task = tokio::spawn(async move {
            let mut last_print = String::new();
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let sr = sysroot.clone();
                let Ok(print) = tokio::task::spawn_blocking(move || fingerprint(&sr)).await else {
                    continue;
                };
                if print == last_print {
                    continue;
                }
                let Some(disks) = list(&sysroot, agent.as_ref()).await else {
                    continue;
                };
                last_print = print;
                let snapshot = DiskSnapshot::new(disks);
                let changes = diff(&state_tx.borrow(), &snapshot);
                state_tx.send_replace(snapshot.clone());
                for ev in changes {
                    tracing::info!(event = ?ev, "disk change");
                    if let (DiskEvent::Added { uuid }, Some(agent), Some(store)) =
                        (&ev, agent.as_ref(), store.as_ref())
                    {
                        remount_remembered(agent, store, &snapshot, uuid).await;
                    }
                    let _ = events.send(ev);
                }
            }
        });
        (monitor, task)
    }
}

/// The disk list from the agent, or local discovery without one. `None`: the agent failed
/// this time (the next poll tries again).
pub async fn list(sysroot: &Sysroot, agent: Option<&agent::Client>) -> Option<Vec<Disk>> {
    match agent {
        Some(a) => match a.list_disks().await {
            Ok(l) => Some(l.disks),
            Err(agent::ClientError::NoAgent) => local(sysroot).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list disks through the agent");
                None
            }
        },
        None => local(sysroot).await,
    }
}

async fn local(sysroot: &Sysroot) -> Option<Vec<Disk>> {
    let sr = sysroot.clone();
    tokio::task::spawn_blocking(move || discover(&sr))
        .await
        .ok()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Who asked for a mount or an eject, for the audit log.
#[derive(Debug, Clone)]
pub struct Requester {
    pub user_id: u64,
    pub address: String,
}

/// Records a mount the owner asked for, so the disk comes back at the same place, and
/// audits it, in one transaction.
pub fn record_mount(
    store: &Store,
    uuid: &str,
    mount_point: &std::path::Path,
    label: Option<String>,
    read_only: bool,
    by: &Requester,
) -> Result<(), crate::store::StoreError> {
    let at = now();
    let rec = RememberedDisk {
        uuid: uuid.to_owned(),
        mount_point: mount_point.display().to_string(),
        label,
        read_only,
        last_seen: at,
    };
    store.write(|tx| {
        tx.remember_disk(&rec)?;
        tx.audit(
            at,
            "disk_mounted",
            Some(by.user_id),
            Some(by.address.clone()),
            format!(
                "{uuid} at {} ({})",
                rec.mount_point,
                if read_only { "read-only" } else { "read-write" }
            ),
        )
    })
}

/// Audits an eject. The disk stays remembered, so it comes back at the same place.
pub fn record_eject(
    store: &Store,
    uuid: &str,
    by: &Requester,
) -> Result<(), crate::store::StoreError> {
    store.write(|tx| {
        tx.audit(
            now(),
            "disk_ejected",
            Some(by.user_id),
            Some(by.address.clone()),
            uuid.to_owned(),
        )
    })
}

async fn remount_remembered(
    agent: &agent::Client,
    store: &Store,
    snapshot: &DiskSnapshot,
    uuid: &str,
) {
    let (store2, u) = (store.clone(), uuid.to_owned());
    let Ok(Ok(Some(mut rec))) =
        tokio::task::spawn_blocking(move || store2.read(|r| r.remembered_disk(&u))).await
    else {
        return;
    };
    rec.last_seen = now();
    let mounted = snapshot.online.get(uuid).is_some_and(|mps| !mps.is_empty());
    if !mounted {
        let name = std::path::Path::new(&rec.mount_point)
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned);
        match agent.mount(uuid, rec.read_only, name.as_deref()).await {
            Ok(m) => {
                tracing::info!(uuid, mount_point = %m.mount_point.display(), "re-mounted a known disk");
                rec.mount_point = m.mount_point.display().to_string();
            }
            Err(e) => {
                tracing::warn!(uuid, error = %e, "cannot re-mount a known disk");
            }
        }
    }
    let store = store.clone();
    let _ = tokio::task::spawn_blocking(move || store.write(|tx| tx.remember_disk(&rec))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(items: &[(&str, &[&str])]) -> DiskSnapshot {
        DiskSnapshot {
            disks: Vec::new(),
            online: items
                .iter()
                .map(|(u, m)| (u.to_string(), m.iter().map(PathBuf::from).collect()))
                .collect(),
            media: items
                .iter()
                .map(|(u, _)| (u.to_string(), ("sda".to_owned(), Some(1))))
                .collect(),
        }
    }

    #[test]
    fn diffs() {
        let a = snap(&[("A", &[]), ("B", &["/media/B"])]);
        let b = snap(&[("B", &[]), ("C", &[])]);
        assert_eq!(
            diff(&a, &b),
            vec![
                DiskEvent::MountsChanged {
                    uuid: "B".into(),
                    mount_points: vec![]
                },
                DiskEvent::Added { uuid: "C".into() },
                DiskEvent::Removed { uuid: "A".into() },
            ]
        );
        assert_eq!(diff(&b, &b), vec![]);
        // The same filesystem on a new medium (pulled and re-plugged between two polls).
        let mut c = b.clone();
        c.media.insert("C".into(), ("sda".into(), Some(2)));
        assert_eq!(
            diff(&b, &c),
            vec![
                DiskEvent::Removed { uuid: "C".into() },
                DiskEvent::Added { uuid: "C".into() },
            ]
        );
        assert!(b.is_online("C") && !b.is_online("A"));
    }

    /// Hot-plug over a fixture tree: a disk appears, then is pulled.
    #[tokio::test]
    async fn monitor_notices_plug_and_pull() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("sys/block")).unwrap();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        let (mon, task) =
            DiskMonitor::spawn(Sysroot::new(root), None, None, Duration::from_millis(20));
        let mut events = mon.subscribe();
        // Plug: a whole-disk ext4 "device" appears.
        let img = root.join("dev/sdc");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let ok = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-U", "11111111-2222-3333-4444-555555555555"])
            .arg(&img)
            .status()
            .expect("mkfs.ext4 missing; run scripts/install-deps");
        assert!(ok.success());
        std::fs::create_dir_all(root.join("sys/block/sdc")).unwrap();
        std::fs::write(root.join("sys/block/sdc/size"), "16384").unwrap();
        std::fs::write(root.join("sys/block/sdc/dev"), "8:32").unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("no event after plugging in")
            .unwrap();
        let uuid = "11111111-2222-3333-4444-555555555555".to_owned();
        assert_eq!(ev, DiskEvent::Added { uuid: uuid.clone() });
        assert!(mon.state().borrow().is_online(&uuid));
        // Pull.
        std::fs::remove_dir_all(root.join("sys/block/sdc")).unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("no event after pulling")
            .unwrap();
        assert_eq!(ev, DiskEvent::Removed { uuid: uuid.clone() });
        assert!(!mon.state().borrow().is_online(&uuid));
        task.abort();
    }
}
