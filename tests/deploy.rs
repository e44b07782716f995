//! Deployment artefacts: every kustomization under `deploy/` and `grafana/` rendered with
//! `kubectl kustomize`, each object decoded into its k8s-openapi type, and the invariants that
//! make the pieces fit checked (namespaces, selectors, ports, probes, security contexts, RBAC
//! against `rbac::API_CALLS`, flags against `config::parse`, Grafana's datasource against the
//! dashboards); the systemd unit checked with `systemd-analyze`.
//!
//! `kubectl` or `systemd-analyze` missing: the test prints why and passes, unless
//! `HEAPSTER_REQUIRE_SERVERS=1` (CI), where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use heapster_rs::config::{self, Parsed};
use heapster_rs::rbac::{API_CALLS, Binary, Grant, METRICS_GROUP, READER_GRANTS, READER_ROLE};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, PodSpec, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NAMESPACE: &str = "kube-system";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `bin` runs here; under `HEAPSTER_REQUIRE_SERVERS=1` a missing one fails the test.
fn available(bin: &str, probe: &[&str]) -> bool {
    let ok = Command::new(bin)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("HEAPSTER_REQUIRE_SERVERS").as_deref() == Ok("1") {
            panic!("{bin} is not available and HEAPSTER_REQUIRE_SERVERS=1");
        }
        eprintln!("skipped: {bin} is not available");
    }
    ok
}

// ---------------------------------------------------------------------------------------
// Rendering and decoding

/// One rendered kustomization, decoded.
#[derive(Default)]
struct Objects {
    name: String,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    role_bindings: Vec<RoleBinding>,
    pvcs: Vec<PersistentVolumeClaim>,
    config_maps: Vec<ConfigMap>,
    api_services: Vec<APIService>,
    network_policies: Vec<NetworkPolicy>,
    /// Each also appears in `deployments` (same metadata and pod template), so the workload
    /// checks cover it.
    stateful_sets: Vec<StatefulSet>,
    roles: Vec<Role>,
    pdbs: Vec<PodDisruptionBudget>,
}

fn render(dir: &Path) -> Objects {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("a YAML stream");
    let mut objs = Objects {
        name: dir.display().to_string(),
        ..Objects::default()
    };
    for doc in docs {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        let name = doc["metadata"]["name"].as_str().expect("name").to_string();
        let what = format!("{kind}/{name} in {}", objs.name);
        match kind.as_str() {
            "Deployment" => objs.deployments.push(typed(doc, &what)),
            "Service" => objs.services.push(typed(doc, &what)),
            "ServiceAccount" => objs.service_accounts.push(typed(doc, &what)),
            "ClusterRole" => objs.cluster_roles.push(typed(doc, &what)),
            "ClusterRoleBinding" => objs.cluster_role_bindings.push(typed(doc, &what)),
            "RoleBinding" => objs.role_bindings.push(typed(doc, &what)),
            "PersistentVolumeClaim" => objs.pvcs.push(typed(doc, &what)),
            "ConfigMap" => objs.config_maps.push(typed(doc, &what)),
            "APIService" => objs.api_services.push(typed(doc, &what)),
            "NetworkPolicy" => objs.network_policies.push(typed(doc, &what)),
            "StatefulSet" => {
                let set: StatefulSet = typed(doc, &what);
                objs.deployments.push(as_deployment(&set));
                objs.stateful_sets.push(set);
            }
            "Role" => objs.roles.push(typed(doc, &what)),
            "PodDisruptionBudget" => objs.pdbs.push(typed(doc, &what)),
            other => panic!("{what}: unexpected kind {other}"),
        }
    }
    objs
}

/// A StatefulSet's pods as a Deployment's, for the checks every workload passes.
fn as_deployment(set: &StatefulSet) -> Deployment {
    let spec = set.spec.clone().expect("StatefulSet spec");
    Deployment {
        metadata: set.metadata.clone(),
        spec: Some(DeploymentSpec {
            replicas: spec.replicas,
            selector: spec.selector,
            template: spec.template,
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// Decodes into the typed object, and fails when a key does not survive the round trip: the
/// typed structs skip unknown keys, so a misspelt field (`readinesProbe`) would vanish.
fn typed<T: DeserializeOwned + serde::Serialize>(doc: Value, what: &str) -> T {
    let obj: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&obj).expect("serialize");
    let mut lost = Vec::new();
    lost_keys(&doc, &back, String::new(), &mut lost);
    assert!(lost.is_empty(), "{what}: unknown fields {lost:?}");
    obj
}

fn lost_keys(orig: &Value, back: &Value, path: String, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(w) => lost_keys(v, w, p, out),
                    // Empty values may be dropped by the typed form without losing meaning.
                    None if v.is_null() || v == &Value::Object(Default::default()) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                lost_keys(v, w, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn all_kustomizations() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for top in ["deploy", "grafana"] {
        walk(&repo().join(top), &mut found);
    }
    found.sort();
    found
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            out.push(path.parent().expect("parent").to_path_buf());
        }
    }
}

fn is_component(dir: &Path) -> bool {
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).expect("read");
    text.lines().any(|l| l.trim() == "kind: Component")
}

/// Renders the base with a component, through a temporary kustomization (kustomize wants
/// relative paths).
fn render_with_component(component: &Path) -> Objects {
    render_with_components(&[component])
}

/// Renders the base with several components.
fn render_with_components(components: &[&Path]) -> Objects {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let rel = |p: &Path| relative(tmp.path(), p);
    let mut text = format!(
        "resources:\n  - {}\ncomponents:\n",
        rel(&repo().join("deploy/kube-config"))
    );
    for c in components {
        text.push_str(&format!("  - {}\n", rel(c)));
    }
    std::fs::write(tmp.path().join("kustomization.yaml"), text).expect("write");
    let mut objs = render(tmp.path());
    let names: Vec<_> = components.iter().map(|c| c.display().to_string()).collect();
    objs.name = format!("deploy/kube-config + {}", names.join(" + "));
    objs
}

fn relative(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

// ---------------------------------------------------------------------------------------
// Small helpers over the typed objects

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

fn pod_spec(d: &Deployment) -> &PodSpec {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
}

fn pod_labels(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn container<'a>(d: &'a Deployment, name: &str) -> &'a Container {
    pod_spec(d)
        .containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("container {name}"))
}

