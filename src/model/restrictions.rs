//! Security-sensitive: what a user other than the owner may see — allowed libraries, age
//! ceilings per kind, unrated items, label allow/deny lists and viewing hours. The checks here
//! are pure: the caller passes the item and the device's local time.
//!
//! JSON shape (API.md, `restrictions` on a user):
//! ```json
//! {
//!   "libraries": "all" | [1, 2],
//!   "max_rating": {"movies": 12, "tv": 7},
//!   "unrated": {"movies": "block", "tv": "allow"},
//!   "labels_allow": ["family"],
//!   "labels_deny": ["violence"],
//!   "schedule": [{"days": ["sat", "sun"], "from": 8, "to": 20}]
//! }
//! ```
//! Every field may be left out; a missing field means "no restriction" for it. `max_rating` is
//! an age in years (0–18): items rated for older viewers in any rating system are hidden.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

use super::ratings::{self, Rating};

/// A rating as an item carries it, before it is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRating<'a> {
    /// Country the library or the NFO suggests (`us`, `gb`, `Germany`…), if any.
    pub country: Option<&'a str>,
    /// The value as written, e.g. `PG-13`, `de/FSK 16`, `Rated R`.
    pub value: &'a str,
}

/// What policy needs to know about an item. The library maps its items into this; an
/// episode should carry its show's rating and labels when it has none of its own.
#[derive(Debug, Clone, Copy)]
pub struct ItemView<'a> {
    pub library_id: u64,
    pub kind: ItemKind,
    /// `None` when the item has no rating at all.
    pub rating: Option<RawRating<'a>>,
    pub labels: &'a [String],
}

/// Most labels in one list; more is a mistake, not a use.
pub const MAX_LABELS: usize = 256;
/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Most library ids in one grant.
pub const MAX_LIBRARIES: usize = 1024;
/// Most schedule windows.
pub const MAX_WINDOWS: usize = 64;
/// The highest age ceiling that means anything: every table's strictest rating is 18.
pub const MAX_AGE: u8 = 18;

/// Which libraries a user may open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Libraries {
    /// Every library, including ones added later.
    #[default]
    All,
    /// Only these library ids (possibly none).
    Only(BTreeSet<u64>),
}

impl Libraries {
    pub fn allows(&self, library_id: u64) -> bool {
        match self {
            Libraries::All => true,
            Libraries::Only(ids) => ids.contains(&library_id),
        }
    }
}

impl Serialize for Libraries {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Libraries::All => s.serialize_str("all"),
            Libraries::Only(ids) => ids.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Libraries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Word(String),
            Ids(Vec<u64>),
        }
        match Repr::deserialize(d).map_err(|_| {
            serde::de::Error::custom(r#"libraries must be "all" or a list of library ids"#)
        })? {
            Repr::Word(w) if w == "all" => Ok(Libraries::All),
            Repr::Word(w) => Err(serde::de::Error::custom(format!(
                r#"libraries must be "all" or a list of library ids, not {w:?}"#
            ))),
            Repr::Ids(ids) => Ok(Libraries::Only(ids.into_iter().collect())),
        }
    }
}

impl utoipa::PartialSchema for Libraries {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["all"]))
                    .description(Some("every library, including ones added later")),
            )
            .item(
                ArrayBuilder::new()
                    .items(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
                    )
                    .description(Some("only these library ids")),
            )
            .into()
    }
}

impl ToSchema for Libraries {}

/// What to do with items that have no rating (or one the table does not know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnratedRule {
    #[default]
    Allow,
    Block,
}

/// Age ceilings per kind; `None` is no ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AgeCeilings {
    /// Films and other videos.
    pub movies: Option<u8>,
    /// Shows, seasons and episodes.
    pub tv: Option<u8>,
}

/// The unrated rule per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UnratedRules {
    pub movies: UnratedRule,
    pub tv: UnratedRule,
}

/// A day of the week.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
}

/// A moment on the viewing device's wall clock. The caller supplies it (from the device's
/// reported time zone, or the server's); the decision never reads a clock itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    weekday: Weekday,
    hour: u8,
    minute: u8,
}

