//! Security-sensitive: the ed25519 keys that decide which update bundles a device accepts.
//!
//! A private key file holds a PKCS#8 document (what `ring` generates); a public key file
//! holds the raw 32-byte ed25519 key. Both are short text files so they survive copy and
//! paste. A keyring is a directory of `*.pub` files; the image ships it read-only in the
//! root, so only a signed update can change which keys are trusted.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

const PRIVATE_LABEL: &str = "hearth-ed25519-private-v1";
const PUBLIC_LABEL: &str = "hearth-ed25519-public-v1";
/// Key files are tiny; anything larger is not a key file.
const MAX_KEY_FILE: u64 = 4096;
/// A keyring holds a handful of keys (current + next for rotation); more is a mistake.
const MAX_KEYRING_KEYS: usize = 16;

/// First 8 bytes of sha256(public key): names a key in bundles and messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KeyId(pub [u8; 8]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl KeyId {
    pub fn of(public: &[u8; 32]) -> KeyId {
        let d = ring::digest::digest(&ring::digest::SHA256, public);
        let mut id = [0u8; 8];
        id.copy_from_slice(&d.as_ref()[..8]);
        KeyId(id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a hearth {kind} key file: {why}")]
    Format {
        path: String,
        kind: &'static str,
        why: String,
    },
    #[error("the keyring {path} holds no public keys (*.pub); add the publisher's key there")]
    EmptyKeyring { path: String },
    #[error("the keyring {path} holds more than {MAX_KEYRING_KEYS} keys; remove retired keys")]
    TooManyKeys { path: String },
    #[error("{path} already exists; choose another name or remove it first")]
    Exists { path: String },
    #[error("the system random generator failed; try again")]
    Random,
}

/// A publisher's signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    id: KeyId,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}

impl SigningKey {
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn public(&self) -> [u8; 32] {
        let mut p = [0u8; 32];
        // ring's ed25519 public keys are always 32 bytes.
        p.copy_from_slice(self.pair.public_key().as_ref());
        p
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut s = [0u8; 64];
        // ed25519 signatures are always 64 bytes.
        s.copy_from_slice(self.pair.sign(message).as_ref());
        s
    }

    fn from_pkcs8(pkcs8: &[u8], path: &Path) -> Result<SigningKey, KeyError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|e| KeyError::Format {
                path: path.display().to_string(),
                kind: "private",
                why: e.to_string(),
            })?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(SigningKey {
            pair,
            id: KeyId::of(&public),
        })
    }

    /// Reads a private key written by [`generate`].
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let text = read_small(path)?;
        let body = strip_label(&text, PRIVATE_LABEL).ok_or_else(|| KeyError::Format {
            path: path.display().to_string(),
            kind: "private",
            why: format!("the first line must be `{PRIVATE_LABEL}`"),
        })?;
        let der = B64.decode(body.trim()).map_err(|e| KeyError::Format {
            path: path.display().to_string(),
            kind: "private",
            why: format!("bad base64: {e}"),
        })?;
        SigningKey::from_pkcs8(&der, path)
    }
}

/// A trusted public key.
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub id: KeyId,
    pub bytes: [u8; 32],
    /// Where it came from, for messages.
    pub source: PathBuf,
}

impl PublicKey {
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.bytes)
            .verify(message, signature)
            .is_ok()
    }

    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = read_small(path)?;
        let body = strip_label(&text, PUBLIC_LABEL).ok_or_else(|| KeyError::Format {
            path: path.display().to_string(),
            kind: "public",
            why: format!("the first line must be `{PUBLIC_LABEL}`"),
        })?;
        let raw = B64.decode(body.trim()).map_err(|e| KeyError::Format {
            path: path.display().to_string(),
            kind: "public",
            why: format!("bad base64: {e}"),
        })?;
        let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| KeyError::Format {
            path: path.display().to_string(),
            kind: "public",
            why: format!(
                "an ed25519 public key is 32 bytes, this one is {}",
                raw.len()
            ),
        })?;
        Ok(PublicKey {
            id: KeyId::of(&bytes),
            bytes,
            source: path.to_path_buf(),
        })
    }
}

/// The set of public keys a device trusts.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<PublicKey>,
    /// Where it was loaded from, for messages.
    pub origin: String,
}

