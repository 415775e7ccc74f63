//! Pods as a token client sees them: running, with an IP, and connections made *from* that IP.
//! On the local bed pod IPs are loopback addresses (127.100.0.0/16), so this process can bind a
//! socket to a pod's IP and a server sees the pod as the peer.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use tokio::net::{TcpSocket, TcpStream};

use crate::wait::{self, Poll, until};
use crate::{Error, KubeStep, NAMESPACE, TestId};

/// Wait until the pod is Running and has an IP; returns the pod and its IP.
pub async fn running(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(Pod, IpAddr), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!("pod {namespace}/{name} to be Running with an IP");
    wait::until(&what, timeout, || async {
        let pod = api
            .get(name)
            .await
            .step(format!("reading pod {namespace}/{name}"))?;
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.clone()).unwrap_or_default();
        let ip = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        Ok::<_, Error>(match ip {
            Some(ip) if phase == "Running" => Poll::Ready((pod, ip)),
            _ => Poll::Pending(format!("phase {phase:?}, ip {ip:?}")),
        })
    })
    .await
}

/// Open a TCP connection to `to` whose source address is `from` (a pod's IP on the local bed).
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if from.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// How long the tests' pods may take to run on kwok.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(90);

/// Waits until `n` pods labelled for `id` in `namespace` run with an address, and returns them.
pub async fn running_pods(
    admin: &Client,
    namespace: &str,
    id: &TestId,
    n: usize,
) -> Result<Vec<Pod>, Error> {
    let api: Api<Pod> = Api::namespaced(admin.clone(), namespace);
    let lp = ListParams::default().labels(&id.selector());
    until(
        &format!("{n} running pods of {}", id.name()),
        RUNNING_TIMEOUT,
        || {
            let (api, lp) = (api.clone(), lp.clone());
            async move {
                let pods = api.list(&lp).await.step("listing the test's pods")?.items;
                let ready: Vec<Pod> = pods
                    .iter()
                    .filter(|p| {
                        let s = p.status.as_ref();
                        s.and_then(|s| s.phase.as_deref()) == Some("Running")
                            && s.and_then(|s| s.pod_ip.as_deref()).is_some()
                            && p.metadata.deletion_timestamp.is_none()
                    })
                    .cloned()
                    .collect();
                Ok::<_, Error>(if ready.len() >= n {
                    Poll::Ready(ready)
                } else {
                    Poll::Pending(format!("{} of {} pods running", ready.len(), pods.len()))
                })
            }
        },
    )
    .await
}

/// Where the bed's PKI is (`e2e/.state/pki`), with a client certificate per node.
const PKI_ENV: &str = "K2H_E2E_PKI";

/// A client acting as the kubelet of `node` (`system:node:<node>` in `system:nodes`): with the
/// node's client certificate from the bed's PKI (`node-<node>.crt`, made by pki.sh), else, on a
/// cluster without those files (kind), as admin impersonating the node. The cluster is the
/// `admin` context's of `KUBECONFIG`.
pub async fn node_client(node: &str) -> Result<Client, Error> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::Check(format!("client for node {node}: {what}: {e}"))
    };
    let kubeconfig = Kubeconfig::read().map_err(|e| fail("reading KUBECONFIG", &e))?;
    let options = KubeConfigOptions {
        context: Some("admin".into()),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| fail("the admin context", &e))?;
    let pki = std::env::var_os(PKI_ENV).map(std::path::PathBuf::from);
    let cert = pki.as_ref().map(|p| p.join(format!("node-{node}.crt")));
    match (cert, pki) {
        (Some(cert), Some(pki)) if cert.exists() => {
            config.auth_info = AuthInfo {
                client_certificate: Some(cert.display().to_string()),
                client_key: Some(pki.join(format!("node-{node}.key")).display().to_string()),
                ..AuthInfo::default()
            };
        }
        _ => {
            config.auth_info.impersonate = Some(format!("system:node:{node}"));
            config.auth_info.impersonate_groups = Some(vec!["system:nodes".into()]);
        }
    }
    config.read_timeout = Some(Duration::from_secs(30));
    Client::try_from(config).map_err(|e| fail("building it", &e))
}

/// A TokenRequest for a 10-minute token bound to `pod`, for `audience`.
pub fn token_request(pod: &Pod, audience: &str) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_owned()],
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            expiration_seconds: Some(600),
        },
        ..TokenRequest::default()
    }
}

