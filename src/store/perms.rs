//! Security-sensitive: keeps the data directory private. It holds the database (the
//! stream-signing key, password hashes, TOTP secrets), TLS keys and the setup code, so the
//! directory and every folder under it are 0700 and every file 0600, whatever the umask the
//! server was started with; [`secure_data_dir`] also repairs installs made before this rule.

use std::fs::Permissions;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Mode of the data directory and every folder under it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file under the data directory.
pub const FILE_MODE: u32 = 0o600;

/// How deep the repair walk goes; the data directory is shallow (`tls/`, `ota/`).
const MAX_DEPTH: usize = 8;

/// Creates the data directory (and missing parents) private, then walks it and takes group
/// and world access away from everything in it. Symbolic links are neither followed nor
/// changed: the walk only ever changes what is really inside the directory.
pub fn secure_data_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| with_path(e, "cannot create the data directory", dir))?;
    let meta = std::fs::symlink_metadata(dir)?;
    // The data directory itself may be a link the administrator made (to another disk);
    // that one is theirs to choose, and what it points to is made private.
    let target = if meta.file_type().is_symlink() {
        std::fs::canonicalize(dir)?
    } else {
        dir.to_owned()
    };
    restrict(&target, true)?;
    walk(&target, 0)
}

/// Makes a file private (the database right after redb created it, for one).
pub fn secure_file(path: &Path) -> std::io::Result<()> {
    restrict(path, false)
}

fn walk(dir: &Path, depth: usize) -> std::io::Result<()> {
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| with_path(e, "cannot read the data directory", dir))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        // `file_type` comes from the directory entry, without following a link.
        let kind = entry.file_type()?;
        // One entry that cannot be changed (another user's file) is reported, and the
        // server still starts: the directory itself is private, which is what keeps others out.
        let done = if kind.is_symlink() {
            continue;
        } else if kind.is_dir() {
            restrict(&path, true).and_then(|()| walk(&path, depth + 1))
        } else if kind.is_file() {
            restrict(&path, false)
        } else {
            Ok(())
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "a file in the data directory could not be made private");
        }
    }
    Ok(())
}

/// Sets the private mode on `path` if it is a folder (`dir`) or a regular file and not
/// already private. Opened with `O_NOFOLLOW` and changed through the descriptor, so a link
/// put in its place after the listing is refused, not followed.
fn restrict(path: &Path, dir: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK;
    if dir {
        flags |= nix::libc::O_DIRECTORY;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| with_path(e, "cannot open", path))?;
    let meta = file.metadata()?;
    let want = if dir { DIR_MODE } else { FILE_MODE };
    if (dir && !meta.is_dir()) || (!dir && !meta.is_file()) {
        return Ok(());
    }
    if meta.permissions().mode() & 0o7777 != want {
        file.set_permissions(Permissions::from_mode(want))
            .map_err(|e| with_path(e, "cannot make private", path))?;
    }
    Ok(())
}

fn with_path(e: std::io::Error, what: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn repairs_an_open_data_dir_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("tls")).unwrap();
        std::fs::write(data.join("hearth.redb"), b"db").unwrap();
        std::fs::write(data.join("tls/key.pem"), b"k").unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"o").unwrap();
        std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
        for (p, m) in [
            (data.clone(), 0o755),
            (data.join("tls"), 0o755),
            (data.join("hearth.redb"), 0o644),
            (data.join("tls/key.pem"), 0o644),
            (outside.clone(), 0o644),
        ] {
            std::fs::set_permissions(&p, Permissions::from_mode(m)).unwrap();
        }
        secure_data_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("tls")), 0o700);
        assert_eq!(mode(&data.join("hearth.redb")), 0o600);
        assert_eq!(mode(&data.join("tls/key.pem")), 0o600);
        assert_eq!(
            mode(&outside),
            0o644,
            "a link was followed out of the data dir"
        );
        let fresh = tmp.path().join("a/b/fresh");
        secure_data_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
    }
}
