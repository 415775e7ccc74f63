//! From the Kubernetes user name iddecorator wrote to the Hadoop user name tokens are issued to.

/// Configured rules, applied in this order: refuse denied prefixes, strip prefixes, strip a
/// listed realm (refuse any other), lowercase; the result must be a plain account name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct MappingRules {
    /// Kubernetes names starting with these never map (service accounts, nodes).
    pub deny_prefixes: Vec<String>,
    /// Removed when present, first match only (e.g. `oidc:`).
    pub strip_prefixes: Vec<String>,
    /// Remove `@REALM` (or `@domain`) when the realm is listed in `realms`; `false` keeps every
    /// realm (and then refuses the name: `@` is not valid in a Hadoop name).
    pub strip_realm: bool,
    /// The realms that may be stripped (ASCII case ignored); a name in any other realm is
    /// refused, so `alice@OTHER.REALM` never becomes `alice`. Empty: names with a realm are
    /// refused.
    pub realms: Vec<String>,
    pub lowercase: bool,
}

impl Default for MappingRules {
    fn default() -> Self {
        MappingRules {
            deny_prefixes: vec!["system:".into()],
            strip_prefixes: Vec::new(),
            strip_realm: true,
            realms: Vec::new(),
            lowercase: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("Kubernetes user {0:?} may not obtain Hadoop tokens (its prefix is denied)")]
    Denied(String),
    #[error(
        "Kubernetes user {user:?} has realm {realm:?}, which is not listed in userMapping.realms; \
         list it there if its users are the same people as the plain names"
    )]
    Realm { user: String, realm: String },
    #[error(
        "Kubernetes user {user:?} maps to {mapped:?}, which is not a valid Hadoop user name \
         (letters, digits, '.', '_', '-'; at most 64); add a mapping rule"
    )]
    Invalid { user: String, mapped: String },
}

impl MappingRules {
    pub fn map(&self, user: &str) -> Result<String, MappingError> {
        if self
            .deny_prefixes
            .iter()
            .any(|p| user.starts_with(p.as_str()))
        {
            return Err(MappingError::Denied(user.to_owned()));
        }
        let mut name = self
            .strip_prefixes
            .iter()
            .find_map(|p| user.strip_prefix(p.as_str()))
            .unwrap_or(user)
            .to_owned();
        if self.strip_realm
            && let Some((local, realm)) = name.rsplit_once('@')
        {
            if !self.realms.iter().any(|r| r.eq_ignore_ascii_case(realm)) {
                return Err(MappingError::Realm {
                    user: user.to_owned(),
                    realm: realm.to_owned(),
                });
            }
            name = local.to_owned();
        }
        // ASCII only: Unicode lowercasing folds a few other characters into ASCII letters
        // (U+212A KELVIN SIGN becomes `k`), merging distinct users; they stay and are refused.
        if self.lowercase {
            name = name.to_ascii_lowercase();
        }
        if !valid_account(&name) {
            return Err(MappingError::Invalid {
                user: user.to_owned(),
                mapped: name,
            });
        }
        Ok(name)
    }
}

/// A Unix/Hadoop account name: what `doas` and LDAP filters may safely carry.
pub fn valid_account(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_strip_a_listed_realm_and_refuse_system_users() {
        let rules = MappingRules {
            realms: vec!["EXAMPLE.COM".into()],
            ..MappingRules::default()
        };
        assert_eq!(rules.map("alice").as_deref(), Ok("alice"));
        assert_eq!(rules.map("alice@EXAMPLE.COM").as_deref(), Ok("alice"));
        assert!(matches!(
            rules.map("system:serviceaccount:team-a:default"),
            Err(MappingError::Denied(_))
        ));
        assert!(matches!(
            rules.map("al ice"),
            Err(MappingError::Invalid { .. })
        ));
        assert!(matches!(
            rules.map("(uid=*)"),
            Err(MappingError::Invalid { .. })
        ));
    }

    #[test]
    fn prefixes_realms_and_case_follow_the_configuration() {
        let rules = MappingRules {
            strip_prefixes: vec!["oidc:".into()],
            realms: vec!["example.com".into()],
            lowercase: true,
            ..MappingRules::default()
        };
        assert_eq!(rules.map("oidc:Alice@EXAMPLE.COM").as_deref(), Ok("alice"));
        // A Kelvin sign is not a `k`: `\u{212A}ate` is not `kate`.
        assert!(matches!(
            rules.map("\u{212A}ate@example.com"),
            Err(MappingError::Invalid { .. })
        ));
        assert!(matches!(
            rules.map("bob@EVIL.ORG"),
            Err(MappingError::Realm { .. })
        ));
        let keep = MappingRules {
            strip_realm: false,
            realms: vec!["EXAMPLE.COM".into()],
            ..MappingRules::default()
        };
        assert!(
            keep.map("alice@EXAMPLE.COM").is_err(),
            "'@' is not valid in a Hadoop name"
        );
    }

    #[test]
    fn by_default_no_realm_is_stripped() {
        let rules = MappingRules::default();
        for user in ["alice@EXAMPLE.COM", "alice@other.realm", "alice@"] {
            assert!(
                matches!(rules.map(user), Err(MappingError::Realm { .. })),
                "{user} must not become alice"
            );
        }
        assert_eq!(rules.map("alice").as_deref(), Ok("alice"));
    }
}
