//! Shared by the examples and the end-to-end tests: the example gRPC protocol and a tonic client
//! over mutual TLS.

pub mod greeter;

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

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

/// The alert's name in a TLS error's text: `"... received fatal alert: UnknownCA ..."` gives
/// `"UnknownCA"` (rustls prints alerts that way; the text may go on after the name).
pub fn alert_name(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("received fatal alert: ")?;
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The TLS alert the server sent (`"UnknownCA"`, `"CertificateRequired"`, ...), found in an
/// error's source chain. hyper and h2 keep rustls' error only as text by the time it reaches a
/// tonic `Status`, so the text is read when the typed error is gone.
pub fn tls_alert(error: &(dyn Error + 'static)) -> Option<String> {
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
        if let Some(name) = alert_name(&e.to_string()) {
            return Some(name.to_string());
        }
        next = e.source();
    }
    None
}

/// The tally behind the examples' expected-versus-outcome tables, and their exit code.
#[derive(Debug, Default)]
pub struct Checks {
    failures: usize,
}

impl Checks {
    /// Compares one outcome with the expected one; returns the table's mark for the row.
    pub fn check(&mut self, want: &str, outcome: &str) -> &'static str {
        if want == outcome {
            "ok"
        } else {
            self.failures += 1;
            "UNEXPECTED"
        }
    }

    /// Prints the verdict; success only when every outcome was the expected one.
    #[allow(clippy::print_stdout)]
    pub fn finish(self) -> ExitCode {
        println!();
        if self.failures == 0 {
            println!("every outcome is the expected one");
            ExitCode::SUCCESS
        } else {
            println!("{} unexpected outcome(s)", self.failures);
            ExitCode::FAILURE
        }
    }
}

/// Whether a call failed because the server refused the TLS handshake: either the server's
/// alert is in the error, or the connection closed before any response. tonic reports one or the
/// other depending on whether its connection task read the alert before it took up the request
/// (in TLS 1.3 the client sends its request before the server has judged its certificate), so
/// the alert's name is not always there to read.
pub fn handshake_refused(status: &tonic::Status) -> bool {
    if tls_alert(status).is_some() {
        return true;
    }
    let mut next: Option<&(dyn Error + 'static)> = Some(status);
    while let Some(e) = next {
        if e.to_string().contains("connection closed") {
            return status.code() == tonic::Code::Cancelled;
        }
        next = e.source();
    }
    false
}

/// A call's outcome in a word: `OK`, the gRPC code (`PermissionDenied`, ...), or `refused` when
/// the server refused the handshake (see [`handshake_refused`]).
pub fn describe_grpc<T>(result: &Result<T, tonic::Status>) -> String {
    match result {
        Ok(_) => "OK".to_string(),
        Err(status) if handshake_refused(status) => "refused".to_string(),
        Err(status) => format!("{:?}", status.code()),
    }
}
