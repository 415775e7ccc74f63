//! Which Hadoop services a workload's token set comes from: its pods'
//! `kube2hadoop.io/services`, else the configured default, else every configured service.
//!
//! The choice is part of what identifies a set (with the workload and the Hadoop user): pods
//! that ask for other services get a set of their own, renewed and cancelled with the workload
//! like any other, so a set always holds exactly the tokens its pods asked for.

use std::collections::BTreeSet;
use std::fmt;

use k2h_contract::annotations::SERVICES;
use k2h_contract::services::{self, ServicesError};

use crate::error::{ApiError, Kind};

/// The services of one set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selection {
    /// Every configured service: what sets were before workloads could choose, so their
    /// ledger entries keep their names.
    #[default]
    All,
    /// These, by [`k2h_contract::services::KNOWN`] name, sorted.
    Only(BTreeSet<&'static str>),
}

impl Selection {
    /// Whether a provider of kind `name` (`hdfs`, `kms`, `yarn`) contributes to the set.
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Only(names) => names.contains(name),
        }
    }

    /// The stored form: `None` for every service, else the canonical list (`hdfs,yarn`).
    pub fn stored(&self) -> Option<String> {
        match self {
            Selection::All => None,
            Selection::Only(names) => Some(names.iter().copied().collect::<Vec<_>>().join(",")),
        }
    }

    /// Reads [`Selection::stored`] back; a value no version wrote is an error.
    pub fn from_stored(stored: Option<&str>) -> Result<Selection, ServicesError> {
        stored.map_or(Ok(Selection::All), |s| {
            services::parse(s).map(Selection::Only)
        })
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stored() {
            None => f.write_str("all configured services"),
            Some(list) => f.write_str(&list),
        }
    }
}

/// What the service was configured with.
#[derive(Debug, Clone, Default)]
pub struct ServicesPolicy {
    /// Kinds with at least one provider configured.
    pub configured: BTreeSet<&'static str>,
    /// For pods without the annotation; `None` gives them every configured service.
    pub default: Option<BTreeSet<&'static str>>,
}

impl ServicesPolicy {
    /// The selection for a pod whose annotation is `annotation`. Refused, with a message for
    /// the pod's owner, when it cannot be read or names a service this token service lacks.
    pub fn select(&self, annotation: Option<&str>) -> Result<Selection, ApiError> {
        let Some(value) = annotation else {
            return Ok(self.default.clone().map_or(Selection::All, Selection::Only));
        };
        let names = services::parse(value).map_err(|e| {
            ApiError::new(
                Kind::Forbidden,
                "bad_services_annotation",
                format!("the pod's {SERVICES} {e}"),
            )
        })?;
        let missing: Vec<_> = names
            .iter()
            .filter(|n| !self.configured.contains(*n))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::new(
                Kind::Forbidden,
                "service_not_configured",
                format!(
                    "the pod's {SERVICES} asks for {}, which this token service is not configured \
                     to issue (it issues {}); remove it from the annotation or ask the cluster \
                     admin to configure it",
                    missing.join(", "),
                    self.configured
                        .iter()
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(Selection::Only(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(default: Option<&[&'static str]>) -> ServicesPolicy {
        ServicesPolicy {
            configured: ["hdfs", "kms"].into(),
            default: default.map(|d| d.iter().copied().collect()),
        }
    }

    #[test]
    fn no_annotation_takes_the_default_else_everything() {
        assert_eq!(policy(None).select(None).expect("ok"), Selection::All);
        assert_eq!(
            policy(Some(&["hdfs"])).select(None).expect("ok"),
            Selection::Only(["hdfs"].into())
        );
    }

    #[test]
    fn the_annotation_is_canonical_and_must_name_configured_services() {
        let p = policy(None);
        let s = p.select(Some("KMS, hdfs")).expect("ok");
        assert_eq!(s.stored().as_deref(), Some("hdfs,kms"));
        assert_eq!(Selection::from_stored(Some("hdfs,kms")).expect("ok"), s);
        let e = p
            .select(Some("hdfs,yarn"))
            .expect_err("yarn is not configured");
        assert_eq!(e.code, "service_not_configured");
        assert!(
            e.message.contains("yarn") && e.message.contains("hdfs, kms"),
            "{e}"
        );
        let e = p.select(Some("hdfs,ftp")).expect_err("unknown");
        assert_eq!(e.code, "bad_services_annotation");
        assert!(e.message.contains("kube2hadoop.io/services"), "{e}");
    }

    #[test]
    fn only_selected_kinds_are_included() {
        let s = Selection::Only(["yarn"].into());
        assert!(s.includes("yarn") && !s.includes("hdfs"));
        assert!(Selection::All.includes("hdfs"));
        assert_eq!(Selection::from_stored(None).expect("ok"), Selection::All);
        assert!(Selection::from_stored(Some("")).is_err());
    }
}
