//! `--source=kind:URL?options`: `kubernetes` (alias `kubernetes.summary_api`) and `simulated`.
//!
//! Heapster's option names and defaults (REFERENCE.md §1) plus `kubeletInsecure`, `nodeProxy`,
//! `addressTypes`, `serviceAccountDir` and `kubeletEndpoint`. Every problem is returned, one message each.

use std::path::PathBuf;

use super::expand::{self, Options, Target};
use super::types::{
    AddressType, ApiAuth, DEFAULT_ADDRESS_TYPES, DEFAULT_SERVICE_ACCOUNT_DIR, KubeletEndpoint,
    KubernetesSource, SimulatedSource, SourceConfig,
};

const KINDS: &str = "kubernetes, kubernetes.summary_api, simulated";

const KUBERNETES_OPTIONS: &[&str] = &[
    "inClusterConfig",
    "insecure",
    "auth",
    "useServiceAccount",
    "kubeletPort",
    "kubeletHttps",
    "kubeletInsecure",
    "nodeProxy",
    "addressTypes",
    "serviceAccountDir",
    "kubeletEndpoint",
    "kubeletKeepAlive",
];

const SIMULATED_OPTIONS: &[&str] = &["nodes", "podsPerNode", "containersPerPod", "https"];

const ADDRESS_TYPES: &[AddressType] = &[
    AddressType::InternalIp,
    AddressType::ExternalIp,
    AddressType::Hostname,
    AddressType::InternalDns,
    AddressType::ExternalDns,
];

/// Parses one `--source` value. Messages do not carry the `--source` prefix.
pub fn parse(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SourceConfig, Vec<String>> {
    let (kind, rest) = expand::split(value);
    match kind {
        "kubernetes" | "kubernetes.summary_api" => {
            kubernetes(Target::parse(rest, env)?).map(SourceConfig::Kubernetes)
        }
        "simulated" => simulated(Target::parse(rest, env)?).map(SourceConfig::Simulated),
        _ => Err(vec![format!(
            "unknown source kind {kind:?} (known: {KINDS})"
        )]),
    }
}

fn kubernetes(target: Target) -> Result<KubernetesSource, Vec<String>> {
    let Target { url, mut options } = target;
    let mut errors = Vec::new();
    let api_server = match url {
        Some(url) if !matches!(url.scheme(), "http" | "https") => {
            errors.push(format!(
                "apiserver URL scheme {} is not supported (use http or https)",
                options.show("scheme", url.scheme())
            ));
            None
        }
        other => other,
    };
    let in_cluster = options.take_bool("inClusterConfig").unwrap_or(true);
    let auth_path = options.take("auth").filter(|p| !p.is_empty());
    // As in Heapster, the kubeconfig is only read when inClusterConfig=false.
    let auth = match (in_cluster, auth_path) {
        (true, _) => ApiAuth::InCluster,
        (false, Some(path)) => ApiAuth::Kubeconfig(PathBuf::from(path)),
        (false, None) => ApiAuth::None,
    };
    let mut source = KubernetesSource {
        api_server,
        auth,
        insecure: options.take_bool("insecure").unwrap_or(false),
        use_service_account: options.take_bool("useServiceAccount").unwrap_or(false),
        service_account_dir: PathBuf::from(options.take_string(
            "serviceAccountDir",
            DEFAULT_SERVICE_ACCOUNT_DIR,
            true,
        )),
        kubelet_port: None,
        kubelet_https: true,
        kubelet_insecure: options.take_bool("kubeletInsecure"),
        node_proxy: options.take_bool("nodeProxy").unwrap_or(false),
        address_types: address_types(&mut options),
        kubelet_endpoint: kubelet_endpoint(&mut options),
        kubelet_keep_alive: options.take_bool("kubeletKeepAlive").unwrap_or(true),
    };
    (source.kubelet_https, source.kubelet_port) = kubelet_scheme_and_port(
        options.take_bool("kubeletHttps"),
        kubelet_port(&mut options),
    );
    errors.extend(options.finish(KUBERNETES_OPTIONS));
    if errors.is_empty() {
        Ok(source)
    } else {
        Err(errors)
    }
}

/// Heapster's defaults: with neither option, https on the port each node advertises; with
/// either, the scheme given (http when only the port is) and, over http, port 10255 unless
/// given.
fn kubelet_scheme_and_port(https: Option<bool>, port: Option<u16>) -> (bool, Option<u16>) {
    if https.is_none() && port.is_none() {
        return (true, None);
    }
    let https = https.unwrap_or(false);
    (https, if https { port } else { port.or(Some(10255)) })
}

fn kubelet_port(options: &mut Options) -> Option<u16> {
    let value = options.take("kubeletPort")?;
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Some(port),
        _ => {
            let shown = options.show("kubeletPort", &value);
            options.error("kubeletPort", format!("{shown} is not a port (1 to 65535)"));
            None
        }
    }
}

