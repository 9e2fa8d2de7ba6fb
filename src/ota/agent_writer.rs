//! The server's side of a `write_slot` session: a [`SlotWriter`] that hands verified
//! chunks to the agent, which checks each one again and writes the inactive slot. Blocking
//! (the download runs on a blocking thread).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::agent::protocol::{
    MAX_RESPONSE_BYTES, Request, Response, Reused, SessionOp, Staged, Staging,
};
use crate::ota::BundleMeta;
use crate::ota::download::{DownloadError, SlotWriter};

/// Reading back a whole slot on a slow SD card takes minutes; nothing else takes long.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(900);

/// Writes a slot through the agent.
pub struct AgentSlotWriter {
    socket: PathBuf,
    allow_downgrade: bool,
    conn: Option<(BufReader<UnixStream>, UnixStream)>,
    /// What the agent said it writes, once `begin` ran.
    pub staging: Option<Staging>,
    /// What the agent verified, once `finish` ran.
    pub staged: Option<Staged>,
}

impl AgentSlotWriter {
    pub fn new(socket: &Path, allow_downgrade: bool) -> AgentSlotWriter {
        AgentSlotWriter {
            socket: socket.to_path_buf(),
            allow_downgrade,
            conn: None,
            staging: None,
            staged: None,
        }
    }

    fn conn(&mut self) -> Result<&mut (BufReader<UnixStream>, UnixStream), DownloadError> {
        self.conn.as_mut().ok_or_else(|| DownloadError::Agent {
            code: "internal".into(),
            message: "the update session with the agent is not open".into(),
        })
    }

    fn send(&mut self, line: &impl serde::Serialize, body: &[u8]) -> Result<(), DownloadError> {
        let mut bytes = serde_json::to_vec(line).map_err(io_agent)?;
        bytes.push(b'\n');
        let (_, w) = self.conn()?;
        w.write_all(&bytes).map_err(io_agent)?;
        if !body.is_empty() {
            w.write_all(body).map_err(io_agent)?;
        }
        Ok(())
    }

    fn answer<T: DeserializeOwned>(&mut self) -> Result<T, DownloadError> {
        let (r, _) = self.conn()?;
        let mut line = Vec::new();
        r.take(MAX_RESPONSE_BYTES as u64)
            .read_until(b'\n', &mut line)
            .map_err(io_agent)?;
        if line.last() != Some(&b'\n') {
            self.conn = None;
            return Err(DownloadError::Agent {
                code: "agent_gone".into(),
                message: "the agent ended the update session without an answer; see its log".into(),
            });
        }
        match serde_json::from_slice::<Response>(&line).map_err(io_agent)? {
            Response::Ok { result, .. } => serde_json::from_value(result).map_err(io_agent),
            Response::Err { error, .. } => {
                self.conn = None;
                if error.code == "read_back_mismatch" {
                    return Err(DownloadError::ReadBack(error.message));
                }
                Err(DownloadError::Agent {
                    code: error.code,
                    message: error.message,
                })
            }
        }
    }
}

fn io_agent(e: impl std::fmt::Display) -> DownloadError {
    DownloadError::Agent {
        code: "agent_unreachable".into(),
        message: format!("the update session with the agent broke: {e}"),
    }
}

impl SlotWriter for AgentSlotWriter {
    fn write_at(&mut self, _slot: &str, _offset: u64, _data: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "the agent takes whole chunks only (write_chunk)",
        ))
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.send(&SessionOp::Sync, &[])
            .and_then(|()| self.answer::<serde_json::Value>())
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    fn read_at(&mut self, _slot: &str, _offset: u64, _buf: &mut [u8]) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "the agent reads the slot back itself (finish)",
        ))
    }

    fn begin(
        &mut self,
        meta_bytes: &[u8],
        _meta: &BundleMeta,
    ) -> Result<Option<String>, DownloadError> {
        let stream = UnixStream::connect(&self.socket).map_err(|e| DownloadError::Agent {
            code: "agent_unavailable".into(),
            message: format!(
                "the Hearth agent at {} cannot be reached ({e}); check that hearth-agent.socket is running",
                self.socket.display()
            ),
        })?;
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(io_agent)?;
        stream
            .set_write_timeout(Some(ANSWER_TIMEOUT))
            .map_err(io_agent)?;
        let reader = BufReader::new(stream.try_clone().map_err(io_agent)?);
        self.conn = Some((reader, stream));
        let len = u32::try_from(meta_bytes.len()).map_err(io_agent)?;
        self.send(
            &Request::WriteSlot {
                meta_len: len,
                allow_downgrade: self.allow_downgrade,
            },
            meta_bytes,
        )?;
        let staging: Staging = self.answer()?;
        let target = staging.target.clone();
        self.staging = Some(staging);
        Ok(Some(target))
    }

    fn write_chunk(
        &mut self,
        meta: &BundleMeta,
        index: usize,
        plain: &[u8],
    ) -> Result<(), DownloadError> {
        let _ = meta;
        self.send(
            &SessionOp::Chunk {
                index: index as u32,
                len: plain.len() as u32,
            },
            plain,
        )?;
        self.answer::<serde_json::Value>().map(|_| ())
    }

    fn reuse_local(
        &mut self,
        _meta: &BundleMeta,
        done: &[u32],
    ) -> Result<Option<Vec<usize>>, DownloadError> {
        self.send(
            &SessionOp::Reuse {
                done: crate::agent::protocol::ranges(done),
            },
            &[],
        )?;
        let r: Reused = self.answer()?;
        Ok(Some(
            r.local
                .iter()
                .flat_map(|&(a, b)| a as usize..b as usize)
                .collect(),
        ))
    }

    fn finish(&mut self, _meta: &BundleMeta) -> Result<(), DownloadError> {
        self.send(&SessionOp::Finish, &[])?;
        let staged: Staged = self.answer()?;
        self.staged = Some(staged);
        self.conn = None;
        Ok(())
    }
}
