//! Reading an object as plain JSON: where its user annotations live, what they say now, and
//! which part of it decides what runs.
use crate::pointer::Path;
use crate::workload::{ShapeError, Workload, type_name};
use k2h_contract::annotations::{STAMP, USER};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where `kube2hadoop.io/user` belongs in one object, and its current value at each place.
/// The object's own metadata comes first, then each pod template in path order.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub sites: Vec<(Path, Option<String>)>,
    /// The `kube2hadoop.io/stamp` at each site, aligned with `sites`.
    pub stamps: Vec<Option<String>>,
}

/// An object we cannot stamp without guessing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("{0}")]
    Shape(#[from] ShapeError),
    #[error("{path} must be an object but is {found}")]
    NotObject { path: Path, found: &'static str },
    #[error("{path} must map strings to strings, but the value of `{key}` is {found}")]
    NotString {
        path: Path,
        key: String,
        found: &'static str,
    },
}

impl Observed {
    /// The value currently at `site`, if that site exists here.
    pub fn value_at(&self, site: &Path) -> Option<&str> {
        self.sites
            .iter()
            .find(|(p, _)| p == site)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The stamp currently at `site`, if that site exists here.
    pub fn stamp_at(&self, site: &Path) -> Option<&str> {
        self.sites
            .iter()
            .zip(&self.stamps)
            .find(|((p, _), _)| p == site)
            .and_then(|(_, s)| s.as_deref())
    }
}

/// Find every site and read its value, refusing malformed metadata or annotations.
pub fn observe(object: &Value, workload: &Workload) -> Result<Observed, Malformed> {
    let mut sites = vec![Path::root()];
    sites.extend(workload.templates_in(object)?);
    let mut observed = Observed {
        sites: Vec::with_capacity(sites.len()),
        stamps: Vec::with_capacity(sites.len()),
    };
    for site in sites {
        let anns = annotations(object, &site)?;
        let read = |key: &str| {
            anns.and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        observed.stamps.push(read(STAMP));
        observed.sites.push((site, read(USER)));
    }
    Ok(observed)
}

/// The annotations map at `site`, after checking `metadata` and `annotations` are objects (or
/// absent/null) and every annotation value is a string.
fn annotations<'v>(
    object: &'v Value,
    site: &Path,
) -> Result<Option<&'v Map<String, Value>>, Malformed> {
    let meta_path = site.keys(&["metadata"]);
    if as_map(object, &meta_path)?.is_none() {
        return Ok(None);
    }
    let ann_path = meta_path.keys(&["annotations"]);
    let Some(anns) = as_map(object, &ann_path)? else {
        return Ok(None);
    };
    if let Some((key, v)) = anns.iter().find(|(_, v)| !v.is_string()) {
        return Err(Malformed::NotString {
            path: ann_path,
            key: key.clone(),
            found: type_name(v),
        });
    }
    Ok(Some(anns))
}

fn as_map<'v>(object: &'v Value, path: &Path) -> Result<Option<&'v Map<String, Value>>, Malformed> {
    match path.lookup(object) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(Malformed::NotObject {
            path: path.clone(),
            found: type_name(other),
        }),
    }
}

