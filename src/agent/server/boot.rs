//! Security-sensitive: boot control — which slot the firmware starts next, trial boots and
//! rollback. A mistake here bricks the device, so every change is planned first, written
//! as a new file that is synced and renamed into place, and no step leaves the boot
//! partition without a good entry.
//!
//! Two implementations of [`BootControl`]:
//! - [`SystemdBoot`]: UEFI with systemd-boot's Automatic Boot Assessment. A new version
//!   gets `loader/entries/hearth-<version>+3.conf`; systemd-boot counts the tries down in
//!   the file name and, once they reach zero, boots the next entry (the old version).
//!   A trial entry carries a sort key that sorts before every blessed entry, so an older
//!   version (a downgrade) is tried too. Blessing renames the entry to drop the counter,
//!   gives it the blessed sort key, and retires newer blessed entries that would
//!   otherwise boot first again.
//! - [`Tryboot`]: Raspberry Pi firmware `tryboot`: `autoboot.txt` names the committed boot
//!   partition under `[all]` and the one to try once under `[tryboot]`; any crash during
//!   the trial returns to the committed one.
//!
//! Both operate on a directory (the mounted ESP / autoboot partition) and take what the
//! firmware reported (`LoaderEntrySelected`, `/proc/device-tree/chosen/bootloader`) as
//! parameters, so tests run against fixture trees.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::model::Version;

pub use crate::agent::protocol::Slot;

/// What the device works out at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootStatus {
    pub current: Slot,
    /// Version of the running entry, when the boot method records it.
    pub version: Option<Version>,
    /// Running a slot that is not committed yet: bless it after the health check.
    pub on_trial: bool,
    /// A newer version was tried and failed; the device fell back.
    pub rollback: Option<Rollback>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollback {
    pub failed_slot: Slot,
    pub failed_version: Option<Version>,
    /// A sentence for the owner.
    pub reason: String,
}

/// What to try on the next boot.
#[derive(Clone, Debug)]
pub struct TrialSpec {
    pub slot: Slot,
    pub version: Version,
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("boot partition: cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot tell which slot is running: {0}")]
    Unknown(String),
    #[error("refusing to set up a trial of slot {0:?}: it is the running slot")]
    TargetIsRunning(Slot),
    #[error("the boot configuration is damaged: {0}; restore it from the image before updating")]
    Damaged(String),
    #[error("nothing to bless: {0}")]
    NothingToBless(String),
}

/// Boot-method-neutral control of the A/B slots.
pub trait BootControl {
    fn status(&self) -> Result<BootStatus, BootError>;
    /// Arranges for `spec.slot` to be tried on the next boot(s); the slot's files must be
    /// written and verified before this is called.
    fn set_trial(&self, spec: &TrialSpec) -> Result<(), BootError>;
    /// The running slot passed its health check: keep it, and forget failed attempts.
    fn bless(&self) -> Result<(), BootError>;
}

