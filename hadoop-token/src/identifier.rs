//! The public fields of delegation-token identifiers, by token kind.
//!
//! HDFS, WebHDFS, KMS and the Hive metastore use `AbstractDelegationTokenIdentifier`'s Writable layout: version byte 0,
//! owner, renewer and real user as `Text`, issue and max dates as VLong milliseconds, sequence
//! number and master key id as VInt. YARN's ResourceManager uses the protobuf
//! `YARNDelegationTokenIdentifierProto` instead. Other kinds are left as opaque bytes.

use prost::Message as _;

use crate::codec::{DecodeError, Problem, Reader};
use crate::proto::YarnDelegationTokenIdentifierProto;
use crate::writable::{read_text, read_vint, read_vlong, write_text, write_vint, write_vlong};

pub const HDFS_DELEGATION_TOKEN: &str = "HDFS_DELEGATION_TOKEN";
pub const WEBHDFS_DELEGATION: &str = "WEBHDFS delegation";
pub const SWEBHDFS_DELEGATION: &str = "SWEBHDFS delegation";
pub const KMS_DELEGATION_TOKEN: &str = "kms-dt";
pub const RM_DELEGATION_TOKEN: &str = "RM_DELEGATION_TOKEN";
/// The Hive metastore's (`org.apache.hadoop.hive.metastore.security.DelegationTokenIdentifier`,
/// an `AbstractDelegationTokenIdentifier`).
pub const HIVE_DELEGATION_TOKEN: &str = "HIVE_DELEGATION_TOKEN";

/// `AbstractDelegationTokenIdentifier.VERSION`.
const WRITABLE_VERSION: u8 = 0;

/// How a kind's identifier is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierFormat {
    /// `AbstractDelegationTokenIdentifier` Writable.
    Writable,
    /// `YARNDelegationTokenIdentifierProto`, not length-delimited.
    YarnProto,
}

impl IdentifierFormat {
    pub fn for_kind(kind: &str) -> Option<IdentifierFormat> {
        match kind {
            HDFS_DELEGATION_TOKEN
            | WEBHDFS_DELEGATION
            | SWEBHDFS_DELEGATION
            | KMS_DELEGATION_TOKEN
            | HIVE_DELEGATION_TOKEN => Some(IdentifierFormat::Writable),
            RM_DELEGATION_TOKEN => Some(IdentifierFormat::YarnProto),
            _ => None,
        }
    }
}

/// The public fields every delegation token identifier carries. Dates are milliseconds since
/// the Unix epoch, as Hadoop stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelegationIdentifier {
    pub owner: String,
    pub renewer: String,
    pub real_user: String,
    pub issue_date: i64,
    pub max_date: i64,
    pub sequence_number: i32,
    pub master_key_id: i32,
}

/// Decodes `bytes` as the identifier of a token of `kind`; `Ok(None)` for unknown kinds.
pub fn decode(kind: &str, bytes: &[u8]) -> Result<Option<DelegationIdentifier>, DecodeError> {
    match IdentifierFormat::for_kind(kind) {
        Some(format) => DelegationIdentifier::decode(format, bytes).map(Some),
        None => Ok(None),
    }
}

impl DelegationIdentifier {
    pub fn decode(format: IdentifierFormat, bytes: &[u8]) -> Result<Self, DecodeError> {
        match format {
            IdentifierFormat::Writable => Self::decode_writable(bytes),
            IdentifierFormat::YarnProto => Self::decode_yarn_proto(bytes),
        }
    }

    pub fn encode(&self, format: IdentifierFormat) -> Vec<u8> {
        match format {
            IdentifierFormat::Writable => self.encode_writable(),
            IdentifierFormat::YarnProto => self.encode_yarn_proto(),
        }
    }

    fn decode_writable(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.take_u8("identifier version")?;
        if version != WRITABLE_VERSION {
            return Err(DecodeError {
                offset: 0,
                problem: Problem::UnknownIdentifierVersion(version),
            });
        }
        let id = DelegationIdentifier {
            owner: read_text(&mut r, "identifier owner")?,
            renewer: read_text(&mut r, "identifier renewer")?,
            real_user: read_text(&mut r, "identifier real user")?,
            issue_date: read_vlong(&mut r, "identifier issue date")?,
            max_date: read_vlong(&mut r, "identifier max date")?,
            sequence_number: read_vint(&mut r, "identifier sequence number")?,
            master_key_id: read_vint(&mut r, "identifier master key id")?,
        };
        r.all("delegation token identifier")?;
        Ok(id)
    }

    fn encode_writable(&self) -> Vec<u8> {
        let mut out = vec![WRITABLE_VERSION];
        write_text(&mut out, &self.owner);
        write_text(&mut out, &self.renewer);
        write_text(&mut out, &self.real_user);
        write_vlong(&mut out, self.issue_date);
        write_vlong(&mut out, self.max_date);
        write_vint(&mut out, self.sequence_number);
        write_vint(&mut out, self.master_key_id);
        out
    }

