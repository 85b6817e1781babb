//! [`ReloadHandle`]: swap a running listener's TLS configuration (server certificate, client CA
//! bundle, CRLs) without a restart.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
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
/// use std::time::Duration;
///
/// let handle = listener.reload_handle();
/// // Follow the files the running configuration was read from (certificate, key, client CA
/// // bundle, CRLs): when one changes, all are read again. A half-written pair keeps the old
/// // configuration and is retried until it builds.
/// handle.follow_files(Duration::from_secs(5));
/// // Or read them again on SIGHUP, or now:
/// handle.reload_files_on_sighup();
/// if let Err(e) = handle.reload_files() {
///     eprintln!("reload refused, the old configuration stays: {e}");
/// }
/// # }
/// ```
///
/// To switch to a configuration of another shape (other files, other options), build it and
/// hand it over with [`reload`](Self::reload) or [`reload_with`](Self::reload_with).
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

    /// A copy of the running configuration (`Arc` clones).
    fn current_config(&self) -> MtlsConfig {
        self.cell.with(MtlsConfig::clone)
    }

    /// Reads the files the running configuration was built from again
    /// ([`MtlsConfig::rebuild`]) and swaps the result in; as [`reload_with`](Self::reload_with),
    /// a failure keeps the running configuration and is logged and returned. It reads the files
    /// on the calling thread: from async code, call it inside `tokio::task::spawn_blocking`.
    pub fn reload_files(&self) -> Result<(), ConfigError> {
        let current = self.current_config();
        self.reload_with(|| current.rebuild())
    }

    /// Reloads with `build` on every SIGHUP (Unix, through `tokio::signal`), until the returned
    /// task is aborted. `build` runs on tokio's blocking pool, not on a runtime worker.
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
            let build = Arc::new(build);
            while hup.recv().await.is_some() {
                // Reading and parsing files blocks: the blocking pool does it.
                let b = Arc::clone(&build);
                match tokio::task::spawn_blocking(move || b()).await {
                    Ok(built) => {
                        let _ = handle.reload_with(|| built);
                    }
                    Err(e) => tracing::error!(
                        target: "mtls_tower::reload",
                        error = %e,
                        "the TLS configuration build panicked; the previous configuration stays in use"
                    ),
                }
            }
        })
    }

    /// [`reload_files`](Self::reload_files) on every SIGHUP (Unix), until the returned task is
    /// aborted.
    #[cfg(unix)]
    pub fn reload_files_on_sighup(&self) -> JoinHandle<()> {
        let handle = self.clone();
        self.reload_on_sighup(move || handle.current_config().rebuild())
    }

    /// Follows the files the running configuration was built from ([`MtlsConfig::files`]:
    /// server certificate chain, key, client CA bundle, CRL files): every `interval` it looks at
    /// them, and when any has changed it reads them all again ([`MtlsConfig::rebuild`]) and
    /// swaps the result in. Nothing to list twice, and nothing left out: the key is followed as
    /// well as the certificate.
    ///
    /// A rotation is rarely one atomic write. When the new configuration cannot be built (a
    /// certificate written before its key: [`ConfigError::KeyMismatch`]; a file half-written or
    /// briefly missing), the running configuration stays, and the build is tried again at every
    /// tick until it succeeds. Each distinct failure is logged once (target
    /// `mtls_tower::reload`), not once per tick, and the success after it says how long it took.
    ///
    /// A change is a new modification time, size, or (on Unix) file identity, read through
    /// symlinks: a file rewritten in place, replaced by a rename, or reached through a
    /// Kubernetes secret volume's `..data` symlink that is swapped to a new directory is seen,
    /// even when the new file keeps the old one's modification time. No dependency on OS
    /// file-watching APIs; an interval of a few seconds costs a few `stat` calls. The looks and
    /// the builds run on tokio's blocking pool, so a slow disk never stalls a runtime worker.
    ///
    /// After a [`reload`](Self::reload) with a configuration built from other files, those are
    /// followed. A configuration with no files (all in memory, or a bare rustls `ServerConfig`)
    /// leaves nothing to follow: that is logged, and the task waits for one that has.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use mtls_tower::{MtlsConfig, MtlsListener};
    ///
    /// let config = MtlsConfig::builder()
    ///     .server_cert_pem_files("/etc/tls/tls.crt", "/etc/tls/tls.key")
    ///     .client_ca_pem_file("/etc/tls/ca.crt")
    ///     .crl_file("/etc/tls/ca.crl")
    ///     .build()?;
    /// let listener = MtlsListener::bind("0.0.0.0:8443", config).await?;
    /// let reload = listener.reload_handle();
    /// reload.follow_files(Duration::from_secs(5)); // all four files
    /// reload.reload_files_on_sighup();             // and `kill -HUP` for "now"
    /// # Ok(())
    /// # }
    /// ```
    pub fn follow_files(&self, interval: Duration) -> JoinHandle<()> {
        let handle = self.clone();
        let files = move || {
            handle
                .current_config()
                .files()
                .into_iter()
                .map(Path::to_owned)
                .collect()
        };
        let handle = self.clone();
        self.spawn_watch(interval, files, move || handle.current_config().rebuild())
    }

    /// Polls `paths` every `interval` and reloads with `build` when any changes, retrying a
    /// build that fails at every tick until it succeeds, as [`follow_files`](Self::follow_files)
    /// does; this one is for a `build` that reads files of its own choosing. Prefer
    /// `follow_files` when the configuration comes from [`MtlsConfig::builder`]: it cannot
    /// forget the key.
    pub fn watch_files<F>(
        &self,
        paths: Vec<PathBuf>,
        interval: Duration,
        build: F,
    ) -> JoinHandle<()>
    where
        F: Fn() -> Result<MtlsConfig, ConfigError> + Send + Sync + 'static,
    {
        self.spawn_watch(interval, move || paths.clone(), build)
    }

    fn spawn_watch(
        &self,
        interval: Duration,
        files: impl Fn() -> Vec<PathBuf> + Send + Sync + 'static,
        build: impl Fn() -> Result<MtlsConfig, ConfigError> + Send + Sync + 'static,
    ) -> JoinHandle<()> {
        let handle = self.clone();
        // The first look is taken here, not in the task: a file written right after this call
        // returns (before the task first runs) is then a change, not the starting point. (A few
        // `stat` calls, once; every later look runs on the blocking pool.)
        let first = Watch::new(files());
        let (files, build) = (Arc::new(files), Arc::new(build));
        tokio::spawn(async move {
            if first.paths.is_empty() {
                tracing::warn!(
                    target: "mtls_tower::reload",
                    "the TLS configuration was not read from files, so there are none to follow"
                );
            }
            let mut watch = Some(first);
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is now: the configuration was just read
            loop {
                tick.tick().await;
                // `stat`, reading and parsing files block (a slow disk, a network file system):
                // they run on the blocking pool, never on a runtime worker that serves
                // connections. Logging stays here, in the task.
                let (files, build) = (Arc::clone(&files), Arc::clone(&build));
                let previous = watch.take();
                let step = tokio::task::spawn_blocking(move || {
                    let paths = files();
                    let mut watch = match previous {
                        Some(w) if w.paths == paths => w,
                        // Reloaded from other files (or the last step panicked): follow these
                        // from now on.
                        _ => return (Watch::new(paths), None),
                    };
                    if !watch.due() {
                        return (watch, None);
                    }
                    let built = build();
                    (watch, Some(built))
                })
                .await;
                let (mut w, built) = match step {
                    Ok(step) => step,
                    Err(e) => {
                        tracing::error!(
                            target: "mtls_tower::reload",
                            error = %e,
                            "the TLS configuration build panicked; the previous configuration stays in use"
                        );
                        continue;
                    }
                };
                match built {
                    None => {}
                    Some(Ok(config)) => {
                        if let Some(since) = w.failing_since.take() {
                            tracing::info!(
                                target: "mtls_tower::reload",
                                after_secs = since.elapsed().as_secs_f64(),
                                "TLS configuration rebuilt after failed attempts"
                            );
                        }
                        w.last_error = None;
                        handle.reload(config);
                    }
                    Some(Err(e)) => {
                        w.failing_since
                            .get_or_insert_with(tokio::time::Instant::now);
                        let text = e.to_string();
                        // Logged once per distinct failure: a half-written pair that stays
                        // half-written for a minute is one line, not one per tick.
                        if w.last_error.as_deref() != Some(text.as_str()) {
                            tracing::error!(
                                target: "mtls_tower::reload",
                                error = %text,
                                "TLS configuration reload refused; the previous configuration \
                                 stays in use, and the files are read again at every tick until \
                                 they build"
                            );
                            w.last_error = Some(text);
                        }
                    }
                }
                watch = Some(w);
            }
        })
    }
}

