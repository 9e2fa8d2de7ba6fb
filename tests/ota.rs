//! Update bundles, boot control and the download engine, against real files, real HTTP on
//! 127.0.0.1 and a real redb journal.

#[path = "ota/agent_update.rs"]
mod agent_update;
#[path = "ota/boot.rs"]
mod boot;
#[path = "ota/bundle.rs"]
mod bundle;
#[path = "ota/channel_tls.rs"]
mod channel_tls;
#[path = "common/mod.rs"]
mod common;
#[path = "ota/device.rs"]
mod device;
#[path = "ota/download.rs"]
mod download;
#[path = "ota/install_http.rs"]
mod install_http;
#[path = "ota/pi_update.rs"]
mod pi_update;
#[path = "ota/support.rs"]
mod support;
#[path = "ota/updates_http.rs"]
mod updates_http;
