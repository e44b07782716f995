//! The import-direction check: data flows one way (source → process → store / sinks → api, with
//! `model` the vocabulary everyone shares), and this test fails when a module of `src/` imports
//! against the flow. The rules are written once, here, and described in README's
//! "Architecture" section.
//!
//! It reads every `src/**/*.rs` and collects the crate modules each file names: `crate::x`
//! paths (in `use` or inline, `use crate::{x, y::z}` groups too) and `super::` paths that climb
//! out of the file's top-level module. Comments are skipped. Test code (`testing`, a `tests.rs`
//! file, or an inline `#[cfg(test)] mod tests { .. }` at the end of a file) follows the same rules, except that it
//! may use the simulator and the test helpers (`sim`, `testing`) to build its inputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What a module may import of the crate (besides itself).
enum Rule {
    /// Only these modules.
    Only(&'static [&'static str]),
    /// Anything but these modules.
    Never(&'static [&'static str]),
}

/// The flow. Modules not listed here (`app`, and the binaries in `src/bin/`) may import anything.
const RULES: &[(&str, Rule)] = &[
    // The shared vocabulary imports nothing of the crate.
    ("model", Rule::Only(&[])),
    // Flags → a validated configuration, in the shared vocabulary.
    ("config", Rule::Only(&["model"])),
    // Certificate diagnosis and the RBAC check helpers: leaves every layer may use.
    ("certificate", Rule::Only(&["model"])),
    ("rbac", Rule::Only(&["model"])),
    // Kubelet and apiserver clients, decoding: upstream of everything but the vocabulary.
    (
        "source",
        Rule::Never(&["app", "process", "store", "sink", "api"]),
    ),
    // Pure processing: samples in, metric sets out; no I/O, so no clients and no outputs.
    (
        "process",
        Rule::Never(&["app", "source", "store", "sink", "api"]),
    ),
    // Outputs: they take batches and never reach back to the sources or the API.
    ("store", Rule::Never(&["app", "source", "api"])),
    ("sink", Rule::Never(&["app", "source", "api"])),
    // The API reads snapshots and never triggers a scrape.
    ("api", Rule::Never(&["app", "source", "process"])),
    ("events", Rule::Never(&["app"])),
    // Sharding may use the vocabulary, the config, the sources and the API's secure machinery.
    ("shard", Rule::Never(&["app"])),
];

/// Outside the flow: who may use them (a file path under `src/`, or a module), outside test
/// code.
const OUTSIDE: &[(&str, &[&str])] = &[
    // The simulator: the embedded simulated source and the binaries.
    ("sim", &["app/simulated.rs", "bin/"]),
    // Test helpers: tests, benches and fuzz targets only.
    ("testing", &[]),
];

/// The crate's top-level modules: each `src/x.rs` or `src/x/`.
fn top_modules(src: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if ["lib", "main", "bin"].contains(&name) {
            continue;
        }
        if path.is_dir() || path.extension().is_some_and(|e| e == "rs") {
            out.insert(name.to_string());
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path below the crate root: `source/summary/fast.rs` → `[source, summary,
/// fast]`, `source/mod.rs` → `[source]`.
fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    &s[..s.find(|c: char| !is_ident(c)).unwrap_or(s.len())]
}

/// The first names of a `{a, b::c, d as e}` group (nested groups are one level deeper).
fn group_heads(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut at_item = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => break,
            '}' => depth -= 1,
            ',' if depth == 1 => at_item = true,
            c if depth == 1 && at_item && is_ident(c) => {
                out.push(ident(&s[i..]).to_string());
                at_item = false;
            }
            c if depth == 1 && !c.is_whitespace() => at_item = false,
            _ => {}
        }
    }
    out
}

/// The top-level modules one line of code names, from a file at `module` (one level deeper in
/// a test module).
fn names(line: &str, module: &[String], in_test: bool) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        let boundary = i == 0 || !is_ident(bytes[i - 1] as char) && bytes[i - 1] != b'$';
        if boundary && rest.starts_with("crate::") {
            let after = &rest["crate::".len()..];
            if after.starts_with('{') {
                out.extend(group_heads(after));
            } else {
                out.push(ident(after).to_string());
            }
            i += "crate::".len();
            continue;
        }
        if boundary && rest.starts_with("super::") {
            let mut ups = 0;
            let mut tail = rest;
            while let Some(t) = tail.strip_prefix("super::") {
                ups += 1;
                tail = t;
            }
            let depth = module.len() + usize::from(in_test);
            if ups >= depth {
                // Climbs to the crate root: the next name is a top-level module.
                if tail.starts_with('{') {
                    out.extend(group_heads(tail));
                } else {
                    out.push(ident(tail).to_string());
                }
            }
            i += rest.len() - tail.len();
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// Code without comments (line comments, and `/* */` blocks on their own lines), with each
/// line's number and whole text.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    let mut in_block = false;
    text.lines().enumerate().filter_map(move |(n, line)| {
        let t = line.trim_start();
        if in_block {
            in_block = !t.contains("*/");
            return None;
        }
        if t.starts_with("/*") {
            in_block = !t.contains("*/");
            return None;
        }
        let code = match t.find("//") {
            // Not inside a string such as "http://".
            Some(at) if !t[..at].contains('"') => &t[..at],
            _ => t,
        };
        (!code.is_empty()).then_some((n + 1, code, line))
    })
}

