//! kube2hadoop installed with Helm: `charts/kube2hadoop` on the bed (`e2e/scripts/helm-install.sh`,
//! values equivalent to what `install.sh` applies through Kustomize), both Deployments ready on
//! the real node; alice's pod gets her token and bob's forgery is refused (the checks of
//! `tests/installed.rs`); `helm upgrade` to three token-service replicas and another config value
//! rolls the pods and the system still serves; `helm uninstall` removes it and the bed's own
//! iddecorator registration comes back.
//!
//! Not in the default `cargo test` (`test = false` in Cargo.toml): like `installed`, it replaces
//! the bed's webhook registration while it runs. It installs and uninstalls by itself:
//! `cargo test -p e2e --test helm` on a bed started with the real node (`make e2e-up`), after
//! `make images`, with `install.sh` down.

use std::collections::BTreeSet;
use std::process::Command;

use e2e::hadoop::{Cluster, e2e_dir, show};
use e2e::installed::{
    INSTALL_NAMESPACE, alice_writes_and_reads, bobs_forgery_is_refused, pod_gone, ready_replicas,
};
use e2e::pods::{RealNode, create_hadoop_conf};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams};

const RELEASE: &str = "kube2hadoop";
const WEBHOOK_CONFIGURATION: &str = "kube2hadoop-iddecorator";
/// How long the garbage collector may take to finish a foreground deletion on the real node.
const GONE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// What the upgrade changes: the replica count and one config value (the default podRate is 30).
const UPGRADE: [&str; 4] = [
    "--set",
    "tokenService.replicas=3",
    "--set",
    "tokenService.config.podRate=60",
];

/// `e2e/scripts/helm-install.sh ARGS` (minutes: off the async workers); its output on failure.
fn helm_install(args: &[&str]) -> Result<(), Error> {
    let path = e2e_dir().join("scripts/helm-install.sh");
    let out = tokio::task::block_in_place(|| Command::new(&path).args(args).output())
        .map_err(|e| Error::Check(format!("cannot run {}: {e}", path.display())))?;
    ensure(out.status.success(), || {
        format!("helm-install.sh {args:?} failed:\n{}", show(&out))
    })
}

/// The names of the live pods of Deployment `name`.
async fn pod_names(bed: &Bed, name: &str) -> Result<BTreeSet<String>, Error> {
    Ok(Api::<Pod>::namespaced(bed.admin.clone(), INSTALL_NAMESPACE)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/name={name}")))
        .await
        .step(format!("listing the pods of {name}"))?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect())
}

/// Helm's record of revision `n` of the release (a Secret of the release's namespace).
async fn has_revision(bed: &Bed, n: u32) -> Result<bool, Error> {
    let name = format!("sh.helm.release.v1.{RELEASE}.v{n}");
    Ok(
        Api::<Secret>::namespaced(bed.admin.clone(), INSTALL_NAMESPACE)
            .get_opt(&name)
            .await
            .step(format!("reading Secret {name}"))?
            .is_some(),
    )
}

/// The upgrade: token-service scaled to 3 and its config changed; every token-service pod is a
/// new one (the config checksum rolled them), running the new config.
async fn upgrade_rolls_token_service(bed: &Bed, node: &RealNode) -> Result<(), Error> {
    let before = pod_names(bed, "token-service").await?;
    let mut args = vec!["upgrade"];
    args.extend(UPGRADE);
    helm_install(&args)?;
    ensure(has_revision(bed, 2).await?, || {
        "helm upgrade left no revision 2 of the release".into()
    })?;
    ready_replicas(bed, node, "token-service", 3).await?;
    ready_replicas(bed, node, "iddecorator", 2).await?;
    let after = pod_names(bed, "token-service").await?;
    ensure(before.is_disjoint(&after), || {
        format!("token-service pods {before:?} survived a config change: {after:?}")
    })?;
    // The old ones gone too: one in its preStop sleep could serve alice and take its log along.
    for old in &before {
        pod_gone(bed, old).await?;
    }
    let config = Api::<ConfigMap>::namespaced(bed.admin.clone(), INSTALL_NAMESPACE)
        .get("token-service-config")
        .await
        .step("reading ConfigMap token-service-config")?
        .data
        .unwrap_or_default()
        .remove("config.yaml")
        .unwrap_or_default();
    ensure(config.lines().any(|l| l.trim() == "podRate: 60"), || {
        format!("the upgraded config.yaml has no podRate: 60:\n{config}")
    })
}

