//! Security-sensitive: the encrypted container of a backup file.
//!
//! ```text
//! header (124 bytes, plain):
//!   0   magic "HEARTHBK"
//!   8   format version (u16, big-endian)          = 1
//!  10   cipher (u16)                               = 1: ChaCha20-Poly1305
//!  12   Argon2id memory (KiB), passes, lanes (3 × u32)
//!  24   Argon2id salt (16 bytes)
//!  40   file nonce (32 bytes, random per file)
//!  72   chunk size (u32)
//!  76   key check (16 bytes): the AEAD tag of nothing, so a wrong passphrase is told apart
//!       from a damaged file
//!  92   SHA-256 of bytes 0..92, so a damaged header is told apart from a wrong passphrase
//! then chunks, each: flags (u8, 1 = last) | plaintext length (u32) | ciphertext + 16-byte tag
//! ```
//!
//! The passphrase goes through Argon2id (salted; parameters in the header and bounded when
//! read, so a hostile file cannot ask for gigabytes); HKDF-SHA256 with the file nonce makes a
//! key for this file alone, so a schedule that keeps one derived key never reuses a key. Each
//! chunk's nonce is its index and its "last" flag, and its associated data is the header's
//! hash: chunks cannot be reordered, dropped, moved to another file, or cut off after any
//! chunk but the last without the reader noticing.

use std::io::{self, Read, Write};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::BackupError;

pub const MAGIC: [u8; 8] = *b"HEARTHBK";
pub const FORMAT_VERSION: u16 = 1;
const CIPHER_CHACHA20_POLY1305: u16 = 1;
pub const HEADER_LEN: usize = 124;
const TAG_LEN: usize = 16;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const MIN_CHUNK: u32 = 4 * 1024;
const MAX_CHUNK: u32 = 1024 * 1024;

/// Argon2id settings. What a file may ask for is bounded by [`Kdf::MAX_MEMORY_KIB`] etc.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Kdf {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl Kdf {
    /// 64 MiB, 3 passes: about a second on a Raspberry Pi 4.
    pub const DEFAULT: Kdf = Kdf {
        memory_kib: 64 * 1024,
        passes: 3,
        lanes: 1,
    };
    pub const MAX_MEMORY_KIB: u32 = 256 * 1024;
    pub const MAX_PASSES: u32 = 16;
    pub const MAX_LANES: u32 = 8;

    fn check(&self) -> Result<(), BackupError> {
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.passes > Self::MAX_PASSES
            || self.lanes > Self::MAX_LANES
            || self.memory_kib < 8 * 1024
            || self.passes == 0
            || self.lanes == 0
        {
            return Err(BackupError::Hostile(format!(
                "its key settings ({} KiB, {} passes, {} lanes) are outside what Hearth makes or accepts",
                self.memory_kib, self.passes, self.lanes
            )));
        }
        Ok(())
    }
}

/// A key derived from a passphrase: what a schedule keeps instead of the passphrase.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct MasterKey {
    pub kdf: Kdf,
    #[serde(with = "hex_16")]
    pub salt: [u8; 16],
    #[serde(with = "hex_32")]
    pub key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

macro_rules! hex_array {
    ($name:ident, $n:expr) => {
        mod $name {
            pub fn serialize<S: serde::Serializer>(v: &[u8; $n], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&hex::encode(v))
            }
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(
                d: D,
            ) -> Result<[u8; $n], D::Error> {
                let s: String = serde::Deserialize::deserialize(d)?;
                let v = hex::decode(s).map_err(serde::de::Error::custom)?;
                v.try_into()
                    .map_err(|_| serde::de::Error::custom("wrong length"))
            }
        }
    };
}
hex_array!(hex_16, 16);
hex_array!(hex_32, 32);

/// Shortest passphrase accepted for a new backup.
pub const MIN_PASSPHRASE: usize = 10;
const MAX_PASSPHRASE: usize = 1024;

