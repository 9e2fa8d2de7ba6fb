//! Security-sensitive: the agent's update verbs — writing the inactive A/B slot, setting the
//! trial boot, blessing or giving up on the running slot, rebooting.
//!
//! The unprivileged server never names a device, a partition or a path. The agent works
//! out the running slot from the boot control, writes only the other one, and re-checks
//! everything the server sends: the bundle metadata against the agent's own keyring (in
//! the read-only root), every chunk against the signed index before it is written, and
//! every payload, read back from the slot, against the signed header before the slot
//! counts as staged. Only a staged slot can be set up for a trial boot.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::boot::{BootControl, BootError, BootStatus, Slot, SystemdBoot, TrialSpec, Tryboot};
use super::verbs::BlockDevice;
pub use crate::agent::protocol::ranges;
use crate::agent::protocol::{
    BootInfo, MAX_SESSION_LINE, Response, Reused, RollbackInfo, SessionOp, Staged, Staging, True,
};
use crate::model::Version;
use crate::ota::Keyring;
use crate::ota::bundle::{self, BundleError, BundleMeta, InstallPolicy};
use crate::ota::local::scan_sources;

/// The EFI variable systemd-boot sets to the entry it booted.
const LOADER_ENTRY_SELECTED: &str =
    "/sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// Largest bundle metadata the agent reads (preamble + header + signatures + index).
pub const MAX_META: u64 = bundle::PREAMBLE_LEN as u64
    + bundle::MAX_HEADER_LEN as u64
    + bundle::SIG_BLOCK_LEN as u64
    + bundle::MAX_INDEX_LEN as u64;

/// What the agent updates, fixed at start-up from its command line; never from a request.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// This device's board; bundles for another board are refused.
    pub board: String,
    /// Trusted public keys (`*.pub`), in the read-only root.
    pub keyring_dir: PathBuf,
    pub boot: BootSetup,
    pub slots: SlotDevices,
    /// Root-only runtime state (the staged-slot record); `/run/hearth-agent`.
    pub state_dir: PathBuf,
    /// `/proc/sys/kernel/random/boot_id`: a staged record from an earlier boot is void.
    pub boot_id_path: PathBuf,
    pub reboot: RebootAction,
}

#[derive(Debug, Clone)]
pub enum BootSetup {
    /// UEFI + systemd-boot boot counting; kernels live on the ESP, one folder per version.
    SystemdBoot {
        esp: PathBuf,
        loader_entry: LoaderEntry,
    },
    /// Raspberry Pi firmware tryboot; boot files live on the A/B boot partitions (the
    /// `boot` payload is a whole FAT image of one), `autoboot.txt` on a small FAT of its own.
    Tryboot {
        /// Where the autoboot FAT is mounted ([`AUTOBOOT_DIR`] on the device).
        boot_dir: PathBuf,
        /// `/proc/device-tree/chosen/bootloader`: the partition the firmware booted, and
        /// whether it was a tryboot.
        bootloader_dir: PathBuf,
        /// Partition numbers of boot-a and boot-b.
        partitions: [u32; 2],
        /// The running root's os-release (`IMAGE_VERSION`, written by the image build):
        /// the firmware records no version.
        version_file: PathBuf,
        /// The kernel's symbol list ([`KERNEL_SYMBOLS`] on the device): a trial needs a
        /// kernel that passes `tryboot` on to the firmware when it reboots.
        kernel_symbols: PathBuf,
    },
}

/// The kernel's symbols, as the agent reads them.
pub const KERNEL_SYMBOLS: &str = "/proc/kallsyms";
/// Reboot hooks that set the firmware's one-shot tryboot flag through the mailbox when the
/// reboot argument contains " tryboot" (`systemctl reboot "0 tryboot"`): the Raspberry Pi
/// kernel's firmware driver has the first; the Hearth Pi images run Debian's (mainline)
/// kernel, which has no such hook and gives user space no way to the mailbox, and load the
/// `hearth_tryboot` module (image/tryboot) for the second.
pub const TRYBOOT_HOOKS: [&str; 2] = ["rpi_firmware_notify_reboot", "hearth_tryboot_notify"];

/// Whether the kernel whose symbols are listed in `kallsyms` passes `tryboot` on to the
/// Raspberry Pi firmware when it reboots (a loaded module's symbols are listed too).
pub fn kernel_passes_tryboot(kallsyms: &Path) -> bool {
    let Ok(f) = File::open(kallsyms) else {
        return false;
    };
    // "<address> <type> <name>[\t[<module>]]" per line.
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .any(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|name| TRYBOOT_HOOKS.contains(&name))
        })
}

/// Where the agent mounts the Raspberry Pi's autoboot partition (inside its root-only
/// runtime folder).
pub const AUTOBOOT_DIR: &str = "/run/hearth-agent/autoboot";
/// What the Raspberry Pi firmware reports about the boot it made.
pub const PI_BOOTLOADER_DIR: &str = "/proc/device-tree/chosen/bootloader";
/// The running root's version (`IMAGE_VERSION`), written by the image build.
pub const VERSION_FILE: &str = crate::model::build::OS_RELEASE;

/// Where the agent learns which systemd-boot entry is running.
#[derive(Debug, Clone)]
pub enum LoaderEntry {
    /// The `LoaderEntrySelected` EFI variable (the appliance).
    EfiVar,
    /// A fixed entry id: tests that stand in for the firmware. Not reachable from the
    /// command line.
    #[doc(hidden)]
    Fixed(String),
}

/// How partition labels become devices.
#[derive(Debug, Clone)]
pub enum SlotDevices {
    /// `<dev>/disk/by-partlabel/<label>`, which must resolve to a block device under `<dev>`.
    PartLabel { dev_root: PathBuf },
    /// Test only: `<dir>/<label>.img` regular files stand in for partitions. Nothing on
    /// the command line or in a config file selects this.
    #[doc(hidden)]
    TestFiles { dir: PathBuf },
}

#[derive(Debug, Clone)]
pub enum RebootAction {
    /// `systemctl reboot`: a clean shutdown.
    Systemctl,
    /// Test only: append a line to this file instead.
    #[doc(hidden)]
    TestRecord(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(
        "this machine has no A/B update slots (a laptop or a development box); updates install only on the Hearth appliance"
    )]
    NotUpdatable,
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("the update's trusted keys cannot be read: {0}")]
    Keyring(String),
    #[error(
        "the bundle metadata is {0} bytes, more than any valid bundle has; nothing was written"
    )]
    MetaTooLarge(u32),
    #[error("this bundle carries version {0}, which is already running; nothing was written")]
    SameVersion(Version),
    #[error(
        "the bundle has a `{0}` payload, which this device has no place for; it was made for another kind of board"
    )]
    UnknownPayload(String),
    #[error("the bundle lacks the `{0}` payload this device needs to boot a new version")]
    MissingPayload(String),
    #[error("payload `{slot}` is {size} bytes but partition {label} holds only {room}")]
    TooLarge {
        slot: String,
        label: String,
        size: u64,
        room: u64,
    },
    #[error("{0} is not a usable update slot: {1}")]
    BadSlot(String, String),
    #[error(
        "chunk {0} does not match the signed index; it was not written (the server sent altered data)"
    )]
    ChunkMismatch(u32),
    #[error("chunk {0} is not in this bundle")]
    NoSuchChunk(u32),
    #[error(
        "the slot does not read back as signed (payload `{0}`); it is not staged and will be written again"
    )]
    ReadBack(String),
    #[error(
        "nothing is staged for version {0}: write and verify the slot first (a reboot forgets a staged slot)"
    )]
    NotStaged(Version),
    #[error(
        "this kernel cannot start a trial boot: it does not pass `tryboot` on to the Raspberry Pi firmware when it reboots (neither the image's hearth_tryboot module nor the Raspberry Pi kernel's rpi_firmware_notify_reboot is loaded), so a new version would never be tried; nothing was written"
    )]
    NoTrialBoot,
    #[error("the running slot is not on trial; there is nothing to give up on")]
    NotOnTrial,
    #[error("no other slot has a bootable entry to fall back to; the running slot stays")]
    NoFallback,
    #[error("the session sent an invalid step: {0}")]
    Protocol(String),
    #[error("the agent could not finish the update step: {0}")]
    Io(#[from] std::io::Error),
}

