//! Which pods kube2hadoop covers: one definition, iddecorator's mutating webhook as registered in
//! the cluster (`k2h_contract::coverage`). A pod is served only if that webhook exists, fails
//! closed, intercepts CREATE and UPDATE of pods (and their ephemeral containers), has no
//! objectSelector and selects the pod's namespace: anything else was admitted without
//! iddecorator, so its `kube2hadoop.io/user` proves nothing. An owner kind counts as stamped
//! only while the webhook intercepts CREATE and UPDATE of its resource.
//!
//! [`check`] is a pure function over the registration and labels; the watch that feeds it is
//! `cluster::watch::watch_webhook`.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, MutatingWebhookConfiguration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use crate::error::{ApiError, Kind};
use crate::pod::PodFacts;
use crate::workload::{StampedKinds, plural};

/// What the watch knows of the webhook registration.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// The first list has not completed: nothing can be said yet.
    Loading,
    /// The watch failed and has not relisted yet: the registration may have changed unseen.
    Stale,
    /// No MutatingWebhookConfiguration of that name.
    NoConfiguration { configuration: String },
    /// The configuration exists without the webhook.
    NoWebhook {
        configuration: String,
        webhook: String,
    },
    Found {
        configuration: String,
        webhook: Box<MutatingWebhook>,
    },
}

impl Registration {
    /// The registration `webhook` within `found` (the configuration named `configuration`, if
    /// the watch holds it).
    pub fn of(
        found: Option<&MutatingWebhookConfiguration>,
        configuration: &str,
        webhook: &str,
    ) -> Registration {
        let Some(config) = found else {
            return Registration::NoConfiguration {
                configuration: configuration.to_owned(),
            };
        };
        match config.webhooks.iter().flatten().find(|w| w.name == webhook) {
            Some(w) => Registration::Found {
                configuration: configuration.to_owned(),
                webhook: Box::new(w.clone()),
            },
            None => Registration::NoWebhook {
                configuration: configuration.to_owned(),
                webhook: webhook.to_owned(),
            },
        }
    }
}

/// 503 until a watch that coverage depends on has listed once.
pub fn loading(what: &str) -> ApiError {
    ApiError::new(
        Kind::Unavailable,
        "not_ready",
        format!("the {what} list is still loading; retry shortly"),
    )
}

/// 503 while a watch that coverage depends on relists: an admin who narrowed coverage
/// meanwhile must not be missed.
pub fn stale(what: &str) -> ApiError {
    ApiError::new(
        Kind::Unavailable,
        "coverage_stale",
        format!(
            "token-service lost its watch of the {what} and is relisting; coverage cannot be \
             judged until it is whole again, retry shortly"
        ),
    )
}

fn refused(code: &'static str, message: String) -> ApiError {
    ApiError::new(Kind::Forbidden, code, message)
}

/// Whether `rule` (a `resources` entry) names `resource` (`pods` or `pods/ephemeralcontainers`):
/// `*` is every resource, `*/*` every resource and subresource, `pods/*` every subresource of
/// pods, `*/scale` that subresource of every resource.
fn names_resource(rule: &str, resource: &str) -> bool {
    if rule == "*/*" || rule == resource {
        return true;
    }
    match (rule.split_once('/'), resource.split_once('/')) {
        (None, None) => rule == "*",
        (Some((r, rs)), Some((t, ts))) => (r == "*" || r == t) && (rs == "*" || rs == ts),
        _ => false,
    }
}

/// Whether the webhook intercepts `operation` on `resource` of API `group` (any version of it:
/// with the default matchPolicy Equivalent the API server sends requests for every version of a
/// resource a rule names; with Exact only `apiVersions: ["*"]` does).
pub fn intercepts(webhook: &MutatingWebhook, group: &str, resource: &str, operation: &str) -> bool {
    let has = |list: &Option<Vec<String>>, want: &str| {
        list.iter().flatten().any(|v| v == want || v == "*")
    };
    let exact = webhook.match_policy.as_deref() == Some("Exact");
    webhook.rules.iter().flatten().any(|r| {
        has(&r.operations, operation)
            && has(&r.api_groups, group)
            && if exact {
                has(&r.api_versions, "*")
            } else {
                r.api_versions.as_ref().is_some_and(|v| !v.is_empty())
            }
            && r.resources
                .iter()
                .flatten()
                .any(|rule| names_resource(rule, resource))
            && matches!(r.scope.as_deref(), None | Some("*" | "Namespaced"))
    })
}

