//! rustls client configuration for the mail servers.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::MailError;
use crate::api::Account;

/// Trusted roots: the Mozilla set, plus the account's CA file if any.
pub fn client_config(account: &Account) -> Result<Arc<ClientConfig>, MailError> {
    if account.accept_invalid_certs {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = builder(provider.clone())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
            .with_no_client_auth();
        Ok(Arc::new(config))
    } else {
        trusting(account.tls_ca.as_deref())
    }
}

/// The Mozilla roots plus those of a CA file.
pub fn trusting(tls_ca: Option<&Path>) -> Result<Arc<ClientConfig>, MailError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(builder(provider)?.with_root_certificates(roots(tls_ca)?).with_no_client_auth()))
}

fn builder(
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, MailError> {
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MailError::Tls { host: String::new(), detail: e.to_string() })
}

fn roots(tls_ca: Option<&Path>) -> Result<RootCertStore, MailError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = tls_ca {
        let bad = |detail: String| MailError::BadCaFile { path: path.display().to_string(), detail };
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("it holds no PEM certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(roots)
}

pub fn server_name(host: &str) -> Result<ServerName<'static>, MailError> {
    ServerName::try_from(host.to_string()).map_err(|_| MailError::NameNotFound(host.to_string()))
}

/// Used only when the user explicitly accepted untrusted certificates: the
/// connection is still encrypted, but the server is not authenticated.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
