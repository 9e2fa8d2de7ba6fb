//! The server's side of the agent socket: one request per connection, with timeouts, and a
//! plain "no agent" answer on a laptop where nothing listens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{
    DiskList, Ejected, MAX_RESPONSE_BYTES, Mounted, Request, Response, Unmounted,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Mounting a large btrfs or flushing a slow stick can take a while.
const VERB_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no agent: disk management needs the Hearth appliance; on this computer, add folders by path instead"
    )]
    NoAgent,
    #[error(
        "the Hearth agent at {path} cannot be reached ({cause}); check that hearth-agent.socket is running"
    )]
    Unreachable { path: String, cause: String },
    #[error(
        "the Hearth agent did not answer in time; try again, and check its log if it keeps happening"
    )]
    Timeout,
    /// The agent refused or failed; `code` is its stable reason.
    #[error("{message}")]
    Refused { code: String, message: String },
    #[error("the Hearth agent sent an answer this server does not understand: {0}")]
    Protocol(String),
}

/// Talks to `hearth agent`; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
}

impl Client {
    pub fn new(path: impl Into<PathBuf>) -> Client {
        Client { path: path.into() }
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and reads its answer.
    pub async fn call<T: DeserializeOwned>(&self, req: &Request) -> Result<T, ClientError> {
        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&self.path)).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(Err(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) && !self.path.exists() =>
                {
                    return Err(ClientError::NoAgent);
                }
                Ok(Err(e)) => {
                    return Err(ClientError::Unreachable {
                        path: self.path.display().to_string(),
                        cause: e.to_string(),
                    });
                }
                Ok(Ok(s)) => s,
            };
        let exchange = async {
            let (read, mut write) = stream.into_split();
            let mut line =
                serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
            line.push(b'\n');
            write
                .write_all(&line)
                .await
                .map_err(|e| ClientError::Unreachable {
                    path: self.path.display().to_string(),
                    cause: e.to_string(),
                })?;
            let mut answer = Vec::new();
            BufReader::new(read)
                .take(MAX_RESPONSE_BYTES as u64)
                .read_until(b'\n', &mut answer)
                .await
                .map_err(|e| ClientError::Unreachable {
                    path: self.path.display().to_string(),
                    cause: e.to_string(),
                })?;
            if answer.last() != Some(&b'\n') {
                return Err(ClientError::Protocol(
                    "the answer was cut off or too large".into(),
                ));
            }
            serde_json::from_slice::<Response>(&answer)
                .map_err(|e| ClientError::Protocol(e.to_string()))
        };
        let response = tokio::time::timeout(VERB_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout)??;
        match response {
            Response::Ok { result, .. } => {
                serde_json::from_value(result).map_err(|e| ClientError::Protocol(e.to_string()))
            }
            Response::Err { error, .. } => Err(ClientError::Refused {
                code: error.code,
                message: error.message,
            }),
        }
    }

    pub async fn list_disks(&self) -> Result<DiskList, ClientError> {
        self.call(&Request::ListDisks {}).await
    }

    pub async fn mount(
        &self,
        uuid: &str,
        read_only: bool,
        name: Option<&str>,
    ) -> Result<Mounted, ClientError> {
        self.call(&Request::Mount {
            uuid: uuid.to_owned(),
            read_only,
            name: name.map(str::to_owned),
        })
        .await
    }

    pub async fn unmount(&self, uuid: &str) -> Result<Unmounted, ClientError> {
        self.call(&Request::Unmount {
            uuid: uuid.to_owned(),
        })
        .await
    }

    pub async fn eject(&self, uuid: &str) -> Result<Ejected, ClientError> {
        self.call(&Request::Eject {
            uuid: uuid.to_owned(),
        })
        .await
    }

    pub async fn set_time_sync(
        &self,
        mode: crate::agent::timesync::TimeSyncMode,
        servers: Vec<String>,
    ) -> Result<crate::agent::timesync::TimeSyncState, ClientError> {
        self.call(&Request::SetTimeSync { mode, servers }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn absent_socket_means_no_agent() {
        let t = tempfile::tempdir().unwrap();
        let c = Client::new(t.path().join("agent.sock"));
        let e = c.list_disks().await.unwrap_err();
        assert!(matches!(e, ClientError::NoAgent), "{e}");
        assert!(e.to_string().contains("needs the Hearth appliance"));
    }
}
