//! Security-sensitive: the setup code that proves someone can read the device's console,
//! log or boot partition, and so may claim it.
//!
//! The code lives in `<data>/setup-code` (mode 0600). The file exists exactly while the
//! device is unclaimed: a claim removes it, a reset writes a new one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;

/// No 0/O, 1/I/L, 5/S, 8/B, 2/Z or U/V: each character reads unambiguously on a TV or in
/// handwriting. 23 symbols × 12 positions ≈ 54 bits.
const ALPHABET: &[u8] = b"34679ACDEFGHJKMNPQRTWXY";
const GROUPS: usize = 3;
const GROUP_LEN: usize = 4;
const LEN: usize = GROUPS * GROUP_LEN;

pub const FILE_NAME: &str = "setup-code";

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// A new random code, formatted `XXXX-XXXX-XXXX`.
pub fn generate() -> Result<String, String> {
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(LEN + GROUPS);
    let mut i = 0;
    while i < LEN {
        let mut b = [0u8; 1];
        rng.fill(&mut b)
            .map_err(|_| "the system random number generator failed".to_owned())?;
        // Rejection sampling keeps every symbol equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        if usize::from(b[0]) >= limit {
            continue;
        }
        if i > 0 && i % GROUP_LEN == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[usize::from(b[0]) % ALPHABET.len()]));
        i += 1;
    }
    Ok(out)
}

/// Upper-cases and drops spaces and dashes so `abcd efgh-jkmn` matches `ABCD-EFGH-JKMN`.
pub fn normalize(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .take(64)
        .collect()
}

/// Compares in constant time with respect to the contents.
pub fn matches(input: &str, code: &str) -> bool {
    let a = normalize(input);
    let b = normalize(code);
    // Every byte is compared whatever the earlier ones were, so timing reveals nothing
    // about how much of a guess was right.
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Reads the current code, if the device is unclaimed.
pub fn read(data_dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path(data_dir)) {
        Ok(s) => {
            let code = s.trim().to_owned();
            Ok((!code.is_empty()).then_some(code))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `code` to `<data>/setup-code` (0600) and, when given, `<esp>/setup-code.txt`,
/// each via a temp file and rename so a power cut never leaves half a code.
pub fn write(data_dir: &Path, esp_dir: Option<&Path>, code: &str) -> std::io::Result<()> {
    write_atomic(&path(data_dir), code, 0o600)?;
    if let Some(esp) = esp_dir {
        // FAT has no permissions; the ESP is only readable by whoever holds the device.
        std::fs::create_dir_all(esp)?;
        write_atomic(&esp.join("setup-code.txt"), code, 0o600)?;
    }
    Ok(())
}

/// Removes the code (after a claim).
pub fn remove(data_dir: &Path, esp_dir: Option<&Path>) -> std::io::Result<()> {
    for p in [
        Some(path(data_dir)),
        esp_dir.map(|e| e.join("setup-code.txt")),
    ]
    .into_iter()
    .flatten()
    {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_atomic(target: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let tmp = target.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, target)?;
    if let Some(dir) = target.parent() {
        // Directory fsync makes the rename itself durable; not supported on every fs.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn codes_look_right() {
        for _ in 0..200 {
            let c = generate().unwrap();
            assert_eq!(c.len(), 14);
            assert_eq!(c.matches('-').count(), 2);
            assert!(
                c.bytes()
                    .filter(|b| *b != b'-')
                    .all(|b| ALPHABET.contains(&b))
            );
        }
        assert_ne!(generate().unwrap(), generate().unwrap());
    }

    #[test]
    fn matching_is_forgiving_about_format_only() {
        assert!(matches("acde fghj-kmnp", "ACDE-FGHJ-KMNP"));
        assert!(matches("ACDEFGHJKMNP", "ACDE-FGHJ-KMNP"));
        assert!(!matches("ACDE-FGHJ-KMNQ", "ACDE-FGHJ-KMNP"));
        assert!(!matches("", "ACDE-FGHJ-KMNP"));
        assert!(!matches("ACDE-FGHJ-KMN", "ACDE-FGHJ-KMNP"));
    }

    #[test]
    fn file_is_private_and_removable() {
        let dir = tempfile::tempdir().unwrap();
        let esp = dir.path().join("esp/hearth");
        write(dir.path(), Some(&esp), "AAAA-BBBB-CCCC").unwrap();
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read(dir.path()).unwrap().as_deref(), Some("AAAA-BBBB-CCCC"));
        assert!(esp.join("setup-code.txt").exists());
        remove(dir.path(), Some(&esp)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        assert!(!esp.join("setup-code.txt").exists());
    }
}
