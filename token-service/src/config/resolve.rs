//! Flags, file and what was read from disk → checked `Settings`. Pure: nothing here reads a
//! file or the environment (`host.rs` did), so every rule is unit-testable. Every bad value
//! is collected, not just the first, so one start attempt shows them all.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use k2h_contract::coverage::{MUTATING_WEBHOOK, WEBHOOK_CONFIGURATION};

use crate::hadoop::hive::HiveConfig;
use crate::hadoop::hive::sasl::Protection;
use crate::hadoop::kms::KmsConfig;
use crate::hadoop::spnego::KerberosConfig;
use crate::hadoop::webhdfs::{NameNode, NameServiceConfig};
use crate::hadoop::yarn::{ResourceManager, YarnConfig};
use crate::identity::TokenOrigin;
use crate::issuer::IssuerConfig;
use crate::ratelimit::Limit;
use crate::review_cache::{self, ReviewCacheConfig};
use crate::server::Modes;
use crate::services::ServicesPolicy;
use crate::token_keys;
use crate::workload::StampedKinds;

use super::directory::directory_settings;
use super::error::{ConfigError, ConfigErrors};
use super::file::{FileConfig, FileHive, FileKms, FileNameService, FileYarn};
use super::flags::Cli;
use super::host::{HostFacts, NamedFiles};
use super::settings::{LedgerSettings, Settings};

pub(super) const DEFAULT_SUPERUSERS: &[&str] = &["hdfs", "yarn", "mapred", "hive", "hbase", "root"];

/// The problems found so far. A failed value is replaced by its default so checking goes on.
pub(super) type Errors = Vec<ConfigError>;

impl Settings {
    pub fn resolve(cli: Cli, file: FileConfig, host: HostFacts) -> Result<Settings, ConfigErrors> {
        let mut errors = Errors::new();
        let named = NamedFiles::of(&cli, &file);
        // First, while `cli` is whole: it reads several LDAP flags.
        let ldap_timeout = duration(
            &mut errors,
            "ldap-timeout",
            cli.ldap_timeout.as_ref(),
            file.ldap.as_ref().and_then(|l| l.timeout_seconds),
            Duration::from_secs(5),
        );
        let directory =
            directory_settings(&mut errors, &cli, file.ldap, &named, &host, ldap_timeout);

        let listen_text = cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "0.0.0.0:8443".into());
        let listen = listen_text.parse().unwrap_or_else(|source| {
            errors.push(ConfigError::Listen {
                value: listen_text,
                source,
            });
            SocketAddr::from(([0, 0, 0, 0], 8443))
        });
        let tls_cert_file = required(
            &mut errors,
            "tls-cert-file",
            "TOKEN_SERVICE_TLS_CERT_FILE",
            cli.tls_cert_file.or(file.tls_cert_file),
        );
        let tls_key_file = required(
            &mut errors,
            "tls-key-file",
            "TOKEN_SERVICE_TLS_KEY_FILE",
            cli.tls_key_file.or(file.tls_key_file),
        );
        let stamp_key_file = required(
            &mut errors,
            "stamp-key-file",
            "TOKEN_SERVICE_STAMP_KEY_FILE, or stampKeyFile; iddecorator's stamp key, the \
             kube2hadoop-stamp-key Secret",
            cli.stamp_key_file.or(file.stamp_key_file),
        );
        let modes = parse_modes(
            &mut errors,
            cli.identity_modes
                .map(|m| m.split(',').map(|s| s.trim().to_owned()).collect())
                .or(file.identity_modes),
            cli.sa_token_origin.or(file.sa_token_origin),
        );

        let principal = cli.principal.or(file.kerberos.and_then(|k| k.principal));
        let kerberos = kerberos(&mut errors, principal, &named, &host);
        let renewer = cli
            .renewer
            .or(file.renewer)
            .or_else(|| kerberos.as_ref().map(|k| short_name(&k.principal)))
            .unwrap_or_else(|| "kube2hadoop".into());
        let Providers {
            nameservices,
            kms,
            yarn,
            hive,
        } = hadoop_services(
            &mut errors,
            (file.nameservices, file.kms, file.yarn, file.hive),
            &renewer,
            kerberos.is_some(),
        );

