//! The apiserver's delegated authentication and authorization, as aggregated API servers and
//! kube-rbac-proxy call them: `POST /apis/authentication.k8s.io/v1/tokenreviews` and
//! `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`, both answering 201 with a
//! `status` (`authenticated` and `user`; `allowed` and a `reason`).
//!
//! Users are registered with [`super::SimCluster::add_user`] (a token per user) and permissions
//! with [`super::SimCluster::allow`], as RBAC rules bound cluster-wide or in one namespace;
//! group `system:masters` may do anything, as on a real apiserver. A SubjectAccessReview is
//! validated as the apiserver validates it (422 `Invalid` without a user or group, or without
//! exactly one of `resourceAttributes` and `nonResourceAttributes`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewStatus};
use serde::Serialize;

use super::state::{Shared, read};
use super::watch::status;

/// A user the simulated apiserver authenticates by token.
#[derive(Clone)]
pub(crate) struct SimUser {
    pub token: String,
    pub name: String,
    pub groups: Vec<String>,
}

/// Who a [`SimRule`] is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimSubject {
    User(String),
    Group(String),
}

/// One RBAC rule and its binding: cluster-wide (a ClusterRoleBinding) or in one namespace
/// (a RoleBinding). `"*"` matches any verb, group or resource; a non-resource URL ending in
/// `*` matches by prefix, as RBAC matches them.
#[derive(Clone, Debug)]
pub struct SimRule {
    pub subject: SimSubject,
    /// `Some(ns)`: only requests in that namespace (and never non-resource URLs).
    pub namespace: Option<String>,
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    /// `resource` or `resource/subresource`.
    pub resources: Vec<String>,
    /// Empty: any name.
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

impl SimRule {
    /// `verbs` on `resources` of `group`, cluster-wide.
    pub fn resources(subject: SimSubject, group: &str, resources: &[&str], verbs: &[&str]) -> Self {
        SimRule {
            subject,
            namespace: None,
            verbs: strings(verbs),
            api_groups: strings(&[group]),
            resources: strings(resources),
            resource_names: Vec::new(),
            non_resource_urls: Vec::new(),
        }
    }

    /// `verbs` on non-resource `urls`.
    pub fn urls(subject: SimSubject, urls: &[&str], verbs: &[&str]) -> Self {
        SimRule {
            subject,
            namespace: None,
            verbs: strings(verbs),
            api_groups: Vec::new(),
            resources: Vec::new(),
            resource_names: Vec::new(),
            non_resource_urls: strings(urls),
        }
    }

    /// The same rule bound in one namespace only.
    pub fn in_namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }

    fn binds(&self, user: &str, groups: &[String]) -> bool {
        match &self.subject {
            SimSubject::User(u) => u == user,
            SimSubject::Group(g) => groups.contains(g),
        }
    }

    fn allows(&self, review: &SubjectAccessReview) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        let spec = &review.spec;
        if let Some(r) = &spec.resource_attributes {
            let ns = r.namespace.as_deref().unwrap_or("");
            let in_scope = match &self.namespace {
                None => true,
                Some(bound) => !ns.is_empty() && bound == ns,
            };
            let resource = match r.subresource.as_deref() {
                Some(sub) if !sub.is_empty() => {
                    format!("{}/{sub}", r.resource.as_deref().unwrap_or(""))
                }
                _ => r.resource.clone().unwrap_or_default(),
            };
            let name = r.name.as_deref().unwrap_or("");
            in_scope
                && any(&self.verbs, r.verb.as_deref().unwrap_or(""))
                && any(&self.api_groups, r.group.as_deref().unwrap_or(""))
                && any(&self.resources, &resource)
                && (self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name))
        } else if let Some(n) = &spec.non_resource_attributes {
            let path = n.path.as_deref().unwrap_or("");
            self.namespace.is_none()
                && any(&self.verbs, n.verb.as_deref().unwrap_or(""))
                && self
                    .non_resource_urls
                    .iter()
                    .any(|u| match u.strip_suffix('*') {
                        Some(prefix) => path.starts_with(prefix),
                        None => u == path,
                    })
        } else {
            false
        }
    }
}

