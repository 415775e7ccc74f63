//! Issue 9, "Bad input": whatever the request, the patch of `/mutate` applies to the object it
//! was computed from, `/validate` of the patched object allows it, and mutating again changes
//! nothing; a request `/mutate` denies, `/validate` denies too. The invariants are checked by
//! [`crate::fuzz::check_request`], the same function the `admission` fuzz target runs.
//!
//! Unlike the narrower properties in `mod.rs` and `injection_tests.rs`, the requests here
//! vary everything at once: operation and subresource; the old object independently of the
//! new one (including the new one as it was admitted, i.e. a re-sent manifest); requesters
//! (people, mapped and unmappable names, service accounts, trusted controllers of either
//! policy, no username); owner references on each object; built-in and policy kinds with
//! wildcard template paths; per template the annotation shape, the inject/refresh opt-in,
//! list fields in every shape (including reserved names), and arbitrary JSON where a
//! template, its metadata or its spec belongs.
use super::fixtures::{Kind, decode, kind, set, stamp_keys};
use super::*;
use crate::fuzz::{check_request, rich_policy};
use crate::injection::{FETCHER, SA_TOKEN_VOLUME, TOKEN_ENV, TOKEN_VOLUME};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::json;

/// The built-in kinds (of [`super::fixtures::KINDS`]) [`object`] builds.
const BUILT_IN: [&str; 5] = ["Pod", "Deployment", "Job", "CronJob", "TFJob"];

/// Kinds of [`rich_policy`] only (the default policy passes them unchanged).
static RICH_KINDS: [Kind; 2] = [
    (
        "ray.io",
        "v1",
        "RayCluster",
        "rayclusters",
        &[
            "/spec/headGroupSpec/template",
            "/spec/workerGroupSpecs/0/template",
            "/spec/workerGroupSpecs/1/template",
        ],
    ),
    (
        "example.com",
        "v1",
        "Fanout",
        "fanouts",
        &["/spec/a/template", "/spec/b/template"],
    ),
];

const KIND_COUNT: usize = BUILT_IN.len() + RICH_KINDS.len();

/// The `i`th of the [`KIND_COUNT`] kinds: the built-in ones, then the rich policy's.
fn kind_at(i: usize) -> &'static Kind {
    match BUILT_IN.get(i) {
        Some(name) => kind(name),
        None => &RICH_KINDS[i - BUILT_IN.len()],
    }
}

const CONTROLLERS: &[&str] = &[
    "system:serviceaccount:kube-system:replicaset-controller",
    "system:serviceaccount:kube-system:deployment-controller",
    "system:kube-controller-manager",
    "system:serviceaccount:ray-system:kuberay-operator",
];

fn policies() -> [Policy; 2] {
    [
        Policy::default(),
        rich_policy().with_stamp_keys(Some(stamp_keys())),
    ]
}

/// Any JSON, a few levels deep: what a broken client or another webhook might put anywhere.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z/~.:-]{0,6}".prop_map(Value::from),
        Just(json!(USER)),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                select(vec![
                    "metadata",
                    "annotations",
                    "spec",
                    "containers",
                    "template",
                    "x",
                ]),
                inner,
                0..4,
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// The user annotation's shape at one site.
#[derive(Debug, Clone)]
enum Annotation {
    NoMetadata,
    NoAnnotations,
    Null,
    Value(String),
    /// Not a string (templates only: the top-level metadata is typed and would not decode).
    NotAString(Value),
}

fn annotation() -> impl Strategy<Value = Annotation> {
    prop_oneof![
        2 => Just(Annotation::NoMetadata),
        2 => Just(Annotation::NoAnnotations),
        1 => Just(Annotation::Null),
        6 => select(vec!["alice", "bob", "", "mallory", "etl"]).prop_map(|s| Annotation::Value(s.to_owned())),
        2 => "[a-z~/.:@ -]{0,10}".prop_map(Annotation::Value),
        1 => any_json().prop_map(Annotation::NotAString),
    ]
}

