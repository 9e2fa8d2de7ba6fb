//! The module map, held by a test (lint tier: `cargo test --test architecture`).
//!
//! Reads every `crate::…` and `super::…` path in the production code of `src/` (each file up
//! to its `#[cfg(test)]` module), turns them into arrows between modules, prints the graph,
//! and fails, naming file and line, on
//! - any arrow that goes up or sideways: a module may use only modules on lower floors
//!   ([`FLOORS`], the same list as `docs/architecture.md`);
//! - any arrow in [`FORBIDDEN`] (the root agent reaching network code, the domain reaching
//!   the web layer);
//! - a cycle between modules (a floor rule already excludes them; this names the loop).
//!
//! A node is a top-level module of `src/` (`store`, `web`…), except that [`SPLIT`] modules
//! count one node per child (`agent::client`, `agent::server`…), because their sides sit on
//! different floors. `lib` is the crate root (`serve`), `main` the binary.
//!
//! It also lists, without failing, production files over [`MAX_FILE_LINES`] lines and
//! functions over [`MAX_FN_LINES`] lines, so the next split is easy to find.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Floors from the ground up; a node may use nodes on lower floors only. Keep in step with
/// docs/architecture.md.
const FLOORS: &[(&str, &[&str])] = &[
    ("shared types", &["model"]),
    ("agent's time sync settings", &["agent::timesync"]),
    (
        "config, devices, database",
        &["config", "blockdev", "store"],
    ),
    ("decisions", &["policy"]),
    (
        "network and accounts",
        &["net", "identity", "agent::protocol"],
    ),
    (
        "agent client, system, reach",
        &["agent::client", "system", "reach"],
    ),
    ("disks and updates", &["disks", "ota"]),
    (
        "library, root agent, backups",
        &["library", "agent::server", "backup"],
    ),
    ("streaming, playback", &["stream", "playback"]),
    ("front ends", &["dlna", "compat"]),
    ("web", &["web"]),
    ("wiring", &["agent", "lib"]),
    ("binary", &["main"]),
];

/// Modules whose children are separate nodes.
const SPLIT: &[&str] = &["agent"];

/// Arrows that are wrong even where floors would allow them: (from node, path prefix used,
/// why). A prefix is a module path (`ota::download`) or an external crate (`::ureq`).
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "agent::server",
        "ota::download",
        "the root agent must not reach network code",
    ),
    (
        "agent::server",
        "ota::service",
        "the root agent must not reach network code",
    ),
    (
        "agent::server",
        "ota::install",
        "the root agent must not reach the server's side of updates",
    ),
    (
        "agent::server",
        "ota::agent_writer",
        "the root agent must not reach the server's side of updates",
    ),
    (
        "agent::server",
        "::ureq",
        "the root agent must not make HTTP requests",
    ),
    (
        "agent::server",
        "::axum",
        "the root agent must not speak HTTP",
    ),
    (
        "agent::server",
        "::hyper",
        "the root agent must not speak HTTP",
    ),
    (
        "stream",
        "web",
        "stream knows no HTTP error type of the web layer",
    ),
];

/// Files over this many production lines are listed.
const MAX_FILE_LINES: usize = 800;
/// Functions over this many lines are listed.
const MAX_FN_LINES: usize = 100;

#[derive(Debug, Clone)]
struct Use {
    from: String,
    to: String,
    /// The path as written, resolved from the crate root (`ota::download::scan_sources`).
    path: String,
    file: PathBuf,
    line: usize,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b/c.rs` → `["a", "b", "c"]`; `src/a/mod.rs` → `["a"]`; `src/lib.rs` → `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
        parts.push(stem.to_owned());
    }
    parts
}

/// The node a module path belongs to. `modules` maps each top-level module to its child
/// modules (only needed for [`SPLIT`] ones).
fn node_of(path: &[String], modules: &BTreeMap<String, BTreeSet<String>>) -> String {
    match path.first() {
        None => "lib".to_owned(),
        Some(top) if !modules.contains_key(top) => "lib".to_owned(),
        Some(top) if SPLIT.contains(&top.as_str()) => match path.get(1) {
            Some(child) if modules[top].contains(child) => format!("{top}::{child}"),
            _ => top.clone(),
        },
        Some(top) => top.clone(),
    }
}