impl LocalTime {
    /// `None` unless `hour < 24` and `minute < 60`.
    pub fn new(weekday: Weekday, hour: u8, minute: u8) -> Option<LocalTime> {
        (hour < 24 && minute < 60).then_some(LocalTime {
            weekday,
            hour,
            minute,
        })
    }

    /// The local time at Unix second `unix_secs` in a zone `utc_offset_secs` east of UTC.
    pub fn from_unix(unix_secs: i64, utc_offset_secs: i32) -> LocalTime {
        let local = unix_secs.saturating_add(i64::from(utc_offset_secs));
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        // 1970-01-01 was a Thursday; `Weekday::ALL` starts on Monday.
        let weekday = Weekday::ALL[(days + 3).rem_euclid(7) as usize];
        LocalTime {
            weekday,
            // Both below 24 and 60 because `secs` is in 0..86_400.
            hour: (secs / 3600) as u8,
            minute: (secs % 3600 / 60) as u8,
        }
    }

    pub fn weekday(self) -> Weekday {
        self.weekday
    }
    pub fn hour(self) -> u8 {
        self.hour
    }
    pub fn minute(self) -> u8 {
        self.minute
    }
}

/// Viewing is allowed on `days` from `from:00` up to (not including) `to:00`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub days: BTreeSet<Weekday>,
    /// First allowed hour, 0–23.
    pub from: u8,
    /// Hour at which viewing stops, 1–24, after `from`. A window never crosses midnight; use
    /// two windows for late evenings.
    pub to: u8,
}

impl Window {
    pub fn contains(&self, t: LocalTime) -> bool {
        self.days.contains(&t.weekday) && self.from <= t.hour && t.hour < self.to
    }
}

/// The restrictions on one user. `Default` restricts nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Restrictions {
    pub libraries: Libraries,
    /// Age ceilings in years per kind.
    pub max_rating: AgeCeilings,
    pub unrated: UnratedRules,
    /// If not empty, only items carrying at least one of these labels are visible.
    pub labels_allow: Vec<String>,
    /// Items carrying any of these labels are hidden (wins over `labels_allow`).
    pub labels_deny: Vec<String>,
    /// If set, viewing is allowed only inside one of these windows.
    pub schedule: Option<Vec<Window>>,
}

/// The ready-made restriction sets offered when creating a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Seven and younger.
    LittleKid,
    /// Eight to twelve.
    OlderKid,
    /// Thirteen to sixteen.
    Teen,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::LittleKid, Preset::OlderKid, Preset::Teen];

    /// The oldest age rating the preset lets through.
    pub fn max_age(self) -> u8 {
        match self {
            Preset::LittleKid => 7,
            Preset::OlderKid => 12,
            Preset::Teen => 16,
        }
    }

    /// All libraries, the age ceiling for films and TV, unrated items blocked (home videos
    /// and the odd unrated cut alike: the owner can allow them), and labels that usually mark
    /// unsuitable material denied.
    pub fn restrictions(self) -> Restrictions {
        let age = Some(self.max_age());
        let deny: &[&str] = match self {
            Preset::LittleKid => &["adult", "horror", "violence"],
            Preset::OlderKid => &["adult", "horror"],
            Preset::Teen => &["adult"],
        };
        Restrictions {
            libraries: Libraries::All,
            max_rating: AgeCeilings {
                movies: age,
                tv: age,
            },
            unrated: UnratedRules {
                movies: UnratedRule::Block,
                tv: UnratedRule::Block,
            },
            labels_allow: Vec::new(),
            labels_deny: deny.iter().map(|s| (*s).to_owned()).collect(),
            schedule: None,
        }
    }
}

impl Preset {
    /// The preset whose rating, unrated and label rules these restrictions have, if any.
    /// Libraries and hours are not part of a preset: a "little kid" limited to one library
    /// in the afternoons is still a little kid.
    pub fn matching(r: &Restrictions) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| {
            let want = p.restrictions();
            r.max_rating == want.max_rating
                && r.unrated == want.unrated
                && r.labels_allow == want.labels_allow
                && r.labels_deny == want.labels_deny
        })
    }
}

/// Which rating rules apply to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Movie,
    /// Home videos, clips: rated like films, so unrated-blocking covers them too.
    Video,
    Show,
    Season,
    Episode,
    /// Music carries no film or TV ratings; only libraries and labels apply.
    Audio,
    /// Photos carry no ratings; only libraries and labels apply.
    Photo,
}

