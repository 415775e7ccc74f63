//! The value of `kube2hadoop.io/services`: which Hadoop services a workload wants tokens from.
//!
//! A comma-separated list of names from [`KNOWN`], case-insensitive, spaces around names
//! ignored; duplicates collapse. The parsed form is sorted, so two spellings of one choice are
//! one ledger entry.

use std::collections::BTreeSet;

/// Every service name a workload may ask for, each one provider kind of token-service.
pub const KNOWN: &[&str] = &["hdfs", "hive", "kms", "yarn"];

/// Longest value accepted: the names above, with room to spare, never an essay.
const MAX_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServicesError {
    #[error("names no service; list one or more of {}", KNOWN.join(", "))]
    Empty,
    #[error("is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("names {name:?}, which is not a Hadoop service kube2hadoop knows; use {}", KNOWN.join(", "))]
    Unknown { name: String },
}

/// Parses an annotation value into sorted, unique, known names.
pub fn parse(value: &str) -> Result<BTreeSet<&'static str>, ServicesError> {
    if value.len() > MAX_LEN {
        return Err(ServicesError::TooLong);
    }
    let mut names = BTreeSet::new();
    for raw in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let known = KNOWN
            .iter()
            .find(|k| k.eq_ignore_ascii_case(raw))
            .ok_or_else(|| ServicesError::Unknown {
                name: raw.chars().take(64).collect(),
            })?;
        names.insert(*known);
    }
    if names.is_empty() {
        return Err(ServicesError::Empty);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_case_folded_sorted_and_unique() {
        let got: Vec<_> = parse(" YARN, hdfs,hdfs ,")
            .expect("valid")
            .into_iter()
            .collect();
        assert_eq!(got, ["hdfs", "yarn"]);
    }

    #[test]
    fn empty_unknown_and_oversized_values_are_refused() {
        assert_eq!(parse(" , "), Err(ServicesError::Empty));
        assert_eq!(
            parse("hdfs,hive2"),
            Err(ServicesError::Unknown {
                name: "hive2".into()
            })
        );
        assert_eq!(parse(&"hdfs,".repeat(60)), Err(ServicesError::TooLong));
        let e = parse("s3").expect_err("unknown").to_string();
        assert!(e.contains("hdfs, hive, kms, yarn"), "{e}");
    }
}
