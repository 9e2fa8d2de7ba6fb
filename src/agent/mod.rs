//! The privileged helper (`hearth agent`): a root-only unix-socket server with a short,
//! fixed list of verbs, each re-checking its arguments.
//!
//! Security-relevant: this is the only part of Hearth that runs as root. See
//! [`server`] (who may call), [`protocol`] (what may be asked) and [`verbs`] (what is
//! checked before acting).

pub mod client;
pub mod protocol;
pub mod server;
pub mod timesync;

// The root side's files live under `server/`; their old paths stay.
pub use server::{boot, update, verbs};

pub use client::{Client, ClientError};
pub use server::Agent;
pub use verbs::{AgentConfig, AgentError, BlockDevice};

/// Where the agent listens on the appliance.
pub const DEFAULT_SOCKET: &str = "/run/hearth/agent.sock";
/// Where the agent makes mount points on the appliance.
pub const DEFAULT_MEDIA_ROOT: &str = "/media";
