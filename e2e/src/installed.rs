//! kube2hadoop installed as pods on the bed's real node, as an admin installs it (through
//! Kustomize, `e2e/scripts/install.sh`, or Helm, `e2e/scripts/helm-install.sh`): the checks
//! `tests/installed.rs` and `tests/helm.rs` share. Our images, the bed's Hadoop and LDAP.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::hadoop::Cluster;
use crate::pods::{APP_UID, HDFS_WRITE_READ, RealNode, finished, hadoop_client_pod, logs};
use crate::{Bed, Error, KubeStep, NAMESPACE, TestId, USER_ANNOTATION, ensure};

/// Where the installed servers run (manifests/base, the chart as the bed installs it).
pub const INSTALL_NAMESPACE: &str = "kube2hadoop";
const RUN_TIMEOUT: Duration = Duration::from_secs(150);

/// The pods of Deployment `name`, which must have `want` replicas ready on the real node, all
/// running our image.
pub async fn ready_replicas(
    bed: &Bed,
    node: &RealNode,
    name: &str,
    want: i32,
) -> Result<Vec<Pod>, Error> {
    let deployment = Api::<Deployment>::namespaced(bed.admin.clone(), INSTALL_NAMESPACE)
        .get(name)
        .await
        .step(format!("reading Deployment {name}"))?;
    let ready = deployment
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    ensure(ready == want, || {
        format!("Deployment {name} has {ready} ready replicas, not {want}")
    })?;
    let pods = Api::<Pod>::namespaced(bed.admin.clone(), INSTALL_NAMESPACE)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/name={name}")))
        .await
        .step(format!("listing the pods of {name}"))?
        .items;
    let running: Vec<Pod> = pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    for pod in &running {
        let spec = pod.spec.clone().unwrap_or_default();
        let image = spec
            .containers
            .first()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        ensure(
            spec.node_name.as_deref() == Some(node.name.as_str())
                && image == format!("docker.io/kube2hadoop/{name}:e2e"),
            || {
                format!(
                    "pod {:?} of {name} runs {image:?} on {:?}, not our image on the real node",
                    pod.metadata.name, spec.node_name
                )
            },
        )?;
    }
    Ok(running)
}

/// The stamped user of pod `name` in the test namespace.
pub async fn stamped_user(bed: &Bed, name: &str) -> Result<String, Error> {
    let pod = Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE)
        .get(name)
        .await
        .step(format!("reading pod {name}"))?;
    Ok(pod
        .metadata
        .annotations
        .unwrap_or_default()
        .get(USER_ANNOTATION)
        .cloned()
        .unwrap_or_default())
}

/// The audit line the installed token service wrote for pod `name` (in its pods' logs).
pub async fn audit_line(bed: &Bed, name: &str) -> Result<serde_json::Value, Error> {
    let pods = Api::<Pod>::namespaced(bed.admin.clone(), INSTALL_NAMESPACE)
        .list(&ListParams::default().labels("app.kubernetes.io/name=token-service"))
        .await
        .step("listing the token service's pods")?
        .items;
    for pod in pods {
        let Some(pod_name) = pod.metadata.name else {
            continue;
        };
        let text = logs(&bed.admin, INSTALL_NAMESPACE, &pod_name, "token-service")
            .await
            .unwrap_or_default();
        // Each audit record is the message of one JSON log line.
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|l| {
                l["message"]
                    .as_str()
                    .and_then(|m| serde_json::from_str(m).ok())
            })
            .find(|a: &serde_json::Value| a["pod_name"] == name);
        if let Some(found) = found {
            return Ok(found);
        }
    }
    Err(Error::Check(format!(
        "no audit line for pod {name} in the token service's logs"
    )))
}

/// alice's pod (claiming mallory) writes and reads her HDFS home with the tokens the installed
/// services got it; returns the pod's name.
pub async fn alice_writes_and_reads(
    bed: &Bed,
    node: &RealNode,
    cluster: &Cluster,
    id: &TestId,
    conf: &str,
    suffix: &str,
) -> Result<String, Error> {
    let name = format!("{}-{suffix}", id.name());
    let pod = hadoop_client_pod(node, cluster, id, &name, "mallory", conf, HDFS_WRITE_READ)?;
    let audit_from = cluster.audit_size();
    Api::<Pod>::namespaced(bed.alice.clone(), NAMESPACE)
        .create(&PostParams::default(), &pod)
        .await
        .step(format!("alice creates pod {name}, claiming mallory"))?;
    let phase = finished(&bed.admin, NAMESPACE, &name, RUN_TIMEOUT).await?;
    let said = logs(&bed.admin, NAMESPACE, &name, "app")
        .await
        .unwrap_or_default();
    let fetcher = logs(&bed.admin, NAMESPACE, &name, "kube2hadoop-fetcher")
        .await
        .unwrap_or_default();
    let want = format!("read=written by uid {APP_UID} in pod {name}");
    ensure(phase == "Succeeded" && said.contains(&want), || {
        format!("{name} ended {phase}; app log:\n{said}\nfetcher log:\n{fetcher}")
    })?;
    let user = stamped_user(bed, &name).await?;
    ensure(user == "alice", || {
        format!("the installed iddecorator stamped {name} with {user:?}, not alice")
    })?;
    // Through the Service (kube-proxy, no SNAT for pod traffic) the token service saw the pod's
    // own address: what its IP mode relies on.
    let pod_ip = Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE)
        .get(&name)
        .await
        .step(format!("reading pod {name}"))?
        .status
        .and_then(|s| s.pod_ip)
        .unwrap_or_default();
    let issued = audit_line(bed, &name).await?;
    ensure(
        issued["outcome"] == "issued"
            && issued["identity_method"] == "sa-token"
            && issued["ip"] == pod_ip.as_str()
            && !pod_ip.is_empty(),
        || format!("the token service's audit line for {name} (pod IP {pod_ip}): {issued:#}"),
    )?;
    let audit = cluster.audit_since(audit_from);
    let path = format!("/user/alice/{name}.txt");
    ensure(
        audit.lines().any(|l| {
            l.contains("ugi=alice (auth:TOKEN)") && l.contains("cmd=create") && l.contains(&path)
        }),
        || format!("no create of {path} by alice with a token in the NameNode audit log:\n{audit}"),
    )?;
    Ok(name)
}

