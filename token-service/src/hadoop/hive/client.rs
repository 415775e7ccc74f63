//! One call to one metastore on a connection of its own: tokens are asked for once per
//! workload and renewed a few times a day, so a pool would only hold idle sockets. Blocking:
//! the `thrift` crate is synchronous, so callers run this on the blocking pool.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thrift::protocol::{TBinaryOutputProtocol, TInputProtocol, TOutputProtocol};
use thrift::transport::TBufferedWriteTransport;

use super::bounded::BoundedBinary;
use super::metastore_thrift::{MetaException, ThriftHiveMetastoreSyncClient};
use super::sasl::{self, FrameReader, FrameWriter, Gssapi, Protection, SaslError};
use crate::hadoop::error::{HadoopError, cap, from_metastore};
use crate::hadoop::failover::Server;
use crate::hadoop::spnego::Spnego;

/// Tokens and error messages are a few kB; nothing we read is larger.
const MAX_STRING: usize = 256 * 1024;
const MAX_FRAME: usize = 1024 * 1024;
const DEFAULT_PORT: u16 = 9083;

pub type Client =
    ThriftHiveMetastoreSyncClient<Box<dyn TInputProtocol + Send>, Box<dyn TOutputProtocol + Send>>;

/// A metastore URI, `thrift://host[:port]` as in `hive.metastore.uris`.
#[derive(Debug, Clone)]
pub struct Metastore {
    host: String,
    port: u16,
    label: String,
}

impl Metastore {
    pub fn parse(uri: &str) -> Result<Metastore, HadoopError> {
        let bad = |why: &str| {
            HadoopError::Config(format!(
                "bad metastore URI {uri:?}: {why}; expected thrift://host[:port]"
            ))
        };
        let rest = uri
            .strip_prefix("thrift://")
            .ok_or_else(|| bad("not thrift://"))?
            .trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '@', ' ']) {
            return Err(bad("expected only a host and port"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, _)) if !host.ends_with(']') && host.contains(':') => {
                return Err(bad("write an IPv6 address in brackets"));
            }
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            ),
            None => (rest, DEFAULT_PORT),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Metastore {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            label: format!("thrift://{host}:{port}"),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Server for Metastore {
    fn label(&self) -> &str {
        &self.label
    }
}

/// How we authenticate to the metastore.
#[derive(Clone)]
pub enum Sasl {
    /// `principal` is the metastore's (`hive.metastore.kerberos.principal`); `_HOST` stands
    /// for the host of the URI being called, as Hive's clients substitute it.
    Kerberos {
        spnego: Spnego,
        principal: String,
        /// The weakest SASL layer accepted.
        min: Protection,
    },
    /// Plain Thrift, for a metastore without SASL (which issues no tokens) and for tests.
    Off,
}

pub fn server_principal(template: &str, host: &str) -> String {
    template.replace("_HOST", &host.to_ascii_lowercase())
}

/// The socket under one deadline for the whole call: each read or write waits at most what is
/// left of it, so a server that trickles bytes cannot hold the thread past `timeout`.
#[derive(Clone)]
struct Deadline {
    stream: Arc<TcpStream>,
    until: Instant,
}

impl Deadline {
    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the call's deadline passed",
            ));
        }
        Ok(left)
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        (&*self.stream).read(buf)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        (&*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.stream).flush()
    }
}

