//! What a file name says about its media: `Title (Year)`, scene names
//! (`Title.Year.1080p.BluRay.x264-GRP`), episodes (`Show - S01E02 - Name`, `1x02`,
//! `Show 2024-03-01`), multi-part films (`- part1`, `cd2`, `pt2`) and music tracks
//! (`NN - Track`). Pure functions on strings; the scanner combines them with NFO sidecars.

/// A film's name as its file (or folder) spells it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MovieName {
    pub title: String,
    pub year: Option<u16>,
    /// `part1`, `cd2`, `pt2`: one film split over several files.
    pub part: Option<u32>,
}

/// An episode's name; the show may come from the folder instead.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EpisodeName {
    /// The show as the file names it, if it does.
    pub show: Option<String>,
    pub season: Option<u32>,
    pub episode: Option<u32>,
    /// Last episode of a multi-episode file (`S01E01-E02`).
    pub episode_end: Option<u32>,
    /// `YYYY-MM-DD` for dated episodes (news, talk shows).
    pub air_date: Option<String>,
    /// The episode's own name, if the file carries one.
    pub title: Option<String>,
}

/// A music track's name: `01 - Dawn`, `1-03 Dusk`, `07. Song`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackName {
    pub disc: Option<u32>,
    pub number: Option<u32>,
    pub title: String,
}

/// Words that start the technical tail of a scene name; the title ends before them.
const JUNK: &[&str] = &[
    "480p",
    "576p",
    "720p",
    "1080p",
    "1080i",
    "2160p",
    "4k",
    "uhd",
    "bluray",
    "blu-ray",
    "bdrip",
    "brrip",
    "bdremux",
    "remux",
    "webrip",
    "web-dl",
    "webdl",
    "web",
    "hdtv",
    "hdrip",
    "dvdrip",
    "dvdscr",
    "dvd",
    "xvid",
    "divx",
    "x264",
    "x265",
    "h264",
    "h.264",
    "h265",
    "h.265",
    "hevc",
    "avc",
    "aac",
    "aac2.0",
    "ac3",
    "dts",
    "dts-hd",
    "truehd",
    "atmos",
    "ddp5.1",
    "dd5.1",
    "10bit",
    "8bit",
    "hdr",
    "hdr10",
    "dv",
    "sdr",
    "proper",
    "repack",
    "extended",
    "unrated",
    "remastered",
    "internal",
    "limited",
    "imax",
    "multi",
    "subbed",
    "dubbed",
    "nf",
    "amzn",
    "hulu",
    "dsnp",
    "atvp",
    "hmax",
    "korean",
    "japanese",
    "french",
    "german",
    "italian",
    "spanish",
    "hindi",
    "truefrench",
    "vostfr",
    "subs",
];

fn is_junk(word: &str) -> bool {
    let w = word
        .trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | '{' | '}'))
        .to_ascii_lowercase();
    if JUNK.contains(&w.as_str()) {
        return true;
    }
    // `x264-GROUP`, `WEB-DL`, `BluRay-GRP`: the part before a dash decides.
    if let Some((head, _)) = w.split_once('-') {
        return !head.is_empty() && JUNK.contains(&head);
    }
    false
}

