//! The decorator's policy: trusted controllers, pod-access admins, username mapping, extra
//! kinds, injection.
//!
//! [`PolicyFile`] is the YAML as written (camelCase, unknown fields refused, every field
//! optional); [`Policy`] is the checked, compiled form the decision uses. New sections (such as
//! `injection`) are added as further optional fields of [`PolicyFile`].
use crate::injection::{Injection, InjectionFile};
use crate::trust::{PodAccessAdmins, PodAccessAdminsFile, TrustedControllers};
use crate::username::{UsernameConfig, UsernameError, UsernameMapping};
use crate::workload::{self, TemplatePath, Workload};
use k2h_contract::stamp::Keys;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The policy file (YAML). Every field is optional; an empty file gives the defaults.
/// See `iddecorator/policy.example.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyFile {
    /// Controllers (username exactly as authenticated, before mapping, and the owner kinds
    /// they manage) whose incoming `kube2hadoop.io/user` is kept on objects whose controller
    /// ownerReference is one of those kinds. Replaces
    /// [`k2h_contract::kinds::DEFAULT_TRUSTED_CONTROLLERS`] when given; list them again to
    /// extend it. Raw YAML here so that every entry's problem is reported at once
    /// ([`TrustedControllers::compile`]).
    #[serde(default)]
    pub trusted_controllers: Option<Vec<serde_yaml_ng::Value>>,
    /// Who may exec into, attach to and port-forward to any pod, and change what runs in
    /// another user's pod; default: group `system:masters`.
    #[serde(default)]
    pub pod_access_admins: PodAccessAdminsFile,
    /// How a Kubernetes username becomes the Hadoop user; default: unchanged.
    #[serde(default)]
    pub usernames: UsernameConfig,
    /// Kinds to stamp in addition to the built-in ones (Pod, Deployment, ReplicaSet,
    /// StatefulSet, DaemonSet, Job, CronJob, ReplicationController and the Kubeflow training
    /// jobs). An entry with a built-in group and kind replaces its template paths.
    #[serde(default)]
    pub kinds: Vec<KindConfig>,
    /// The fetcher injected into pods annotated `kube2hadoop.io/inject: "true"`.
    #[serde(default)]
    pub injection: InjectionFile,
}

/// A kind carrying pod templates.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindConfig {
    /// API group without version, e.g. `ray.io`; empty or absent for the core group.
    #[serde(default)]
    pub group: String,
    /// Kind, e.g. `RayJob`.
    pub kind: String,
    /// Where the pod templates are: dotted field names, `*` for every key of a map (or element
    /// of a list), `[]` for every element of a list, e.g. `spec.workerGroupSpecs[].template`.
    /// Empty: only the object's own metadata is stamped.
    #[serde(default)]
    pub template_paths: Vec<String>,
}

/// The checked policy the decision uses.
#[derive(Debug, Clone)]
pub struct Policy {
    trusted_controllers: TrustedControllers,
    pod_access_admins: PodAccessAdmins,
    usernames: UsernameMapping,
    workloads: Vec<Workload>,
    injection: Injection,
    /// The keys that sign `kube2hadoop.io/stamp` (`--stamp-key-file`); `None` only in tests
    /// and `--insecure-no-stamp`: then no stamp is written and token-service serves nothing.
    stamp_keys: Option<Arc<Keys>>,
}

/// A policy file that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid YAML for kube2hadoop: {0}")]
    Parse(#[source] serde_yaml_ng::Error),
    #[error("policy has {} problem(s), fix them all: {}", .0.len(), .0.join("; "))]
    Invalid(Vec<String>),
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            trusted_controllers: TrustedControllers::default(),
            pod_access_admins: PodAccessAdmins::default(),
            usernames: UsernameMapping::default(),
            workloads: workload::builtin(),
            injection: Injection::default(),
            stamp_keys: None,
        }
    }
}

impl Policy {
    /// This policy, signing stamps with `keys`.
    pub fn with_stamp_keys(mut self, keys: Option<Arc<Keys>>) -> Policy {
        self.stamp_keys = keys;
        self
    }

    /// Whether `stamp` proves `user` in `namespace` by one of the keys (never without keys).
    pub fn verifies(&self, namespace: &str, user: &str, stamp: &str) -> bool {
        self.stamp_keys
            .as_ref()
            .is_some_and(|k| k.verify(namespace, user, stamp))
    }