/// Connects to one of `addrs` ([`resolve`]), authenticates and runs `f` with a client on that
/// connection, all within `timeout`.
pub fn call<T>(
    metastore: &Metastore,
    addrs: &[SocketAddr],
    auth: &Sasl,
    timeout: Duration,
    superuser: &str,
    f: impl FnOnce(&mut Client) -> thrift::Result<T>,
) -> Result<T, HadoopError> {
    let endpoint = metastore.label();
    let until = Instant::now() + timeout;
    let stream = Deadline {
        stream: Arc::new(connect(metastore, addrs, until, timeout)?),
        until,
    };
    let (input, output): (
        Box<dyn TInputProtocol + Send>,
        Box<dyn TOutputProtocol + Send>,
    ) = match auth {
        Sasl::Kerberos {
            spnego,
            principal,
            min,
        } => {
            let server = server_principal(principal, &metastore.host);
            let sasl_err = |e| sasl_error(endpoint, timeout, e);
            let mut mech = Gssapi::new(spnego, &server, *min).map_err(sasl_err)?;
            sasl::negotiate(&mut stream.clone(), &mut mech).map_err(sasl_err)?;
            let layer = mech
                .into_layer()
                .map_err(sasl_err)?
                .map(|l| Arc::new(Mutex::new(l)));
            (
                Box::new(BoundedBinary::new(
                    FrameReader::new(stream.clone(), MAX_FRAME, layer.clone()),
                    MAX_STRING,
                )),
                Box::new(TBinaryOutputProtocol::new(
                    FrameWriter::new(stream, layer),
                    true,
                )),
            )
        }
        Sasl::Off => (
            Box::new(BoundedBinary::new(
                BufReader::new(stream.clone()),
                MAX_STRING,
            )),
            Box::new(TBinaryOutputProtocol::new(
                TBufferedWriteTransport::new(stream),
                true,
            )),
        ),
    };
    let mut client = Client::new(input, output);
    f(&mut client).map_err(|e| thrift_error(endpoint, timeout, superuser, e))
}

