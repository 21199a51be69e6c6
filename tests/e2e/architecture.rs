//! The layout of `src/` keeps its shape (DESIGN.md §3): each top-level module imports only
//! the layers below it (outside its tests), and no module imports another that imports it
//! back, directly or through others.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The layers, lowest first; modules on one line are one layer and may not import each
/// other.
const LAYERS: &[&[&str]] = &[
    &["fsx", "problem"],
    &["keys"],
    &["core"],
    &["content"],
    &["policy"],
    &["inspect"],
    &["audit"],
    &["ops"],
    &["node"],
    &["sender", "receiver"],
    &["link", "console", "api"],
    &["cli", "fuzzing"],
];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

/// Every `crate::a::b::…` path in a file's code, tests left out.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == ':')
            .collect();
        let path = path.trim_end_matches(':').to_string();
        if !path.is_empty() {
            out.insert(path);
        }
    }
    out
}

/// Module path (`node::health`) → the paths its code imports.
fn modules() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, BTreeSet<String>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix("src").unwrap().with_extension("");
                let mut name = rel.to_string_lossy().replace('/', "::");
                if let Some(parent) = name.strip_suffix("::mod") {
                    name = parent.to_string();
                }
                if name == "lib" || name == "main" {
                    continue;
                }
                out.insert(name, imports(&fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new("src"), &mut out);
    out
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let mut upward = Vec::new();
    for (module, deps) in modules() {
        let top = module.split("::").next().unwrap().to_string();
        let Some(own) = layer_of(&top) else {
            panic!("src/{top} is in no layer: add it to LAYERS and to lib.rs's map");
        };
        for d in deps {
            let dep_top = d.split("::").next().unwrap();
            if dep_top == top || dep_top == "now_ms" || dep_top == "now_us" || dep_top == "mono_ms"
            {
                continue;
            }
            match layer_of(dep_top) {
                Some(l) if l < own => {}
                _ => upward.push(format!("{module} imports crate::{d}")),
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up or sideways:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_module_imports_itself_back() {
    let mods = modules();
    let names: BTreeSet<&String> = mods.keys().collect();
    // each import resolved to the longest module path it names
    let graph: BTreeMap<&String, BTreeSet<String>> = mods
        .iter()
        .map(|(m, deps)| {
            let edges = deps
                .iter()
                .filter_map(|d| {
                    let parts: Vec<&str> = d.split("::").collect();
                    (1..=parts.len())
                        .rev()
                        .map(|k| parts[..k].join("::"))
                        .find(|c| names.contains(c))
                })
                .filter(|c| c != m)
                .collect();
            (m, edges)
        })
        .collect();
    for start in graph.keys() {
        // depth-first search for a path back to `start`
        let mut stack: Vec<(String, Vec<String>)> = graph[start]
            .iter()
            .map(|d| (d.clone(), vec![start.to_string(), d.clone()]))
            .collect();
        let mut seen = BTreeSet::new();
        while let Some((m, path)) = stack.pop() {
            if &m == *start {
                panic!("import cycle: {}", path.join(" -> "));
            }
            if !seen.insert(m.clone()) {
                continue;
            }
            if let Some(next) = graph.get(&m) {
                for n in next {
                    let mut p = path.clone();
                    p.push(n.clone());
                    stack.push((n.clone(), p));
                }
            }
        }
    }
}