/// A list field of a pod spec or container.
#[derive(Debug, Clone)]
enum List {
    Absent,
    Null,
    Empty,
    Ours,
    Theirs,
    /// An entry with one of injection's reserved names but another shape.
    Reserved,
    Junk(Value),
}

fn list() -> impl Strategy<Value = List> {
    prop_oneof![
        3 => Just(List::Absent),
        1 => Just(List::Null),
        1 => Just(List::Empty),
        1 => Just(List::Ours),
        3 => Just(List::Theirs),
        1 => Just(List::Reserved),
        1 => any_json().prop_map(List::Junk),
    ]
}

/// Everything about one place a pod template (or the Pod itself) sits.
#[derive(Debug, Clone)]
struct Site {
    annotation: Annotation,
    inject: Option<&'static str>,
    refresh: bool,
    volumes: List,
    init_containers: List,
    env: List,
    mounts: List,
    image: &'static str,
    /// Replaces the whole template, its metadata or its spec with arbitrary JSON.
    broken: Option<(usize, Value)>,
}

fn site() -> impl Strategy<Value = Site> {
    (
        annotation(),
        prop_oneof![
            3 => Just(Some("true")),
            3 => Just(None),
            1 => select(vec!["false", "yes", ""]).prop_map(Some),
        ],
        any::<bool>(),
        (list(), list(), list(), list()),
        select(vec!["busybox:1", "evil:1"]),
        proptest::option::weighted(0.1, (0..3usize, any_json())),
    )
        .prop_map(
            |(
                annotation,
                inject,
                refresh,
                (volumes, init_containers, env, mounts),
                image,
                broken,
            )| {
                Site {
                    annotation,
                    inject,
                    refresh,
                    volumes,
                    init_containers,
                    env,
                    mounts,
                    image,
                    broken,
                }
            },
        )
}

fn set_list(map: &mut Value, field: &str, shape: &List, ours: Value, theirs: Value) {
    let Some(m) = map.as_object_mut() else {
        return;
    };
    let value = match shape {
        List::Absent => {
            m.remove(field);
            return;
        }
        List::Null => Value::Null,
        List::Empty => json!([]),
        List::Ours => json!([ours]),
        List::Theirs => json!([theirs]),
        List::Reserved => json!([theirs, {"name": ours["name"], "image": "other"}]),
        List::Junk(v) => v.clone(),
    };
    m.insert(field.to_owned(), value);
}

/// Shapes the template (or Pod) `t`; `top` is the object's own, typed metadata.
fn shape_site(t: &mut Value, site: &Site, top: bool) {
    let mut annotations = serde_json::Map::new();
    match &site.annotation {
        Annotation::NoMetadata if !top => {
            if let Some(m) = t.as_object_mut() {
                m.remove("metadata");
            }
        }
        Annotation::NoMetadata | Annotation::NoAnnotations => {}
        Annotation::Null => {
            t["metadata"]["annotations"] = Value::Null;
        }
        Annotation::Value(v) => {
            annotations.insert(USER.into(), json!(v));
            // Sometimes with a stamp (never a valid one: nobody outside iddecorator has the key).
            if v.len() % 2 == 0 {
                annotations.insert(
                    k2h_contract::annotations::STAMP.into(),
                    json!(format!("v1.{v}")),
                );
            }
        }
        Annotation::NotAString(v) if !top => {
            annotations.insert(USER.into(), v.clone());
        }
        Annotation::NotAString(_) => {}
    }
    if let Some(v) = site.inject {
        annotations.insert(INJECT.into(), json!(v));
    }
    if site.refresh {
        annotations.insert(k2h_contract::annotations::REFRESH.into(), json!("true"));
    }
    if !annotations.is_empty() {
        let meta = &mut t["metadata"];
        if meta.get("annotations").is_none_or(Value::is_null) {
            meta["annotations"] = json!({});
        }
        if let Some(m) = meta["annotations"].as_object_mut() {
            m.extend(annotations);
        }
    }
    let spec = &mut t["spec"];
    spec["containers"] = json!([{"name": "main", "image": site.image}]);
    set_list(
        spec,
        "volumes",
        &site.volumes,
        json!({"name": TOKEN_VOLUME, "emptyDir": {"medium": "Memory"}}),
        json!({"name": "data", "emptyDir": {}}),
    );
    set_list(
        spec,
        "initContainers",
        &site.init_containers,
        json!({"name": FETCHER, "image": "kube2hadoop/init-fetcher"}),
        json!({"name": "setup", "image": "x"}),
    );
    let c = &mut spec["containers"][0];
    set_list(
        c,
        "env",
        &site.env,
        json!({"name": TOKEN_ENV, "value": "/elsewhere"}),
        json!({"name": "A", "value": "b"}),
    );
    set_list(
        c,
        "volumeMounts",
        &site.mounts,
        json!({"name": SA_TOKEN_VOLUME, "mountPath": "/x"}),
        json!({"name": "data", "mountPath": "/d"}),
    );
    if top {
        return;
    }
    if let Some((at, junk)) = &site.broken {
        match at {
            0 => *t = junk.clone(),
            1 => t["metadata"] = junk.clone(),
            _ => t["spec"] = junk.clone(),
        }
    }
}