    /// The stamp of `user` in `namespace`, when a stamp key is configured.
    pub fn stamp(&self, namespace: &str, user: &str) -> Option<String> {
        self.stamp_keys.as_ref().map(|k| k.sign(namespace, user))
    }

    /// Parse and check a policy file (YAML); every problem is reported at once.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        // An empty or comment-only file is an empty document: all defaults.
        let file: Option<PolicyFile> = serde_yaml_ng::from_str(text).map_err(PolicyError::Parse)?;
        Policy::from_file(file.unwrap_or_default())
    }

    /// Check and compile a parsed policy file.
    pub fn from_file(file: PolicyFile) -> Result<Policy, PolicyError> {
        let mut problems = Vec::new();
        let mut policy = Policy {
            pod_access_admins: file.pod_access_admins.compile(&mut problems),
            usernames: file.usernames.compile(&mut problems),
            // The CA PEM file is read here, at every (re)load of the policy.
            injection: file.injection.compile(&mut problems, &|path| {
                std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))
            }),
            ..Policy::default()
        };
        let mut seen = BTreeSet::new();
        for (i, k) in file.kinds.iter().enumerate() {
            let at = format!("kinds[{i}] ({}/{})", k.group, k.kind);
            if k.kind.trim().is_empty() {
                problems.push(format!("{at}: give the kind, e.g. `RayJob`"));
            }
            if k.group.contains('/') {
                problems.push(format!(
                    "{at}: group must not include a version; write `{}`",
                    k.group.split('/').next().unwrap_or_default()
                ));
            }
            if !seen.insert((k.group.as_str(), k.kind.as_str())) {
                problems.push(format!("{at}: listed twice; merge the entries"));
            }
            let mut templates = Vec::new();
            for p in &k.template_paths {
                match TemplatePath::parse(p) {
                    Ok(t) => templates.push(t),
                    Err(e) => problems.push(format!("{at}: {e}")),
                }
            }
            policy
                .workloads
                .retain(|w| !(w.group == k.group && w.kind == k.kind));
            policy.workloads.push(Workload {
                group: k.group.clone(),
                kind: k.kind.clone(),
                templates,
            });
        }
        // After `kinds`: a controller may be trusted only for kinds this policy stamps.
        if let Some(entries) = &file.trusted_controllers {
            let stamped = |g: &str, k: &str| policy.workload(g, k).is_some();
            let compiled = TrustedControllers::compile(entries, stamped, &mut problems);
            policy.trusted_controllers = compiled;
        }
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError::Invalid(problems))
        }
    }

    /// Whether this authenticated username is a trusted controller (for any owner kind).
    pub fn is_trusted_controller(&self, username: Option<&str>) -> bool {
        self.trusted_controllers.contains(username)
    }

    /// Whether this username is a trusted controller for objects whose controller owner is of
    /// `group`/`kind` (the group of the ownerReference's apiVersion).
    pub fn manages(&self, username: Option<&str>, group: &str, kind: &str) -> bool {
        self.trusted_controllers.manages(username, group, kind)
    }

    /// Whether the requester may exec into (attach to, port-forward to, change) any pod.
    pub fn is_pod_access_admin(&self, username: Option<&str>, groups: &[String]) -> bool {
        self.pod_access_admins.contains(username, groups)
    }

    /// The Hadoop user for a Kubernetes username.
    pub fn map_username(&self, username: Option<&str>) -> Result<String, UsernameError> {
        self.usernames.map(username)
    }

    /// What injection adds to pods that ask for it.
    pub fn injection(&self) -> &Injection {
        &self.injection
    }

    /// The workload definition for a request's group and kind, if we stamp that kind.
    pub fn workload(&self, group: &str, kind: &str) -> Option<&Workload> {
        self.workloads
            .iter()
            .find(|w| w.group == group && w.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let p = Policy::default();
        assert!(p.is_trusted_controller(Some("system:serviceaccount:kube-system:job-controller")));
        assert!(p.is_trusted_controller(Some("system:kube-controller-manager")));
        assert!(p.is_trusted_controller(Some("system:serviceaccount:kubeflow:training-operator")));
        assert!(!p.is_trusted_controller(Some("alice")));
        assert!(!p.is_trusted_controller(None));
        assert_eq!(p.workload("apps", "Deployment").unwrap().templates.len(), 1);
        assert!(p.workload("", "Pod").unwrap().is_pod());
        assert!(p.workload("", "Deployment").is_none());
        assert!(p.workload("kubeflow.org", "TFJob").is_some());
    }

    #[test]
    fn empty_and_comment_only_files_give_defaults() {
        for text in ["", "# nothing\n", "{}"] {
            let p = Policy::from_yaml(text).unwrap();
            assert!(p.is_trusted_controller(Some("system:kube-controller-manager")));
        }
    }

    #[test]
    fn full_policy_parses() {
        let p = Policy::from_yaml(
            r#"
trustedControllers:
  - {username: 'system:serviceaccount:ray:kuberay-operator', ownerKinds: [ray.io/RayJob]}
usernames:
  stripPrefixes: ['oidc:']
  rewrite: {pattern: '(.+)@corp\.example', replacement: '$1'}
  serviceAccounts: {'system:serviceaccount:etl:runner': etl}
kinds:
  - {group: ray.io, kind: RayJob, templatePaths: ['spec.rayClusterSpec.headGroupSpec.template', 'spec.rayClusterSpec.workerGroupSpecs[].template']}
  - {group: apps, kind: Deployment, templatePaths: ['spec.template']}
"#,
        )
        .unwrap();
        assert!(p.manages(
            Some("system:serviceaccount:ray:kuberay-operator"),
            "ray.io",
            "RayJob"
        ));
        assert!(!p.is_trusted_controller(Some("system:kube-controller-manager")));
        assert_eq!(
            p.map_username(Some("oidc:alice@corp.example")).unwrap(),
            "alice"
        );
        assert_eq!(p.workload("ray.io", "RayJob").unwrap().templates.len(), 2);
        assert_eq!(
            p.workloads
                .iter()
                .filter(|w| w.kind == "Deployment")
                .count(),
            1
        );
    }

    #[test]
    fn the_example_policy_parses() {
        let p = Policy::from_yaml(include_str!("../policy.example.yaml")).unwrap();
        assert!(p.manages(
            Some("system:serviceaccount:ray-system:kuberay-operator"),
            "ray.io",
            "RayCluster"
        ));
        assert!(p.manages(
            Some("system:serviceaccount:kube-system:replicaset-controller"),
            "apps",
            "ReplicaSet"
        ));
        assert!(p.is_pod_access_admin(Some("x"), &["system:masters".to_owned()]));
        // The example repeats the defaults, as its comment says.
        for (user, kinds) in k2h_contract::kinds::DEFAULT_TRUSTED_CONTROLLERS {
            for k in *kinds {
                assert!(p.manages(Some(user), k.group, k.kind), "{user}: {k:?}");
            }
        }
        assert_eq!(
            p.map_username(Some("oidc:alice@corp.example.com")).unwrap(),
            "alice"
        );
        assert_eq!(
            p.map_username(Some("system:serviceaccount:etl:nightly-runner"))
                .unwrap(),
            "etl"
        );
        assert_eq!(
            p.workload("ray.io", "RayCluster").unwrap().templates.len(),
            2
        );
        assert!(p.workload("apps", "Deployment").is_some());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = Policy::from_yaml("trustedController: [x]").unwrap_err();
        assert!(matches!(e, PolicyError::Parse(_)));
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = Policy::from_yaml("usernames: {prefix: x}").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert!(Policy::from_yaml("kinds: [{kind: X, paths: []}]").is_err());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = Policy::from_yaml(
            r#"
trustedControllers: ['', {username: x, ownerKinds: [example.com/Unstamped]}]
podAccessAdmins: {groups: ['']}
usernames:
  stripPrefixes: ['']
  rewrite: {pattern: '(', replacement: x}
kinds:
  - {group: ray.io/v1, kind: RayJob, templatePaths: ['spec..template', 'metadata']}
  - {group: ray.io/v1, kind: RayJob}
  - {kind: ''}
"#,
        )
        .unwrap_err();
        let PolicyError::Invalid(problems) = &e else {
            panic!("expected Invalid, got {e}");
        };
        // trusted x2, admins, prefix, regex, group x2, paths x2, duplicate, empty kind.
        assert_eq!(problems.len(), 11, "{problems:#?}");
        let text = e.to_string();
        assert!(text.starts_with("policy has 11 problem(s)"), "{text}");
        assert!(text.contains("is the old form"), "{text}");
        assert!(
            text.contains("`example.com/Unstamped` is not a kind"),
            "{text}"
        );
        assert!(text.contains("usernames.rewrite.pattern"), "{text}");
        assert!(
            text.contains("kinds[0] (ray.io/v1/RayJob): template path `spec..template`"),
            "{text}"
        );
    }
}
