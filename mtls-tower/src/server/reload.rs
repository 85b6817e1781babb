//! [`ReloadHandle`]: swap a running listener's TLS configuration (server certificate, client CA
//! bundle, CRLs) without a restart.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{CertExpiry, ConfigError, FileStamp, MtlsConfig};

/// What one handshake uses, taken at one moment: the rustls configuration, until when its CRLs
/// and client CAs hold, and its client certificate verifier (to verify a resumed session's
/// chain again).
pub(crate) struct HandshakeConfig {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) revocation_valid_until: Option<SystemTime>,
    /// The earliest `notAfter` among the client CAs valid when this was taken.
    pub(crate) client_cas_valid_until: Option<SystemTime>,
    pub(crate) verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

/// The configuration a listener hands to each new handshake, and its generation.
pub(crate) struct ConfigCell {
    current: RwLock<MtlsConfig>,
    generation: watch::Sender<u64>,
    close_on_reload: bool,
    /// Held from the moment a reload starts reading files until its result is swapped in, so
    /// that reloads run one after another: a slow build started earlier (SIGHUP) can never
    /// overwrite a newer one (the file watch) with older files.
    reloading: Mutex<()>,
}

impl ConfigCell {
    pub(crate) fn new(config: MtlsConfig, close_on_reload: bool) -> ConfigCell {
        ConfigCell {
            current: RwLock::new(config),
            generation: watch::Sender::new(0),
            close_on_reload,
            reloading: Mutex::new(()),
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
            client_cas_valid_until: c.client_cas_valid_until(SystemTime::now()),
            verifier: c.client_cert_verifier(),
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

    /// Serialises reloads (see `reloading`). A reload that panicked left no half-applied state
    /// (a swap assigns a finished value), so a poisoned lock is taken as it is.
    fn reloading(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// Swaps in `config` for every new connection (after any reload already under way).
    pub fn reload(&self, config: impl Into<MtlsConfig>) {
        let config = config.into();
        {
            let _one_at_a_time = self.cell.reloading();
            self.cell.swap(config);
        }
        self.reloaded();
    }

    /// What every reload logs once the new configuration is in.
    fn reloaded(&self) {
        self.cell.warn_if_expiring();
        tracing::info!(
            target: "mtls_tower::reload",
            generation = self.generation(),
            "TLS configuration reloaded"
        );
    }

    /// Builds a configuration with `build` and swaps it in. If `build` fails (a missing or bad
    /// file, a key that does not match), the running configuration stays, nothing is half-applied,
    /// and the error is logged and returned. Reloads run one at a time: `build` starts after any
    /// reload under way has finished.
    pub fn reload_with(
        &self,
        build: impl FnOnce() -> Result<MtlsConfig, ConfigError>,
    ) -> Result<(), ConfigError> {
        let built = {
            let _one_at_a_time = self.cell.reloading();
            build().map(|config| self.cell.swap(config))
        };
        match built {
            Ok(()) => {
                self.reloaded();
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
        // The running configuration is read once the reload lock is held: a reload that finished
        // just before decides which files (and options) are read.
        self.reload_with(|| self.current_config().rebuild())
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
                let (h, b) = (handle.clone(), Arc::clone(&build));
                if let Err(e) = tokio::task::spawn_blocking(move || h.reload_with(&*b)).await {
                    tracing::error!(
                        target: "mtls_tower::reload",
                        error = %e,
                        "the TLS configuration build panicked; the previous configuration stays in use"
                    );
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
    /// A rotation is rarely one atomic write, so a change is applied only once the files have
    /// stopped changing: they must look the same at two looks in a row (one `interval` apart),
    /// and the same again after they were read, or the result is thrown away and read again.
    /// When the new configuration cannot be built (a certificate written before its key:
    /// [`ConfigError::KeyMismatch`]; a file briefly missing), the running configuration stays,
    /// and the build is tried again at every tick until it succeeds. Each distinct failure is
    /// logged once (target `mtls_tower::reload`), not once per tick, and the success after it
    /// says how long it took.
    ///
    /// Replace files by renaming a finished file over the old one, as Kubernetes and most tools
    /// do. A PEM file written in place slowly enough that a look falls inside a pause of the
    /// writer could be read half-way: a CA bundle or CRL file missing its last blocks still
    /// parses. Holding still for one whole interval is what this watch can check.
    ///
    /// A change is a new modification time, size, or (on Unix) file identity, read through
    /// symlinks: a file rewritten in place, replaced by a rename, or reached through a
    /// Kubernetes secret volume's `..data` symlink that is swapped to a new directory is seen,
    /// even when the new file keeps the old one's modification time. The starting point is how
    /// the files looked when the running configuration read them, so a change made between that
    /// read and this call is followed too. No dependency on OS file-watching APIs; an interval
    /// of a few seconds costs a few `stat` calls. The looks and the builds run on tokio's
    /// blocking pool, so a slow disk never stalls a runtime worker.
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
            let config = handle.current_config();
            let paths = config.files().into_iter().map(Path::to_owned).collect();
            (paths, Some(config.file_stamps().to_vec()))
        };
        let handle = self.clone();
        self.spawn_watch(interval, files, move || handle.current_config().rebuild())
    }

    /// Polls `paths` every `interval` and reloads with `build` when any changes, under the same
    /// rules as [`follow_files`](Self::follow_files) (applied once the files hold still, retried
    /// at every tick until it builds); this one is for a `build` that reads files of its own
    /// choosing. Prefer `follow_files` when the configuration comes from
    /// [`MtlsConfig::builder`]: it cannot forget the key.
    pub fn watch_files<F>(
        &self,
        paths: Vec<PathBuf>,
        interval: Duration,
        build: F,
    ) -> JoinHandle<()>
    where
        F: Fn() -> Result<MtlsConfig, ConfigError> + Send + Sync + 'static,
    {
        self.spawn_watch(interval, move || (paths.clone(), None), build)
    }

    /// `files` gives the paths to watch and, when known, how they looked when the running
    /// configuration read them.
    fn spawn_watch(
        &self,
        interval: Duration,
        files: impl Fn() -> (Vec<PathBuf>, Option<Vec<Option<FileStamp>>>) + Send + Sync + 'static,
        build: impl Fn() -> Result<MtlsConfig, ConfigError> + Send + Sync + 'static,
    ) -> JoinHandle<()> {
        let handle = self.clone();
        // The starting point is fixed here, not in the task: a file written right after this
        // call returns (before the task first runs) is then a change. (A few `stat` calls, once;
        // every later look runs on the blocking pool.)
        let (paths, applied) = files();
        let first = Watch::new(paths, applied);
        let (files, build) = (Arc::new(files), Arc::new(build));
        tokio::spawn(async move {
            if first.paths.is_empty() {
                tracing::warn!(
                    target: "mtls_tower::reload",
                    "the TLS configuration was not read from files, so there are none to follow"
                );
            }
            let mut watch = first;
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is now: the starting point was just fixed
            loop {
                tick.tick().await;
                // `stat`, reading and parsing files block (a slow disk, a network file system):
                // they run on the blocking pool, never on a runtime worker that serves
                // connections. Logging stays here, in the task.
                let (files, build, h) = (Arc::clone(&files), Arc::clone(&build), handle.clone());
                let mut w = watch.clone();
                let step = tokio::task::spawn_blocking(move || {
                    let outcome = w.step(&*files, &*build, &h.cell);
                    (w, outcome)
                })
                .await;
                let outcome = match step {
                    Ok((w, outcome)) => {
                        watch = w;
                        outcome
                    }
                    Err(e) => {
                        // The build panicked: keep the change pending, so that it is read again.
                        watch
                            .failing_since
                            .get_or_insert_with(std::time::Instant::now);
                        tracing::error!(
                            target: "mtls_tower::reload",
                            error = %e,
                            "the TLS configuration build panicked; the previous configuration stays in use"
                        );
                        continue;
                    }
                };
                match outcome {
                    Step::Idle => {}
                    Step::Applied { after_failures } => {
                        if let Some(since) = after_failures {
                            tracing::info!(
                                target: "mtls_tower::reload",
                                after_secs = since.as_secs_f64(),
                                "TLS configuration rebuilt after failed attempts"
                            );
                        }
                        handle.reloaded();
                    }
                    Step::Failed { error: None } => {}
                    Step::Failed { error: Some(text) } => tracing::error!(
                        target: "mtls_tower::reload",
                        error = %text,
                        "TLS configuration reload refused; the previous configuration stays in \
                         use, and the files are read again at every tick until they build"
                    ),
                }
            }
        })
    }
}

/// What a file watch remembers between ticks.
#[derive(Clone)]
struct Watch {
    paths: Vec<PathBuf>,
    /// How the files looked when the running configuration read them.
    applied: Vec<Option<FileStamp>>,
    /// How they looked at the previous tick: a change is applied once two looks agree.
    last_look: Vec<Option<FileStamp>>,
    /// Set while the files have changed but do not build yet; the build is retried every tick.
    failing_since: Option<std::time::Instant>,
    last_error: Option<String>,
}

/// What one tick of a watch did.
enum Step {
    Idle,
    Applied {
        /// How long the files had failed to build before, if they had.
        after_failures: Option<Duration>,
    },
    /// The files do not build; `error` is the reason when it differs from the last one's (a
    /// half-written pair that stays half-written for a minute is one log line, not one a tick).
    Failed {
        error: Option<String>,
    },
}

impl Watch {
    /// Starts from `applied` (how the running configuration found the files), or from how they
    /// look now when that is not known.
    fn new(paths: Vec<PathBuf>, applied: Option<Vec<Option<FileStamp>>>) -> Watch {
        let now = FileStamp::all(&paths);
        let applied = applied
            .filter(|a| a.len() == paths.len())
            .unwrap_or_else(|| now.clone());
        Watch {
            paths,
            applied,
            last_look: now,
            failing_since: None,
            last_error: None,
        }
    }

    /// One tick, on the blocking pool: look, and when the files changed and hold still, build
    /// and swap under the cell's reload lock.
    fn step(
        &mut self,
        files: &dyn Fn() -> (Vec<PathBuf>, Option<Vec<Option<FileStamp>>>),
        build: &dyn Fn() -> Result<MtlsConfig, ConfigError>,
        cell: &ConfigCell,
    ) -> Step {
        let (paths, applied) = files();
        // Only a configuration built from exactly these files (`follow_files`) says how it found
        // them; what a `watch_files` build read is its own business.
        let from_config = applied.is_some();
        if paths != self.paths {
            // Reloaded from other files: follow those from now on, from how that configuration
            // found them.
            *self = Watch::new(paths, applied);
            return Step::Idle;
        }
        let now = FileStamp::all(&self.paths);
        let still = now == self.last_look;
        self.last_look.clone_from(&now);
        let pending = now != self.applied || self.failing_since.is_some();
        if !(pending && still) {
            return Step::Idle;
        }
        let _one_at_a_time = cell.reloading();
        let config = match build() {
            Ok(config) => config,
            Err(e) => {
                self.failing_since
                    .get_or_insert_with(std::time::Instant::now);
                let text = e.to_string();
                let error =
                    (self.last_error.as_deref() != Some(text.as_str())).then(|| text.clone());
                self.last_error = Some(text);
                return Step::Failed { error };
            }
        };
        // Read while a file was changing: the result may mix old and new. Build again once the
        // files hold still.
        if FileStamp::all(&self.paths) != now {
            return Step::Idle;
        }
        // How the new configuration found the files (before it read them), else how they looked.
        self.applied = match config.file_stamps() {
            stamps if from_config && stamps.len() == self.paths.len() => stamps.to_vec(),
            _ => now,
        };
        cell.swap(config);
        let after_failures = self.failing_since.take().map(|t| t.elapsed());
        self.last_error = None;
        Step::Applied { after_failures }
    }
}

#[cfg(test)]
mod tests {
    use crate::server::config::FileStamp;

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
