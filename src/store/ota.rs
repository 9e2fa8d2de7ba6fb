//! The update download journal: which bundle is being written to which slot, and which of
//! its chunks are already written and synced there, so a cut download resumes.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{JsonTable, Rx, StoreError, Tx, decode, encode};

pub(super) const OTA_JOB: JsonTable<&str> = TableDefinition::new("ota_job");
/// Chunk numbers of the current job that are on the slot (value unused).
pub(super) const OTA_CHUNKS: TableDefinition<u32, u8> = TableDefinition::new("ota_chunks");
const JOB_KEY: &str = "current";
/// The last check, the offer it found and the last rollback, for the Updates page.
const RECORD_KEY: &str = "record";

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(OTA_JOB)?;
    tx.open_table(OTA_CHUNKS)?;
    Ok(())
}

/// The download in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtaJob {
    /// Hex of the bundle's signed digest: a different bundle starts over.
    pub bundle: String,
    /// Which slot (device or file) receives it: a different target starts over.
    pub target: String,
    pub chunks: u32,
    /// Every chunk written and the payloads read back and checked.
    pub complete: bool,
}

impl Tx<'_> {
    /// Starts `job`, or continues it if the same bundle goes to the same target; returns
    /// the chunks already done.
    pub fn ota_begin(&self, job: &OtaJob) -> Result<Vec<u32>, StoreError> {
        let mut jobs = self.tx.open_table(OTA_JOB)?;
        let same = match jobs.get(JOB_KEY)? {
            Some(v) => {
                let old: OtaJob = decode(v.value())?;
                old.bundle == job.bundle && old.target == job.target && old.chunks == job.chunks
            }
            None => false,
        };
        let mut chunks = self.tx.open_table(OTA_CHUNKS)?;
        if !same {
            chunks.retain(|_, _| false)?;
            jobs.insert(JOB_KEY, encode(job)?.as_slice())?;
            return Ok(Vec::new());
        }
        let mut done = Vec::new();
        for row in chunks.iter()? {
            done.push(row?.0.value());
        }
        Ok(done)
    }

    pub fn ota_mark_done(&self, chunks: &[u32]) -> Result<(), StoreError> {
        let mut t = self.tx.open_table(OTA_CHUNKS)?;
        for c in chunks {
            t.insert(*c, 1)?;
        }
        Ok(())
    }

    pub fn ota_mark_complete(&self) -> Result<(), StoreError> {
        let mut jobs = self.tx.open_table(OTA_JOB)?;
        let job = match jobs.get(JOB_KEY)? {
            Some(v) => Some(decode::<OtaJob>(v.value())?),
            None => None,
        };
        if let Some(mut job) = job {
            job.complete = true;
            jobs.insert(JOB_KEY, encode(&job)?.as_slice())?;
        }
        Ok(())
    }

    /// Forgets the job (after install, or when the slot failed its read-back check).
    pub fn ota_clear(&self) -> Result<(), StoreError> {
        self.tx.open_table(OTA_JOB)?.remove(JOB_KEY)?;
        self.tx.open_table(OTA_CHUNKS)?.retain(|_, _| false)?;
        Ok(())
    }
}

impl Tx<'_> {
    pub fn ota_set_record<T: Serialize>(&self, record: &T) -> Result<(), StoreError> {
        self.tx
            .open_table(OTA_JOB)?
            .insert(RECORD_KEY, encode(record)?.as_slice())?;
        Ok(())
    }

    pub fn ota_record_for_update<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<Option<T>, StoreError> {
        let t = self.tx.open_table(OTA_JOB)?;
        let v = t.get(RECORD_KEY)?;
        v.map(|v| decode(v.value())).transpose()
    }
}

impl Rx {
    pub fn ota_record<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, StoreError> {
        let t = self.tx.open_table(OTA_JOB)?;
        let v = t.get(RECORD_KEY)?;
        v.map(|v| decode(v.value())).transpose()
    }

    pub fn ota_job(&self) -> Result<Option<OtaJob>, StoreError> {
        let t = self.tx.open_table(OTA_JOB)?;
        let v = t.get(JOB_KEY)?;
        v.map(|v| decode(v.value())).transpose()
    }

    pub fn ota_done_count(&self) -> Result<u64, StoreError> {
        Ok(self.tx.open_table(OTA_CHUNKS)?.len()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn journal_continues_only_the_same_bundle_and_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.redb");
        let job = OtaJob {
            bundle: "ab".into(),
            target: "/dev/sda3".into(),
            chunks: 10,
            complete: false,
        };
        {
            let s = Store::open(&path).unwrap();
            assert!(s.write(|tx| tx.ota_begin(&job)).unwrap().is_empty());
            s.write(|tx| tx.ota_mark_done(&[1, 2, 5])).unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.write(|tx| tx.ota_begin(&job)).unwrap(), vec![1, 2, 5]);
        let other = OtaJob {
            target: "/dev/sda2".into(),
            ..job.clone()
        };
        assert!(s.write(|tx| tx.ota_begin(&other)).unwrap().is_empty());
        assert_eq!(s.read(|r| r.ota_done_count()).unwrap(), 0);
        assert!(s.write(|tx| tx.ota_begin(&job)).unwrap().is_empty());
    }
}