/// The first (operation, resource) of kind `kind` in `group` the webhook does not intercept:
/// CREATE and UPDATE of the kind's resource (an UPDATE it misses could rewrite the stamped
/// template or annotation), and for pods also UPDATE of `pods/ephemeralcontainers` (the only
/// operation of that subresource), which adds a container to a running pod.
pub fn missing_rule(webhook: &MutatingWebhook, group: &str, kind: &str) -> Option<String> {
    let resource = plural(kind);
    let mut needed = vec![("CREATE", resource.clone()), ("UPDATE", resource.clone())];
    if group.is_empty() && kind == "Pod" {
        needed.push(("UPDATE", format!("{resource}/ephemeralcontainers")));
    }
    needed
        .into_iter()
        .find(|(op, res)| !intercepts(webhook, group, res, op))
        .map(|(op, res)| format!("{op} of {res} (apiGroups [{group:?}])"))
}

/// Whether a label selector selects only some objects (absent or `{}` selects all).
fn narrows(selector: Option<&LabelSelector>) -> bool {
    selector.is_some_and(|s| {
        s.match_labels.as_ref().is_some_and(|m| !m.is_empty())
            || s.match_expressions.as_ref().is_some_and(|e| !e.is_empty())
    })
}

/// Whether `selector` selects `labels`. An absent selector selects everything (the API server
/// defaults it to `{}`); one we cannot read selects nothing.
fn selects(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let Some(selector) = selector else {
        return Ok(true);
    };
    let parsed = Selector::try_from(selector.clone()).map_err(|e| e.to_string())?;
    Ok(parsed.matches(labels))
}

