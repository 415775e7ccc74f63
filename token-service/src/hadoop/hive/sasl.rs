//! Thrift's SASL transport as a Hive metastore with `metastore.sasl.enabled` speaks it
//! (`TSaslClientTransport`), with the GSSAPI mechanism (RFC 4752).
//!
//! Negotiation messages are `status (1 byte) | length (4, big endian) | payload`. Once both sides
//! are complete, each Thrift message travels as a frame `length (4) | payload`; with a security
//! layer the payload is the GSSAPI-wrapped message (signed for integrity, sealed for privacy).
//! We take the strongest layer the metastore offers (its `hadoop.rpc.protection`) and refuse
//! one weaker than the configured minimum: a token's password crosses this connection.

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
                return Err(SaslError::Refused(crate::hadoop::error::cap(
                    &String::from_utf8_lossy(&payload),
                )));
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
    min: Protection,
    chosen: Option<(Protection, usize)>,
}

/// SASL's quality of protection, weakest first: Hadoop's `hadoop.rpc.protection` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Protection {
    /// QOP `auth`: Kerberos proves both sides, the traffic itself is not protected.
    #[default]
    Authentication,
    /// QOP `auth-int`: every message signed.
    Integrity,
    /// QOP `auth-conf`: every message signed and encrypted.
    Privacy,
}

impl Protection {
    /// RFC 4752 §3.3's bit for the layer.
    fn bit(self) -> u8 {
        match self {
            Protection::Authentication => 1,
            Protection::Integrity => 2,
            Protection::Privacy => 4,
        }
    }

    pub fn parse(s: &str) -> Option<Protection> {
        match s {
            "authentication" => Some(Protection::Authentication),
            "integrity" => Some(Protection::Integrity),
            "privacy" => Some(Protection::Privacy),
            _ => None,
        }
    }
}

/// The largest wrapped message we accept, stated to the server in our reply.
const OUR_MAX_BUFFER: u32 = 1024 * 1024;

impl Gssapi {
    /// Blocking: acquiring the credential may talk to the KDC. `min` is the weakest layer we
    /// accept.
    pub fn new(spnego: &Spnego, server: &str, min: Protection) -> Result<Gssapi, SaslError> {
        let cred: Cred = spnego.credential().map_err(SaslError::Kerberos)?;
        let name = Name::new(server.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL))
            .map_err(|e| SaslError::Kerberos(spnego.classify("naming the server", server, e)))?;
        let ctx = ClientCtx::new(
            Some(cred),
            name,
            CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_INTEG_FLAG | CtxFlags::GSS_C_CONF_FLAG,
            Some(GSS_MECH_KRB5),
        );
        Ok(Gssapi {
            ctx,
            phase: Phase::Context,
            spnego: spnego.clone(),
            server: server.to_owned(),
            min,
            chosen: None,
        })
    }

    /// After the handshake: the layer the connection's frames carry, `None` for plain frames.
    /// Privacy is refused unless the context really can seal (GSSAPI would otherwise sign
    /// only, silently).
    pub fn into_layer(self) -> Result<Option<Layer>, SaslError> {
        match self.chosen {
            Some((Protection::Authentication, _)) | None => Ok(None),
            Some((protection, server_max)) => {
                if protection == Protection::Privacy {
                    let flags = self
                        .ctx
                        .flags()
                        .map_err(|e| self.gss("reading the context's flags", e))?;
                    if !flags.contains(CtxFlags::GSS_C_CONF_FLAG) {
                        return Err(SaslError::Protocol(
                            "the Kerberos context cannot encrypt, so privacy cannot be had".into(),
                        ));
                    }
                }
                Ok(Some(Layer {
                    ctx: self.ctx,
                    encrypt: protection == Protection::Privacy,
                    server_max,
                }))
            }
        }
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
                let (chosen, reply) = security_layer_reply(&offer, self.min)?;
                self.chosen = Some(chosen);
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

/// Our answer to the server's (unwrapped) offer `layers | max size (3 bytes)`: the strongest
/// layer offered, if it is at least `min`, with the largest message we take (0 without a
/// layer), and no authorization id (we act as ourselves; `doAs` travels in the call). Also
/// returns the layer and the largest wrapped message the server takes.
pub fn security_layer_reply(
    offer: &[u8],
    min: Protection,
) -> Result<((Protection, usize), [u8; 4]), SaslError> {
    let &[layers, a, b, c] = offer else {
        return Err(SaslError::Protocol(format!(
            "security-layer offer of {} bytes, RFC 4752 says 4",
            offer.len()
        )));
    };
    let server_max = u32::from_be_bytes([0, a, b, c]) as usize;
    let strongest = [
        Protection::Privacy,
        Protection::Integrity,
        Protection::Authentication,
    ]
    .into_iter()
    .find(|p| layers & p.bit() != 0)
    .ok_or_else(|| {
        SaslError::Protocol(format!("the server offers no layer we know ({layers:#x})"))
    })?;
    if strongest < min {
        return Err(SaslError::Protocol(format!(
            "the server offers at best {strongest:?}, the configuration requires at least \
             {min:?}: add it to the metastore's hadoop.rpc.protection, or lower minProtection"
        )));
    }
    let ours = match strongest {
        Protection::Authentication => 0,
        _ => OUR_MAX_BUFFER,
    };
    let [_, x, y, z] = ours.to_be_bytes();
    Ok(((strongest, server_max), [strongest.bit(), x, y, z]))
}

/// The security layer of an established connection: wraps what we send, unwraps what we read.
pub struct Layer {
    ctx: ClientCtx,
    encrypt: bool,
    server_max: usize,
}

impl Layer {
    fn wrap(&mut self, msg: &[u8]) -> io::Result<Vec<u8>> {
        let wrapped = self
            .ctx
            .wrap(self.encrypt, msg)
            .map_err(|e| io::Error::other(format!("GSSAPI wrap: {e}")))?;
        if self.server_max != 0 && wrapped.len() > self.server_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a message of {} bytes, more than the server takes ({})",
                    wrapped.len(),
                    self.server_max
                ),
            ));
        }
        Ok(wrapped.to_vec())
    }

    fn unwrap(&mut self, msg: &[u8]) -> io::Result<Vec<u8>> {
        self.ctx
            .unwrap(msg)
            .map(|b| b.to_vec())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("GSSAPI unwrap: {e}")))
    }
}

