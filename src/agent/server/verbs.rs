//! The agent's verbs: each one re-discovers the disks, re-validates its arguments against
//! what the kernel reports, computes a plan, checks it, and only then acts.
//!
//! Security-relevant: this code runs as root on behalf of the unprivileged server. It never
//! takes a device path or a mount point from the caller: a UUID is looked up among the
//! filesystems discovery finds, the device must be a block device under `/dev`
//! ([`BlockDevice`]), mount points are made only directly under the media root, and only
//! allow-listed filesystem types are mounted, always `nosuid,nodev,noexec`.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::SFlag;

use crate::agent::protocol::{DiskList, Ejected, Mounted, Unmounted};
use crate::blockdev::plan::{self, ALLOWED_FS, PlanError};
use crate::blockdev::{self as disks, Disk, Sysroot, Volume};

/// What the agent works on; fixed at start-up, never from a request.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub sysroot: Sysroot,
    /// Where mount points are made: `/media` in production, a temp dir in tests.
    pub media_root: PathBuf,
    /// Peers (by uid) that may call the agent.
    pub allowed_uids: Vec<u32>,
    /// Owner (uid, gid) of files on FAT/exFAT/NTFS mounts: the `hearth` user.
    pub mount_owner: Option<(u32, u32)>,
    /// A/B slots and boot control; `None` where there are none (the update verbs refuse).
    pub update: Option<super::update::UpdateConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no disk with filesystem UUID {0} is attached; refresh the disk list")]
    UnknownDisk(String),
    #[error("{0} is not a block device under /dev; refusing to touch it")]
    NotABlockDevice(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(
        "this disk is mounted by the system at {0}, outside Hearth's media folder; eject it there first"
    )]
    MountedElsewhere(String),
    #[error("this disk is in use (a file is open on it); stop playback or scans and try again")]
    Busy,
    #[error(
        "the kernel of this device cannot mount {0} filesystems; use ext4, or an image with that driver"
    )]
    KernelUnsupported(String),
    #[error("refusing to mount at {0}: not directly inside the media folder")]
    UnsafeMountPoint(String),
    #[error("{path} already exists in the media folder; remove it or rename the disk")]
    MountPointExists { path: String },
    #[error(
        "the kernel refused to mount the disk: {0}; run a filesystem check on another computer"
    )]
    MountFailed(String),
    #[error("the kernel refused to unmount {path}: {errno}")]
    UnmountFailed { path: String, errno: String },
    #[error(transparent)]
    Update(#[from] super::update::UpdateError),
    #[error("this agent does not manage time sync")]
    TimeSyncUnavailable,
    #[error(transparent)]
    TimeSync(#[from] crate::agent::timesync::SetError),
    #[error("the agent could not finish the request: {0}")]
    Io(#[from] std::io::Error),
}

impl AgentError {
    /// Stable snake_case reason for programs.
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::UnknownDisk(_) => "unknown_disk",
            AgentError::NotABlockDevice(_) => "not_a_block_device",
            AgentError::Plan(PlanError::NoFilesystem) => "no_filesystem",
            AgentError::Plan(PlanError::NotAllowed(_)) => "fs_not_allowed",
            AgentError::Plan(PlanError::NoFreeName) => "no_free_name",
            AgentError::MountedElsewhere(_) => "mounted_elsewhere",
            AgentError::Busy => "busy",
            AgentError::KernelUnsupported(_) => "kernel_unsupported",
            AgentError::MountPointExists { .. } => "mount_point_exists",
            AgentError::UnsafeMountPoint(_) => "unsafe_mount_point",
            AgentError::MountFailed(_) => "mount_failed",
            AgentError::UnmountFailed { .. } => "unmount_failed",
            AgentError::Update(e) => e.code(),
            AgentError::TimeSyncUnavailable => "time_sync_unavailable",
            AgentError::TimeSync(crate::agent::timesync::SetError::Invalid(_)) => "bad_time_sync",
            AgentError::TimeSync(crate::agent::timesync::SetError::Service(_)) => {
                "time_sync_failed"
            }
            AgentError::TimeSync(crate::agent::timesync::SetError::Io(_)) => "internal",
            AgentError::Io(_) => "internal",
        }
    }
}

/// A path that was checked to be a block device inside the device directory. The only way
/// to get one is [`BlockDevice::new`], and the only way to mount is with one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice(PathBuf);