/// After `helm uninstall`: every Deployment is deleted (gone, or marked for deletion and gone
/// soon after), and the webhook registration is the bed's again (by URL, to the local
/// iddecorator process).
async fn uninstalled(bed: &Bed) -> Result<(), Error> {
    let api = Api::<Deployment>::namespaced(bed.admin.clone(), INSTALL_NAMESPACE);
    for name in ["iddecorator", "token-service"] {
        // `--cascade foreground` keeps a Deployment, marked for deletion, until the garbage
        // collector has removed its ReplicaSets and pods; Helm's `--wait` may return before
        // that (CI saw it once). A Deployment not even marked was never deleted: that fails.
        let left = api
            .get_opt(name)
            .await
            .step(format!("reading Deployment {name}"))?;
        ensure(
            left.is_none_or(|d| d.metadata.deletion_timestamp.is_some()),
            || format!("Deployment {name} outlived helm uninstall, not marked for deletion"),
        )?;
        e2e::wait::until(
            &format!("Deployment {name} to be gone after helm uninstall"),
            GONE_TIMEOUT,
            || async {
                Ok::<_, Error>(
                    match api
                        .get_opt(name)
                        .await
                        .step(format!("reading Deployment {name}"))?
                    {
                        None => e2e::wait::Poll::Ready(()),
                        Some(_) => e2e::wait::Poll::Pending("marked for deletion".into()),
                    },
                )
            },
        )
        .await?;
    }
    let registration = Api::<MutatingWebhookConfiguration>::all(bed.admin.clone())
        .get(WEBHOOK_CONFIGURATION)
        .await
        .step("reading the bed's webhook registration")?;
    let url = registration
        .webhooks
        .unwrap_or_default()
        .first()
        .and_then(|w| w.client_config.url.clone());
    ensure(url.is_some(), || {
        "after uninstall the webhook registration is not the bed's (by URL)".into()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_serves_alice_upgrades_and_uninstalls() {
    let node = RealNode::from_env();
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let id = TestId::new("helm");
    let cluster = Cluster::shared();
    let conf = format!("{}-hadoop-conf", id.name());
    let result = async {
        helm_install(&["up"])?;
        for name in ["iddecorator", "token-service"] {
            ready_replicas(&bed, &node, name, 2).await?;
        }
        create_hadoop_conf(&bed.admin, NAMESPACE, &conf, &cluster).await?;
        alice_writes_and_reads(&bed, &node, &cluster, &id, &conf, "first").await?;
        bobs_forgery_is_refused(&bed, &node, &cluster, &id, &conf).await?;
        upgrade_rolls_token_service(&bed, &node).await?;
        alice_writes_and_reads(&bed, &node, &cluster, &id, &conf, "upgraded").await?;
        Ok::<_, Error>(())
    }
    .await;
    let _ = Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE)
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&id.selector()),
        )
        .await;
    let _ = Api::<ConfigMap>::namespaced(bed.admin.clone(), NAMESPACE)
        .delete(&conf, &DeleteParams::default())
        .await;
    // Always uninstalled, so the bed serves the other suites again; checked only after a pass.
    let down = helm_install(&["down"]);
    result.expect("the chart installed, serving real pods and upgraded");
    down.expect("helm uninstall");
    uninstalled(&bed)
        .await
        .expect("nothing of the release left after uninstall");
}
