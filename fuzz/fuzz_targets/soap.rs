//! The SOAP bodies of the DLNA control endpoints (ContentDirectory Browse, Search with its
//! criteria grammar, the capability actions; ConnectionManager), from any player on the LAN,
//! run by `dlna::control::run` against a real store of six libraries, where one library and
//! every item with "Secret" in it are hidden from the viewer.
//!
//! The first byte chooses the form: a raw body (the envelope parser itself), or a
//! well-formed envelope whose action and argument values come from the rest of the input
//! (so the fuzzer reaches Browse, Search and the criteria grammar quickly; a one-byte value
//! picks a known object id, flag or criteria).
//!
//! Nothing may panic. Every answer is well-formed XML of bounded size; a DIDL-Lite result
//! holds as many objects as `NumberReturned` says, at most `MAX_RETURNED` and never more than
//! `TotalMatches`; every id in it parses back and round-trips; nothing hidden is named,
//! linked or counted (a listed container's `childCount` is what browsing it lists). A
//! parsed call written out by `soap::response` reads back as the same call.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use hearth::dlna::control::{self, MAX_RETURNED};
use hearth::dlna::soap::{self, CONNECTION_MANAGER, CONTENT_DIRECTORY, Call, Links};
use hearth::dlna::tree::{Access, ObjectId};
use hearth::library::probe::VideoFacts;
use hearth::library::{ItemKind, ItemRecord, LibraryKind, LibraryRecord};
use hearth::store::Store;
use hearth::store::library::FileChange;
use libfuzzer_sys::fuzz_target;
use quick_xml::events::Event;

struct World {
    store: Store,
    /// Object ids that exist, for one-byte id arguments.
    ids: Vec<String>,
    hidden_library: u64,
    hidden_items: Vec<u64>,
}

struct TestLinks;

impl Links for TestLinks {
    fn media_url(&self, item_id: u64) -> String {
        format!("http://192.168.1.20:8080/dlna/media/{item_id}?exp=1&sig=x")
    }
}

fn hidden_library(l: &LibraryRecord) -> bool {
    l.name == "Private"
}

fn hidden_item(i: &ItemRecord) -> bool {
    [
        Some(&i.title),
        i.show.as_ref(),
        i.artist.as_ref(),
        i.album.as_ref(),
    ]
    .into_iter()
    .flatten()
    .any(|s| s.contains("Secret"))
}

