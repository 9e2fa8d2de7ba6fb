//! The device's side of an update that needs no network: where verified payload bytes go
//! ([`SlotWriter`], [`FileSlots`]) and which chunks the device already has in either slot
//! ([`scan_sources`]). The root agent uses this file; the HTTP client lives in `download`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::bundle::{self, BundleMeta, HEAD_LEN};
use super::error::DownloadError;

/// Where verified payload bytes go. The agent backs it with the inactive slot's block
/// devices; [`FileSlots`] backs it with files.
pub trait SlotWriter {
    /// Writes verified bytes of payload `slot` at `offset`.
    fn write_at(&mut self, slot: &str, offset: u64, data: &[u8]) -> std::io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> std::io::Result<()>;
    /// Reads back, for the final check.
    fn read_at(&mut self, slot: &str, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;

    /// Called once the metadata verified, before anything is written. A writer that checks
    /// the bundle again on its own (the agent) gets the raw bytes. May name the journal's
    /// target (the slot the writer chose); `None` keeps the job's.
    fn begin(
        &mut self,
        _meta_bytes: &[u8],
        _meta: &BundleMeta,
    ) -> Result<Option<String>, DownloadError> {
        Ok(None)
    }

    /// Writes verified chunk `index` of the bundle.
    fn write_chunk(
        &mut self,
        meta: &BundleMeta,
        index: usize,
        plain: &[u8],
    ) -> Result<(), DownloadError> {
        let c = &meta.chunks[index];
        self.write_at(&meta.payload_of(c).slot, c.offset, plain)
            .map_err(DownloadError::Slot)
    }

    /// Lets the writer fill chunks from the device itself (chunks in `done` are on the
    /// slot already). `None`: the download scans the job's `sources` instead.
    fn reuse_local(
        &mut self,
        _meta: &BundleMeta,
        _done: &[u32],
    ) -> Result<Option<Vec<usize>>, DownloadError> {
        Ok(None)
    }

    /// The final check: every payload read back from the slot against its signed hash.
    fn finish(&mut self, meta: &BundleMeta) -> Result<(), DownloadError> {
        let mut buf = vec![0u8; bundle::CHUNK_SIZE as usize];
        for (pi, pay) in meta.header.payloads.iter().enumerate() {
            let mut h = ring::digest::Context::new(&ring::digest::SHA256);
            for c in meta.chunks.iter().filter(|c| c.payload == pi) {
                let w = &mut buf[..c.len as usize];
                self.read_at(&pay.slot, c.offset, w)
                    .map_err(DownloadError::Slot)?;
                h.update(w);
            }
            if hex::encode(h.finish().as_ref()) != pay.sha256 {
                return Err(DownloadError::ReadBack(pay.slot.clone()));
            }
        }
        Ok(())
    }
}

/// Payloads written to plain files, one per slot name.
#[derive(Debug)]
pub struct FileSlots {
    files: HashMap<String, File>,
}

impl FileSlots {
    /// Opens (creating) one file per slot name.
    pub fn open(map: &[(&str, PathBuf)]) -> std::io::Result<FileSlots> {
        let mut files = HashMap::new();
        for (slot, path) in map {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            files.insert((*slot).to_owned(), f);
        }
        Ok(FileSlots { files })
    }

    fn file(&self, slot: &str) -> std::io::Result<&File> {
        self.files.get(slot).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("this device has no `{slot}` slot"),
            )
        })
    }
}

impl SlotWriter for FileSlots {
    fn write_at(&mut self, slot: &str, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.file(slot)?.write_all_at(data, offset)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        for f in self.files.values() {
            f.sync_data()?;
        }
        Ok(())
    }
    fn read_at(&mut self, slot: &str, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file(slot)?.read_exact_at(buf, offset)
    }
}

/// Where chunks the device already has were found: (source file, offset).
pub struct LocalChunks {
    pub(super) files: Vec<File>,
    pub(super) found: HashMap<usize, (usize, u64)>,
}

impl LocalChunks {
    /// Where chunk `i` was seen, if anywhere.
    pub fn get(&self, i: usize) -> Option<(&File, u64)> {
        self.found.get(&i).map(|&(f, off)| (&self.files[f], off))
    }
}

