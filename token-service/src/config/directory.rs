//! Where users and groups are looked up: LDAP when a URL is set, else the static users file.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::directory::cache::{CacheConfig, DEFAULT_MAX_ENTRIES, DEFAULT_TTL};
use crate::directory::ldap::{
    DEFAULT_GROUP_FILTER, DEFAULT_NAME_ATTRIBUTE, DEFAULT_RUN_AS_FILTER, DEFAULT_USER_FILTER,
    LdapConfig,
};

use super::error::ConfigError;
use super::file::FileLdap;
use super::flags::Cli;
use super::host::{HostFacts, NamedFiles};
use super::resolve::{Errors, check_readable, duration, number, required};
use super::settings::DirectorySettings;
use crate::directory::pool::DEFAULT_POOL_SIZE;

pub(super) fn directory_settings(
    errors: &mut Errors,
    cli: &Cli,
    file: Option<FileLdap>,
    named: &NamedFiles,
    host: &HostFacts,
    timeout: Duration,
) -> DirectorySettings {
    let file = file.unwrap_or_default();
    let Some(url) = cli.ldap_url.clone().or(file.url) else {
        if let Some(p) = &named.users_file {
            check_readable(errors, host, "users-file", p);
        }
        return DirectorySettings::Static(named.users_file.clone());
    };
    let bind_dn = required(
        errors,
        "ldap-bind-dn",
        "with --ldap-url",
        cli.ldap_bind_dn.clone().or(file.bind_dn),
    );
    let password_file = required(
        errors,
        "ldap-bind-password-file",
        "with --ldap-url",
        named.ldap_bind_password_file.as_ref(),
    );
    let bind_password = password_file.and_then(|path| bind_password(errors, host, path));
    let base = required(
        errors,
        "ldap-base-dn",
        "with --ldap-url",
        cli.ldap_base_dn.clone().or(file.base_dn),
    );
    if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
        errors.push(ConfigError::LdapScheme { url: url.clone() });
    }
    let user_filter = cli
        .ldap_user_filter
        .clone()
        .or(file.user_filter)
        .unwrap_or_else(|| DEFAULT_USER_FILTER.into());
    if !user_filter.contains("{user}") {
        errors.push(ConfigError::LdapUserFilter {
            filter: user_filter.clone(),
        });
    }
    if let Some(p) = &named.ldap_ca_file {
        check_readable(errors, host, "ldap-ca-file", p);
    }
    let group_base = cli
        .ldap_group_base_dn
        .clone()
        .or(file.group_base_dn)
        .or_else(|| base.clone())
        .unwrap_or_default();
    let pool_size = number(
        errors,
        "ldap-pool-size",
        cli.ldap_pool_size.as_ref(),
        file.pool_size,
        DEFAULT_POOL_SIZE,
    );
    if pool_size == 0 {
        errors.push(ConfigError::LdapPoolSize { value: pool_size });
    }
    let cache = CacheConfig {
        ttl: duration(
            errors,
            "ldap-cache-ttl",
            cli.ldap_cache_ttl.as_ref(),
            file.cache_ttl_seconds,
            DEFAULT_TTL,
        ),
        max_entries: number(
            errors,
            "ldap-cache-max-entries",
            cli.ldap_cache_max_entries.as_ref(),
            file.cache_max_entries,
            DEFAULT_MAX_ENTRIES,
        ),
    };
    if cache.ttl > crate::directory::cache::MAX_TTL {
        errors.push(ConfigError::LdapCacheTtl {
            value: cache.ttl,
            max: crate::directory::cache::MAX_TTL,
        });
    }
    let ldap = Box::new(LdapConfig {
        url,
        bind_dn: bind_dn.unwrap_or_default(),
        bind_password: bind_password.unwrap_or_default(),
        user_base: base.unwrap_or_default(),
        group_base,
        user_filter,
        name_attribute: file
            .name_attribute
            .unwrap_or_else(|| DEFAULT_NAME_ATTRIBUTE.into()),
        group_filter: cli
            .ldap_group_filter
            .clone()
            .or(file.group_filter)
            .unwrap_or_else(|| DEFAULT_GROUP_FILTER.into()),
        allowed_group: cli
            .ldap_allowed_group
            .clone()
            .or(file.allowed_group)
            .unwrap_or_else(|| "hadoop-users".into()),
        run_as_filter: cli
            .ldap_run_as_filter
            .clone()
            .or(file.run_as_filter)
            .unwrap_or_else(|| DEFAULT_RUN_AS_FILTER.into()),
        starttls: cli.ldap_starttls || file.starttls.unwrap_or(false),
        ca_file: named.ldap_ca_file.clone(),
        timeout,
        pool_size,
    });
    DirectorySettings::Ldap { ldap, cache }
}

/// The password read from `path` at startup. An empty one would make many servers treat the
/// bind as anonymous (RFC 4513 §5.1.2) and so check users with anonymous rights: refused.
fn bind_password(
    errors: &mut Errors,
    host: &HostFacts,
    path: &std::path::Path,
) -> Option<Zeroizing<String>> {
    const FLAG: &str = "ldap-bind-password-file";
    match host.first_lines.get(path) {
        Some(Ok(line)) if line.is_empty() => {
            errors.push(ConfigError::EmptyLdapPassword {
                path: path.to_owned(),
            });
            None
        }
        Some(Ok(line)) => Some(line.clone()),
        Some(Err(reason)) => {
            errors.push(ConfigError::Unreadable {
                flag: FLAG,
                path: path.to_owned(),
                reason: reason.clone(),
            });
            None
        }
        // `HostFacts::read` reads every password file `NamedFiles` names; a caller that built
        // the facts by hand and left it out gets the same refusal as an unreadable file.
        None => {
            errors.push(ConfigError::Unreadable {
                flag: FLAG,
                path: path.to_owned(),
                reason: "it was not read at startup".into(),
            });
            None
        }
    }
}
