//! The module graph has no circle: no module imports one that imports it back, at the top level
//! (`db`, `orders`, `engine`…) or one level down (`orders::status`, `engine::steps`…). `domain`
//! imports nothing of the crate but itself. Only the HTTP edge speaks in HTTP errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The module a file is, as its path under `src` names it.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .strip_prefix(src)
        .unwrap()
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Which modules, named `depth` levels deep, each module's code (tests aside) imports.
fn imports(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        if module.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let me = module[..module.len().min(depth)].join("::");
        let mut named = Vec::new();
        for (i, _) in code.match_indices("crate::") {
            let path: Vec<&str> = code[i + 7..]
                .split(|c: char| !(c.is_ascii_lowercase() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::")
                .filter(|p| !p.is_empty())
                .collect();
            named.push(path);
        }
        for (i, _) in code.match_indices("super::") {
            let rest = code[i + 7..]
                .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .next()
                .unwrap_or_default();
            let mut path: Vec<&str> = module[..module.len() - 1]
                .iter()
                .map(String::as_str)
                .collect();
            path.push(rest);
            named.push(path);
        }
        for path in named {
            let other = path[..path.len().min(depth)].join("::");
            let nested =
                other.starts_with(&format!("{me}::")) || me.starts_with(&format!("{other}::"));
            if !other.is_empty() && other != me && !nested {
                graph.entry(me.clone()).or_default().insert(other);
            }
        }
    }
    graph
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    for depth in [1, 2] {
        let graph = imports(depth);
        let mut circles = Vec::new();
        for (module, named) in &graph {
            for other in named {
                if module < other && graph.get(other).is_some_and(|back| back.contains(module)) {
                    circles.push(format!("{module} <-> {other}"));
                }
            }
        }
        assert!(circles.is_empty(), "circles at depth {depth}: {circles:?}");
    }
}

#[test]
fn the_domain_imports_nothing_else_of_the_crate() {
    let graph = imports(1);
    assert_eq!(graph.get("domain"), None, "{:?}", graph.get("domain"));
    assert!(
        graph["orders"].contains("domain"),
        "the reading of imports works"
    );
}

/// `AppError` lives in `http` and only the edge (and `startup`, which mounts it) imports `http`:
/// every layer below answers in errors of its own.
#[test]
fn only_the_edge_maps_errors_to_http_answers() {
    let graph = imports(1);
    let speaking_http: Vec<&String> = graph
        .iter()
        .filter(|(_, named)| named.contains("http"))
        .map(|(module, _)| module)
        .collect();
    assert_eq!(speaking_http, ["startup"]);
}
