//! The install path (`kubectl apply -k manifests/overlays/<name>`), checked against a real
//! apiserver: every overlay renders and passes a server-side dry run (cert-manager's kinds come
//! from stub CRDs, see `e2e::cert_manager`), `iddecorator certs` output is accepted, the webhook
//! registration is the test bed's, the examples are admitted and stamped with their submitter,
//! and token-service's RBAC is enough and no more: checked with tokens of the service accounts
//! themselves, and by running token-service with its own account's credentials.
//!
//! Runs against `KUBECONFIG` with context `admin` (and `alice`), namespaces `team-a` and
//! `kube2hadoop` and the TFJob CRD, as `make e2e-up` provides; kubectl is `$K2H_E2E_KUBECTL`.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use e2e::cert_manager::{CRD_NAMES, STUB_CRDS};
use e2e::kubectl::{Kubectl, find, items};
use e2e::wait::{self, Poll};
use e2e::{Error, ensure};
use iddecorator::certs::{self, Bundle, CertsArgs};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::RwLock;

const OVERLAYS: [&str; 2] = ["cert-manager", "static-certs"];
const WEBHOOK_CONFIGURATION: &str = "kube2hadoop-iddecorator";
/// The namespaceSelector key only the test bed's registration has.
const BED_ONLY_LABEL: &str = "k2h-e2e-uncovered";
/// Building token-service may include compiling it.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);
/// From start to synced pod and namespace watches, on a loaded 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The RBAC test creates and deletes objects the dry runs also name (a dry run of an object
/// deleted between kubectl's read and its patch fails): it holds this exclusively, they shared.
static INSTALLED: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn admin() -> Kubectl {
    Kubectl::from_env().context("admin")
}

fn path_str(p: &Path) -> Result<&str, Error> {
    p.to_str()
        .ok_or_else(|| Error::Check(format!("path {} is not UTF-8", p.display())))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Check(format!("{what}: {e}"))
}

/// manifests/ copied into a temporary directory, without anything a developer generated.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(to).map_err(io(format!("create {}", to.display())))?;
    for entry in std::fs::read_dir(from).map_err(io(format!("read {}", from.display())))? {
        let entry = entry.map_err(io(format!("read {}", from.display())))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            if entry.file_name() != "generated" {
                copy_tree(&src, &dst)?;
            }
        } else {
            std::fs::copy(&src, &dst).map_err(io(format!("copy {}", src.display())))?;
        }
    }
    Ok(())
}

/// What `iddecorator certs --service iddecorator --namespace kube2hadoop --token-service
/// token-service --out-dir DIR [--also-trust PREVIOUS]` writes; returns the CA and certificates.
fn generate_certs(dir: &Path, also_trust: Option<PathBuf>) -> Result<Bundle, Error> {
    let args = CertsArgs {
        service: "iddecorator".into(),
        namespace: "kube2hadoop".into(),
        token_service: Some("token-service".into()),
        out_dir: dir.to_path_buf(),
        days: 2,
        also_trust,
    };
    let fail = |e: certs::CertsError| Error::Check(format!("iddecorator certs: {e}"));
    let bundle = certs::generate(&args).map_err(fail)?;
    certs::write_all(dir, &certs::render(&bundle).map_err(fail)?).map_err(fail)?;
    Ok(bundle)
}

/// A copy of manifests/ whose static-certs overlay has fresh `iddecorator certs` output.
struct Tree {
    _dir: tempfile::TempDir,
    manifests: PathBuf,
    bundle: Bundle,
}

impl Tree {
    fn new() -> Result<Tree, Error> {
        let dir = tempfile::tempdir().map_err(io("create a temporary directory".into()))?;
        let manifests = dir.path().join("manifests");
        copy_tree(&root().join("manifests"), &manifests)?;
        // A rotation: the overlay trusts the previous CA as well as the new one.
        let previous = dir.path().join("previous");
        generate_certs(&previous, None)?;
        let bundle = generate_certs(
            &manifests.join("overlays/static-certs/generated"),
            Some(previous.join("ca.crt")),
        )?;
        Ok(Tree {
            _dir: dir,
            manifests,
            bundle,
        })
    }

    fn overlay(&self, name: &str) -> PathBuf {
        self.manifests.join("overlays").join(name)
    }
}

/// `kubectl kustomize` of an overlay, then `kubectl apply --dry-run=server` of the result;
/// returns the objects as the apiserver would store them.
async fn render_and_dry_run(k: &Kubectl, overlay: &Path) -> Result<Vec<Value>, Error> {
    let rendered = k.ok(&["kustomize", path_str(overlay)?], None).await?;
    let answer = k
        .json(
            &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
            Some(&rendered),
        )
        .await?;
    Ok(items(&answer))
}

