//! What the unit tests share: one sample of each type and generators of any value.
use crate::{Credentials, DelegationIdentifier, Secret, Token};
use proptest::prelude::*;

/// An identifier with every field set.
pub fn identifier() -> DelegationIdentifier {
    DelegationIdentifier {
        owner: "alice".into(),
        renewer: "yarn".into(),
        real_user: "hdfs".into(),
        issue_date: 1_764_072_000_000,
        max_date: 1_764_676_800_000,
        sequence_number: 7,
        master_key_id: 2,
    }
}

/// A token whose identifier is the start of a Writable one (version 0, owner "alice").
pub fn token() -> Token {
    Token {
        identifier: vec![0, 5, b'a', b'l', b'i', b'c', b'e'],
        password: Secret::from(b"pw".as_slice()),
        kind: "HDFS_DELEGATION_TOKEN".into(),
        service: "ha-hdfs:ns1".into(),
    }
}

/// Two tokens (one with a whole Writable identifier, one with every other field empty) and a
/// secret key.
pub fn credentials() -> Credentials {
    let mut c = Credentials::default();
    c.add_token(
        "ha-hdfs:ns1",
        Token {
            identifier: vec![0, 1, b'a', 0, 0, 1, 2, 3, 4],
            password: Secret::from(b"secret-pw".as_slice()),
            kind: "HDFS_DELEGATION_TOKEN".into(),
            service: "ha-hdfs:ns1".into(),
        },
    );
    c.add_token(
        "kms",
        Token {
            kind: "kms-dt".into(),
            ..Token::default()
        },
    );
    c.add_secret_key("spark.key", Secret::from(b"k3y".as_slice()));
    c
}

pub fn arb_identifier() -> impl Strategy<Value = DelegationIdentifier> {
    (
        (".{0,12}", ".{0,12}", ".{0,12}"),
        (any::<i64>(), any::<i64>(), any::<i32>(), any::<i32>()),
    )
        .prop_map(
            |((owner, renewer, real_user), (issue_date, max_date, seq, key))| {
                DelegationIdentifier {
                    owner,
                    renewer,
                    real_user,
                    issue_date,
                    max_date,
                    sequence_number: seq,
                    master_key_id: key,
                }
            },
        )
}

pub fn arb_token() -> impl Strategy<Value = Token> {
    (
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..32),
        ".{0,24}",
        ".{0,24}",
    )
        .prop_map(|(identifier, password, kind, service)| Token {
            identifier,
            password: Secret::new(password),
            kind,
            service,
        })
}
