//! The admission decision: a pure function of (request, policy).
use crate::policy::Policy;
use kube::core::{DynamicObject, admission::AdmissionRequest};

/// What the webhook answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Admit, applying `patch` (empty when nothing changes).
    Allow { patch: json_patch::Patch },
    /// Refuse with a reason a user can act on.
    Deny { reason: String },
}

/// `/mutate`: stamp the submitter (or keep a trusted controller's value).
pub fn mutate(_req: &AdmissionRequest<DynamicObject>, _policy: &Policy) -> Decision {
    todo!("issue 2")
}

/// `/validate`: runs after every mutating webhook; denies objects whose annotations differ
/// from what [`mutate`] decided.
pub fn validate(_req: &AdmissionRequest<DynamicObject>, _policy: &Policy) -> Decision {
    todo!("issue 2")
}
