//! gRPC over mutual TLS: a tonic greeter whose two methods have different certificate policies,
//! served by the same listener as the HTTP examples, called by real tonic clients.
//!
//! ```sh
//! cargo run --example grpc
//! ```
//!
//! The protocol is `examples/proto/greeter.proto`; the messages are hand-written prost structs and
//! the service code comes from tonic-build's manual builder, so no `protoc` is needed.
//!
//! - the whole server: workloads of the trust domain `example.org` only
//!   (`RequireClientCertLayer::new(..).grpc()`: denials are gRPC statuses, not HTTP 403);
//! - `SayHello`: the billing and ops namespaces (`#[require_cert]` on the method);
//! - `SetGreeting`: the ops admin only;
//! - every call: the client's `grpc-timeout` deadline, at most 30 s (`GrpcTimeoutLayer`).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use mtls_examples::greeter::{
    Greeter, GreeterClient, GreeterServer, HelloReply, HelloRequest, SetGreetingReply,
    SetGreetingRequest,
};
use mtls_examples::{describe_grpc, grpc_channel, tls_alert, Checks};
use mtls_tower::grpc::GrpcTimeoutLayer;
use mtls_tower::testing::{TestCert, TestPki};
use mtls_tower::{require_cert, MtlsConfig, MtlsListener, Policy, RequireClientCertLayer};
use tonic::service::Routes;
use tonic::{Request, Response, Status};
use tower::Layer;

struct MyGreeter {
    greeting: Mutex<String>,
}

#[tonic::async_trait]
impl Greeter for MyGreeter {
    /// Billing and ops workloads.
    #[require_cert(spiffe_path_prefix = ["/ns/billing", "/ns/ops"])]
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let caller = mtls_tower::grpc::client_cert(&request)?
            .spiffe_id()
            .map(ToString::to_string)
            .unwrap_or_default();
        let greeting = self.greeting.lock().unwrap().clone();
        let message = format!("{greeting} {} (you are {caller})", request.get_ref().name);
        Ok(Response::new(HelloReply { message }))
    }

    /// The ops admin only.
    #[require_cert(spiffe_id = "spiffe://example.org/ns/ops/sa/admin")]
    async fn set_greeting(
        &self,
        request: Request<SetGreetingRequest>,
    ) -> Result<Response<SetGreetingReply>, Status> {
        let new = request.into_inner().greeting;
        let previous = std::mem::replace(&mut *self.greeting.lock().unwrap(), new);
        Ok(Response::new(SetGreetingReply { previous }))
    }
}

struct Client {
    name: &'static str,
    cert: Option<TestCert>,
}

fn clients(pki: &TestPki) -> Vec<Client> {
    let spiffe = |ca: &mtls_tower::testing::TestCa, id: &str| Some(ca.leaf().spiffe(id).build());
    vec![
        Client {
            name: "billing api",
            cert: spiffe(&pki.ca, "spiffe://example.org/ns/billing/sa/api"),
        },
        Client {
            name: "web frontend",
            cert: spiffe(&pki.ca, "spiffe://example.org/ns/web/sa/frontend"),
        },
        Client {
            name: "ops admin",
            cert: spiffe(&pki.ca, "spiffe://example.org/ns/ops/sa/admin"),
        },
        Client {
            name: "other trust domain",
            cert: spiffe(&pki.ca, "spiffe://partner.example/ns/ops/sa/admin"),
        },
        Client {
            name: "rogue CA",
            cert: spiffe(&pki.rogue_ca, "spiffe://example.org/ns/ops/sa/admin"),
        },
        Client {
            name: "no certificate",
            cert: None,
        },
    ]
}

/// What each client should get from each method.
fn expected(client: &str, method: &str) -> &'static str {
    match (client, method) {
        ("billing api", "SayHello") | ("ops admin", _) => "OK",
        ("rogue CA" | "no certificate", _) => "refused",
        _ => "PermissionDenied",
    }
}

/// What to print after the outcome: the reply, or the TLS alert of a refused handshake when the
/// client got to read it (see `mtls_examples::handshake_refused`).
fn detail<T>(result: &Result<T, Status>, reply: impl FnOnce(&T) -> String) -> Option<String> {
    match result {
        Ok(r) => Some(reply(r)),
        Err(status) => tls_alert(status).map(|alert| format!("TLS alert {alert}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let pki = TestPki::new();
    let server_cert = pki.ca.server_cert("localhost");
    let config = MtlsConfig::builder()
        .server_cert(server_cert.chain().to_vec(), server_cert.key_der())
        .client_ca_certs(vec![pki.ca.cert_der().clone()])
        .build()
        .expect("a valid configuration");
    let listener = MtlsListener::bind("127.0.0.1:0", config)
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr();

    let greeter = MyGreeter {
        greeting: Mutex::new("hello".into()),
    };
    // `guard_methods`: the methods' `#[require_cert]` policies decided on the request head,
    // before tonic decodes a message for a caller they turn away.
    let routes = Routes::new(mtls_tower::grpc::guard_methods(GreeterServer::new(greeter)));
    // Clients' `grpc-timeout` deadlines, and at most 30 s a call (tonic's own `Server` would
    // enforce the deadlines; `serve` leaves that to this layer).
    let routes = GrpcTimeoutLayer::new()
        .max(Duration::from_secs(30))
        .layer(routes);
    // Server-wide, outermost: the trust domain. The methods' own policies add to it.
    let trust_domain = Policy::trust_domain("example.org").unwrap();
    let app = RequireClientCertLayer::new(trust_domain)
        .grpc()
        .layer(routes);
    tokio::spawn(mtls_tower::serve(listener, app));
    println!(
        "gRPC server on https://{addr} (client CA pinned, TLS 1.3, client certificate required)\n"
    );

    println!(
        "{:<20} {:<12} {:<30} {:<30}",
        "client", "method", "expected", "outcome"
    );
    println!("{}", "-".repeat(96));
    let mut checks = Checks::default();
    for client in clients(&pki) {
        // A channel per call: after a refused handshake, a second call on the same channel may
        // only see "connection closed", not the server's alert.
        let greeter = || {
            let channel =
                grpc_channel(addr, pki.ca.cert_pem(), client.cert.as_ref()).expect("TLS settings");
            GreeterClient::new(channel)
        };
        let hello = greeter()
            .say_hello(HelloRequest {
                name: client.name.into(),
            })
            .await;
        let set = greeter()
            .set_greeting(SetGreetingRequest {
                greeting: "good morning".into(),
            })
            .await;
        for (method, outcome, detail) in [
            (
                "SayHello",
                describe_grpc(&hello),
                detail(&hello, |r| r.get_ref().message.clone()),
            ),
            (
                "SetGreeting",
                describe_grpc(&set),
                detail(&set, |r| format!("was {:?}", r.get_ref().previous)),
            ),
        ] {
            let want = expected(client.name, method);
            let mark = checks.check(want, &outcome);
            let detail = detail.map(|d| format!("  {d}")).unwrap_or_default();
            println!(
                "{:<20} {:<12} {want:<30} {outcome:<30} {mark}{detail}",
                client.name, method
            );
        }
    }
    checks.finish()
}
