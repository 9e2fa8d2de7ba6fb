//! Filesystem identification from on-disk superblocks: type, label and UUID, the way blkid
//! reports them, without running blkid.
//!
//! Security-relevant: these bytes come from any disk someone plugs in. Every parser is a
//! pure function over a byte slice, checks each offset against the slice length, and never
//! reads past it; the caller reads at most [`PROBE_BYTES`] (plus one capped extra region
//! for exFAT and NTFS labels, see [`LabelRegion`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How much of the start of a device the probe reads: enough for the btrfs superblock at
/// 64 KiB, the deepest of the formats we know.
pub const PROBE_BYTES: usize = 0x10000 + 0x1000;

/// Most bytes the second read (the exFAT root directory or the NTFS `$Volume` record) may
/// take.
pub const LABEL_REGION_MAX: usize = 64 * 1024;

/// Filesystems Hearth recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    Ext2,
    Ext3,
    Ext4,
    Btrfs,
    Xfs,
    Vfat,
    Exfat,
    Ntfs,
}

impl FsType {
    /// The name the kernel's `mount(2)` wants. NTFS goes to the in-kernel `ntfs3` driver.
    pub fn kernel_name(self) -> &'static str {
        match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
            FsType::Btrfs => "btrfs",
            FsType::Xfs => "xfs",
            FsType::Vfat => "vfat",
            FsType::Exfat => "exfat",
            FsType::Ntfs => "ntfs3",
        }
    }

    /// Filesystems without Unix owners: files belong to whoever the mount options say.
    pub fn needs_owner_option(self) -> bool {
        matches!(self, FsType::Vfat | FsType::Exfat | FsType::Ntfs)
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
            FsType::Btrfs => "btrfs",
            FsType::Xfs => "xfs",
            FsType::Vfat => "vfat",
            FsType::Exfat => "exfat",
            FsType::Ntfs => "ntfs",
        })
    }
}

/// What the superblock says about a filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsIdentity {
    pub fs_type: FsType,
    /// Formatted as blkid does: `xxxxxxxx-xxxx-…` for 128-bit UUIDs, `ABCD-1234` for FAT and
    /// exFAT serials, 16 hex digits for NTFS.
    pub uuid: String,
    pub label: Option<String>,
}

/// A second region to read for the label (exFAT keeps it in the root directory, NTFS in the
/// `$Volume` MFT record). Offsets come from the disk, so the length is capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelRegion {
    pub offset: u64,
    pub len: usize,
}

/// Result of looking at the first bytes of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub identity: FsIdentity,
    /// Where the label lives, when it is not in the first bytes.
    pub label_region: Option<LabelRegion>,
}

