//! Names of identities and audiences as the API server writes them.

/// The audience of the service-account tokens fetchers present (projected by injection).
pub const AUDIENCE: &str = "kube2hadoop";
/// Prefix of every service account's username.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// Prefix of every kubelet's username (group `system:nodes`).
pub const NODE_PREFIX: &str = "system:node:";
/// The group every kubelet is in.
pub const NODES_GROUP: &str = "system:nodes";

/// Whether `username` is a kubelet's (`system:node:<name>` with a non-empty name).
pub fn is_node(username: &str) -> bool {
    username
        .strip_prefix(NODE_PREFIX)
        .is_some_and(|n| !n.is_empty() && !n.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes() {
        assert!(is_node("system:node:worker-1"));
        assert!(!is_node("system:node:"));
        assert!(!is_node("system:nodes"));
        assert!(!is_node("system:node:a:b"));
        assert!(!is_node("alice"));
    }
}