/// Scene names use dots or underscores for spaces; a name with real spaces keeps its dots
/// (`Mr. Smith`, `S.W.A.T.`).
fn normalise(stem: &str) -> String {
    let mut s = stem.trim().to_owned();
    if !s.contains(' ') {
        s = s.replace(['.', '_'], " ");
    } else {
        s = s.replace('_', " ");
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Trims separators and brackets a title should not start or end with.
fn clean_title(s: &str) -> String {
    let mut t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    // A leading release-group tag `[GRP] Title`.
    if t.starts_with('[')
        && let Some(end) = t.find(']')
    {
        let rest = t[end + 1..].trim();
        if !rest.is_empty() {
            t = rest.to_owned();
        }
    }
    let trimmed = t.trim_matches(|c: char| {
        c.is_whitespace() || matches!(c, '-' | '–' | '[' | '(' | '{' | ',' | ':' | '_' | '~' | '.')
    });
    // Keep a closing bracket or dot that belongs to the title (`S.W.A.T.`), drop unmatched
    // ones left by cutting.
    let mut out = trimmed.to_owned();
    while out.ends_with(')') && !out.contains('(') || out.ends_with(']') && !out.contains('[') {
        out.pop();
        out = out.trim_end().to_owned();
    }
    out
}

fn year_of(word: &str) -> Option<(u16, bool)> {
    let bracketed = (word.starts_with('(') && word.ends_with(')'))
        || (word.starts_with('[') && word.ends_with(']'));
    let w = word.trim_matches(|c: char| matches!(c, '(' | ')' | '[' | ']' | ','));
    if w.len() != 4 || !w.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: u16 = w.parse().ok()?;
    (1880..=2100).contains(&y).then_some((y, bracketed))
}

/// `part1`, `pt2`, `cd1`, `disc2`, or the word alone (`part`, `cd`) followed by a number.
fn part_of(word: &str, next: Option<&str>) -> Option<u32> {
    let w = word
        .trim_matches(|c: char| matches!(c, '(' | ')' | '[' | ']' | '-'))
        .to_ascii_lowercase();
    for prefix in ["part", "pt", "cd", "disc", "disk", "dvd"] {
        if let Some(rest) = w.strip_prefix(prefix) {
            let rest = rest.trim_start_matches(['-', '_', '.']);
            if !rest.is_empty() && rest.len() <= 2 && rest.bytes().all(|b| b.is_ascii_digit()) {
                return rest.parse().ok();
            }
            if rest.is_empty() && prefix != "dvd" {
                let n = next?
                    .trim_matches(|c: char| matches!(c, '(' | ')' | '[' | ']'))
                    .to_owned();
                if !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()) {
                    return n.parse().ok();
                }
            }
        }
    }
    None
}

/// Parses a film's file stem (no extension).
pub fn parse_movie(stem: &str) -> MovieName {
    let norm = normalise(stem);
    let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return MovieName::default();
    }
    let punct = |w: &str| w.chars().all(|c| !c.is_alphanumeric());
    // The word after `i`, skipping lone separators (`-`).
    let next_word = |i: usize| words[i + 1..].iter().copied().find(|w| !punct(w));

    // The year: the last bracketed one; else the last bare one that ends the name or is
    // followed by release details or a part marker. Never the first word ("1917 (2019)",
    // "2012.2009.1080p"), and a number inside a title stays ("Blade Runner 2049 (2017)",
    // "The Year 2000 Bug").
    let mut bracketed: Option<(usize, u16)> = None;
    let mut bare: Option<(usize, u16)> = None;
    for (i, w) in words.iter().enumerate().skip(1) {
        if let Some((y, is_bracketed)) = year_of(w) {
            if is_bracketed {
                bracketed = Some((i, y));
            } else {
                let ends_title = match next_word(i) {
                    None => true,
                    Some(n) => {
                        is_junk(n)
                            || part_of(n, None).is_some()
                            || n.starts_with('[')
                            || n.starts_with('(')
                            || year_of(n).is_some()
                    }
                };
                if ends_title {
                    bare = Some((i, y));
                }
            }
        }
    }
    let year = bracketed.or(bare);

    // Without a year, the title ends where the release details start (never at the first
    // word: "Web" could be a title).
    let junk_at = words
        .iter()
        .enumerate()
        .skip(year.map(|(i, _)| i).unwrap_or(1))
        .find(|(_, w)| is_junk(w))
        .map(|(i, _)| i)
        .unwrap_or(words.len());

    let mut part = None;
    let mut part_at = None;
    // A part marker counts after the year (`Long Road (2012) - part1`); before it, it is
    // part of the title (`Deathly Hallows Part 1 (2010)`).
    let first = year.map(|(i, _)| i + 1).unwrap_or(1);
    for i in first..words.len() {
        if let Some(n) = part_of(words[i], words.get(i + 1).copied()) {
            part = Some(n);
            part_at = Some(i);
            break;
        }
    }

    let mut end = junk_at;
    if let Some((i, _)) = year {
        end = end.min(i);
    }
    if let Some(i) = part_at {
        end = end.min(i);
    }
    let title = clean_title(&words[..end.max(1)].join(" "));
    MovieName {
        title,
        year: year.map(|(_, y)| y),
        part,
    }
}

