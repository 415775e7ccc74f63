//! The facts about a pod that identity and authorization decide on, copied out of the
//! Kubernetes object once so every decision is a pure function over plain data.

use std::net::IpAddr;

use k2h_contract::annotations;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One `metadata.ownerReferences` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub controller: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    /// Succeeded, Failed, Unknown or missing: the pod holds no IP we trust.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `status.podIPs` (or `status.podIP`): one per address family.
    pub ips: Vec<IpAddr>,
    pub phase: Phase,
    pub host_network: bool,
    /// `deletionTimestamp` is set: the pod is going away and gets nothing new.
    pub deleting: bool,
    pub node: Option<String>,
    pub service_account: Option<String>,
    /// `kube2hadoop.io/user`, written by iddecorator, verbatim (never trimmed: a value with
    /// surrounding whitespace is refused by authorization, so it never merges with another user).
    pub user: Option<String>,
    /// `kube2hadoop.io/stamp`: iddecorator's signature over (namespace, user).
    pub stamp: Option<String>,
    /// `kube2hadoop.io/run-as`, the headless account asked for.
    pub run_as: Option<String>,
    /// `kube2hadoop.io/services`, verbatim: which Hadoop services to get tokens from.
    pub services: Option<String>,
    pub owners: Vec<OwnerRef>,
    // No labels: coverage refuses any objectSelector that narrows, so no decision reads a
    // pod's labels, and they cost about 800 bytes of an indexed pod's 2.5 kB.
}

impl PodFacts {
    /// `namespace/name`, as messages name a pod.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Running or Pending: the only phases in which the pod can be the one calling.
    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Running | Phase::Pending)
    }

    pub fn from_pod(pod: &Pod) -> PodFacts {
        let meta = &pod.metadata;
        let annotation = |key: &str| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let status = pod.status.as_ref();
        // Canonical, as callers' addresses are: an IPv4 pod listed as `::ffff:a.b.c.d` would
        // otherwise be indexed under an address no lookup ever asks for.
        let mut ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|list| {
                list.iter()
                    .filter_map(|p| p.ip.parse().ok().map(canonical))
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty()
            && let Some(ip) = status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok().map(canonical))
        {
            ips.push(ip);
        }
        let phase = match status.and_then(|s| s.phase.as_deref()) {
            Some("Pending") => Phase::Pending,
            Some("Running") => Phase::Running,
            other => Phase::Other(other.unwrap_or("").to_owned()),
        };
        let spec = pod.spec.as_ref();
        PodFacts {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            ips,
            phase,
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            deleting: meta.deletion_timestamp.is_some(),
            node: spec.and_then(|s| s.node_name.clone()),
            service_account: spec.and_then(|s| s.service_account_name.clone()),
            user: annotation(annotations::USER),
            stamp: annotation(annotations::STAMP),
            // A blank run-as asks for nothing; any other value is kept as written and must be
            // an account name (authorization refuses `" svc-etl"`).
            run_as: annotation(annotations::RUN_AS).filter(|v| !v.trim().is_empty()),
            services: annotation(annotations::SERVICES),
            owners: owner_refs(meta),
        }
    }
}

/// The owner references of an object, as the workload lookup walks them.
pub(crate) fn owner_refs(meta: &ObjectMeta) -> Vec<OwnerRef> {
    meta.owner_references
        .iter()
        .flatten()
        .map(|r| OwnerRef {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            controller: r.controller.unwrap_or(false),
        })
        .collect()
}

/// An IPv4 client of a dual-stack socket shows up as `::ffff:a.b.c.d`; pods list it as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_decisions_need() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "namespace": "team-a", "name": "web-1", "uid": "u1",
                "deletionTimestamp": "2026-01-01T00:00:00Z",
                "annotations": {"kube2hadoop.io/user": "alice", "kube2hadoop.io/run-as": " "},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-abc", "uid": "rs1", "controller": true}]
            },
            "spec": {"containers": [], "hostNetwork": true, "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "127.100.0.5",
                "podIPs": [{"ip": "127.100.0.5"}, {"ip": "fd00::5"}]}
        }))
        .expect("pod");
        let facts = PodFacts::from_pod(&pod);
        assert_eq!(facts.display_name(), "team-a/web-1");
        assert_eq!(facts.ips.len(), 2);
        assert!(facts.host_network && facts.deleting && facts.is_live());
        assert_eq!(facts.user.as_deref(), Some("alice"));
        assert_eq!(facts.run_as, None, "a blank run-as asks for nothing");
        assert!(facts.owners[0].controller);
    }

    #[test]
    fn annotations_are_kept_verbatim() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"uid": "u1", "labels": {"app": "web"},
                "annotations": {"kube2hadoop.io/user": "alice ", "kube2hadoop.io/run-as": " svc"}}
        }))
        .expect("pod");
        let facts = PodFacts::from_pod(&pod);
        assert_eq!(facts.user.as_deref(), Some("alice "), "never trimmed");
        assert_eq!(facts.run_as.as_deref(), Some(" svc"));
    }

    /// Found by the `token-service` fuzz target (`fuzz/regressions/token-service/`): a pod
    /// listed at `::ffff:127.100.0.5` was indexed under that address, but lookups canonicalize
    /// the caller's address to `127.100.0.5`, so the pod could never be found by its address.
    #[test]
    fn ipv4_mapped_pod_addresses_are_read_as_ipv4() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"uid": "u1"},
            "status": {"phase": "Running", "podIP": "::ffff:127.100.0.5",
                "podIPs": [{"ip": "::ffff:127.100.0.5"}, {"ip": "fd00::5"}]}
        }))
        .expect("pod");
        let facts = PodFacts::from_pod(&pod);
        let want: Vec<IpAddr> = vec![
            "127.100.0.5".parse().expect("ip"),
            "fd00::5".parse().expect("ip"),
        ];
        assert_eq!(facts.ips, want);
        let mut index = crate::index::PodIndex::default();
        index.apply(facts);
        assert!(matches!(
            index.lookup("127.100.0.5".parse().expect("ip")),
            crate::index::IpLookup::One(_)
        ));
    }

    #[test]
    fn an_owner_object_keeps_its_annotations_verbatim() {
        let meta: ObjectMeta = serde_json::from_value(serde_json::json!({
            "uid": "rs1",
            "annotations": {"kube2hadoop.io/user": "", "kube2hadoop.io/stamp": "v1.x"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                "name": "web", "uid": "d1", "controller": true}]
        }))
        .expect("meta");
        let owner = crate::workload::owner_object(&meta);
        assert_eq!(owner.uid, "rs1");
        assert_eq!(owner.user.as_deref(), Some(""));
        assert_eq!(owner.stamp.as_deref(), Some("v1.x"));
        assert_eq!(owner.owners, owner_refs(&meta));
    }
}