impl MasterKey {
    /// Derives a key from `passphrase` with a new random salt (slow: Argon2id).
    pub fn new(passphrase: &str, kdf: Kdf) -> Result<MasterKey, BackupError> {
        let n = passphrase.chars().count();
        if n < MIN_PASSPHRASE {
            return Err(BackupError::WeakPassphrase(format!(
                "the passphrase needs at least {MIN_PASSPHRASE} characters; a few unrelated words are easy to remember"
            )));
        }
        if passphrase.len() > MAX_PASSPHRASE {
            return Err(BackupError::WeakPassphrase(
                "the passphrase is longer than 1024 bytes".into(),
            ));
        }
        let mut salt = [0u8; 16];
        fill(&mut salt)?;
        Self::derive(passphrase, kdf, salt)
    }

    /// Derives the key for `salt` (a file's header names it and `kdf`).
    pub fn derive(passphrase: &str, kdf: Kdf, salt: [u8; 16]) -> Result<MasterKey, BackupError> {
        kdf.check()?;
        let params = argon2::Params::new(kdf.memory_kib, kdf.passes, kdf.lanes, Some(32))
            .map_err(|e| BackupError::Internal(format!("argon2 parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = [0u8; 32];
        argon
            .hash_password_into(passphrase.as_bytes(), &salt, &mut key)
            .map_err(|e| BackupError::Internal(format!("argon2: {e}")))?;
        Ok(MasterKey { kdf, salt, key })
    }
}

fn fill(buf: &mut [u8]) -> Result<(), BackupError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| BackupError::Internal("the system random generator failed".into()))
}

fn file_key(master: &[u8; 32], file_nonce: &[u8; 32]) -> Result<LessSafeKey, BackupError> {
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, file_nonce).extract(master);
    let okm = prk
        .expand(&[b"hearth backup v1"], &CHACHA20_POLY1305)
        .map_err(|_| BackupError::Internal("hkdf".into()))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn chunk_nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3] = u8::from(last);
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

const CHECK_NONCE: [u8; 12] = [0xFF; 12];

/// The parsed header.
struct Header {
    bytes: [u8; HEADER_LEN],
    kdf: Kdf,
    salt: [u8; 16],
    file_nonce: [u8; 32],
    chunk: u32,
}

impl Header {
    fn make(
        master: &MasterKey,
        key: &LessSafeKey,
        file_nonce: [u8; 32],
    ) -> Result<Header, BackupError> {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        b[10..12].copy_from_slice(&CIPHER_CHACHA20_POLY1305.to_be_bytes());
        b[12..16].copy_from_slice(&master.kdf.memory_kib.to_be_bytes());
        b[16..20].copy_from_slice(&master.kdf.passes.to_be_bytes());
        b[20..24].copy_from_slice(&master.kdf.lanes.to_be_bytes());
        b[24..40].copy_from_slice(&master.salt);
        b[40..72].copy_from_slice(&file_nonce);
        b[72..76].copy_from_slice(&(CHUNK as u32).to_be_bytes());
        let mut empty = Vec::new();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(CHECK_NONCE),
            Aad::from(&b[..76]),
            &mut empty,
        )
        .map_err(|_| BackupError::Internal("seal".into()))?;
        b[76..92].copy_from_slice(&empty);
        let sum = ring::digest::digest(&ring::digest::SHA256, &b[..92]);
        b[92..].copy_from_slice(sum.as_ref());
        Ok(Header {
            bytes: b,
            kdf: master.kdf,
            salt: master.salt,
            file_nonce,
            chunk: CHUNK as u32,
        })
    }

    fn parse(b: [u8; HEADER_LEN]) -> Result<Header, BackupError> {
        if b[..8] != MAGIC {
            return Err(BackupError::NotABackup(what_is_it(&b)));
        }
        let sum = ring::digest::digest(&ring::digest::SHA256, &b[..92]);
        let version = u16::from_be_bytes([b[8], b[9]]);
        if sum.as_ref() != &b[92..] {
            return Err(BackupError::Damaged(
                "its header is damaged (its checksum does not match)".into(),
            ));
        }
        if version != FORMAT_VERSION {
            return Err(BackupError::FormatTooNew(version));
        }
        if u16::from_be_bytes([b[10], b[11]]) != CIPHER_CHACHA20_POLY1305 {
            return Err(BackupError::Hostile(
                "it names a cipher Hearth does not use".into(),
            ));
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let kdf = Kdf {
            memory_kib: u32_at(12),
            passes: u32_at(16),
            lanes: u32_at(20),
        };
        kdf.check()?;
        let chunk = u32_at(72);
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk) {
            return Err(BackupError::Hostile(format!(
                "its chunk size ({chunk} bytes) is outside what Hearth makes"
            )));
        }
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&b[24..40]);
        let mut file_nonce = [0u8; 32];
        file_nonce.copy_from_slice(&b[40..72]);
        Ok(Header {
            bytes: b,
            kdf,
            salt,
            file_nonce,
            chunk,
        })
    }

    fn aad(&self) -> [u8; 32] {
        let mut a = [0u8; 32];
        a.copy_from_slice(&self.bytes[92..]);
        a
    }

    fn check_key(&self, key: &LessSafeKey) -> Result<(), BackupError> {
        let mut tag = self.bytes[76..92].to_vec();
        key.open_in_place(
            Nonce::assume_unique_for_key(CHECK_NONCE),
            Aad::from(&self.bytes[..76]),
            &mut tag,
        )
        .map(|_| ())
        .map_err(|_| BackupError::WrongPassphrase)
    }
}