fn get<'a>(objects: &'a [Value], kind: &str, name: &str) -> Result<&'a Value, Error> {
    find(objects, kind, name).ok_or_else(|| Error::Check(format!("no {kind} {name} rendered")))
}

/// What every overlay must contain, whatever its certificates.
fn check_install(objects: &[Value]) -> Result<(), Error> {
    for (kind, name) in [
        ("Namespace", "kube2hadoop"),
        ("ServiceAccount", "iddecorator"),
        ("ServiceAccount", "token-service"),
        ("ClusterRole", "kube2hadoop-token-service"),
        ("Role", "token-service"),
        ("Service", "iddecorator"),
        ("Service", "token-service"),
        ("PodDisruptionBudget", "iddecorator"),
        ("PodDisruptionBudget", "token-service"),
        ("NetworkPolicy", "token-service"),
        ("NetworkPolicy", "iddecorator"),
        ("Secret", "token-service-keytab"),
        ("Secret", "token-service-krb5"),
        ("Secret", "token-service-ldap"),
        ("Secret", "kube2hadoop-stamp-key"),
    ] {
        get(objects, kind, name)?;
    }
    for name in ["iddecorator", "token-service"] {
        let d = get(objects, "Deployment", name)?;
        ensure(d["spec"]["replicas"] == 2, || format!("{name}: replicas"))?;
        let pod = &d["spec"]["template"]["spec"];
        ensure(pod["securityContext"]["runAsNonRoot"] == true, || {
            format!("{name}: pod runAsNonRoot")
        })?;
        ensure(pod["topologySpreadConstraints"].is_array(), || {
            format!("{name}: topology spread")
        })?;
        for c in pod["containers"].as_array().into_iter().flatten() {
            let sc = &c["securityContext"];
            ensure(
                sc["readOnlyRootFilesystem"] == true
                    && sc["allowPrivilegeEscalation"] == false
                    && sc["capabilities"]["drop"] == serde_json::json!(["ALL"])
                    && sc["seccompProfile"]["type"] == "RuntimeDefault",
                || format!("{name}: container security context {sc}"),
            )?;
            for probe in ["readinessProbe", "livenessProbe"] {
                ensure(c[probe]["httpGet"]["scheme"] == "HTTPS", || {
                    format!("{name}: {probe} over HTTPS")
                })?;
            }
            ensure(c["resources"]["requests"].is_object(), || {
                format!("{name}: resource requests")
            })?;
        }
    }
    // Issue 13: iddecorator reads the pod of an exec/attach/port-forward, and nothing else.
    let id = &get(objects, "Deployment", "iddecorator")?["spec"]["template"]["spec"];
    ensure(id["automountServiceAccountToken"] == true, || {
        "iddecorator needs its service-account token to read pods".into()
    })?;
    let role = &get(objects, "ClusterRole", "kube2hadoop-iddecorator")?["rules"];
    ensure(
        *role == serde_json::json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
        || format!("iddecorator's ClusterRole must grant only get pods: {role}"),
    )?;
    let binding = &get(objects, "ClusterRoleBinding", "kube2hadoop-iddecorator")?["subjects"];
    ensure(
        binding[0]["name"] == "iddecorator" && binding[0]["namespace"] == "kube2hadoop",
        || format!("iddecorator's ClusterRoleBinding: {binding}"),
    )?;
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let w = &get(objects, kind, WEBHOOK_CONFIGURATION)?["webhooks"][0];
        let svc = &w["clientConfig"]["service"];
        ensure(
            svc["name"] == "iddecorator" && svc["namespace"] == "kube2hadoop" && svc["port"] == 443,
            || format!("{kind}: clientConfig.service {svc}"),
        )?;
    }
    Ok(())
}

