//! The provider against a fake metastore served by the generated Thrift processor (plain
//! Thrift: the SASL handshake needs a KDC and is proved in e2e against Hive's own server).

use std::io::BufReader;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::server::TProcessor as _;
use thrift::transport::TBufferedWriteTransport;

use super::client::{self, Metastore, Sasl};
use super::metastore_thrift::{
    MetaException, ThriftHiveMetastoreSyncHandler, ThriftHiveMetastoreSyncProcessor,
};
use super::*;

const TOKEN: &str = "HIVE-SECRET-URL-STRING";

#[derive(Default)]
struct Calls(Mutex<Vec<String>>);

/// Follows `HMSHandler`: proxy rules allow alice only; only the token it issued is known.
struct FakeMetastore {
    calls: Arc<Calls>,
}

fn meta(message: &str) -> thrift::Error {
    thrift::Error::User(Box::new(MetaException::new(message.to_owned())))
}

impl ThriftHiveMetastoreSyncHandler for FakeMetastore {
    fn handle_get_delegation_token(
        &self,
        owner: String,
        renewer: String,
    ) -> thrift::Result<String> {
        self.record(format!("get {owner} {renewer}"));
        if owner != "alice" {
            return Err(meta(&format!(
                "User: kube2hadoop/localhost@EXAMPLE.COM is not allowed to impersonate {owner}"
            )));
        }
        Ok(TOKEN.to_owned())
    }

    fn handle_renew_delegation_token(&self, token: String) -> thrift::Result<i64> {
        self.record(format!("renew {token}"));
        match token.as_str() {
            TOKEN => Ok(1_700_000_000_000),
            _ => Err(meta("InvalidToken: token does not exist")),
        }
    }

    fn handle_cancel_delegation_token(&self, token: String) -> thrift::Result<()> {
        self.record(format!("cancel {token}"));
        Ok(())
    }
}

impl FakeMetastore {
    fn record(&self, call: String) {
        if let Ok(mut calls) = self.calls.0.lock() {
            calls.push(call);
        }
    }
}

/// Serves one connection at a time, each until the client closes it.
fn serve() -> (String, Arc<Calls>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let uri = format!("thrift://{}", listener.local_addr().expect("addr"));
    let calls = Arc::new(Calls::default());
    let processor = ThriftHiveMetastoreSyncProcessor::new(FakeMetastore {
        calls: Arc::clone(&calls),
    });
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let Ok(read) = stream.try_clone() else { return };
            let mut i = TBinaryInputProtocol::new(BufReader::new(read), true);
            let mut o = TBinaryOutputProtocol::new(TBufferedWriteTransport::new(stream), true);
            while processor.process(&mut i, &mut o).is_ok() {}
        }
    });
    (uri, calls)
}

fn dead_uri() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("thrift://{}", l.local_addr().expect("addr"))
}

fn hive(metastores: Vec<String>) -> Hive {
    Hive::new(
        HiveConfig {
            name: "warehouse".into(),
            metastores,
            principal: None,
            renewer: "kube2hadoop".into(),
            token_signature: "k2h-hms".into(),
            min_protection: Default::default(),
        },
        None,
        Duration::from_secs(5),
        "kube2hadoop".into(),
    )
    .expect("config")
}

#[tokio::test]
async fn lifecycle_asks_as_proxy_and_labels_the_token_by_signature() {
    let (uri, calls) = serve();
    let h = hive(vec![uri]);
    let t = h.obtain("alice").await.expect("token");
    assert_eq!(
        (t.kind.as_str(), t.service.as_str(), t.source.as_str()),
        ("HIVE_DELEGATION_TOKEN", "k2h-hms", "hive:warehouse")
    );
    assert_eq!(t.url_string(), TOKEN);
    assert_eq!(h.renew(&t).await.expect("renew"), 1_700_000_000_000);
    h.cancel(&t).await.expect("cancel");
    let seen = calls.0.lock().expect("calls").clone();
    assert_eq!(
        seen,
        [
            "get alice kube2hadoop".to_owned(),
            format!("renew {TOKEN}"),
            format!("cancel {TOKEN}")
        ]
    );
}

