//! Bundle round trip and every kind of tampering, each with its own message.

use std::process::Command;

use hearth::ota::Version;
use hearth::ota::bundle::{
    self, BundleError, CHUNK_SIZE, InstallPolicy, PREAMBLE_LEN, SIG_BLOCK_LEN,
};

use crate::support::{Publisher, codeish, noise, read};

fn sample(
    p: &Publisher,
) -> (
    std::path::PathBuf,
    hearth::ota::BundleMeta,
    Vec<u8>,
    Vec<u8>,
) {
    // rootfs: a compressible part then an incompressible part (so chunks of both codecs),
    // and an odd size so the last chunk is short.
    let mut rootfs = codeish(1, 5 * CHUNK_SIZE as usize);
    rootfs.extend(noise(2, 3 * CHUNK_SIZE as usize + 1234));
    let kernel = codeish(3, 100_000);
    let (path, meta) = p.bundle(
        "b",
        Version(1, 3, 0),
        &[("rootfs", &rootfs), ("kernel", &kernel)],
    );
    (path, meta, rootfs, kernel)
}

fn device() -> InstallPolicy {
    InstallPolicy {
        board: Some("generic-x86_64".into()),
        running: Some(Version(1, 2, 0)),
        allow_downgrade: false,
    }
}

#[test]
fn round_trip_rebuilds_every_payload() {
    let p = Publisher::new("release");
    let (path, meta, rootfs, kernel) = sample(&p);
    let report = bundle::verify_file(&path, &p.keyring(), &device()).unwrap();
    assert_eq!(report.plain_bytes, (rootfs.len() + kernel.len()) as u64);
    assert_eq!(report.meta.signed_by, vec![p.key.id()]);
    assert!(meta.chunks.iter().any(|c| c.codec == bundle::Codec::Zstd));
    assert!(meta.chunks.iter().any(|c| c.codec == bundle::Codec::Plain));
    // Reassemble from chunks, as the download engine does.
    let file = read(&path);
    let mut out = [Vec::new(), Vec::new()];
    for (i, c) in meta.chunks.iter().enumerate() {
        let (a, b) = meta.stored_range(c);
        let plain = meta.decode_chunk(i, &file[a as usize..b as usize]).unwrap();
        out[c.payload].extend(plain);
    }
    assert_eq!(out[0], rootfs);
    assert_eq!(out[1], kernel);
    let stored: u64 = meta.chunks.iter().map(|c| c.stored_len as u64).sum();
    assert!(
        stored < (rootfs.len() + kernel.len()) as u64,
        "compression did nothing"
    );
}