/// Filesystem steps boot control takes, one call each, so tests can cut the power after
/// any of them. [`RealFs`] is what the agent uses.
pub trait FsOps {
    fn write_file(&self, path: &Path, data: &[u8]) -> std::io::Result<()>;
    fn sync_file(&self, path: &Path) -> std::io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    fn remove(&self, path: &Path) -> std::io::Result<()>;
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl FsOps for RealFs {
    fn write_file(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        let mut f = fs::File::create(path)?;
        f.write_all(data)
    }
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        fs::OpenOptions::new().write(true).open(path)?.sync_all()
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        fs::rename(from, to)?;
        // On FAT (the ESP, the Pi's autoboot partition) a rename writes the new directory
        // entry with no data, and the file's clusters and size reach it only when the
        // file's own inode is written back. Syncing the directory alone left a blessed
        // entry empty after a power cut (seen in the image tier), and systemd-boot then
        // booted the old version. Sync the file itself at its new name.
        fs::File::open(to)?.sync_all()
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        fs::File::open(dir)?.sync_all()
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BootError {
    let what = what.into();
    move |source| BootError::Io { what, source }
}

/// Writes `path` atomically: temp file, fsync, rename, fsync the directory.
fn replace_file(ops: &dyn FsOps, path: &Path, tmp: &Path, data: &[u8]) -> Result<(), BootError> {
    let name = path.display().to_string();
    ops.write_file(tmp, data)
        .map_err(io_err(format!("write {}", tmp.display())))?;
    ops.sync_file(tmp)
        .map_err(io_err(format!("sync {}", tmp.display())))?;
    ops.rename(tmp, path)
        .map_err(io_err(format!("rename {} into place", name)))?;
    sync_parent(ops, path)
}

fn sync_parent(ops: &dyn FsOps, path: &Path) -> Result<(), BootError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ops.sync_dir(dir)
        .map_err(io_err(format!("sync {}", dir.display())))
}

/// Boot files are tiny; cap reads so a damaged partition cannot exhaust memory.
const MAX_BOOT_FILE: u64 = 16 * 1024;
/// Entries on the ESP: ours are at most a handful.
const MAX_ENTRIES: usize = 256;

fn read_small(path: &Path) -> Result<Option<String>, BootError> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(format!("read {}", path.display()))(e)),
    };
    let mut s = String::new();
    f.take(MAX_BOOT_FILE + 1)
        .read_to_string(&mut s)
        .map_err(io_err(format!("read {}", path.display())))?;
    if s.len() as u64 > MAX_BOOT_FILE {
        return Err(BootError::Damaged(format!(
            "{} is larger than {MAX_BOOT_FILE} bytes",
            path.display()
        )));
    }
    Ok(Some(s))
}

// ---------------------------------------------------------------------------------------
// systemd-boot

/// Tries a new entry gets before systemd-boot gives up on it.
pub const BOOT_TRIES: u32 = 3;

/// The `sort-key` of blessed entries. systemd-boot sorts entries with tries left (or no
/// counter) before those whose tries are used up, then by `sort-key` (ascending), then by
/// `version` (newest first), and boots the first.
pub const SORT_KEY: &str = "hearth";
/// The `sort-key` of an entry on trial: it sorts before [`SORT_KEY`] (any key that starts
/// with "hearth" would sort after it), so the trial boots first even when it is an older
/// version than the running one. Out of tries, it sorts last whatever its key.
pub const TRIAL_SORT_KEY: &str = "0-hearth-trial";

/// `text` (a boot entry) with its `sort-key` line set to `key`; other lines are kept.
pub fn with_sort_key(text: &str, key: &str) -> String {
    let mut out = String::with_capacity(text.len() + key.len() + 10);
    let mut done = false;
    for line in text.lines() {
        if line.trim_start().starts_with("sort-key") {
            if !done {
                out.push_str(&format!("sort-key {key}\n"));
                done = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if !done && line.trim_start().starts_with("title") {
            out.push_str(&format!("sort-key {key}\n"));
            done = true;
        }
    }
    if !done {
        out = format!("sort-key {key}\n{out}");
    }
    out
}

/// The `sort-key` of an entry's text, if it has one.
pub fn sort_key_of(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("sort-key"))
        .map(str::trim)
}

/// A parsed `hearth-<version>[+left[-done]].conf` file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryName {
    pub version: Version,
    /// `None`: blessed (no counter).
    pub tries_left: Option<u32>,
    pub tries_done: Option<u32>,
}

impl EntryName {
    pub fn parse(file: &str) -> Option<EntryName> {
        let stem = file.strip_prefix("hearth-")?.strip_suffix(".conf")?;
        let (v, counter) = match stem.split_once('+') {
            Some((v, c)) => (v, Some(c)),
            None => (stem, None),
        };
        let version: Version = v.parse().ok()?;
        let (tries_left, tries_done) = match counter {
            None => (None, None),
            Some(c) => {
                let (l, d) = match c.split_once('-') {
                    Some((l, d)) => (l, Some(d)),
                    None => (c, None),
                };
                let num = |s: &str| -> Option<u32> {
                    (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| s.parse().ok())
                        .flatten()
                };
                (
                    Some(num(l)?),
                    d.map(num).map_or(Some(None), |d| d.map(Some))?,
                )
            }
        };
        Some(EntryName {
            version,
            tries_left,
            tries_done,
        })
    }

    /// The entry id without the counter (what stays after blessing).
    pub fn id(&self) -> String {
        format!("hearth-{}", self.version)
    }