/// A new overlay needs its own dry-run test here.
#[test]
fn every_overlay_has_a_dry_run_test() -> Result<(), Error> {
    let dir = root().join("manifests/overlays");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io(format!("read {}", dir.display())))? {
        let entry = entry.map_err(io(format!("read {}", dir.display())))?;
        if entry.path().is_dir() {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    ensure(found == OVERLAYS, || {
        format!("overlays {found:?}, tests cover {OVERLAYS:?}")
    })
}

/// The ConfigMaps' files are read by the binaries' own parsers (no cluster needed).
#[test]
fn configuration_files_are_accepted_by_the_binaries() -> Result<(), Error> {
    let base = root().join("manifests/base");
    let policy_path = base.join("iddecorator-policy.yaml");
    let policy = std::fs::read_to_string(&policy_path)
        .map_err(io(format!("read {}", policy_path.display())))?;
    iddecorator::policy::Policy::from_yaml(&policy)
        .map_err(|e| Error::Check(format!("{}: {e}", policy_path.display())))?;

    // Only the mounted files may be missing here: the keytab, krb5.conf and password.
    config_accepted(&base.join("token-service-config.yaml"))
}

/// token-service loads the config file at `config`, but for files under /etc/kube2hadoop/ (the
/// mounts: keytab, krb5.conf, password), which do not exist here.
fn config_accepted(config: &Path) -> Result<(), Error> {
    let cli = token_service::config::Cli::try_parse_from([
        "token-service",
        "--config",
        path_str(config)?,
    ])
    .map_err(|e| Error::Check(e.to_string()))?;
    match token_service::config::Settings::load(cli) {
        Ok(_) => Ok(()),
        Err(errors) => {
            let unexpected: Vec<_> = errors
                .0
                .iter()
                .filter(|e| {
                    !matches!(e, token_service::config::ConfigError::Unreadable { path, .. }
                        if path.starts_with("/etc/kube2hadoop/"))
                })
                .collect();
            ensure(unexpected.is_empty(), || {
                format!("{}: {unexpected:#?}", config.display())
            })
        }
    }
}

/// charts/kube2hadoop with every option (its ci/everything-values.yaml): the policy and config
/// it renders are read by the binaries' own parsers, so its schema lets through nothing they
/// refuse and its mount paths are ones they accept. Runs `charts/helm.sh` (built once).
#[test]
fn the_charts_configuration_files_are_accepted_by_the_binaries() -> Result<(), Error> {
    let dir = tempfile::tempdir().map_err(io("create a temporary directory".into()))?;
    generate_certs(dir.path(), None)?;
    let file = |name: &str| format!("{}", dir.path().join(name).display());
    let chart = root().join("charts/kube2hadoop");
    let out = std::process::Command::new(root().join("charts/helm.sh"))
        .args([
            "template",
            "kube2hadoop",
            path_str(&chart)?,
            "-n",
            "k2h-other",
            "-f",
        ])
        .arg(chart.join("ci/everything-values.yaml"))
        .args([
            "--set-file",
            &format!("certificates.caBundle={}", file("ca.crt")),
        ])
        .args([
            "--set-file",
            &format!("certificates.iddecorator.cert={}", file("tls.crt")),
        ])
        .args([
            "--set-file",
            &format!("certificates.iddecorator.key={}", file("tls.key")),
        ])
        .output()
        .map_err(io("run charts/helm.sh".into()))?;
    ensure(out.status.success(), || {
        format!("helm template: {}", String::from_utf8_lossy(&out.stderr))
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut files = std::collections::BTreeMap::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc)
            .map_err(|e| Error::Check(format!("helm template printed bad YAML: {e}")))?;
        if v["kind"] == "ConfigMap" && v["metadata"]["namespace"] == "k2h-other" {
            for (key, body) in v["data"].as_object().into_iter().flatten() {
                files.insert(key.clone(), body.as_str().unwrap_or_default().to_owned());
            }
        }
    }
    let policy = files.get("policy.yaml").cloned().unwrap_or_default();
    iddecorator::policy::Policy::from_yaml(&policy)
        .map_err(|e| Error::Check(format!("the chart's policy.yaml: {e}\n{policy}")))?;
    let config = dir.path().join("config.yaml");
    let body = files.get("config.yaml").cloned().unwrap_or_default();
    std::fs::write(&config, &body).map_err(io(format!("write {}", config.display())))?;
    config_accepted(&config)
}

#[tokio::test]
async fn static_certs_overlay_passes_a_server_dry_run() -> Result<(), Error> {
    let _shared = INSTALLED.read().await;
    let k = admin();
    let tree = Tree::new()?;
    let objects = render_and_dry_run(&k, &tree.overlay("static-certs")).await?;
    check_install(&objects)?;
    let ca = STANDARD.encode(&tree.bundle.trust_pem);
    ensure(
        tree.bundle.trust_pem.matches("BEGIN CERTIFICATE").count() == 2,
        || "the caBundle should hold the new and the previous CA".into(),
    )?;
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let ws = &get(&objects, kind, WEBHOOK_CONFIGURATION)?["webhooks"];
        for w in ws.as_array().into_iter().flatten() {
            ensure(w["clientConfig"]["caBundle"] == ca.as_str(), || {
                format!("{kind} {}: caBundle is not the generated CA", w["name"])
            })?;
        }
    }
    for (name, cert) in [
        ("iddecorator-tls", &tree.bundle.webhook.cert_pem),
        (
            "token-service-tls",
            &tree
                .bundle
                .token_service
                .as_ref()
                .map(|s| s.cert_pem.clone())
                .unwrap_or_default(),
        ),
    ] {
        let s = get(&objects, "Secret", name)?;
        ensure(s["type"] == "kubernetes.io/tls", || format!("{name}: type"))?;
        ensure(
            s["data"]["tls.crt"] == STANDARD.encode(cert).as_str(),
            || format!("{name}: not the generated certificate"),
        )?;
    }
    // The CA ConfigMap the fetcher reads, in a namespace that uses injection.
    let cm = tree
        .overlay("static-certs")
        .join("generated/kube2hadoop-ca.configmap.yaml");
    let answer = k
        .json(
            &[
                "apply",
                "--dry-run=server",
                "-o",
                "json",
                "-n",
                "team-a",
                "-f",
                path_str(&cm)?,
            ],
            None,
        )
        .await?;
    ensure(
        answer["data"]["ca.crt"] == tree.bundle.trust_pem.as_str(),
        || format!("kube2hadoop-ca ConfigMap: {answer}"),
    )
}

