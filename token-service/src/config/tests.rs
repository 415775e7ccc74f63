use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use zeroize::Zeroizing;

use super::*;
use crate::identity::TokenOrigin;
use crate::ratelimit::Limit;
use crate::server::Modes;

fn cli(args: &[&str]) -> Cli {
    let mut all = vec!["token-service", "--stamp-key-file", "s"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).expect("flags parse")
}

fn file(yaml: &str) -> FileConfig {
    serde_yaml_ng::from_str(yaml).expect("yaml")
}

/// Validation alone, with nothing read from disk: every named file counts as readable.
fn resolve(cli: Cli, file: FileConfig) -> Result<Settings, ConfigErrors> {
    Settings::resolve(cli, file, HostFacts::default())
}

const SERVICES: &str = "nameservices:\n  - name: ns1\n    namenodes:\n      - {http: \"http://127.0.0.1:9870\", rpc: \"127.0.0.1:8020\"}\n";

const TLS: [&str; 4] = ["--tls-cert-file", "c", "--tls-key-file", "k"];

#[test]
fn a_minimal_configuration_takes_the_defaults() {
    let s = resolve(cli(&TLS), file(SERVICES)).expect("valid");
    assert_eq!(s.listen, "0.0.0.0:8443".parse().expect("addr"));
    // The address mode is opt-in: addresses can be spoofed and reused.
    assert_eq!(
        s.modes,
        Modes {
            sa_token: true,
            ip: false,
            sa_token_origin: TokenOrigin::Pod,
        }
    );
    assert!(matches!(s.directory, DirectorySettings::Static(None)));
    assert!(s.superusers.contains("hdfs"));
    assert_eq!(s.nameservices[0].renewer, "kube2hadoop");
    assert_eq!(
        s.pod_limit,
        Limit {
            per_minute: 30,
            burst: 5
        }
    );
}

#[test]
fn flags_win_over_the_file() {
    let s = resolve(
        cli(&[
            "--tls-cert-file", "c", "--tls-key-file", "k", "--listen", "127.0.0.1:9443",
            "--identity-modes", "sa-token", "--superusers", "hdfs,svc-root",
            "--sa-token-origin", "any",
        ]),
        file(&format!(
            "{SERVICES}listen: 0.0.0.0:1\nidentityModes: [ip]\nsaTokenOrigin: pod\nrenewer: k2h\nuserMapping:\n  lowercase: true\n"
        )),
    )
    .expect("valid");
    assert_eq!(s.listen.port(), 9443);
    assert_eq!(
        s.modes,
        Modes {
            sa_token: true,
            ip: false,
            sa_token_origin: TokenOrigin::Any,
        }
    );
    assert_eq!(
        s.superusers,
        ["hdfs", "k2h", "svc-root"].map(String::from).into(),
        "the listed ones, and the service's own name whatever the list says"
    );
    assert_eq!(s.nameservices[0].renewer, "k2h");
    assert!(s.mapping.lowercase);
}

