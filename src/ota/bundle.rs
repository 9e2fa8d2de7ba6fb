//! Security-sensitive: the update bundle format and the checks that stand between a file
//! from the network and the device's boot slots.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! preamble   24 bytes  magic "HEARTHUP" | format u32 | header_len u32 | index_len u32 | 0 u32
//! header     JSON      board, version, min_version, payloads (slot, size, sha256)
//! signatures 209 bytes sha256(header) | sha256(index) | count u8 | 2 × (key id [8] | ed25519 [64])
//! index      52 bytes per 64 KiB chunk: sha256 of the plain chunk | head [4] | offset u64 | length u32 | codec u8 | 0 [3]
//!            (head: sha256 of the chunk's first 4 KiB, cut to 4 bytes; finds chunks at any
//!            4 KiB position of the device's current slots cheaply)
//! chunks     each compressed on its own (zstd) or stored plain, back to back
//! ```
//!
//! The signed message is sha256 of a domain tag, the preamble and both hashes, so the
//! index is authenticated along with the header, and adding the second signature (key
//! rotation) changes no byte outside the fixed-size signature block.
//!
//! Order of trust: magic and format first; every length capped; the header's and the
//! index's hashes compared with the signature block; the signatures verified against the
//! keyring; only then is the header parsed and the index read; each chunk's hash is
//! checked after decompression and before anyone may write it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256, digest};
use serde::{Deserialize, Serialize};

use super::keys::{KeyId, Keyring, SigningKey};
use super::version::Version;

pub const MAGIC: [u8; 8] = *b"HEARTHUP";
pub const FORMAT_VERSION: u32 = 1;
pub const PREAMBLE_LEN: usize = 24;
pub const MAX_SIGNATURES: usize = 2;
const SIG_ENTRY_LEN: usize = 8 + 64;
pub const SIG_BLOCK_LEN: usize = 32 + 32 + 1 + MAX_SIGNATURES * SIG_ENTRY_LEN;
pub const CHUNK_SIZE: u32 = 64 * 1024;
pub const INDEX_ENTRY_LEN: usize = 52;
/// Filesystem block size chunks are looked for at in the device's slots.
pub const HEAD_LEN: usize = 4096;
/// A header is a few hundred bytes of JSON; 64 KiB is generous.
pub const MAX_HEADER_LEN: u32 = 64 * 1024;
/// All payloads together: 16 GiB, far above any root or boot partition we ship.
pub const MAX_TOTAL_PAYLOAD: u64 = 16 << 30;
pub const MAX_CHUNKS: u64 = MAX_TOTAL_PAYLOAD / CHUNK_SIZE as u64;
pub const MAX_INDEX_LEN: u32 = (MAX_CHUNKS as u32) * INDEX_ENTRY_LEN as u32;
pub const MAX_PAYLOADS: usize = 8;
/// zstd frames are decoded with at most this window, so a hostile chunk cannot make the
/// decoder reserve gigabytes before its hash is checked.
const MAX_ZSTD_WINDOW: u64 = 1 << 20;
const SIGNING_DOMAIN: &[u8] = b"hearth-bundle-v1\0";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "this is not a hearth update bundle (wrong magic bytes); check you picked the right file"
    )]
    NotABundle,
    #[error(
        "bundle format {found} is not supported by this hearth (it reads format {FORMAT_VERSION}); update in smaller steps or use a bundle made for this version"
    )]
    UnsupportedFormat { found: u32 },
    #[error(
        "the bundle header claims {len} bytes, more than the {MAX_HEADER_LEN} allowed; the file is damaged or hostile"
    )]
    HeaderTooLarge { len: u32 },
    #[error(
        "the chunk index claims {len} bytes, more than the {MAX_INDEX_LEN} allowed; the file is damaged or hostile"
    )]
    IndexTooLarge { len: u32 },
    #[error("the chunk index length {len} is not a whole number of entries; the file is damaged")]
    IndexMisaligned { len: u32 },
    #[error(
        "reserved preamble bytes are not zero; the file is damaged or made by an incompatible tool"
    )]
    ReservedNotZero,
    #[error("the bundle is truncated: it has {have} bytes but needs {need}; download it again")]
    Truncated { have: u64, need: u64 },
    #[error("the bundle has {extra} unexpected bytes after its last chunk; the file is damaged")]
    TrailingData { extra: u64 },
    #[error(
        "the bundle header does not match its hash: the header was damaged or altered; do not install it"
    )]
    HeaderHashMismatch,
    #[error(
        "the chunk index does not match its hash: the index was damaged or altered; do not install it"
    )]
    IndexHashMismatch,
    #[error("the signature block is malformed: {0}")]
    BadSignatureBlock(String),
    #[error("the bundle carries no signature; sign it with `hearth bundle sign`")]
    Unsigned,
    #[error(
        "the bundle is signed only by key(s) {signers}, none of which is trusted by the keyring {keyring} (trusted: {trusted}); it was signed with the wrong key or for another product"
    )]
    UntrustedSigner {
        signers: String,
        keyring: String,
        trusted: String,
    },
    #[error(
        "the signature by trusted key {0} does not verify: the bundle was altered after signing; do not install it"
    )]
    BadSignature(KeyId),
    #[error("the bundle header is invalid: {0}")]
    BadHeader(String),
    #[error("the chunk index is invalid: {0}")]
    BadIndex(String),
    #[error(
        "chunk {index} ({slot} at byte {offset}) does not match its hash: the data was damaged or altered in transit"
    )]
    ChunkHashMismatch {
        index: usize,
        slot: String,
        offset: u64,
    },
    #[error("chunk {index} cannot be decompressed ({why}); the data was damaged in transit")]
    ChunkCorrupt { index: usize, why: String },
    #[error("payload `{slot}` does not match its sha256 after assembly; the bundle is damaged")]
    PayloadHashMismatch { slot: String },
    #[error(
        "this bundle is for board `{bundle}`, but this device is `{device}`; pick the bundle for your board"
    )]
    WrongBoard { bundle: String, device: String },
    #[error(
        "bundle version {bundle} is not newer than the running version {running}; versions only move forward unless the owner allows a downgrade"
    )]
    NotNewer { bundle: Version, running: Version },
    #[error(
        "bundle version {bundle} can only replace version {min} or newer, but this device runs {running}; install an intermediate update first"
    )]
    RunningTooOld {
        bundle: Version,
        min: Version,
        running: Version,
    },
    #[error("the bundle already carries {MAX_SIGNATURES} signatures; no room for another")]
    SignaturesFull,
    #[error("the bundle is already signed by key {0}")]
    AlreadySigned(KeyId),
    #[error("cannot create the bundle: {0}")]
    Create(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BundleError {
    let what = what.into();
    move |source| BundleError::Io { what, source }
}

/// What the first 24 bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    pub header_len: u32,
    pub index_len: u32,
}