/// A service-account token bound to `pod`, for our audience (what a projected volume holds),
/// minted as the kubelet would: by the node the pod is bound to. Only nodes may mint tokens
/// for our audience (iddecorator's tokens webhook), and a node only for its own pods (Node
/// authorizer, NodeRestriction). `admin` reads the pod's node when `pod` lacks it.
pub async fn bound_token(admin: &Client, pod: &Pod) -> Result<String, Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or(NAMESPACE);
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let node = match pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
        Some(n) => n,
        None => Api::<Pod>::namespaced(admin.clone(), namespace)
            .get(name)
            .await
            .step(format!("reading pod {namespace}/{name} for its node"))?
            .spec
            .and_then(|s| s.node_name)
            .ok_or_else(|| {
                Error::Check(format!(
                    "pod {namespace}/{name} is not bound to a node: no kubelet could mint its token"
                ))
            })?,
    };
    let node_client = node_client(&node).await?;
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(node_client, namespace);
    let request = token_request(pod, "kube2hadoop");
    let answer = api
        .create_token_request(&sa, &PostParams::default(), &request)
        .await
        .step(format!(
            "requesting a bound service-account token as node {node}"
        ))?;
    answer
        .status
        .map(|s| s.token)
        .ok_or_else(|| Error::Check("TokenRequest returned no token".into()))
}

/// The bed's real node (e2e/scripts/node.sh), from the variables up.sh's env file sets.
#[derive(Debug, Clone)]
pub struct RealNode {
    pub name: String,
    /// The bridge address: the host as the node's pods reach it.
    pub gateway: IpAddr,
    /// Where the bed's injection sends fetchers (`Options::on_node` serves there).
    pub token_service: SocketAddr,
}

/// Image of the real node's test containers (a static busybox; `images.sh bed`).
pub const BUSYBOX: &str = "docker.io/kube2hadoop-e2e/busybox:e2e";

impl RealNode {
    /// The real node, or a panic that says how to get one.
    pub fn from_env() -> RealNode {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: this test needs the bed's real node \
                     (make e2e-up as root, without K2H_E2E_REAL_NODE=0; source e2e/.state/env)"
                )
            })
        };
        fn parse<T: std::str::FromStr>(name: &str, text: String) -> T
        where
            T::Err: std::fmt::Display,
        {
            text.parse()
                .unwrap_or_else(|e| panic!("{name}={text:?} is not an address: {e}"))
        }
        RealNode {
            name: var("K2H_E2E_NODE"),
            gateway: parse("K2H_E2E_NODE_GATEWAY", var("K2H_E2E_NODE_GATEWAY")),
            token_service: parse(
                "K2H_E2E_NODE_TOKEN_SERVICE",
                var("K2H_E2E_NODE_TOKEN_SERVICE"),
            ),
        }
    }

    /// Puts a pod spec on this node: its selector, the toleration of its taint, and
    /// `imagePullPolicy: Never` on every container (the node imports images, it pulls none).
    pub fn place(&self, spec: &mut serde_json::Value) {
        spec["nodeSelector"] = serde_json::json!({"kube2hadoop.io/real-node": "true"});
        spec["tolerations"] = serde_json::json!([
            {"key": "kube2hadoop.io/real-node", "operator": "Exists", "effect": "NoSchedule"}
        ]);
        for field in ["initContainers", "containers"] {
            if let Some(list) = spec[field].as_array_mut() {
                for c in list {
                    c["imagePullPolicy"] = "Never".into();
                }
            }
        }
    }
}

/// Image of the stock Hadoop client (FsShell on a jlink JRE; `images.sh hadoop-client`).
pub const HADOOP_CLIENT: &str = "docker.io/kube2hadoop-e2e/hadoop-client:e2e";

/// The uid and group of the app containers the real-node tests run (not the fetcher's).
pub const APP_UID: i64 = 1000;
pub const APP_FS_GROUP: i64 = 2000;

/// Writes `/user/alice/<pod>.txt` with the stock client and prints `read=<what it read back>`.
pub const HDFS_WRITE_READ: &str = r#"set -e
f=/user/alice/$POD_NAME.txt
echo "written by uid $(id -u) in pod $POD_NAME" | hdfs dfs -put -f - "$f"
echo "read=$(hdfs dfs -cat "$f")"
"#;