/// The kinds that have their own ceiling and unrated rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatedKind {
    Movies,
    Tv,
}

impl ItemKind {
    pub fn rated_kind(self) -> Option<RatedKind> {
        match self {
            ItemKind::Movie | ItemKind::Video => Some(RatedKind::Movies),
            ItemKind::Show | ItemKind::Season | ItemKind::Episode => Some(RatedKind::Tv),
            ItemKind::Audio | ItemKind::Photo => None,
        }
    }
}

/// Why restrictions hide an item. The client only ever sees "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    LibraryNotGranted,
    RatingAboveCeiling { min_age: u8, max_age: u8 },
    Unrated,
    UnknownRating,
    LabelDenied,
    LabelNotAllowed,
}

/// Restrictions that make no sense; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestrictionError {
    #[error(
        "an age ceiling of {0} is above {MAX_AGE}, the strictest rating there is; use 18 or leave it empty for no ceiling"
    )]
    AgeTooHigh(u8),
    #[error("a label is empty; remove it")]
    EmptyLabel,
    #[error("the label {0:?} is longer than {MAX_LABEL_CHARS} characters; shorten it")]
    LabelTooLong(String),
    #[error("a label list has more than {MAX_LABELS} labels; shorten it")]
    TooManyLabels,
    #[error("the label {0:?} is both allowed and denied; keep it in one list")]
    LabelAllowedAndDenied(String),
    #[error("more than {MAX_LIBRARIES} libraries are listed; use \"all\" instead")]
    TooManyLibraries,
    #[error(
        "the schedule has no windows, so viewing would never be allowed; remove the schedule or add a window"
    )]
    EmptySchedule,
    #[error("the schedule has more than {MAX_WINDOWS} windows; merge some")]
    TooManyWindows,
    #[error("schedule window {0} has no days; pick at least one day")]
    WindowWithoutDays(usize),
    #[error(
        "schedule window {index} runs from {from} to {to}; hours must satisfy 0 <= from < to <= 24 (use two windows to cross midnight)"
    )]
    WindowHours { index: usize, from: u8, to: u8 },
}

/// Labels compare without regard to case or surrounding spaces, in any script.
fn same_label(a: &str, b: &str) -> bool {
    a.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .eq(b.trim().chars().flat_map(char::to_lowercase))
}

fn clean_labels(labels: Vec<String>) -> Result<Vec<String>, RestrictionError> {
    if labels.len() > MAX_LABELS {
        return Err(RestrictionError::TooManyLabels);
    }
    let mut out: Vec<String> = Vec::with_capacity(labels.len());
    for label in labels {
        let label = label.trim().to_lowercase();
        if label.is_empty() {
            return Err(RestrictionError::EmptyLabel);
        }
        if label.chars().count() > MAX_LABEL_CHARS {
            return Err(RestrictionError::LabelTooLong(label));
        }
        if !out.contains(&label) {
            out.push(label);
        }
    }
    out.sort();
    Ok(out)
}

impl Restrictions {
    /// No restriction at all.
    pub fn none() -> Restrictions {
        Restrictions::default()
    }

    /// What a newly invited friend starts with: no libraries until the owner grants some.
    pub fn friend_default() -> Restrictions {
        Restrictions {
            libraries: Libraries::Only(BTreeSet::new()),
            ..Restrictions::default()
        }
    }