fn item(kind: ItemKind, title: &str, content_type: &str) -> ItemRecord {
    ItemRecord {
        kind: Some(kind),
        title: title.into(),
        sort_title: title.to_lowercase(),
        content_type: content_type.into(),
        size: 1_000_000 + title.len() as u64,
        ..Default::default()
    }
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hearth-fuzz-soap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("hearth.redb")).expect("a store in the temp dir");
        // The open database stays usable; nothing is left behind when the fuzzer stops.
        let _ = std::fs::remove_dir_all(&dir);

        let video = VideoFacts {
            container: "mp4".into(),
            duration_ms: Some(5_400_123),
            width: Some(1920),
            height: Some(1080),
            video_codec: Some("h264".into()),
            audio_codecs: vec!["aac".into()],
            ..Default::default()
        };
        let movie = |t: &str, year| ItemRecord {
            year: Some(year),
            genres: vec!["Drama".into(), "Folk & <Co>".into()],
            plot: Some("A \"plot\" with <tags> & ampersands".into()),
            duration_ms: video.duration_ms,
            video: Some(video.clone()),
            ..item(ItemKind::Movie, t, "video/mp4")
        };
        let episode = |show: &str, s: Option<u32>, e: u32, t: &str| ItemRecord {
            show: Some(show.into()),
            season: s,
            episode: Some(e),
            air_date: Some(format!("2019-03-{:02}", e % 28 + 1)),
            ..item(ItemKind::Episode, t, "video/x-matroska")
        };
        let track = |artist: &str, album: &str, n: u32, t: &str| ItemRecord {
            artist: (!artist.is_empty()).then(|| artist.into()),
            album: Some(album.into()),
            track: Some(n),
            duration_ms: Some(200_000 + u64::from(n)),
            ..item(ItemKind::Track, t, "audio/mpeg")
        };
        let photo = |taken: Option<&str>, t: &str| ItemRecord {
            taken_at: taken.map(Into::into),
            ..item(ItemKind::Photo, t, "image/jpeg")
        };
        let libraries: Vec<(&str, LibraryKind, Vec<ItemRecord>)> = vec![
            (
                "Films",
                LibraryKind::Movies,
                vec![
                    movie("Harbour Lights", 2019),
                    movie("Ünïcødé <Title> & \"q\"", 2001),
                    movie("Secret Movie", 2020),
                    movie("", 1999),
                ],
            ),
            (
                "Series",
                LibraryKind::Shows,
                vec![
                    episode("Harbour Days", Some(1), 1, "Arrival"),
                    episode("Harbour Days", Some(1), 2, "Storm"),
                    episode("Harbour Days", Some(0), 1, "Special"),
                    episode("Harbour.Days", None, 3, "Dotted"),
                    episode("Secret Show", Some(1), 1, "Hidden pilot"),
                    episode("", Some(2), 1, "No show"),
                ],
            ),
            (
                "Music",
                LibraryKind::Music,
                vec![
                    track("The Gulls", "Low Tide", 2, "Harbour Song"),
                    track("The Gulls", "Low Tide", 1, "Gull Cry"),
                    track("The Gulls", "High Tide", 1, "Waves"),
                    track("", "Demos", 1, "Demo"),
                    track("Secret Artist", "Secret Album", 1, "Quiet"),
                ],
            ),
            (
                "Photos",
                LibraryKind::Photos,
                vec![
                    photo(Some("2021-07-04T10:00:00"), "Beach"),
                    photo(Some("2020-01-01T00:00:00"), "New Year"),
                    photo(None, "Undated"),
                    photo(Some("2021-07-05T10:00:00"), "Secret Photo"),
                ],
            ),
            (
                "Private",
                LibraryKind::Movies,
                vec![movie("Private Movie", 2018)],
            ),
            (
                "Clips",
                LibraryKind::Videos,
                vec![item(ItemKind::Video, "Clip", "video/mp4")],
            ),
        ];
        let mut ids = vec!["0".to_owned(), "-1".to_owned(), "i.999".to_owned()];
        let mut hidden_library_id = 0;
        let mut hidden_items = Vec::new();
        for (n, (name, kind, items)) in libraries.into_iter().enumerate() {
            let lib = store
                .write(|tx| {
                    tx.create_library(name, kind, &[PathBuf::from(format!("/media/{n}"))], 1000)
                })
                .expect("a library");
            ids.push(ObjectId::Library(lib.id).to_string());
            if hidden_library(&lib) {
                hidden_library_id = lib.id;
            }
            let changes = items
                .into_iter()
                .enumerate()
                .map(|(i, mut it)| {
                    it.library_id = lib.id;
                    it.folder_id = lib.folder_ids[0];
                    it.rel_path = format!("{i}.bin");
                    FileChange::Upsert(Box::new(it))
                })
                .collect();
            store
                .write(|tx| {
                    tx.apply_file_changes(changes, 2000)?;
                    tx.set_library_scanned(lib.id, 3000 + n as u64)
                })
                .expect("items");
            let all = store
                .read(|rx| {
                    let mut v = Vec::new();
                    rx.visit_items(lib.id, hearth::library::ItemSort::Title, false, |i| {
                        v.push(i);
                        true
                    })?;
                    Ok::<_, hearth::store::StoreError>(v)
                })
                .expect("read back");
            for it in all {
                ids.push(ObjectId::Item(it.id).to_string());
                if hidden_item(&it) || hidden_library(&lib) {
                    hidden_items.push(it.id);
                }
                let parent = hearth::dlna::tree::item_parent(kind, &it);
                let mut p = Some(parent);
                while let Some(c) = p {
                    let s = c.to_string();
                    if !ids.contains(&s) {
                        ids.push(s);
                    }
                    p = c.parent();
                }
            }
        }
        World {
            store,
            ids,
            hidden_library: hidden_library_id,
            hidden_items,
        }
    })
}

