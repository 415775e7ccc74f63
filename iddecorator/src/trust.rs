//! Who is trusted beyond their own name, as the policy says: trusted controllers, each for the
//! owner kinds it manages, and the admins who may exec into, attach to or port-forward to any
//! pod.
//!
//! A controller keeps an incoming `kube2hadoop.io/user` only on an object whose controller
//! ownerReference is one of its owner kinds, and every such kind must be one iddecorator
//! stamps: then the value it copies was written by us. Anything else (an owner kind we never
//! stamp, a kind the controller does not manage) would let a forged value through.
use k2h_contract::kinds::{DEFAULT_TRUSTED_CONTROLLERS, GroupKind};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// An owner kind as the policy names it: `group/Kind`, or `Kind` for the core group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OwnerKind {
    pub group: String,
    pub kind: String,
}

impl OwnerKind {
    /// Parse `apps/ReplicaSet` or `Pod`.
    fn parse(text: &str) -> Result<OwnerKind, String> {
        let (group, kind) = text.split_once('/').unwrap_or(("", text));
        if kind.contains('/') {
            return Err(format!(
                "ownerKind `{text}` must be `group/Kind` without a version, e.g. `apps/ReplicaSet`"
            ));
        }
        if kind.trim().is_empty() || (text.contains('/') && group.trim().is_empty()) {
            return Err(format!(
                "ownerKind `{text}` must be `group/Kind`, or `Kind` alone for the core group"
            ));
        }
        Ok(OwnerKind {
            group: group.to_owned(),
            kind: kind.to_owned(),
        })
    }
}

impl From<&GroupKind> for OwnerKind {
    fn from(gk: &GroupKind) -> OwnerKind {
        OwnerKind {
            group: gk.group.to_owned(),
            kind: gk.kind.to_owned(),
        }
    }
}

impl fmt::Display for OwnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}/{}", self.group, self.kind)
        }
    }
}

/// One `trustedControllers` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ControllerEntry {
    /// The authenticated username, exactly as the apiserver reports it (before mapping).
    username: String,
    /// The owner kinds whose objects it creates from templates we stamped.
    owner_kinds: Vec<String>,
}

/// The checked `trustedControllers`: username → owner kinds it manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedControllers(BTreeMap<String, BTreeSet<OwnerKind>>);

impl Default for TrustedControllers {
    fn default() -> TrustedControllers {
        TrustedControllers(
            DEFAULT_TRUSTED_CONTROLLERS
                .iter()
                .map(|(user, kinds)| {
                    (
                        (*user).to_owned(),
                        kinds.iter().map(OwnerKind::from).collect(),
                    )
                })
                .collect(),
        )
    }
}

impl TrustedControllers {
    /// Check the entries as written (kept as raw YAML so that every entry's problem, including
    /// the old plain-username form, is reported at once). `stamped` says whether iddecorator
    /// stamps a (group, kind) under this policy.
    pub fn compile(
        entries: &[serde_yaml_ng::Value],
        stamped: impl Fn(&str, &str) -> bool,
        problems: &mut Vec<String>,
    ) -> TrustedControllers {
        let mut out = BTreeMap::new();
        for (i, raw) in entries.iter().enumerate() {
            let entry = match raw {
                serde_yaml_ng::Value::String(user) => {
                    problems.push(old_form(i, user));
                    continue;
                }
                other => match serde_yaml_ng::from_value::<ControllerEntry>(other.clone()) {
                    Ok(e) => e,
                    Err(e) => {
                        problems.push(format!(
                            "trustedControllers[{i}]: {e}; write `- {{username: NAME, ownerKinds: [group/Kind, ...]}}`"
                        ));
                        continue;
                    }
                },
            };
            let at = format!("trustedControllers[{i}] ({})", entry.username);
            if entry.username.trim().is_empty() {
                problems.push(format!("trustedControllers[{i}]: give the username"));
            }
            if entry.owner_kinds.is_empty() {
                problems.push(format!(
                    "{at}: list the ownerKinds it manages; a controller trusted for no kind is not trusted, remove it"
                ));
            }
            let mut kinds = BTreeSet::new();
            for text in &entry.owner_kinds {
                match OwnerKind::parse(text) {
                    Ok(k) if !stamped(&k.group, &k.kind) => problems.push(format!(
                        "{at}: ownerKind `{k}` is not a kind iddecorator stamps, so a user it passes on could be forged; add it under `kinds:` (and to the webhook rules) or remove it"
                    )),
                    Ok(k) => {
                        kinds.insert(k);
                    }
                    Err(e) => problems.push(format!("{at}: {e}")),
                }
            }
            if out.insert(entry.username.clone(), kinds).is_some() {
                problems.push(format!("{at}: listed twice; merge the entries"));
            }
        }
        TrustedControllers(out)
    }

