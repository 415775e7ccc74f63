//! Users and groups from a YAML file: the demo default and the fallback without LDAP.
//!
//! ```yaml
//! allowedGroup: hadoop-users
//! groups:
//!   hadoop-users: [alice, bob]
//!   svc-etl: [alice]
//! # headless account -> the group whose members may run as it (default: same name)
//! accounts:
//!   svc-etl: svc-etl
//! ```
//! Every member of any group is a known user.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures::future::BoxFuture;

use super::{Directory, DirectoryError, RunAsStatus, UserStatus};

/// The file used when none is configured, so the demo runs without any directory.
pub const EMBEDDED: &str = "\
allowedGroup: hadoop-users
groups:
  hadoop-users: [alice, bob]
  svc-etl: [alice]
accounts:
  svc-etl: svc-etl
";

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticUsers {
    allowed_group: String,
    #[serde(default)]
    groups: BTreeMap<String, BTreeSet<String>>,
    #[serde(default)]
    accounts: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("cannot read the users file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("users file {path} is not valid: {detail}")]
    Parse { path: String, detail: String },
}

impl StaticUsers {
    pub fn parse(text: &str, origin: &str) -> Result<StaticUsers, StaticError> {
        let parsed: StaticUsers =
            serde_yaml_ng::from_str(text).map_err(|e| StaticError::Parse {
                path: origin.to_owned(),
                detail: e.to_string(),
            })?;
        if !parsed.groups.contains_key(&parsed.allowed_group) {
            return Err(StaticError::Parse {
                path: origin.to_owned(),
                detail: format!(
                    "allowedGroup {:?} is not among groups",
                    parsed.allowed_group
                ),
            });
        }
        for (account, group) in &parsed.accounts {
            if !parsed.groups.contains_key(group) {
                return Err(StaticError::Parse {
                    path: origin.to_owned(),
                    detail: format!(
                        "account {account:?} names group {group:?}, which is not among groups"
                    ),
                });
            }
        }
        Ok(parsed)
    }

    pub fn load(path: &Path) -> Result<StaticUsers, StaticError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| StaticError::Read {
            path: shown.clone(),
            source,
        })?;
        StaticUsers::parse(&text, &shown)
    }

    pub fn embedded() -> StaticUsers {
        StaticUsers::parse(EMBEDDED, "embedded default").unwrap_or_else(|e| {
            unreachable!("the embedded users file is checked by a unit test: {e}")
        })
    }

    fn member(&self, group: &str, user: &str) -> bool {
        self.groups.get(group).is_some_and(|m| m.contains(user))
    }

    /// Names are matched exactly, so the canonical name is the one asked for, as written here.
    fn status(&self, user: &str) -> UserStatus {
        if self.member(&self.allowed_group, user) {
            UserStatus::Allowed {
                name: user.to_owned(),
            }
        } else if self.groups.values().any(|m| m.contains(user)) || self.accounts.contains_key(user)
        {
            UserStatus::NotAllowed
        } else {
            UserStatus::Unknown
        }
    }

    fn run_as_status(&self, user: &str, account: &str) -> RunAsStatus {
        match self.accounts.get_key_value(account) {
            None => RunAsStatus::NoSuchAccount,
            Some((name, group)) if self.member(group, user) => RunAsStatus::Allowed {
                account: name.clone(),
            },
            Some(_) => RunAsStatus::NotMember,
        }
    }
}

impl Directory for StaticUsers {
    fn describe(&self) -> String {
        "static users file".into()
    }

    fn user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<UserStatus, DirectoryError>> {
        Box::pin(async move { Ok(self.status(user)) })
    }

    fn run_as<'a>(
        &'a self,
        user: &'a str,
        account: &'a str,
    ) -> BoxFuture<'a, Result<RunAsStatus, DirectoryError>> {
        Box::pin(async move { Ok(self.run_as_status(user, account)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_parses_and_knows_the_demo_users() {
        let users = StaticUsers::embedded();
        assert_eq!(
            users.status("alice"),
            UserStatus::Allowed {
                name: "alice".into()
            }
        );
        assert_eq!(users.status("mallory"), UserStatus::Unknown);
        assert_eq!(
            users.run_as_status("alice", "svc-etl"),
            RunAsStatus::Allowed {
                account: "svc-etl".into()
            }
        );
        // Exact names: another case is another (unknown) name.
        assert_eq!(users.status("ALICE"), UserStatus::Unknown);
        assert_eq!(
            users.run_as_status("alice", "SVC-ETL"),
            RunAsStatus::NoSuchAccount
        );
        assert_eq!(
            users.run_as_status("bob", "svc-etl"),
            RunAsStatus::NotMember
        );
        assert_eq!(
            users.run_as_status("alice", "svc-x"),
            RunAsStatus::NoSuchAccount
        );
    }

    #[test]
    fn members_outside_the_allowed_group_are_known_but_not_allowed() {
        let users = StaticUsers::parse(
            "allowedGroup: h\ngroups:\n  h: [alice]\n  old: [carol]\n",
            "t",
        )
        .expect("parse");
        assert_eq!(users.status("carol"), UserStatus::NotAllowed);
    }

    #[test]
    fn inconsistent_files_are_refused_with_the_reason() {
        let e =
            StaticUsers::parse("allowedGroup: h\ngroups: {}\n", "f.yaml").expect_err("no group");
        assert!(
            e.to_string().contains("f.yaml") && e.to_string().contains("\"h\""),
            "{e}"
        );
        let e = StaticUsers::parse(
            "allowedGroup: h\ngroups: {h: []}\naccounts: {svc: g}\n",
            "f",
        )
        .expect_err("bad account");
        assert!(e.to_string().contains("svc"), "{e}");
        assert!(StaticUsers::parse("allowedGroup: h\ngroups: {h: []}\nextra: 1\n", "f").is_err());
    }
}