const ACTIONS: &[(&str, &str, &[&str])] = &[
    (
        CONTENT_DIRECTORY,
        "Browse",
        &[
            "ObjectID",
            "BrowseFlag",
            "Filter",
            "StartingIndex",
            "RequestedCount",
            "SortCriteria",
        ],
    ),
    (
        CONTENT_DIRECTORY,
        "Search",
        &[
            "ContainerID",
            "SearchCriteria",
            "Filter",
            "StartingIndex",
            "RequestedCount",
            "SortCriteria",
        ],
    ),
    (CONTENT_DIRECTORY, "GetSearchCapabilities", &[]),
    (CONTENT_DIRECTORY, "GetSortCapabilities", &[]),
    (CONTENT_DIRECTORY, "GetSystemUpdateID", &[]),
    (CONNECTION_MANAGER, "GetProtocolInfo", &[]),
    (CONNECTION_MANAGER, "GetCurrentConnectionIDs", &[]),
    (
        CONNECTION_MANAGER,
        "GetCurrentConnectionInfo",
        &["ConnectionID"],
    ),
    (CONTENT_DIRECTORY, "DestroyObject", &["ObjectID"]),
];

const CRITERIA: &[&str] = &[
    "*",
    "upnp:class derivedfrom \"object.item.videoItem\"",
    "upnp:class = \"object.item.audioItem.musicTrack\" and dc:title contains \"harbour\"",
    "dc:title contains \"secret\" or upnp:artist exists true",
    "(dc:date >= \"2000-01-01\" and dc:date < \"2020\") or upnp:genre = \"drama\"",
    "@id = \"i.1\" or @parentID != \"0\"",
    "upnp:album doesNotContain \"tide\" and upnp:originalTrackNumber > \"1\"",
];

