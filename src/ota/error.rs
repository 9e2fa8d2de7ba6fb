//! What can go wrong bringing an update onto the device, in words for the owner.

use super::bundle::BundleError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("the update URL `{0}` is not allowed: use https (plain http only to this machine)")]
    InsecureUrl(String),
    #[error("the update URL `{0}` is not a valid http(s) URL")]
    BadUrl(String),
    #[error("cannot reach the update channel: {0}; check the network and the channel URL")]
    Http(String),
    #[error("the update server answered {status} for {url}")]
    Status { status: u16, url: String },
    #[error("channel.json is invalid: {0}")]
    BadChannel(String),
    #[error(
        "the channel offers board `{offered}` but this device is `{device}`; check the channel URL"
    )]
    WrongBoard { offered: String, device: String },
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("the download keeps failing ({0}); it will resume where it stopped when tried again")]
    GaveUp(String),
    #[error("the server sent a different file than announced: {0}")]
    Mismatch(String),
    #[error("cannot write the update slot: {0}")]
    Slot(std::io::Error),
    #[error("cannot read {path}: {source}")]
    Source {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the written slot does not read back correctly (payload `{0}`); the download will start over"
    )]
    ReadBack(String),
    #[error("{message}")]
    Agent { code: String, message: String },
    #[error("the channel's CA file {path} cannot be used: {why}")]
    BadCa { path: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}
