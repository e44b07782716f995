//! Transport: one `reqwest` client (one connection pool) speaking InfluxDB's HTTP API.
//!
//! 1.x: `GET /ping`, InfluxQL on `POST /query`, `POST /write?db=&rp=&precision=ns` with basic
//! auth. 2.x/3.x: `POST /api/v2/write?org=&bucket=&precision=ns` with `Authorization: Token`.
//! Credentials travel only in headers, never in URLs, logs or error messages.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use url::Url;

use crate::config::InfluxConfig;
use crate::sink::delivery::retry::error_message;

/// Which write API to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    V1,
    V2,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client for InfluxDB")]
    Http(#[source] reqwest::Error),
    /// The URL cannot take a path (`mailto:`-like).
    #[error("the InfluxDB URL {0} cannot be used as a base URL")]
    NotABase(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No HTTP answer: connection refused, timeout, TLS failure (a refused certificate is
    /// named, with its fix).
    #[error("{}", unreachable(.0))]
    Transport(#[source] reqwest::Error),
    /// An answer other than the expected one.
    #[error("InfluxDB answered {status}: {message}")]
    UnexpectedStatus { status: u16, message: String },
    /// An InfluxQL statement failed.
    #[error("InfluxQL statement failed: {message}")]
    Statement { message: String },
}

/// An answer to a write.
pub struct WriteAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    user: String,
    password: String,
    token: Option<String>,
    db: String,
    rp: String,
    retention: Option<Duration>,
    write_v1: Url,
    write_v2: Url,
}

impl Client {
    pub fn new(cfg: &InfluxConfig, timeout: Duration) -> Result<Client, BuildError> {
        let mut base = cfg.url.clone();
        let _ = base.set_username("");
        let _ = base.set_password(None);
        base.set_query(None);
        base.set_fragment(None);
        if base.cannot_be_a_base() {
            return Err(BuildError::NotABase(base.to_string()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let join = |p: &str| {
            base.join(p)
                .map_err(|_| BuildError::NotABase(base.to_string()))
        };
        let mut write_v1 = join("write")?;
        write_v1
            .query_pairs_mut()
            .append_pair("db", &cfg.db)
            .append_pair("rp", &cfg.retention_policy)
            .append_pair("precision", "ns");
        let mut write_v2 = join("api/v2/write")?;
        {
            let mut q = write_v2.query_pairs_mut();
            if let Some(org) = &cfg.org {
                q.append_pair("org", org);
            }
            let bucket = cfg
                .bucket
                .clone()
                .unwrap_or_else(|| format!("{}/{}", cfg.db, cfg.retention_policy));
            q.append_pair("bucket", &bucket)
                .append_pair("precision", "ns");
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .danger_accept_invalid_certs(cfg.insecure_ssl)
            .pool_max_idle_per_host(cfg.concurrency.max(1))
            .build()
            .map_err(BuildError::Http)?;
        Ok(Client {
            http,
            base,
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            token: cfg.token.clone(),
            db: cfg.db.clone(),
            rp: cfg.retention_policy.clone(),
            retention: cfg.retention,
            write_v1,
            write_v2,
        })
    }

    /// The base URL (no credentials), for logs.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn auth(&self, req: reqwest::RequestBuilder, api: Api) -> reqwest::RequestBuilder {
        match (api, &self.token) {
            (Api::V2, Some(token)) => {
                req.header(http::header::AUTHORIZATION, format!("Token {token}"))
            }
            _ if !self.user.is_empty() || !self.password.is_empty() => {
                req.basic_auth(&self.user, Some(&self.password))
            }
            _ => req,
        }
    }

    /// `GET /ping`: which API to speak. `configured` wins; else `X-Influxdb-Version` 1.x means
    /// V1, 2.x/3.x V2; without the header (e.g. VictoriaMetrics) a token means V2.
    pub async fn detect(&self, configured: Option<u8>) -> Result<Api, ClientError> {
        let url = self.base.join("ping").map_err(|_| ClientError::Statement {
            message: "bad ping URL".into(),
        })?;
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        if !resp.status().is_success() {
            return Err(ClientError::UnexpectedStatus {
                status: resp.status().as_u16(),
                message: String::new(),
            });
        }
        let header = resp
            .headers()
            .get("x-influxdb-version")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_start_matches('v').to_owned());
        Ok(match (configured, header) {
            (Some(v), _) => api_for(v),
            (None, Some(h)) => api_for(
                h.split('.')
                    .next()
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(1),
            ),
            (None, None) if self.token.is_some() => Api::V2,
            (None, None) => Api::V1,
        })
    }

    /// Runs one InfluxQL statement via `POST /query`.
    pub async fn query(&self, q: &str) -> Result<serde_json::Value, ClientError> {
        let url = self
            .base
            .join("query")
            .map_err(|_| ClientError::Statement {
                message: "bad query URL".into(),
            })?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", q)
            .finish();
        let req = self
            .http
            .post(url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        let resp = self
            .auth(req, Api::V1)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(ClientError::Transport)?;
        if !status.is_success() {
            return Err(ClientError::UnexpectedStatus {
                status: status.as_u16(),
                message: error_message(&text),
            });
        }
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| ClientError::Statement {
                message: error_message(&text),
            })?;
        let failed = json["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|r| r["error"].as_str());
        match failed {
            Some(message) => Err(ClientError::Statement {
                message: message.to_owned(),
            }),
            None => Ok(json),
        }
    }

    /// Creates the database with its retention policy, or creates/updates the policy.
    pub async fn ensure_database(&self) -> Result<(), ClientError> {
        let (db, rp, dur) = (ident(&self.db), ident(&self.rp), duration(self.retention));
        let dbs = self.query("SHOW DATABASES").await?;
        if !series_names(&dbs).any(|n| n == self.db) {
            let q = format!("CREATE DATABASE {db} WITH DURATION {dur} REPLICATION 1 NAME {rp}");
            self.query(&q).await?;
            tracing::info!(db = %self.db, rp = %self.rp, duration = %dur, "created InfluxDB database");
            return Ok(());
        }
        let rps = self
            .query(&format!("SHOW RETENTION POLICIES ON {db}"))
            .await?;
        if !series_names(&rps).any(|n| n == self.rp) {
            let q = format!(
                "CREATE RETENTION POLICY {rp} ON {db} DURATION {dur} REPLICATION 1 DEFAULT"
            );
            self.query(&q).await?;
            tracing::info!(db = %self.db, rp = %self.rp, duration = %dur, "created retention policy");
        } else if self.retention.is_some() {
            self.query(&format!(
                "ALTER RETENTION POLICY {rp} ON {db} DURATION {dur} DEFAULT"
            ))
            .await?;
        }
        Ok(())
    }

    /// One write request; the body is sent as is (`Content-Encoding: gzip` when gzipped).
    pub async fn write(
        &self,
        api: Api,
        body: Bytes,
        gzipped: bool,
    ) -> Result<WriteAnswer, reqwest::Error> {
        let url = match api {
            Api::V1 => self.write_v1.clone(),
            Api::V2 => self.write_v2.clone(),
        };
        let mut req = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body);
        if gzipped {
            req = req.header(http::header::CONTENT_ENCODING, "gzip");
        }
        let resp = self.auth(req, api).send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Ok(WriteAnswer {
            status,
            headers,
            body,
        })
    }
}

/// "cannot reach InfluxDB", or what is wrong with its certificate and the setting that fixes it.
fn unreachable(err: &reqwest::Error) -> String {
    crate::certificate::unreachable(err, "InfluxDB")
}

fn api_for(major: u8) -> Api {
    if major >= 2 { Api::V2 } else { Api::V1 }
}

/// The first column of every row of every series (`SHOW DATABASES`, `SHOW RETENTION POLICIES`).
fn series_names(json: &serde_json::Value) -> impl Iterator<Item = &str> {
    json["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["series"].as_array().into_iter().flatten())
        .flat_map(|s| s["values"].as_array().into_iter().flatten())
        .filter_map(|row| row.get(0).and_then(|v| v.as_str()))
}

/// A double-quoted InfluxQL identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An InfluxQL duration literal: `INF`, whole hours, else seconds.
pub fn duration(d: Option<Duration>) -> String {
    match d {
        None => "INF".to_owned(),
        Some(d) if d.as_secs() == 0 => "INF".to_owned(),
        Some(d) if d.as_secs() % 3600 == 0 && d.subsec_nanos() == 0 => {
            format!("{}h", d.as_secs() / 3600)
        }
        Some(d) => format!("{}s", d.as_secs().max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn influxql_literals() {
        assert_eq!(ident("k8s"), "\"k8s\"");
        assert_eq!(ident("a\"b\\"), "\"a\\\"b\\\\\"");
        assert_eq!(duration(None), "INF");
        assert_eq!(duration(Some(Duration::from_secs(720 * 3600))), "720h");
        assert_eq!(duration(Some(Duration::from_secs(90))), "90s");
    }

    /// An https server with a self-signed certificate for 127.0.0.1 that completes handshakes
    /// and closes the connection.
    async fn self_signed_server() -> Url {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
        let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der())
            .expect("key");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .expect("tls");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });
        Url::parse(&format!("https://{addr}")).expect("url")
    }

    #[tokio::test]
    async fn a_refused_certificate_names_insecuressl() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = self_signed_server().await;
        let args = [
            "heapster".to_string(),
            format!("--sink=influxdb:{url}?user=u&pw=s3cret-pw"),
        ];
        let crate::config::Parsed::Run(config) = crate::config::parse(args, &|_| None) else {
            panic!("config");
        };
        let cfg = config
            .sinks
            .iter()
            .find_map(|s| match s {
                crate::config::SinkConfig::InfluxDb(c) => Some(c),
                _ => None,
            })
            .expect("influxdb sink");
        let client = Client::new(cfg, Duration::from_secs(5)).expect("client");
        let err = client.detect(Some(1)).await.expect_err("refused");
        let message = err.to_string();
        assert!(
            message.contains("InfluxDB's certificate is not signed by a CA this host trusts")
                && message.contains("set insecuressl=true"),
            "{message}"
        );
        assert!(!message.contains("s3cret-pw"), "{message}");
    }
}