/// bob's pod claims to be alice's and to run as alice: the installed iddecorator stamps bob, the
/// installed token service refuses, and the fetcher ends the pod before its app starts.
pub async fn bobs_forgery_is_refused(
    bed: &Bed,
    node: &RealNode,
    cluster: &Cluster,
    id: &TestId,
    conf: &str,
) -> Result<(), Error> {
    let name = format!("{}-forged", id.name());
    let mut pod = hadoop_client_pod(node, cluster, id, &name, "alice", conf, HDFS_WRITE_READ)?;
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("kube2hadoop.io/run-as".into(), "alice".into());
    Api::<Pod>::namespaced(bed.bob.clone(), NAMESPACE)
        .create(&PostParams::default(), &pod)
        .await
        .step("bob creates a pod claiming alice and run-as alice")?;
    let phase = finished(&bed.admin, NAMESPACE, &name, RUN_TIMEOUT).await?;
    let fetcher = logs(&bed.admin, NAMESPACE, &name, "kube2hadoop-fetcher")
        .await
        .unwrap_or_default();
    ensure(
        phase == "Failed" && fetcher.contains("run_as_refused"),
        || format!("bob's forged pod ended {phase}; its fetcher said:\n{fetcher}"),
    )?;
    let user = stamped_user(bed, &name).await?;
    ensure(user == "bob", || {
        format!("bob's pod was stamped {user:?}, not bob")
    })?;
    Ok(())
}

/// One pod of each Deployment is deleted: the other replica answers through the Service while
/// the Deployment replaces it.
pub async fn lose_one_replica_each(bed: &Bed, node: &RealNode) -> Result<(), Error> {
    for name in ["iddecorator", "token-service"] {
        let pods = ready_replicas(bed, node, name, 2).await?;
        let victim = pods
            .first()
            .and_then(|p| p.metadata.name.clone())
            .ok_or_else(|| Error::Check(format!("{name} has no pod to delete")))?;
        Api::<Pod>::namespaced(bed.admin.clone(), INSTALL_NAMESPACE)
            .delete(&victim, &DeleteParams::default())
            .await
            .step(format!("deleting pod {victim} of {name}"))?;
        // Gone, not just terminating: a victim still in its preStop sleep would serve.
        pod_gone(bed, &victim).await?;
    }
    webhook_answers(bed).await
}

/// Waits (bounded, dry runs only) until a pod create passes the admission webhook through the
/// Service again. The API server's first webhook call after a replica's removal can fail once
/// with "use of closed network connection" (a pooled connection to the removed pod; the API
/// server does not retry that error): seen once in CI. What must hold is that the remaining
/// replica answers, which the real creates after this check.
async fn webhook_answers(bed: &Bed) -> Result<(), Error> {
    let api = Api::<Pod>::namespaced(bed.alice.clone(), NAMESPACE);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "webhook-probe"},
        "spec": {"containers": [{"name": "c", "image": "probe"}]}
    }))
    .map_err(|e| Error::Check(format!("probe pod: {e}")))?;
    crate::wait::until(
        "the admission webhook to answer through the Service",
        Duration::from_secs(30),
        || async {
            Ok::<_, Error>(match api.create(&dry, &pod).await {
                Err(kube::Error::Api(e))
                    if e.code == 500 && e.message.contains("failed calling webhook") =>
                {
                    crate::wait::Poll::Pending(e.message.clone())
                }
                _ => crate::wait::Poll::Ready(()),
            })
        },
    )
    .await
}

/// Waits until pod `name` of the install no longer exists: one still in its preStop sleep may
/// still be served requests, and its log (with their audit lines) goes with it.
pub async fn pod_gone(bed: &Bed, name: &str) -> Result<(), Error> {
    let api = Api::<Pod>::namespaced(bed.admin.clone(), INSTALL_NAMESPACE);
    crate::wait::until(&format!("pod {name} to be gone"), RUN_TIMEOUT, || async {
        Ok::<_, Error>(
            match api
                .get_opt(name)
                .await
                .step(format!("reading pod {name}"))?
            {
                None => crate::wait::Poll::Ready(()),
                Some(_) => crate::wait::Poll::Pending("still terminating".into()),
            },
        )
    })
    .await
}
