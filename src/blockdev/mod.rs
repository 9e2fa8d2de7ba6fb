//! Block devices as the kernel shows them: discovery through `/sys` and the mount table,
//! filesystem superblocks, and mount plans. Reading only, nothing here mounts or asks anyone:
//! both the root agent (which mounts) and the unprivileged disk monitor use it.

pub mod discover;
pub mod plan;
pub mod superblock;

pub use discover::{Disk, Sysroot, Volume, discover, find_uuid};
pub use superblock::FsType;
