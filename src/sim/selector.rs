//! Field and label selectors for lists and watches: the equality-based subset.
//!
//! Fields: `metadata.name`, `metadata.namespace`, `spec.nodeName` with `=`, `==` or `!=`.
//! Labels: `k=v`, `k==v`, `k!=v`, `k`, `!k`. Anything else is refused.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
    NodeName,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Missing(String),
}

/// What an object must look like to be listed or watched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    fields: Vec<(Field, String, bool)>,
    labels: Vec<Term>,
}

/// The identifying facts of an object a filter looks at.
pub(crate) struct Facts<'a> {
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub node_name: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
}

fn split_op(term: &str) -> Option<(&str, &str, bool)> {
    if let Some((k, v)) = term.split_once("!=") {
        Some((k.trim(), v.trim(), false))
    } else if let Some((k, v)) = term.split_once("==") {
        Some((k.trim(), v.trim(), true))
    } else {
        term.split_once('=')
            .map(|(k, v)| (k.trim(), v.trim(), true))
    }
}

impl Filter {
    /// Parses the selectors; `namespace` (from the URL path) is an implied field term.
    pub fn parse(
        namespace: Option<&str>,
        field_selector: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Filter, String> {
        let mut filter = Filter::default();
        if let Some(ns) = namespace {
            filter.fields.push((Field::Namespace, ns.to_owned(), true));
        }
        for term in field_selector
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.trim().is_empty())
        {
            let (key, value, eq) =
                split_op(term).ok_or_else(|| format!("invalid field selector term {term:?}"))?;
            let field = match key {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                "spec.nodeName" => Field::NodeName,
                other => return Err(format!("field label not supported: {other}")),
            };
            filter.fields.push((field, value.to_owned(), eq));
        }
        for term in label_selector
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            if term.contains(" in ") || term.contains(" notin ") || term.contains('(') {
                return Err(format!(
                    "set-based label selectors are not supported: {term:?}"
                ));
            }
            filter.labels.push(match split_op(term) {
                Some((k, v, true)) => Term::Eq(k.to_owned(), v.to_owned()),
                Some((k, v, false)) => Term::Ne(k.to_owned(), v.to_owned()),
                None => match term.strip_prefix('!') {
                    Some(k) => Term::Missing(k.trim().to_owned()),
                    None => Term::Exists(term.to_owned()),
                },
            });
        }
        Ok(filter)
    }

    /// The `spec.nodeName` an object must have, if the filter pins one (for fast pod listing).
    pub fn node_name(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _, eq)| *f == Field::NodeName && *eq)
            .map(|(_, v, _)| v.as_str())
    }

    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        let fields_ok = self.fields.iter().all(|(field, value, eq)| {
            let actual = match field {
                Field::Name => Some(facts.name),
                Field::Namespace => facts.namespace,
                Field::NodeName => facts.node_name,
            };
            (actual.unwrap_or("") == value) == *eq
        });
        fields_ok
            && self.labels.iter().all(|term| match term {
                Term::Eq(k, v) => facts.labels.get(k) == Some(v),
                Term::Ne(k, v) => facts.labels.get(k) != Some(v),
                Term::Exists(k) => facts.labels.contains_key(k),
                Term::Missing(k) => !facts.labels.contains_key(k),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> =
            [("app".to_owned(), "web".to_owned())].into_iter().collect();
        let facts = Facts {
            name: "p",
            namespace: Some("default"),
            node_name: Some("sim-node-0001"),
            labels: &labels,
        };
        let cases = [
            (None, None, None, true),
            (Some("default"), None, None, true),
            (Some("team-a"), None, None, false),
            (None, Some("spec.nodeName=sim-node-0001"), None, true),
            (None, Some("spec.nodeName!=sim-node-0001"), None, false),
            (None, Some("metadata.name==p"), Some("app=web"), true),
            (None, None, Some("app!=web"), false),
            (None, None, Some("app,!tier"), true),
            (None, None, Some("tier"), false),
        ];
        for (ns, fs, ls, want) in cases {
            let filter = Filter::parse(ns, fs, ls).expect("parses");
            assert_eq!(filter.matches(&facts), want, "{ns:?} {fs:?} {ls:?}");
        }
        assert!(Filter::parse(None, Some("status.phase=Running"), None).is_err());
        assert!(Filter::parse(None, None, Some("app in (web)")).is_err());
    }
}