impl Preamble {
    /// Bytes from the start of the file to the first chunk.
    pub fn meta_len(&self) -> u64 {
        PREAMBLE_LEN as u64 + self.header_len as u64 + SIG_BLOCK_LEN as u64 + self.index_len as u64
    }

    pub fn chunk_count(&self) -> usize {
        self.index_len as usize / INDEX_ENTRY_LEN
    }

    fn encode(&self) -> [u8; PREAMBLE_LEN] {
        let mut p = [0u8; PREAMBLE_LEN];
        p[..8].copy_from_slice(&MAGIC);
        p[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        p[12..16].copy_from_slice(&self.header_len.to_le_bytes());
        p[16..20].copy_from_slice(&self.index_len.to_le_bytes());
        p
    }
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Checks magic, format and caps. Reads only the first [`PREAMBLE_LEN`] bytes of `bytes`.
pub fn parse_preamble(bytes: &[u8]) -> Result<Preamble, BundleError> {
    if bytes.len() < 8 || bytes[..8] != MAGIC {
        if bytes.len() < 8 && MAGIC.starts_with(bytes) {
            return Err(BundleError::Truncated {
                have: bytes.len() as u64,
                need: PREAMBLE_LEN as u64,
            });
        }
        return Err(BundleError::NotABundle);
    }
    if bytes.len() < PREAMBLE_LEN {
        return Err(BundleError::Truncated {
            have: bytes.len() as u64,
            need: PREAMBLE_LEN as u64,
        });
    }
    let format = le32(&bytes[8..]);
    if format != FORMAT_VERSION {
        return Err(BundleError::UnsupportedFormat { found: format });
    }
    let header_len = le32(&bytes[12..]);
    let index_len = le32(&bytes[16..]);
    if header_len > MAX_HEADER_LEN {
        return Err(BundleError::HeaderTooLarge { len: header_len });
    }
    if header_len == 0 {
        return Err(BundleError::BadHeader("it is empty".into()));
    }
    if index_len > MAX_INDEX_LEN {
        return Err(BundleError::IndexTooLarge { len: index_len });
    }
    if !(index_len as usize).is_multiple_of(INDEX_ENTRY_LEN) {
        return Err(BundleError::IndexMisaligned { len: index_len });
    }
    if le32(&bytes[20..]) != 0 {
        return Err(BundleError::ReservedNotZero);
    }
    Ok(Preamble {
        header_len,
        index_len,
    })
}

/// The fixed-size signature block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureBlock {
    pub header_sha256: [u8; 32],
    pub index_sha256: [u8; 32],
    pub signatures: Vec<(KeyId, [u8; 64])>,
}

impl SignatureBlock {
    pub fn parse(bytes: &[u8]) -> Result<SignatureBlock, BundleError> {
        if bytes.len() != SIG_BLOCK_LEN {
            return Err(BundleError::BadSignatureBlock(format!(
                "{} bytes instead of {SIG_BLOCK_LEN}",
                bytes.len()
            )));
        }
        let mut header_sha256 = [0u8; 32];
        header_sha256.copy_from_slice(&bytes[..32]);
        let mut index_sha256 = [0u8; 32];
        index_sha256.copy_from_slice(&bytes[32..64]);
        let count = bytes[64] as usize;
        if count > MAX_SIGNATURES {
            return Err(BundleError::BadSignatureBlock(format!(
                "it claims {count} signatures; at most {MAX_SIGNATURES} fit"
            )));
        }
        let mut signatures = Vec::with_capacity(count);
        for i in 0..MAX_SIGNATURES {
            let e = &bytes[65 + i * SIG_ENTRY_LEN..65 + (i + 1) * SIG_ENTRY_LEN];
            if i < count {
                let mut id = [0u8; 8];
                id.copy_from_slice(&e[..8]);
                let mut sig = [0u8; 64];
                sig.copy_from_slice(&e[8..]);
                signatures.push((KeyId(id), sig));
            } else if e.iter().any(|&b| b != 0) {
                return Err(BundleError::BadSignatureBlock(
                    "unused signature slots are not zero".into(),
                ));
            }
        }
        Ok(SignatureBlock {
            header_sha256,
            index_sha256,
            signatures,
        })
    }

