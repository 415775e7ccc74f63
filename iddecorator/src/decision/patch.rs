//! From desired annotation values to the JSON patch that produces them.
//!
//! A JSON-patch `add` fails when the parent does not exist, so a missing (or empty) `metadata`
//! or `annotations` map is added whole. Adding a whole map over an empty one is a valid
//! `add` too (it replaces the member), which matters for the object's own metadata: the
//! decoded request cannot tell `metadata: {}` from no metadata.
use crate::pointer::Path;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
#[cfg(test)]
use k2h_contract::annotations::USER;
use serde_json::{Value, json};

/// The operations turning `object`'s `kube2hadoop.io/user` at each site into `want`.
#[cfg(test)]
pub fn derive(object: &Value, want: &[(Path, Option<String>)]) -> Patch {
    let want: Vec<_> = want
        .iter()
        .map(|(p, v)| (p.clone(), vec![(USER, v.clone())]))
        .collect();
    derive_keys(object, &want)
}

/// Per annotation key, the value it should have (`None`: absent).
pub type Values<'k> = Vec<(&'k str, Option<String>)>;

/// The operations turning `object`'s annotations at each site into `want`: per site, each
/// annotation key and the value it should have (`None`: absent). Sites must have been checked
/// by `observe` (metadata and annotations are objects or absent).
pub fn derive_keys(object: &Value, want: &[(Path, Values<'_>)]) -> Patch {
    let mut ops = Vec::new();
    for (site, values) in want {
        site_ops(object, site, values, &mut ops);
    }
    Patch(ops)
}

fn site_ops(
    object: &Value,
    site: &Path,
    want: &[(&str, Option<String>)],
    ops: &mut Vec<PatchOperation>,
) {
    let meta = site.keys(&["metadata"]);
    let anns = meta.keys(&["annotations"]);
    let mut adds = serde_json::Map::new();
    for (name, value) in want {
        let key = anns.keys(&[name]);
        let current = key.lookup(object);
        match value {
            None if current.is_some() => ops.push(PatchOperation::Remove(RemoveOperation {
                path: key.to_pointer(),
            })),
            None => {}
            Some(v) if current.and_then(Value::as_str) == Some(v.as_str()) => {}
            Some(v) => {
                adds.insert((*name).to_owned(), json!(v));
            }
        }
    }
    if adds.is_empty() {
        return;
    }
    // A missing or empty map is added whole, with every value this site needs in it.
    if is_empty_map(meta.lookup(object)) {
        ops.push(add(meta, json!({ "annotations": adds })));
    } else if is_empty_map(anns.lookup(object)) {
        ops.push(add(anns, Value::Object(adds)));
    } else {
        for (name, v) in adds {
            ops.push(add(anns.keys(&[&name]), v));
        }
    }
}

fn add(path: Path, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: path.to_pointer(),
        value,
    })
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
    fn user_and_stamp_go_into_one_new_map() {
        use k2h_contract::annotations::STAMP;
        let want = |u: &str, s: &str| vec![(USER, Some(u.to_owned())), (STAMP, Some(s.to_owned()))];
        for doc in [
            json!({}),
            json!({"metadata": {}}),
            json!({"metadata": {"annotations": {}}}),
            json!({"metadata": {"annotations": {USER: "m", STAMP: "x", "o": "p"}}}),
        ] {
            let mut after = doc.clone();
            let patch = derive_keys(&doc, &[(Path::root(), want("a", "v1.s"))]);
            json_patch::patch(&mut after, &patch.0).expect("patch applies");
            assert_eq!(after["metadata"]["annotations"][USER], "a", "{doc}");
            assert_eq!(after["metadata"]["annotations"][STAMP], "v1.s", "{doc}");
        }
        let doc = json!({"metadata": {"annotations": {USER: "a", STAMP: "x"}}});
        let patch = derive_keys(
            &doc,
            &[(Path::root(), vec![(USER, Some("a".into())), (STAMP, None)])],
        );
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([{"op": "remove", "path": "/metadata/annotations/kube2hadoop.io~1stamp"}])
        );
    }

    #[test]
    fn whole_map_add_over_empty_metadata_applies() {
        let (_, doc) = apply(json!({"metadata": {}}), &[(Path::root(), Some("a"))]);
        assert_eq!(doc, json!({"metadata": {"annotations": {USER: "a"}}}));
    }
}