/// Why `from` (a file under `src/`, in module `top`) may not name `to`, if it may not.
fn violation(rel: &str, top: &str, to: &str, in_test: bool) -> Option<String> {
    if let Some((_, users)) = OUTSIDE.iter().find(|(m, _)| *m == to) {
        if in_test || top == to || users.iter().any(|u| rel.starts_with(u) || *u == top) {
            return None;
        }
        return Some(format!("only {users:?} and test code may use `{to}`"));
    }
    let (_, rule) = RULES.iter().find(|(m, _)| *m == top)?;
    match rule {
        Rule::Only(allowed) if !allowed.contains(&to) => {
            Some(format!("`{top}` may import only {allowed:?}"))
        }
        Rule::Never(banned) if banned.contains(&to) => {
            Some(format!("`{top}` must not import {banned:?}"))
        }
        _ => None,
    }
}

/// Every import against the flow, as `file:line: from → to (why)`.
fn violations(src: &Path) -> Vec<String> {
    let tops = top_modules(src);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let module = module_path(&rel);
        let top = module[0].as_str();
        let test_file = rel.ends_with("/tests.rs") || rel.contains("/tests/") || top == "testing";
        let text = std::fs::read_to_string(&path).expect("read");
        // In an inline `#[cfg(test)] mod tests { .. }`: from there to the end of the file.
        let mut test_module = false;
        let mut after_cfg_test = false;
        for (n, line, whole) in code_lines(&text) {
            if after_cfg_test && whole.starts_with("mod ") && whole.ends_with('{') {
                test_module = true;
            }
            after_cfg_test = whole.starts_with("#[cfg(test)]");
            let in_test = test_file || test_module;
            for to in names(line, &module, test_module) {
                if to == top || !tops.contains(&to) {
                    continue;
                }
                if let Some(why) = violation(&rel, top, &to, in_test) {
                    out.push(format!("src/{rel}:{n}: {top} → {to} ({why})"));
                }
            }
        }
    }
    out
}

#[test]
fn modules_import_along_the_flow() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "imports against the flow (see README, \"Architecture\"):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_every_form_of_import() {
    let at = |p: &str| module_path(p);
    assert_eq!(
        names("use crate::store::Store;", &at("source/scrape.rs"), false),
        ["store"]
    );
    assert_eq!(
        names(
            "use crate::{api::x, model::{A, B}, store};",
            &at("sink/mod.rs"),
            false
        ),
        ["api", "model", "store"]
    );
    assert_eq!(
        names(
            "let s = crate::sink::log::new();",
            &at("process/mod.rs"),
            false
        ),
        ["sink"]
    );
    // `super::` that leaves the top-level module names the sibling module.
    assert_eq!(
        names(
            "use super::super::api::X;",
            &at("sink/influxdb/mod.rs"),
            false
        ),
        ["api"]
    );
    assert_eq!(
        names("use super::summary::X;", &at("source/decode.rs"), false),
        Vec::<String>::new()
    );
    assert_eq!(
        names("use super::api::X;", &at("source/mod.rs"), false),
        ["api"]
    );
    // In a test module, `super` is first the file's own module.
    assert_eq!(
        names("use super::*;", &at("source/mod.rs"), true),
        Vec::<String>::new()
    );
    assert_eq!(
        names("$crate::model::X", &at("model/mod.rs"), false),
        Vec::<String>::new()
    );
    assert!(violation("source/scrape.rs", "source", "process", false).is_some());
    assert!(violation("process/rates.rs", "process", "model", false).is_none());
    assert!(violation("process/rates.rs", "process", "sim", false).is_some());
    assert!(violation("process/rates.rs", "process", "sim", true).is_none());
    assert!(violation("app/simulated.rs", "app", "sim", false).is_none());
    assert!(violation("config/flags.rs", "config", "store", false).is_some());
    assert!(violation("shard/mod.rs", "shard", "source", false).is_none());
    assert!(violation("shard/mod.rs", "shard", "app", false).is_some());
    let comments: Vec<_> =
        code_lines("// crate::api\nlet x = 1; // crate::api\n/// [`crate::api`]\n")
            .map(|(_, l, _)| l)
            .collect();
    assert_eq!(comments, ["let x = 1; "]);
}
