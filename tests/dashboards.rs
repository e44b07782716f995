//! The Grafana dashboards in `grafana/dashboards/{default,withfields}/` against the InfluxDB
//! schema heapster writes (REFERENCE.md §3).
//!
//! Three levels:
//! - static: every panel query and template-variable query parses as one of the known InfluxQL
//!   shapes and names only measurements, fields, tags and `type`s the schema has; units match
//!   the metrics; the files are what `grafana/generate.py` produces;
//! - schema fixture: a real `influxd` loaded with points shaped like heapster's (every metric
//!   for every entity type that has it); every query must return non-null data;
//! - collector: a real `influxd` fed by the collector itself (`--source=simulated:`); every
//!   query must return non-null data. Skipped while this build lacks the simulated source.
//!
//! `influxd` missing: the real-server tests print why and pass, unless
//! `HEAPSTER_REQUIRE_SERVERS=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use heapster_rs::model::Metric;
use serde_json::Value;

const SCHEMAS: [&str; 2] = ["default", "withfields"];
const TIME_FILTER: &str = "time > now() - 1h";
const INTERVAL: &str = "10s";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------
// Dashboards and their queries

struct Dashboard {
    file: String,
    json: Value,
}

impl Dashboard {
    /// `(variable name, query)` in declaration order (Grafana resolves them in that order).
    fn variables(&self) -> Vec<(String, String)> {
        self.json["templating"]["list"]
            .as_array()
            .expect("templating.list")
            .iter()
            .map(|v| {
                assert_eq!(v["type"], "query", "{}: only query variables", self.file);
                let name = v["name"].as_str().expect("name").to_string();
                (name, v["query"].as_str().expect("query").to_string())
            })
            .collect()
    }

    /// `(panel title, unit, query)` for every target.
    fn targets(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for p in self.json["panels"].as_array().expect("panels") {
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].as_str().expect("title").to_string();
            let unit = p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or("")
                .to_string();
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(t["rawQuery"], true, "{}: {title}: raw InfluxQL", self.file);
                let q = t["query"].as_str().expect("query").to_string();
                out.push((title.clone(), unit.clone(), q));
            }
        }
        out
    }
}

