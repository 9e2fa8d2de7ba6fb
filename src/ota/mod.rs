//! Over-the-air updates: the channel, bundles and their signatures, download, A/B slots.
//!
//! Publishers use [`bundle::create`] and [`bundle::sign`] (`hearth bundle …`); devices use
//! [`download`] to fetch a bundle from a channel into an inactive slot, and the agent's
//! boot control (`agent::boot`) to try it and keep it or fall back.

pub mod agent_writer;
pub mod bundle;
pub mod cli;
pub mod download;
pub mod error;
pub mod install;
pub mod keys;
pub mod local;
pub mod service;
pub use crate::model::version;

pub use bundle::{BundleError, BundleMeta, InstallPolicy};
pub use keys::{KeyId, Keyring, SigningKey};
pub use version::Version;
