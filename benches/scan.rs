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
    let files: u64 = std::fs::read_to_string(root.join("MANIFEST.txt"))
        .map(|m| m.lines().count() as u64)
        .unwrap_or(0);
    let full = run("full scan");
    let rescan = run("rescan, no changes");
    let rescan2 = run("rescan, no changes #2");
    // Machine-readable lines for benches/run's summary.
    println!("BENCH files {files}");
    println!("BENCH full_scan_files_per_s {:.0}", files as f64 / full);
    println!("BENCH rescan_s {:.3}", rescan.min(rescan2));

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
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!(
        "browse page of 100      p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        lat.len()
    );
    println!("BENCH browse_p50_ms {:.3}", p50.as_secs_f64() * 1e3);
    println!("BENCH browse_p99_ms {:.3}", p99.as_secs_f64() * 1e3);
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
    // Search: broad one-word queries (thousands of hits), one letter, two words, none; for
    // everyone, and for a viewer who may see only the movies library (the filter runs on
    // the ranked hits until 50 are kept).
    let queries = [
        "river",
        "golden",
        "the",
        "season",
        "t",
        "a",
        "midnight garden",
        "xyzzy",
        "lost",
        "signal",
    ];
    let search_lat = |allowed: &dyn Fn(&hearth::library::ItemRecord) -> bool| {
        let mut lat = Vec::new();
        let mut hits = 0;
        for q in queries {
            for _ in 0..10 {
                let t = Instant::now();
                hits += browse::search(&store, q, 50, allowed)
                    .expect("search")
                    .len();
                lat.push(t.elapsed());
            }
        }
        lat.sort();
        (percentile(&lat, 0.5), percentile(&lat, 0.99), hits)
    };
    let (p50, p99, hits) = search_lat(&|_| true);
    println!(
        "search (50 results)     p50 {:>7.2} ms  p99 {:>7.2} ms  ({hits} hits in 100 queries)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    println!("BENCH search_p50_ms {:.3}", p50.as_secs_f64() * 1e3);
    println!("BENCH search_p99_ms {:.3}", p99.as_secs_f64() * 1e3);
    let mut lat = Vec::new();
    let mut hits = 0;
    for q in queries {
        for _ in 0..10 {
            let t = Instant::now();
            hits += browse::search_in(&store, q, 50, |l| l == movies, |i| i.library_id == movies)
                .expect("search")
                .len();
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!(
        "search, movies only     p50 {:>7.2} ms  p99 {:>7.2} ms  ({hits} hits in 100 queries)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
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
