//! Thrift's binary protocol with a bound on string sizes.
//!
//! The `thrift` crate allocates whatever length a peer announces before reading it (and panics on
//! a negative one), so a wrong port or a broken server could make us reserve gigabytes. Our calls
//! only ever read short strings (a token, an error message), so every length is checked first;
//! all else is the crate's own binary protocol, which keeps no state between calls.

use std::io::Read;

use thrift::protocol::{
    TBinaryInputProtocol, TFieldIdentifier, TInputProtocol, TListIdentifier, TMapIdentifier,
    TMessageIdentifier, TMessageType, TSetIdentifier, TStructIdentifier,
};
use thrift::{ProtocolError, ProtocolErrorKind};

pub struct BoundedBinary<R> {
    inner: R,
    max_string: usize,
}

impl<R: Read> BoundedBinary<R> {
    pub fn new(inner: R, max_string: usize) -> BoundedBinary<R> {
        BoundedBinary { inner, max_string }
    }

    fn binary(&mut self) -> TBinaryInputProtocol<&mut R> {
        TBinaryInputProtocol::new(&mut self.inner, true)
    }
}

fn protocol_error(kind: ProtocolErrorKind, message: String) -> thrift::Error {
    thrift::Error::Protocol(ProtocolError::new(kind, message))
}

impl<R: Read> TInputProtocol for BoundedBinary<R> {
    fn read_message_begin(&mut self) -> thrift::Result<TMessageIdentifier> {
        let mut header = [0u8; 4];
        self.inner.read_exact(&mut header)?;
        // Strict binary protocol only: metastores have always sent the version header.
        if header[0..2] != [0x80, 0x01] {
            return Err(protocol_error(
                ProtocolErrorKind::BadVersion,
                format!(
                    "not a Thrift binary reply (first bytes {:02x?})",
                    &header[0..2]
                ),
            ));
        }
        let message_type = TMessageType::try_from(header[3])?;
        let name = self.read_string()?;
        let sequence_number = self.read_i32()?;
        Ok(TMessageIdentifier::new(name, message_type, sequence_number))
    }

    fn read_message_end(&mut self) -> thrift::Result<()> {
        self.binary().read_message_end()
    }

    fn read_struct_begin(&mut self) -> thrift::Result<Option<TStructIdentifier>> {
        self.binary().read_struct_begin()
    }

    fn read_struct_end(&mut self) -> thrift::Result<()> {
        self.binary().read_struct_end()
    }

    fn read_field_begin(&mut self) -> thrift::Result<TFieldIdentifier> {
        self.binary().read_field_begin()
    }

    fn read_field_end(&mut self) -> thrift::Result<()> {
        self.binary().read_field_end()
    }

    fn read_bool(&mut self) -> thrift::Result<bool> {
        self.binary().read_bool()
    }

    fn read_bytes(&mut self) -> thrift::Result<Vec<u8>> {
        let len = self.read_i32()?;
        let len = usize::try_from(len).map_err(|_| {
            protocol_error(ProtocolErrorKind::NegativeSize, format!("length {len}"))
        })?;
        if len > self.max_string {
            return Err(protocol_error(
                ProtocolErrorKind::SizeLimit,
                format!("a string of {len} bytes, more than {}", self.max_string),
            ));
        }
        let mut buf = vec![0u8; len];
        self.inner.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn read_i8(&mut self) -> thrift::Result<i8> {
        self.binary().read_i8()
    }

    fn read_i16(&mut self) -> thrift::Result<i16> {
        self.binary().read_i16()
    }

    fn read_i32(&mut self) -> thrift::Result<i32> {
        self.binary().read_i32()
    }

    fn read_i64(&mut self) -> thrift::Result<i64> {
        self.binary().read_i64()
    }

    fn read_double(&mut self) -> thrift::Result<f64> {
        self.binary().read_double()
    }

    fn read_string(&mut self) -> thrift::Result<String> {
        String::from_utf8(self.read_bytes()?).map_err(From::from)
    }

    fn read_list_begin(&mut self) -> thrift::Result<TListIdentifier> {
        self.binary().read_list_begin()
    }

    fn read_list_end(&mut self) -> thrift::Result<()> {
        self.binary().read_list_end()
    }

    fn read_set_begin(&mut self) -> thrift::Result<TSetIdentifier> {
        self.binary().read_set_begin()
    }

    fn read_set_end(&mut self) -> thrift::Result<()> {
        self.binary().read_set_end()
    }

    fn read_map_begin(&mut self) -> thrift::Result<TMapIdentifier> {
        self.binary().read_map_begin()
    }

    fn read_map_end(&mut self) -> thrift::Result<()> {
        self.binary().read_map_end()
    }

    fn read_byte(&mut self) -> thrift::Result<u8> {
        self.binary().read_byte()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn reply(len: i32) -> Vec<u8> {
        let mut b = vec![0x80, 0x01, 0x00, 0x02];
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(b"get_delegation_token");
        b
    }

    #[test]
    fn a_normal_header_reads_like_the_binary_protocol() {
        let mut data = reply(20);
        data.extend_from_slice(&7i32.to_be_bytes());
        let id = BoundedBinary::new(Cursor::new(data), 64)
            .read_message_begin()
            .expect("header");
        assert_eq!(id.name, "get_delegation_token");
        assert_eq!(id.message_type, TMessageType::Reply);
        assert_eq!(id.sequence_number, 7);
    }

    #[test]
    fn huge_negative_and_foreign_lengths_fail_without_allocating() {
        for len in [i32::MAX, -1, 65] {
            let err = BoundedBinary::new(Cursor::new(reply(len)), 64)
                .read_message_begin()
                .expect_err("refused");
            assert!(matches!(err, thrift::Error::Protocol(_)), "{len}: {err:?}");
        }
        let err = BoundedBinary::new(Cursor::new(b"HTTP/1.1 400".to_vec()), 64)
            .read_message_begin()
            .expect_err("not Thrift");
        assert!(
            matches!(&err, thrift::Error::Protocol(p) if p.message.contains("not a Thrift binary reply")),
            "{err:?}"
        );
    }
}