    /// Whether this authenticated username is a trusted controller at all.
    pub fn contains(&self, username: Option<&str>) -> bool {
        username.is_some_and(|u| self.0.contains_key(u))
    }

    /// Whether this username is trusted for objects whose controller owner is `group`/`kind`.
    pub fn manages(&self, username: Option<&str>, group: &str, kind: &str) -> bool {
        username
            .and_then(|u| self.0.get(u))
            .is_some_and(|kinds| kinds.iter().any(|k| k.group == group && k.kind == kind))
    }
}

/// The refusal of an entry in the old form, showing the new one (with the default owner kinds
/// when the username is a default controller).
fn old_form(i: usize, user: &str) -> String {
    let kinds = DEFAULT_TRUSTED_CONTROLLERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, kinds)| {
            kinds
                .iter()
                .map(|k| OwnerKind::from(k).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "group/Kind, ...".to_owned());
    format!(
        "trustedControllers[{i}]: `{user}` is the old form; a controller is now trusted only for the owner kinds it manages, write `- {{username: {user}, ownerKinds: [{kinds}]}}`"
    )
}

/// `podAccessAdmins` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodAccessAdminsFile {
    /// Groups whose members may exec into, attach to and port-forward to any pod, and change
    /// what runs in it. Default: `[system:masters]`; `[]` for none.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Usernames (exactly as authenticated, before mapping) with the same rights.
    #[serde(default)]
    pub users: Vec<String>,
}

/// The group whose members are cluster admins (and bypass RBAC).
pub const DEFAULT_ADMIN_GROUP: &str = "system:masters";

/// The checked `podAccessAdmins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAccessAdmins {
    groups: BTreeSet<String>,
    users: BTreeSet<String>,
}

impl Default for PodAccessAdmins {
    fn default() -> PodAccessAdmins {
        PodAccessAdmins {
            groups: [DEFAULT_ADMIN_GROUP.to_owned()].into(),
            users: BTreeSet::new(),
        }
    }
}

impl PodAccessAdminsFile {
    pub fn compile(self, problems: &mut Vec<String>) -> PodAccessAdmins {
        let groups = self
            .groups
            .unwrap_or_else(|| vec![DEFAULT_ADMIN_GROUP.to_owned()]);
        for (what, list) in [("groups", &groups), ("users", &self.users)] {
            if list.iter().any(|v| v.trim().is_empty()) {
                problems.push(format!("podAccessAdmins.{what}: remove the empty name"));
            }
        }
        PodAccessAdmins {
            groups: groups.into_iter().collect(),
            users: self.users.into_iter().collect(),
        }
    }
}