#[test]
fn every_bad_value_is_reported_at_once() {
    let Err(e) = resolve(
        cli(&[
            "--listen",
            "nowhere",
            "--identity-modes",
            "magic",
            "--sa-token-origin",
            "anywhere",
            "--pod-rate",
            "lots",
            "--principal",
            "kube2hadoop/h@R",
            "--ldap-url",
            "http://x",
        ]),
        FileConfig::default(),
    ) else {
        panic!("invalid configuration accepted");
    };
    let text = e.to_string();
    for needle in [
        "--listen \"nowhere\"",
        "--tls-cert-file",
        "--tls-key-file",
        "\"magic\"",
        "--sa-token-origin \"anywhere\"",
        "--pod-rate \"lots\"",
        "--principal and --keytab",
        "no Hadoop service",
        "--ldap-bind-dn",
        "--ldap-bind-password-file",
        "--ldap-base-dn",
        "ldap:// or ldaps://",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // One line per problem, each a variant naming its flag.
    assert_eq!(text.lines().count(), e.0.len() + 1, "{text}");
    let missing: Vec<_> =
        e.0.iter()
            .filter_map(|e| match e {
                ConfigError::Missing { flag, .. } => Some(*flag),
                _ => None,
            })
            .collect();
    assert_eq!(
        missing,
        [
            "ldap-bind-dn",
            "ldap-bind-password-file",
            "ldap-base-dn",
            "tls-cert-file",
            "tls-key-file"
        ]
    );
    assert!(
        e.0.iter()
            .any(|e| matches!(e, ConfigError::Listen { value, .. } if value == "nowhere"))
    );
    assert!(
        e.0.iter()
            .any(|e| matches!(e, ConfigError::UnknownIdentityMode { value } if value == "magic"))
    );
    assert!(e.0.iter().any(
        |e| matches!(e, ConfigError::NotANumber { flag: "pod-rate", value } if value == "lots")
    ));
    assert!(e.0.iter().any(|e| matches!(e, ConfigError::HalfKerberos)));
    assert!(
        e.0.iter()
            .any(|e| matches!(e, ConfigError::NoHadoopService))
    );
    assert!(
        e.0.iter()
            .any(|e| matches!(e, ConfigError::LdapScheme { url } if url == "http://x"))
    );
}

const PASSWORD_FILE: &str = "/run/secrets/ldap-password";

fn ldap_cli(password_file: &str) -> Cli {
    cli(&[
        "--tls-cert-file",
        "c",
        "--tls-key-file",
        "k",
        "--ldap-url",
        "ldap://127.0.0.1:3890",
        "--ldap-bind-dn",
        "cn=admin,dc=k2h",
        "--ldap-bind-password-file",
        password_file,
        "--ldap-base-dn",
        "dc=k2h",
    ])
}

/// Settings with LDAP whose bind password file holds `password_file_text`, read from disk.
fn with_ldap_password(password_file_text: &str) -> Result<Settings, ConfigErrors> {
    let dir = tempfile::tempdir().expect("tmp");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, password_file_text).expect("write");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, SERVICES).expect("write");
    let mut cli = ldap_cli(pw.to_str().expect("utf8"));
    cli.config = Some(config);
    Settings::load(cli)
}

/// The same, validation only: the password file's first line as the edge would have read it.
fn with_ldap_password_read_as(line: Result<&str, &str>) -> Result<Settings, ConfigErrors> {
    let mut host = HostFacts::default();
    host.first_lines.insert(
        PASSWORD_FILE.into(),
        line.map(|l| Zeroizing::new(l.to_owned()))
            .map_err(str::to_owned),
    );
    Settings::resolve(ldap_cli(PASSWORD_FILE), file(SERVICES), host)
}

#[test]
fn ldap_settings_read_the_password_file_and_hide_it() {
    let s = with_ldap_password("s3cret\n").expect("valid");
    let DirectorySettings::Ldap { ldap, .. } = s.directory else {
        panic!("expected LDAP");
    };
    assert_eq!(ldap.bind_password.as_str(), "s3cret");
    assert_eq!(ldap.group_base, "dc=k2h");
    assert!(!format!("{ldap:?}").contains("s3cret"));
    let s = with_ldap_password_read_as(Ok("s3cret")).expect("valid");
    let DirectorySettings::Ldap { ldap, .. } = s.directory else {
        panic!("expected LDAP");
    };
    assert_eq!(ldap.bind_password.as_str(), "s3cret");
}

/// LDAP settings from `ldap_cli` plus `args`, the password as read at startup.
fn ldap_with(args: &[&str], yaml: &str) -> Result<Settings, ConfigErrors> {
    let mut host = HostFacts::default();
    host.first_lines
        .insert(PASSWORD_FILE.into(), Ok(Zeroizing::new("pw".into())));
    let mut cli = ldap_cli(PASSWORD_FILE);
    let extra = Cli::try_parse_from(std::iter::once("token-service").chain(args.iter().copied()))
        .expect("flags parse");
    cli.ldap_pool_size = extra.ldap_pool_size;
    cli.ldap_cache_ttl = extra.ldap_cache_ttl;
    cli.ldap_cache_max_entries = extra.ldap_cache_max_entries;
    Settings::resolve(cli, file(&format!("{SERVICES}{yaml}")), host)
}

fn pool_and_cache(s: Settings) -> (usize, crate::directory::cache::CacheConfig) {
    match s.directory {
        DirectorySettings::Ldap { ldap, cache } => (ldap.pool_size, cache),
        DirectorySettings::Static(_) => panic!("expected LDAP"),
    }
}