/// Rewrites a copy of the bundle, runs verify, returns the error text.
fn tampered(p: &Publisher, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let (path, _, _, _) = sample(p);
    let mut bytes = read(&path);
    edit(&mut bytes);
    let t = p.path(name);
    std::fs::write(&t, bytes).unwrap();
    match bundle::verify_file(&t, &p.keyring(), &device()) {
        Ok(_) => panic!("{name}: a tampered bundle verified"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn each_kind_of_tampering_is_refused_with_its_own_message() {
    let p = Publisher::new("release");
    let (path, meta, _, _) = sample(&p);
    let header_len = meta.data_offset as usize
        - PREAMBLE_LEN
        - SIG_BLOCK_LEN
        - meta.chunks.len() * bundle::INDEX_ENTRY_LEN;
    let header_at = PREAMBLE_LEN + 10;
    let sig_at = PREAMBLE_LEN + header_len;
    let index_at = sig_at + SIG_BLOCK_LEN + 5;
    let plain_chunk = meta
        .chunks
        .iter()
        .find(|c| c.codec == bundle::Codec::Plain)
        .unwrap();
    let plain_at = meta.stored_range(plain_chunk).0 as usize + 100;
    let total = read(&path).len();
    type Edit = Box<dyn FnOnce(&mut Vec<u8>)>;
    let table: Vec<(&str, Edit, &str)> = vec![
        (
            "magic",
            Box::new(|b| b[0] ^= 1),
            "not a hearth update bundle",
        ),
        (
            "format",
            Box::new(|b| b[8] = 9),
            "format 9 is not supported",
        ),
        (
            "header",
            Box::new(move |b| b[header_at] ^= 0x20),
            "header does not match its hash",
        ),
        (
            "index",
            Box::new(move |b| b[index_at] ^= 1),
            "chunk index does not match its hash",
        ),
        (
            "chunk",
            Box::new(move |b| b[plain_at] ^= 1),
            "does not match its hash: the data was damaged",
        ),
        (
            "signature",
            Box::new(move |b| b[sig_at + 65 + 8 + 3] ^= 1),
            "does not verify",
        ),
        (
            "no signature",
            Box::new(move |b| {
                for x in &mut b[sig_at + 64..sig_at + SIG_BLOCK_LEN] {
                    *x = 0;
                }
            }),
            "carries no signature",
        ),
        (
            "truncated chunks",
            Box::new(move |b| b.truncate(total - 10)),
            "truncated",
        ),
        (
            "truncated meta",
            Box::new(move |b| b.truncate(index_at)),
            "truncated",
        ),
        (
            "truncated preamble",
            Box::new(|b| b.truncate(12)),
            "truncated",
        ),
        (
            "trailing",
            Box::new(|b| b.extend_from_slice(b"junk")),
            "unexpected bytes",
        ),
        (
            "huge header",
            Box::new(|b| b[12..16].copy_from_slice(&(1u32 << 30).to_le_bytes())),
            "header claims",
        ),
        (
            "huge index",
            Box::new(|b| b[16..20].copy_from_slice(&(52u32 << 24).to_le_bytes())),
            "index claims",
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (name, edit, want) in table {
        let e = tampered(&p, name, edit);
        assert!(e.contains(want), "{name}: expected `{want}`, got `{e}`");
        seen.insert(want);
    }
    // A flipped byte inside a compressed chunk is refused too (as corrupt or mismatched).
    let zchunk = meta
        .chunks
        .iter()
        .find(|c| c.codec == bundle::Codec::Zstd)
        .unwrap();
    let z_at = meta.stored_range(zchunk).0 as usize + zchunk.stored_len as usize / 2;
    let e = tampered(&p, "zchunk", move |b| b[z_at] ^= 0x55);
    assert!(e.contains("chunk 0"), "{e}");
}

#[test]
fn wrong_key_wrong_board_and_old_versions_are_refused() {
    let p = Publisher::new("release");
    let other = Publisher::new("stranger");
    let (path, _, _, _) = sample(&p);
    let e = bundle::verify_file(&path, &other.keyring(), &device()).unwrap_err();
    assert!(matches!(e, BundleError::UntrustedSigner { .. }), "{e}");
    assert!(e.to_string().contains(&p.key.id().to_string()), "{e}");

    let table = [
        (
            Some("rpi4"),
            Version(1, 2, 0),
            false,
            "is for board `generic-x86_64`",
        ),
        (
            None,
            Version(1, 3, 0),
            false,
            "not newer than the running version 1.3.0",
        ),
        (
            None,
            Version(1, 4, 0),
            false,
            "not newer than the running version 1.4.0",
        ),
        (
            None,
            Version(0, 9, 0),
            false,
            "can only replace version 1.0.0 or newer",
        ),
        (
            None,
            Version(0, 9, 0),
            true,
            "can only replace version 1.0.0 or newer",
        ),
    ];
    for (board, running, allow_downgrade, want) in table {
        let policy = InstallPolicy {
            board: board.map(str::to_owned),
            running: Some(running),
            allow_downgrade,
        };
        let e = bundle::verify_file(&path, &p.keyring(), &policy)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
    // The owner's explicit downgrade is honoured.
    let policy = InstallPolicy {
        running: Some(Version(1, 4, 0)),
        allow_downgrade: true,
        ..device()
    };
    bundle::verify_file(&path, &p.keyring(), &policy).unwrap();
}

#[test]
fn second_signature_supports_key_rotation() {
    let old = Publisher::new("old");
    let new = Publisher::new("new");
    let third = Publisher::new("third");
    let (path, _, _, _) = sample(&old);
    assert_eq!(bundle::sign(&path, &new.key).unwrap(), 2);
    // A device that already trusts only the new key accepts it, and so does an old one.
    bundle::verify_file(&path, &new.keyring(), &device()).unwrap();
    bundle::verify_file(&path, &old.keyring(), &device()).unwrap();
    let e = bundle::sign(&path, &new.key).unwrap_err();
    assert!(matches!(e, BundleError::AlreadySigned(_)), "{e}");
    let e = bundle::sign(&path, &third.key).unwrap_err();
    assert!(matches!(e, BundleError::SignaturesFull), "{e}");
}

#[test]
fn cli_keygen_create_sign_verify_inspect() {
    let bin = env!("CARGO_BIN_EXE_hearth");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    std::fs::create_dir(d.join("keyring")).unwrap();
    let (ok, out) = run(&["bundle", "keygen", "--name", "rel"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["bundle", "keygen", "--name", "next"]);
    assert!(ok, "{out}");
    std::fs::copy(d.join("rel.pub"), d.join("keyring/rel.pub")).unwrap();
    std::fs::write(d.join("root.img"), codeish(9, 300_000)).unwrap();
    let (ok, out) = run(&[
        "bundle",
        "create",
        "--board",
        "rpi4",
        "--version",
        "2.0.0",
        "--min-version",
        "1.0.0",
        "--payload",
        "rootfs=root.img",
        "--key",
        "rel.key",
        "--out",
        "u.hbundle",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["bundle", "sign", "u.hbundle", "--key", "next.key"]);
    assert!(ok && out.contains("2 signatures"), "{out}");
    let (ok, out) = run(&[
        "bundle",
        "verify",
        "u.hbundle",
        "--keyring",
        "keyring",
        "--board",
        "rpi4",
        "--running-version",
        "1.5.0",
    ]);
    assert!(ok && out.starts_with("OK"), "{out}");
    let (ok, out) = run(&[
        "bundle",
        "verify",
        "u.hbundle",
        "--keyring",
        "keyring",
        "--running-version",
        "2.0.0",
    ]);
    assert!(!ok && out.contains("not newer"), "{out}");
    let (ok, out) = run(&["bundle", "inspect", "u.hbundle"]);
    assert!(
        ok && out.contains("UNVERIFIED") && out.contains("rootfs 300000 bytes"),
        "{out}"
    );
    let (ok, out) = run(&[
        "bundle",
        "create",
        "--board",
        "rpi4",
        "--version",
        "2.0",
        "--min-version",
        "1.0.0",
        "--payload",
        "rootfs=root.img",
        "--key",
        "rel.key",
        "--out",
        "v.hbundle",
    ]);
    assert!(!ok && out.contains("MAJOR.MINOR.PATCH"), "{out}");
    assert!(!d.join("v.hbundle").exists());
}