        let superusers = cli
            .superusers
            .map(|s| {
                s.split(',')
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .or(file.superusers.map(|v| v.into_iter().collect()))
            .unwrap_or_else(|| DEFAULT_SUPERUSERS.iter().map(|s| (*s).to_owned()).collect());
        // The service itself, whatever the list says: a server asked for a token of its own
        // caller skips the proxy-user check (the metastore compares short names; a NameNode
        // with doas equal to the caller does the same), so such a token would carry this
        // service's rights.
        let mut superusers: BTreeSet<String> = superusers;
        superusers.insert(renewer.clone());
        if let Some(k) = &kerberos {
            superusers.insert(short_name(&k.principal));
        }

        let services = services_policy(
            &mut errors,
            cli.default_services
                .or(file.default_services.map(|v| v.join(","))),
            [
                ("hdfs", !nameservices.is_empty()),
                ("kms", !kms.is_empty()),
                ("yarn", !yarn.is_empty()),
                ("hive", !hive.is_empty()),
            ],
        );

        let pod_limit = Limit {
            per_minute: number(
                &mut errors,
                "pod-rate",
                cli.pod_rate.as_ref(),
                file.pod_rate,
                30,
            ),
            burst: number(
                &mut errors,
                "pod-burst",
                cli.pod_burst.as_ref(),
                file.pod_burst,
                5,
            ),
        };
        let issuer = IssuerConfig {
            max_concurrent_hadoop: number(
                &mut errors,
                "max-hadoop-calls",
                cli.max_hadoop_calls.as_ref(),
                file.max_hadoop_calls,
                8,
            ),
            ..IssuerConfig::default()
        };
        let hadoop_timeout = duration(
            &mut errors,
            "hadoop-timeout",
            cli.hadoop_timeout.as_ref(),
            file.hadoop_timeout_seconds,
            Duration::from_secs(30),
        );
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&hadoop_timeout) {
            errors.push(ConfigError::TimeoutRange {
                flag: "hadoop-timeout",
                value: hadoop_timeout,
            });
        }
        let kube_timeout = duration(
            &mut errors,
            "kube-timeout",
            cli.kube_timeout.as_ref(),
            file.kube_timeout_seconds,
            Duration::from_secs(10),
        );
        let review_cache = ReviewCacheConfig {
            ttl: duration(
                &mut errors,
                "token-review-cache-ttl",
                cli.token_review_cache_ttl.as_ref(),
                file.token_review_cache_ttl_seconds,
                review_cache::DEFAULT_TTL,
            ),
            max_entries: number(
                &mut errors,
                "token-review-cache-size",
                cli.token_review_cache_size.as_ref(),
                file.token_review_cache_size,
                review_cache::DEFAULT_MAX_ENTRIES,
            ),
        };
        check_review_cache(&mut errors, &review_cache);
        let token_keys_refresh = duration(
            &mut errors,
            "sa-token-keys-refresh",
            cli.sa_token_keys_refresh.as_ref(),
            file.sa_token_keys_refresh_seconds,
            token_keys::DEFAULT_REFRESH,
        );
        if token_keys_refresh > token_keys::MAX_REFRESH
            || (!token_keys_refresh.is_zero() && token_keys_refresh < token_keys::MIN_INTERVAL)
        {
            errors.push(ConfigError::TokenKeysRefresh {
                value: token_keys_refresh,
            });
        }
        let seconds = |errors: &mut Errors, flag, cli: Option<&String>, file, default| {
            duration(errors, flag, cli, file, Duration::from_secs(default))
        };
        let ledger = LedgerSettings {
            namespace: cli
                .ledger_namespace
                .or(file.ledger_namespace)
                .unwrap_or_else(|| "kube2hadoop".into()),
            period: seconds(
                &mut errors,
                "ledger-period",
                cli.ledger_period.as_ref(),
                file.ledger_period_seconds,
                30,
            ),
            lease_duration: seconds(
                &mut errors,
                "lease-duration",
                cli.lease_duration.as_ref(),
                file.lease_duration_seconds,
                15,
            ),
            lease_renew_deadline: seconds(
                &mut errors,
                "lease-renew-deadline",
                cli.lease_renew_deadline.as_ref(),
                file.lease_renew_deadline_seconds,
                10,
            ),
            replica_id: cli.replica_id.unwrap_or(host.default_replica_id),
        };
        check_ledger(&mut errors, &ledger);
        let stamped = StampedKinds::with(
            file.stamped_kinds
                .iter()
                .filter_map(|k| k.parse().map_err(|e| errors.push(e)).ok()),
        );
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Settings {
            listen,
            tls_cert_file: tls_cert_file.unwrap_or_default(),
            tls_key_file: tls_key_file.unwrap_or_default(),
            stamp_key_file: stamp_key_file.unwrap_or_default(),
            kubeconfig: cli.kubeconfig.or(file.kubeconfig),
            kube_context: cli.kube_context.or(file.kube_context),
            modes,
            namespace_selector: cli
                .namespace_selector
                .or(file.namespace_selector)
                .unwrap_or_default(),
            kerberos,
            nameservices,
            kms,
            yarn,
            hive,
            directory,
            mapping: file.user_mapping.unwrap_or_default(),
            superusers,
            services,
            audit_log: cli.audit_log.or(file.audit_log),
            pod_limit,
            issuer,
            hadoop_timeout,
            kube_timeout,
            review_cache,
            token_keys_refresh,
            log_format: cli.log_format,
            log: cli.log,
            ledger,
            stamped,
            webhook_configuration: file
                .webhook_configuration
                .unwrap_or_else(|| WEBHOOK_CONFIGURATION.into()),
            mutating_webhook: file
                .mutating_webhook
                .unwrap_or_else(|| MUTATING_WEBHOOK.into()),
        })
    }
}