    pub fn file_name(&self) -> String {
        match (self.tries_left, self.tries_done) {
            (None, _) => format!("hearth-{}.conf", self.version),
            (Some(l), None) => format!("hearth-{}+{l}.conf", self.version),
            (Some(l), Some(d)) => format!("hearth-{}+{l}-{d}.conf", self.version),
        }
    }

    /// All tries used up: systemd-boot sorts it last and boots something else.
    pub fn is_bad(&self) -> bool {
        self.tries_left == Some(0)
    }
}

/// Strips `.conf` and a boot counter from an entry id as systemd-boot reports it.
pub fn normalize_entry_id(id: &str) -> String {
    let id = id.trim().trim_end_matches('\0');
    let file = if id.ends_with(".conf") {
        id.to_owned()
    } else {
        format!("{id}.conf")
    };
    match EntryName::parse(&file) {
        Some(e) => e.id(),
        None => id.trim_end_matches(".conf").to_owned(),
    }
}

/// One of our entries on the ESP.
#[derive(Clone, Debug)]
pub struct Entry {
    pub file: String,
    pub name: EntryName,
    pub slot: Option<Slot>,
}

/// UEFI boot control with systemd-boot boot counting.
pub struct SystemdBoot {
    /// ESP mount point (contains `loader/entries`).
    pub esp: PathBuf,
    /// `LoaderEntrySelected` as systemd-boot reported it for this boot.
    pub loader_entry_selected: Option<String>,
    /// Kernel command line after `root=…` (console, quiet, …).
    pub extra_options: String,
    pub ops: Box<dyn FsOps + Send + Sync>,
}

impl SystemdBoot {
    pub fn new(esp: &Path, loader_entry_selected: Option<String>) -> SystemdBoot {
        SystemdBoot {
            esp: esp.to_path_buf(),
            loader_entry_selected,
            extra_options: "ro quiet".into(),
            ops: Box::new(RealFs),
        }
    }

    pub fn entries_dir(&self) -> PathBuf {
        self.esp.join("loader/entries")
    }

    /// The text of a blessed entry for `version` booting `slot`.
    pub fn entry_text(&self, version: Version, slot: Slot) -> String {
        format!(
            "title Hearth {version}\nsort-key {SORT_KEY}\nversion {version}\nlinux /hearth/{version}/vmlinuz\ninitrd /hearth/{version}/initrd.img\noptions root=PARTLABEL=root-{} {}\n",
            slot.letter(),
            self.extra_options
        )
    }

    /// Our entries, parsed; other files are left alone.
    pub fn entries(&self) -> Result<Vec<Entry>, BootError> {
        let dir = self.entries_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(format!("list {}", dir.display()))(e)),
        };
        let mut out = Vec::new();
        for item in rd {
            let item = item.map_err(io_err(format!("list {}", dir.display())))?;
            let file = item.file_name().to_string_lossy().into_owned();
            let Some(name) = EntryName::parse(&file) else {
                continue;
            };
            if out.len() >= MAX_ENTRIES {
                return Err(BootError::Damaged(format!(
                    "more than {MAX_ENTRIES} hearth entries in {}",
                    dir.display()
                )));
            }
            let text = read_small(&dir.join(&file))?.unwrap_or_default();
            out.push(Entry {
                slot: slot_of_entry(&text),
                file,
                name,
            });
        }
        out.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(out)
    }

    fn current(&self, entries: &[Entry]) -> Result<Entry, BootError> {
        let selected = self.loader_entry_selected.as_deref().ok_or_else(|| {
            BootError::Unknown("the firmware did not report LoaderEntrySelected".into())
        })?;
        let id = normalize_entry_id(selected);
        entries
            .iter()
            .find(|e| e.name.id() == id)
            .cloned()
            .ok_or_else(|| {
                BootError::Unknown(format!(
                    "the booted entry `{selected}` is not a hearth entry on this ESP"
                ))
            })
    }

    /// Removes `entries` from the entries directory, then syncs it once if any went.
    fn remove_entries<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<(), BootError> {
        let dir = self.entries_dir();
        let mut removed = false;
        for e in entries {
            self.ops
                .remove(&dir.join(&e.file))
                .map_err(io_err(format!("remove {}", e.file)))?;
            removed = true;
        }
        if removed {
            sync_parent(&*self.ops, &dir.join("x"))?;
        }
        Ok(())
    }

    /// Removes every entry that boots `slot` (before that slot is overwritten). Refuses
    /// for the running slot.
    pub fn retire_slot(&self, slot: Slot) -> Result<(), BootError> {
        let entries = self.entries()?;
        let current = self.current(&entries)?;
        if current.slot == Some(slot) {
            return Err(BootError::TargetIsRunning(slot));
        }
        self.remove_entries(entries.iter().filter(|e| e.slot == Some(slot)))
    }
}

