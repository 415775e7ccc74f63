//! One JSON line per decision (issue, reuse, denial) and per ledger action (renewal, re-issue,
//! cancellation and their failures), on the `kube2hadoop::audit` tracing target or appended to
//! a file. Tokens are described by their public fields only.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::issued::TokenInfo;

pub const TARGET: &str = "kube2hadoop::audit";

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuditEvent {
    /// RFC 3339.
    pub time: String,
    /// `issued`, `reused`, `denied`; from the ledger `renewed`, `reissued`, `cancelled`,
    /// `renew_failed`, `reissue_failed`, `cancel_failed`.
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub node: Option<String>,
    pub ip: Option<String>,
    pub identity_method: Option<&'static str>,
    /// SA-token mode: what vouched for the token, `token_review`, `review_cache` or
    /// `signature` (absent in IP mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_check: Option<&'static str>,
    pub kubernetes_user: Option<String>,
    pub hadoop_user: Option<String>,
    pub run_as: Option<String>,
    pub workload: Option<String>,
    /// The services the pod chose (`kube2hadoop.io/services`, canonical); absent for every
    /// configured service.
    pub services: Option<String>,
    pub tokens: Vec<TokenInfo>,
}

pub enum AuditSink {
    Tracing,
    File(Mutex<std::fs::File>),
}

impl AuditSink {
    pub fn file(path: &Path) -> std::io::Result<AuditSink> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(AuditSink::File(Mutex::new(file)))
    }

    pub fn record(&self, event: &AuditEvent) {
        let line = match serde_json::to_string(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an audit event");
                return;
            }
        };
        match self {
            AuditSink::Tracing => tracing::info!(target: TARGET, "{line}"),
            AuditSink::File(file) => {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = writeln!(file, "{line}") {
                    tracing::error!(error = %e, "cannot write the audit log; the event was: {line}");
                }
            }
        }
    }
}

pub fn now_rfc3339() -> String {
    rfc3339_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

pub fn rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sink_writes_one_json_line_per_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let sink = AuditSink::file(&path).expect("open");
        for outcome in ["issued", "denied"] {
            sink.record(&AuditEvent {
                time: now_rfc3339(),
                outcome,
                pod_name: Some("web-1".into()),
                ..AuditEvent::default()
            });
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["outcome"], "denied");
        assert_eq!(lines[0]["pod_name"], "web-1");
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_500), "1970-01-01T00:00:01.5Z");
    }
}
