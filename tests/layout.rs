//! The layout's rules, checked on the source: the modules' `crate::` and
//! `super::` paths point only one way, so no two source files need each
//! other, and a room uses only rooms of a lower rank in the order that
//! docs/development.md writes down (and draws).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every module of the library and the binary, by its path (`turn`,
/// `terminal::keyboard`), with its file.
fn modules() -> BTreeMap<String, PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("src/ is readable").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&src).unwrap().with_extension("");
                let name = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "::");
                let name = if name == "lib" || name == "main" { String::new() } else { name };
                found.insert(name, path);
            }
        }
    }
    found
}

/// The code of a file without its comments and its unit tests: tests may
/// reach across rooms to drive two of them together.
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("a source file is readable");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The paths written after `prefix` (`crate`, `super`) in `code`, as their
/// segments: `crate::turn::Lines` gives `["turn", "Lines"]`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    let needle = format!("{prefix}::");
    while let Some(at) = rest.find(&needle) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut segments = Vec::new();
        let mut tail = rest;
        loop {
            let end = tail.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(tail.len());
            if end == 0 {
                break;
            }
            segments.push(tail[..end].to_string());
            match tail[end..].strip_prefix("::") {
                Some(next) => tail = next,
                None => break,
            }
        }
        paths.push(segments);
    }
    paths
}

/// The longest module that `base` followed by `segments` names.
fn module_named(modules: &BTreeMap<String, PathBuf>, base: &str, segments: &[String]) -> String {
    for take in (1..=segments.len()).rev() {
        let tail = segments[..take].join("::");
        let name = if base.is_empty() { tail } else { format!("{base}::{tail}") };
        if modules.contains_key(&name) {
            return name;
        }
    }
    base.to_string()
}

/// Which modules each module's code uses, tests and the crate root left out.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut graph = BTreeMap::new();
    for (name, path) in &modules {
        if name.is_empty() || name.ends_with("tests") || name == "testing" {
            continue;
        }
        let code = code_of(path);
        let parent = name.rsplit_once("::").map_or("", |(p, _)| p);
        let mut used = BTreeSet::new();
        for segments in paths_after(&code, "crate") {
            used.insert(module_named(&modules, "", &segments));
        }
        for segments in paths_after(&code, "super") {
            used.insert(module_named(&modules, parent, &segments));
        }
        used.remove(name);
        used.remove("");
        graph.insert(name.clone(), used);
    }
    graph
}

/// A circle through `from`, if one exists, as the modules along it.
fn circle_from(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_string(), vec![from.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == from {
                let mut circle = path.clone();
                circle.push(from.to_string());
                return Some(circle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_two_source_files_need_each_other() {
    let graph = uses();
    assert!(graph.contains_key("turn") && graph.contains_key("terminal::keyboard"));
    let circles: Vec<String> =
        graph.keys().filter_map(|m| circle_from(&graph, m)).map(|c| c.join(" -> ")).collect();
    assert!(circles.is_empty(), "modules that need each other: {circles:#?}");
}

/// The rooms' ranks as docs/development.md writes them, in its block that
/// begins with the line `rank  rooms`: a rank, then the rooms of that rank.
fn ranks() -> BTreeMap<String, u32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/development.md");
    let doc = fs::read_to_string(path).expect("docs/development.md is readable");
    let block = doc.split("\nrank  rooms\n").nth(1).expect("docs/development.md has the ranks");
    let mut ranks = BTreeMap::new();
    for line in block.lines().take_while(|line| !line.starts_with("```")) {
        let mut words = line.split_whitespace();
        let Some(rank) = words.next().and_then(|w| w.parse().ok()) else { continue };
        for room in words {
            ranks.insert(room.to_string(), rank);
        }
    }
    ranks
}

/// The room a module is in: the first segment of its path.
fn room(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// The arrows from one room to another that do not point to a lower rank.
fn wrong_arrows(
    graph: &BTreeMap<String, BTreeSet<String>>,
    ranks: &BTreeMap<String, u32>,
) -> Vec<String> {
    let rank = |module: &str| {
        *ranks
            .get(room(module))
            .unwrap_or_else(|| panic!("room '{}' has no rank in docs/development.md", room(module)))
    };
    let mut wrong = Vec::new();
    for (from, used) in graph {
        for to in used.iter().filter(|to| room(to) != room(from)) {
            if rank(to) >= rank(from) {
                wrong.push(format!("{from} (rank {}) -> {to} (rank {})", rank(from), rank(to)));
            }
        }
    }
    wrong
}

#[test]
fn every_arrow_points_to_a_lower_rank() {
    let wrong = wrong_arrows(&uses(), &ranks());
    assert!(wrong.is_empty(), "arrows that do not point down: {wrong:#?}");
}

#[test]
fn the_rank_check_sees_a_wrong_arrow() {
    let ranks = ranks();
    assert!(ranks["wire"] < ranks["turn"] && ranks["turn"] < ranks["terminal"]);
    assert!(ranks["wire"] < ranks["relay"] && ranks["roles"] < ranks["cli"]);
    let mut graph = uses();
    assert!(wrong_arrows(&graph, &ranks).is_empty());
    graph.get_mut("wire::net").unwrap().insert("turn".into());
    graph.get_mut("relay::rooms").unwrap().insert("cli".into());
    assert_eq!(wrong_arrows(&graph, &ranks).len(), 2);
}

#[test]
fn the_check_sees_a_circle_when_there_is_one() {
    let code = "use crate::turn::Lines;\nfn f() { super::keys::Key::Enter; }";
    let paths = paths_after(code, "crate");
    assert_eq!(paths, vec![vec!["turn".to_string(), "Lines".to_string()]]);
    let mut graph = uses();
    graph.get_mut("turn").unwrap().insert("terminal::keyboard".into());
    assert!(circle_from(&graph, "turn").is_some());
}
