//! The decorator's policy: trusted controllers, username mapping, extra kinds.
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {}

/// A policy file that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid YAML for kube2hadoop: {0}")]
    Parse(#[source] serde_yaml_ng::Error),
}

impl Policy {
    /// Parse and check a policy file (YAML); every problem is reported at once.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        serde_yaml_ng::from_str(text).map_err(PolicyError::Parse)
    }
}