impl Keyring {
    pub fn from_keys(keys: Vec<PublicKey>, origin: &str) -> Keyring {
        Keyring {
            keys,
            origin: origin.to_owned(),
        }
    }

    /// Loads every `*.pub` file of `dir` (not recursive).
    pub fn load_dir(dir: &Path) -> Result<Keyring, KeyError> {
        let entries = fs::read_dir(dir).map_err(|source| KeyError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| KeyError::Read {
                path: dir.display().to_string(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "pub") {
                paths.push(path);
                if paths.len() > MAX_KEYRING_KEYS {
                    return Err(KeyError::TooManyKeys {
                        path: dir.display().to_string(),
                    });
                }
            }
        }
        paths.sort();
        if paths.is_empty() {
            return Err(KeyError::EmptyKeyring {
                path: dir.display().to_string(),
            });
        }
        let keys = paths
            .iter()
            .map(|p| PublicKey::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring {
            keys,
            origin: dir.display().to_string(),
        })
    }

    pub fn get(&self, id: KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }
}

/// Files written by [`generate`].
#[derive(Debug)]
pub struct GeneratedKey {
    pub private: PathBuf,
    pub public: PathBuf,
    pub id: KeyId,
}

/// Creates `<dir>/<name>.key` (mode 0600) and `<dir>/<name>.pub`; never overwrites.
pub fn generate(dir: &Path, name: &str) -> Result<GeneratedKey, KeyError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(KeyError::Format {
            path: name.to_owned(),
            kind: "private",
            why: "a key name is 1-64 letters, digits, '-' or '_'".into(),
        });
    }
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    for p in [&private, &public] {
        if p.exists() {
            return Err(KeyError::Exists {
                path: p.display().to_string(),
            });
        }
    }
    let key = SigningKey::from_pkcs8(pkcs8.as_ref(), &private)?;
    write_new(
        &private,
        &format!("{PRIVATE_LABEL}\n{}\n", B64.encode(pkcs8.as_ref())),
        0o600,
    )?;
    write_new(
        &public,
        &format!("{PUBLIC_LABEL}\n{}\n", B64.encode(key.public())),
        0o644,
    )?;
    Ok(GeneratedKey {
        private,
        public,
        id: key.id(),
    })
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| KeyError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

fn read_small(path: &Path) -> Result<String, KeyError> {
    use std::io::Read;
    let err = |source| KeyError::Read {
        path: path.display().to_string(),
        source,
    };
    let f = fs::File::open(path).map_err(err)?;
    let mut text = String::new();
    f.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut text)
        .map_err(err)?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(KeyError::Format {
            path: path.display().to_string(),
            kind: "key",
            why: format!("larger than {MAX_KEY_FILE} bytes"),
        });
    }
    Ok(text)
}

fn strip_label<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let (first, rest) = text.split_once('\n')?;
    (first.trim() == label).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_and_its_public_half_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path(), "release").unwrap();
        let key = SigningKey::load(&g.private).unwrap();
        let ring = Keyring::load_dir(dir.path()).unwrap();
        let public = ring.get(g.id).unwrap();
        let sig = key.sign(b"message");
        assert!(public.verify(b"message", &sig));
        assert!(!public.verify(b"messagf", &sig));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&g.private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Never overwrites an existing key.
        assert!(matches!(
            generate(dir.path(), "release"),
            Err(KeyError::Exists { .. })
        ));
    }

    #[test]
    fn bad_key_files_are_refused_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pub");
        fs::write(&p, "something else\nAAAA\n").unwrap();
        assert!(
            PublicKey::load(&p)
                .unwrap_err()
                .to_string()
                .contains("first line")
        );
        fs::write(&p, format!("{PUBLIC_LABEL}\n{}\n", B64.encode([1u8; 31]))).unwrap();
        assert!(
            PublicKey::load(&p)
                .unwrap_err()
                .to_string()
                .contains("32 bytes")
        );
        fs::write(&p, vec![b'a'; 5000]).unwrap();
        assert!(
            PublicKey::load(&p)
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            Keyring::load_dir(empty.path()),
            Err(KeyError::EmptyKeyring { .. })
        ));
    }
}
