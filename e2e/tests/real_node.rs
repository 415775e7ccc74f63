//! Pods that really run, on the bed's real node (kubelet + containerd + runc + the CNI bridge,
//! e2e/scripts/node.sh): iddecorator injects the fetcher, the kubelet projects the pod's
//! service-account token and mounts the in-memory volume, the fetcher (our image) fetches from a
//! token service the pod reaches over its own network, and an app container running as another,
//! non-root user reads the file where `HADOOP_TOKEN_FILE_LOCATION` points. What kwok could not
//! show: the file's mode and group as the app sees them, the volume really being tmpfs, the
//! projected token being mounted for the fetcher only, the pod's real address as its identity.
//!
//! Needs the bed with its real node (`make e2e-up` as root), the Kerberized HDFS and slapd
//! (started when not running).

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::fixture::Fixture;
use e2e::hadoop::{Cluster, show};
use e2e::pods::{
    APP_FS_GROUP, APP_UID, BUSYBOX, HDFS_WRITE_READ, RealNode, create_hadoop_conf, finished,
    hadoop_client_pod, logs,
};
use e2e::token_service::{Options, binary, tail};
use e2e::wait::{Poll, until};
use e2e::{Error, KubeStep, NAMESPACE, TestId, ensure, objects};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

/// A pod on the real node starts in seconds; the fetcher may retry while the service warms up.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const TOKEN_FILE: &str = "/var/run/secrets/hadoop/token";
/// How long the ledger may take to cancel a deleted workload's tokens.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(60);

