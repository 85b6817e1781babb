//! A client certificate verifier that also requires the clientAuth EKU.

use std::sync::Arc;

use mtls_core::{ClientIdentity, Oid};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Wraps webpki's verifier. webpki already refuses a leaf whose EKU extension lacks clientAuth,
/// but accepts a leaf with no EKU extension at all (RFC 5280 reads that as "any purpose"). A
/// certificate that never said it may authenticate clients is not one we admit by default, so this
/// wrapper refuses it too, after the chain has verified.
#[derive(Debug)]
pub(crate) struct ClientAuthEkuVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    require_eku: bool,
}

impl ClientAuthEkuVerifier {
    pub(crate) fn new(inner: Arc<dyn ClientCertVerifier>, require_eku: bool) -> Self {
        ClientAuthEkuVerifier { inner, require_eku }
    }
}

impl ClientCertVerifier for ClientAuthEkuVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Chain, validity, revocation and webpki's EKU check first: their errors carry the most
        // precise alert.
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.require_eku {
            // This parses the leaf a second time per handshake (the listener parses it again
            // into the connection's identity); the signatures cost far more, and the alert must
            // be sent from inside the handshake.
            match ClientIdentity::from_der(end_entity) {
                Ok(id) if id.has_extended_key_usage(&Oid::CLIENT_AUTH) => {}
                // No EKU extension, or one without clientAuth: "unsupported_certificate" alert.
                Ok(_) => return Err(CertificateError::InvalidPurpose.into()),
                Err(_) => return Err(CertificateError::BadEncoding.into()),
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
