//! A loopback LDAP server for unit tests of the pool: it accepts any bind and answers every
//! search with one entry `uid=<uid>`, so any user is allowed under that name. It counts the
//! connections it accepted and can drop them all, as a restarting slapd does.
//! (The real directory is tested against slapd in `tests/ldap.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct FakeLdap {
    pub url: String,
    accepted: Arc<AtomicUsize>,
    /// Bumped to make every open connection close.
    drop_all: watch::Sender<u64>,
}

impl FakeLdap {
    pub async fn start(uid: &'static str) -> FakeLdap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ldap://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (drop_all, closing) = watch::channel(0);
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, uid, closing.clone()));
            }
        });
        FakeLdap {
            url,
            accepted,
            drop_all,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn drop_connections(&self) {
        self.drop_all.send_modify(|n| *n += 1);
    }
}

async fn serve(mut stream: TcpStream, uid: &str, mut closing: watch::Receiver<u64>) {
    // Only later drops concern this connection.
    closing.borrow_and_update();
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::select! {
            read = stream.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = closing.changed() => return,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some((id, op, used)) = message(&buf) {
            buf.drain(..used);
            let reply = match op {
                // BindRequest → BindResponse.
                0x60 => envelope(id, tlv(0x61, &result())),
                // SearchRequest → one entry, then SearchResultDone.
                0x63 => {
                    let attr = tlv(
                        0x30,
                        &[tlv(0x04, b"uid"), tlv(0x31, &tlv(0x04, uid.as_bytes()))].concat(),
                    );
                    let entry = tlv(
                        0x64,
                        &[tlv(0x04, format!("uid={uid}").as_bytes()), tlv(0x30, &attr)].concat(),
                    );
                    [envelope(id, entry), envelope(id, tlv(0x65, &result()))].concat()
                }
                // UnbindRequest, or anything else: hang up.
                _ => return,
            };
            if stream.write_all(&reply).await.is_err() {
                return;
            }
        }
    }
}

/// The first whole message in `buf`: its id, the tag of its operation, and its length.
fn message(buf: &[u8]) -> Option<(i64, u8, usize)> {
    let (content, used) = read_tlv(buf)?;
    let (id_bytes, id_len) = read_tlv(content)?;
    let id = id_bytes
        .iter()
        .fold(0i64, |acc, b| (acc << 8) | i64::from(*b));
    Some((id, *content.get(id_len)?, used))
}

/// The content of the TLV at the start of `buf`, and the TLV's whole length.
fn read_tlv(buf: &[u8]) -> Option<(&[u8], usize)> {
    let first = *buf.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let len = buf
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    Some((buf.get(header..header + len)?, header + len))
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// LDAPResult success: resultCode 0, empty matchedDN and diagnosticMessage.
fn result() -> Vec<u8> {
    [tlv(0x0a, &[0]), tlv(0x04, b""), tlv(0x04, b"")].concat()
}

fn envelope(id: i64, op: Vec<u8>) -> Vec<u8> {
    let bytes = id.to_be_bytes();
    // Minimal two's complement: drop leading zero bytes while the next one's top bit is clear.
    let start = (0..7)
        .find(|&i| bytes[i] != 0 || bytes[i + 1] & 0x80 != 0)
        .unwrap_or(7);
    tlv(0x30, &[tlv(0x02, &bytes[start..]), op].concat())
}
