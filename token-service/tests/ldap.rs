//! The LDAP directory against Debian's slapd with the e2e tree (`e2e/scripts/ldap-up.sh`
//! starts it, or reuses the running one, and leaves it running).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use token_service::directory::ldap::{
    DEFAULT_GROUP_FILTER, DEFAULT_NAME_ATTRIBUTE, DEFAULT_RUN_AS_FILTER, DEFAULT_USER_FILTER, Ldap,
    LdapConfig,
};
use token_service::directory::pool::DEFAULT_POOL_SIZE;
use token_service::directory::{Directory, DirectoryError, Failures, RunAsStatus, UserStatus};
use token_service::metrics::DirectoryMetrics;
use zeroize::Zeroizing;

fn bed() -> HashMap<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/scripts/ldap-up.sh");
    let out = std::process::Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed (it needs slapd and ldap-utils: e2e/scripts/install-deps.sh):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let env_file = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::read_to_string(&env_file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", env_file.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn config(env: &HashMap<String, String>, password: &str) -> LdapConfig {
    LdapConfig {
        url: env["K2H_LDAP_URL"].clone(),
        bind_dn: env["K2H_LDAP_BIND_DN"].clone(),
        bind_password: Zeroizing::new(password.to_owned()),
        user_base: format!("ou=people,{}", env["K2H_LDAP_BASE_DN"]),
        group_base: format!("ou=groups,{}", env["K2H_LDAP_BASE_DN"]),
        user_filter: DEFAULT_USER_FILTER.into(),
        name_attribute: DEFAULT_NAME_ATTRIBUTE.into(),
        group_filter: DEFAULT_GROUP_FILTER.into(),
        allowed_group: "hadoop-users".into(),
        run_as_filter: DEFAULT_RUN_AS_FILTER.into(),
        starttls: false,
        ca_file: None,
        timeout: Duration::from_secs(5),
        pool_size: DEFAULT_POOL_SIZE,
    }
}

fn password(env: &HashMap<String, String>) -> String {
    let path = &env["K2H_LDAP_BIND_PASSWORD_FILE"];
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn users_groups_and_headless_accounts_come_from_slapd() {
    let env = bed();
    let ldap = Ldap::new(config(&env, &password(&env))).expect("ldap");
    let allowed = |name: &str| UserStatus::Allowed { name: name.into() };
    assert_eq!(ldap.user("alice").await.expect("alice"), allowed("alice"));
    assert_eq!(ldap.user("bob").await.expect("bob"), allowed("bob"));
    assert_eq!(
        ldap.user("carol").await.expect("carol"),
        UserStatus::NotAllowed
    );
    assert_eq!(
        ldap.user("mallory").await.expect("mallory"),
        UserStatus::Unknown
    );
    assert_eq!(
        ldap.user("*").await.expect("star"),
        UserStatus::Unknown,
        "escaped"
    );
    assert_eq!(
        ldap.run_as("alice", "svc-etl").await.expect("alice"),
        RunAsStatus::Allowed {
            account: "svc-etl".into()
        }
    );
    assert_eq!(
        ldap.run_as("bob", "svc-etl").await.expect("bob"),
        RunAsStatus::NotMember
    );
    assert_eq!(
        ldap.run_as("alice", "svc-none").await.expect("none"),
        RunAsStatus::NoSuchAccount
    );
}

/// slapd matches `uid` ignoring case: the answer carries the name as stored, so `doas` and the
/// superuser deny-list never see `SVC-ETL` for `svc-etl`.
#[tokio::test]
async fn names_in_another_case_come_back_as_stored() {
    let env = bed();
    let ldap = Ldap::new(config(&env, &password(&env))).expect("ldap");
    assert_eq!(
        ldap.user("ALICE").await.expect("ALICE"),
        UserStatus::Allowed {
            name: "alice".into()
        }
    );
    assert_eq!(
        ldap.run_as("alice", "SVC-ETL").await.expect("SVC-ETL"),
        RunAsStatus::Allowed {
            account: "svc-etl".into()
        }
    );
}

#[tokio::test]
async fn a_wrong_bind_password_is_a_bind_error() {
    let env = bed();
    let ldap = Ldap::new(config(&env, "wrong")).expect("ldap");
    let e = ldap.user("alice").await.expect_err("bad password");
    assert!(matches!(e, DirectoryError::Bind { .. }), "{e}");
    assert!(!e.to_string().contains("wrong"), "{e}");
}

/// Many concurrent checks ride a few connections (ldap3 multiplexes operations on each); the
/// times printed compare one connection with the default pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_share_a_few_connections() {
    let env = bed();
    for size in [1, DEFAULT_POOL_SIZE] {
        let metrics = DirectoryMetrics::default();
        let mut cfg = config(&env, &password(&env));
        cfg.pool_size = size;
        let ldap = Ldap::observed(cfg, Failures::default(), metrics.clone()).expect("ldap");
        let started = std::time::Instant::now();
        let checks = futures::future::join_all((0..400).map(|_| ldap.user("alice"))).await;
        let elapsed = started.elapsed();
        for check in checks {
            assert_eq!(
                check.expect("alice"),
                UserStatus::Allowed {
                    name: "alice".into()
                }
            );
        }
        assert_eq!(metrics.connections_opened.get(), size as u64);
        eprintln!("pool of {size}: 400 concurrent user checks (800 searches) in {elapsed:?}");
    }
}
