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

/// How titles sort: lower-case, without a leading English article (`The Matrix` → `matrix`).
pub fn sort_key(title: &str) -> String {
    let lower = title.trim().to_lowercase();
    for article in ["the ", "a ", "an "] {
        if let Some(rest) = lower.strip_prefix(article)
            && !rest.is_empty()
        {
            return rest.to_owned();
        }
    }
    lower
}

/// Longest title an override may set, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most labels an override may set.
pub const MAX_OVERRIDE_LABELS: usize = 64;
/// Longest label, in characters (the same limit restrictions use).
pub const MAX_OVERRIDE_LABEL_CHARS: usize = 64;

/// The owner's corrections of what the scanner found in an item's files: Hearth keeps them in
/// its database and never writes them into the media folders. A field left `None` keeps the
/// scanned value. Policy judges the item with these applied, everywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ItemOverride {
    pub title: Option<String>,
    pub year: Option<u16>,
    /// A rating from one of the tables, written with its country: `us/PG-13`, `gb/12A`,
    /// `de/FSK 6`. Stored in that canonical form.
    pub rating: Option<String>,
    /// Replaces the item's labels (its NFO tags) entirely.
    pub labels: Option<Vec<String>>,
}

/// What is wrong with an override; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("the title is empty; type a title or leave it as scanned")]
    EmptyTitle,
    #[error("the title is longer than {MAX_TITLE_CHARS} characters; shorten it")]
    TitleTooLong,
    #[error("the year {0} is not between 1870 and 2200")]
    Year(u16),
    #[error(
        "{0:?} is not a rating Hearth knows; pick one from the list (for example us/PG-13 or gb/12A)"
    )]
    UnknownRating(String),
    #[error("a label is empty; remove it")]
    EmptyLabel,
    #[error("the label {0:?} is longer than {MAX_OVERRIDE_LABEL_CHARS} characters; shorten it")]
    LabelTooLong(String),
    #[error("more than {MAX_OVERRIDE_LABELS} labels; keep fewer")]
    TooManyLabels,
}

impl ItemOverride {
    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == ItemOverride::default()
    }

    /// Checks the values and returns them tidied: the title trimmed, the rating in its
    /// canonical `country/CODE` form, labels trimmed, lower-cased, deduplicated and sorted.
    pub fn checked(self) -> Result<ItemOverride, OverrideError> {
        let title = match self.title {
            None => None,
            Some(t) => {
                let t = t.trim().to_owned();
                if t.is_empty() {
                    return Err(OverrideError::EmptyTitle);
                }
                if t.chars().count() > MAX_TITLE_CHARS {
                    return Err(OverrideError::TitleTooLong);
                }
                Some(t)
            }
        };
        if let Some(y) = self.year
            && !(1870..=2200).contains(&y)
        {
            return Err(OverrideError::Year(y));
        }
        let rating = match self.rating {
            None => None,
            Some(r) => match super::ratings::parse(&r, None) {
                super::ratings::Rating::Rated(c) => {
                    Some(format!("{}/{}", c.system.country(), c.code))
                }
                _ => return Err(OverrideError::UnknownRating(r)),
            },
        };
        let labels = match self.labels {
            None => None,
            Some(list) => {
                if list.len() > MAX_OVERRIDE_LABELS {
                    return Err(OverrideError::TooManyLabels);
                }
                let mut out: Vec<String> = Vec::with_capacity(list.len());
                for l in list {
                    let l = l.trim().to_lowercase();
                    if l.is_empty() {
                        return Err(OverrideError::EmptyLabel);
                    }
                    if l.chars().count() > MAX_OVERRIDE_LABEL_CHARS {
                        return Err(OverrideError::LabelTooLong(l));
                    }
                    out.push(l);
                }
                out.sort();
                out.dedup();
                Some(out)
            }
        };
        Ok(ItemOverride {
            title,
            year: self.year,
            rating,
            labels,
        })
    }

    /// `other`'s fields where it has them, ours elsewhere (bulk edits set a few fields).
    pub fn merged(self, other: ItemOverride) -> ItemOverride {
        ItemOverride {
            title: other.title.or(self.title),
            year: other.year.or(self.year),
            rating: other.rating.or(self.rating),
            labels: other.labels.or(self.labels),
        }
    }
}

/// The scanned values an override replaced, kept so the override can be undone without a
/// rescan and shown next to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScannedFacts {
    pub title: String,
    pub sort_title: String,
    pub year: Option<u16>,
    pub rating: Option<ContentRating>,
    pub tags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_checked_and_tidied() {
        let ok = ItemOverride {
            title: Some("  Home Reel ".into()),
            year: Some(2019),
            rating: Some("PG-13".into()),
            labels: Some(vec![" Family".into(), "family".into(), "Cartoon".into()]),
        }
        .checked()
        .unwrap();
        assert_eq!(ok.title.as_deref(), Some("Home Reel"));
        assert_eq!(ok.rating.as_deref(), Some("us/PG-13"));
        assert_eq!(ok.labels.unwrap(), ["cartoon", "family"]);
        for (raw, want) in [
            ("gb/12A", "gb/12A"),
            ("de/FSK 6", "de/FSK 6"),
            ("TV-Y7", "us/TV-Y7"),
        ] {
            let o = ItemOverride {
                rating: Some(raw.into()),
                ..ItemOverride::default()
            };
            assert_eq!(o.checked().unwrap().rating.as_deref(), Some(want), "{raw}");
        }
        let bad = |o: ItemOverride| o.checked().unwrap_err();
        let d = ItemOverride::default;
        assert_eq!(
            bad(ItemOverride {
                title: Some(" ".into()),
                ..d()
            }),
            OverrideError::EmptyTitle
        );
        assert_eq!(
            bad(ItemOverride {
                title: Some("x".repeat(201)),
                ..d()
            }),
            OverrideError::TitleTooLong
        );
        assert_eq!(
            bad(ItemOverride {
                year: Some(3000),
                ..d()
            }),
            OverrideError::Year(3000)
        );
        for r in ["NR", "", "PG-14", "jp/G", "unrated"] {
            assert_eq!(
                bad(ItemOverride {
                    rating: Some(r.into()),
                    ..d()
                }),
                OverrideError::UnknownRating(r.into()),
                "{r}"
            );
        }
        assert_eq!(
            bad(ItemOverride {
                labels: Some(vec!["".into()]),
                ..d()
            }),
            OverrideError::EmptyLabel
        );
        assert_eq!(
            bad(ItemOverride {
                labels: Some((0..65).map(|i| i.to_string()).collect()),
                ..d()
            }),
            OverrideError::TooManyLabels
        );
    }

    #[test]
    fn sort_keys_drop_articles() {
        assert_eq!(sort_key("The Matrix"), "matrix");
        assert_eq!(sort_key("A Bug's Life"), "bug's life");
        assert_eq!(sort_key("Anatomy"), "anatomy");
        assert_eq!(sort_key("The"), "the");
    }
}
