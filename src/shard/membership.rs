//! Who the live replicas are: one `coordination.k8s.io/v1` Lease per replica
//! (`heapster-replica-<identity>`), renewed four times per resolution and lasting about one
//! resolution, so a replica that stops renewing is out within two; and the aggregator Lease
//! (`heapster-aggregator`), won by optimistic concurrency (an update with the resourceVersion
//! read; 409 means another replica won).
//!
//! Leases rather than the endpoints of a Service: a Lease says the process itself is alive
//! and renewing (readiness says nothing about a hung tick loop), carries this replica's
//! address and the last tick it handed to the sinks, and needs no Service at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ListParams, ObjectMeta, PostParams};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::model::replica::{Peer, Peers};
use crate::model::time::{self, Nanos};

/// The label every replica Lease carries, and the value of the role label.
pub const NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "heapster-rs");
pub const ROLE_LABEL: (&str, &str) = ("heapster.k8s.io/role", "replica");
/// Annotations: where the replica's APIs answer, and the last window end it handed to the
/// network sinks.
pub const ADDRESS_ANNOTATION: &str = "heapster.k8s.io/address";
pub const WRITTEN_ANNOTATION: &str = "heapster.k8s.io/written";
/// The Lease whose holder writes the namespace and cluster aggregates.
pub const AGGREGATOR_LEASE: &str = "heapster-aggregator";

/// A replica's Lease name.
pub fn lease_name(identity: &str) -> String {
    format!("heapster-replica-{identity}")
}

/// Who this replica is and how it renews.
#[derive(Clone, Debug)]
pub struct MembershipOptions {
    pub namespace: String,
    pub identity: String,
    pub address: String,
    pub resolution: Duration,
}

/// A live replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub identity: Arc<str>,
    pub url: Arc<str>,
}

/// What the membership last saw.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The live replicas, this one included once it has renewed, by identity.
    pub members: Vec<Member>,
    /// Whether this replica holds the aggregator Lease.
    pub aggregator: bool,
    /// The last `heapster.k8s.io/written` seen on each replica's Lease, live or not (kept
    /// after a Lease is deleted, for the standby that takes over).
    pub written: HashMap<Arc<str>, Nanos>,
}

impl View {
    pub fn identities(&self) -> Vec<Arc<str>> {
        self.members
            .iter()
            .map(|m| Arc::clone(&m.identity))
            .collect()
    }
}

#[derive(Clone)]
struct MembershipMetrics {
    members: Gauge,
    aggregator: Gauge,
    errors: Counter,
}

impl MembershipMetrics {
    fn register(r: &mut Registry) -> MembershipMetrics {
        let m = MembershipMetrics {
            members: Gauge::default(),
            aggregator: Gauge::default(),
            errors: Counter::default(),
        };
        r.register(
            "shard_replicas",
            "Live replicas (this one included) in the last membership view",
            m.members.clone(),
        );
        r.register(
            "shard_aggregator",
            "1 when this replica holds the aggregator Lease and writes the aggregates",
            m.aggregator.clone(),
        );
        r.register(
            "shard_lease_errors",
            "Lease requests that failed (renew, list, election)",
            m.errors.clone(),
        );
        m
    }
}

/// This replica's membership.
pub struct Membership {
    api: kube::Api<Lease>,
    opts: MembershipOptions,
    identity: Arc<str>,
    view: RwLock<Arc<View>>,
    written: AtomicI64,
    /// The resourceVersion of our own Lease after the last write.
    own_rv: std::sync::Mutex<Option<String>>,
    /// The last error logged (each distinct one is logged once).
    last_error: std::sync::Mutex<Option<String>>,
    /// One refresh at a time (the renew loop and a tick's plan both refresh).
    refreshing: tokio::sync::Mutex<()>,
    metrics: MembershipMetrics,
}

impl Membership {
    pub fn new(
        client: kube::Client,
        opts: MembershipOptions,
        registry: &mut Registry,
    ) -> Arc<Membership> {
        Arc::new(Membership {
            api: kube::Api::namespaced(client, &opts.namespace),
            identity: Arc::from(opts.identity.as_str()),
            opts,
            view: RwLock::default(),
            written: AtomicI64::new(0),
            own_rv: std::sync::Mutex::default(),
            last_error: std::sync::Mutex::default(),
            refreshing: tokio::sync::Mutex::default(),
            metrics: MembershipMetrics::register(registry),
        })
    }

    pub fn identity(&self) -> &Arc<str> {
        &self.identity
    }