fn digits_at(b: &[u8], i: usize, min: usize, max: usize) -> Option<(u32, usize)> {
    let mut j = i;
    while j < b.len() && j - i < max && b[j].is_ascii_digit() {
        j += 1;
    }
    if j - i < min || (j < b.len() && b[j].is_ascii_digit()) {
        return None;
    }
    std::str::from_utf8(&b[i..j])
        .ok()?
        .parse()
        .ok()
        .map(|n| (n, j))
}

fn boundary_before(b: &[u8], i: usize) -> bool {
    i == 0 || !b[i - 1].is_ascii_alphanumeric()
}

fn boundary_after(b: &[u8], j: usize) -> bool {
    j >= b.len() || !b[j].is_ascii_alphanumeric()
}

struct EpisodeMatch {
    start: usize,
    end: usize,
    season: Option<u32>,
    episode: Option<u32>,
    episode_end: Option<u32>,
    air_date: Option<String>,
}

/// `S01E02`, `s1e2`, `S01 E02`, `S01E01-E02`, `S01E01E02`.
fn find_sxxexx(s: &str) -> Option<EpisodeMatch> {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if !(b[i] == b'S' || b[i] == b's') || !boundary_before(b, i) {
            continue;
        }
        let Some((season, j)) = digits_at(b, i + 1, 1, 4) else {
            continue;
        };
        let mut k = j;
        if k < b.len() && matches!(b[k], b' ' | b'.' | b'_' | b'-') {
            k += 1;
        }
        if k >= b.len() || !(b[k] == b'E' || b[k] == b'e') {
            continue;
        }
        let Some((episode, mut end)) = digits_at(b, k + 1, 1, 4) else {
            continue;
        };
        let mut episode_end = None;
        // Multi-episode: `-E02`, `E02`, `-02`.
        let mut m = end;
        if m < b.len() && b[m] == b'-' {
            m += 1;
        }
        if m < b.len() && (b[m] == b'E' || b[m] == b'e') {
            m += 1;
            if let Some((e2, n)) = digits_at(b, m, 1, 4)
                && e2 > episode
            {
                episode_end = Some(e2);
                end = n;
            }
        } else if m > end
            && let Some((e2, n)) = digits_at(b, m, 2, 3)
            && e2 > episode
            && boundary_after(b, n)
        {
            episode_end = Some(e2);
            end = n;
        }
        if !boundary_after(b, end) {
            continue;
        }
        return Some(EpisodeMatch {
            start: i,
            end,
            season: Some(season),
            episode: Some(episode),
            episode_end,
            air_date: None,
        });
    }
    None
}

/// `1x02`, `01x02`.
fn find_nxnn(s: &str) -> Option<EpisodeMatch> {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if !b[i].is_ascii_digit() || !boundary_before(b, i) {
            continue;
        }
        let Some((season, j)) = digits_at(b, i, 1, 2) else {
            continue;
        };
        if j >= b.len() || !(b[j] == b'x' || b[j] == b'X') {
            continue;
        }
        let Some((episode, end)) = digits_at(b, j + 1, 2, 3) else {
            continue;
        };
        if !boundary_after(b, end) {
            continue;
        }
        return Some(EpisodeMatch {
            start: i,
            end,
            season: Some(season),
            episode: Some(episode),
            episode_end: None,
            air_date: None,
        });
    }
    None
}

