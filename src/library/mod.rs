//! Libraries of media: the scanner, name parsing, NFO sidecars, tags and search.
