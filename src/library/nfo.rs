//! Kodi/Jellyfin `.nfo` sidecars: `movie.nfo` / `<file>.nfo` (`<movie>`), `tvshow.nfo`
//! (`<tvshow>`) and episode NFOs (`<episodedetails>`). The content rating is kept as written,
//! with the country it names; mapping ratings to ages is the policy module's job.

use std::io::Read;
use std::path::Path;

use quick_xml::events::Event;

/// Bigger than any real NFO (they are a few KiB) yet small enough to read at once.
pub const MAX_NFO_BYTES: u64 = 1024 * 1024;

pub use crate::model::media::ContentRating;

/// Which kind of NFO the root element says this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfoKind {
    Movie,
    TvShow,
    Episode,
    MusicVideo,
}

/// What an NFO tells us. Empty fields mean "not said", never "empty".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nfo {
    pub kind: Option<NfoKind>,
    pub title: Option<String>,
    pub original_title: Option<String>,
    pub sort_title: Option<String>,
    pub year: Option<u16>,
    pub plot: Option<String>,
    pub genres: Vec<String>,
    pub tags: Vec<String>,
    pub rating: Option<ContentRating>,
    /// Actors, directors and writers, in file order.
    pub people: Vec<String>,
    pub season: Option<u32>,
    pub episode: Option<u32>,
    /// `YYYY-MM-DD`.
    pub aired: Option<String>,
    pub show_title: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NfoError {
    #[error("the NFO file is larger than {MAX_NFO_BYTES} bytes; it cannot be a real sidecar")]
    TooLarge,
    #[error("the NFO file is not valid XML ({0}); fix or delete it and rescan")]
    Malformed(String),
    #[error("the NFO file's root element <{0}> is not movie, tvshow or episodedetails")]
    UnknownRoot(String),
    #[error("the NFO file could not be read: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads and parses an NFO, refusing anything over [`MAX_NFO_BYTES`].
pub fn read(path: &Path) -> Result<Nfo, NfoError> {
    let file = super::probe::open_nofollow(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_NFO_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_NFO_BYTES {
        return Err(NfoError::TooLarge);
    }
    parse(&bytes)
}

/// Parses NFO bytes.
pub fn parse(bytes: &[u8]) -> Result<Nfo, NfoError> {
    if bytes.len() as u64 > MAX_NFO_BYTES {
        return Err(NfoError::TooLarge);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| NfoError::Malformed("it is not UTF-8 text".into()))?;
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    reader.config_mut().check_end_names = true;

    let mut nfo = Nfo::default();
    // Element names from the root down to the current one.
    let mut stack: Vec<String> = Vec::new();
    let mut text_buf = String::new();
    let mut saw_root = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            NfoError::Malformed(format!("at byte {}: {e}", reader.error_position()))
        })?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_ascii_lowercase();
                if stack.is_empty() {
                    if saw_root {
                        return Err(NfoError::Malformed("more than one root element".into()));
                    }
                    saw_root = true;
                    nfo.kind = Some(root_kind(&name)?);
                }
                stack.push(name);
                text_buf.clear();
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_ascii_lowercase();
                if stack.is_empty() {
                    if saw_root {
                        return Err(NfoError::Malformed("more than one root element".into()));
                    }
                    saw_root = true;
                    nfo.kind = Some(root_kind(&name)?);
                }
            }
            Event::Text(t) => {
                let s = t
                    .unescape()
                    .map_err(|e| NfoError::Malformed(format!("bad text: {e}")))?;
                text_buf.push_str(&s);
            }
            Event::CData(c) => {
                text_buf.push_str(&String::from_utf8_lossy(&c));
            }
            Event::End(_) => {
                let value = std::mem::take(&mut text_buf);
                apply(&mut nfo, &stack, value.trim());
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(NfoError::Malformed(format!(
            "the file ends inside <{}>",
            stack.last().map(String::as_str).unwrap_or("?")
        )));
    }
    if !saw_root {
        return Err(NfoError::Malformed("there is no root element".into()));
    }
    Ok(nfo)
}

