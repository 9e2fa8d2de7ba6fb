//! The generated test media library (`tests/media/README.md` says what is in it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The test media library, generated once into the build products by `tests/media/test-media`
/// (read-only files: copy what a test changes). The script locks, so test binaries that run at
/// the same time share one build; within a binary the path is asked for once.
pub fn test_media() -> PathBuf {
    static MEDIA: OnceLock<PathBuf> = OnceLock::new();
    MEDIA
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/test-media");
            // `<target>/tmp`: the library goes beside it, in `<target>/test-media`, where the
            // shell tiers find the same copy.
            let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("CARGO_TARGET_TMPDIR is inside the target directory");
            let out = Command::new(&script)
                .arg(target.join("test-media"))
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            assert!(
                out.status.success(),
                "{} failed ({}): it needs ffmpeg and exiftool, see scripts/install-deps",
                script.display(),
                out.status
            );
            let path = String::from_utf8(out.stdout).expect("a UTF-8 path");
            PathBuf::from(path.trim())
        })
        .clone()
}