/// The `IMAGE_VERSION` of the running root's os-release; `None` when the file is missing,
/// is not a Hearth image's, or the version is not `X.Y.Z`.
fn read_version_file(path: &Path) -> Option<Version> {
    let mut s = String::new();
    File::open(path)
        .ok()?
        .take(16 * 1024)
        .read_to_string(&mut s)
        .ok()?;
    crate::model::build::image_version(&s)?.parse().ok()
}

impl UpdateError {
    pub fn code(&self) -> &'static str {
        match self {
            UpdateError::NotUpdatable => "not_updatable",
            UpdateError::Boot(BootError::TargetIsRunning(_)) => "target_is_running",
            UpdateError::Boot(BootError::Damaged(_)) => "boot_damaged",
            UpdateError::Boot(BootError::Unknown(_)) => "boot_unknown",
            UpdateError::Boot(BootError::NothingToBless(_)) => "nothing_to_bless",
            UpdateError::Boot(BootError::Io { .. }) => "boot_io",
            UpdateError::Bundle(BundleError::NotNewer { .. }) => "not_newer",
            UpdateError::Bundle(BundleError::WrongBoard { .. }) => "wrong_board",
            UpdateError::Bundle(BundleError::RunningTooOld { .. }) => "running_too_old",
            UpdateError::Bundle(_) => "bundle_invalid",
            UpdateError::Keyring(_) => "keyring_unreadable",
            UpdateError::MetaTooLarge(_) => "request_too_large",
            UpdateError::SameVersion(_) => "same_version",
            UpdateError::UnknownPayload(_) | UpdateError::MissingPayload(_) => "wrong_payloads",
            UpdateError::TooLarge { .. } => "payload_too_large",
            UpdateError::BadSlot(..) => "bad_slot",
            UpdateError::ChunkMismatch(_) => "chunk_mismatch",
            UpdateError::NoSuchChunk(_) => "no_such_chunk",
            UpdateError::ReadBack(_) => "read_back_mismatch",
            UpdateError::NotStaged(_) => "not_staged",
            UpdateError::NoTrialBoot => "no_trial_boot",
            UpdateError::NotOnTrial => "not_on_trial",
            UpdateError::NoFallback => "no_fallback",
            UpdateError::Protocol(_) => "malformed_request",
            UpdateError::Io(_) => "internal",
        }
    }
}

/// Written after a slot passed its read-back check; `set_next_boot` needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StagedRecord {
    slot: Slot,
    version: Version,
    bundle: String,
    boot_id: String,
}

