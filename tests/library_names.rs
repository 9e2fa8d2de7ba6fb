//! Name parsing against hundreds of real-world-style file names: hand-picked tricky ones,
//! plus every title of a list spelled the ways release groups, rippers and people spell them.

use hearth::library::names::{MovieName, parse_episode, parse_movie, parse_track};

fn m(title: &str, year: Option<u16>, part: Option<u32>) -> MovieName {
    MovieName {
        title: title.into(),
        year,
        part,
    }
}

#[test]
fn hand_picked_movie_names() {
    let cases: Vec<(&str, MovieName)> = vec![
        ("Rocket Club (2019)", m("Rocket Club", Some(2019), None)),
        ("Paper Boats (2013)", m("Paper Boats", Some(2013), None)),
        (
            "Long Road (2012) - part1",
            m("Long Road", Some(2012), Some(1)),
        ),
        (
            "Long Road (2012) - part2",
            m("Long Road", Some(2012), Some(2)),
        ),
        (
            "Untitled Home Reel (2022)",
            m("Untitled Home Reel", Some(2022), None),
        ),
        (
            "The.Matrix.1999.1080p.BluRay.x264-GROUP",
            m("The Matrix", Some(1999), None),
        ),
        (
            "Blade Runner 2049 (2017)",
            m("Blade Runner 2049", Some(2017), None),
        ),
        (
            "Blade.Runner.2049.2017.2160p.UHD.BluRay.x265-TERMiNAL",
            m("Blade Runner 2049", Some(2017), None),
        ),
        ("1917 (2019)", m("1917", Some(2019), None)),
        ("1917.2019.1080p.WEB-DL", m("1917", Some(2019), None)),
        ("2012.2009.720p.BRRip", m("2012", Some(2009), None)),
        (
            "2001.A.Space.Odyssey.1968.REMASTERED.1080p",
            m("2001 A Space Odyssey", Some(1968), None),
        ),
        (
            "Charlotte's.Web.2006.1080p.WEBRip",
            m("Charlotte's Web", Some(2006), None),
        ),
        (
            "Harry Potter and the Deathly Hallows Part 1 (2010)",
            m(
                "Harry Potter and the Deathly Hallows Part 1",
                Some(2010),
                None,
            ),
        ),
        (
            "Kill Bill Vol 1 (2003) cd2",
            m("Kill Bill Vol 1", Some(2003), Some(2)),
        ),
        (
            "Some.Movie.2004.pt2.DVDRip",
            m("Some Movie", Some(2004), Some(2)),
        ),
        ("Some Movie CD1", m("Some Movie", None, Some(1))),
        ("Some Movie - Part 2", m("Some Movie", None, Some(2))),
        (
            "Some_Movie_2004_DVDRip_XviD",
            m("Some Movie", Some(2004), None),
        ),
        ("Amélie (2001)", m("Amélie", Some(2001), None)),
        (
            "Mr. Smith Goes to Washington (1939)",
            m("Mr. Smith Goes to Washington", Some(1939), None),
        ),
        ("The Year 2000 Bug", m("The Year 2000 Bug", None, None)),
        ("Apollo 13 (1995) [1080p]", m("Apollo 13", Some(1995), None)),
        (
            "Se7en.1995.REMASTERED.1080p.BluRay",
            m("Se7en", Some(1995), None),
        ),
        ("Home Video", m("Home Video", None, None)),
        ("home_video_final", m("home video final", None, None)),
        (
            "[YTS] Inception (2010) [1080p]",
            m("Inception", Some(2010), None),
        ),
        ("Inception [2010]", m("Inception", Some(2010), None)),
        (
            "Heat.1995.1080p.BluRay.DTS-HD.MA.5.1.x264",
            m("Heat", Some(1995), None),
        ),
        (
            "Parasite.2019.KOREAN.1080p.WEBRip",
            m("Parasite", Some(2019), None),
        ),
        ("Dune Part Two (2024)", m("Dune Part Two", Some(2024), None)),
        (
            "Alien (1979) - Director's Cut",
            m("Alien", Some(1979), None),
        ),
        (
            "It's a Wonderful Life (1946)",
            m("It's a Wonderful Life", Some(1946), None),
        ),
        (
            "Ocean's.Eleven.2001.720p",
            m("Ocean's Eleven", Some(2001), None),
        ),
        ("Ocean's 11 (1960)", m("Ocean's 11", Some(1960), None)),
        ("Zoë's Room (1999)", m("Zoë's Room", Some(1999), None)),
        (
            "Rock & Roll Heaven (1984)",
            m("Rock & Roll Heaven", Some(1984), None),
        ),
        ("50% Chance (2010)", m("50% Chance", Some(2010), None)),
        ("Who? Me! (1977)", m("Who? Me!", Some(1977), None)),
        ("Fast; Loud (2003)", m("Fast; Loud", Some(2003), None)),
        ("WALL-E.2008.1080p", m("WALL-E", Some(2008), None)),
        ("Spider-Man (2002)", m("Spider-Man", Some(2002), None)),
        ("movie.2014.proper.720p", m("movie", Some(2014), None)),
        (
            "Big Stream Test (2024)",
            m("Big Stream Test", Some(2024), None),
        ),
        ("Nosferatu 1922", m("Nosferatu", Some(1922), None)),
        ("Metropolis 1927 cd1", m("Metropolis", Some(1927), Some(1))),
        (
            "Metropolis (1927) disc2",
            m("Metropolis", Some(1927), Some(2)),
        ),
        ("X", m("X", None, None)),
        ("", m("", None, None)),
    ];
    for (name, want) in &cases {
        assert_eq!(&parse_movie(name), want, "{name:?}");
    }
}

