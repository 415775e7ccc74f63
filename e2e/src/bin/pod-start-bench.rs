//! `bench/pod-start.sh`: how long kube2hadoop makes a pod take to start on the bed's real node.
//!
//! The same pod (alice's, busybox `sleep`, on the real node), with and without
//! `kube2hadoop.io/inject`, and with a do-nothing init container instead, created one after the other in alternation so both see the same node;
//! each is timed from the create call to the Ready condition seen by a watch, then deleted and
//! waited for. With injection the time holds iddecorator's admission, the projected token, the
//! fetcher image's start and its request to token-service (the first request of a pod issues
//! tokens from the NameNode; the pods here are separate workloads, so every one is a cold issue).
//!
//! usage: pod-start-bench [PODS_PER_KIND] [OUT_DIR]   (defaults: 15, bench/results)
//! Needs the bed with its real node, the Kerberized HDFS and slapd (as the e2e suite); starts a
//! token-service (K2H_E2E_TOKEN_SERVICE_BIN, e.g. a release build) where injection points.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::hadoop::Cluster;
use e2e::ledger::LedgerNamespace;
use e2e::pods::{BUSYBOX, RealNode};
use e2e::token_service::Options;
use e2e::{Bed, NAMESPACE, TestId, objects};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

const WARMUP: usize = 2;
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    /// The same pod with a do-nothing init container: what any init container costs (the
    /// kubelet notices a container's exit on its next relist, every second).
    TrivialInit,
    Injected,
}

const KINDS: [Kind; 3] = [Kind::Plain, Kind::TrivialInit, Kind::Injected];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::TrivialInit => "init",
            Kind::Injected => "injected",
        }
    }
}

fn pod(node: &RealNode, id: &TestId, name: &str, kind: Kind) -> Pod {
    let mut value = serde_json::to_value(objects::pod(id, name, "alice").expect("a test pod"))
        .expect("pod as JSON");
    if kind == Kind::Injected {
        value["metadata"]["annotations"]["kube2hadoop.io/inject"] = "true".into();
    }
    value["spec"] = json!({
        "terminationGracePeriodSeconds": 0,
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000},
        "containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}],
    });
    if kind == Kind::TrivialInit {
        value["spec"]["initContainers"] =
            json!([{"name": "init", "image": BUSYBOX, "command": ["/bin/busybox", "true"]}]);
    }
    node.place(&mut value["spec"]);
    serde_json::from_value(value).expect("a pod")
}

/// Milliseconds from the create call until the pod is Ready; the pod is deleted and gone after.
async fn start_once(api: &Api<Pod>, pod: &Pod) -> Result<f64, String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let t0 = Instant::now();
    api.create(&PostParams::default(), pod)
        .await
        .map_err(|e| format!("create {name}: {e}"))?;
    let ready = tokio::time::timeout(
        TIMEOUT,
        await_condition(api.clone(), &name, conditions::is_pod_running()),
    )
    .await;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let outcome = match ready {
        Ok(Ok(_)) => Ok(ms),
        Ok(Err(e)) => Err(format!("watching {name}: {e}")),
        Err(_) => Err(format!("{name} not running after {}s", TIMEOUT.as_secs())),
    };
    let _ = api
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await;
    let _ = tokio::time::timeout(
        TIMEOUT,
        await_condition(api.clone(), &name, conditions::is_deleted("")),
    )
    .await;
    outcome
}

