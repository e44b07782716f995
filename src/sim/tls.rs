//! The simulator's PKI: a generated CA, serving certificates for the apiserver and each kubelet,
//! a client certificate, and rustls server configurations (always the ring provider).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use super::SimError;

/// The CA and everything issued from it.
pub(crate) struct Pki {
    provider: Arc<CryptoProvider>,
    issuer: Issuer<'static, KeyPair>,
    /// A CA the collector is never told about (for [`KubeletCert::OtherCa`]).
    other_issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
    /// One key shared by every serving certificate (fast to issue thousands).
    serving_key: KeyPair,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// Present when clients must show a certificate.
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pki { .. }")
    }
}

fn cert_err(e: rcgen::Error) -> SimError {
    SimError::Certificate(e)
}

impl Pki {
    /// A fresh CA; with `require_client_cert`, servers demand a certificate it signed.
    pub fn new(require_client_cert: bool) -> Result<Pki, SimError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("heapster-sim-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(cert_err)?;
        let ca_cert = params.self_signed(&ca_key).map_err(cert_err)?;
        let ca_der = ca_cert.der().clone();
        let mut other_params = params.clone();
        other_params.distinguished_name = dn("heapster-sim-node-ca");
        let other_issuer = Issuer::new(other_params, KeyPair::generate().map_err(cert_err)?);
        let issuer = Issuer::new(params, ca_key);

        let client_key = KeyPair::generate().map_err(cert_err)?;
        let mut client = CertificateParams::default();
        client.distinguished_name = dn("heapster");
        client
            .distinguished_name
            .push(DnType::OrganizationName, "system:monitoring");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client.signed_by(&client_key, &issuer).map_err(cert_err)?;

        let client_verifier = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca_der).map_err(SimError::Tls)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| SimError::Verifier(e.to_string()))?;
            Some(verifier)
        } else {
            None
        };

        Ok(Pki {
            provider,
            ca_pem: ca_cert.pem(),
            issuer,
            other_issuer,
            serving_key: KeyPair::generate().map_err(cert_err)?,
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            client_verifier,
        })
    }

    /// The apiserver's configuration: SANs 127.0.0.1, localhost and the in-cluster names.
    pub fn apiserver_config(&self) -> Result<Arc<ServerConfig>, SimError> {
        let sans = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            dns("localhost")?,
            dns("kubernetes")?,
            dns("kubernetes.default")?,
            dns("kubernetes.default.svc")?,
        ];
        self.server_config("kube-apiserver", sans)
    }

    /// A kubelet's configuration: a DNS SAN of the node name, and the IP SAN if asked.
    pub fn kubelet_config(
        &self,
        node_name: &str,
        ip: Option<Ipv4Addr>,
    ) -> Result<Arc<ServerConfig>, SimError> {
        self.kubelet_config_with(node_name, ip, KubeletCert::ClusterCa)
    }

    /// A kubelet's configuration with a certificate of the given kind.
    pub fn kubelet_config_with(
        &self,
        node_name: &str,
        ip: Option<Ipv4Addr>,
        kind: KubeletCert,
    ) -> Result<Arc<ServerConfig>, SimError> {
        let mut sans = vec![dns(node_name)?];
        sans.extend(ip.map(|ip| SanType::IpAddress(IpAddr::V4(ip))));
        let mut params = leaf_params(node_name, sans);
        let cert = match kind {
            KubeletCert::ClusterCa => params.signed_by(&self.serving_key, &self.issuer),
            KubeletCert::SelfSigned => {
                // What a kubelet makes for itself (and `openssl req -x509`): CA:TRUE, no issuer.
                params.distinguished_name = dn(&format!("{node_name}@self-signed"));
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                    KeyUsagePurpose::KeyCertSign,
                ];
                params.self_signed(&self.serving_key)
            }
            KubeletCert::OtherCa => params.signed_by(&self.serving_key, &self.other_issuer),
            KubeletCert::Expired => {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
                params.signed_by(&self.serving_key, &self.issuer)
            }
            KubeletCert::NotYetValid => {
                params.not_before = rcgen::date_time_ymd(2090, 1, 1);
                params.not_after = rcgen::date_time_ymd(2091, 1, 1);
                params.signed_by(&self.serving_key, &self.issuer)
            }
        }
        .map_err(cert_err)?;
        self.config_for(cert.der().clone())
    }

    fn server_config(&self, cn: &str, sans: Vec<SanType>) -> Result<Arc<ServerConfig>, SimError> {
        let cert = leaf_params(cn, sans)
            .signed_by(&self.serving_key, &self.issuer)
            .map_err(cert_err)?;
        self.config_for(cert.der().clone())
    }

    /// A server configuration serving `cert` (for the shared serving key).
    fn config_for(&self, cert: CertificateDer<'static>) -> Result<Arc<ServerConfig>, SimError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.serving_key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![cert];
        let builder = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(SimError::Tls)?;
        let builder = match &self.client_verifier {
            Some(v) => builder.with_client_cert_verifier(Arc::clone(v)),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(SimError::Tls)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// How a simulated kubelet's serving certificate is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KubeletCert {
    /// Signed by the cluster CA (what `serverTLSBootstrap` gives).
    ClusterCa,
    /// Self-signed, marked as a CA: what kubelets make for themselves by default.
    SelfSigned,
    /// A leaf signed by a CA the collector does not know (a per-node CA nobody distributes).
    OtherCa,
    /// Signed by the cluster CA, valid 2020 to 2021.
    Expired,
    /// Signed by the cluster CA, valid from 2090.
    NotYetValid,
}

/// A serving certificate's parameters: subject CN, SANs, server auth.
fn leaf_params(cn: &str, sans: Vec<SanType>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn dns(name: &str) -> Result<SanType, SimError> {
    Ok(SanType::DnsName(
        name.to_owned().try_into().map_err(cert_err)?,
    ))
}

/// Standard base64 with padding (for kubeconfig `*-data` fields).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn pki_builds_configs() {
        let pki = Pki::new(true).expect("pki");
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        pki.apiserver_config().expect("apiserver");
        pki.kubelet_config("sim-node-0000", None).expect("kubelet");
    }
}
