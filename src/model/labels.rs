//! Kubernetes labels as Heapster wrote them: one `labels` tag of sorted `k:v` pairs joined by the
//! label separator, minus `--ignore_label`s, and `--store_label`s as tags of their own.

use std::sync::Arc;

/// Labels stored as separate tags: (tag name, value), sorted by tag name.
pub type StoredLabels = Arc<[(Arc<str>, Arc<str>)]>;

/// How to turn a label map into tags.
#[derive(Clone, Debug, Default)]
pub struct LabelPolicy {
    pub separator: String,
    pub ignore: Vec<String>,
    /// `(label name, tag name)`; `--store_label=name` or `--store_label=tag=name`.
    pub store: Vec<(String, String)>,
}

impl LabelPolicy {
    pub fn new(separator: &str, ignore: &[String], store: &[String]) -> LabelPolicy {
        let store = store
            .iter()
            .map(|s| match s.split_once('=') {
                Some((tag, label)) => (label.to_string(), tag.to_string()),
                None => (s.clone(), s.clone()),
            })
            .collect();
        LabelPolicy {
            separator: separator.to_string(),
            ignore: ignore.to_vec(),
            store,
        }
    }

    /// The `labels` tag value: sorted `k:v` pairs joined by the separator; `None` when empty.
    pub fn join<'a, I>(&self, labels: I) -> Option<Arc<str>>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut pairs: Vec<(&str, &str)> = labels
            .into_iter()
            .filter(|(k, _)| !self.ignore.iter().any(|i| i == k))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        pairs.sort_unstable();
        let mut out = String::new();
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.separator);
            }
            out.push_str(k);
            out.push(':');
            out.push_str(v);
        }
        Some(Arc::from(out))
    }

    /// The labels that `--store_label` keeps as tags of their own.
    pub fn stored<'a, I>(&self, labels: I) -> Option<StoredLabels>
    where
        I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        if self.store.is_empty() {
            return None;
        }
        let mut tags: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        for (label, tag) in &self.store {
            if let Some((_, v)) = labels.clone().into_iter().find(|(k, _)| k == label) {
                tags.push((Arc::from(tag.as_str()), Arc::from(v)));
            }
        }
        tags.sort_unstable();
        (!tags.is_empty()).then(|| Arc::from(tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_sorted_without_ignored() {
        let p = LabelPolicy::new(",", &["pod-template-hash".into()], &[]);
        let labels = [("b", "2"), ("a", "1"), ("pod-template-hash", "x")];
        assert_eq!(p.join(labels).as_deref(), Some("a:1,b:2"));
        assert_eq!(p.join([("pod-template-hash", "x")]), None);
        let p = LabelPolicy::new(";", &[], &["app".into(), "team=owner".into()]);
        assert_eq!(
            p.join(labels).as_deref(),
            Some("a:1;b:2;pod-template-hash:x")
        );
        let stored = p.stored([("app", "web"), ("owner", "t1")]).expect("stored");
        assert_eq!(&*stored[0].0, "app");
        assert_eq!(&*stored[1].0, "team");
        assert_eq!(&*stored[1].1, "t1");
    }
}