    pub fn encode(&self) -> [u8; SIG_BLOCK_LEN] {
        let mut b = [0u8; SIG_BLOCK_LEN];
        b[..32].copy_from_slice(&self.header_sha256);
        b[32..64].copy_from_slice(&self.index_sha256);
        // At most MAX_SIGNATURES (2) entries are ever pushed, so this fits in a u8.
        b[64] = self.signatures.len() as u8;
        for (i, (id, sig)) in self.signatures.iter().take(MAX_SIGNATURES).enumerate() {
            let e = &mut b[65 + i * SIG_ENTRY_LEN..65 + (i + 1) * SIG_ENTRY_LEN];
            e[..8].copy_from_slice(&id.0);
            e[8..].copy_from_slice(sig);
        }
        b
    }
}

/// What the signatures cover: the format, the lengths and both hashes.
pub fn signed_digest(
    preamble: &Preamble,
    header_sha256: &[u8; 32],
    index_sha256: &[u8; 32],
) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(SIGNING_DOMAIN);
    c.update(&preamble.encode());
    c.update(header_sha256);
    c.update(index_sha256);
    sha(c)
}

fn sha(c: Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(c.finish().as_ref());
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, data).as_ref());
    out
}

/// The signed description of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Board name the image is built for (`generic-x86_64`, `rpi4`, …).
    pub board: String,
    pub version: Version,
    /// The oldest running version this bundle may replace (migrations it relies on).
    pub min_version: Version,
    /// Unix seconds when the publisher built it; informational.
    pub created: u64,
    pub chunk_size: u32,
    pub payloads: Vec<Payload>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// Which slot partition or file it goes to: `rootfs`, `kernel`, `boot`.
    pub slot: String,
    pub size: u64,
    /// Hex sha256 of the whole payload.
    pub sha256: String,
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses and checks header JSON. Callers outside tests and fuzzing only reach this after
/// the signatures verified.
pub fn parse_header(bytes: &[u8]) -> Result<Header, BundleError> {
    if bytes.len() > MAX_HEADER_LEN as usize {
        return Err(BundleError::HeaderTooLarge {
            len: bytes.len() as u32,
        });
    }
    let h: Header =
        serde_json::from_slice(bytes).map_err(|e| BundleError::BadHeader(e.to_string()))?;
    h.check()?;
    Ok(h)
}

impl Header {
    fn check(&self) -> Result<(), BundleError> {
        let bad = |s: String| Err(BundleError::BadHeader(s));
        if !valid_name(&self.board, 64) {
            return bad("the board name must be 1-64 of a-z, 0-9, '-', '_'".into());
        }
        if self.chunk_size != CHUNK_SIZE {
            return bad(format!(
                "chunk size {} is not the supported {CHUNK_SIZE}",
                self.chunk_size
            ));
        }
        if self.min_version > self.version {
            return bad("min_version is newer than version".into());
        }
        if self.payloads.is_empty() || self.payloads.len() > MAX_PAYLOADS {
            return bad(format!("it needs 1 to {MAX_PAYLOADS} payloads"));
        }
        let mut total = 0u64;
        for (i, p) in self.payloads.iter().enumerate() {
            if !valid_name(&p.slot, 32) {
                return bad(format!(
                    "payload slot `{}` must be 1-32 of a-z, 0-9, '-', '_'",
                    p.slot.chars().take(40).collect::<String>()
                ));
            }
            if self.payloads[..i].iter().any(|q| q.slot == p.slot) {
                return bad(format!("slot `{}` appears twice", p.slot));
            }
            if p.size == 0 {
                return bad(format!("payload `{}` is empty", p.slot));
            }
            if p.sha256.len() != 64 || hex::decode(&p.sha256).is_err() {
                return bad(format!("payload `{}` has a malformed sha256", p.slot));
            }
            total = total.saturating_add(p.size);
        }
        if total > MAX_TOTAL_PAYLOAD {
            return bad(format!(
                "payloads total {total} bytes, more than the {MAX_TOTAL_PAYLOAD} allowed"
            ));
        }
        Ok(())
    }

