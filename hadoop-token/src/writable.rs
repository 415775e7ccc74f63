//! Hadoop's Writable primitives: `WritableUtils` zero-compressed VInt/VLong, `Text`, and the
//! VInt-length-prefixed byte arrays `Token` uses for identifier and password.
//!
//! VLong layout: values in -112..=127 are one byte. Otherwise a first byte gives the sign and the
//! number of big-endian payload bytes that follow (-113..=-120: positive, 1..=8 bytes; -121..=-128:
//! negative, stored as one's complement). Decoding accepts non-minimal encodings as Hadoop does.

use crate::codec::{DecodeError, Problem, Reader};

/// Hadoop's `Text.DEFAULT_MAX_LEN`: the longest string its token identifiers accept.
pub const MAX_TEXT_LEN: usize = 1024 * 1024;
/// Cap for identifier, password and secret-key byte arrays (real ones are tens of bytes).
pub const MAX_BYTES_LEN: usize = 1024 * 1024;

pub fn write_vlong(out: &mut Vec<u8>, value: i64) {
    if (-112..=127).contains(&value) {
        out.push(value as u8);
        return;
    }
    let (magnitude, first_base) = if value < 0 {
        (!value, -120i32)
    } else {
        (value, -112i32)
    };
    let len = 8 - (magnitude.leading_zeros() / 8) as usize;
    out.push((first_base - len as i32) as u8);
    out.extend_from_slice(&magnitude.to_be_bytes()[8 - len..]);
}

pub fn write_vint(out: &mut Vec<u8>, value: i32) {
    write_vlong(out, i64::from(value));
}

pub fn read_vlong(r: &mut Reader<'_>, what: &'static str) -> Result<i64, DecodeError> {
    let first = r.take_u8(what)? as i8;
    if first >= -112 {
        return Ok(i64::from(first));
    }
    let (negative, len) = if first < -120 {
        (true, -120 - i32::from(first))
    } else {
        (false, -112 - i32::from(first))
    };
    let payload = r.take(len as u64, what)?;
    let value = payload
        .iter()
        .fold(0i64, |acc, b| (acc << 8) | i64::from(*b));
    Ok(if negative { !value } else { value })
}

pub fn read_vint(r: &mut Reader<'_>, what: &'static str) -> Result<i32, DecodeError> {
    let start = r.offset();
    let value = read_vlong(r, what)?;
    i32::try_from(value).map_err(|_| DecodeError {
        offset: start,
        problem: Problem::IntOverflow { what, value },
    })
}

/// Reads a VInt length, rejecting negative values and values above `limit`.
fn read_len(r: &mut Reader<'_>, what: &'static str, limit: usize) -> Result<u64, DecodeError> {
    let start = r.offset();
    let len = read_vint(r, what)?;
    let at = |problem| DecodeError {
        offset: start,
        problem,
    };
    let len = u64::try_from(len).map_err(|_| {
        at(Problem::NegativeLength {
            what,
            len: i64::from(len),
        })
    })?;
    if len > limit as u64 {
        return Err(at(Problem::TooLong { what, len, limit }));
    }
    Ok(len)
}

/// A VInt-length-prefixed byte array (Token's identifier and password, secret keys).
pub fn read_bytes<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a [u8], DecodeError> {
    let len = read_len(r, what, MAX_BYTES_LEN)?;
    r.take(len, what)
}

pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_vint(out, len_i32(bytes.len()));
    out.extend_from_slice(bytes);
}

/// Hadoop `Text`: VInt length and UTF-8 bytes.
pub fn read_text(r: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    let len = read_len(r, what, MAX_TEXT_LEN)?;
    let start = r.offset();
    let bytes = r.take(len, what)?;
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| DecodeError {
            offset: start,
            problem: Problem::InvalidUtf8 { what },
        })
}

pub fn write_text(out: &mut Vec<u8>, text: &str) {
    write_bytes(out, text.as_bytes());
}

