//! The TLS client configuration, built once per runtime: the Mozilla roots (webpki-roots)
//! plus any roots the operator adds, e.g. an enterprise CA for services on granted
//! private networks. Certificates and host names are always verified.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use crate::error::RuntimeError;

/// A client configuration trusting the public roots and `extra_roots` (DER).
pub(crate) fn client_config(
    extra_roots: &[Vec<u8>],
) -> Result<Arc<rustls::ClientConfig>, RuntimeError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    for (i, der) in extra_roots.iter().enumerate() {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| RuntimeError::Tls(format!("extra root certificate {i}: {e}")))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| RuntimeError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}
