//! The fast parser against serde: real and simulated payloads decode fast and equal serde's
//! result; every case it must leave to serde does (and `decode` then gives serde's answer).

use std::borrow::Cow;

use super::super::{Summary, decode, decode_serde};
use super::decode as fast;

/// A small payload with every known field and some ignored ones.
const BASE: &str = r#"{"node":{"nodeName":"n1","ign":0.5,"startTime":"2026-01-01T00:00:00Z","cpu":{"time":"2026-01-01T00:00:01Z","usageNanoCores":5,"usageCoreNanoSeconds":7,"psi":{"full":{"total":1,"avg10":0.5,"avg60":-1.5e-3}}},"memory":{"time":"2026-01-01T00:00:01.5Z","availableBytes":0,"usageBytes":10,"workingSetBytes":9,"rssBytes":8,"pageFaults":7,"majorPageFaults":6},"network":{"time":"2026-01-01T00:00:01Z","rxBytes":1,"rxErrors":2,"txBytes":3,"txErrors":4,"interfaces":[{"name":"eth0","rxBytes":1,"up":true,"down":false,"x":null}]},"fs":{"time":"2026-01-01T00:00:01Z","availableBytes":1,"capacityBytes":2,"usedBytes":3,"inodesFree":4,"inodes":5,"inodesUsed":6},"runtime":{"imageFs":{"capacityBytes":4},"containerFs":null},"limits":{"maxpid":1,"curproc":[],"o":{}},"rlimit":{"time":"2026-01-01T00:00:01Z","maxpid":4194304,"curproc":300},"io":{"time":"2026-01-01T00:00:01Z","psi":{"some":{"total":9,"avg300":0},"full":null}},"swap":{"time":"2026-01-01T00:00:01Z","swapAvailableBytes":1024,"swapUsageBytes":512},"systemContainers":[{"name":"kubelet","cpu":{"usageNanoCores":1}}]},"pods":[{"podRef":{"name":"p","namespace":"ns","uid":"u"},"startTime":"2026-01-01T00:00:00Z","containers":[{"name":"c","startTime":"2026-01-01T00:00:00Z","cpu":{"usageCoreNanoSeconds":2},"memory":{"usageBytes":3},"rootfs":{"usedBytes":1},"logs":{"usedBytes":2},"swap":{"swapUsageBytes":0},"io":{"psi":{"full":{"total":3},"some":{"total":4}}}}],"cpu":{"usageNanoCores":2},"memory":{"rssBytes":1,"psi":{"some":{"total":5}}},"swap":{"swapUsageBytes":8},"network":{"txBytes":6},"volume":[{"name":"v","time":"2026-01-01T00:00:00Z","usedBytes":5,"inodes":18446744073709551615,"pvcRef":{"name":"c","namespace":"ns"}}],"ephemeral-storage":{"usedBytes":7},"process_stats":{"process_count":2}}]}"#;

/// `decode` gives exactly what serde alone gives (the value, or the same error message).
fn same_as_serde(body: &[u8]) {
    let ours = decode(body).map_err(|e| e.to_string());
    let serde = decode_serde(body).map_err(|e| e.to_string());
    assert_eq!(ours, serde, "{}", String::from_utf8_lossy(body));
}

/// The fast parser leaves `body` to serde, and `decode` gives serde's answer.
#[track_caller]
fn bails(body: &str) {
    assert_eq!(fast(body.as_bytes()), None, "fast parser accepted {body}");
    same_as_serde(body.as_bytes());
}

/// The fast parser decodes `body`, equal to serde, every name borrowed.
#[track_caller]
fn decodes(body: &str) -> Summary<'_> {
    let s = fast(body.as_bytes()).unwrap_or_else(|| panic!("fast parser bailed on {body:.300}"));
    let serde: Summary = serde_json::from_str(body).expect("serde decodes");
    assert_eq!(s, serde);
    // A missing name is the default, `Cow::Owned("")` (as from serde).
    let borrowed = |c: &Cow<str>| matches!(c, Cow::Borrowed(_)) || c.is_empty();
    assert!(borrowed(&s.node.node_name));
    for c in s
        .node
        .system_containers
        .iter()
        .chain(s.pods.iter().flat_map(|p| &p.containers))
    {
        assert!(borrowed(&c.name));
    }
    for p in &s.pods {
        let r = &p.pod_ref;
        assert!(borrowed(&r.name) && borrowed(&r.namespace) && borrowed(&r.uid));
        assert!(p.volume.iter().all(|v| borrowed(&v.name)));
        for r in p.volume.iter().filter_map(|v| v.pvc_ref.as_ref()) {
            assert!(borrowed(&r.name) && borrowed(&r.namespace));
        }
    }
    s
}

/// `BASE` with the first `from` replaced by `to` (which must be there).
fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from} not in BASE");
    BASE.replacen(from, to, 1)
}

/// Compact and indented re-serialisations (through `serde_json::Value`).
fn reserialised(body: &[u8]) -> [Vec<u8>; 2] {
    let v: serde_json::Value = serde_json::from_slice(body).expect("json");
    [
        serde_json::to_vec(&v).expect("compact"),
        serde_json::to_vec_pretty(&v).expect("pretty"),
    ]
}