fn stats(ms: &[f64]) -> serde_json::Value {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    json!({"n": v.len(), "mean_ms": mean, "p50_ms": q(0.5), "p90_ms": q(0.9), "min_ms": v[0], "max_ms": v[v.len() - 1]})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let per_kind: usize = args
        .next()
        .map(|a| a.parse().expect("PODS_PER_KIND is a number"))
        .unwrap_or(15);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "bench/results".into()));
    let node = RealNode::from_env();
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let id = TestId::new("podstart");
    let ledger = LedgerNamespace::create(&bed, &id)
        .await
        .expect("a ledger namespace");
    let plan = Options::new(&[NAMESPACE], ledger.name())
        .on_node()
        .prepare(&Cluster::shared());
    let service = plan.start(0).await;
    // Pods are created as alice (iddecorator stamps her), read and deleted as admin.
    let create = Api::<Pod>::namespaced(bed.alice.clone(), NAMESPACE);
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let mut failures = Vec::new();
    for round in 0..WARMUP + per_kind {
        for kind in KINDS {
            let name = format!("{}-{}-{round}", id.name(), kind.label());
            match start_once(&create, &pod(&node, &id, &name, kind)).await {
                Ok(ms) if round >= WARMUP => times[kind as usize].push(ms),
                Ok(_) => {}
                Err(e) => failures.push(e),
            }
        }
        // Something is broken, not slow: stop and report it.
        if failures.len() > 3 {
            break;
        }
    }
    id.cleanup(&bed.admin).await;
    drop(service);
    ledger.delete(&bed).await;
    if times.iter().any(Vec::is_empty) {
        panic!("no pod started: {failures:#?}");
    }
    let (plain, init, injected) = (stats(&times[0]), stats(&times[1]), stats(&times[2]));
    let p50 = |s: &serde_json::Value| s["p50_ms"].as_f64().unwrap_or(f64::NAN);
    let mean = |s: &serde_json::Value| s["mean_ms"].as_f64().unwrap_or(f64::NAN);
    let report = json!({
        "what": "create call to Running, same pod on the real node, without and with injection",
        "node": node.name,
        "pods_per_kind": per_kind,
        "warmup_rounds": WARMUP,
        "plain": plain,
        "init": init,
        "injected": injected,
        "added_p50_ms": p50(&injected) - p50(&plain),
        "added_mean_ms": mean(&injected) - mean(&plain),
        "ratio_p50": p50(&injected) / p50(&plain),
        "ratio_mean": mean(&injected) / mean(&plain),
        "added_over_init_p50_ms": p50(&injected) - p50(&init),
        "ratio_over_init_p50": p50(&injected) / p50(&init),
        "failures": failures,
        "raw_ms": {"plain": times[0], "init": times[1], "injected": times[2]},
    });
    std::fs::create_dir_all(&out).expect("results dir");
    let text = serde_json::to_string_pretty(&report).expect("JSON");
    std::fs::write(out.join("pod-start.json"), &text).expect("write pod-start.json");
    let row = |label: &str, s: &serde_json::Value| {
        format!(
            "| {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            s["p50_ms"].as_f64().unwrap_or_default(),
            s["p90_ms"].as_f64().unwrap_or_default(),
            s["mean_ms"].as_f64().unwrap_or_default(),
            s["min_ms"].as_f64().unwrap_or_default(),
            s["max_ms"].as_f64().unwrap_or_default(),
        )
    };
    let md = format!(
        "# Pod start on the real node: what kube2hadoop adds\n\n\
         Create call to Running (watch), the same busybox pod on node {}, {per_kind} of each \
         kind in alternation after {WARMUP} warm-up rounds; `injected` has \
         `kube2hadoop.io/inject: \"true\"` (admission, projected token, fetcher container, a cold \
         token issue per pod); `init` has a do-nothing init container instead, the cost of any \
         init container on this kubelet (it sees a container exit on its next 1 s relist).\n\n\
         | pod | p50 ms | p90 ms | mean ms | min ms | max ms |\n|---|---|---|---|---|---|\n{}{}{}\n\
         Added by kube2hadoop: {:.0} ms at p50 ({:.2}×), {:.0} ms on average ({:.2}×); over a \
         do-nothing init container: {:.0} ms at p50 ({:.2}×). Failures: {}.\n",
        node.name,
        row("plain", &plain),
        row("init", &init),
        row("injected", &injected),
        report["added_p50_ms"].as_f64().unwrap_or_default(),
        report["ratio_p50"].as_f64().unwrap_or_default(),
        report["added_mean_ms"].as_f64().unwrap_or_default(),
        report["ratio_mean"].as_f64().unwrap_or_default(),
        report["added_over_init_p50_ms"]
            .as_f64()
            .unwrap_or_default(),
        report["ratio_over_init_p50"].as_f64().unwrap_or_default(),
        report["failures"].as_array().map_or(0, Vec::len),
    );
    std::fs::write(out.join("pod-start.md"), &md).expect("write pod-start.md");
    print!("{md}");
}
