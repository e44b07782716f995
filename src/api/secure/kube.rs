//! [`Authorizer`] backed by the apiserver: `authentication.k8s.io/v1` TokenReview and
//! `authorization.k8s.io/v1` SubjectAccessReview, with a small bounded cache of decisions
//! (10 s, as the apiserver's webhook authenticator and authorizer cache them).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use super::auth::{Attributes, Authorizer, ReviewFailed, UserInfo};

const TTL: Duration = Duration::from_secs(10);
/// Most cached decisions of each kind.
pub const CACHE_CAP: usize = 4096;

/// A bounded cache with expiry: when full, expired entries go, then everything (counted).
pub struct TtlCache<K, V> {
    map: Mutex<HashMap<K, (V, Instant)>>,
    cap: usize,
    ttl: Duration,
    evictions: Counter,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(cap: usize, ttl: Duration, evictions: Counter) -> TtlCache<K, V> {
        TtlCache {
            map: Mutex::new(HashMap::new()),
            cap: cap.max(1),
            ttl,
            evictions,
        }
    }

    pub fn get(&self, k: &K) -> Option<V> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(k)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    pub fn put(&self, k: K, v: V) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.cap && !map.contains_key(&k) {
            let before = map.len();
            map.retain(|_, (_, at)| at.elapsed() < self.ttl);
            if map.len() >= self.cap {
                map.clear();
            }
            self.evictions.inc_by((before - map.len()) as u64);
        }
        map.insert(k, (v, Instant::now()));
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reviews against the apiserver the collector talks to.
pub struct KubeAuthorizer {
    client: kube::Client,
    /// Token → user (`None`: not authenticated). Tokens stay in memory, never in logs.
    tokens: TtlCache<String, Option<UserInfo>>,
    access: TtlCache<(UserInfo, Attributes), bool>,
}

impl KubeAuthorizer {
    pub fn new(client: kube::Client, registry: &mut Registry) -> KubeAuthorizer {
        let evictions = Counter::default();
        registry.register(
            "secure_auth_cache_evictions",
            "Cached authentication and authorization decisions evicted because the cache was full",
            evictions.clone(),
        );
        KubeAuthorizer {
            client,
            tokens: TtlCache::new(CACHE_CAP, TTL, evictions.clone()),
            access: TtlCache::new(CACHE_CAP, TTL, evictions),
        }
    }

    async fn token_review(&self, token: &str) -> Result<Option<UserInfo>, ReviewFailed> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let got = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ReviewFailed(format!("TokenReview: {}", redact(&e.to_string(), token))))?;
        let status = got.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Ok(None);
        }
        let user = status.user.unwrap_or_default();
        Ok(Some(UserInfo {
            name: user.username.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
        }))
    }

    async fn access_review(
        &self,
        user: &UserInfo,
        attrs: &Attributes,
    ) -> Result<bool, ReviewFailed> {
        let mut spec = SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            groups: Some(user.groups.clone()),
            uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
            ..Default::default()
        };
        match attrs {
            Attributes::Resource {
                verb,
                group,
                version,
                resource,
                namespace,
                name,
            } => {
                spec.resource_attributes = Some(ResourceAttributes {
                    verb: Some(verb.to_string()),
                    group: Some(group.clone()),
                    version: Some(version.clone()),
                    resource: Some(resource.to_string()),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    ..Default::default()
                });
            }
            Attributes::NonResource { verb, path } => {
                spec.non_resource_attributes = Some(NonResourceAttributes {
                    verb: Some(verb.to_string()),
                    path: Some(path.clone()),
                });
            }
        }
        let review = SubjectAccessReview {
            spec,
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let got = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ReviewFailed(format!("SubjectAccessReview: {e}")))?;
        Ok(got.status.is_some_and(|s| s.allowed))
    }
}

/// Never let a token reach a log line, even if an error message echoes it.
fn redact(message: &str, token: &str) -> String {
    if token.is_empty() {
        message.to_string()
    } else {
        message.replace(token, "**REDACTED**")
    }
}

impl Authorizer for KubeAuthorizer {
    fn review_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, ReviewFailed>> {
        Box::pin(async move {
            if let Some(hit) = self.tokens.get(&token.to_string()) {
                return Ok(hit);
            }
            let user = self.token_review(token).await?;
            self.tokens.put(token.to_string(), user.clone());
            Ok(user)
        })
    }

    fn review_access<'a>(
        &'a self,
        user: &'a UserInfo,
        attrs: &'a Attributes,
    ) -> BoxFuture<'a, Result<bool, ReviewFailed>> {
        Box::pin(async move {
            let key = (user.clone(), attrs.clone());
            if let Some(hit) = self.access.get(&key) {
                return Ok(hit);
            }
            let allowed = self.access_review(user, attrs).await?;
            self.access.put(key, allowed);
            Ok(allowed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_bounded_and_expires() {
        let evictions = Counter::default();
        let c: TtlCache<u32, bool> = TtlCache::new(3, Duration::from_secs(60), evictions.clone());
        for k in 0..3 {
            c.put(k, true);
        }
        assert_eq!(c.get(&1), Some(true));
        c.put(3, false);
        assert!(c.len() <= 3);
        assert_eq!(c.get(&3), Some(false));
        assert_eq!(evictions.get(), 3);
        let c: TtlCache<u32, bool> = TtlCache::new(3, Duration::ZERO, Counter::default());
        c.put(1, true);
        assert_eq!(c.get(&1), None, "expired");
    }

    #[test]
    fn tokens_are_redacted() {
        assert_eq!(
            redact("bad token abc.def", "abc.def"),
            "bad token **REDACTED**"
        );
    }
}