/// Hadoop's lengths are Java ints; nothing this crate holds comes near 2 GiB, so saturating keeps
/// encoding infallible without ever producing a negative length.
fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vlong_bytes(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_vlong(&mut out, v);
        out
    }

    fn decode_vlong(bytes: &[u8]) -> Result<i64, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = read_vlong(&mut r, "value")?;
        r.all("value")?;
        Ok(v)
    }

    #[test]
    fn vlong_matches_hadoop_layout() {
        // Expected bytes computed by hand from WritableUtils.writeVLong.
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (-112, &[0x90]),
            (128, &[0x8f, 0x80]),
            (255, &[0x8f, 0xff]),
            (256, &[0x8e, 0x01, 0x00]),
            (-113, &[0x87, 0x70]),
            (-256, &[0x87, 0xff]),
            (-257, &[0x86, 0x01, 0x00]),
            (
                i64::MAX,
                &[0x88, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
            (
                i64::MIN,
                &[0x80, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for (value, bytes) in cases {
            assert_eq!(vlong_bytes(*value), *bytes, "encoding {value}");
            assert_eq!(decode_vlong(bytes).unwrap(), *value, "decoding {value}");
        }
    }

    #[test]
    fn vlong_minimal_and_truncated() {
        assert_eq!(decode_vlong(&[0x00]).unwrap(), 0);
        let err = decode_vlong(&[]).unwrap_err();
        assert_eq!(err.offset, 0);
        let err = decode_vlong(&[0x8e, 0x01]).unwrap_err();
        assert_eq!(err.offset, 1);
        assert!(matches!(
            err.problem,
            Problem::Truncated {
                needed: 2,
                available: 1,
                ..
            }
        ));
        let err = decode_vlong(&[0x01, 0x02]).unwrap_err();
        assert_eq!(
            err,
            DecodeError {
                offset: 1,
                problem: Problem::TrailingBytes {
                    what: "value",
                    count: 1
                }
            }
        );
    }

    #[test]
    fn vint_rejects_values_beyond_i32() {
        let bytes = vlong_bytes(i64::from(i32::MAX) + 1);
        let mut r = Reader::new(&bytes);
        let err = read_vint(&mut r, "count").unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(matches!(err.problem, Problem::IntOverflow { .. }));
    }

    #[test]
    fn text_minimal_truncated_overlong_and_bad_utf8() {
        let mut r = Reader::new(&[0x00]);
        assert_eq!(read_text(&mut r, "t").unwrap(), "");

        let mut r = Reader::new(&[0x03, b'a', b'b']);
        let err = read_text(&mut r, "t").unwrap_err();
        assert_eq!(err.offset, 1);
        assert!(matches!(err.problem, Problem::Truncated { needed: 3, .. }));

        // A declared length of i32::MAX must fail on the cap, without allocating.
        let mut bytes = Vec::new();
        write_vint(&mut bytes, i32::MAX);
        let mut r = Reader::new(&bytes);
        let err = read_text(&mut r, "t").unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(matches!(err.problem, Problem::TooLong { .. }));

        let mut bytes = Vec::new();
        write_vint(&mut bytes, -5);
        let mut r = Reader::new(&bytes);
        let err = read_text(&mut r, "t").unwrap_err();
        assert!(matches!(
            err.problem,
            Problem::NegativeLength { len: -5, .. }
        ));

        let mut r = Reader::new(&[0x02, 0xc3, 0x28]);
        let err = read_text(&mut r, "t").unwrap_err();
        assert_eq!(err.offset, 1);
        assert_eq!(err.problem, Problem::InvalidUtf8 { what: "t" });
    }

    #[test]
    fn bytes_minimal_non_utf8_truncated_and_overlong() {
        let mut r = Reader::new(&[0x00]);
        assert_eq!(read_bytes(&mut r, "b").unwrap(), b"");

        let mut out = Vec::new();
        write_bytes(&mut out, &[0xff, 0x00]);
        let mut r = Reader::new(&out);
        assert_eq!(read_bytes(&mut r, "b").unwrap(), &[0xff, 0x00]);

        let mut r = Reader::new(&out[..2]);
        let err = read_bytes(&mut r, "b").unwrap_err();
        assert_eq!(err.offset, 1);
        assert!(matches!(
            err.problem,
            Problem::Truncated {
                needed: 2,
                available: 1,
                ..
            }
        ));

        let mut huge = Vec::new();
        write_vint(&mut huge, (MAX_BYTES_LEN + 1) as i32);
        let mut r = Reader::new(&huge);
        let err = read_bytes(&mut r, "b").unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(matches!(err.problem, Problem::TooLong { .. }));
    }

    proptest! {
        #[test]
        fn vlong_round_trips(v in any::<i64>()) {
            let bytes = vlong_bytes(v);
            prop_assert!(bytes.len() <= 9);
            prop_assert_eq!(decode_vlong(&bytes).unwrap(), v);
        }

        #[test]
        fn vint_round_trips(v in any::<i32>()) {
            let mut bytes = Vec::new();
            write_vint(&mut bytes, v);
            prop_assert!(bytes.len() <= 5);
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(read_vint(&mut r, "v").unwrap(), v);
            prop_assert!(r.all("v").is_ok());
        }

        #[test]
        fn text_round_trips(s in ".*") {
            let mut bytes = Vec::new();
            write_text(&mut bytes, &s);
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(read_text(&mut r, "t").unwrap(), s);
            prop_assert!(r.all("t").is_ok());
        }

        #[test]
        fn vlong_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = decode_vlong(&bytes);
        }
    }
}
