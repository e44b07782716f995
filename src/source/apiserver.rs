//! The apiserver client, built the way Heapster's `--source` options say, and the kubelet
//! credentials derived from it (same bearer token or client certificate, same cluster CA).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};
use secrecy::ExposeSecret;

use super::credentials::{KubeletCredentials, Secret, TokenSource};
use crate::certificate::CertProblem;
use crate::config::{ApiAuth, KubernetesSource};

/// Why the apiserver client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "in-cluster configuration: no apiserver URL given and KUBERNETES_SERVICE_HOST/PORT are not set"
    )]
    NoInClusterEnv,
    #[error("no apiserver URL: give one in --source when inClusterConfig=false without auth=")]
    NoUrl,
    #[error("invalid apiserver URL {0}")]
    BadUrl(String),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no certificate found in {0}")]
    NoCertificate(PathBuf),
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("building the client: {0}")]
    Build(String),
}

/// What is wrong with the apiserver's serving certificate and the setting that fixes it.
pub fn certificate_advice(problem: &CertProblem) -> String {
    match problem {
        CertProblem::Untrusted { .. } => "the apiserver's certificate is not signed by a CA this \
             collector knows: put the cluster CA in the kubeconfig (certificate-authority-data) \
             or the service-account ca.crt, or set insecure=true in --source"
            .to_string(),
        CertProblem::WrongName { tried, names } => format!(
            "the apiserver's certificate does not hold the name tried, {tried} (it holds {}): \
             use one of those names in the --source URL, or set insecure=true",
            CertProblem::names(names)
        ),
        CertProblem::Expired { .. } | CertProblem::NotYetValid { .. } => format!(
            "the apiserver's certificate {}: renew it (or fix the clock), or set insecure=true \
             in --source",
            problem.dates()
        ),
    }
}

/// The apiserver client plus what the kubelet client needs.
pub struct ApiClients {
    pub client: kube::Client,
    /// The apiserver URL in use (node proxy URLs are built from it).
    pub url: url::Url,
    pub kubelet: Arc<KubeletCredentials>,
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// PEM certificates → DER.
fn pem_certs(pem: &[u8], path: &Path) -> Result<Vec<Vec<u8>>, ClientError> {
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut &pem[..])
        .filter_map(Result::ok)
        .map(|c| c.as_ref().to_vec())
        .collect();
    if certs.is_empty() {
        return Err(ClientError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

fn parse_uri(url: &url::Url) -> Result<http::Uri, ClientError> {
    let s = url.as_str().trim_end_matches('/');
    s.parse::<http::Uri>()
        .map_err(|_| ClientError::BadUrl(url.to_string()))
}

/// Builds the clients. `env` looks up `KUBERNETES_SERVICE_HOST`/`_PORT` for in-cluster mode.
pub async fn connect(
    src: &KubernetesSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ApiClients, ClientError> {
    let mut creds = KubeletCredentials::default();
    let sa_token = src.service_account_dir.join("token");
    let (mut cfg, url) = match &src.auth {
        ApiAuth::InCluster => {
            let url = match &src.api_server {
                Some(u) => u.clone(),
                None => {
                    let host = env("KUBERNETES_SERVICE_HOST").ok_or(ClientError::NoInClusterEnv)?;
                    let port = env("KUBERNETES_SERVICE_PORT").ok_or(ClientError::NoInClusterEnv)?;
                    let host = crate::model::cluster::NodeInfo::url_host(&host);
                    url::Url::parse(&format!("https://{host}:{port}"))
                        .map_err(|_| ClientError::BadUrl(host))?
                }
            };
            let mut cfg = kube::Config::new(parse_uri(&url)?);
            let ca_path = src.service_account_dir.join("ca.crt");
            let ca = pem_certs(&read(&ca_path)?, &ca_path)?;
            cfg.root_cert = Some(ca.clone());
            creds.ca_der = ca;
            cfg.auth_info.token_file = Some(sa_token.to_string_lossy().into_owned());
            creds.token = Some(TokenSource::file(&sa_token));
            (cfg, url)
        }
        ApiAuth::Kubeconfig(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| ClientError::Kubeconfig {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| ClientError::Kubeconfig {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            let url = match &src.api_server {
                // As Heapster: the URL's host overrides the kubeconfig's server.
                Some(u) => {
                    cfg.cluster_url = parse_uri(u)?;
                    u.clone()
                }
                None => url::Url::parse(&cfg.cluster_url.to_string())
                    .map_err(|_| ClientError::BadUrl(cfg.cluster_url.to_string()))?,
            };
            creds.ca_der = cfg.root_cert.clone().unwrap_or_default();
            kubeconfig_kubelet_creds(&cfg.auth_info, path, &mut creds)?;
            (cfg, url)
        }
        ApiAuth::None => {
            let url = src.api_server.clone().ok_or(ClientError::NoUrl)?;
            (kube::Config::new(parse_uri(&url)?), url)
        }
    };
    if src.use_service_account {
        cfg.auth_info.token = None;
        cfg.auth_info.token_file = Some(sa_token.to_string_lossy().into_owned());
        creds.token = Some(TokenSource::file(&sa_token));
    }
    if src.insecure {
        cfg.accept_invalid_certs = true;
    }
    let client = kube::Client::try_from(cfg).map_err(|e| ClientError::Build(e.to_string()))?;
    Ok(ApiClients {
        client,
        url,
        kubelet: Arc::new(creds),
    })
}

/// Takes the kubeconfig user's token or client certificate for the kubelets too.
fn kubeconfig_kubelet_creds(
    auth: &kube::config::AuthInfo,
    kubeconfig: &Path,
    creds: &mut KubeletCredentials,
) -> Result<(), ClientError> {
    let base = kubeconfig.parent().unwrap_or(Path::new("."));
    let resolve = |p: &str| -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { base.join(p) }
    };
    let b64 = |data: &str, what: &str| -> Result<Vec<u8>, ClientError> {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| ClientError::Kubeconfig {
                path: kubeconfig.to_path_buf(),
                message: format!("{what} is not valid base64"),
            })
    };
    if let Some(token) = &auth.token {
        creds.token = Some(TokenSource::Static(Secret::new(token.expose_secret())));
    } else if let Some(file) = &auth.token_file {
        creds.token = Some(TokenSource::file(resolve(file)));
    }
    let cert = match (&auth.client_certificate_data, &auth.client_certificate) {
        (Some(data), _) => Some(b64(data, "client-certificate-data")?),
        (None, Some(path)) => Some(read(&resolve(path))?),
        _ => None,
    };
    let key = match (&auth.client_key_data, &auth.client_key) {
        (Some(data), _) => Some(b64(data.expose_secret(), "client-key-data")?),
        (None, Some(path)) => Some(read(&resolve(path))?),
        _ => None,
    };
    if let (Some(mut cert), Some(key)) = (cert, key) {
        cert.push(b'\n');
        cert.extend_from_slice(&key);
        creds.identity_pem = Some(Secret::new(String::from_utf8_lossy(&cert).into_owned()));
    }
    if auth.exec.is_some() && creds.token.is_none() && creds.identity_pem.is_none() {
        tracing::warn!(
            "the kubeconfig user authenticates with an exec plugin: the apiserver client uses it, \
             but kubelets are scraped without credentials; use nodeProxy=true to scrape through the apiserver"
        );
    }
    Ok(())
}