/// What a file watch remembers between ticks.
struct Watch {
    paths: Vec<PathBuf>,
    stamps: Vec<Option<FileStamp>>,
    /// Set while the files have changed but do not build yet; the build is retried every tick.
    failing_since: Option<tokio::time::Instant>,
    last_error: Option<String>,
}

impl Watch {
    fn new(paths: Vec<PathBuf>) -> Watch {
        let stamps = paths.iter().map(|p| FileStamp::of(p)).collect();
        Watch {
            paths,
            stamps,
            failing_since: None,
            last_error: None,
        }
    }

    /// Whether to build now: a file changed since the last look, or the last build failed.
    fn due(&mut self) -> bool {
        // Stamps are taken before the build reads the files, so a write that lands during the
        // build changes the stamp for the next tick rather than being missed.
        let stamps: Vec<_> = self.paths.iter().map(|p| FileStamp::of(p)).collect();
        let changed = stamps != self.stamps;
        self.stamps = stamps;
        changed || self.failing_since.is_some()
    }
}

/// What a file looks like from outside, read through symlinks.
#[derive(PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    /// Device and inode: a new file behind the same name (a rename, a swapped `..data`
    /// symlink) is a change even when it keeps the old modification time and size.
    #[cfg(unix)]
    id: (u64, u64),
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            id: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::FileStamp;

    #[cfg(unix)]
    #[test]
    fn a_new_file_renamed_over_the_old_one_is_a_change_even_with_its_time_and_size() {
        let dir = std::env::temp_dir().join(format!("mtls-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, next) = (dir.join("ca.pem"), dir.join("ca.pem.new"));
        std::fs::write(&path, "same bytes").unwrap();
        let before = FileStamp::of(&path).unwrap();
        std::fs::write(&next, "same bytes").unwrap();
        let file = std::fs::File::options().write(true).open(&next).unwrap();
        file.set_modified(before.modified.unwrap()).unwrap();
        std::fs::rename(&next, &path).unwrap();
        let after = FileStamp::of(&path).unwrap();
        assert_eq!((after.modified, after.len), (before.modified, before.len));
        assert!(after != before);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_has_no_stamp() {
        assert!(FileStamp::of(std::path::Path::new("/nonexistent/mtls/ca.pem")).is_none());
    }
}
