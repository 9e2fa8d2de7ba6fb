//! Finding disks: `/sys/block` for devices and partitions, `/proc/self/mountinfo` for what
//! is mounted where, the superblock for filesystem type, label and UUID, and `statvfs` for
//! free space. Reads only; nothing here needs root except opening `/dev/*` to read a
//! superblock, and without root that part is simply left empty.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::superblock::{self, FsIdentity, FsType, LABEL_REGION_MAX, PROBE_BYTES};

/// Where `/sys`, `/proc` and `/dev` are: `/` in production, a fixture tree in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysroot(PathBuf);

impl Default for Sysroot {
    fn default() -> Self {
        Sysroot(PathBuf::from("/"))
    }
}

impl Sysroot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysroot(root.into())
    }
    pub fn root(&self) -> &Path {
        &self.0
    }
    pub fn sys_block(&self) -> PathBuf {
        self.0.join("sys/block")
    }
    pub fn mountinfo(&self) -> PathBuf {
        self.0.join("proc/self/mountinfo")
    }
    pub fn dev(&self) -> PathBuf {
        self.0.join("dev")
    }
}

/// A whole disk as the kernel lists it in `/sys/block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Disk {
    /// Kernel name, e.g. `sda`, `nvme0n1`, `loop3`.
    pub name: String,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub size_bytes: u64,
    /// The kernel's `removable` flag (card readers, some sticks).
    pub removable: bool,
    /// Attached over USB, so it can be ejected and powered off.
    pub usb: bool,
    pub read_only: bool,
    /// The kernel's media sequence number: it changes whenever the medium does, so a disk
    /// pulled and put back between two polls still counts as a new arrival.
    pub diskseq: Option<u64>,
    /// The filesystems on it: one per partition, or the whole disk if it has none.
    pub volumes: Vec<Volume>,
}

/// A partition (or an unpartitioned whole disk) and what is on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Volume {
    /// Kernel name, e.g. `sda1`.
    pub name: String,
    /// `/dev/<name>` (under the sysroot).
    #[schema(value_type = String)]
    pub device: PathBuf,
    /// `major:minor`, which is how mountinfo names the device.
    pub dev_t: String,
    pub size_bytes: u64,
    #[schema(value_type = Option<String>)]
    pub fs_type: Option<FsType>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// Where it is mounted now (empty: not mounted).
    #[schema(value_type = Vec<String>)]
    pub mount_points: Vec<PathBuf>,
    /// Mounted read-only (the first mount point's options).
    pub mounted_read_only: bool,
    pub free_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
}

/// One line of `/proc/self/mountinfo`, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub dev_t: String,
    pub mount_point: PathBuf,
    pub read_only: bool,
    pub fs_type: String,
    pub source: String,
}

/// Most bytes of mountinfo we read; a system with thousands of mounts is not an appliance.
const MOUNTINFO_MAX: u64 = 4 * 1024 * 1024;
/// Most entries of `/sys/block` (and partitions per disk) we look at.
const MAX_DEVICES: usize = 256;

/// Parses mountinfo text. Lines that do not parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    // id parent major:minor root mount_point options [optional…] - fstype source super_options
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    if l.len() < 6 || r.len() < 2 {
        return None;
    }
    Some(MountEntry {
        dev_t: l[2].to_owned(),
        mount_point: PathBuf::from(unescape_octal(l[4])),
        read_only: l[5].split(',').any(|o| o == "ro"),
        fs_type: r[0].to_owned(),
        source: unescape_octal(r[1]),
    })
}

/// mountinfo writes space, tab, newline and backslash as `\040` etc.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_small(path: &Path) -> Option<String> {
    let mut s = String::new();
    File::open(path)
        .ok()?
        .take(4096)
        .read_to_string(&mut s)
        .ok()?;
    let s = s.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn read_u64(path: &Path) -> Option<u64> {
    read_small(path)?.parse().ok()
}

/// Reads the mount table of the sysroot.
pub fn mounts(sysroot: &Sysroot) -> Vec<MountEntry> {
    let mut text = String::new();
    match File::open(sysroot.mountinfo()) {
        Ok(f) => {
            if f.take(MOUNTINFO_MAX).read_to_string(&mut text).is_err() {
                return Vec::new();
            }
        }
        Err(_) => return Vec::new(),
    }
    parse_mountinfo(&text)
}

