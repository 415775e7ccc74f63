//! Kubernetes username → the Hadoop user written into `kube2hadoop.io/user`.
//!
//! Order: a service-account username (`system:serviceaccount:<ns>:<name>`) is looked up in
//! `serviceAccounts` and otherwise passes unchanged, because prefixes and rewrites are meant for
//! people and must not silently turn a workload identity into a person's name. Any other name
//! loses the first matching prefix of `stripPrefixes`, then goes through `rewrite` if its
//! pattern matches the whole name. An empty result is refused.
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The prefix Kubernetes gives service-account usernames.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// The `usernames` section of the policy, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsernameConfig {
    /// Prefixes removed from people's usernames, e.g. `oidc:` from an OIDC
    /// `--oidc-username-prefix`. The first one that matches is removed, once.
    #[serde(default)]
    pub strip_prefixes: Vec<String>,
    /// An optional rewrite applied after prefix stripping.
    #[serde(default)]
    pub rewrite: Option<RewriteConfig>,
    /// Service accounts that act for a Hadoop user, by full username
    /// (`system:serviceaccount:<namespace>:<name>`) → Hadoop user. Service accounts not listed
    /// here are written unchanged.
    #[serde(default)]
    pub service_accounts: BTreeMap<String, String>,
}

/// A regex rewrite of a username.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewriteConfig {
    /// Regular expression (Rust `regex` syntax) that must match the whole name; it is anchored
    /// for you. A name it does not match is kept as it is.
    pub pattern: String,
    /// The new name; `$1`, `${name}` refer to capture groups.
    pub replacement: String,
}

/// The compiled mapping.
#[derive(Debug, Clone, Default)]
pub struct UsernameMapping {
    strip_prefixes: Vec<String>,
    rewrite: Option<(Regex, String)>,
    service_accounts: BTreeMap<String, String>,
}

/// A username that cannot be written as a Hadoop user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("the request carries no username; iddecorator cannot tell who submitted it")]
    Missing,
    #[error(
        "username `{0}` maps to an empty Hadoop user; ask the cluster admin to fix the usernames section of the iddecorator policy"
    )]
    Empty(String),
}

impl UsernameConfig {
    /// Compile, appending every problem to `problems` (prefixed with the field name).
    pub fn compile(&self, problems: &mut Vec<String>) -> UsernameMapping {
        if self.strip_prefixes.iter().any(String::is_empty) {
            problems.push("usernames.stripPrefixes: remove the empty prefix".to_owned());
        }
        let rewrite =
            self.rewrite
                .as_ref()
                .and_then(|r| match Regex::new(&format!("^(?:{})$", r.pattern)) {
                    Ok(re) => Some((re, r.replacement.clone())),
                    Err(e) => {
                        problems.push(format!("usernames.rewrite.pattern: not a valid regex: {e}"));
                        None
                    }
                });
        for (sa, user) in &self.service_accounts {
            if !sa.starts_with(SERVICE_ACCOUNT_PREFIX) {
                problems.push(format!(
                    "usernames.serviceAccounts: key `{sa}` must be a full service-account username ({SERVICE_ACCOUNT_PREFIX}<namespace>:<name>)"
                ));
            }
            if user.is_empty() {
                problems.push(format!(
                    "usernames.serviceAccounts.{sa}: give the Hadoop user it acts for"
                ));
            }
        }
        UsernameMapping {
            strip_prefixes: self.strip_prefixes.clone(),
            rewrite,
            service_accounts: self.service_accounts.clone(),
        }
    }
}

impl UsernameMapping {
    /// The Hadoop user for a Kubernetes username.
    pub fn map(&self, username: Option<&str>) -> Result<String, UsernameError> {
        let name = username.ok_or(UsernameError::Missing)?;
        let mapped = if name.starts_with(SERVICE_ACCOUNT_PREFIX) {
            self.service_accounts
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_owned())
        } else {
            let stripped = self
                .strip_prefixes
                .iter()
                .find_map(|p| name.strip_prefix(p.as_str()))
                .unwrap_or(name);
            match &self.rewrite {
                Some((re, replacement)) if re.is_match(stripped) => {
                    re.replace(stripped, replacement.as_str()).into_owned()
                }
                _ => stripped.to_owned(),
            }
        };
        if mapped.trim().is_empty() {
            return Err(UsernameError::Empty(name.to_owned()));
        }
        Ok(mapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(yaml: &str) -> UsernameMapping {
        let cfg: UsernameConfig = serde_yaml_ng::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let m = cfg.compile(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        m
    }

    #[test]
    fn default_is_identity() {
        let m = UsernameMapping::default();
        assert_eq!(m.map(Some("alice")).unwrap(), "alice");
        assert_eq!(m.map(Some("oidc:alice")).unwrap(), "oidc:alice");
    }

    #[test]
    fn strips_first_matching_prefix_once() {
        let m = mapping("stripPrefixes: ['oidc:', 'ldap:']");
        assert_eq!(m.map(Some("oidc:alice")).unwrap(), "alice");
        assert_eq!(m.map(Some("ldap:bob")).unwrap(), "bob");
        assert_eq!(m.map(Some("oidc:oidc:carol")).unwrap(), "oidc:carol");
        assert_eq!(m.map(Some("dave")).unwrap(), "dave");
    }

    #[test]
    fn regex_rewrite_is_anchored_and_keeps_non_matching_names() {
        let m = mapping(
            r#"
stripPrefixes: ['oidc:']
rewrite: {pattern: '([a-z]+)@corp\.example', replacement: '$1'}
"#,
        );
        assert_eq!(m.map(Some("oidc:alice@corp.example")).unwrap(), "alice");
        // Not a full match: kept unchanged rather than partially rewritten.
        assert_eq!(
            m.map(Some("alice@corp.example.evil")).unwrap(),
            "alice@corp.example.evil"
        );
        assert_eq!(m.map(Some("bob")).unwrap(), "bob");
    }

    #[test]
    fn service_accounts_pass_unchanged_unless_named() {
        let m = mapping(
            r#"
stripPrefixes: ['system:']
rewrite: {pattern: '.*', replacement: 'everyone'}
serviceAccounts: {'system:serviceaccount:etl:runner': etl}
"#,
        );
        assert_eq!(
            m.map(Some("system:serviceaccount:ml:trainer")).unwrap(),
            "system:serviceaccount:ml:trainer"
        );
        assert_eq!(
            m.map(Some("system:serviceaccount:etl:runner")).unwrap(),
            "etl"
        );
        assert_eq!(m.map(Some("alice")).unwrap(), "everyone");
    }

    #[test]
    fn empty_results_are_errors() {
        let m = mapping("stripPrefixes: ['oidc:']");
        assert_eq!(
            m.map(Some("oidc:")),
            Err(UsernameError::Empty("oidc:".into()))
        );
        assert_eq!(m.map(Some("")), Err(UsernameError::Empty(String::new())));
        assert_eq!(m.map(None), Err(UsernameError::Missing));
        let m = mapping("rewrite: {pattern: 'x(.*)', replacement: '$1'}");
        assert!(matches!(m.map(Some("x")), Err(UsernameError::Empty(_))));
    }

    #[test]
    fn every_problem_is_reported() {
        let cfg: UsernameConfig = serde_yaml_ng::from_str(
            r#"
stripPrefixes: ['']
rewrite: {pattern: '(', replacement: x}
serviceAccounts: {'etl:runner': '', 'system:serviceaccount:a:b': ''}
"#,
        )
        .unwrap();
        let mut problems = Vec::new();
        cfg.compile(&mut problems);
        assert_eq!(problems.len(), 5, "{problems:#?}");
    }
}
