//! Shared by the examples and the end-to-end tests: the example gRPC protocol and a tonic client
//! over mutual TLS.

pub mod greeter;

use std::error::Error;
use std::net::SocketAddr;

use mtls_tower::testing::TestCert;
use tokio_rustls::rustls;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A tonic channel to `https://{addr}` that verifies the server as `localhost` against
/// `server_ca_pem` and presents `client` (its chain and key) when given.
///
/// The channel connects on first use, so a refused handshake shows as the first call's error
/// (in TLS 1.3 the client finishes its handshake before the server judges its certificate).
///
/// # Errors
/// When tonic refuses the TLS settings (unreadable PEM).
pub fn grpc_channel(
    addr: SocketAddr,
    server_ca_pem: &str,
    client: Option<&TestCert>,
) -> Result<Channel, Box<dyn Error + Send + Sync>> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(server_ca_pem))
        .domain_name("localhost");
    if let Some(cert) = client {
        tls = tls.identity(Identity::from_pem(cert.chain_pem(), cert.key_pem()));
    }
    let endpoint = Channel::from_shared(format!("https://{addr}"))?.tls_config(tls)?;
    Ok(endpoint.connect_lazy())
}

/// The TLS alert the server sent (`"UnknownCA"`, `"CertificateRequired"`, ...), found in an
/// error's source chain. hyper and h2 keep rustls' error only as text by the time it reaches a
/// tonic `Status`, so the text is read when the typed error is gone.
pub fn tls_alert(error: &(dyn Error + 'static)) -> Option<String> {
    const MARK: &str = "received fatal alert: ";
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::AlertReceived(alert)) = e.downcast_ref::<rustls::Error>() {
            return Some(format!("{alert:?}"));
        }
        // `io::Error::source` skips the error it wraps: look inside.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(alert) = tls_alert(inner) {
                return Some(alert);
            }
        }
        let text = e.to_string();
        if let Some((_, alert)) = text.split_once(MARK) {
            // The alert's name; the text may go on (tonic prints its sources after it).
            let name: String = alert
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            if !name.is_empty() {
                return Some(name);
            }
        }
        next = e.source();
    }
    None
}

/// A call's outcome in a word: `OK`, the gRPC code (`PermissionDenied`, ...), or
/// `refused: <TLS alert>` when the handshake was refused.
pub fn describe_grpc<T>(result: &Result<T, tonic::Status>) -> String {
    match result {
        Ok(_) => "OK".to_string(),
        Err(status) => match tls_alert(status) {
            Some(alert) => format!("refused: {alert}"),
            None => format!("{:?}", status.code()),
        },
    }
}
