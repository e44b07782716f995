//! The documents and the code speak of the software, not of how it was developed: no text in
//! README.md, BENCHMARKS.md, CHANGELOG.md, the Dockerfile, Cargo.toml, or any file under `src/`,
//! `benches/`, `deploy/` or `grafana/` names a numbered or a current work session ("the
//! thirteenth session's build", "this session's runs") or the project's own issues ("the
//! issue's target", "issue 7"). TLS and HTTP sessions are fine ("TLS session resumption", "a
//! session ticket"), and so is an upstream project's issue when it names the project
//! ("Heapster issue 1234", "kubernetes/kubernetes issue 1234", "metrics-server #1025").
//!
//! BENCHMARKS.md stays a reference, not a diary of runs: at most [`BENCHMARKS_MAX_LINES`] lines.

use std::path::{Path, PathBuf};

const BENCHMARKS_MAX_LINES: usize = 320;

/// Files checked at the top of the repository.
const FILES: [&str; 5] = [
    "README.md",
    "BENCHMARKS.md",
    "CHANGELOG.md",
    "Dockerfile",
    "Cargo.toml",
];

/// Folders checked with everything under them.
const DIRS: [&str; 4] = ["src", "benches", "deploy", "grafana"];

/// Words that make "session" a TLS or HTTP term when they follow it ("session ticket").
const PROTOCOL_TERMS: [&str; 14] = [
    "ticket",
    "tickets",
    "cache",
    "caches",
    "resumption",
    "resume",
    "resumed",
    "id",
    "ids",
    "key",
    "keys",
    "store",
    "storage",
    "cookie",
];

/// Words before "session" or "sessions" that make it a period of work ("this session", "the
/// earlier sessions"), unless a protocol term follows.
const PERIOD_WORDS: [&str; 28] = [
    "this", "that", "these", "those", "last", "next", "previous", "earlier", "later", "each",
    "every", "a", "the", "one", "same", "current", "prior", "past", "both", "all", "several",
    "many", "other", "two", "three", "four", "five", "of",
];

const ORDINALS: [&str; 20] = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
];

/// Upstream projects whose issues may be cited by number when named: "Heapster issue 1234".
const UPSTREAM: [&str; 14] = [
    "heapster",
    "metrics-server",
    "kubernetes",
    "kubelet",
    "kube-rs",
    "rustls",
    "hyper",
    "tokio",
    "axum",
    "influxdb",
    "grafana",
    "mimalloc",
    "prometheus",
    "go",
];

