//! The ground floor: plain types every other module may use — roles, a user's restrictions
//! and content ratings, the network class of a client, media facts, versions, the clock and
//! what this build is. Nothing here imports anything else from the crate (the architecture
//! test in `tests/architecture.rs` holds this), so it is the place to start reading.

pub mod build;
pub mod clock;
pub mod media;
pub mod net;
pub mod ratings;
pub mod restrictions;
pub mod role;
pub mod version;

pub use net::{ClientInfo, NetClass};
pub use role::Role;
pub use version::Version;