/// Reads `root=PARTLABEL=root-a|b` from an entry's options.
fn slot_of_entry(text: &str) -> Option<Slot> {
    let opts = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("options"))?;
    opts.split_whitespace().find_map(|w| match w {
        "root=PARTLABEL=root-a" => Some(Slot::A),
        "root=PARTLABEL=root-b" => Some(Slot::B),
        _ => None,
    })
}

impl BootControl for SystemdBoot {
    fn status(&self) -> Result<BootStatus, BootError> {
        let entries = self.entries()?;
        let current = self.current(&entries)?;
        let slot = current.slot.ok_or_else(|| {
            BootError::Damaged(format!("entry {} names no root-a/root-b", current.file))
        })?;
        let rollback = entries
            .iter()
            // A failed trial of any version: a newer one (an update) or an older one (a
            // downgrade the owner allowed).
            .filter(|e| e.name.is_bad() && e.name.id() != current.name.id())
            .max_by_key(|e| e.name.version)
            .map(|e| Rollback {
                failed_slot: e.slot.unwrap_or(slot.other()),
                failed_version: Some(e.name.version),
                reason: format!(
                    "version {} did not start successfully after {}; the device went back to version {}",
                    e.name.version,
                    match e.name.tries_done.unwrap_or(BOOT_TRIES) {
                        1 => "1 try".to_string(),
                        n => format!("{n} tries"),
                    },
                    current.name.version
                ),
            });
        Ok(BootStatus {
            current: slot,
            version: Some(current.name.version),
            on_trial: current.name.tries_left.is_some(),
            rollback,
        })
    }