/// The metastore's addresses, looked up without blocking a thread and within `timeout`.
pub async fn resolve(
    metastore: &Metastore,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, HadoopError> {
    let endpoint = metastore.label();
    let lookup = tokio::net::lookup_host((metastore.host.as_str(), metastore.port));
    let addrs: Vec<SocketAddr> = tokio::time::timeout(timeout, lookup)
        .await
        .map_err(|_| HadoopError::Timeout {
            endpoint: endpoint.to_owned(),
            timeout,
        })?
        .map_err(|e| HadoopError::Unreachable {
            endpoint: endpoint.to_owned(),
            detail: format!("the host does not resolve: {e}"),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(HadoopError::Unreachable {
            endpoint: endpoint.to_owned(),
            detail: "the host has no address".into(),
        });
    }
    Ok(addrs)
}

/// Connects to the first address that answers, each attempt given only what is left until
/// `until`.
fn connect(
    metastore: &Metastore,
    addrs: &[SocketAddr],
    until: Instant,
    timeout: Duration,
) -> Result<TcpStream, HadoopError> {
    let endpoint = metastore.label();
    let mut last = None;
    for addr in addrs {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(addr, left) {
            Ok(stream) => {
                stream
                    .set_nodelay(true)
                    .map_err(|e| io_error(endpoint, timeout, &e))?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => io_error(endpoint, timeout, &e),
        None => HadoopError::Timeout {
            endpoint: endpoint.to_owned(),
            timeout,
        },
    })
}

fn io_error(endpoint: &str, timeout: Duration, e: &std::io::Error) -> HadoopError {
    use std::io::ErrorKind::{TimedOut, WouldBlock};
    match e.kind() {
        // A socket read timeout is EAGAIN on Linux.
        TimedOut | WouldBlock => HadoopError::Timeout {
            endpoint: endpoint.to_owned(),
            timeout,
        },
        _ => HadoopError::Unreachable {
            endpoint: endpoint.to_owned(),
            detail: e.to_string(),
        },
    }
}

fn sasl_error(endpoint: &str, timeout: Duration, e: SaslError) -> HadoopError {
    match e {
        SaslError::Kerberos(source) => HadoopError::Auth {
            endpoint: endpoint.to_owned(),
            source,
        },
        SaslError::Io(e) => io_error(endpoint, timeout, &e),
        SaslError::Refused(_) | SaslError::Protocol(_) => HadoopError::Sasl {
            endpoint: endpoint.to_owned(),
            detail: e.to_string(),
        },
    }
}

fn thrift_error(
    endpoint: &str,
    timeout: Duration,
    superuser: &str,
    e: thrift::Error,
) -> HadoopError {
    match e {
        thrift::Error::User(user) => match user.downcast_ref::<MetaException>() {
            Some(meta) => {
                from_metastore(endpoint, meta.message.as_deref().unwrap_or(""), superuser)
            }
            None => HadoopError::Metastore {
                endpoint: endpoint.to_owned(),
                message: cap(&user.to_string()),
            },
        },
        thrift::Error::Transport(t) => {
            let kind = match t.kind {
                thrift::TransportErrorKind::TimedOut => std::io::ErrorKind::TimedOut,
                _ => std::io::ErrorKind::Other,
            };
            let would_block = ["temporarily unavailable", "would block"];
            let detail = if would_block.iter().any(|w| t.message.contains(w)) {
                std::io::Error::from(std::io::ErrorKind::WouldBlock)
            } else {
                std::io::Error::new(kind, cap(&t.message))
            };
            io_error(endpoint, timeout, &detail)
        }
        thrift::Error::Protocol(p) => HadoopError::BadResponse {
            endpoint: endpoint.to_owned(),
            detail: cap(&p.message),
        },
        thrift::Error::Application(a) => HadoopError::Metastore {
            endpoint: endpoint.to_owned(),
            message: cap(&format!("{:?}: {}", a.kind, a.message)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_as_hive_writes_them() {
        let m = Metastore::parse("thrift://hms1.example.com:9083").expect("uri");
        assert_eq!((m.host(), m.port), ("hms1.example.com", 9083));
        assert_eq!(m.label(), "thrift://hms1.example.com:9083");
        assert_eq!(
            Metastore::parse("thrift://hms").expect("default port").port,
            9083
        );
        assert_eq!(
            Metastore::parse("thrift://[::1]:1").expect("v6").host(),
            "::1"
        );
        for bad in [
            "http://hms:9083",
            "thrift://",
            "thrift://hms:port",
            "thrift://u@hms:1",
            "thrift://hms:1/db",
            "thrift://::1:9083",
        ] {
            assert!(Metastore::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn host_placeholders_become_the_called_host() {
        assert_eq!(
            server_principal("hive/_HOST@EXAMPLE.COM", "HMS1.example.com"),
            "hive/hms1.example.com@EXAMPLE.COM"
        );
        assert_eq!(
            server_principal("hive/fixed@EXAMPLE.COM", "hms1"),
            "hive/fixed@EXAMPLE.COM"
        );
    }

    #[test]
    fn meta_exceptions_are_typed_like_webhdfs_errors() {
        let meta = |m: &str| {
            thrift_error(
                "thrift://hms:9083",
                Duration::from_secs(1),
                "kube2hadoop",
                thrift::Error::User(Box::new(MetaException::new(m.to_owned()))),
            )
        };
        assert!(matches!(
            meta("User: kube2hadoop/h@R is not allowed to impersonate carol"),
            HadoopError::ProxyUserNotAllowed { .. }
        ));
        assert!(matches!(
            meta("InvalidToken: token does not exist: owner=alice"),
            HadoopError::TokenNotFound { .. }
        ));
        assert!(matches!(
            meta("alice tries to renew a token with non-matching renewer kube2hadoop"),
            HadoopError::NotRenewer { .. }
        ));
        let other = meta("Derby is on fire");
        assert!(matches!(other, HadoopError::Metastore { .. }), "{other:?}");
        assert!(other.to_string().contains("Derby is on fire"), "{other}");
        let timeout = thrift_error(
            "thrift://hms:9083",
            Duration::from_secs(1),
            "kube2hadoop",
            thrift::Error::from(std::io::Error::from(std::io::ErrorKind::WouldBlock)),
        );
        assert!(
            matches!(timeout, HadoopError::Timeout { .. }),
            "{timeout:?}"
        );
    }
}
