//! `mutate`/`validate` with injection: Pods, Deployments, Jobs and TFJobs,
//! reinvocation, controller-made pods, existing volumes/env, and reserved-name denials.
use super::fixtures::*;
use super::*;
use crate::fuzz::INJECTION_POLICY;
use crate::injection::{FETCHER, SA_TOKEN_VOLUME, TOKEN_DIR, TOKEN_ENV, TOKEN_FILE, TOKEN_VOLUME};
use k2h_contract::annotations::REFRESH;
use serde_json::json;

/// [`admit`], then mutate the result again: reinvocation must change nothing.
fn admit_twice(req: &AdmissionRequest<DynamicObject>, policy: &Policy) -> Value {
    let after = admit(req, policy);
    let mut again = req.clone();
    again.object = Some(serde_json::from_value(after.clone()).unwrap());
    assert_eq!(
        mutate(&again, policy),
        allow_empty(),
        "reinvocation changed {after}"
    );
    after
}

fn annotate(obj: &mut Value, site: &str, key: &str) {
    let meta = if site.is_empty() {
        &mut obj["metadata"]
    } else {
        &mut obj.pointer_mut(site).unwrap()["metadata"]
    };
    if meta.get("annotations").is_none_or(Value::is_null) {
        meta["annotations"] = json!({});
    }
    meta["annotations"][key] = json!("true");
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|l| l.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default()
}

/// The entry of `list` called `name`.
fn named<'v>(list: &'v Value, name: &str) -> &'v Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap()
}

/// Checks one injected pod spec; returns the fetcher.
fn assert_injected(spec: &Value, refresh: bool) -> Value {
    let volumes = &spec["volumes"];
    for v in [TOKEN_VOLUME, SA_TOKEN_VOLUME, "kube2hadoop-ca"] {
        assert_eq!(
            names(volumes).iter().filter(|n| **n == v).count(),
            1,
            "{v}: {spec}"
        );
    }
    assert_eq!(named(volumes, TOKEN_VOLUME)["emptyDir"]["medium"], "Memory");
    let sa = named(volumes, SA_TOKEN_VOLUME);
    let source = &sa["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(source["audience"], "kube2hadoop");
    assert_eq!(source["expirationSeconds"], 3600);

    let fetcher = spec["initContainers"][0].clone();
    assert_eq!(fetcher["name"], FETCHER);
    assert_eq!(
        names(&spec["initContainers"])
            .iter()
            .filter(|n| **n == FETCHER)
            .count(),
        1
    );
    assert_eq!(
        fetcher["args"][0],
        if refresh { "refresh" } else { "fetch" },
        "{fetcher}"
    );
    assert_eq!(
        fetcher.get("restartPolicy").and_then(Value::as_str),
        refresh.then_some("Always")
    );
    assert_eq!(fetcher["securityContext"]["runAsNonRoot"], true);
    assert_eq!(fetcher["securityContext"]["readOnlyRootFilesystem"], true);
    let others = spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .chain(spec["containers"].as_array().unwrap());
    for c in others {
        let mounts = &c["volumeMounts"];
        assert!(
            mounts
                .as_array()
                .unwrap()
                .contains(&json!({"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": true})),
            "{c}"
        );
        // The service-account token is the fetcher's alone.
        assert!(!names(mounts).contains(&SA_TOKEN_VOLUME), "{c}");
        assert_eq!(
            c["env"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["name"] == TOKEN_ENV)
                .collect::<Vec<_>>(),
            [&json!({"name": TOKEN_ENV, "value": TOKEN_FILE})],
            "{c}"
        );
    }
    fetcher
}

#[test]
fn pod_gets_the_whole_injection_and_keeps_its_own_volumes_and_env() {
    let mut pod = workload("Pod", None, "train:1");
    annotate(&mut pod, "", INJECT);
    pod["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    pod["spec"]["containers"][0]["env"] = json!([{"name": "MODE", "value": "x"}]);
    pod["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
    pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "side", "image": "x"}));
    pod["spec"]["initContainers"] = json!([{"name": "setup", "image": "x"}]);
    let after = admit_twice(&create("Pod", ALICE, pod), &policy());
    assert_eq!(user_at(&after, ""), Some(ALICE));
    let spec = &after["spec"];
    let fetcher = assert_injected(spec, false);
    assert_eq!(names(&spec["initContainers"]), [FETCHER, "setup"]);
    assert_eq!(names(&spec["volumes"])[0], "data");
    assert_eq!(spec["containers"][0]["env"][0]["name"], "MODE");
    assert_eq!(spec["containers"][0]["volumeMounts"][0]["name"], "data");
    assert_eq!(
        names(&fetcher["volumeMounts"]),
        [TOKEN_VOLUME, SA_TOKEN_VOLUME, "kube2hadoop-ca"]
    );
    let args: Vec<&str> = fetcher["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["--url", "https://token-service.kube2hadoop.svc:8443"])
    );
    assert!(args.windows(2).any(|w| w == ["--out", TOKEN_FILE]));
    // No fsGroup: app containers may run as another user, so the file is world-readable.
    assert!(args.windows(2).any(|w| w == ["--file-mode", "0444"]));
}