    /// Checks the values and returns them tidied: labels trimmed, lower-cased, deduplicated.
    /// Call this on everything that arrives from a client before storing it.
    pub fn checked(self) -> Result<Restrictions, RestrictionError> {
        for age in [self.max_rating.movies, self.max_rating.tv]
            .into_iter()
            .flatten()
        {
            if age > MAX_AGE {
                return Err(RestrictionError::AgeTooHigh(age));
            }
        }
        if let Libraries::Only(ids) = &self.libraries
            && ids.len() > MAX_LIBRARIES
        {
            return Err(RestrictionError::TooManyLibraries);
        }
        let labels_allow = clean_labels(self.labels_allow)?;
        let labels_deny = clean_labels(self.labels_deny)?;
        if let Some(both) = labels_allow.iter().find(|l| labels_deny.contains(l)) {
            return Err(RestrictionError::LabelAllowedAndDenied(both.clone()));
        }
        if let Some(windows) = &self.schedule {
            if windows.is_empty() {
                return Err(RestrictionError::EmptySchedule);
            }
            if windows.len() > MAX_WINDOWS {
                return Err(RestrictionError::TooManyWindows);
            }
            for (index, w) in windows.iter().enumerate() {
                if w.days.is_empty() {
                    return Err(RestrictionError::WindowWithoutDays(index));
                }
                if !(w.from < w.to && w.to <= 24) {
                    return Err(RestrictionError::WindowHours {
                        index,
                        from: w.from,
                        to: w.to,
                    });
                }
            }
        }
        Ok(Restrictions {
            labels_allow,
            labels_deny,
            ..self
        })
    }

    /// True if these restrictions hide nothing at any time.
    pub fn is_unrestricted(&self) -> bool {
        *self == Restrictions::default()
    }

    /// Inside the viewing hours (always, without a schedule).
    pub fn schedule_allows(&self, now: LocalTime) -> bool {
        match &self.schedule {
            None => true,
            Some(windows) => windows.iter().any(|w| w.contains(now)),
        }
    }

    /// Whether the item passes the library, label and rating rules. The schedule is separate
    /// (see [`Restrictions::schedule_allows`]) because it hides everything at once.
    pub fn check_item(&self, item: &ItemView<'_>) -> Result<(), Hidden> {
        if !self.libraries.allows(item.library_id) {
            return Err(Hidden::LibraryNotGranted);
        }
        if item
            .labels
            .iter()
            .any(|l| self.labels_deny.iter().any(|d| same_label(l, d)))
        {
            return Err(Hidden::LabelDenied);
        }
        if !self.labels_allow.is_empty()
            && !item
                .labels
                .iter()
                .any(|l| self.labels_allow.iter().any(|a| same_label(l, a)))
        {
            return Err(Hidden::LabelNotAllowed);
        }
        let Some(kind) = item.kind.rated_kind() else {
            return Ok(());
        };
        let (ceiling, unrated) = match kind {
            RatedKind::Movies => (self.max_rating.movies, self.unrated.movies),
            RatedKind::Tv => (self.max_rating.tv, self.unrated.tv),
        };
        let rating = match item.rating {
            None => Rating::Unrated,
            Some(r) => ratings::parse(r.value, r.country),
        };
        match rating {
            Rating::Rated(c) => match ceiling {
                Some(max_age) if c.min_age > max_age => Err(Hidden::RatingAboveCeiling {
                    min_age: c.min_age,
                    max_age,
                }),
                _ => Ok(()),
            },
            Rating::Unrated if unrated == UnratedRule::Block => Err(Hidden::Unrated),
            Rating::Unknown if unrated == UnratedRule::Block => Err(Hidden::UnknownRating),
            Rating::Unrated | Rating::Unknown => Ok(()),
        }
    }
}