/// `2024-03-01`, `2024.03.01`, `2024 03 01`.
fn find_date(s: &str) -> Option<EpisodeMatch> {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if !boundary_before(b, i) {
            continue;
        }
        let Some((y, j)) = digits_at(b, i, 4, 4) else {
            continue;
        };
        if !(1900..=2100).contains(&y) || j >= b.len() || !matches!(b[j], b'-' | b'.' | b' ') {
            continue;
        }
        let sep = b[j];
        let Some((m, k)) = digits_at(b, j + 1, 2, 2) else {
            continue;
        };
        if k >= b.len() || b[k] != sep {
            continue;
        }
        let Some((d, end)) = digits_at(b, k + 1, 2, 2) else {
            continue;
        };
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !boundary_after(b, end) {
            continue;
        }
        return Some(EpisodeMatch {
            start: i,
            end,
            season: None,
            episode: None,
            episode_end: None,
            air_date: Some(format!("{y:04}-{m:02}-{d:02}")),
        });
    }
    None
}

/// Parses an episode's file stem; `None` if the name carries no episode marker at all.
pub fn parse_episode(stem: &str) -> Option<EpisodeName> {
    let norm = normalise(stem);
    let m = find_sxxexx(&norm)
        .or_else(|| find_nxnn(&norm))
        .or_else(|| find_date(&norm))?;
    let show = clean_title(&norm[..m.start]);
    let rest = &norm[m.end..];
    // The episode title ends where the technical tail begins.
    let words: Vec<&str> = rest.split(' ').filter(|w| !w.is_empty()).collect();
    let cut = words.iter().position(|w| is_junk(w)).unwrap_or(words.len());
    let title = clean_title(&words[..cut].join(" "));
    Some(EpisodeName {
        show: (!show.is_empty()).then_some(show),
        season: m.season,
        episode: m.episode,
        episode_end: m.episode_end,
        air_date: m.air_date,
        title: (!title.is_empty()).then_some(title),
    })
}

/// `Season 1`, `Season 01`, `S02`, `Series 3`, `Staffel 2`, `Specials` (season 0).
pub fn parse_season_dir(name: &str) -> Option<u32> {
    let n = name.trim().to_ascii_lowercase();
    if n == "specials" {
        return Some(0);
    }
    for prefix in [
        "season",
        "series",
        "staffel",
        "saison",
        "temporada",
        "stagione",
        "s",
    ] {
        if let Some(rest) = n.strip_prefix(prefix) {
            let rest = rest.trim_start_matches([' ', '.', '_', '-']);
            if !rest.is_empty() && rest.len() <= 4 && rest.bytes().all(|b| b.is_ascii_digit()) {
                return rest.parse().ok();
            }
        }
    }
    None
}

/// Parses a music file's stem: `01 - Dawn`, `1-03 Dusk`, `07. Song`, `Song`.
pub fn parse_track(stem: &str) -> TrackName {
    let s = stem.trim().replace('_', " ");
    let b = s.as_bytes();
    let mut disc = None;
    let mut number = None;
    let mut rest = s.as_str();
    if let Some((n, j)) = digits_at(b, 0, 1, 3) {
        // `1-03` is disc 1, track 3; `01 - x` is track 1.
        if j + 1 < b.len()
            && b[j] == b'-'
            && let Some((t, k)) = digits_at(b, j + 1, 2, 3)
        {
            disc = Some(n);
            number = Some(t);
            rest = &s[k..];
        } else if j == b.len() || matches!(b[j], b' ' | b'.' | b'-' | b')') {
            number = Some(n);
            rest = &s[j..];
        }
    }
    let title = rest
        .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '-' | '.' | ')' | '–'))
        .trim()
        .to_owned();
    let title = if title.is_empty() {
        s.trim().to_owned()
    } else {
        title
    };
    TrackName {
        disc,
        number,
        title,
    }
}

pub use crate::model::media::sort_key;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn season_dirs() {
        let cases = [
            ("Season 1", Some(1)),
            ("Season 01", Some(1)),
            ("season 12", Some(12)),
            ("S02", Some(2)),
            ("Series 3", Some(3)),
            ("Staffel 4", Some(4)),
            ("Specials", Some(0)),
            ("Season", None),
            ("Extras", None),
            ("Sunday", None),
            ("Featurettes", None),
        ];
        for (name, want) in cases {
            assert_eq!(parse_season_dir(name), want, "{name}");
        }
    }
}
