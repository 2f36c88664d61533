//! The module graph flows one way (issue 18): every path from one top-level
//! module of the library to another, in its non-test code, points to a module of
//! a lower layer of the table in `docs/ARCHITECTURE.md` ("Layers"). So the graph
//! has no cycle, and the table the developers read is the one the build keeps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common::repo;

/// Only ever compiled into the unit tests (`#[cfg(test)] mod test_support`).
const TEST_ONLY: &[&str] = &["test_support"];

/// The layer of each top-level module, read from the "Layers" table of
/// `docs/ARCHITECTURE.md`: rows `| layer | `module`, `module` | … |`.
fn layers() -> BTreeMap<String, usize> {
    let doc = std::fs::read_to_string(repo().join("docs/ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("\n## Layers")
        .nth(1)
        .expect("a \"## Layers\" section in docs/ARCHITECTURE.md");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut layers = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(layer) = cells.get(1).and_then(|c| c.parse::<usize>().ok()) else {
            continue;
        };
        for module in cells[2].split('`').skip(1).step_by(2) {
            let before = layers.insert(module.to_owned(), layer);
            assert!(before.is_none(), "`{module}` is in two layers");
        }
    }
    assert!(layers.len() > 10, "no layer table read: {layers:?}");
    layers
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file below `src/` (`store/mod.rs` → `[store]`,
/// `store/outbox.rs` → `[store, outbox]`); the crate root is empty.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The text of a file without its test module: from a `#[cfg(test)]` line
/// followed by a module, to the end (the tests come last, by the house style).
fn non_test(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = (0..lines.len())
        .find(|&i| {
            lines[i].trim() == "#[cfg(test)]"
                && lines.get(i + 1).is_some_and(|next| {
                    let next = next.trim_start();
                    next.starts_with("mod ") || next.contains(" mod ")
                })
        })
        .unwrap_or(lines.len());
    // Comment lines (doc comments included) name modules without using them.
    lines[..end]
        .iter()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of each item of a path group `{a::b, c, d::{e, f}}`
/// (`text` starts after the `{`).
fn group_heads(text: &str) -> Vec<String> {
    let (mut depth, mut item, mut heads) = (0usize, String::new(), Vec::new());
    let mut flush = |item: &mut String| {
        let head = item
            .trim()
            .split("::")
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if !head.is_empty() {
            heads.push(head);
        }
        item.clear();
    };
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => flush(&mut item),
            c if depth == 0 => item.push(c),
            _ => {}
        }
    }
    flush(&mut item);
    heads
}

/// The first segments of the path or group that `rest` starts with.
fn heads(rest: &str) -> Vec<String> {
    match rest.strip_prefix('{') {
        Some(group) => group_heads(group),
        None => rest
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .map(str::to_owned)
            .into_iter()
            .collect(),
    }
}

/// The top-level modules the code of the file at `path` (its module path) names
/// outside its own top-level module, each with its line: `crate::x`,
/// `crate::{x, y::z}`, and `super::` paths that climb to the crate root.
fn uses(code: &str, path: &[String]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        found.extend(heads(rest).into_iter().map(|h| (line_of(at), h)));
    }
    for (at, _) in code.match_indices("super::") {
        // Only the first of a run of `super::` counts.
        if code[..at].ends_with("super::") {
            continue;
        }
        let mut rest = &code[at..];
        let mut climb = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            climb += 1;
            rest = r;
        }
        if climb < path.len() {
            continue; // Still inside the file's own top-level module.
        }
        found.extend(heads(rest).into_iter().map(|h| (line_of(at), h)));
    }
    let own = path.first().cloned().unwrap_or_default();
    found.retain(|(_, m)| *m != own && m != "self" && m != "*");
    found
}