/// How many leading bytes of a slot hold its filesystem, from the superblock: erofs (a root
/// slot) or FAT (a Raspberry Pi boot slot). `None` when the bytes are neither.
pub fn fs_extent(head: &[u8]) -> Option<u64> {
    let le32 = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(head.get(at..at + 4)?.try_into().ok()?))
    };
    let le16 = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(head.get(at..at + 2)?.try_into().ok()?))
    };
    // erofs: the superblock at 1024; `blocks` (at +36) of 2^`blkszbits` (at +12) bytes.
    if le32(1024)? == 0xE0F5_E1E2 {
        let bits = *head.get(1024 + 12)?;
        if !(9..=16).contains(&bits) {
            return None;
        }
        return Some(u64::from(le32(1024 + 36)?) << bits);
    }
    // FAT: a boot sector with the 0x55AA signature and a sane BIOS parameter block.
    if head.get(510..512)? == [0x55, 0xAA] {
        let sector = u64::from(le16(11)?);
        let total = match le16(19)? {
            0 => u64::from(le32(32)?),
            n => u64::from(n),
        };
        let fat_name = head.get(54..57)? == b"FAT" || head.get(82..85)? == b"FAT";
        if fat_name && [512, 1024, 2048, 4096].contains(&sector) && total > 0 {
            return Some(sector * total);
        }
    }
    None
}

/// Looks for the bundle's chunks at every 4 KiB position of the given files (the running
/// slot and whatever the inactive one holds). Each 4 KiB block is hashed once; only blocks
/// whose hash prefix matches a wanted chunk's head are read as a whole chunk and hashed.
/// A block device (a slot partition) is read only as far as the filesystem on it reaches,
/// and not at all when it holds none we know: the 512 MiB slot of a 90 MiB root, or an
/// empty slot, would otherwise cost a hash of every block of it.
pub fn scan_sources(
    meta: &BundleMeta,
    wanted: &[usize],
    sources: &[PathBuf],
) -> Result<LocalChunks, DownloadError> {
    let mut by_head: HashMap<[u8; 4], Vec<usize>> = HashMap::new();
    for &i in wanted {
        let c = &meta.chunks[i];
        if c.len as usize >= HEAD_LEN {
            by_head.entry(c.head).or_default().push(i);
        }
    }
    let mut out = LocalChunks {
        files: Vec::new(),
        found: HashMap::new(),
    };
    if by_head.is_empty() {
        return Ok(out);
    }
    let mut window = vec![0u8; bundle::CHUNK_SIZE as usize];
    for path in sources {
        let err = |source| DownloadError::Source {
            path: path.display().to_string(),
            source,
        };
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(e)),
        };
        let is_device = {
            use std::os::unix::fs::FileTypeExt;
            f.metadata().map_err(err)?.file_type().is_block_device()
        };
        let limit = if is_device {
            // At offset 0 without moving the file position the scan below starts from.
            let mut head = vec![0u8; 4096];
            let n = f.read_at(&mut head, 0).map_err(err)?;
            match fs_extent(&head[..n]) {
                Some(len) => len,
                None => continue,
            }
        } else {
            u64::MAX
        };
        let fi = out.files.len();
        let mut r = BufReader::with_capacity(1 << 20, f.try_clone().map_err(err)?);
        let mut block = vec![0u8; HEAD_LEN];
        let mut offset = 0u64;
        while offset < limit {
            let n = read_full(&mut r, &mut block).map_err(err)?;
            if n < HEAD_LEN {
                break;
            }
            let head = bundle::head_of(&block);
            if let Some(cands) = by_head.get(&head)
                && cands.iter().any(|i| !out.found.contains_key(i))
            {
                for &i in cands {
                    let c = &meta.chunks[i];
                    if out.found.contains_key(&i) {
                        continue;
                    }
                    let w = &mut window[..c.len as usize];
                    if f.read_exact_at(w, offset).is_ok() && bundle::sha256_of(w) == c.sha256 {
                        out.found.insert(i, (fi, offset));
                    }
                }
            }
            offset += HEAD_LEN as u64;
        }
        out.files.push(f);
    }
    Ok(out)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