/// Resolves a (possibly named) port against a container's ports.
fn resolve_port(c: &Container, port: &IntOrString) -> Option<i32> {
    let ports = c.ports.as_deref().unwrap_or_default();
    match port {
        IntOrString::Int(p) => ports.iter().find(|cp| cp.container_port == *p),
        IntOrString::String(n) => ports.iter().find(|cp| cp.name.as_deref() == Some(n)),
    }
    .map(|cp| cp.container_port)
}

/// `--name=value` from a container's args (either `_` or `-` in the name).
fn flag<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    let norm = |s: &str| s.replace('_', "-");
    c.args.as_deref().unwrap_or_default().iter().find_map(|a| {
        let (n, v) = a.split_once('=')?;
        (norm(n) == norm(name)).then_some(v)
    })
}

fn env_names(c: &Container) -> Vec<String> {
    c.env
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|e| e.name.clone())
        .collect()
}

/// Parses a Kubernetes quantity into a number of base units (bytes, or millicores for `m`).
fn quantity(q: &str) -> f64 {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("m", 1.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ];
    for (s, mul) in SUFFIXES {
        if let Some(n) = q.strip_suffix(s) {
            return n.parse::<f64>().expect("number") * mul;
        }
    }
    q.parse::<f64>().expect("number")
}

// ---------------------------------------------------------------------------------------
// The tests

#[test]
fn every_kustomization_renders_into_known_typed_objects_in_kube_system() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let dirs = all_kustomizations();
    assert!(dirs.len() >= 5, "found only {dirs:?}");
    for dir in dirs {
        let objs = if is_component(&dir) {
            render_with_component(&dir)
        } else {
            render(&dir)
        };
        check_namespaces(&objs);
        check_workloads(&objs);
        check_network_policies(&objs);
    }
}

fn check_namespaces(objs: &Objects) {
    let namespaced = objs
        .deployments
        .iter()
        .map(|o| &o.metadata)
        .chain(objs.services.iter().map(|o| &o.metadata))
        .chain(objs.service_accounts.iter().map(|o| &o.metadata))
        .chain(objs.role_bindings.iter().map(|o| &o.metadata))
        .chain(objs.pvcs.iter().map(|o| &o.metadata))
        .chain(objs.config_maps.iter().map(|o| &o.metadata))
        .chain(objs.network_policies.iter().map(|o| &o.metadata))
        .chain(objs.stateful_sets.iter().map(|o| &o.metadata))
        .chain(objs.roles.iter().map(|o| &o.metadata))
        .chain(objs.pdbs.iter().map(|o| &o.metadata));
    for meta in namespaced {
        assert_eq!(
            meta.namespace.as_deref(),
            Some(NAMESPACE),
            "{} in {}",
            name_of(meta),
            objs.name
        );
    }
    for b in &objs.cluster_role_bindings {
        for s in b.subjects.as_deref().unwrap_or_default() {
            assert_eq!(s.namespace.as_deref(), Some(NAMESPACE), "{}", objs.name);
        }
    }
}

