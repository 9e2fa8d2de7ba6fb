//! Fixtures shared by the OTA tests: keys, payload files, bundles.

use std::path::{Path, PathBuf};

use hearth::ota::bundle::{self, CreateSpec};
use hearth::ota::keys::{self, Keyring, SigningKey};
use hearth::ota::{BundleMeta, Version};

pub use crate::common::noise;

/// Bytes that compress roughly like program code: noise drawn from a small alphabet,
/// with repeats.
pub fn codeish(seed: u64, len: usize) -> Vec<u8> {
    let n = noise(seed, len);
    n.iter()
        .enumerate()
        .map(|(i, b)| if i % 7 < 3 { b & 0x0f } else { b % 48 })
        .collect()
}

pub struct Publisher {
    pub dir: tempfile::TempDir,
    pub key: SigningKey,
    pub keyring_dir: PathBuf,
}

impl Publisher {
    pub fn new(name: &str) -> Publisher {
        let dir = tempfile::tempdir().unwrap();
        let keyring_dir = dir.path().join("keyring");
        std::fs::create_dir(&keyring_dir).unwrap();
        let g = keys::generate(dir.path(), name).unwrap();
        std::fs::copy(&g.public, keyring_dir.join(format!("{name}.pub"))).unwrap();
        Publisher {
            key: SigningKey::load(&g.private).unwrap(),
            keyring_dir,
            dir,
        }
    }

    pub fn keyring(&self) -> Keyring {
        Keyring::load_dir(&self.keyring_dir).unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes payload files and builds a bundle from them.
    pub fn bundle(
        &self,
        name: &str,
        version: Version,
        payloads: &[(&str, &[u8])],
    ) -> (PathBuf, BundleMeta) {
        let mut list = Vec::new();
        for (slot, data) in payloads {
            let p = self.path(&format!("{name}-{slot}.img"));
            std::fs::write(&p, data).unwrap();
            list.push((slot.to_string(), p));
        }
        let spec = CreateSpec {
            board: "generic-x86_64".into(),
            version,
            min_version: Version(1, 0, 0),
            payloads: list,
        };
        let out = self.path(&format!("{name}.hbundle"));
        let meta = bundle::create(&spec, &self.key, &out).unwrap();
        (out, meta)
    }
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}
