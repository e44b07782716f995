//! What the fuzz targets in `fuzz/` check, as ordinary tests: every input they found a problem
//! with (kept verbatim), and the same properties under proptest for `cargo test`.

use heapster_rs::api::metrics_api::selector::{FieldSelector, LabelSelector};
use heapster_rs::api::model_api::{parse_query, path};
use heapster_rs::config::{Parsed, format_duration, parse, parse_duration};
use heapster_rs::testing::fuzz::{self, SECRET};
use proptest::prelude::*;

/// Found while writing the `sink_url` target: a password holding `&` (typed, or out of `$S`)
/// was echoed as an "unknown option" name (config/expand.rs).
#[test]
fn option_names_cut_out_of_a_secret_are_not_echoed() {
    let leak = |name: &str| (name == "S").then(|| format!("ab&{SECRET}&{SECRET}"));
    for value in [
        "influxdb:http://h:8086?pw=$S",
        "influxdb:http://h:8086?pw=ab&fuzz-secret-from-env",
    ] {
        let arg = format!("--sink={value}");
        let Parsed::Exit { message, .. } = parse(["heapster", arg.as_str()], &leak) else {
            panic!("{value}: an unknown option is an error");
        };
        assert!(!message.contains(SECRET), "{value}: {message}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn source_values_never_panic_or_leak(
        kind in "(kubernetes|kubernetes.summary_api|simulated|x)",
        url in "(|https?://[a-z0-9.$]{0,12}(:[0-9]{1,6})?|''|\\$HOST|[ -~]{0,20})",
        query in proptest::collection::vec(
            "(inClusterConfig|insecure|auth|kubeletPort|kubeletHttps|kubeletInsecure|nodeProxy|addressTypes|kubeletEndpoint|serviceAccountDir|useServiceAccount|zz)=[ -~&&[^&#]]{0,10}",
            0..5,
        ),
    ) {
        fuzz::flag("source", &format!("{kind}:{url}?{}", query.join("&")));
    }

    #[test]
    fn sink_values_never_panic_or_leak(
        kind in "(influxdb|log|metric|x)",
        url in "(|https?://[a-z0-9.$]{0,12}(:[0-9]{1,6})?(/[a-z]{0,4})?|[ -~]{0,20})",
        query in proptest::collection::vec(
            "(user|pw|db|retention|rp|secure|insecuressl|withfields|cluster_name|concurrency|version|token|org|bucket|batch_size|buffer_points|gzip|zz)=[ -~&&[^&#]]{0,10}",
            0..5,
        ),
        secret in "(|pw=\\$S|token=\\$S)",
    ) {
        let mut options = query;
        options.push(secret);
        fuzz::flag("sink", &format!("{kind}:{url}?{}", options.join("&")));
    }

    #[test]
    fn durations_round_trip(secs in 0u64..10_000_000, nanos in 0u32..1_000_000_000) {
        let d = std::time::Duration::new(secs, nanos);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn model_paths_and_queries_never_panic(
        segments in proptest::collection::vec(
            "(nodes|namespaces|pods|pod-list|containers|freecontainers|metrics|cluster|debug|allkeys|cpu|usage_rate|memory-usage|a,b|,|[ -~]{0,8})",
            0..9,
        ),
        query in "[ -~]{0,64}",
    ) {
        let _ = path::parse(&segments.join("/"));
        let _ = parse_query(Some(&query));
    }

    #[test]
    fn selectors_never_panic(s in "[ -~]{0,64}") {
        let _ = LabelSelector::parse(&s);
        let _ = FieldSelector::parse(&s);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz::summary(&body);
        fuzz::resource(&body);
    }

    #[test]
    fn prometheus_text_never_panics(
        lines in proptest::collection::vec(
            "(# TYPE [a-z_]{1,12} (counter|gauge)|(node|pod|container)_(cpu_usage_seconds_total|memory_working_set_bytes|start_time_seconds)(\\{((container|pod|namespace)=\"[a-z]{0,3}\",?){0,3}\\})? [-+0-9.eE]{1,12}( [-0-9]{1,16})?|resource_scrape_error [0-9])",
            0..8,
        ),
    ) {
        fuzz::resource(lines.join("\n").as_bytes());
    }
}

/// Every fixture summary and Prometheus text, and 24 truncations of each (but the big
/// cAdvisor texts): a truncated
/// body is an error, never a panic (the seed corpus of the decode targets).
#[test]
fn fixture_summaries_and_their_truncations_never_panic() {
    let Some(dir) = heapster_rs::testing::fixtures_dir() else {
        return; // fixtures_dir says why (and fails under HEAPSTER_REQUIRE_FIXTURES)
    };
    let dir = dir.join("kubelet");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures/kubelet") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let body = std::fs::read(&path).expect("fixture");
        if name.ends_with(".json") {
            fuzz::summary(&body);
            for cut in (0..body.len()).step_by(body.len() / 24 + 1) {
                fuzz::summary(&body[..cut]);
            }
            seen += 1;
        } else if name.ends_with(".txt") {
            fuzz::resource(&body);
            // The cAdvisor captures run to 1.4 MB: whole only.
            let cuts = if body.len() < 200_000 { body.len() } else { 0 };
            for cut in (0..cuts).step_by(body.len() / 24 + 1) {
                fuzz::resource(&body[..cut]);
            }
        }
    }
    assert!(seen > 0, "no summaries in {}", dir.display());
}

/// Found by `summary_decode`: a timestamp after 2262 (out of i64 nanoseconds) overflowed in the
/// fast path of the Summary decoder instead of being refused (source/summary.rs).
#[test]
fn summary_timestamps_past_2262_are_refused() {
    let body =
        br#"{"node":{"nodeName":"n1","cpu":{"time":"4046-05-31T02:20:29Z","usageNanoCores":1}}}"#;
    assert!(heapster_rs::source::summary::decode(body).is_err());
    fuzz::summary(body);
}

/// Found by `source_url`: a URL scheme that came out of `$S` was echoed in the "scheme is not
/// supported" message, for `--source` and `--sink` alike (config/source.rs, config/sink.rs).
#[test]
fn url_schemes_from_the_environment_are_not_echoed() {
    for value in [
        "kubernetes:htm$S:T}?simulstps://..ecvre-0port..../..n\0:",
        "kubernetes:$S://h",
    ] {
        fuzz::flag("source", value);
    }
    fuzz::flag("sink", "influxdb:$S://h");
    let Parsed::Exit { message, .. } = parse(["heapster", "--sink=influxdb:ftp://h"], &fuzz::env)
    else {
        panic!("ftp is refused");
    };
    assert!(
        message.contains("scheme \"ftp\""),
        "typed values are still shown: {message}"
    );
}

/// The summary bodies the mutation proptests start from: every fixture summary (when the
/// fixtures are there; `fixtures_dir` says why not, and fails under HEAPSTER_REQUIRE_FIXTURES)
/// and two simulator payloads, one of them indented.
fn summary_bodies() -> &'static [Vec<u8>] {
    static BODIES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    BODIES.get_or_init(|| {
        let s = 1_000_000_000;
        let sim = heapster_rs::sim::summary_body(3, 4, 2, 1_750_000_000 * s, 1_750_003_600 * s);
        let value: serde_json::Value = serde_json::from_slice(&sim).expect("sim json");
        let mut bodies = vec![serde_json::to_vec_pretty(&value).expect("pretty"), sim];
        if let Some(dir) = heapster_rs::testing::fixtures_dir() {
            for entry in std::fs::read_dir(dir.join("kubelet")).expect("fixtures/kubelet") {
                let path = entry.expect("entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.contains("summary") && name.ends_with(".json") {
                    bodies.push(std::fs::read(&path).expect("fixture"));
                }
            }
        }
        bodies
    })
}