/// A one-byte value stands for a meaningful one.
fn expand(w: &World, name: &str, raw: &[u8]) -> String {
    if let [b] = raw {
        let b = *b as usize;
        let pick = |list: &[&str]| list[b % list.len()].to_owned();
        return match name {
            "ObjectID" | "ContainerID" => w.ids[b % w.ids.len()].clone(),
            "BrowseFlag" => pick(&["BrowseMetadata", "BrowseDirectChildren", "Other"]),
            "Filter" => pick(&[
                "*",
                "",
                "dc:date,res,res@size,res@duration,upnp:album",
                "@searchable",
            ]),
            "SortCriteria" => pick(&[
                "",
                "+dc:title",
                "-dc:date,+upnp:originalTrackNumber",
                "+upnp:class,-dc:creator",
            ]),
            "SearchCriteria" => pick(CRITERIA),
            "StartingIndex" | "RequestedCount" => (b % 8).to_string(),
            "ConnectionID" => pick(&["0", "1", " 0 "]),
            _ => String::from_utf8_lossy(raw).into_owned(),
        };
    }
    String::from_utf8_lossy(raw).into_owned()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A well-formed envelope for one of ACTIONS, argument values from `rest` (split at 0xff,
/// which UTF-8 never contains).
fn envelope(w: &World, pick: u8, rest: &[u8]) -> (&'static str, Vec<u8>) {
    let (service, action, names) = ACTIONS[pick as usize % ACTIONS.len()];
    let mut values = rest.split(|&b| b == 0xff);
    let mut args = Vec::new();
    for name in names {
        // A missing value leaves the argument out (InvalidArgs must follow, not a panic).
        let Some(v) = values.next() else { break };
        args.push((*name, expand(w, name, v)));
    }
    let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
    envelope_of(action, service, &args)
}

fn envelope_of(
    action: &str,
    service: &'static str,
    args: &[(&str, &str)],
) -> (&'static str, Vec<u8>) {
    let inner: String = args
        .iter()
        .map(|(k, v)| format!("<{k}>{}</{k}>", escape(v)))
        .collect();
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:{action} xmlns:u="{service}">{inner}</u:{action}></s:Body></s:Envelope>"#
    );
    (service, body.into_bytes())
}

/// Walks a whole XML document; returns the text of each element (by local name) whose text
/// is wanted. Panics on anything that is not well-formed.
fn read_xml(doc: &[u8], wanted: &[&str]) -> Vec<(String, String)> {
    let mut r = quick_xml::Reader::from_reader(doc);
    let mut buf = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut out = Vec::new();
    loop {
        match r.read_event_into(&mut buf).expect("well-formed XML") {
            Event::Start(e) => {
                stack.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
            }
            Event::End(_) => {
                stack.pop().expect("balanced");
            }
            Event::Text(t) => {
                if let Some(top) = stack.last()
                    && wanted.contains(&top.as_str())
                {
                    out.push((
                        top.clone(),
                        t.unescape().expect("escaped text").into_owned(),
                    ));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    out
}

fn check_id(w: &World, id: &str) {
    if id == "-1" {
        return;
    }
    let parsed = ObjectId::parse(id).unwrap_or_else(|| panic!("answered id {id:?} does not parse"));
    assert_eq!(parsed.to_string(), id, "ids are written in one form");
    let lib = match &parsed {
        ObjectId::Library(l)
        | ObjectId::Show(l, ..)
        | ObjectId::Season(l, ..)
        | ObjectId::Artist(l, ..)
        | ObjectId::Album(l, ..)
        | ObjectId::Month(l, ..) => Some(*l),
        ObjectId::Item(i) => {
            assert!(!w.hidden_items.contains(i), "hidden item {i} answered");
            None
        }
        ObjectId::Root => None,
    };
    assert!(lib != Some(w.hidden_library), "hidden library in {id}");
}

/// Checks a DIDL-Lite document; returns how many objects it holds and each container's id
/// with its `childCount`.
fn check_didl(w: &World, didl: &str) -> (usize, Vec<(String, usize)>) {
    let mut r = quick_xml::Reader::from_str(didl);
    let mut objects = 0;
    let mut containers = Vec::new();
    loop {
        match r.read_event().expect("well-formed DIDL-Lite") {
            Event::Start(e) | Event::Empty(e)
                if matches!(e.local_name().as_ref(), b"item" | b"container") =>
            {
                objects += 1;
                let (mut id, mut count) = (None, None);
                for a in e.attributes() {
                    let a = a.expect("an attribute");
                    let v = a.unescape_value().expect("attribute value").into_owned();
                    match a.key.as_ref() {
                        b"id" => {
                            check_id(w, &v);
                            id = Some(v);
                        }
                        b"parentID" => check_id(w, &v),
                        b"childCount" => count = Some(v.parse::<usize>().expect("a count")),
                        _ => {}
                    }
                }
                if e.local_name().as_ref() == b"container" {
                    containers.push((id.expect("a container id"), count.expect("childCount")));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    (objects, containers)
}

/// What an answer said: `TotalMatches` and the containers it listed.
struct Checked {
    total: Option<usize>,
    containers: Vec<(String, usize)>,
}

fn check_answer(
    w: &World,
    call_action: Option<&str>,
    answer: &Result<Vec<u8>, soap::Fault>,
) -> Checked {
    let mut checked = Checked {
        total: None,
        containers: Vec::new(),
    };
    let body = match answer {
        Ok(b) => b.clone(),
        Err(f) => soap::fault(*f),
    };
    let text = String::from_utf8_lossy(&body);
    for secret in ["Secret", "536563726574", "Private"] {
        assert!(!text.contains(secret), "{secret} in an answer");
    }
    let fields = read_xml(
        &body,
        &["Result", "NumberReturned", "TotalMatches", "errorCode"],
    );
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Ok(_) = answer else {
        assert!(body.len() <= 1024, "a fault of {} bytes", body.len());
        assert!(get("errorCode").is_some());
        return checked;
    };
    let returned: usize = get("NumberReturned").map_or(0, |n| n.parse().expect("a count"));
    assert!(
        body.len() <= 4096 + returned * 2048,
        "{} bytes for {returned} objects",
        body.len()
    );
    if let Some(didl) = get("Result") {
        let total: usize = get("TotalMatches")
            .expect("TotalMatches")
            .parse()
            .expect("a count");
        assert!(returned <= total && returned <= MAX_RETURNED);
        let (objects, containers) = check_didl(w, didl);
        assert_eq!(objects, returned, "NumberReturned is what the result holds");
        checked.total = Some(total);
        checked.containers = containers;
    } else if matches!(call_action, Some("Browse" | "Search")) {
        panic!("a Browse or Search answer without Result");
    }
    checked
}

/// A parsed call, written as a response, reads back as the same call (the writer and the
/// reader agree), where the reader's whitespace trimming cannot tell them apart.
fn round_trip(call: &Call) {
    // Namespace values are compared as written (quick-xml does not expand entities in
    // them), so one with an entity or a character the writer escapes cannot come back equal;
    // it can never name one of our services, so such a call is refused either way. Names
    // need no exception: the reader takes only UPnP names.
    if call.service.contains(['&', '<', '>', '"', '\''])
        || call.args.iter().any(|(_, v)| v.trim() != v)
    {
        return;
    }
    let args: Vec<(&str, String)> = call
        .args
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let written = soap::response(&call.service, &call.action, &args);
    let back = soap::parse_call(&written).expect("our own response reads back");
    assert_eq!(back.service, call.service);
    assert_eq!(back.action, format!("{}Response", call.action));
    assert_eq!(back.args, call.args);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    let (lib_ok, item_ok) = (
        |l: &LibraryRecord| !hidden_library(l),
        |i: &ItemRecord| !hidden_item(i),
    );
    let access = Access {
        library: &lib_ok,
        item: &item_ok,
    };
    let (service, body) = if mode & 1 == 0 {
        let service = if mode & 2 == 0 {
            CONTENT_DIRECTORY
        } else {
            CONNECTION_MANAGER
        };
        (service, rest.to_vec())
    } else {
        match rest.split_first() {
            Some((&pick, values)) => envelope(w, pick, values),
            None => return,
        }
    };
    let call = soap::parse_call(&body);
    if let Ok(c) = &call {
        assert!(c.args.len() <= 16);
        assert!(c.args.iter().all(|(_, v)| v.len() <= 4096));
        round_trip(c);
    }
    let answer = control::run(&w.store, &access, &TestLinks, service, &body);
    let checked = check_answer(w, call.as_ref().ok().map(|c| c.action.as_str()), &answer);
    // A container's childCount is what browsing it lists: nothing hidden is counted.
    for (id, count) in checked.containers.iter().take(3) {
        let (_, body) = envelope_of(
            "Browse",
            CONTENT_DIRECTORY,
            &[
                ("ObjectID", id.as_str()),
                ("BrowseFlag", "BrowseDirectChildren"),
                ("Filter", ""),
                ("StartingIndex", "0"),
                ("RequestedCount", "0"),
                ("SortCriteria", ""),
            ],
        );
        let children = control::run(&w.store, &access, &TestLinks, CONTENT_DIRECTORY, &body);
        assert!(
            children.is_ok(),
            "listed container {id} does not browse: {children:?}"
        );
        let listed = check_answer(w, Some("Browse"), &children);
        assert_eq!(listed.total, Some(*count), "childCount of {id}");
    }
});