/// The Deployments whose pod labels match `selector`.
fn selected<'a>(objs: &'a Objects, selector: &BTreeMap<String, String>) -> Vec<&'a Deployment> {
    objs.deployments
        .iter()
        .filter(|d| {
            let l = pod_labels(d);
            selector.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .collect()
}

/// Selectors, services, probes, security contexts and resources of every workload.
fn check_workloads(objs: &Objects) {
    for d in &objs.deployments {
        let name = name_of(&d.metadata);
        let labels = pod_labels(d);
        let selector = d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone())
            .unwrap_or_default();
        assert!(!selector.is_empty(), "{name}: empty selector");
        for (k, v) in &selector {
            assert_eq!(
                labels.get(k),
                Some(v),
                "{name}: selector {k}={v} vs pod labels"
            );
        }
        let spec = pod_spec(d);
        let pod_sc = spec.security_context.clone().unwrap_or_default();
        assert_eq!(pod_sc.run_as_non_root, Some(true), "{name}");
        assert_eq!(
            pod_sc.seccomp_profile.map(|p| p.type_),
            Some("RuntimeDefault".to_string()),
            "{name}"
        );
        if let Some(sa) = &spec.service_account_name {
            let sas: Vec<_> = objs
                .service_accounts
                .iter()
                .map(|s| name_of(&s.metadata))
                .collect();
            assert!(sas.contains(&sa.as_str()), "{name}: ServiceAccount {sa}");
        }
        for c in &spec.containers {
            let sc = c.security_context.clone().unwrap_or_default();
            assert_eq!(
                sc.read_only_root_filesystem,
                Some(true),
                "{name}/{}",
                c.name
            );
            assert_eq!(
                sc.allow_privilege_escalation,
                Some(false),
                "{name}/{}",
                c.name
            );
            let drop = sc.capabilities.and_then(|c| c.drop).unwrap_or_default();
            assert_eq!(drop, ["ALL"], "{name}/{}", c.name);
            assert_ne!(sc.privileged, Some(true), "{name}/{}", c.name);
            let res = c.resources.clone().unwrap_or_default();
            let requests = res.requests.unwrap_or_default();
            let limits = res.limits.unwrap_or_default();
            assert!(
                requests.contains_key("cpu"),
                "{name}/{}: cpu request",
                c.name
            );
            let mem_req = quantity(&requests.get("memory").expect("memory request").0);
            let mem_lim = quantity(&limits.get("memory").expect("memory limit").0);
            assert!(mem_lim >= mem_req, "{name}/{}", c.name);
            for probe in [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
                .into_iter()
                .flatten()
            {
                let get = probe.http_get.as_ref().expect("HTTP probes only");
                assert!(
                    resolve_port(c, &get.port).is_some(),
                    "{name}/{}: probe port {:?} is not a container port",
                    c.name,
                    get.port
                );
            }
            assert!(
                c.liveness_probe.is_some() && c.readiness_probe.is_some(),
                "{name}/{}: liveness and readiness probes",
                c.name
            );
        }
    }
    for s in &objs.services {
        let sname = name_of(&s.metadata);
        let spec = s.spec.as_ref().expect("service spec");
        let backends = selected(objs, &spec.selector.clone().unwrap_or_default());
        assert_eq!(
            backends.len(),
            1,
            "Service {sname}: one Deployment behind it"
        );
        let c = &pod_spec(backends[0]).containers[0];
        for p in spec.ports.as_deref().unwrap_or_default() {
            let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
            assert!(
                resolve_port(c, &target).is_some(),
                "Service {sname} port {:?}: target {target:?} is not a container port",
                p.name
            );
        }
    }
}

/// Every NetworkPolicy selects one Deployment's pods, names only its container ports, and
/// holds valid CIDRs (each `except` inside its `cidr`).
fn check_network_policies(objs: &Objects) {
    for np in &objs.network_policies {
        let name = name_of(&np.metadata);
        let spec = np.spec.as_ref().expect("spec");
        let selector = spec
            .pod_selector
            .clone()
            .unwrap_or_default()
            .match_labels
            .unwrap_or_default();
        assert!(
            !selector.is_empty(),
            "NetworkPolicy {name}: selects every pod"
        );
        let backends = selected(objs, &selector);
        assert_eq!(backends.len(), 1, "NetworkPolicy {name}: one Deployment");
        let c = &pod_spec(backends[0]).containers[0];
        for rule in spec.ingress.as_deref().unwrap_or_default() {
            for p in rule.ports.as_deref().unwrap_or_default() {
                let port = p.port.as_ref().expect("a port in every rule");
                assert!(
                    resolve_port(c, port).is_some(),
                    "NetworkPolicy {name}: port {port:?}"
                );
            }
            for peer in rule.from.as_deref().unwrap_or_default() {
                if let Some(b) = &peer.ip_block {
                    let (net, len) = cidr(&b.cidr);
                    for e in b.except.as_deref().unwrap_or_default() {
                        let (inner, inner_len) = cidr(e);
                        assert!(
                            inner_len > len && within(inner, net, len),
                            "{name}: {e} in {}",
                            b.cidr
                        );
                    }
                }
            }
        }
    }
}

/// `a.b.c.d/n` (IPv4 or IPv6) as (address, prefix length); panics when malformed.
fn cidr(text: &str) -> (std::net::IpAddr, u8) {
    let (addr, len) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("{text}: no prefix"));
    let addr: std::net::IpAddr = addr.parse().unwrap_or_else(|_| panic!("{text}: address"));
    let len: u8 = len.parse().unwrap_or_else(|_| panic!("{text}: prefix"));
    assert!(len <= if addr.is_ipv4() { 32 } else { 128 }, "{text}");
    (addr, len)
}

fn within(addr: std::net::IpAddr, net: std::net::IpAddr, len: u8) -> bool {
    let bits = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, true),
        std::net::IpAddr::V6(v) => (u128::from(v), false),
    };
    // Both kinds sit in the top bits, so a prefix length masks the same way.
    let ((a, a4), (n, n4)) = (bits(addr), bits(net));
    let len = u32::from(len);
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    a4 == n4 && (a & mask) == (n & mask)
}

fn base() -> Objects {
    render(&repo().join("deploy/kube-config"))
}

fn deployment<'a>(objs: &'a Objects, name: &str) -> &'a Deployment {
    objs.deployments
        .iter()
        .find(|d| name_of(&d.metadata) == name)
        .unwrap_or_else(|| panic!("Deployment {name} in {}", objs.name))
}

fn service<'a>(objs: &'a Objects, name: &str) -> &'a Service {
    objs.services
        .iter()
        .find(|s| name_of(&s.metadata) == name)
        .unwrap_or_else(|| panic!("Service {name} in {}", objs.name))
}

fn service_port(s: &Service, name: &str) -> (i32, IntOrString) {
    let p = s
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some(name)))
        .unwrap_or_else(|| panic!("service port {name}"));
    (p.port, p.target_port.clone().expect("targetPort"))
}

#[test]
fn heapster_ports_probes_and_apiservice_agree_with_its_flags() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let objs = base();
    let d = deployment(&objs, "heapster");
    let c = container(d, "heapster");
    assert_eq!(c.command.as_deref(), Some(&["/heapster".to_string()][..]));
    let http: i32 = flag(c, "--heapster-port")
        .expect("--heapster-port")
        .parse()
        .expect("port");
    let https: i32 = flag(c, "--secure-port")
        .expect("--secure_port")
        .parse()
        .expect("port");
    assert_eq!(
        resolve_port(c, &IntOrString::String("http".into())),
        Some(http)
    );
    assert_eq!(
        resolve_port(c, &IntOrString::String("https".into())),
        Some(https)
    );
    for probe in [&c.liveness_probe, &c.readiness_probe, &c.startup_probe] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("probe");
        assert_eq!(
            get.path.as_deref(),
            Some("/healthz"),
            "heapster serves /healthz"
        );
        assert_eq!(resolve_port(c, &get.port), Some(http));
    }
    let svc = service(&objs, "heapster");
    let (port, target) = service_port(svc, "http");
    assert_eq!((port, resolve_port(c, &target)), (80, Some(http)));
    let (port, target) = service_port(svc, "https");
    assert_eq!((port, resolve_port(c, &target)), (443, Some(https)));
    assert_eq!(
        pod_labels(d).get("k8s-app").map(String::as_str),
        Some("heapster")
    );

    let [api] = &objs.api_services[..] else {
        panic!("one APIService");
    };
    assert_eq!(name_of(&api.metadata), "v1beta1.metrics.k8s.io");
    let spec = api.spec.as_ref().expect("spec");
    assert_eq!(spec.group.as_deref(), Some("metrics.k8s.io"));
    assert_eq!(spec.version.as_deref(), Some("v1beta1"));
    let svc_ref = spec.service.as_ref().expect("service");
    assert_eq!(svc_ref.name.as_deref(), Some("heapster"));
    assert_eq!(svc_ref.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(svc_ref.port, Some(443));
    assert_eq!(spec.insecure_skip_tls_verify, Some(true));
    assert_eq!(
        (spec.group_priority_minimum, spec.version_priority),
        (100, 100)
    );

    // The eventer's health port.
    let e = container(deployment(&objs, "eventer"), "eventer");
    assert_eq!(e.command.as_deref(), Some(&["/eventer".to_string()][..]));
    let get = e
        .liveness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("probe");
    assert_eq!(get.path.as_deref(), Some("/healthz"));
    assert_eq!(resolve_port(e, &get.port), Some(8084));
    // One database for both; only the collector spools (the eventer's few points a minute
    // fit its memory buffer through any outage).
    let database = |f: Option<&str>| {
        f.and_then(|f| f.split("&spool_dir=").next())
            .map(str::to_owned)
    };
    assert_eq!(
        database(flag(e, "--sink")),
        database(flag(c, "--sink")),
        "one database for both"
    );
}

