//! Which kinds carry pod templates, and where.
//!
//! A kind is identified by the request's group and kind (never by the object's own
//! `apiVersion`/`kind`, which the requester wrote). Template paths are written as dotted field
//! names, e.g. `spec.tfReplicaSpecs.*.template`: `*` visits every key of a map (or every element
//! of an array) and `[]` every element of an array. Field names cannot contain `.`, which
//! Kubernetes field names never do.
use crate::pointer::{Path, Seg};
use serde_json::Value;
use std::fmt;

/// One step of a [`TemplatePath`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    /// `*`: every key of a map, or every element of an array.
    Any,
    /// `[]`: every element of an array.
    Elements,
}

/// A pattern naming the pod templates inside an object, e.g. `spec.jobTemplate.spec.template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatePath {
    text: String,
    steps: Vec<Step>,
}

/// Why a template path pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("template path is empty; write dotted field names such as `spec.template`")]
    Empty,
    #[error("template path `{0}` has an empty field name; separate field names with single dots")]
    EmptyField(String),
    #[error(
        "template path `{0}` must not start with `metadata`: the object's own metadata is always annotated"
    )]
    Metadata(String),
    #[error(
        "template path `{0}` has `*` or `[]` inside a field name; write them as their own step (`a.*.b`, `a[].b`)"
    )]
    MisplacedWildcard(String),
}

/// A template path resolved against one object found something that is not a pod template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} must be {expected} but is {found}; fix the object (template paths: {pattern})")]
pub struct ShapeError {
    pub path: Path,
    pub expected: &'static str,
    pub found: &'static str,
    pub pattern: String,
}

impl TemplatePath {
    /// Parse `spec.a.*.template`, `spec.list[].template` or `spec.list.[].template`.
    pub fn parse(text: &str) -> Result<TemplatePath, PathError> {
        if text.trim().is_empty() {
            return Err(PathError::Empty);
        }
        let mut steps = Vec::new();
        for field in text.split('.') {
            let (name, elements) = match field.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (field, false),
            };
            match name {
                "" if elements => {}
                "" => return Err(PathError::EmptyField(text.to_owned())),
                "*" => steps.push(Step::Any),
                n if n.contains('*') || n.contains('[') || n.contains(']') => {
                    return Err(PathError::MisplacedWildcard(text.to_owned()));
                }
                n => steps.push(Step::Key(n.to_owned())),
            }
            if elements {
                steps.push(Step::Elements);
            }
        }
        if steps.first() == Some(&Step::Key("metadata".to_owned())) {
            return Err(PathError::Metadata(text.to_owned()));
        }
        Ok(TemplatePath {
            text: text.to_owned(),
            steps,
        })
    }

    /// Every pod template this pattern names in `object`. Missing or null fields on the way
    /// mean "no template here" (a TFJob without a PS replica); a field of the wrong type, or a
    /// template that is not an object, is an error, because we could not stamp it.
    pub fn resolve(&self, object: &Value) -> Result<Vec<Path>, ShapeError> {
        let mut here = vec![(Path::root(), object)];
        for step in &self.steps {
            let mut next = Vec::new();
            for (path, value) in here {
                self.step(step, path, value, &mut next)?;
            }
            here = next;
        }
        let mut found = Vec::new();
        for (path, value) in here {
            match value {
                Value::Null => {}
                Value::Object(_) => found.push(path),
                other => return Err(self.shape(path, "an object (a pod template)", other)),
            }
        }
        Ok(found)
    }

    fn step<'v>(
        &self,
        step: &Step,
        path: Path,
        value: &'v Value,
        out: &mut Vec<(Path, &'v Value)>,
    ) -> Result<(), ShapeError> {
        match (step, value) {
            (_, Value::Null) => {}
            (Step::Key(k), Value::Object(map)) => {
                if let Some(v) = map.get(k) {
                    out.push((path.child(Seg::Key(k.clone())), v));
                }
            }
            (Step::Key(_), other) => return Err(self.shape(path, "an object", other)),
            (Step::Any, Value::Object(map)) => {
                for (k, v) in map {
                    out.push((path.child(Seg::Key(k.clone())), v));
                }
            }
            (Step::Any | Step::Elements, Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    out.push((path.child(Seg::Index(i)), v));
                }
            }
            (Step::Any, other) => return Err(self.shape(path, "an object or a list", other)),
            (Step::Elements, other) => return Err(self.shape(path, "a list", other)),
        }
        Ok(())
    }

    fn shape(&self, path: Path, expected: &'static str, found: &Value) -> ShapeError {
        ShapeError {
            path,
            expected,
            found: type_name(found),
            pattern: self.text.clone(),
        }
    }
}

