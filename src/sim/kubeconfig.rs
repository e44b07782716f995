//! Renders a kubeconfig for the simulated cluster (one cluster, user and context).

use std::fmt::Write as _;

use url::Url;

use super::tls::base64;

/// How the kubeconfig's user authenticates.
pub(crate) enum User<'a> {
    None,
    Token(String),
    Cert { cert_pem: &'a str, key_pem: &'a str },
}

/// A YAML-safe double-quoted scalar (JSON strings are valid YAML).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

pub(crate) fn render(server: &Url, ca_pem: Option<&str>, user: &User<'_>) -> String {
    let mut out =
        String::from("apiVersion: v1\nkind: Config\nclusters:\n- name: heapster-sim\n  cluster:\n");
    let _ = writeln!(
        out,
        "    server: {}",
        quoted(server.as_str().trim_end_matches('/'))
    );
    if let Some(ca) = ca_pem {
        let _ = writeln!(
            out,
            "    certificate-authority-data: {}",
            base64(ca.as_bytes())
        );
    }
    out.push_str("users:\n- name: heapster-sim\n  user:");
    match user {
        User::None => out.push_str(" {}\n"),
        User::Token(token) => {
            let _ = write!(out, "\n    token: {}\n", quoted(token));
        }
        User::Cert { cert_pem, key_pem } => {
            let _ = write!(
                out,
                "\n    client-certificate-data: {}\n    client-key-data: {}\n",
                base64(cert_pem.as_bytes()),
                base64(key_pem.as_bytes())
            );
        }
    }
    out.push_str(concat!(
        "contexts:\n- name: heapster-sim\n  context:\n    cluster: heapster-sim\n",
        "    user: heapster-sim\ncurrent-context: heapster-sim\npreferences: {}\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_kubeconfig_has_only_the_server() {
        let url = Url::parse("http://127.0.0.1:8080").expect("url");
        let yaml = render(&url, None, &User::None);
        assert!(yaml.contains("server: \"http://127.0.0.1:8080\""));
        assert!(yaml.contains("current-context: heapster-sim"));
        assert!(!yaml.contains("token"));
        assert!(!yaml.contains("certificate-authority-data"));
    }
}