/// Where each member's `":` is (the end of every key) in `body`.
fn key_ends(body: &[u8]) -> Vec<usize> {
    body.windows(2)
        .enumerate()
        .filter(|(_, w)| w == b"\":")
        .map(|(i, _)| i)
        .collect()
}

/// The opening quote of the key that ends at `end` (keys in the bodies hold no escapes).
fn key_start(body: &[u8], end: usize) -> usize {
    body[..end].iter().rposition(|&c| c == b'"').unwrap_or(0)
}

/// One edit of a summary body, mostly making it invalid or odd in a way the fast parser must
/// leave to serde.
#[derive(Clone, Debug)]
enum Edit {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Truncate(prop::sample::Index),
    /// An escape just after a quote (a key's, a name's, a skipped string's).
    Escape(prop::sample::Index, &'static str),
    /// A copy of a member (`"key":value,`) right before it: a duplicate field.
    Duplicate(prop::sample::Index, &'static str),
    /// The number or string after a key replaced.
    Value(prop::sample::Index, &'static str),
    /// An unknown member holding arrays nested `depth` deep, before another member.
    Deep(prop::sample::Index, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    use prop::sample::{Index, select};
    let bytes = select(&b"\"\\,:{}[]-.eE0 \n\t\x01\x0c\x7f\xff"[..]);
    let escapes = select(vec![
        "\\n", "\\u0041", "\\\"", "\\\\", "\\/", "\\x", "\\u12",
    ]);
    let values = select(vec![
        "null",
        "-1",
        "-0",
        "1.0",
        "1.5",
        "1e3",
        "01",
        "0",
        "18446744073709551615",
        "18446744073709551616",
        "\"x\"",
        "\"\"",
        "[]",
        "{}",
        "true",
        "[1,]",
        "nul",
        "\"a\\nb\"",
    ]);
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, m)| Edit::Flip(i, m)),
        (any::<Index>(), bytes).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), escapes).prop_map(|(i, e)| Edit::Escape(i, e)),
        (any::<Index>(), values.clone()).prop_map(|(i, v)| Edit::Duplicate(i, v)),
        (any::<Index>(), values).prop_map(|(i, v)| Edit::Value(i, v)),
        (any::<Index>(), 1..=160usize).prop_map(|(i, d)| Edit::Deep(i, d)),
    ]
}

