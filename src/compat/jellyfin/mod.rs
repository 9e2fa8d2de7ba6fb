//! Security-sensitive: the Jellyfin-compatible API's wire format, so Jellyfin's own apps
//! (and Kodi, Infuse, Findroid, Swiftfin…) sign in and play. It guards the mapping only —
//! ids, the `Authorization: MediaBrowser …` header, query parameters, device profiles, item
//! and library objects — and decides nothing: who may see what is `policy`'s, asked by the
//! handlers in `web::jellyfin` before anything here turns a record into an answer.
//!
//! - [`ids`]: Hearth's numeric ids as the 32-hex GUIDs apps expect, and back;
//! - [`header`]: the client's credentials and self-description (`MediaBrowser …`,
//!   `X-Emby-Token`, `X-Emby-Authorization`, `ApiKey`/`api_key`);
//! - [`query`]: case-insensitive query parameters and JSON bodies, `Items` queries;
//! - [`profile`]: an app's `DeviceProfile` as the playback engine's [`crate::playback::ClientCaps`];
//! - [`dto`]: users, libraries (views) and items as Jellyfin's `BaseItemDto` and friends;
//! - [`routes`]: the checked-in list of routes Hearth serves, each with a contract test.

pub mod dto;
pub mod header;
pub mod ids;
pub mod profile;
pub mod query;
pub mod routes;

/// The Jellyfin server version whose API this layer speaks (apps check it; it is not
/// Hearth's own version, which `/System/Info` reports beside it).
pub const API_VERSION: &str = "10.10.7";

/// What apps show and check as the product (some refuse anything else).
pub const PRODUCT_NAME: &str = "Jellyfin Server";

/// Jellyfin counts time in ticks of 100 ns.
pub const TICKS_PER_MS: u64 = 10_000;