#[test]
fn deployment_job_and_tfjob_templates_are_injected() {
    for kind_name in ["Deployment", "Job", "CronJob", "TFJob"] {
        let mut obj = workload(kind_name, None, "train:1");
        for site in kind(kind_name).4 {
            annotate(&mut obj, site, INJECT);
        }
        let after = admit_twice(&create(kind_name, ALICE, obj), &policy());
        for site in kind(kind_name).4 {
            assert_injected(after.pointer(&format!("{site}/spec")).unwrap(), false);
            assert_eq!(user_at(&after, site), Some(ALICE));
        }
        // The object's own spec is not a pod spec and is left alone.
        assert!(after["spec"].get("initContainers").is_none());
    }
}

#[test]
fn annotation_on_the_workload_applies_to_every_template() {
    let mut obj = workload("TFJob", None, "tf");
    annotate(&mut obj, "", INJECT);
    annotate(&mut obj, "", REFRESH);
    let after = admit_twice(&create("TFJob", ALICE, obj), &policy());
    for r in ["Chief", "PS", "Worker"] {
        let fetcher = assert_injected(
            &after["spec"]["tfReplicaSpecs"][r]["template"]["spec"],
            true,
        );
        assert_eq!(fetcher["startupProbe"]["exec"]["command"][1], "print");
    }
}

#[test]
fn refresh_makes_a_native_sidecar() {
    let mut obj = workload("Job", None, "train:1");
    annotate(&mut obj, "/spec/template", INJECT);
    annotate(&mut obj, "/spec/template", REFRESH);
    obj["spec"]["template"]["spec"]["securityContext"] = json!({"fsGroup": 1000});
    let after = admit_twice(&create("Job", ALICE, obj), &policy());
    let fetcher = assert_injected(&after["spec"]["template"]["spec"], true);
    assert_eq!(fetcher["restartPolicy"], "Always");
    // With fsGroup the default 0440 is readable by the app through the group.
    assert!(
        !fetcher["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--file-mode"))
    );
}

#[test]
fn without_the_annotation_nothing_is_injected() {
    let mut obj = workload("Deployment", None, "x");
    obj["spec"]["template"]["metadata"]["annotations"] = json!({INJECT: "false"});
    let Decision::Allow { patch } = mutate(&create("Deployment", ALICE, obj), &policy()) else {
        panic!("denied");
    };
    assert!(
        patch
            .0
            .iter()
            .all(|op| op.path().as_str().contains("/metadata")),
        "{patch:?}"
    );
}

