//! `k2h_tls_cert_expiry_timestamp_seconds{server}`: when the certificate served now expires
//! (its leaf's notAfter, Unix seconds). Read at each scrape from the resolver, so a rotated
//! certificate shows at once; alerts warn before it runs out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::tls::CertResolver;

const NAME: &str = "k2h_tls_cert_expiry_timestamp_seconds";
const HELP: &str = "When the serving certificate in use expires (notAfter, Unix seconds)";

#[derive(Debug)]
struct CertExpiry {
    server: &'static str,
    resolver: CertResolver,
}

/// Registers the gauge for `server` (`iddecorator`, `token-service`).
pub fn register(registry: &mut Registry, server: &'static str, resolver: CertResolver) {
    registry.register_collector(Box::new(CertExpiry { server, resolver }));
}

/// The notAfter of a DER certificate, in Unix seconds.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

impl Collector for CertExpiry {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let current = self.resolver.current_cert();
        // The pair was parsed when loaded; a leaf x509-parser cannot read is left out.
        let Some(expiry) = current.cert.first().and_then(|c| not_after(c)) else {
            return Ok(());
        };
        let labels = [("server", self.server)];
        let mut family = encoder.encode_descriptor(NAME, HELP, None, MetricType::Gauge)?;
        ConstGauge::new(expiry).encode(family.encode_family(&labels)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arc_swap::ArcSwap;

    use super::*;
    use crate::tls::certified_key_from_pem;

    #[test]
    fn the_served_certificates_expiry_is_exported() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let ck = certified_key_from_pem(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            "c".as_ref(),
            "k".as_ref(),
        )
        .expect("pair");
        let resolver = CertResolver::new(Arc::new(ArcSwap::from_pointee(ck)));
        let mut registry = Registry::default();
        register(&mut registry, "token-service", resolver);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        // 2031-01-02T00:00:00Z
        assert!(
            text.contains(
                r#"k2h_tls_cert_expiry_timestamp_seconds{server="token-service"} 1925078400"#
            ),
            "{text}"
        );
    }
}