#[test]
fn our_containers_run_as_65532_like_the_image() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    assert!(dockerfile.lines().any(|l| l.trim() == "USER 65532:65532"));
    let objs = base();
    for name in ["heapster", "eventer"] {
        let d = deployment(&objs, name);
        let c = container(d, name);
        let cmd = &c.command.as_deref().expect("command")[0];
        assert!(
            dockerfile.contains(&format!("COPY --from=build /out{cmd} {cmd}")),
            "{cmd} is in the image"
        );
        let pod = pod_spec(d).security_context.clone().unwrap_or_default();
        let sc = c.security_context.clone().unwrap_or_default();
        assert_eq!(sc.run_as_user.or(pod.run_as_user), Some(65532), "{name}");
        assert_eq!(
            sc.run_as_non_root.or(pod.run_as_non_root),
            Some(true),
            "{name}"
        );
        let seccomp = sc.seccomp_profile.or(pod.seccomp_profile).map(|p| p.type_);
        assert_eq!(seccomp.as_deref(), Some("RuntimeDefault"), "{name}");
    }
}

#[test]
fn heapster_resources_follow_the_sizing_formula_for_100_nodes() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let objs = base();
    let c = container(deployment(&objs, "heapster"), "heapster");
    let res = c.resources.clone().expect("resources");
    let req = res.requests.expect("requests");
    let lim = res.limits.expect("limits");
    let nodes = 100.0;
    // 30 MiB + 128 KiB per node; 0.02 mCPU per node on top of the base.
    let need_mem = 30.0 * 1024.0 * 1024.0 + nodes * 128.0 * 1024.0;
    assert!(quantity(&req["memory"].0) >= need_mem);
    assert!(quantity(&lim["memory"].0) >= 2.0 * need_mem);
    assert!(quantity(&req["cpu"].0) >= nodes * 0.02);
    assert!(
        !lim.contains_key("cpu"),
        "no CPU limit: throttling only delays ticks"
    );
}

#[test]
fn manifest_flags_parse_with_the_real_config_parser() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let cfg = heapster_config(&base());
    assert_eq!(cfg.metric_resolution.as_secs(), 15);
    assert_eq!(cfg.heapster_port, 8082);
    let influx = cfg.sinks.iter().find_map(|s| match s {
        config::SinkConfig::InfluxDb(i) => Some(i),
        _ => None,
    });
    let influx = influx.expect("an influxdb sink");
    assert_eq!(influx.db, "k8s");
    assert_eq!(
        influx.url.host_str(),
        Some("monitoring-influxdb.kube-system.svc")
    );
    assert_eq!(influx.url.port(), Some(8086));
    check_spool_volume(deployment(&base(), "heapster"), &influx.spool);
}

/// The heapster container's args through the real flag parser, with only the container's own
/// environment (an unset $VAR in --sink fails the parse).
fn heapster_config(objs: &Objects) -> config::Config {
    let c = container(deployment(objs, "heapster"), "heapster");
    let names = env_names(c);
    let env = move |k: &str| names.iter().any(|n| n == k).then(|| "x0".to_string());
    let mut argv = vec!["heapster".to_string()];
    argv.extend(c.args.iter().flatten().cloned());
    match config::parse(argv, &env) {
        Parsed::Run(cfg) => cfg,
        Parsed::Exit { message, .. } => {
            panic!("heapster rejects its args in {}:\n{message}", objs.name)
        }
    }
}

/// The spool directory is on a volume mounted writable, whose size limit (an emptyDir's
/// `sizeLimit`, or the claim's request) holds `spool_bytes` plus the segment being written
/// (`spool_bytes`/16, at most 16 MiB): the kubelet evicts a pod whose emptyDir passes its
/// limit.
fn check_spool_volume(d: &Deployment, spool: &heapster_rs::sink::delivery::SpoolConfig) -> String {
    let dir = spool.dir.as_deref().expect("a spool_dir in --sink");
    let c = container(d, "heapster");
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| dir.starts_with(&m.mount_path))
        .unwrap_or_else(|| panic!("no volume mounted at {}", dir.display()));
    assert_ne!(mount.read_only, Some(true));
    let volume = pod_spec(d)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the spool's volume");
    let needed = spool.bytes as f64 + (spool.bytes / 16).min(16 << 20) as f64;
    if let Some(e) = &volume.empty_dir {
        let limit = e.size_limit.as_ref().expect("an emptyDir sizeLimit");
        assert!(quantity(&limit.0) >= needed, "{} < {needed}", limit.0);
        return String::new();
    }
    let claim = volume
        .persistent_volume_claim
        .as_ref()
        .expect("an emptyDir or a claim");
    claim.claim_name.clone()
}

