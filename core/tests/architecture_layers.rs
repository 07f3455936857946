//! The layout tells the flow: no two top-level modules of the crate import
//! each other, directly or around a circle. Each module's `crate::`
//! references are read from its source files (comments left out), and the
//! graph of top-level modules must have no cycle. A type several stages
//! need lives in the lowest module that needs them.
//!
//! `KNOWN` lists circles still to break, each with why it is there (none
//! now); a circle not listed fails the test, and so does a listed one that
//! is gone (take it off the list).
//!
//! [`check`] takes the source folder and the list, so other crates of the
//! workspace run the same check over their own modules: their layer test
//! includes this file (`#[path = ".../core/tests/architecture_layers.rs"]
//! mod layers;`, as `ffi/tests/architecture_layers.rs` does). The tests
//! below then run there too, and still check core: they find its sources
//! from the workspace root, not from the manifest of the crate under test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Circles not broken yet: (the modules in it, sorted; why).
const KNOWN: &[(&[&str], &str)] = &[];

/// Core's `src`, wherever this file is compiled (see the module docs).
fn core_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("every crate is a folder of the workspace")
        .join("core/src")
}

/// Every `.rs` file under `dir`, recursively.
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

/// The source without `//` comments (doc comments included) and string
/// literals' contents, roughly: enough that prose naming a module is not
/// read as an import.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` refers to with `crate::name` or inside a
/// `crate::{…}` group.
fn references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Module name → the other top-level modules it references, for the crate
/// whose sources are under `root` (its `src`).
fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(root).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" {
            continue; // the crate root declares and re-exports everything
        }
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        graph
            .entry(top.clone())
            .or_default()
            .extend(references(&code).into_iter().filter(|m| *m != top));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for edges in graph.values_mut() {
        edges.retain(|m| modules.contains(m));
    }
    graph
}

/// The strongly connected components of more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        for w in &s.graph[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// Fails on an import circle between the top-level modules of the crate
/// whose sources are under `src` that `known` does not list, and on a
/// circle `known` lists that is gone. `expect` names a few modules the
/// graph must have, so that a wrong folder fails instead of passing empty.
pub(crate) fn check(src: &Path, known: &[(&[&str], &str)], expect: &[&str]) {
    let graph = graph(src);
    assert!(
        expect.iter().all(|m| graph.contains_key(*m)),
        "{} lacks one of {expect:?}: {graph:?}",
        src.display()
    );
    let found = circles(&graph);
    let known: Vec<Vec<String>> = known
        .iter()
        .map(|(modules, _)| modules.iter().map(|m| (*m).to_owned()).collect())
        .collect();
    for circle in &found {
        let edges: Vec<String> = circle
            .iter()
            .flat_map(|m| {
                graph[m]
                    .iter()
                    .filter(|n| circle.contains(n))
                    .map(move |n| format!("{m} -> {n}"))
            })
            .collect();
        assert!(
            known.contains(circle),
            "a new import circle in {}: {circle:?}, through {edges:?}; a type \
             several modules need belongs in the lowest of them",
            src.display()
        );
    }
    for circle in &known {
        assert!(
            found.contains(circle),
            "the circle {circle:?} in {} is gone: take it off KNOWN",
            src.display()
        );
    }
}

#[test]
// Reading the sources is no memory-model question, and takes miri many
// minutes.
#[cfg_attr(miri, ignore)]
fn no_two_modules_import_each_other() {
    check(&core_src(), KNOWN, &["ring", "engine"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_reader_sees_references_in_code_not_in_prose() {
    let code = code_of(
        "use crate::ring::{Ring, Signal};\n\
         use crate::{batch, encode::Framer};\n\
         // crate::engine is named in prose only\n\
         let x = crate::clock::Clock::new(); /// crate::admin\n",
    );
    let refs: Vec<String> = references(&code).into_iter().collect();
    assert_eq!(refs, ["batch", "clock", "encode", "ring"]);
}