/// A number flag, else the file's value, else `default`.
pub(super) fn number<T: std::str::FromStr>(
    errors: &mut Errors,
    flag: &'static str,
    cli: Option<&String>,
    file: Option<T>,
    default: T,
) -> T {
    match cli {
        Some(text) => text.trim().parse().unwrap_or_else(|_| {
            errors.push(ConfigError::NotANumber {
                flag,
                value: text.clone(),
            });
            default
        }),
        None => file.unwrap_or(default),
    }
}

/// A duration flag in the shared syntax (`30s`, `2m`; a bare number is seconds), else the
/// file's whole seconds, else `default`.
pub(super) fn duration(
    errors: &mut Errors,
    flag: &'static str,
    cli: Option<&String>,
    file_seconds: Option<u64>,
    default: Duration,
) -> Duration {
    match cli {
        Some(text) => k2h_contract::duration::parse(text).unwrap_or_else(|source| {
            errors.push(ConfigError::NotADuration { flag, source });
            default
        }),
        None => file_seconds.map_or(default, Duration::from_secs),
    }
}

pub(super) fn required<T>(
    errors: &mut Errors,
    flag: &'static str,
    hint: &'static str,
    value: Option<T>,
) -> Option<T> {
    if value.is_none() {
        errors.push(ConfigError::Missing { flag, hint });
    }
    value
}

/// Reports `path` if it could not be opened at startup.
pub(super) fn check_readable(
    errors: &mut Errors,
    host: &HostFacts,
    flag: &'static str,
    path: &Path,
) {
    if let Some(reason) = host.unreadable.get(path) {
        errors.push(ConfigError::Unreadable {
            flag,
            path: path.to_owned(),
            reason: reason.clone(),
        });
    }
}