fn as_text(body: &[u8]) -> &str {
    std::str::from_utf8(body).expect("utf-8")
}

#[test]
fn base_decodes_every_field() {
    let s = decodes(BASE);
    assert_eq!(s.node.node_name, "n1");
    assert_eq!(s.node.memory.and_then(|m| m.major_page_faults), Some(6));
    assert_eq!(s.node.fs.and_then(|f| f.inodes_used), Some(6));
    assert_eq!(s.node.network.and_then(|n| n.tx_errors), Some(4));
    assert!(
        s.node
            .runtime
            .as_ref()
            .is_some_and(|r| r.container_fs.is_none())
    );
    assert_eq!(s.pods[0].volume[0].inodes, Some(u64::MAX));
    assert_eq!(
        s.pods[0].ephemeral_storage.and_then(|f| f.used_bytes),
        Some(7)
    );
    let n = &s.node;
    assert_eq!(n.cpu.and_then(|c| c.psi?.full?.total), Some(1));
    assert_eq!(n.cpu.and_then(|c| c.psi?.some), None);
    assert_eq!(n.io.and_then(|io| io.psi?.some?.total), Some(9));
    assert!(n.io.is_some_and(|io| io.psi.is_some_and(|p| p.full.is_none())));
    let swap = n.swap.expect("swap");
    assert_eq!(
        (swap.swap_available_bytes, swap.swap_usage_bytes),
        (Some(1024), Some(512))
    );
    let rlimit = n.rlimit.expect("rlimit");
    assert_eq!(
        (rlimit.maxpid, rlimit.curproc),
        (Some(4_194_304), Some(300))
    );
    let p = &s.pods[0];
    assert_eq!(p.process_stats.and_then(|x| x.process_count), Some(2));
    assert_eq!(p.memory.and_then(|m| m.psi?.some?.total), Some(5));
    assert_eq!(p.swap.and_then(|x| x.swap_usage_bytes), Some(8));
    let pvc = p.volume[0].pvc_ref.as_ref().expect("pvcRef");
    assert_eq!((&*pvc.name, &*pvc.namespace), ("c", "ns"));
    let io = p.containers[0]
        .io
        .and_then(|io| io.psi)
        .expect("container io psi");
    assert_eq!(
        (io.some.and_then(|d| d.total), io.full.and_then(|d| d.total)),
        (Some(4), Some(3))
    );
    assert_eq!(
        p.containers[0].swap.and_then(|x| x.swap_usage_bytes),
        Some(0)
    );
    for body in reserialised(BASE.as_bytes()) {
        decodes(as_text(&body));
    }
}

/// The 1.34 and 1.35 captures: every PSI total, swap and process value (and the claim of every
/// volume that has one) is decoded, by both parsers alike, as the JSON has it.
#[test]
fn pressure_swap_and_processes_of_1_34_and_1_35_are_decoded() {
    use serde_json::Value as Json;
    let Some(dir) = crate::testing::fixtures_dir() else {
        return; // fixtures_dir says why (and fails under HEAPSTER_REQUIRE_FIXTURES)
    };
    /// The JSON's PSI totals of one stats object, `some` then `full` of cpu, memory and io.
    fn totals(j: &Json) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        for r in ["cpu", "memory", "io"] {
            for k in ["some", "full"] {
                out.push(j[r]["psi"][k]["total"].as_u64());
            }
        }
        out
    }
    fn decoded(
        cpu: Option<super::super::CpuStats>,
        mem: Option<super::super::MemoryStats>,
        io: Option<super::super::IoStats>,
    ) -> Vec<Option<u64>> {
        let psi = [
            cpu.and_then(|c| c.psi),
            mem.and_then(|m| m.psi),
            io.and_then(|i| i.psi),
        ];
        psi.iter()
            .flat_map(|p| [p.and_then(|p| p.some?.total), p.and_then(|p| p.full?.total)])
            .collect()
    }
    fn swap(j: &Json, s: Option<super::super::SwapStats>) {
        assert_eq!(
            s.and_then(|s| s.swap_usage_bytes),
            j["swap"]["swapUsageBytes"].as_u64()
        );
        assert_eq!(
            s.and_then(|s| s.swap_available_bytes),
            j["swap"]["swapAvailableBytes"].as_u64()
        );
    }
    for version in ["1_34", "1_35"] {
        let path = dir.join(format!(
            "kubelet/nri-kubernetes-{version}-kubelet-stats-summary.json"
        ));
        let body = std::fs::read(&path).expect("fixture");
        let s = decodes(as_text(&body));
        let j: Json = serde_json::from_slice(&body).expect("json");
        let mut checked = 0;
        let n = &s.node;
        assert_eq!(
            decoded(n.cpu, n.memory, n.io),
            totals(&j["node"]),
            "{version} node"
        );
        swap(&j["node"], n.swap);
        let rlimit = n.rlimit.expect("rlimit");
        assert_eq!(rlimit.curproc, j["node"]["rlimit"]["curproc"].as_u64());
        assert_eq!(rlimit.maxpid, j["node"]["rlimit"]["maxpid"].as_u64());
        assert!(rlimit.curproc.is_some() && rlimit.maxpid.is_some());
        let containers = |j: &Json, key: &str| j[key].as_array().cloned().unwrap_or_default();
        let mut container = |c: &super::super::ContainerStats, jc: &Json, what: &str| {
            let what = format!("{what} {}", c.name);
            assert_eq!(decoded(c.cpu, c.memory, c.io), totals(jc), "{what}");
            swap(jc, c.swap);
            checked += 1;
        };
        for (c, jc) in n
            .system_containers
            .iter()
            .zip(containers(&j["node"], "systemContainers"))
        {
            container(c, &jc, version);
        }
        for (p, jp) in s.pods.iter().zip(containers(&j, "pods")) {
            let what = format!("{version} {}", p.pod_ref.name);
            assert_eq!(decoded(p.cpu, p.memory, p.io), totals(&jp), "{what}");
            swap(&jp, p.swap);
            assert_eq!(
                p.process_stats.and_then(|x| x.process_count),
                jp["process_stats"]["process_count"].as_u64(),
                "{what}"
            );
            for (v, jv) in p.volume.iter().zip(containers(&jp, "volume")) {
                assert_eq!(
                    v.pvc_ref
                        .as_ref()
                        .map(|r| (r.name.to_string(), r.namespace.to_string())),
                    jv.get("pvcRef").map(|r| (
                        r["name"].as_str().unwrap_or("").to_owned(),
                        r["namespace"].as_str().unwrap_or("").to_owned()
                    ))
                );
            }
            for (c, jc) in p.containers.iter().zip(containers(&jp, "containers")) {
                container(c, &jc, &what);
            }
        }
        // The captures have PSI everywhere: not a vacuous comparison.
        assert!(checked > 10, "{version}: {checked} containers");
        assert!(n.cpu.and_then(|c| c.psi?.some?.total).is_some());
        assert!(s.pods.iter().all(|p| p.io.and_then(|io| io.psi).is_some()));
        assert!(s.pods.iter().all(|p| p.process_stats.is_some()));
    }
}

