//! Label selectors (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and the
//! `metadata.name` / `metadata.namespace` field selectors, with bounded input.

use std::sync::Arc;

/// Longest selector accepted, most requirements and most values in one set.
pub const MAX_LEN: usize = 4096;
const MAX_REQUIREMENTS: usize = 64;
const MAX_VALUES: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// One `key op values` requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// Why a selector was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("selector longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("more than {MAX_REQUIREMENTS} requirements or {MAX_VALUES} values")]
    TooMany,
    #[error("invalid label selector {0:?}")]
    Invalid(String),
    #[error("unsupported field selector {0:?} (metadata.name and metadata.namespace only)")]
    Field(String),
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Splits at commas outside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, SelectorError> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(SelectorError::Invalid(s.into()));
        }
    }
    if depth != 0 {
        return Err(SelectorError::Invalid(s.into()));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn set_values(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Invalid(whole.into()))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    if values.len() > MAX_VALUES {
        return Err(SelectorError::TooMany);
    }
    if values.iter().any(|v| !valid_value(v)) {
        return Err(SelectorError::Invalid(whole.into()));
    }
    Ok(values)
}

fn requirement(part: &str) -> Result<Requirement, SelectorError> {
    let bad = || SelectorError::Invalid(part.into());
    let p = part.trim();
    if let Some(key) = p.strip_prefix('!') {
        let key = key.trim();
        return valid_key(key)
            .then(|| Requirement {
                key: key.into(),
                op: Op::NotExists,
            })
            .ok_or_else(bad);
    }
    let (key, op) = if let Some((k, v)) = p.split_once("!=") {
        (k, Op::NotEq(v.trim().into()))
    } else if let Some((k, v)) = p.split_once("==") {
        (k, Op::Eq(v.trim().into()))
    } else if let Some((k, v)) = p.split_once('=') {
        (k, Op::Eq(v.trim().into()))
    } else if let Some((k, rest)) = p.split_once(" notin") {
        (k, Op::NotIn(set_values(rest, part)?))
    } else if let Some((k, rest)) = p.split_once(" in") {
        (k, Op::In(set_values(rest, part)?))
    } else {
        (p, Op::Exists)
    };
    let key = key.trim();
    let value_ok = match &op {
        Op::Eq(v) | Op::NotEq(v) => valid_value(v),
        _ => true,
    };
    (valid_key(key) && value_ok)
        .then(|| Requirement {
            key: key.into(),
            op,
        })
        .ok_or_else(bad)
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        if s.len() > MAX_LEN {
            return Err(SelectorError::TooLong);
        }
        if s.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        let parts = split_top(s)?;
        if parts.len() > MAX_REQUIREMENTS {
            return Err(SelectorError::TooMany);
        }
        parts
            .into_iter()
            .map(requirement)
            .collect::<Result<_, _>>()
            .map(LabelSelector)
    }

    pub fn matches(&self, labels: &[(Arc<str>, Arc<str>)]) -> bool {
        let get = |k: &str| labels.iter().find(|(l, _)| &**l == k).map(|(_, v)| &**v);
        self.0.iter().all(|r| match (&r.op, get(&r.key)) {
            (Op::Eq(v), Some(have)) => v == have,
            (Op::Eq(_), None) => false,
            (Op::NotEq(v), have) => have != Some(v.as_str()),
            (Op::In(vs), Some(have)) => vs.iter().any(|v| v == have),
            (Op::In(_), None) => false,
            (Op::NotIn(vs), have) => have.is_none_or(|h| !vs.iter().any(|v| v == h)),
            (Op::Exists, have) => have.is_some(),
            (Op::NotExists, have) => have.is_none(),
        })
    }
}

/// One field requirement: `metadata.name` (else `metadata.namespace`), `!=` or `=`, value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldRequirement {
    is_name: bool,
    negated: bool,
    value: String,
}

/// `metadata.name=X` and friends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldRequirement>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        if s.len() > MAX_LEN {
            return Err(SelectorError::TooLong);
        }
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, neg, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, false, v)
            } else {
                return Err(SelectorError::Field(part.into()));
            };
            let is_name = match field.trim() {
                "metadata.name" => true,
                "metadata.namespace" => false,
                _ => return Err(SelectorError::Field(part.into())),
            };
            out.push(FieldRequirement {
                is_name,
                negated: neg,
                value: value.trim().to_string(),
            });
            if out.len() > MAX_REQUIREMENTS {
                return Err(SelectorError::TooMany);
            }
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, namespace: Option<&str>, name: &str) -> bool {
        self.0.iter().all(|r| {
            let have = if r.is_name { Some(name) } else { namespace };
            (have == Some(r.value.as_str())) != r.negated
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(Arc<str>, Arc<str>)> {
        pairs
            .iter()
            .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
            .collect()
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=db", false),
            ("app in (db, web)", true),
            ("app notin (db,web)", false),
            ("app notin (db)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier=front", true),
            ("app=web,tier in (back)", false),
            ("k8s.io/role in (a)", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn bad_label_selectors() {
        for sel in [
            "app=(",
            "app in web",
            "app in (a",
            "a))",
            "=x",
            "a=b c",
            "app in ((a))",
            "!",
        ] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
        assert_eq!(
            LabelSelector::parse(&"a".repeat(MAX_LEN + 1)),
            Err(SelectorError::TooLong)
        );
        let many = vec!["a"; MAX_REQUIREMENTS + 1].join(",");
        assert_eq!(LabelSelector::parse(&many), Err(SelectorError::TooMany));
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("metadata.name=n1").expect("valid");
        assert!(f.matches(None, "n1") && !f.matches(None, "n2"));
        let f = FieldSelector::parse("metadata.namespace!=kube-system").expect("valid");
        assert!(f.matches(Some("default"), "p") && !f.matches(Some("kube-system"), "p"));
        assert!(FieldSelector::parse("spec.nodeName=x").is_err());
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(FieldSelector::parse("").expect("empty").matches(None, "x"));
    }
}