fn parse_modes(errors: &mut Errors, modes: Option<Vec<String>>, origin: Option<String>) -> Modes {
    let sa_token_origin = match origin.as_deref().map(str::trim) {
        None | Some("pod") => TokenOrigin::Pod,
        Some("any") => TokenOrigin::Any,
        Some(other) => {
            errors.push(ConfigError::UnknownTokenOrigin {
                value: other.to_owned(),
            });
            TokenOrigin::Pod
        }
    };
    // Addresses are spoofable by a pod that keeps NET_RAW and reusable after a pod goes, so the
    // address mode (Kube2Hadoop-compatible) is opt-in.
    let Some(list) = modes else {
        return Modes {
            sa_token: true,
            ip: false,
            sa_token_origin,
        };
    };
    let mut m = Modes {
        sa_token: false,
        ip: false,
        sa_token_origin,
    };
    for mode in list.into_iter().filter(|s| !s.is_empty()) {
        match mode.as_str() {
            "sa-token" => m.sa_token = true,
            "ip" => m.ip = true,
            _ => errors.push(ConfigError::UnknownIdentityMode { value: mode }),
        }
    }
    if !m.sa_token && !m.ip {
        errors.push(ConfigError::NoIdentityMode);
    }
    m
}

fn kerberos(
    errors: &mut Errors,
    principal: Option<String>,
    named: &NamedFiles,
    host: &HostFacts,
) -> Option<KerberosConfig> {
    match (principal, named.keytab.clone()) {
        (Some(principal), Some(keytab)) => {
            check_readable(errors, host, "keytab", &keytab);
            if let Some(conf) = &named.krb5_conf {
                check_readable(errors, host, "krb5-conf", conf);
            }
            Some(KerberosConfig {
                principal,
                keytab,
                krb5_conf: named.krb5_conf.clone(),
                refresh_margin: Duration::from_secs(300),
            })
        }
        (None, None) => None,
        _ => {
            errors.push(ConfigError::HalfKerberos);
            None
        }
    }
}

/// `kube2hadoop/host@REALM` → `kube2hadoop`, Hadoop's default auth_to_local for the renewer.
fn short_name(principal: &str) -> String {
    principal
        .split(['/', '@'])
        .next()
        .unwrap_or(principal)
        .to_owned()
}

/// The providers of every Hadoop service, as configured.
struct Providers {
    nameservices: Vec<NameServiceConfig>,
    kms: Vec<KmsConfig>,
    yarn: Vec<YarnConfig>,
    hive: Vec<HiveConfig>,
}

fn hadoop_services(
    errors: &mut Errors,
    (nameservices, kms, yarn, hive): (
        Vec<FileNameService>,
        Vec<FileKms>,
        Vec<FileYarn>,
        Vec<FileHive>,
    ),
    renewer: &str,
    kerberos: bool,
) -> Providers {
    let nameservices: Vec<_> = nameservices
        .into_iter()
        .map(|ns| NameServiceConfig {
            name: ns.name,
            namenodes: ns
                .namenodes
                .into_iter()
                .map(|nn| NameNode {
                    http: nn.http,
                    rpc: nn.rpc,
                })
                .collect(),
            renewer: renewer.to_owned(),
            token_service: ns.token_service,
        })
        .collect();
    let kms: Vec<_> = kms
        .into_iter()
        .map(|k| KmsConfig {
            name: k.name,
            urls: k.urls,
            renewer: renewer.to_owned(),
            token_service: k.token_service,
        })
        .collect();
    let yarn: Vec<_> = yarn
        .into_iter()
        .map(|y| YarnConfig {
            name: y.name,
            resource_managers: y
                .resource_managers
                .into_iter()
                .map(|rm| ResourceManager {
                    http: rm.http,
                    rpc: rm.rpc,
                })
                .collect(),
            renewer: renewer.to_owned(),
            token_service: y.token_service,
        })
        .collect();
    let hive = hive_groups(errors, hive, renewer, kerberos);
    if nameservices.is_empty() && kms.is_empty() && yarn.is_empty() && hive.is_empty() {
        errors.push(ConfigError::NoHadoopService);
    }
    for y in &yarn {
        if y.resource_managers.is_empty() {
            errors.push(ConfigError::NoResourceManagers {
                cluster: y.name.clone(),
            });
        }
    }
    for ns in &nameservices {
        if ns.namenodes.is_empty() {
            errors.push(ConfigError::NoNameNodes {
                nameservice: ns.name.clone(),
            });
        }
    }
    Providers {
        nameservices,
        kms,
        yarn,
        hive,
    }
}

