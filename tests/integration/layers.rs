//! The architecture, kept true: `src/` is a stack of layers, each importing only from the
//! layers below it (no cycles), every folder opens with a `//!` paragraph saying what it owns,
//! and no file grows past 800 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level unit of `src/` and the units it may import. Bottom first.
const LAYERS: &[(&str, &[&str])] = &[
    ("didcomm", &[]),
    ("plan", &["didcomm"]),
    ("results", &["plan"]),
    ("measure", &["plan", "results"]),
    ("engine", &["didcomm", "plan", "results", "measure"]),
    ("output", &["plan", "results", "measure"]),
    ("tools", &["plan", "results", "measure"]),
    (
        "cli",
        &["plan", "results", "measure", "engine", "output", "tools"],
    ),
    ("lib", &[]),
    ("main", &[]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level unit → its files (a folder, or one loose file).
fn units() -> BTreeMap<String, Vec<PathBuf>> {
    let mut units = BTreeMap::new();
    for e in std::fs::read_dir(src()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            let mut files = Vec::new();
            rust_files(&p, &mut files);
            units.insert(name, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            units.insert(name, vec![p]);
        }
    }
    units
}

/// The crate-level names a file imports: `crate::x`, and `x` inside `use crate::{x, …}`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let word = |s: &str| {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|g| word(g.trim())));
        } else {
            out.insert(word(rest));
        }
    }
    out
}

#[test]
fn layers_import_only_downward() {
    let units = units();
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (unit, files) in &units {
        let Some(may) = allowed.get(unit.as_str()) else {
            wrong.push(format!("src/{unit} is not a known layer: add it to LAYERS"));
            continue;
        };
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            for used in imports(&text) {
                if used != *unit && units.contains_key(&used) && !may.contains(&used.as_str()) {
                    wrong.push(format!(
                        "{} imports crate::{used}, which {unit} may not",
                        f.strip_prefix(src()).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "layer violations:\n{}", wrong.join("\n"));
}

#[test]
fn the_layer_table_has_no_cycle() {
    // Each layer may only name layers listed before it, so the order is a topological one.
    let mut seen = BTreeSet::new();
    for (unit, may) in LAYERS {
        for m in *may {
            assert!(
                seen.contains(m),
                "{unit} may import {m}, which is not below it"
            );
        }
        seen.insert(*unit);
    }
}

#[test]
fn the_tree_shows_its_layers() {
    let units = units();
    let folders = units
        .keys()
        .filter(|u| src().join(u.as_str()).is_dir())
        .count();
    let loose = units.len() - folders;
    assert!(folders >= 4, "only {folders} folders under src/");
    assert!(loose <= 4, "{loose} loose files under src/");
    let mut long = Vec::new();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines = text.lines().count();
        if lines > 800 {
            long.push(format!("{} has {lines} lines", f.display()));
        }
        if !text.starts_with("//!") {
            long.push(format!("{} does not open with a `//!` header", f.display()));
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn the_import_scanner_sees_grouped_and_inline_paths() {
    let text = "use crate::{plan::Plan, results};\nfn f() { crate::engine::run(); }";
    let got: Vec<_> = imports(text).into_iter().collect();
    assert_eq!(got, ["engine", "plan", "results"]);
}