/// One connection's layer, shared by its reading and writing halves (one thread uses both).
pub type SharedLayer = std::sync::Arc<std::sync::Mutex<Layer>>;

fn with_layer<T>(
    layer: &SharedLayer,
    f: impl FnOnce(&mut Layer) -> io::Result<T>,
) -> io::Result<T> {
    let mut guard = layer
        .lock()
        .map_err(|_| io::Error::other("security layer lock poisoned"))?;
    f(&mut guard)
}

/// Reads the Thrift byte stream out of SASL frames, each at most `max` bytes, unwrapped by the
/// layer when there is one.
pub struct FrameReader<R> {
    inner: R,
    frame: Vec<u8>,
    pos: usize,
    max: usize,
    layer: Option<SharedLayer>,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R, max: usize, layer: Option<SharedLayer>) -> FrameReader<R> {
        FrameReader {
            inner,
            frame: Vec::new(),
            pos: 0,
            max,
            layer,
        }
    }
}

/// Writes each flushed Thrift message as one SASL frame, wrapped by the layer when there is one.
pub struct FrameWriter<W> {
    inner: W,
    pending: Vec<u8>,
    layer: Option<SharedLayer>,
}

impl<W: Write> FrameWriter<W> {
    pub fn new(inner: W, layer: Option<SharedLayer>) -> FrameWriter<W> {
        FrameWriter {
            inner,
            pending: Vec::new(),
            layer,
        }
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let payload = std::mem::take(&mut self.pending);
        let payload = match &self.layer {
            Some(layer) => with_layer(layer, |l| l.wrap(&payload))?,
            None => payload,
        };
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(&payload)?;
        self.inner.flush()
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
            if let Some(layer) = &self.layer {
                self.frame = with_layer(layer, |l| l.unwrap(&self.frame))?;
            }
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
    fn the_strongest_layer_offered_is_taken_and_a_weaker_than_required_refused() {
        use Protection::*;
        let reply = |offer: &[u8], min| security_layer_reply(offer, min).map(|(c, r)| (c.0, r));
        // Hive's default (authentication only): no layer, receive size 0.
        assert_eq!(
            reply(&[0b001, 0, 0x10, 0], Authentication).ok(),
            Some((Authentication, [1, 0, 0, 0]))
        );
        // `authentication,privacy`: privacy, never the unprotected one.
        assert_eq!(
            reply(&[0b101, 0, 0x10, 0], Authentication).ok(),
            Some((Privacy, [4, 0x10, 0, 0]))
        );
        assert_eq!(
            reply(&[0b011, 0, 0x10, 0], Authentication).ok(),
            Some((Integrity, [2, 0x10, 0, 0]))
        );
        let err = reply(&[0b001, 0, 0x10, 0], Privacy).expect_err("downgrade refused");
        assert!(err.to_string().contains("hadoop.rpc.protection"), "{err}");
        assert!(reply(&[0b010, 0, 0x10, 0], Privacy).is_err());
        assert!(
            reply(&[0b000, 0, 0x10, 0], Authentication).is_err(),
            "no layer at all"
        );
        assert!(reply(&[], Authentication).is_err());
        assert!(reply(&[1, 0, 0], Authentication).is_err());
        let ((_, server_max), _) = security_layer_reply(&[4, 0x01, 0, 0], Privacy).expect("offer");
        assert_eq!(server_max, 65536);
    }

    #[test]
    fn plain_frames_are_written_one_per_flush() {
        let mut w = FrameWriter::new(Vec::new(), None);
        w.write_all(b"ab").expect("write");
        w.write_all(b"c").expect("write");
        w.flush().expect("flush");
        assert_eq!(w.inner, [0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn frames_are_reassembled_and_bounded() {
        let mut data = Vec::new();
        for part in [&b"ab"[..], b"", b"cde"] {
            data.extend_from_slice(&(part.len() as u32).to_be_bytes());
            data.extend_from_slice(part);
        }
        let mut all = String::new();
        FrameReader::new(Cursor::new(data), 16, None)
            .read_to_string(&mut all)
            .expect_err("ends mid-header at EOF");
        let mut r = FrameReader::new(Cursor::new([0, 0, 0, 2, b'h', b'i'].to_vec()), 16, None);
        let mut two = [0u8; 2];
        r.read_exact(&mut two).expect("one frame");
        assert_eq!(&two, b"hi");
        let mut huge = FrameReader::new(Cursor::new(vec![0, 1, 0, 0]), 16, None);
        assert!(
            huge.read(&mut two).is_err(),
            "a 64 KiB frame over a 16-byte bound"
        );
    }
}