fn kubelet_endpoint(options: &mut Options) -> KubeletEndpoint {
    let Some(value) = options.take("kubeletEndpoint") else {
        return KubeletEndpoint::default();
    };
    if let Some(e) = KubeletEndpoint::ALL
        .into_iter()
        .find(|e| e.as_str() == value)
    {
        return e;
    }
    let shown = options.show("kubeletEndpoint", &value);
    let message = format!("{shown} is not one of summary, resource, auto");
    options.error("kubeletEndpoint", message);
    KubeletEndpoint::default()
}

fn address_types(options: &mut Options) -> Vec<AddressType> {
    let default = DEFAULT_ADDRESS_TYPES.to_vec();
    let Some(value) = options.take("addressTypes") else {
        return default;
    };
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim) {
        match ADDRESS_TYPES.iter().find(|t| t.as_str() == item) {
            Some(t) if !out.contains(t) => out.push(*t),
            Some(_) => {}
            None => {
                let known: Vec<_> = ADDRESS_TYPES.iter().map(|t| t.as_str()).collect();
                let shown = options.show("addressTypes", item);
                let message = format!("unknown address type {shown} (known: {})", known.join(", "));
                options.error("addressTypes", message);
            }
        }
    }
    if out.is_empty() { default } else { out }
}

/// The demo cluster of `simulated:` (also the source when `--source` is absent).
pub fn simulated_default() -> SimulatedSource {
    SimulatedSource {
        nodes: 5,
        pods_per_node: 10,
        containers_per_pod: 2,
        https: false,
    }
}

