//! Facts about a media file that the store keeps and policy and the front ends read:
//! the content rating as written, and what the container says about its streams.

use serde::{Deserialize, Serialize};

/// A content rating as the sidecar states it, e.g. `PG-13`, `gb/12A`, `de/FSK 16`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContentRating {
    /// The country or rating system the file names (`gb`, `de`, `us`), lower-case; `None`
    /// when the value stands alone (`PG-13`, `TV-MA`): the policy guesses from the value.
    pub system_hint: Option<String>,
    /// The rating itself without prefixes (`12A`, `FSK 16`, `R`).
    pub value: String,
    /// Exactly what the file said, for display and for rules that need it.
    pub raw: String,
}

impl ContentRating {
    /// Splits `gb/12A`, `de:FSK 16`, `US:PG-13`, `Rated R`, `PG-13`.
    pub fn parse(raw: &str) -> Option<ContentRating> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return None;
        }
        // Jellyfin sometimes lists several (`US:PG-13 / GB:12A`); the first one is the primary.
        let first = trimmed.split(" / ").next().unwrap_or(trimmed).trim();
        let mut hint = None;
        let mut value = first;
        if let Some((country, rest)) = first.split_once(['/', ':'])
            && (2..=3).contains(&country.trim().len())
            && country.trim().chars().all(|c| c.is_ascii_alphabetic())
            && !rest.trim().is_empty()
        {
            hint = Some(country.trim().to_ascii_lowercase());
            value = rest.trim();
        }
        for prefix in ["Rated ", "rated ", "RATED "] {
            if let Some(rest) = value.strip_prefix(prefix) {
                value = rest.trim();
            }
        }
        if value.is_empty() || value.eq_ignore_ascii_case("rated") {
            return None;
        }
        Some(ContentRating {
            system_hint: hint,
            value: value.to_owned(),
            raw: trimmed.to_owned(),
        })
    }
}

/// What a video container says about its streams.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VideoFacts {
    pub container: String,
    pub duration_ms: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub video_codec: Option<String>,
    pub audio_codecs: Vec<String>,
    /// Languages of the audio tracks, where the container says.
    pub audio_languages: Vec<String>,
    /// Subtitle tracks inside the container.
    pub subtitle_tracks: u32,
}