    pub fn chunk_count(&self) -> u64 {
        self.payloads
            .iter()
            .map(|p| p.size.div_ceil(CHUNK_SIZE as u64))
            .sum()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Plain,
    Zstd,
}

/// One 64 KiB piece of a payload, with where its stored bytes lie in the bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Index into `Header::payloads`.
    pub payload: usize,
    /// Byte offset inside the payload.
    pub offset: u64,
    /// Plain length (64 KiB, less for a payload's last chunk).
    pub len: u32,
    pub sha256: [u8; 32],
    /// Prefix of sha256 of the first [`HEAD_LEN`] bytes.
    pub head: [u8; 4],
    /// Offset of the stored bytes from the first chunk.
    pub stored_offset: u64,
    pub stored_len: u32,
    pub codec: Codec,
}

/// Parses the index against an already parsed header: entry count, layout (back to back,
/// no gaps or overlaps) and codecs are all checked.
pub fn parse_index(bytes: &[u8], header: &Header) -> Result<Vec<Chunk>, BundleError> {
    let bad = |s: String| Err(BundleError::BadIndex(s));
    if bytes.len() > MAX_INDEX_LEN as usize {
        return Err(BundleError::IndexTooLarge {
            len: bytes.len() as u32,
        });
    }
    if !bytes.len().is_multiple_of(INDEX_ENTRY_LEN) {
        return Err(BundleError::IndexMisaligned {
            len: bytes.len() as u32,
        });
    }
    let want = header.chunk_count();
    let have = (bytes.len() / INDEX_ENTRY_LEN) as u64;
    if want != have {
        return bad(format!(
            "it lists {have} chunks but the payloads need {want}"
        ));
    }
    let mut chunks = Vec::with_capacity(have as usize);
    let mut entries = bytes.chunks_exact(INDEX_ENTRY_LEN);
    let mut next_stored = 0u64;
    for (pi, p) in header.payloads.iter().enumerate() {
        let mut offset = 0u64;
        while offset < p.size {
            let Some(e) = entries.next() else {
                return bad("it ends early".into());
            };
            let len = (p.size - offset).min(CHUNK_SIZE as u64) as u32;
            let mut sha = [0u8; 32];
            sha.copy_from_slice(&e[..32]);
            let mut head = [0u8; 4];
            head.copy_from_slice(&e[32..36]);
            let stored_offset = le64(&e[36..]);
            let stored_len = le32(&e[44..]);
            let codec = match e[48] {
                0 => Codec::Plain,
                1 => Codec::Zstd,
                c => return bad(format!("chunk {} has unknown codec {c}", chunks.len())),
            };
            if e[49..52] != [0, 0, 0] {
                return bad(format!(
                    "chunk {} has non-zero reserved bytes",
                    chunks.len()
                ));
            }
            if stored_offset != next_stored {
                return bad(format!(
                    "chunk {} starts at {stored_offset}, expected {next_stored} (chunks must be back to back)",
                    chunks.len()
                ));
            }
            let ok_len = match codec {
                Codec::Plain => stored_len == len,
                Codec::Zstd => stored_len >= 1 && stored_len < len,
            };
            if !ok_len {
                return bad(format!(
                    "chunk {} has stored length {stored_len} for {len} plain bytes",
                    chunks.len()
                ));
            }
            next_stored += stored_len as u64;
            chunks.push(Chunk {
                payload: pi,
                offset,
                len,
                sha256: sha,
                head,
                stored_offset,
                stored_len,
                codec,
            });
            offset += len as u64;
        }
    }
    Ok(chunks)
}

/// A bundle whose header, index and signatures have been checked.
#[derive(Clone, Debug)]
pub struct BundleMeta {
    pub header: Header,
    pub chunks: Vec<Chunk>,
    /// Offset of the first chunk in the file.
    pub data_offset: u64,
    /// Size of the whole file.
    pub total_len: u64,
    /// Keys whose signatures verified.
    pub signed_by: Vec<KeyId>,
    /// The signed digest: identifies this exact bundle (journal key).
    pub digest: [u8; 32],
}