#[test]
fn the_spool_pvc_component_moves_the_spool_onto_a_claim_large_enough() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let objs = render_with_component(&repo().join("deploy/kube-config/components/spool-pvc"));
    let d = deployment(&objs, "heapster");
    let cfg = heapster_config(&objs);
    let influx = cfg
        .sinks
        .iter()
        .find_map(|s| match s {
            config::SinkConfig::InfluxDb(i) => Some(i),
            _ => None,
        })
        .expect("an influxdb sink");
    let claim = check_spool_volume(d, &influx.spool);
    let pvc = objs
        .pvcs
        .iter()
        .find(|p| name_of(&p.metadata) == claim)
        .unwrap_or_else(|| panic!("claim {claim} in {}", objs.name));
    let storage = pvc
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .expect("a storage request");
    let needed = influx.spool.bytes as f64 + (influx.spool.bytes / 16).min(16 << 20) as f64;
    assert!(quantity(&storage.0) >= needed, "{} < {needed}", storage.0);
    let strategy = d.spec.as_ref().and_then(|s| s.strategy.as_ref());
    assert_eq!(
        strategy.and_then(|s| s.type_.as_deref()),
        Some("Recreate"),
        "a ReadWriteOnce claim cannot be mounted by the surge pod on another node"
    );
}

#[test]
fn influxdb_and_grafana_match_what_heapster_writes_and_the_dashboards_read() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let heapster = base();
    let stack = render(&repo().join("deploy/kube-config/influxdb"));
    let sink = flag(
        container(deployment(&heapster, "heapster"), "heapster"),
        "--sink",
    )
    .expect("--sink")
    .to_string();

    // The sink's host is the InfluxDB Service, the port its port.
    let influx = service(&stack, "monitoring-influxdb");
    let (port, target) = service_port(influx, "http");
    assert!(
        sink.starts_with(&format!(
            "influxdb:http://monitoring-influxdb.{NAMESPACE}.svc:{port}?"
        )),
        "{sink}"
    );
    let influx_c = container(deployment(&stack, "monitoring-influxdb"), "influxdb");
    assert_eq!(resolve_port(influx_c, &target), Some(8086));
    assert_eq!(stack.pvcs.len(), 1);

    // Every Secret reference points at the one credentials Secret, with the same keys.
    let mut secrets = BTreeSet::new();
    for d in heapster.deployments.iter().chain(&stack.deployments) {
        for c in &pod_spec(d).containers {
            for e in c.env.as_deref().unwrap_or_default() {
                if let Some(r) = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref())
                {
                    secrets.insert((r.name.clone(), r.key.clone()));
                }
            }
        }
    }
    let expected: BTreeSet<_> = ["username", "password"]
        .map(|k| ("monitoring-influxdb-credentials".to_string(), k.to_string()))
        .into();
    assert_eq!(secrets, expected);

    // Grafana's datasource: same uid as the dashboards, same URL and database as heapster.
    let cm = |prefix: &str| -> &ConfigMap {
        stack
            .config_maps
            .iter()
            .find(|c| name_of(&c.metadata).starts_with(prefix))
            .unwrap_or_else(|| panic!("ConfigMap {prefix}*"))
    };
    let ds_text = &cm("grafana-datasources").data.as_ref().expect("data")["influxdb.yaml"];
    let ds: Value = serde_saphyr::from_str(ds_text).expect("datasource YAML");
    let ds = &ds["datasources"][0];
    assert_eq!(ds["type"], "influxdb");
    assert_eq!(ds["uid"], "monitoring-influxdb");
    assert_eq!(ds["name"], "monitoring-influxdb");
    assert_eq!(
        ds["url"],
        format!("http://monitoring-influxdb.{NAMESPACE}.svc:{port}")
    );
    assert!(sink.contains(&format!(
        "db={}",
        ds["jsonData"]["dbName"].as_str().expect("db")
    )));
    // $__interval never drops below one tick.
    let resolution = flag(
        container(deployment(&heapster, "heapster"), "heapster"),
        "--metric_resolution",
    );
    assert_eq!(ds["jsonData"]["timeInterval"].as_str(), resolution);
    let grafana = deployment(&stack, "monitoring-grafana");
    let gc = container(grafana, "grafana");
    for var in ["INFLUX_USER", "INFLUX_PASSWORD"] {
        assert!(ds_text.contains(&format!("${var}")) && env_names(gc).contains(&var.into()));
    }

    // The dashboard ConfigMaps hold every JSON file, fit under kubectl apply's annotation limit,
    // and are mounted where the dashboard provider looks.
    let providers_text = &cm("grafana-dashboard-providers")
        .data
        .as_ref()
        .expect("data")["dashboards.yaml"];
    let providers: Value = serde_saphyr::from_str(providers_text).expect("providers YAML");
    let mounts: BTreeMap<String, String> = gc
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|m| (m.name.clone(), m.mount_path.clone()))
        .collect();
    let volumes: BTreeMap<String, String> = pod_spec(grafana)
        .volumes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| Some((v.name.clone(), v.config_map.as_ref()?.name.clone())))
        .collect();
    for (schema, source) in [
        ("default", "monitoring-influxdb"),
        ("withfields", "monitoring-influxdb"),
        ("prometheus", "prometheus"),
    ] {
        let map = cm(&format!("grafana-dashboards-{schema}"));
        let data = map.data.as_ref().expect("data");
        let size: usize = data.values().map(String::len).sum();
        assert!(size < 200 * 1024, "{schema}: {size} bytes");
        let mut files: Vec<String> =
            std::fs::read_dir(repo().join("grafana/dashboards").join(schema))
                .expect("dashboards dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect();
        files.sort();
        let keys: Vec<String> = data.keys().cloned().collect();
        assert_eq!(
            keys, files,
            "grafana/kustomization.yaml lists every {schema} dashboard"
        );
        for (key, text) in data {
            let dash: Value = serde_json::from_str(text).expect("dashboard JSON");
            let mut uids = BTreeSet::new();
            datasource_uids(&dash, &mut uids);
            assert_eq!(uids, BTreeSet::from([source.to_string()]), "{key}");
        }
        let volume = volumes
            .iter()
            .find(|(_, cm_name)| *cm_name == name_of(&map.metadata))
            .map(|(v, _)| v)
            .expect("mounted");
        let path = &mounts[volume];
        let provided = providers["providers"]
            .as_array()
            .expect("providers")
            .iter()
            .any(|p| p["options"]["path"] == path.as_str());
        assert!(provided, "a dashboard provider reads {path}");
    }
    for dir in ["datasources", "dashboards"] {
        let mounted = mounts
            .values()
            .any(|p| p == &format!("/etc/grafana/provisioning/{dir}"));
        assert!(mounted, "provisioning/{dir} mounted");
    }
    let env = gc.env.as_deref().unwrap_or_default();
    let prov = env.iter().find(|e| e.name == "GF_PATHS_PROVISIONING");
    assert_eq!(
        prov.and_then(|e| e.value.as_deref()),
        Some("/etc/grafana/provisioning")
    );

    // The ephemeral variant: no claim, an emptyDir instead.
    let eph = render(&repo().join("deploy/kube-config/influxdb-ephemeral"));
    assert!(eph.pvcs.is_empty());
    let vols = pod_spec(deployment(&eph, "monitoring-influxdb"))
        .volumes
        .clone()
        .expect("volumes");
    let data = vols.iter().find(|v| v.name == "data").expect("data volume");
    assert!(data.empty_dir.is_some() && data.persistent_volume_claim.is_none());
}

