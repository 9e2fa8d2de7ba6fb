//! Scanner benchmark on the synthetic library (`../shared/tools/make-synthetic-library`,
//! 22,001 files): full scan, no-change rescan, a rescan after touching 1% of the files,
//! browse and search latency at that size. Prints numbers; asserts nothing about time.
//!
//!   ../shared/tools/make-synthetic-library /var/tmp/hearth-synth
//!   HEARTH_SYNTH_LIB=/var/tmp/hearth-synth cargo bench --bench scan

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hearth::library::browse::{self, ItemQuery};
use hearth::library::{self, ItemSort, LibraryKind, NewLibrary, ScanOptions, Scans};
use hearth::store::Store;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let root = PathBuf::from(
        std::env::var("HEARTH_SYNTH_LIB").unwrap_or_else(|_| "/var/tmp/hearth-synth".into()),
    );
    if !root.join(".peers-library").exists() {
        eprintln!(
            "no synthetic library at {}: create one with ../shared/tools/make-synthetic-library {} (or set HEARTH_SYNTH_LIB)",
            root.display(),
            root.display()
        );
        std::process::exit(2);
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&tmp.path().join("bench.redb")).expect("store");
    let scans = Scans::default();
    let mut options = ScanOptions::default();
    if let Some(n) = std::env::var("HEARTH_SCAN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.threads = n;
    }
    let mut libs = Vec::new();
    for (name, kind, sub) in [
        ("Movies", LibraryKind::Movies, "Movies"),
        ("TV", LibraryKind::Shows, "TV"),
    ] {
        let new = NewLibrary {
            name: name.into(),
            kind,
            folders: vec![root.join(sub).to_string_lossy().into_owned()],
        };
        libs.push(library::create_library(&store, &new, 1).expect("library"));
    }
    println!("scanner threads: {}", options.threads);

    let run = |label: &str| {
        let t = Instant::now();
        let mut files = 0;
        let mut new = 0;
        let mut changed = 0;
        let mut errors = 0;
        for lib in &libs {
            let s = scans.run_blocking(&store, lib.id, &options).expect("scan");
            files += s.files_seen;
            new += s.new;
            changed += s.changed;
            errors += s.errors;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{label:<22} {files:>6} files  {secs:>8.3} s  {:>9.0} files/s  (new {new}, changed {changed}, errors {errors})",
            files as f64 / secs
        );
        secs
    };
    run("full scan");
    run("rescan, no changes");
    run("rescan, no changes #2");

    // Touch 1% of the episode files: those, and only those, are read again.
    let mut touched = 0;
    let manifest = std::fs::read_to_string(root.join("MANIFEST.txt")).unwrap_or_default();
    let now = std::time::SystemTime::now();
    for (i, rel) in manifest.lines().enumerate() {
        if i % 100 == 0
            && let Ok(f) = std::fs::OpenOptions::new()
                .append(true)
                .open(root.join(rel))
            && f.set_modified(now).is_ok()
        {
            touched += 1;
        }
    }
    println!("touched {touched} files");
    run("rescan, 1% touched");

    // Browse: pages of 100 at spread offsets in each sort order.
    let movies = libs[0].id;
    let mut lat = Vec::new();
    for sort in [ItemSort::Title, ItemSort::Year, ItemSort::Added] {
        for i in 0..100 {
            let q = ItemQuery {
                sort,
                offset: (i * 19) % 1900,
                limit: 100,
                ..ItemQuery::default()
            };
            let t = Instant::now();
            let page = browse::items(&store, movies, &q, |_| true, |_| true).expect("browse");
            lat.push(t.elapsed());
            assert!(!page.items.is_empty());
        }
    }
    lat.sort();
    println!(
        "browse page of 100      p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.len()
    );
    let tv = libs[1].id;
    let mut lat = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let shows = browse::shows(&store, tv, |_| true).expect("shows");
        lat.push(t.elapsed());
        assert!(!shows.is_empty());
    }
    lat.sort();
    println!(
        "shows of 20,000 episodes p50 {:>7.2} ms  p99 {:>7.2} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    let mut lat = Vec::new();
    for q in [
        "river",
        "golden",
        "the",
        "midnight garden",
        "xyzzy",
        "lost",
        "season",
        "signal",
    ] {
        for _ in 0..10 {
            let t = Instant::now();
            let _ = browse::search(&store, q, 50, |_| true).expect("search");
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    println!(
        "search (50 results)     p50 {:>7.2} ms  p99 {:>7.2} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    let db = std::fs::metadata(tmp.path().join("bench.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "database size {:.1} MiB; bench process RSS {} MiB",
        db as f64 / 1048576.0,
        rss_kib() / 1024
    );
}
