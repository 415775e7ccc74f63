//! init-fetcher end to end (issue 6): iddecorator injects the fetcher into alice's Deployment,
//! and the real `init-fetcher fetch` binary, run with the identity of one of its pods (a bound
//! service-account token, as the injected projected volume holds), writes a credentials file that
//! the stock Hadoop client uses as alice.
//!
//! Needs the whole bed: the control plane (`make e2e-up`), the Kerberized HDFS
//! (`e2e/scripts/hadoop-up.sh --kms`, started when not running) and slapd
//! (`e2e/scripts/ldap-up.sh`, started when not running). kwok runs no containers, so the test
//! runs the fetcher itself, as the pod's init container would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use e2e::objects;
use e2e::wait::{Poll, until};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use serde::Deserialize;

const POD_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest a fetcher run may take before the test gives up on it (its own deadline is shorter).
const FETCH_TIMEOUT: Duration = Duration::from_secs(240);
const INJECT: &str = "kube2hadoop.io/inject";
const TOKEN_FILE: &str = "/var/run/secrets/hadoop/token";
/// Exit code of `init-fetcher fetch` when the service refuses (init-fetcher/README.md).
const EXIT_REFUSED: i32 = 2;

fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Deserialize)]
struct Cluster {
    service_principal: String,
    service_keytab: PathBuf,
    krb5_conf: PathBuf,
    nameservices: Vec<NameService>,
    hadoop_conf_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
struct NameService {
    name: Option<String>,
    namenodes: Vec<NameNodeJson>,
}

#[derive(Debug, Deserialize)]
struct NameNodeJson {
    rpc: String,
    http: String,
}

fn show(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a bed script and returns its stdout; a failure ends the test with the script's words.
fn script(name: &str, args: &[&str]) -> String {
    let path = e2e_dir().join("scripts").join(name);
    let out = Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed (e2e/scripts/install-deps.sh installs what it needs):\n{}",
        path.display(),
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn hadoop_bed() -> Cluster {
    // Same flags as the other Hadoop tests, so a running bed is reused rather than restarted.
    let path = PathBuf::from(script("hadoop-up.sh", &["--kms"]));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a cluster.json: {e}", path.display()))
}

fn ldap_bed() -> HashMap<String, String> {
    let env_file = PathBuf::from(script("ldap-up.sh", &[]));
    std::fs::read_to_string(&env_file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", env_file.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var_os("KUBECONFIG").unwrap_or_else(|| {
        panic!("KUBECONFIG is not set: run `make e2e-up` and `source e2e/.state/env`")
    }))
}

/// Builds one of the workspace's binaries (debug) and returns its path.
fn binary(package: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "-p",
            package,
            "--bin",
            package,
            "--message-format=short",
        ])
        .current_dir(e2e_dir().join(".."))
        .output()
        .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
    assert!(
        out.status.success(),
        "building {package} failed:\n{}",
        show(&out)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e_dir().join("../target"));
    target.join("debug").join(package)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Everything a token service needs except the process: address, TLS files, config. Made first
