//! What the fuzz targets in `fuzz/` check, as ordinary tests: every input they found a problem
//! with (kept verbatim), and the same properties under proptest for `cargo test`.

use heapster_rs::api::model::{parse_query, path};
use heapster_rs::api::resource::selector::{FieldSelector, LabelSelector};
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
