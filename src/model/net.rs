//! Where a client is, as `net` classified it; identity and policy read it.

use std::net::IpAddr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetClass {
    /// Loopback: someone on the device itself.
    Local,
    /// One of the LAN networks.
    Lan,
    /// Anywhere else.
    Remote,
}

/// The resolved client of one request.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    pub addr: IpAddr,
    pub class: NetClass,
    pub secure: bool,
}