/// Every `datasource.uid` in a dashboard.
fn datasource_uids(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(uid) = m.get("datasource").and_then(|d| d.get("uid")) {
                out.insert(uid.as_str().expect("uid").to_string());
            }
            m.values().for_each(|v| datasource_uids(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| datasource_uids(v, out)),
        _ => {}
    }
}

#[test]
fn the_plain_port_is_reachable_only_from_outside_the_pod_network_and_monitoring() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let objs = base();
    let [np] = &objs.network_policies[..] else {
        panic!("one NetworkPolicy");
    };
    let spec = np.spec.as_ref().expect("spec");
    let d = deployment(&objs, "heapster");
    let c = container(d, "heapster");
    assert_eq!(
        spec.pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        Some(BTreeMap::from([(
            "k8s-app".to_string(),
            "heapster".to_string()
        )]))
    );
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string()][..])
    );
    assert!(
        spec.egress.is_none(),
        "egress is open: apiserver, kubelets, InfluxDB"
    );
    let rules = spec.ingress.as_deref().expect("ingress rules");
    // Each container port is named by exactly one rule, and no rule opens a port to everyone.
    let mut covered = BTreeSet::new();
    for rule in rules {
        let from = rule.from.as_deref().expect("every rule names its sources");
        assert!(!from.is_empty());
        for peer in from {
            match (&peer.ip_block, &peer.namespace_selector, &peer.pod_selector) {
                (Some(b), None, None) => {
                    assert_eq!(b.cidr, "0.0.0.0/0", "outside the pod network");
                    assert!(
                        !b.except.as_deref().unwrap_or_default().is_empty(),
                        "the pod network is excepted"
                    );
                }
                (None, Some(ns), None) => assert_eq!(
                    ns.match_labels.clone().unwrap_or_default(),
                    BTreeMap::from([(
                        "kubernetes.io/metadata.name".to_string(),
                        "monitoring".to_string()
                    )])
                ),
                other => panic!("unexpected source {other:?}"),
            }
        }
        for p in rule.ports.as_deref().expect("ports") {
            let port = resolve_port(c, p.port.as_ref().expect("port")).expect("a container port");
            assert!(covered.insert(port), "port {port} in two rules");
        }
    }
    let cfg = heapster_config(&objs);
    let ports = [cfg.heapster_port, cfg.secure.port].map(i32::from);
    assert_eq!(covered, BTreeSet::from(ports));
}

#[test]
fn secure_only_component_turns_the_plain_apis_off() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let on = heapster_config(&base());
    assert!(on.plain_port_apis, "Heapster's clients work by default");
    assert_ne!(on.secure.port, 0);
    let secure = render_with_component(&repo().join("deploy/kube-config/components/secure-only"));
    let off = heapster_config(&secure);
    assert!(!off.plain_port_apis);
    assert_eq!(
        off.secure.port, on.secure.port,
        "the APIs stay on the secure port"
    );
    assert_eq!(secure.network_policies.len(), 1);
}

// ---------------------------------------------------------------------------------------
// RBAC against rbac::API_CALLS

