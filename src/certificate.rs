//! Why a server's certificate was refused, found among an error's causes, so that each client
//! (kubelets, the apiserver, InfluxDB) can say what is wrong and which setting fixes it.
//!
//! The cause is the `rustls::Error` somewhere in the chain (under an `io::Error`, a hyper or a
//! reqwest error); it is matched by value, never by its text. [`AnyServerCert`] is the verifier
//! of the clients told to accept any certificate (`kubeletInsecure=true`, a sink's
//! `insecuressl=true`).

use std::error::Error as StdError;
use std::fmt;

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// A server certificate problem a cluster operator can fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertProblem {
    /// Not signed by a CA this client trusts: a self-signed certificate (`self_signed`: one
    /// marked as a CA, as `openssl req -x509` and kubelets make), or one from an unknown CA.
    Untrusted { self_signed: bool },
    /// The address or name dialled is not among the certificate's names.
    WrongName { tried: String, names: Vec<String> },
    /// Past its end date (times in seconds since the epoch, when known).
    Expired {
        now: Option<u64>,
        not_after: Option<u64>,
    },
    /// Before its start date.
    NotYetValid {
        now: Option<u64>,
        not_before: Option<u64>,
    },
}

/// What a client that could not reach `who` (`InfluxDB`) says: what is wrong with the server's
/// certificate and the sink option that fixes it, or `cannot reach {who}` for any other failure.
pub fn unreachable(err: &(dyn StdError + 'static), who: &str) -> String {
    let Some(problem) = CertProblem::find(err) else {
        return format!("cannot reach {who}");
    };
    let cause = match &problem {
        CertProblem::Untrusted { .. } => {
            "is not signed by a CA this host trusts (self-signed?)".to_string()
        }
        CertProblem::WrongName { tried, names } => format!(
            "does not hold the name tried, {tried} (it holds {})",
            CertProblem::names(names)
        ),
        CertProblem::Expired { .. } | CertProblem::NotYetValid { .. } => problem.dates(),
    };
    format!(
        "{who}'s certificate {cause}: set insecuressl=true in --sink, or serve a certificate \
         this host trusts"
    )
}

impl CertProblem {
    /// The certificate problem among `err`'s causes, if any.
    pub fn find(err: &(dyn StdError + 'static)) -> Option<CertProblem> {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return CertProblem::from_rustls(tls);
            }
            // An io::Error's `source()` skips the error it carries: look at that one itself.
            if let Some(inner) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                return CertProblem::find(inner);
            }
            next = e.source();
        }
        None
    }

    fn from_rustls(err: &rustls::Error) -> Option<CertProblem> {
        let rustls::Error::InvalidCertificate(cert) = err else {
            return None;
        };
        Some(match cert {
            CertificateError::UnknownIssuer => CertProblem::Untrusted { self_signed: false },
            CertificateError::Other(other)
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                CertProblem::Untrusted { self_signed: true }
            }
            CertificateError::NotValidForName => CertProblem::WrongName {
                tried: "(not reported)".to_string(),
                names: Vec::new(),
            },
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => CertProblem::WrongName {
                tried: expected.to_str().into_owned(),
                names: presented.iter().map(|n| san(n)).collect(),
            },
            CertificateError::Expired => CertProblem::Expired {
                now: None,
                not_after: None,
            },
            CertificateError::ExpiredContext { time, not_after } => CertProblem::Expired {
                now: Some(time.as_secs()),
                not_after: Some(not_after.as_secs()),
            },
            CertificateError::NotValidYet => CertProblem::NotYetValid {
                now: None,
                not_before: None,
            },
            CertificateError::NotValidYetContext { time, not_before } => CertProblem::NotYetValid {
                now: Some(time.as_secs()),
                not_before: Some(not_before.as_secs()),
            },
            _ => return None,
        })
    }

    /// The `reason` label of a failure counter.
    pub fn reason(&self) -> &'static str {
        match self {
            CertProblem::Untrusted { .. } => "certificate_untrusted",
            CertProblem::WrongName { .. } => "certificate_name",
            CertProblem::Expired { .. } => "certificate_expired",
            CertProblem::NotYetValid { .. } => "certificate_not_yet_valid",
        }
    }

    /// "the names X, Y" of a [`CertProblem::WrongName`] certificate.
    pub fn names(names: &[String]) -> String {
        match names {
            [] => "no name reported".to_string(),
            names => names.join(", "),
        }
    }

    /// "expired at T (now U)" or "is not valid before T (now U)": the dates in words.
    pub fn dates(&self) -> String {
        let at = |secs: &Option<u64>| match secs {
            Some(s) => Timestamp(*s).to_string(),
            None => "an unknown time".to_string(),
        };
        match self {
            CertProblem::Expired { now, not_after } => {
                format!("expired at {} (now {})", at(not_after), at(now))
            }
            CertProblem::NotYetValid { now, not_before } => {
                format!("is not valid before {} (now {})", at(not_before), at(now))
            }
            _ => String::new(),
        }
    }
}

/// A name as webpki presents it (`DnsName("n1")`, `IpAddress(10.0.0.1)`), without the wrapper.
fn san(presented: &str) -> String {
    let inner = presented
        .strip_prefix("DnsName(\"")
        .and_then(|s| s.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|s| s.strip_suffix(')'))
        });
    inner.unwrap_or(presented).to_string()
}

/// Seconds since the epoch, shown as an RFC 3339 UTC time.
struct Timestamp(u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match i64::try_from(self.0)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
        {
            Some(t) => write!(f, "{t}"),
            None => write!(f, "{}s after the epoch", self.0),
        }
    }
}

/// An error and its causes, joined by ": " (for logs: `error = %Chain(&e)`).
pub struct Chain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

/// Accepts any server certificate (`kubeletInsecure=true`), but still checks that the server
/// holds the key of the certificate it sent.
#[derive(Debug)]
pub(crate) struct AnyServerCert(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{ServerName, UnixTime};
    use std::sync::Arc;
    use std::time::Duration;

    fn io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn problems_are_found_under_io_errors() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                Some(CertProblem::Untrusted { self_signed: false }),
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                    Arc::new(webpki::Error::CaUsedAsEndEntity),
                ))),
                Some(CertProblem::Untrusted { self_signed: true }),
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from("10.0.0.1").expect("ip").to_owned(),
                    presented: vec!["DnsName(\"n1\")".into(), "IpAddress(10.0.0.2)".into()],
                }),
                Some(CertProblem::WrongName {
                    tried: "10.0.0.1".into(),
                    names: vec!["n1".into(), "10.0.0.2".into()],
                }),
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                    time: UnixTime::since_unix_epoch(Duration::from_secs(86_400)),
                    not_after: UnixTime::since_unix_epoch(Duration::from_secs(0)),
                }),
                Some(CertProblem::Expired {
                    now: Some(86_400),
                    not_after: Some(0),
                }),
            ),
            (rustls::Error::DecryptError, None),
        ];
        for (err, want) in cases {
            assert_eq!(CertProblem::find(&io(err)), want);
        }
        assert_eq!(
            CertProblem::Expired {
                now: Some(86_400),
                not_after: Some(0)
            }
            .dates(),
            "expired at 1970-01-01T00:00:00Z (now 1970-01-02T00:00:00Z)"
        );
    }

    #[test]
    fn chains_join_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&e).to_string(), "outer: inner");
    }
}
