//! `hearth bundle …`: the publisher's tools. Each returns the text to print, or a message
//! saying what is wrong.

use std::fmt::Write as _;
use std::path::Path;

use super::bundle::{self, CreateSpec, InstallPolicy};
use super::keys::{self, Keyring, SigningKey};
use super::version::Version;

pub fn keygen(dir: &Path, name: &str) -> Result<String, String> {
    let g = keys::generate(dir, name).map_err(|e| e.to_string())?;
    Ok(format!(
        "key id {}\nprivate key: {} (keep it secret and offline)\npublic key:  {} (copy it into the image's keyring)",
        g.id,
        g.private.display(),
        g.public.display()
    ))
}

/// `payloads` are `slot=path` pairs.
pub fn create(
    board: &str,
    version: &str,
    min_version: &str,
    payloads: &[String],
    key: &Path,
    out: &Path,
) -> Result<String, String> {
    let version: Version = version.parse().map_err(|e| format!("--version: {e}"))?;
    let min_version: Version = min_version
        .parse()
        .map_err(|e| format!("--min-version: {e}"))?;
    let mut list = Vec::new();
    for p in payloads {
        let (slot, path) = p.split_once('=').ok_or_else(|| {
            format!("--payload `{p}`: write it as SLOT=FILE, e.g. rootfs=root.erofs")
        })?;
        list.push((slot.to_owned(), path.into()));
    }
    if list.is_empty() {
        return Err("give at least one --payload SLOT=FILE".into());
    }
    let key = SigningKey::load(key).map_err(|e| e.to_string())?;
    let spec = CreateSpec {
        board: board.to_owned(),
        version,
        min_version,
        payloads: list,
    };
    let meta = bundle::create(&spec, &key, out).map_err(|e| e.to_string())?;
    Ok(format!(
        "wrote {} ({} bytes, {} chunks), signed by {}",
        out.display(),
        meta.total_len,
        meta.chunks.len(),
        key.id()
    ))
}

pub fn sign(bundle_path: &Path, key: &Path) -> Result<String, String> {
    let key = SigningKey::load(key).map_err(|e| e.to_string())?;
    let n = bundle::sign(bundle_path, &key).map_err(|e| e.to_string())?;
    Ok(format!(
        "added the signature of key {} ({n} signatures now)",
        key.id()
    ))
}

pub fn verify(
    bundle_path: &Path,
    keyring: &Path,
    board: Option<&str>,
    running: Option<&str>,
    allow_downgrade: bool,
) -> Result<String, String> {
    let keyring = Keyring::load_dir(keyring).map_err(|e| e.to_string())?;
    let running = running
        .map(|r| r.parse::<Version>())
        .transpose()
        .map_err(|e| format!("--running-version: {e}"))?;
    let policy = InstallPolicy {
        board: board.map(str::to_owned),
        running,
        allow_downgrade,
    };
    let r = bundle::verify_file(bundle_path, &keyring, &policy)
        .map_err(|e| format!("{}: {e}", bundle_path.display()))?;
    let signers: Vec<String> = r.meta.signed_by.iter().map(|k| k.to_string()).collect();
    Ok(format!(
        "OK: {} version {} for board {} (replaces {} or newer), {} chunks, {} bytes of payload, signed by {}",
        bundle_path.display(),
        r.meta.header.version,
        r.meta.header.board,
        r.meta.header.min_version,
        r.meta.chunks.len(),
        r.plain_bytes,
        signers.join(", ")
    ))
}

pub fn inspect(bundle_path: &Path) -> Result<String, String> {
    let i =
        bundle::inspect_file(bundle_path).map_err(|e| format!("{}: {e}", bundle_path.display()))?;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "UNVERIFIED (signatures not checked; use `hearth bundle verify`)"
    );
    let _ = writeln!(s, "board:       {}", i.header.board);
    let _ = writeln!(s, "version:     {}", i.header.version);
    let _ = writeln!(s, "min version: {}", i.header.min_version);
    let _ = writeln!(s, "created:     {} (unix seconds)", i.header.created);
    for p in &i.header.payloads {
        let _ = writeln!(
            s,
            "payload:     {} {} bytes sha256 {}",
            p.slot, p.size, p.sha256
        );
    }
    let _ = writeln!(
        s,
        "chunks:      {} ({} bytes stored, file {} bytes)",
        i.chunks, i.stored_bytes, i.total_len
    );
    let signers: Vec<String> = i.signers.iter().map(|k| k.to_string()).collect();
    let _ = write!(s, "signed by:   {}", signers.join(", "));
    Ok(s)
}