fn dashboards(schema: &str) -> Vec<Dashboard> {
    let dir = repo().join("grafana/dashboards").join(schema);
    let mut out: Vec<Dashboard> = std::fs::read_dir(&dir)
        .expect("dashboards dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| Dashboard {
            file: format!(
                "{schema}/{}",
                p.file_name().expect("name").to_string_lossy()
            ),
            json: serde_json::from_str(&std::fs::read_to_string(&p).expect("read"))
                .expect("dashboard JSON"),
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    assert_eq!(
        out.len(),
        5,
        "{schema}: cluster, nodes, namespaces, pods, events"
    );
    out
}

/// Replaces Grafana's macros and `$variables` (longest names first).
fn substitute(q: &str, vars: &BTreeMap<String, String>) -> String {
    let mut q = q
        .replace("$timeFilter", TIME_FILTER)
        .replace("$__interval", INTERVAL)
        .replace("$interval", INTERVAL);
    let mut names: Vec<_> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for n in names {
        q = q.replace(&format!("${n}"), &vars[n]);
    }
    let unresolved = q
        .match_indices('$')
        .any(|(i, _)| q[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'));
    assert!(!unresolved, "unsubstituted variable in {q}");
    q
}

/// Values that make every variable match something in the static checks.
fn placeholder_vars() -> BTreeMap<String, String> {
    let mut v: BTreeMap<String, String> = [
        "nodename",
        "namespace_name",
        "pod_name",
        "hostname",
        "kind",
        "event_type",
        "reason",
    ]
    .into_iter()
    .map(|n| (n.to_string(), ".*".to_string()))
    .collect();
    v.insert("cluster_name".into(), "default".into());
    v
}

// ---------------------------------------------------------------------------------------
// A parser for the InfluxQL the dashboards use

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Regex(String),
    Word(String),
    Num(String),
    Punct(&'static str),
}

fn tokenize(q: &str) -> Vec<Tok> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let until = |i: usize, end: char| -> (String, usize) {
        let mut j = i + 1;
        let mut s = String::new();
        while chars.get(j).is_some_and(|c| *c != end) {
            if chars[j] == '\\' {
                s.push(chars[j]);
                j += 1;
            }
            s.push(chars[j]);
            j += 1;
        }
        assert!(j < chars.len(), "unterminated {end} in {q}");
        (s, j + 1)
    };
    while i < chars.len() {
        let c = chars[i];
        let prev_is_value = matches!(
            out.last(),
            Some(Tok::Ident(_) | Tok::Num(_) | Tok::Punct(")"))
        );
        match c {
            ' ' => i += 1,
            '"' => {
                let (s, j) = until(i, '"');
                out.push(Tok::Ident(s));
                i = j;
            }
            '\'' => {
                let (s, j) = until(i, '\'');
                out.push(Tok::Str(s));
                i = j;
            }
            '/' if !prev_is_value => {
                let (s, j) = until(i, '/');
                out.push(Tok::Regex(s));
                i = j;
            }
            '=' if chars.get(i + 1) == Some(&'~') => {
                out.push(Tok::Punct("=~"));
                i += 2;
            }
            '(' | ')' | ',' | '=' | '>' | '<' | '-' | '*' | '/' => {
                let p = match c {
                    '(' => "(",
                    ')' => ")",
                    ',' => ",",
                    '=' => "=",
                    '>' => ">",
                    '<' => "<",
                    '-' => "-",
                    '*' => "*",
                    _ => "/",
                };
                out.push(Tok::Punct(p));
                i += 1;
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => panic!("unexpected {other:?} in {q}"),
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Eq,
    Re,
}

/// What a query reads.
#[derive(Debug, Default)]
struct Query {
    show_key: Option<String>,
    measurement: String,
    /// Arguments of aggregate functions and plain selected identifiers.
    fields: Vec<String>,
    filters: Vec<(String, Op, String)>,
    group_tags: Vec<String>,
    subquery: Option<Box<Query>>,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    text: String,
}

impl Parser {
    fn new(q: &str) -> Parser {
        Parser {
            toks: tokenize(q),
            pos: 0,
            text: q.to_string(),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Tok {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .unwrap_or_else(|| panic!("unexpected end of {}", self.text));
        self.pos += 1;
        t
    }

    fn word(&mut self, w: &str) {
        match self.next() {
            Tok::Word(x) if x.eq_ignore_ascii_case(w) => {}
            other => panic!("expected {w}, got {other:?} in {}", self.text),
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn punct(&mut self, p: &str) {
        match self.next() {
            Tok::Punct(x) if x == p => {}
            other => panic!("expected {p}, got {other:?} in {}", self.text),
        }
    }

    fn ident(&mut self) -> String {
        match self.next() {
            Tok::Ident(s) => s,
            other => panic!("expected \"identifier\", got {other:?} in {}", self.text),
        }
    }

    fn parse(mut self) -> Query {
        let q = if self.is_word("SHOW") {
            self.show()
        } else {
            self.select()
        };
        assert!(self.peek().is_none(), "trailing tokens in {}", self.text);
        q
    }

    fn show(&mut self) -> Query {
        for w in ["SHOW", "TAG", "VALUES", "FROM"] {
            self.word(w);
        }
        let measurement = self.ident();
        self.word("WITH");
        self.word("KEY");
        self.punct("=");
        let key = self.ident();
        let filters = if self.is_word("WHERE") {
            self.word("WHERE");
            self.conditions()
        } else {
            Vec::new()
        };
        Query {
            show_key: Some(key),
            measurement,
            filters,
            ..Query::default()
        }
    }

    fn select(&mut self) -> Query {
        self.word("SELECT");
        let mut q = Query::default();
        loop {
            match self.next() {
                Tok::Word(f) => {
                    assert!(
                        ["mean", "sum", "count", "max", "last"].contains(&f.as_str()),
                        "function {f} in {}",
                        self.text
                    );
                    self.punct("(");
                    q.fields.push(self.ident());
                    self.punct(")");
                }
                Tok::Ident(f) => q.fields.push(f),
                other => panic!("expected a field, got {other:?} in {}", self.text),
            }
            if self.is_word("AS") {
                self.word("AS");
                self.ident();
            }
            if self.peek() == Some(&Tok::Punct(",")) {
                self.next();
            } else {
                break;
            }
        }
        self.word("FROM");
        if self.peek() == Some(&Tok::Punct("(")) {
            self.next();
            let inner = self.select();
            self.punct(")");
            q.measurement = inner.measurement.clone();
            q.subquery = Some(Box::new(inner));
        } else {
            q.measurement = self.ident();
        }
        self.word("WHERE");
        q.filters = self.conditions();
        assert!(
            self.text.contains(TIME_FILTER),
            "no time filter in {}",
            self.text
        );
        if self.is_word("GROUP") {
            self.word("GROUP");
            self.word("BY");
            self.word("time");
            self.punct("(");
            assert_eq!(self.next(), Tok::Num(INTERVAL.into()), "{}", self.text);
            self.punct(")");
            while self.peek() == Some(&Tok::Punct(",")) {
                self.next();
                q.group_tags.push(self.ident());
            }
        }
        if self.is_word("fill") {
            self.word("fill");
            self.punct("(");
            match self.next() {
                Tok::Word(w) if ["null", "none"].contains(&w.as_str()) => {}
                Tok::Num(n) if n == "0" => {}
                other => panic!("fill({other:?}) in {}", self.text),
            }
            self.punct(")");
        }
        if self.is_word("ORDER") {
            for w in ["ORDER", "BY", "time", "DESC"] {
                self.word(w);
            }
        }
        if self.is_word("LIMIT") {
            self.word("LIMIT");
            assert!(matches!(self.next(), Tok::Num(_)), "{}", self.text);
        }
        q
    }

    /// `a AND b AND ...` of `"tag" = 'v'`, `"tag" =~ /re/` and `time > now() - 1h`.
    fn conditions(&mut self) -> Vec<(String, Op, String)> {
        let mut out = Vec::new();
        loop {
            if self.is_word("time") {
                self.word("time");
                self.punct(">");
                self.word("now");
                self.punct("(");
                self.punct(")");
                self.punct("-");
                assert_eq!(self.next(), Tok::Num("1h".into()));
            } else {
                let tag = self.ident();
                match self.next() {
                    Tok::Punct("=") => match self.next() {
                        Tok::Str(v) => out.push((tag, Op::Eq, v)),
                        other => panic!("expected 'value', got {other:?} in {}", self.text),
                    },
                    Tok::Punct("=~") => match self.next() {
                        Tok::Regex(r) => {
                            assert!(
                                r.starts_with('^') && r.ends_with('$'),
                                "anchored regex: {r}"
                            );
                            out.push((tag, Op::Re, r));
                        }
                        other => panic!("expected /regex/, got {other:?} in {}", self.text),
                    },
                    other => panic!("expected = or =~, got {other:?} in {}", self.text),
                }
            }
            if self.is_word("AND") {
                self.word("AND");
            } else {
                return out;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The schema (REFERENCE.md §3)

const TYPES: [&str; 6] = [
    "node",
    "sys_container",
    "pod",
    "pod_container",
    "ns",
    "cluster",
];

/// The entity types that carry a metric.
fn types_of(m: Metric) -> &'static [&'static str] {
    use Metric::*;
    match m {
        Uptime => &["node", "sys_container", "pod", "pod_container"],
        CpuUsage
        | MemoryRss
        | MemoryPageFaults
        | MemoryMajorPageFaults
        | MemoryPageFaultsRate
        | MemoryMajorPageFaultsRate => &["node", "sys_container", "pod", "pod_container"],
        CpuUsageRate | MemoryUsage | MemoryWorkingSet => &TYPES,
        CpuRequest | CpuLimit | MemoryRequest | MemoryLimit => {
            &["node", "pod", "pod_container", "ns", "cluster"]
        }
        CpuNodeCapacity
        | CpuNodeAllocatable
        | CpuNodeUtilization
        | CpuNodeReservation
        | MemoryNodeCapacity
        | MemoryNodeAllocatable
        | MemoryNodeUtilization
        | MemoryNodeReservation => &["node"],
        NetworkRx | NetworkRxErrors | NetworkTx | NetworkTxErrors | NetworkRxRate
        | NetworkRxErrorsRate | NetworkTxRate | NetworkTxErrorsRate => &["node", "pod"],
        FilesystemUsage | FilesystemLimit | FilesystemAvailable | FilesystemInodes
        | FilesystemInodesFree => &["node", "pod", "pod_container"],
        EphemeralStorageUsage => &["node", "pod", "pod_container"],
        EphemeralStorageRequest | EphemeralStorageLimit => &["node", "pod", "pod_container"],
        RestartCount => &["pod", "pod_container"],
        CpuPressureSome | CpuPressureFull | MemoryPressureSome | MemoryPressureFull
        | IoPressureSome | IoPressureFull | MemorySwapAvailable => {
            &["node", "sys_container", "pod", "pod_container"]
        }
        MemorySwapUsage => &TYPES,
        ProcessCount => &["node", "pod", "ns", "cluster"],
        ProcessLimit => &["node"],
    }
}

/// Tags of an entity type, besides `type` and `cluster_name`.
fn tags_of(t: &str) -> &'static [&'static str] {
    match t {
        "node" => &["nodename", "labels"],
        "sys_container" => &["nodename", "container_name"],
        "pod" => &["nodename", "namespace_name", "pod_name", "labels"],
        "pod_container" => &[
            "nodename",
            "namespace_name",
            "pod_name",
            "container_name",
            "container_base_image",
            "labels",
        ],
        "ns" => &["namespace_name"],
        "cluster" => &[],
        other => panic!("unknown type {other}"),
    }
}

const DEFAULT_EVENT_TAGS: &[&str] = &["uid", "pod_name", "hostname", "cluster_name"];
const WITHFIELDS_EVENT_TAGS: &[&str] = &[
    "uid",
    "object_name",
    "type",
    "kind",
    "component",
    "reason",
    "namespace_name",
    "hostname",
    "cluster_name",
];

/// The Heapster metric a (measurement, field) pair of `schema` holds.
fn metric_of(schema: &str, measurement: &str, field: &str) -> Option<Metric> {
    match schema {
        "default" => (field == "value").then(|| Metric::from_name(measurement))?,
        // Names without a slash (uptime, restart_count) keep the field `value`.
        _ if !measurement.contains('/') && field == "value" => Metric::from_name(measurement),
        _ => Metric::from_name(&format!("{measurement}/{field}")),
    }
}

fn events_measurement(schema: &str) -> (&'static str, &'static str, &'static [&'static str]) {
    match schema {
        "default" => ("log/events", "value", DEFAULT_EVENT_TAGS),
        _ => ("events", "message", WITHFIELDS_EVENT_TAGS),
    }
}

/// Checks one parsed query against the schema; returns the metrics it reads.
fn check_query(schema: &str, q: &Query, what: &str) -> Vec<Metric> {
    let (ev_m, ev_f, ev_tags) = events_measurement(schema);
    if q.measurement == ev_m {
        for f in &q.fields {
            assert!(f == ev_f || ev_tags.contains(&f.as_str()), "{what}: {f}");
        }
        let tags = q
            .filters
            .iter()
            .map(|(t, _, _)| t)
            .chain(&q.group_tags)
            .chain(&q.show_key);
        for t in tags {
            assert!(ev_tags.contains(&t.as_str()), "{what}: event tag {t}");
        }
        return Vec::new();
    }
    let types: Vec<&str> = q
        .filters
        .iter()
        .filter(|(t, op, _)| t == "type" && *op == Op::Eq)
        .map(|(_, _, v)| v.as_str())
        .collect();
    for t in &types {
        assert!(TYPES.contains(t), "{what}: type {t}");
    }
    let mut allowed: BTreeSet<&str> = ["type", "cluster_name"].into();
    match types.as_slice() {
        [t] => allowed.extend(tags_of(t)),
        [] => TYPES.iter().for_each(|t| allowed.extend(tags_of(t))),
        more => panic!("{what}: several types {more:?}"),
    }
    if let Some(key) = &q.show_key {
        assert_eq!(
            metric_of(schema, &q.measurement, "value"),
            Some(Metric::Uptime)
        );
        assert!(allowed.contains(key.as_str()), "{what}: key {key}");
    }
    let metrics: Vec<Metric> = if let Some(inner) = &q.subquery {
        assert_eq!(
            q.fields,
            ["value"],
            "{what}: outer query sums the inner alias"
        );
        check_query(schema, inner, what)
    } else if q.show_key.is_some() {
        vec![Metric::Uptime]
    } else {
        q.fields
            .iter()
            .map(|f| {
                metric_of(schema, &q.measurement, f)
                    .unwrap_or_else(|| panic!("{what}: {}.{f} is not in the schema", q.measurement))
            })
            .collect()
    };
    for m in &metrics {
        if m.is_labeled() {
            allowed.insert("resource_id");
            if types.is_empty() || types.contains(&"pod") {
                allowed.insert("pvc_name");
            }
        }
        for t in &types {
            assert!(types_of(*m).contains(t), "{what}: {m} has no type {t}");
        }
    }
    let tags = q.filters.iter().map(|(t, _, _)| t).chain(&q.group_tags);
    for t in tags {
        assert!(
            allowed.contains(t.as_str()),
            "{what}: tag {t} with {types:?}"
        );
    }
    metrics
}

/// The Grafana unit a metric is shown in.
fn unit_of(m: Metric) -> &'static str {
    match m.units() {
        "millicores" => "suffix:m",
        "bytes" => "bytes",
        "bytes/s" => "binBps",
        "fraction" => "percentunit",
        "percent" => "percent",
        "ms" => "ms",
        "count" | "count/s" => "short",
        other => panic!("no unit for {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// Static checks

#[test]
fn every_query_parses_and_reads_only_the_schema() {
    let vars = placeholder_vars();
    let mut queries = 0;
    for schema in SCHEMAS {
        for d in dashboards(schema) {
            for (name, q) in d.variables() {
                let parsed = Parser::new(&substitute(&q, &vars)).parse();
                assert!(parsed.show_key.is_some(), "{}: ${name}", d.file);
                check_query(schema, &parsed, &format!("{}: ${name}", d.file));
                queries += 1;
            }
            for (title, unit, q) in d.targets() {
                let what = format!("{}: {title}", d.file);
                let parsed = Parser::new(&substitute(&q, &vars)).parse();
                for m in check_query(schema, &parsed, &what) {
                    assert_eq!(unit, unit_of(m), "{what}: unit for {m}");
                }
                queries += 1;
            }
        }
    }
    assert!(queries > 150, "{queries} queries");
}

#[test]
fn dashboards_are_uniform_and_use_the_provisioned_datasource() {
    for schema in SCHEMAS {
        let mut uids = BTreeSet::new();
        for d in dashboards(schema) {
            let j = &d.json;
            assert!(uids.insert(j["uid"].as_str().expect("uid").to_string()));
            assert_eq!(j["refresh"], "1m", "{}", d.file);
            assert_eq!(j["time"]["from"], "now-1h", "{}", d.file);
            let names: Vec<String> = d.variables().into_iter().map(|(n, _)| n).collect();
            assert_eq!(names[0], "cluster_name", "{}", d.file);
            for p in j["panels"].as_array().expect("panels") {
                if p["type"] != "row" {
                    assert_eq!(p["datasource"]["uid"], "monitoring-influxdb", "{}", d.file);
                }
            }
            // Variables that filter by another are declared after it.
            for (i, (_, q)) in d.variables().iter().enumerate() {
                for later in &names[i..] {
                    assert!(!q.contains(&format!("${later}$")), "{}: order", d.file);
                }
            }
        }
    }
    let ds = std::fs::read_to_string(repo().join("grafana/provisioning/datasources/influxdb.yaml"))
        .expect("datasource");
    assert!(ds.contains("uid: monitoring-influxdb") && ds.contains("dbName: k8s"));
}

#[test]
fn cluster_totals_sum_per_node_means_not_raw_points() {
    for schema in SCHEMAS {
        let d = dashboards(schema)
            .into_iter()
            .find(|d| d.file.ends_with("cluster.json"))
            .expect("cluster dashboard");
        let cpu = d
            .targets()
            .into_iter()
            .find(|(title, _, _)| title == "CPU")
            .expect("CPU panel");
        let parsed = Parser::new(&substitute(&cpu.2, &placeholder_vars())).parse();
        let inner = parsed.subquery.expect("a subquery");
        assert_eq!(inner.group_tags, ["nodename"]);
        assert!(
            cpu.2
                .starts_with("SELECT sum(\"value\") FROM (SELECT mean(")
        );
    }
}

#[test]
fn dashboards_are_what_the_generator_writes() {
    let ok = Command::new("python3").arg("--version").output().is_ok();
    if !ok {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let out = Command::new("python3")
        .arg(repo().join("grafana/generate.py"))
        .arg("--check")
        .output()
        .expect("run generate.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// A real influxd

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn influxd_available() -> bool {
    let ok = Command::new("influxd")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("HEAPSTER_REQUIRE_SERVERS").as_deref() == Ok("1") {
            panic!("influxd is not installed and HEAPSTER_REQUIRE_SERVERS=1");
        }
        eprintln!("skipped: influxd not installed (apt-get install -y influxdb)");
    }
    ok
}

/// `influxd run` on loopback ports with its own directories; killed on drop.
struct Influxd {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Influxd {
    fn start() -> Influxd {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display();
        let (port, rpc) = (free_port(), free_port());
        let config = format!(
            "reporting-enabled = false\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n"
        );
        let conf = dir.path().join("influxd.conf");
        std::fs::write(&conf, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("influxd.log")).expect("log");
        let child = Command::new("influxd")
            .arg("run")
            .arg("-config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn influxd");
        let mut s = Influxd {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(s.port, "GET", "/ping", "").map(|r| r.0) != Some(204) {
            assert!(Instant::now() < deadline, "influxd not ready");
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("influxd exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn query(&self, db: &str, q: &str) -> Value {
        let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let (status, body) = http(self.port, "GET", &format!("/query?db={db}&q={enc}"), "")
            .expect("influxd answers");
        assert_eq!(status, 200, "{q}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        if let Some(e) = v["results"][0]["error"].as_str() {
            panic!("{q}: {e}");
        }
        v
    }

    fn write(&self, db: &str, lines: &str) {
        let (status, body) =
            http(self.port, "POST", &format!("/write?db={db}"), lines).expect("influxd answers");
        assert_eq!(status, 204, "{body}");
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 exchange: (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.get(9..12)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Every series of a result, as rows of values (time column dropped).
fn rows(v: &Value) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    for series in v["results"][0]["series"].as_array().into_iter().flatten() {
        for row in series["values"].as_array().into_iter().flatten() {
            let row = row.as_array().expect("row");
            let skip = usize::from(series["columns"][0] == "time");
            out.push(row[skip..].to_vec());
        }
    }
    out
}

/// Regex-escapes a tag value the way Grafana does for InfluxQL.
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = r"\^$.|?*+()[]{}/-".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// Runs every dashboard of `schema` against `db`: variables are resolved in order from their
/// own queries (the first value each), then every panel query must return a non-null value.
fn run_dashboards(influx: &Influxd, db: &str, schema: &str, known_gaps: &[Metric]) -> usize {
    let mut failures = Vec::new();
    let mut gaps = Vec::new();
    let mut ran = 0;
    for d in dashboards(schema) {
        let mut vars = BTreeMap::new();
        for (name, q) in d.variables() {
            let result = influx.query(db, &substitute(&q, &vars));
            let values: Vec<String> = rows(&result)
                .into_iter()
                .filter_map(|r| r.get(1).and_then(Value::as_str).map(String::from))
                .collect();
            ran += 1;
            match values.first() {
                Some(v) => {
                    let v = if name == "cluster_name" {
                        v.clone()
                    } else {
                        regex_escape(v)
                    };
                    vars.insert(name, v);
                }
                None => {
                    failures.push(format!("{}: ${name} has no values: {q}", d.file));
                    vars.insert(name, ".*".into());
                }
            }
        }
        for (title, _, q) in d.targets() {
            let q = substitute(&q, &vars);
            let result = influx.query(db, &q);
            ran += 1;
            let has_value = rows(&result).iter().any(|r| r.iter().any(|v| !v.is_null()));
            let metrics = check_query(schema, &Parser::new(&q).parse(), &title);
            let is_gap = !metrics.is_empty()
                && !q.contains("\"type\" = 'node'")
                && metrics.iter().all(|m| known_gaps.contains(m));
            match (has_value, is_gap) {
                (true, false) => {}
                (false, false) => failures.push(format!("{}: {title}: no data: {q}", d.file)),
                (false, true) => gaps.push(format!("{}: {title}: {metrics:?}", d.file)),
                (true, true) => failures.push(format!(
                    "{}: {title}: {metrics:?} now has data: remove it from KNOWN_GAPS",
                    d.file
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for g in &gaps {
        eprintln!("known gap (no data from the collector yet): {g}");
    }
    ran
}

// ---------------------------------------------------------------------------------------
// Level 2: points shaped like heapster's

/// Line protocol for a small cluster at `t` (ns): two nodes, system containers, two pods per
/// node in two namespaces with two containers each, namespaces, the cluster, and events.
fn fixture_lines(schema: &str, t: i64) -> String {
    let with_fields = schema == "withfields";
    let mut entities: Vec<(String, &str)> = Vec::new();
    for n in 0..2 {
        let node = format!("nodename=node-{n}");
        entities.push((
            format!("type=node,{node},labels=kubernetes.io/os:linux"),
            "node",
        ));
        for c in ["kubelet", "docker-daemon"] {
            entities.push((
                format!("type=sys_container,{node},container_name={c}"),
                "sys_container",
            ));
        }
        for p in 0..2 {
            let ns = ["default", "kube-system"][p];
            let pod = format!("{node},namespace_name={ns},pod_name=pod-{n}-{p},labels=app:web");
            entities.push((format!("type=pod,{pod}"), "pod"));
            for c in ["app", "sidecar"] {
                entities.push((
                    format!(
                        "type=pod_container,{pod},container_name={c},container_base_image=busybox:1"
                    ),
                    "pod_container",
                ));
            }
        }
    }
    for ns in ["default", "kube-system"] {
        entities.push((format!("type=ns,namespace_name={ns}"), "ns"));
    }
    entities.push(("type=cluster".to_string(), "cluster"));

    let mut out = String::new();
    for (tags, typ) in &entities {
        let metrics: Vec<Metric> = Metric::ALL
            .iter()
            .copied()
            .filter(|m| types_of(*m).contains(typ))
            .collect();
        let value = |m: Metric| -> String {
            let v = 100 + m as i64;
            match m.value_type() {
                heapster_rs::model::ValueType::Int => format!("{v}i"),
                heapster_rs::model::ValueType::Float => format!("{v}.5"),
            }
        };
        for rid in ["/", "logs", "Volume:data"] {
            let labeled: Vec<_> = metrics.iter().filter(|m| m.is_labeled()).collect();
            if labeled.is_empty()
                || (rid == "logs" && *typ != "pod_container")
                || (rid == "Volume:data" && *typ != "pod")
            {
                continue;
            }
            // A pod's volume of a claim carries the claim's name.
            let claim = if rid.starts_with("Volume:") {
                ",pvc_name=data-claim"
            } else {
                ""
            };
            push_points(
                &mut out,
                with_fields,
                &labeled,
                &format!("{tags},resource_id={rid}{claim}"),
                t,
                &value,
            );
        }
        let plain: Vec<_> = metrics.iter().filter(|m| !m.is_labeled()).collect();
        push_points(&mut out, with_fields, &plain, tags, t, &value);
    }
    if with_fields {
        out.push_str(&format!(
            "events,cluster_name=default,component=kubelet,hostname=node-0,kind=Pod,\
             namespace_name=default,object_name=pod-0-0,reason=Started,type=Normal,uid=e1 \
             message=\"Started container app\" {t}\n"
        ));
    } else {
        out.push_str(&format!(
            "log/events,cluster_name=default,hostname=node-0,pod_name=pod-0-0,uid=e1 \
             value=\"{{\\\"reason\\\":\\\"Started\\\"}}\" {t}\n"
        ));
    }
    out
}

fn push_points(
    out: &mut String,
    with_fields: bool,
    metrics: &[&Metric],
    tags: &str,
    t: i64,
    value: &dyn Fn(Metric) -> String,
) {
    let tags = format!("{tags},cluster_name=default");
    if !with_fields {
        for m in metrics {
            out.push_str(&format!("{},{tags} value={} {t}\n", m.name(), value(**m)));
        }
        return;
    }
    let mut by_measurement: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in metrics {
        let (meas, field) = m.name().split_once('/').unwrap_or((m.name(), "value"));
        by_measurement
            .entry(meas)
            .or_default()
            .push(format!("{field}={}", value(**m)));
    }
    for (meas, fields) in by_measurement {
        out.push_str(&format!("{meas},{tags} {} {t}\n", fields.join(",")));
    }
}

#[test]
fn every_query_returns_data_from_heapster_shaped_points_in_influxdb() {
    if !influxd_available() {
        return;
    }
    let influx = Influxd::start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    for schema in SCHEMAS {
        let db = format!("k8s_{schema}");
        influx.query("", &format!("CREATE DATABASE {db}"));
        for back in [40, 30, 20, 10] {
            influx.write(&db, &fixture_lines(schema, now - back * 1_000_000_000));
        }
        let ran = run_dashboards(&influx, &db, schema, &[]);
        eprintln!("{schema}: {ran} queries returned data from the fixture");
    }
}

// ---------------------------------------------------------------------------------------
// Level 3: the collector writing into influxd

/// Metrics the collector does not write (none: the entries found while the pod watch was
/// broken are gone). A query reading only these is reported, not failed; one that starts
/// returning data fails the test so the entry gets removed.
const KNOWN_GAPS: &[Metric] = &[];

/// Starts the collector on a simulated cluster writing to `influx`; `None` when this build
/// cannot (the simulated source or the InfluxDB sink is not there yet).
fn start_collector(
    rt: &tokio::runtime::Runtime,
    influx: &Influxd,
    with_fields: bool,
) -> Option<heapster_rs::app::App> {
    let sink = format!(
        "--sink=influxdb:http://127.0.0.1:{}?db=k8s&withfields={with_fields}",
        influx.port
    );
    let args = [
        "heapster",
        "--source=simulated:?nodes=3&podsPerNode=4",
        "--metric_resolution=5s",
        "--heapster-port=0",
        "--listen_ip=127.0.0.1",
        sink.as_str(),
    ];
    let no_env = |_: &str| None;
    let cfg = match heapster_rs::config::parse(args, &no_env) {
        heapster_rs::config::Parsed::Run(cfg) => cfg,
        heapster_rs::config::Parsed::Exit { message, .. } => panic!("{message}"),
    };
    let env: heapster_rs::app::Env = std::sync::Arc::new(|_: &str| None);
    match rt.block_on(heapster_rs::app::App::start(cfg, env)) {
        Ok(app) => Some(app),
        Err(e) if e.to_string().contains("not available yet") => {
            if std::env::var("HEAPSTER_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("the collector cannot run here: {e}");
            }
            eprintln!("skipped: the collector cannot run the simulated source yet: {e}");
            None
        }
        Err(e) => panic!("App::start: {e:#}"),
    }
}

fn collector_end_to_end(schema: &str) {
    if !influxd_available() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let influx = Influxd::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(app) = start_collector(&rt, &influx, schema == "withfields") else {
        return;
    };
    // Rates need two scrapes; wait for two batches of node cpu/usage_rate.
    let (m, f) = if schema == "withfields" {
        ("cpu", "usage_rate")
    } else {
        ("cpu/usage_rate", "value")
    };
    let probe = format!("SELECT count(\"{f}\") FROM \"{m}\" WHERE \"type\" = 'node'");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let seen = http(influx.port, "GET", "/ping", "").is_some()
            && rows(&influx_query_lenient(&influx, &probe))
                .first()
                .and_then(|r| r.first())
                .and_then(Value::as_i64)
                .is_some_and(|n| n >= 6);
        if seen {
            break;
        }
        // A batch went out but no InfluxDB sink took it: this build ignores --sink=influxdb.
        let healthy = http(app.addr.port(), "GET", "/healthz", "").is_some_and(|r| r.0 == 200);
        let metrics = http(app.addr.port(), "GET", "/metrics", "").map(|r| r.1);
        if healthy && metrics.is_some_and(|m| !m.contains("sink=\"influxdb\"")) {
            if std::env::var("HEAPSTER_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("this build has no InfluxDB sink");
            }
            eprintln!("skipped: this build has no InfluxDB sink (--sink=influxdb is ignored)");
            rt.block_on(app.stop());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no node cpu/usage_rate in InfluxDB after 90s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The simulator has no events source; eventer is its own binary. Feed one event in
    // eventer's schema so the Events dashboard's queries are exercised too.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    let events: String = fixture_lines(schema, t)
        .lines()
        .filter(|l| l.starts_with("events,") || l.starts_with("log/events,"))
        .map(|l| format!("{l}\n"))
        .collect();
    influx.write("k8s", &events);
    let ran = run_dashboards(&influx, "k8s", schema, KNOWN_GAPS);
    eprintln!("{schema}: {ran} queries run against the collector's data");
    rt.block_on(app.stop());
}

/// A query that may hit a database not created yet.
fn influx_query_lenient(influx: &Influxd, q: &str) -> Value {
    let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
    http(influx.port, "GET", &format!("/query?db=k8s&q={enc}"), "")
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null)
}

#[test]
fn every_default_schema_query_returns_data_from_the_collector() {
    collector_end_to_end("default");
}

#[test]
fn every_withfields_query_returns_data_from_the_collector() {
    collector_end_to_end("withfields");
}
