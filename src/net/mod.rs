//! Security-sensitive: decides who a request comes from (local, LAN or remote) and how it
//! is allowed to connect. Listeners, client address, LAN detection and TLS live here.

pub mod client;
pub mod listener;

pub use client::{ClientInfo, ConnInfo, LanNetworks, NetClass};
