//! [`ReloadHandle`]: swap a running listener's TLS configuration (server certificate, client CA
//! bundle, CRLs) without a restart.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{CertExpiry, ConfigError, MtlsConfig};

/// What one handshake uses, taken at one moment: the rustls configuration, until when its CRLs
/// hold, and its client certificate verifier (to verify a resumed session's chain again).
pub(crate) struct HandshakeConfig {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) revocation_valid_until: Option<SystemTime>,
    pub(crate) verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

/// The configuration a listener hands to each new handshake, and its generation.
pub(crate) struct ConfigCell {
    current: RwLock<MtlsConfig>,
    generation: watch::Sender<u64>,
    close_on_reload: bool,
}

impl ConfigCell {
    pub(crate) fn new(config: MtlsConfig, close_on_reload: bool) -> ConfigCell {
        ConfigCell {
            current: RwLock::new(config),
            generation: watch::Sender::new(0),
            close_on_reload,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&MtlsConfig) -> T) -> T {
        // A writer cannot panic half-way (it assigns a finished value), so a poisoned lock still
        // holds a whole configuration.
        f(&self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The configuration for a new connection (`Arc` clones under a read lock).
    pub(crate) fn server_config(&self) -> HandshakeConfig {
        self.with(|c| HandshakeConfig {
            server: c.server_config(),
            revocation_valid_until: c.revocation_valid_until(),
            verifier: c.client_verifier(),
        })
    }

    /// With `close_connections_on_reload`, a future that completes at the next reload.
    pub(crate) fn closer(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>> {
        if !self.close_on_reload {
            return None;
        }
        let mut rx = self.generation.subscribe();
        Some(Box::pin(async move {
            let _ = rx.changed().await;
        }))
    }

    pub(crate) fn expiry(&self) -> Option<CertExpiry> {
        self.with(|c| c.expiry().cloned())
    }

    /// [`MtlsConfig::warn_if_expiring`] for the current configuration.
    pub(crate) fn warn_if_expiring(&self) {
        self.with(MtlsConfig::warn_if_expiring);
    }

    fn swap(&self, config: MtlsConfig) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Swaps the TLS configuration of a running [`MtlsListener`](crate::MtlsListener); from
/// [`MtlsListener::reload_handle`](crate::MtlsListener::reload_handle). Cheap to clone.
///
/// A reload replaces the *whole* rustls configuration, which includes its session cache: a client
/// cannot resume a TLS session established under the old configuration, so a certificate that the
/// new CA bundle or CRLs refuse cannot get back in by resumption. New connections use the new
/// configuration; established connections keep going unless the listener was built with
/// [`close_connections_on_reload`](crate::MtlsListenerBuilder::close_connections_on_reload).
///
/// ```no_run
/// # async fn run(listener: mtls_tower::MtlsListener) {
/// use mtls_tower::MtlsConfig;
///
/// let handle = listener.reload_handle();
/// let build = || {
///     MtlsConfig::builder()
///         .server_cert_pem_files("server.pem", "server.key")
///         .client_ca_pem_file("clients-ca.pem")
///         .crl_file("clients-ca.crl")
///         .build()
/// };
/// // A bad file keeps the old configuration running and returns (and logs) the error.
/// if let Err(e) = handle.reload_with(build) {
///     eprintln!("reload refused: {e}");
/// }
/// // Or: reload on SIGHUP, or when the files change.
/// handle.reload_on_sighup(build);
/// handle.watch_files(vec!["server.pem".into(), "clients-ca.crl".into()], std::time::Duration::from_secs(5), build);
/// # }
/// ```
#[derive(Clone)]
pub struct ReloadHandle {
    cell: Arc<ConfigCell>,
}

impl fmt::Debug for ReloadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadHandle")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl ReloadHandle {
    pub(crate) fn new(cell: Arc<ConfigCell>) -> ReloadHandle {
        ReloadHandle { cell }
    }

    /// Swaps in `config` for every new connection.
    pub fn reload(&self, config: impl Into<MtlsConfig>) {
        let config = config.into();
        config.warn_if_expiring();
        self.cell.swap(config);
        tracing::info!(
            target: "mtls_tower::reload",
            generation = self.generation(),
            "TLS configuration reloaded"
        );
    }

    /// Builds a configuration with `build` and swaps it in. If `build` fails (a missing or bad
    /// file, a key that does not match), the running configuration stays, nothing is half-applied,
    /// and the error is logged and returned.
    pub fn reload_with(
        &self,
        build: impl FnOnce() -> Result<MtlsConfig, ConfigError>,
    ) -> Result<(), ConfigError> {
        match build() {
            Ok(config) => {
                self.reload(config);
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    target: "mtls_tower::reload",
                    error = %e,
                    "TLS configuration reload refused; the previous configuration stays in use"
                );
                Err(e)
            }
        }
    }

    /// How many reloads have happened.
    pub fn generation(&self) -> u64 {
        *self.cell.generation.borrow()
    }

    /// The configuration new connections get.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.cell.server_config().server
    }

    /// When the current server certificate and client CAs expire, for metrics.
    pub fn expiry(&self) -> Option<CertExpiry> {
        self.cell.expiry()
    }

    /// Reloads with `build` on every SIGHUP (Unix), until the returned task is aborted.
    #[cfg(unix)]
    pub fn reload_on_sighup<F>(&self, build: F) -> JoinHandle<()>
    where
        F: Fn() -> Result<MtlsConfig, ConfigError> + Send + Sync + 'static,
    {
        let handle = self.clone();
        tokio::spawn(async move {
            let mut hup = match tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::hangup(),
            ) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(target: "mtls_tower::reload", error = %e, "cannot listen for SIGHUP");
                    return;
                }
            };
            while hup.recv().await.is_some() {
                let _ = handle.reload_with(&build);
            }
        })
    }

    /// Polls the modification times of `paths` every `interval` and reloads with `build` when any
    /// changes (including a file replaced by a rename, as Kubernetes secret updates do). No
    /// dependency on OS file-watching APIs; an interval of a few seconds costs a few `stat` calls.
    pub fn watch_files<F>(
        &self,
        paths: Vec<PathBuf>,
        interval: Duration,
        build: F,
    ) -> JoinHandle<()>
    where
        F: Fn() -> Result<MtlsConfig, ConfigError> + Send + Sync + 'static,
    {
        let handle = self.clone();
        let stamp = move |paths: &[PathBuf]| -> Vec<Option<SystemTime>> {
            paths
                .iter()
                .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                .collect()
        };
        tokio::spawn(async move {
            let mut last = stamp(&paths);
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = stamp(&paths);
                if now != last {
                    last = now;
                    let _ = handle.reload_with(&build);
                }
            }
        })
    }
}