#[test]
fn every_fixture_summary_decodes_fast_and_equal_to_serde() {
    let Some(dir) = crate::testing::fixtures_dir() else {
        return; // fixtures_dir says why (and fails under HEAPSTER_REQUIRE_FIXTURES)
    };
    let mut seen = 0;
    for entry in std::fs::read_dir(dir.join("kubelet")).expect("fixtures/kubelet") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.contains("summary") && name.ends_with(".json")) {
            continue;
        }
        let body = std::fs::read(&path).expect("fixture");
        decodes(as_text(&body));
        for variant in reserialised(&body) {
            decodes(as_text(&variant));
        }
        seen += 1;
    }
    assert!(seen >= 10, "expected the summary fixtures, found {seen}");
}

#[test]
fn simulator_payloads_decode_fast_and_equal_to_serde() {
    let start = 1_750_000_000 * crate::model::time::NANOS_PER_SEC;
    let now = start + 3_600 * crate::model::time::NANOS_PER_SEC + 123_456_789;
    for (node, pods, containers) in [
        (0, 0, 0),
        (1, 1, 1),
        (7, 30, 2),
        (250, 5, 7),
        (40_000, 3, 0),
    ] {
        let body = crate::sim::summary_body(node, pods, containers, start, now);
        let s = decodes(as_text(&body));
        assert_eq!(s.pods.len(), pods);
        assert!(s.pods.iter().all(|p| p.containers.len() == containers));
        for variant in reserialised(&body) {
            decodes(as_text(&variant));
        }
    }
}