/// Titles that must survive every spelling below (no dots, no trailing year-like numbers).
const TITLES: &[(&str, u16)] = &[
    ("Sunny Meadow", 2021),
    ("Rocket Club", 2019),
    ("Paper Boats", 2013),
    ("Night Harbour", 2018),
    ("Crimson Alley", 2016),
    ("Midnight Ledger", 2015),
    ("Fjord Light", 2020),
    ("Waldlauf", 2017),
    ("Volpe Nera", 2014),
    ("The Godfather", 1972),
    ("Casablanca", 1942),
    ("Vertigo", 1958),
    ("Jaws", 1975),
    ("Alien", 1979),
    ("Aliens", 1986),
    ("The Thing", 1982),
    ("Heat", 1995),
    ("Fargo", 1996),
    ("Titanic", 1997),
    ("Gladiator", 2000),
    ("Memento", 2000),
    ("Spirited Away", 2001),
    ("Oldboy", 2003),
    ("Zodiac", 2007),
    ("Up", 2009),
    ("Inception", 2010),
    ("Drive", 2011),
    ("Her", 2013),
    ("Whiplash", 2014),
    ("Arrival", 2016),
    ("Coco", 2017),
    ("Roma", 2018),
    ("Parasite", 2019),
    ("Soul", 2020),
    ("Dune", 2021),
    ("Nope", 2022),
    ("Oppenheimer", 2023),
    ("Blade Runner 2049", 2017),
    ("Apollo 13", 1995),
    ("Ocean's 11", 1960),
    ("Spider-Man", 2002),
    ("Amélie", 2001),
    ("The Lord of the Rings", 2001),
    ("Back to the Future", 1985),
    ("Crème Brûlée", 2012),
    ("Señor Nobody", 2009),
    ("Smørrebrød", 2015),
    ("It's Complicated", 2009),
    ("Don't Look Back", 1967),
    ("The Silent River", 1999),
    ("Return to the Harbor", 1988),
    ("Golden Empire 3", 1977),
    ("The Spy from the Orchard", 2005),
    ("Winter of the Lost Signal", 1961),
    ("Se7en", 1995),
    ("WALL-E", 2008),
    ("2012", 2009),
    ("1917", 2019),
    ("300", 2006),
    ("9", 2009),
];

