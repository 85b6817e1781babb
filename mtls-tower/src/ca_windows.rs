//! Pinned CAs that vouch only within their own validity period, for the server's client
//! verifier and the client's server verifier alike.
//!
//! webpki never looks at a trust anchor's dates (RFC 5280 leaves it to the relying party). A CA
//! left in a bundle past its `notAfter` would go on vouching for every certificate it ever
//! issued, so a chain is verified against the CAs valid at the handshake's `now` only
//! (x509-limbo `expired-root`; Go does the same). A chain that needs a CA outside its window is
//! refused as expired (or not yet valid): the alert that says what happened.

use std::sync::{PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use mtls_core::ClientIdentity;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::CertificateError;

/// A pinned CA certificate and its validity period, in whole seconds since the epoch (the
/// resolution of the `now` that rustls gives a verifier).
#[derive(Debug, Clone)]
pub(crate) struct PinnedCa {
    pub(crate) der: CertificateDer<'static>,
    pub(crate) not_before: u64,
    pub(crate) not_after: u64,
}

impl PinnedCa {
    pub(crate) fn new(der: CertificateDer<'static>, id: &ClientIdentity) -> PinnedCa {
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        PinnedCa {
            der,
            not_before: secs(id.not_before()),
            not_after: secs(id.not_after()),
        }
    }

    pub(crate) fn in_window(&self, secs: u64) -> bool {
        self.not_before <= secs && secs <= self.not_after
    }
}

/// Builds webpki's verifier for a set of CAs, with the configuration's CRLs and options.
pub(crate) type Build<V> = dyn Fn(&[CertificateDer<'static>]) -> Result<V, rustls::server::VerifierBuilderError>
    + Send
    + Sync;

/// Which CAs are in their window, and webpki's verifier over those (`None` when none).
type Narrowed<V> = (Vec<bool>, Option<V>);

/// webpki's verifier over every pinned CA, and over the ones in their window when some are not.
pub(crate) struct CaWindows<V> {
    /// webpki's verifier over every CA: used while all of them are in their window.
    pub(crate) all: V,
    pub(crate) cas: Vec<PinnedCa>,
    build: Box<Build<V>>,
    /// While some CA is outside its window: which are inside, and webpki's verifier over those.
    /// Rebuilt only when that set changes.
    narrowed: RwLock<Option<Narrowed<V>>>,
}

impl<V: Clone> CaWindows<V> {
    pub(crate) fn new(
        cas: Vec<PinnedCa>,
        build: Box<Build<V>>,
    ) -> Result<CaWindows<V>, rustls::server::VerifierBuilderError> {
        let ders: Vec<_> = cas.iter().map(|ca| ca.der.clone()).collect();
        Ok(CaWindows {
            all: build(&ders)?,
            cas,
            build,
            narrowed: RwLock::new(None),
        })
    }

    /// webpki's verifier over the CAs in their window at `secs`.
    fn narrowed(&self, secs: u64) -> Option<V> {
        let inside: Vec<bool> = self.cas.iter().map(|ca| ca.in_window(secs)).collect();
        if let Some((cached, verifier)) =
            &*self.narrowed.read().unwrap_or_else(PoisonError::into_inner)
        {
            if *cached == inside {
                return verifier.clone();
            }
        }
        let ders: Vec<_> = self
            .cas
            .iter()
            .zip(&inside)
            .filter(|(_, inside)| **inside)
            .map(|(ca, _)| ca.der.clone())
            .collect();
        // It built over every CA with the same CRLs and options; over fewer it can only fail
        // for want of any CA, and then nothing is admitted.
        let verifier = if ders.is_empty() {
            None
        } else {
            (self.build)(&ders).ok()
        };
        *self
            .narrowed
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some((inside, verifier.clone()));
        verifier
    }

    /// The refusal of a chain that verifies only through a CA outside its window: as an
    /// expired (or not yet valid) certificate.
    fn out_of_window(&self, now: UnixTime) -> rustls::Error {
        let secs = now.as_secs();
        let at = |s: u64| UnixTime::since_unix_epoch(Duration::from_secs(s));
        let expired = self.cas.iter().filter(|ca| ca.not_after < secs);
        match expired.map(|ca| ca.not_after).max() {
            Some(not_after) => CertificateError::ExpiredContext {
                time: now,
                not_after: at(not_after),
            },
            None => CertificateError::NotValidYetContext {
                time: now,
                not_before: at(self
                    .cas
                    .iter()
                    .map(|ca| ca.not_before)
                    .filter(|nb| *nb > secs)
                    .min()
                    .unwrap_or(secs)),
            },
        }
        .into()
    }

    /// Runs `verify` (webpki's checks of one chain) with the verifier over the CAs valid at
    /// `now`.
    pub(crate) fn verify<T>(
        &self,
        now: UnixTime,
        verify: impl Fn(&V) -> Result<T, rustls::Error>,
    ) -> Result<T, rustls::Error> {
        let secs = now.as_secs();
        if self.cas.iter().all(|ca| ca.in_window(secs)) {
            return verify(&self.all);
        }
        // Security: only the CAs valid now may vouch. A chain that verifies through every CA
        // but not through those is refused as expired; one that verifies through neither is a
        // stranger's, refused as such (webpki finds an unknown issuer by name, before any
        // signature, so telling the two apart costs a refused stranger next to nothing).
        let stranger_or_expired = || match verify(&self.all) {
            Ok(_) => self.out_of_window(now),
            Err(e) => e,
        };
        match self.narrowed(secs) {
            Some(v) => match verify(&v) {
                Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                    Err(stranger_or_expired())
                }
                verified => verified,
            },
            None => Err(stranger_or_expired()),
        }
    }
}

#[cfg(feature = "server")]
/// The earliest `notAfter` among the CAs valid at `now`: a connection admitted at `now` must not
/// outlive it (its CA may be that one). `None` without CAs in their window.
pub(crate) fn valid_until(cas: &[PinnedCa], now: SystemTime) -> Option<SystemTime> {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    cas.iter()
        .filter(|ca| ca.in_window(secs))
        .map(|ca| SystemTime::UNIX_EPOCH + Duration::from_secs(ca.not_after))
        .min()
}
