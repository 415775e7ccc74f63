//! init-fetcher end to end: iddecorator injects the fetcher into alice's Deployment,
//! and the real `init-fetcher fetch` binary, run with the identity of one of its pods (a bound
//! service-account token, as the injected projected volume holds), writes a credentials file that
//! the stock Hadoop client uses as alice.
//!
//! Needs the whole bed: the control plane (`make e2e-up`), the Kerberized HDFS
//! (`e2e/scripts/hadoop-up.sh --kms`, started when not running) and slapd
//! (`e2e/scripts/ldap-up.sh`, started when not running). kwok runs no containers, so the test
//! runs the fetcher itself, as the pod's init container would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use e2e::fixture::Fixture;
use e2e::hadoop::{Cluster, show};
use e2e::ledger::LedgerNamespace;
use e2e::objects;
use e2e::pods::{bound_token, running_pods};
use e2e::token_service::{Launcher, Options, binary, tail, wait_output};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

/// Longest a fetcher run may take before the test gives up on it (its own deadline is shorter).
const FETCH_TIMEOUT: Duration = Duration::from_secs(240);
const INJECT: &str = "kube2hadoop.io/inject";
const TOKEN_FILE: &str = "/var/run/secrets/hadoop/token";
/// Exit code of `init-fetcher fetch` when the service refuses (init-fetcher/README.md).
const EXIT_REFUSED: i32 = 2;

/// Everything a token service needs except the process, made first so a fetcher can be pointed
/// at a service that is not up yet: serves team-a, its ledger in the test's own namespace.
fn plan(cluster: &Cluster, ledger: &LedgerNamespace) -> Launcher {
    Options::new(&[NAMESPACE], ledger.name()).prepare(cluster)
}

fn service_log(plan: &Launcher) -> String {
    tail(&plan.log_file(0), 30)
}

/// How the fetcher proves which pod it runs as.
enum Identity<'a> {
    /// A projected token bound to the pod (what the injected container uses), sent from the
    /// pod's address (the service accepts a pod's token only from the pod).
    SaToken(&'a Path, &'a str),
    /// The pod's address: the fetcher connects from it (`--source-address`).
    Address(&'a str),
}

/// The pod's address, as the fetcher's `--source-address`.
fn pod_ip(pod: &Pod) -> Result<String, Error> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .ok_or_else(|| Error::Check("a running pod has an IP".into()))
}

/// `init-fetcher fetch` as the injected init container runs it, but with host paths.
fn fetcher(plan: &Launcher, who: Identity, out: &Path, deadline: &str) -> Command {
    let mut cmd = Command::new(binary("init-fetcher"));
    cmd.arg("fetch")
        .arg("--url")
        .arg(plan.url())
        .arg("--ca-file")
        .arg(plan.ca_file());
    match who {
        Identity::SaToken(file, ip) => cmd
            .arg("--sa-token-file")
            .arg(file)
            .args(["--source-address", ip]),
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
    wait_output(child, "init-fetcher", FETCH_TIMEOUT).await
}

async fn run(cmd: &mut Command) -> Output {
    finish(cmd.spawn().expect("start init-fetcher")).await
}

/// What the injected projected volume would hold: a token bound to `pod`, audience kube2hadoop,
/// written to `dir/sa-token`.
async fn bound_token_file(bed: &Bed, pod: &Pod, dir: &Path) -> Result<PathBuf, Error> {
    let token = bound_token(&bed.admin, pod).await?;
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
            for flag in ["--url", "--sa-token-file", "--out"] {
                if !args.contains(&flag) {
                    gaps.push(format!("fetcher args without {flag}: {args:?}"));
                }
            }
            // The CA as a file, or inline (the bed's policy sets `caPemFile`).
            let ca_env = f["env"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["name"] == "K2H_FETCH_CA_PEM"));
            if !args.contains(&"--ca-file") && !ca_env {
                gaps.push(format!(
                    "fetcher without --ca-file or K2H_FETCH_CA_PEM: {args:?}"
                ));
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
    let fx = Fixture::new("fetch").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let cluster = Cluster::shared();
    let result = async {
        Api::<Deployment>::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &injected_deployment(id)?)
            .await
            .step("alice creates a Deployment with only the inject annotation")?;
        let pods = running_pods(&bed.admin, NAMESPACE, id, 1).await?;
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
        let plan = plan(&cluster, ledger);
        let dir = tempfile::tempdir().expect("temp dir");
        let sa_token = bound_token_file(bed, &pods[0], dir.path()).await?;
        let ip = pod_ip(&pods[0])?;
        let out = dir.path().join("hadoop").join("token");
        std::fs::create_dir_all(out.parent().expect("a parent")).expect("output dir");
        let child = fetcher(&plan, Identity::SaToken(&sa_token, &ip), &out, "150s")
            .spawn()
            .expect("start init-fetcher");
        tokio::time::sleep(Duration::from_secs(20)).await;
        let early = out.exists();
        let _service = plan.spawn(0);
        let fetched = finish(child).await;
        ensure(!early, || {
            "a file was written while no service was up".into()
        })?;
        ensure(fetched.status.success(), || {
            format!(
                "init-fetcher fetch:\n{}\ntoken-service log:\n{}",
                show(&fetched),
                service_log(&plan)
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
        let ls = cluster.client(&out, &["ls", "/user/alice"], None);
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
                service_log(&plan)
            )
        })?;
        let (a, b) = (std::fs::read(&out).ok(), std::fs::read(&by_ip).ok());
        ensure(a.is_some() && a == b, || {
            "the pod got another token set by address than by service-account token".into()
        })?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(()).await;
    result.expect("the fetcher as alice's injected pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_ends_the_fetcher_at_once_with_the_reason() {
    let fx = Fixture::new("fetch-no").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let cluster = Cluster::shared();
    let result = async {
        // bob asks to run as a headless account he is not a member of.
        let mut pod = objects::pod(id, &format!("{}-runas", id.name()), "bob")?;
        pod.metadata
            .annotations
            .get_or_insert_default()
            .insert("kube2hadoop.io/run-as".into(), "svc-etl".into());
        Api::<Pod>::namespaced(bed.bob.clone(), NAMESPACE)
            .create(&PostParams::default(), &pod)
            .await
            .step("bob creates a pod running as svc-etl")?;
        let pods = running_pods(&bed.admin, NAMESPACE, id, 1).await?;
        let plan = plan(&cluster, ledger);
        let _service = plan.spawn(0);
        let dir = tempfile::tempdir().expect("temp dir");
        let sa_token = bound_token_file(bed, &pods[0], dir.path()).await?;
        let ip = pod_ip(&pods[0])?;
        let out = dir.path().join("token");
        // A deadline far beyond FETCH_TIMEOUT: only an immediate stop passes.
        let refused = run(&mut fetcher(
            &plan,
            Identity::SaToken(&sa_token, &ip),
            &out,
            "30m",
        ))
        .await;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        ensure(refused.status.code() == Some(EXIT_REFUSED), || {
            format!(
                "expected exit {EXIT_REFUSED} (refused):\n{}\ntoken-service log:\n{}",
                show(&refused),
                service_log(&plan)
            )
        })?;
        ensure(stderr.contains("403") && stderr.contains("svc-etl"), || {
            format!("the reason is not shown:\n{}", show(&refused))
        })?;
        ensure(!out.exists(), || "a refused fetch wrote a file".into())?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(()).await;
    result.expect("a refused fetcher");
}
