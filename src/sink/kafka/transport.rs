//! The Kafka sink's side of the shared delivery layer: one `rskafka` client per sink, a
//! partition client per partition of the topic, records produced with `acks` from all in-sync
//! replicas. Keyed messages go to the partition Kafka's own producers would pick (murmur2 of
//! the key), so one node's points stay in order on one partition; keyless ones are spread round
//! robin. The password travels only in the SASL exchange, never in logs or errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::chrono::{TimeZone, Utc};
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use tokio::sync::RwLock;

use super::encode::{self, Message};
use crate::config::{KafkaCompression, KafkaConfig};
use crate::sink::delivery::{Body, SetupError, Transport, Verdict};

/// Why the sink could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {option} {path}")]
    Read {
        option: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{option} {path} holds no usable PEM {what}")]
    Pem {
        option: &'static str,
        path: String,
        what: &'static str,
    },
    #[error("TLS settings refused (the client certificate and key may not go together)")]
    Rustls(#[source] rustls::Error),
}

pub struct KafkaTransport {
    brokers: Vec<String>,
    topic: String,
    compression: Compression,
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<(String, String)>,
    timeout: Duration,
    connected: RwLock<Option<Arc<Connected>>>,
    next: AtomicUsize,
}

struct Connected {
    /// Kept so the partition clients' broker connections stay shared.
    _client: Client,
    partitions: Vec<PartitionClient>,
}

impl KafkaTransport {
    pub fn new(
        cfg: &KafkaConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<KafkaTransport, TlsError> {
        let tls = if cfg.tls() {
            Some(Arc::new(tls_config(cfg)?))
        } else {
            None
        };
        Ok(KafkaTransport {
            brokers: cfg.brokers.clone(),
            topic: topic.to_string(),
            compression: match cfg.compression {
                KafkaCompression::None => Compression::NoCompression,
                KafkaCompression::Gzip => Compression::Gzip,
                KafkaCompression::Snappy => Compression::Snappy,
                KafkaCompression::Lz4 => Compression::Lz4,
            },
            tls,
            sasl: cfg.user.clone().zip(cfg.password.clone()),
            timeout,
            connected: RwLock::new(None),
            next: AtomicUsize::new(0),
        })
    }

    /// The client's own retries end within a request timeout: the delivery layer owns retries.
    fn backoff(&self) -> BackoffConfig {
        BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.,
            deadline: Some(self.timeout),
        }
    }

    async fn connect(&self) -> Result<Connected, SetupError> {
        let mut builder = ClientBuilder::new(self.brokers.clone())
            .client_id(concat!("heapster-rs/", env!("CARGO_PKG_VERSION")))
            .backoff_config(self.backoff());
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(Arc::clone(tls));
        }
        if let Some((user, password)) = &self.sasl {
            builder = builder.sasl_config(SaslConfig::Plain(Credentials::new(
                user.clone(),
                password.clone(),
            )));
        }
        let client = tokio::time::timeout(self.timeout, builder.build())
            .await
            .map_err(|_| "timed out connecting to the brokers")??;
        let topics = client.list_topics().await?;
        let Some(topic) = topics.iter().find(|t| t.name == self.topic) else {
            return Err(format!(
                "topic {:?} does not exist on the brokers (create it, e.g. kafka-topics.sh \
                 --create --topic {})",
                self.topic, self.topic
            )
            .into());
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in 0..i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX) {
            partitions.push(
                client
                    .partition_client(self.topic.clone(), p, UnknownTopicHandling::Retry)
                    .await?,
            );
        }
        if partitions.is_empty() {
            return Err(format!("topic {:?} has no partitions", self.topic).into());
        }
        Ok(Connected {
            _client: client,
            partitions,
        })
    }

    fn partition_of(&self, m: &Message<'_>, n: usize, rr: usize) -> usize {
        match m.key {
            Some(k) => (murmur2(k) & 0x7fff_ffff) as usize % n,
            None => rr % n,
        }
    }
}

