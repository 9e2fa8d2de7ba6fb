//! Security-sensitive: content ratings from several countries, mapped to the age a viewer must
//! have reached. A rating this table does not know is [`Rating::Unknown`], never "unrated", so
//! a typo or a foreign certificate cannot slip past a child's ceiling.
//!
//! Values come from Kodi/Jellyfin NFO `<mpaa>` fields and scrapers, in forms such as `PG-13`,
//! `Rated R`, `Rated R for violence`, `gb/12A`, `uk:15`, `de/FSK 16`, `FSK16`, `DE-16`,
//! `it/VM14`, `Kijkwijzer 12`, `au/MA15+`, `se/15`, `USA:PG-13`, or a plain value with the
//! country given separately as a hint.

use serde::Serialize;

/// A country's rating system. Ages follow each board's own wording; where a rating is only
/// advisory (BBFC PG, AU M) the age is the one the board says it is suitable from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RatingSystem {
    /// Motion Picture Association film ratings (United States).
    UsMpaa,
    /// TV Parental Guidelines (United States).
    UsTv,
    /// British Board of Film Classification (United Kingdom).
    UkBbfc,
    /// Freiwillige Selbstkontrolle der Filmwirtschaft (Germany).
    DeFsk,
    /// Centre national du cinéma visas (France).
    Fr,
    /// Kijkwijzer (the Netherlands).
    NlKijkwijzer,
    /// Australian Classification Board.
    Au,
    /// Canadian Home Video Rating System.
    Ca,
    /// Italian film classification, including the older VM14/VM18 forms.
    It,
    /// Swedish Media Council (Statens medieråd).
    Se,
}

/// Systems tried, in this order, for a value that carries no country at all: the US first
/// because Kodi and most scrapers write bare US ratings, then the others. Bare numbers mean the
/// same age in every system that uses them, so the order never changes the age of a number.
const PRIORITY: [RatingSystem; 10] = [
    RatingSystem::UsMpaa,
    RatingSystem::UsTv,
    RatingSystem::UkBbfc,
    RatingSystem::Au,
    RatingSystem::Ca,
    RatingSystem::It,
    RatingSystem::Se,
    RatingSystem::NlKijkwijzer,
    RatingSystem::Fr,
    RatingSystem::DeFsk,
];

/// One row of the table: the code as the board writes it, the normalised forms it is found
/// in (see [`normalise`]) and the minimum age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Classification {
    pub system: RatingSystem,
    /// The code as the rating board writes it, e.g. `PG-13`, `12A`, `MA15+`.
    pub code: &'static str,
    /// The youngest age this rating is meant for.
    pub min_age: u8,
}

struct Row {
    code: &'static str,
    forms: &'static [&'static str],
    min_age: u8,
}

