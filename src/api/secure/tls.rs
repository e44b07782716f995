//! TLS of the secure port: the serving certificate (files or a self-signed one made at start)
//! and, with `--requestheader_client_ca_file`, verification of client certificates (optional:
//! bearer tokens need none; a certificate from another CA fails the handshake).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::certificate::CertProblem;

use crate::config::SecureServing;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    #[error("no private key in {0}")]
    NoKey(PathBuf),
    #[error("generating a self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut &pem[..])
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoKey(path.to_path_buf()))
}

/// A self-signed serving certificate for `localhost`, `127.0.0.1` and the service names.
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let names = [
        "localhost",
        "127.0.0.1",
        "heapster",
        "heapster.kube-system",
        "heapster.kube-system.svc",
    ]
    .map(String::from)
    .to_vec();
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    Ok((vec![ck.cert.der().clone()], key))
}

/// The rustls server configuration (ring provider, HTTP/1.1).
pub fn server_config(cfg: &SecureServing) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key) = match (&cfg.cert_file, &cfg.key_file) {
        (Some(c), Some(k)) => (certs(c)?, key(k)?),
        _ => {
            tracing::info!("secure port: no --tls_cert_file, using a self-signed certificate");
            self_signed()?
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &cfg.client_ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(path)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError::Config(format!("{}: {e}", path.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(Arc::new(LoggedClientCerts::new(verifier)))
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The subject CN of a (verified) client certificate.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(String::from)
}

/// Distinct refused certificates logged at most (then the set starts over).
const REFUSALS_LOGGED: usize = 256;

/// Client certificate verification that logs each refused certificate once, by subject and
/// reason: the client sees only a TLS alert, and the front proxy's log rarely says more.
#[derive(Debug)]
struct LoggedClientCerts {
    inner: Arc<dyn ClientCertVerifier>,
    logged: Mutex<HashSet<(String, String)>>,
}

impl LoggedClientCerts {
    fn new(inner: Arc<dyn ClientCertVerifier>) -> LoggedClientCerts {
        LoggedClientCerts {
            inner,
            logged: Mutex::new(HashSet::new()),
        }
    }

    fn refused(&self, cert: &CertificateDer<'_>, err: &rustls::Error) {
        let (subject, reason) = refusal(cert, err);
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() >= REFUSALS_LOGGED {
            logged.clear();
        }
        if logged.insert((subject.clone(), reason.clone())) {
            tracing::warn!(%subject, "secure port: client certificate refused: {reason} (logged once per certificate subject and reason)");
        }
    }
}

/// The subject of a refused client certificate and why it was refused, in words.
fn refusal(cert: &CertificateDer<'_>, err: &rustls::Error) -> (String, String) {
    let parsed = x509_parser::parse_x509_certificate(cert.as_ref()).ok();
    let subject = parsed.as_ref().map_or_else(
        || "(unparsable)".to_string(),
        |(_, c)| c.subject().to_string(),
    );
    let v1 = parsed
        .as_ref()
        .is_some_and(|(_, c)| c.version() == x509_parser::x509::X509Version::V1);
    let reason = match (CertProblem::find(err), err) {
        _ if v1 => "it is an X.509 version 1 certificate (as `openssl x509 -req` makes without \
             -extfile), which rustls does not accept: re-issue it as version 3, e.g. with \
             `-extfile` giving `extendedKeyUsage=clientAuth`"
            .to_string(),
        (Some(CertProblem::Untrusted { .. }), _) => {
            "it is not signed by the CA of --requestheader_client_ca_file".to_string()
        }
        (Some(problem @ (CertProblem::Expired { .. } | CertProblem::NotYetValid { .. })), _) => {
            format!("it {}", problem.dates())
        }
        (_, err) => err.to_string(),
    };
    (subject, reason)
}

impl ClientCertVerifier for LoggedClientCerts {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| self.refused(end_entity, e))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A CA (rcgen) and, from `openssl x509 -req` without `-extfile`, an X.509 version 1 client
    /// certificate it signed; `None` when openssl is not installed.
    fn v1_client_cert(dir: &Path) -> Option<(String, CertificateDer<'static>)> {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "front-proxy-ca");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = params.self_signed(&ca_key).expect("ca");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let (ca_crt, ca_pem_key) = (
            write("ca.crt", &ca.pem()),
            write("ca.key", &ca_key.serialize_pem()),
        );
        let key = write(
            "client.key",
            &rcgen::KeyPair::generate().expect("key").serialize_pem(),
        );
        let (csr, crt) = (dir.join("client.csr"), dir.join("client.crt"));
        let ok = |args: &[&std::ffi::OsStr]| {
            Command::new("openssl")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let csr_made = ok(&[
            "req".as_ref(),
            "-new".as_ref(),
            "-key".as_ref(),
            key.as_os_str(),
            "-subj".as_ref(),
            "/O=system:masters/CN=front-proxy-client".as_ref(),
            "-out".as_ref(),
            csr.as_os_str(),
        ]);
        let signed = csr_made
            && ok(&[
                "x509".as_ref(),
                "-req".as_ref(),
                "-in".as_ref(),
                csr.as_os_str(),
                "-CA".as_ref(),
                ca_crt.as_os_str(),
                "-CAkey".as_ref(),
                ca_pem_key.as_os_str(),
                "-CAcreateserial".as_ref(),
                "-days".as_ref(),
                "1".as_ref(),
                "-out".as_ref(),
                crt.as_os_str(),
            ]);
        if !signed {
            return None;
        }
        let cert = certs(&crt).ok()?.into_iter().next()?;
        Some((ca.pem(), cert))
    }

    #[test]
    fn a_version_1_client_certificate_is_refused_with_its_subject_and_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Some((ca_pem, cert)) = v1_client_cert(dir.path()) else {
            // CI installs openssl (`.ci/run`) and sets this: there a missing one fails.
            assert!(
                std::env::var("HEAPSTER_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "openssl is not available and HEAPSTER_REQUIRE_SERVERS=1"
            );
            eprintln!("openssl not available: skipped");
            return;
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(c.expect("pem")).expect("root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier");
        let verifier = LoggedClientCerts::new(inner);
        for _ in 0..2 {
            let err = verifier
                .verify_client_cert(&cert, &[], UnixTime::now())
                .expect_err("refused");
            let (subject, reason) = refusal(&cert, &err);
            assert!(subject.contains("CN=front-proxy-client"), "{subject}");
            assert!(reason.contains("X.509 version 1"), "{reason}");
            assert!(reason.contains("-extfile"), "{reason}");
        }
        // Logged once.
        assert_eq!(verifier.logged.lock().expect("lock").len(), 1);
        // A certificate from another CA: the reason names the flag.
        let other = rcgen::generate_simple_self_signed(vec!["x".to_string()]).expect("cert");
        let err = verifier
            .verify_client_cert(other.cert.der(), &[], UnixTime::now())
            .expect_err("refused");
        let (_, reason) = refusal(other.cert.der(), &err);
        assert!(
            reason.contains("--requestheader_client_ca_file"),
            "{reason}"
        );
    }
}