impl Transport for KafkaTransport {
    fn label(&self) -> &'static str {
        "Kafka"
    }

    fn target(&self) -> String {
        format!("{} (topic {})", self.brokers.join(","), self.topic)
    }

    async fn setup(&self) -> Result<(), SetupError> {
        let connected = self.connect().await?;
        *self.connected.write().await = Some(Arc::new(connected));
        Ok(())
    }

    async fn send(&self, body: &Body) -> Verdict {
        let Some(connected) = self.connected.read().await.clone() else {
            return Verdict::Setup;
        };
        let Some(messages) = encode::records(&body.bytes) else {
            return Verdict::Rejected {
                status: 0,
                message: "malformed body".into(),
            };
        };
        let n = connected.partitions.len();
        let rr = self.next.fetch_add(1, Ordering::Relaxed);
        let mut per_partition: Vec<Vec<Record>> = vec![Vec::new(); n];
        for m in &messages {
            per_partition[self.partition_of(m, n, rr)].push(Record {
                key: m.key.map(<[u8]>::to_vec),
                value: Some(m.value.to_vec()),
                headers: Default::default(),
                timestamp: Utc
                    .timestamp_millis_opt(m.timestamp_ms)
                    .single()
                    .unwrap_or_default(),
            });
        }
        let sends = (connected.partitions.iter().zip(per_partition))
            .filter(|(_, records)| !records.is_empty())
            .map(|(p, records)| p.produce(records, self.compression));
        let answers = tokio::time::timeout(self.timeout, futures::future::join_all(sends)).await;
        let Ok(answers) = answers else {
            return Verdict::Retry { after: None };
        };
        for answer in answers {
            match answer {
                Ok(_) => {}
                Err(KafkaError::ServerError {
                    protocol_error: ProtocolError::MessageTooLarge,
                    ..
                }) => return Verdict::TooLarge,
                Err(KafkaError::ServerError {
                    protocol_error:
                        e @ (ProtocolError::TopicAuthorizationFailed
                        | ProtocolError::ClusterAuthorizationFailed
                        | ProtocolError::SaslAuthenticationFailed),
                    ..
                }) => {
                    return Verdict::Unauthorized {
                        status: 0,
                        message: format!("{e:?}"),
                    };
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Kafka produce failed, will retry");
                    // Reconnect: the leaders or the partitions may have changed.
                    *self.connected.write().await = None;
                    return Verdict::Setup;
                }
            }
        }
        Verdict::Written
    }

    fn split(&self, body: &Body) -> Option<(Body, Body)> {
        encode::split(body)
    }

    fn auth_fix(&self) -> &'static str {
        "check the sink's user and password, and that they may write to the topic"
    }
}

/// Kafka's default partitioner hash (murmur2, seed 0x9747b28c), as the Java client computes it.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// rustls settings from `cacert`, `cert` + `key` and `insecuressl`.
fn tls_config(cfg: &KafkaConfig) -> Result<rustls::ClientConfig, TlsError> {
    let read = |option: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            option,
            path: path.display().to_string(),
            source,
        })
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?;
    let builder = if cfg.insecure_ssl {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::certificate::AnyServerCert(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &cfg.ca_cert {
            Some(path) => {
                let pem = read("cacert", path)?;
                let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
                    .filter_map(Result::ok)
                    .collect();
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(TlsError::Pem {
                        option: "cacert",
                        path: path.display().to_string(),
                        what: "certificate",
                    });
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&cfg.cert, &cfg.key) {
        (Some(cert), Some(key)) => {
            let pem = read("cert", cert)?;
            let chain: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
                .filter_map(Result::ok)
                .collect();
            if chain.is_empty() {
                return Err(TlsError::Pem {
                    option: "cert",
                    path: cert.display().to_string(),
                    what: "certificate",
                });
            }
            let pem = read("key", key)?;
            let Some(private) = rustls_pemfile::private_key(&mut &pem[..]).ok().flatten() else {
                return Err(TlsError::Pem {
                    option: "key",
                    path: key.display().to_string(),
                    what: "private key",
                });
            };
            builder
                .with_client_auth_cert(chain, private)
                .map_err(TlsError::Rustls)
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::murmur2;

    /// Values of `org.apache.kafka.common.utils.Utils.murmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        assert_eq!(murmur2(b"21") as i32, -973_932_308);
        assert_eq!(murmur2(b"foobar") as i32, -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985_981_536);
        assert_eq!(
            murmur2(b"a-little-bit-longer-string") as i32,
            -1_486_304_829
        );
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58_897_971
        );
        assert_eq!(murmur2(b"abc") as i32, 479_470_107);
    }
}
