//! The client's cost of authorizing the server by a `Policy`: full TLS 1.3 mutual-TLS handshakes
//! in memory (no sockets), the same server, and three clients side by side:
//!
//! - `plain`: a rustls `ClientConfig` with webpki's server verifier (hostname checked) and the
//!   same client certificate, provider and versions;
//! - `hostname`: `MtlsClientConfig` without a policy (the hostname checked, plus its own checks:
//!   the server CAs' dates and the serverAuth EKU, which parses the leaf);
//! - `policy`: `MtlsClientConfig` with `authorize_server(spiffe_id)`, to a server certificate
//!   that carries the DNS name too (webpki's name check passes, then the policy runs);
//! - `policy-spiffe-only`: the same policy, to a server certificate with only its SPIFFE ID (the
//!   usual SVID: webpki's name check fails and is set aside, then the policy runs).
//!
//! `cargo bench -p mtls-tower --bench client_handshake -- MODE N` runs N handshakes. Instruction
//! counts come from running it under callgrind twice and subtracting (`benchmarks/client-handshake.sh`,
//! BENCHMARKS.md): that cancels start-up and the PKI generation.

#![allow(clippy::unwrap_used, missing_docs, clippy::print_stdout)]

use std::sync::Arc;

use mtls_core::testing::TestPki;
use mtls_core::{Oid, Policy};
use mtls_tower::{MtlsClientConfig, MtlsConfig};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};

const ID: &str = "spiffe://prod.example/ns/billing/sa/api";

/// One full handshake between fresh connections, in memory.
fn handshake(client: &Arc<rustls::ClientConfig>, server: &Arc<rustls::ServerConfig>) {
    let name = ServerName::try_from("billing.internal").unwrap();
    let mut c = ClientConnection::new(Arc::clone(client), name).unwrap();
    let mut s = ServerConnection::new(Arc::clone(server)).unwrap();
    let mut buf = Vec::new();
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        c.write_tls(&mut buf).unwrap();
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets().unwrap();
        buf.clear();
        s.write_tls(&mut buf).unwrap();
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets().unwrap();
    }
    std::hint::black_box((&c, &s));
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mode = args.next().unwrap_or_else(|| "plain".into());
    let n: usize = args.next().map_or(100, |n| n.parse().unwrap());

    let pki = TestPki::new();
    let with_dns = pki
        .ca
        .leaf()
        .spiffe(ID)
        .dns("billing.internal")
        .ekus(&[Oid::SERVER_AUTH])
        .build();
    let spiffe_only = pki.ca.leaf().spiffe(ID).ekus(&[Oid::SERVER_AUTH]).build();
    let server_cert = if mode == "policy-spiffe-only" {
        &spiffe_only
    } else {
        &with_dns
    };
    let server = MtlsConfig::builder()
        .server_cert(server_cert.chain().to_vec(), server_cert.key_der())
        .client_ca_certs(vec![pki.ca.cert_der().clone()])
        .build()
        .unwrap()
        .server_config();
    // Resumption off on both sides: every handshake is a full one.
    let mut server = (*server).clone();
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    let server = Arc::new(server);

    let me = pki.ca.leaf().common_name("frontend").build();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = match mode.as_str() {
        "plain" => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pki.ca.cert_der().clone()).unwrap();
            rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(me.chain().to_vec(), me.key_der())
                .unwrap()
        }
        "hostname" => (*MtlsClientConfig::builder()
            .client_cert(me.chain().to_vec(), me.key_der())
            .server_ca_certs(vec![pki.ca.cert_der().clone()])
            .crypto_provider(provider)
            .build()
            .unwrap()
            .client_config())
        .clone(),
        "policy" | "policy-spiffe-only" => (*MtlsClientConfig::builder()
            .client_cert(me.chain().to_vec(), me.key_der())
            .server_ca_certs(vec![pki.ca.cert_der().clone()])
            .authorize_server(Policy::spiffe_id(ID).unwrap())
            .crypto_provider(provider)
            .build()
            .unwrap()
            .client_config())
        .clone(),
        other => panic!("unknown mode {other:?}: plain, hostname, policy or policy-spiffe-only"),
    };
    client.resumption = rustls::client::Resumption::disabled();
    let client = Arc::new(client);

    for _ in 0..n {
        handshake(&client, &server);
    }
    println!("{mode}: {n} handshakes");
}