fn owner_refs() -> impl Strategy<Value = Option<Value>> {
    let reference = |controller: Option<bool>| {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "train-7d4b9c",
            "uid": "6f1c2d3e-0000-4000-8000-000000000001", "controller": controller,
        })
    };
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(json!([]))),
        3 => proptest::option::of(any::<bool>()).prop_map(move |c| Some(json!([reference(c)]))),
        1 => Just(Some(json!([reference(Some(false)), reference(Some(true))]))),
    ]
}

#[derive(Debug, Clone)]
struct Shape {
    sites: Vec<Site>,
    owners: Option<Value>,
}

fn object_shape() -> impl Strategy<Value = Shape> {
    (proptest::collection::vec(site(), 1..4), owner_refs())
        .prop_map(|(sites, owners)| Shape { sites, owners })
}

fn object(kind: usize, shape: &Shape) -> Value {
    let &(group, version, name, _, paths) = kind_at(kind);
    let mut obj = json!({
        "apiVersion": if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") },
        "kind": name,
        "metadata": {"name": "train", "namespace": "ml", "labels": {"app": "train"}},
    });
    let mut sites = shape.sites.iter().cycle();
    let top = sites.next().expect("at least one site");
    shape_site(&mut obj, top, true);
    if !paths.is_empty() {
        // Workloads have no containers of their own.
        if let Some(m) = obj.as_object_mut() {
            m.remove("spec");
        }
    }
    for (path, site) in paths.iter().zip(sites) {
        let mut t = json!({"metadata": {"labels": {"app": "train"}}, "spec": {}});
        shape_site(&mut t, site, false);
        set(&mut obj, path, t);
    }
    if let Some(refs) = &shape.owners {
        obj["metadata"]["ownerReferences"] = refs.clone();
    }
    obj
}

#[derive(Debug, Clone)]
enum Old {
    Shaped(Shape),
    /// The new object as `/mutate` admitted it: a re-sent or re-applied manifest.
    Admitted,
    Missing,
}

#[derive(Debug, Clone)]
struct Case {
    kind: usize,
    operation: &'static str,
    sub_resource: Option<&'static str>,
    username: Option<String>,
    new: Shape,
    old: Old,
    rich: bool,
}

