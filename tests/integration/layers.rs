//! The architecture, kept true: `src/` is a stack of layers, each importing only from the
//! layers below it; inside every folder the files import each other without a circle; every
//! file opens with a `//!` paragraph saying what it owns, and no file grows past 800 lines.
//!
//! Imports are read from the source text: `crate::`, `self::` and `super::` paths, grouped
//! `use` trees, and paths that start with the name of a child module (`use model::Plan` in a
//! `mod.rs`). Comments and string literals are skipped.

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
    ("tools", &["plan", "results", "measure", "output"]),
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

/// Every `.rs` file under `src/`: its path relative to `src/` (with `/`) and its text.
fn tree() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut tree: Vec<_> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(src()).unwrap().to_string_lossy();
            (rel.replace('\\', "/"), std::fs::read_to_string(f).unwrap())
        })
        .collect();
    tree.sort();
    tree
}

/// The module a file defines: `plan/compile/mod.rs` → `plan::compile`, `lib.rs` → the root.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Top-level unit of a file: its first folder, or its stem when it lies loose in `src/`.
fn unit_of(rel: &str) -> String {
    rel.split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_string()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other(char),
}

/// Rust tokens with their line, enough to follow paths: comments, strings, chars and
/// raw strings are skipped, lifetimes read as identifiers.
fn lex(text: &str) -> Vec<(Tok, usize)> {
    let cs: Vec<char> = text.chars().collect();
    let at = |i: usize| cs.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    // Skips to just past `close` (a quote, with `\` escapes when `escapes`), counting lines.
    let skip = |i: &mut usize, line: &mut usize, close: &str, escapes: bool| {
        let close: Vec<char> = close.chars().collect();
        while *i < cs.len() {
            if cs[*i] == '\n' {
                *line += 1;
            }
            if escapes && cs[*i] == '\\' {
                *i += 2;
                continue;
            }
            if cs[*i..].starts_with(&close) {
                *i += close.len();
                return;
            }
            *i += 1;
        }
    };
    while i < cs.len() {
        let c = cs[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if at(i + 1) == '/' => {
                while i < cs.len() && cs[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < cs.len() {
                    match (cs[i], at(i + 1)) {
                        ('/', '*') => (depth, i) = (depth + 1, i + 2),
                        ('*', '/') => (depth, i) = (depth - 1, i + 2),
                        ('\n', _) => (line, i) = (line + 1, i + 1),
                        _ => i += 1,
                    }
                    if depth == 0 {
                        break;
                    }
                }
            }
            '"' => {
                i += 1;
                skip(&mut i, &mut line, "\"", true);
            }
            '\'' if at(i + 1) == '\\' => {
                i += 1;
                skip(&mut i, &mut line, "'", true);
            }
            '\'' if at(i + 2) == '\'' => i += 3,
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                    i += 1;
                }
                let word: String = cs[start..i].iter().collect();
                let hashes = cs[i..].iter().take_while(|c| **c == '#').count();
                match (word.as_str(), at(i + hashes)) {
                    ("r" | "br", '"') => {
                        i += hashes + 1;
                        let close = format!("\"{}", "#".repeat(hashes));
                        skip(&mut i, &mut line, &close, false);
                    }
                    ("b", '"') if hashes == 0 => {
                        i += 1;
                        skip(&mut i, &mut line, "\"", true);
                    }
                    ("b", '\'') if hashes == 0 => {
                        i += 1;
                        skip(&mut i, &mut line, "'", true);
                    }
                    _ => out.push((Tok::Ident(word), line)),
                }
            }
            ':' if at(i + 1) == ':' => {
                out.push((Tok::PathSep, line));
                i += 2;
            }
            _ => {
                let tok = match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    ';' => Tok::Semi,
                    '*' => Tok::Star,
                    other => Tok::Other(other),
                };
                if !c.is_whitespace() {
                    out.push((tok, line));
                }
                i += 1;
            }
        }
    }
    out
}