#[test]
fn ldap_pool_and_cache_default_and_come_from_flags_or_file() {
    use crate::directory::cache::CacheConfig;
    let defaults = ldap_with(&[], "").expect("valid");
    assert_eq!(
        pool_and_cache(defaults),
        (
            4,
            CacheConfig {
                ttl: Duration::from_secs(30),
                max_entries: 10_000
            }
        )
    );
    let file_keys = "ldap: {poolSize: 2, cacheTtlSeconds: 0, cacheMaxEntries: 50}\n";
    let from_file = ldap_with(&[], file_keys).expect("valid");
    let (size, cache) = pool_and_cache(from_file);
    assert_eq!(
        (size, cache.ttl, cache.max_entries),
        (2, Duration::ZERO, 50)
    );
    assert!(!cache.enabled());
    let flags = [
        "--ldap-pool-size",
        "8",
        "--ldap-cache-ttl",
        "1m",
        "--ldap-cache-max-entries",
        "7",
    ];
    let (size, cache) = pool_and_cache(ldap_with(&flags, file_keys).expect("valid"));
    assert_eq!(
        (size, cache.ttl, cache.max_entries),
        (8, Duration::from_secs(60), 7),
        "a flag wins over the file"
    );
    let (_, cache) = pool_and_cache(ldap_with(&["--ldap-cache-ttl", "0"], "").expect("valid"));
    assert!(!cache.enabled(), "0 disables the cache");
}

#[test]
fn bad_ldap_pool_and_cache_values_are_refused_together() {
    let e = ldap_with(
        &[
            "--ldap-pool-size",
            "0",
            "--ldap-cache-ttl",
            "soon",
            "--ldap-cache-max-entries=-1",
        ],
        "",
    )
    .err()
    .expect("refused");
    assert!(
        e.0.iter()
            .any(|e| matches!(e, ConfigError::LdapPoolSize { value: 0 })),
        "{e}"
    );
    assert!(
        e.0.iter().any(
            |e| matches!(e, ConfigError::NotADuration { flag, .. } if *flag == "ldap-cache-ttl")
        ),
        "{e}"
    );
    assert!(
        e.0.iter().any(
            |e| matches!(e, ConfigError::NotANumber { flag, .. } if *flag == "ldap-cache-max-entries")
        ),
        "{e}"
    );
}

#[test]
fn an_ldap_cache_ttl_over_five_minutes_is_refused() {
    let e = ldap_with(&["--ldap-cache-ttl", "6m"], "")
        .err()
        .expect("refused");
    assert!(
        e.0.iter()
            .any(|e| matches!(e, ConfigError::LdapCacheTtl { .. })),
        "{e}"
    );
}

#[test]
fn an_empty_ldap_password_is_refused() {
    let e = with_ldap_password("\n")
        .err()
        .expect("an empty password must be refused");
    assert!(e.to_string().contains("bind anonymously"), "{e}");
    let e = with_ldap_password_read_as(Ok(""))
        .err()
        .expect("an empty password must be refused");
    assert!(
        matches!(&e.0[..], [ConfigError::EmptyLdapPassword { path }] if path == Path::new(PASSWORD_FILE)),
        "{e}"
    );
}

#[test]
fn an_unreadable_or_unread_password_file_is_refused_and_named() {
    let unreadable = with_ldap_password_read_as(Err("Permission denied (os error 13)"));
    // Facts built without the file: refused as if it could not be read.
    let unread = Settings::resolve(
        ldap_cli(PASSWORD_FILE),
        file(SERVICES),
        HostFacts::default(),
    );
    for result in [unreadable, unread] {
        let e = result.err().expect("no password");
        assert!(
            matches!(&e.0[..], [ConfigError::Unreadable { flag: "ldap-bind-password-file", path, .. }]
                if path == Path::new(PASSWORD_FILE)),
            "{e}"
        );
    }
}