#[test]
fn controller_made_pod_from_an_injected_template_is_unchanged() {
    let mut deployment = workload("Deployment", None, "train:1");
    annotate(&mut deployment, "/spec/template", INJECT);
    let after = admit_twice(&create("Deployment", ALICE, deployment), &policy());
    let mut pod = after["spec"]["template"].clone();
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["name"] = json!("train-7d4b9c-x2x");
    pod["metadata"]["namespace"] = json!("ml");
    pod["metadata"]["ownerReferences"] = owner_ref(true);
    // The apiserver's defaulting and other webhooks add to our container; still ours.
    pod["spec"]["initContainers"][0]["env"] = json!([{"name": "HTTPS_PROXY", "value": "p"}]);
    pod["spec"]["initContainers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
    let req = create("Pod", RS_CONTROLLER, pod);
    assert_eq!(mutate(&req, &policy()), allow_empty());
    assert_eq!(validate(&req, &policy()), allow_empty());
}

/// A Deployment that asks for injection but was stored without it (created before iddecorator
/// covered it): the ReplicaSets its controller makes must keep the Deployment's template as
/// is, or the controller never finds a matching ReplicaSet and creates one after another.
#[test]
fn controller_made_replicaset_keeps_its_owners_template() {
    const DEPLOYMENT_CONTROLLER: &str = "system:serviceaccount:kube-system:deployment-controller";
    let mut rs = workload("ReplicaSet", Some(ALICE), "train:1");
    annotate(&mut rs, "/spec/template", INJECT);
    rs["metadata"]["ownerReferences"] = owner_ref_to("apps/v1", "Deployment", true);
    let empty = allow_empty();
    let req = create("ReplicaSet", DEPLOYMENT_CONTROLLER, rs.clone());
    assert_eq!(mutate(&req, &policy()), empty);
    assert_eq!(validate(&req, &policy()), empty);
    // Scaling it (an UPDATE by its controller) leaves the template alone too.
    let mut scaled = rs.clone();
    scaled["spec"]["replicas"] = json!(3);
    let req = update("ReplicaSet", DEPLOYMENT_CONTROLLER, rs.clone(), scaled);
    assert_eq!(mutate(&req, &policy()), empty);
    // Its pods are still injected when the replicaset-controller creates them.
    let mut pod = rs["spec"]["template"].clone();
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["name"] = json!("train-7d4b9c-x2x");
    pod["metadata"]["namespace"] = json!("ml");
    pod["metadata"]["ownerReferences"] = owner_ref(true);
    let after = admit_twice(&create("Pod", RS_CONTROLLER, pod), &policy());
    assert_injected(&after["spec"], false);
    // A ReplicaSet its user submits is injected as before.
    rs["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("ownerReferences");
    let after = admit_twice(&create("ReplicaSet", ALICE, rs.clone()), &policy());
    assert_injected(&after["spec"]["template"]["spec"], false);
    // So is one that names a Deployment owner but is not created by its controller.
    rs["metadata"]["ownerReferences"] = owner_ref_to("apps/v1", "Deployment", true);
    let after = admit_twice(&create("ReplicaSet", ALICE, rs), &policy());
    assert_injected(&after["spec"]["template"]["spec"], false);
}

#[test]
fn update_resending_the_manifest_restores_the_owner_and_reinjects() {
    let mut manifest = workload("Deployment", None, "train:1");
    annotate(&mut manifest, "/spec/template", INJECT);
    let stored = admit_twice(&create("Deployment", ALICE, manifest.clone()), &policy());
    // Bob re-sends the original manifest (no injected parts) with more replicas.
    let mut new = manifest;
    new["spec"]["replicas"] = json!(3);
    let after = admit_twice(&update("Deployment", "bob", stored, new), &policy());
    assert_eq!(user_at(&after, "/spec/template"), Some(ALICE));
    assert_injected(&after["spec"]["template"]["spec"], false);
}

#[test]
fn pod_update_is_never_injected() {
    let old = workload("Pod", Some(ALICE), "x");
    let mut new = old.clone();
    annotate(&mut new, "", INJECT);
    let req = update("Pod", ALICE, old, new);
    let Decision::Allow { patch } = mutate(&req, &policy()) else {
        panic!("denied");
    };
    assert!(
        patch
            .0
            .iter()
            .all(|op| !op.path().as_str().starts_with("/spec"))
    );
}

#[test]
fn reserved_names_in_another_shape_are_denied() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/spec/containers/-",
            json!({"name": FETCHER, "image": "mine"}),
            "container `kube2hadoop-fetcher` (/spec/containers/1) uses a name reserved for kube2hadoop's fetcher",
        ),
        (
            "/spec/initContainers",
            json!([{"name": FETCHER, "image": "mine"}]),
            "(/spec/initContainers/0) uses a name reserved",
        ),
        (
            "/spec/volumes",
            json!([{"name": TOKEN_VOLUME, "configMap": {"name": "x"}}]),
            "volume `kube2hadoop-token` (/spec/volumes/0) uses a name reserved for kube2hadoop but is not a `emptyDir` volume",
        ),
        (
            "/spec/volumes",
            json!([{"name": SA_TOKEN_VOLUME, "secret": {"secretName": "x"}}]),
            "is not a `projected` volume",
        ),
        (
            "/spec/containers/0/volumeMounts",
            json!([{"name": "mine", "mountPath": "/var/run/secrets/hadoop/"}]),
            "container /spec/containers/0 already mounts a volume at /var/run/secrets/hadoop",
        ),
    ];
    for (pointer, value, want) in cases {
        let mut pod = workload("Pod", None, "x");
        annotate(&mut pod, "", INJECT);
        let doc = json!([{"op": "add", "path": pointer, "value": value}]);
        let ops: json_patch::Patch = serde_json::from_value(doc).unwrap();
        json_patch::patch(&mut pod, &ops.0).unwrap();
        let req = create("Pod", ALICE, pod);
        let reason = denied(mutate(&req, &policy()));
        assert!(
            reason.starts_with(
                "Pod asks for kube2hadoop.io/inject but the fetcher cannot be injected"
            ),
            "{reason}"
        );
        assert!(reason.contains(want), "{want}: {reason}");
        assert!(matches!(validate(&req, &policy()), Decision::Deny { .. }));
    }
}