#[test]
fn every_title_in_every_spelling() {
    let mut checked = 0;
    for &(title, year) in TITLES {
        let dotted = title.replace(' ', ".");
        let under = title.replace(' ', "_");
        let spellings: Vec<(String, Option<u32>)> = vec![
            (format!("{title} ({year})"), None),
            (format!("{title} [{year}]"), None),
            (format!("{title} {year}"), None),
            (format!("{dotted}.{year}.1080p.BluRay.x264-GRP"), None),
            (
                format!("{dotted}.{year}.720p.WEB-DL.DDP5.1.H.264-NTb"),
                None,
            ),
            (
                format!("{dotted}.{year}.2160p.UHD.BluRay.REMUX.HDR.HEVC-FGT"),
                None,
            ),
            (format!("{under}_{year}_DVDRip_XviD"), None),
            (format!("{title} ({year}) [1080p]"), None),
            (format!("{title} ({year}) - part1"), Some(1)),
            (format!("{title} ({year}) cd2"), Some(2)),
            (format!("{dotted}.{year}.pt3.DVDRip"), Some(3)),
            (format!("{title} ({year}) - Part 4"), Some(4)),
        ];
        for (name, part) in spellings {
            let got = parse_movie(&name);
            assert_eq!(got.title, title, "title of {name:?}");
            assert_eq!(got.year, Some(year), "year of {name:?}");
            assert_eq!(got.part, part, "part of {name:?}");
            checked += 1;
        }
    }
    assert!(checked >= 600, "only {checked} names checked");
}

type Ep = (
    Option<&'static str>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<&'static str>,
    Option<&'static str>,
);

#[test]
fn hand_picked_episode_names() {
    let cases: Vec<(&str, Ep)> = vec![
        (
            "Garden Friends - S01E02 - Rain Day",
            (
                Some("Garden Friends"),
                Some(1),
                Some(2),
                None,
                None,
                Some("Rain Day"),
            ),
        ),
        (
            "Harbour.Watch.1x01.Arrival",
            (
                Some("Harbour Watch"),
                Some(1),
                Some(1),
                None,
                None,
                Some("Arrival"),
            ),
        ),
        (
            "Harbour.Watch.S01E02.720p.WEB",
            (Some("Harbour Watch"), Some(1), Some(2), None, None, None),
        ),
        (
            "Evening News 2024-03-01",
            (
                Some("Evening News"),
                None,
                None,
                None,
                Some("2024-03-01"),
                None,
            ),
        ),
        (
            "Evening.News.2024.03.01.HDTV",
            (
                Some("Evening News"),
                None,
                None,
                None,
                Some("2024-03-01"),
                None,
            ),
        ),
        ("S01E02.720p", (None, Some(1), Some(2), None, None, None)),
        ("s2e10", (None, Some(2), Some(10), None, None, None)),
        (
            "Show - S01E01-E02 - Pilot",
            (Some("Show"), Some(1), Some(1), Some(2), None, Some("Pilot")),
        ),
        (
            "Show.S03E05E06.1080p",
            (Some("Show"), Some(3), Some(5), Some(6), None, None),
        ),
        (
            "Show S01 E03",
            (Some("Show"), Some(1), Some(3), None, None, None),
        ),
        (
            "The.Office.US.S05E14.Stress.Relief.720p.WEB-DL",
            (
                Some("The Office US"),
                Some(5),
                Some(14),
                None,
                None,
                Some("Stress Relief"),
            ),
        ),
        (
            "Doctor Who (2005) - 10x01 - The Pilot",
            (
                Some("Doctor Who (2005)"),
                Some(10),
                Some(1),
                None,
                None,
                Some("The Pilot"),
            ),
        ),
        (
            "show_s01e01_name",
            (Some("show"), Some(1), Some(1), None, None, Some("name")),
        ),
        (
            "Daily Show 2023-13-01",
            (None, None, None, None, None, None),
        ),
        ("No Marker Here", (None, None, None, None, None, None)),
        (
            "Series - S2024E101",
            (Some("Series"), Some(2024), Some(101), None, None, None),
        ),
        ("1x02", (None, Some(1), Some(2), None, None, None)),
        (
            "Show 01x02 Title",
            (Some("Show"), Some(1), Some(2), None, None, Some("Title")),
        ),
    ];
    for (name, want) in &cases {
        let got = parse_episode(name);
        if want.1.is_none() && want.4.is_none() {
            assert!(got.is_none(), "{name:?} -> {got:?}");
            continue;
        }
        let got = got.unwrap_or_else(|| panic!("{name:?} not recognised"));
        let have = (
            got.show.as_deref(),
            got.season,
            got.episode,
            got.episode_end,
            got.air_date.as_deref(),
            got.title.as_deref(),
        );
        assert_eq!(have, *want, "{name:?}");
    }
}

