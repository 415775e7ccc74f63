//! Errors of the Hadoop token client, worded for the admin who has to fix them.
//!
//! No variant carries a request URL: renew and cancel URLs contain `token=`, so an endpoint is
//! always named by `scheme://host:port` and the operation only.

use std::time::Duration;

use serde::Deserialize;

use super::auth::AuthError;

/// Server messages are echoed for context but capped, so a chatty stack trace cannot flood logs.
const MAX_SERVER_MESSAGE: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum HadoopError {
    #[error("{endpoint}: cannot connect ({source}); check the URL and that the server is up")]
    Connect {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{endpoint}: no answer within {timeout:?}; check the server or raise the timeout")]
    Timeout { endpoint: String, timeout: Duration },
    #[error("{endpoint}: HTTP exchange failed: {source}")]
    Http {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{endpoint}: answered as a standby NameNode")]
    Standby { endpoint: String },
    #[error("nameservice {nameservice}: no active NameNode answered ({})", summary(.attempts))]
    NoActiveNameNode {
        nameservice: String,
        attempts: Vec<HadoopError>,
    },
    #[error("YARN {cluster}: no active ResourceManager answered ({})", summary(.attempts))]
    NoActiveResourceManager {
        cluster: String,
        attempts: Vec<HadoopError>,
    },
    #[error("Hive metastores {cluster}: none answered ({})", summary(.attempts))]
    NoMetastore {
        cluster: String,
        attempts: Vec<HadoopError>,
    },
    #[error(
        "{endpoint}: cannot connect or the connection broke ({detail}); check the URI and that the server is up"
    )]
    Unreachable { endpoint: String, detail: String },
    #[error(
        "{endpoint}: SASL (Kerberos) handshake failed: {detail}; check the configured server \
         principal and that the server runs with SASL on"
    )]
    Sasl { endpoint: String, detail: String },
    #[error("{endpoint}: MetaException: {message}")]
    Metastore { endpoint: String, message: String },
    #[error(
        "{source_label}: the token issued is not the user's: asked for {asked:?}, the server \
         issued it to {owner:?}; if the server ignored doAs, turn its proxy-user support on; \
         the token is cancelled, not handed out"
    )]
    WrongOwner {
        source_label: String,
        asked: String,
        owner: String,
    },
    #[error(
        "{endpoint}: the service may not act for this user: allow it with \
         hadoop.proxyuser.{superuser}.hosts and hadoop.proxyuser.{superuser}.groups (or .users) \
         in the server's core-site.xml, then refresh them (`hdfs dfsadmin \
         -refreshSuperUserGroupsConfiguration`, `yarn rmadmin -refreshSuperUserGroupsConfiguration`; \
         a Hive metastore or KMS reads them when it starts) (server said: {message})"
    )]
    ProxyUserNotAllowed {
        endpoint: String,
        superuser: String,
        message: String,
    },
    #[error(
        "{endpoint}: the token has expired and must be obtained again (server said: {message})"
    )]
    TokenExpired { endpoint: String, message: String },
    #[error(
        "{endpoint}: the server does not know this token: it was cancelled, expired and purged, \
         or issued by another cluster; obtain a new one (server said: {message})"
    )]
    TokenNotFound { endpoint: String, message: String },
    #[error(
        "{endpoint}: renewal refused: only the renewer named in the token may renew it, and it \
         must be this service's Kerberos short name (server said: {message})"
    )]
    NotRenewer { endpoint: String, message: String },
    #[error("{endpoint}: access denied (server said: {message})")]
    AccessDenied { endpoint: String, message: String },
    #[error(
        "{endpoint}: HTTP 401: the server did not accept our SPNEGO credentials; check that its \
         HTTP/<host> principal is in the same realm (or trusted) and that the URL uses that host name"
    )]
    Unauthorized { endpoint: String },
    #[error("{endpoint}: HTTP {status}: {exception}: {message}")]
    Remote {
        endpoint: String,
        status: u16,
        exception: String,
        message: String,
    },
    #[error("{endpoint}: unexpected HTTP {status}: {message}")]
    Status {
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error("{endpoint}: response not understood: {detail}")]
    BadResponse { endpoint: String, detail: String },
    #[error("{endpoint}: response larger than {limit} bytes; is this really a Hadoop server?")]
    TooLarge { endpoint: String, limit: usize },
    #[error("{endpoint}: authentication: {source}")]
    Auth {
        endpoint: String,
        #[source]
        source: AuthError,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("token from `{source_label}` cannot be handled here: no such endpoint is configured")]
    UnknownSource { source_label: String },
}