impl UpdateConfig {
    fn boot_id(&self) -> String {
        std::fs::read_to_string(&self.boot_id_path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    /// The systemd-boot entry the firmware booted.
    fn loader_selected(&self) -> Option<String> {
        match &self.boot {
            BootSetup::SystemdBoot {
                loader_entry: LoaderEntry::Fixed(s),
                ..
            } => Some(s.clone()),
            BootSetup::SystemdBoot { .. } => read_efi_string(Path::new(LOADER_ENTRY_SELECTED)),
            BootSetup::Tryboot { .. } => None,
        }
    }

    /// The boot control for this boot, built fresh for every verb (cheap; reads nothing yet).
    fn boot_control(&self) -> Result<Box<dyn BootControl>, UpdateError> {
        match &self.boot {
            BootSetup::SystemdBoot { esp, .. } => {
                let mut sb = SystemdBoot::new(esp, self.loader_selected());
                // New entries keep the running entry's kernel options (console, quiet, …).
                if let Some(opts) = running_entry_options(&sb)? {
                    sb.extra_options = opts;
                }
                Ok(Box::new(sb))
            }
            BootSetup::Tryboot { .. } => Ok(Box::new(self.tryboot()?)),
        }
    }

    /// The Raspberry Pi boot control (only for [`BootSetup::Tryboot`]).
    fn tryboot(&self) -> Result<Tryboot, UpdateError> {
        let BootSetup::Tryboot {
            boot_dir,
            bootloader_dir,
            partitions,
            version_file,
            ..
        } = &self.boot
        else {
            return Err(UpdateError::NotUpdatable);
        };
        let mut t = Tryboot::new(boot_dir, bootloader_dir, *partitions, &self.boot_id());
        t.running_version = read_version_file(version_file);
        Ok(t)
    }

    fn status(&self) -> Result<BootStatus, UpdateError> {
        Ok(self.boot_control()?.status()?)
    }

    /// Opens the partition with `label` for reading and writing; refuses anything that is
    /// not a block device under /dev (or, in tests, the configured file).
    fn open_partition(&self, label: &str) -> Result<(File, String), UpdateError> {
        let path = match &self.slots {
            SlotDevices::PartLabel { dev_root } => {
                let link = dev_root.join("disk/by-partlabel").join(label);
                let dev = BlockDevice::new(dev_root, &link)
                    .map_err(|e| UpdateError::BadSlot(label.to_owned(), e.to_string()))?;
                // Whatever the boot control says: a partition that is mounted (the running
                // root above all) is never written.
                if let Some(mp) = mounted_at(dev.path()) {
                    return Err(UpdateError::BadSlot(
                        label.to_owned(),
                        format!("it is mounted at {}", mp.display()),
                    ));
                }
                dev.path().to_path_buf()
            }
            SlotDevices::TestFiles { dir } => dir.join(format!("{label}.img")),
        };
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| UpdateError::BadSlot(label.to_owned(), e.to_string()))?;
        Ok((f, path.display().to_string()))
    }

    fn read_partition(&self, label: &str) -> Option<PathBuf> {
        match &self.slots {
            SlotDevices::PartLabel { dev_root } => {
                let link = dev_root.join("disk/by-partlabel").join(label);
                BlockDevice::new(dev_root, &link)
                    .ok()
                    .map(|d| d.path().to_path_buf())
            }
            SlotDevices::TestFiles { dir } => Some(dir.join(format!("{label}.img"))),
        }
    }

    fn staged_path(&self) -> PathBuf {
        self.state_dir.join("staged.json")
    }

    fn forget_staged(&self) -> Result<(), UpdateError> {
        match std::fs::remove_file(self.staged_path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn read_staged(&self) -> Option<StagedRecord> {
        let text = std::fs::read(self.staged_path()).ok()?;
        let r: StagedRecord = serde_json::from_slice(&text).ok()?;
        (r.boot_id == self.boot_id()).then_some(r)
    }

    fn write_staged(&self, r: &StagedRecord) -> Result<(), UpdateError> {
        std::fs::create_dir_all(&self.state_dir)?;
        let tmp = self.state_dir.join("staged.json.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(r).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.staged_path())?;
        Ok(())
    }
}

/// The Raspberry Pi tryboot setup of this machine, when it is one: the firmware reported
/// the partition it booted (`bootloader_dir`, `/proc/device-tree/chosen/bootloader`), and
/// one disk holds the partitions `autoboot`, `boot-a`, `boot-b`, `root-a` and `root-b`.
/// The autoboot FAT is mounted at `mount_dir` (root only) unless it is mounted already.
/// `Ok(None)`: no Raspberry Pi firmware. `Err`: a Pi whose layout cannot be updated safely.
pub fn detect_tryboot(
    dev_root: &Path,
    sys_block: &Path,
    bootloader_dir: &Path,
    mount_dir: &Path,
) -> Result<Option<BootSetup>, String> {
    if !bootloader_dir.is_dir() {
        return Ok(None);
    }
    let mut disk: Option<String> = None;
    let mut numbers = Vec::new();
    let mut autoboot = None;
    for label in ["autoboot", "boot-a", "boot-b", "root-a", "root-b"] {
        let link = dev_root.join("disk/by-partlabel").join(label);
        let dev = BlockDevice::new(dev_root, &link)
            .map_err(|_| format!("there is no partition labelled {label}"))?;
        let (d, n) = partition_of(sys_block, dev.path())?;
        match &disk {
            None => disk = Some(d),
            Some(first) if *first == d => {}
            Some(first) => {
                return Err(format!(
                    "partition {label} is on {d}, the others on {first} (two disks with Hearth's layout?)"
                ));
            }
        }
        numbers.push(n);
        if label == "autoboot" {
            autoboot = Some(dev);
        }
    }
    let autoboot = autoboot.ok_or("there is no partition labelled autoboot")?;
    let boot_dir = mount_autoboot(&autoboot, mount_dir)?;
    Ok(Some(BootSetup::Tryboot {
        boot_dir,
        bootloader_dir: bootloader_dir.to_path_buf(),
        partitions: [numbers[1], numbers[2]],
        version_file: PathBuf::from(VERSION_FILE),
        kernel_symbols: PathBuf::from(KERNEL_SYMBOLS),
    }))
}

/// The partition labels the agent's update setup looks up (UEFI: the root slots; Raspberry
/// Pi: those and the boot partitions).
pub const SLOT_LABELS: [&str; 5] = ["autoboot", "boot-a", "boot-b", "root-a", "root-b"];

/// The agent starts early in the boot, next to `hearth serve`, and udev may not yet have
/// made the `<dev_root>/disk/by-partlabel/` links of partitions the kernel already knows.
/// Waits, up to `timeout`, until every label in `labels` that a partition in `sys_block`
/// carries (`PARTNAME=` in its uevent) has its link; labels no partition carries are not
/// waited for. Returns the labels whose links are still missing.
pub fn wait_for_partition_links(
    dev_root: &Path,
    sys_block: &Path,
    labels: &[&str],
    timeout: std::time::Duration,
) -> Vec<String> {
    let start = std::time::Instant::now();
    loop {
        let known = partition_names(sys_block);
        let missing: Vec<String> = labels
            .iter()
            .filter(|l| known.iter().any(|k| k == *l))
            .filter(|l| {
                std::fs::symlink_metadata(dev_root.join("disk/by-partlabel").join(l)).is_err()
            })
            .map(|l| (*l).to_owned())
            .collect();
        if missing.is_empty() || start.elapsed() >= timeout {
            return missing;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The GPT partition names (`PARTNAME=`) the kernel reports under `sys_block`.
fn partition_names(sys_block: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for entry in dir.flatten() {
        let mut text = String::new();
        let read = File::open(entry.path().join("uevent"))
            .and_then(|f| f.take(4096).read_to_string(&mut text));
        if read.is_err() {
            continue;
        }
        if let Some(name) = text.lines().find_map(|l| l.strip_prefix("PARTNAME=")) {
            names.push(name.to_owned());
        }
    }
    names
}

/// The disk a partition device is on and its partition number, from sysfs:
/// `<sys_block>/<name>` links to `…/<disk>/<name>`, whose `partition` file holds the number.
pub fn partition_of(sys_block: &Path, dev: &Path) -> Result<(String, u32), String> {
    let name = dev
        .file_name()
        .ok_or_else(|| format!("{} names no device", dev.display()))?;
    let node = sys_block.join(name);
    let real = std::fs::canonicalize(&node)
        .map_err(|e| format!("cannot resolve {}: {e}", node.display()))?;
    let disk = real
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{} has no parent disk", real.display()))?;
    let mut text = String::new();
    File::open(real.join("partition"))
        .and_then(|f| f.take(16).read_to_string(&mut text))
        .map_err(|e| format!("{} is not a partition: {e}", dev.display()))?;
    let n = text
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{} has no partition number", dev.display()))?;
    Ok((disk, n))
}

/// Mounts the autoboot FAT at `dir` for root alone (`umask=0077`, no exec, no devices),
/// unless it is mounted read-write already (then that mount is used).
fn mount_autoboot(dev: &BlockDevice, dir: &Path) -> Result<PathBuf, String> {
    let st = nix::sys::stat::stat(dev.path())
        .map_err(|e| format!("cannot stat {}: {e}", dev.path().display()))?;
    let id = format!(
        "{}:{}",
        nix::sys::stat::major(st.st_rdev),
        nix::sys::stat::minor(st.st_rdev)
    );
    let mounts = crate::blockdev::discover::mounts(&crate::blockdev::Sysroot::default());
    if let Some(m) = mounts.iter().find(|m| m.dev_t == id) {
        if m.read_only {
            return Err(format!(
                "the autoboot partition is mounted read-only at {}",
                m.mount_point.display()
            ));
        }
        return Ok(m.mount_point.clone());
    }
    if let Some(m) = mounts.iter().find(|m| m.mount_point == dir) {
        return Err(format!(
            "{} is taken by {} already",
            dir.display(),
            m.source
        ));
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .and_then(|()| {
                std::fs::set_permissions(
                    parent,
                    <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
                )
            })
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    nix::mount::mount(
        Some(dev.path()),
        dir,
        Some("vfat"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC
            | nix::mount::MsFlags::MS_NOATIME,
        Some("uid=0,gid=0,umask=0077"),
    )
    .map_err(|e| {
        format!(
            "cannot mount the autoboot partition {} at {}: {}",
            dev.path().display(),
            dir.display(),
            e.desc()
        )
    })?;
    tracing::info!(device = %dev.path().display(), at = %dir.display(), "mounted the autoboot partition");
    Ok(dir.to_path_buf())
}

/// Where the block device `dev` is mounted, if anywhere (by device number, so any name of
/// it counts).
fn mounted_at(dev: &Path) -> Option<PathBuf> {
    let st = nix::sys::stat::stat(dev).ok()?;
    let id = format!(
        "{}:{}",
        nix::sys::stat::major(st.st_rdev),
        nix::sys::stat::minor(st.st_rdev)
    );
    crate::blockdev::discover::mounts(&crate::blockdev::Sysroot::default())
        .into_iter()
        .find(|m| m.dev_t == id)
        .map(|m| m.mount_point)
}

/// Reads a UTF-16LE EFI string variable (4 bytes of attributes first).
fn read_efi_string(path: &Path) -> Option<String> {
    let mut raw = Vec::new();
    File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut raw)
        .ok()?;
    let body = raw.get(4..)?;
    let units: Vec<u16> = body
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16(&units).ok()
}

/// The running entry's `options` without its `root=`, so a new entry boots like this one.
fn running_entry_options(sb: &SystemdBoot) -> Result<Option<String>, UpdateError> {
    let Some(selected) = sb.loader_entry_selected.as_deref() else {
        return Ok(None);
    };
    let id = super::boot::normalize_entry_id(selected);
    for e in sb.entries()? {
        if e.name.id() != id {
            continue;
        }
        let text = std::fs::read_to_string(sb.entries_dir().join(&e.file))?;
        let opts = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("options"))
            .map(|o| {
                o.split_whitespace()
                    .filter(|w| !w.starts_with("root="))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        return Ok(opts.filter(|o| !o.is_empty()));
    }
    Ok(None)
}

/// The running version: what the boot entry says, else this binary's.
fn running_version(status: &BootStatus) -> Version {
    status.version.unwrap_or_else(|| {
        crate::model::build::version()
            .parse()
            .unwrap_or(Version(0, 0, 0))
    })
}

pub fn boot_status(config: Option<&UpdateConfig>) -> Result<BootInfo, UpdateError> {
    let config = config.ok_or(UpdateError::NotUpdatable)?;
    let s = config.status()?;
    Ok(BootInfo {
        slot: s.current,
        version: s.version,
        on_trial: s.on_trial,
        rollback: s.rollback.map(|r| RollbackInfo {
            failed_version: r.failed_version,
            reason: r.reason,
        }),
    })
}

pub fn mark_good(config: Option<&UpdateConfig>) -> Result<BootInfo, UpdateError> {
    let c = config.ok_or(UpdateError::NotUpdatable)?;
    let before = boot_status(Some(c))?;
    c.boot_control()?.bless()?;
    tracing::info!(slot = ?before.slot, version = ?before.version, "the running slot is marked good");
    boot_status(Some(c))
}

/// Gives up on a slot on trial at once (systemd-boot: its tries are set to zero), so the
/// next boot returns to the old slot without spending the remaining tries.
pub fn mark_bad(config: Option<&UpdateConfig>) -> Result<BootInfo, UpdateError> {
    let c = config.ok_or(UpdateError::NotUpdatable)?;
    let status = c.status()?;
    if !status.on_trial {
        return Err(UpdateError::NotOnTrial);
    }
    match &c.boot {
        BootSetup::SystemdBoot { esp, .. } => {
            let selected = c.loader_selected();
            let sb = SystemdBoot::new(esp, selected.clone());
            let id = super::boot::normalize_entry_id(selected.as_deref().unwrap_or(""));
            let entry = sb
                .entries()?
                .into_iter()
                .find(|e| e.name.id() == id)
                .ok_or(UpdateError::NotOnTrial)?;
            // Only when something else can boot: a factory image's first entry is on trial
            // too, and giving up on the only entry would just boot it again.
            let fallback = sb
                .entries()?
                .iter()
                .any(|e| e.file != entry.file && !e.name.is_bad() && e.slot != entry.slot);
            if !fallback {
                return Err(UpdateError::NoFallback);
            }
            let mut bad = entry.name.clone();
            // systemd-boot already counted this boot (`+2-1`); none are left to spend.
            bad.tries_done = Some(bad.tries_done.unwrap_or(0).max(1));
            bad.tries_left = Some(0);
            let dir = sb.entries_dir();
            std::fs::rename(dir.join(&entry.file), dir.join(bad.file_name()))?;
            // The file too: on FAT its new directory entry gets its data only then.
            File::open(dir.join(bad.file_name()))?.sync_all()?;
            File::open(&dir)?.sync_all()?;
            tracing::warn!(entry = %entry.file, "the slot on trial is unhealthy; it will not be tried again");
        }
        // A Pi trial is one-shot already: the next boot returns to the committed slot.
        BootSetup::Tryboot { .. } => {}
    }
    boot_status(Some(c))
}

/// Reboots the device; only where the agent runs with an update setup (the appliance),
/// never on a development box.
///
/// On a Raspberry Pi with a trial set up during this boot, the reboot asks the firmware for
/// its one-shot `tryboot` (`systemctl reboot "0 tryboot"`: the kernel's Raspberry Pi firmware
/// driver passes the flag on); any other reboot, and any crash, boots the committed slot.
pub fn reboot(config: Option<&UpdateConfig>) -> Result<serde_json::Value, UpdateError> {
    let c = config.ok_or(UpdateError::NotUpdatable)?;
    let tryboot = match &c.boot {
        BootSetup::Tryboot { .. } => match c
            .tryboot()
            .and_then(|t| t.trial_armed().map_err(UpdateError::from))
        {
            Ok(armed) => armed,
            Err(e) => {
                // A reboot is still wanted (the unhealthy path): the committed slot boots.
                tracing::warn!(error = %e, "cannot tell whether a trial is set up; a plain reboot");
                false
            }
        },
        BootSetup::SystemdBoot { .. } => false,
    };
    match c.reboot.clone() {
        RebootAction::TestRecord(path) => {
            let mut f = OpenOptions::new().create(true).append(true).open(path)?;
            writeln!(
                f,
                "{}",
                if tryboot {
                    "reboot 0 tryboot"
                } else {
                    "reboot"
                }
            )?;
        }
        RebootAction::Systemctl => {
            // After the answer has gone out; systemd stops the agent cleanly on the way down.
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(500));
                let mut cmd = std::process::Command::new("systemctl");
                cmd.arg("reboot");
                if tryboot {
                    cmd.arg("0 tryboot");
                }
                let r = cmd.status();
                tracing::info!(result = ?r, tryboot, "asked systemd to reboot");
            });
        }
    }
    Ok(serde_json::json!({"rebooting": true, "tryboot": tryboot}))
}

pub fn set_next_boot(
    config: Option<&UpdateConfig>,
    version: Version,
) -> Result<BootInfo, UpdateError> {
    let c = config.ok_or(UpdateError::NotUpdatable)?;
    if let BootSetup::Tryboot { kernel_symbols, .. } = &c.boot
        && !kernel_passes_tryboot(kernel_symbols)
    {
        return Err(UpdateError::NoTrialBoot);
    }
    let status = c.status()?;
    let target = status.current.other();
    let staged = c
        .read_staged()
        .filter(|r| r.version == version && r.slot == target)
        .ok_or(UpdateError::NotStaged(version))?;
    if let BootSetup::SystemdBoot { esp, .. } = &c.boot {
        for f in ["vmlinuz", "initrd.img"] {
            let p = esp.join("hearth").join(version.to_string()).join(f);
            if !p.is_file() {
                return Err(UpdateError::MissingPayload(p.display().to_string()));
            }
        }
    }
    c.boot_control()?.set_trial(&TrialSpec {
        slot: staged.slot,
        version,
    })?;
    tracing::info!(slot = ?staged.slot, %version, "the next boot tries the staged slot");
    boot_status(Some(c))
}

/// Where one payload goes.
enum Dest {
    Partition { file: File, label: String },
    EspFile { file: File, path: PathBuf },
}

impl Dest {
    fn file(&self) -> &File {
        match self {
            Dest::Partition { file, .. } | Dest::EspFile { file, .. } => file,
        }
    }
}

/// An open `write_slot` session: the verified bundle and where each payload goes.
pub struct SlotSession<'a> {
    config: &'a UpdateConfig,
    meta: BundleMeta,
    slot: Slot,
    dests: Vec<Dest>,
    /// Files that may already hold chunks (the running slot, the target's old contents).
    sources: Vec<PathBuf>,
}

/// Checks the metadata and plans the write; refuses before anything is written.
pub fn begin<'a>(
    config: Option<&'a UpdateConfig>,
    meta_bytes: &[u8],
    allow_downgrade: bool,
) -> Result<(SlotSession<'a>, Staging), UpdateError> {
    let c = config.ok_or(UpdateError::NotUpdatable)?;
    let keyring =
        Keyring::load_dir(&c.keyring_dir).map_err(|e| UpdateError::Keyring(e.to_string()))?;
    let meta = bundle::open_meta(meta_bytes, None, &keyring)?;
    let status = c.status()?;
    let kernel_passes = match &c.boot {
        BootSetup::Tryboot { kernel_symbols, .. } => kernel_passes_tryboot(kernel_symbols),
        BootSetup::SystemdBoot { .. } => true,
    };
    let plan = plan_slot(
        &meta.header,
        &status,
        &c.boot,
        &c.board,
        allow_downgrade,
        kernel_passes,
    )?;
    let (slot, version) = (plan.slot, plan.version);
    // Every destination opened and sized before anything changes.
    let parts = open_partitions(c, &meta, &plan)?;
    let mut sources = slot_sources(c, &status, &plan);
    // Act. The slot is about to change: forget it was staged, and make sure nothing boots it.
    c.forget_staged()?;
    let esp_files = prepare_esp(c, &status, &plan, &mut sources)?;
    let dests = open_dests(&meta, parts, esp_files)?;
    let staging = Staging {
        slot,
        version,
        chunks: meta.chunks.len() as u32,
        target: format!("agent:{}", slot.letter()),
    };
    tracing::info!(slot = ?slot, %version, chunks = meta.chunks.len(), "writing the inactive slot");
    Ok((
        SlotSession {
            config: c,
            meta,
            slot,
            dests,
            sources,
        },
        staging,
    ))
}

/// What [`begin`] writes where, decided from the signed header and the boot state alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPlan {
    /// The inactive slot, written now.
    pub slot: Slot,
    pub version: Version,
    /// Payload index → partition label (`root-b`, `boot-b`).
    pub partitions: Vec<(usize, String)>,
    /// Payload index → file name in the ESP's folder for this version (systemd-boot only).
    pub esp_files: Vec<(usize, &'static str)>,
}

/// Pure: checks the bundle against the device (board, versions, trial state, the payloads
/// this boot method needs) and plans the slot write. `kernel_passes` says whether the kernel
/// can do a tryboot (only asked of tryboot devices).
pub fn plan_slot(
    header: &bundle::Header,
    status: &BootStatus,
    boot: &BootSetup,
    board: &str,
    allow_downgrade: bool,
    kernel_passes: bool,
) -> Result<SlotPlan, UpdateError> {
    let running = running_version(status);
    InstallPolicy {
        board: Some(board.to_owned()),
        running: Some(running),
        allow_downgrade,
    }
    .check(header)?;
    let version = header.version;
    if version == running {
        return Err(UpdateError::SameVersion(version));
    }
    if matches!(boot, BootSetup::Tryboot { .. }) && !kernel_passes {
        return Err(UpdateError::NoTrialBoot);
    }
    if status.on_trial {
        return Err(BootError::Damaged(
            "the running slot is still on trial; let it be blessed or fall back before installing"
                .into(),
        )
        .into());
    }
    let slot = status.current.other();
    let names: Vec<&str> = header.payloads.iter().map(|p| p.slot.as_str()).collect();
    let needed: &[&str] = match boot {
        BootSetup::SystemdBoot { .. } => &["rootfs", "kernel", "initrd"],
        BootSetup::Tryboot { .. } => &["rootfs", "boot"],
    };
    if let Some(extra) = names.iter().find(|n| !needed.contains(n)) {
        return Err(UpdateError::UnknownPayload((*extra).to_owned()));
    }
    if let Some(missing) = needed.iter().find(|n| !names.contains(n)) {
        return Err(UpdateError::MissingPayload((*missing).to_owned()));
    }
    let mut partitions = Vec::new();
    let mut esp_files = Vec::new();
    for (i, p) in header.payloads.iter().enumerate() {
        match p.slot.as_str() {
            "rootfs" => partitions.push((i, format!("root-{}", slot.letter()))),
            "boot" => partitions.push((i, format!("boot-{}", slot.letter()))),
            "kernel" if matches!(boot, BootSetup::SystemdBoot { .. }) => {
                esp_files.push((i, "vmlinuz"))
            }
            "initrd" if matches!(boot, BootSetup::SystemdBoot { .. }) => {
                esp_files.push((i, "initrd.img"))
            }
            _ => {}
        }
    }
    Ok(SlotPlan {
        slot,
        version,
        partitions,
        esp_files,
    })
}

/// Opens the planned partitions and checks each payload fits.
fn open_partitions(
    c: &UpdateConfig,
    meta: &BundleMeta,
    plan: &SlotPlan,
) -> Result<Vec<(usize, String, File)>, UpdateError> {
    let mut parts = Vec::new();
    for (i, label) in &plan.partitions {
        let (mut file, _) = c.open_partition(label)?;
        let room = file.seek(SeekFrom::End(0))?;
        let p = &meta.header.payloads[*i];
        if p.size > room {
            return Err(UpdateError::TooLarge {
                slot: p.slot.clone(),
                label: label.clone(),
                size: p.size,
                room,
            });
        }
        parts.push((*i, label.clone(), file));
    }
    Ok(parts)
}

/// Where chunks the device already has may be found: both slots' partitions of the kinds
/// this update writes.
fn slot_sources(c: &UpdateConfig, status: &BootStatus, plan: &SlotPlan) -> Vec<PathBuf> {
    let mut sources: Vec<PathBuf> = Vec::new();
    for letter in [status.current.letter(), plan.slot.letter()] {
        for kind in ["root", "boot"] {
            if plan.partitions.iter().any(|(_, l)| l.starts_with(kind))
                && let Some(p) = c.read_partition(&format!("{kind}-{letter}"))
            {
                sources.push(p);
            }
        }
    }
    sources
}

/// systemd-boot: retires the slot's entry, prunes old kernel folders and makes this
/// version's; adds the kernel files that may hold chunks to `sources`. Returns where the
/// ESP payloads go.
fn prepare_esp(
    c: &UpdateConfig,
    status: &BootStatus,
    plan: &SlotPlan,
    sources: &mut Vec<PathBuf>,
) -> Result<Vec<(usize, PathBuf)>, UpdateError> {
    let BootSetup::SystemdBoot { esp, .. } = &c.boot else {
        return Ok(Vec::new());
    };
    let sbt = SystemdBoot::new(esp, c.loader_selected());
    sbt.retire_slot(plan.slot)?;
    prune_kernel_dirs(&sbt, esp, plan.version)?;
    // The running version's kernel files may hold chunks (kernels change less often).
    if let Some(v) = status.version {
        for f in ["vmlinuz", "initrd.img"] {
            sources.push(esp.join("hearth").join(v.to_string()).join(f));
        }
    }
    let dir = esp.join("hearth").join(plan.version.to_string());
    std::fs::create_dir_all(&dir)?;
    // An earlier, interrupted or failed install of this version left its files.
    for f in ["vmlinuz", "initrd.img"] {
        sources.push(dir.join(f));
    }
    Ok(plan
        .esp_files
        .iter()
        .map(|(i, name)| (*i, dir.join(name)))
        .collect())
}

/// One destination per payload, in payload order.
fn open_dests(
    meta: &BundleMeta,
    parts: Vec<(usize, String, File)>,
    esp_files: Vec<(usize, PathBuf)>,
) -> Result<Vec<Dest>, UpdateError> {
    let mut dests: Vec<Option<Dest>> = (0..meta.header.payloads.len()).map(|_| None).collect();
    for (i, label, file) in parts {
        dests[i] = Some(Dest::Partition { file, label });
    }
    for (i, path) in esp_files {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        file.set_len(meta.header.payloads[i].size)?;
        dests[i] = Some(Dest::EspFile { file, path });
    }
    dests
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            d.ok_or_else(|| UpdateError::UnknownPayload(meta.header.payloads[i].slot.clone()))
        })
        .collect()
}

/// Removes `hearth/<version>/` kernel folders no entry boots any more (but not the one
/// of the version being installed: its files may hold chunks of an earlier attempt).
fn prune_kernel_dirs(sb: &SystemdBoot, esp: &Path, installing: Version) -> Result<(), UpdateError> {
    let mut used: Vec<String> = sb
        .entries()?
        .iter()
        .map(|e| e.name.version.to_string())
        .collect();
    used.push(installing.to_string());
    let dir = esp.join("hearth");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in rd.flatten().take(256) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<Version>().is_ok() && !used.contains(&name) {
            std::fs::remove_dir_all(e.path())?;
        }
    }
    Ok(())
}

impl SlotSession<'_> {
    fn write_chunk(&self, index: usize, plain: &[u8]) -> Result<(), UpdateError> {
        let c = &self.meta.chunks[index];
        self.dests[c.payload].file().write_all_at(plain, c.offset)?;
        Ok(())
    }

