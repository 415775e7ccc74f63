//! Injection: a pod, or pod template, annotated `kube2hadoop.io/inject: "true"` gets
//! the fetcher, its volumes, and the token mount and `HADOOP_TOKEN_FILE_LOCATION` in every
//! other container.
//!
//! The result is a list of JSON-patch operations computed from the object alone, so it is
//! idempotent: anything already carrying one of our reserved names in the shape we give it is
//! taken as already injected (by an earlier invocation, or in the template a controller copied
//! the pod from) and left as it is, even if a later webhook added to it. A reserved name in a
//! different shape is the user's own object and the request is refused, never silently merged.
pub mod config;
mod spec;

pub use config::{Injection, InjectionFile};
pub use spec::{
    CA_VOLUME, FETCHER, SA_TOKEN_VOLUME, TOKEN_DIR, TOKEN_ENV, TOKEN_FILE, TOKEN_VOLUME,
};

use crate::pointer::{Path, Seg};
use crate::workload::type_name;
use json_patch::{AddOperation, PatchOperation};
use k2h_contract::annotations::{INJECT, REFRESH};
use serde_json::{Map, Value};
use spec::Mode;

/// Why injection cannot be done without breaking the user's pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("{path} must be a list but is {found}")]
    NotList { path: Path, found: &'static str },
    #[error("{path} must be an object but is {found}")]
    NotObject { path: Path, found: &'static str },
    #[error(
        "volume `{name}` ({path}) uses a name reserved for kube2hadoop but is not a `{kind}` volume; rename your volume"
    )]
    Volume {
        name: String,
        path: Path,
        kind: &'static str,
    },
    #[error(
        "container `{FETCHER}` ({path}) uses a name reserved for kube2hadoop's fetcher but is not it; rename your container"
    )]
    Container { path: Path },
    #[error(
        "container {path} already mounts a volume at {TOKEN_DIR}, where kube2hadoop mounts the token volume; move that mount or remove {INJECT}"
    )]
    MountPath { path: Path },
}

/// The operations injecting the fetcher into each of `sites` (pods or pod templates) that asks
/// for it. A template site also asks when the object's own metadata (at `root`) does.
pub fn ops(
    object: &Value,
    sites: &[Path],
    cfg: &Injection,
) -> Result<Vec<PatchOperation>, Conflict> {
    let mut ops = Vec::new();
    for site in sites {
        // A template's own annotation wins over the workload's.
        let asks = |key| {
            annotation(object, site, key)
                .or_else(|| {
                    (!site.segs().is_empty())
                        .then(|| annotation(object, &Path::root(), key))
                        .flatten()
                })
                .unwrap_or(false)
        };
        if !asks(INJECT) {
            continue;
        }
        let spec_path = site.keys(&["spec"]);
        // No spec: nothing runs here yet, and the apiserver refuses the object anyway.
        let Some(Value::Object(spec)) = spec_path.lookup(object) else {
            continue;
        };
        let fs_group = spec
            .get("securityContext")
            .and_then(|s| s.get("fsGroup"))
            .is_some_and(|g| !g.is_null());
        let mode = Mode {
            refresh: asks(REFRESH),
            fs_group,
        };
        site_ops(spec, &spec_path, cfg, mode, &mut ops)?;
    }
    Ok(ops)
}

/// `Some(true)` for "true" (any case), `Some(false)` for any other value, `None` when absent.
fn annotation(object: &Value, site: &Path, key: &str) -> Option<bool> {
    site.keys(&["metadata", "annotations", key])
        .lookup(object)
        .and_then(Value::as_str)
        .map(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn site_ops(
    spec: &Map<String, Value>,
    at: &Path,
    cfg: &Injection,
    mode: Mode,
    ops: &mut Vec<PatchOperation>,
) -> Result<(), Conflict> {
    // Volumes: add the missing ones; reserved names must be of our kind.
    let volumes = list(spec, at, "volumes")?;
    let mut missing = Vec::new();
    for (name, volume) in spec::volumes(cfg) {
        let found = volumes
            .iter()
            .flat_map(|v| v.iter().enumerate())
            .find(|(_, v)| name_of(v) == Some(name));
        match found {
            Some((i, v)) if v.get(spec::volume_source(name)).is_none() => {
                return Err(Conflict::Volume {
                    name: name.to_owned(),
                    path: at.keys(&["volumes"]).child(Seg::Index(i)),
                    kind: spec::volume_source(name),
                });
            }
            Some(_) => {}
            None => missing.push(volume),
        }
    }
    append(ops, at.keys(&["volumes"]), volumes.is_some(), missing);

    // The fetcher: ours if it is an init container mounting the token volume.
    let inits = list(spec, at, "initContainers")?;
    let apps = list(spec, at, "containers")?;
    if let Some(i) = apps
        .iter()
        .flat_map(|c| c.iter())
        .position(|c| name_of(c) == Some(FETCHER))
    {
        return Err(Conflict::Container {
            path: at.keys(&["containers"]).child(Seg::Index(i)),
        });
    }
    let ours = inits
        .iter()
        .flat_map(|c| c.iter())
        .position(|c| name_of(c) == Some(FETCHER));
    if let Some(i) = ours {
        let mounts_token = inits
            .and_then(|c| c.get(i))
            .and_then(|c| c.get("volumeMounts"))
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|m| name_of(m) == Some(TOKEN_VOLUME)));
        if !mounts_token {
            return Err(Conflict::Container {
                path: at.keys(&["initContainers"]).child(Seg::Index(i)),
            });
        }
    }

    // Every other container reads the file.
    for (field, containers, skip) in [("initContainers", inits, ours), ("containers", apps, None)] {
        for (i, c) in containers.iter().flat_map(|c| c.iter().enumerate()) {
            if Some(i) != skip {
                container_ops(c, &at.keys(&[field]).child(Seg::Index(i)), ops)?;
            }
        }
    }

    // Last, so the indexes used above are still those of the object as received.
    if ours.is_none() {
        let fetcher = spec::fetcher(cfg, mode);
        match inits {
            Some(_) => ops.push(add(
                at.keys(&["initContainers"]).child(Seg::Index(0)),
                fetcher,
            )),
            None => ops.push(add(
                at.keys(&["initContainers"]),
                Value::Array(vec![fetcher]),
            )),
        }
    }
    Ok(())
}