#[tokio::test]
async fn cert_manager_overlay_passes_a_server_dry_run_against_stub_crds() -> Result<(), Error> {
    let _shared = INSTALLED.read().await;
    let k = admin();
    let tree = Tree::new()?;
    let existed = k
        .ok(
            &[
                "get",
                "crd",
                CRD_NAMES[0],
                CRD_NAMES[1],
                "--ignore-not-found",
                "-o",
                "name",
            ],
            None,
        )
        .await?;
    k.ok(&["apply", "-f", "-"], Some(STUB_CRDS)).await?;
    let result = async {
        let mut args = vec!["wait", "--for=condition=Established", "--timeout=60s"];
        let crds: Vec<String> = CRD_NAMES.iter().map(|n| format!("crd/{n}")).collect();
        args.extend(crds.iter().map(String::as_str));
        k.ok(&args, None).await?;
        let objects = render_and_dry_run(&k, &tree.overlay("cert-manager")).await?;
        check_install(&objects)?;
        for name in ["kube2hadoop-selfsigned", "kube2hadoop-ca"] {
            get(&objects, "Issuer", name)?;
        }
        get(&objects, "Certificate", "kube2hadoop-ca-root")?;
        for (name, secret) in [
            ("iddecorator", "iddecorator-tls"),
            ("token-service", "token-service-tls"),
        ] {
            let c = &get(&objects, "Certificate", name)?["spec"];
            ensure(c["secretName"] == secret, || {
                format!("Certificate {name}: {c}")
            })?;
            let names = c["dnsNames"].as_array().cloned().unwrap_or_default();
            for n in certs::service_names(name, "kube2hadoop") {
                ensure(names.iter().any(|v| v == n.as_str()), || {
                    format!("Certificate {name} lacks {n}")
                })?;
            }
        }
        for kind in [
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ] {
            let w = get(&objects, kind, WEBHOOK_CONFIGURATION)?;
            let a = &w["metadata"]["annotations"]["cert-manager.io/inject-ca-from"];
            ensure(a == "kube2hadoop/iddecorator", || {
                format!("{kind}: inject-ca-from is {a}")
            })?;
        }
        Ok::<(), Error>(())
    }
    .await;
    // Leave a cluster that had cert-manager alone; remove the stubs this test installed.
    if existed.trim().is_empty() {
        let mut args = vec!["delete", "crd", "--ignore-not-found", "--wait=false"];
        args.extend(CRD_NAMES);
        let _ = k.ok(&args, None).await;
    }
    result
}

/// The webhook entries of a file, without their clientConfig (URL on the bed, Service in the
/// manifests), as kubectl parses them.
async fn webhook_settings(k: &Kubectl, yaml: &str) -> Result<Vec<(String, Value)>, Error> {
    let answer = k
        .json(
            &["create", "--dry-run=client", "-o", "json", "-f", "-"],
            Some(yaml),
        )
        .await?;
    let mut out = Vec::new();
    for o in items(&answer) {
        for w in o["webhooks"].as_array().into_iter().flatten() {
            let mut w = w.clone();
            if let Some(m) = w.as_object_mut() {
                m.remove("clientConfig");
            }
            // The bed's one addition: a label that keeps a namespace out until a test removes
            // it (attacks_token_service::objects_written_before_coverage_get_nothing).
            if let Some(exprs) = w
                .pointer_mut("/namespaceSelector/matchExpressions")
                .and_then(Value::as_array_mut)
            {
                exprs.retain(|e| e["key"] != BED_ONLY_LABEL);
            }
            out.push((format!("{} {}", o["kind"], o["metadata"]["name"]), w));
        }
    }
    Ok(out)
}