    fn set_trial(&self, spec: &TrialSpec) -> Result<(), BootError> {
        // Plan.
        let entries = self.entries()?;
        let current = self.current(&entries)?;
        if current.slot == Some(spec.slot) || current.name.version == spec.version {
            return Err(BootError::TargetIsRunning(spec.slot));
        }
        if current.name.tries_left.is_some() {
            return Err(BootError::Damaged(
                "the running entry is still on trial; bless it or let it fall back first".into(),
            ));
        }
        let dir = self.entries_dir();
        // Entries for the target slot point at data about to be (or already) replaced,
        // and entries of the same version must go so `x.conf` and `x+N.conf` never meet.
        let stale: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.file != current.file)
            .filter(|e| e.slot == Some(spec.slot) || e.name.version == spec.version)
            .collect();
        let new_name = EntryName {
            version: spec.version,
            tries_left: Some(BOOT_TRIES),
            tries_done: None,
        };
        let text = with_sort_key(&self.entry_text(spec.version, spec.slot), TRIAL_SORT_KEY);
        // Act. The running, blessed entry is never touched, so every intermediate state
        // boots at least that.
        self.remove_entries(stale)?;
        // The temp name does not end in .conf, so systemd-boot never reads a half file.
        let tmp = dir.join(format!(".hearth-{}.tmp", spec.version));
        replace_file(
            &*self.ops,
            &dir.join(new_name.file_name()),
            &tmp,
            text.as_bytes(),
        )
    }

    fn bless(&self) -> Result<(), BootError> {
        let entries = self.entries()?;
        let current = self.current(&entries)?;
        let dir = self.entries_dir();
        let blessed = EntryName {
            tries_left: None,
            tries_done: None,
            ..current.name.clone()
        };
        // 1. Blessed entries of newer versions would boot before this one once it carries
        //    the blessed sort key: they are what a downgrade came from. They go first, so
        //    no power cut below can bring them back as the default.
        self.remove_entries(entries.iter().filter(|e| {
            e.name.id() != current.name.id()
                && e.name.tries_left.is_none()
                && e.name.version > current.name.version
        }))?;
        // 2. Drop the counter. Until 3 the entry keeps its trial sort key, which only makes
        //    it boot first: it is the good one.
        if current.name.tries_left.is_some() {
            if entries.iter().any(|e| e.file == blessed.file_name()) {
                return Err(BootError::Damaged(format!(
                    "both {} and {} exist",
                    blessed.file_name(),
                    current.file
                )));
            }
            self.ops
                .rename(&dir.join(&current.file), &dir.join(blessed.file_name()))
                .map_err(io_err(format!("rename {}", current.file)))?;
            sync_parent(&*self.ops, &dir.join("x"))?;
        }
        // 3. The blessed sort key, so the next trial (of any version) sorts before it.
        let path = dir.join(blessed.file_name());
        let text = read_small(&path)?
            .ok_or_else(|| BootError::Damaged(format!("{} is gone", blessed.file_name())))?;
        if sort_key_of(&text) != Some(SORT_KEY) {
            let tmp = dir.join(format!(".hearth-{}.tmp", blessed.version));
            replace_file(
                &*self.ops,
                &path,
                &tmp,
                with_sort_key(&text, SORT_KEY).as_bytes(),
            )?;
        }
        // 4. Failed attempts were reported by `status` before blessing; drop them now.
        self.remove_entries(
            entries
                .iter()
                .filter(|e| e.name.is_bad() && e.file != current.file),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Raspberry Pi tryboot

/// Raspberry Pi boot control through `autoboot.txt` and the firmware's one-shot tryboot.
pub struct Tryboot {
    /// Mount point of the small FAT partition holding `autoboot.txt`.
    pub boot_dir: PathBuf,
    /// `/proc/device-tree/chosen/bootloader` (a fixture directory in tests).
    pub bootloader_dir: PathBuf,
    /// Partition numbers of boot-a and boot-b.
    pub partitions: [u32; 2],
    /// `/proc/sys/kernel/random/boot_id` of this boot: tells "trial not started yet" from
    /// "trial happened and failed".
    pub boot_id: String,
    /// The running root's version (os-release `IMAGE_VERSION`), when known: the firmware
    /// records none.
    pub running_version: Option<Version>,
    pub ops: Box<dyn FsOps + Send + Sync>,
}

/// Parsed `autoboot.txt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Autoboot {
    pub committed: u32,
    pub tryboot: u32,
}

impl Autoboot {
    pub fn parse(text: &str) -> Result<Autoboot, BootError> {
        let mut section = "";
        let (mut committed, mut tryboot, mut ab) = (None, None, false);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = match s {
                    "all" => "all",
                    "tryboot" => "tryboot",
                    _ => "other",
                };
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match (section, k.trim()) {
                ("all", "tryboot_a_b") => ab = v.trim() == "1",
                ("all", "boot_partition") => committed = v.trim().parse::<u32>().ok(),
                ("tryboot", "boot_partition") => tryboot = v.trim().parse::<u32>().ok(),
                _ => {}
            }
        }
        match (ab, committed, tryboot) {
            (true, Some(c), Some(t)) => Ok(Autoboot {
                committed: c,
                tryboot: t,
            }),
            _ => Err(BootError::Damaged(
                "autoboot.txt lacks tryboot_a_b=1 or a boot_partition in [all] or [tryboot]".into(),
            )),
        }
    }

    pub fn render(&self) -> String {
        format!(
            "[all]\ntryboot_a_b=1\nboot_partition={}\n[tryboot]\nboot_partition={}\n",
            self.committed, self.tryboot
        )
    }
}

/// Marker written when a trial is set up; read at the next start.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct TrialMarker {
    partition: u32,
    version: Version,
    boot_id: String,
}

const MARKER: &str = "hearth-trial.json";

impl Tryboot {
    pub fn new(
        boot_dir: &Path,
        bootloader_dir: &Path,
        partitions: [u32; 2],
        boot_id: &str,
    ) -> Tryboot {
        Tryboot {
            boot_dir: boot_dir.to_path_buf(),
            bootloader_dir: bootloader_dir.to_path_buf(),
            partitions,
            boot_id: boot_id.trim().to_owned(),
            running_version: None,
            ops: Box::new(RealFs),
        }
    }

