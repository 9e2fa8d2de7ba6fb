//! Mount plans: where and how a filesystem gets mounted, computed as a pure function so the
//! agent can check the plan's invariants before it acts.
//!
//! Security-relevant: the mount point name comes from a disk label anyone can write, so it
//! is sanitised to one plain path component under the media root.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::superblock::FsType;

/// Filesystems the agent will mount. Everything else is refused.
pub const ALLOWED_FS: &[FsType] = &[
    FsType::Ext2,
    FsType::Ext3,
    FsType::Ext4,
    FsType::Btrfs,
    FsType::Xfs,
    FsType::Vfat,
    FsType::Exfat,
    FsType::Ntfs,
];

/// Longest mount point name we make (bytes).
const NAME_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPlan {
    pub device: PathBuf,
    pub mount_point: PathBuf,
    pub fs_type: FsType,
    pub read_only: bool,
    /// Filesystem-specific options (owner of the files on FAT/exFAT/NTFS).
    pub data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("this disk has no filesystem Hearth can read; format it as ext4, exFAT or NTFS")]
    NoFilesystem,
    #[error("{0} disks cannot be mounted by Hearth; use ext4, btrfs, xfs, FAT, exFAT or NTFS")]
    NotAllowed(FsType),
    #[error("no free name for a mount point under the media folder; eject some disks first")]
    NoFreeName,
}

/// Turns a label into one safe path component: letters, digits, `-`, `_`, `.`; anything
/// else becomes `_`; no leading dot; at most 64 bytes. Empty when nothing usable is left.
pub fn sanitise_name(label: &str) -> String {
    let mut out = String::new();
    for c in label.trim().chars() {
        let c = if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        if out.len() + c.len_utf8() > NAME_MAX {
            break;
        }
        out.push(c);
    }
    out.trim_start_matches(['.', '_'])
        .trim_end_matches('_')
        .to_owned()
}

/// True when `name` is already exactly what [`sanitise_name`] would make of it.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty() && sanitise_name(name) == name
}

/// Computes where and how to mount a volume.
///
/// - `preferred`: the name remembered for this disk from earlier, used if still free;
/// - `taken`: mount point names under `media_root` already used by other filesystems (or
///   existing entries there).
#[allow(clippy::too_many_arguments)]
pub fn plan_mount(
    media_root: &Path,
    device: &Path,
    fs_type: Option<FsType>,
    uuid: &str,
    label: Option<&str>,
    read_only: bool,
    preferred: Option<&str>,
    taken: &HashSet<String>,
    owner: Option<(u32, u32)>,
) -> Result<MountPlan, PlanError> {
    let fs_type = fs_type.ok_or(PlanError::NoFilesystem)?;
    if !ALLOWED_FS.contains(&fs_type) {
        return Err(PlanError::NotAllowed(fs_type));
    }
    let name = match preferred.filter(|p| is_safe_name(p) && !taken.contains(*p)) {
        Some(p) => p.to_owned(),
        None => {
            let base = label
                .map(sanitise_name)
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| sanitise_name(uuid));
            let base = if base.is_empty() {
                "disk".to_owned()
            } else {
                base
            };
            (1..=100)
                .map(|n| {
                    if n == 1 {
                        base.clone()
                    } else {
                        format!("{base}-{n}")
                    }
                })
                .find(|n| !taken.contains(n))
                .ok_or(PlanError::NoFreeName)?
        }
    };
    let data = match (fs_type.needs_owner_option(), owner) {
        (true, Some((uid, gid))) => Some(format!("uid={uid},gid={gid},umask=0022")),
        _ => None,
    };
    Ok(MountPlan {
        device: device.to_owned(),
        mount_point: media_root.join(name),
        fs_type,
        read_only,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_labels() {
        let cases = [
            ("Films", "Films"),
            ("My Films", "My_Films"),
            ("  spaced  out ", "spaced_out"),
            ("../../etc", "etc"),
            ("..", ""),
            (".hidden", "hidden"),
            ("a/b\\c", "a_b_c"),
            ("Archiv Ü", "Archiv_Ü"),
            ("x\0y\n", "x_y"),
            ("$(reboot)", "reboot"),
            ("", ""),
        ];
        for (label, want) in cases {
            assert_eq!(sanitise_name(label), want, "{label:?}");
        }
        assert_eq!(sanitise_name(&"é".repeat(100)).len(), 64);
        assert!(is_safe_name("Films"));
        assert!(!is_safe_name("../Films"));
        assert!(!is_safe_name(""));
        assert!(!is_safe_name("a b"));
    }

    #[test]
    fn plans() {
        let media = Path::new("/media");
        let dev = Path::new("/dev/sdb1");
        let taken: HashSet<String> = ["Films", "Films-2"].map(String::from).into();
        let none = HashSet::new();
        type Case<'a> = (
            Option<FsType>,
            Option<&'a str>,
            Option<&'a str>,
            &'a HashSet<String>,
            Result<&'a str, PlanError>,
        );
        let cases: Vec<Case> = vec![
            (
                Some(FsType::Ext4),
                Some("Films"),
                None,
                &none,
                Ok("/media/Films"),
            ),
            (
                Some(FsType::Ext4),
                Some("Films"),
                None,
                &taken,
                Ok("/media/Films-3"),
            ),
            // The remembered place wins over the label, if free…
            (
                Some(FsType::Ext4),
                Some("Films"),
                Some("Old"),
                &taken,
                Ok("/media/Old"),
            ),
            // …but a taken or unsafe remembered name falls back to the label.
            (
                Some(FsType::Ext4),
                Some("New"),
                Some("Films"),
                &taken,
                Ok("/media/New"),
            ),
            (
                Some(FsType::Ext4),
                Some("New"),
                Some("../x"),
                &none,
                Ok("/media/New"),
            ),
            (
                Some(FsType::Vfat),
                None,
                None,
                &none,
                Ok("/media/1234-ABCD"),
            ),
            (
                Some(FsType::Vfat),
                Some("..."),
                None,
                &none,
                Ok("/media/1234-ABCD"),
            ),
            (None, Some("x"), None, &none, Err(PlanError::NoFilesystem)),
        ];
        for (fs, label, preferred, taken, want) in cases {
            let got = plan_mount(
                media,
                dev,
                fs,
                "1234-ABCD",
                label,
                true,
                preferred,
                taken,
                None,
            )
            .map(|p| p.mount_point);
            assert_eq!(
                got,
                want.map(PathBuf::from),
                "{fs:?} {label:?} {preferred:?}"
            );
        }
        let p = plan_mount(
            media,
            dev,
            Some(FsType::Exfat),
            "u",
            Some("x"),
            false,
            None,
            &none,
            Some((999, 998)),
        )
        .unwrap();
        assert_eq!(p.data.as_deref(), Some("uid=999,gid=998,umask=0022"));
        assert!(!p.read_only);
        let p = plan_mount(
            media,
            dev,
            Some(FsType::Ext4),
            "u",
            Some("x"),
            false,
            None,
            &none,
            Some((999, 998)),
        )
        .unwrap();
        assert_eq!(p.data, None);
        let full: HashSet<String> = std::iter::once("d".to_owned())
            .chain((2..=100).map(|n| format!("d-{n}")))
            .collect();
        assert_eq!(
            plan_mount(
                media,
                dev,
                Some(FsType::Ext4),
                "u",
                Some("d"),
                true,
                None,
                &full,
                None
            ),
            Err(PlanError::NoFreeName)
        );
    }
}