    fn decode_yarn_proto(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto = YarnDelegationTokenIdentifierProto::decode(bytes).map_err(|e| DecodeError {
            offset: 0,
            problem: Problem::Protobuf {
                what: "YARN delegation token identifier",
                reason: e.to_string(),
            },
        })?;
        let text = |field: Option<Vec<u8>>, what| {
            String::from_utf8(field.unwrap_or_default()).map_err(|_| DecodeError {
                offset: 0,
                problem: Problem::InvalidUtf8 { what },
            })
        };
        Ok(DelegationIdentifier {
            owner: text(proto.owner, "identifier owner")?,
            renewer: text(proto.renewer, "identifier renewer")?,
            real_user: text(proto.real_user, "identifier real user")?,
            issue_date: proto.issue_date.unwrap_or_default(),
            max_date: proto.max_date.unwrap_or_default(),
            sequence_number: proto.sequence_number.unwrap_or_default(),
            master_key_id: proto.master_key_id.unwrap_or_default(),
        })
    }

    fn encode_yarn_proto(&self) -> Vec<u8> {
        // YARNDelegationTokenIdentifier sets every field, empty strings included.
        YarnDelegationTokenIdentifierProto {
            owner: Some(self.owner.clone().into_bytes()),
            renewer: Some(self.renewer.clone().into_bytes()),
            real_user: Some(self.real_user.clone().into_bytes()),
            issue_date: Some(self.issue_date),
            max_date: Some(self.max_date),
            sequence_number: Some(self.sequence_number),
            master_key_id: Some(self.master_key_id),
        }
        .encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, arb_identifier};
    use proptest::prelude::*;

    #[test]
    fn writable_layout_and_minimal() {
        let minimal = [0u8, 0, 0, 0, 0, 0, 0, 0];
        let id = DelegationIdentifier::decode(IdentifierFormat::Writable, &minimal).unwrap();
        assert_eq!(id, DelegationIdentifier::default());
        assert_eq!(id.encode(IdentifierFormat::Writable), minimal);

        let bytes = fixtures::identifier().encode(IdentifierFormat::Writable);
        assert_eq!(&bytes[..7], &[0, 5, b'a', b'l', b'i', b'c', b'e']);
    }

    #[test]
    fn writable_errors_name_offsets() {
        let bytes = fixtures::identifier().encode(IdentifierFormat::Writable);
        let err =
            DelegationIdentifier::decode(IdentifierFormat::Writable, &bytes[..bytes.len() - 1])
                .unwrap_err();
        assert_eq!(err.offset, bytes.len() - 1);
        assert!(matches!(err.problem, Problem::Truncated { .. }));

        let mut trailing = bytes.clone();
        trailing.push(9);
        let err = DelegationIdentifier::decode(IdentifierFormat::Writable, &trailing).unwrap_err();
        assert_eq!(err.offset, bytes.len());
        assert!(matches!(
            err.problem,
            Problem::TrailingBytes { count: 1, .. }
        ));

        let mut versioned = bytes.clone();
        versioned[0] = 1;
        let err = DelegationIdentifier::decode(IdentifierFormat::Writable, &versioned).unwrap_err();
        assert_eq!(err.problem, Problem::UnknownIdentifierVersion(1));

        // Owner declares 0x7f bytes but only a few follow.
        let err =
            DelegationIdentifier::decode(IdentifierFormat::Writable, &[0, 0x7f, b'a']).unwrap_err();
        assert_eq!(err.offset, 2);
        assert!(matches!(
            err.problem,
            Problem::Truncated { needed: 127, .. }
        ));

        let err = DelegationIdentifier::decode(IdentifierFormat::Writable, &[]).unwrap_err();
        assert_eq!(err.offset, 0);
    }

    #[test]
    fn yarn_proto_minimal_and_garbage() {
        let id = DelegationIdentifier::decode(IdentifierFormat::YarnProto, &[]).unwrap();
        assert_eq!(id, DelegationIdentifier::default());
        let err = DelegationIdentifier::decode(IdentifierFormat::YarnProto, &[0x0a, 0x05, b'a'])
            .unwrap_err();
        assert!(matches!(err.problem, Problem::Protobuf { .. }));
        let err = DelegationIdentifier::decode(IdentifierFormat::YarnProto, &[0x0a, 0x01, 0xff])
            .unwrap_err();
        assert!(matches!(err.problem, Problem::InvalidUtf8 { .. }));
    }

    #[test]
    fn kinds_select_formats_and_unknown_stay_opaque() {
        let w = fixtures::identifier().encode(IdentifierFormat::Writable);
        for kind in [
            HDFS_DELEGATION_TOKEN,
            WEBHDFS_DELEGATION,
            SWEBHDFS_DELEGATION,
            KMS_DELEGATION_TOKEN,
            HIVE_DELEGATION_TOKEN,
        ] {
            assert_eq!(decode(kind, &w).unwrap(), Some(fixtures::identifier()));
        }
        let y = fixtures::identifier().encode(IdentifierFormat::YarnProto);
        assert_eq!(
            decode(RM_DELEGATION_TOKEN, &y).unwrap(),
            Some(fixtures::identifier())
        );
        assert_eq!(decode("SOMETHING_ELSE", b"\xff\xff").unwrap(), None);
    }

    proptest! {
        #[test]
        fn round_trips_in_both_formats(id in arb_identifier()) {
            for format in [IdentifierFormat::Writable, IdentifierFormat::YarnProto] {
                let bytes = id.encode(format);
                prop_assert_eq!(DelegationIdentifier::decode(format, &bytes).unwrap(), id.clone());
            }
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            let _ = DelegationIdentifier::decode(IdentifierFormat::Writable, &bytes);
            let _ = DelegationIdentifier::decode(IdentifierFormat::YarnProto, &bytes);
        }
    }
}
