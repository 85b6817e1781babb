//! A load test: what mutual TLS with policies costs, against a bare axum + rustls server, a naive
//! per-request certificate check, and nginx with `ssl_verify_client`.
//!
//! ```sh
//! cargo run --release -p mtls-loadtest                       # the default run (about 2.5 min)
//! cargo run --release -p mtls-loadtest -- --smoke            # CI: 1 short round, bare + mtls
//! cargo run --release -p mtls-loadtest -- --mode keepalive --rounds 3 --seconds 2 \
//!     --servers bare,mtls --json benchmarks/loadtest.json --svg benchmarks/loadtest.svg
//! cargo run --release -p mtls-loadtest -- --hostile           # good clients under attack
//! cargo run --release -p mtls-loadtest -- --hostile --smoke   # CI: a silent flood, 2 s
//! ```
//!
//! `--hostile` (see `hostile.rs`) runs seven attacks against `mtls`, `bare` and nginx,
//! each server pinned to its own core, and measures a good client's success rate and latency, the
//! server's peak RSS and CPU. `--before-exe PATH` adds `mtls-before`, the `mtls` server of another
//! build of this tool, to either kind of run: a change measured beside the code before it.
//!
//! One run starts every server it compares, each in its own process on its own 127.0.0.1 port
//! (the Rust servers are this binary re-executed with a hidden `--server KIND` flag), all with the
//! same PKI and the same rustls settings, then measures them interleaved: each round runs every
//! server for `--seconds`, in an order that rotates from round to round, and a first warm-up round
//! is discarded. The client (hyper 1 + tokio-rustls, presenting a client certificate, never
//! resuming a TLS session) runs in this process, on a runtime of its own.
//!
//! - `keepalive`: `--connections` connections, requests back to back on each: requests/s, p50, p99.
//! - `handshake`: `--connections` workers, each opening a new TLS connection per request (one
//!   `GET` with `connection: close`): handshakes/s, p50, p99 of connect + handshake + request.
//!
//! The servers:
//! - `bare`: a hand-written accept loop (TcpListener -> TlsAcceptor -> hyper-util `auto::Builder`,
//!   a task per connection) serving an axum router, with no authorization;
//! - `mtls`: `MtlsListener` + `mtls_tower::serve`, a router-wide `RequireClientCertLayer` with a
//!   3-rule policy and a `#[require_cert(..)]` route;
//! - `naive`: as `bare`, plus a service that parses the client certificate on every request and
//!   checks the same policy as `mtls` (layer + route);
//! - `nginx`: Debian's nginx with `ssl_verify_client on`, TLS 1.3 only, the same server key and
//!   client CA, `return 200 "ok"`, one worker per core; skipped, with the reason, when not found.
//!
//! Two variants, not run unless named in `--servers`, split `mtls`'s cost over `bare`:
//! - `parse-once`: `bare`'s accept loop, the identity parsed once per connection inside the
//!   connection's task, and `mtls`'s router (layer + `#[require_cert]`) behind `AddClientCert`;
//! - `mtls-loop`: `MtlsListener` with a hand-written hyper-util loop instead of `mtls_tower::serve`.
//!
//! The Rust servers' listen backlog is what they would get from their own `bind`:
//! `mtls_tower::limits::DEFAULT_LISTEN_BACKLOG` (4,096) for `mtls` and `mtls-loop`, and tokio's
//! 1,024 for the hand-written ones. `LOADTEST_BACKLOG=N` in the environment sets it for all of
//! them (the kernel caps it at `net.core.somaxconn`).
//!
//! Every response must be `200 ok`; anything else counts as an error of that server, errors are
//! shown in the table, and a run with errors exits with a failure. The output is a table of
//! medians over rounds with two ratios to `bare` (of the medians, and the median of the ratios
//! within each round), the server's CPU time per request or connection (from `/proc`, Linux), the
//! issue's targets, and optionally JSON (`--json`) and an SVG bar chart (`--svg`). BENCHMARKS.md
//! holds a run and says how to read it.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use mtls_tower::testing::{TestCert, TestPki};
use mtls_tower::{
    require_cert, AddClientCert, ClientCert, ClientIdentity, MtlsConfig, MtlsListener, Policy,
    RequireClientCertLayer,
};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub(crate) mod cli;
pub(crate) mod client;
pub(crate) mod hostile;
pub(crate) mod launch;
pub(crate) mod measure;
pub(crate) mod pki;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod servers;

// Every module sees every other's items through `use super::*`: one tool, split by concern.
#[allow(unused_imports)]
use {cli::*, client::*, launch::*, measure::*, pki::*, report::*, run::*, servers::*};

/// The body every server answers with; the client checks it on every response.
pub(crate) const BODY: &str = "ok";
/// The path the client requests.
pub(crate) const PATH: &str = "/api";
/// How long a TCP connect + TLS handshake (+ one request, in handshake mode) may take before it
/// counts as an error.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one keep-alive request may take before it counts as an error.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a server process to print its port or start listening.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// A pause between two measurements, for the closing connections of the last one to go away.
pub(crate) const SETTLE: Duration = Duration::from_millis(200);
/// Above this many cores used by other processes during a measurement, the run says so.
pub(crate) const NOISY_OTHER_CORES: f64 = 0.2;
/// The pid of the nginx master, for the watchdog to stop it if the run overruns (0: none).
pub(crate) static NGINX_PID: AtomicU32 = AtomicU32::new(0);

/// A boxed error that can cross tasks.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The task driving one client connection; it ends with the connection.
pub(crate) type ConnectionTask = tokio::task::JoinHandle<Result<(), hyper::Error>>;

/// Runs a measurement, or (with the hidden `--server`) one server.
fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Cli::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Cli::Server { kind, pki }) => server_main(kind, &pki),
        Ok(Cli::Run(options)) => client_main(&options),
        Ok(Cli::Hostile(options)) => hostile::hostile_main(&options),
        Err(e) => {
            eprintln!("loadtest: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
