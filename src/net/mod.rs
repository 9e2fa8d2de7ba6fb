//! Security-sensitive: decides who a request comes from (local, LAN or remote) and how it
//! is allowed to connect. Listeners, client address, LAN detection, the owner's network
//! rules and TLS live here.

pub mod client;
pub mod forwarded;
pub mod listener;
pub mod mdns;
pub mod multicast;
pub mod origin;
pub mod rules;
pub mod tls;
pub mod watch;

pub use client::{ClientInfo, ConnInfo, LanNetworks, NetClass};
pub use rules::{NetRules, NetSettings, ProfileRef};
