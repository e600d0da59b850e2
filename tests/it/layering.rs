//! The layering of the code as a test: which workspace crates may depend
//! on which, and no import cycle between the modules of any crate.
//!
//! A module may use its ancestors' items (that is what `super::` is for);
//! every other import between two modules must point one way only, so the
//! code can be read bottom-up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each workspace crate and the kiln crates it may depend on.
const LAYERS: &[(&str, &[&str])] = &[
    ("kiln-diag", &[]),
    ("kiln-tree", &[]),
    ("kiln-minisign", &[]),
    ("kiln-debian", &["kiln-diag", "kiln-tree"]),
    ("kiln-policy", &["kiln-diag", "kiln-tree"]),
    ("kiln-disk", &["kiln-tree"]),
    ("kiln-oci", &["kiln-diag"]),
    (
        "kiln-check",
        &["kiln-diag", "kiln-tree", "kiln-policy", "kiln-minisign"],
    ),
    (
        "kiln-node",
        &[
            "kiln-debian",
            "kiln-minisign",
            "kiln-policy",
            "kiln-tree",
            "kiln-check",
        ],
    ),
    (
        "kiln",
        &[
            "kiln-diag",
            "kiln-tree",
            "kiln-debian",
            "kiln-policy",
            "kiln-minisign",
            "kiln-disk",
            "kiln-node",
            "kiln-check",
            "kiln-oci",
        ],
    ),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn crates_depend_only_on_the_layers_below() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let names: BTreeSet<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = LAYERS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected, "a workspace crate is missing from LAYERS");
    for package in packages {
        let name = package["name"].as_str().unwrap();
        let allowed = LAYERS.iter().find(|(n, _)| *n == name).unwrap().1;
        for dep in package["dependencies"].as_array().unwrap() {
            let dep = dep["name"].as_str().unwrap();
            if dep.starts_with("kiln") {
                assert!(
                    allowed.contains(&dep),
                    "{name} depends on {dep}; it may depend on {allowed:?} only"
                );
            }
        }
    }
}

#[test]
fn no_import_cycles_between_modules() {
    let mut cycles = Vec::new();
    for src in [
        root().join("src"),
        root().join("crates/diag/src"),
        root().join("crates/tree/src"),
        root().join("crates/debian/src"),
        root().join("crates/policy/src"),
        root().join("crates/minisign/src"),
        root().join("crates/disk/src"),
    ] {
        cycles.extend(module_cycles(&src));
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other (directly or around a circle):\n{}",
        cycles.join("\n")
    );
}

/// A module path (`["harden", "ssh"]`) for each source file below `src`.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            // Test-only modules (tests.rs beside the code) are not layers.
            if module.last().is_some_and(|m| m == "tests") {
                continue;
            }
            out.insert(module, path);
        }
    }
    out
}

/// Every path that the file of module `here` names through `crate::` or
/// `super::`, including those inside `use a::{b, c::d}` trees, as
/// absolute module segments.
fn referenced_paths(text: &str, here: &[String]) -> Vec<Vec<String>> {
    // Code under #[cfg(test)] may reach anywhere; comments (doc links
    // included) import nothing.
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.as_str();
    let mut out = Vec::new();
    let mut flat = String::new();
    // Expand use trees into plain paths first: statements that start a
    // line with `use` (or `pub use`, `pub(crate) use`), up to their `;`.
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_start();
        let Some(rest) = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|p| line.strip_prefix(p))
        else {
            continue;
        };
        let mut statement = rest.to_owned();
        while !statement.contains(';') {
            match lines.next() {
                Some(more) => statement.push_str(more),
                None => break,
            }
        }
        let tree: String = statement
            .split(';')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        expand_use(&tree, "", &mut flat);
    }
    flat.push_str(text);
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut i = 0;
    let bytes = flat.as_bytes();
    while i < flat.len() {
        let rest = &flat[i..];
        let anchored = (rest.starts_with("crate::") || rest.starts_with("super::"))
            && (i == 0 || !ident(bytes[i - 1] as char));
        if !anchored {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let end = rest
            .find(|c: char| !(ident(c) || c == ':'))
            .unwrap_or(rest.len());
        let segments: Vec<&str> = rest[..end].split("::").filter(|s| !s.is_empty()).collect();
        let mut module: Vec<String> = Vec::new();
        let mut it = segments.iter().peekable();
        if it.peek() == Some(&&"crate") {
            it.next();
        } else {
            module = here.to_vec();
            while it.peek() == Some(&&"super") {
                it.next();
                module.pop();
            }
        }
        module.extend(it.map(|s| s.to_string()));
        out.push(module);
        i += end;
    }
    out
}

