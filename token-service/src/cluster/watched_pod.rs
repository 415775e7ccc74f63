//! The pod watch's own type: what the index needs of a Pod and nothing else. A full Pod is
//! mostly containers, volumes and managedFields; deserializing only these fields, a list of
//! 10,000 pods no longer allocates 10,000 full objects before they are reduced to
//! [`PodFacts`]. Serde skips the other fields without building them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodIP, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

use k2h_contract::annotations;

use crate::pod::PodFacts;

#[derive(Clone, Debug, Deserialize)]
pub struct WatchedPod {
    #[serde(deserialize_with = "slim_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<Spec>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    host_network: Option<bool>,
    node_name: Option<String>,
    service_account_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<PodIP>>,
}

/// The metadata fields [`PodFacts`] reads, plus the resourceVersion the watcher resumes from.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
    deletion_timestamp: Option<Time>,
}

const READ_ANNOTATIONS: [&str; 4] = [
    annotations::USER,
    annotations::STAMP,
    annotations::RUN_AS,
    annotations::SERVICES,
];

fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Meta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        // Only these are read; others (kubectl's last-applied copy, say) can be large.
        annotations: m.annotations.map(|a| {
            a.into_iter()
                .filter(|(k, _)| READ_ANNOTATIONS.contains(&k.as_str()))
                .collect()
        }),
        owner_references: m.owner_references,
        deletion_timestamp: m.deletion_timestamp,
        ..ObjectMeta::default()
    })
}

impl WatchedPod {
    pub fn facts(&self) -> PodFacts {
        PodFacts::from_pod(&self.as_pod())
    }

    fn as_pod(&self) -> Pod {
        let spec = self.spec.clone().unwrap_or_default();
        let status = self.status.clone().unwrap_or_default();
        Pod {
            metadata: self.metadata.clone(),
            spec: Some(PodSpec {
                host_network: spec.host_network,
                node_name: spec.node_name,
                service_account_name: spec.service_account_name,
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: status.phase,
                pod_ip: status.pod_ip,
                pod_ips: status.pod_ips,
                ..PodStatus::default()
            }),
        }
    }
}

impl k8s_openapi::Resource for WatchedPod {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Pod";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for WatchedPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_pod() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-1", "namespace": "team-a", "uid": "u1", "resourceVersion": "42",
                "labels": {"app": "web"},
                "annotations": {
                    "kube2hadoop.io/user": "alice", "kube2hadoop.io/stamp": "sig",
                    "kube2hadoop.io/run-as": "svc-etl",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"a\": 1}"
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-abc", "uid": "rs1", "controller": true}],
                "deletionTimestamp": "2026-12-05T10:00:00Z",
                "managedFields": [{"manager": "kubectl", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {}}}]
            },
            "spec": {
                "containers": [{"name": "app", "image": "busybox"}],
                "hostNetwork": false, "nodeName": "n1", "serviceAccountName": "default"
            },
            "status": {"phase": "Running", "podIP": "10.0.0.5",
                "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
        })
    }

    #[test]
    fn the_facts_are_those_of_the_full_pod() {
        let full: Pod = serde_json::from_value(full_pod()).expect("pod");
        let watched: WatchedPod = serde_json::from_value(full_pod()).expect("watched");
        assert_eq!(watched.facts(), PodFacts::from_pod(&full));
        assert_eq!(watched.metadata.resource_version.as_deref(), Some("42"));
        let kept = watched.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(kept.len(), 3, "only kube2hadoop.io/ annotations: {kept:?}");
    }

    #[test]
    fn a_pod_with_no_spec_or_status_yet_is_read() {
        let watched: WatchedPod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "uid": "u"}}))
                .expect("watched");
        let full: Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "uid": "u"}}))
                .expect("pod");
        assert_eq!(watched.facts(), PodFacts::from_pod(&full));
    }
}