fn u16le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64le(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn uuid128(b: &[u8]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A label stored as a NUL-padded byte string; `None` if empty.
fn cstr_label(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]).trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn utf16_label(b: &[u8]) -> Option<String> {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    let s = String::from_utf16_lossy(&units).trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Identifies the filesystem whose first bytes are `head`. `None`: not one we know (or the
/// slice is too short to tell).
pub fn probe(head: &[u8]) -> Option<Probe> {
    // Order matters: exFAT and NTFS boot sectors also end in 55 AA, so they go before FAT.
    probe_ext(head)
        .or_else(|| probe_btrfs(head))
        .or_else(|| probe_xfs(head))
        .or_else(|| probe_exfat(head))
        .or_else(|| probe_ntfs(head))
        .or_else(|| probe_fat(head))
}

fn simple(fs_type: FsType, uuid: String, label: Option<String>) -> Probe {
    Probe {
        identity: FsIdentity {
            fs_type,
            uuid,
            label,
        },
        label_region: None,
    }
}

fn probe_ext(b: &[u8]) -> Option<Probe> {
    const SB: usize = 1024;
    if u16le(b, SB + 0x38)? != 0xEF53 {
        return None;
    }
    let compat = u32le(b, SB + 0x5C)?;
    let incompat = u32le(b, SB + 0x60)?;
    let ro_compat = u32le(b, SB + 0x64)?;
    // An external journal device is not a filesystem anyone can mount.
    const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
    if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        return None;
    }
    // Features ext2/ext3 drivers never had: extents, 64bit, flex_bg, mmp, inline data …
    const EXT4_INCOMPAT: u32 = 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x1000 | 0x8000 | 0x10000;
    // huge_file, gdt_csum, dir_nlink, extra_isize, metadata_csum
    const EXT4_RO_COMPAT: u32 = 0x8 | 0x10 | 0x20 | 0x40 | 0x400;
    const COMPAT_HAS_JOURNAL: u32 = 0x4;
    let fs_type = if incompat & EXT4_INCOMPAT != 0 || ro_compat & EXT4_RO_COMPAT != 0 {
        FsType::Ext4
    } else if compat & COMPAT_HAS_JOURNAL != 0 {
        FsType::Ext3
    } else {
        FsType::Ext2
    };
    let uuid = uuid128(b.get(SB + 0x68..SB + 0x78)?);
    let label = cstr_label(b.get(SB + 0x78..SB + 0x88)?);
    Some(simple(fs_type, uuid, label))
}

fn probe_btrfs(b: &[u8]) -> Option<Probe> {
    const SB: usize = 0x10000;
    if b.get(SB + 0x40..SB + 0x48)? != b"_BHRfS_M" {
        return None;
    }
    let uuid = uuid128(b.get(SB + 0x20..SB + 0x30)?);
    let label = cstr_label(b.get(SB + 0x12B..SB + 0x12B + 256)?);
    Some(simple(FsType::Btrfs, uuid, label))
}

fn probe_xfs(b: &[u8]) -> Option<Probe> {
    if b.get(0..4)? != b"XFSB" {
        return None;
    }
    let uuid = uuid128(b.get(32..48)?);
    let label = cstr_label(b.get(108..120)?);
    Some(simple(FsType::Xfs, uuid, label))
}

fn serial32(v: u32) -> String {
    format!("{:04X}-{:04X}", v >> 16, v & 0xFFFF)
}

fn probe_fat(b: &[u8]) -> Option<Probe> {
    if b.get(510..512)? != [0x55, 0xAA] {
        return None;
    }
    let bytes_per_sector = u16le(b, 11)?;
    let sectors_per_cluster = *b.get(13)?;
    let fats = *b.get(16)?;
    let sane = matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        && sectors_per_cluster.is_power_of_two()
        && (1..=4).contains(&fats);
    if !sane {
        return None;
    }
    // FAT32 keeps its extended boot record further in than FAT12/16.
    let (serial_at, label_at) = if b.get(0x52..0x57)? == b"FAT32" {
        (0x43, 0x47)
    } else if b.get(0x36..0x39)? == b"FAT" {
        (0x27, 0x2B)
    } else {
        return None;
    };
    let uuid = serial32(u32le(b, serial_at)?);
    let label = cstr_label(b.get(label_at..label_at + 11)?).filter(|l| l != "NO NAME");
    Some(simple(FsType::Vfat, uuid, label))
}

fn probe_exfat(b: &[u8]) -> Option<Probe> {
    if b.get(3..11)? != b"EXFAT   " {
        return None;
    }
    let uuid = serial32(u32le(b, 0x64)?);
    let heap_offset = u32le(b, 0x58)? as u64;
    let root_cluster = u32le(b, 0x60)? as u64;
    let sector_shift = *b.get(0x6C)? as u32;
    let cluster_shift = *b.get(0x6D)? as u32;
    // The spec allows 512 B–4 KiB sectors and clusters up to 32 MiB.
    if !(9..=12).contains(&sector_shift) || sector_shift + cluster_shift > 25 || root_cluster < 2 {
        return None;
    }
    let cluster_bytes = 1u64 << (sector_shift + cluster_shift);
    let offset = (heap_offset << sector_shift)
        .checked_add((root_cluster - 2).checked_mul(cluster_bytes)?)?;
    Some(Probe {
        identity: FsIdentity {
            fs_type: FsType::Exfat,
            uuid,
            label: None,
        },
        label_region: Some(LabelRegion {
            offset,
            len: (cluster_bytes as usize).min(LABEL_REGION_MAX),
        }),
    })
}

/// The volume label entry (type 0x83) of an exFAT root directory.
pub fn exfat_label(root_dir: &[u8]) -> Option<String> {
    for entry in root_dir.chunks_exact(32) {
        match entry[0] {
            0x00 => return None, // end of directory
            0x83 => {
                let chars = (entry[1] as usize).min(11);
                return utf16_label(&entry[2..2 + chars * 2]);
            }
            _ => {}
        }
    }
    None
}

fn probe_ntfs(b: &[u8]) -> Option<Probe> {
    if b.get(3..11)? != b"NTFS    " {
        return None;
    }
    let bytes_per_sector = u16le(b, 0x0B)? as u64;
    let sectors_per_cluster = *b.get(0x0D)? as u64;
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        || !sectors_per_cluster.is_power_of_two()
    {
        return None;
    }
    let cluster = bytes_per_sector * sectors_per_cluster;
    let mft_cluster = u64le(b, 0x30)?;
    // Positive: clusters per record; negative: the record is 2^-n bytes.
    let raw = *b.get(0x40)? as i8;
    let record = if raw > 0 {
        cluster.checked_mul(raw as u64)?
    } else {
        1u64.checked_shl((-(raw as i32)) as u32)?
    };
    if !(256..=LABEL_REGION_MAX as u64).contains(&record) {
        return None;
    }
    let serial = u64le(b, 0x48)?;
    // $Volume is MFT record 3.
    let offset = mft_cluster.checked_mul(cluster)?.checked_add(3 * record)?;
    Some(Probe {
        identity: FsIdentity {
            fs_type: FsType::Ntfs,
            uuid: format!("{serial:016X}"),
            label: None,
        },
        label_region: Some(LabelRegion {
            offset,
            len: record as usize,
        }),
    })
}

/// The `$VOLUME_NAME` attribute of the NTFS `$Volume` MFT record.
pub fn ntfs_label(record: &[u8]) -> Option<String> {
    if record.get(0..4)? != b"FILE" {
        return None;
    }
    let mut rec = record.to_vec();
    // Undo the update sequence: the last two bytes of each 512-byte stride were replaced by
    // the sequence number when written; the originals are kept in the array.
    let usa_off = u16le(&rec, 4)? as usize;
    let usa_count = u16le(&rec, 6)? as usize;
    for i in 1..usa_count {
        let end = i * 512;
        let orig = rec.get(usa_off + i * 2..usa_off + i * 2 + 2)?.to_vec();
        if end > rec.len() {
            break;
        }
        rec[end - 2..end].copy_from_slice(&orig);
    }
    let mut at = u16le(&rec, 0x14)? as usize;
    // A record holds a handful of attributes; the bound stops a crafted loop.
    for _ in 0..64 {
        let kind = u32le(&rec, at)?;
        if kind == 0xFFFF_FFFF {
            return None;
        }
        let len = u32le(&rec, at + 4)? as usize;
        if len < 24 || at.checked_add(len)? > rec.len() {
            return None;
        }
        let resident = *rec.get(at + 8)? == 0;
        if kind == 0x60 && resident {
            let vlen = u32le(&rec, at + 0x10)? as usize;
            let voff = u16le(&rec, at + 0x14)? as usize;
            let value = rec.get(at + voff..at + voff + vlen)?;
            return utf16_label(value);
        }
        at += len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Formats a `size`-byte sparse file with `cmd`; returns what discovery reads from it
    /// and the UUID blkid reports.
    fn mkfs(cmd: &[&str], size: u64) -> (Option<FsIdentity>, String) {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img).unwrap().set_len(size).unwrap();
        let out = Command::new(cmd[0])
            .args(&cmd[1..])
            .arg(&img)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "{} is missing ({e}); run scripts/install-deps to install the mkfs tools",
                    cmd[0]
                )
            });
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            crate::blockdev::discover::identify_file(&img).unwrap(),
            blkid_uuid(&img),
        )
    }

    /// blkid, the reference we must agree with (tests only; Hearth never runs it).
    fn blkid_uuid(img: &std::path::Path) -> String {
        let out = Command::new("blkid")
            .args(["-p", "-o", "value", "-s", "UUID"])
            .arg(img)
            .output()
            .expect("blkid missing; run scripts/install-deps");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[test]
    fn real_superblocks_from_mkfs() {
        let mib = 1024 * 1024;
        let uuid = "3f1c2b4a-5d6e-4f70-8192-a3b4c5d6e7f8";
        /// mkfs command, image size, then the expected type, label and (fixed) UUID.
        type Case<'a> = (&'a [&'a str], u64, FsType, Option<&'a str>, Option<&'a str>);
        let cases: &[Case] = &[
            (
                &["mkfs.ext4", "-q", "-F", "-L", "Films", "-U", uuid],
                16 * mib,
                FsType::Ext4,
                Some("Films"),
                Some(uuid),
            ),
            (
                &["mkfs.ext2", "-q", "-F", "-L", "old disk", "-U", uuid],
                8 * mib,
                FsType::Ext2,
                Some("old disk"),
                Some(uuid),
            ),
            (
                &["mkfs.ext3", "-q", "-F", "-U", uuid],
                16 * mib,
                FsType::Ext3,
                None,
                Some(uuid),
            ),
            (
                &["mkfs.btrfs", "-q", "-f", "-L", "Photos", "-U", uuid],
                128 * mib,
                FsType::Btrfs,
                Some("Photos"),
                Some(uuid),
            ),
            (
                &[
                    "mkfs.xfs",
                    "-q",
                    "-f",
                    "-L",
                    "Music",
                    "-m",
                    &format!("uuid={uuid}"),
                ],
                300 * mib,
                FsType::Xfs,
                Some("Music"),
                Some(uuid),
            ),
            (
                &["mkfs.vfat", "-F", "32", "-n", "HOLIDAY", "-i", "1a2b3c4d"],
                64 * mib,
                FsType::Vfat,
                Some("HOLIDAY"),
                Some("1A2B-3C4D"),
            ),
            (
                &["mkfs.vfat", "-F", "16", "-n", "CAMERA", "-i", "00ff0010"],
                16 * mib,
                FsType::Vfat,
                Some("CAMERA"),
                Some("00FF-0010"),
            ),
            (
                &["mkfs.vfat", "-F", "12", "-i", "deadbeef"],
                2 * mib,
                FsType::Vfat,
                None,
                Some("DEAD-BEEF"),
            ),
            (
                &["mkfs.exfat", "-L", "Films 2"],
                64 * mib,
                FsType::Exfat,
                Some("Films 2"),
                None,
            ),
            (
                &["mkntfs", "-q", "-F", "-f", "-L", "Archiv Ü"],
                64 * mib,
                FsType::Ntfs,
                Some("Archiv Ü"),
                None,
            ),
        ];
        for (cmd, size, fs_type, label, want_uuid) in cases {
            let (id, reference) = mkfs(cmd, *size);
            let id = id.unwrap_or_else(|| panic!("{cmd:?}: not recognised"));
            assert_eq!(id.fs_type, *fs_type, "{cmd:?}");
            assert_eq!(id.label.as_deref(), *label, "{cmd:?}");
            // Random serials (exFAT, NTFS) are checked against blkid only.
            if let Some(u) = want_uuid {
                assert_eq!(id.uuid, *u, "{cmd:?}");
            }
            assert_eq!(id.uuid, reference, "{cmd:?}: blkid disagrees");
        }
    }

    #[test]
    fn junk_and_truncation_are_not_filesystems() {
        assert_eq!(probe(&[]), None);
        assert_eq!(probe(&[0u8; PROBE_BYTES]), None);
        let noise: Vec<u8> = (0..PROBE_BYTES as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert_eq!(probe(&noise), None);
        // A boot signature alone is not FAT.
        let mut sig = vec![0u8; 512];
        sig[510] = 0x55;
        sig[511] = 0xAA;
        assert_eq!(probe(&sig), None);
        // Truncated ext magic: the slice ends inside the superblock.
        let mut ext = vec![0u8; 1024 + 0x3A];
        ext[1024 + 0x38] = 0x53;
        ext[1024 + 0x39] = 0xEF;
        assert_eq!(probe(&ext), None);
        assert_eq!(exfat_label(&[0x83, 200, 0x41]), None);
        assert_eq!(ntfs_label(b"FILE"), None);
    }

    #[test]
    fn every_truncation_of_a_real_superblock_is_safe() {
        let id = mkfs(&["mkfs.vfat", "-n", "CUT"], 4 * 1024 * 1024)
            .0
            .unwrap();
        assert_eq!(id.label.as_deref(), Some("CUT"));
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("e.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        assert!(
            Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(&img)
                .status()
                .unwrap()
                .success()
        );
        let head = std::fs::read(&img).unwrap();
        for cut in 0..4096 {
            let _ = probe(&head[..cut]);
        }
        assert!(probe(&head[..2048]).is_some());
    }
}