/// The part of an object that decides what runs, with our own annotation removed, so that an
/// UPDATE can be classified as "changes what runs" or "relabel only".
///
/// - With pod templates: every template, whole (its metadata counts: labels and annotations
///   reach the pods).
/// - A Pod, or a policy kind without templates: `spec`, plus the `kube2hadoop.io/*`
///   annotations other than the user one (`run-as`, `inject` change whose tokens are fetched
///   and how). Other labels and annotations on a Pod change nothing that runs, and controllers
///   and users edit them routinely.
pub fn runnable(object: &Value, workload: &Workload) -> Result<BTreeMap<String, Value>, Malformed> {
    let mut parts = BTreeMap::new();
    if workload.templates.is_empty() {
        let spec = object.get("spec").cloned().unwrap_or(Value::Null);
        parts.insert("/spec".to_owned(), spec);
        let ours: Map<String, Value> = annotations(object, &Path::root())?
            .into_iter()
            .flatten()
            .filter(|(k, _)| {
                k.starts_with("kube2hadoop.io/") && k.as_str() != USER && k.as_str() != STAMP
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        parts.insert("kube2hadoop.io annotations".to_owned(), Value::Object(ours));
    } else {
        for site in workload.templates_in(object)? {
            let mut template = site.lookup(object).cloned().unwrap_or(Value::Null);
            strip_user(&mut template);
            parts.insert(site.to_string(), template);
        }
    }
    Ok(parts)
}

/// Remove our annotations (user and stamp), and maps left empty by that (or empty already): `metadata: {}` and
/// no metadata run the same pods.
fn strip_user(template: &mut Value) {
    let Some(t) = template.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(meta)) = t.get_mut("metadata") {
        if let Some(Value::Object(anns)) = meta.get_mut("annotations") {
            anns.remove(USER);
            anns.remove(STAMP);
        }
        if matches!(meta.get("annotations"), Some(Value::Null))
            || meta
                .get("annotations")
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
        {
            meta.remove("annotations");
        }
    }
    if matches!(t.get("metadata"), Some(Value::Null))
        || t.get("metadata")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        t.remove("metadata");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use serde_json::json;

    fn deployment() -> Workload {
        Policy::default()
            .workload("apps", "Deployment")
            .unwrap()
            .clone()
    }

    #[test]
    fn reads_root_and_template_values() {
        let obj = json!({
            "metadata": {"annotations": {USER: "alice"}},
            "spec": {"template": {"metadata": {}}}
        });
        let o = observe(&obj, &deployment()).unwrap();
        assert_eq!(o.sites.len(), 2);
        assert_eq!(o.value_at(&Path::root()), Some("alice"));
        assert_eq!(o.value_at(&Path::root().keys(&["spec", "template"])), None);
    }

    #[test]
    fn malformed_metadata_and_annotations() {
        let w = deployment();
        let e = observe(&json!({"spec": {"template": {"metadata": []}}}), &w).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/spec/template/metadata must be an object but is a list"
        );
        let e = observe(
            &json!({"spec": {"template": {"metadata": {"annotations": "x"}}}}),
            &w,
        )
        .unwrap_err();
        assert!(matches!(e, Malformed::NotObject { .. }), "{e}");
        let e = observe(
            &json!({"spec": {"template": {"metadata": {"annotations": {"a": 1}}}}}),
            &w,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/spec/template/metadata/annotations must map strings to strings, but the value of `a` is a number"
        );
        let e = observe(&json!({"spec": {"template": 7}}), &w).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/spec/template must be an object (a pod template) but is a number"),
            "{e}"
        );
    }

    #[test]
    fn runnable_ignores_only_our_annotation_and_empty_maps() {
        let w = deployment();
        let a = json!({"spec": {"template": {"metadata": {"annotations": {USER: "a"}}, "spec": {"x": 1}}}});
        let b = json!({"spec": {"template": {"spec": {"x": 1}}}});
        let c = json!({"spec": {"template": {"metadata": {"annotations": {"other": "1"}}, "spec": {"x": 1}}}});
        assert_eq!(runnable(&a, &w).unwrap(), runnable(&b, &w).unwrap());
        assert_ne!(runnable(&a, &w).unwrap(), runnable(&c, &w).unwrap());
    }

    #[test]
    fn runnable_for_pods_is_spec_and_our_other_annotations() {
        let w = Policy::default().workload("", "Pod").unwrap().clone();
        let a = json!({"metadata": {"labels": {"x": "1"}, "annotations": {USER: "a"}}, "spec": {"c": 1}});
        let b = json!({"metadata": {"labels": {"x": "2"}}, "spec": {"c": 1}});
        let c = json!({"metadata": {"annotations": {"kube2hadoop.io/run-as": "etl"}}, "spec": {"c": 1}});
        assert_eq!(runnable(&a, &w).unwrap(), runnable(&b, &w).unwrap());
        assert_ne!(runnable(&a, &w).unwrap(), runnable(&c, &w).unwrap());
    }
}