/// Lowercase words of a line: letters, digits and `-`, `/`, `#`, `_`; an apostrophe ends a word
/// ("session's" is "session" then "s").
fn words(line: &str) -> Vec<String> {
    line.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '/' | '#' | '_')))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_ordinal(word: &str) -> bool {
    if ORDINALS.contains(&word) || word == "nth" {
        return true;
    }
    let digits = word.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &word[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && matches!(suffix, "st" | "nd" | "rd" | "th")
}

/// `owner/name`, as GitHub spells a repository.
fn is_repository(word: &str) -> bool {
    word.split_once('/')
        .is_some_and(|(owner, name)| !owner.is_empty() && !name.is_empty())
}

fn is_number(word: &str) -> bool {
    let digits = word.trim_start_matches('#');
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

/// Why a line refers to how the software was developed, if it does.
fn development_reference(line: &str) -> Option<&'static str> {
    development_reference_after("", line)
}

/// The same, with the last word of the line before: a phrase may be wrapped ("the eleventh" at
/// the end of one line, "session's run" at the start of the next).
fn development_reference_after(previous_line: &str, line: &str) -> Option<&'static str> {
    let lower = line.to_lowercase().replace('’', "'");
    for phrase in ["the issue's", "this issue's", "that issue's"] {
        if lower.contains(phrase) {
            return Some("the project's own issue");
        }
    }
    let mut words = words(line);
    // The previous line's last word is context only: its own line reports it.
    let first = match self::words(previous_line).pop() {
        Some(last) => {
            words.insert(0, last);
            1
        }
        None => 0,
    };
    for i in first..words.len() {
        let prev = i.checked_sub(1).map(|p| words[p].as_str()).unwrap_or("");
        let next = words.get(i + 1).map(String::as_str).unwrap_or("");
        let numbered_issue = match words[i].as_str() {
            "issue" | "issues" => is_number(next),
            w => w.strip_prefix("issue-").is_some_and(is_number),
        };
        if numbered_issue && !UPSTREAM.contains(&prev) && !is_repository(prev) {
            return Some("the project's own issue by number");
        }
        if matches!(words[i].as_str(), "session" | "sessions") {
            if is_ordinal(prev) {
                return Some("a numbered work session");
            }
            if PERIOD_WORDS.contains(&prev) && !PROTOCOL_TERMS.contains(&next) {
                return Some("a work session");
            }
        }
    }
    None
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn checked_files() -> Vec<PathBuf> {
    let root = repo();
    let mut files: Vec<PathBuf> = FILES.iter().map(|f| root.join(f)).collect();
    for dir in DIRS {
        files_under(&root.join(dir), &mut files);
    }
    files.sort();
    files
}

#[test]
fn no_text_refers_to_how_the_software_was_developed() {
    let root = repo();
    let mut found = Vec::new();
    let mut checked = 0;
    for path in checked_files() {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        checked += 1;
        let text = String::from_utf8_lossy(&bytes);
        let mut previous = "";
        for (n, line) in text.lines().enumerate() {
            if let Some(why) = development_reference_after(previous, line) {
                let shown = path.strip_prefix(&root).unwrap_or(&path).display();
                found.push(format!("{shown}:{}: {why}: {}", n + 1, line.trim()));
            }
            previous = line;
        }
    }
    assert!(
        checked > 50,
        "only {checked} files found under {}",
        root.display()
    );
    assert!(
        found.is_empty(),
        "text that refers to how the software was developed (say what the software does, \
         and put measured figures in BENCHMARKS.md with their commit):\n{}",
        found.join("\n")
    );
}

#[test]
fn benchmarks_md_is_a_reference_not_a_diary() {
    let text = std::fs::read_to_string(repo().join("BENCHMARKS.md")).expect("BENCHMARKS.md");
    let lines = text.lines().count();
    assert!(
        lines <= BENCHMARKS_MAX_LINES,
        "BENCHMARKS.md has {lines} lines, more than {BENCHMARKS_MAX_LINES}: keep one current \
         table per benchmark (the history of runs is in git)"
    );
}

#[test]
fn development_history_is_flagged() {
    for line in [
        "The 1,000 and 5,000 rows are the thirteenth session's build",
        "in the five runs before this session's, 0.93 in both of this session's",
        "runs of the ninth and eleventh sessions did not write every point",
        "- Memory (issue 7, fifth session):",
        "measured in the 13th session",
        "the Nth session",
        "under the issue's 0.02 and 128",
        "Under the issue’s target",
        "End-to-end numbers for issue 7: the collector",
        "//! (issue 7). For each cluster size it starts `heapster-sim`",
        "see issue #25",
        "results after the issue-7 optimisations",
        "This session's VM ran faster than the fourth's",
        "the earlier sessions measured 0.024",
        "a later session will take it further",
        "| start of session (per-series store, BTreeMap, glibc) | 0.116 |",
    ] {
        assert!(development_reference(line).is_some(), "not flagged: {line}");
    }
    let wrapped = development_reference_after(
        "on a VM about a fifth faster than in the ninth",
        "  session's run.",
    );
    assert!(
        wrapped.is_some(),
        "a phrase wrapped over two lines is not flagged"
    );
}

#[test]
fn software_text_passes() {
    for line in [
        "TLS session resumption",
        "An idle connection holds its socket and TLS session, not a response buffer.",
        "keeps one idle connection per kubelet, holding only the socket and, over https, the TLS",
        "about 23 KiB per node more memory, for the TLS sessions it keeps",
        "a session ticket from the server",
        "rustls keeps the session cache at 256 entries",
        "the session resumption rate",
        "metrics-server #1025 reports the same",
        "Heapster issue 1234 describes the leak",
        "kubernetes/kubernetes issue 12345",
        "Issuer, KeyPair, KeyUsagePurpose",
        "to verify: issue a certificate for the service",
        "the issuer of the serving certificate",
    ] {
        assert_eq!(development_reference(line), None, "flagged: {line}");
    }
    let wrapped = development_reference_after(
        "an idle connection keeps its socket and the",
        "TLS session.",
    );
    assert_eq!(
        wrapped, None,
        "a TLS session wrapped over two lines is flagged"
    );
}