    fn sync(&self) -> Result<(), UpdateError> {
        let mut dirs: Vec<&Path> = Vec::new();
        for d in &self.dests {
            match d {
                Dest::Partition { file, .. } => file.sync_data()?,
                // On FAT (the ESP) only fsync writes the file's directory entry, which holds
                // its size and first cluster: after fdatasync alone, a power cut once left a
                // new kernel 0 bytes long behind a boot entry already in place, and the
                // firmware found nothing to boot. Its directory (new for a new version) and
                // that directory's own entry are synced too.
                Dest::EspFile { file, path } => {
                    file.sync_all()?;
                    let dir = path.parent();
                    dirs.extend(dir);
                    dirs.extend(dir.and_then(Path::parent));
                }
            }
        }
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Fills chunks not in `done` from the device's own slots; returns those it filled.
    fn reuse(&self, done: &[(u32, u32)]) -> Result<Vec<(u32, u32)>, UpdateError> {
        let n = self.meta.chunks.len() as u32;
        let mut skip = vec![false; n as usize];
        for &(a, b) in done {
            if a > b || b > n {
                return Err(UpdateError::Protocol(format!(
                    "chunk range {a}..{b} is outside 0..{n}"
                )));
            }
            for s in &mut skip[a as usize..b as usize] {
                *s = true;
            }
        }
        let wanted: Vec<usize> = (0..n as usize).filter(|&i| !skip[i]).collect();
        let local = scan_sources(&self.meta, &wanted, &self.sources)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut filled = Vec::new();
        let mut buf = vec![0u8; bundle::CHUNK_SIZE as usize];
        for &i in &wanted {
            let Some((file, off)) = local.get(i) else {
                continue;
            };
            let c = &self.meta.chunks[i];
            let w = &mut buf[..c.len as usize];
            // Re-read and re-hash: writing earlier chunks may have changed this source.
            if file.read_exact_at(w, off).is_err() || bundle::sha256_of(w) != c.sha256 {
                continue;
            }
            self.write_chunk(i, w)?;
            filled.push(i as u32);
        }
        self.sync()?;
        Ok(ranges(&filled))
    }

    fn finish(&self) -> Result<Staged, UpdateError> {
        self.sync()?;
        let mut buf = vec![0u8; 1 << 20];
        for (pi, p) in self.meta.header.payloads.iter().enumerate() {
            let f = self.dests[pi].file();
            let mut h = ring::digest::Context::new(&ring::digest::SHA256);
            let mut off = 0u64;
            while off < p.size {
                let n = (p.size - off).min(buf.len() as u64) as usize;
                f.read_exact_at(&mut buf[..n], off)?;
                h.update(&buf[..n]);
                off += n as u64;
            }
            if hex::encode(h.finish().as_ref()) != p.sha256 {
                let name = match &self.dests[pi] {
                    Dest::Partition { label, .. } => label.clone(),
                    Dest::EspFile { path, .. } => path.display().to_string(),
                };
                tracing::warn!(payload = %p.slot, dest = %name, "read-back check failed");
                return Err(UpdateError::ReadBack(p.slot.clone()));
            }
        }
        let version = self.meta.header.version;
        self.config.write_staged(&StagedRecord {
            slot: self.slot,
            version,
            bundle: hex::encode(self.meta.digest),
            boot_id: self.config.boot_id(),
        })?;
        tracing::info!(slot = ?self.slot, %version, "slot written and verified; staged");
        Ok(Staged {
            slot: self.slot,
            version,
        })
    }

    /// Runs the session's steps until `finish` or the connection ends. Each step gets
    /// one answer line; the first refused step ends the session.
    pub fn run(&self, input: &mut dyn BufRead, output: &mut dyn Write) -> Result<(), UpdateError> {
        let mut buf = vec![0u8; bundle::CHUNK_SIZE as usize];
        loop {
            let mut line = Vec::new();
            let n = input
                .take(MAX_SESSION_LINE as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(());
            }
            if line.last() != Some(&b'\n') {
                let e = UpdateError::Protocol("a session line is too long or cut off".into());
                answer_err(output, &e)?;
                return Err(e);
            }
            line.pop();
            let op: SessionOp = match serde_json::from_slice(&line) {
                Ok(op) => op,
                Err(e) => {
                    let e = UpdateError::Protocol(e.to_string());
                    answer_err(output, &e)?;
                    return Err(e);
                }
            };
            let result: Result<serde_json::Value, UpdateError> = match op {
                SessionOp::Reuse { done } => self
                    .reuse(&done)
                    .map(|local| serde_json::json!(Reused { local })),
                SessionOp::Chunk { index, len } => {
                    let Some(c) = self.meta.chunks.get(index as usize) else {
                        let e = UpdateError::NoSuchChunk(index);
                        answer_err(output, &e)?;
                        return Err(e);
                    };
                    if len != c.len {
                        let e = UpdateError::ChunkMismatch(index);
                        answer_err(output, &e)?;
                        return Err(e);
                    }
                    let w = &mut buf[..len as usize];
                    input.read_exact(w)?;
                    if bundle::sha256_of(w) != c.sha256 {
                        Err(UpdateError::ChunkMismatch(index))
                    } else {
                        self.write_chunk(index as usize, w)
                            .map(|()| serde_json::Value::Null)
                    }
                }
                SessionOp::Sync => self.sync().map(|()| serde_json::Value::Null),
                SessionOp::Finish => {
                    let r = self.finish();
                    let done = r.is_ok();
                    let v = r.map(|s| serde_json::json!(s));
                    match v {
                        Ok(v) => {
                            answer(
                                output,
                                &Response::Ok {
                                    ok: True,
                                    result: v,
                                },
                            )?;
                        }
                        Err(e) => {
                            answer_err(output, &e)?;
                            return Err(e);
                        }
                    }
                    if done {
                        return Ok(());
                    }
                    continue;
                }
            };
            match result {
                Ok(v) => answer(
                    output,
                    &Response::Ok {
                        ok: True,
                        result: v,
                    },
                )?,
                Err(e) => {
                    answer_err(output, &e)?;
                    return Err(e);
                }
            }
        }
    }
}

fn answer(output: &mut dyn Write, r: &Response) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    output.write_all(&bytes)?;
    output.flush()
}