/// Checks the raw signature material and returns the parts, without the keyring.
struct RawMeta<'a> {
    preamble: Preamble,
    header: &'a [u8],
    sigs: SignatureBlock,
    index: &'a [u8],
}

fn split_meta(meta: &[u8]) -> Result<RawMeta<'_>, BundleError> {
    let preamble = parse_preamble(meta)?;
    let need = preamble.meta_len();
    if (meta.len() as u64) < need {
        return Err(BundleError::Truncated {
            have: meta.len() as u64,
            need,
        });
    }
    let h0 = PREAMBLE_LEN;
    let s0 = h0 + preamble.header_len as usize;
    let i0 = s0 + SIG_BLOCK_LEN;
    let i1 = i0 + preamble.index_len as usize;
    let header = &meta[h0..s0];
    let sigs = SignatureBlock::parse(&meta[s0..i0])?;
    let index = &meta[i0..i1];
    if sha256(header) != sigs.header_sha256 {
        return Err(BundleError::HeaderHashMismatch);
    }
    if sha256(index) != sigs.index_sha256 {
        return Err(BundleError::IndexHashMismatch);
    }
    Ok(RawMeta {
        preamble,
        header,
        sigs,
        index,
    })
}

/// Verifies everything before the chunks: `meta` holds at least [`Preamble::meta_len`]
/// bytes from the start of the bundle. `total_len` is the size of the whole file, when known.
pub fn open_meta(
    meta: &[u8],
    total_len: Option<u64>,
    keyring: &Keyring,
) -> Result<BundleMeta, BundleError> {
    let raw = split_meta(meta)?;
    let digest = signed_digest(
        &raw.preamble,
        &raw.sigs.header_sha256,
        &raw.sigs.index_sha256,
    );
    if raw.sigs.signatures.is_empty() {
        return Err(BundleError::Unsigned);
    }
    let mut signed_by = Vec::new();
    for (id, sig) in &raw.sigs.signatures {
        if let Some(key) = keyring.get(*id) {
            if !key.verify(&digest, sig) {
                return Err(BundleError::BadSignature(*id));
            }
            signed_by.push(*id);
        }
    }
    if signed_by.is_empty() {
        let list = |ids: Vec<KeyId>| {
            ids.iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(BundleError::UntrustedSigner {
            signers: list(raw.sigs.signatures.iter().map(|s| s.0).collect()),
            keyring: keyring.origin.clone(),
            trusted: list(keyring.ids()),
        });
    }
    // Trusted from here on.
    let header = parse_header(raw.header)?;
    let chunks = parse_index(raw.index, &header)?;
    let data_offset = raw.preamble.meta_len();
    let need = data_offset
        + chunks
            .last()
            .map(|c| c.stored_offset + c.stored_len as u64)
            .unwrap_or(0);
    if let Some(total_len) = total_len {
        if total_len < need {
            return Err(BundleError::Truncated {
                have: total_len,
                need,
            });
        }
        if total_len > need {
            return Err(BundleError::TrailingData {
                extra: total_len - need,
            });
        }
    }
    Ok(BundleMeta {
        header,
        chunks,
        data_offset,
        total_len: need,
        signed_by,
        digest,
    })
}

/// Which bundles a device accepts beyond a valid signature.
#[derive(Clone, Debug, Default)]
pub struct InstallPolicy {
    /// This device's board; `None` skips the check (publisher-side verify).
    pub board: Option<String>,
    /// The running version; `None` skips the version checks.
    pub running: Option<Version>,
    /// The owner ticked "allow downgrade".
    pub allow_downgrade: bool,
}

impl InstallPolicy {
    pub fn check(&self, header: &Header) -> Result<(), BundleError> {
        if let Some(board) = &self.board
            && *board != header.board
        {
            return Err(BundleError::WrongBoard {
                bundle: header.board.clone(),
                device: board.clone(),
            });
        }
        if let Some(running) = self.running {
            if header.version <= running && !self.allow_downgrade {
                return Err(BundleError::NotNewer {
                    bundle: header.version,
                    running,
                });
            }
            if running < header.min_version {
                return Err(BundleError::RunningTooOld {
                    bundle: header.version,
                    min: header.min_version,
                    running,
                });
            }
        }
        Ok(())
    }
}

impl BundleMeta {
    pub fn payload_of(&self, chunk: &Chunk) -> &Payload {
        &self.header.payloads[chunk.payload]
    }

    /// Absolute byte range of a chunk's stored bytes in the bundle file.
    pub fn stored_range(&self, chunk: &Chunk) -> (u64, u64) {
        let start = self.data_offset + chunk.stored_offset;
        (start, start + chunk.stored_len as u64)
    }

    /// Decompresses one chunk and checks its hash; only bytes returned from here may be
    /// written to a slot.
    pub fn decode_chunk(&self, index: usize, stored: &[u8]) -> Result<Vec<u8>, BundleError> {
        let chunk = &self.chunks[index];
        let corrupt = |why: String| BundleError::ChunkCorrupt { index, why };
        if stored.len() != chunk.stored_len as usize {
            return Err(corrupt(format!(
                "{} bytes instead of {}",
                stored.len(),
                chunk.stored_len
            )));
        }
        let plain = match chunk.codec {
            Codec::Plain => stored.to_vec(),
            Codec::Zstd => {
                let mut src = stored;
                let dec = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
                    &mut src,
                    MAX_ZSTD_WINDOW,
                )
                .map_err(|e| corrupt(e.to_string()))?;
                let mut out = Vec::with_capacity(chunk.len as usize);
                dec.take(chunk.len as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| corrupt(e.to_string()))?;
                out
            }
        };
        if plain.len() != chunk.len as usize || sha256(&plain) != chunk.sha256 {
            return Err(BundleError::ChunkHashMismatch {
                index,
                slot: self.payload_of(chunk).slot.clone(),
                offset: chunk.offset,
            });
        }
        Ok(plain)
    }
}

