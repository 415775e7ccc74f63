//! Hand-written prost messages for the Hadoop protobufs this crate reads (no protoc needed):
//! `TokenProto`, `CredentialsKVProto`, `CredentialsProto` from hadoop-common `Security.proto`, and
//! `YARNDelegationTokenIdentifierProto` from `yarn_security_token.proto`. All are proto2.
//!
//! Text fields are `bytes` here so that invalid UTF-8 becomes our own typed error instead of
//! prost's, and secret fields are wiped when the message is dropped.

use zeroize::Zeroize;

#[derive(Clone, PartialEq, prost::Message)]
pub struct TokenProto {
    #[prost(bytes = "vec", required, tag = "1")]
    pub identifier: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub password: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "3")]
    pub kind: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "4")]
    pub service: Vec<u8>,
}

impl Drop for TokenProto {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CredentialsKvProto {
    #[prost(bytes = "vec", required, tag = "1")]
    pub alias: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub token: Option<TokenProto>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub secret: Option<Vec<u8>>,
}

impl Drop for CredentialsKvProto {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CredentialsProto {
    #[prost(message, repeated, tag = "1")]
    pub tokens: Vec<CredentialsKvProto>,
    #[prost(message, repeated, tag = "2")]
    pub secrets: Vec<CredentialsKvProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct YarnDelegationTokenIdentifierProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub owner: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub renewer: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub real_user: Option<Vec<u8>>,
    #[prost(int64, optional, tag = "4")]
    pub issue_date: Option<i64>,
    #[prost(int64, optional, tag = "5")]
    pub max_date: Option<i64>,
    #[prost(int32, optional, tag = "6")]
    pub sequence_number: Option<i32>,
    #[prost(int32, optional, tag = "7")]
    pub master_key_id: Option<i32>,
}
