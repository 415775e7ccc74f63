//! A ledger record: the public facts and life so far of one workload's token set, kept as JSON
//! in its Secret, and every change the loop makes to it (issued, renewed, re-issued, failed;
//! a cancelled set's record is deleted). [`super::lifecycle`] decides which change is due.

use k2h_contract::services::ServicesError;

use crate::services::Selection;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use super::lifecycle::{Facts, Liveness};
use crate::audit::rfc3339_ms;
use crate::hadoop::{Renewal, TokenSet};
use crate::issued::{Issued, TokenInfo, apply_renewal};
use crate::workload::WorkloadKey;

/// Hadoop's default renew interval, when nothing better is known.
const DEFAULT_INTERVAL_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub workload: WorkloadKey,
    pub hadoop_user: String,
    /// The pods' `kube2hadoop.io/user` (absent in records of older versions). Stored under its
    /// first name, so replicas of either version read each other's records.
    #[serde(default, rename = "kube_user", skip_serializing_if = "Option::is_none")]
    pub submitter: Option<String>,
    pub tokens: Vec<TokenInfo>,
    /// The pods' `kube2hadoop.io/services` choice, canonical (`hdfs,yarn`); absent for every
    /// configured service (and in records of older versions, which had no choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<String>,
    pub issued_at_ms: u64,
    /// When the current renew window began: issue or last renewal.
    pub window_start_ms: u64,
    /// The earliest expiry of the set.
    pub expires_at_ms: u64,
    pub renewals: u32,
    pub reissues: u32,
    /// Consecutive failed attempts of the pending action; 0 after a success.
    pub failures: u32,
    pub next_attempt_ms: Option<u64>,
    pub last_error: Option<String>,
    /// The renew interval the server grants, learnt from the first expiry.
    #[serde(default)]
    pub renew_interval_ms: Option<u64>,
}

impl Record {
    /// The record of a set just obtained for `workload` at `now_ms`.
    pub fn new(workload: &WorkloadKey, issued: &Issued, now_ms: u64) -> Record {
        Record {
            workload: workload.clone(),
            hadoop_user: issued.hadoop_user.clone(),
            submitter: issued.submitter.clone(),
            tokens: issued.tokens.clone(),
            services: issued.selection.stored(),
            issued_at_ms: now_ms,
            window_start_ms: now_ms,
            expires_at_ms: issued.expires_at_ms,
            renewals: 0,
            reissues: 0,
            failures: 0,
            next_attempt_ms: None,
            last_error: None,
            // The issuer learnt the expiry by renewing right after obtaining.
            renew_interval_ms: Some(issued.expires_at_ms.saturating_sub(now_ms)),
        }
    }

    /// After a renewal at `now_ms`: a new window, the new expiries, failures cleared.
    pub fn renewed(&self, renewal: &Renewal, now_ms: u64) -> Record {
        let mut record = self.clone();
        apply_renewal(&mut record.tokens, renewal);
        record.window_start_ms = now_ms;
        record.expires_at_ms = renewal.expires_at_ms;
        record.renewals = record.renewals.saturating_add(1);
        record.clear_failure();
        record
    }

    /// After `issued` replaced the set at `now_ms`: its tokens and expiry, a new window.
    pub fn reissued(&self, issued: &Issued, now_ms: u64) -> Record {
        let mut record = self.clone();
        record.tokens = issued.tokens.clone();
        record.issued_at_ms = now_ms;
        record.window_start_ms = now_ms;
        record.expires_at_ms = issued.expires_at_ms;
        record.reissues = record.reissues.saturating_add(1);
        record.renew_interval_ms = Some(self.interval_ms());
        record.clear_failure();
        record
    }

    /// After `op` failed at `now_ms`: one more failure, the next attempt `wait` later.
    pub fn failed(&self, op: &str, error: &str, now_ms: u64, wait: Duration) -> Record {
        let mut record = self.clone();
        record.failures = record.failures.saturating_add(1);
        record.next_attempt_ms = Some(now_ms.saturating_add(wait.as_millis() as u64));
        record.last_error = Some(format!("{op} failed at {}: {error}", rfc3339_ms(now_ms)));
        record
    }