#[tokio::test]
async fn webhook_registration_matches_the_test_beds() -> Result<(), Error> {
    let k = admin();
    let read =
        |p: PathBuf| std::fs::read_to_string(&p).map_err(io(format!("read {}", p.display())));
    let template = read(root().join("e2e/cluster/webhooks.yaml.tmpl"))?
        .replace("@PORT@", "443")
        .replace("@CA_BUNDLE@", &STANDARD.encode("unused"));
    let bed = webhook_settings(&k, &template).await?;
    let base = webhook_settings(&k, &read(root().join("manifests/base/webhooks.yaml"))?).await?;
    let names: Vec<&str> = bed.iter().filter_map(|(_, w)| w["name"].as_str()).collect();
    ensure(
        names
            == [
                certs::MUTATING_WEBHOOK,
                certs::VALIDATING_WEBHOOK,
                certs::ACCESS_WEBHOOK,
                certs::TOKENS_WEBHOOK,
            ],
        || format!("the bed registers {names:?}"),
    )?;
    ensure(base == bed, || {
        format!(
            "manifests/base/webhooks.yaml and e2e/cluster/webhooks.yaml.tmpl differ:\n\
             base: {base:#?}\nbed: {bed:#?}"
        )
    })?;
    let (_, mutate) = &base[0];
    for (field, want) in [
        ("failurePolicy", "Fail"),
        ("sideEffects", "None"),
        ("reinvocationPolicy", "IfNeeded"),
        ("matchPolicy", "Equivalent"),
    ] {
        ensure(mutate[field] == want, || {
            format!("{field}: {}", mutate[field])
        })?;
    }
    ensure(mutate["timeoutSeconds"] == 5, || "timeoutSeconds".into())?;
    // Issue 13: every validating webhook fails closed; the tokens webhook sees only requests
    // for our audience, so an outage blocks no other token.
    for (_, w) in &base[1..] {
        ensure(w["failurePolicy"] == "Fail", || {
            format!("{}: failurePolicy {}", w["name"], w["failurePolicy"])
        })?;
    }
    let conditions = base[3].1["matchConditions"].to_string();
    ensure(conditions.contains("'kube2hadoop'"), || {
        format!("tokens webhook matchConditions: {conditions}")
    })
}

/// Every pod template of a workload as the apiserver would store it.
fn templates(o: &Value) -> Vec<&Value> {
    match o["kind"].as_str() {
        Some("TFJob") => o["spec"]["tfReplicaSpecs"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values().map(|r| &r["template"]))
            .collect(),
        _ => vec![&o["spec"]["template"]],
    }
}