    /// A trial was set up during this boot and not yet taken: the next reboot must ask the
    /// firmware for `tryboot` (a plain reboot boots the committed slot again).
    pub fn trial_armed(&self) -> Result<bool, BootError> {
        let ab = self.autoboot()?;
        let (part, _) = self.running_partition(&ab)?;
        Ok(self.marker()?.is_some_and(|m| {
            m.boot_id == self.boot_id && m.partition == ab.tryboot && m.partition != part
        }))
    }

    fn autoboot(&self) -> Result<Autoboot, BootError> {
        let path = self.boot_dir.join("autoboot.txt");
        let text = read_small(&path)?
            .ok_or_else(|| BootError::Damaged(format!("{} is missing", path.display())))?;
        Autoboot::parse(&text)
    }

    /// A device-tree property: a big-endian u32.
    fn dt_u32(&self, name: &str) -> Result<Option<u32>, BootError> {
        let path = self.bootloader_dir.join(name);
        match fs::read(&path) {
            Ok(b) if b.len() == 4 => Ok(Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
            Ok(_) => Err(BootError::Unknown(format!(
                "{} is not a 4-byte value",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("read {}", path.display()))(e)),
        }
    }

    fn slot_of(&self, partition: u32) -> Result<Slot, BootError> {
        if partition == self.partitions[0] {
            Ok(Slot::A)
        } else if partition == self.partitions[1] {
            Ok(Slot::B)
        } else {
            Err(BootError::Damaged(format!(
                "boot partition {partition} is neither boot-a ({}) nor boot-b ({})",
                self.partitions[0], self.partitions[1]
            )))
        }
    }

    fn partition_of(&self, slot: Slot) -> u32 {
        match slot {
            Slot::A => self.partitions[0],
            Slot::B => self.partitions[1],
        }
    }

    fn marker(&self) -> Result<Option<TrialMarker>, BootError> {
        match read_small(&self.boot_dir.join(MARKER))? {
            None => Ok(None),
            // A damaged marker only loses the rollback notice; the boot is unaffected.
            Some(t) => Ok(serde_json::from_str(&t).ok()),
        }
    }

    fn running_partition(&self, ab: &Autoboot) -> Result<(u32, bool), BootError> {
        let tried = self.dt_u32("tryboot")?.unwrap_or(0) == 1;
        let part = match self.dt_u32("partition")? {
            Some(p) => p,
            None if tried => ab.tryboot,
            None => ab.committed,
        };
        Ok((part, tried))
    }
}

impl BootControl for Tryboot {
    fn status(&self) -> Result<BootStatus, BootError> {
        let ab = self.autoboot()?;
        let (part, tried) = self.running_partition(&ab)?;
        let current = self.slot_of(part)?;
        let on_trial = tried && part != ab.committed;
        let marker = self.marker()?;
        let rollback = match marker {
            Some(m) if !tried && m.boot_id != self.boot_id && m.partition != part => {
                Some(Rollback {
                    failed_slot: self.slot_of(m.partition).unwrap_or(current.other()),
                    failed_version: Some(m.version),
                    reason: format!(
                        "version {} did not start successfully on its one trial boot; the device went back to the installed version",
                        m.version
                    ),
                })
            }
            _ => None,
        };
        Ok(BootStatus {
            current,
            version: self.running_version,
            on_trial,
            rollback,
        })
    }

    fn set_trial(&self, spec: &TrialSpec) -> Result<(), BootError> {
        let ab = self.autoboot()?;
        let (part, tried) = self.running_partition(&ab)?;
        let target = self.partition_of(spec.slot);
        if target == part {
            return Err(BootError::TargetIsRunning(spec.slot));
        }
        if tried && part != ab.committed {
            return Err(BootError::Damaged(
                "the running slot is still on trial; bless it or reboot first".into(),
            ));
        }
        let marker = TrialMarker {
            partition: target,
            version: spec.version,
            boot_id: self.boot_id.clone(),
        };
        let marker_text = serde_json::to_vec(&marker)
            .map_err(|e| BootError::Damaged(format!("cannot encode the trial marker: {e}")))?;
        replace_file(
            &*self.ops,
            &self.boot_dir.join(MARKER),
            &self.boot_dir.join(format!("{MARKER}.new")),
            &marker_text,
        )?;
        let next = Autoboot {
            committed: part,
            tryboot: target,
        };
        replace_file(
            &*self.ops,
            &self.boot_dir.join("autoboot.txt"),
            &self.boot_dir.join("autoboot.txt.new"),
            next.render().as_bytes(),
        )
    }

    fn bless(&self) -> Result<(), BootError> {
        let ab = self.autoboot()?;
        let (part, tried) = self.running_partition(&ab)?;
        if tried && part != ab.committed {
            let next = Autoboot {
                committed: part,
                tryboot: ab.committed,
            };
            replace_file(
                &*self.ops,
                &self.boot_dir.join("autoboot.txt"),
                &self.boot_dir.join("autoboot.txt.new"),
                next.render().as_bytes(),
            )?;
        }
        if self.marker()?.is_some() || self.boot_dir.join(MARKER).exists() {
            self.ops
                .remove(&self.boot_dir.join(MARKER))
                .map_err(io_err("remove the trial marker"))?;
            sync_parent(&*self.ops, &self.boot_dir.join(MARKER))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        let table = [
            ("hearth-1.2.3.conf", Some((Version(1, 2, 3), None, None))),
            (
                "hearth-1.2.3+3.conf",
                Some((Version(1, 2, 3), Some(3), None)),
            ),
            (
                "hearth-1.2.3+0-3.conf",
                Some((Version(1, 2, 3), Some(0), Some(3))),
            ),
            ("hearth-1.2.3+.conf", None),
            ("hearth-1.2.3+a.conf", None),
            ("hearth-1.2.conf", None),
            ("other-1.2.3.conf", None),
            ("hearth-1.2.3.conf.tmp", None),
        ];
        for (file, want) in table {
            let got = EntryName::parse(file).map(|e| (e.version, e.tries_left, e.tries_done));
            assert_eq!(got, want, "{file}");
            if let Some(e) = EntryName::parse(file) {
                assert_eq!(e.file_name(), file);
            }
        }
        assert_eq!(normalize_entry_id("hearth-1.2.3+2-1.conf"), "hearth-1.2.3");
        assert_eq!(normalize_entry_id("hearth-1.2.3.conf"), "hearth-1.2.3");
        assert_eq!(normalize_entry_id("hearth-1.2.3"), "hearth-1.2.3");
    }

    #[test]
    fn sort_keys_are_set_in_place() {
        let text = "title Hearth 1.0.0\nsort-key hearth\nversion 1.0.0\noptions root=PARTLABEL=root-a ro\n";
        let trial = with_sort_key(text, TRIAL_SORT_KEY);
        assert_eq!(
            trial,
            "title Hearth 1.0.0\nsort-key 0-hearth-trial\nversion 1.0.0\noptions root=PARTLABEL=root-a ro\n"
        );
        assert_eq!(sort_key_of(&trial), Some(TRIAL_SORT_KEY));
        assert_eq!(with_sort_key(&trial, SORT_KEY), text);
        // No key yet: one is added after the title (or first, without a title).
        assert_eq!(
            with_sort_key("title X\nlinux /k\n", SORT_KEY),
            "title X\nsort-key hearth\nlinux /k\n"
        );
        assert_eq!(
            with_sort_key("linux /k\n", SORT_KEY),
            "sort-key hearth\nlinux /k\n"
        );
        // Two keys (a damaged entry): one is left.
        assert_eq!(
            with_sort_key("title X\nsort-key a\nsort-key b\n", SORT_KEY),
            "title X\nsort-key hearth\n"
        );
        // The trial key sorts before the blessed one, as systemd-boot compares them.
        assert!(TRIAL_SORT_KEY < SORT_KEY);
    }

    #[test]
    fn autoboot_round_trip_and_damage() {
        let a = Autoboot {
            committed: 2,
            tryboot: 3,
        };
        assert_eq!(Autoboot::parse(&a.render()).unwrap(), a);
        assert!(Autoboot::parse("[all]\nboot_partition=2\n").is_err());
    }
}