impl fmt::Display for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hidden::LibraryNotGranted => f.write_str("its library is not shared with this user"),
            Hidden::RatingAboveCeiling { min_age, max_age } => write!(
                f,
                "it is rated for ages {min_age} and up, above this user's ceiling of {max_age}"
            ),
            Hidden::Unrated => {
                f.write_str("it has no rating and this user's unrated items are blocked")
            }
            Hidden::UnknownRating => f.write_str(
                "its rating is not in the rating table and this user's unrated items are blocked",
            ),
            Hidden::LabelDenied => f.write_str("it carries a label this user may not see"),
            Hidden::LabelNotAllowed => {
                f.write_str("it carries none of the labels this user is limited to")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item<'a>(kind: ItemKind, rating: Option<&'a str>, labels: &'a [String]) -> ItemView<'a> {
        ItemView {
            library_id: 1,
            kind,
            rating: rating.map(|value| RawRating {
                country: None,
                value,
            }),
            labels,
        }
    }

    #[test]
    fn default_json_is_unrestricted_and_round_trips() {
        let r: Restrictions = serde_json::from_str("{}").unwrap();
        assert!(r.is_unrestricted());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["libraries"], "all");
        assert_eq!(v["max_rating"]["movies"], serde_json::Value::Null);
        assert_eq!(v["unrated"]["tv"], "allow");
        let back: Restrictions = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn full_json_shape() {
        let r: Restrictions = serde_json::from_str(
            r#"{"libraries": [3, 1], "max_rating": {"movies": 12}, "unrated": {"tv": "block"},
                "labels_allow": ["Family"], "labels_deny": ["violence"],
                "schedule": [{"days": ["sat", "sun"], "from": 8, "to": 20}]}"#,
        )
        .unwrap();
        assert_eq!(r.libraries, Libraries::Only([1, 3].into()));
        assert_eq!(r.max_rating.movies, Some(12));
        assert_eq!(r.max_rating.tv, None);
        assert_eq!(r.unrated.movies, UnratedRule::Allow);
        assert_eq!(r.unrated.tv, UnratedRule::Block);
        let r = r.checked().unwrap();
        assert_eq!(r.labels_allow, ["family"]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["libraries"], serde_json::json!([1, 3]));
        assert_eq!(v["schedule"][0]["days"], serde_json::json!(["sat", "sun"]));
    }

    #[test]
    fn bad_json_is_refused_with_a_reason() {
        for (json, needle) in [
            (r#"{"libraries": "some"}"#, "libraries must be"),
            (r#"{"libraries": ["a"]}"#, "libraries must be"),
            (r#"{"libraries": [-1]}"#, "libraries must be"),
            (r#"{"max_rating": {"movies": "PG"}}"#, "invalid type"),
            (r#"{"max_rating": {"films": 12}}"#, "unknown field"),
            (r#"{"unrated": {"movies": "maybe"}}"#, "unknown variant"),
            (
                r#"{"schedule": [{"days": ["funday"], "from": 1, "to": 2}]}"#,
                "unknown variant",
            ),
            (r#"{"max_age": 3}"#, "unknown field"),
            (r#"{"max_rating": {"movies": 300}}"#, "invalid value"),
        ] {
            let err = serde_json::from_str::<Restrictions>(json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn checked_refuses_nonsense_and_tidies_labels() {
        let base = Restrictions::none();
        let cases: Vec<(Restrictions, RestrictionError)> = vec![
            (
                Restrictions {
                    max_rating: AgeCeilings {
                        movies: None,
                        tv: Some(19),
                    },
                    ..base.clone()
                },
                RestrictionError::AgeTooHigh(19),
            ),
            (
                Restrictions {
                    labels_deny: vec!["  ".into()],
                    ..base.clone()
                },
                RestrictionError::EmptyLabel,
            ),
            (
                Restrictions {
                    labels_deny: vec!["x".repeat(65)],
                    ..base.clone()
                },
                RestrictionError::LabelTooLong("x".repeat(65)),
            ),
            (
                Restrictions {
                    labels_allow: (0..=MAX_LABELS).map(|i| i.to_string()).collect(),
                    ..base.clone()
                },
                RestrictionError::TooManyLabels,
            ),
            (
                Restrictions {
                    labels_allow: vec!["Noir".into()],
                    labels_deny: vec!["NOIR ".into()],
                    ..base.clone()
                },
                RestrictionError::LabelAllowedAndDenied("noir".into()),
            ),
            (
                Restrictions {
                    libraries: Libraries::Only((0..=MAX_LIBRARIES as u64).collect()),
                    ..base.clone()
                },
                RestrictionError::TooManyLibraries,
            ),
            (
                Restrictions {
                    schedule: Some(vec![]),
                    ..base.clone()
                },
                RestrictionError::EmptySchedule,
            ),
            (
                Restrictions {
                    schedule: Some(vec![
                        Window {
                            days: [Weekday::Mon].into(),
                            from: 0,
                            to: 1
                        };
                        MAX_WINDOWS + 1
                    ]),
                    ..base.clone()
                },
                RestrictionError::TooManyWindows,
            ),
            (
                Restrictions {
                    schedule: Some(vec![Window {
                        days: BTreeSet::new(),
                        from: 0,
                        to: 1,
                    }]),
                    ..base.clone()
                },
                RestrictionError::WindowWithoutDays(0),
            ),
            (
                Restrictions {
                    schedule: Some(vec![
                        Window {
                            days: [Weekday::Mon].into(),
                            from: 8,
                            to: 9,
                        },
                        Window {
                            days: [Weekday::Mon].into(),
                            from: 22,
                            to: 2,
                        },
                    ]),
                    ..base.clone()
                },
                RestrictionError::WindowHours {
                    index: 1,
                    from: 22,
                    to: 2,
                },
            ),
            (
                Restrictions {
                    schedule: Some(vec![Window {
                        days: [Weekday::Mon].into(),
                        from: 20,
                        to: 25,
                    }]),
                    ..base.clone()
                },
                RestrictionError::WindowHours {
                    index: 0,
                    from: 20,
                    to: 25,
                },
            ),
        ];
        for (r, want) in cases {
            assert_eq!(r.clone().checked(), Err(want.clone()), "{r:?}");
            assert!(!want.to_string().is_empty());
        }
        let tidy = Restrictions {
            labels_deny: vec![" Violence".into(), "violence".into(), "Horror".into()],
            max_rating: AgeCeilings {
                movies: Some(18),
                tv: Some(0),
            },
            ..base
        }
        .checked()
        .unwrap();
        assert_eq!(tidy.labels_deny, ["horror", "violence"]);
        for p in Preset::ALL {
            assert_eq!(p.restrictions().checked(), Ok(p.restrictions()), "{p:?}");
        }
    }

    #[test]
    fn local_time_from_unix() {
        // 2026-11-23 19:14:24 UTC is a Monday.
        let t = LocalTime::from_unix(1_795_461_264, 0);
        assert_eq!((t.weekday(), t.hour(), t.minute()), (Weekday::Mon, 19, 14));
        // Five hours later in UTC+5 it is already Tuesday 00:14.
        let t = LocalTime::from_unix(1_795_461_264, 5 * 3600);
        assert_eq!((t.weekday(), t.hour(), t.minute()), (Weekday::Tue, 0, 14));
        // The epoch was a Thursday; a second before it, Wednesday 23:59 UTC.
        assert_eq!(LocalTime::from_unix(0, 0).weekday(), Weekday::Thu);
        let t = LocalTime::from_unix(-1, 0);
        assert_eq!((t.weekday(), t.hour(), t.minute()), (Weekday::Wed, 23, 59));
        // A west-of-UTC zone goes back a day.
        let t = LocalTime::from_unix(0, -3600);
        assert_eq!((t.weekday(), t.hour()), (Weekday::Wed, 23));
        assert!(LocalTime::new(Weekday::Mon, 24, 0).is_none());
        assert!(LocalTime::new(Weekday::Mon, 23, 60).is_none());
        // Extreme inputs do not panic.
        let _ = LocalTime::from_unix(i64::MAX, i32::MAX);
        let _ = LocalTime::from_unix(i64::MIN, i32::MIN);
    }

    #[test]
    fn schedule_windows_are_half_open_and_per_day() {
        let r = Restrictions {
            schedule: Some(vec![
                Window {
                    days: [
                        Weekday::Mon,
                        Weekday::Tue,
                        Weekday::Wed,
                        Weekday::Thu,
                        Weekday::Fri,
                    ]
                    .into(),
                    from: 7,
                    to: 19,
                },
                Window {
                    days: [Weekday::Sat, Weekday::Sun].into(),
                    from: 9,
                    to: 24,
                },
            ]),
            ..Restrictions::none()
        };
        let at = |d, h, m| r.schedule_allows(LocalTime::new(d, h, m).unwrap());
        assert!(!at(Weekday::Mon, 6, 59));
        assert!(at(Weekday::Mon, 7, 0));
        assert!(at(Weekday::Fri, 18, 59));
        assert!(!at(Weekday::Fri, 19, 0));
        assert!(!at(Weekday::Sat, 8, 59));
        assert!(at(Weekday::Sat, 9, 0));
        assert!(at(Weekday::Sun, 23, 59));
        assert!(!at(Weekday::Sun, 0, 30));
        assert!(Restrictions::none().schedule_allows(LocalTime::new(Weekday::Sun, 3, 0).unwrap()));
    }

    #[test]
    fn labels_compare_case_insensitively_in_any_script() {
        let r = Restrictions {
            labels_deny: vec!["Gewalt".into(), "ÉPOUVANTE".into()],
            ..Restrictions::none()
        };
        let l = |s: &str| vec![s.to_owned()];
        for (labels, hidden) in [
            (l("gewalt"), true),
            (l(" GEWALT "), true),
            (l("épouvante"), true),
            (l("epouvante"), false),
            (l("gewalten"), false),
            (vec![], false),
        ] {
            let got = r.check_item(&item(ItemKind::Movie, Some("G"), &labels));
            assert_eq!(got.is_err(), hidden, "{labels:?}");
        }
    }

    #[test]
    fn ratings_only_apply_to_films_and_tv() {
        let r = Preset::LittleKid.restrictions();
        for (kind, rating, want) in [
            (ItemKind::Movie, None, Err(Hidden::Unrated)),
            (ItemKind::Video, None, Err(Hidden::Unrated)),
            (ItemKind::Episode, None, Err(Hidden::Unrated)),
            (ItemKind::Show, Some("TV-Y7"), Ok(())),
            (
                ItemKind::Season,
                Some("TV-PG"),
                Err(Hidden::RatingAboveCeiling {
                    min_age: 10,
                    max_age: 7,
                }),
            ),
            (ItemKind::Audio, None, Ok(())),
            (ItemKind::Photo, None, Ok(())),
            (ItemKind::Photo, Some("R"), Ok(())),
            (ItemKind::Movie, Some("Rated G"), Ok(())),
            (
                ItemKind::Movie,
                Some("PG"),
                Err(Hidden::RatingAboveCeiling {
                    min_age: 10,
                    max_age: 7,
                }),
            ),
            (ItemKind::Movie, Some("PG-14"), Err(Hidden::UnknownRating)),
            (ItemKind::Movie, Some("NR"), Err(Hidden::Unrated)),
        ] {
            assert_eq!(
                r.check_item(&item(kind, rating, &[])),
                want,
                "{kind:?} {rating:?}"
            );
        }
    }

    #[test]
    fn presets_are_recognised_whatever_the_libraries_and_hours() {
        for p in Preset::ALL {
            let mut r = p.restrictions();
            assert_eq!(Preset::matching(&r), Some(p));
            r.libraries = Libraries::Only([1].into());
            r.schedule = Some(vec![Window {
                days: [Weekday::Sat].into(),
                from: 9,
                to: 12,
            }]);
            assert_eq!(
                Preset::matching(&r),
                Some(p),
                "{p:?} with libraries and hours"
            );
            r.max_rating.tv = Some(3);
            assert_eq!(Preset::matching(&r), None, "{p:?} with a changed ceiling");
        }
        assert_eq!(Preset::matching(&Restrictions::none()), None);
        let mut r = Preset::Teen.restrictions();
        r.unrated.movies = UnratedRule::Allow;
        assert_eq!(Preset::matching(&r), None);
        let mut r = Preset::Teen.restrictions();
        r.labels_deny.push("gore".into());
        assert_eq!(Preset::matching(&r), None);
    }

    #[test]
    fn movie_and_tv_rules_are_separate() {
        let r = Restrictions {
            max_rating: AgeCeilings {
                movies: Some(12),
                tv: None,
            },
            unrated: UnratedRules {
                movies: UnratedRule::Allow,
                tv: UnratedRule::Block,
            },
            ..Restrictions::none()
        };
        assert!(
            r.check_item(&item(ItemKind::Movie, Some("R"), &[]))
                .is_err()
        );
        assert!(
            r.check_item(&item(ItemKind::Episode, Some("TV-MA"), &[]))
                .is_ok()
        );
        assert!(r.check_item(&item(ItemKind::Movie, None, &[])).is_ok());
        assert!(
            r.check_item(&item(ItemKind::Movie, Some("??"), &[]))
                .is_ok()
        );
        assert_eq!(
            r.check_item(&item(ItemKind::Episode, None, &[])),
            Err(Hidden::Unrated)
        );
        assert_eq!(
            r.check_item(&item(ItemKind::Episode, Some("jp/G"), &[])),
            Err(Hidden::UnknownRating)
        );
    }
}
