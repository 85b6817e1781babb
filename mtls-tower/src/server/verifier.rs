//! The client certificate verifier: webpki's, plus the clientAuth EKU and the client CAs' own
//! validity periods.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use mtls_core::{ClientIdentity, Oid};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::VerifierBuilderError;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::ca_windows::{Build, CaWindows, PinnedCa};

/// A client CA and its validity period.
pub(crate) type ClientCa = PinnedCa;

/// The earliest `notAfter` among the client CAs valid at `now`.
pub(crate) fn client_cas_valid_until(cas: &[ClientCa], now: SystemTime) -> Option<SystemTime> {
    crate::ca_windows::valid_until(cas, now)
}

/// Builds webpki's verifier for a set of client CAs, with the configuration's CRLs and options.
pub(crate) type BuildVerifier = Build<Arc<dyn ClientCertVerifier>>;

/// Wraps webpki's verifier, for two checks it does not make.
///
/// - **The clientAuth EKU.** webpki refuses a leaf whose EKU extension lacks clientAuth, but
///   accepts a leaf with no EKU extension at all (RFC 5280 reads that as "any purpose"). A
///   certificate that never said it may authenticate clients is not one we admit by default,
///   so this refuses it too, after the chain has verified.
/// - **The client CAs' own validity.** webpki never looks at a trust anchor's dates (RFC 5280
///   leaves it to the relying party). A client CA left in the bundle past its `notAfter` would
///   go on admitting every client it ever issued, so a chain is verified against the client
///   CAs that are valid at the handshake's `now` only (x509-limbo `expired-root`; Go does the
///   same).
pub(crate) struct ClientVerifier {
    windows: CaWindows<Arc<dyn ClientCertVerifier>>,
    require_eku: bool,
}

impl fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientVerifier")
            .field("all", &self.windows.all)
            .field("require_eku", &self.require_eku)
            .field("cas", &self.windows.cas.len())
            .finish_non_exhaustive()
    }
}

impl ClientVerifier {
    pub(crate) fn new(
        cas: Vec<ClientCa>,
        build: Box<BuildVerifier>,
        require_eku: bool,
    ) -> Result<ClientVerifier, VerifierBuilderError> {
        Ok(ClientVerifier {
            windows: CaWindows::new(cas, build)?,
            require_eku,
        })
    }

    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.windows.verify(now, |v| {
            v.verify_client_cert(end_entity, intermediates, now)
        })
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.windows.all.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.windows.all.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.windows.all.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Chain, validity, revocation and webpki's EKU check first: their errors carry the most
        // precise alert.
        let verified = self.verify_chain(end_entity, intermediates, now)?;
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
        self.windows.all.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.windows.all.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.windows.all.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use mtls_core::testing::{TestCa, TestCert, TestPki};
    use rustls::pki_types::UnixTime;
    use rustls::server::danger::ClientCertVerifier;
    use rustls::CertificateError;

    use crate::MtlsConfig;

    const DAY: Duration = Duration::from_secs(86_400);

    fn verifier(pki: &TestPki, cas: &[&TestCa]) -> std::sync::Arc<dyn ClientCertVerifier> {
        let server = pki.ca.server_cert("localhost");
        MtlsConfig::builder()
            .server_cert(server.chain().to_vec(), server.key_der())
            .client_ca_certs(cas.iter().map(|ca| ca.cert_der().clone()).collect())
            .build()
            .unwrap()
            .client_cert_verifier()
            .unwrap()
    }

    fn at(t: SystemTime) -> UnixTime {
        UnixTime::since_unix_epoch(t.duration_since(SystemTime::UNIX_EPOCH).unwrap())
    }

    fn check(
        v: &dyn ClientCertVerifier,
        leaf: &TestCert,
        t: SystemTime,
    ) -> Result<(), rustls::Error> {
        v.verify_client_cert(&leaf.chain()[0], &leaf.chain()[1..], at(t))
            .map(|_| ())
    }

    /// A client CA valid from two days ago until tomorrow, and a leaf of it good for 30 days.
    fn short_ca() -> (TestCa, TestCert) {
        let now = SystemTime::now();
        let ca = TestCa::with_validity("Short CA", now - 2 * DAY, now + DAY);
        let leaf = ca
            .leaf()
            .validity(now - DAY, now + 30 * DAY)
            .common_name("long-leaf")
            .build();
        (ca, leaf)
    }