    /// The set this record describes, served with its file and tokens. `selection` is
    /// [`Record::selection`], read once when the entry was decoded.
    pub fn serve(
        &self,
        file: Zeroizing<Vec<u8>>,
        set: TokenSet,
        selection: Selection,
    ) -> Arc<Issued> {
        Arc::new(Issued {
            hadoop_user: self.hadoop_user.clone(),
            submitter: self.submitter.clone(),
            tokens: self.tokens.clone(),
            expires_at_ms: self.expires_at_ms,
            file,
            set,
            selection,
        })
    }

    /// The services of the set, as stored.
    pub fn selection(&self) -> Result<Selection, ServicesError> {
        Selection::from_stored(self.services.as_deref())
    }

    pub fn interval_ms(&self) -> u64 {
        self.renew_interval_ms
            .filter(|i| *i > 0)
            .unwrap_or(DEFAULT_INTERVAL_MS)
    }

    /// The earliest max date among the tokens: no renewal reaches past it.
    pub fn max_date_ms(&self) -> Option<u64> {
        self.tokens.iter().filter_map(TokenInfo::max_date).min()
    }

    /// What a decision needs to know about this entry now.
    pub fn facts(&self, now_ms: u64, liveness: Liveness) -> Facts {
        Facts {
            now_ms,
            window_start_ms: self.window_start_ms,
            expires_at_ms: self.expires_at_ms,
            max_date_ms: self.max_date_ms(),
            next_attempt_ms: self.next_attempt_ms,
            liveness,
        }
    }

    fn clear_failure(&mut self) {
        self.failures = 0;
        self.next_attempt_ms = None;
        self.last_error = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{issued, workload};

    #[test]
    fn the_submitter_is_stored_under_its_first_name() {
        let record = Record::new(&workload("web"), &issued("alice", 40, 5_000), 1_000);
        let json = serde_json::to_value(&record).expect("json");
        assert_eq!(json["kube_user"], "alice");
        let back: Record = serde_json::from_value(json).expect("back");
        assert_eq!(back.submitter.as_deref(), Some("alice"));
    }

    #[test]
    fn each_change_moves_the_window_and_clears_or_counts_failures() {
        let first = Record::new(&workload("web"), &issued("alice", 40, 21_000), 1_000);
        assert_eq!(first.interval_ms(), 20_000);
        let failed = first.failed("renew", "NameNode down", 2_000, Duration::from_secs(5));
        assert_eq!((failed.failures, failed.next_attempt_ms), (1, Some(7_000)));
        assert!(
            failed.last_error.as_deref().is_some_and(
                |e| e.starts_with("renew failed at ") && e.ends_with(": NameNode down")
            ),
            "{failed:?}"
        );
        let renewal = Renewal {
            expires_at_ms: 40_000,
            per_token: vec![("hdfs:ns1".into(), 40_000)],
        };
        let renewed = failed.renewed(&renewal, 20_000);
        assert_eq!(
            (
                renewed.window_start_ms,
                renewed.expires_at_ms,
                renewed.renewals
            ),
            (20_000, 40_000, 1)
        );
        assert_eq!(renewed.tokens[0].expires_at_ms, Some(40_000));
        assert_eq!((renewed.failures, renewed.last_error.as_ref()), (0, None));
        let reissued = renewed.reissued(&issued("alice", 41, 60_000), 39_000);
        assert_eq!(
            (
                reissued.issued_at_ms,
                reissued.expires_at_ms,
                reissued.reissues
            ),
            (39_000, 60_000, 1)
        );
        assert_eq!(reissued.tokens[0].sequence_number, Some(41));
        assert_eq!(reissued.renew_interval_ms, Some(20_000));
    }
}
