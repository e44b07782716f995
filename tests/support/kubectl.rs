//! Real `kubectl` against heapster-rs: a small proxy on 127.0.0.1 sends
//! `/apis/metrics.k8s.io/*` to heapster-rs, merges `/apis`, and sends the rest to the
//! simulator's apiserver; a kubeconfig for it in a temporary directory (also kubectl's `HOME`).

use std::collections::HashMap;
use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

/// The proxy's targets.
#[derive(Clone)]
struct Targets {
    apiserver: String,
    heapster: String,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// GETs `url` and decodes its JSON, asserting a 2xx status.
pub async fn get_json(url: &str) -> serde_json::Value {
    let res = http().get(url).send().await.expect("request");
    assert!(res.status().is_success(), "{url}: {}", res.status());
    serde_json::from_slice(&res.bytes().await.expect("body")).expect("json")
}

async fn proxy(State(t): State<Targets>, req: Request) -> Response {
    let path_q = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let path = req.uri().path().to_string();
    if path == "/apis" || path == "/apis/" {
        let mut merged = get_json(&format!("{}/apis", t.apiserver)).await;
        let ours = get_json(&format!("{}/apis", t.heapster)).await;
        if let (Some(groups), Some(more)) =
            (merged["groups"].as_array_mut(), ours["groups"].as_array())
        {
            groups.extend(more.iter().cloned());
        }
        return axum::Json(merged).into_response();
    }
    let base = if path.starts_with("/apis/metrics.k8s.io") {
        &t.heapster
    } else {
        &t.apiserver
    };
    let mut out = http().request(req.method().clone(), format!("{base}{path_q}"));
    if let Some(accept) = req.headers().get("accept") {
        out = out.header("accept", accept.as_bytes());
    }
    match out.send().await {
        Ok(res) => {
            let status = res.status();
            let ct = res
                .headers()
                .get("content-type")
                .cloned()
                .unwrap_or(http::HeaderValue::from_static("application/json"));
            let body: Bytes = res.bytes().await.unwrap_or_default();
            (status, [("content-type", ct)], body).into_response()
        }
        Err(e) => (http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Whether kubectl is on PATH (a test without it is skipped, unless
/// `HEAPSTER_REQUIRE_SERVERS=1`).
pub fn available() -> bool {
    let found = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok();
    if !found {
        if std::env::var("HEAPSTER_REQUIRE_SERVERS").is_ok_and(|v| v == "1") {
            panic!("kubectl not on PATH and HEAPSTER_REQUIRE_SERVERS=1");
        }
        eprintln!("skipped: kubectl not on PATH");
    }
    found
}

/// kubectl pointed at a proxy in front of an apiserver and heapster-rs; stops when dropped.
pub struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Kubectl {
    /// `apiserver` and `heapster` are base URLs without a trailing slash.
    pub async fn start(apiserver: &str, heapster: &str) -> Kubectl {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let proxy_addr = listener.local_addr().expect("addr");
        let targets = Targets {
            apiserver: apiserver.to_string(),
            heapster: heapster.to_string(),
        };
        let router = axum::Router::new().fallback(proxy).with_state(targets);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: http://{proxy_addr}\n\
                 contexts:\n- name: sim\n  context:\n    cluster: sim\n    user: sim\n\
                 current-context: sim\nusers:\n- name: sim\n  user: {{}}\n"
            ),
        )
        .expect("kubeconfig");
        Kubectl {
            dir,
            kubeconfig,
            server,
        }
    }

    /// Runs kubectl with `KUBECONFIG` (and `HOME`, for its cache) set for the child only;
    /// its stdout.
    pub async fn run(&self, args: &[&str]) -> String {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY");
        let out = cmd.output().await.expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Rows of a kubectl table, keyed by the first `key_cols` columns joined by `/`.
pub fn table(out: &str, key_cols: usize) -> HashMap<String, Vec<String>> {
    out.lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|cols| cols.len() > key_cols)
        .map(|cols| (cols[..key_cols].join("/"), cols[key_cols..].to_vec()))
        .collect()
}