#[tokio::test]
async fn a_proxy_refusal_is_typed_and_a_dead_metastore_is_skipped() {
    let (uri, _) = serve();
    let h = hive(vec![dead_uri(), uri]);
    let err = h.obtain("carol").await.expect_err("carol is not allowed");
    assert!(
        matches!(err, HadoopError::ProxyUserNotAllowed { .. }),
        "{err:?}"
    );
    assert!(!err.is_transient());
    h.obtain("alice").await.expect("the live metastore answers");
    let gone = IssuedToken::new(
        "hive:warehouse".into(),
        HIVE_KIND.into(),
        String::new(),
        "x".into(),
    );
    let err = h.renew(&gone).await.expect_err("unknown token");
    assert!(matches!(err, HadoopError::TokenNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn every_metastore_down_is_transient_and_names_them() {
    let h = hive(vec![dead_uri(), dead_uri()]);
    let err = h.obtain("alice").await.expect_err("none up");
    assert!(
        matches!(&err, HadoopError::NoMetastore { attempts, .. } if attempts.len() == 2),
        "{err:?}"
    );
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("warehouse"), "{err}");
}

#[tokio::test]
async fn a_silent_server_times_out_instead_of_hanging() {
    // Accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let uri = format!("thrift://{}", listener.local_addr().expect("addr"));
    let mut h = hive(vec![uri]);
    h.timeout = Duration::from_millis(300);
    let err = h.obtain("alice").await.expect_err("no answer");
    assert!(matches!(err, HadoopError::Timeout { .. }), "{err:?}");
    drop(listener);
}

#[tokio::test]
async fn a_server_trickling_bytes_is_cut_off_at_the_calls_deadline() {
    use std::io::{Read as _, Write as _};
    // Answers every request with the start of a reply, one byte every 100 ms, forever: each
    // read succeeds within any per-read timeout.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let uri = format!("thrift://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut request = [0u8; 64];
            let _ = s.read(&mut request);
            // A reply header whose method name is 200 kB long, then the name byte by byte.
            let _ = s.write_all(&[0x80, 0x01, 0x00, 0x02, 0x00, 0x03, 0x0d, 0x40]);
            while s.write_all(b"a").is_ok() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    // The call itself, without the request's backstop around it.
    let metastore = Metastore::parse(&uri).expect("uri");
    let addrs = client::resolve(&metastore, Duration::from_secs(5))
        .await
        .expect("resolves");
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        client::call(
            &metastore,
            &addrs,
            &Sasl::Off,
            Duration::from_millis(500),
            "kube2hadoop",
            |c| c.get_delegation_token("alice".into(), "kube2hadoop".into()),
        )
    })
    .await
    .expect("the worker ends");
    let err = result.expect_err("never a whole reply");
    assert!(matches!(err, HadoopError::Timeout { .. }), "{err:?}");
    // Not a speed target: without the deadline the worker never returns.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn kerberos_needs_the_metastore_principal_and_uris_are_checked() {
    let cfg = |metastores: Vec<&str>| HiveConfig {
        name: "w".into(),
        metastores: metastores.into_iter().map(str::to_owned).collect(),
        principal: None,
        renewer: "kube2hadoop".into(),
        token_signature: String::new(),
        min_protection: Default::default(),
    };
    let none = Hive::new(cfg(vec![]), None, Duration::from_secs(1), "k".into());
    assert!(none.is_err());
    let bad = Hive::new(
        cfg(vec!["hms:9083"]),
        None,
        Duration::from_secs(1),
        "k".into(),
    );
    assert!(matches!(bad, Err(HadoopError::Config(m)) if m.contains("thrift://")));
}