fn simulated(target: Target) -> Result<SimulatedSource, Vec<String>> {
    let Target { url, mut options } = target;
    let mut errors = Vec::new();
    if url.is_some() {
        errors.push("simulated takes only options (simulated:?nodes=N&podsPerNode=M)".to_string());
    }
    let d = simulated_default();
    let source = SimulatedSource {
        nodes: options.take_num("nodes", d.nodes, 1, 20_000),
        pods_per_node: options.take_num("podsPerNode", d.pods_per_node, 0, 500),
        containers_per_pod: options.take_num("containersPerPod", d.containers_per_pod, 1, 20),
        https: options.take_bool("https").unwrap_or(d.https),
    };
    errors.extend(options.finish(SIMULATED_OPTIONS));
    if errors.is_empty() {
        Ok(source)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "APISERVER").then(|| "https://10.0.0.1:6443".to_string())
    }

    fn kube(value: &str) -> KubernetesSource {
        match parse(value, &env) {
            Ok(SourceConfig::Kubernetes(k)) => k,
            other => panic!("{value}: {other:?}"),
        }
    }

    fn errors(value: &str) -> String {
        parse(value, &env).expect_err(value).join("\n")
    }

    fn defaults(api_server: Option<&str>) -> KubernetesSource {
        KubernetesSource::new(api_server.map(|u| url::Url::parse(u).expect("url")))
    }

    #[test]
    fn seed_command_lines() {
        assert_eq!(
            kube("kubernetes:https://kubernetes.default"),
            defaults(Some("https://kubernetes.default"))
        );
        let insecure_port = kube("kubernetes:http://10.47.136.60:8080?inClusterConfig=false");
        assert_eq!(
            insecure_port,
            KubernetesSource {
                auth: ApiAuth::None,
                ..defaults(Some("http://10.47.136.60:8080"))
            }
        );
        let kubeconfig = kube(
            "kubernetes:https://kubernetes.default?inClusterConfig=false&insecure=true&auth=/root/.kube/config",
        );
        assert_eq!(
            kubeconfig,
            KubernetesSource {
                auth: ApiAuth::Kubeconfig(PathBuf::from("/root/.kube/config")),
                insecure: true,
                ..defaults(Some("https://kubernetes.default"))
            }
        );
        // As in Heapster, insecure=true skips kubelet verification too, unless
        // kubeletInsecure=false says otherwise.
        assert!(kubeconfig.kubelet_insecure() && kubeconfig.kubelet_insecure_implied());
        let verified = kube("kubernetes:https://api?insecure=true&kubeletInsecure=false");
        assert!(!verified.kubelet_insecure() && !verified.kubelet_insecure_implied());
        assert!(!kube("kubernetes:https://api").kubelet_insecure());
        let explicit = kube("kubernetes:https://api?insecure=true&kubeletInsecure=true");
        assert!(explicit.kubelet_insecure() && !explicit.kubelet_insecure_implied());
    }

    #[test]
    fn in_cluster_forms() {
        for value in [
            "kubernetes",
            "kubernetes:",
            "kubernetes.summary_api:",
            "kubernetes.summary_api:''",
        ] {
            assert_eq!(kube(value), defaults(None), "{value}");
        }
        let k = kube("kubernetes:?inClusterConfig=false&auth=/k.conf");
        assert_eq!(k.api_server, None);
        assert_eq!(k.auth, ApiAuth::Kubeconfig(PathBuf::from("/k.conf")));
        // Heapster read the kubeconfig only with inClusterConfig=false.
        assert_eq!(kube("kubernetes:?auth=/k.conf").auth, ApiAuth::InCluster);
        assert_eq!(
            kube("kubernetes:$APISERVER")
                .api_server
                .map(String::from)
                .as_deref(),
            Some("https://10.0.0.1:6443/")
        );
    }

    #[test]
    fn every_option() {
        let k = kube(
            "kubernetes:https://api:6443?useServiceAccount=1&kubeletPort=10250&kubeletHttps=true\
             &kubeletInsecure=T&nodeProxy=true&addressTypes=Hostname,InternalDNS,ExternalDNS\
             &serviceAccountDir=/sa&kubeletEndpoint=auto&kubeletKeepAlive=false",
        );
        assert!(k.use_service_account && k.kubelet_insecure() && k.node_proxy);
        assert!(!k.kubelet_keep_alive);
        assert!(kube("kubernetes:").kubelet_keep_alive);
        assert_eq!(k.kubelet_port, Some(10250));
        assert!(k.kubelet_https);
        assert_eq!(k.service_account_dir, PathBuf::from("/sa"));
        assert_eq!(k.kubelet_endpoint, KubeletEndpoint::Auto);
        assert_eq!(
            kube("kubernetes:?kubeletEndpoint=resource").kubelet_endpoint,
            KubeletEndpoint::Resource
        );
        assert_eq!(
            k.address_types,
            vec![
                AddressType::Hostname,
                AddressType::InternalDns,
                AddressType::ExternalDns
            ]
        );
        let http = kube("kubernetes:?kubeletHttps=false");
        assert_eq!(
            (http.kubelet_https, http.kubelet_port),
            (false, Some(10255))
        );
        let port = kube("kubernetes:?kubeletPort=4194");
        assert_eq!((port.kubelet_https, port.kubelet_port), (false, Some(4194)));
        let https = kube("kubernetes:?kubeletHttps=true");
        assert_eq!((https.kubelet_https, https.kubelet_port), (true, None));
        let neither = kube("kubernetes:");
        assert_eq!((neither.kubelet_https, neither.kubelet_port), (true, None));
    }

    #[test]
    fn kubernetes_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "kubernetes:?kubeletPrt=1",
                "unknown option \"kubeletPrt\" (known: inClusterConfig,",
            ),
            (
                "kubernetes:?insecure=yes",
                "option insecure: \"yes\" is not a boolean",
            ),
            (
                "kubernetes:?kubeletPort=0",
                "option kubeletPort: \"0\" is not a port",
            ),
            ("kubernetes:?kubeletPort=70000", "is not a port"),
            (
                "kubernetes:?addressTypes=InternalIP,Bogus",
                "unknown address type \"Bogus\"",
            ),
            (
                "kubernetes:?serviceAccountDir=",
                "option serviceAccountDir: must not be empty",
            ),
            (
                "kubernetes:?insecure=true&insecure=false",
                "\"insecure\" given more than once",
            ),
            (
                "kubernetes:?kubeletEndpoint=cadvisor",
                "option kubeletEndpoint: \"cadvisor\" is not one of summary, resource, auto",
            ),
            ("kubernetes:ftp://x", "scheme \"ftp\" is not supported"),
            ("kubernetes:kubernetes.default", "not a valid URL"),
            ("kubernetes:$NOPE", "environment variable $NOPE is not set"),
            (
                "kubelet:",
                "unknown source kind \"kubelet\" (known: kubernetes, kubernetes.summary_api, simulated)",
            ),
        ];
        for (value, want) in cases {
            let got = errors(value);
            assert!(got.contains(want), "{value}: {got}");
        }
        let all = errors("kubernetes:?insecure=maybe&kubeletPort=x&bogus=1");
        assert_eq!(all.lines().count(), 3, "{all}");
    }

    #[test]
    fn simulated_sources() {
        let sim = |v: &str| match parse(v, &env) {
            Ok(SourceConfig::Simulated(s)) => s,
            other => panic!("{v}: {other:?}"),
        };
        let default = SimulatedSource {
            nodes: 5,
            pods_per_node: 10,
            containers_per_pod: 2,
            https: false,
        };
        assert_eq!(sim("simulated"), default);
        assert_eq!(sim("simulated:"), default);
        assert_eq!(
            sim("simulated:?nodes=20000&podsPerNode=0&containersPerPod=20&https=true"),
            SimulatedSource {
                nodes: 20_000,
                pods_per_node: 0,
                containers_per_pod: 20,
                https: true
            }
        );
        let cases: &[(&str, &str)] = &[
            (
                "simulated:?nodes=0",
                "option nodes: \"0\" is not a number from 1 to 20000",
            ),
            ("simulated:?nodes=20001", "from 1 to 20000"),
            ("simulated:?podsPerNode=501", "option podsPerNode"),
            ("simulated:?containersPerPod=0", "option containersPerPod"),
            (
                "simulated:?node=3",
                "unknown option \"node\" (known: nodes, podsPerNode",
            ),
            ("simulated:http://x", "takes only options"),
        ];
        for (value, want) in cases {
            let got = errors(value);
            assert!(got.contains(want), "{value}: {got}");
        }
    }
}
