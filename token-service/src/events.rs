//! What users see with `kubectl describe`: a Kubernetes Event on the workload (or, for a refusal
//! before the workload is known, on the pod) for each thing the service does to its tokens.
//! This module words them, as pure functions; `cluster::events` publishes them through
//! kube-runtime's recorder, which aggregates repeats into one Event with a count.
//!
//! Only public facts go into an Event: kinds, services, owners' Hadoop names and dates, never a
//! token's password or identifier bytes.

use crate::audit::rfc3339_ms;
use crate::issued::TokenInfo;
use crate::workload::WorkloadKey;

/// Something that happened to a workload's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happened {
    Issued {
        hadoop_user: String,
        tokens: Vec<TokenInfo>,
    },
    Renewed {
        hadoop_user: String,
        expires_at_ms: u64,
    },
    Reissued {
        hadoop_user: String,
        tokens: Vec<TokenInfo>,
    },
    Cancelled {
        hadoop_user: String,
    },
    /// The ledger could not renew, re-issue or cancel; it retries after a backoff. The cause
    /// (addresses, principals) is for admins: the service's log and audit have it.
    LedgerFailed {
        outcome: &'static str,
    },
    /// A pod's request was refused; `code` is the answer's reason code.
    Refused {
        code: &'static str,
        message: String,
    },
}

/// An Event as `kubectl describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub warning: bool,
    /// `Reason`: PascalCase, what happened.
    pub reason: &'static str,
    /// What the service did (not shown by `kubectl describe`).
    pub action: &'static str,
    /// `Message`.
    pub note: String,
}

/// The API server refuses notes over 1 kB.
const NOTE_MAX: usize = 1024;

pub fn report(happened: &Happened) -> Report {
    let (warning, reason, action, note) = match happened {
        Happened::Issued {
            hadoop_user,
            tokens,
        } => (
            false,
            "TokensIssued",
            "Issue",
            format!("issued {} for Hadoop user {hadoop_user}", describe(tokens)),
        ),
        Happened::Renewed {
            hadoop_user,
            expires_at_ms,
        } => (
            false,
            "TokensRenewed",
            "Renew",
            format!(
                "renewed the tokens of Hadoop user {hadoop_user}; they expire at {} unless renewed again",
                rfc3339_ms(*expires_at_ms)
            ),
        ),
        Happened::Reissued {
            hadoop_user,
            tokens,
        } => (
            false,
            "TokensReissued",
            "Reissue",
            format!(
                "replaced the tokens of Hadoop user {hadoop_user} with new ones ({}); pods read \
                 the new file at their next refresh",
                describe(tokens)
            ),
        ),
        Happened::Cancelled { hadoop_user } => (
            false,
            "TokensCancelled",
            "Cancel",
            format!("the workload is gone: cancelled the tokens of Hadoop user {hadoop_user}"),
        ),
        Happened::LedgerFailed { outcome } => {
            let (reason, what) = match *outcome {
                "renew_failed" => ("TokenRenewalFailed", "renewing"),
                "reissue_failed" => ("TokenReissueFailed", "replacing"),
                _ => ("TokenCancelFailed", "cancelling"),
            };
            (
                true,
                reason,
                "Retry",
                format!(
                    "{what} the tokens failed; the service retries with backoff (the token \
                     service's log and audit name the cause)"
                ),
            )
        }
        // The code as the action too: the recorder folds Events by reason and action, so a
        // different refusal is a new Event, not a count on the last one's message.
        Happened::Refused { code, message } => {
            (true, "TokensRefused", *code, format!("{code}: {message}"))
        }
    };
    Report {
        warning,
        reason,
        action,
        note: truncate(note),
    }
}

/// `KIND (service, max date …)` for each token.
fn describe(tokens: &[TokenInfo]) -> String {
    if tokens.is_empty() {
        return "no tokens".into();
    }
    tokens
        .iter()
        .map(|t| match t.max_date() {
            Some(max) => format!("{} ({}, max date {})", t.kind, t.service, rfc3339_ms(max)),
            None => format!("{} ({})", t.kind, t.service),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line, at most 1 kB: values a requester wrote (owner names, run-as) may hold anything.
fn truncate(note: String) -> String {
    let mut note: String = note
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if note.len() > NOTE_MAX {
        let mut end = NOTE_MAX - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

/// Where Events go. Emitting never waits: a full queue drops the Event (and counts it).
pub trait EventSink: Send + Sync {
    fn emit(&self, regarding: &WorkloadKey, happened: Happened);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::issued;

    #[test]
    fn each_happening_has_its_reason_and_a_note_without_secrets() {
        let tokens = issued("alice", 40, 5_000).tokens.clone();
        let r = report(&Happened::Issued {
            hadoop_user: "alice".into(),
            tokens: tokens.clone(),
        });
        assert_eq!((r.warning, r.reason), (false, "TokensIssued"));
        assert_eq!(
            r.note,
            "issued HDFS_DELEGATION_TOKEN (ha-hdfs:ns1, max date 1970-01-01T02:30:00Z) for Hadoop \
             user alice"
        );
        assert!(!r.note.contains("pw"));
        let refused = report(&Happened::Refused {
            code: "run_as_refused",
            message: "alice may not act as etl".into(),
        });
        assert_eq!((refused.warning, refused.reason), (true, "TokensRefused"));
        assert_eq!(refused.note, "run_as_refused: alice may not act as etl");
        let failed = report(&Happened::LedgerFailed {
            outcome: "renew_failed",
        });
        assert_eq!(failed.reason, "TokenRenewalFailed");
        assert!(failed.note.starts_with("renewing the tokens failed"));
        for (h, reason) in [
            (
                Happened::Renewed {
                    hadoop_user: "alice".into(),
                    expires_at_ms: 0,
                },
                "TokensRenewed",
            ),
            (
                Happened::Reissued {
                    hadoop_user: "alice".into(),
                    tokens,
                },
                "TokensReissued",
            ),
            (
                Happened::Cancelled {
                    hadoop_user: "alice".into(),
                },
                "TokensCancelled",
            ),
        ] {
            assert_eq!(report(&h).reason, reason);
        }
    }

    #[test]
    fn a_note_is_one_line_whatever_a_requester_wrote() {
        let r = report(&Happened::Refused {
            code: "owner_gone",
            message: "owner ConfigMap x\n\nadmins: run this".into(),
        });
        assert!(!r.note.contains('\n'), "{}", r.note);
        assert_eq!(r.action, "owner_gone");
    }

    #[test]
    fn long_notes_are_cut_at_a_character_boundary() {
        let r = report(&Happened::Refused {
            code: "x",
            message: "é".repeat(2000),
        });
        assert!(r.note.len() <= NOTE_MAX && r.note.ends_with("..."));
    }
}