/// Reads and verifies the header, signatures and index of a bundle file.
pub fn open_file(path: &Path, keyring: &Keyring) -> Result<(File, BundleMeta), BundleError> {
    let mut f = File::open(path).map_err(io(format!("open {}", path.display())))?;
    let total_len = f
        .metadata()
        .map_err(io(format!("read {}", path.display())))?
        .len();
    let meta = read_meta(&mut f, total_len)?;
    let m = open_meta(&meta, Some(total_len), keyring)?;
    Ok((f, m))
}

/// Reads the preamble, checks it, then reads exactly the (capped) meta bytes.
fn read_meta(f: &mut File, total_len: u64) -> Result<Vec<u8>, BundleError> {
    let mut pre = vec![0u8; PREAMBLE_LEN.min(total_len as usize)];
    f.read_exact(&mut pre).map_err(io("read the bundle"))?;
    let preamble = parse_preamble(&pre)?;
    let need = preamble.meta_len();
    if total_len < need {
        return Err(BundleError::Truncated {
            have: total_len,
            need,
        });
    }
    // `need` is capped by parse_preamble (≤ 24 + 64 KiB + 209 + 12 MiB).
    let mut meta = vec![0u8; need as usize];
    meta[..PREAMBLE_LEN].copy_from_slice(&pre);
    f.read_exact(&mut meta[PREAMBLE_LEN..])
        .map_err(io("read the bundle"))?;
    Ok(meta)
}

/// What `verify` found.
#[derive(Debug)]
pub struct VerifyReport {
    pub meta: BundleMeta,
    pub plain_bytes: u64,
}

/// Checks a whole bundle offline: signatures, policy, every chunk and every payload hash.
pub fn verify_file(
    path: &Path,
    keyring: &Keyring,
    policy: &InstallPolicy,
) -> Result<VerifyReport, BundleError> {
    let (mut f, meta) = open_file(path, keyring)?;
    policy.check(&meta.header)?;
    f.seek(SeekFrom::Start(meta.data_offset))
        .map_err(io("read the bundle"))?;
    let mut hashers: Vec<Context> = meta
        .header
        .payloads
        .iter()
        .map(|_| Context::new(&SHA256))
        .collect();
    let mut buf = vec![0u8; CHUNK_SIZE as usize];
    let mut plain_bytes = 0u64;
    for (i, c) in meta.chunks.iter().enumerate() {
        let stored = &mut buf[..c.stored_len as usize];
        f.read_exact(stored).map_err(io("read the bundle"))?;
        let plain = meta.decode_chunk(i, stored)?;
        hashers[c.payload].update(&plain);
        plain_bytes += plain.len() as u64;
    }
    for (p, h) in meta.header.payloads.iter().zip(hashers) {
        if hex::encode(sha(h)) != p.sha256 {
            return Err(BundleError::PayloadHashMismatch {
                slot: p.slot.clone(),
            });
        }
    }
    Ok(VerifyReport { meta, plain_bytes })
}

/// What `inspect` shows: hashes checked, signatures listed but NOT verified.
#[derive(Debug)]
pub struct Inspection {
    pub header: Header,
    pub signers: Vec<KeyId>,
    pub chunks: usize,
    pub stored_bytes: u64,
    pub total_len: u64,
}

pub fn inspect_file(path: &Path) -> Result<Inspection, BundleError> {
    let mut f = File::open(path).map_err(io(format!("open {}", path.display())))?;
    let total_len = f
        .metadata()
        .map_err(io(format!("read {}", path.display())))?
        .len();
    let meta = read_meta(&mut f, total_len)?;
    let raw = split_meta(&meta)?;
    let header = parse_header(raw.header)?;
    let chunks = parse_index(raw.index, &header)?;
    Ok(Inspection {
        signers: raw.sigs.signatures.iter().map(|s| s.0).collect(),
        stored_bytes: chunks.iter().map(|c| c.stored_len as u64).sum(),
        chunks: chunks.len(),
        header,
        total_len,
    })
}

