//! `--sharding` and the flags that go with it: who this replica is, where its peers reach it,
//! how many replicas scrape each node. (`--peer_timeout` and `--peer_ca_file`, which the APIs
//! use too, are [`super::PeerConfig`].)

use url::Url;

/// The sharding flags as given.
#[derive(Debug, Default)]
pub(super) struct RawSharding<'a> {
    pub sharding: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub identity: Option<&'a str>,
    pub address: Option<&'a str>,
    pub replication: Option<&'a str>,
}

/// Sharded, replicated collection (`--sharding=true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sharding {
    /// Where the replicas' Leases live (`--sharding_namespace`).
    pub namespace: String,
    /// This replica's name in the membership (`--sharding_identity`).
    pub identity: String,
    /// Where peers reach this replica's APIs (`--sharding_address`).
    pub address: Url,
    /// How many replicas scrape each node (`--replication`, 1 to 3).
    pub replication: usize,
}

/// The most replicas that scrape one node.
pub const MAX_REPLICATION: usize = 3;

/// Where this replica listens, for the default `--sharding_address`.
pub(super) struct Ports {
    pub heapster_port: u16,
    pub secure_port: u16,
}

/// Validates the sharding flags: `Ok(None)` when sharding is off (the other flags are then
/// still checked, so a typo is not silently ignored), or every `(flag, problem)`.
pub(super) fn validate(
    raw: &RawSharding<'_>,
    ports: &Ports,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Sharding>, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    let on = match raw.sharding {
        None => false,
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => true,
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => false,
        Some(other) => {
            problems.push((
                "--sharding",
                format!("{other:?} is not a boolean (true or false)"),
            ));
            false
        }
    };
    let replication = match raw.replication {
        None => 1,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_REPLICATION).contains(&n) => n,
            _ => {
                problems.push((
                    "--replication",
                    format!("{text:?} is not a whole number from 1 to {MAX_REPLICATION}"),
                ));
                1
            }
        },
    };
    let non_empty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let namespace = non_empty(raw.namespace.map(str::to_owned))
        .or_else(|| non_empty(env("POD_NAMESPACE")))
        .unwrap_or_else(|| "kube-system".to_owned());
    if !is_dns_label(&namespace) {
        problems.push((
            "--sharding_namespace",
            format!("{namespace:?} is not a namespace name (lowercase letters, digits, '-')"),
        ));
    }
    let identity = non_empty(raw.identity.map(str::to_owned))
        .or_else(|| non_empty(env("POD_NAME")))
        .or_else(|| non_empty(env("HOSTNAME")))
        .or_else(|| non_empty(std::fs::read_to_string("/proc/sys/kernel/hostname").ok()));
    let identity = match identity {
        Some(id) if is_lease_suffix(&id) => id,
        Some(id) => {
            problems.push((
                "--sharding_identity",
                format!("{id:?} cannot name a Lease (lowercase letters, digits, '-', '.')"),
            ));
            String::new()
        }
        None if on => {
            problems.push((
                "--sharding_identity",
                "no identity: set it, or $POD_NAME from the downward API".to_owned(),
            ));
            String::new()
        }
        None => String::new(),
    };
    let address = match raw.address {
        Some(text) => match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                problems.push((
                    "--sharding_address",
                    format!("{text:?} is not an http(s) URL with a host"),
                ));
                None
            }
        },
        None => default_address(ports, env),
    };
    if on && address.is_none() && raw.address.is_none() {
        problems.push((
            "--sharding_address",
            "cannot be derived: set it, or $POD_IP from the downward API".to_owned(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(match (on, address) {
        (true, Some(address)) => Some(Sharding {
            namespace,
            identity,
            address,
            replication,
        }),
        _ => None,
    })
}

/// `https://$POD_IP:<secure port>` when the secure port is on, else
/// `http://$POD_IP:<heapster port>`.
fn default_address(ports: &Ports, env: &dyn Fn(&str) -> Option<String>) -> Option<Url> {
    let ip: std::net::IpAddr = env("POD_IP")?.trim().parse().ok()?;
    let host = match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let text = if ports.secure_port != 0 {
        format!("https://{host}:{}", ports.secure_port)
    } else {
        format!("http://{host}:{}", ports.heapster_port)
    };
    Url::parse(&text).ok()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `heapster-replica-<s>` is a valid object name (a DNS subdomain).
fn is_lease_suffix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253 - "heapster-replica-".len()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: Ports = Ports {
        heapster_port: 8082,
        secure_port: 0,
    };

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn off_by_default_and_defaults_from_the_downward_api() {
        let raw = RawSharding::default();
        assert_eq!(validate(&raw, &PORTS, &env(&[])), Ok(None));
        let raw = RawSharding {
            sharding: Some("true"),
            ..RawSharding::default()
        };
        let vars = &[
            ("POD_NAME", "heapster-1"),
            ("POD_NAMESPACE", "monitoring"),
            ("POD_IP", "10.0.0.7"),
        ];
        let s = validate(&raw, &PORTS, &env(vars))
            .expect("valid")
            .expect("on");
        assert_eq!(s.identity, "heapster-1");
        assert_eq!(s.namespace, "monitoring");
        assert_eq!(s.address.as_str(), "http://10.0.0.7:8082/");
        assert_eq!(s.replication, 1);
        let secure = Ports {
            secure_port: 8443,
            ..PORTS
        };
        let s = validate(&raw, &secure, &env(vars))
            .expect("valid")
            .expect("on");
        assert_eq!(s.address.as_str(), "https://10.0.0.7:8443/");
    }

    #[test]
    fn bad_values_name_their_flag() {
        let raw = RawSharding {
            sharding: Some("yes"),
            replication: Some("4"),
            address: Some("ftp://x"),
            namespace: Some("Bad_NS"),
            identity: Some("UPPER"),
        };
        let flags: Vec<_> = validate(&raw, &PORTS, &env(&[]))
            .expect_err("invalid")
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            flags,
            [
                "--sharding",
                "--replication",
                "--sharding_namespace",
                "--sharding_identity",
                "--sharding_address"
            ]
        );
        let raw = RawSharding {
            sharding: Some("true"),
            identity: Some("a"),
            ..RawSharding::default()
        };
        let err = validate(&raw, &PORTS, &env(&[])).expect_err("no address");
        assert_eq!(err[0].0, "--sharding_address");
    }
}
