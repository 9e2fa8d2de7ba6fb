//! The scanner against the generated test media copied to a temp dir, with a real redb store:
//! what each library kind finds, scan errors for broken files, incremental rescans,
//! symlink/`..` escapes, a file deleted mid-scan, browse/search with an `allowed` hook,
//! and the filesystem watcher.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::library::browse::{self, ItemQuery};
use hearth::library::{
    self, ItemKind, ItemRecord, ItemSort, LibraryKind, NewLibrary, ScanOptions, Scans,
};
use hearth::store::Store;

#[path = "common/media.rs"]
mod media;

/// Copies a tree, making everything writable (the generated library is read-only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ft.is_file() {
            std::fs::copy(e.path(), &dest).unwrap();
            let mut perm = std::fs::metadata(&dest).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&dest, perm).unwrap();
        }
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    media: PathBuf,
    store: Store,
    scans: Scans,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    copy_tree(&media::test_media(), &media);
    let store = Store::open(&tmp.path().join("hearth.redb")).unwrap();
    Fixture {
        _tmp: tmp,
        media,
        store,
        scans: Scans::default(),
    }
}

impl Fixture {
    fn library(&self, name: &str, kind: LibraryKind, sub: &str) -> u64 {
        let new = NewLibrary {
            name: name.into(),
            kind,
            folders: vec![self.media.join(sub).to_str().unwrap().to_owned()],
        };
        library::create_library(&self.store, &new, 1).unwrap().id
    }

    fn scan(&self, lib: u64) -> library::ScanSummary {
        self.scans
            .run_blocking(&self.store, lib, &ScanOptions::default())
            .unwrap()
    }

    fn all(&self, lib: u64) -> Vec<ItemRecord> {
        let q = ItemQuery {
            limit: 500,
            ..ItemQuery::default()
        };
        browse::items(&self.store, lib, &q, |_| true, |_| true)
            .unwrap()
            .items
    }

    fn errors(&self, lib: u64) -> Vec<(String, String)> {
        let mut e: Vec<_> = self
            .store
            .read(|rx| rx.scan_errors(lib))
            .unwrap()
            .into_iter()
            .map(|e| (e.rel_path, e.message))
            .collect();
        e.sort();
        e
    }
}

fn by_title<'a>(items: &'a [ItemRecord], title: &str) -> &'a ItemRecord {
    items
        .iter()
        .find(|i| i.title == title)
        .unwrap_or_else(|| panic!("no item {title:?} in {:?}", titles(items)))
}

fn titles(items: &[ItemRecord]) -> Vec<String> {
    items.iter().map(|i| i.title.clone()).collect()
}