/// One path a file names, as written (`super::svg::Axis`), where it stands.
#[derive(Debug, Clone)]
struct Written {
    segments: Vec<String>,
    line: usize,
    /// The module the path appears in: the file's, plus any inline `mod` around it.
    module: Vec<String>,
    /// Part of a `pub use` (a re-export).
    reexport: bool,
}

/// Reads the paths of a `use` tree starting at `toks[*i]`, each prefixed with `prefix`.
fn use_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    while let Some((tok, _)) = toks.get(*i) {
        *i += 1;
        match tok {
            Tok::Ident(s) => {
                path.push(s.clone());
                if toks.get(*i).map(|t| &t.0) == Some(&Tok::PathSep) {
                    *i += 1;
                    continue;
                }
                if toks.get(*i).map(|t| &t.0) == Some(&Tok::Ident("as".into())) {
                    *i += 2;
                }
                out.push(path);
                return;
            }
            Tok::Star => {
                path.push("*".into());
                out.push(path);
                return;
            }
            Tok::Open => {
                loop {
                    use_tree(toks, i, path.clone(), out);
                    match toks.get(*i).map(|t| &t.0) {
                        Some(Tok::Comma) => *i += 1,
                        _ => break,
                    }
                    if toks.get(*i).map(|t| &t.0) == Some(&Tok::Close) {
                        break;
                    }
                }
                *i += 1;
                return;
            }
            _ => return,
        }
    }
}

/// True when the tokens just before `i` are `pub` or `pub(…)`.
fn after_pub(toks: &[(Tok, usize)], i: usize) -> bool {
    let mut j = i;
    if j > 0 && toks[j - 1].0 == Tok::Other(')') {
        while j > 0 && toks[j - 1].0 != Tok::Other('(') {
            j -= 1;
        }
        j = j.saturating_sub(1);
    }
    j > 0 && toks[j - 1].0 == Tok::Ident("pub".into())
}