    /// What the membership last saw (cheap: no network).
    pub fn view(&self) -> Arc<View> {
        Arc::clone(&self.view.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records the last window end handed to the network sinks (published at the next renew).
    pub fn set_written(&self, window_end: Nanos) {
        self.written.fetch_max(window_end, Ordering::Relaxed);
    }

    /// How long a Lease lasts without renewal: about one resolution (whole seconds).
    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.opts.resolution.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// Renews (or creates) this replica's Lease, then lists the replicas and runs the
    /// aggregator election. Errors are counted and logged once; the view stays as it was.
    pub async fn refresh(&self) {
        let _one = self.refreshing.lock().await;
        let result = async {
            self.renew().await?;
            let members = self.list().await?;
            let aggregator = self.elect().await?;
            Ok::<_, kube::Error>((members, aggregator))
        }
        .await;
        match result {
            Ok(((members, written), aggregator)) => {
                self.clear_error();
                self.publish(members, written, aggregator);
            }
            Err(e) => self.error(format!("{e}")),
        }
    }

    fn publish(&self, members: Vec<Member>, written: HashMap<Arc<str>, Nanos>, aggregator: bool) {
        let mut slot = self.view.write().unwrap_or_else(|e| e.into_inner());
        let old = Arc::clone(&slot);
        if old.members != members {
            let names: Vec<&str> = members.iter().map(|m| &*m.identity).collect();
            tracing::info!(replicas = ?names, "sharding: the live replicas changed");
        }
        if old.aggregator != aggregator {
            tracing::info!(
                aggregator,
                "sharding: this replica {} the aggregator Lease",
                if aggregator {
                    "holds"
                } else {
                    "no longer holds"
                }
            );
        }
        let mut all_written = old.written.clone();
        all_written.extend(written);
        self.metrics.members.set(members.len() as i64);
        self.metrics.aggregator.set(i64::from(aggregator));
        *slot = Arc::new(View {
            members,
            aggregator,
            written: all_written,
        });
    }

    fn error(&self, message: String) {
        self.metrics.errors.inc();
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() != Some(&message) {
            tracing::warn!(
                error = %message,
                namespace = %self.opts.namespace,
                "sharding: a Lease request failed; the membership keeps its last view (check \
                 that the apiserver is reachable and the Role grants get, list, create, update \
                 and delete on leases in this namespace)"
            );
            *last = Some(message);
        }
    }

    fn clear_error(&self) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn own_lease(&self, resource_version: Option<String>) -> Lease {
        let mut annotations =
            BTreeMap::from([(ADDRESS_ANNOTATION.to_owned(), self.opts.address.clone())]);
        let written = self.written.load(Ordering::Relaxed);
        if written > 0 {
            annotations.insert(WRITTEN_ANNOTATION.to_owned(), written.to_string());
        }
        Lease {
            metadata: ObjectMeta {
                name: Some(lease_name(&self.identity)),
                namespace: Some(self.opts.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (NAME_LABEL.0.to_owned(), NAME_LABEL.1.to_owned()),
                    (ROLE_LABEL.0.to_owned(), ROLE_LABEL.1.to_owned()),
                ])),
                annotations: Some(annotations),
                resource_version,
                ..ObjectMeta::default()
            },
            spec: Some(self.spec(&self.identity)),
        }
    }