#[tokio::test]
async fn examples_are_admitted_and_stamped_with_the_submitter() -> Result<(), Error> {
    let alice = Kubectl::from_env().context("alice");
    for file in ["deployment.yaml", "job.yaml", "tfjob.yaml"] {
        let path = root().join("examples").join(file);
        let o = alice
            .json(
                &[
                    "apply",
                    "--dry-run=server",
                    "-o",
                    "json",
                    "-f",
                    path_str(&path)?,
                ],
                None,
            )
            .await?;
        let user = &o["metadata"]["annotations"]["kube2hadoop.io/user"];
        ensure(user == "alice", || {
            format!("{file}: user annotation {user}")
        })?;
        for t in templates(&o) {
            ensure(
                t["metadata"]["annotations"]["kube2hadoop.io/user"] == "alice",
                || format!("{file}: template not stamped: {}", t["metadata"]),
            )?;
            let spec = &t["spec"];
            let fetcher = spec["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == "kube2hadoop-fetcher");
            ensure(fetcher, || format!("{file}: no fetcher injected: {spec}"))?;
            for c in spec["containers"].as_array().into_iter().flatten() {
                let env = c["env"].as_array().cloned().unwrap_or_default();
                ensure(
                    env.iter()
                        .any(|e| e["name"] == "HADOOP_TOKEN_FILE_LOCATION"),
                    || {
                        format!(
                            "{file}: container {} lacks HADOOP_TOKEN_FILE_LOCATION",
                            c["name"]
                        )
                    },
                )?;
            }
        }
    }
    Ok(())
}

/// `can-i` answers of `k` that differ from `expected`.
async fn wrong_answers(
    k: &Kubectl,
    expected: bool,
    checks: &[(&str, &str, &str)],
) -> Result<Vec<String>, Error> {
    let mut wrong = Vec::new();
    for (verb, resource, namespace) in checks {
        if k.can_i(verb, resource, namespace).await? != expected {
            wrong.push(format!("{verb} {resource} in {namespace:?}"));
        }
    }
    Ok(wrong)
}

/// Namespaces of the checks below; "" is every namespace (or a cluster-scoped kind).
const ALL: &str = "";
const TEAM: &str = "team-a";
const OWN: &str = "kube2hadoop";
const SYSTEM: &str = "kube-system";

/// Everything token-service does at the API (e2e: exactly these are allowed).
const TOKEN_SERVICE_NEEDS: &[(&str, &str, &str)] = &[
    ("get", "pods", TEAM),
    ("list", "pods", ALL),
    ("watch", "pods", ALL),
    ("list", "namespaces", ALL),
    ("watch", "namespaces", ALL),
    (
        "get",
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        ALL,
    ),
    (
        "list",
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        ALL,
    ),
    (
        "watch",
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        ALL,
    ),
    ("create", "tokenreviews.authentication.k8s.io", ALL),
    ("get", "serviceaccounts", TEAM),
    ("list", "serviceaccounts", ALL),
    ("watch", "serviceaccounts", ALL),
    ("create", "events.events.k8s.io", TEAM),
    ("patch", "events.events.k8s.io", TEAM),
    ("get", "replicationcontrollers", TEAM),
    ("list", "replicationcontrollers", ALL),
    ("watch", "replicationcontrollers", ALL),
    ("get", "replicasets.apps", TEAM),
    ("list", "replicasets.apps", ALL),
    ("watch", "replicasets.apps", ALL),
    ("get", "deployments.apps", TEAM),
    ("list", "deployments.apps", ALL),
    ("watch", "deployments.apps", ALL),
    ("get", "statefulsets.apps", TEAM),
    ("list", "statefulsets.apps", ALL),
    ("watch", "statefulsets.apps", ALL),
    ("get", "daemonsets.apps", TEAM),
    ("list", "daemonsets.apps", ALL),
    ("watch", "daemonsets.apps", ALL),
    ("get", "jobs.batch", TEAM),
    ("list", "jobs.batch", ALL),
    ("watch", "jobs.batch", ALL),
    ("get", "cronjobs.batch", TEAM),
    ("list", "cronjobs.batch", ALL),
    ("watch", "cronjobs.batch", ALL),
    ("get", "tfjobs.kubeflow.org", TEAM),
    ("list", "tfjobs.kubeflow.org", ALL),
    ("watch", "tfjobs.kubeflow.org", ALL),
    ("get", "pytorchjobs.kubeflow.org", TEAM),
    ("list", "pytorchjobs.kubeflow.org", ALL),
    ("watch", "pytorchjobs.kubeflow.org", ALL),
    ("get", "mpijobs.kubeflow.org", TEAM),
    ("list", "mpijobs.kubeflow.org", ALL),
    ("watch", "mpijobs.kubeflow.org", ALL),
    ("get", "xgboostjobs.kubeflow.org", TEAM),
    ("list", "xgboostjobs.kubeflow.org", ALL),
    ("watch", "xgboostjobs.kubeflow.org", ALL),
    ("get", "paddlejobs.kubeflow.org", TEAM),
    ("list", "paddlejobs.kubeflow.org", ALL),
    ("watch", "paddlejobs.kubeflow.org", ALL),
    ("get", "mxjobs.kubeflow.org", TEAM),
    ("list", "mxjobs.kubeflow.org", ALL),
    ("watch", "mxjobs.kubeflow.org", ALL),
    ("get", "jaxjobs.kubeflow.org", TEAM),
    ("list", "jaxjobs.kubeflow.org", ALL),
    ("watch", "jaxjobs.kubeflow.org", ALL),
    ("get", "secrets", OWN),
    ("list", "secrets", OWN),
    ("watch", "secrets", OWN),
    ("create", "secrets", OWN),
    ("update", "secrets", OWN),
    ("delete", "secrets", OWN),
    ("get", "leases.coordination.k8s.io", OWN),
    ("create", "leases.coordination.k8s.io", OWN),
    ("update", "leases.coordination.k8s.io", OWN),
    ("delete", "leases.coordination.k8s.io", OWN),
];

/// What token-service must not do: others' secrets, writing workloads, escalation.
const TOKEN_SERVICE_MUST_NOT: &[(&str, &str, &str)] = &[
    ("get", "secrets", TEAM),
    ("get", "secrets", SYSTEM),
    ("list", "secrets", ALL),
    ("create", "pods", TEAM),
    ("delete", "pods", TEAM),
    ("update", "pods", TEAM),
    ("create", "pods/exec", TEAM),
    ("create", "serviceaccounts/token", TEAM),
    ("delete", "serviceaccounts", TEAM),
    ("update", "serviceaccounts", TEAM),
    ("create", "replicasets.apps", TEAM),
    ("update", "deployments.apps", TEAM),
    ("delete", "jobs.batch", TEAM),
    ("update", "tfjobs.kubeflow.org", TEAM),
    ("create", "leases.coordination.k8s.io", TEAM),
    ("get", "configmaps", TEAM),
    ("get", "events.events.k8s.io", TEAM),
    ("delete", "events.events.k8s.io", TEAM),
    ("get", "nodes", ALL),
    (
        "create",
        "clusterrolebindings.rbac.authorization.k8s.io",
        ALL,
    ),
    ("update", "namespaces", ALL),
    ("impersonate", "users", ALL),
    ("create", "subjectaccessreviews.authorization.k8s.io", ALL),
    (
        "update",
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        ALL,
    ),
];

/// iddecorator calls no API: none of these, nor anything else token-service may do.
/// iddecorator reads the pod of an exec/attach/port-forward, nothing else.
const IDDECORATOR_NEEDS: &[(&str, &str, &str)] = &[("get", "pods", TEAM), ("get", "pods", ALL)];

const IDDECORATOR_MUST_NOT: &[(&str, &str, &str)] = &[
    ("list", "pods", ALL),
    ("watch", "pods", ALL),
    ("update", "pods", TEAM),
    ("create", "pods/exec", TEAM),
    ("list", "namespaces", ALL),
    ("create", "tokenreviews.authentication.k8s.io", ALL),
    ("get", "secrets", OWN),
    ("get", "configmaps", OWN),
    ("create", "leases.coordination.k8s.io", OWN),
    ("get", "deployments.apps", TEAM),
];

#[tokio::test]
async fn rbac_is_enough_for_token_service_and_nothing_more() -> Result<(), Error> {
    let _exclusive = INSTALLED.write().await;
    let k = admin();
    let base = root().join("manifests/base");
    let files =
        ["serviceaccounts.yaml", "rbac.yaml", "iddecorator-rbac.yaml"].map(|f| base.join(f));
    let mut file_args = Vec::new();
    for f in &files {
        file_args.extend(["-f", path_str(f)?]);
    }
    // Objects that were there before (someone's install) are left in place afterwards.
    let mut get = vec!["get", "--ignore-not-found", "-o", "name"];
    get.extend(&file_args);
    let existed = k.ok(&get, None).await?;
    let mut apply = vec!["apply"];
    apply.extend(&file_args);
    k.ok(&apply, None).await?;

    let result = rbac_checks(&k).await;
    if existed.trim().is_empty() {
        let mut delete = vec!["delete", "--ignore-not-found", "--wait=false"];
        delete.extend(&file_args);
        let _ = k.ok(&delete, None).await;
    }
    result
}

async fn rbac_checks(k: &Kubectl) -> Result<(), Error> {
    let dir = tempfile::tempdir().map_err(io("create a temporary directory".into()))?;
    let sa = k
        .json(
            &[
                "get",
                "serviceaccount",
                "iddecorator",
                "-n",
                "kube2hadoop",
                "-o",
                "json",
            ],
            None,
        )
        .await?;
    ensure(sa["automountServiceAccountToken"] == false, || {
        "ServiceAccount iddecorator must not automount a token".into()
    })?;

    let ts_config = k
        .service_account_kubeconfig(dir.path(), "kube2hadoop", "token-service")
        .await?;
    let ts = k.kubeconfig(&ts_config);
    let mut missing = wrong_answers(&ts, true, TOKEN_SERVICE_NEEDS).await?;
    // The API server's published signing keys, which bound tokens are verified against.
    for path in ["/.well-known/openid-configuration", "/openid/v1/jwks"] {
        if !ts.can_i_path("get", path).await? {
            missing.push(format!("get {path}"));
        }
    }
    ensure(missing.is_empty(), || {
        format!("token-service lacks rights it needs: {missing:#?}")
    })?;
    let excess = wrong_answers(&ts, false, TOKEN_SERVICE_MUST_NOT).await?;
    ensure(excess.is_empty(), || {
        format!("token-service has rights it must not have: {excess:#?}")
    })?;

    let id_config = k
        .service_account_kubeconfig(dir.path(), "kube2hadoop", "iddecorator")
        .await?;
    let id = k.kubeconfig(&id_config);
    let missing = wrong_answers(&id, true, IDDECORATOR_NEEDS).await?;
    ensure(missing.is_empty(), || {
        format!("iddecorator lacks rights it needs: {missing:#?}")
    })?;
    let mut all = IDDECORATOR_MUST_NOT.to_vec();
    all.extend(
        TOKEN_SERVICE_NEEDS
            .iter()
            .filter(|r| !IDDECORATOR_NEEDS.contains(r)),
    );
    let excess = wrong_answers(&id, false, &all).await?;
    ensure(excess.is_empty(), || {
        format!("iddecorator's service account has rights: {excess:#?}")
    })?;

    run_token_service(dir.path(), &ts_config).await
}

/// The token-service binary next to this test's, built if missing or stale.
async fn token_service_binary() -> Result<PathBuf, Error> {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let mut build = tokio::process::Command::new(cargo);
    build
        .args(["build", "-q", "-p", "token-service"])
        .current_dir(root())
        .kill_on_drop(true);
    let status = tokio::time::timeout(BUILD_TIMEOUT, build.status())
        .await
        .map_err(|_| Error::Check("`cargo build -p token-service` took too long".into()))?
        .map_err(io("run `cargo build -p token-service`".into()))?;
    ensure(status.success(), || {
        format!("`cargo build -p token-service` failed ({status})")
    })?;
    // This test runs as target/<profile>/deps/manifests-<hash>.
    let exe = std::env::current_exe().map_err(io("find the test executable".into()))?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("token-service"))
        .ok_or_else(|| Error::Check(format!("no target directory above {}", exe.display())))?;
    ensure(bin.is_file(), || format!("{} was not built", bin.display()))?;
    Ok(bin)
}