/// The module names in a directory: sub-directories and `.rs` files (not `mod.rs`, `lib.rs`,
/// `main.rs`).
fn modules_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            if p.is_dir() {
                Some(name)
            } else {
                let stem = name.strip_suffix(".rs")?;
                (!["lib", "main", "mod"].contains(&stem)).then(|| stem.to_owned())
            }
        })
        .collect()
}

/// The production part of a file: everything before its first top-level `#[cfg(test)]`.
fn production(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        out.push((i + 1, line));
    }
    out
}

/// The code of a line without its `//` comment (a `//` inside a string is rare enough in
/// lines that also name a `crate::` path).
fn code(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with("//") {
        return "";
    }
    match line.find("//") {
        Some(i) if !line[..i].ends_with(':') => &line[..i],
        _ => line,
    }
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Paths starting at `marker` in `line`: (the idents after it, the byte offset).
fn paths_after<'a>(line: &'a str, marker: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = line[from..].find(marker) {
        let start = from + i;
        from = start + marker.len();
        // `foo_crate::` is not `crate::`, `$crate::` is a macro's, and the second `super::`
        // of `super::super::` belongs to the first.
        if let Some(prev) = line[..start].chars().next_back()
            && (prev.is_ascii_alphanumeric() || prev == '_' || prev == ':' || prev == '$')
        {
            continue;
        }
        let mut idents = Vec::new();
        let mut rest = &line[from..];
        loop {
            let id = ident_at(rest);
            if id.is_empty() {
                break;
            }
            idents.push(id);
            rest = &rest[id.len()..];
            match rest.strip_prefix("::") {
                Some(r) if !r.starts_with('{') => rest = r,
                _ => break,
            }
        }
        out.push(idents);
    }
    out
}

struct Scan {
    uses: Vec<Use>,
    problems: Vec<String>,
    long_files: Vec<(usize, String)>,
    long_fns: Vec<(usize, String)>,
    nodes: BTreeSet<String>,
}

