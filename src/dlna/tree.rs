//! The ContentDirectory object tree, built from the libraries on each request:
//!
//! ```text
//! 0                              root: one container per library DLNA may show
//! ├── l.<lib>                    movies / videos: the items, by title
//! ├── l.<lib>                    shows: s.<lib>.<show> → n.<lib>.<show>.<season> → episodes
//! ├── l.<lib>                    music: a.<lib>.<artist> → b.<lib>.<artist>.<album> → tracks
//! └── l.<lib>                    photos: m.<lib>.<YYYY-MM> → photos, newest month first
//! i.<item>                       an item; its parent is the container it is listed in
//! ```
//!
//! Names in ids are hex-encoded UTF-8, so an id never needs escaping and parses back exactly.
//! Like `library::browse`, every function takes the viewer's `allowed` predicates (for DLNA:
//! the DLNA profile through `policy`), so nothing hidden is listed, counted or found.

use std::collections::BTreeMap;

use super::criteria::{Expr, Searchable, SortKey};
use crate::library::{ItemKind, ItemRecord, ItemSort, LibraryKind, LibraryRecord};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectId {
    Root,
    Library(u64),
    Show(u64, String),
    Season(u64, String, Option<u32>),
    Artist(u64, String),
    Album(u64, String, String),
    Month(u64, String),
    Item(u64),
}

fn unhex(s: &str) -> Option<String> {
    String::from_utf8(hex::decode(s).ok()?).ok()
}

impl ObjectId {
    /// Parses an id a player sent back; anything we did not make is `None`.
    pub fn parse(s: &str) -> Option<ObjectId> {
        if s == "0" {
            return Some(ObjectId::Root);
        }
        if s.len() > 1024 {
            return None;
        }
        let parts: Vec<&str> = s.split('.').collect();
        let num = |p: &str| -> Option<u64> {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        };
        Some(match parts.as_slice() {
            ["l", lib] => ObjectId::Library(num(lib)?),
            ["s", lib, show] => ObjectId::Show(num(lib)?, unhex(show)?),
            ["n", lib, show, season] => ObjectId::Season(
                num(lib)?,
                unhex(show)?,
                match *season {
                    "x" => None,
                    n => Some(u32::try_from(num(n)?).ok()?),
                },
            ),
            ["a", lib, artist] => ObjectId::Artist(num(lib)?, unhex(artist)?),
            ["b", lib, artist, album] => ObjectId::Album(num(lib)?, unhex(artist)?, unhex(album)?),
            ["m", lib, month]
                if month.len() <= 16
                    && month
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                ObjectId::Month(num(lib)?, (*month).to_owned())
            }
            ["i", id] => ObjectId::Item(num(id)?),
            _ => return None,
        })
    }

    /// The container this object is listed in (`None` for the root).
    pub fn parent(&self) -> Option<ObjectId> {
        Some(match self {
            ObjectId::Root => return None,
            ObjectId::Library(_) => ObjectId::Root,
            ObjectId::Show(l, _) | ObjectId::Artist(l, _) | ObjectId::Month(l, _) => {
                ObjectId::Library(*l)
            }
            ObjectId::Season(l, s, _) => ObjectId::Show(*l, s.clone()),
            ObjectId::Album(l, a, _) => ObjectId::Artist(*l, a.clone()),
            // An item's parent depends on its library; see `item_parent`.
            ObjectId::Item(_) => return None,
        })
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = |s: &str| hex::encode(s.as_bytes());
        match self {
            ObjectId::Root => write!(f, "0"),
            ObjectId::Library(l) => write!(f, "l.{l}"),
            ObjectId::Show(l, s) => write!(f, "s.{l}.{}", h(s)),
            ObjectId::Season(l, s, n) => match n {
                Some(n) => write!(f, "n.{l}.{}.{n}", h(s)),
                None => write!(f, "n.{l}.{}.x", h(s)),
            },
            ObjectId::Artist(l, a) => write!(f, "a.{l}.{}", h(a)),
            ObjectId::Album(l, a, b) => write!(f, "b.{l}.{}.{}", h(a), h(b)),
            ObjectId::Month(l, m) => write!(f, "m.{l}.{m}"),
            ObjectId::Item(i) => write!(f, "i.{i}"),
        }
    }
}

/// A container as DIDL-Lite shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: ObjectId,
    pub title: String,
    pub class: &'static str,
    pub child_count: usize,
}