/// The edge opens every file the settings name, so validation can report each one that is
/// missing, with its flag, in one go.
#[test]
fn every_unreadable_file_is_named_with_its_flag() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, SERVICES).expect("write");
    let missing = |name: &str| dir.path().join(name).display().to_string();
    let mut ldap = cli(&[
        "--tls-cert-file",
        "c",
        "--tls-key-file",
        "k",
        "--principal",
        "kube2hadoop/h@R",
        "--keytab",
        &missing("keytab"),
        "--krb5-conf",
        &missing("krb5.conf"),
        "--ldap-url",
        "ldaps://ldap",
        "--ldap-bind-dn",
        "cn=a",
        "--ldap-base-dn",
        "dc=k2h",
        "--ldap-bind-password-file",
        &missing("pw"),
        "--ldap-ca-file",
        &missing("ca.crt"),
        // Not used with LDAP, so not reported.
        "--users-file",
        &missing("users.yaml"),
    ]);
    ldap.config = Some(config.clone());
    let e = Settings::load(ldap).err().expect("missing files");
    let mut flags: Vec<_> =
        e.0.iter()
            .map(|e| match e {
                ConfigError::Unreadable { flag, path, .. } => {
                    assert!(path.starts_with(dir.path()), "{e}");
                    *flag
                }
                other => panic!("unexpected: {other}"),
            })
            .collect();
    flags.sort_unstable();
    assert_eq!(
        flags,
        [
            "keytab",
            "krb5-conf",
            "ldap-bind-password-file",
            "ldap-ca-file"
        ]
    );
    let mut users = cli(&[
        "--tls-cert-file",
        "c",
        "--tls-key-file",
        "k",
        "--users-file",
        &missing("users.yaml"),
    ]);
    users.config = Some(config);
    let e = Settings::load(users).err().expect("missing users file");
    assert!(
        matches!(
            &e.0[..],
            [ConfigError::Unreadable {
                flag: "users-file",
                ..
            }]
        ),
        "{e}"
    );
}

/// What the edge found is reported only where the setting is used: a keytab without a
/// principal is a pairing problem, not a missing file.
#[test]
fn unreadable_facts_count_only_where_used() {
    let mut host = HostFacts::default();
    host.unreadable
        .insert("kt".into(), "No such file or directory".into());
    let e = Settings::resolve(
        cli(&[
            "--tls-cert-file",
            "c",
            "--tls-key-file",
            "k",
            "--keytab",
            "kt",
        ]),
        file(SERVICES),
        host,
    )
    .err()
    .expect("keytab alone");
    assert!(matches!(&e.0[..], [ConfigError::HalfKerberos]), "{e}");
    let mut host = HostFacts::default();
    host.unreadable
        .insert("kt".into(), "No such file or directory".into());
    let e = Settings::resolve(
        cli(&[
            "--tls-cert-file",
            "c",
            "--tls-key-file",
            "k",
            "--keytab",
            "kt",
            "--principal",
            "p@R",
        ]),
        file(SERVICES),
        host,
    )
    .err()
    .expect("unreadable keytab");
    assert_eq!(
        e.to_string(),
        "invalid configuration:\n  - --keytab kt: cannot read it: No such file or directory"
    );
}