const fn row(code: &'static str, forms: &'static [&'static str], min_age: u8) -> Row {
    Row {
        code,
        forms,
        min_age,
    }
}

const US_MPAA: &[Row] = &[
    row("G", &["G"], 0),
    row("PG", &["PG"], 10),
    row("PG-13", &["PG13"], 13),
    row("R", &["R"], 17),
    row("NC-17", &["NC17"], 18),
    row("X", &["X"], 18),
];

const US_TV: &[Row] = &[
    row("TV-Y", &["TVY"], 0),
    row("TV-G", &["TVG"], 0),
    row("TV-Y7", &["TVY7"], 7),
    row("TV-Y7-FV", &["TVY7FV"], 7),
    row("TV-PG", &["TVPG"], 10),
    row("TV-14", &["TV14"], 14),
    row("TV-MA", &["TVMA"], 17),
];

const UK_BBFC: &[Row] = &[
    row("U", &["U"], 0),
    row("Uc", &["UC"], 0),
    row("PG", &["PG"], 8),
    row("12A", &["12A"], 12),
    row("12", &["12"], 12),
    row("15", &["15"], 15),
    row("18", &["18"], 18),
    row("R18", &["R18"], 18),
];

const DE_FSK: &[Row] = &[
    row("FSK 0", &["0", "OHNEALTERSBESCHRÄNKUNG"], 0),
    row("FSK 6", &["6"], 6),
    row("FSK 12", &["12"], 12),
    row("FSK 16", &["16"], 16),
    row("FSK 18", &["18", "KEINEJUGENDFREIGABE"], 18),
];

const FR: &[Row] = &[
    row("U", &["U", "TP", "U/TP", "TOUSPUBLICS"], 0),
    row("10", &["10"], 10),
    row("12", &["12"], 12),
    row("16", &["16"], 16),
    row("18", &["18"], 18),
];

const NL_KIJKWIJZER: &[Row] = &[
    row("AL", &["AL"], 0),
    row("6", &["6"], 6),
    row("9", &["9"], 9),
    row("12", &["12"], 12),
    row("14", &["14"], 14),
    row("16", &["16"], 16),
    row("18", &["18"], 18),
];

const AU: &[Row] = &[
    row("G", &["G"], 0),
    row("E", &["E"], 0),
    row("PG", &["PG"], 8),
    row("M", &["M"], 15),
    row("MA15+", &["MA15+", "MA15", "MA"], 15),
    row("R18+", &["R18+", "R18", "R"], 18),
    row("X18+", &["X18+", "X18", "X"], 18),
    // Refused Classification: may not be sold at all; treated as the strictest age.
    row("RC", &["RC"], 18),
];

const CA: &[Row] = &[
    row("G", &["G"], 0),
    // Exempt: educational, sports, music and similar material the board does not rate.
    row("E", &["E"], 0),
    row("PG", &["PG"], 8),
    row("14A", &["14A"], 14),
    row("18A", &["18A"], 18),
    row("R", &["R"], 18),
];

const IT: &[Row] = &[
    row("T", &["T"], 0),
    row("VM6", &["VM6", "6+"], 6),
    row("VM14", &["VM14", "14+"], 14),
    row("VM18", &["VM18", "18+"], 18),
];

const SE: &[Row] = &[
    row("Btl", &["BTL", "BARNTILLÅTEN"], 0),
    row("7", &["7"], 7),
    row("11", &["11"], 11),
    row("15", &["15"], 15),
];

/// Normalised words that mean "this item has no rating" in any country.
const UNRATED_WORDS: &[&str] = &["NR", "NOTRATED", "UNRATED", "UR", "TVNR", "UNCLASSIFIED"];

/// Longest value looked at; anything longer is not a rating.
const MAX_RAW_LEN: usize = 200;

impl RatingSystem {
    pub const ALL: [RatingSystem; 10] = PRIORITY;

    /// The name a person knows the system by.
    pub fn name(self) -> &'static str {
        match self {
            RatingSystem::UsMpaa => "US MPA (films)",
            RatingSystem::UsTv => "US TV Parental Guidelines",
            RatingSystem::UkBbfc => "UK BBFC",
            RatingSystem::DeFsk => "Germany FSK",
            RatingSystem::Fr => "France",
            RatingSystem::NlKijkwijzer => "Netherlands Kijkwijzer",
            RatingSystem::Au => "Australia",
            RatingSystem::Ca => "Canada",
            RatingSystem::It => "Italy",
            RatingSystem::Se => "Sweden",
        }
    }

    /// The ISO 3166 code of the country (`gb` for the United Kingdom).
    pub fn country(self) -> &'static str {
        match self {
            RatingSystem::UsMpaa | RatingSystem::UsTv => "us",
            RatingSystem::UkBbfc => "gb",
            RatingSystem::DeFsk => "de",
            RatingSystem::Fr => "fr",
            RatingSystem::NlKijkwijzer => "nl",
            RatingSystem::Au => "au",
            RatingSystem::Ca => "ca",
            RatingSystem::It => "it",
            RatingSystem::Se => "se",
        }
    }

    fn rows(self) -> &'static [Row] {
        match self {
            RatingSystem::UsMpaa => US_MPAA,
            RatingSystem::UsTv => US_TV,
            RatingSystem::UkBbfc => UK_BBFC,
            RatingSystem::DeFsk => DE_FSK,
            RatingSystem::Fr => FR,
            RatingSystem::NlKijkwijzer => NL_KIJKWIJZER,
            RatingSystem::Au => AU,
            RatingSystem::Ca => CA,
            RatingSystem::It => IT,
            RatingSystem::Se => SE,
        }
    }

    /// Every rating of this system, mildest first, for pickers in the UI.
    pub fn ratings(self) -> impl Iterator<Item = Classification> {
        self.rows().iter().map(move |r| Classification {
            system: self,
            code: r.code,
            min_age: r.min_age,
        })
    }

    fn lookup(self, normalised: &str) -> Option<Classification> {
        self.rows()
            .iter()
            .find(|r| r.forms.contains(&normalised))
            .map(|r| Classification {
                system: self,
                code: r.code,
                min_age: r.min_age,
            })
    }
}

