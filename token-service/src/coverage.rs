//! Which pods kube2hadoop covers: one definition, iddecorator's mutating webhook as registered in
//! the cluster (`k2h_contract::coverage`). A pod is served only if that webhook exists, fails
//! closed, intercepts pod CREATEs, and selects the pod's namespace and the pod itself: anything
//! else was admitted without iddecorator, so its `kube2hadoop.io/user` proves nothing.
//!
//! [`check`] is a pure function over the registration and labels; the watch that feeds it is
//! `cluster::watch_webhook`.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, MutatingWebhookConfiguration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use crate::error::{ApiError, Kind};
use crate::pod::PodFacts;

/// What the watch knows of the webhook registration.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// The first list has not completed: nothing can be said yet.
    Loading,
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

fn refused(code: &'static str, message: String) -> ApiError {
    ApiError::new(Kind::Forbidden, code, message)
}

/// Whether a rule list makes the webhook see every pod CREATE (core group, v1, namespaced).
fn intercepts_pod_creates(webhook: &MutatingWebhook) -> bool {
    let has = |list: &Option<Vec<String>>, want: &[&str]| {
        list.iter().flatten().any(|v| want.contains(&v.as_str()))
    };
    webhook.rules.iter().flatten().any(|r| {
        has(&r.operations, &["CREATE", "*"])
            && has(&r.api_groups, &["", "*"])
            && has(&r.api_versions, &["v1", "*"])
            && has(&r.resources, &["pods", "*", "*/*"])
            && matches!(r.scope.as_deref(), None | Some("*" | "Namespaced"))
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
pub fn check(
    registration: &Registration,
    namespace_labels: Option<&BTreeMap<String, String>>,
    pod: &PodFacts,
) -> Result<(), ApiError> {
    let (configuration, webhook) = match registration {
        Registration::Loading => {
            return Err(ApiError::new(
                Kind::Unavailable,
                "not_ready",
                "the webhook registration is still loading; retry shortly",
            ));
        }
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
    if !intercepts_pod_creates(webhook) {
        return Err(not_enforcing(
            "has no rule for CREATE of pods (apiGroups \"\", v1)".into(),
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
    match selects(webhook.object_selector.as_ref(), &pod.labels) {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_covered("has labels outside the objectSelector".into())),
        Err(e) => Err(not_covered(format!(
            "cannot be matched: objectSelector {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::pod::fixtures::pod;

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
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers"]}]
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
        match check(reg, labels, p) {
            Ok(()) => "covered",
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
            let e = check(&reg, Some(&ns(excluded, &[])), &q).expect_err(excluded);
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
        let e = check(&Registration::Loading, Some(&labels), &p).expect_err("loading");
        assert_eq!((e.code, e.status().as_u16()), ("not_ready", 503));
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
            // The same selector as objectSelector, over the pod's labels.
            let reg = found(|w| {
                w.namespace_selector = None;
                w.object_selector = sel;
            });
            let mut labelled = p.clone();
            labelled.labels = opted_in.clone();
            let mut bare = p.clone();
            bare.labels = plain.clone();
            let got = |q: &PodFacts| code(&reg, Some(&plain), q);
            assert_eq!(
                (got(&labelled) == "covered", got(&bare) == "covered"),
                (in_opted, in_plain),
                "object case {i}"
            );
            if !in_plain {
                assert_eq!(got(&bare), "namespace_not_covered", "object case {i}");
            }
        }
    }
}