    #[test]
    fn a_chain_to_a_client_ca_past_its_not_after_is_refused_as_expired() {
        let pki = TestPki::new();
        let (ca, leaf) = short_ca();
        let v = verifier(&pki, &[&ca]);
        let now = SystemTime::now();
        check(&*v, &leaf, now).unwrap();
        let err = check(&*v, &leaf, now + 2 * DAY).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_chain_to_a_client_ca_not_valid_yet_is_refused_as_not_valid_yet() {
        let pki = TestPki::new();
        let (ca, leaf) = short_ca();
        let v = verifier(&pki, &[&ca]);
        let err = check(&*v, &leaf, SystemTime::now() - 3 * DAY).unwrap_err();
        // The leaf is not valid then either: webpki says so first.
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })
            ),
            "{err:?}"
        );
        // A leaf whose own dates cover the time, under a CA that does not.
        let now = SystemTime::now();
        let early = ca.leaf().validity(now - 10 * DAY, now + DAY).build();
        let err = check(&*v, &early, now - 3 * DAY).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn while_one_client_ca_has_expired_the_others_still_admit_their_clients() {
        let pki = TestPki::new();
        let (short, short_leaf) = short_ca();
        let v = verifier(&pki, &[&short, &pki.ca]);
        let later = SystemTime::now() + 2 * DAY;
        let alice = pki.ca.leaf().common_name("alice").build();
        check(&*v, &alice, later).unwrap();
        assert!(check(&*v, &short_leaf, later).is_err());
        // And again, from the cached narrowed verifier.
        check(&*v, &alice, later).unwrap();
        assert!(check(&*v, &short_leaf, later).is_err());
    }

    #[test]
    fn a_strangers_chain_is_refused_as_unknown_while_a_client_ca_has_expired() {
        let pki = TestPki::new();
        let (short, _) = short_ca();
        let later = SystemTime::now() + 2 * DAY;
        let stranger = pki.rogue_ca.leaf().common_name("alice").build();
        for cas in [&[&short][..], &[&short, &pki.ca][..]] {
            let err = check(&*verifier(&pki, cas), &stranger, later).unwrap_err();
            assert_eq!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            );
        }
    }

    #[test]
    fn client_cas_in_their_first_or_last_second_are_not_the_ones_the_alert_names() {
        let pki = TestPki::new();
        // Whole seconds: certificates carry no fractions, and the boundary is the point.
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        // Valid until this very second, inclusive (RFC 5280 §4.1.2.5).
        let ending = TestCa::with_validity("Ending", now - 2 * DAY, now);
        // And one in its first second: valid, so not the CA that the alert is about.
        let starting = TestCa::with_validity("Starting", now, now + 30 * DAY);
        let later = TestCa::with_validity("Later", now + DAY, now + 30 * DAY);
        let leaf = later.leaf().validity(now - DAY, now + 30 * DAY).build();
        let v = verifier(&pki, &[&ending, &starting, &later]);
        let err = check(&*v, &leaf, now).unwrap_err();
        // The alert's context names when the CA the chain needs becomes valid.
        match err {
            rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                not_before,
                ..
            }) => assert_eq!(not_before, at(now + DAY)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_narrowed_verifier_follows_each_client_ca_that_expires() {
        // Two CAs expire one after the other: the verifier over those still valid must be
        // rebuilt at each step, never reused from the step before.
        let pki = TestPki::new();
        let now = SystemTime::now();
        let first = TestCa::with_validity("First", now - 2 * DAY, now + DAY);
        let second = TestCa::with_validity("Second", now - 2 * DAY, now + 3 * DAY);
        let leaf = second.leaf().validity(now - DAY, now + 30 * DAY).build();
        let v = verifier(&pki, &[&first, &second, &pki.ca]);
        check(&*v, &leaf, now + 2 * DAY).unwrap();
        let err = check(&*v, &leaf, now + 4 * DAY).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn the_certificate_request_names_every_client_ca() {
        // Clients with several certificates pick the one to send by these names.
        let pki = TestPki::new();
        let v = verifier(&pki, &[&pki.ca, &pki.rogue_ca]);
        let hints: Vec<&[u8]> = v.root_hint_subjects().iter().map(AsRef::as_ref).collect();
        assert_eq!(hints.len(), 2);
        for ca in [&pki.ca, &pki.rogue_ca] {
            let subject = mtls_core::ClientIdentity::from_der(ca.cert_der())
                .unwrap()
                .subject()
                .der()
                .to_vec();
            assert!(hints.contains(&subject.as_slice()), "{}", ca.name());
        }
    }

    #[test]
    fn the_verifier_debug_shows_its_settings_not_its_keys() {
        let pki = TestPki::new();
        let text = format!("{:?}", verifier(&pki, &[&pki.ca]));
        assert!(text.starts_with("ClientVerifier"), "{text}");
        assert!(text.contains("require_eku: true"), "{text}");
        assert!(text.contains("cas: 1"), "{text}");
    }

    #[test]
    fn the_client_cas_bound_a_connection_to_the_earliest_not_after_among_those_valid() {
        let pki = TestPki::new();
        let (short, _) = short_ca();
        let server = pki.ca.server_cert("localhost");
        let config = MtlsConfig::builder()
            .server_cert(server.chain().to_vec(), server.key_der())
            .client_ca_certs(vec![short.cert_der().clone(), pki.ca.cert_der().clone()])
            .build()
            .unwrap();
        let short_end = mtls_core::identity::validity_of(short.cert_der().as_ref())
            .unwrap()
            .1;
        let now = SystemTime::now();
        assert_eq!(config.client_cas_valid_until(now), Some(short_end));
        // Once it has expired, the other CA's end is the bound.
        let long_end = mtls_core::identity::validity_of(pki.ca.cert_der().as_ref())
            .unwrap()
            .1;
        assert_eq!(config.client_cas_valid_until(now + 2 * DAY), Some(long_end));
        assert_eq!(config.client_cas_valid_until(long_end + DAY), None);
    }
}
