//! kube2hadoop installed as an admin installs it: `kubectl apply -k` of `manifests/base` through
//! the bed's overlay (`e2e/scripts/install.sh`: images, placement, addresses, certificates and
//! credentials only). iddecorator and token-service run as pods from our images on the real
//! node, two replicas each, with the shipped RBAC, probes and security contexts; the API server
//! calls the webhook through its Service, the injected fetcher reaches the token service at its
//! Service address (kube-proxy), and the token service reaches the API server, the KDC, the
//! NameNode and slapd from its pods.
//!
//! Not in the default `cargo test` (`test = false` in Cargo.toml): the install replaces the bed's
//! registration of the local iddecorator process, so `make e2e` runs it alone, after the suite,
//! once `install.sh up` has installed.

use e2e::hadoop::Cluster;
use e2e::installed::{
    alice_writes_and_reads, bobs_forgery_is_refused, lose_one_replica_each, ready_replicas,
};
use e2e::pods::{RealNode, create_hadoop_conf};
use e2e::{Bed, Error, NAMESPACE, TestId};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_manifests_serve_alice_refuse_bobs_forgery_and_survive_losing_a_replica() {
    let node = RealNode::from_env();
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let id = TestId::new("installed");
    let cluster = Cluster::shared();
    let conf = format!("{}-hadoop-conf", id.name());
    let result = async {
        for name in ["iddecorator", "token-service"] {
            ready_replicas(&bed, &node, name, 2).await?;
        }
        create_hadoop_conf(&bed.admin, NAMESPACE, &conf, &cluster).await?;
        alice_writes_and_reads(&bed, &node, &cluster, &id, &conf, "first").await?;
        bobs_forgery_is_refused(&bed, &node, &cluster, &id, &conf).await?;
        lose_one_replica_each(&bed, &node).await?;
        alice_writes_and_reads(&bed, &node, &cluster, &id, &conf, "after-loss").await?;
        Ok::<_, Error>(())
    }
    .await;
    let pods = Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE);
    let _ = pods
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&id.selector()),
        )
        .await;
    let _ = Api::<ConfigMap>::namespaced(bed.admin.clone(), NAMESPACE)
        .delete(&conf, &DeleteParams::default())
        .await;
    result.expect("the installed manifests serving real pods");
}
