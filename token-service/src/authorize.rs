//! Who a verified pod acts for: the user iddecorator stamped, mapped to a Hadoop name, checked
//! against the directory, possibly switched to a headless account, then checked against the
//! superuser deny-list (after run-as, so no one reaches a superuser through an account).

use std::collections::BTreeSet;

use crate::directory::{Directory, DirectoryError, RunAsStatus, UserStatus};
use crate::error::{ApiError, Kind};
use crate::mapping::{MappingRules, valid_account};
use crate::pod::PodFacts;

/// Who the tokens are issued to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The `kube2hadoop.io/user` annotation as written.
    pub submitter: String,
    /// That user's Hadoop name, as the directory stores it.
    pub requester: String,
    /// The headless account asked for, when allowed, as the directory stores it.
    pub run_as: Option<String>,
    /// What `doas` carries: the run-as account, or the requester.
    pub hadoop_user: String,
}

pub struct Policy {
    pub mapping: MappingRules,
    /// Never issued; compared with the canonical name ignoring ASCII case.
    pub superusers: BTreeSet<String>,
}

impl Policy {
    pub fn is_superuser(&self, name: &str) -> bool {
        self.superusers.iter().any(|s| s.eq_ignore_ascii_case(name))
    }
}

fn forbidden(code: &'static str, message: String) -> ApiError {
    ApiError::new(Kind::Forbidden, code, message)
}

fn directory_down(dir: &dyn Directory, e: DirectoryError) -> ApiError {
    ApiError::new(
        Kind::Unavailable,
        "directory_unavailable",
        format!(
            "cannot check the user in the directory ({}): {e}",
            dir.describe()
        ),
    )
}

/// The directory may match names ignoring case (LDAP does) and answers with the name it stores:
/// a Kubernetes user `ALICE` is not `alice`, so the stored name must be the mapped name itself,
/// or equal it after lowercasing when the mapping lowercases (then case never told users apart).
/// Run-as is different: the stored account is what doas carries, and the deny-list compares
/// ignoring case, so there a case variant only names the same account.
fn check_canonical(
    shown: &str,
    submitter: &str,
    mapped: &str,
    stored: &str,
    mapping: &MappingRules,
) -> Result<(), ApiError> {
    if stored == mapped || (mapping.lowercase && stored.to_ascii_lowercase() == mapped) {
        return Ok(());
    }
    Err(forbidden(
        "user_name_mismatch",
        format!(
            "pod {shown} acts for {submitter:?}, mapped to {mapped:?}, but the directory knows \
             {stored:?}: a name differing in case is a different Kubernetes user; if names in \
             your cluster are case-insensitive, set the mapping's `lowercase: true`"
        ),
    ))
}

