//! Which namespaces kube2hadoop covers. There is one definition: the namespaceSelector (and
//! objectSelector) of iddecorator's mutating webhook as registered in the cluster. token-service
//! reads that registration and serves exactly what it covers, so an admin who narrows the webhook
//! (opt-in namespaces, an excluded team) narrows the token service with it.

/// The MutatingWebhookConfiguration the manifests install.
pub const WEBHOOK_CONFIGURATION: &str = "kube2hadoop-iddecorator";
/// The webhook within it that stamps `kube2hadoop.io/user`.
pub const MUTATING_WEBHOOK: &str = "mutate.iddecorator.kube2hadoop.io";
/// Namespaces the shipped webhook leaves out: the control plane's and our own.
pub const DEFAULT_EXCLUDED_NAMESPACES: &[&str] = &["kube-system", "kube2hadoop"];
