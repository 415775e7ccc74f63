//! The LDAP directory bed (Debian's slapd with the e2e tree, `e2e/scripts/ldap-up.sh`).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::hadoop::script;

/// The directory's `K2H_LDAP_*` settings, starting slapd when it is not running.
pub fn env() -> HashMap<String, String> {
    let env_file = PathBuf::from(script("ldap-up.sh", &[], None));
    std::fs::read_to_string(&env_file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", env_file.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// token-service's `ldap` config section for this directory: members of `hadoop-users` may get
/// tokens.
pub fn service_config(env: &HashMap<String, String>) -> serde_json::Value {
    let get = |k: &str| {
        env.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("ldap-up.sh's env file has no {k}"))
    };
    let base = get("K2H_LDAP_BASE_DN");
    serde_json::json!({
        "url": get("K2H_LDAP_URL"),
        "bindDn": get("K2H_LDAP_BIND_DN"),
        "bindPasswordFile": get("K2H_LDAP_BIND_PASSWORD_FILE"),
        "baseDn": format!("ou=people,{base}"),
        "groupBaseDn": format!("ou=groups,{base}"),
        "allowedGroup": "hadoop-users",
    })
}