#[test]
fn movies_library() {
    let f = fixture();
    let lib = f.library("Films", LibraryKind::Movies, "Movies");
    let s = f.scan(lib);
    assert_eq!(s.new, 12, "{s:?}");
    assert_eq!(s.errors, 4, "{s:?} {:?}", f.errors(lib));
    let items = f.all(lib);
    assert_eq!(items.len(), 12, "{:?}", titles(&items));

    let ratings: Vec<(&str, Option<&str>, Option<&str>)> = vec![
        ("Sunny Meadow", None, Some("G")),
        ("Rocket Club", None, Some("PG")),
        ("Paper Boats", None, Some("PG")),
        ("Night Harbour", None, Some("PG-13")),
        ("Crimson Alley", None, Some("R")),
        ("Midnight Ledger", None, Some("NC-17")),
        ("Fjord Light", Some("gb"), Some("12A")),
        ("Waldlauf", Some("de"), Some("FSK 16")),
        ("Volpe Nera", Some("it"), Some("VM14")),
        ("Untitled Home Reel", None, None),
    ];
    for (title, hint, value) in ratings {
        let item = by_title(&items, title);
        assert_eq!(item.kind, Some(ItemKind::Movie));
        assert_eq!(
            item.rating.as_ref().and_then(|r| r.system_hint.as_deref()),
            hint,
            "{title}"
        );
        assert_eq!(
            item.rating.as_ref().map(|r| r.value.as_str()),
            value,
            "{title}"
        );
        assert!(item.year.is_some(), "{title}");
        let video = item.video.as_ref().expect("video facts");
        assert!(video.duration_ms.unwrap_or(0) > 0, "{title}: {video:?}");
        assert!(video.width.unwrap_or(0) > 0, "{title}: {video:?}");
        assert!(video.video_codec.is_some(), "{title}");
        assert!(item.artwork.is_some(), "{title} has a poster");
    }
    let night = by_title(&items, "Night Harbour");
    assert!(night.tags.iter().any(|t| t == "noir"));
    assert_eq!(night.year, Some(2018));
    let paper = by_title(&items, "Paper Boats");
    assert_eq!(paper.content_type, "video/mp4");
    assert_eq!(paper.subtitles.len(), 1);
    assert_eq!(paper.subtitles[0].language.as_deref(), Some("en"));
    let parts: Vec<_> = items.iter().filter(|i| i.title == "Long Road").collect();
    assert_eq!(parts.len(), 2);
    let mut part_numbers: Vec<_> = parts.iter().map(|p| p.part).collect();
    part_numbers.sort();
    assert_eq!(part_numbers, vec![Some(1), Some(2)]);

    let errors = f.errors(lib);
    let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "Broken Things (2000)/Empty File (2000).mkv",
            "Broken Things (2000)/Fake (2000).mp4",
            "Broken Things (2000)/Truncated (2000).mkv",
            "Broken Things (2000)/movie.nfo",
        ]
    );
    for (p, msg) in &errors {
        assert!(msg.len() > 10, "{p}: {msg}");
    }
    assert!(errors[0].1.contains("empty"), "{:?}", errors[0]);
    assert!(errors[2].1.contains("cut short"), "{:?}", errors[2]);
    assert!(errors[3].1.contains("XML"), "{:?}", errors[3]);

    // Sorted browsing, filters, and the policy hook.
    let by_year = browse::items(
        &f.store,
        lib,
        &ItemQuery {
            sort: ItemSort::Year,
            ..ItemQuery::default()
        },
        |_| true,
        |_| true,
    )
    .unwrap();
    let years: Vec<_> = by_year.items.iter().map(|i| i.year).collect();
    let mut sorted = years.clone();
    sorted.sort();
    assert_eq!(years, sorted);
    let dramas = browse::items(
        &f.store,
        lib,
        &ItemQuery {
            genre: Some("drama".into()),
            ..ItemQuery::default()
        },
        |_| true,
        |_| true,
    )
    .unwrap();
    assert!(dramas.items.iter().any(|i| i.title == "Fjord Light"));
    assert!(
        dramas
            .items
            .iter()
            .all(|i| i.genres.iter().any(|g| g.eq_ignore_ascii_case("drama")))
    );
    let kids_only = |i: &ItemRecord| {
        i.rating
            .as_ref()
            .is_some_and(|r| matches!(r.value.as_str(), "G" | "PG"))
    };
    let page = browse::items(&f.store, lib, &ItemQuery::default(), |_| true, kids_only).unwrap();
    assert_eq!(
        titles(&page.items),
        vec!["Paper Boats", "Rocket Club", "Sunny Meadow"]
    );
    // Paging.
    let p1 = browse::items(
        &f.store,
        lib,
        &ItemQuery {
            limit: 5,
            ..ItemQuery::default()
        },
        |_| true,
        |_| true,
    )
    .unwrap();
    let p2 = browse::items(
        &f.store,
        lib,
        &ItemQuery {
            limit: 5,
            offset: 5,
            ..ItemQuery::default()
        },
        |_| true,
        |_| true,
    )
    .unwrap();
    assert!(p1.more && p2.more);
    assert!(
        p1.items
            .iter()
            .all(|a| p2.items.iter().all(|b| a.id != b.id))
    );

    // Search across titles and tags, restricted by the same hook.
    let found = browse::search(&f.store, "harb", 50, |_| true).unwrap();
    assert_eq!(titles(&found), vec!["Night Harbour"]);
    let found = browse::search(&f.store, "noir", 50, |_| true).unwrap();
    assert_eq!(titles(&found), vec!["Night Harbour"]);
    let found = browse::search(&f.store, "violence", 50, |_| true).unwrap();
    assert_eq!(titles(&found), vec!["Crimson Alley"]);
    assert!(
        browse::search(&f.store, "violence", 50, kids_only)
            .unwrap()
            .is_empty()
    );
    assert!(
        browse::search(&f.store, "  ", 50, |_| true)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn rescans_are_incremental() {
    let f = fixture();
    let lib = f.library("Films", LibraryKind::Movies, "Movies");
    f.scan(lib);
    let before = f.all(lib);
    let s = f.scan(lib);
    assert_eq!(
        (s.new, s.changed, s.removed, s.errors),
        (0, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.files_seen, 15);
    assert_eq!(f.all(lib), before, "a no-change rescan changed items");
    assert_eq!(f.errors(lib).len(), 4, "errors stay listed");

    // A removed file disappears; a changed NFO updates its film, keeping its id.
    let movies = f.media.join("Movies");
    std::fs::remove_file(movies.join("Sunny Meadow (2021)/Sunny Meadow (2021).mkv")).unwrap();
    let nfo = movies.join("Night Harbour (2018)/movie.nfo");
    let text = std::fs::read_to_string(&nfo).unwrap().replace(
        "<title>Night Harbour</title>",
        "<title>Night Harbour Redux</title>",
    );
    std::thread::sleep(Duration::from_millis(20)); // a distinct mtime, not a timing assert
    std::fs::write(&nfo, text).unwrap();
    // The broken NFO is fixed: its error goes away.
    std::fs::write(
        movies.join("Broken Things (2000)/movie.nfo"),
        "<movie><title>Broken Things</title></movie>",
    )
    .unwrap();
    let s = f.scan(lib);
    assert_eq!(s.removed, 2, "the film and the fixed NFO's error: {s:?}");
    assert_eq!(s.new, 0, "{s:?}");
    assert!(s.changed >= 1, "{s:?}");
    let after = f.all(lib);
    assert!(after.iter().all(|i| i.title != "Sunny Meadow"));
    let old_id = by_title(&before, "Night Harbour").id;
    assert_eq!(by_title(&after, "Night Harbour Redux").id, old_id);
    assert_eq!(f.errors(lib).len(), 3);
    assert!(
        browse::search(&f.store, "redux", 10, |_| true)
            .unwrap()
            .len()
            == 1
    );
    assert!(
        browse::search(&f.store, "meadow", 10, |_| true)
            .unwrap()
            .is_empty()
    );

    // A folder that vanished (disk pulled) keeps its items.
    let moved = f.media.join("Movies-away");
    std::fs::rename(&movies, &moved).unwrap();
    let s = f.scan(lib);
    assert_eq!(s.offline_folders, 1);
    assert_eq!(s.removed, 0);
    assert_eq!(f.all(lib).len(), after.len());
    std::fs::rename(&moved, &movies).unwrap();
    let s = f.scan(lib);
    assert_eq!((s.new, s.removed), (0, 0), "{s:?}");
}

#[test]
fn shows_music_photos() {
    let f = fixture();
    let shows = f.library("TV", LibraryKind::Shows, "Shows");
    let s = f.scan(shows);
    assert_eq!((s.new, s.errors), (6, 0), "{s:?} {:?}", f.errors(shows));
    let list = browse::shows(&f.store, shows, |_| true).unwrap();
    let names: Vec<_> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["Evening News", "Garden Friends", "Harbour Watch"]
    );
    let seasons = browse::seasons(&f.store, shows, "Garden Friends", |_| true).unwrap();
    assert_eq!(seasons.len(), 2);
    let eps = browse::episodes(&f.store, shows, "Garden Friends", Some(1), |_| true).unwrap();
    assert_eq!(titles(&eps), vec!["The Seed", "Rain Day"]);
    assert!(
        eps.iter()
            .all(|e| e.rating.as_ref().unwrap().value == "TV-Y7")
    );
    assert!(eps.iter().all(|e| e.artwork.is_some()));
    let hw = browse::episodes(&f.store, shows, "Harbour Watch", None, |_| true).unwrap();
    assert_eq!(hw.len(), 2);
    assert_eq!((hw[0].season, hw[0].episode), (Some(1), Some(1)));
    assert_eq!(hw[0].title, "Arrival");
    assert_eq!((hw[1].season, hw[1].episode), (Some(1), Some(2)));
    assert!(hw.iter().all(|e| e.tags.contains(&"violence".to_owned())));
    let news = browse::episodes(&f.store, shows, "Evening News", None, |_| true).unwrap();
    assert_eq!(news[0].air_date.as_deref(), Some("2024-03-01"));
    let found = browse::search(&f.store, "harbour watch", 10, |_| true).unwrap();
    assert_eq!(found.len(), 2);

    let music = f.library("Music", LibraryKind::Music, "Music");
    let s = f.scan(music);
    assert_eq!((s.new, s.errors), (3, 0), "{s:?} {:?}", f.errors(music));
    let artists = browse::artists(&f.store, music, |_| true).unwrap();
    assert_eq!(artists.len(), 1, "{artists:?}");
    assert_eq!(artists[0].name, "The Test Tones");
    let albums = browse::albums(&f.store, music, "The Test Tones", |_| true).unwrap();
    assert_eq!(albums.len(), 1);
    assert_eq!(albums[0].name, "First Light");
    let tracks =
        browse::tracks(&f.store, music, "The Test Tones", "First Light", |_| true).unwrap();
    assert_eq!(
        tracks.iter().map(|t| t.track).collect::<Vec<_>>(),
        vec![Some(1), Some(2), Some(3)]
    );
    assert!(tracks.iter().all(|t| t.duration_ms.unwrap_or(0) > 0));
    assert!(tracks.iter().all(|t| t.artwork.is_some()));
    assert_eq!(tracks[2].content_type, "audio/mpeg");
    assert_eq!(tracks[0].content_type, "audio/flac");

    let photos = f.library("Photos", LibraryKind::Photos, "Photos");
    let s = f.scan(photos);
    assert_eq!((s.new, s.errors), (3, 0), "{s:?} {:?}", f.errors(photos));
    let timeline = browse::photo_timeline(&f.store, photos, |_| true).unwrap();
    let all: Vec<&ItemRecord> = timeline.iter().flat_map(|m| m.items.iter()).collect();
    assert_eq!(all.len(), 3);
    let img1 = all.iter().find(|p| p.title == "IMG_0001").unwrap();
    assert!(
        img1.taken_at.as_deref().unwrap().starts_with("2023"),
        "{img1:?}"
    );
    assert!(img1.orientation.is_some_and(|o| o != 1), "{img1:?}");
    assert!(timeline.iter().any(|m| m.month.starts_with("2023-")));
}

#[test]
fn symlinks_and_dotdot_never_escape_the_root() {
    let f = fixture();
    let outside = f._tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::copy(
        f.media
            .join("Movies/Rocket Club (2019)/Rocket Club (2019).mkv"),
        outside.join("Secret (2001).mkv"),
    )
    .unwrap();
    let movies = f.media.join("Movies");
    std::os::unix::fs::symlink(&outside, movies.join("Escape (2001)")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("Secret (2001).mkv"),
        movies.join("Secret (2001).mkv"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", movies.join("Passwd (2001).mkv")).unwrap();
    std::os::unix::fs::symlink("../../outside", movies.join("Dots (2001)")).unwrap();
    // A link inside the root is skipped silently (its target is scanned anyway).
    std::os::unix::fs::symlink(
        movies.join("Rocket Club (2019)"),
        movies.join("Rocket Again (2019)"),
    )
    .unwrap();

    let lib = f.library("Films", LibraryKind::Movies, "Movies");
    let s = f.scan(lib);
    let items = f.all(lib);
    for i in &items {
        assert!(
            !i.title.contains("Secret") && !i.title.contains("Passwd"),
            "escaped: {i:?}"
        );
        assert!(!i.rel_path.contains(".."), "{i:?}");
    }
    assert_eq!(items.iter().filter(|i| i.title == "Rocket Club").count(), 1);
    let errors = f.errors(lib);
    for link in [
        "Escape (2001)",
        "Secret (2001).mkv",
        "Passwd (2001).mkv",
        "Dots (2001)",
    ] {
        let e = errors
            .iter()
            .find(|(p, _)| p == link)
            .unwrap_or_else(|| panic!("no error for {link}: {errors:?}"));
        assert!(e.1.contains("outside the library"), "{e:?}");
    }
    assert_eq!(s.errors, 8, "{errors:?}");

    // Folders with `..` or links are refused when the library is created.
    for bad in [
        format!("{}/Movies/../Movies", f.media.display()),
        format!("{}/Movies/Escape (2001)", f.media.display()),
    ] {
        let new = NewLibrary {
            name: "Bad".into(),
            kind: LibraryKind::Movies,
            folders: vec![bad.clone()],
        };
        assert!(library::create_library(&f.store, &new, 1).is_err(), "{bad}");
    }
}

#[test]
fn file_deleted_mid_scan_is_a_scan_error() {
    let f = fixture();
    let lib = f.library("Films", LibraryKind::Movies, "Movies");
    let victim = "Crimson Alley (2016).mkv";
    let options = ScanOptions {
        threads: 2,
        before_read: Some(Arc::new(move |p: &Path| {
            if p.file_name().and_then(|n| n.to_str()) == Some(victim) {
                std::fs::remove_file(p).unwrap();
            }
        })),
    };
    let s = f.scans.run_blocking(&f.store, lib, &options).unwrap();
    assert_eq!(s.new, 11, "{s:?}");
    let errors = f.errors(lib);
    let e = errors
        .iter()
        .find(|(p, _)| p.ends_with(victim))
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert!(e.1.contains("disappeared"), "{e:?}");
    // The next scan sees it gone and forgets it.
    let s = f.scan(lib);
    assert_eq!(s.removed, 1, "{s:?}");
    assert!(f.errors(lib).iter().all(|(p, _)| !p.ends_with(victim)));
}

#[test]
fn progress_is_readable_and_scans_do_not_overlap() {
    let f = fixture();
    let lib = f.library("Films", LibraryKind::Movies, "Movies");
    assert!(f.scans.progress(lib).is_none());
    f.scans.start(f.store.clone(), lib).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = f.scans.progress(lib).unwrap();
        if !p.running {
            assert_eq!((p.files_seen, p.new, p.errors), (15, 12, 4), "{p:?}");
            break;
        }
        assert!(Instant::now() < deadline, "scan did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(matches!(
        f.scans.start(f.store.clone(), 999),
        Err(library::LibraryError::NotFound)
    ));
}

#[test]
fn watcher_picks_up_new_files() {
    let f = fixture();
    let lib = f.library("Films", LibraryKind::Movies, "Movies");
    f.scan(lib);
    let _watch = library::watch::LibraryWatcher::start(
        f.store.clone(),
        f.scans.clone(),
        Duration::from_millis(300),
    )
    .unwrap();
    let dir = f.media.join("Movies/New Arrival (2023)");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        f.media
            .join("Movies/Rocket Club (2019)/Rocket Club (2019).mkv"),
        dir.join("New Arrival (2023).mkv"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = f.all(lib).iter().any(|i| i.title == "New Arrival");
        if found {
            break;
        }
        assert!(Instant::now() < deadline, "the watcher never rescanned");
        std::thread::sleep(Duration::from_millis(50));
    }
}
