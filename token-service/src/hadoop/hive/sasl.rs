//! Thrift's SASL transport as a Hive metastore with `metastore.sasl.enabled` speaks it
//! (`TSaslClientTransport`), with the GSSAPI mechanism (RFC 4752) at QOP `auth`.
//!
//! Negotiation messages are `status (1 byte) | length (4, big endian) | payload`. Once both sides
//! are complete, each Thrift message travels as a frame `length (4) | payload`, unwrapped: at QOP
//! `auth` SASL adds no security layer. A metastore that asks for integrity or privacy
//! (`hadoop.rpc.protection` other than `authentication`) is refused with a reason, not
//! half-spoken.

use std::io::{self, Read, Write};

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext as _};
use libgssapi::credential::Cred;
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_KRB5_PRINCIPAL};

use crate::hadoop::auth::AuthError;
use crate::hadoop::spnego::Spnego;

/// A negotiation message bigger than this is not a Kerberos token: refuse it unread.
const MAX_NEGOTIATION_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Start = 1,
    Ok = 2,
    Bad = 3,
    Error = 4,
    Complete = 5,
}

impl Status {
    fn of(byte: u8) -> Option<Status> {
        Some(match byte {
            1 => Status::Start,
            2 => Status::Ok,
            3 => Status::Bad,
            4 => Status::Error,
            5 => Status::Complete,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SaslError {
    #[error("{0}")]
    Kerberos(#[source] AuthError),
    #[error("the server refused the handshake: {0}")]
    Refused(String),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The client side of one SASL mechanism. Kept apart from the wire so the exchange is tested
/// without a KDC.
pub trait Mechanism {
    const NAME: &'static str;
    fn initial_response(&mut self) -> Result<Vec<u8>, SaslError>;
    fn evaluate(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError>;
    fn is_complete(&self) -> bool;
}

/// Runs the client's side of the negotiation on `stream` until both sides are complete.
pub fn negotiate<S: Read + Write, M: Mechanism>(
    stream: &mut S,
    mech: &mut M,
) -> Result<(), SaslError> {
    write_message(stream, Status::Start, M::NAME.as_bytes())?;
    let first = mech.initial_response()?;
    write_message(stream, progress(mech), &first)?;
    stream.flush()?;
    loop {
        let (status, payload) = read_message(stream)?;
        match status {
            Status::Ok | Status::Complete => {}
            Status::Bad | Status::Error => {
                return Err(SaslError::Refused(
                    String::from_utf8_lossy(&payload)
                        .chars()
                        .take(512)
                        .collect(),
                ));
            }
            Status::Start => return Err(SaslError::Protocol("the server sent START".into())),
        }
        if mech.is_complete() {
            return match status {
                Status::Complete => Ok(()),
                _ => Err(SaslError::Protocol(
                    "the server wants another round after the client finished".into(),
                )),
            };
        }
        let response = mech.evaluate(&payload)?;
        if status == Status::Complete {
            // The server is done; the client needs no answer sent, only to be done too.
            return if mech.is_complete() {
                Ok(())
            } else {
                Err(SaslError::Protocol(
                    "the server finished before the client".into(),
                ))
            };
        }
        write_message(stream, progress(mech), &response)?;
        stream.flush()?;
    }
}

fn progress<M: Mechanism>(mech: &M) -> Status {
    if mech.is_complete() {
        Status::Complete
    } else {
        Status::Ok
    }
}

fn write_message<W: Write>(w: &mut W, status: Status, payload: &[u8]) -> Result<(), SaslError> {
    let len = u32::try_from(payload.len())
        .map_err(|_| SaslError::Protocol("negotiation message too large".into()))?;
    let mut header = [0u8; 5];
    header[0] = status as u8;
    header[1..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&header)?;
    w.write_all(payload)?;
    Ok(())
}

fn read_message<R: Read>(r: &mut R) -> Result<(Status, Vec<u8>), SaslError> {
    let mut header = [0u8; 5];
    r.read_exact(&mut header)?;
    let status = Status::of(header[0]).ok_or_else(|| {
        SaslError::Protocol(format!(
            "status byte {} is not SASL's: is this a Thrift SASL server? (a metastore without \
             metastore.sasl.enabled speaks plain Thrift)",
            header[0]
        ))
    })?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_NEGOTIATION_MESSAGE {
        return Err(SaslError::Protocol(format!(
            "negotiation message of {len} bytes, more than {MAX_NEGOTIATION_MESSAGE}"
        )));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok((status, payload))
}

/// Where the GSSAPI mechanism is in RFC 4752's exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Context,
    SecurityLayer,
    Done,
}

/// RFC 4752 over a Kerberos context with `server` (e.g. `hive/hms1.example.com@REALM`).
pub struct Gssapi {
    ctx: ClientCtx,
    phase: Phase,
    spnego: Spnego,
    server: String,
}

/// RFC 4752 §3.3: bit 0 of the server's offer is "no security layer".
const NO_SECURITY_LAYER: u8 = 1;

impl Gssapi {
    /// Blocking: acquiring the credential may talk to the KDC.
    pub fn new(spnego: &Spnego, server: &str) -> Result<Gssapi, SaslError> {
        let cred: Cred = spnego.credential().map_err(SaslError::Kerberos)?;
        let name = Name::new(server.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL))
            .map_err(|e| SaslError::Kerberos(spnego.classify("naming the server", server, e)))?;
        let ctx = ClientCtx::new(
            Some(cred),
            name,
            CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_INTEG_FLAG,
            Some(GSS_MECH_KRB5),
        );
        Ok(Gssapi {
            ctx,
            phase: Phase::Context,
            spnego: spnego.clone(),
            server: server.to_owned(),
        })
    }

    fn gss(&self, step: &'static str, e: libgssapi::error::Error) -> SaslError {
        match self.spnego.classify(step, &self.server, e) {
            // SPNEGO's wording names HTTP/<host>; here the server is the configured principal.
            AuthError::ServerUnknown { .. } => SaslError::Protocol(format!(
                "the KDC has no principal {}; check the metastore principal in the configuration",
                self.server
            )),
            other => SaslError::Kerberos(other),
        }
    }
}

impl Mechanism for Gssapi {
    const NAME: &'static str = "GSSAPI";

    fn initial_response(&mut self) -> Result<Vec<u8>, SaslError> {
        let token = self
            .ctx
            .step(None, None)
            .map_err(|e| self.gss("creating the Kerberos token", e))?;
        if self.ctx.is_complete() {
            self.phase = Phase::SecurityLayer;
        }
        Ok(token.map(|t| t.to_vec()).unwrap_or_default())
    }

    fn evaluate(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        match self.phase {
            Phase::Context => {
                let token = self
                    .ctx
                    .step(Some(challenge), None)
                    .map_err(|e| self.gss("verifying the server's Kerberos reply", e))?;
                if self.ctx.is_complete() {
                    self.phase = Phase::SecurityLayer;
                }
                Ok(token.map(|t| t.to_vec()).unwrap_or_default())
            }
            Phase::SecurityLayer => {
                let offer = self
                    .ctx
                    .unwrap(challenge)
                    .map_err(|e| self.gss("reading the security-layer offer", e))?;
                let reply = security_layer_reply(&offer)?;
                let wrapped = self
                    .ctx
                    .wrap(false, &reply)
                    .map_err(|e| self.gss("answering the security-layer offer", e))?;
                self.phase = Phase::Done;
                Ok(wrapped.to_vec())
            }
            Phase::Done => Err(SaslError::Protocol(
                "the server sent a challenge after the handshake finished".into(),
            )),
        }
    }

    fn is_complete(&self) -> bool {
        self.phase == Phase::Done
    }
}

/// Our answer to the server's (unwrapped) offer: no security layer, receive size 0, no
/// authorization id (we act as ourselves; `doAs` travels in the call).
pub fn security_layer_reply(offer: &[u8]) -> Result<[u8; 4], SaslError> {
    let [layers, ..] = offer else {
        return Err(SaslError::Protocol("empty security-layer offer".into()));
    };
    if offer.len() != 4 {
        return Err(SaslError::Protocol(format!(
            "security-layer offer of {} bytes, RFC 4752 says 4",
            offer.len()
        )));
    }
    if layers & NO_SECURITY_LAYER == 0 {
        return Err(SaslError::Protocol(
            "the server requires SASL integrity or privacy (hadoop.rpc.protection = integrity \
             or privacy); kube2hadoop speaks QOP auth only: set the metastore's \
             hadoop.rpc.protection to authentication, or include it"
                .into(),
        ));
    }
    Ok([NO_SECURITY_LAYER, 0, 0, 0])
}

/// Reads the Thrift byte stream out of SASL frames, each at most `max` bytes.
pub struct FrameReader<R> {
    inner: R,
    frame: Vec<u8>,
    pos: usize,
    max: usize,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R, max: usize) -> FrameReader<R> {
        FrameReader {
            inner,
            frame: Vec::new(),
            pos: 0,
            max,
        }
    }
}

impl<R: Read> Read for FrameReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.frame.len() {
            let mut len = [0u8; 4];
            self.inner.read_exact(&mut len)?;
            let len = u32::from_be_bytes(len) as usize;
            if len > self.max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame of {len} bytes, more than {}", self.max),
                ));
            }
            self.frame.resize(len, 0);
            self.inner.read_exact(&mut self.frame)?;
            self.pos = 0;
        }
        let n = buf.len().min(self.frame.len() - self.pos);
        buf[..n].copy_from_slice(&self.frame[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A two-step mechanism: initial token, one answer, then complete.
    struct Scripted {
        steps: usize,
    }

    impl Mechanism for Scripted {
        const NAME: &'static str = "TEST";
        fn initial_response(&mut self) -> Result<Vec<u8>, SaslError> {
            Ok(b"hello".to_vec())
        }
        fn evaluate(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
            self.steps += 1;
            Ok([b"re:", challenge].concat())
        }
        fn is_complete(&self) -> bool {
            self.steps >= 2
        }
    }

    /// The server's messages in, what the client wrote out.
    struct Duplex {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn server(messages: &[(u8, &[u8])]) -> Duplex {
        let mut input = Vec::new();
        for (status, payload) in messages {
            input.push(*status);
            input.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            input.extend_from_slice(payload);
        }
        Duplex {
            input: Cursor::new(input),
            output: Vec::new(),
        }
    }

    fn written(output: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut r = Cursor::new(output.to_vec());
        let mut out = Vec::new();
        while (r.position() as usize) < output.len() {
            let (s, p) = read_message(&mut r).expect("client message");
            out.push((s as u8, p));
        }
        out
    }

    #[test]
    fn the_exchange_follows_tsasltransport() {
        let mut wire = server(&[(2, b"c1"), (2, b"c2"), (5, b"")]);
        negotiate(&mut wire, &mut Scripted { steps: 0 }).expect("complete");
        assert_eq!(
            written(&wire.output),
            vec![
                (1, b"TEST".to_vec()),
                (2, b"hello".to_vec()),
                (2, b"re:c1".to_vec()),
                (5, b"re:c2".to_vec()),
            ]
        );
    }

    #[test]
    fn a_refusal_is_reported_with_the_servers_words() {
        let mut wire = server(&[(4, b"GSS initiate failed")]);
        let err = negotiate(&mut wire, &mut Scripted { steps: 0 }).expect_err("refused");
        assert!(err.to_string().contains("GSS initiate failed"), "{err}");
    }

    #[test]
    fn plain_thrift_and_oversized_messages_are_named_not_read() {
        // A plain Thrift server answers the START with nothing useful; a strict binary reply
        // starts with 0x80.
        let mut plain = server(&[]);
        plain.input = Cursor::new(vec![0x80, 1, 0, 3, 0, 0]);
        let err = negotiate(&mut plain, &mut Scripted { steps: 0 }).expect_err("not SASL");
        assert!(err.to_string().contains("sasl.enabled"), "{err}");

        let mut big = server(&[]);
        big.input = Cursor::new(vec![2, 0x7f, 0xff, 0xff, 0xff]);
        let err = negotiate(&mut big, &mut Scripted { steps: 0 }).expect_err("too big");
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn a_server_done_before_the_client_is_an_error() {
        let mut wire = server(&[(5, b"c1")]);
        let err = negotiate(&mut wire, &mut Scripted { steps: 0 }).expect_err("early");
        assert!(err.to_string().contains("before the client"), "{err}");
    }

    #[test]
    fn only_the_no_layer_offer_is_accepted() {
        assert_eq!(
            security_layer_reply(&[0b111, 0, 0x10, 0]).ok(),
            Some([1, 0, 0, 0])
        );
        let err = security_layer_reply(&[0b110, 0, 0x10, 0]).expect_err("integrity only");
        assert!(err.to_string().contains("hadoop.rpc.protection"), "{err}");
        assert!(security_layer_reply(&[]).is_err());
        assert!(security_layer_reply(&[1, 0, 0]).is_err());
    }

    #[test]
    fn frames_are_reassembled_and_bounded() {
        let mut data = Vec::new();
        for part in [&b"ab"[..], b"", b"cde"] {
            data.extend_from_slice(&(part.len() as u32).to_be_bytes());
            data.extend_from_slice(part);
        }
        let mut all = String::new();
        FrameReader::new(Cursor::new(data), 16)
            .read_to_string(&mut all)
            .expect_err("ends mid-header at EOF");
        let mut r = FrameReader::new(Cursor::new([0, 0, 0, 2, b'h', b'i'].to_vec()), 16);
        let mut two = [0u8; 2];
        r.read_exact(&mut two).expect("one frame");
        assert_eq!(&two, b"hi");
        let mut huge = FrameReader::new(Cursor::new(vec![0, 1, 0, 0]), 16);
        assert!(
            huge.read(&mut two).is_err(),
            "a 64 KiB frame over a 16-byte bound"
        );
    }
}