/// Reads the superblock of a device or image file. `Ok(None)`: no filesystem we know.
pub fn identify_file(path: &Path) -> std::io::Result<Option<FsIdentity>> {
    let mut f = File::open(path)?;
    let mut head = Vec::with_capacity(PROBE_BYTES);
    (&mut f).take(PROBE_BYTES as u64).read_to_end(&mut head)?;
    let Some(probe) = superblock::probe(&head) else {
        return Ok(None);
    };
    let mut identity = probe.identity;
    if let Some(region) = probe.label_region {
        let len = region.len.min(LABEL_REGION_MAX);
        let mut buf = Vec::with_capacity(len);
        if f.seek(SeekFrom::Start(region.offset)).is_ok()
            && (&mut f).take(len as u64).read_to_end(&mut buf).is_ok()
        {
            identity.label = match identity.fs_type {
                FsType::Exfat => superblock::exfat_label(&buf),
                FsType::Ntfs => superblock::ntfs_label(&buf),
                _ => None,
            };
        }
    }
    Ok(Some(identity))
}

/// Kernel devices that are never media disks.
fn ignored(name: &str) -> bool {
    ["ram", "zram", "dm-", "md", "sr", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Lists the disks the sysroot shows, with their volumes, filesystems and mounts.
pub fn discover(sysroot: &Sysroot) -> Vec<Disk> {
    let mounts = mounts(sysroot);
    // Keyed by device number and by source path: btrfs shows an anonymous device number
    // (`0:NN`) in mountinfo, so only the source (`/dev/loop0`) ties its mounts to the disk.
    // The two kinds of key cannot collide (`M:m` against `/dev/…`).
    let mut by_dev: HashMap<&str, Vec<&MountEntry>> = HashMap::new();
    for m in &mounts {
        by_dev.entry(m.dev_t.as_str()).or_default().push(m);
        if m.source.starts_with("/dev/") && m.source != m.dev_t {
            by_dev.entry(m.source.as_str()).or_default().push(m);
        }
    }
    let mut names: Vec<String> = match std::fs::read_dir(sysroot.sys_block()) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .take(MAX_DEVICES)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !ignored(n))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    let mut disks = Vec::new();
    for name in names {
        let sys = sysroot.sys_block().join(&name);
        let size_bytes = read_u64(&sys.join("size")).unwrap_or(0) * 512;
        // Empty loop devices and card readers without a card.
        if size_bytes == 0 {
            continue;
        }
        let real = std::fs::canonicalize(&sys).unwrap_or_else(|_| sys.clone());
        let usb = real
            .components()
            .any(|c| c.as_os_str().to_str().is_some_and(|s| s.starts_with("usb")));
        let mut parts: Vec<String> = std::fs::read_dir(&sys)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .take(MAX_DEVICES)
                    .filter(|e| e.path().join("partition").exists())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        parts.sort_by_key(|p| (p.len(), p.clone()));
        let volumes = if parts.is_empty() {
            vec![volume(sysroot, &name, &sys, &by_dev)]
        } else {
            parts
                .iter()
                .map(|p| volume(sysroot, p, &sys.join(p), &by_dev))
                .collect()
        };
        disks.push(Disk {
            model: read_small(&sys.join("device/model")),
            vendor: read_small(&sys.join("device/vendor")),
            size_bytes,
            removable: read_small(&sys.join("removable")).as_deref() == Some("1"),
            usb,
            read_only: read_small(&sys.join("ro")).as_deref() == Some("1"),
            diskseq: read_u64(&sys.join("diskseq")),
            name,
            volumes,
        });
    }
    disks
}

fn volume(
    sysroot: &Sysroot,
    name: &str,
    sys: &Path,
    by_dev: &HashMap<&str, Vec<&MountEntry>>,
) -> Volume {
    let device = sysroot.dev().join(name);
    let dev_t = read_small(&sys.join("dev")).unwrap_or_default();
    let identity = identify_file(&device).ok().flatten();
    let mut mounted = by_dev.get(dev_t.as_str()).cloned().unwrap_or_default();
    let device_path = device.display().to_string();
    for m in by_dev.get(device_path.as_str()).into_iter().flatten() {
        if !mounted.iter().any(|x| x.mount_point == m.mount_point) {
            mounted.push(m);
        }
    }
    let (free_bytes, total_bytes) = mounted
        .first()
        .and_then(|m| nix::sys::statvfs::statvfs(&m.mount_point).ok())
        .map(|s| {
            let frag = s.fragment_size();
            (Some(s.blocks_available() * frag), Some(s.blocks() * frag))
        })
        .unwrap_or((None, None));
    Volume {
        name: name.to_owned(),
        device,
        size_bytes: read_u64(&sys.join("size")).unwrap_or(0) * 512,
        fs_type: identity.as_ref().map(|i| i.fs_type),
        uuid: identity.as_ref().map(|i| i.uuid.clone()),
        label: identity.and_then(|i| i.label),
        mount_points: mounted.iter().map(|m| m.mount_point.clone()).collect(),
        mounted_read_only: mounted.first().is_some_and(|m| m.read_only),
        free_bytes,
        total_bytes,
        dev_t,
    }
}

/// Finds the volume holding the filesystem with `uuid`, and its disk.
pub fn find_uuid<'a>(disks: &'a [Disk], uuid: &str) -> Option<(&'a Disk, &'a Volume)> {
    disks.iter().find_map(|d| {
        d.volumes
            .iter()
            .find(|v| v.uuid.as_deref() == Some(uuid))
            .map(|v| (d, v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
90 22 7:0 / /media/My\\040Films rw,nosuid,nodev,noexec - ext4 /dev/loop0 rw
91 22 8:17 / /media/cam ro,nosuid shared:5 master:2 - vfat /dev/sdb1 ro,fmask=0022
garbage line without separator
92 22 0:5 / /dev rw - devtmpfs udev rw,size=1k
";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].mount_point, PathBuf::from("/media/My Films"));
        assert_eq!(m[1].dev_t, "7:0");
        assert!(!m[1].read_only);
        assert_eq!(m[2].fs_type, "vfat");
        assert!(m[2].read_only);
        assert_eq!(m[2].source, "/dev/sdb1");
        assert_eq!(unescape_octal("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape_octal("end\\04"), "end\\04");
    }

    /// A fixture tree shaped like a machine with one partitioned USB stick and one empty loop.
    #[test]
    fn discovery_over_a_fixture_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let usb = root.join("sys/devices/pci0/usb2/2-1/host0/block/sdb");
        for d in [usb.join("sdb1"), usb.join("device"), root.join("sys/block")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::create_dir_all(root.join("sys/block/loop1")).unwrap();
        std::fs::write(root.join("sys/block/loop1/size"), "0\n").unwrap();
        std::os::unix::fs::symlink(&usb, root.join("sys/block/sdb")).unwrap();
        for (f, v) in [
            ("size", "131072"),
            ("removable", "1"),
            ("ro", "0"),
            ("dev", "8:16"),
            ("device/model", "Cruzer Blade    "),
            ("device/vendor", "SanDisk "),
            ("sdb1/partition", "1"),
            ("sdb1/size", "129024"),
            ("sdb1/dev", "8:17"),
        ] {
            std::fs::write(usb.join(f), v).unwrap();
        }
        std::fs::create_dir_all(root.join("dev")).unwrap();
        let img = root.join("dev/sdb1");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(63 << 20)
            .unwrap();
        let ok = std::process::Command::new("mkfs.vfat")
            .args(["-n", "STICK", "-i", "0badcafe"])
            .arg(&img)
            .output()
            .expect("mkfs.vfat missing; run scripts/install-deps");
        assert!(ok.status.success());
        std::fs::create_dir_all(root.join("proc/self")).unwrap();
        std::fs::write(
            root.join("proc/self/mountinfo"),
            format!(
                "90 22 8:17 / {} ro,nosuid - vfat /dev/sdb1 ro\n",
                root.display()
            ),
        )
        .unwrap();

        let disks = discover(&Sysroot::new(root));
        assert_eq!(disks.len(), 1, "{disks:#?}");
        let d = &disks[0];
        assert_eq!(d.name, "sdb");
        assert_eq!(d.model.as_deref(), Some("Cruzer Blade"));
        assert_eq!(d.vendor.as_deref(), Some("SanDisk"));
        assert!(d.usb && d.removable && !d.read_only);
        assert_eq!(d.size_bytes, 64 << 20);
        assert_eq!(d.volumes.len(), 1);
        let v = &d.volumes[0];
        assert_eq!(v.fs_type, Some(FsType::Vfat));
        assert_eq!(v.uuid.as_deref(), Some("0BAD-CAFE"));
        assert_eq!(v.label.as_deref(), Some("STICK"));
        assert_eq!(v.mount_points, vec![root.to_path_buf()]);
        assert!(v.mounted_read_only);
        assert!(v.free_bytes.is_some());
        assert!(find_uuid(&disks, "0BAD-CAFE").is_some());
        assert!(find_uuid(&disks, "0BAD-CAFF").is_none());
    }
}