/// Publisher's input for [`create`].
#[derive(Debug, Clone)]
pub struct CreateSpec {
    pub board: String,
    pub version: Version,
    pub min_version: Version,
    /// (slot name, file) in the order they go into the bundle.
    pub payloads: Vec<(String, PathBuf)>,
}

/// Builds a signed bundle at `out` (written to `out.tmp`, then renamed).
pub fn create(spec: &CreateSpec, key: &SigningKey, out: &Path) -> Result<BundleMeta, BundleError> {
    let tmp_chunks = out.with_extension("chunks.tmp");
    let result = create_inner(spec, key, out, &tmp_chunks);
    let _ = std::fs::remove_file(&tmp_chunks);
    result
}

fn create_inner(
    spec: &CreateSpec,
    key: &SigningKey,
    out: &Path,
    tmp_chunks: &Path,
) -> Result<BundleMeta, BundleError> {
    let mut store =
        File::create(tmp_chunks).map_err(io(format!("create {}", tmp_chunks.display())))?;
    let mut index = Vec::new();
    let mut payloads = Vec::new();
    let mut stored_offset = 0u64;
    let mut buf = vec![0u8; CHUNK_SIZE as usize];
    for (slot, path) in &spec.payloads {
        let mut f = File::open(path).map_err(io(format!("open {}", path.display())))?;
        let mut whole = Context::new(&SHA256);
        let mut size = 0u64;
        loop {
            let n = read_full(&mut f, &mut buf).map_err(io(format!("read {}", path.display())))?;
            if n == 0 {
                break;
            }
            let plain = &buf[..n];
            whole.update(plain);
            size += n as u64;
            let packed = ruzstd::encoding::compress_to_vec(
                plain,
                ruzstd::encoding::CompressionLevel::Fastest,
            );
            let (codec, bytes): (u8, &[u8]) = if packed.len() < n {
                (1, &packed)
            } else {
                (0, plain)
            };
            index.extend_from_slice(&sha256(plain));
            index.extend_from_slice(&head_of(plain));
            index.extend_from_slice(&stored_offset.to_le_bytes());
            index.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            index.extend_from_slice(&[codec, 0, 0, 0]);
            store
                .write_all(bytes)
                .map_err(io(format!("write {}", tmp_chunks.display())))?;
            stored_offset += bytes.len() as u64;
            if n < buf.len() {
                break;
            }
        }
        payloads.push(Payload {
            slot: slot.clone(),
            size,
            sha256: hex::encode(sha(whole)),
        });
    }
    let header = Header {
        board: spec.board.clone(),
        version: spec.version,
        min_version: spec.min_version,
        // Reproducible builds set SOURCE_DATE_EPOCH; the same inputs then give the same bundle.
        created: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(crate::model::clock::now_secs),
        chunk_size: CHUNK_SIZE,
        payloads,
    };
    header
        .check()
        .map_err(|e| BundleError::Create(e.to_string()))?;
    let header_json =
        serde_json::to_vec(&header).map_err(|e| BundleError::Create(e.to_string()))?;
    if header_json.len() > MAX_HEADER_LEN as usize || index.len() > MAX_INDEX_LEN as usize {
        return Err(BundleError::Create(
            "the payloads are too large for one bundle".into(),
        ));
    }
    let preamble = Preamble {
        header_len: header_json.len() as u32,
        index_len: index.len() as u32,
    };
    let header_sha256 = sha256(&header_json);
    let index_sha256 = sha256(&index);
    let digest = signed_digest(&preamble, &header_sha256, &index_sha256);
    let sigs = SignatureBlock {
        header_sha256,
        index_sha256,
        signatures: vec![(key.id(), key.sign(&digest))],
    };
    let tmp_out = out.with_extension("tmp");
    let mut o = File::create(&tmp_out).map_err(io(format!("create {}", tmp_out.display())))?;
    let werr = io(format!("write {}", tmp_out.display()));
    let mut write = |o: &mut File| -> std::io::Result<()> {
        o.write_all(&preamble.encode())?;
        o.write_all(&header_json)?;
        o.write_all(&sigs.encode())?;
        o.write_all(&index)?;
        store.flush()?;
        let mut src = File::open(tmp_chunks)?;
        std::io::copy(&mut src, o)?;
        o.sync_all()
    };
    write(&mut o).map_err(werr)?;
    drop(o);
    std::fs::rename(&tmp_out, out).map_err(io(format!("rename to {}", out.display())))?;
    let keyring = super::keys::Keyring::from_keys(
        vec![super::keys::PublicKey {
            id: key.id(),
            bytes: key.public(),
            source: PathBuf::new(),
        }],
        "the signing key",
    );
    open_file(out, &keyring).map(|(_, m)| m)
}

