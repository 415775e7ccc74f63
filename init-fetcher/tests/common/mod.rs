//! What the integration tests share: credentials files as the token service writes them, and
//! the binary's output.
use std::process::Output;

use hadoop_token::identifier::HDFS_DELEGATION_TOKEN;
use hadoop_token::{Credentials, DelegationIdentifier, IdentifierFormat, Secret, Token};

/// The alias and service of [`credentials`]' HDFS token.
pub const HDFS_SERVICE: &str = "ha-hdfs:ns1";

/// alice's delegation token identifier, number `sequence_number`.
pub fn identifier(sequence_number: i32) -> DelegationIdentifier {
    DelegationIdentifier {
        owner: "alice".into(),
        renewer: "yarn".into(),
        real_user: "hdfs/nn@EXAMPLE.COM".into(),
        issue_date: 1_764_072_000_123,
        max_date: 1_764_676_800_000,
        sequence_number,
        master_key_id: 3,
    }
}

/// A token of `kind` for `service` with [`identifier`] `sequence_number`; its password starts
/// with `TOPSECRET`, which no output may show.
pub fn token(kind: &str, service: &str, sequence_number: i32) -> Token {
    Token {
        identifier: identifier(sequence_number).encode(IdentifierFormat::Writable),
        password: Secret::from(b"TOPSECRETPW".as_slice()),
        kind: kind.into(),
        service: service.into(),
    }
}

/// A credentials file holding one HDFS token, number `sequence_number`.
pub fn credentials(sequence_number: i32) -> Credentials {
    let mut c = Credentials::default();
    c.add_token(
        HDFS_SERVICE,
        token(HDFS_DELEGATION_TOKEN, HDFS_SERVICE, sequence_number),
    );
    c
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