fn answer_err(output: &mut dyn Write, e: &UpdateError) -> std::io::Result<()> {
    answer(output, &Response::error(e.code(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_plan_is_decided_from_the_header_and_boot_state_alone() {
        let payload = |slot: &str| bundle::Payload {
            slot: slot.into(),
            size: 1,
            sha256: "00".repeat(32),
        };
        let header = |version: Version, slots: &[&str]| bundle::Header {
            board: "generic-x86_64".into(),
            version,
            min_version: Version(0, 0, 0),
            created: 0,
            chunk_size: bundle::CHUNK_SIZE,
            payloads: slots.iter().map(|s| payload(s)).collect(),
        };
        let status = |current: Slot, on_trial: bool| BootStatus {
            current,
            version: Some(Version(1, 0, 0)),
            on_trial,
            rollback: None,
        };
        let sbt = BootSetup::SystemdBoot {
            esp: PathBuf::from("/esp"),
            loader_entry: LoaderEntry::Fixed("x".into()),
        };
        let pi = BootSetup::Tryboot {
            boot_dir: PathBuf::from("/boot"),
            bootloader_dir: PathBuf::from("/bl"),
            partitions: [1, 2],
            version_file: PathBuf::from("/os-release"),
            kernel_symbols: PathBuf::from("/ks"),
        };
        let uefi = ["rootfs", "kernel", "initrd"];
        let v2 = Version(2, 0, 0);
        // (boot, header, slot now, on trial, kernel passes, board, want: Ok(labels) or error code)
        type Want = Result<(&'static [&'static str], &'static [&'static str]), &'static str>;
        let cases: Vec<(&BootSetup, bundle::Header, Slot, bool, bool, &str, Want)> = vec![
            (
                &sbt,
                header(v2, &uefi),
                Slot::A,
                false,
                true,
                "generic-x86_64",
                Ok((&["root-b"], &["vmlinuz", "initrd.img"])),
            ),
            (
                &sbt,
                header(v2, &uefi),
                Slot::B,
                false,
                true,
                "generic-x86_64",
                Ok((&["root-a"], &["vmlinuz", "initrd.img"])),
            ),
            (
                &pi,
                header(v2, &["boot", "rootfs"]),
                Slot::A,
                false,
                true,
                "generic-x86_64",
                Ok((&["boot-b", "root-b"], &[])),
            ),
            (
                &pi,
                header(v2, &["boot", "rootfs"]),
                Slot::A,
                false,
                false,
                "generic-x86_64",
                Err("no_trial_boot"),
            ),
            (
                &sbt,
                header(Version(1, 0, 0), &uefi),
                Slot::A,
                false,
                true,
                "generic-x86_64",
                Err("bundle"),
            ),
            (
                &sbt,
                header(Version(0, 9, 0), &uefi),
                Slot::A,
                false,
                true,
                "generic-x86_64",
                Err("bundle"),
            ),
            (
                &sbt,
                header(v2, &uefi),
                Slot::A,
                false,
                true,
                "rpi4",
                Err("bundle"),
            ),
            (
                &sbt,
                header(v2, &uefi),
                Slot::A,
                true,
                true,
                "generic-x86_64",
                Err("boot"),
            ),
            (
                &sbt,
                header(v2, &["rootfs", "kernel"]),
                Slot::A,
                false,
                true,
                "generic-x86_64",
                Err("missing"),
            ),
            (
                &sbt,
                header(v2, &["rootfs", "kernel", "initrd", "boot"]),
                Slot::A,
                false,
                true,
                "generic-x86_64",
                Err("unknown"),
            ),
            (
                &pi,
                header(v2, &uefi),
                Slot::A,
                false,
                true,
                "generic-x86_64",
                Err("unknown"),
            ),
        ];
        for (i, (boot, h, current, on_trial, kernel, board, want)) in cases.into_iter().enumerate()
        {
            let got = plan_slot(&h, &status(current, on_trial), boot, board, false, kernel);
            match (got, want) {
                (Ok(plan), Ok((parts, esp))) => {
                    assert_eq!(plan.slot, current.other(), "case {i}");
                    assert_eq!(plan.version, v2, "case {i}");
                    let labels: Vec<&str> =
                        plan.partitions.iter().map(|(_, l)| l.as_str()).collect();
                    assert_eq!(labels, parts, "case {i}");
                    let files: Vec<&str> = plan.esp_files.iter().map(|(_, f)| *f).collect();
                    assert_eq!(files, esp, "case {i}");
                }
                (Err(e), Err(code)) => {
                    let matched = match code {
                        "no_trial_boot" => matches!(e, UpdateError::NoTrialBoot),
                        "same_version" => matches!(e, UpdateError::SameVersion(_)),
                        "bundle" => matches!(e, UpdateError::Bundle(_)),
                        "boot" => matches!(e, UpdateError::Boot(_)),
                        "missing" => matches!(e, UpdateError::MissingPayload(_)),
                        "unknown" => matches!(e, UpdateError::UnknownPayload(_)),
                        _ => false,
                    };
                    assert!(matched, "case {i}: wanted {code}, got {e:?}");
                }
                (got, want) => panic!("case {i}: got {got:?}, wanted {want:?}"),
            }
        }
        // Even where downgrades are allowed, the running version is not written again.
        let same = plan_slot(
            &header(Version(1, 0, 0), &uefi),
            &status(Slot::A, false),
            &sbt,
            "generic-x86_64",
            true,
            true,
        );
        assert!(matches!(same, Err(UpdateError::SameVersion(_))), "{same:?}");
    }

    #[test]
    fn tryboot_hooks_are_found_by_exact_name_in_kallsyms() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("kallsyms");
        for (kallsyms, passes) in [
            // The Raspberry Pi kernel's driver hook.
            ("ffffffc0089a1b20 t rpi_firmware_notify_reboot\n", true),
            // Debian's kernel with the image's module (module name after a tab; addresses
            // are zeros when kptr_restrict hides them).
            (
                "0000000000000000 t hearth_tryboot_notify\t[hearth_tryboot]\n",
                true,
            ),
            (
                "ffffffc008010000 T _text\nffff800000d00000 t hearth_tryboot_notify\t[hearth_tryboot]\n",
                true,
            ),
            // Debian's kernel alone: the driver, no hook.
            ("ffffffc0089a1c40 T rpi_firmware_property\n", false),
            // Names that only contain or extend a hook's name.
            ("ffff800000d00000 t hearth_tryboot_notify_old\t[x]\n", false),
            (
                "ffff800000d00000 t __pfx_rpi_firmware_notify_reboot\n",
                false,
            ),
            // A hook's name in the module column is not a symbol.
            ("ffff800000d00000 t init\t[hearth_tryboot_notify]\n", false),
            ("", false),
        ] {
            std::fs::write(&f, kallsyms).unwrap();
            assert_eq!(kernel_passes_tryboot(&f), passes, "{kallsyms:?}");
        }
        assert!(!kernel_passes_tryboot(&t.path().join("missing")));
    }

    #[test]
    fn ranges_collapse_runs() {
        assert_eq!(ranges(&[]), vec![]);
        assert_eq!(ranges(&[0, 1, 2, 5, 6, 9]), vec![(0, 3), (5, 7), (9, 10)]);
    }

    #[test]
    fn partitions_are_found_through_sysfs() {
        let t = tempfile::tempdir().unwrap();
        let devices = t.path().join("devices/platform/emmc/mmcblk0");
        let class = t.path().join("class/block");
        std::fs::create_dir_all(&class).unwrap();
        for (name, number) in [
            ("mmcblk0p2", Some("2\n")),
            ("mmcblk0p9", Some("x\n")),
            ("mmcblk0", None),
        ] {
            let dir = if name == "mmcblk0" {
                devices.clone()
            } else {
                devices.join(name)
            };
            std::fs::create_dir_all(&dir).unwrap();
            if let Some(n) = number {
                std::fs::write(dir.join("partition"), n).unwrap();
            }
            std::os::unix::fs::symlink(&dir, class.join(name)).unwrap();
        }
        assert_eq!(
            partition_of(&class, Path::new("/dev/mmcblk0p2")),
            Ok(("mmcblk0".to_owned(), 2))
        );
        let table = [
            ("/dev/mmcblk0", "is not a partition"),
            ("/dev/mmcblk0p9", "has no partition number"),
            ("/dev/sdz1", "cannot resolve"),
        ];
        for (dev, want) in table {
            let e = partition_of(&class, Path::new(dev)).unwrap_err();
            assert!(e.contains(want), "{dev}: {e}");
        }
    }

    /// At boot the agent waits for udev's links of the partitions the kernel has, and only
    /// for those: a label no partition carries is never waited for, and a link that never
    /// comes is reported once the time is up.
    #[test]
    fn waits_for_the_links_of_known_partitions_only() {
        let t = tempfile::tempdir().unwrap();
        let (dev, sys) = (t.path().join("dev"), t.path().join("sys"));
        let links = dev.join("disk/by-partlabel");
        std::fs::create_dir_all(&links).unwrap();
        for (name, label) in [("vda2", "root-a"), ("vda3", "root-b"), ("vda4", "data")] {
            std::fs::create_dir_all(sys.join(name)).unwrap();
            std::fs::write(
                sys.join(name).join("uevent"),
                format!("MAJOR=253\nDEVNAME={name}\nPARTNAME={label}\n"),
            )
            .unwrap();
        }
        std::fs::create_dir_all(sys.join("vda")).unwrap();
        std::fs::write(sys.join("vda/uevent"), "DEVNAME=vda\nDEVTYPE=disk\n").unwrap();
        std::os::unix::fs::symlink("../../vda2", links.join("root-a")).unwrap();
        let long = std::time::Duration::from_secs(30);
        // root-b's link appears while the agent waits (udev catching up).
        let late = links.join("root-b");
        let udev = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            std::os::unix::fs::symlink("../../vda3", late).unwrap();
        });
        let missing = wait_for_partition_links(&dev, &sys, &SLOT_LABELS, long);
        udev.join().unwrap();
        assert!(missing.is_empty(), "{missing:?}");
        // The Pi's labels are on no partition here: nothing to wait for, even with no links.
        std::fs::remove_file(links.join("root-a")).unwrap();
        let got = wait_for_partition_links(&dev, &sys, &["autoboot", "boot-a"], long);
        assert!(got.is_empty(), "{got:?}");
        // A link that never comes: reported when the time is up.
        let got = wait_for_partition_links(&dev, &sys, &SLOT_LABELS, std::time::Duration::ZERO);
        assert_eq!(got, vec!["root-a".to_owned()]);
        // No sysfs at all (not Linux, or a test box): nothing known, nothing waited for.
        let got = wait_for_partition_links(&dev, &t.path().join("none"), &SLOT_LABELS, long);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn not_a_pi_without_the_firmware_report() {
        let t = tempfile::tempdir().unwrap();
        let got = detect_tryboot(
            t.path(),
            t.path(),
            &t.path().join("no-bootloader"),
            &t.path().join("autoboot"),
        );
        assert!(matches!(got, Ok(None)));
        // The firmware reported a boot, but the disk lacks the tryboot layout: refused,
        // and nothing is mounted.
        std::fs::create_dir(t.path().join("bootloader")).unwrap();
        let got = detect_tryboot(
            t.path(),
            t.path(),
            &t.path().join("bootloader"),
            &t.path().join("autoboot"),
        );
        assert_eq!(got.unwrap_err(), "there is no partition labelled autoboot");
        assert!(!t.path().join("autoboot").exists());
    }

    #[test]
    fn version_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("version");
        for (text, want) in [
            (
                "ID=debian\nIMAGE_ID=hearth-rpi4\nIMAGE_VERSION=1.2.3\n",
                Some(Version(1, 2, 3)),
            ),
            ("IMAGE_ID=hearth-rpi4\nIMAGE_VERSION=1.2\n", None),
            ("", None),
            ("1.2.3\n", None),
            ("IMAGE_ID=hearth-rpi4\nIMAGE_VERSION=1.2.3-rc1\n", None),
        ] {
            std::fs::write(&p, text).unwrap();
            assert_eq!(read_version_file(&p), want, "{text:?}");
        }
        assert_eq!(read_version_file(&t.path().join("missing")), None);
    }

    #[test]
    fn efi_strings_decode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("var");
        let mut raw = vec![6, 0, 0, 0];
        for u in "hearth-1.2.3+2-1.conf".encode_utf16() {
            raw.extend_from_slice(&u.to_le_bytes());
        }
        raw.extend_from_slice(&[0, 0]);
        std::fs::write(&p, raw).unwrap();
        assert_eq!(
            read_efi_string(&p).as_deref(),
            Some("hearth-1.2.3+2-1.conf")
        );
        assert_eq!(read_efi_string(&t.path().join("missing")), None);
    }
}