impl PodAccessAdmins {
    /// Whether the requester (username before mapping, and its groups) is a pod-access admin.
    pub fn contains(&self, username: Option<&str>, groups: &[String]) -> bool {
        username.is_some_and(|u| self.users.contains(u))
            || groups.iter().any(|g| self.groups.contains(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> (TrustedControllers, Vec<String>) {
        let entries: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let stamped = |g: &str, k: &str| {
            k2h_contract::kinds::BUILTIN_STAMPED
                .iter()
                .any(|s| s.group == g && s.kind == k)
        };
        let t = TrustedControllers::compile(&entries, stamped, &mut problems);
        (t, problems)
    }

    #[test]
    fn defaults_follow_the_contract() {
        let t = TrustedControllers::default();
        let rs = "system:serviceaccount:kube-system:replicaset-controller";
        assert!(t.manages(Some(rs), "apps", "ReplicaSet"));
        assert!(!t.manages(Some(rs), "batch", "Job"));
        let op = "system:serviceaccount:kubeflow:training-operator";
        assert!(t.manages(Some(op), "kubeflow.org", "MXJob"));
        assert!(t.manages(Some(op), "kubeflow.org", "JAXJob"));
        assert!(!t.manages(Some(op), "", "ConfigMap"));
        assert!(t.manages(
            Some("system:kube-controller-manager"),
            "",
            "ReplicationController"
        ));
        assert!(!t.manages(None, "apps", "ReplicaSet"));
        assert!(!t.contains(Some("alice")));
    }

    #[test]
    fn new_form_parses_core_and_grouped_kinds() {
        let (t, problems) =
            compile("[{username: op, ownerKinds: [kubeflow.org/TFJob, ReplicationController]}]");
        assert!(problems.is_empty(), "{problems:?}");
        assert!(t.manages(Some("op"), "kubeflow.org", "TFJob"));
        assert!(t.manages(Some("op"), "", "ReplicationController"));
        assert!(!t.manages(Some("op"), "kubeflow.org", "ReplicationController"));
    }

    #[test]
    fn old_form_is_refused_with_the_new_form_shown() {
        let (_, problems) = compile(
            "['system:serviceaccount:kube-system:job-controller', 'system:serviceaccount:x:op']",
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains(
                "write `- {username: system:serviceaccount:kube-system:job-controller, ownerKinds: [batch/Job]}`"
            ),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("ownerKinds: [group/Kind, ...]"),
            "{problems:?}"
        );
    }

    #[test]
    fn every_bad_entry_is_reported() {
        let (_, problems) = compile(
            r#"
- {username: '', ownerKinds: [apps/ReplicaSet]}
- {username: a, ownerKinds: []}
- {username: b, ownerKinds: [ConfigMap, ray.io/RayJob, apps/v1/ReplicaSet, /Pod, '']}
- {username: c, kinds: [apps/ReplicaSet]}
- {username: d, ownerKinds: [apps/ReplicaSet]}
- {username: d, ownerKinds: [batch/Job]}
"#,
        );
        let text = problems.join("\n");
        assert_eq!(problems.len(), 9, "{text}");
        assert!(text.contains("give the username"), "{text}");
        assert!(text.contains("(a): list the ownerKinds"), "{text}");
        assert!(
            text.contains("(b): ownerKind `ConfigMap` is not a kind iddecorator stamps"),
            "{text}"
        );
        assert!(text.contains("`ray.io/RayJob` is not a kind"), "{text}");
        assert!(text.contains("without a version"), "{text}");
        assert!(text.contains("unknown field `kinds`"), "{text}");
        assert!(text.contains("(d): listed twice"), "{text}");
    }

    #[test]
    fn admins() {
        let d = PodAccessAdmins::default();
        assert!(d.contains(Some("x"), &["system:masters".to_owned()]));
        assert!(!d.contains(Some("alice"), &["team-a".to_owned()]));
        let mut problems = Vec::new();
        let a = PodAccessAdminsFile {
            groups: Some(vec![]),
            users: vec!["root".into()],
        }
        .compile(&mut problems);
        assert!(problems.is_empty());
        assert!(a.contains(Some("root"), &[]));
        assert!(!a.contains(Some("x"), &["system:masters".to_owned()]));
    }
}
