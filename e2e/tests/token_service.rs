//! The token service against the whole bed: the local control plane (`make e2e-up`), the
//! Kerberized HDFS (`e2e/scripts/hadoop-up.sh --kms --yarn`, started when not running) and slapd
//! (`e2e/scripts/ldap-up.sh`, started when not running). Each test builds and starts its own
//! token-service process on a free loopback port, serving namespaces team-a and kube2hadoop.
//!
//! Pods get loopback addresses 127.100.x.y from kwok, so "calling from the pod" means binding
//! the client socket to that address.

use std::net::IpAddr;

use e2e::fixture::Fixture;
use e2e::hadoop::{Cluster, show};
use e2e::ledger::LedgerNamespace;
use e2e::objects::{self, TEST_LABEL};
use e2e::pods::{bound_token, running_pods};
use e2e::token_service::{Answer, Launcher, Options};
use e2e::{Error, KubeStep, NAMESPACE, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};

const UNSERVED_NAMESPACE: &str = "default";
/// Served by the service's selector, but not covered by iddecorator's webhook: refused.
const UNDECORATED_NAMESPACE: &str = "kube2hadoop";

/// A token-service serving team-a and kube2hadoop, its ledger in the test's own namespace.
async fn start_service(ledger: &LedgerNamespace) -> Service {
    let launcher = Options::new(&[NAMESPACE, UNDECORATED_NAMESPACE], ledger.name())
        .pod_rate(600, 50)
        .prepare(&Cluster::shared());
    let process = launcher.start(0).await;
    Service { process, launcher }
}

/// The running process (killed when dropped, before its files go) and how to reach it.
struct Service {
    process: e2e::token_service::Service,
    launcher: Launcher,
}

impl Service {
    fn log_text(&self) -> String {
        self.process.log_tail(40)
    }

    async fn credentials(&self, from: Option<IpAddr>, bearer: Option<&str>, json: bool) -> Answer {
        self.launcher
            .request("POST", "/v1/credentials", from, bearer, json)
            .await
            .unwrap_or_else(|e| panic!("POST /v1/credentials failed: {e}\n{}", self.log_text()))
    }

    fn audit_lines(&self) -> Vec<serde_json::Value> {
        self.launcher.audit_lines()
    }
}

fn pod_ip(pod: &Pod) -> IpAddr {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .expect("a running pod has an IP")
}

/// Sequence numbers of the HDFS delegation tokens in a credentials file.
fn hdfs_sequence_numbers(file: &[u8]) -> Vec<i32> {
    let creds = hadoop_token::Credentials::decode(file).expect("the service serves an HDTS file");
    creds
        .tokens
        .iter()
        .map(|(_, t)| t)
        .filter(|t| t.kind == "HDFS_DELEGATION_TOKEN")
        .filter_map(|t| {
            hadoop_token::identifier::decode(&t.kind, &t.identifier)
                .ok()
                .flatten()
        })
        .map(|id| id.sequence_number)
        .collect()
}

/// Sequence numbers of `user`'s delegation tokens that NameNode audit lines since `offset`
/// record for `cmd` (`getDelegationToken`, `cancelDelegationToken`): "HDFS_DELEGATION_TOKEN
/// token 25 for alice ...". Other tests handle the same users' tokens at the same time, so
/// callers match these against their own.
fn audit_tokens_since(cluster: &Cluster, offset: usize, cmd: &str, user: &str) -> Vec<i32> {
    let marker = "HDFS_DELEGATION_TOKEN token ";
    let owner = format!(" for {user} ");
    cluster
        .audit_since(offset)
        .lines()
        .filter(|l| l.contains(&format!("cmd={cmd}\t")) && l.contains(&owner))
        .filter_map(|l| {
            let rest = &l[l.find(marker)? + marker.len()..];
            rest.split_once(' ')?.0.parse().ok()
        })
        .collect()
}