/// The countries whose rating tables Hearth has, as (ISO code, name), for the owner's choice
/// of which names the restrictions editor shows.
pub const COUNTRIES: [(&str, &str); 9] = [
    ("us", "United States"),
    ("gb", "United Kingdom"),
    ("de", "Germany"),
    ("fr", "France"),
    ("nl", "Netherlands"),
    ("au", "Australia"),
    ("ca", "Canada"),
    ("it", "Italy"),
    ("se", "Sweden"),
];

/// The systems a country rates films and TV with: `(films, tv)`. Only the United States has
/// a separate TV table; elsewhere one board rates both.
pub fn systems_for_country(code: &str) -> Option<(RatingSystem, RatingSystem)> {
    let systems = country(&normalise(code))?;
    match systems {
        [films, tv] => Some((*films, *tv)),
        [one] => Some((*one, *one)),
        _ => None,
    }
}

/// What a raw rating value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rating {
    /// Found in the table.
    Rated(Classification),
    /// No rating at all: an empty value, or `NR`, `Not Rated`, `Unrated`.
    Unrated,
    /// Something that looks like a rating but is not in the table (an unknown country, a typo,
    /// a code of another system). Never treated as unrated.
    Unknown,
}

impl Rating {
    /// The minimum age, if the rating is known.
    pub fn min_age(self) -> Option<u8> {
        match self {
            Rating::Rated(c) => Some(c.min_age),
            Rating::Unrated | Rating::Unknown => None,
        }
    }
}

/// Where the value said (or the hint said) the rating comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Country(&'static [RatingSystem]),
    System(RatingSystem),
}

/// Country names and codes as they appear in NFO files and scraper output.
fn country(word: &str) -> Option<&'static [RatingSystem]> {
    use RatingSystem::*;
    let systems: &'static [RatingSystem] = match word {
        "US" | "USA" | "UNITEDSTATES" => &[UsMpaa, UsTv],
        "GB" | "UK" | "UNITEDKINGDOM" | "GREATBRITAIN" => &[UkBbfc],
        "DE" | "GERMANY" | "DEUTSCHLAND" => &[DeFsk],
        "FR" | "FRANCE" => &[Fr],
        "NL" | "NETHERLANDS" | "NEDERLAND" | "HOLLAND" => &[NlKijkwijzer],
        "AU" | "AUSTRALIA" => &[Au],
        "CA" | "CANADA" => &[Ca],
        "IT" | "ITALY" | "ITALIA" => &[It],
        "SE" | "SWEDEN" | "SVERIGE" => &[Se],
        _ => return None,
    };
    Some(systems)
}

/// Board names written in front of a code, as in `FSK 16`, `Kijkwijzer 12`, `BBFC 15`.
const SYSTEM_PREFIXES: &[(&str, RatingSystem)] = &[
    ("FSKAB", RatingSystem::DeFsk),
    ("FSK", RatingSystem::DeFsk),
    ("KIJKWIJZER", RatingSystem::NlKijkwijzer),
    ("BBFC", RatingSystem::UkBbfc),
    ("MPAA", RatingSystem::UsMpaa),
    ("MPA", RatingSystem::UsMpaa),
];

/// Upper-cases and drops spaces, dashes, dots and underscores, so `PG-13`, `pg 13` and
/// `PG13` are the same; keeps `+` (AU `MA15+`) and letters outside ASCII (`Barntillåten`).
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.' | '\t'))
        .flat_map(char::to_uppercase)
        .collect()
}

/// Drops a leading `Rated` and a trailing MPA reason (`Rated R for violence` → `R`).
fn strip_rated(s: &str) -> &str {
    let t = s.trim();
    let Some(head) = t.get(..6) else { return t };
    if !head.eq_ignore_ascii_case("rated ") {
        return t;
    }
    let rest = t[6..].trim_start();
    match rest.to_ascii_lowercase().find(" for ") {
        // `find` on the ASCII-lowercased copy gives a byte offset valid in `rest` too,
        // because ASCII lowercasing keeps every byte where it was.
        Some(i) => rest[..i].trim_end(),
        None => rest,
    }
}

