// The delegation-token calls of the Hive Metastore's Thrift service (hive_metastore.thrift,
// `service ThriftHiveMetastore`), and nothing else: Thrift dispatches by method name and field
// id, so this subset is wire-compatible with every metastore since Hive 0.7, while the full
// IDL would generate some 200,000 lines of Rust we never call. The names, ids and types below
// must stay exactly those of the upstream IDL. Regenerate with `token-service/thrift/gen.sh`.

exception MetaException {
  1: string message
}

service ThriftHiveMetastore {
  // A token for `token_owner`, renewable by `renewer_kerberos_principal_name`, as the token's
  // URL-safe string form. The caller must be the owner or allowed to impersonate it
  // (hadoop.proxyuser.* in the metastore's core-site.xml).
  string get_delegation_token(1: string token_owner, 2: string renewer_kerberos_principal_name)
    throws (1: MetaException o1)

  // The token's new expiry, ms since the epoch; only its renewer may call this.
  i64 renew_delegation_token(1: string token_str_form) throws (1: MetaException o1)

  void cancel_delegation_token(1: string token_str_form) throws (1: MetaException o1)

}