fn container_ops(
    container: &Value,
    at: &Path,
    ops: &mut Vec<PatchOperation>,
) -> Result<(), Conflict> {
    let Value::Object(c) = container else {
        return Err(Conflict::NotObject {
            path: at.clone(),
            found: type_name(container),
        });
    };
    let mounts = list(c, at, "volumeMounts")?;
    let mounted = mounts.iter().flat_map(|m| m.iter());
    if !mounted.clone().any(|m| name_of(m) == Some(TOKEN_VOLUME)) {
        let taken = mounted.clone().any(|m| {
            m.get("mountPath")
                .and_then(Value::as_str)
                .is_some_and(|p| p.trim_end_matches('/') == TOKEN_DIR)
        });
        if taken {
            return Err(Conflict::MountPath { path: at.clone() });
        }
        append(
            ops,
            at.keys(&["volumeMounts"]),
            mounts.is_some(),
            vec![spec::app_mount()],
        );
    }
    // A variable the user set is theirs to keep.
    let env = list(c, at, "env")?;
    if !env
        .iter()
        .flat_map(|e| e.iter())
        .any(|e| name_of(e) == Some(TOKEN_ENV))
    {
        append(ops, at.keys(&["env"]), env.is_some(), vec![spec::app_env()]);
    }
    Ok(())
}

/// A list field; absent or null is `None`.
fn list<'v>(
    map: &'v Map<String, Value>,
    at: &Path,
    field: &str,
) -> Result<Option<&'v Vec<Value>>, Conflict> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(Conflict::NotList {
            path: at.keys(&[field]),
            found: type_name(other),
        }),
    }
}

fn name_of(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

/// Append `items` to the list at `path`, creating it (or replacing a null) when absent.
fn append(ops: &mut Vec<PatchOperation>, path: Path, exists: bool, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    if exists {
        for item in items {
            ops.push(add(path.keys(&["-"]), item));
        }
    } else {
        ops.push(add(path, Value::Array(items)));
    }
}

fn add(path: Path, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: path.to_pointer(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"annotations": {INJECT: "true"}}, "spec": spec})
    }

    fn root() -> Vec<Path> {
        vec![Path::root()]
    }

    fn applied(mut doc: Value) -> Value {
        let ops = ops(&doc, &root(), &Injection::default()).unwrap();
        json_patch::patch(&mut doc, &ops).unwrap();
        doc
    }

    #[test]
    fn null_lists_are_replaced_and_ops_apply_in_order() {
        let doc = applied(pod(json!({
            "volumes": null,
            "initContainers": [{"name": "a", "image": "x", "env": null}],
            "containers": [{"name": "b", "image": "x"}],
        })));
        assert_eq!(doc["spec"]["initContainers"][0]["name"], FETCHER);
        assert_eq!(
            doc["spec"]["initContainers"][1]["env"][0]["name"],
            TOKEN_ENV
        );
        assert_eq!(
            doc["spec"]["containers"][0]["volumeMounts"][0]["name"],
            TOKEN_VOLUME
        );
        assert_eq!(doc["spec"]["volumes"].as_array().unwrap().len(), 3);
        assert!(
            ops(&doc, &root(), &Injection::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn wrong_types_are_conflicts_naming_the_path() {
        let e = ops(&pod(json!({"volumes": {}})), &root(), &Injection::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/spec/volumes must be a list but is an object"
        );
        let e = ops(
            &pod(json!({"containers": [3]})),
            &root(),
            &Injection::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/spec/containers/0 must be an object but is a number"
        );
    }

    #[test]
    fn only_true_asks_and_missing_spec_is_skipped() {
        let cfg = Injection::default();
        for v in ["false", "yes", ""] {
            let doc = json!({"metadata": {"annotations": {INJECT: v}}, "spec": {"containers": []}});
            assert!(ops(&doc, &root(), &cfg).unwrap().is_empty(), "{v}");
        }
        let doc = json!({"metadata": {"annotations": {INJECT: " True "}}, "spec": {}});
        assert!(!ops(&doc, &root(), &cfg).unwrap().is_empty());
        let doc = json!({"metadata": {"annotations": {INJECT: "true"}}});
        assert!(ops(&doc, &root(), &cfg).unwrap().is_empty());
    }
}