#[test]
fn user_value_of_the_variable_is_kept() {
    let mut pod = workload("Pod", None, "x");
    annotate(&mut pod, "", INJECT);
    pod["spec"]["containers"][0]["env"] = json!([{"name": TOKEN_ENV, "value": "/elsewhere"}]);
    let after = admit_twice(&create("Pod", ALICE, pod), &policy());
    assert_eq!(
        after["spec"]["containers"][0]["env"],
        json!([{"name": TOKEN_ENV, "value": "/elsewhere"}])
    );
}

#[test]
fn policy_section_shapes_the_fetcher() {
    let p = Policy::from_yaml(INJECTION_POLICY).unwrap();
    let mut pod = workload("Pod", None, "x");
    annotate(&mut pod, "", INJECT);
    let after = admit_twice(&create("Pod", ALICE, pod), &p);
    let spec = &after["spec"];
    assert_eq!(names(&spec["volumes"]), [TOKEN_VOLUME, SA_TOKEN_VOLUME]);
    assert_eq!(
        spec["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        7200
    );
    let fetcher = &spec["initContainers"][0];
    assert_eq!(fetcher["image"], "registry.example/k2h/init-fetcher:1.2.3");
    let args = fetcher["args"].as_array().unwrap();
    for want in ["https://k2h.example:9443", "/etc/ssl/k2h-ca.pem", "5m"] {
        assert!(args.contains(&json!(want)), "{want}: {fetcher}");
    }
    assert_eq!(
        names(&fetcher["volumeMounts"]),
        [TOKEN_VOLUME, SA_TOKEN_VOLUME]
    );
}

/// `caPemFile`: the CA travels in the pod spec (protected like the rest of it), not in a
/// ConfigMap that any editor of the namespace could replace.
#[test]
fn ca_pem_file_puts_the_ca_into_the_fetchers_environment() {
    let ca = rcgen::generate_simple_self_signed(vec!["token-service".into()]).unwrap();
    let pem = ca.cert.pem();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &pem).unwrap();
    let p = Policy::from_yaml(&format!("injection: {{caPemFile: {}}}", path.display())).unwrap();
    let mut pod = workload("Pod", None, "x");
    annotate(&mut pod, "", INJECT);
    let after = admit_twice(&create("Pod", ALICE, pod), &p);
    let spec = &after["spec"];
    assert_eq!(names(&spec["volumes"]), [TOKEN_VOLUME, SA_TOKEN_VOLUME]);
    let fetcher = &spec["initContainers"][0];
    assert_eq!(
        fetcher["env"],
        json!([{"name": "K2H_FETCH_CA_PEM", "value": pem}])
    );
    assert!(
        !fetcher["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--ca-file"))
    );
    assert_eq!(
        names(&fetcher["volumeMounts"]),
        [TOKEN_VOLUME, SA_TOKEN_VOLUME]
    );
    // A file that is not a CA certificate stops the policy from loading.
    std::fs::write(&path, ca.signing_key.serialize_pem()).unwrap();
    let e = Policy::from_yaml(&format!("injection: {{caPemFile: {}}}", path.display()));
    assert!(format!("{e:?}").contains("caPemFile"), "{e:?}");
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// How a list field of a pod spec or container looks before injection.
    #[derive(Debug, Clone, Copy)]
    enum ListShape {
        Absent,
        Null,
        Empty,
        One,
    }

    fn list_shape() -> impl Strategy<Value = ListShape> {
        prop_oneof![
            Just(ListShape::Absent),
            Just(ListShape::Null),
            Just(ListShape::Empty),
            Just(ListShape::One),
        ]
    }

    fn set_list(map: &mut Value, field: &str, shape: ListShape, one: Value) {
        match shape {
            ListShape::Absent => {
                map.as_object_mut().unwrap().remove(field);
            }
            ListShape::Null => map[field] = Value::Null,
            ListShape::Empty => map[field] = json!([]),
            ListShape::One => map[field] = json!([one]),
        }
    }

    #[derive(Debug, Clone)]
    struct SiteCase {
        inject: Option<&'static str>,
        refresh: bool,
        volumes: ListShape,
        inits: ListShape,
        env: ListShape,
        mounts: ListShape,
    }

    fn site_case() -> impl Strategy<Value = SiteCase> {
        (
            proptest::option::of(proptest::sample::select(vec!["true", "false"])),
            any::<bool>(),
            list_shape(),
            list_shape(),
            list_shape(),
            list_shape(),
        )
            .prop_map(|(inject, refresh, volumes, inits, env, mounts)| SiteCase {
                inject,
                refresh,
                volumes,
                inits,
                env,
                mounts,
            })
    }

    fn shape(obj: &mut Value, site: &str, case: &SiteCase) {
        let t = if site.is_empty() {
            &mut *obj
        } else {
            obj.pointer_mut(site).unwrap()
        };
        let mut anns = serde_json::Map::new();
        if let Some(v) = case.inject {
            anns.insert(INJECT.into(), json!(v));
        }
        if case.refresh {
            anns.insert(REFRESH.into(), json!("true"));
        }
        t["metadata"]["annotations"] = Value::Object(anns);
        let spec = &mut t["spec"];
        set_list(
            spec,
            "volumes",
            case.volumes,
            json!({"name": "data", "emptyDir": {}}),
        );
        set_list(
            spec,
            "initContainers",
            case.inits,
            json!({"name": "setup", "image": "x"}),
        );
        let c = &mut spec["containers"][0];
        set_list(c, "env", case.env, json!({"name": "A", "value": "b"}));
        set_list(
            c,
            "volumeMounts",
            case.mounts,
            json!({"name": "data", "mountPath": "/d"}),
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn injection_is_admitted_and_idempotent(
            kind_idx in 0..KINDS.len(),
            root_inject in any::<bool>(),
            cases in proptest::collection::vec(site_case(), 1..4),
            controller in any::<bool>(),
        ) {
            let k = KINDS[kind_idx].2;
            let mut obj = workload(k, Some(ALICE), "x");
            let sites: Vec<&str> = if k == "Pod" { vec![""] } else { kind(k).4.to_vec() };
            for (site, case) in sites.iter().zip(cases.iter().cycle()) {
                shape(&mut obj, site, case);
            }
            if root_inject && k != "Pod" {
                obj["metadata"]["annotations"][INJECT] = json!("true");
            }
            let user = if controller {
                obj["metadata"]["ownerReferences"] = owner_ref(true);
                RS_CONTROLLER
            } else {
                ALICE
            };
            let after = admit_twice(&create(k, user, obj), &policy());
            for site in sites {
                let spec = &after.pointer(&format!("{site}/spec")).unwrap();
                let fetchers = names(&spec["initContainers"]).iter().filter(|n| **n == FETCHER).count();
                prop_assert!(fetchers <= 1, "{}", after);
                if fetchers == 1 {
                    assert_injected(spec, spec["initContainers"][0]["args"][0] == "refresh");
                }
            }
        }
    }
}