/// Applies `edit`; `true` when the body is still valid JSON shaped as before (an unknown member
/// added no deeper than the fast parser follows), so the fast parser must decode it.
fn apply(body: &mut Vec<u8>, edit: &Edit) -> bool {
    let len = body.len().max(1);
    let ends = key_ends(body);
    let at_key = |i: &prop::sample::Index| (!ends.is_empty()).then(|| ends[i.index(ends.len())]);
    match edit {
        Edit::Flip(i, m) if !body.is_empty() => body[i.index(len)] ^= m,
        Edit::Insert(i, b) => body.insert(i.index(len + 1).min(body.len()), *b),
        Edit::Delete(i) if !body.is_empty() => {
            body.remove(i.index(len));
        }
        Edit::Truncate(i) => body.truncate(i.index(len)),
        Edit::Escape(i, e) => {
            let quotes: Vec<usize> = (0..body.len()).filter(|&j| body[j] == b'"').collect();
            if !quotes.is_empty() {
                let at = quotes[i.index(quotes.len())] + 1;
                body.splice(at..at, e.bytes());
            }
        }
        Edit::Duplicate(i, v) => {
            if let Some(end) = at_key(i) {
                let start = key_start(body, end);
                let member = [&body[start..end + 2], v.as_bytes(), b","].concat();
                body.splice(start..start, member);
            }
        }
        Edit::Value(i, v) => {
            if let Some(end) = at_key(i) {
                let from = end + 2;
                let rest = &body[from..];
                let n = match rest.first() {
                    Some(b'"') => rest[1..]
                        .iter()
                        .position(|&c| c == b'"')
                        .map_or(0, |q| q + 2),
                    _ => rest
                        .iter()
                        .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                        .unwrap_or(rest.len()),
                };
                body.splice(from..from + n, v.bytes());
            }
        }
        Edit::Deep(i, depth) => {
            if let Some(end) = at_key(i) {
                let start = key_start(body, end);
                let member = format!("\"zz\":{}{},", "[".repeat(*depth), "]".repeat(*depth));
                body.splice(start..start, member.bytes());
                // The fast parser follows 100 levels inside an ignored value; the ignored
                // sections of these bodies (psi, interfaces, ...) nest a few levels at most.
                return *depth <= 90;
            }
            return true;
        }
        _ => {}
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Mutated summaries: whenever the fast parser decodes one, serde agrees (`fuzz::summary`
    /// panics otherwise); an unknown member nested up to 90 deep still decodes fast.
    #[test]
    fn mutated_summaries_keep_the_fast_parser_honest(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let bodies = summary_bodies();
        let mut body = bodies[which.index(bodies.len())].clone();
        let mut still_valid = true;
        for e in &edits {
            still_valid &= apply(&mut body, e);
        }
        fuzz::summary(&body);
        if still_valid {
            prop_assert!(heapster_rs::source::summary::fast::decode(&body).is_some());
        }
    }

    /// Valid variations (members set to `null` or removed, unknown members of any JSON value
    /// added, compact or indented): serde's result, and from the fast parser whenever serde
    /// decodes.
    #[test]
    fn valid_variations_of_summaries_decode_fast(
        which in any::<prop::sample::Index>(),
        changes in proptest::collection::vec(
            (any::<prop::sample::Index>(), 0..3u8, "zz[a-z]{0,3}", json_value()),
            1..6,
        ),
        pretty in any::<bool>(),
    ) {
        let bodies = summary_bodies();
        let mut value: serde_json::Value =
            serde_json::from_slice(&bodies[which.index(bodies.len())]).expect("json");
        for (at, op, key, new) in changes {
            let mut pointers = Vec::new();
            json_pointers(&value, String::new(), &mut pointers);
            let pointer = &pointers[at.index(pointers.len())];
            let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", ""));
            match op {
                0 => {
                    if let Some(v) = value.pointer_mut(pointer) {
                        *v = serde_json::Value::Null;
                    }
                }
                1 => {
                    if let Some(serde_json::Value::Object(m)) = value.pointer_mut(parent) {
                        m.remove(last);
                    }
                }
                _ => {
                    if let Some(serde_json::Value::Object(m)) = value.pointer_mut(pointer) {
                        m.insert(key, new);
                    }
                }
            }
        }
        let body = if pretty {
            serde_json::to_vec_pretty(&value)
        } else {
            serde_json::to_vec(&value)
        }
        .expect("serialises");
        fuzz::summary(&body);
        if heapster_rs::source::summary::decode_serde(&body).is_ok() {
            prop_assert!(heapster_rs::source::summary::fast::decode(&body).is_some());
        }
    }
}

/// Any JSON value whose strings need no escapes, nested a few levels.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9 é✓]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The JSON pointer of every value in `v` (keys in the bodies need no `~` escaping).
fn json_pointers(v: &serde_json::Value, here: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                json_pointers(child, format!("{here}/{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                json_pointers(child, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(here);
}

/// The `api_request` target's seeds (`fuzz/seed-corpus.sh`) and a few odd requests: never a
/// 500, never a panic (its setup is built by the main crate, so it follows the store's API).
#[test]
fn api_requests_from_the_seed_corpus_never_answer_500() {
    for input in [
        "/api/v1/model/nodes/n1/metrics/cpu/usage_rate?start=2026-01-01T00:00:00Z&end=2026-01-01T00:01:00Z",
        "/api/v1/model/namespaces/default/pod-list/p1,p2/metrics/memory-usage?labels=resource_id:/",
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%20in%20(web,db),!x&fieldSelector=metadata.name!=p2",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/p1",
        "/api/v1/model/namespaces/default/pods/p1/containers/app/metrics\naccept-encoding: gzip",
        "/api/v1/model/nodes/n1/freecontainers/kubelet/metrics/memory/working_set",
        "/metrics",
        "/api/v1/model/nodes/n1/metrics/cpu/usage_rate?start=9999-99-99&end=",
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=%ff%fe",
        "",
    ] {
        fuzz::api_request(input.as_bytes());
    }
}
