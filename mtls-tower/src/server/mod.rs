//! Serving mutual TLS (feature `server`): a secure rustls configuration, a listener that handshakes
//! each connection in a task of its own, and the verified identity put on every request.

#[cfg(feature = "axum")]
mod body;
mod config;
mod connection;
pub mod limits;
mod listener;
mod reload;
#[cfg(feature = "axum")]
mod serve;
mod table;
mod verifier;

#[cfg(feature = "axum")]
pub use body::{RequestBody, RequestBodyError};
pub(crate) use config::default_provider;
pub use config::{CertExpiry, MtlsConfig, MtlsConfigBuilder, DEFAULT_EXPIRY_WARNING};
pub use connection::AddClientCert;
pub use listener::{
    MtlsListener, MtlsListenerBuilder, MtlsStream, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_HANDSHAKES,
};
pub use reload::ReloadHandle;
#[cfg(feature = "axum")]
pub use serve::{serve, serve_with_shutdown, MtlsMakeService};