/// `a::{b,c::{d,e}}` → "a::b a::c::d a::c::e " appended to `out`.
fn expand_use(tree: &str, prefix: &str, out: &mut String) {
    let Some(open) = tree.find('{') else {
        out.push_str(&format!(" {prefix}{tree} "));
        return;
    };
    let head = &tree[..open];
    let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let mut depth = 0;
    let mut part = String::new();
    for c in inner.chars().chain(std::iter::once(',')) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                if !part.is_empty() && part != "self" {
                    expand_use(&part, &format!("{prefix}{head}"), out);
                } else if part == "self" {
                    out.push_str(&format!(" {prefix}{} ", head.trim_end_matches("::")));
                }
                part.clear();
                continue;
            }
            _ => {}
        }
        part.push(c);
    }
}

/// Circles of files in one crate, each as a list of its files.
fn module_cycles(src: &Path) -> Vec<String> {
    let modules = modules(src);
    strongly_connected(&modules, &import_edges(&modules))
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            c.iter()
                .map(|m| {
                    modules[*m]
                        .strip_prefix(root())
                        .unwrap_or(&modules[*m])
                        .display()
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect()
}

/// module → the modules it imports from, ancestors left out (using an
/// ancestor's items is how Rust modules are built).
fn import_edges(
    modules: &BTreeMap<Vec<String>, PathBuf>,
) -> BTreeMap<&Vec<String>, BTreeSet<&Vec<String>>> {
    let mut edges: BTreeMap<&Vec<String>, BTreeSet<&Vec<String>>> = BTreeMap::new();
    for (module, path) in modules {
        let text = std::fs::read_to_string(path).unwrap();
        for reference in referenced_paths(&text, module) {
            // The longest prefix that is a module is what the file uses.
            let Some((target, _)) = (1..=reference.len())
                .rev()
                .find_map(|n| modules.get_key_value(&reference[..n]))
            else {
                continue;
            };
            if !module.starts_with(target) {
                edges.entry(module).or_default().insert(target);
            }
        }
    }
    edges
}

/// Tarjan's algorithm over the module graph.
fn strongly_connected<'a>(
    modules: &'a BTreeMap<Vec<String>, PathBuf>,
    edges: &BTreeMap<&'a Vec<String>, BTreeSet<&'a Vec<String>>>,
) -> Vec<Vec<&'a Vec<String>>> {
    struct State<'a> {
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<&'a Vec<String>>>,
    }
    fn visit<'a>(
        v: &'a Vec<String>,
        edges: &BTreeMap<&'a Vec<String>, BTreeSet<&'a Vec<String>>>,
        s: &mut State<'a>,
    ) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, edges, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for module in modules.keys() {
        if !state.index.contains_key(module) {
            visit(module, edges, &mut state);
        }
    }
    state.out
}

/// The checker itself finds a circle (a test that cannot fail is none).
#[test]
fn the_cycle_check_finds_a_planted_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::{self, Thing};\n").unwrap();
    std::fs::write(src.join("b.rs"), "use super::c::X;\n").unwrap();
    std::fs::write(src.join("c.rs"), "fn f() { crate::a::g() }\n").unwrap();
    let cycles = module_cycles(src);
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(cycles[0].matches(".rs").count(), 3, "{cycles:?}");
    std::fs::write(src.join("c.rs"), "fn f() {}\n").unwrap();
    assert!(module_cycles(src).is_empty());
}
