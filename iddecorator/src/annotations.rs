//! The annotation keys that form kube2hadoop's stable interface, defined in `k2h-contract`
//! (re-exported for users of this crate's API; iddecorator itself uses `k2h_contract`).
pub use k2h_contract::annotations::*;