const SHOWS: &[&str] = &[
    "Garden Friends",
    "Harbour Watch",
    "Breaking Point",
    "The Wire",
    "Lost",
    "Dark",
    "Fleabag",
    "Succession",
    "The Crown",
    "Better Call Saul",
    "Mad Men",
    "Sherlock",
    "Chernobyl",
    "Severance",
    "Black Mirror",
    "Twin Peaks",
    "The Bear",
    "Shogun",
    "Ted Lasso",
    "Slow Horses",
];

#[test]
fn every_show_in_every_spelling() {
    let mut checked = 0;
    for show in SHOWS {
        let dotted = show.replace(' ', ".");
        for (s, e) in [(1u32, 1u32), (1, 2), (2, 10), (10, 3), (3, 100)] {
            let spellings = [
                (
                    format!("{show} - S{s:02}E{e:02} - Some Name"),
                    Some("Some Name"),
                ),
                (format!("{dotted}.S{s:02}E{e:02}.720p.HDTV.x264-GRP"), None),
                (
                    format!("{dotted}.S{s:02}E{e:02}.The.Name.1080p.WEB-DL"),
                    Some("The Name"),
                ),
                (format!("{show} {s}x{e:02} Some Name"), Some("Some Name")),
                (format!("{} s{s}e{e}", show.to_lowercase()), None),
            ];
            for (name, title) in spellings {
                let got = parse_episode(&name).unwrap_or_else(|| panic!("{name:?}"));
                assert_eq!(
                    got.show.as_deref().map(str::to_lowercase),
                    Some(show.to_lowercase()),
                    "{name:?}"
                );
                assert_eq!((got.season, got.episode), (Some(s), Some(e)), "{name:?}");
                assert_eq!(got.title.as_deref(), title, "{name:?}");
                checked += 1;
            }
        }
        for date in ["2024-03-01", "1999-12-31"] {
            let name = format!("{show} {date}");
            let got = parse_episode(&name).unwrap();
            assert_eq!(got.air_date.as_deref(), Some(date), "{name:?}");
            assert_eq!(got.show.as_deref(), Some(*show));
            checked += 1;
        }
    }
    assert!(checked >= 500, "only {checked}");
}

#[test]
fn track_names() {
    let cases: &[(&str, Option<u32>, Option<u32>, &str)] = &[
        ("01 - Dawn", None, Some(1), "Dawn"),
        ("02 - Noon", None, Some(2), "Noon"),
        ("03 - Dusk", None, Some(3), "Dusk"),
        ("07. Song Title", None, Some(7), "Song Title"),
        ("1-03 Dusk", Some(1), Some(3), "Dusk"),
        ("2-11 - Long Song", Some(2), Some(11), "Long Song"),
        ("12 Angry Notes", None, Some(12), "Angry Notes"),
        ("Untitled", None, None, "Untitled"),
        ("99", None, Some(99), "99"),
        ("1999 - Prince", None, None, "1999 - Prince"),
        ("05_underscored_name", None, Some(5), "underscored name"),
    ];
    for (name, disc, number, title) in cases {
        let t = parse_track(name);
        assert_eq!(
            (t.disc, t.number, t.title.as_str()),
            (*disc, *number, *title),
            "{name:?}"
        );
    }
}