fn username() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => select(CONTROLLERS.to_vec()).prop_map(|s| Some(s.to_owned())),
        6 => select(vec![
            "alice",
            "bob",
            "oidc:alice",
            "oidc:",
            "corp:bob@corp.example",
            "alice@corp.example",
            "system:serviceaccount:etl:runner",
            "system:serviceaccount:ml:pipeline",
        ])
        .prop_map(|s| Some(s.to_owned())),
        2 => "[a-z:@.~/-]{0,12}".prop_map(Some),
        1 => Just(None),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..KIND_COUNT,
        prop_oneof![
            4 => Just("CREATE"),
            4 => Just("UPDATE"),
            1 => Just("DELETE"),
            1 => Just("CONNECT"),
        ],
        prop_oneof![
            8 => Just(None),
            1 => Just(Some("status")),
            1 => Just(Some("ephemeralcontainers")),
        ],
        username(),
        object_shape(),
        prop_oneof![
            4 => object_shape().prop_map(Old::Shaped),
            2 => Just(Old::Admitted),
            1 => Just(Old::Missing),
        ],
        any::<bool>(),
    )
        .prop_map(
            |(kind, operation, sub_resource, username, new, old, rich)| Case {
                kind,
                operation,
                sub_resource,
                username,
                new,
                old,
                rich,
            },
        )
}

fn review(case: &Case, object: Option<Value>, old: Option<Value>) -> Value {
    let &(group, version, kind, resource, _) = kind_at(case.kind);
    let mut user = json!({"uid": "014fbff9a07c", "groups": ["system:authenticated"]});
    if let Some(u) = &case.username {
        user["username"] = json!(u);
    }
    let mut request = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "name": "train",
        "namespace": "ml",
        "operation": case.operation,
        "userInfo": user,
        "object": object,
        "oldObject": old,
    });
    if let Some(s) = case.sub_resource {
        request["subResource"] = json!(s);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// `new` as admitted under `policy` by a CREATE of the same requester, or unchanged when that
/// is denied.
fn admitted(case: &Case, new: &Value, policy: &Policy) -> Value {
    let create = Case {
        operation: "CREATE",
        sub_resource: None,
        ..case.clone()
    };
    match mutate(&decode(review(&create, Some(new.clone()), None)), policy) {
        Decision::Allow { patch } => {
            let mut doc = new.clone();
            json_patch::patch(&mut doc, &patch.0).expect("checked by check_request");
            doc
        }
        Decision::Deny { .. } => new.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn mutate_then_validate_allows_whatever_the_request(case in case()) {
        let [default, rich] = policies();
        let policy = if case.rich { &rich } else { &default };
        let new = object(case.kind, &case.new);
        let old = match &case.old {
            Old::Shaped(shape) => Some(object(case.kind, shape)),
            Old::Admitted => Some(admitted(&case, &new, policy)),
            Old::Missing => None,
        };
        let (object, old) = match case.operation {
            "CREATE" => (Some(new), None),
            "DELETE" => (None, old),
            _ => (Some(new), old),
        };
        let req = decode(review(&case, object, old));
        check_request(&req, policy);
    }
}

/// The generator reaches every outcome, so the property above is not vacuous: patches that
/// stamp and inject, empty allows, and denials, under both policies.
#[test]
fn generated_requests_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let [default, rich] = policies();
    let mut runner = TestRunner::deterministic();
    let (mut stamped, mut injected, mut unchanged, mut denied) = (0, 0, 0, 0);
    for _ in 0..400 {
        let case = case().new_tree(&mut runner).expect("a case").current();
        let policy = if case.rich { &rich } else { &default };
        let new = object(case.kind, &case.new);
        let old = matches!(case.operation, "UPDATE").then(|| object(case.kind, &case.new));
        match mutate(&decode(review(&case, Some(new), old)), policy) {
            Decision::Allow { patch } if patch.0.is_empty() => unchanged += 1,
            Decision::Allow { patch } => {
                let text = serde_json::to_string(&patch).unwrap_or_default();
                stamped += usize::from(text.contains("kube2hadoop.io~1user"));
                injected += usize::from(text.contains(FETCHER));
            }
            Decision::Deny { .. } => denied += 1,
        }
    }
    let counts = [stamped, injected, unchanged, denied];
    assert!(counts.iter().all(|&n| n >= 10), "outcomes: {counts:?}");
}