/// Parses a raw rating value. `country_hint` (an ISO code or country name, e.g. from the
/// library's settings or the NFO's `<country>`) picks the system for plain values; a country
/// or board written in the value itself wins over the hint.
pub fn parse(raw: &str, country_hint: Option<&str>) -> Rating {
    if raw.len() > MAX_RAW_LEN {
        return Rating::Unknown;
    }
    let value = strip_rated(raw);
    if value.is_empty() {
        return Rating::Unrated;
    }

    // An explicit country or board: `DE-16`, `gb/12A`, `uk:15`, `USA:PG-13`, `FSK:16`.
    let mut origin = None;
    let mut code = value;
    if let Some((left, right)) = value.split_once('-')
        && left.len() == 2
        && let Some(systems) = country(&left.to_ascii_uppercase())
    {
        // Jellyfin's `DE-16`, `GB-15`. No code in the table starts with a two-letter
        // country code and a dash (`TV-` is not one of ours), so this cannot misread one.
        origin = Some(Origin::Country(systems));
        code = right;
    } else if let Some((left, right)) = value.split_once(['/', ':']) {
        let left = normalise(left);
        if let Some(systems) = country(&left) {
            origin = Some(Origin::Country(systems));
        } else if let Some(&(_, system)) = SYSTEM_PREFIXES.iter().find(|(p, _)| *p == left) {
            origin = Some(Origin::System(system));
        }
        // Otherwise the slash belongs to the code itself (France's `U/TP`); an unknown
        // country such as `jp/G` then matches no row and stays unknown.
        if origin.is_some() {
            code = strip_rated(right);
        }
    }

    let mut code = normalise(code);
    if code.is_empty() {
        return Rating::Unrated;
    }
    if UNRATED_WORDS.contains(&code.as_str()) {
        return Rating::Unrated;
    }
    // A board name written in front of the code: `FSK 16`, `FSK ab 12`, `Kijkwijzer 12`.
    if let Some(&(prefix, system)) = SYSTEM_PREFIXES
        .iter()
        .find(|(p, _)| code.len() > p.len() && code.starts_with(p))
    {
        match origin {
            Some(Origin::Country(systems)) if !systems.contains(&system) => {
                return Rating::Unknown;
            }
            Some(Origin::System(s)) if s != system => return Rating::Unknown,
            _ => {}
        }
        origin = Some(Origin::System(system));
        code = code[prefix.len()..].to_owned();
        if UNRATED_WORDS.contains(&code.as_str()) {
            return Rating::Unrated;
        }
    }

    let found = match origin {
        // Written in the value: only that country's or board's table counts.
        Some(Origin::System(system)) => system.lookup(&code),
        Some(Origin::Country(systems)) => systems.iter().find_map(|s| s.lookup(&code)),
        None => {
            // The hint picks the system first; a value the hinted country does not use is
            // still read by the others (the hint is a library default, not a promise).
            let hinted = country_hint
                .map(normalise)
                .and_then(|h| country(&h))
                .unwrap_or(&[]);
            hinted
                .iter()
                .chain(PRIORITY.iter())
                .find_map(|s| s.lookup(&code))
        }
    };
    match found {
        Some(c) => Rating::Rated(c),
        None => Rating::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_country_has_its_tables() {
        for (cc, _) in COUNTRIES {
            let (films, tv) = systems_for_country(cc).unwrap();
            assert_eq!(films.country(), cc);
            assert_eq!(tv.country(), cc);
        }
        assert_eq!(
            systems_for_country("us"),
            Some((RatingSystem::UsMpaa, RatingSystem::UsTv))
        );
        assert_eq!(
            systems_for_country("UK").map(|s| s.0),
            Some(RatingSystem::UkBbfc)
        );
        assert_eq!(systems_for_country("jp"), None);
    }

    #[test]
    fn every_row_reads_back_as_itself() {
        // Each code as the board writes it, with its own country, reads as that row.
        for system in RatingSystem::ALL {
            for c in system.ratings() {
                let got = parse(c.code, Some(system.country()));
                assert_eq!(got, Rating::Rated(c), "{} {}", system.name(), c.code);
                let prefixed = format!("{}/{}", system.country(), c.code);
                assert_eq!(parse(&prefixed, None), Rating::Rated(c), "{prefixed}");
            }
        }
    }

    #[test]
    fn ages_never_decrease_within_a_system() {
        // The table lists ratings mildest first; a slip that puts a milder rating after a
        // stricter one usually means a wrong age.
        for system in RatingSystem::ALL {
            let ages: Vec<u8> = system.ratings().map(|c| c.min_age).collect();
            assert!(
                ages.windows(2).all(|w| w[0] <= w[1]),
                "{system:?}: {ages:?}"
            );
        }
    }

    #[test]
    fn overlong_values_are_unknown() {
        let long = format!("PG {}", "x".repeat(MAX_RAW_LEN));
        assert_eq!(parse(&long, None), Rating::Unknown);
    }

    #[test]
    fn strip_rated_keeps_multibyte_text_intact() {
        assert_eq!(strip_rated("Rated PG-13 for ünusual violence"), "PG-13");
        assert_eq!(strip_rated("Rated"), "Rated");
        assert_eq!(strip_rated("Räted R"), "Räted R");
    }
}