/// One object of a Browse or Search answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Container(Container),
    Item {
        parent: ObjectId,
        item: Box<ItemRecord>,
    },
}

impl Object {
    pub fn id(&self) -> ObjectId {
        match self {
            Object::Container(c) => c.id.clone(),
            Object::Item { item, .. } => ObjectId::Item(item.id),
        }
    }
    /// The parent's id as DIDL-Lite writes it (`-1` for the root).
    pub fn parent_id(&self) -> String {
        match self {
            Object::Container(c) => {
                c.id.parent()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-1".into())
            }
            Object::Item { parent, .. } => parent.to_string(),
        }
    }
    pub fn title(&self) -> &str {
        match self {
            Object::Container(c) => &c.title,
            Object::Item { item, .. } => &item.title,
        }
    }
    pub fn class(&self) -> &'static str {
        match self {
            Object::Container(c) => c.class,
            Object::Item { item, .. } => item_class(item),
        }
    }
}

pub fn item_class(item: &ItemRecord) -> &'static str {
    match item.kind {
        Some(ItemKind::Movie) => "object.item.videoItem.movie",
        Some(ItemKind::Episode) | Some(ItemKind::Video) => "object.item.videoItem",
        Some(ItemKind::Track) => "object.item.audioItem.musicTrack",
        Some(ItemKind::Photo) => "object.item.imageItem.photo",
        None if item.content_type.starts_with("audio/") => "object.item.audioItem",
        None if item.content_type.starts_with("image/") => "object.item.imageItem",
        None => "object.item.videoItem",
    }
}

/// `YYYY-MM-DD` for `dc:date`, from the most precise date the item has.
pub fn item_date(item: &ItemRecord) -> Option<String> {
    let iso = |s: &str| {
        let d = s.get(..10)?;
        let b = d.as_bytes();
        (b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && d.bytes()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()))
        .then(|| d.to_owned())
    };
    item.air_date
        .as_deref()
        .and_then(iso)
        .or_else(|| item.taken_at.as_deref().and_then(iso))
        .or_else(|| item.year.map(|y| format!("{y:04}-01-01")))
}

impl Searchable for Object {
    fn values(&self, property: &str) -> Vec<String> {
        let one = |v: Option<String>| v.into_iter().collect::<Vec<_>>();
        match property {
            "@id" => vec![self.id().to_string()],
            "@parentID" => vec![self.parent_id()],
            "upnp:class" => vec![self.class().to_owned()],
            "dc:title" => vec![self.title().to_owned()],
            _ => match self {
                Object::Container(_) => Vec::new(),
                Object::Item { item, .. } => match property {
                    "dc:creator" | "upnp:artist" => one(item.artist.clone()),
                    "upnp:album" => one(item.album.clone()),
                    "upnp:genre" => item.genres.clone(),
                    "dc:date" => one(item_date(item)),
                    "upnp:originalTrackNumber" => one(item.track.map(|t| t.to_string())),
                    _ => Vec::new(),
                },
            },
        }
    }
}

/// The viewer's filters: which libraries, which items.
pub struct Access<'a> {
    pub library: &'a dyn Fn(&LibraryRecord) -> bool,
    pub item: &'a dyn Fn(&ItemRecord) -> bool,
}

/// The month an item is listed under in a photo library.
fn month_of(item: &ItemRecord) -> String {
    item.taken_at
        .as_deref()
        .and_then(|t| t.get(..7))
        .filter(|m| m.len() == 7 && m.as_bytes()[4] == b'-')
        .unwrap_or("unknown")
        .to_owned()
}

/// Where an item of a library of `kind` is listed.
pub fn item_parent(kind: LibraryKind, item: &ItemRecord) -> ObjectId {
    let lib = item.library_id;
    match (kind, item.kind) {
        (LibraryKind::Shows, Some(ItemKind::Episode)) => {
            ObjectId::Season(lib, item.show.clone().unwrap_or_default(), item.season)
        }
        (LibraryKind::Music, Some(ItemKind::Track)) => ObjectId::Album(
            lib,
            item.artist.clone().unwrap_or_default(),
            item.album.clone().unwrap_or_default(),
        ),
        (LibraryKind::Photos, Some(ItemKind::Photo)) => ObjectId::Month(lib, month_of(item)),
        _ => ObjectId::Library(lib),
    }
}