/// so a fetcher can be pointed at a service that is not up yet.
struct Plan {
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Plan {
    fn new() -> Plan {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("rcgen");
        std::fs::write(dir.path().join("tls.crt"), key.cert.pem()).expect("write cert");
        std::fs::write(dir.path().join("tls.key"), key.signing_key.serialize_pem())
            .expect("write key");
        Plan {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The service's certificate, which is its own CA here.
    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("service.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Starts token-service serving team-a; the fetcher's retries cover its warm-up.
    fn start(&self, cluster: &Cluster) -> Service {
        let ldap = ldap_bed();
        let nameservices: Vec<_> = cluster
            .nameservices
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                serde_json::json!({
                    "name": ns.name.clone().unwrap_or_else(|| format!("nn{i}")),
                    "namenodes": ns.namenodes.iter()
                        .map(|nn| serde_json::json!({"http": nn.http, "rpc": nn.rpc}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let config = serde_json::json!({
            "nameservices": nameservices,
            "kerberos": {
                "principal": cluster.service_principal,
                "keytab": cluster.service_keytab,
                "krb5Conf": cluster.krb5_conf,
            },
            "ldap": {
                "url": ldap["K2H_LDAP_URL"],
                "bindDn": ldap["K2H_LDAP_BIND_DN"],
                "bindPasswordFile": ldap["K2H_LDAP_BIND_PASSWORD_FILE"],
                "baseDn": format!("ou=people,{}", ldap["K2H_LDAP_BASE_DN"]),
                "groupBaseDn": format!("ou=groups,{}", ldap["K2H_LDAP_BASE_DN"]),
                "allowedGroup": "hadoop-users",
            },
        });
        // JSON is YAML.
        let config_file = self.dir.path().join("config.yaml");
        std::fs::write(&config_file, config.to_string()).expect("write config");
        let child = Command::new(binary("token-service"))
            .arg("--config")
            .arg(&config_file)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--tls-cert-file")
            .arg(self.ca_file())
            .arg("--tls-key-file")
            .arg(self.dir.path().join("tls.key"))
            .arg("--kubeconfig")
            .arg(kubeconfig())
            .args(["--kube-context", "admin"])
            .args([
                "--namespace-selector",
                "kubernetes.io/metadata.name in (team-a)",
            ])
            .arg("--audit-log")
            .arg(self.dir.path().join("audit.log"))
            .env("RUST_LOG", "info,token_service=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log_file()).expect("service log"))
            .spawn()
            .expect("start token-service");
        Service { child }
    }
}

/// A running token-service process, killed when dropped.
struct Service {
    child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the fetcher proves which pod it runs as.
enum Identity<'a> {
    /// A projected token bound to the pod (what the injected container uses).
    SaToken(&'a Path),
    /// The pod's address: the fetcher connects from it (`--source-address`).
    Address(&'a str),
}

/// `init-fetcher fetch` as the injected init container runs it, but with host paths.
fn fetcher(plan: &Plan, who: Identity, out: &Path, deadline: &str) -> Command {
    let mut cmd = Command::new(binary("init-fetcher"));
    cmd.arg("fetch")
        .arg("--url")
        .arg(plan.url())
        .arg("--ca-file")
        .arg(plan.ca_file());
    match who {
        Identity::SaToken(file) => cmd.arg("--sa-token-file").arg(file),
        Identity::Address(ip) => cmd.args(["--source-address", ip]),
    };
    cmd.arg("--out")
        .arg(out)
        .args(["--deadline", deadline])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for a started fetcher without blocking the runtime; kills it after `FETCH_TIMEOUT`.
async fn finish(child: Child) -> Output {
    let pid = child.id();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(FETCH_TIMEOUT, waiting).await {
        Ok(joined) => joined
            .expect("the waiting thread")
            .expect("wait for init-fetcher"),
        Err(_) => {
            // Our own child: end it by pid so the test does not leave it behind.
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!(
                "init-fetcher still running after {}s",
                FETCH_TIMEOUT.as_secs()
            )
        }
    }
}

async fn run(cmd: &mut Command) -> Output {
    finish(cmd.spawn().expect("start init-fetcher")).await
}

/// Waits until `n` pods labelled for `id` run with an address, and returns them.
async fn running_pods(bed: &Bed, id: &TestId, n: usize) -> Result<Vec<Pod>, Error> {
    let api: Api<Pod> = Api::namespaced(bed.admin.clone(), NAMESPACE);
    let lp = ListParams::default().labels(&id.selector());
    until(
        &format!("{n} running pods of {}", id.name()),
        POD_TIMEOUT,
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

/// What the injected projected volume would hold: a token bound to `pod`, audience kube2hadoop,
/// written to `dir/sa-token`.
async fn bound_token_file(bed: &Bed, pod: &Pod, dir: &Path) -> Result<PathBuf, Error> {
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(bed.admin.clone(), NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["kube2hadoop".into()],
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            expiration_seconds: Some(600),
        },
        ..TokenRequest::default()
    };
    let token = api
        .create_token_request(&sa, &PostParams::default(), &request)
        .await
        .step("requesting a bound service-account token")?
        .status
        .map(|s| s.token)
        .ok_or_else(|| Error::Check("TokenRequest returned no token".into()))?;
    let path = dir.join("sa-token");
    std::fs::write(&path, token).map_err(|e| Error::Check(format!("write SA token: {e}")))?;
    Ok(path)
}

/// alice's Deployment whose template says only `kube2hadoop.io/inject: "true"` (besides the
/// test's labels and the claim iddecorator overwrites).
fn injected_deployment(id: &TestId) -> Result<Deployment, Error> {
    let mut d = objects::deployment(id, "alice")?;
    let template = d
        .spec
        .as_mut()
        .map(|s| &mut s.template.metadata)
        .ok_or_else(|| Error::Check("test Deployment without a template".into()))?;
    template
        .get_or_insert_default()
        .annotations
        .get_or_insert_default()
        .insert(INJECT.into(), "true".into());
    Ok(d)
}

/// Checks that a stored pod holds the whole injected spec; returns what is missing.
fn injection_gaps(pod: &Pod) -> Vec<String> {
    let v = serde_json::to_value(pod).unwrap_or_default();
    let spec = &v["spec"];
    let mut gaps = Vec::new();
    let volume = |name: &str| {
        spec["volumes"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == name))
            .cloned()
    };
    match volume("kube2hadoop-token") {
        Some(v) if v["emptyDir"]["medium"] == "Memory" => {}
        other => gaps.push(format!("token volume as in-memory emptyDir: {other:?}")),
    }
    let sa_ok = volume("kube2hadoop-sa-token").is_some_and(|v| {
        v["projected"]["sources"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["serviceAccountToken"]["audience"] == "kube2hadoop")
        })
    });
    if !sa_ok {
        gaps.push("projected SA token volume with audience kube2hadoop".into());
    }
    let empty = Vec::new();
    let inits = spec["initContainers"].as_array().unwrap_or(&empty);
    match inits.iter().find(|c| c["name"] == "kube2hadoop-fetcher") {
        Some(f) => {
            let args: Vec<&str> = f["args"]
                .as_array()
                .map(|a| a.iter().filter_map(|a| a.as_str()).collect())
                .unwrap_or_default();
            for flag in ["--url", "--ca-file", "--sa-token-file", "--out"] {
                if !args.contains(&flag) {
                    gaps.push(format!("fetcher args without {flag}: {args:?}"));
                }
            }
            if args.first() != Some(&"fetch") {
                gaps.push(format!("fetcher does not run `fetch`: {args:?}"));
            }
            let mounts_sa = f["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["name"] == "kube2hadoop-sa-token"));
            if !mounts_sa {
                gaps.push("fetcher does not mount the SA token".into());
            }
        }
        None => gaps.push("no kube2hadoop-fetcher init container".into()),
    }
    for c in spec["containers"].as_array().unwrap_or(&empty) {
        let name = c["name"].as_str().unwrap_or("?");
        let mounted = c["volumeMounts"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["name"] == "kube2hadoop-token" && m["readOnly"] == true)
        });
        if !mounted {
            gaps.push(format!("container {name}: no read-only token mount"));
        }
        let env = c["env"].as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e["name"] == "HADOOP_TOKEN_FILE_LOCATION" && e["value"] == TOKEN_FILE)
        });
        if !env {
            gaps.push(format!("container {name}: no HADOOP_TOKEN_FILE_LOCATION"));
        }
        let sees_sa = c["volumeMounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["name"] == "kube2hadoop-sa-token"));
        if sees_sa {
            gaps.push(format!("container {name} mounts the fetcher's SA token"));
        }
    }
    gaps
}

fn hadoop_ls(cluster: &Cluster, token_file: &Path, path: &str) -> Output {
    let script = e2e_dir().join("scripts/hadoop-client.sh");
    Command::new(&script)
        .args(["ls", path])
        .env("HADOOP_TOKEN_FILE_LOCATION", token_file)
        .env("HADOOP_CONF_DIR", &cluster.hadoop_conf_dir)
        .env("KRB5_CONFIG", &cluster.krb5_conf)
        .env_remove("KRB5_CLIENT_KTNAME")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
}

fn print_file(file: &Path) -> Output {
    Command::new(binary("init-fetcher"))
        .arg("print")
        .arg(file)
        .arg("--json")
        .output()
        .expect("run init-fetcher print")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_deployment_pod_fetches_a_file_hadoop_uses_even_when_the_service_comes_late() {
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let cluster = hadoop_bed();
    let id = TestId::new("fetch");
    let result = async {
        Api::<Deployment>::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &injected_deployment(&id)?)
            .await
            .step("alice creates a Deployment with only the inject annotation")?;
        let pods = running_pods(&bed, &id, 1).await?;
        for pod in &pods {
            let gaps = injection_gaps(pod);
            ensure(gaps.is_empty(), || {
                format!("stored pod {:?} lacks: {gaps:#?}", pod.metadata.name)
            })?;
            ensure(objects::user_of(&pod.metadata) == Some("alice"), || {
                format!("pod annotated for {:?}", objects::user_of(&pod.metadata))
            })?;
        }

        // The service is down when the pod "starts" and comes up 20 s later.
        let plan = Plan::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let sa_token = bound_token_file(&bed, &pods[0], dir.path()).await?;
        let out = dir.path().join("hadoop").join("token");
        std::fs::create_dir_all(out.parent().expect("a parent")).expect("output dir");
        let child = fetcher(&plan, Identity::SaToken(&sa_token), &out, "150s")
            .spawn()
            .expect("start init-fetcher");
        tokio::time::sleep(Duration::from_secs(20)).await;
        let early = out.exists();
        let _service = plan.start(&cluster);
        let fetched = finish(child).await;
        ensure(!early, || {
            "a file was written while no service was up".into()
        })?;
        ensure(fetched.status.success(), || {
            format!(
                "init-fetcher fetch:\n{}\ntoken-service log:\n{}",
                show(&fetched),
                plan.log_tail()
            )
        })?;
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out)
            .map(|m| m.permissions().mode() & 0o777)
            .map_err(|e| Error::Check(format!("no file at {}: {e}", out.display())))?;
        ensure(mode == 0o440, || {
            format!("file mode {mode:o}, expected 440")
        })?;

        let printed = print_file(&out);
        let text = String::from_utf8_lossy(&printed.stdout);
        ensure(
            printed.status.success() && text.contains("\"alice\""),
            || {
                format!(
                    "init-fetcher print names no owner alice:\n{}",
                    show(&printed)
                )
            },
        )?;
        let ls = hadoop_ls(&cluster, &out, "/user/alice");
        ensure(ls.status.success(), || {
            format!(
                "hadoop ls /user/alice with the fetched file:\n{}",
                show(&ls)
            )
        })?;

        // Without a service-account token the service knows the pod by its address: the
        // fetcher connects from the pod's 127.100.x.y and gets the Deployment's token set.
        let ip = pods[0]
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .ok_or_else(|| Error::Check("running pod without an IP".into()))?;
        let by_ip = dir.path().join("hadoop").join("by-ip");
        let fetched = run(&mut fetcher(&plan, Identity::Address(&ip), &by_ip, "60s")).await;
        ensure(fetched.status.success(), || {
            format!(
                "init-fetcher fetch --source-address {ip}:\n{}\ntoken-service log:\n{}",
                show(&fetched),
                plan.log_tail()
            )
        })?;
        let (a, b) = (std::fs::read(&out).ok(), std::fs::read(&by_ip).ok());
        ensure(a.is_some() && a == b, || {
            "the pod got another token set by address than by service-account token".into()
        })?;
        Ok::<_, Error>(())
    }
    .await;
    id.cleanup(&bed.admin).await;
    result.expect("the fetcher as alice's injected pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_ends_the_fetcher_at_once_with_the_reason() {
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let cluster = hadoop_bed();
    let id = TestId::new("fetch-no");
    let result = async {
        // bob asks to run as a headless account he is not a member of.
        let mut pod = objects::pod(&id, &format!("{}-runas", id.name()), "bob")?;
        pod.metadata
            .annotations
            .get_or_insert_default()
            .insert("kube2hadoop.io/run-as".into(), "svc-etl".into());
        Api::<Pod>::namespaced(bed.bob.clone(), NAMESPACE)
            .create(&PostParams::default(), &pod)
            .await
            .step("bob creates a pod running as svc-etl")?;
        let pods = running_pods(&bed, &id, 1).await?;
        let plan = Plan::new();
        let _service = plan.start(&cluster);
        let dir = tempfile::tempdir().expect("temp dir");
        let sa_token = bound_token_file(&bed, &pods[0], dir.path()).await?;
        let out = dir.path().join("token");
        // A deadline far beyond FETCH_TIMEOUT: only an immediate stop passes.
        let refused = run(&mut fetcher(
            &plan,
            Identity::SaToken(&sa_token),
            &out,
            "30m",
        ))
        .await;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        ensure(refused.status.code() == Some(EXIT_REFUSED), || {
            format!(
                "expected exit {EXIT_REFUSED} (refused):\n{}\ntoken-service log:\n{}",
                show(&refused),
                plan.log_tail()
            )
        })?;
        ensure(stderr.contains("403") && stderr.contains("svc-etl"), || {
            format!("the reason is not shown:\n{}", show(&refused))
        })?;
        ensure(!out.exists(), || "a refused fetch wrote a file".into())?;
        Ok::<_, Error>(())
    }
    .await;
    id.cleanup(&bed.admin).await;
    result.expect("a refused fetcher");
}
