//! rustls server configuration whose certificate can be replaced while serving.
//!
//! The certificate comes from a [`CertResolver`] that reads an `ArcSwap`, so a rotated pair
//! (cert-manager, a Kubernetes Secret's symlink swap) is used by the next handshake without
//! a restart. Open connections keep the certificate they were established with.
use crate::error::Error;
use crate::reload::FileWatcher;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain and private key and checks that they belong together.
/// The paths only name the files in error messages.
pub fn certified_key_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, Error> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::BadCertificate {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(Error::BadCertificate {
            path: cert_path.to_owned(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    // The pem error can quote the input; never echo key material, only the kind of failure.
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Error::BadKey {
        path: key_path.to_owned(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block found".into(),
            _ => "malformed PEM".into(),
        },
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|source| Error::Pair {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    })
}

/// Reads and checks a certificate/key pair from files.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, Error> {
    let cert = read(cert_path, "TLS certificate")?;
    let key = read(key_path, "TLS key")?;
    certified_key_from_pem(&cert, &key, cert_path, key_path)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Serves whatever pair is currently stored; swapped by a [`FileWatcher`].
#[derive(Debug, Clone)]
pub struct CertResolver {
    current: Arc<ArcSwap<CertifiedKey>>,
}

impl CertResolver {
    pub fn new(current: Arc<ArcSwap<CertifiedKey>>) -> Self {
        CertResolver { current }
    }

    /// The pair the next handshake will use.
    pub fn current_cert(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A watcher for the certificate and key files plus the resolver that serves its value.
/// Spawn the watcher with [`FileWatcher::spawn`] to pick up rotations.
pub fn watch_cert_files(
    cert_path: PathBuf,
    key_path: PathBuf,
) -> Result<(CertResolver, FileWatcher<CertifiedKey>), Error> {
    // Load once directly for precise messages ("cannot read TLS key file ...").
    load_certified_key(&cert_path, &key_path)?;
    let (c, k) = (cert_path.clone(), key_path.clone());
    let watcher = FileWatcher::load("tls", vec![cert_path, key_path], move |files| {
        certified_key_from_pem(&files[0], &files[1], &c, &k)
    })?;
    Ok((CertResolver::new(watcher.current()), watcher))
}

/// TLS 1.2 and 1.3 with the ring provider, ALPN `h2` then `http/1.1`, no client certificates.
pub fn server_config(resolver: CertResolver) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(Error::TlsConfig)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed pair for `localhost`, PEM encoded.
    pub(crate) fn self_signed(name: &str) -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    #[test]
    fn parses_a_matching_pair() {
        let (cert, key) = self_signed("localhost");
        let ck =
            certified_key_from_pem(cert.as_bytes(), key.as_bytes(), "c".as_ref(), "k".as_ref())
                .expect("pair");
        assert_eq!(ck.cert.len(), 1);
    }

    #[test]
    fn rejects_mismatched_pair() {
        let (cert, _) = self_signed("a");
        let (_, key) = self_signed("b");
        let err =
            certified_key_from_pem(cert.as_bytes(), key.as_bytes(), "c".as_ref(), "k".as_ref())
                .unwrap_err();
        assert!(matches!(err, Error::Pair { .. }), "{err}");
    }

    #[test]
    fn key_errors_do_not_echo_content() {
        let (cert, _) = self_signed("a");
        let junk =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==!!\n-----END PRIVATE KEY-----\n";
        let err =
            certified_key_from_pem(cert.as_bytes(), junk.as_bytes(), "c".as_ref(), "k".as_ref())
                .unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains("c2VjcmV0"), "{msg}");
        let err = certified_key_from_pem(cert.as_bytes(), b"", "c".as_ref(), "/x/key".as_ref())
            .unwrap_err();
        assert!(err.to_string().contains("/x/key"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load_certified_key(
            "/nonexistent/tls.crt".as_ref(),
            "/nonexistent/tls.key".as_ref(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot read TLS certificate file /nonexistent/tls.crt")
        );
    }
}