pub async fn authorize(
    pod: &PodFacts,
    policy: &Policy,
    dir: &dyn Directory,
) -> Result<Principal, ApiError> {
    let shown = pod.display_name();
    let submitter = pod.user.clone().ok_or_else(|| {
        forbidden(
            "no_user_annotation",
            format!(
                "pod {shown} has no kube2hadoop.io/user annotation: was it created before \
                 iddecorator was installed?"
            ),
        )
    })?;
    // Written by iddecorator from the authenticated name, never with surrounding whitespace:
    // trimming such a value could merge it with another user's.
    if submitter.trim() != submitter || submitter.chars().any(char::is_control) {
        return Err(forbidden(
            "user_annotation_invalid",
            format!(
                "pod {shown}: kube2hadoop.io/user {submitter:?} has surrounding whitespace or \
                 control characters, which iddecorator never writes; recreate the pod from its \
                 workload"
            ),
        ));
    }
    let mapped = policy
        .mapping
        .map(&submitter)
        .map_err(|e| forbidden("user_not_mappable", format!("pod {shown}: {e}")))?;
    let requester = match dir
        .user(&mapped)
        .await
        .map_err(|e| directory_down(dir, e))?
    {
        UserStatus::Allowed { name } => name,
        UserStatus::Unknown => {
            return Err(forbidden(
                "user_unknown",
                format!("pod {shown} acts for {mapped}, who is not in the directory"),
            ));
        }
        UserStatus::NotAllowed => {
            return Err(forbidden(
                "user_not_allowed",
                format!(
                    "pod {shown} acts for {mapped}, who is not in the group allowed to use \
                     Hadoop (inactive, or never granted)"
                ),
            ));
        }
    };
    check_canonical(&shown, &submitter, &mapped, &requester, &policy.mapping)?;
    let run_as = match pod.run_as.as_deref() {
        None => None,
        Some(account) if !valid_account(account) => {
            return Err(forbidden(
                "run_as_invalid",
                format!("pod {shown}: kube2hadoop.io/run-as {account:?} is not an account name"),
            ));
        }
        Some(account) => {
            match dir
                .run_as(&requester, account)
                .await
                .map_err(|e| directory_down(dir, e))?
            {
                RunAsStatus::Allowed { account } => Some(account),
                RunAsStatus::NoSuchAccount => {
                    return Err(forbidden(
                        "run_as_unknown",
                        format!(
                            "pod {shown} asks to run as {account}, which is not a known account"
                        ),
                    ));
                }
                RunAsStatus::NotMember => {
                    return Err(forbidden(
                        "run_as_refused",
                        format!(
                            "pod {shown}: {requester} may not run as {account} (not a member of \
                             its group)"
                        ),
                    ));
                }
            }
        }
    };
    let hadoop_user = run_as.clone().unwrap_or_else(|| requester.clone());
    if policy.is_superuser(&hadoop_user) {
        return Err(forbidden(
            "superuser_denied",
            format!("pod {shown}: tokens for the superuser {hadoop_user} are never issued"),
        ));
    }
    Ok(Principal {
        submitter,
        requester,
        run_as,
        hadoop_user,
    })
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;

    use super::*;
    use crate::directory::static_users::StaticUsers;
    use crate::fixtures::pod;

    fn policy() -> Policy {
        Policy {
            mapping: MappingRules {
                realms: vec!["EXAMPLE.COM".into()],
                ..MappingRules::default()
            },
            superusers: BTreeSet::from(["hdfs".to_owned(), "svc-root".to_owned()]),
        }
    }

    fn users() -> StaticUsers {
        StaticUsers::parse(
            "allowedGroup: hadoop-users\ngroups:\n  hadoop-users: [alice, bob, hdfs]\n  \
             svc-etl: [alice]\n  svc-root: [alice]\n  old: [carol]\naccounts:\n  svc-etl: svc-etl\n  \
             svc-root: svc-root\n",
            "test",
        )
        .expect("users")
    }

    async fn decide(user: Option<&str>, run_as: Option<&str>) -> Result<Principal, ApiError> {
        let mut p = pod("x", "u1", "127.100.0.1");
        p.user = user.map(str::to_owned);
        p.run_as = run_as.map(str::to_owned);
        authorize(&p, &policy(), &users()).await
    }

    #[tokio::test]
    async fn the_annotated_user_is_mapped_and_checked() {
        let p = decide(Some("alice@EXAMPLE.COM"), None)
            .await
            .expect("alice");
        assert_eq!(
            (p.requester.as_str(), p.hadoop_user.as_str()),
            ("alice", "alice")
        );
        assert_eq!(p.submitter, "alice@EXAMPLE.COM");
    }

    #[tokio::test]
    async fn a_pod_without_the_annotation_is_told_why() {
        let e = decide(None, None).await.expect_err("no annotation");
        assert_eq!(e.code, "no_user_annotation");
        assert_eq!(
            e.message,
            "pod team-a/x has no kube2hadoop.io/user annotation: was it created before \
             iddecorator was installed?"
        );
    }

    #[tokio::test]
    async fn unknown_inactive_and_unmappable_users_are_refused() {
        assert_eq!(
            decide(Some("mallory"), None).await.expect_err("x").code,
            "user_unknown"
        );
        assert_eq!(
            decide(Some("carol"), None).await.expect_err("x").code,
            "user_not_allowed"
        );
        assert_eq!(
            decide(Some("system:serviceaccount:a:b"), None)
                .await
                .expect_err("x")
                .code,
            "user_not_mappable"
        );
    }

    #[tokio::test]
    async fn run_as_needs_membership_of_the_account_group() {
        let p = decide(Some("alice"), Some("svc-etl"))
            .await
            .expect("member");
        assert_eq!(
            (p.hadoop_user.as_str(), p.run_as.as_deref()),
            ("svc-etl", Some("svc-etl"))
        );
        assert_eq!(
            decide(Some("bob"), Some("svc-etl"))
                .await
                .expect_err("x")
                .code,
            "run_as_refused"
        );
        assert_eq!(
            decide(Some("alice"), Some("nope"))
                .await
                .expect_err("x")
                .code,
            "run_as_unknown"
        );
        assert_eq!(
            decide(Some("alice"), Some("a b"))
                .await
                .expect_err("x")
                .code,
            "run_as_invalid"
        );
    }

    #[tokio::test]
    async fn the_deny_list_applies_after_run_as() {
        assert_eq!(
            decide(Some("hdfs"), None).await.expect_err("x").code,
            "superuser_denied"
        );
        let e = decide(Some("alice"), Some("svc-root"))
            .await
            .expect_err("via account");
        assert_eq!(e.code, "superuser_denied");
    }

    #[tokio::test]
    async fn annotations_with_whitespace_and_unlisted_realms_are_refused() {
        for spaced in ["alice ", " alice", "alice\n", "al\u{7}ice"] {
            let e = decide(Some(spaced), None).await.expect_err(spaced);
            assert_eq!(e.code, "user_annotation_invalid", "{spaced:?}");
        }
        let e = decide(Some("alice@OTHER.REALM"), None)
            .await
            .expect_err("unlisted realm");
        assert_eq!(e.code, "user_not_mappable");
        assert!(e.message.contains("OTHER.REALM"), "{e}");
    }

    /// A directory that matches names ignoring case, as LDAP matches `uid`, and answers with
    /// the stored (lowercase) name.
    struct CaseInsensitive(StaticUsers);
    impl Directory for CaseInsensitive {
        fn describe(&self) -> String {
            "case-insensitive".into()
        }
        fn user<'a>(&'a self, u: &'a str) -> BoxFuture<'a, Result<UserStatus, DirectoryError>> {
            Box::pin(async move { self.0.user(&u.to_ascii_lowercase()).await })
        }
        fn run_as<'a>(
            &'a self,
            u: &'a str,
            a: &'a str,
        ) -> BoxFuture<'a, Result<RunAsStatus, DirectoryError>> {
            Box::pin(async move { self.0.run_as(u, &a.to_ascii_lowercase()).await })
        }
    }

    #[tokio::test]
    async fn the_deny_list_and_doas_see_the_canonical_name_in_any_case() {
        let dir = CaseInsensitive(users());
        let ask = |user: &str, run_as: Option<&str>| {
            let mut p = pod("x", "u1", "127.100.0.1");
            p.user = Some(user.to_owned());
            p.run_as = run_as.map(str::to_owned);
            p
        };
        for variant in ["SVC-ROOT", "Svc-Root", "svc-root"] {
            let e = authorize(&ask("alice", Some(variant)), &policy(), &dir)
                .await
                .expect_err(variant);
            assert_eq!(e.code, "superuser_denied", "{variant}");
        }
        let e = authorize(&ask("HDFS", None), &policy(), &dir)
            .await
            .expect_err("HDFS");
        assert_eq!(e.code, "user_name_mismatch");
        let mut lowering = policy();
        lowering.mapping.lowercase = true;
        let e = authorize(&ask("HDFS", None), &lowering, &dir)
            .await
            .expect_err("HDFS, lowercased");
        assert_eq!(e.code, "superuser_denied");
        // The deny-list itself may be written in any case.
        let mut shouting = policy();
        shouting.superusers = BTreeSet::from(["SVC-ROOT".to_owned()]);
        let e = authorize(&ask("alice", Some("svc-root")), &shouting, &dir)
            .await
            .expect_err("listed in capitals");
        assert_eq!(e.code, "superuser_denied");
        let p = authorize(&ask("alice", Some("SVC-ETL")), &policy(), &dir)
            .await
            .expect("member");
        assert_eq!(
            (p.run_as.as_deref(), p.hadoop_user.as_str()),
            (Some("svc-etl"), "svc-etl"),
            "doas carries the stored name"
        );
    }

    #[tokio::test]
    async fn a_case_variant_of_a_user_is_not_that_user() {
        let dir = CaseInsensitive(users());
        let ask = |user: &str| {
            let mut p = pod("x", "u1", "127.100.0.1");
            p.user = Some(user.to_owned());
            p
        };
        for variant in ["ALICE", "Alice", "ALICE@EXAMPLE.COM"] {
            let e = authorize(&ask(variant), &policy(), &dir)
                .await
                .expect_err(variant);
            assert_eq!(e.code, "user_name_mismatch", "{variant}");
            assert!(
                e.message.contains(&format!("{variant:?}")) && e.message.contains("\"alice\""),
                "{e}"
            );
        }
        let p = authorize(&ask("alice"), &policy(), &dir)
            .await
            .expect("alice");
        assert_eq!(p.requester, "alice");
        // A mapping that lowercases declares case meaningless: ALICE is alice.
        let mut lowering = policy();
        lowering.mapping.lowercase = true;
        let p = authorize(&ask("ALICE"), &lowering, &dir)
            .await
            .expect("lowercased");
        assert_eq!(p.hadoop_user, "alice");
    }

    struct Down;
    impl Directory for Down {
        fn describe(&self) -> String {
            "LDAP ldap://down".into()
        }
        fn user<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<UserStatus, DirectoryError>> {
            Box::pin(async {
                Err(DirectoryError::Unavailable {
                    url: "ldap://down".into(),
                    detail: "connection refused".into(),
                })
            })
        }
        fn run_as<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<RunAsStatus, DirectoryError>> {
            Box::pin(async {
                Ok(RunAsStatus::Allowed {
                    account: "x".into(),
                })
            })
        }
    }

    #[tokio::test]
    async fn a_directory_outage_fails_closed_with_the_reason() {
        let e = authorize(&pod("x", "u1", "127.100.0.1"), &policy(), &Down)
            .await
            .expect_err("down");
        assert_eq!(
            (e.status().as_u16(), e.code),
            (503, "directory_unavailable")
        );
        assert!(e.message.contains("connection refused"), "{e}");
    }
}