/// Every use of one top-level module by another: (file, line, from, to).
fn edges(modules: &BTreeSet<String>) -> Vec<(String, usize, String, String)> {
    let src = repo().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut edges = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let path = module_path(relative);
        let Some(from) = path.first() else { continue };
        if TEST_ONLY.contains(&from.as_str()) {
            continue;
        }
        let code = non_test(&std::fs::read_to_string(&file).unwrap());
        for (line, to) in uses(&code, &path) {
            if modules.contains(&to) {
                let shown = format!("src/{}", relative.display());
                edges.push((shown, line, from.clone(), to));
            }
        }
    }
    edges
}

/// The top-level modules of the library: what `src/lib.rs` declares.
fn modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(repo().join("src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or(l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .filter(|m| !TEST_ONLY.contains(&m.as_str()))
        .collect()
}

/// A cycle among `modules`, if there is one (depth-first search).
fn cycle(graph: &BTreeMap<&str, BTreeSet<&str>>) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(node, false);
        stack.push(node);
        for &next in graph.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(false) => {
                    let from = stack.iter().position(|n| *n == next).unwrap_or(0);
                    let mut found: Vec<String> =
                        stack[from..].iter().map(|s| s.to_string()).collect();
                    found.push(next.to_owned());
                    return Some(found);
                }
                Some(true) => {}
                None => {
                    if let Some(found) = visit(next, graph, state, stack) {
                        return Some(found);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node, true);
        None
    }
    let mut state = BTreeMap::new();
    for &node in graph.keys() {
        if !state.contains_key(node)
            && let Some(found) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(found);
        }
    }
    None
}

#[test]
fn issue_18_the_module_graph_flows_one_way() {
    let layers = layers();
    let modules = modules();
    let mut problems = Vec::new();
    for m in &modules {
        if !layers.contains_key(m) {
            problems.push(format!(
                "src/lib.rs: module `{m}` is in no layer of docs/ARCHITECTURE.md (\"Layers\")"
            ));
        }
    }
    let edges = edges(&modules);
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (file, line, from, to) in &edges {
        graph.entry(from).or_default().insert(to);
        if let (Some(&a), Some(&b)) = (layers.get(from), layers.get(to))
            && b >= a
        {
            problems.push(format!(
                "{file}:{line}: `{from}` (layer {a}) uses `{to}` (layer {b}): a module may only use the modules of lower layers (docs/ARCHITECTURE.md, \"Layers\")"
            ));
        }
    }
    if let Some(found) = cycle(&graph) {
        problems.push(format!("a dependency cycle: {}", found.join(" → ")));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    // The reader sees real edges: the test would not pass on an empty graph.
    assert!(edges.len() > 100, "{} edges", edges.len());
}

#[test]
fn paths_to_other_modules_are_read_in_every_form() {
    let code = "use crate::store::{Store, StoreHandle};\n\
                use crate::{config::Config, diag::{Problems, closest}};\n\
                let x = crate::model::instant_text(t);\n\
                use super::super::daemon::run;\n\
                use super::Sibling;\n\
                // crate::report is only named in a comment\n";
    let code = non_test(code);
    let found: Vec<(usize, String)> = uses(&code, &["dispatch".to_owned(), "plan".to_owned()]);
    let names: Vec<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(names, ["store", "config", "diag", "model", "daemon"]);
    assert_eq!(found[4].0, 4, "the line of the super:: path");
}

/// A dossier's link is resolved from `model::Sources`, built where connectors
/// are loaded: the modules that raise and send alerts never see a connector.
#[test]
fn issue_18_no_connector_travels_downstream() {
    let edges = edges(&modules());
    let downstream = ["alerting", "timers", "dispatch"];
    let found: Vec<String> = edges
        .iter()
        .filter(|(_, _, from, to)| downstream.contains(&from.as_str()) && to == "connector")
        .map(|(file, line, from, _)| format!("{file}:{line}: `{from}` uses `connector`"))
        .collect();
    assert!(found.is_empty(), "\n{}", found.join("\n"));
    // The same reading sees these modules' other edges.
    assert!(
        edges
            .iter()
            .any(|(_, _, from, to)| from == "dispatch" && to == "store")
    );
}