fn visible_library(
    store: &Store,
    id: u64,
    access: &Access<'_>,
) -> Result<Option<LibraryRecord>, StoreError> {
    Ok(store
        .read(|rx| rx.library(id))?
        .filter(|l| (access.library)(l)))
}

/// Every item of a library the viewer may see, by title.
fn library_items(
    store: &Store,
    lib: u64,
    access: &Access<'_>,
) -> Result<Vec<ItemRecord>, StoreError> {
    let mut out = Vec::new();
    store.read(|rx| {
        rx.visit_items(lib, ItemSort::Title, false, |item| {
            if (access.item)(&item) {
                out.push(item);
            }
            true
        })
    })?;
    Ok(out)
}

fn item_object(kind: LibraryKind, item: ItemRecord) -> Object {
    Object::Item {
        parent: item_parent(kind, &item),
        item: Box::new(item),
    }
}

fn label(name: &str, unknown: &str) -> String {
    if name.trim().is_empty() {
        unknown.to_owned()
    } else {
        name.to_owned()
    }
}

/// A container being built: its id, title, class and the items under it.
type Group = (ObjectId, String, &'static str, Vec<ItemRecord>);

/// The objects directly inside `lib`'s container, or inside one of its sub-containers,
/// from the library's visible items (pure: the grouping is here, the reading above).
fn group(lib: &LibraryRecord, items: Vec<ItemRecord>, within: &ObjectId) -> Option<Vec<Object>> {
    let l = lib.id;
    let kind = lib.kind;
    // Containers in order of first appearance under their sort key, with their children.
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut loose = Vec::new();
    let mut found = matches!(within, ObjectId::Library(_));
    for item in items {
        let parent = item_parent(kind, &item);
        // The chain of containers above the item, nearest last.
        let mut chain = vec![parent.clone()];
        while let Some(p) = chain.last().and_then(|c| c.parent()) {
            if p == ObjectId::Library(l) || p == ObjectId::Root {
                break;
            }
            chain.push(p);
        }
        chain.reverse();
        if chain.iter().any(|c| c == within) {
            found = true;
        }
        // The child of `within` this item falls under (itself, or a container).
        let position = if parent == *within {
            None
        } else if let Some(i) = chain.iter().position(|c| c == within) {
            Some(chain[i + 1].clone())
        } else if *within == ObjectId::Library(l) {
            if parent == ObjectId::Library(l) {
                None
            } else {
                Some(chain[0].clone())
            }
        } else {
            continue;
        };
        match position {
            None => loose.push(item),
            Some(c) => {
                let (key, title, class) = container_facts(&c, &item);
                groups
                    .entry((key, c.to_string()))
                    .or_insert_with(|| (c, title, class, Vec::new()))
                    .3
                    .push(item);
            }
        }
    }
    if !found {
        return None;
    }
    let mut out: Vec<Object> = groups
        .into_values()
        .map(|(id, title, class, children)| {
            let child_count = count_children(lib, &id, children);
            Object::Container(Container {
                id,
                title,
                class,
                child_count,
            })
        })
        .collect();
    if kind == LibraryKind::Photos && matches!(within, ObjectId::Library(_)) {
        // Newest month first, like the web app's timeline.
        out.reverse();
    }
    match within {
        ObjectId::Season(..) => loose.sort_by(|a, b| {
            (a.episode, &a.air_date, &a.sort_title).cmp(&(b.episode, &b.air_date, &b.sort_title))
        }),
        ObjectId::Album(..) => loose.sort_by(|a, b| {
            (a.disc, a.track, &a.sort_title).cmp(&(b.disc, b.track, &b.sort_title))
        }),
        ObjectId::Month(..) => loose.sort_by(|a, b| b.taken_at.cmp(&a.taken_at)),
        _ => {}
    }
    out.extend(loose.into_iter().map(|i| item_object(kind, i)));
    Some(out)
}

/// Sort key, title and class of the container `c` that `item` is listed under.
fn container_facts(c: &ObjectId, item: &ItemRecord) -> (String, String, &'static str) {
    use crate::library::names::sort_key;
    match c {
        ObjectId::Show(_, s) => (
            sort_key(s),
            label(s, "Unknown show"),
            "object.container.storageFolder",
        ),
        ObjectId::Season(_, _, n) => (
            format!("{:010}", n.map(|n| n + 1).unwrap_or(0)),
            match n {
                Some(0) => "Specials".into(),
                Some(n) => format!("Season {n}"),
                None => "Episodes".into(),
            },
            "object.container.storageFolder",
        ),
        ObjectId::Artist(_, a) => (
            sort_key(a),
            label(a, "Unknown artist"),
            "object.container.person.musicArtist",
        ),
        ObjectId::Album(_, _, b) => (
            format!("{:05}{}", item.year.unwrap_or(0), sort_key(b)),
            label(b, "Unknown album"),
            "object.container.album.musicAlbum",
        ),
        ObjectId::Month(_, m) => (
            m.clone(),
            label(m, "Unknown date"),
            "object.container.album.photoAlbum",
        ),
        _ => (String::new(), String::new(), "object.container"),
    }
}

fn count_children(lib: &LibraryRecord, id: &ObjectId, items: Vec<ItemRecord>) -> usize {
    group(lib, items, id).map(|v| v.len()).unwrap_or(0)
}

fn library_container(
    store: &Store,
    lib: &LibraryRecord,
    access: &Access<'_>,
) -> Result<Object, StoreError> {
    let items = library_items(store, lib.id, access)?;
    let within = ObjectId::Library(lib.id);
    Ok(Object::Container(Container {
        id: within.clone(),
        title: lib.name.clone(),
        class: "object.container.storageFolder",
        child_count: count_children(lib, &within, items),
    }))
}

fn visible_libraries(store: &Store, access: &Access<'_>) -> Result<Vec<LibraryRecord>, StoreError> {
    let mut libs = store.read(|rx| rx.libraries())?;
    libs.retain(|l| (access.library)(l));
    libs.sort_by_key(|l| (l.name.to_lowercase(), l.id));
    Ok(libs)
}

fn library_of(id: &ObjectId) -> Option<u64> {
    match id {
        ObjectId::Library(l)
        | ObjectId::Show(l, ..)
        | ObjectId::Season(l, ..)
        | ObjectId::Artist(l, ..)
        | ObjectId::Album(l, ..)
        | ObjectId::Month(l, ..) => Some(*l),
        ObjectId::Root | ObjectId::Item(_) => None,
    }
}

/// The children of a container, in natural order; `None` if there is no such container
/// (or the viewer may not see it, which a player cannot tell apart).
pub fn children(
    store: &Store,
    id: &ObjectId,
    access: &Access<'_>,
) -> Result<Option<Vec<Object>>, StoreError> {
    if *id == ObjectId::Root {
        let mut out = Vec::new();
        for lib in visible_libraries(store, access)? {
            out.push(library_container(store, &lib, access)?);
        }
        return Ok(Some(out));
    }
    let Some(l) = library_of(id) else {
        return Ok(None);
    };
    let Some(lib) = visible_library(store, l, access)? else {
        return Ok(None);
    };
    let items = library_items(store, l, access)?;
    Ok(group(&lib, items, id))
}

/// One object by id (BrowseMetadata).
pub fn object(
    store: &Store,
    id: &ObjectId,
    access: &Access<'_>,
) -> Result<Option<Object>, StoreError> {
    match id {
        ObjectId::Root => {
            let n = visible_libraries(store, access)?.len();
            Ok(Some(Object::Container(Container {
                id: ObjectId::Root,
                title: "Hearth".into(),
                class: "object.container",
                child_count: n,
            })))
        }
        ObjectId::Item(i) => {
            let Some(item) = store.read(|rx| rx.item(*i))? else {
                return Ok(None);
            };
            if !(access.item)(&item) {
                return Ok(None);
            }
            let Some(lib) = visible_library(store, item.library_id, access)? else {
                return Ok(None);
            };
            Ok(Some(item_object(lib.kind, item)))
        }
        ObjectId::Library(l) => match visible_library(store, *l, access)? {
            Some(lib) => Ok(Some(library_container(store, &lib, access)?)),
            None => Ok(None),
        },
        other => {
            let Some(parent) = other.parent() else {
                return Ok(None);
            };
            Ok(children(store, &parent, access)?
                .and_then(|siblings| siblings.into_iter().find(|o| o.id() == *other)))
        }
    }
}

/// Items under `within` (at any depth) that match `criteria`, in natural order; `None` if
/// there is no such container.
pub fn search(
    store: &Store,
    within: &ObjectId,
    criteria: &Expr,
    access: &Access<'_>,
) -> Result<Option<Vec<Object>>, StoreError> {
    let libs: Vec<LibraryRecord> = match within {
        ObjectId::Root => visible_libraries(store, access)?,
        ObjectId::Item(_) => return Ok(None),
        other => match library_of(other)
            .map(|l| visible_library(store, l, access))
            .transpose()?
            .flatten()
        {
            Some(lib) => vec![lib],
            None => return Ok(None),
        },
    };
    let mut out = Vec::new();
    let mut found = matches!(within, ObjectId::Root | ObjectId::Library(_));
    for lib in libs {
        for item in library_items(store, lib.id, access)? {
            let obj = item_object(lib.kind, item);
            let under = match within {
                ObjectId::Root | ObjectId::Library(_) => true,
                w => {
                    let mut p = match &obj {
                        Object::Item { parent, .. } => Some(parent.clone()),
                        Object::Container(_) => None,
                    };
                    let mut hit = false;
                    while let Some(c) = p {
                        if c == *w {
                            hit = true;
                            break;
                        }
                        p = c.parent();
                    }
                    hit
                }
            };
            if !under {
                continue;
            }
            found = true;
            if criteria.matches(&obj) {
                out.push(obj);
            }
        }
    }
    Ok(found.then_some(out))
}

/// Sorts by the player's keys (stable, so equal keys keep the natural order).
pub fn sort(objects: &mut [Object], keys: &[SortKey]) {
    if !keys.is_empty() {
        objects.sort_by(|a, b| super::criteria::sort_order(keys, a, b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_foreign_ids_are_refused() {
        let ids = [
            ObjectId::Root,
            ObjectId::Library(3),
            ObjectId::Show(3, "Harbour Days".into()),
            ObjectId::Season(3, "Harbour.Days".into(), Some(2)),
            ObjectId::Season(3, "".into(), None),
            ObjectId::Artist(4, "Ünïcødé & \"quotes\"".into()),
            ObjectId::Album(4, "A".into(), "B.C".into()),
            ObjectId::Month(5, "2021-07".into()),
            ObjectId::Item(99),
        ];
        for id in ids {
            assert_eq!(ObjectId::parse(&id.to_string()), Some(id.clone()), "{id}");
        }
        for bad in [
            "",
            "-1",
            "1",
            "l",
            "l.",
            "l.x",
            "l.-1",
            "l.1.2",
            "s.1.zz",
            "n.1.41.y",
            "i.1e3",
            "m.1.<script>",
            "q.1",
            "l.99999999999999999999999",
        ] {
            assert_eq!(ObjectId::parse(bad), None, "{bad:?}");
        }
    }

    fn lib(kind: LibraryKind) -> LibraryRecord {
        LibraryRecord {
            id: 1,
            name: "L".into(),
            kind,
            folder_ids: vec![],
            created_at: 0,
            last_scan: None,
        }
    }

    fn track(id: u64, artist: &str, album: &str, n: u32) -> ItemRecord {
        ItemRecord {
            id,
            library_id: 1,
            kind: Some(ItemKind::Track),
            title: format!("t{id}"),
            sort_title: format!("t{id}"),
            artist: (!artist.is_empty()).then(|| artist.into()),
            album: Some(album.into()),
            track: Some(n),
            content_type: "audio/mpeg".into(),
            ..Default::default()
        }
    }

    #[test]
    fn music_groups_into_artists_albums_and_tracks() {
        let l = lib(LibraryKind::Music);
        let items = vec![
            track(1, "Gulls", "Low Tide", 2),
            track(2, "Gulls", "Low Tide", 1),
            track(3, "Gulls", "High Tide", 1),
            track(4, "", "Demos", 1),
        ];
        let top = group(&l, items.clone(), &ObjectId::Library(1)).unwrap();
        let titles: Vec<_> = top.iter().map(|o| o.title().to_owned()).collect();
        assert_eq!(titles, ["Unknown artist", "Gulls"]);
        let Object::Container(gulls) = &top[1] else {
            panic!()
        };
        assert_eq!(gulls.child_count, 2);
        let albums = group(&l, items.clone(), &gulls.id).unwrap();
        assert_eq!(albums.len(), 2);
        let low = albums.iter().find(|o| o.title() == "Low Tide").unwrap();
        let tracks = group(&l, items.clone(), &low.id()).unwrap();
        let ids: Vec<_> = tracks.iter().map(|o| o.id().to_string()).collect();
        assert_eq!(ids, ["i.2", "i.1"], "track order");
        assert_eq!(tracks[0].parent_id(), low.id().to_string());
        assert!(group(&l, items, &ObjectId::Artist(1, "Nobody".into())).is_none());
    }
}