fn summary(attempts: &[HadoopError]) -> String {
    if attempts.is_empty() {
        return "no NameNode configured".into();
    }
    attempts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl HadoopError {
    /// Whether the failure is a server (or the KDC) being down, unreachable or not ready yet,
    /// so that asking again later can succeed without anyone changing anything. The token
    /// service answers those with 503 (the fetcher retries) and everything else with 502.
    pub fn is_transient(&self) -> bool {
        match self {
            HadoopError::Connect { .. }
            | HadoopError::Timeout { .. }
            | HadoopError::Http { .. }
            | HadoopError::Standby { .. } => true,
            HadoopError::Unreachable { .. } => true,
            HadoopError::NoActiveNameNode { attempts, .. }
            | HadoopError::NoActiveResourceManager { attempts, .. }
            | HadoopError::NoMetastore { attempts, .. } => {
                !attempts.is_empty() && attempts.iter().all(HadoopError::is_transient)
            }
            HadoopError::Auth { source, .. } => source.is_transient(),
            // A NameNode starting up (safe mode) or busy says so with these exceptions.
            HadoopError::Remote {
                exception, message, ..
            } => {
                let retriable = [
                    "SafeModeException",
                    "RetriableException",
                    "StandbyException",
                ];
                retriable
                    .iter()
                    .any(|e| exception.contains(e) || message.contains(e))
                    || message.to_ascii_lowercase().contains("safe mode")
            }
            HadoopError::Status { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// Whether the next NameNode of an HA pair should be tried after this error.
    pub fn try_next_namenode(&self) -> bool {
        matches!(
            self,
            HadoopError::Standby { .. }
                | HadoopError::Connect { .. }
                | HadoopError::Timeout { .. }
                | HadoopError::Unreachable { .. }
        )
    }
}

#[derive(Deserialize)]
struct RemoteExceptionBody {
    #[serde(rename = "RemoteException")]
    remote: RemoteException,
}

#[derive(Deserialize)]
struct RemoteException {
    #[serde(default)]
    exception: String,
    #[serde(rename = "javaClassName", default)]
    java_class_name: String,
    #[serde(default)]
    message: String,
}

/// Turns a non-2xx answer into the error an admin can act on. `superuser` is the short name of
/// the service principal, used to name the proxy-user settings.
/// `reason` is the HTTP reason phrase when the server sent a non-standard one: Hadoop's
/// authentication filter puts its exception there and sends no body.
pub fn from_response(
    endpoint: &str,
    status: u16,
    reason: Option<&str>,
    body: &[u8],
    superuser: &str,
) -> HadoopError {
    match serde_json::from_slice::<RemoteExceptionBody>(body) {
        Ok(RemoteExceptionBody { remote }) => {
            let class = if remote.java_class_name.is_empty() {
                &remote.exception
            } else {
                &remote.java_class_name
            };
            classify(
                endpoint,
                status,
                class,
                &remote.exception,
                &remote.message,
                superuser,
            )
        }
        // Errors raised in the authentication filter (the KMS's token operations among them)
        // come as a servlet error page: the message is in its title.
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let message = text
                .split_once("<title>")
                .and_then(|(_, rest)| rest.split_once("</title>"))
                .map_or(text.trim(), |(title, _)| title.trim());
            let message = match reason {
                Some(reason) if message.is_empty() => reason,
                _ => message,
            };
            classify(endpoint, status, "", "", message, superuser)
        }
    }
}

/// A server's error text without HTTP around it (a Hive `MetaException`'s message), typed as
/// [`from_response`] types WebHDFS errors; what it does not recognise stays a `Metastore` error.
pub fn from_metastore(endpoint: &str, message: &str, superuser: &str) -> HadoopError {
    // The metastore's token store says "token expired or does not exist" / "token does not
    // exist" where a NameNode says "can't be found in cache"; only here, where it is the only
    // thing a token call can be missing.
    let lower = message.to_ascii_lowercase();
    if lower.contains("token") && lower.contains("does not exist") {
        return HadoopError::TokenNotFound {
            endpoint: endpoint.to_owned(),
            message: cap(message),
        };
    }
    match classify(endpoint, 0, "", "MetaException", message, superuser) {
        HadoopError::Remote {
            endpoint, message, ..
        } => HadoopError::Metastore { endpoint, message },
        e => e,
    }
}

fn classify(
    endpoint: &str,
    status: u16,
    class: &str,
    exception: &str,
    message: &str,
    superuser: &str,
) -> HadoopError {
    let endpoint = endpoint.to_owned();
    let message = cap(message);
    let lower = message.to_ascii_lowercase();
    if class.ends_with("StandbyException") || lower.contains("standbyexception") {
        HadoopError::Standby { endpoint }
    } else if lower.contains("impersonate") {
        // WebHDFS may wrap the AuthorizationException in a SecurityException: match the text.
        HadoopError::ProxyUserNotAllowed {
            endpoint,
            superuser: superuser.to_owned(),
            message,
        }
    } else if lower.contains("is expired") || lower.contains("has expired") {
        HadoopError::TokenExpired { endpoint, message }
    } else if lower.contains("can't be found in cache")
        || lower.contains("unknown token")
        || lower.contains("token not found")
    {
        // Wordings of the secret manager: using, renewing and cancelling a token it lacks.
        HadoopError::TokenNotFound { endpoint, message }
    } else if lower.contains("non-matching renewer") || lower.contains("tries to renew") {
        HadoopError::NotRenewer { endpoint, message }
    } else if class.ends_with("AccessControlException") || class.ends_with("SecurityException") {
        HadoopError::AccessDenied { endpoint, message }
    } else if status == 401 {
        HadoopError::Unauthorized { endpoint }
    } else if exception.is_empty() && class.is_empty() {
        HadoopError::Status {
            endpoint,
            status,
            message,
        }
    } else {
        HadoopError::Remote {
            endpoint,
            status,
            exception: cap(exception),
            message,
        }
    }
}

/// A server's text as errors and logs may carry it: at most [`MAX_SERVER_MESSAGE`] characters,
/// control characters escaped (a server cannot forge log lines with a newline).
pub fn cap(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SERVER_MESSAGE + 8));
    for (n, c) in s.chars().enumerate() {
        if n == MAX_SERVER_MESSAGE {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(exception: &str, class: &str, message: &str) -> Vec<u8> {
        serde_json::json!({"RemoteException": {
            "exception": exception, "javaClassName": class, "message": message}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn standby_is_recognised_by_class() {
        let body = remote(
            "StandbyException",
            "org.apache.hadoop.ipc.StandbyException",
            "Operation category READ is not supported in state standby",
        );
        let e = from_response("http://nn2:9870", 403, None, &body, "kube2hadoop");
        assert!(matches!(e, HadoopError::Standby { .. }), "{e:?}");
        assert!(e.try_next_namenode());
    }

    #[test]
    fn proxy_user_refusal_names_the_settings() {
        let body = remote(
            "SecurityException",
            "java.lang.SecurityException",
            "Failed to obtain user group information: \
             org.apache.hadoop.security.authorize.AuthorizationException: \
             User: kube2hadoop@EXAMPLE.COM is not allowed to impersonate alice",
        );
        let e = from_response("http://nn:9870", 403, None, &body, "kube2hadoop");
        let text = e.to_string();
        assert!(
            matches!(e, HadoopError::ProxyUserNotAllowed { .. }),
            "{e:?}"
        );
        let body = remote(
            "AuthorizationException",
            "org.apache.hadoop.security.authorize.AuthorizationException",
            "User: kube2hadoop@EXAMPLE.COM is not allowed to impersonate alice",
        );
        let e = from_response("http://nn:9870", 403, None, &body, "kube2hadoop");
        let text2 = e.to_string();
        assert!(
            matches!(e, HadoopError::ProxyUserNotAllowed { .. }),
            "{e:?}"
        );
        assert!(
            text2.contains("hadoop.proxyuser.kube2hadoop.hosts"),
            "{text2}"
        );
        assert!(text.contains("impersonate"), "{text}");
    }

    #[test]
    fn token_lifecycle_errors_are_typed() {
        let expired = remote(
            "InvalidToken",
            "org.apache.hadoop.security.token.SecretManager$InvalidToken",
            "token (token for alice: HDFS_DELEGATION_TOKEN owner=alice) is expired, current time: x",
        );
        assert!(matches!(
            from_response("e", 403, None, &expired, "s"),
            HadoopError::TokenExpired { .. }
        ));
        let missing = remote(
            "InvalidToken",
            "org.apache.hadoop.security.token.SecretManager$InvalidToken",
            "token (HDFS_DELEGATION_TOKEN token 7 for alice) can't be found in cache",
        );
        assert!(matches!(
            from_response("e", 403, None, &missing, "s"),
            HadoopError::TokenNotFound { .. }
        ));
        for message in [
            "Renewal request for unknown token (token for alice: HDFS_DELEGATION_TOKEN owner=alice)",
            "Token not found token for alice: HDFS_DELEGATION_TOKEN owner=alice",
        ] {
            let body = remote(
                "InvalidToken",
                "org.apache.hadoop.security.token.SecretManager$InvalidToken",
                message,
            );
            assert!(matches!(
                from_response("e", 403, None, &body, "s"),
                HadoopError::TokenNotFound { .. }
            ));
        }
        let renewer = remote(
            "AccessControlException",
            "org.apache.hadoop.security.AccessControlException",
            "bob tries to renew a token (x) with non-matching renewer kube2hadoop",
        );
        assert!(matches!(
            from_response("e", 403, None, &renewer, "s"),
            HadoopError::NotRenewer { .. }
        ));
        let denied = remote(
            "AccessControlException",
            "org.apache.hadoop.security.AccessControlException",
            "Permission denied",
        );
        assert!(matches!(
            from_response("e", 403, None, &denied, "s"),
            HadoopError::AccessDenied { .. }
        ));
    }

    #[test]
    fn non_json_bodies_fall_back_to_status() {
        assert!(matches!(
            from_response("e", 401, None, b"<html>", "s"),
            HadoopError::Unauthorized { .. }
        ));
        assert!(matches!(
            from_response("e", 502, None, b"", "s"),
            HadoopError::Status { status: 502, .. }
        ));
    }

    #[test]
    fn servlet_error_pages_are_classified_by_their_title() {
        let page = b"<html><head><title>Error 403 org.apache.hadoop.security.token.\
            SecretManager$InvalidToken: Renewal request for unknown token (kms-dt owner=alice)\
            </title></head><body>...</body></html>";
        let e = from_response("kms", 403, None, page, "s");
        assert!(matches!(e, HadoopError::TokenNotFound { .. }), "{e:?}");
        let page = b"<html><title>Error 500 boom</title></html>";
        let e = from_response("kms", 500, None, page, "s");
        assert!(e.to_string().contains("boom"), "{e}");
        let reason = "org.apache.hadoop.security.token.SecretManager$InvalidToken: \
            Renewal request for unknown token (kms-dt owner=alice)";
        let e = from_response("kms", 403, Some(reason), b"", "s");
        assert!(matches!(e, HadoopError::TokenNotFound { .. }), "{e:?}");
    }

    #[test]
    fn down_and_starting_servers_are_transient_refusals_are_not() {
        let timeout = HadoopError::Timeout {
            endpoint: "http://nn:9870 GETDELEGATIONTOKEN".into(),
            timeout: Duration::from_secs(30),
        };
        assert!(timeout.is_transient());
        let safe_mode = remote(
            "SafeModeException",
            "org.apache.hadoop.hdfs.server.namenode.SafeModeException",
            "Cannot issue delegation token. Name node is in safe mode.",
        );
        let e = from_response("nn", 403, None, &safe_mode, "s");
        assert!(e.is_transient(), "{e:?}");
        let retriable = remote(
            "RetriableException",
            "org.apache.hadoop.ipc.RetriableException",
            "NameNode still not started",
        );
        assert!(from_response("nn", 403, None, &retriable, "s").is_transient());
        assert!(from_response("nn", 503, None, b"", "s").is_transient());
        let kdc = HadoopError::Auth {
            endpoint: "nn".into(),
            source: AuthError::KdcUnreachable {
                principal: "svc@R".into(),
            },
        };
        assert!(kdc.is_transient());
        let all_down = HadoopError::NoActiveNameNode {
            nameservice: "ns1".into(),
            attempts: vec![timeout, kdc],
        };
        assert!(all_down.is_transient());
        // Fixing these needs an admin: retrying would only repeat the refusal.
        let impersonate = remote(
            "AuthorizationException",
            "org.apache.hadoop.security.authorize.AuthorizationException",
            "User: kube2hadoop@EXAMPLE.COM is not allowed to impersonate alice",
        );
        assert!(!from_response("nn", 403, None, &impersonate, "s").is_transient());
        assert!(!from_response("nn", 401, None, b"", "s").is_transient());
        assert!(!HadoopError::Config("bad".into()).is_transient());
        let keytab = HadoopError::Auth {
            endpoint: "nn".into(),
            source: AuthError::Keytab {
                principal: "svc@R".into(),
                keytab: "/k".into(),
            },
        };
        assert!(!keytab.is_transient());
        let mixed = HadoopError::NoActiveNameNode {
            nameservice: "ns1".into(),
            attempts: vec![keytab],
        };
        assert!(!mixed.is_transient());
    }

    #[test]
    fn server_text_cannot_forge_log_lines() {
        assert_eq!(cap("a\nfake=1\r\u{7}"), "a\\nfake=1\\r\\u{7}");
    }

    #[test]
    fn long_server_messages_are_capped() {
        let body = remote("IOException", "java.io.IOException", &"x".repeat(10_000));
        let text = from_response("e", 500, None, &body, "s").to_string();
        assert!(text.len() < 1_000, "{}", text.len());
    }
}