fn scan() -> Scan {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let modules: BTreeMap<String, BTreeSet<String>> = modules_in(&root)
        .into_iter()
        .map(|m| {
            let dir = root.join(&m);
            let children = if dir.is_dir() {
                modules_in(&dir)
            } else {
                BTreeSet::new()
            };
            (m, children)
        })
        .collect();
    let mut s = Scan {
        uses: Vec::new(),
        problems: Vec::new(),
        long_files: Vec::new(),
        long_fns: Vec::new(),
        nodes: BTreeSet::new(),
    };
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap().to_path_buf();
        let shown = Path::new("src").join(&rel);
        let me = module_path(&rel);
        let from = if rel == Path::new("main.rs") {
            "main".to_owned()
        } else {
            node_of(&me, &modules)
        };
        s.nodes.insert(from.clone());
        let is_mod_file = ["mod.rs", "lib.rs"]
            .iter()
            .any(|n| rel.file_name().is_some_and(|f| f == *n));
        let children = if is_mod_file {
            modules_in(file.parent().unwrap())
        } else {
            BTreeSet::new()
        };
        let text = std::fs::read_to_string(file).unwrap();
        let prod = production(&text);
        if prod.len() > MAX_FILE_LINES {
            s.long_files.push((
                prod.len(),
                format!("{}: {} production lines", shown.display(), prod.len()),
            ));
        }
        long_functions(&shown, &prod, &mut s.long_fns);
        for &(n, line) in &prod {
            let c = code(line);
            let mut found: Vec<Vec<String>> = Vec::new();
            let root_marker = if from == "main" {
                "hearth::"
            } else {
                "crate::"
            };
            for idents in paths_after(c, root_marker) {
                if idents.is_empty() {
                    s.problems.push(format!(
                        "{}:{n}: `{}{{…}}` groups several modules in one `use`; write one `use {}module::…` per module so the architecture test can read it",
                        shown.display(),
                        root_marker,
                        root_marker,
                    ));
                    continue;
                }
                found.push(idents.iter().map(|s| s.to_string()).collect());
            }
            // `lib.rs` and `mod.rs` files name their own child modules without a prefix.
            for child in &children {
                for idents in paths_after(c, &format!("{child}::")) {
                    let mut path = me.clone();
                    path.push(child.clone());
                    path.extend(idents.iter().map(|s| s.to_string()));
                    found.push(path);
                }
            }
            for idents in paths_after(c, "super::") {
                // Resolve `super::super::x` from this file's module.
                // `super` of a file module `a/b.rs` ([a, b]) is `a`; of `a/mod.rs` ([a]) the
                // crate root: the same rule, drop the last element.
                let mut base = me.clone();
                base.pop();
                let mut rest: Vec<String> = idents.iter().map(|s| s.to_string()).collect();
                while rest.first().is_some_and(|s| s == "super") {
                    rest.remove(0);
                    base.pop();
                }
                if rest.first().is_some_and(|s| s == "*") || rest.is_empty() {
                    continue;
                }
                base.extend(rest);
                found.push(base);
            }
            for path in found {
                let to = node_of(&path, &modules);
                if to != from {
                    s.uses.push(Use {
                        from: from.clone(),
                        to,
                        path: path.join("::"),
                        file: shown.clone(),
                        line: n,
                    });
                }
            }
            for (node, prefix, why) in FORBIDDEN {
                if let Some(krate) = prefix.strip_prefix("::")
                    && *node == from
                    && paths_after(c, &format!("{krate}::")).iter().any(|_| true)
                {
                    s.problems.push(format!(
                        "{}:{n}: {from} uses `{krate}`: {why}\n    {}",
                        shown.display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    s
}

/// Functions longer than [`MAX_FN_LINES`]: from a `fn` line to the line that closes it at the
/// same indentation.
fn long_functions(file: &Path, prod: &[(usize, &str)], out: &mut Vec<(usize, String)>) {
    for (i, &(n, line)) in prod.iter().enumerate() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) async fn ",
            "const fn ",
            "pub const fn ",
        ]
        .iter()
        .any(|p| t.starts_with(p));
        if !is_fn || t.ends_with(';') {
            continue;
        }
        let close = " ".repeat(indent) + "}";
        if let Some(end) = prod[i + 1..]
            .iter()
            .find(|(_, l)| l.trim_end() == close)
            .map(|&(m, _)| m)
        {
            let len = end - n + 1;
            if len > MAX_FN_LINES {
                let name = ident_at(t.split("fn ").nth(1).unwrap_or(""));
                out.push((
                    len,
                    format!("{}:{n}: fn {name}: {len} lines", file.display()),
                ));
            }
        }
    }
}

fn floor_of(node: &str) -> Option<usize> {
    FLOORS.iter().position(|(_, nodes)| nodes.contains(&node))
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        if let Some(ws) = t.g.get(v) {
            for w in ws {
                let w = w.as_str();
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let lw = t.low[w];
                    let lv = t.low[v];
                    t.low.insert(v, lv.min(lw));
                } else if t.on.contains(w) {
                    let iw = t.index[w];
                    let lv = t.low[v];
                    t.low.insert(v, lv.min(iw));
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn modules_form_floors_without_cycles() {
    let s = scan();
    let mut problems = s.problems.clone();

    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut first_use: BTreeMap<(String, String), &Use> = BTreeMap::new();
    let mut count: BTreeMap<(String, String), usize> = BTreeMap::new();
    for n in &s.nodes {
        graph.entry(n.clone()).or_default();
    }
    for u in &s.uses {
        graph
            .entry(u.from.clone())
            .or_default()
            .insert(u.to.clone());
        first_use.entry((u.from.clone(), u.to.clone())).or_insert(u);
        *count.entry((u.from.clone(), u.to.clone())).or_default() += 1;
    }

    // The graph, floor by floor.
    let mut report = String::from("module graph (floor: module -> what it uses, with counts)\n");
    for (i, (name, nodes)) in FLOORS.iter().enumerate() {
        let _ = writeln!(report, "  floor {i} ({name})");
        for n in *nodes {
            let arrows: Vec<String> = graph
                .get(*n)
                .into_iter()
                .flatten()
                .map(|to| format!("{to}({})", count[&(n.to_string(), to.clone())]))
                .collect();
            let _ = writeln!(report, "    {n} -> {}", arrows.join(" "));
        }
    }
    println!("{report}");

    for n in &s.nodes {
        if floor_of(n).is_none() {
            problems.push(format!(
                "module `{n}` has no floor: add it to FLOORS in tests/architecture.rs and to docs/architecture.md"
            ));
        }
    }
    for u in &s.uses {
        if let (Some(a), Some(b)) = (floor_of(&u.from), floor_of(&u.to))
            && b >= a
        {
            let how = if a == b { "beside it" } else { "above it" };
            problems.push(format!(
                "{}:{}: {} (floor {a}) uses {} (floor {b}, {how}) through `{}`; a module may use only lower floors",
                u.file.display(),
                u.line,
                u.from,
                u.to,
                u.path
            ));
        }
        for (node, prefix, why) in FORBIDDEN {
            if !prefix.starts_with("::")
                && *node == u.from
                && (u.path == *prefix || u.path.starts_with(&format!("{prefix}::")))
            {
                problems.push(format!(
                    "{}:{}: {} uses `{}`: {why}",
                    u.file.display(),
                    u.line,
                    u.from,
                    u.path
                ));
            }
        }
    }
    for comp in cycles(&graph) {
        let mut msg = format!("cycle between modules: {}", comp.join(", "));
        for a in &comp {
            for b in &comp {
                if let Some(u) = first_use.get(&(a.clone(), b.clone())) {
                    let _ = write!(
                        msg,
                        "\n    {a} -> {b} e.g. {}:{} (`{}`)",
                        u.file.display(),
                        u.line,
                        u.path
                    );
                }
            }
        }
        problems.push(msg);
    }

    let mut long_files = s.long_files.clone();
    long_files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut long_fns = s.long_fns.clone();
    long_fns.sort_by_key(|f| std::cmp::Reverse(f.0));
    if !long_files.is_empty() {
        println!("production files over {MAX_FILE_LINES} lines (split them along their seams):");
        for (_, f) in &long_files {
            println!("  {f}");
        }
    }
    if !long_fns.is_empty() {
        println!("functions over {MAX_FN_LINES} lines:");
        for (_, f) in &long_fns {
            println!("  {f}");
        }
    }

    assert!(
        problems.is_empty(),
        "the module map is broken ({} problems):\n{}\n",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_reader_finds_paths() {
    assert_eq!(
        paths_after("use crate::store::users::Role;", "crate::"),
        vec![vec!["store", "users", "Role"]]
    );
    assert_eq!(
        paths_after(
            "x: &crate::policy::OwnerProof, y: crate::net::NetClass",
            "crate::"
        ),
        vec![vec!["policy", "OwnerProof"], vec!["net", "NetClass"]]
    );
    assert_eq!(
        paths_after("use foo_crate::x;", "crate::"),
        Vec::<Vec<&str>>::new()
    );
    assert_eq!(
        paths_after("use crate::{a, b};", "crate::"),
        vec![Vec::<&str>::new()]
    );
    assert_eq!(
        paths_after("use super::super::protocol::Request;", "super::"),
        vec![vec!["super", "protocol", "Request"]]
    );
    assert_eq!(code("    // crate::web"), "");
    assert_eq!(
        code("let a = crate::x; // crate::web"),
        "let a = crate::x; "
    );
    let modules: BTreeMap<String, BTreeSet<String>> = [
        ("agent".to_owned(), ["server".to_owned()].into()),
        ("store".to_owned(), BTreeSet::new()),
    ]
    .into();
    let p = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        node_of(&p("agent::server::verbs"), &modules),
        "agent::server"
    );
    assert_eq!(node_of(&p("agent::Client"), &modules), "agent");
    assert_eq!(node_of(&p("store::Store"), &modules), "store");
    assert_eq!(node_of(&p("now_secs"), &modules), "lib");
    assert_eq!(
        module_path(Path::new("agent/server/mod.rs")),
        vec!["agent", "server"]
    );
    assert_eq!(module_path(Path::new("lib.rs")), Vec::<String>::new());
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph.entry(a.into()).or_default().insert(b.into());
        graph.entry(b.into()).or_default();
    }
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}