fn hive_groups(
    errors: &mut Errors,
    hive: Vec<FileHive>,
    renewer: &str,
    kerberos: bool,
) -> Vec<HiveConfig> {
    let mut signatures: BTreeMap<String, String> = BTreeMap::new();
    for h in &hive {
        if h.metastores.is_empty() {
            errors.push(ConfigError::NoMetastores {
                name: h.name.clone(),
            });
        }
        if kerberos && h.principal.is_none() {
            errors.push(ConfigError::NoMetastorePrincipal {
                name: h.name.clone(),
            });
        }
        if let Some(first) = signatures.insert(h.token_signature.clone(), h.name.clone()) {
            errors.push(ConfigError::SignatureClash {
                first,
                second: h.name.clone(),
                signature: h.token_signature.clone(),
            });
        }
    }
    hive.into_iter()
        .map(|h| {
            let min_protection = match h.min_protection.as_deref() {
                None => Protection::default(),
                Some(value) => Protection::parse(value).unwrap_or_else(|| {
                    errors.push(ConfigError::Protection {
                        name: h.name.clone(),
                        value: value.to_owned(),
                    });
                    Protection::default()
                }),
            };
            HiveConfig {
                name: h.name,
                metastores: h.metastores,
                principal: h.principal,
                renewer: renewer.to_owned(),
                token_signature: h.token_signature,
                min_protection,
            }
        })
        .collect()
}

/// Which services are configured, and the default a pod without a choice gets: only
/// configured ones.
fn services_policy(
    errors: &mut Errors,
    default: Option<String>,
    providers: [(&'static str, bool); 4],
) -> ServicesPolicy {
    let configured: BTreeSet<&'static str> = providers
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
    let default = default.and_then(|value| match k2h_contract::services::parse(&value) {
        Ok(names) => {
            let missing: Vec<_> = names.difference(&configured).copied().collect();
            if !missing.is_empty() {
                errors.push(ConfigError::DefaultServiceMissing {
                    names: missing.join(", "),
                });
            }
            Some(names)
        }
        Err(e) => {
            errors.push(ConfigError::DefaultServices {
                value,
                reason: e.to_string(),
            });
            None
        }
    });
    ServicesPolicy {
        configured,
        default,
    }
}

fn check_review_cache(errors: &mut Errors, cache: &ReviewCacheConfig) {
    if cache.ttl > review_cache::MAX_TTL {
        errors.push(ConfigError::ReviewCacheTtl {
            value: cache.ttl,
            max: review_cache::MAX_TTL,
        });
    }
    if cache.max_entries == 0 || cache.max_entries > review_cache::MAX_ENTRIES {
        errors.push(ConfigError::ReviewCacheSize {
            value: cache.max_entries,
            max: review_cache::MAX_ENTRIES,
        });
    }
}

fn check_ledger(errors: &mut Errors, ledger: &LedgerSettings) {
    if ledger.period < Duration::from_secs(1) {
        errors.push(ConfigError::LedgerPeriod {
            value: ledger.period,
        });
    }
    // A Lease counts whole seconds.
    for (flag, value) in [
        ("lease-duration", ledger.lease_duration),
        ("lease-renew-deadline", ledger.lease_renew_deadline),
    ] {
        if value.subsec_nanos() != 0 || value.is_zero() {
            errors.push(ConfigError::LeaseSeconds { flag, value });
        }
    }
    if ledger.lease_renew_deadline >= ledger.lease_duration {
        errors.push(ConfigError::RenewDeadline {
            deadline: ledger.lease_renew_deadline,
            lease: ledger.lease_duration,
        });
    }
}
