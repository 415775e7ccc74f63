//! The one duration syntax of every flag and environment variable: `500ms`, `90s`, `2m`, `1h`,
//! combinations such as `1m30s`, or a bare number of seconds (what earlier versions took).
use std::time::Duration;

/// A value that is not a duration; the message shows the value and the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration such as 500ms, 90s, 2m, 1h or 1m30s (a bare number is seconds)")]
pub struct DurationError(pub String);

/// Parses `text` (surrounding whitespace ignored). Sums saturate instead of overflowing.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError(text.to_owned());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest.bytes().all(|b| b.is_ascii_digit()) {
        return rest.parse().map(Duration::from_secs).map_err(|_| bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// For clap's `value_parser`: the error as text.
pub fn parse_arg(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_combinations_and_bare_seconds() {
        let ok = |t: &str| parse(t).expect(t);
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok(" 2m "), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1s500ms"), Duration::from_millis(1500));
        assert_eq!(ok("30"), Duration::from_secs(30));
        assert_eq!(ok("0"), Duration::ZERO);
    }

    #[test]
    fn anything_else_is_an_error_naming_the_value() {
        for bad in [
            "",
            " ",
            "s",
            "5x",
            "5 s",
            "-1",
            "1.5s",
            "m5",
            "5sm",
            "99999999999999999999",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(
                e.to_string()
                    .starts_with(&format!("{bad:?} is not a duration")),
                "{e}"
            );
        }
        assert_eq!(parse("99999999999999999999h").map_err(|_| ()), Err(()));
        assert_eq!(
            parse(&format!("{}h", u64::MAX)).expect("saturates"),
            Duration::from_secs(u64::MAX)
        );
    }
}