/// Every path in a file's text that could name a module of this crate, with where it is.
fn written_paths(text: &str, file_module: &[String]) -> Vec<Written> {
    let toks = lex(text);
    let mut out = Vec::new();
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut pending_mod = None;
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        let module = || {
            let mut m = file_module.to_vec();
            m.extend(inline.iter().map(|(n, _)| n.clone()));
            m
        };
        let (tok, line) = (&toks[i].0, toks[i].1);
        let next = toks.get(i + 1).map(|t| &t.0);
        match tok {
            Tok::Open => {
                depth += 1;
                if let Some(name) = pending_mod.take() {
                    inline.push((name, depth));
                }
            }
            Tok::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            Tok::Semi => pending_mod = None,
            Tok::Ident(w) if w == "mod" => {
                if let Some((Tok::Ident(name), _)) = toks.get(i + 1) {
                    pending_mod = Some(name.clone());
                }
            }
            Tok::Ident(w) if w == "use" => {
                let reexport = after_pub(&toks, i);
                let mut paths = Vec::new();
                i += 1;
                use_tree(&toks, &mut i, Vec::new(), &mut paths);
                let module = module();
                out.extend(paths.into_iter().map(|segments| Written {
                    segments,
                    line,
                    module: module.clone(),
                    reexport,
                }));
                continue;
            }
            Tok::Ident(first) if next == Some(&Tok::PathSep) => {
                let mut segments = vec![first.clone()];
                i += 2;
                while let Some((Tok::Ident(s), _)) = toks.get(i) {
                    segments.push(s.clone());
                    if toks.get(i + 1).map(|t| &t.0) != Some(&Tok::PathSep) {
                        break;
                    }
                    i += 2;
                }
                out.push(Written {
                    segments,
                    line,
                    module: module(),
                    reexport: false,
                });
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The absolute module path a written path names, or `None` when it names something outside
/// the crate (`std::`, a dependency, a local variable). A path starting with a plain name is
/// the crate's only when that name is a child module of the module it is written in, or of
/// an enclosing inline module (`mod tests { use super::*; use svg::axis; }`).
fn resolve(
    w: &Written,
    file_module: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let segs = &w.segments;
    let (mut path, rest) = match segs[0].as_str() {
        "crate" => (Vec::new(), &segs[1..]),
        "self" => (w.module.clone(), &segs[1..]),
        "super" => {
            let ups = segs.iter().take_while(|s| *s == "super").count();
            let keep = w.module.len().checked_sub(ups)?;
            (w.module[..keep].to_vec(), &segs[ups..])
        }
        first => {
            let mut scope = w.module.clone();
            loop {
                let mut child = scope.clone();
                child.push(first.to_string());
                if modules.contains(&child) {
                    break (scope, &segs[..]);
                }
                if scope.len() <= file_module.len() {
                    return None;
                }
                scope.pop();
            }
        }
    };
    path.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(path)
}

/// One resolved import: from a file, to an absolute path of this crate.
#[derive(Debug, Clone)]
struct Import {
    file: String,
    line: usize,
    written: String,
    to: Vec<String>,
    reexport: bool,
}

fn imports(tree: &[(String, String)]) -> Vec<Import> {
    let modules: BTreeSet<Vec<String>> = tree.iter().map(|(rel, _)| module_of(rel)).collect();
    let mut out = Vec::new();
    for (rel, text) in tree {
        if rel == "main.rs" {
            continue; // a crate of its own: it uses the library as `acaload::`
        }
        let file_module = module_of(rel);
        for w in written_paths(text, &file_module) {
            if let Some(to) = resolve(&w, &file_module, &modules) {
                out.push(Import {
                    file: rel.clone(),
                    line: w.line,
                    written: w.segments.join("::"),
                    to,
                    reexport: w.reexport,
                });
            }
        }
    }
    out
}

/// A folder of `src/` as a graph: its files and sub-folders are the nodes (named as in the
/// tree: `metrics.rs`, `html/`), an edge is an import from one into another. The folder's
/// own `mod.rs` (or `lib.rs`) is their parent, not a sibling: that the children use its
/// items and it calls theirs is how a Rust module is built, so it is no node. A path to an
/// item the parent re-exports (`super::excerpt`, `crate::plan::Plan`) leads to the child
/// that defines it.
struct Folder {
    module: Vec<String>,
    dir: String,
    children: BTreeMap<String, String>,
    /// Item name → child, from the root file's `pub use child::…` lines.
    reexported: BTreeMap<String, String>,
    /// Children whose items the root re-exports with `pub use child::*`.
    globbed: Vec<String>,
}

type Edges = BTreeMap<(String, String), Vec<String>>;

fn folders(tree: &[(String, String)], imports: &[Import]) -> Vec<Folder> {
    let mut dirs: BTreeSet<String> = BTreeSet::from([String::new()]);
    for (rel, _) in tree {
        if let Some((dir, _)) = rel.rsplit_once('/') {
            dirs.insert(format!("{dir}/"));
        }
    }
    dirs.into_iter()
        .map(|dir| {
            let module = module_of(&format!("{dir}mod.rs"));
            let root = if dir.is_empty() {
                "lib.rs".to_string()
            } else {
                "mod.rs".to_string()
            };
            let mut children = BTreeMap::new();
            for (rel, _) in tree {
                let Some(inside) = rel.strip_prefix(&dir) else {
                    continue;
                };
                let node = match inside.split_once('/') {
                    Some((sub, _)) => format!("{sub}/"),
                    None if inside == root || (dir.is_empty() && inside == "main.rs") => continue,
                    None => inside.to_string(),
                };
                children.insert(
                    node.trim_end_matches(".rs")
                        .trim_end_matches('/')
                        .to_string(),
                    node,
                );
            }
            let (mut reexported, mut globbed) = (BTreeMap::new(), Vec::new());
            for im in imports
                .iter()
                .filter(|im| im.reexport && im.file == format!("{dir}{root}"))
            {
                if im.to.len() > module.len() + 1 && im.to.starts_with(&module) {
                    let child = im.to[module.len()].clone();
                    match im.to.last().unwrap().as_str() {
                        "*" => globbed.push(child),
                        name => {
                            reexported.insert(name.to_string(), child);
                        }
                    }
                }
            }
            Folder {
                module,
                dir,
                children,
                reexported,
                globbed,
            }
        })
        .collect()
}

impl Folder {
    /// The node a file of this folder belongs to; `None` outside the folder and for its parent.
    fn node_of_file(&self, rel: &str) -> Option<String> {
        let inside = rel.strip_prefix(&self.dir)?;
        let name = inside.split('/').next().unwrap().trim_end_matches(".rs");
        self.children.get(name).cloned()
    }

    /// The node an absolute path leads to; `None` outside the folder and for the parent's
    /// own items.
    fn node_of_path(&self, to: &[String], tree: &[(String, String)]) -> Option<String> {
        if !to.starts_with(&self.module) {
            return None;
        }
        let name = to.get(self.module.len())?;
        if let Some(node) = self.children.get(name) {
            return Some(node.clone());
        }
        if let Some(child) = self.reexported.get(name) {
            return self.children.get(child).cloned();
        }
        for child in &self.globbed {
            let node = &self.children[child];
            let defines = tree.iter().any(|(rel, text)| {
                rel.starts_with(&format!("{}{node}", self.dir)) && defines_item(text, name)
            });
            if defines {
                return Some(node.clone());
            }
        }
        None
    }

    /// Edges between the folder's nodes, each with where it is written.
    fn edges(&self, imports: &[Import], tree: &[(String, String)]) -> Edges {
        let mut edges: Edges = BTreeMap::new();
        for im in imports {
            let (Some(from), Some(to)) =
                (self.node_of_file(&im.file), self.node_of_path(&im.to, tree))
            else {
                continue;
            };
            if from == to {
                continue;
            }
            edges
                .entry((from, to))
                .or_default()
                .push(format!("src/{}:{} `{}`", im.file, im.line, im.written));
        }
        edges
    }
}

/// True when `text` defines an item called `name` at any depth.
fn defines_item(text: &str, name: &str) -> bool {
    let toks = lex(text);
    toks.windows(2).any(|w| {
        matches!(&w[0].0, Tok::Ident(k) if ["struct", "enum", "fn", "type", "trait", "const", "static", "union", "mod"].contains(&k.as_str()))
            && w[1].0 == Tok::Ident(name.to_string())
    })
}

/// The groups of nodes that import each other in a circle: the strongly connected
/// components of two or more nodes.
fn circles(edges: &Edges) -> Vec<BTreeSet<String>> {
    let mut reach: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        reach.entry(a.clone()).or_default().insert(b.clone());
        reach.entry(b.clone()).or_default();
    }
    let nodes: Vec<String> = reach.keys().cloned().collect();
    for k in &nodes {
        for i in &nodes {
            if reach[i].contains(k) {
                let via = reach[k].clone();
                reach.get_mut(i).unwrap().extend(via);
            }
        }
    }
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for n in &nodes {
        if reach[n].contains(n) && !groups.iter().any(|g| g.contains(n)) {
            let group = nodes
                .iter()
                .filter(|m| reach[n].contains(*m) && reach[*m].contains(n))
                .cloned()
                .collect();
            groups.push(group);
        }
    }
    groups
}

/// Every circle in every folder of a tree, one paragraph each: its members, then each
/// import between them with the first place it is written.
fn circle_report(tree: &[(String, String)]) -> Vec<String> {
    let imports = imports(tree);
    let mut report = Vec::new();
    for folder in folders(tree, &imports) {
        let edges = folder.edges(&imports, tree);
        for group in circles(&edges) {
            let names: Vec<&str> = group.iter().map(String::as_str).collect();
            let mut text = format!("import circle in src/{}: {}", folder.dir, names.join(", "));
            for ((a, b), at) in &edges {
                if !(group.contains(a) && group.contains(b)) {
                    continue;
                }
                text.push_str(&format!("\n    {a} -> {b}: {}", at[0]));
                if at.len() > 1 {
                    text.push_str(&format!(" (and {} more)", at.len() - 1));
                }
            }
            report.push(text);
        }
    }
    report
}

#[test]
fn layers_import_only_downward() {
    let tree = tree();
    let units: BTreeSet<String> = tree.iter().map(|(rel, _)| unit_of(rel)).collect();
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for unit in &units {
        if !allowed.contains_key(unit.as_str()) {
            wrong.push(format!("src/{unit} is not a known layer: add it to LAYERS"));
        }
    }
    for im in imports(&tree) {
        let unit = unit_of(&im.file);
        let Some(used) = im.to.first() else { continue };
        let may = allowed.get(unit.as_str()).copied().unwrap_or_default();
        if *used != unit && units.contains(used) && !may.contains(&used.as_str()) {
            wrong.push(format!(
                "src/{}:{} imports {} (crate::{used}), which {unit} may not",
                im.file, im.line, im.written
            ));
        }
    }
    assert!(wrong.is_empty(), "layer violations:\n{}", wrong.join("\n"));
}

#[test]
fn no_folder_has_an_import_circle() {
    let report = circle_report(&tree());
    assert!(report.is_empty(), "\n{}", report.join("\n"));
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
    let tree = tree();
    let units: BTreeSet<String> = tree.iter().map(|(rel, _)| unit_of(rel)).collect();
    let folders = units
        .iter()
        .filter(|u| src().join(u.as_str()).is_dir())
        .count();
    let loose = units.len() - folders;
    assert!(folders >= 4, "only {folders} folders under src/");
    assert!(loose <= 4, "{loose} loose files under src/");
    let mut long = Vec::new();
    for (rel, text) in &tree {
        let lines = text.lines().count();
        if lines > 800 {
            long.push(format!("src/{rel} has {lines} lines"));
        }
        if !text.starts_with("//!") {
            long.push(format!("src/{rel} does not open with a `//!` header"));
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}

fn tree_of(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn the_import_scanner_sees_every_kind_of_path() {
    let tree = tree_of(&[
        ("lib.rs", "pub mod a;\npub mod engine;\npub mod plan;"),
        ("engine/mod.rs", ""),
        ("plan/mod.rs", ""),
        (
            "a/mod.rs",
            "mod x;\nmod y;\nmod z;\nuse x::f;\npub use y::*;\nmod tests { use z::h; }",
        ),
        ("a/y.rs", "pub struct Y;"),
        ("a/z.rs", ""),
        (
            "a/x.rs",
            r##"use crate::{plan::{self, Plan}, engine};
use super::{y::Y, z as zed};
// crate::commented::out, and "crate::in_a_string" and r#"crate::raw"# are not paths
fn f<'a>(c: &'a char) { let _ = ('{', '\'', b"}"); self::g(); super::super::engine::run(); }
mod tests { use super::*; }
"##,
        ),
    ]);
    let got: Vec<String> = imports(&tree)
        .into_iter()
        .filter(|im| im.file == "a/x.rs")
        .map(|im| format!("{}:{}", im.line, im.to.join("::")))
        .collect();
    assert_eq!(
        got,
        [
            "1:plan",
            "1:plan::Plan",
            "1:engine",
            "2:a::y::Y",
            "2:a::z",
            "4:a::x::g",
            "4:engine::run",
            "5:a::x::*",
        ]
    );
    let a = imports(&tree);
    let from_root: Vec<(String, bool)> = a
        .iter()
        .filter(|im| im.file == "a/mod.rs")
        .map(|im| (im.to.join("::"), im.reexport))
        .collect();
    assert_eq!(
        from_root,
        [
            ("a::x::f".to_string(), false),
            ("a::y::*".to_string(), true),
            ("a::z::h".to_string(), false)
        ]
    );
}

#[test]
fn a_circle_inside_a_folder_is_reported_with_its_edges() {
    let tree = tree_of(&[
        ("lib.rs", "pub mod m;"),
        (
            "m/mod.rs",
            "mod a;\nmod b;\nmod c;\npub use c::*;\npub struct Shared;",
        ),
        ("m/a.rs", "use super::b::B;\npub struct A;"),
        ("m/b.rs", "pub struct B;\nfn f() { crate::m::C::new(); }"),
        ("m/c.rs", "pub struct C;\nfn g(_: super::a::A) {}"),
    ]);
    assert_eq!(
        circle_report(&tree),
        ["import circle in src/m/: a.rs, b.rs, c.rs\n    \
          a.rs -> b.rs: src/m/a.rs:1 `super::b::B`\n    \
          b.rs -> c.rs: src/m/b.rs:2 `crate::m::C::new`\n    \
          c.rs -> a.rs: src/m/c.rs:2 `super::a::A`"]
    );
    // Children using their folder's items while it uses and re-exports theirs is no circle;
    // an item re-exported by the parent leads to the child that defines it.
    let tree = tree_of(&[
        ("lib.rs", "pub mod m;"),
        (
            "m/mod.rs",
            "mod a;\nmod b;\npub use a::run;\nuse b::helper;\npub struct Shared;",
        ),
        (
            "m/a.rs",
            "pub fn run(_: super::Shared) { super::b::helper() }",
        ),
        ("m/b.rs", "pub fn helper() {}\nfn f() { super::Shared; }"),
    ]);
    assert!(circle_report(&tree).is_empty());
    let tree = tree_of(&[
        ("lib.rs", "pub mod m;"),
        ("m/mod.rs", "mod a;\nmod b;\npub use a::run;"),
        ("m/a.rs", "pub fn run() { super::b::helper() }"),
        ("m/b.rs", "pub fn helper() {}\nfn f() { super::run() }"),
    ]);
    assert_eq!(
        circle_report(&tree),
        ["import circle in src/m/: a.rs, b.rs\n    \
          a.rs -> b.rs: src/m/a.rs:1 `super::b::helper`\n    \
          b.rs -> a.rs: src/m/b.rs:2 `super::run`"]
    );
}

/// The longest a function in `src/` may be, in lines from `fn` to its closing brace.
const MAX_FN_LINES: usize = 120;

/// Each function with a body in `text`: its name, first line and length in lines.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let toks = lex(text);
    let mut out = Vec::new();
    for (i, w) in toks.windows(2).enumerate() {
        let (Tok::Ident(kw), Tok::Ident(name)) = (&w[0].0, &w[1].0) else {
            continue;
        };
        if kw != "fn" {
            continue;
        }
        let Some(open) = toks[i..]
            .iter()
            .position(|t| matches!(t.0, Tok::Open | Tok::Semi))
            .map(|p| i + p)
            .filter(|&p| toks[p].0 == Tok::Open)
        else {
            continue; // a declaration without a body
        };
        let mut depth = 0usize;
        for t in &toks[open..] {
            match t.0 {
                Tok::Open => depth += 1,
                Tok::Close => depth -= 1,
                _ => continue,
            }
            if depth == 0 {
                out.push((name.clone(), w[0].1, t.1 - w[0].1 + 1));
                break;
            }
        }
    }
    out
}

#[test]
fn no_function_in_src_is_longer_than_a_reader_can_hold() {
    let long: Vec<String> = tree()
        .iter()
        .flat_map(|(rel, text)| {
            functions(text)
                .into_iter()
                .filter(|f| f.2 > MAX_FN_LINES)
                .map(move |(name, line, n)| format!("src/{rel}:{line}: fn {name} is {n} lines"))
        })
        .collect();
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_function_length_check_counts_from_fn_to_its_closing_brace() {
    let text =
        "fn a() {\n    let s = \"}\";\n    if x { y() }\n}\ntrait T { fn b(&self); }\nfn c() {}\n";
    assert_eq!(
        functions(text),
        vec![("a".into(), 1, 4), ("c".into(), 6, 1)]
    );
}