/// Whether `pod`, in a namespace with `namespace_labels` (`None`: the namespace is unknown),
/// was necessarily admitted through iddecorator's webhook.
///
/// On success, the kinds an owner chain may consist of: `stamped` less those whose resource
/// the webhook does not intercept (objects of such a kind are admitted unstamped, so they
/// prove nothing however they are annotated).
pub fn check(
    registration: &Registration,
    namespace_labels: Option<&BTreeMap<String, String>>,
    pod: &PodFacts,
    stamped: &StampedKinds,
) -> Result<StampedKinds, ApiError> {
    let (configuration, webhook) = match registration {
        Registration::Loading => return Err(loading("webhook registration")),
        Registration::Stale => return Err(stale("webhook registration")),
        Registration::NoConfiguration { configuration } => {
            return Err(refused(
                "webhook_not_installed",
                format!(
                    "the MutatingWebhookConfiguration {configuration} of iddecorator does not \
                     exist, so no pod's kube2hadoop.io/user can be trusted: install the webhook \
                     (manifests/base/webhooks.yaml) or set token-service's \
                     webhookConfiguration to its name"
                ),
            ));
        }
        Registration::NoWebhook {
            configuration,
            webhook,
        } => {
            return Err(refused(
                "webhook_not_installed",
                format!(
                    "the MutatingWebhookConfiguration {configuration} has no webhook {webhook}, \
                     so no pod's kube2hadoop.io/user can be trusted: reinstall it from \
                     manifests/base/webhooks.yaml"
                ),
            ));
        }
        Registration::Found {
            configuration,
            webhook,
        } => (configuration, webhook),
    };
    let name = &webhook.name;
    let not_enforcing = |why: String| {
        refused(
            "webhook_not_enforcing",
            format!("webhook {name} in {configuration} {why}, so pods may be admitted without it"),
        )
    };
    // Absent means the v1 default, Fail.
    if webhook.failure_policy.as_deref().unwrap_or("Fail") != "Fail" {
        return Err(not_enforcing(format!(
            "has failurePolicy {}, not Fail",
            webhook.failure_policy.as_deref().unwrap_or_default()
        )));
    }
    // A pod is its own workload when bare, and every served pod is a pod.
    if let Some(missing) = missing_rule(webhook, "", "Pod") {
        return Err(not_enforcing(format!(
            "has no rule for {missing}; add {{apiGroups: [\"\"], resources: [pods, \
             pods/ephemeralcontainers], operations: [CREATE, UPDATE]}} to its rules"
        )));
    }
    // Labels change after creation: an object the selector left out at CREATE can be
    // relabelled into it (and its UPDATE then keeps the forged user). Only the namespace,
    // which the requester cannot relabel, can bound coverage.
    if narrows(webhook.object_selector.as_ref()) {
        return Err(not_enforcing(
            "has an objectSelector; labels can change after creation, so an objectSelector \
             cannot prove iddecorator saw the object: remove it and narrow coverage with the \
             namespaceSelector"
                .into(),
        ));
    }
    // CEL conditions cannot be evaluated here: whatever they exclude would be served.
    if webhook
        .match_conditions
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        return Err(not_enforcing(
            "has matchConditions, which token-service cannot evaluate".into(),
        ));
    }
    let shown = pod.display_name();
    let not_covered = |what: String| {
        refused(
            "namespace_not_covered",
            format!(
                "pod {shown} {what} of webhook {name} ({configuration}), so iddecorator never saw \
                 it and its kube2hadoop.io/user proves nothing"
            ),
        )
    };
    let Some(ns_labels) = namespace_labels else {
        return Err(not_covered(format!(
            "is in namespace {}, which token-service does not know yet; it is not covered",
            pod.namespace
        )));
    };
    match selects(webhook.namespace_selector.as_ref(), ns_labels) {
        Ok(true) => {}
        Ok(false) => {
            return Err(not_covered(format!(
                "is in namespace {}, outside the namespaceSelector",
                pod.namespace
            )));
        }
        Err(e) => {
            return Err(not_covered(format!(
                "cannot be matched: namespaceSelector {e}"
            )));
        }
    }
    Ok(stamped.intercepted_by(|group, kind| {
        missing_rule(webhook, group, kind)
            .map(|missing| format!("webhook {name} in {configuration} has no rule for {missing}"))
    }))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::fixtures::pod;

    const CONFIG: &str = k2h_contract::coverage::WEBHOOK_CONFIGURATION;
    const HOOK: &str = k2h_contract::coverage::MUTATING_WEBHOOK;

    /// The shipped registration (manifests/base/webhooks.yaml), read as the API returns it.
    fn shipped() -> MutatingWebhookConfiguration {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": CONFIG},
            "webhooks": [{
                "name": HOOK, "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "clientConfig": {"service": {"name": "iddecorator", "namespace": "kube2hadoop"}},
                "failurePolicy": "Fail",
                "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                    "operator": "NotIn", "values": k2h_contract::coverage::DEFAULT_EXCLUDED_NAMESPACES}]},
                "objectSelector": {},
                "matchPolicy": "Equivalent",
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers"]},
                  {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                    "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"]},
                  {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                    "resources": ["jobs", "cronjobs"]},
                  {"apiGroups": ["kubeflow.org"], "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["tfjobs", "pytorchjobs", "mpijobs", "xgboostjobs", "paddlejobs",
                        "mxjobs", "jaxjobs"]}]
            }]
        }))
        .expect("registration")
    }

    fn found(edit: impl FnOnce(&mut MutatingWebhook)) -> Registration {
        let mut config = shipped();
        if let Some(w) = config.webhooks.as_mut().and_then(|w| w.first_mut()) {
            edit(w);
        }
        Registration::of(Some(&config), CONFIG, HOOK)
    }

    fn ns(name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([("kubernetes.io/metadata.name".into(), name.into())]);
        labels.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        labels
    }

    fn code(
        reg: &Registration,
        labels: Option<&BTreeMap<String, String>>,
        p: &PodFacts,
    ) -> &'static str {
        match check(reg, labels, p, &StampedKinds::default()) {
            Ok(_) => "covered",
            Err(e) => e.code,
        }
    }

    fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).into()).collect()),
        }
    }

    #[test]
    fn the_shipped_webhook_covers_ordinary_namespaces_and_not_its_exclusions() {
        let reg = found(|_| {});
        let p = pod("web-1", "u1", "127.100.0.1");
        assert_eq!(code(&reg, Some(&ns("team-a", &[])), &p), "covered");
        for excluded in ["kube-system", "kube2hadoop"] {
            let mut q = p.clone();
            q.namespace = excluded.into();
            let e = check(&reg, Some(&ns(excluded, &[])), &q, &StampedKinds::default())
                .expect_err(excluded);
            assert_eq!(
                (e.code, e.status().as_u16()),
                ("namespace_not_covered", 403)
            );
            assert!(
                e.message.contains(excluded) && e.message.contains(HOOK),
                "{e}"
            );
        }
        assert_eq!(code(&reg, None, &p), "namespace_not_covered");
    }

    #[test]
    fn a_missing_or_lax_registration_covers_nothing() {
        let p = pod("web-1", "u1", "127.100.0.1");
        let labels = ns("team-a", &[]);
        let e = check(
            &Registration::Loading,
            Some(&labels),
            &p,
            &StampedKinds::default(),
        )
        .expect_err("loading");
        assert_eq!((e.code, e.status().as_u16()), ("not_ready", 503));
        let e = check(
            &Registration::Stale,
            Some(&labels),
            &p,
            &StampedKinds::default(),
        )
        .expect_err("stale");
        assert_eq!((e.code, e.status().as_u16()), ("coverage_stale", 503));
        assert_eq!(
            code(&Registration::of(None, CONFIG, HOOK), Some(&labels), &p),
            "webhook_not_installed"
        );
        let mut other = shipped();
        if let Some(w) = other.webhooks.as_mut().and_then(|w| w.first_mut()) {
            w.name = "other.example.com".into();
        }
        assert_eq!(
            code(
                &Registration::of(Some(&other), CONFIG, HOOK),
                Some(&labels),
                &p
            ),
            "webhook_not_installed"
        );
        let lax = [
            found(|w| w.failure_policy = Some("Ignore".into())),
            found(|w| w.rules = None),
            found(|w| {
                if let Some(r) = w.rules.as_mut().and_then(|r| r.first_mut()) {
                    r.operations = Some(vec!["UPDATE".into()]);
                }
            }),
            found(|w| {
                if let Some(r) = w.rules.as_mut().and_then(|r| r.first_mut()) {
                    r.resources = Some(vec!["replicationcontrollers".into()]);
                }
            }),
            found(|w| {
                if let Some(r) = w.rules.as_mut().and_then(|r| r.first_mut()) {
                    r.api_groups = Some(vec!["apps".into()]);
                }
            }),
            found(|w| {
                if let Some(r) = w.rules.as_mut().and_then(|r| r.first_mut()) {
                    r.scope = Some("Cluster".into());
                }
            }),
            found(|w| {
                w.match_conditions = Some(vec![
                    serde_json::from_value(serde_json::json!(
                        {"name": "skip", "expression": "false"}
                    ))
                    .expect("condition"),
                ]);
            }),
        ];
        for (i, reg) in lax.iter().enumerate() {
            assert_eq!(
                code(reg, Some(&labels), &p),
                "webhook_not_enforcing",
                "case {i}"
            );
        }
        // Wildcards and an absent failurePolicy (v1 default: Fail) do enforce.
        let wide = found(|w| {
            w.failure_policy = None;
            w.rules = Some(vec![RuleWithOperations {
                api_groups: Some(vec!["*".into()]),
                api_versions: Some(vec!["*".into()]),
                operations: Some(vec!["*".into()]),
                resources: Some(vec!["*/*".into()]),
                scope: Some("*".into()),
            }]);
        });
        assert_eq!(code(&wide, Some(&labels), &p), "covered");
    }

    #[test]
    fn match_labels_and_every_operator_of_both_selectors() {
        let p = pod("web-1", "u1", "127.100.0.1");
        let opted_in = ns("team-a", &[("iddecorator", "enabled"), ("tier", "gold")]);
        let plain = ns("team-b", &[]);
        let selector = |labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>| {
            Some(LabelSelector {
                match_labels: (!labels.is_empty()).then(|| {
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect()
                }),
                match_expressions: (!exprs.is_empty()).then_some(exprs),
            })
        };
        let cases = [
            (selector(&[("iddecorator", "enabled")], vec![]), true, false),
            (
                selector(&[], vec![requirement("tier", "In", &["gold", "silver"])]),
                true,
                false,
            ),
            (
                selector(&[], vec![requirement("tier", "NotIn", &["gold"])]),
                false,
                true,
            ),
            (
                selector(&[], vec![requirement("iddecorator", "Exists", &[])]),
                true,
                false,
            ),
            (
                selector(&[], vec![requirement("iddecorator", "DoesNotExist", &[])]),
                false,
                true,
            ),
            // matchLabels AND matchExpressions.
            (
                selector(
                    &[("iddecorator", "enabled")],
                    vec![requirement("tier", "In", &["bronze"])],
                ),
                false,
                false,
            ),
            (selector(&[], vec![]), true, true),
            // An operator Kubernetes does not know selects nothing.
            (
                selector(&[], vec![requirement("tier", "Near", &["gold"])]),
                false,
                false,
            ),
        ];
        for (i, (sel, in_opted, in_plain)) in cases.into_iter().enumerate() {
            let reg = found(|w| w.namespace_selector = sel.clone());
            let got = |labels| code(&reg, Some(labels), &p) == "covered";
            assert_eq!(
                (got(&opted_in), got(&plain)),
                (in_opted, in_plain),
                "namespace case {i}"
            );
            // As objectSelector, any selector that narrows is refused whatever the labels:
            // a pod created outside it and relabelled later was never seen by iddecorator.
            let reg = found(|w| {
                w.namespace_selector = None;
                w.object_selector = sel.clone();
            });
            let narrows = sel
                .as_ref()
                .is_some_and(|s| s.match_labels.is_some() || s.match_expressions.is_some());
            assert_eq!(
                code(&reg, Some(&plain), &p),
                if narrows {
                    "webhook_not_enforcing"
                } else {
                    "covered"
                },
                "object case {i}"
            );
        }
    }

    #[test]
    fn an_object_selector_is_never_enforcing() {
        let p = pod("web-1", "u1", "127.100.0.1");
        let reg = found(|w| {
            w.object_selector = Some(LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![requirement("skip", "DoesNotExist", &[])]),
            });
        });
        // Even for a pod the selector matches now: it may have been relabelled into it.
        let e = check(&reg, Some(&ns("team-a", &[])), &p, &StampedKinds::default())
            .expect_err("objectSelector");
        assert_eq!(e.code, "webhook_not_enforcing");
        assert!(
            e.message.contains("labels can change") && e.message.contains("namespaceSelector"),
            "{e}"
        );
    }

    /// The shipped registration less `resource` in every rule.
    fn without(resource: &str) -> Registration {
        found(|w| {
            for r in w.rules.iter_mut().flatten() {
                if let Some(list) = r.resources.as_mut() {
                    list.retain(|x| x != resource);
                }
            }
        })
    }

    fn kinds(reg: &Registration, stamped: &StampedKinds) -> StampedKinds {
        check(
            reg,
            Some(&ns("team-a", &[])),
            &pod("w", "u1", "127.100.0.1"),
            stamped,
        )
        .expect("covered")
    }

    #[test]
    fn every_stamped_kind_must_be_intercepted_on_create_and_update() {
        let stamped = StampedKinds::with([("ray.io".to_owned(), "RayJob".to_owned())]);
        // The shipped rules cover every built-in kind, not the configured RayJob.
        let shipped = kinds(&found(|_| {}), &stamped);
        for gk in k2h_contract::kinds::BUILTIN_STAMPED {
            let v = if gk.group.is_empty() {
                "v1".to_owned()
            } else {
                format!("{}/v1", gk.group)
            };
            assert!(shipped.contains(&v, gk.kind), "{gk:?}");
        }
        match shipped.why_not("ray.io/v1", "RayJob") {
            Some(crate::workload::NotStamped::NotIntercepted(why)) => {
                assert!(
                    why.contains("CREATE of rayjobs") && why.contains(HOOK),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        // A registration from before MXJob was stamped: MXJob is not stamped, the rest is.
        let old = kinds(&without("mxjobs"), &stamped);
        assert!(!old.contains("kubeflow.org/v1", "MXJob"));
        assert!(old.contains("kubeflow.org/v1", "TFJob"));
        // CREATE alone is not enough: an UPDATE could rewrite the stamped template.
        let create_only = found(|w| {
            for r in w.rules.iter_mut().flatten() {
                if r.api_groups.as_deref() == Some(&["apps".to_owned()][..]) {
                    r.operations = Some(vec!["CREATE".into()]);
                }
            }
        });
        let k = kinds(&create_only, &stamped);
        assert!(!k.contains("apps/v1", "Deployment"));
        match k.why_not("apps/v1", "Deployment") {
            Some(crate::workload::NotStamped::NotIntercepted(why)) => {
                assert!(why.contains("UPDATE of deployments"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert!(k.contains("batch/v1", "Job"));
        // Wildcards count: groups, resources, operations.
        let wide = found(|w| {
            w.rules = Some(vec![RuleWithOperations {
                api_groups: Some(vec!["*".into()]),
                api_versions: Some(vec!["v1".into()]),
                operations: Some(vec!["*".into()]),
                resources: Some(vec!["*".into(), "pods/*".into()]),
                scope: None,
            }]);
        });
        let k = kinds(&wide, &stamped);
        assert!(k.contains("ray.io/v1", "RayJob") && k.contains("kubeflow.org/v1", "MXJob"));
        // matchPolicy Exact only counts `apiVersions: ["*"]`.
        let exact = found(|w| w.match_policy = Some("Exact".into()));
        assert_eq!(
            code(
                &exact,
                Some(&ns("team-a", &[])),
                &pod("w", "u1", "127.100.0.1")
            ),
            "webhook_not_enforcing"
        );
    }

    #[test]
    fn a_bare_pod_needs_pod_create_update_and_ephemeral_containers() {
        let p = pod("web-1", "u1", "127.100.0.1");
        let labels = ns("team-a", &[]);
        let no_update = found(|w| {
            if let Some(r) = w.rules.as_mut().and_then(|r| r.first_mut()) {
                r.operations = Some(vec!["CREATE".into()]);
            }
        });
        for (i, reg) in [
            no_update,
            without("pods/ephemeralcontainers"),
            without("pods"),
        ]
        .iter()
        .enumerate()
        {
            let e = check(reg, Some(&labels), &p, &StampedKinds::default()).expect_err("lax");
            assert_eq!(e.code, "webhook_not_enforcing", "case {i}");
            assert!(e.message.contains("of pods"), "case {i}: {e}");
        }
        for (rule, resource, want) in [
            ("*/*", "pods/ephemeralcontainers", true),
            ("*", "pods/ephemeralcontainers", false),
            ("*", "pods", true),
            ("pods/*", "pods/ephemeralcontainers", true),
            ("pods/*", "pods", false),
            ("*/ephemeralcontainers", "pods/ephemeralcontainers", true),
            ("pods", "pods/ephemeralcontainers", false),
            ("deployments", "pods", false),
        ] {
            assert_eq!(names_resource(rule, resource), want, "{rule} {resource}");
        }
    }
}
