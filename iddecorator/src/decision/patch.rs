//! From desired annotation values to the JSON patch that produces them.
//!
//! A JSON-patch `add` fails when the parent does not exist, so a missing (or empty) `metadata`
//! or `annotations` map is added whole. Adding a whole map over an empty one is a valid
//! `add` too (it replaces the member), which matters for the object's own metadata: the
//! decoded request cannot tell `metadata: {}` from no metadata.
use crate::pointer::Path;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
use k2h_contract::annotations::USER;
use serde_json::{Value, json};

/// The operations turning `object`'s values at each site into `want`. Sites must have been
/// checked by `observe` (metadata and annotations are objects or absent).
pub fn derive(object: &Value, want: &[(Path, Option<String>)]) -> Patch {
    let mut ops = Vec::new();
    for (site, value) in want {
        site_ops(object, site, value.as_deref(), &mut ops);
    }
    Patch(ops)
}

fn site_ops(object: &Value, site: &Path, want: Option<&str>, ops: &mut Vec<PatchOperation>) {
    let meta = site.keys(&["metadata"]);
    let anns = meta.keys(&["annotations"]);
    let key = anns.keys(&[USER]);
    let current = key.lookup(object);
    match want {
        None => {
            if current.is_some() {
                ops.push(PatchOperation::Remove(RemoveOperation {
                    path: key.to_pointer(),
                }));
            }
        }
        Some(v) if current.and_then(Value::as_str) == Some(v) => {}
        Some(v) => {
            let (path, value) = if is_empty_map(meta.lookup(object)) {
                (meta, json!({"annotations": {USER: v}}))
            } else if is_empty_map(anns.lookup(object)) {
                (anns, json!({USER: v}))
            } else {
                (key, json!(v))
            };
            ops.push(PatchOperation::Add(AddOperation {
                path: path.to_pointer(),
                value,
            }));
        }
    }
}

fn is_empty_map(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(mut doc: Value, want: &[(Path, Option<&str>)]) -> (Patch, Value) {
        let want: Vec<_> = want
            .iter()
            .map(|(p, v)| (p.clone(), v.map(str::to_owned)))
            .collect();
        let patch = derive(&doc, &want);
        json_patch::patch(&mut doc, &patch.0).expect("patch applies");
        (patch, doc)
    }

    fn tmpl() -> Path {
        Path::root().keys(&["spec", "template"])
    }

    #[test]
    fn adds_whole_maps_where_missing() {
        let (patch, doc) = apply(
            json!({"spec": {"template": {"spec": {}}}}),
            &[(Path::root(), Some("alice")), (tmpl(), Some("alice"))],
        );
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "add", "path": "/metadata", "value": {"annotations": {USER: "alice"}}},
                {"op": "add", "path": "/spec/template/metadata", "value": {"annotations": {USER: "alice"}}},
            ])
        );
        assert_eq!(
            doc["spec"]["template"]["metadata"]["annotations"][USER],
            "alice"
        );
    }

    #[test]
    fn adds_annotations_map_and_keeps_other_metadata() {
        let (patch, doc) = apply(
            json!({"metadata": {"name": "x"}, "spec": {"template": {"metadata": {"annotations": null}}}}),
            &[(Path::root(), Some("a")), (tmpl(), Some("a"))],
        );
        let paths: Vec<_> = patch.0.iter().map(|o| o.path().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/metadata/annotations",
                "/spec/template/metadata/annotations"
            ]
        );
        assert_eq!(doc["metadata"]["name"], "x");
    }

    #[test]
    fn overwrites_escaped_key_and_keeps_other_annotations() {
        let (patch, doc) = apply(
            json!({"metadata": {"annotations": {USER: "mallory", "team": "x"}}}),
            &[(Path::root(), Some("alice"))],
        );
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([{"op": "add", "path": "/metadata/annotations/kube2hadoop.io~1user", "value": "alice"}])
        );
        assert_eq!(
            doc["metadata"]["annotations"],
            json!({USER: "alice", "team": "x"})
        );
    }

    #[test]
    fn removes_and_leaves_alone() {
        let (patch, doc) = apply(
            json!({"metadata": {"annotations": {USER: "mallory"}}}),
            &[(Path::root(), None)],
        );
        assert_eq!(patch.0.len(), 1);
        assert_eq!(doc, json!({"metadata": {"annotations": {}}}));
        let (patch, _) = apply(
            json!({"metadata": {"annotations": {USER: "a"}}}),
            &[(Path::root(), Some("a"))],
        );
        assert!(patch.0.is_empty());
        let (patch, _) = apply(json!({}), &[(Path::root(), None)]);
        assert!(patch.0.is_empty());
    }

    #[test]
    fn whole_map_add_over_empty_metadata_applies() {
        let (_, doc) = apply(json!({"metadata": {}}), &[(Path::root(), Some("a"))]);
        assert_eq!(doc, json!({"metadata": {"annotations": {USER: "a"}}}));
    }
}