#[test]
fn nulls_and_missing_fields_decode_fast() {
    for (from, to) in [
        (
            r#""systemContainers":[{"name":"kubelet","cpu":{"usageNanoCores":1}}]"#,
            r#""systemContainers":null"#,
        ),
        (
            r#""containers":[{"name":"c""#,
            r#""containers":null,"x":[{"name":"c""#,
        ),
        (
            r#""volume":[{"name":"v""#,
            r#""volume":null,"x":[{"name":"v""#,
        ),
        (
            r#""startTime":"2026-01-01T00:00:00Z""#,
            r#""startTime":null"#,
        ),
        (r#""usageNanoCores":5"#, r#""usageNanoCores":null"#),
        (r#""time":"2026-01-01T00:00:01Z""#, r#""time":null"#),
        (
            r#""runtime":{"imageFs":{"capacityBytes":4}"#,
            r#""runtime":{"imageFs":null"#,
        ),
        (r#""runtime":{"#, r#""runtime":null,"x":{"#),
        (
            r#""podRef":{"name":"p","namespace":"ns","uid":"u"}"#,
            r#""podRef":{}"#,
        ),
        (r#""nodeName":"n1","#, ""),
        (r#""pods":[{"#, r#""pods":null,"x":[{"#),
    ] {
        decodes(&base_with(from, to));
    }
    assert!(decodes(r#"{"node":{}}"#).pods.is_empty());
    assert!(decodes(r#"{"pods":[],"node":{}}"#).pods.is_empty());
    assert!(decodes(r#"{"node":{},"pods":null}"#).pods.is_empty());
    decodes(" \t\r\n{ \"node\" : { } , \"pods\" : [ ] } \n");
    // An unknown field may repeat (serde ignores every one).
    decodes(&base_with(r#""limits":"#, r#""limits":1,"limits":"#));
    // Names: any UTF-8, borrowed.
    assert_eq!(
        decodes(&base_with("\"n1\"", "\"nöde ✓\"")).node.node_name,
        "nöde ✓"
    );
}

#[test]
fn invalid_json_in_ignored_values_bails() {
    for bad in [
        "0.",
        ".5",
        "05",
        "-",
        "-a",
        "1e",
        "1e+",
        "1.e3",
        "+1",
        "0x1",
        "NaN",
        "Infinity",
        "--1",
        "tru",
        "True",
        "nul",
        "nulll",
        "falsee",
        "'a'",
        "\"a",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":}",
        "{\"a\":1 \"b\":2}",
        "{1:2}",
        "{\"a\"}",
        "[}",
        "{]",
        "[[1]",
        "{\"a\":[1}",
        "\"a\u{1}b\"",
        "\"\u{1f}\"",
        "[1,\"\u{0}\"]",
        "{\"a\u{7}\":1}",
        "\u{c}1",
        "1\u{b}",
        "\u{a0}1",
    ] {
        bails(&base_with(r#""ign":0.5"#, &format!(r#""ign":{bad}"#)));
    }
    // Valid, but escapes are left to serde wherever they are.
    for escaped in [
        r#""a\nb""#,
        r#""\u0041""#,
        r#"{"\"":1}"#,
        r#"["\\"]"#,
        r#""\/""#,
    ] {
        bails(&base_with(r#""ign":0.5"#, &format!(r#""ign":{escaped}"#)));
    }
    // Invalid escapes too.
    bails(&base_with(r#""ign":0.5"#, r#""ign":"\x""#));
    bails(&base_with(r#""ign":0.5"#, r#""ign":"\u12""#));
    // Valid numbers, literals and nesting in ignored values decode fast.
    for good in [
        "0",
        "-0",
        "0.5",
        "-1.25e+10",
        "1E-7",
        "123456789012345678901234567890",
        "1e400",
        "true",
        "false",
        "null",
        "\"\"",
        "\"a b ✓\"",
        "[]",
        "{}",
        "[[],{},[{}]]",
        "{\"a\":{\"b\":[1,{\"c\":null}]}}",
        " [ 1 , 2 ] ",
        "{ \"a\" : 1 }",
    ] {
        decodes(&base_with(r#""ign":0.5"#, &format!(r#""ign":{good}"#)));
    }
}

/// PSI's averages are dropped numbers: any JSON number or `null` decodes fast; another value
/// (which serde ignores too) is left to serde, as is a repeated one.
#[test]
fn psi_averages_are_numbers_dropped() {
    for good in [
        "0",
        "-1.5e-3",
        "1e400",
        "123456789012345678901234567890",
        "null",
    ] {
        let body = base_with(r#""avg10":0.5"#, &format!(r#""avg10":{good}"#));
        let s = decodes(&body);
        assert_eq!(s.node.cpu.and_then(|c| c.psi?.full?.total), Some(1));
    }
    for other in ["true", "\"x\"", "[]", "{}", "01", "1.", "-"] {
        bails(&base_with(r#""avg10":0.5"#, &format!(r#""avg10":{other}"#)));
    }
    bails(&base_with(r#""avg10":0.5"#, r#""avg10":0.5,"avg10":1"#));
}

#[test]
fn escapes_in_keys_and_names_bail() {
    for (from, to) in [
        (r#""nodeName""#, r#""node\u004eame""#),
        (r#""psi""#, r#""p\u0073i""#),
        (r#""n1""#, r#""n\"1""#),
        (r#""n1""#, r#""n\u00311""#),
        (r#""name":"p""#, r#""name":"p\/q""#),
        (r#""uid":"u""#, r#""uid":"u\n""#),
        (r#""name":"v""#, r#""name":"v\\""#),
        (r#""name":"c""#, r#""name":"c\t""#),
        (
            r#""startTime":"2026-01-01T00:00:00Z""#,
            r#""startTime":"2026-01-01T00:00:00\u005a""#,
        ),
        // A raw control character in a name.
        (r#""n1""#, "\"n\u{1}1\""),
        (r#""nodeName""#, "\"node\u{9}Name\""),
    ] {
        bails(&base_with(from, to));
    }
}

/// The body is not checked as UTF-8 as a whole: like serde reading bytes, the fast parser
/// accepts bytes that are not UTF-8 in ignored values and refuses them in names, timestamps
/// and the keys of structs (serde then words the error).
#[test]
fn utf8_is_checked_where_serde_checks_it() {
    let with = |from: &str, to: &[u8]| -> Vec<u8> {
        let at = BASE.find(from).expect("in BASE");
        let mut body = BASE.as_bytes()[..at].to_vec();
        body.extend_from_slice(to);
        body.extend_from_slice(&BASE.as_bytes()[at + from.len()..]);
        body
    };
    // In an ignored value: a string, and a key of an ignored object.
    for body in [
        with(r#""name":"eth0""#, b"\"name\":\"eth\xff0\""),
        with(r#""maxpid""#, b"\"max\xc3pid\""),
    ] {
        let s = fast(&body).expect("decodes fast");
        assert_eq!(Ok(s), decode_serde(&body).map_err(|e| e.to_string()));
    }
    // A name, a timestamp, an unknown key of a struct; and valid UTF-8 (two and three bytes).
    for (body, ok) in [
        (with(r#""n1""#, b"\"n\xff1\""), false),
        (with(r#""name":"c""#, b"\"name\":\"c\xe2\x82\""), false),
        (
            with(r#""2026-01-01T00:00:01Z""#, b"\"2026-01-01T00:00:01\xffZ\""),
            false,
        ),
        (with(r#""limits""#, b"\"li\xffmits\""), false),
        (with(r#""n1""#, "\"n\u{e9}1\u{20ac}\"".as_bytes()), true),
        (with(r#""limits""#, "\"li\u{e9}mits\"".as_bytes()), true),
    ] {
        assert_eq!(
            fast(&body).is_some(),
            ok,
            "{}",
            String::from_utf8_lossy(&body)
        );
        same_as_serde(&body);
        assert_eq!(decode_serde(&body).is_ok(), ok);
    }
}

#[test]
fn duplicate_known_fields_bail() {
    for (from, to) in [
        (r#""nodeName":"n1""#, r#""nodeName":"n1","nodeName":"n2""#),
        (
            r#""systemContainers":["#,
            r#""systemContainers":null,"systemContainers":["#,
        ),
        (
            r#""startTime":"2026-01-01T00:00:00Z""#,
            r#""startTime":null,"startTime":"2026-01-01T00:00:00Z""#,
        ),
        (r#""cpu":{"time""#, r#""cpu":null,"cpu":{"time""#),
        (r#""memory":{"time""#, r#""memory":{},"memory":{"time""#),
        (
            r#""network":{"time""#,
            r#""network":null,"network":{"time""#,
        ),
        (r#""fs":{"time""#, r#""fs":null,"fs":{"time""#),
        (r#""runtime":{"#, r#""runtime":null,"runtime":{"#),
        (r#""imageFs":{"#, r#""imageFs":null,"imageFs":{"#),
        (
            r#""containerFs":null"#,
            r#""containerFs":null,"containerFs":null"#,
        ),
        (
            r#""usageNanoCores":5"#,
            r#""usageNanoCores":5,"usageNanoCores":5"#,
        ),
        (
            r#""time":"2026-01-01T00:00:01Z","usageNanoCores""#,
            r#""time":null,"time":"2026-01-01T00:00:01Z","usageNanoCores""#,
        ),
        (
            r#""majorPageFaults":6"#,
            r#""majorPageFaults":6,"majorPageFaults":null"#,
        ),
        (r#""txErrors":4"#, r#""txErrors":4,"rxBytes":1"#),
        (r#""inodesUsed":6"#, r#""inodesUsed":6,"inodes":5"#),
        (r#""podRef":{"#, r#""podRef":{},"podRef":{"#),
        (
            r#""namespace":"ns","uid""#,
            r#""namespace":"ns","name":"q","uid""#,
        ),
        (r#""uid":"u""#, r#""uid":"u","uid":"u""#),
        (r#""containers":["#, r#""containers":null,"containers":["#),
        (r#""name":"c""#, r#""name":"c","name":"c""#),
        (
            r#""logs":{"usedBytes":2}"#,
            r#""logs":{"usedBytes":2},"rootfs":null"#,
        ),
        (r#""volume":["#, r#""volume":[],"volume":["#),
        (r#""name":"v""#, r#""name":"v","name":"w""#),
        (r#""usedBytes":5"#, r#""usedBytes":5,"usedBytes":5"#),
        (
            r#""ephemeral-storage":{"usedBytes":7}"#,
            r#""ephemeral-storage":{"usedBytes":7},"ephemeral-storage":null"#,
        ),
        (r#""pods":["#, r#""pods":null,"pods":["#),
    ] {
        bails(&base_with(from, to));
    }
    bails(&format!(r#"{},"node":{{}}}}"#, &BASE[..BASE.len() - 1]));
}

#[test]
fn wrong_types_bail() {
    for (from, to) in [
        // serde accepts an array for a struct (its fields in order); left to serde.
        (
            r#""runtime":{"imageFs":{"capacityBytes":4},"containerFs":null}"#,
            r#""runtime":[]"#,
        ),
        (r#""cpu":{"usageNanoCores":2}"#, r#""cpu":[null,2]"#),
        (
            r#""podRef":{"name":"p","namespace":"ns","uid":"u"}"#,
            r#""podRef":["p","ns","u"]"#,
        ),
        (r#""usageNanoCores":5"#, r#""usageNanoCores":"5""#),
        (r#""usageNanoCores":5"#, r#""usageNanoCores":true"#),
        (r#""usageNanoCores":5"#, r#""usageNanoCores":{}"#),
        (r#""nodeName":"n1""#, r#""nodeName":null"#),
        (r#""nodeName":"n1""#, r#""nodeName":1"#),
        (r#""name":"p""#, r#""name":null"#),
        (r#""name":"c""#, r#""name":["c"]"#),
        (r#""name":"v""#, r#""name":null"#),
        (r#""startTime":"2026-01-01T00:00:00Z""#, r#""startTime":5"#),
        (r#""systemContainers":["#, r#""systemContainers":{},"x":["#),
        (r#""containers":["#, r#""containers":"","x":["#),
        (r#""volume":["#, r#""volume":{"a":1},"x":["#),
        (
            r#""containers":[{"name":"c""#,
            r#""containers":[null,{"name":"c""#,
        ),
        (r#""node":{"#, r#""node":null,"x":{"#),
        (r#""cpu":{"time""#, r#""cpu":1,"x":{"time""#),
        (r#""memory":{"time""#, r#""memory":"m","x":{"time""#),
        (r#""pods":[{"#, r#""pods":[1,{"#),
    ] {
        bails(&base_with(from, to));
    }
    for bad in [
        "-1",
        "-0",
        "1.0",
        "1.5",
        "1e3",
        "1E3",
        "0e0",
        "01",
        "00",
        "18446744073709551616",
        "99999999999999999999",
        "184467440737095516150",
        "+1",
        "0x10",
        "1_000",
        "",
    ] {
        bails(&base_with(
            r#""usageBytes":10"#,
            &format!(r#""usageBytes":{bad}"#),
        ));
    }
    for bad in [
        "2026-13-01T00:00:00Z",
        "4046-05-31T02:20:29Z",
        "",
        "yesterday",
        "2026-01-01 00:00:00",
        "2026-01-01T25:00:00Z",
    ] {
        bails(&base_with(
            r#""startTime":"2026-01-01T00:00:00Z""#,
            &format!(r#""startTime":"{bad}""#),
        ));
        // As the document's first timestamp (the parser remembers the last one it parsed).
        bails(&format!(r#"{{"node":{{"startTime":"{bad}"}}}}"#));
    }
    // The first time is cached; a different one after it is parsed again.
    let body = base_with(
        r#""memory":{"time":"2026-01-01T00:00:01.5Z""#,
        r#""memory":{"time":"2026-01-01T00:00:02Z""#,
    );
    let s = decodes(&body);
    let cpu = s.node.cpu.and_then(|c| c.time);
    assert_ne!(s.node.memory.and_then(|m| m.time), cpu);
    assert_eq!(s.node.network.and_then(|n| n.time), cpu);
}

#[test]
fn missing_node_trailing_bytes_and_odd_documents_bail() {
    for body in [
        "",
        " ",
        "\n",
        "null",
        "true",
        "1",
        "\"x\"",
        "[]",
        "{}",
        r#"{"pods":[]}"#,
        r#"[{"nodeName":"n"},[]]"#,
        r#"{"node":{}"#,
        r#"{"node":{}}}"#,
        r#"{"node":{}} x"#,
        r#"{"node":{}}{}"#,
        "{\"node\":{}}\u{c}",
        "\u{feff}{\"node\":{}}",
        r#"{"node":{},}"#,
        r#"{,"node":{}}"#,
        r#"{"node" {}}"#,
        r#"{"node"::{}}"#,
        r#"{"node":{}"pods":[]}"#,
        r#"{"node":{},"pods":[{}],}"#,
        r#"{"node":{},"pods":[{},]}"#,
        r#"{"node":{"cpu":{},}}"#,
        r#"{"node":{"cpu":{"time":null,}}}"#,
        r#"{"node":{},"pods":[{}{}]}"#,
        // Control characters near the end (after the last whole 8-byte word).
        "{\"node\":{},\"x\":\"\u{1}\"}",
        "{\"node\":{\"nodeName\":\"\u{1f}\"}}",
    ] {
        bails(body);
    }
    let mut spaced = BASE.to_owned();
    spaced.push_str(" \n\t\r");
    decodes(&spaced);
}

#[test]
fn deep_nesting_bails_without_overflowing() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let at = |value: &str| base_with(r#""limits":"#, &format!(r#""limits":{value},"x":"#));
    decodes(&at(&nested(super::MAX_SKIP_DEPTH as usize)));
    decodes(&at(&format!("{}1{}", "{\"a\":".repeat(99), "}".repeat(99))));
    bails(&at(&nested(super::MAX_SKIP_DEPTH as usize + 1)));
    bails(&at(&nested(200_000)));
    bails(&at(&"{\"a\":".repeat(200_000)));
    bails(&at(&"[".repeat(200_000)));
    bails(&format!(r#"{{"node":{}"#, "[".repeat(200_000)));
    bails(&format!(r#"{{"node":{{"cpu":{}}}}}"#, nested(200_000)));
}

#[test]
fn every_truncation_bails() {
    for body in [
        BASE.to_owned(),
        String::from_utf8(reserialised(BASE.as_bytes())[1].clone()).expect("utf-8"),
    ] {
        for cut in 0..body.len() {
            let Some(prefix) = body.get(..cut) else {
                continue;
            };
            if prefix.trim_end().len() < body.trim_end().len() {
                bails(prefix);
            }
        }
    }
}

/// `n` pods, the `i`-th's JSON from `pod(i)`, in a payload with an empty node.
fn pods(n: usize, pod: impl Fn(usize) -> String) -> String {
    let pods: Vec<String> = (0..n).map(pod).collect();
    format!(
        r#"{{"node":{{"nodeName":"n"}},"pods":[{}]}}"#,
        pods.join(",")
    )
}

/// A pod whose container's `cpu` is the given JSON, and an ignored value under `io` shaped
/// like PSI.
fn pod_with(cpu: &str, psi: &str) -> String {
    format!(
        r#"{{"podRef":{{"name":"p","namespace":"ns","uid":"u"}},"containers":[{{"name":"c","cpu":{cpu},"io":{{"stall":{psi}}}}}]}}"#
    )
}

const CPU: &str = r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":1,"usageCoreNanoSeconds":2}"#;
const PSI: &str = r#"{"full":{"total":360000,"avg10":0.0,"avg60":0.0}}"#;

/// Objects after the first of their kind are parsed along the first one's shape: whatever
/// differs in a later one still decodes as serde does, or is left to serde.
#[test]
fn later_objects_that_differ_from_the_learned_shape() {
    // Same shapes, other values (the learned number `0.0` and others after it).
    decodes(&pods(3, |i| {
        let cpu = CPU.replace(":1,", &format!(":{},", 10 * i + 1));
        let psi = PSI.replace("0.0,", ["0.0,", "0.01,", "0.0e5,"][i]);
        pod_with(&cpu, &psi)
    }));
    // Members missing, added, reordered, null, or of another type in an ignored value: the
    // shape stops fitting and parsing goes on member by member (or along another shape).
    for other in [
        r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":1}"#,
        r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":1,"usageCoreNanoSeconds":2,"x":[1]}"#,
        r#"{"usageNanoCores":1,"time":"2026-01-01T00:00:00Z","usageCoreNanoSeconds":2}"#,
        r#"{"time":null,"usageNanoCores":1,"usageCoreNanoSeconds":null}"#,
        r#"{"time":"2026-01-01T00:00:00Z", "usageNanoCores":1,"usageCoreNanoSeconds":2}"#,
        r#"{}"#,
    ] {
        for psi in [
            PSI,
            r#"{"full":{"total":"x","avg10":0.0,"avg60":0.0}}"#,
            r#"{"full":{"total":360000,"avg10":[0.0],"avg60":0.0}}"#,
            r#"{"full":null}"#,
        ] {
            // Twice each way round, so that either shape is the one learned.
            decodes(&pods(4, |i| {
                if i % 2 == 0 {
                    pod_with(CPU, PSI)
                } else {
                    pod_with(other, psi)
                }
            }));
            decodes(&pods(4, |i| {
                if i % 2 == 0 {
                    pod_with(other, psi)
                } else {
                    pod_with(CPU, PSI)
                }
            }));
        }
    }
}

#[test]
fn later_objects_along_a_learned_shape_still_bail() {
    let second = |cpu: &str, psi: &str| {
        pods(2, |i| {
            if i == 0 {
                pod_with(CPU, PSI)
            } else {
                pod_with(cpu, psi)
            }
        })
    };
    for cpu in [
        // A duplicate after the shape's members, or in the middle.
        r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":1,"usageCoreNanoSeconds":2,"usageNanoCores":3}"#,
        r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":1,"time":null,"usageCoreNanoSeconds":2}"#,
        // Bad values in the shape's slots.
        r#"{"time":"2026-13-01T00:00:00Z","usageNanoCores":1,"usageCoreNanoSeconds":2}"#,
        r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":-1,"usageCoreNanoSeconds":2}"#,
        r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":01,"usageCoreNanoSeconds":2}"#,
        r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":1.5,"usageCoreNanoSeconds":2}"#,
        r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":"1","usageCoreNanoSeconds":2}"#,
        r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":1,"usageCoreNanoSeconds":2,}"#,
        r#"{"time":"2026-01-01T00:00:00Z","usageNanoCores":1,"usageCoreNanoSeconds":2"#,
        r#"["2026-01-01T00:00:00Z",1,2]"#,
    ] {
        bails(&second(cpu, PSI));
    }
    for psi in [
        r#"{"full":{"total":360000,"avg10":00,"avg60":0.0}}"#,
        r#"{"full":{"total":360000,"avg10":0.,"avg60":0.0}}"#,
        r#"{"full":{"total":360000,"avg10":0.0e,"avg60":0.0}}"#,
        r#"{"full":{"total":360000,"avg10":-,"avg60":0.0}}"#,
        r#"{"full":{"total":360000,"avg10":0.0,"avg60":0.0},}"#,
        r#"{"full":{"total":360000,"avg10":0.0,"avg60":0.0}"#,
        r#"{"full":{"total":"a\nb","avg10":0.0,"avg60":0.0}}"#,
        "{\"full\":{\"total\":\"\u{1}\",\"avg10\":0.0,\"avg60\":0.0}}",
    ] {
        bails(&second(CPU, psi));
    }
}

/// The timestamps remembered are compared whole, up to their closing quote.
#[test]
fn remembered_timestamps_are_compared_whole() {
    let cpu = |t: &str| pod_with(&format!(r#"{{"time":"{t}","usageNanoCores":1}}"#), PSI);
    let body = pods(4, |i| {
        cpu([
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.5Z",
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:00Z",
        ][i])
    });
    let s = decodes(&body);
    let times: Vec<_> = s
        .pods
        .iter()
        .map(|p| p.containers[0].cpu.and_then(|c| c.time))
        .collect();
    assert_ne!(times[0], times[1]);
    assert_ne!(times[1], times[2]);
    assert_eq!(times[0], times[3]);
    for bad in [
        "2026-01-01T00:00:00Zx",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00Z\u{1}",
    ] {
        bails(&pods(2, |i| {
            cpu(if i == 0 { "2026-01-01T00:00:00Z" } else { bad })
        }));
    }
}

/// An ignored value equal to the one its shape was learned from is compared whole: a longer
/// number or literal after the same bytes is not taken for it.
#[test]
fn ignored_values_equal_to_the_learned_one() {
    let with = |values: &[&str]| {
        pods(values.len(), |i| {
            format!(r#"{{"podRef":{{"name":"p"}},"x":{},"y":1}}"#, values[i])
        })
    };
    for values in [
        ["2", "23", "2.5", "2e1", "-2", "2"],
        ["true", "true", "false", "null", "\"t\"", "[true]"],
        ["\"ab\"", "\"abc\"", "\"ab\"", "\"a\"", "{}", "[]"],
        [
            "{\"a\":[1]}",
            "{\"a\":[1]}",
            "{\"a\":[12]}",
            "{\"a\":[1,2]}",
            "[1]",
            "1",
        ],
    ] {
        decodes(&with(&values));
    }
    for values in [
        ["2", "2x"],
        ["2", "2."],
        ["true", "truex"],
        ["0", "01"],
        ["[1]", "[1]]"],
    ] {
        bails(&with(&values));
    }
}

/// An ignored value after one of the same shape: every single-byte change, insertion and
/// deletion of it, with the first one learned. Whatever the fast parser makes of it, serde makes
/// the same (`testing::fuzz::summary`); and an edit that only changes a number or a value string
/// to another valid one still decodes fast.
#[test]
fn every_edit_of_an_ignored_value_after_a_learned_one() {
    const LEARNED: &str = r#"{"full":{"total":800,"avg10":0.0,"s":"ab","n":[1,-2.5e3,true,null]},"some":{"x":{}},"e":""}"#;
    let with = |second: &[u8]| {
        let mut body = Vec::new();
        body.extend_from_slice(br#"{"node":{"nodeName":"n"},"pods":["#);
        for x in [LEARNED.as_bytes(), second, LEARNED.as_bytes()] {
            body.extend_from_slice(br#"{"podRef":{"name":"p"},"psi":"#);
            body.extend_from_slice(x);
            body.extend_from_slice(br#","cpu":{"usageNanoCores":1}},"#);
        }
        body.pop();
        body.extend_from_slice(b"]}");
        body
    };
    let learned = LEARNED.as_bytes();
    let mut fast_decoded = 0;
    let mut tried = 0;
    let mut check = |second: Vec<u8>| {
        let body = with(&second);
        crate::testing::fuzz::summary(&body);
        fast_decoded += usize::from(fast(&body).is_some());
        tried += 1;
    };
    for at in 0..=learned.len() {
        for &c in b"0159.eE+-\"\\ x}],:{[tn\x01" {
            if at < learned.len() {
                let mut changed = learned.to_vec();
                changed[at] = c;
                check(changed);
            }
            let mut inserted = learned.to_vec();
            inserted.insert(at, c);
            check(inserted);
        }
        if at < learned.len() {
            let mut deleted = learned.to_vec();
            deleted.remove(at);
            check(deleted);
        }
    }
    assert!(tried > 3_000, "{tried}");
    // Numbers and strings of other lengths and values, in every span, take the shape.
    for (from, to) in [
        ("800", "8"),
        ("800", "80000000000000000000"),
        ("800", "-8.5E+7"),
        ("0.0", "0.01"),
        ("0.0", "7"),
        (r#""ab""#, r#""""#),
        (r#""ab""#, r#""a longer string, with ünïcödé""#),
        ("-2.5e3", "3"),
        (r#""e":"""#, r#""e":"xyz""#),
    ] {
        let body = with(LEARNED.replacen(from, to, 1).as_bytes());
        assert!(fast(&body).is_some(), "{from} -> {to}");
        crate::testing::fuzz::summary(&body);
    }
    assert!(fast_decoded > 100, "{fast_decoded}");
}