    fn spec(&self, holder: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(self.lease_seconds()),
            renew_time: Some(micro_now()),
            ..LeaseSpec::default()
        }
    }

    async fn renew(&self) -> Result<(), kube::Error> {
        let name = lease_name(&self.identity);
        let pp = PostParams::default();
        let rv = self
            .own_rv
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let written = match rv {
            Some(rv) => match self
                .api
                .replace(&name, &pp, &self.own_lease(Some(rv)))
                .await
            {
                Err(e) if status_of(&e) == Some(409) => {
                    // Ours was changed by someone else (or an earlier write of ours timed
                    // out after landing): take the current version and write again.
                    let current = self.api.get(&name).await?;
                    let rv = current.metadata.resource_version;
                    self.api.replace(&name, &pp, &self.own_lease(rv)).await?
                }
                Err(e) if status_of(&e) == Some(404) => {
                    self.api.create(&pp, &self.own_lease(None)).await?
                }
                other => other?,
            },
            None => match self.api.create(&pp, &self.own_lease(None)).await {
                Err(e) if status_of(&e) == Some(409) => {
                    // Left by an earlier run with the same identity.
                    let current = self.api.get(&name).await?;
                    let rv = current.metadata.resource_version;
                    self.api.replace(&name, &pp, &self.own_lease(rv)).await?
                }
                other => other?,
            },
        };
        *self.own_rv.lock().unwrap_or_else(|e| e.into_inner()) = written.metadata.resource_version;
        Ok(())
    }

    /// The live replicas, and the `written` annotation of every replica Lease.
    async fn list(&self) -> Result<(Vec<Member>, HashMap<Arc<str>, Nanos>), kube::Error> {
        let selector = format!(
            "{}={},{}={}",
            NAME_LABEL.0, NAME_LABEL.1, ROLE_LABEL.0, ROLE_LABEL.1
        );
        let leases = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await?;
        let now = time::now();
        let mut members = Vec::new();
        let mut written = HashMap::new();
        for lease in leases {
            let Some(identity) = lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
            else {
                continue;
            };
            let identity: Arc<str> = Arc::from(identity);
            let annotations = lease.metadata.annotations.as_ref();
            if let Some(w) = annotations
                .and_then(|a| a.get(WRITTEN_ANNOTATION))
                .and_then(|w| w.parse().ok())
            {
                written.insert(Arc::clone(&identity), w);
            }
            if !live(&lease, now) {
                continue;
            }
            let url = annotations
                .and_then(|a| a.get(ADDRESS_ANNOTATION))
                .map_or("", String::as_str);
            members.push(Member {
                identity,
                url: Arc::from(url),
            });
        }
        members.sort_by(|a, b| a.identity.cmp(&b.identity));
        members.dedup_by(|a, b| a.identity == b.identity);
        Ok((members, written))
    }

    /// Holds, renews or takes over the aggregator Lease; whether this replica holds it.
    async fn elect(&self) -> Result<bool, kube::Error> {
        let pp = PostParams::default();
        let mine = |spec: &LeaseSpec| spec.holder_identity.as_deref() == Some(&*self.identity);
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(AGGREGATOR_LEASE.to_owned()),
                namespace: Some(self.opts.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    NAME_LABEL.0.to_owned(),
                    NAME_LABEL.1.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(self.spec(&self.identity)),
        };
        let Some(current) = self.api.get_opt(AGGREGATOR_LEASE).await? else {
            return match self.api.create(&pp, &lease).await {
                Ok(_) => Ok(true),
                Err(e) if status_of(&e) == Some(409) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let held = current.spec.as_ref().is_some_and(mine);
        if !held && live(&current, time::now()) {
            return Ok(false);
        }
        let mut next = lease;
        next.metadata.resource_version = current.metadata.resource_version.clone();
        if let Some(next_spec) = next.spec.as_mut() {
            // A renewal keeps the acquire time; a takeover sets it.
            next_spec.acquire_time = match (&current.spec, held) {
                (Some(spec), true) => spec.acquire_time.clone(),
                _ => Some(micro_now()),
            };
        }
        match self.api.replace(AGGREGATOR_LEASE, &pp, &next).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(status_of(&e), Some(409 | 404)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Renews and refreshes every quarter resolution until `stop`, then deletes this
    /// replica's Lease (and the aggregator Lease when it holds it) so the others take over at
    /// once rather than after the Lease expires.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let period = self.opts.resolution / 4;
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = interval.tick() => {}
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                r = tokio::time::timeout(period.max(Duration::from_secs(1)), self.refresh()) => {
                    if r.is_err() {
                        self.error("Lease requests timed out".to_owned());
                    }
                }
            }
        }
        self.leave().await;
    }

    /// Deletes this replica's Lease (and the aggregator Lease if held), within 2 s.
    pub async fn leave(&self) {
        let dp = kube::api::DeleteParams::default();
        let leave = async {
            if self.view().aggregator {
                let _ = self.api.delete(AGGREGATOR_LEASE, &dp).await;
            }
            self.api.delete(&lease_name(&self.identity), &dp).await
        };
        match tokio::time::timeout(Duration::from_secs(2), leave).await {
            Ok(Ok(_)) => tracing::info!("sharding: left (Lease deleted)"),
            Ok(Err(e)) => tracing::warn!(error = %e, "sharding: deleting this replica's Lease"),
            Err(_) => tracing::warn!("sharding: deleting this replica's Lease timed out"),
        }
    }
}

impl Peers for Membership {
    fn peers(&self) -> Vec<Peer> {
        self.view()
            .members
            .iter()
            .filter(|m| m.identity != self.identity && !m.url.is_empty())
            .map(|m| Peer {
                identity: Arc::clone(&m.identity),
                url: Arc::clone(&m.url),
            })
            .collect()
    }
}

/// Renewed within its duration.
fn live(lease: &Lease, now: Nanos) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    let (Some(renewed), Some(secs)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return false;
    };
    let renewed = i64::try_from(renewed.0.as_nanosecond()).unwrap_or(0);
    renewed + i64::from(secs) * 1_000_000_000 > now
}

fn micro_now() -> MicroTime {
    let now = k8s_openapi::jiff::Timestamp::now();
    // MicroTime is serialised with microseconds: truncate so what is read back compares equal.
    let micros = now.as_microsecond();
    MicroTime(k8s_openapi::jiff::Timestamp::from_microsecond(micros).unwrap_or(now))
}

fn status_of(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(renewed_secs_ago: i64, duration: i32) -> Lease {
        let at = time::now() - renewed_secs_ago * 1_000_000_000;
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(
                    k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(at)).expect("ts"),
                )),
                lease_duration_seconds: Some(duration),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn live_until_the_duration_has_passed() {
        let now = time::now();
        assert!(live(&lease(1, 5), now));
        assert!(!live(&lease(6, 5), now));
        assert!(!live(&Lease::default(), now));
    }
}