impl BlockDevice {
    /// Accepts `path` only if it is absolute, has no `..`, resolves (through symlinks such as
    /// `/dev/disk/by-uuid/…`) to something inside `dev_root`, and `stat` says block device.
    pub fn new(dev_root: &Path, path: &Path) -> Result<BlockDevice, AgentError> {
        let refuse = || AgentError::NotABlockDevice(path.display().to_string());
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(refuse());
        }
        let root = std::fs::canonicalize(dev_root).map_err(|_| refuse())?;
        let real = std::fs::canonicalize(path).map_err(|_| refuse())?;
        if !real.starts_with(&root) || real == root {
            return Err(refuse());
        }
        let st = nix::sys::stat::stat(&real).map_err(|_| refuse())?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFBLK {
            return Err(refuse());
        }
        Ok(BlockDevice(real))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

pub fn list_disks(config: &AgentConfig) -> DiskList {
    DiskList {
        disks: disks::discover(&config.sysroot),
    }
}

fn find<'a>(disks: &'a [Disk], uuid: &str) -> Result<(&'a Disk, &'a Volume), AgentError> {
    // A UUID is short and plain; anything else cannot match and is not echoed at length.
    if uuid.is_empty() || uuid.len() > 64 {
        return Err(AgentError::UnknownDisk("(invalid)".into()));
    }
    disks::find_uuid(disks, uuid).ok_or_else(|| AgentError::UnknownDisk(uuid.to_owned()))
}

/// True when `p` is directly inside the media root (`/media/<name>`).
fn in_media(config: &AgentConfig, p: &Path) -> bool {
    p.parent() == Some(config.media_root.as_path())
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(plan::is_safe_name)
}