/// Users and rules.
#[derive(Default)]
pub(crate) struct Access {
    pub users: Vec<SimUser>,
    pub rules: Vec<SimRule>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("users", &self.users.len())
            .field("rules", &self.rules)
            .finish()
    }
}

fn created<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn bad_body(e: serde_json::Error) -> Response {
    status(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!("bad body: {e}"),
    )
}

pub(crate) async fn token_review(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut review: TokenReview = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_body(e),
    };
    let token = review.spec.token.take().unwrap_or_default();
    let access = read(&shared.access);
    let user = access
        .users
        .iter()
        .find(|u| !token.is_empty() && u.token == token);
    review.status = Some(match user {
        Some(u) => TokenReviewStatus {
            authenticated: Some(true),
            user: Some(UserInfo {
                username: Some(u.name.clone()),
                uid: Some(format!("uid-{}", u.name)),
                groups: Some(u.groups.clone()),
                extra: None,
            }),
            ..Default::default()
        },
        None => TokenReviewStatus {
            authenticated: Some(false),
            error: Some("invalid bearer token".into()),
            ..Default::default()
        },
    });
    created(&review)
}

pub(crate) async fn access_review(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut review: SubjectAccessReview = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_body(e),
    };
    let spec = &review.spec;
    let user = spec.user.clone().unwrap_or_default();
    let groups = spec.groups.clone().unwrap_or_default();
    let invalid = match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(_), Some(_)) => Some(
            "nonResourceAttributes: cannot be specified in combination with resourceAttributes",
        ),
        (None, None) => {
            Some("exactly one of nonResourceAttributes or resourceAttributes must be specified")
        }
        _ if user.is_empty() && groups.is_empty() => {
            Some("at least one of user or group must be specified")
        }
        _ => None,
    };
    if let Some(why) = invalid {
        let message = format!("SubjectAccessReview.authorization.k8s.io is invalid: spec: {why}");
        return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &message);
    }
    let allowed = groups.iter().any(|g| g == "system:masters")
        || read(&shared.access)
            .rules
            .iter()
            .any(|r| r.binds(&user, &groups) && r.allows(&review));
    review.status = Some(SubjectAccessReviewStatus {
        allowed,
        reason: allowed.then(|| "RBAC: allowed by the simulator's rules".to_string()),
        ..Default::default()
    });
    created(&review)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authorization::v1::{
        NonResourceAttributes, ResourceAttributes, SubjectAccessReviewSpec,
    };

    fn pods(ns: &str, verb: &str) -> SubjectAccessReview {
        SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some("u".into()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    group: Some("metrics.k8s.io".into()),
                    resource: Some("pods".into()),
                    namespace: (!ns.is_empty()).then(|| ns.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_as_rbac_does() {
        let user = SimSubject::User("u".into());
        let team = SimRule::resources(user.clone(), "metrics.k8s.io", &["pods"], &["get", "list"])
            .in_namespace("team-a");
        assert!(team.allows(&pods("team-a", "list")));
        assert!(!team.allows(&pods("team-b", "list")));
        assert!(
            !team.allows(&pods("", "list")),
            "a RoleBinding grants no cluster scope"
        );
        assert!(!team.allows(&pods("team-a", "delete")));
        let cluster = SimRule::resources(user.clone(), "*", &["pods"], &["*"]);
        assert!(cluster.allows(&pods("", "list")) && cluster.allows(&pods("x", "watch")));
        let urls = SimRule::urls(user, &["/api/v1/model/*"], &["get"]);
        let mut review = pods("", "get");
        review.spec.resource_attributes = None;
        review.spec.non_resource_attributes = Some(NonResourceAttributes {
            path: Some("/api/v1/model/nodes".into()),
            verb: Some("get".into()),
        });
        assert!(urls.allows(&review));
        assert!(urls.binds("u", &[]) && !urls.binds("v", &["u".into()]));
        assert!(!urls.in_namespace("x").allows(&review));
    }
}