fn root_kind(name: &str) -> Result<NfoKind, NfoError> {
    match name {
        "movie" => Ok(NfoKind::Movie),
        "tvshow" => Ok(NfoKind::TvShow),
        "episodedetails" => Ok(NfoKind::Episode),
        "musicvideo" => Ok(NfoKind::MusicVideo),
        other => Err(NfoError::UnknownRoot(other.to_owned())),
    }
}

/// Longest field we keep; a plot is a paragraph, not a book.
const MAX_FIELD: usize = 8 * 1024;

fn clip(s: &str) -> String {
    if s.len() <= MAX_FIELD {
        return s.to_owned();
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn apply(nfo: &mut Nfo, stack: &[String], value: &str) {
    if value.is_empty() {
        return;
    }
    let depth = stack.len();
    let Some(name) = stack.last() else { return };
    // Direct children of the root.
    if depth == 2 {
        match name.as_str() {
            "title" => nfo.title = Some(clip(value)),
            "originaltitle" => nfo.original_title = Some(clip(value)),
            "sorttitle" => nfo.sort_title = Some(clip(value)),
            "showtitle" => nfo.show_title = Some(clip(value)),
            "year" => {
                if let Ok(y) = value.parse::<u16>()
                    && (1880..=2100).contains(&y)
                {
                    nfo.year = Some(y);
                }
            }
            "premiered" | "releasedate" => {
                if nfo.year.is_none()
                    && let Some(y) = value.get(..4).and_then(|y| y.parse::<u16>().ok())
                    && (1880..=2100).contains(&y)
                {
                    nfo.year = Some(y);
                }
                if nfo.aired.is_none() && value.len() >= 10 {
                    nfo.aired = Some(value[..10].to_owned());
                }
            }
            "aired" => nfo.aired = Some(value.chars().take(10).collect()),
            "plot" => nfo.plot = Some(clip(value)),
            "outline" if nfo.plot.is_none() => nfo.plot = Some(clip(value)),
            "genre" => push_unique(&mut nfo.genres, value),
            "tag" => push_unique(&mut nfo.tags, value),
            "mpaa" | "certification" if nfo.rating.is_none() => {
                nfo.rating = ContentRating::parse(value)
            }
            "director" | "credits" => push_unique(&mut nfo.people, value),
            "season" => nfo.season = value.parse().ok(),
            "episode" => nfo.episode = value.parse().ok(),
            _ => {}
        }
    } else if depth == 3 && stack[1] == "actor" && name == "name" {
        push_unique(&mut nfo.people, value);
    }
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    // Bounded: a hostile file could list a million genres.
    if list.len() < 64 && !list.iter().any(|v| v.eq_ignore_ascii_case(value)) {
        list.push(clip(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_keep_value_and_country() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("PG-13", None, "PG-13"),
            ("G", None, "G"),
            ("gb/12A", Some("gb"), "12A"),
            ("de/FSK 16", Some("de"), "FSK 16"),
            ("it/VM14", Some("it"), "VM14"),
            ("Rated R", None, "R"),
            ("US:PG-13", Some("us"), "PG-13"),
            ("US:PG-13 / GB:12A", Some("us"), "PG-13"),
            ("TV-MA", None, "TV-MA"),
            ("NC-17", None, "NC-17"),
            ("fr/-12", Some("fr"), "-12"),
            ("  TV-Y7  ", None, "TV-Y7"),
        ];
        for (raw, hint, value) in cases {
            let r = ContentRating::parse(raw).unwrap_or_else(|| panic!("{raw}"));
            assert_eq!(r.system_hint.as_deref(), *hint, "{raw}");
            assert_eq!(r.value, *value, "{raw}");
            assert_eq!(r.raw, raw.trim());
        }
        assert_eq!(ContentRating::parse("   "), None);
        assert_eq!(ContentRating::parse("Rated "), None);
    }

    #[test]
    fn movie_nfo() {
        let nfo = parse(
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<movie>
  <title>Night Harbour</title>
  <originaltitle>Nachthafen</originaltitle>
  <year>2018</year>
  <plot>Boats &amp; secrets.</plot>
  <mpaa>PG-13</mpaa>
  <genre>Thriller</genre><genre>Drama</genre><genre>drama</genre>
  <tag>noir</tag>
  <actor><name>Ada Stone</name><role>Pilot</role></actor>
  <director>Ben Ray</director>
  <ratings><rating name="imdb"><value>7.1</value></rating></ratings>
</movie>"#,
        )
        .unwrap();
        assert_eq!(nfo.kind, Some(NfoKind::Movie));
        assert_eq!(nfo.title.as_deref(), Some("Night Harbour"));
        assert_eq!(nfo.original_title.as_deref(), Some("Nachthafen"));
        assert_eq!(nfo.year, Some(2018));
        assert_eq!(nfo.plot.as_deref(), Some("Boats & secrets."));
        assert_eq!(nfo.genres, vec!["Thriller", "Drama"]);
        assert_eq!(nfo.tags, vec!["noir"]);
        assert_eq!(nfo.people, vec!["Ada Stone", "Ben Ray"]);
        assert_eq!(nfo.rating.unwrap().value, "PG-13");
    }

    #[test]
    fn tvshow_and_episode_nfo() {
        let show = parse(br#"<?xml version="1.0"?><tvshow><title>Garden Friends</title><year>2020</year><mpaa>TV-Y7</mpaa><genre>Kids</genre></tvshow>"#).unwrap();
        assert_eq!(show.kind, Some(NfoKind::TvShow));
        assert_eq!(show.rating.unwrap().value, "TV-Y7");
        let ep = parse(b"<episodedetails><title>Rain Day</title><season>1</season><episode>2</episode><aired>2020-05-02</aired><showtitle>Garden Friends</showtitle></episodedetails>").unwrap();
        assert_eq!(ep.kind, Some(NfoKind::Episode));
        assert_eq!((ep.season, ep.episode), (Some(1), Some(2)));
        assert_eq!(ep.aired.as_deref(), Some("2020-05-02"));
        assert_eq!(ep.show_title.as_deref(), Some("Garden Friends"));
        let premiered =
            parse(b"<movie><title>X</title><premiered>1999-03-31</premiered></movie>").unwrap();
        assert_eq!(premiered.year, Some(1999));
    }

    #[test]
    fn malformed_nfos_are_errors() {
        let cases: &[&[u8]] = &[
            b"<movie><title>Unclosed",
            b"<movie><title>X</titel></movie>",
            b"",
            b"just text",
            b"<movie></movie><movie></movie>",
            b"<movie><title>&bogus;</title></movie>",
            b"\xff\xfe<movie/>",
        ];
        for bytes in cases {
            let err = parse(bytes).unwrap_err();
            assert!(
                matches!(err, NfoError::Malformed(_)),
                "{:?}: {err}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert!(matches!(
            parse(b"<html><body/></html>").unwrap_err(),
            NfoError::UnknownRoot(_)
        ));
    }

    #[test]
    fn oversized_nfo_is_refused() {
        let mut big = b"<movie><plot>".to_vec();
        big.resize(MAX_NFO_BYTES as usize + 10, b'a');
        assert!(matches!(parse(&big).unwrap_err(), NfoError::TooLarge));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("movie.nfo");
        std::fs::write(&p, &big).unwrap();
        assert!(matches!(read(&p).unwrap_err(), NfoError::TooLarge));
    }

    #[test]
    fn long_fields_and_lists_are_bounded() {
        let mut xml = String::from("<movie><plot>");
        xml.push_str(&"é".repeat(10_000));
        xml.push_str("</plot>");
        for i in 0..200 {
            xml.push_str(&format!("<genre>g{i}</genre>"));
        }
        xml.push_str("</movie>");
        let nfo = parse(xml.as_bytes()).unwrap();
        assert!(nfo.plot.unwrap().len() <= MAX_FIELD);
        assert_eq!(nfo.genres.len(), 64);
    }
}