/// (group, resource, verb) triples a set of rules grants; wildcards are refused.
fn grants(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for r in rules {
        assert!(r.non_resource_urls.is_none() && r.resource_names.is_none());
        for g in r.api_groups.as_deref().unwrap_or_default() {
            for res in r.resources.as_deref().unwrap_or_default() {
                for v in &r.verbs {
                    assert!(![g, res, v].contains(&&"*".to_string()), "no wildcards");
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn needed(grant: Grant) -> BTreeSet<(String, String, String)> {
    heapster_rs::rbac::granted_by(grant)
        .flat_map(|c| {
            c.verbs
                .iter()
                .map(|v| (c.group.to_string(), c.resource.to_string(), v.to_string()))
        })
        .collect()
}

fn service_account(b: Binary) -> &'static str {
    match b {
        Binary::Heapster => "heapster",
        Binary::Eventer => "eventer",
    }
}

/// Roles bound to each ServiceAccount in kube-system: (kind, role name) per account.
fn bound(objs: &Objects) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let cluster = objs
        .cluster_role_bindings
        .iter()
        .map(|b| (&b.role_ref, b.subjects.as_deref().unwrap_or_default()));
    let namespaced = objs
        .role_bindings
        .iter()
        .map(|b| (&b.role_ref, b.subjects.as_deref().unwrap_or_default()));
    for (role, subjects) in cluster.chain(namespaced) {
        for s in subjects {
            assert_eq!(s.kind, "ServiceAccount");
            out.insert((s.name.clone(), role.kind.clone(), role.name.clone()));
        }
    }
    out
}

#[test]
fn cluster_roles_grant_exactly_the_api_calls_and_are_bound_to_the_right_accounts() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let objs = base();
    let roles: BTreeMap<&str, &ClusterRole> = objs
        .cluster_roles
        .iter()
        .map(|r| (name_of(&r.metadata), r))
        .collect();
    let ours = [Grant::Heapster, Grant::Eventer, Grant::NodeProxy];
    let mut defined: BTreeSet<&str> = ours.iter().map(|g| g.role_name()).collect();
    defined.insert(READER_ROLE);
    assert_eq!(
        roles.keys().copied().collect::<BTreeSet<_>>(),
        defined,
        "the ClusterRoles we define"
    );
    // The readers' role: exactly READER_GRANTS, aggregated into view, edit and admin, bound
    // by nobody here (the aggregation does it).
    let reader = roles[READER_ROLE];
    let want: BTreeSet<_> = READER_GRANTS
        .iter()
        .flat_map(|(res, verbs, _)| {
            verbs
                .iter()
                .map(|v| (METRICS_GROUP.to_string(), res.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(
        grants(reader.rules.as_deref().unwrap_or_default()),
        want,
        "{READER_ROLE}"
    );
    let labels = reader.metadata.labels.clone().unwrap_or_default();
    for to in ["view", "edit", "admin"] {
        let key = format!("rbac.authorization.k8s.io/aggregate-to-{to}");
        assert_eq!(labels.get(&key).map(String::as_str), Some("true"), "{key}");
    }
    for g in ours {
        let rules = roles[g.role_name()].rules.as_deref().unwrap_or_default();
        assert_eq!(grants(rules), needed(g), "{}", g.role_name());
    }
    let bindings = bound(&objs);
    for call in API_CALLS {
        let sa = service_account(call.binary).to_string();
        let kind = if call.namespace.is_some() {
            "Role"
        } else {
            "ClusterRole"
        };
        let edge = (
            sa,
            kind.to_string(),
            call.granted_by.role_name().to_string(),
        );
        let is_bound = bindings.contains(&edge);
        // nodes/proxy is bound only by the node-proxy component, the metrics reader only by
        // the peer-reader component (sharded replicas).
        assert_eq!(is_bound, !by_component(call.granted_by), "{call:?}");
    }
    for rb in &objs.role_bindings {
        assert_eq!(rb.metadata.namespace.as_deref(), Some(NAMESPACE));
        assert!(Grant::AuthReader.built_in());
        assert_eq!(rb.role_ref.name, Grant::AuthReader.role_name());
    }
    // No binding beyond what API_CALLS asks for.
    let wanted: BTreeSet<_> = API_CALLS
        .iter()
        .filter(|c| !by_component(c.granted_by))
        .map(|c| {
            let kind = if c.namespace.is_some() {
                "Role"
            } else {
                "ClusterRole"
            };
            let sa = service_account(c.binary).to_string();
            (sa, kind.to_string(), c.granted_by.role_name().to_string())
        })
        .collect();
    assert_eq!(bindings, wanted);

    let np = render_with_component(&repo().join("deploy/kube-config/components/node-proxy"));
    let edge = (
        "heapster".to_string(),
        "ClusterRole".to_string(),
        Grant::NodeProxy.role_name().to_string(),
    );
    assert!(bound(&np).contains(&edge));
    let source = flag(
        container(deployment(&np, "heapster"), "heapster"),
        "--source",
    );
    assert!(source.is_some_and(|s| s.contains("nodeProxy=true")));

    // Sharded replicas ask each other for what kubectl top reads: the readers' role, bound
    // cluster-wide, grants exactly that.
    let peers = render_with_component(&repo().join("deploy/kube-config/components/peer-reader"));
    let edge = (
        "heapster".to_string(),
        "ClusterRole".to_string(),
        Grant::MetricsReader.role_name().to_string(),
    );
    assert!(bound(&peers).contains(&edge));
    assert_eq!(needed(Grant::MetricsReader), want);
    check_network_policies(&peers);
    assert_eq!(
        peers.network_policies.len(),
        2,
        "the base's and the replicas' own"
    );
}

/// Grants bound only by a component, not by the base.
fn by_component(grant: Grant) -> bool {
    matches!(
        grant,
        Grant::NodeProxy | Grant::MetricsReader | Grant::Sharding
    )
}

#[test]
fn the_sharded_component_runs_three_replicas_that_hold_leases() {
    if !available("kubectl", &["version", "--client"]) {
        return;
    }
    let components =
        ["sharded", "peer-reader"].map(|c| repo().join("deploy/kube-config/components").join(c));
    let objs = render_with_components(&[&components[0], &components[1]]);
    check_namespaces(&objs);
    check_workloads(&objs);
    check_network_policies(&objs);
    // The StatefulSet replaces the Deployment.
    let [set] = objs.stateful_sets.as_slice() else {
        panic!("one StatefulSet: {:?}", objs.stateful_sets.len());
    };
    assert_eq!(name_of(&set.metadata), "heapster");
    assert!(
        !objs
            .deployments
            .iter()
            .any(|d| name_of(&d.metadata) == "heapster"
                && d.spec.as_ref().and_then(|s| s.replicas) == Some(1))
    );
    let spec = set.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let pods = pod_labels(deployment(&objs, "heapster"));
    // Its governing Service is headless and selects its pods.
    let governing = service(&objs, &spec.service_name.clone().expect("serviceName"));
    let gspec = governing.spec.as_ref().expect("service spec");
    assert_eq!(gspec.cluster_ip.as_deref(), Some("None"));
    // At most one replica down at a time, by choice.
    let [pdb] = objs.pdbs.as_slice() else {
        panic!("one PodDisruptionBudget");
    };
    let pdb_spec = pdb.spec.as_ref().expect("pdb spec");
    assert_eq!(pdb_spec.max_unavailable, Some(IntOrString::Int(1)));
    let selector = pdb_spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .expect("pdb selector");
    assert!(selector.iter().all(|(k, v)| pods.get(k) == Some(v)));
    // Spread over nodes.
    let anti = pod_spec(deployment(&objs, "heapster"))
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("pod anti-affinity");
    let term = &anti[0].pod_affinity_term;
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
    let anti_labels = term
        .label_selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .expect("anti-affinity selector");
    assert!(anti_labels.iter().all(|(k, v)| pods.get(k) == Some(v)));
    // The downward API gives the identity, namespace and address; the flags parse into
    // sharding on, with the peer address on the secure port.
    let c = container(deployment(&objs, "heapster"), "heapster");
    for (var, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_IP", "status.podIP"),
    ] {
        let e = c.env.iter().flatten().find(|e| e.name == var).expect(var);
        let field = e.value_from.as_ref().and_then(|v| v.field_ref.as_ref());
        assert_eq!(field.map(|f| f.field_path.as_str()), Some(path), "{var}");
    }
    let names = env_names(c);
    let env = move |k: &str| match k {
        "POD_NAME" => Some("heapster-0".to_string()),
        "POD_NAMESPACE" => Some(NAMESPACE.to_string()),
        "POD_IP" => Some("10.244.1.7".to_string()),
        _ => names.iter().any(|n| n == k).then(|| "x0".to_string()),
    };
    let mut argv = vec!["heapster".to_string()];
    argv.extend(c.args.iter().flatten().cloned());
    let Parsed::Run(cfg) = config::parse(argv, &env) else {
        panic!("the StatefulSet's args do not parse");
    };
    let sharding = cfg.sharding.expect("sharding on");
    assert_eq!(sharding.identity, "heapster-0");
    assert_eq!(sharding.namespace, NAMESPACE);
    assert_eq!(sharding.address.as_str(), "https://10.244.1.7:8443/");
    assert!(resolve_port(c, &IntOrString::Int(8443)).is_some());
    // The Role grants exactly the Lease calls, in the namespace, bound to heapster.
    let [role] = objs.roles.as_slice() else {
        panic!("one Role");
    };
    assert_eq!(name_of(&role.metadata), Grant::Sharding.role_name());
    assert_eq!(
        grants(role.rules.as_deref().unwrap_or_default()),
        needed(Grant::Sharding)
    );
    assert!(bound(&objs).contains(&(
        "heapster".to_string(),
        "Role".to_string(),
        Grant::Sharding.role_name().to_string()
    )));
    let leases = API_CALLS
        .iter()
        .find(|c| c.granted_by == Grant::Sharding)
        .expect("the Lease calls");
    assert_eq!(leases.namespace, Some(NAMESPACE));
}

// ---------------------------------------------------------------------------------------
// Standalone (systemd)

fn unit_for_verify(dir: &Path) -> PathBuf {
    let unit =
        std::fs::read_to_string(repo().join("deploy/standalone/heapster.service")).expect("unit");
    assert!(unit.contains("\nExecStart=/usr/local/bin/heapster "));
    // verify insists the binary exists: point it at one that does.
    let unit = unit.replace(
        "\nExecStart=/usr/local/bin/heapster ",
        "\nExecStart=/bin/true ",
    );
    let path = dir.join("heapster.service");
    std::fs::write(&path, unit).expect("write unit");
    path
}

#[test]
fn systemd_unit_verifies_cleanly_and_is_sandboxed() {
    if !available("systemd-analyze", &["--version"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let unit = unit_for_verify(tmp.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify exits 0 on unknown keys and bad values, only warning: any output is a failure.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    // Exposure 2.0 or better ("OK"); --offline needs systemd 250+.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze security");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `NAME='value'` and `NAME=value` lines of an environment file.
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

#[test]
fn standalone_flags_parse_as_systemd_passes_them() {
    let unit =
        std::fs::read_to_string(repo().join("deploy/standalone/heapster.service")).expect("unit");
    let vars = env_file(
        &std::fs::read_to_string(repo().join("deploy/standalone/heapster.env")).expect("env"),
    );
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    // systemd: ${X} is one argument, $X splits at whitespace; no expansion inside values.
    let mut argv = Vec::new();
    for word in exec.split_whitespace() {
        if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            argv.push(vars[name].clone());
        } else if let Some(name) = word.strip_prefix('$') {
            argv.extend(vars[name].split_whitespace().map(String::from));
        } else {
            argv.push(word.to_string());
        }
    }
    assert!(unit.contains("LoadCredential=kubeconfig:"));
    assert!(unit.contains("\nStateDirectory=heapster\n"));
    let env = move |k: &str| match k {
        "CREDENTIALS_DIRECTORY" => Some("/run/credentials/heapster.service".to_string()),
        "STATE_DIRECTORY" => Some("/var/lib/heapster".to_string()),
        other => vars.get(other).cloned(),
    };
    match config::parse(argv, &env) {
        Parsed::Run(cfg) => {
            let config::SourceConfig::Kubernetes(k) = cfg.source else {
                panic!("a kubernetes source");
            };
            assert!(k.node_proxy);
            assert_eq!(
                k.auth,
                config::ApiAuth::Kubeconfig("/run/credentials/heapster.service/kubeconfig".into())
            );
            let spool = cfg.sinks.iter().find_map(|s| match s {
                config::SinkConfig::InfluxDb(i) => i.spool.dir.clone(),
                _ => None,
            });
            // The spool is in the state directory, the only path the unit can write.
            assert!(
                spool
                    .as_deref()
                    .is_some_and(|d| d.starts_with("/var/lib/heapster")),
                "{spool:?}"
            );
        }
        Parsed::Exit { message, .. } => panic!("standalone flags rejected:\n{message}"),
    }
}