/// A friendlier word for a file that is not a backup.
fn what_is_it(b: &[u8]) -> String {
    if b.starts_with(b"HEARTHUP") {
        "it is a Hearth update bundle, not a backup".into()
    } else if b.len() > 262 && &b[257..262] == b"ustar" {
        "it is a tar archive (another product's backup?), not a Hearth backup".into()
    } else if b.starts_with(&[0x1f, 0x8b]) {
        "it is a gzip file (another product's backup?), not a Hearth backup".into()
    } else if b.starts_with(b"PK\x03\x04") {
        "it is a zip file, not a Hearth backup".into()
    } else {
        "it does not start with Hearth's backup marker".into()
    }
}

/// Encrypts a stream into the container: write the plaintext, then [`Sealer::finish`].
pub struct Sealer<W: Write> {
    out: W,
    key: LessSafeKey,
    aad: [u8; 32],
    buf: Vec<u8>,
    index: u64,
    written: u64,
}

impl<W: Write> Sealer<W> {
    pub fn new(mut out: W, master: &MasterKey) -> Result<Sealer<W>, BackupError> {
        let mut file_nonce = [0u8; 32];
        fill(&mut file_nonce)?;
        let key = file_key(&master.key, &file_nonce)?;
        let header = Header::make(master, &key, file_nonce)?;
        out.write_all(&header.bytes)?;
        Ok(Sealer {
            out,
            key,
            aad: header.aad(),
            buf: Vec::with_capacity(CHUNK + TAG_LEN),
            index: 0,
            written: HEADER_LEN as u64,
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let len = self.buf.len() as u32;
        self.key
            .seal_in_place_append_tag(
                chunk_nonce(self.index, last),
                Aad::from(&self.aad),
                &mut self.buf,
            )
            .map_err(|_| io::Error::other("cannot encrypt"))?;
        self.out.write_all(&[u8::from(last)])?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(&self.buf)?;
        self.written += 5 + self.buf.len() as u64;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Writes the last chunk and returns the output and the bytes written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.seal(true)?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.seal(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// How the key is found for a file being opened.
pub enum Unlock<'a> {
    Passphrase(&'a str),
    /// A schedule's kept key (used when the salt matches).
    Key(&'a MasterKey),
}

fn read_header(input: &mut impl Read) -> Result<Header, BackupError> {
    let mut b = [0u8; HEADER_LEN];
    let got = read_full(input, &mut b)?;
    if got < HEADER_LEN {
        if got >= 8 && b[..8] != MAGIC {
            return Err(BackupError::NotABackup(what_is_it(&b[..got])));
        }
        if got < 8 && !MAGIC.starts_with(&b[..got]) {
            return Err(BackupError::NotABackup(what_is_it(&b[..got])));
        }
        return Err(BackupError::Truncated);
    }
    Header::parse(b)
}

/// The key settings and salt a file's header names (the header checked, no key needed): a
/// caller opening many files made with one passphrase derives each key once.
pub fn key_params(mut input: impl Read) -> Result<(Kdf, [u8; 16]), BackupError> {
    let h = read_header(&mut input)?;
    Ok((h.kdf, h.salt))
}

/// Decrypts and checks the container as it is read. Reading past the end reports a cut or
/// damaged file as an error (wrapping a [`BackupError`]), never as a quiet end.
pub struct Opener<R: Read> {
    input: R,
    key: LessSafeKey,
    aad: [u8; 32],
    chunk: usize,
    buf: Vec<u8>,
    pos: usize,
    index: u64,
    done: bool,
    /// Bytes read from the file so far.
    pub consumed: u64,
}

impl<R: Read> Opener<R> {
    pub fn new(mut input: R, unlock: Unlock<'_>) -> Result<Opener<R>, BackupError> {
        let header = read_header(&mut input)?;
        let master = match unlock {
            Unlock::Key(k) if k.salt == header.salt && k.kdf == header.kdf => k.clone(),
            Unlock::Key(_) => return Err(BackupError::WrongPassphrase),
            Unlock::Passphrase(p) => {
                if p.len() > MAX_PASSPHRASE {
                    return Err(BackupError::WrongPassphrase);
                }
                MasterKey::derive(p, header.kdf, header.salt)?
            }
        };
        let key = file_key(&master.key, &header.file_nonce)?;
        header.check_key(&key)?;
        Ok(Opener {
            input,
            key,
            aad: header.aad(),
            chunk: header.chunk as usize,
            buf: Vec::new(),
            pos: 0,
            index: 0,
            done: false,
            consumed: HEADER_LEN as u64,
        })
    }

    fn next_chunk(&mut self) -> Result<(), BackupError> {
        let mut head = [0u8; 5];
        if read_full(&mut self.input, &mut head)? < 5 {
            return Err(BackupError::Truncated);
        }
        let last = match head[0] {
            0 => false,
            1 => true,
            _ => {
                return Err(BackupError::Damaged(format!(
                    "chunk {} is damaged (bad flags)",
                    self.index
                )));
            }
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > self.chunk || (!last && len != self.chunk) {
            return Err(BackupError::Damaged(format!(
                "chunk {} is damaged (bad length)",
                self.index
            )));
        }
        self.buf.resize(len + TAG_LEN, 0);
        if read_full(&mut self.input, &mut self.buf)? < len + TAG_LEN {
            return Err(BackupError::Truncated);
        }
        self.consumed += (5 + len + TAG_LEN) as u64;
        let opened = self
            .key
            .open_in_place(
                chunk_nonce(self.index, last),
                Aad::from(&self.aad),
                &mut self.buf,
            )
            .map_err(|_| {
                BackupError::Damaged(format!(
                    "chunk {} (near byte {}) does not authenticate: the file was changed or damaged",
                    self.index, self.consumed
                ))
            })?
            .len();
        self.buf.truncate(opened);
        self.pos = 0;
        self.index += 1;
        if last {
            let mut one = [0u8; 1];
            if read_full(&mut self.input, &mut one)? != 0 {
                return Err(BackupError::Damaged(
                    "there are extra bytes after the last chunk".into(),
                ));
            }
            self.done = true;
        }
        Ok(())
    }

    /// Reads to the end, requiring nothing more than `allowed` bytes of plaintext there.
    pub fn finish(mut self, allowed: usize) -> Result<(), BackupError> {
        let mut rest = Vec::new();
        let mut one = [0u8; 4096];
        loop {
            let n = self.read(&mut one).map_err(BackupError::from_io)?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&one[..n]);
            if rest.len() > allowed {
                return Err(BackupError::Hostile(
                    "it holds more data than its manifest lists".into(),
                ));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk().map_err(io::Error::other)?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Kdf = Kdf {
        memory_kib: 8 * 1024,
        passes: 1,
        lanes: 1,
    };

    fn seal(data: &[u8], pass: &str) -> Vec<u8> {
        let key = MasterKey::new(pass, FAST).unwrap();
        let mut s = Sealer::new(Vec::new(), &key).unwrap();
        s.write_all(data).unwrap();
        s.finish().unwrap().0
    }

    fn open(file: &[u8], pass: &str) -> Result<Vec<u8>, BackupError> {
        let mut o = Opener::new(file, Unlock::Passphrase(pass))?;
        let mut out = Vec::new();
        o.read_to_end(&mut out).map_err(BackupError::from_io)?;
        Ok(out)
    }

    #[test]
    fn round_trip_at_chunk_edges() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let file = seal(&data, "correct horse battery");
            assert_eq!(open(&file, "correct horse battery").unwrap(), data, "{len}");
        }
    }

    #[test]
    fn every_kind_of_damage_has_its_own_error() {
        let data: Vec<u8> = (0..3 * CHUNK + 10).map(|i| (i % 7) as u8).collect();
        let file = seal(&data, "correct horse battery");
        assert!(matches!(
            open(&file, "wrong horse battery"),
            Err(BackupError::WrongPassphrase)
        ));
        // A flipped byte anywhere: in the header it is "damaged header", in a chunk "damaged".
        for at in [
            0usize,
            9,
            30,
            80,
            100,
            HEADER_LEN + 2,
            HEADER_LEN + 100,
            file.len() - 1,
        ] {
            let mut bad = file.clone();
            bad[at] ^= 0x01;
            let err = open(&bad, "correct horse battery").unwrap_err();
            let ok = match at {
                0 => matches!(err, BackupError::NotABackup(_)),
                _ => matches!(err, BackupError::Damaged(_)),
            };
            assert!(ok, "flip at {at}: {err:?}");
        }
        // Cut anywhere: truncated, never a quiet shorter stream.
        for cut in [
            0usize,
            5,
            HEADER_LEN,
            HEADER_LEN + 3,
            HEADER_LEN + CHUNK + 21,
            file.len() - 1,
        ] {
            let err = open(&file[..cut], "correct horse battery").unwrap_err();
            assert!(
                matches!(err, BackupError::Truncated),
                "cut at {cut}: {err:?}"
            );
        }
        // Dropping a whole middle chunk, or appending bytes.
        let rec = 5 + CHUNK + TAG_LEN;
        let mut dropped = file[..HEADER_LEN].to_vec();
        dropped.extend_from_slice(&file[HEADER_LEN + rec..]);
        assert!(matches!(
            open(&dropped, "correct horse battery"),
            Err(BackupError::Damaged(_))
        ));
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(
            open(&longer, "correct horse battery"),
            Err(BackupError::Damaged(_))
        ));
        // Another product's file.
        let mut tar = vec![0u8; 1024];
        tar[257..262].copy_from_slice(b"ustar");
        let err = open(&tar, "x").unwrap_err();
        assert!(err.to_string().contains("tar"), "{err}");
    }

    #[test]
    fn hostile_key_settings_are_refused_before_deriving() {
        let file = seal(b"x", "correct horse battery");
        let mut bad = file.clone();
        bad[12..16].copy_from_slice(&(4u32 * 1024 * 1024).to_be_bytes());
        let sum = ring::digest::digest(&ring::digest::SHA256, &bad[..92]);
        bad[92..HEADER_LEN].copy_from_slice(sum.as_ref());
        let err = open(&bad, "correct horse battery").unwrap_err();
        assert!(matches!(err, BackupError::Hostile(_)), "{err:?}");
    }

    #[test]
    fn a_kept_key_opens_its_files_and_each_file_has_its_own_key() {
        let key = MasterKey::new("correct horse battery", FAST).unwrap();
        let mut a = Sealer::new(Vec::new(), &key).unwrap();
        a.write_all(b"same").unwrap();
        let a = a.finish().unwrap().0;
        let mut b = Sealer::new(Vec::new(), &key).unwrap();
        b.write_all(b"same").unwrap();
        let b = b.finish().unwrap().0;
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
        let mut o = Opener::new(&a[..], Unlock::Key(&key)).unwrap();
        let mut out = Vec::new();
        o.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"same");
        assert!(MasterKey::new("short", FAST).is_err());
    }
}