/// The Hadoop bed's client config for pods (`pod-conf/`: core-site, hdfs-site, krb5.conf) as a
/// ConfigMap named `name` in `namespace`.
pub async fn create_hadoop_conf(
    admin: &Client,
    namespace: &str,
    name: &str,
    cluster: &crate::hadoop::Cluster,
) -> Result<(), Error> {
    let dir = cluster.pod_hadoop_conf_dir.clone().ok_or_else(|| {
        Error::Check("the Hadoop bed has no pod config (started without the real node?)".into())
    })?;
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let conf: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "data": {"core-site.xml": read("core-site.xml"), "hdfs-site.xml": read("hdfs-site.xml"),
                 "krb5.conf": read("krb5.conf")},
    }))
    .map_err(|source| Error::Manifest {
        kind: "ConfigMap",
        source,
    })?;
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &conf)
        .await
        .step("creating the pods' Hadoop client config")?;
    Ok(())
}

/// A pod of test `id` asking for injection (claiming `claimed_user`) on the real node, whose app
/// runs `script` with the stock Hadoop client as [`APP_UID`], with the ConfigMap `conf` (see
/// [`create_hadoop_conf`]) as its Hadoop config and the DataNode's name mapped to the gateway.
pub fn hadoop_client_pod(
    node: &RealNode,
    cluster: &crate::hadoop::Cluster,
    id: &TestId,
    name: &str,
    claimed_user: &str,
    conf: &str,
    script: &str,
) -> Result<Pod, Error> {
    let manifest = |source| Error::Manifest {
        kind: "Pod",
        source,
    };
    let mut value =
        serde_json::to_value(crate::objects::pod(id, name, claimed_user)?).map_err(manifest)?;
    value["metadata"]["annotations"]["kube2hadoop.io/inject"] = "true".into();
    let datanode = cluster.pod_datanode_hostname.clone().unwrap_or_default();
    value["spec"] = serde_json::json!({
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "securityContext": {"runAsUser": APP_UID, "runAsGroup": APP_UID,
                            "runAsNonRoot": true, "fsGroup": APP_FS_GROUP},
        "hostAliases": [{"ip": node.gateway.to_string(), "hostnames": [datanode]}],
        "volumes": [{"name": "hadoop-conf", "configMap": {"name": conf}}],
        "containers": [{
            "name": "app",
            "image": HADOOP_CLIENT,
            "command": ["/bin/sh", "-c", script],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "volumeMounts": [{"name": "hadoop-conf", "mountPath": "/etc/hadoop/conf", "readOnly": true}],
            "resources": {"limits": {"memory": "400Mi"}},
        }],
    });
    node.place(&mut value["spec"]);
    serde_json::from_value(value).map_err(manifest)
}

/// Waits until pod `namespace/name` has ended and returns its phase (Succeeded or Failed).
pub async fn finished(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<String, Error> {
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    until(&format!("pod {name} to finish"), timeout, || async {
        let pod = api.get(name).await.step(format!("reading pod {name}"))?;
        let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
        Ok::<_, Error>(match phase.as_str() {
            "Succeeded" | "Failed" => Poll::Ready(phase),
            _ => Poll::Pending(format!("phase {phase:?}")),
        })
    })
    .await
}

/// The log of `container` in pod `namespace/name`, as the kubelet serves it.
pub async fn logs(
    client: &Client,
    namespace: &str,
    name: &str,
    container: &str,
) -> Result<String, Error> {
    let params = kube::api::LogParams {
        container: Some(container.to_owned()),
        ..kube::api::LogParams::default()
    };
    Api::<Pod>::namespaced(client.clone(), namespace)
        .logs(name, &params)
        .await
        .step(format!(
            "reading the log of {namespace}/{name} container {container}"
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_from_a_loopback_alias() -> std::io::Result<()> {
        // Linux routes all of 127/8 to lo: any address in it works as a source.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let to = listener.local_addr()?;
        let from: IpAddr = "127.100.7.9".parse().map_err(std::io::Error::other)?;
        let (_client, accepted) = tokio::join!(connect_from(from, to), listener.accept());
        assert_eq!(accepted?.1.ip(), from);
        Ok(())
    }
}
