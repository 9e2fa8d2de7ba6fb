//! The playback engine: how a file reaches a player that cannot take it as it is. The
//! decision (`decide`) is pure; conversion runs ffmpeg as a child (`ffmpeg`). Whether the
//! viewer may have the file at all is `policy`'s, checked before anything here runs.

pub mod caps;
pub mod decide;
pub mod facts;
pub mod ffmpeg;
pub mod picture;
pub mod probe;
pub mod session;

pub use caps::ClientCaps;
pub use decide::{Choice, Limits, Method, Plan, decide};
pub use facts::MediaFacts;