impl fmt::Display for TemplatePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A JSON type's name for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A kind the decorator stamps, and where its pod templates are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// API group; `""` for the core group.
    pub group: String,
    pub kind: String,
    pub templates: Vec<TemplatePath>,
}

impl Workload {
    /// A bare Pod: its own metadata is what token-service reads, and its spec is what runs.
    pub fn is_pod(&self) -> bool {
        self.group.is_empty() && self.kind == "Pod"
    }

    /// Every pod template inside `object`, in a stable order.
    pub fn templates_in(&self, object: &Value) -> Result<Vec<Path>, ShapeError> {
        let mut all = Vec::new();
        for t in &self.templates {
            all.extend(t.resolve(object)?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }
}

/// Built-in kinds: (group, kind, template paths).
const BUILTIN: &[(&str, &str, &[&str])] = &[
    ("", "Pod", &[]),
    ("", "ReplicationController", &["spec.template"]),
    ("apps", "Deployment", &["spec.template"]),
    ("apps", "ReplicaSet", &["spec.template"]),
    ("apps", "StatefulSet", &["spec.template"]),
    ("apps", "DaemonSet", &["spec.template"]),
    ("batch", "Job", &["spec.template"]),
    // The cronjob-controller copies `spec.jobTemplate.metadata` onto each Job it creates, so the
    // job template is stamped like a pod template.
    (
        "batch",
        "CronJob",
        &["spec.jobTemplate", "spec.jobTemplate.spec.template"],
    ),
    ("kubeflow.org", "TFJob", &["spec.tfReplicaSpecs.*.template"]),
    (
        "kubeflow.org",
        "PyTorchJob",
        &["spec.pytorchReplicaSpecs.*.template"],
    ),
    (
        "kubeflow.org",
        "MPIJob",
        &["spec.mpiReplicaSpecs.*.template"],
    ),
    (
        "kubeflow.org",
        "XGBoostJob",
        &["spec.xgbReplicaSpecs.*.template"],
    ),
    (
        "kubeflow.org",
        "PaddleJob",
        &["spec.paddleReplicaSpecs.*.template"],
    ),
    ("kubeflow.org", "MXJob", &["spec.mxReplicaSpecs.*.template"]),
    (
        "kubeflow.org",
        "JAXJob",
        &["spec.jaxReplicaSpecs.*.template"],
    ),
];

/// The built-in kinds. Their patterns are constants, checked by a test.
pub fn builtin() -> Vec<Workload> {
    BUILTIN
        .iter()
        .map(|(group, kind, paths)| Workload {
            group: (*group).to_owned(),
            kind: (*kind).to_owned(),
            templates: paths
                .iter()
                .filter_map(|p| TemplatePath::parse(p).ok())
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(pattern: &str, obj: Value) -> Vec<String> {
        TemplatePath::parse(pattern)
            .unwrap()
            .resolve(&obj)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn builtin_patterns_all_parse() {
        for (_, kind, pats) in BUILTIN {
            for p in *pats {
                assert!(TemplatePath::parse(p).is_ok(), "{kind}: {p}");
            }
        }
        let b = builtin();
        assert_eq!(b.len(), BUILTIN.len());
        assert!(
            b.iter()
                .all(|w| w.templates.len()
                    == BUILTIN.iter().find(|x| x.1 == w.kind).unwrap().2.len())
        );
    }

    /// What iddecorator stamps without configuration is what token-service accepts as the top
    /// of an owner chain (and what the default trusted controllers may pass a user on for).
    #[test]
    fn builtin_kinds_are_the_contracts_stamped_kinds() {
        use std::collections::BTreeSet;
        let ours: BTreeSet<(&str, &str)> = BUILTIN.iter().map(|(g, k, _)| (*g, *k)).collect();
        let contract: BTreeSet<(&str, &str)> = k2h_contract::kinds::BUILTIN_STAMPED
            .iter()
            .map(|gk| (gk.group, gk.kind))
            .collect();
        assert_eq!(ours, contract);
        assert_eq!(ours.len(), BUILTIN.len(), "a kind is listed twice");
    }

    #[test]
    fn plain_path() {
        let obj = json!({"spec": {"template": {"spec": {}}}});
        assert_eq!(paths("spec.template", obj), ["/spec/template"]);
    }

    #[test]
    fn wildcard_over_map_keys() {
        let obj = json!({"spec": {"tfReplicaSpecs": {
            "Worker": {"template": {}}, "PS": {"template": {}}, "Chief": {"replicas": 1}
        }}});
        let mut got = paths("spec.tfReplicaSpecs.*.template", obj);
        got.sort();
        assert_eq!(
            got,
            [
                "/spec/tfReplicaSpecs/PS/template",
                "/spec/tfReplicaSpecs/Worker/template"
            ]
        );
    }

    #[test]
    fn wildcard_and_brackets_over_arrays() {
        let obj = json!({"spec": {"roles": [{"template": {}}, {"template": {}}]}});
        assert_eq!(
            paths("spec.roles[].template", obj.clone()),
            ["/spec/roles/0/template", "/spec/roles/1/template"]
        );
        assert_eq!(
            paths("spec.roles.*.template", obj.clone()),
            ["/spec/roles/0/template", "/spec/roles/1/template"]
        );
        assert_eq!(
            paths("spec.roles.[].template", obj),
            ["/spec/roles/0/template", "/spec/roles/1/template"]
        );
    }

    #[test]
    fn missing_and_null_mean_no_template() {
        assert!(paths("spec.template", json!({})).is_empty());
        assert!(paths("spec.template", json!({"spec": null})).is_empty());
        assert!(paths("spec.template", json!({"spec": {"template": null}})).is_empty());
        assert!(paths("spec.x.*.template", json!({"spec": {"x": {}}})).is_empty());
    }

    #[test]
    fn wrong_shapes_are_errors_naming_the_path() {
        let t = TemplatePath::parse("spec.template").unwrap();
        let e = t
            .resolve(&json!({"spec": {"template": "evil"}}))
            .unwrap_err();
        assert_eq!(e.path.to_string(), "/spec/template");
        assert!(e.to_string().contains("is a string"), "{e}");
        let e = t.resolve(&json!({"spec": []})).unwrap_err();
        assert_eq!(e.path.to_string(), "/spec");
        let t = TemplatePath::parse("spec.r[].template").unwrap();
        assert!(t.resolve(&json!({"spec": {"r": {"a": {}}}})).is_err());
        let t = TemplatePath::parse("spec.r.*.template").unwrap();
        assert!(t.resolve(&json!({"spec": {"r": 3}})).is_err());
    }

    #[test]
    fn bad_patterns() {
        assert_eq!(TemplatePath::parse(" "), Err(PathError::Empty));
        assert!(matches!(
            TemplatePath::parse("spec..template"),
            Err(PathError::EmptyField(_))
        ));
        assert!(matches!(
            TemplatePath::parse("spec.tmpl*"),
            Err(PathError::MisplacedWildcard(_))
        ));
        assert!(matches!(
            TemplatePath::parse("spec.a[0]"),
            Err(PathError::MisplacedWildcard(_))
        ));
        assert!(matches!(
            TemplatePath::parse("metadata.x"),
            Err(PathError::Metadata(_))
        ));
    }

    #[test]
    fn templates_in_is_sorted_and_deduplicated() {
        let w = Workload {
            group: "x".into(),
            kind: "Y".into(),
            templates: vec![
                TemplatePath::parse("spec.b").unwrap(),
                TemplatePath::parse("spec.a").unwrap(),
                TemplatePath::parse("spec.*").unwrap(),
            ],
        };
        let got = w
            .templates_in(&json!({"spec": {"a": {}, "b": {}}}))
            .unwrap();
        let got: Vec<_> = got.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["/spec/a", "/spec/b"]);
    }
}
