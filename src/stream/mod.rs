//! Serving media bytes: byte ranges, signed media URLs, subtitles.