/// The bed's injection sends every fetcher to one address (`Options::on_node`): one token
/// service there at a time, so this file's tests take turns.
static NODE_SERVICE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the app prints about the token file as it sees it, a `key=value` per line, then the
/// file itself in base64, then sleeps so the pod stays Running.
const APP_SCRIPT: &str = r#"f=$HADOOP_TOKEN_FILE_LOCATION
echo "env=$f"
echo "uid=$(id -u)"
echo "groups=$(id -G)"
echo "file=$(stat -c '%a %u %g %s' "$f" 2>&1)"
echo "fs=$(awk -v d="${f%/*}" '$2 == d {print $3}' /proc/mounts)"
# Where the injected fetcher (only) mounts the projected token (iddecorator's spec.rs).
echo "sa=$(ls /var/run/secrets/kube2hadoop 2>&1 | head -n 1)"
echo "bytes=$(base64 -w 0 "$f" 2>/dev/null)"
echo "end=1"
exec sleep 3600
"#;

/// alice's pod asking for injection, placed on the real node, its app running as a non-root
/// user of its own (`fs_group`: with or without the pod's fsGroup).
fn app_pod(node: &RealNode, id: &TestId, name: &str, fs_group: bool) -> Result<Pod, Error> {
    let mut value = serde_json::to_value(objects::pod(id, name, "mallory")?).map_err(|source| {
        Error::Manifest {
            kind: "Pod",
            source,
        }
    })?;
    value["metadata"]["annotations"]["kube2hadoop.io/inject"] = "true".into();
    let mut security = json!({"runAsUser": APP_UID, "runAsGroup": APP_UID, "runAsNonRoot": true});
    if fs_group {
        security["fsGroup"] = APP_FS_GROUP.into();
    }
    value["spec"] = json!({
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "securityContext": security,
        "containers": [{
            "name": "app",
            "image": BUSYBOX,
            "command": ["/bin/sh", "-c", APP_SCRIPT],
            "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                "capabilities": {"drop": ["ALL"]}},
        }],
    });
    node.place(&mut value["spec"]);
    serde_json::from_value(value).map_err(|source| Error::Manifest {
        kind: "Pod",
        source,
    })
}

/// The app's report, once it has printed all of it.
async fn report(bed: &e2e::Bed, name: &str) -> Result<BTreeMap<String, String>, Error> {
    until(
        &format!("the app of pod {name} to report"),
        RUN_TIMEOUT,
        || async {
            let pod = Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE)
                .get(name)
                .await
                .step("reading the app pod")?;
            let status = pod.status.unwrap_or_default();
            let phase = status.phase.unwrap_or_default();
            if phase == "Failed" {
                return Err(Error::Check(format!(
                    "pod {name} failed: {:#?}",
                    status.init_container_statuses
                )));
            }
            if phase != "Running" {
                return Ok(Poll::Pending(format!("phase {phase:?}")));
            }
            let text = logs(&bed.admin, NAMESPACE, name, "app").await?;
            if !text.lines().any(|l| l == "end=1") {
                return Ok(Poll::Pending("the app has not printed its report".into()));
            }
            Ok(Poll::Ready(
                text.lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ))
        },
    )
    .await
}

fn decode(b64: &str) -> Result<Vec<u8>, Error> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| Error::Check(format!("the app printed no base64 token file: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_pod_runs_and_its_non_root_app_reads_alices_tokens() {
    let node = RealNode::from_env();
    let _turn = NODE_SERVICE.lock().await;
    let fx = Fixture::new("real").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let cluster = Cluster::shared();
    let plan = Options::new(&[NAMESPACE], ledger.name())
        .on_node()
        .prepare(&cluster);
    let service = plan.start(0).await;
    let result = async {
        let pods = Api::<Pod>::namespaced(bed.alice.clone(), NAMESPACE);
        let with_group = format!("{}-fsgroup", id.name());
        let without = format!("{}-plain", id.name());
        for (name, fs_group) in [(&with_group, true), (&without, false)] {
            pods.create(&PostParams::default(), &app_pod(&node, id, name, fs_group)?)
                .await
                .step(format!("alice creates pod {name} on the real node"))?;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, fs_group) in [(&with_group, true), (&without, false)] {
            let seen = report(bed, name).await.map_err(|e| {
                Error::Check(format!("{e}\ntoken-service log:\n{}", tail(&plan.log_file(0), 30)))
            })?;
            let want = |key: &str| seen.get(key).map(String::as_str).unwrap_or_default();
            ensure(want("env") == TOKEN_FILE, || {
                format!("{name}: HADOOP_TOKEN_FILE_LOCATION={:?}", want("env"))
            })?;
            ensure(want("uid") == APP_UID.to_string(), || {
                format!("{name}: the app runs as {:?}", want("uid"))
            })?;
            // With fsGroup the file is 0440 and the app reads it through the group the kubelet
            // gave the volume; without, 0444 (the app's uid is not the fetcher's).
            let file: Vec<&str> = want("file").split(' ').collect();
            let (mode, group) = if fs_group {
                ("440", APP_FS_GROUP.to_string())
            } else {
                ("444", String::new())
            };
            ensure(
                file.first() == Some(&mode)
                    && (group.is_empty() || file.get(2) == Some(&group.as_str())),
                || format!("{name}: the app sees the file as {:?} (mode uid gid size), expected mode {mode} group {group:?}", want("file")),
            )?;
            ensure(want("fs") == "tmpfs", || {
                format!("{name}: the token volume is {:?}, not tmpfs", want("fs"))
            })?;
            ensure(want("sa").contains("No such file"), || {
                format!("{name}: the app sees the fetcher's projected token: {:?}", want("sa"))
            })?;
            let bytes = decode(want("bytes"))?;
            let file = dir.path().join(format!("{name}.token"));
            std::fs::write(&file, &bytes).expect("write the app's bytes");
            // The stock Hadoop client, with the file as the app read it, lists alice's home.
            let ls = cluster.client(&file, &["ls", "/user/alice"], None);
            ensure(ls.status.success(), || {
                format!("{name}: hadoop ls /user/alice with the app's file:\n{}", show(&ls))
            })?;
            let printed = std::process::Command::new(binary("init-fetcher"))
                .arg("print")
                .arg(&file)
                .arg("--json")
                .output()
                .expect("run init-fetcher print");
            ensure(
                String::from_utf8_lossy(&printed.stdout).contains("\"alice\""),
                || format!("{name}: the file is not alice's:\n{}", show(&printed)),
            )?;
        }
        // The service knew each pod by its projected token, minted by the real kubelet, and
        // saw it connect from its own address on the node's bridge.
        let audit = plan.audit_lines();
        for name in [&with_group, &without] {
            let issued = audit.iter().find(|l| {
                l["outcome"] == "issued" && l["pod_name"].as_str() == Some(name.as_str())
            });
            let line = issued.ok_or_else(|| {
                Error::Check(format!("no `issued` audit line for {name}: {audit:#?}"))
            })?;
            let ip = line["ip"].as_str().unwrap_or_default();
            let pod_ip = Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE)
                .get(name)
                .await
                .step("reading the pod")?
                .status
                .and_then(|s| s.pod_ip)
                .unwrap_or_default();
            ensure(
                line["identity_method"] == "sa-token"
                    && line["node"] == node.name.as_str()
                    && line["hadoop_user"] == "alice"
                    && !pod_ip.is_empty()
                    && ip == pod_ip,
                || format!("{name}: audit line {line:#}"),
            )?;
        }
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(service).await;
    result.expect("an injected pod on the real node");
}

/// The app of a refreshed workload: prints the file's checksum and bytes each time they change.
const WATCH_SCRIPT: &str = r#"f=$HADOOP_TOKEN_FILE_LOCATION
last=
while true; do
  sum=$(md5sum "$f" 2>/dev/null | awk '{print $1}')
  if [ -n "$sum" ] && [ "$sum" != "$last" ]; then
    echo "file=$sum $(base64 -w 0 "$f")"
    last=$sum
  fi
  sleep 1
done
"#;

/// The distinct files the app of `pod` has seen so far, in order, as (checksum, bytes).
async fn files_seen(bed: &e2e::Bed, pod: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let text = logs(&bed.admin, NAMESPACE, pod, "app").await?;
    text.lines()
        .filter_map(|l| l.strip_prefix("file="))
        .filter_map(|l| l.split_once(' '))
        .map(|(sum, b64)| Ok((sum.to_owned(), decode(b64)?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshing_sidecar_hands_the_app_the_reissued_file_and_deletion_cancels_it() {
    let node = RealNode::from_env();
    let _turn = NODE_SERVICE.lock().await;
    let fx = Fixture::new("real-rf").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    // Tokens that live 60 s (renewed every 20 s), on an HDFS of this test's own.
    let state = e2e::hadoop::state_dir().join("hadoop-real-node");
    let cluster = Cluster::private(
        &state,
        &["--renew-interval-ms", "20000", "--max-lifetime-ms", "60000"],
    );
    let plan = Options::new(&[NAMESPACE], ledger.name())
        .config("ledgerPeriodSeconds", json!(1))
        .on_node()
        .prepare(&cluster);
    let service = plan.start(0).await;
    let result =
        async {
            let mut template = objects::pod_template(id, "mallory", "Always");
            template["metadata"]["annotations"]["kube2hadoop.io/inject"] = "true".into();
            template["metadata"]["annotations"]["kube2hadoop.io/refresh"] = "true".into();
            template["spec"] = json!({
                "terminationGracePeriodSeconds": 0,
                "securityContext": {"runAsUser": APP_UID, "runAsGroup": APP_UID,
                                    "runAsNonRoot": true, "fsGroup": APP_FS_GROUP},
                "containers": [{"name": "app", "image": BUSYBOX,
                                "command": ["/bin/sh", "-c", WATCH_SCRIPT]}],
            });
            node.place(&mut template["spec"]);
            let mut deployment = serde_json::to_value(objects::deployment(id, "mallory")?)
                .map_err(|source| Error::Manifest {
                    kind: "Deployment",
                    source,
                })?;
            deployment["spec"]["template"] = template;
            let deployment: k8s_openapi::api::apps::v1::Deployment =
                serde_json::from_value(deployment).map_err(|source| Error::Manifest {
                    kind: "Deployment",
                    source,
                })?;
            Api::namespaced(bed.alice.clone(), NAMESPACE)
                .create(&PostParams::default(), &deployment)
                .await
                .step("alice creates a refreshed Deployment on the real node")?;
            let pod = e2e::pods::running_pods(&bed.admin, NAMESPACE, id, 1)
                .await?
                .remove(0)
                .metadata
                .name
                .unwrap_or_default();
            // The first file, then the one the sidecar writes after the re-issue (about 54 s in).
            let files = until(
                "the app to see a second, re-issued file",
                RUN_TIMEOUT,
                || async {
                    let seen = files_seen(bed, &pod).await?;
                    Ok::<_, Error>(if seen.len() >= 2 {
                        Poll::Ready(seen)
                    } else {
                        Poll::Pending(format!("{} file(s) seen", seen.len()))
                    })
                },
            )
            .await
            .map_err(|e| {
                Error::Check(format!(
                    "{e}\ntoken-service log:\n{}",
                    tail(&plan.log_file(0), 30)
                ))
            })?;
            let dir = tempfile::tempdir().expect("temp dir");
            let last = dir.path().join("reissued.token");
            std::fs::write(&last, &files[files.len() - 1].1).expect("write the file");
            let ls = cluster.client(&last, &["ls", "/user/alice"], Some(&state));
            ensure(ls.status.success(), || {
                format!(
                    "hadoop ls with the file the app saw after the re-issue:\n{}",
                    show(&ls)
                )
            })?;

            // alice deletes the Deployment: its tokens are cancelled, the file stops working.
            Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(bed.alice.clone(), NAMESPACE)
                .delete(id.name(), &kube::api::DeleteParams::background())
                .await
                .step("alice deletes the Deployment")?;
            until(
                "the ledger to cancel the Deployment's tokens",
                CANCEL_TIMEOUT,
                || async {
                    let cancelled = plan
                        .audit_lines()
                        .iter()
                        .any(|l| l["outcome"] == "cancelled");
                    Ok::<_, Error>(if cancelled {
                        Poll::Ready(())
                    } else {
                        Poll::Pending("no cancelled audit line".into())
                    })
                },
            )
            .await?;
            let ls = cluster.client(&last, &["ls", "/user/alice"], Some(&state));
            ensure(
                !ls.status.success() && show(&ls).contains("can't be found in cache"),
                || {
                    format!(
                        "hadoop ls after the Deployment was deleted should be refused:\n{}",
                        show(&ls)
                    )
                },
            )?;
            Ok::<_, Error>(())
        }
        .await;
    fx.teardown(service).await;
    e2e::hadoop::stop(&state);
    result.expect("a refreshed Deployment on the real node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_is_known_by_its_real_address_without_any_token() {
    let node = RealNode::from_env();
    let _turn = NODE_SERVICE.lock().await;
    let fx = Fixture::new("real-ip").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let cluster = Cluster::shared();
    let plan = Options::new(&[NAMESPACE], ledger.name())
        .on_node()
        .prepare(&cluster);
    let service = plan.start(0).await;
    let result = async {
        // No injection, no projected token: the fetcher image as a plain init container, which
        // the service can only know by the address it connects from.
        let ca = std::fs::read_to_string(plan.ca_file()).expect("the bed's CA");
        let name = format!("{}-ip", id.name());
        let mut value =
            serde_json::to_value(objects::pod(id, &name, "mallory")?).map_err(|source| {
                Error::Manifest {
                    kind: "Pod",
                    source,
                }
            })?;
        value["spec"] = json!({
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "securityContext": {"runAsUser": APP_UID, "runAsGroup": APP_UID,
                                "runAsNonRoot": true, "fsGroup": APP_FS_GROUP},
            "volumes": [{"name": "out", "emptyDir": {"medium": "Memory"}}],
            "initContainers": [{
                "name": "fetch",
                "image": "docker.io/kube2hadoop/init-fetcher:e2e",
                "args": ["fetch", "--url", format!("https://{}", node.token_service),
                         "--out", "/out/token", "--deadline", "60s"],
                "env": [{"name": "K2H_FETCH_CA_PEM", "value": ca}],
                "volumeMounts": [{"name": "out", "mountPath": "/out"}],
            }],
            "containers": [{
                "name": "app", "image": BUSYBOX, "command": ["/bin/sh", "-c", APP_SCRIPT],
                "env": [{"name": "HADOOP_TOKEN_FILE_LOCATION", "value": "/out/token"}],
                "volumeMounts": [{"name": "out", "mountPath": "/out", "readOnly": true}],
            }],
        });
        node.place(&mut value["spec"]);
        let pod: Pod = serde_json::from_value(value).map_err(|source| Error::Manifest {
            kind: "Pod",
            source,
        })?;
        Api::<Pod>::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &pod)
            .await
            .step("alice creates a pod that fetches by address")?;
        let seen = report(bed, &name).await.map_err(|e| {
            Error::Check(format!(
                "{e}\ntoken-service log:\n{}",
                tail(&plan.log_file(0), 30)
            ))
        })?;
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(
            file.path(),
            decode(seen.get("bytes").map(String::as_str).unwrap_or_default())?,
        )
        .expect("write the file");
        let ls = cluster.client(file.path(), &["ls", "/user/alice"], None);
        ensure(ls.status.success(), || {
            format!("hadoop ls with the file fetched by address:\n{}", show(&ls))
        })?;
        let stored = Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE)
            .get(&name)
            .await
            .step("reading the pod")?;
        let pod_ip = stored.status.and_then(|s| s.pod_ip).unwrap_or_default();
        let audit = plan.audit_lines();
        let line = audit
            .iter()
            .find(|l| l["outcome"] == "issued" && l["pod_name"] == name.as_str())
            .ok_or_else(|| Error::Check(format!("no `issued` audit line: {audit:#?}")))?;
        ensure(
            line["identity_method"] == "ip" && line["ip"] == pod_ip.as_str() && !pod_ip.is_empty(),
            || format!("expected identity by the pod's address {pod_ip}: {line:#}"),
        )?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(service).await;
    result.expect("a pod known by its real address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alices_pod_writes_and_reads_hdfs_with_the_stock_client_and_her_token() {
    let node = RealNode::from_env();
    let _turn = NODE_SERVICE.lock().await;
    let fx = Fixture::new("real-hdfs").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let cluster = Cluster::shared();
    let plan = Options::new(&[NAMESPACE], ledger.name())
        .on_node()
        .hdfs_for_pods()
        .prepare(&cluster);
    let service = plan.start(0).await;
    let config_maps =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(bed.admin.clone(), NAMESPACE);
    let conf_name = format!("{}-hadoop-conf", id.name());
    let result = async {
        create_hadoop_conf(&bed.admin, NAMESPACE, &conf_name, &cluster).await?;
        let name = format!("{}-app", id.name());
        let pod = hadoop_client_pod(
            &node,
            &cluster,
            id,
            &name,
            "mallory",
            &conf_name,
            HDFS_WRITE_READ,
        )?;
        let audit_from = cluster.audit_size();
        Api::<Pod>::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &pod)
            .await
            .step("alice creates a pod running the stock Hadoop client")?;
        let phase = finished(&bed.admin, NAMESPACE, &name, RUN_TIMEOUT).await?;
        let said = logs(&bed.admin, NAMESPACE, &name, "app").await?;
        let want = format!("read=written by uid {APP_UID} in pod {name}");
        ensure(phase == "Succeeded" && said.contains(&want), || {
            format!(
                "the app ended {phase}; its log:\n{said}\ntoken-service log:\n{}",
                tail(&plan.log_file(0), 20)
            )
        })?;
        // The NameNode saw alice, authenticated by a delegation token, create and open it.
        let audit = cluster.audit_since(audit_from);
        let path = format!("/user/alice/{name}.txt");
        for cmd in ["create", "open"] {
            let seen = audit.lines().any(|l| {
                l.contains("ugi=alice (auth:TOKEN)")
                    && l.contains(&format!("cmd={cmd}"))
                    && l.contains(&path)
            });
            ensure(seen, || {
                format!(
                    "no `{cmd}` of {path} by alice with a token in the NameNode audit log:\n{audit}"
                )
            })?;
        }
        Ok::<_, Error>(())
    }
    .await;
    let _ = config_maps
        .delete(&conf_name, &kube::api::DeleteParams::default())
        .await;
    fx.teardown(service).await;
    result.expect("alice's pod reading and writing HDFS");
}