/// The 4-byte prefilter of a chunk (or of a 4 KiB block of a slot).
pub fn head_of(data: &[u8]) -> [u8; 4] {
    let d = sha256(&data[..data.len().min(HEAD_LEN)]);
    [d[0], d[1], d[2], d[3]]
}

/// sha256 of `data`.
pub fn sha256_of(data: &[u8]) -> [u8; 32] {
    sha256(data)
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Adds a signature by `key` (key rotation: old and new key both sign during the overlap).
/// Only the signature block changes, in place.
pub fn sign(path: &Path, key: &SigningKey) -> Result<usize, BundleError> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(format!("open {}", path.display())))?;
    let total_len = f
        .metadata()
        .map_err(io(format!("read {}", path.display())))?
        .len();
    let meta = read_meta(&mut f, total_len)?;
    let mut raw = split_meta(&meta)?;
    if raw.sigs.signatures.iter().any(|s| s.0 == key.id()) {
        return Err(BundleError::AlreadySigned(key.id()));
    }
    if raw.sigs.signatures.len() >= MAX_SIGNATURES {
        return Err(BundleError::SignaturesFull);
    }
    let digest = signed_digest(
        &raw.preamble,
        &raw.sigs.header_sha256,
        &raw.sigs.index_sha256,
    );
    raw.sigs.signatures.push((key.id(), key.sign(&digest)));
    let at = PREAMBLE_LEN as u64 + raw.preamble.header_len as u64;
    let werr = io(format!("write {}", path.display()));
    let write = |f: &mut File| -> std::io::Result<()> {
        f.seek(SeekFrom::Start(at))?;
        f.write_all(&raw.sigs.encode())?;
        f.sync_all()
    };
    write(&mut f).map_err(werr)?;
    Ok(raw.sigs.signatures.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_checks_come_in_order() {
        let good = Preamble {
            header_len: 10,
            index_len: 52,
        }
        .encode();
        assert!(parse_preamble(&good).is_ok());
        let table: Vec<(Vec<u8>, &str)> = vec![
            (
                b"PK\x03\x04xxxxxxxxxxxxxxxxxxxxxxxx".to_vec(),
                "not a hearth",
            ),
            (good[..5].to_vec(), "truncated"),
            (good[..20].to_vec(), "truncated"),
            (
                {
                    let mut b = good;
                    b[8] = 2;
                    b.to_vec()
                },
                "format 2",
            ),
            (
                {
                    let mut b = good;
                    b[12..16].copy_from_slice(&(MAX_HEADER_LEN + 1).to_le_bytes());
                    b.to_vec()
                },
                "header claims",
            ),
            (
                {
                    let mut b = good;
                    b[12..16].copy_from_slice(&0u32.to_le_bytes());
                    b.to_vec()
                },
                "empty",
            ),
            (
                {
                    let mut b = good;
                    b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
                    b.to_vec()
                },
                "index claims",
            ),
            (
                {
                    let mut b = good;
                    b[16..20].copy_from_slice(&51u32.to_le_bytes());
                    b.to_vec()
                },
                "whole number",
            ),
            (
                {
                    let mut b = good;
                    b[23] = 1;
                    b.to_vec()
                },
                "reserved",
            ),
        ];
        for (bytes, want) in table {
            let e = parse_preamble(&bytes).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn header_rules() {
        let ok = Header {
            board: "generic-x86_64".into(),
            version: Version(1, 2, 0),
            min_version: Version(1, 0, 0),
            created: 0,
            chunk_size: CHUNK_SIZE,
            payloads: vec![Payload {
                slot: "rootfs".into(),
                size: 1,
                sha256: "00".repeat(32),
            }],
        };
        assert!(ok.check().is_ok());
        let mut cases: Vec<(Header, &str)> = Vec::new();
        let mut h = ok.clone();
        h.board = "../etc".into();
        cases.push((h, "board name"));
        let mut h = ok.clone();
        h.chunk_size = 4096;
        cases.push((h, "chunk size"));
        let mut h = ok.clone();
        h.min_version = Version(2, 0, 0);
        cases.push((h, "min_version"));
        let mut h = ok.clone();
        h.payloads.push(h.payloads[0].clone());
        cases.push((h, "twice"));
        let mut h = ok.clone();
        h.payloads[0].size = MAX_TOTAL_PAYLOAD + 1;
        cases.push((h, "total"));
        let mut h = ok.clone();
        h.payloads[0].sha256 = "zz".into();
        cases.push((h, "malformed sha256"));
        let mut h = ok.clone();
        h.payloads.clear();
        cases.push((h, "payloads"));
        for (h, want) in cases {
            let e = h.check().unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = parse_header(br#"{"board":"x","extra":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("header is invalid"), "{e}");
    }
}
