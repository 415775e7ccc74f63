//! A borrowing cursor over untrusted bytes and the error every decoder in this crate returns.
//!
//! Every read goes through `take`, so a short input is an error naming the offset, never a panic,
//! and a declared length is checked against what is left before anything is allocated.

/// Why decoding failed, and at which byte offset of the input handed to the decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte offset {offset}: {problem}")]
pub struct DecodeError {
    pub offset: usize,
    pub problem: Problem,
}

/// What was wrong at the offset of a [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error(
        "input ends early while reading {expected}: {needed} bytes needed, {available} left \
         (the file is truncated or is not a Hadoop token file)"
    )]
    Truncated {
        expected: &'static str,
        needed: u64,
        available: usize,
    },
    #[error("{what} declares length {len}, above the limit of {limit} bytes (corrupt input?)")]
    TooLong {
        what: &'static str,
        len: u64,
        limit: usize,
    },
    #[error("{what} declares a negative length {len} (corrupt input?)")]
    NegativeLength { what: &'static str, len: i64 },
    #[error("{what} declares {count} entries, above the limit of {limit} (corrupt input?)")]
    TooMany {
        what: &'static str,
        count: u64,
        limit: usize,
    },
    #[error("{count} unexpected bytes after {what}")]
    TrailingBytes { what: &'static str, count: usize },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("{what}: VInt value {value} does not fit in a 32-bit integer")]
    IntOverflow { what: &'static str, value: i64 },
    #[error("bad magic {found:?}: a Hadoop credentials file starts with \"HDTS\"")]
    BadMagic { found: [u8; 4] },
    #[error(
        "unsupported credentials format version {0}: expected 0 (Writable) or 1 (protobuf); \
         was the file written by a newer Hadoop?"
    )]
    UnknownFormat(u8),
    #[error("unsupported delegation token identifier version {0}: expected 0")]
    UnknownIdentifierVersion(u8),
    #[error("malformed protobuf {what}: {reason}")]
    Protobuf { what: &'static str, reason: String },
    #[error("protobuf {what} lacks its {field}")]
    MissingField {
        what: &'static str,
        field: &'static str,
    },
}

/// A cursor over a byte slice; `offset` counts from the start of the outermost input so that
/// errors inside a length-prefixed body still point into the original bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// Offset of the next byte, relative to the outermost input.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn error(&self, problem: Problem) -> DecodeError {
        DecodeError {
            offset: self.offset(),
            problem,
        }
    }

    /// Takes `n` bytes; `n` comes from the input, so it is compared before any slicing.
    pub fn take(&mut self, n: u64, expected: &'static str) -> Result<&'a [u8], DecodeError> {
        let available = self.remaining();
        let Some(len) = usize::try_from(n).ok().filter(|len| *len <= available) else {
            return Err(self.error(Problem::Truncated {
                expected,
                needed: n,
                available,
            }));
        };
        let (_, rest) = self.buf.split_at(self.pos);
        let (taken, _) = rest.split_at(len);
        self.pos += len;
        Ok(taken)
    }

    pub fn take_array<const N: usize>(
        &mut self,
        expected: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N as u64, expected)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn take_u8(&mut self, expected: &'static str) -> Result<u8, DecodeError> {
        let [b] = self.take_array::<1>(expected)?;
        Ok(b)
    }

    /// A child reader over the next `len` bytes, for a length-prefixed body.
    pub fn sub(&mut self, len: u64, expected: &'static str) -> Result<Reader<'a>, DecodeError> {
        let base = self.offset();
        let buf = self.take(len, expected)?;
        Ok(Reader { buf, pos: 0, base })
    }

    /// Everything not yet read, without consuming it.
    pub fn peek_rest(&self) -> &'a [u8] {
        let (_, rest) = self.buf.split_at(self.pos);
        rest
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let (_, rest) = self.buf.split_at(self.pos);
        self.pos = self.buf.len();
        rest
    }

    /// Succeeds only when the input has been read to its end.
    pub fn all(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(self.error(Problem::TrailingBytes { what, count })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_checks_length_before_slicing() {
        let mut r = Reader::new(b"abc");
        assert_eq!(r.take(2, "x").unwrap(), b"ab");
        let err = r.take(u64::MAX, "huge").unwrap_err();
        assert_eq!(err.offset, 2);
        assert!(matches!(
            err.problem,
            Problem::Truncated {
                needed: u64::MAX,
                available: 1,
                ..
            }
        ));
        assert_eq!(r.take_u8("last").unwrap(), b'c');
        assert!(r.all("input").is_ok());
    }

    #[test]
    fn sub_keeps_outer_offsets() {
        let mut r = Reader::new(b"xxabcd");
        r.take(2, "prefix").unwrap();
        let mut child = r.sub(3, "body").unwrap();
        child.take_u8("a").unwrap();
        let err = child.take(5, "too much").unwrap_err();
        assert_eq!(err.offset, 3);
        assert_eq!(r.offset(), 5);
        assert_eq!(
            r.all("input").unwrap_err().problem,
            Problem::TrailingBytes {
                what: "input",
                count: 1
            }
        );
    }

    #[test]
    fn take_array_on_short_input() {
        let mut r = Reader::new(b"HD");
        let err = r.take_array::<4>("magic").unwrap_err();
        assert_eq!(err.offset, 0);
    }
}
