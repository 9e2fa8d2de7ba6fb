//! Update bundles, boot control and the download engine, against real files, real HTTP on
//! 127.0.0.1 and a real redb journal.

#[path = "ota/boot.rs"]
mod boot;
#[path = "ota/bundle.rs"]
mod bundle;
#[path = "common/mod.rs"]
mod common;
#[path = "ota/download.rs"]
mod download;
#[path = "ota/support.rs"]
mod support;
#[path = "ota/updates_http.rs"]
mod updates_http;