/// Mounts the filesystem with `uuid` under the media root.
pub fn mount(
    config: &AgentConfig,
    uuid: &str,
    read_only: bool,
    name: Option<&str>,
) -> Result<Mounted, AgentError> {
    // Discover: the caller's word counts for nothing until the kernel agrees.
    let disks = disks::discover(&config.sysroot);
    let (_, vol) = find(&disks, uuid)?;
    if let Some(mp) = vol.mount_points.iter().find(|m| in_media(config, m)) {
        return Ok(Mounted {
            mount_point: mp.clone(),
            already_mounted: true,
            read_only: vol.mounted_read_only,
        });
    }
    if let Some(mp) = vol.mount_points.first() {
        return Err(AgentError::MountedElsewhere(mp.display().to_string()));
    }
    // Plan.
    let mut taken: HashSet<String> = HashSet::new();
    if let Ok(rd) = std::fs::read_dir(&config.media_root) {
        for e in rd.filter_map(|e| e.ok()).take(10_000) {
            taken.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    let plan = plan::plan_mount(
        &config.media_root,
        &vol.device,
        vol.fs_type,
        uuid,
        vol.label.as_deref(),
        read_only,
        name,
        &taken,
        config.mount_owner,
    )?;
    // Check the plan's invariants.
    if !ALLOWED_FS.contains(&plan.fs_type) {
        return Err(PlanError::NotAllowed(plan.fs_type).into());
    }
    if !in_media(config, &plan.mount_point) {
        return Err(AgentError::UnsafeMountPoint(
            plan.mount_point.display().to_string(),
        ));
    }
    let device = BlockDevice::new(&config.sysroot.dev(), &plan.device)?;
    // Act.
    match std::fs::create_dir(&plan.mount_point) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(AgentError::MountPointExists {
                path: plan.mount_point.display().to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if plan.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let result = nix::mount::mount(
        Some(device.path()),
        &plan.mount_point,
        Some(plan.fs_type.kernel_name()),
        flags,
        plan.data.as_deref(),
    );
    if let Err(errno) = result {
        let _ = std::fs::remove_dir(&plan.mount_point);
        return Err(match errno {
            Errno::ENODEV => AgentError::KernelUnsupported(plan.fs_type.to_string()),
            Errno::EBUSY => AgentError::Busy,
            e => AgentError::MountFailed(e.desc().to_owned()),
        });
    }
    tracing::info!(uuid, device = %device.path().display(), mount_point = %plan.mount_point.display(), read_only, "mounted");
    Ok(Mounted {
        mount_point: plan.mount_point,
        already_mounted: false,
        read_only,
    })
}

fn unmount_volume(config: &AgentConfig, vol: &Volume) -> Result<Vec<PathBuf>, AgentError> {
    if let Some(outside) = vol.mount_points.iter().find(|m| !in_media(config, m)) {
        return Err(AgentError::MountedElsewhere(outside.display().to_string()));
    }
    let mut done = Vec::new();
    for mp in &vol.mount_points {
        match nix::mount::umount2(mp, MntFlags::empty()) {
            Ok(()) => {}
            Err(Errno::EBUSY) => return Err(AgentError::Busy),
            Err(e) => {
                return Err(AgentError::UnmountFailed {
                    path: mp.display().to_string(),
                    errno: e.desc().to_owned(),
                });
            }
        }
        // Only an empty directory goes; a non-empty one is someone else's.
        let _ = std::fs::remove_dir(mp);
        tracing::info!(mount_point = %mp.display(), "unmounted");
        done.push(mp.clone());
    }
    Ok(done)
}

/// Unmounts the filesystem with `uuid` (only from under the media root).
pub fn unmount(config: &AgentConfig, uuid: &str) -> Result<Unmounted, AgentError> {
    let disks = disks::discover(&config.sysroot);
    let (_, vol) = find(&disks, uuid)?;
    Ok(Unmounted {
        unmounted: unmount_volume(config, vol)?,
    })
}

/// Unmounts every filesystem on the disk holding `uuid`, flushes, and asks the kernel to
/// let go of the device so it can be unplugged.
pub fn eject(config: &AgentConfig, uuid: &str) -> Result<Ejected, AgentError> {
    let disks = disks::discover(&config.sysroot);
    let (disk, _) = find(&disks, uuid)?;
    // Check the whole disk first, so a refusal changes nothing.
    for v in &disk.volumes {
        if let Some(outside) = v.mount_points.iter().find(|m| !in_media(config, m)) {
            return Err(AgentError::MountedElsewhere(outside.display().to_string()));
        }
    }
    let mut unmounted = Vec::new();
    for v in &disk.volumes {
        unmounted.extend(unmount_volume(config, v)?);
    }
    nix::unistd::sync();
    let (powered_off, note) = if disk.usb {
        power_off_usb(&config.sysroot, &disk.name)
    } else {
        (
            false,
            "This is not a USB disk, so it stays attached; it is safe to detach now.".to_owned(),
        )
    };
    tracing::info!(disk = %disk.name, powered_off, "ejected");
    Ok(Ejected {
        unmounted,
        powered_off,
        note,
    })
}

/// Asks the kernel to drop a USB disk: the SCSI device first (it flushes the drive's cache
/// and stops it), then the USB device itself, where those sysfs files exist.
fn power_off_usb(sysroot: &Sysroot, disk: &str) -> (bool, String) {
    let sys = sysroot.sys_block().join(disk);
    let real = std::fs::canonicalize(&sys).ok();
    let mut done = false;
    if write_sys(&sys.join("device/delete"), "1") {
        done = true;
    }
    // The USB device is the nearest ancestor with an `idVendor` file.
    if let Some(real) = real {
        let sys_root = sysroot.root().join("sys");
        let usb_dev = real
            .ancestors()
            .take_while(|a| a.starts_with(&sys_root))
            .find(|a| a.join("idVendor").exists());
        if let Some(dev) = usb_dev
            && (write_sys(&dev.join("remove"), "1") || write_sys(&dev.join("authorized"), "0"))
        {
            done = true;
        }
    }
    if done {
        (
            true,
            "The disk was powered off; you can unplug it.".to_owned(),
        )
    } else {
        (
            false,
            "The disk was flushed and unmounted, but the kernel would not power it off; it is safe to unplug.".to_owned(),
        )
    }
}

fn write_sys(path: &Path, value: &str) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_device_refuses_anything_else() {
        let t = tempfile::tempdir().unwrap();
        let dev = t.path().join("dev");
        std::fs::create_dir(&dev).unwrap();
        std::fs::write(dev.join("sdz1"), b"not a device").unwrap();
        std::fs::write(t.path().join("outside"), b"x").unwrap();
        std::os::unix::fs::symlink(t.path().join("outside"), dev.join("link")).unwrap();
        let real_dev = Path::new("/dev");
        let cases: Vec<(PathBuf, &Path)> = vec![
            (dev.join("sdz1"), &dev),                        // regular file
            (dev.join("link"), &dev),                        // symlink out of /dev
            (dev.join("../outside"), &dev),                  // `..` out of /dev
            (PathBuf::from("dev/sdz1"), &dev),               // relative
            (dev.clone(), &dev),                             // the directory itself
            (dev.join("missing"), &dev),                     // does not exist
            (PathBuf::from("/dev/null"), real_dev),          // character device
            (PathBuf::from("/dev/../etc/passwd"), real_dev), // `..` again
            (PathBuf::from("/etc/passwd"), real_dev),        // outside
        ];
        for (path, root) in cases {
            let err = BlockDevice::new(root, &path).unwrap_err();
            assert_eq!(err.code(), "not_a_block_device", "{}", path.display());
        }
        // A real block device passes, when the machine has one we can name.
        if let Some(loop0) = ["/dev/loop0", "/dev/vda", "/dev/sda"]
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
        {
            assert_eq!(BlockDevice::new(real_dev, loop0).unwrap().path(), loop0);
        }
    }
}