#[test]
fn the_config_file_must_be_readable_and_valid() {
    let dir = tempfile::tempdir().expect("tmp");
    let with_config = |path: &Path| {
        let mut c = cli(&TLS);
        c.config = Some(path.to_owned());
        Settings::load(c).err().expect("bad config file")
    };
    let e = with_config(&dir.path().join("absent.yaml"));
    assert!(
        matches!(&e.0[..], [ConfigError::ConfigFileUnreadable { .. }]),
        "{e}"
    );
    assert!(e.to_string().contains("cannot read --config"), "{e}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "lisen: x\n").expect("write");
    let e = with_config(&bad);
    assert!(
        matches!(&e.0[..], [ConfigError::ConfigFileInvalid { .. }]),
        "{e}"
    );
    assert!(e.to_string().contains("lisen"), "{e}");
}

#[test]
fn the_example_file_is_valid() {
    let text = include_str!("../../config.example.yaml");
    let file: FileConfig = serde_yaml_ng::from_str(text).expect("example parses");
    assert_eq!(file.nameservices[0].namenodes.len(), 2);
    assert_eq!(file.kms.len(), 1);
    assert_eq!(file.yarn[0].resource_managers.len(), 2);
    assert!(file.ldap.is_some() && file.user_mapping.is_some());
    assert_eq!(file.stamped_kinds.len(), 2);
    let kinds: Result<Vec<_>, _> = file.stamped_kinds.iter().map(KindSpec::parse).collect();
    assert_eq!(
        kinds.expect("kinds")[1],
        ("ray.io".into(), "RayCluster".into())
    );
}

#[test]
fn ledger_settings_default_and_a_deadline_past_the_lease_is_refused() {
    let s = resolve(cli(&TLS), file(SERVICES)).expect("valid");
    assert_eq!(s.ledger.namespace, "kube2hadoop");
    assert_eq!(s.ledger.period, Duration::from_secs(30));
    assert!(s.ledger.lease_renew_deadline < s.ledger.lease_duration);
    let Err(e) = resolve(
        cli(&[
            "--tls-cert-file",
            "c",
            "--tls-key-file",
            "k",
            "--lease-duration",
            "5",
            "--lease-renew-deadline",
            "5",
        ]),
        file(SERVICES),
    ) else {
        panic!("deadline equal to the lease accepted");
    };
    assert!(e.to_string().contains("--lease-renew-deadline"), "{e}");
    assert!(
        matches!(&e.0[..], [ConfigError::RenewDeadline { .. }]),
        "{e}"
    );
    let Err(e) = resolve(
        cli(&[&TLS[..], &["--ledger-period", "500ms"]].concat()),
        file(SERVICES),
    ) else {
        panic!("a period under a second accepted");
    };
    assert!(
        matches!(&e.0[..], [ConfigError::LedgerPeriod { .. }]),
        "{e}"
    );
}

#[test]
fn the_replica_id_is_the_flag_else_what_the_host_gave() {
    let host = HostFacts {
        default_replica_id: "pod-a-7".into(),
        ..HostFacts::default()
    };
    let s = Settings::resolve(cli(&TLS), file(SERVICES), host).expect("valid");
    assert_eq!(s.ledger.replica_id, "pod-a-7");
    let s = resolve(
        cli(&[&TLS[..], &["--replica-id", "r1"]].concat()),
        file(SERVICES),
    )
    .expect("valid");
    assert_eq!(s.ledger.replica_id, "r1");
}

/// Durations take the shared syntax on flags (bare numbers stay seconds) and whole seconds
/// in the file; every bad one is reported at once.
#[test]
fn durations_take_suffixes_and_bare_seconds_and_report_every_bad_one() {
    let with = |extra: &[&str]| {
        let mut args = TLS.to_vec();
        args.extend_from_slice(extra);
        resolve(cli(&args), file(SERVICES))
    };
    let s = with(&[
        "--hadoop-timeout",
        "1m30s",
        "--kube-timeout",
        "7",
        "--ldap-timeout",
        "1500ms",
        "--ledger-period",
        "2m",
    ])
    .expect("valid");
    assert_eq!(s.hadoop_timeout, Duration::from_secs(90));
    assert_eq!(s.kube_timeout, Duration::from_secs(7));
    assert_eq!(s.ledger.period, Duration::from_secs(120));
    let s = resolve(
        cli(&TLS),
        file(&format!("{SERVICES}hadoopTimeoutSeconds: 12\n")),
    )
    .expect("file seconds");
    assert_eq!(s.hadoop_timeout, Duration::from_secs(12));
    let Err(e) = with(&[
        "--hadoop-timeout",
        "30 s",
        "--ledger-period",
        "5x",
        "--lease-duration",
        "1500ms",
    ]) else {
        panic!("bad durations accepted");
    };
    let text = e.to_string();
    for want in [
        "--hadoop-timeout: \"30 s\" is not a duration",
        "--ledger-period: \"5x\" is not a duration",
        "--lease-duration must be a whole number of seconds",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let flags: Vec<_> =
        e.0.iter()
            .filter_map(|e| match e {
                ConfigError::NotADuration { flag, .. } | ConfigError::LeaseSeconds { flag, .. } => {
                    Some(*flag)
                }
                _ => None,
            })
            .collect();
    assert_eq!(flags, ["hadoop-timeout", "ledger-period", "lease-duration"]);
}

#[test]
fn stamped_kinds_and_the_webhook_name_are_read_from_the_file() {
    let s = resolve(cli(&TLS), file(SERVICES)).expect("valid");
    assert_eq!(s.webhook_configuration, "kube2hadoop-iddecorator");
    assert_eq!(s.mutating_webhook, "mutate.iddecorator.kube2hadoop.io");
    assert!(s.stamped.contains("apps/v1", "Deployment"));
    assert!(!s.stamped.contains("ray.io/v1", "RayJob"));
    let s = resolve(
        cli(&TLS),
        file(&format!(
            "{SERVICES}webhookConfiguration: mine\nstampedKinds:\n- ray.io/RayJob\n\
             - {{group: ray.io, kind: RayCluster, templatePaths: [spec.x]}}\n- Widget\n"
        )),
    )
    .expect("valid");
    assert_eq!(s.webhook_configuration, "mine");
    assert!(s.stamped.contains("ray.io/v1", "RayJob"));
    assert!(s.stamped.contains("ray.io/v1alpha1", "RayCluster"));
    assert!(s.stamped.contains("v1", "Widget"));
    let Err(e) = resolve(
        cli(&TLS),
        file(&format!(
            "{SERVICES}stampedKinds: [\"ray.io/\", \"a b/C\"]\n"
        )),
    ) else {
        panic!("bad kinds accepted");
    };
    assert_eq!(e.0.len(), 2, "{e}");
    assert!(
        e.0.iter()
            .all(|e| matches!(e, ConfigError::StampedKind { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("\"a b/C\""), "{e}");
}

#[test]
fn unknown_file_keys_are_refused() {
    assert!(serde_yaml_ng::from_str::<FileConfig>("lisen: x\n").is_err());
}

#[test]
fn every_flag_has_help() {
    let undocumented = k2h_contract::cli::undocumented(&Cli::command());
    assert!(
        undocumented.is_empty(),
        "flags without help: {undocumented:?}"
    );
}

/// The defaults the help text states are the ones applied.
#[test]
fn the_help_states_the_defaults_in_force() {
    let help = Cli::command().render_long_help().to_string();
    let help: String = help.split_whitespace().collect();
    use crate::directory::ldap::{
        DEFAULT_GROUP_FILTER, DEFAULT_RUN_AS_FILTER, DEFAULT_USER_FILTER,
    };
    let superusers = super::resolve::DEFAULT_SUPERUSERS.join(",");
    for default in [
        DEFAULT_USER_FILTER,
        DEFAULT_GROUP_FILTER,
        DEFAULT_RUN_AS_FILTER,
        superusers.as_str(),
    ] {
        assert!(help.contains(default), "the help does not state {default}");
    }
}

#[test]
fn the_token_review_cache_defaults_to_10s_and_is_bounded() {
    use crate::review_cache::ReviewCacheConfig;
    let with = |extra: &[&str], yaml: &str| {
        let mut args = TLS.to_vec();
        args.extend_from_slice(extra);
        resolve(cli(&args), file(&format!("{SERVICES}{yaml}")))
    };
    let s = with(&[], "").expect("valid");
    assert_eq!(
        s.review_cache,
        ReviewCacheConfig {
            ttl: Duration::from_secs(10),
            max_entries: 10_000
        }
    );
    let s = with(
        &[],
        "tokenReviewCacheTtlSeconds: 60\ntokenReviewCacheSize: 50\n",
    )
    .expect("file");
    assert_eq!(
        (s.review_cache.ttl, s.review_cache.max_entries),
        (Duration::from_secs(60), 50)
    );
    let s = with(
        &[
            "--token-review-cache-ttl",
            "0",
            "--token-review-cache-size",
            "1",
        ],
        "tokenReviewCacheTtlSeconds: 60\n",
    )
    .expect("flags win");
    assert_eq!(
        (s.review_cache.ttl, s.review_cache.max_entries),
        (Duration::ZERO, 1)
    );
    let Err(e) = with(
        &[
            "--token-review-cache-ttl",
            "61s",
            "--token-review-cache-size",
            "0",
        ],
        "",
    ) else {
        panic!("a TTL over 1m and an empty cache accepted");
    };
    assert!(
        matches!(
            e.0.as_slice(),
            [
                ConfigError::ReviewCacheTtl { .. },
                ConfigError::ReviewCacheSize { value: 0, .. }
            ]
        ),
        "{e}"
    );
    assert!(e.to_string().contains("at most 60s"), "{e}");
    let Err(e) = with(&["--token-review-cache-size", "many"], "") else {
        panic!("not a number accepted");
    };
    assert!(matches!(
        e.0.as_slice(),
        [ConfigError::NotANumber {
            flag: "token-review-cache-size",
            ..
        }]
    ));
}

#[test]
fn a_yarn_cluster_alone_is_a_hadoop_service_and_needs_a_resource_manager() {
    let yarn = "yarn:\n  - name: y1\n    resourceManagers:\n      - {http: \"http://127.0.0.1:8088\", rpc: \"127.0.0.1:8032\"}\n";
    let s = resolve(cli(&TLS), file(yarn)).expect("valid");
    assert_eq!(s.yarn[0].resource_managers[0].rpc, "127.0.0.1:8032");
    assert_eq!(s.yarn[0].renewer, "kube2hadoop");
    let Err(e) = resolve(
        cli(&TLS),
        file("yarn:\n  - name: y1\n    resourceManagers: []\n"),
    ) else {
        panic!("a YARN cluster without RMs was accepted");
    };
    assert!(
        e.to_string()
            .contains("yarn y1: no resourceManagers listed"),
        "{e}"
    );
}

#[test]
fn hive_groups_need_metastores_a_principal_under_kerberos_and_their_own_signature() {
    let one =
        "hive:\n  - name: wh\n    metastores: [\"thrift://hms1:9083\", \"thrift://hms2:9083\"]\n";
    let s = resolve(cli(&TLS), file(one)).expect("valid without Kerberos");
    assert_eq!(s.hive[0].metastores.len(), 2);
    assert_eq!(s.hive[0].token_signature, "", "Hive's and Spark's default");
    assert!(s.services.configured.contains("hive"));

    let kerberos = [
        &TLS[..],
        &["--principal", "kube2hadoop/h@R", "--keytab", "kt"],
    ]
    .concat();
    let Err(e) = resolve(cli(&kerberos), file(one)) else {
        panic!("a Kerberized metastore without its principal was accepted");
    };
    assert!(e.to_string().contains("hive/_HOST@EXAMPLE.COM"), "{e}");
    let with_principal = format!("{one}    principal: hive/_HOST@R\n");
    let s = resolve(cli(&kerberos), file(&with_principal)).expect("principal given");
    assert!(
        s.superusers.contains("kube2hadoop"),
        "the service's own short name is never a user tokens are issued for"
    );

    let two =
        "hive:\n  - {name: a, metastores: [\"thrift://a:9083\"]}\n  - {name: b, metastores: []}\n";
    let Err(e) = resolve(cli(&TLS), file(two)) else {
        panic!("clashing signatures and an empty group were accepted");
    };
    let text = e.to_string();
    assert!(text.contains("hive b: no metastores listed"), "{text}");
    assert!(text.contains("same tokenSignature"), "{text}");
}

#[test]
fn a_hadoop_timeout_must_be_a_real_bound() {
    for bad in ["0s", "2h"] {
        let args = [&TLS[..], &["--hadoop-timeout", bad]].concat();
        let Err(e) = resolve(cli(&args), file(SERVICES)) else {
            panic!("--hadoop-timeout {bad} accepted");
        };
        assert!(e.to_string().contains("between 1 s and 1 h"), "{e}");
    }
    let args = [&TLS[..], &["--hadoop-timeout", "5s"]].concat();
    resolve(cli(&args), file(SERVICES)).expect("5 s is fine");
}

#[test]
fn signing_keys_are_read_every_minute_unless_set_off_or_within_bounds() {
    let with = |extra: &[&str], yaml: &str| {
        let mut args = TLS.to_vec();
        args.extend_from_slice(extra);
        resolve(cli(&args), file(&format!("{SERVICES}{yaml}")))
    };
    let refresh = |r: Result<Settings, _>| r.map(|s: Settings| s.token_keys_refresh);
    assert_eq!(refresh(with(&[], "")).ok(), Some(Duration::from_secs(60)));
    assert_eq!(
        refresh(with(&[], "saTokenKeysRefreshSeconds: 0\n")).ok(),
        Some(Duration::ZERO)
    );
    assert_eq!(
        refresh(with(
            &["--sa-token-keys-refresh", "5m"],
            "saTokenKeysRefreshSeconds: 0\n"
        ))
        .ok(),
        Some(Duration::from_secs(300)),
        "the flag wins"
    );
    for bad in ["5s", "6m"] {
        let Err(e) = with(&["--sa-token-keys-refresh", bad], "") else {
            panic!("--sa-token-keys-refresh {bad} accepted");
        };
        assert!(
            e.to_string().contains("--sa-token-keys-refresh"),
            "{bad}: {e}"
        );
    }
}