/// The tokens the NameNode issued for `user` since `offset`.
fn token_grants_since(cluster: &Cluster, offset: usize, user: &str) -> Vec<i32> {
    audit_tokens_since(cluster, offset, "getDelegationToken", user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_deployment_gets_one_token_set_by_sa_token_that_a_hadoop_client_uses() {
    let fx = Fixture::new("ts-sa").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let service = start_service(ledger).await;
    let cluster = Cluster::shared();
    let result = async {
        let before = cluster.audit_size();
        let deployments = Api::namespaced(bed.alice.clone(), NAMESPACE);
        deployments
            .create(&PostParams::default(), &objects::deployment(id, "alice")?)
            .await
            .step("alice creates a Deployment")?;
        let pods = running_pods(&bed.admin, NAMESPACE, id, 2).await?;
        let first = service
            .credentials(
                Some(pod_ip(&pods[0])),
                Some(&bound_token(&bed.admin, &pods[0]).await?),
                true,
            )
            .await;
        ensure(first.status == 200, || {
            format!("first pod: {}\n{}", first.text(), service.log_text())
        })?;
        let v: serde_json::Value = serde_json::from_slice(&first.body).expect("JSON answer");
        ensure(v["user"] == "alice", || format!("issued to {}", v["user"]))?;
        ensure(first.headers.contains_key("x-kube2hadoop-expires"), || {
            "no expiry header".into()
        })?;
        use base64::Engine;
        let file = base64::engine::general_purpose::STANDARD
            .decode(v["file"].as_str().unwrap_or_default())
            .expect("base64 file");

        let second = service
            .credentials(
                Some(pod_ip(&pods[1])),
                Some(&bound_token(&bed.admin, &pods[1]).await?),
                false,
            )
            .await;
        ensure(second.status == 200, || {
            format!("second pod: {}", second.text())
        })?;
        ensure(
            second
                .headers
                .get(hyper::header::CONTENT_TYPE)
                .map(|v| v.as_bytes())
                == Some(b"application/octet-stream".as_slice()),
            || "the file is served as application/octet-stream".into(),
        )?;
        ensure(second.body.as_ref() == file.as_slice(), || {
            "the second pod of the Deployment got a different token set".into()
        })?;

        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, &file).expect("write the credentials file");
        let ls = cluster.client(&token_file, &["ls", "/user/alice"], None);
        ensure(ls.status.success(), || {
            format!("hadoop ls /user/alice as alice:\n{}", show(&ls))
        })?;
        let ours = hdfs_sequence_numbers(&file);
        ensure(ours.len() == 1, || {
            format!("the token set holds HDFS tokens {ours:?}, expected one")
        })?;
        // This service serves only this test, so every HDFS token it got is this Deployment's.
        let served: std::collections::BTreeSet<i64> = service
            .audit_lines()
            .iter()
            .flat_map(|l| l["tokens"].as_array().cloned().unwrap_or_default())
            .filter(|t| t["kind"] == "HDFS_DELEGATION_TOKEN")
            .filter_map(|t| t["sequence_number"].as_i64())
            .collect();
        ensure(
            served.len() == 1 && served.contains(&i64::from(ours[0])),
            || format!("the service's audit names HDFS tokens {served:?}, expected only {ours:?}"),
        )?;
        let grants = token_grants_since(&cluster, before, "alice");
        let mine = grants.iter().filter(|s| **s == ours[0]).count();
        ensure(mine == 1, || {
            format!(
                "the NameNode audit shows token {} granted {mine} times (alice's grants since the \
                 test began: {grants:?}), expected once",
                ours[0]
            )
        })?;
        let outcomes: Vec<_> = service
            .audit_lines()
            .iter()
            .map(|l| l["outcome"].as_str().unwrap_or_default().to_owned())
            .collect();
        ensure(outcomes == ["issued", "reused"], || {
            format!("audit outcomes {outcomes:?}")
        })?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(service).await;
    result.expect("alice's Deployment by service-account token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_by_sa_token_say_why() {
    let fx = Fixture::new("ts-no").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let service = start_service(ledger).await;
    let result = async {
        let pods: Api<Pod> = Api::namespaced(bed.bob.clone(), NAMESPACE);
        // bob claims alice in the annotation; iddecorator writes bob.
        pods.create(
            &PostParams::default(),
            &objects::pod(id, &format!("{}-bob", id.name()), "alice")?,
        )
        .await
        .step("bob creates a pod claiming alice")?;
        let mut run_as = objects::pod(id, &format!("{}-runas", id.name()), "bob")?;
        run_as
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("kube2hadoop.io/run-as".into(), "svc-etl".into());
        pods.create(&PostParams::default(), &run_as)
            .await
            .step("bob creates a pod running as svc-etl")?;
        for (namespace, suffix) in [
            (UNDECORATED_NAMESPACE, "bare"),
            (UNSERVED_NAMESPACE, "unserved"),
        ] {
            let mut pod = objects::pod(id, &format!("{}-{suffix}", id.name()), "alice")?;
            pod.metadata.namespace = Some(namespace.into());
            pod.metadata.annotations = None;
            Api::<Pod>::namespaced(bed.admin.clone(), namespace)
                .create(&PostParams::default(), &pod)
                .await
                .step(format!("admin creates a pod in {namespace}"))?;
        }
        let team = running_pods(&bed.admin, NAMESPACE, id, 2).await?;
        let find = |pods: &[Pod], suffix: &str| {
            pods.iter()
                .find(|p| {
                    p.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.ends_with(suffix))
                })
                .cloned()
                .expect("the pod was created")
        };
        let bob = service
            .credentials(
                Some(pod_ip(&find(&team, "-bob"))),
                Some(&bound_token(&bed.admin, &find(&team, "-bob")).await?),
                true,
            )
            .await;
        ensure(bob.status == 200, || {
            format!("bob's own pod: {}", bob.text())
        })?;
        let v: serde_json::Value = serde_json::from_slice(&bob.body).expect("JSON");
        ensure(v["user"] == "bob", || {
            format!("bob's pod got tokens for {}", v["user"])
        })?;

        let refused = service
            .credentials(
                Some(pod_ip(&find(&team, "-runas"))),
                Some(&bound_token(&bed.admin, &find(&team, "-runas")).await?),
                false,
            )
            .await;
        ensure(
            refused.status == 403 && refused.code() == "run_as_refused",
            || format!("bob running as svc-etl: {}", refused.text()),
        )?;

        // Issue 13: a namespace the webhook skips is refused as such, before its pods'
        // annotations (here: none) are read.
        let bare = running_pods(&bed.admin, UNDECORATED_NAMESPACE, id, 1).await?;
        let answer = service
            .credentials(
                Some(pod_ip(&bare[0])),
                Some(&bound_token(&bed.admin, &bare[0]).await?),
                false,
            )
            .await;
        ensure(
            answer.status == 403
                && answer.code() == "namespace_not_covered"
                && answer.text().contains("namespace kube2hadoop"),
            || format!("pod in a namespace the webhook skips: {}", answer.text()),
        )?;

        let unserved = running_pods(&bed.admin, UNSERVED_NAMESPACE, id, 1).await?;
        let answer = service
            .credentials(
                Some(pod_ip(&unserved[0])),
                Some(&bound_token(&bed.admin, &unserved[0]).await?),
                false,
            )
            .await;
        ensure(
            answer.status == 403 && answer.code() == "namespace_not_served",
            || format!("pod in an unserved namespace: {}", answer.text()),
        )?;

        let answer = service.credentials(None, Some("not-a-token"), false).await;
        ensure(answer.status == 401, || {
            format!("garbage token: {}", answer.text())
        })?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(service).await;
    for namespace in [UNDECORATED_NAMESPACE, UNSERVED_NAMESPACE] {
        let _ = Api::<Pod>::namespaced(bed.admin.clone(), namespace)
            .delete_collection(
                &kube::api::DeleteParams::background(),
                &ListParams::default().labels(&format!("{TEST_LABEL}={}", id.name())),
            )
            .await;
    }
    result.expect("refusals by service-account token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_identified_by_source_address_and_impostors_refused() {
    let fx = Fixture::new("ts-ip").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let service = start_service(ledger).await;
    let result = async {
        Api::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &objects::deployment(id, "alice")?)
            .await
            .step("alice creates a Deployment")?;
        let mut host = objects::pod(id, &format!("{}-host", id.name()), "alice")?;
        host.metadata
            .labels
            .get_or_insert_default()
            .insert("app".into(), "host".into());
        if let Some(spec) = host.spec.as_mut() {
            spec.host_network = Some(true);
        }
        Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE)
            .create(&PostParams::default(), &host)
            .await
            .step("admin creates a hostNetwork pod")?;
        let pods = running_pods(&bed.admin, NAMESPACE, id, 3).await?;
        let (hosts, workers): (Vec<_>, Vec<_>) = pods.iter().partition(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false)
        });
        let mut files = Vec::new();
        for pod in workers.iter().take(2) {
            let answer = service.credentials(Some(pod_ip(pod)), None, false).await;
            ensure(answer.status == 200, || {
                format!(
                    "pod {:?} at {}: {}\n{}",
                    pod.metadata.name,
                    pod_ip(pod),
                    answer.text(),
                    service.log_text()
                )
            })?;
            files.push(answer.body.clone());
        }
        ensure(files.len() == 2 && files[0] == files[1], || {
            "one token set per Deployment".into()
        })?;
        let methods: Vec<_> = service
            .audit_lines()
            .iter()
            .map(|l| l["identity_method"].as_str().unwrap_or_default().to_owned())
            .collect();
        ensure(methods.iter().all(|m| m == "ip"), || {
            format!("identity methods {methods:?}")
        })?;

        let nobody: IpAddr = "127.100.255.254".parse().expect("ip");
        let answer = service.credentials(Some(nobody), None, false).await;
        ensure(
            answer.status == 401 && answer.code() == "unknown_address",
            || format!("a process at no pod's address: {}", answer.text()),
        )?;

        let host = hosts
            .first()
            .ok_or_else(|| Error::Check("the hostNetwork pod did not run".into()))?;
        let answer = service.credentials(Some(pod_ip(host)), None, false).await;
        ensure(
            answer.status >= 400
                && ["host_network", "ambiguous_address"].contains(&answer.code().as_str()),
            || format!("the hostNetwork pod at {}: {}", pod_ip(host), answer.text()),
        )?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(service).await;
    result.expect("identification by source address");
}

/// Token kinds in a credentials file, sorted.
fn kinds_in(file: &[u8]) -> Vec<String> {
    let creds = hadoop_token::Credentials::decode(file).expect("the service serves an HDTS file");
    let mut kinds: Vec<_> = creds.tokens.iter().map(|(_, t)| t.kind.clone()).collect();
    kinds.sort();
    kinds
}

/// `kube2hadoop.io/services` on the real control plane, with HDFS, the Kerberized YARN
/// ResourceManager and Hive metastore configured and `defaultServices: [hdfs]`: each of alice's
/// pods gets exactly the tokens it chose (the default without a choice), each choice is its own
/// ledger entry recording it, stock YarnClient and HiveMetaStoreClient with only the served file
/// list applications and databases, the
/// RM token is cancelled when its pod goes, and a service this token service does not issue
/// (`kms`, not configured here) is refused with a code the pod's owner can act on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pod_gets_exactly_the_services_it_chose() {
    let fx = Fixture::new("ts-svc").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let cluster = Cluster::shared();
    let yarn = cluster
        .yarn
        .clone()
        .expect("the shared Hadoop bed runs a ResourceManager (--yarn)");
    let rms: Vec<_> = yarn
        .resourcemanagers
        .iter()
        .map(|rm| serde_json::json!({"http": rm.http, "rpc": rm.rpc}))
        .collect();
    let launcher = Options::new(&[NAMESPACE], ledger.name())
        .pod_rate(600, 50)
        .config(
            "yarn",
            serde_json::json!([{"name": "yarn1", "resourceManagers": rms}]),
        )
        .config(
            "hive",
            cluster
                .hive
                .as_ref()
                .expect("the shared Hadoop bed runs a Hive metastore (--hive)")
                .service_config(),
        )
        .config("defaultServices", serde_json::json!(["hdfs"]))
        .config("ledgerPeriodSeconds", serde_json::json!(1))
        .prepare(&cluster);
    let service = Service {
        process: launcher.start(0).await,
        launcher,
    };
    let result = async {
        let api: Api<Pod> = Api::namespaced(bed.alice.clone(), NAMESPACE);
        let cases = [
            ("none", None, Ok((vec!["HDFS_DELEGATION_TOKEN"], "hdfs"))),
            ("yarn", Some("yarn"), Ok((vec!["RM_DELEGATION_TOKEN"], "yarn"))),
            (
                "both",
                Some(" YARN,hdfs"),
                Ok((vec!["HDFS_DELEGATION_TOKEN", "RM_DELEGATION_TOKEN"], "hdfs,yarn")),
            ),
            ("hive", Some("hive"), Ok((vec!["HIVE_DELEGATION_TOKEN"], "hive"))),
            ("kms", Some("hdfs,kms"), Err("service_not_configured")),
        ];
        for (suffix, services, _) in &cases {
            let mut pod = objects::pod(id, &format!("{}-{suffix}", id.name()), "alice")?;
            if let Some(s) = services {
                pod.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert("kube2hadoop.io/services".into(), (*s).into());
            }
            api.create(&PostParams::default(), &pod)
                .await
                .step(format!("alice creates pod {suffix}"))?;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let rm_file = dir.path().join("rm-token");
        let hive_file = dir.path().join("hive-token");
        for (suffix, services, want) in cases {
            let name = format!("{}-{suffix}", id.name());
            let (_, ip) = e2e::pods::running(
                &bed.admin,
                NAMESPACE,
                &name,
                std::time::Duration::from_secs(60),
            )
            .await?;
            let answer = service.credentials(Some(ip), None, false).await;
            match want {
                Ok((kinds, stored)) => {
                    ensure(answer.status == 200, || {
                        format!("pod {suffix}: {}\n{}", answer.text(), service.log_text())
                    })?;
                    let got = kinds_in(&answer.body);
                    ensure(got == kinds, || {
                        format!(
                            "pod {suffix} ({services:?}) got tokens {got:?}, expected {kinds:?}"
                        )
                    })?;
                    let records = ledger
                        .records(bed, &format!("Pod {NAMESPACE}/{name}"))
                        .await?;
                    let said: Vec<_> = records.iter().map(|r| r["services"].clone()).collect();
                    ensure(said == [serde_json::json!(stored)], || {
                        format!("pod {suffix}: ledger records say services {said:?}, expected [{stored}]")
                    })?;
                    if suffix == "yarn" {
                        std::fs::write(&rm_file, &answer.body).expect("write the RM token file");
                    }
                    if suffix == "hive" {
                        std::fs::write(&hive_file, &answer.body).expect("write the Hive token file");
                    }
                }
                Err(code) => {
                    ensure(answer.status == 403 && answer.code() == code, || {
                        format!(
                            "pod {suffix}: expected 403 {code}, got {} {}",
                            answer.status,
                            answer.text()
                        )
                    })?;
                    ensure(answer.text().contains("kms"), || {
                        format!("the refusal does not name the service: {}", answer.text())
                    })?;
                }
            }
        }
        let rm_arg = rm_file.to_string_lossy().into_owned();
        let apps = cluster.client(&rm_file, &["yarn-apps", "--tokens", &rm_arg], None);
        ensure(
            apps.status.success() && String::from_utf8_lossy(&apps.stdout).starts_with("as alice"),
            || format!("yarn-apps with the served file:\n{}", show(&apps)),
        )?;
        let dbs = cluster.hive_client(&hive_file, &["dbs"], None);
        ensure(
            dbs.status.success() && String::from_utf8_lossy(&dbs.stdout).contains("db\tdefault"),
            || format!("a stock metastore client with the served file:\n{}", show(&dbs)),
        )?;
        // The pod goes: its set (the RM token) is cancelled and its ledger entry removed.
        let yarn_pod = format!("{}-yarn", id.name());
        api.delete(&yarn_pod, &kube::api::DeleteParams::default())
            .await
            .step("alice deletes the yarn pod")?;
        e2e::wait::until(
            "the yarn pod's ledger entry to go",
            std::time::Duration::from_secs(90),
            || async {
                let left = ledger
                    .records(bed, &format!("Pod {NAMESPACE}/{yarn_pod}"))
                    .await?;
                Ok::<_, Error>(if left.is_empty() {
                    e2e::wait::Poll::Ready(())
                } else {
                    e2e::wait::Poll::Pending(format!("{} left", left.len()))
                })
            },
        )
        .await?;
        let refused = cluster.client(&rm_file, &["yarn-apps", "--tokens", &rm_arg], None);
        ensure(
            !refused.status.success() && show(&refused).contains("can't be found in cache"),
            || format!("yarn-apps after the pod went should be refused:\n{}", show(&refused)),
        )?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(service).await;
    result.expect("each pod gets exactly the services it chose");
}

/// A ResourceManager or a Hive metastore that is down fails only the pods that chose it, with a
/// 503 the fetcher retries, and leaves nothing behind: the HDFS token obtained alongside is
/// cancelled at the real NameNode and no ledger entry is written. Pods that chose neither are
/// served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_down_fails_only_its_pods_and_leaves_no_token_behind() {
    let fx = Fixture::new("ts-rmdown").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let cluster = Cluster::shared();
    let dead_port = || {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        dead.local_addr().expect("addr").port()
    };
    let (port, hms_port) = (dead_port(), dead_port());
    let launcher = Options::new(&[NAMESPACE], ledger.name())
        .pod_rate(600, 50)
        .config(
            "yarn",
            serde_json::json!([{"name": "down", "resourceManagers": [
                {"http": format!("http://127.0.0.1:{port}"), "rpc": format!("127.0.0.1:{port}")}
            ]}]),
        )
        .config(
            "hive",
            serde_json::json!([{"name": "down", "principal": "hive/_HOST@EXAMPLE.COM",
                "metastores": [format!("thrift://127.0.0.1:{hms_port}")]}]),
        )
        .prepare(&cluster);
    let service = Service {
        process: launcher.start(0).await,
        launcher,
    };
    let result = async {
        let api: Api<Pod> = Api::namespaced(bed.alice.clone(), NAMESPACE);
        for (suffix, services) in [("rm", "hdfs,yarn"), ("hms", "hdfs,hive"), ("hdfs", "hdfs")] {
            let mut pod = objects::pod(id, &format!("{}-{suffix}", id.name()), "alice")?;
            pod.metadata
                .annotations
                .get_or_insert_default()
                .insert("kube2hadoop.io/services".into(), services.into());
            api.create(&PostParams::default(), &pod)
                .await
                .step(format!("alice creates pod {suffix}"))?;
        }
        for down in ["rm", "hms"] {
            let before = cluster.audit_size();
            let pod = format!("{}-{down}", id.name());
            let (_, ip) = e2e::pods::running(
                &bed.admin,
                NAMESPACE,
                &pod,
                std::time::Duration::from_secs(60),
            )
            .await?;
            let answer = service.credentials(Some(ip), None, false).await;
            ensure(
                answer.status == 503 && answer.code() == "hadoop_unavailable",
                || {
                    format!(
                        "pod {down}: expected 503 hadoop_unavailable, got {} {}",
                        answer.status,
                        answer.text()
                    )
                },
            )?;
            // Other suites get and cancel alice's tokens at the same time: look for one
            // granted and cancelled within this request.
            let granted = token_grants_since(&cluster, before, "alice");
            let cancelled = audit_tokens_since(&cluster, before, "cancelDelegationToken", "alice");
            ensure(granted.iter().any(|g| cancelled.contains(g)), || {
                format!(
                    "pod {down}: the HDFS token obtained beside the failed call must be \
                     cancelled: alice's grants {granted:?}, cancels {cancelled:?} in the \
                     NameNode audit"
                )
            })?;
            let records = ledger
                .records(bed, &format!("Pod {NAMESPACE}/{pod}"))
                .await?;
            ensure(records.is_empty(), || {
                format!("pod {down}: a failed set left ledger records: {records:?}")
            })?;
        }
        let hdfs = format!("{}-hdfs", id.name());
        let (_, ip) = e2e::pods::running(
            &bed.admin,
            NAMESPACE,
            &hdfs,
            std::time::Duration::from_secs(60),
        )
        .await?;
        let answer = service.credentials(Some(ip), None, false).await;
        ensure(answer.status == 200, || {
            format!("the hdfs-only pod: {} {}", answer.status, answer.text())
        })?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(service).await;
    result.expect("a service down fails only its pods");
}