/// token-service with nothing but its own account's token: ready means its pod and namespace
/// watches listed and watched successfully.
async fn run_token_service(dir: &Path, kubeconfig: &Path) -> Result<(), Error> {
    let bin = token_service_binary().await?;
    let tls = dir.join("tls");
    let bundle = generate_certs(&tls, None)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io("pick a free port".into()))?
        .port();
    // A NameNode is required by the configuration, but not contacted before a pod asks.
    let config = dir.join("token-service.yaml");
    // A stamp key of its own: only RBAC is under test, no pod asks.
    let stamp_key = dir.join("stamp.key");
    std::fs::write(&stamp_key, STANDARD.encode([7u8; 32]))
        .map_err(io(format!("write {}", stamp_key.display())))?;
    let text = format!(
        "listen: 127.0.0.1:{port}\ntlsCertFile: {}\ntlsKeyFile: {}\nkubeconfig: {}\n\
         stampKeyFile: {}\nnameservices:\n- name: ns1\n  namenodes:\n  - {{http: \"http://127.0.0.1:9\", rpc: \"127.0.0.1:9\"}}\n",
        tls.join("token-service.crt").display(),
        tls.join("token-service.key").display(),
        kubeconfig.display(),
        stamp_key.display(),
    );
    std::fs::write(&config, text).map_err(io(format!("write {}", config.display())))?;
    let log_path = dir.join("token-service.log");
    let log = std::fs::File::create(&log_path).map_err(io("create the log".into()))?;
    let log_err = log.try_clone().map_err(io("clone the log handle".into()))?;
    let mut child = tokio::process::Command::new(&bin)
        .args(["--config", path_str(&config)?, "--log-format", "json"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(io(format!("start {}", bin.display())))?;

    let tail = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let ca = bundle.ca_der.clone();
    let ready = wait::until("token-service /readyz", READY_TIMEOUT, || {
        let exited = child.try_wait().ok().flatten();
        let ca = ca.clone();
        let log_path = log_path.clone();
        async move {
            if let Some(status) = exited {
                return Err(Error::Check(format!(
                    "token-service exited ({status}); log:\n{}",
                    tail(&log_path)
                )));
            }
            Ok::<_, Error>(match readyz(port, &ca).await {
                Ok(200) => Poll::Ready(()),
                Ok(code) => Poll::Pending(format!("HTTP {code}")),
                Err(e) => Poll::Pending(e),
            })
        }
    })
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    ready.map_err(|e| Error::Check(format!("{e}; log:\n{}", tail(&log_path))))?;
    ensure(!log_text.to_ascii_lowercase().contains("forbidden"), || {
        format!("token-service was refused something:\n{}", tail(&log_path))
    })
}

/// The status code of GET /readyz over TLS, trusting only `ca` for the Service's DNS name.
async fn readyz(port: u16, ca: &[u8]) -> Result<u16, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(ca.to_vec()))
        .map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("token-service.kube2hadoop.svc")
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        tls.write_all(b"GET /readyz HTTP/1.1\r\nHost: token-service\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut head = Vec::new();
        let _ = tls.read_to_end(&mut head).await;
        let text = String::from_utf8_lossy(&head);
        text.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                format!(
                    "not an HTTP answer: {:?}",
                    text.chars().take(80).collect::<String>()
                )
            })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10s".to_string())?
}
