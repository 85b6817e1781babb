//! A load test: what mutual TLS with policies costs, against a bare axum + rustls server, a naive
//! per-request certificate check, and nginx with `ssl_verify_client`.
//!
//! ```sh
//! cargo run --release --example loadtest                       # the default run (about 2.5 min)
//! cargo run --release --example loadtest -- --smoke            # CI: 1 short round, bare + mtls
//! cargo run --release --example loadtest -- --mode keepalive --rounds 3 --seconds 2 \
//!     --servers bare,mtls --json benchmarks/loadtest.json --svg benchmarks/loadtest.svg
//! cargo run --release --example loadtest -- --hostile           # good clients under attack
//! cargo run --release --example loadtest -- --hostile --smoke   # CI: a silent flood, 2 s
//! ```
//!
//! `--hostile` (see `loadtest/hostile.rs`) runs seven attacks against `mtls`, `bare` and nginx,
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
//! `LOADTEST_BACKLOG=N` in the environment sets the Rust servers' listen backlog (tokio's
//! `TcpListener::bind` uses 1,024; the kernel caps it at `net.core.somaxconn`).
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

#[path = "loadtest/hostile.rs"]
mod hostile;

/// The body every server answers with; the client checks it on every response.
const BODY: &str = "ok";
/// The path the client requests.
const PATH: &str = "/api";
/// How long a TCP connect + TLS handshake (+ one request, in handshake mode) may take before it
/// counts as an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one keep-alive request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a server process to print its port or start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// A pause between two measurements, for the closing connections of the last one to go away.
const SETTLE: Duration = Duration::from_millis(200);
/// Above this many cores used by other processes during a measurement, the run says so.
const NOISY_OTHER_CORES: f64 = 0.2;
/// The pid of the nginx master, for the watchdog to stop it if the run overruns (0: none).
static NGINX_PID: AtomicU32 = AtomicU32::new(0);

/// A boxed error that can cross tasks.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The task driving one client connection; it ends with the connection.
type ConnectionTask = tokio::task::JoinHandle<Result<(), hyper::Error>>;

/// A server the tool can start and measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum ServerKind {
    /// axum + tokio-rustls by hand, no authorization.
    Bare,
    /// This project: `MtlsListener`, `serve`, the layer and `#[require_cert]`.
    Mtls,
    /// `bare` plus a certificate parse and policy check on every request.
    Naive,
    /// nginx with `ssl_verify_client on`.
    Nginx,
    /// A variant, to split `mtls`'s cost: `bare`'s accept loop, the identity parsed once per
    /// connection in the connection's task, and `mtls`'s router behind `AddClientCert`.
    #[serde(rename = "parse-once")]
    ParseOnce,
    /// A variant, to split `mtls`'s cost: `MtlsListener` with a hand-written hyper-util loop (as
    /// `AddClientCert`'s docs show) instead of `mtls_tower::serve`, and `mtls`'s router.
    #[serde(rename = "mtls-loop")]
    MtlsLoop,
    /// `mtls` as built by another binary of this tool (`--before-exe`, an earlier commit's
    /// `loadtest`): to compare a change side by side in one run.
    #[serde(rename = "mtls-before")]
    MtlsBefore,
}

impl ServerKind {
    /// The servers compared by default, in order.
    const DEFAULT: [ServerKind; 4] = [
        ServerKind::Bare,
        ServerKind::Mtls,
        ServerKind::Naive,
        ServerKind::Nginx,
    ];

    /// Every kind, the variants last.
    const ALL: [ServerKind; 7] = [
        ServerKind::Bare,
        ServerKind::Mtls,
        ServerKind::Naive,
        ServerKind::Nginx,
        ServerKind::ParseOnce,
        ServerKind::MtlsLoop,
        ServerKind::MtlsBefore,
    ];

    /// The name used on the command line and in the output.
    fn name(self) -> &'static str {
        match self {
            ServerKind::Bare => "bare",
            ServerKind::Mtls => "mtls",
            ServerKind::Naive => "naive",
            ServerKind::Nginx => "nginx",
            ServerKind::ParseOnce => "parse-once",
            ServerKind::MtlsLoop => "mtls-loop",
            ServerKind::MtlsBefore => "mtls-before",
        }
    }

    /// The kind with this name.
    fn parse(name: &str) -> Option<ServerKind> {
        ServerKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The bar colour in the chart.
    fn color(self) -> &'static str {
        match self {
            ServerKind::Bare => "#7f7f7f",
            ServerKind::Mtls => "#1f77b4",
            ServerKind::Naive => "#ff7f0e",
            ServerKind::Nginx => "#2ca02c",
            ServerKind::ParseOnce => "#9467bd",
            ServerKind::MtlsLoop => "#17becf",
            ServerKind::MtlsBefore => "#aec7e8",
        }
    }
}

/// What the client measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Requests back to back on long-lived connections.
    Keepalive,
    /// A new TLS connection per request.
    Handshake,
}

impl Mode {
    /// The name used in the output.
    fn name(self) -> &'static str {
        match self {
            Mode::Keepalive => "keep-alive",
            Mode::Handshake => "handshake",
        }
    }

    /// The unit of the rate.
    fn unit(self) -> &'static str {
        match self {
            Mode::Keepalive => "req/s",
            Mode::Handshake => "hs/s",
        }
    }
}

/// The options of a measuring run.
#[derive(Clone, Debug, Serialize)]
struct Options {
    /// The modes to measure, in order.
    modes: Vec<Mode>,
    /// Measured rounds (the warm-up round is extra).
    rounds: usize,
    /// Seconds per server per mode per round.
    seconds: f64,
    /// Seconds per server per mode of the discarded warm-up round (0: none).
    warmup_seconds: f64,
    /// Connections (keep-alive) or concurrent workers (handshake).
    connections: usize,
    /// The servers to compare.
    servers: Vec<ServerKind>,
    /// Where to write the JSON report.
    #[serde(skip)]
    json: Option<PathBuf>,
    /// Where to write the SVG chart.
    #[serde(skip)]
    svg: Option<PathBuf>,
    /// The `loadtest` binary of an earlier build, for `mtls-before`.
    before_exe: Option<PathBuf>,
    /// Pin the servers to core 0 and the client to core 1.
    pin: bool,
    /// CI mode: assert non-zero throughput and zero errors.
    smoke: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            modes: vec![Mode::Keepalive, Mode::Handshake],
            rounds: 5,
            seconds: 3.0,
            warmup_seconds: 1.0,
            connections: 32,
            servers: ServerKind::DEFAULT.to_vec(),
            json: None,
            svg: None,
            before_exe: None,
            pin: false,
            smoke: false,
        }
    }
}

/// What the command line asks for.
enum Cli {
    /// Measure.
    Run(Options),
    /// Be one server (the hidden flag the parent re-executes this binary with).
    Server {
        /// Which server.
        kind: ServerKind,
        /// The folder holding the PKI's PEM files.
        pki: PathBuf,
    },
    /// Good clients under attack.
    Hostile(hostile::HostileOptions),
    /// Print the usage.
    Help,
}

/// The usage text.
const USAGE: &str = "\
usage: loadtest [--mode keepalive|handshake|both] [--rounds N] [--seconds S] [--warmup S]
                [--connections N] [--servers bare,mtls,naive,nginx,parse-once,mtls-loop]
                [--json PATH] [--svg PATH] [--before-exe PATH (adds mtls-before to --servers)]
                [--pin (servers on core 0, nginx with 1 worker; the client on core 1)]
       loadtest --smoke      (1 round of 1 s, both modes, bare + mtls; fails on errors)
       loadtest --hostile [--attacks none,silent,dribble,slow-headers,idle-hoard,garbage,greedy-h2]
                [--servers mtls,bare,nginx] [--seconds S] [--json PATH]
                (good clients under attack; default: every attack, mtls + bare + nginx, 8 s)
       loadtest --hostile --smoke   (CI: none + silent against mtls, 2 s; fails unless every
                                     good request succeeds)
defaults: --mode both --rounds 5 --seconds 3 --warmup 1 --connections 32 --servers bare,mtls,naive,nginx";

/// Parses the command line (without the program name).
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut options = Options::default();
    let mut server = None;
    let mut pki = None;
    let mut hostile = false;
    let mut attacks = hostile::Attack::ALL.to_vec();
    let mut servers_given = false;
    let mut seconds_given = false;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--help" | "-h" => return Ok(Cli::Help),
            "--smoke" => options.smoke = true,
            "--hostile" => hostile = true,
            "--attacks" => {
                attacks = Vec::new();
                for name in value()?.split(',').filter(|s| !s.is_empty()) {
                    let attack = hostile::Attack::parse(name)
                        .ok_or_else(|| format!("unknown attack {name:?}"))?;
                    if !attacks.contains(&attack) {
                        attacks.push(attack);
                    }
                }
                if attacks.is_empty() {
                    return Err("--attacks needs at least one attack".into());
                }
            }
            "--mode" => {
                options.modes = match value()?.as_str() {
                    "keepalive" | "keep-alive" => vec![Mode::Keepalive],
                    "handshake" => vec![Mode::Handshake],
                    "both" => vec![Mode::Keepalive, Mode::Handshake],
                    other => return Err(format!("unknown mode {other:?}")),
                }
            }
            "--rounds" => options.rounds = parse_number(&flag, &value()?, 1.0, 1000.0)? as usize,
            "--seconds" => {
                options.seconds = parse_number(&flag, &value()?, 0.1, 60.0)?;
                seconds_given = true;
            }
            "--warmup" => options.warmup_seconds = parse_number(&flag, &value()?, 0.0, 60.0)?,
            "--connections" => {
                options.connections = parse_number(&flag, &value()?, 1.0, 1024.0)? as usize;
            }
            "--servers" => {
                let mut servers = Vec::new();
                for name in value()?.split(',').filter(|s| !s.is_empty()) {
                    let kind = ServerKind::parse(name)
                        .ok_or_else(|| format!("unknown server {name:?}"))?;
                    if !servers.contains(&kind) {
                        servers.push(kind);
                    }
                }
                if servers.is_empty() {
                    return Err("--servers needs at least one server".into());
                }
                options.servers = servers;
                servers_given = true;
            }
            "--json" => options.json = Some(PathBuf::from(value()?)),
            "--svg" => options.svg = Some(PathBuf::from(value()?)),
            "--before-exe" => options.before_exe = Some(PathBuf::from(value()?)),
            "--pin" => options.pin = true,
            "--server" => {
                let name = value()?;
                server = Some(
                    ServerKind::parse(&name).ok_or_else(|| format!("unknown server {name:?}"))?,
                );
            }
            "--pki" => pki = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if let Some(kind) = server {
        let pki = pki.ok_or("--server needs --pki")?;
        return Ok(Cli::Server { kind, pki });
    }
    if options.before_exe.is_some() && !options.servers.contains(&ServerKind::MtlsBefore) {
        options.servers.push(ServerKind::MtlsBefore);
    }
    if hostile {
        return Ok(Cli::Hostile(
            hostile::HostileOptions {
                attacks,
                servers: if servers_given {
                    options.servers
                } else if options.before_exe.is_some() {
                    vec![
                        ServerKind::Mtls,
                        ServerKind::MtlsBefore,
                        ServerKind::Bare,
                        ServerKind::Nginx,
                    ]
                } else {
                    vec![ServerKind::Mtls, ServerKind::Bare, ServerKind::Nginx]
                },
                seconds: if seconds_given { options.seconds } else { 8.0 },
                json: options.json,
                smoke: false,
                before_exe: options.before_exe,
            }
            .smoke_if(options.smoke),
        ));
    }
    if options.smoke {
        options.rounds = 1;
        options.seconds = 1.0;
        options.warmup_seconds = 0.0;
        options.connections = options.connections.min(8);
        options.modes = vec![Mode::Keepalive, Mode::Handshake];
        options.servers = vec![ServerKind::Bare, ServerKind::Mtls];
    }
    Ok(Cli::Run(options))
}

/// Parses a number for `flag` within `[min, max]`.
fn parse_number(flag: &str, text: &str, min: f64, max: f64) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{flag}: expected a number from {min} to {max}, got {text:?}"
        )),
    }
}

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

// ---------------------------------------------------------------------------------------------
// The PKI, shared by every server through PEM files
// ---------------------------------------------------------------------------------------------

/// The test PKI, written to a temporary folder that is removed on drop.
struct Pki {
    /// The folder holding `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.
    dir: PathBuf,
    /// The CA that issued every certificate: servers trust it for clients, the client for servers.
    pki: TestPki,
    /// The client certificate every policy admits.
    client: TestCert,
    /// A client certificate from the same CA that the policy denies (`OU=contractors`).
    contractor: TestCert,
}

impl Pki {
    /// Generates the PKI and writes it to a new temporary folder.
    fn create() -> std::io::Result<Pki> {
        let pki = TestPki::new();
        let server = pki.ca.server_cert("localhost");
        let client = pki
            .ca
            .leaf()
            .common_name("billing-api")
            .org_unit("engineering")
            .dns("api.billing.internal")
            .spiffe("spiffe://prod.example/ns/billing/sa/api")
            .build();
        let contractor = pki
            .ca
            .leaf()
            .common_name("billing-tool")
            .org_unit("contractors")
            .dns("tool.billing.internal")
            .spiffe("spiffe://prod.example/ns/billing/sa/tool")
            .build();
        let dir = std::env::temp_dir().join(format!("mtls-loadtest-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("ca.pem"), pki.ca.cert_pem())?;
        std::fs::write(dir.join("server.pem"), server.chain_pem())?;
        std::fs::write(dir.join("server.key"), server.key_pem())?;
        std::fs::write(dir.join("client.pem"), client.chain_pem())?;
        std::fs::write(dir.join("client.key"), client.key_pem())?;
        Ok(Pki {
            dir,
            pki,
            client,
            contractor,
        })
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The one server configuration every Rust server uses: `MtlsConfig`'s defaults (TLS 1.3 only,
/// client certificate with clientAuth EKU required, pinned client CA, ALPN h2 + http/1.1) over the
/// PKI's PEM files. nginx reads the same files.
fn mtls_config(pki_dir: &Path) -> Result<MtlsConfig, mtls_tower::ConfigError> {
    MtlsConfig::builder()
        .server_cert_pem_files(pki_dir.join("server.pem"), pki_dir.join("server.key"))
        .client_ca_pem_file(pki_dir.join("ca.pem"))
        .build()
}

// ---------------------------------------------------------------------------------------------
// The servers (child processes)
// ---------------------------------------------------------------------------------------------

/// The router-wide policy of `mtls`, also checked by `naive`: three rules.
fn layer_policy() -> Policy {
    Policy::all([
        Policy::trust_domain("prod.example").expect("a valid trust domain"),
        Policy::san("*.billing.internal").expect("a valid DNS pattern"),
        !Policy::ou("contractors").expect("a valid OU"),
    ])
    .expect("three rules")
}

/// Everything `mtls` checks on the route the client hits (the layer's policy and the route's),
/// for `naive` to check by hand.
fn naive_policy() -> Policy {
    layer_policy().and(Policy::spiffe_path_prefix("/ns/billing").expect("a valid prefix"))
}

/// The handler of `bare` and `naive`.
async fn plain_handler() -> &'static str {
    BODY
}

/// The handler of `mtls`: the route's own policy on top of the router-wide layer.
#[require_cert(spiffe_path_prefix = "/ns/billing")]
async fn guarded_handler() -> &'static str {
    BODY
}

/// `POST /upload` (for `--hostile`'s greedy uploads): buffers the whole body, up to 8 MiB, as
/// axum's `Bytes` extractor does.
fn upload_route() -> axum::routing::MethodRouter {
    axum::routing::post(|body: Bytes| async move { body.len().to_string() })
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024 * 1024))
}

/// The router of `bare` and `naive`.
fn plain_app() -> Router {
    Router::new()
        .route(PATH, get(plain_handler))
        .route("/upload", upload_route())
}

/// The router of `mtls`.
fn mtls_app() -> Router {
    Router::new()
        .route(PATH, get(guarded_handler))
        .route("/upload", upload_route())
        .layer(RequireClientCertLayer::new(layer_policy()))
}

/// A server process: builds the configuration, binds 127.0.0.1:0, prints `port N` on stdout and
/// serves until its stdin is closed (by the parent, or because the parent died).
fn server_main(kind: ServerKind, pki_dir: &Path) -> ExitCode {
    let config = match mtls_config(pki_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadtest server {}: {e}", kind.name());
            return ExitCode::FAILURE;
        }
    };
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        // `LOADTEST_BACKLOG=N`: the Rust servers' listen backlog (tokio's `bind` uses 1,024).
        let backlog = std::env::var("LOADTEST_BACKLOG").ok();
        let bound = match backlog.map(|b| b.parse::<u32>()) {
            Some(Ok(backlog)) => tokio::net::TcpSocket::new_v4().and_then(|s| {
                s.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
                s.listen(backlog)
            }),
            Some(Err(e)) => {
                eprintln!("loadtest server {}: LOADTEST_BACKLOG: {e}", kind.name());
                return ExitCode::FAILURE;
            }
            None => TcpListener::bind("127.0.0.1:0").await,
        };
        let tcp = match bound {
            Ok(l) => l,
            Err(e) => {
                eprintln!("loadtest server {}: bind 127.0.0.1:0: {e}", kind.name());
                return ExitCode::FAILURE;
            }
        };
        let port = tcp.local_addr().expect("a bound address").port();
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "port {port}");
        let _ = stdout.flush();
        let result = match kind {
            ServerKind::Bare => {
                let acceptor = TlsAcceptor::from(config.server_config());
                serve_by_hand(tcp, acceptor, PerConnection::Nothing).await;
                Ok(())
            }
            ServerKind::Naive => {
                let acceptor = TlsAcceptor::from(config.server_config());
                let policy = Arc::new(naive_policy());
                serve_by_hand(tcp, acceptor, PerConnection::ParseEveryRequest(policy)).await;
                Ok(())
            }
            ServerKind::ParseOnce => {
                let acceptor = TlsAcceptor::from(config.server_config());
                serve_by_hand(tcp, acceptor, PerConnection::ParseOnce).await;
                Ok(())
            }
            ServerKind::MtlsLoop => match MtlsListener::builder(tcp, config).build() {
                Ok(listener) => {
                    serve_mtls_loop(listener).await;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            ServerKind::Mtls => match MtlsListener::builder(tcp, config).build() {
                Ok(listener) => mtls_tower::serve(listener, mtls_app()).await,
                Err(e) => Err(e),
            },
            ServerKind::Nginx | ServerKind::MtlsBefore => Err(std::io::Error::other(
                "nginx and mtls-before are not servers of this binary",
            )),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadtest server {}: {e}", kind.name());
                ExitCode::FAILURE
            }
        }
    })
}

/// What the hand-written server does with a connection's client certificate.
enum PerConnection {
    /// Nothing (`bare`).
    Nothing,
    /// Parses it on every request and checks this policy (`naive`).
    ParseEveryRequest(Arc<Policy>),
    /// Parses it once into a `ClientCert` for `mtls`'s router (`parse-once`).
    ParseOnce,
}

/// The hand-written server of `bare`, `naive` and `parse-once`: accept, then in a task per
/// connection the TLS handshake and hyper-util's `auto::Builder` serving an axum router.
async fn serve_by_hand(tcp: TcpListener, acceptor: TlsAcceptor, per_connection: PerConnection) {
    let per_connection = Arc::new(per_connection);
    let app = match *per_connection {
        PerConnection::ParseOnce => mtls_app(),
        _ => plain_app(),
    };
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Once: under `--hostile`'s hoarding this is every 10 ms.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| eprintln!("bare server: accept: {e} (said once)"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // As MtlsListener does.
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let per_connection = per_connection.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let chain: Arc<[rustls::pki_types::CertificateDer<'static>]> = match *per_connection {
                PerConnection::Nothing => Arc::from(Vec::new()),
                _ => tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.to_vec().into())
                    .unwrap_or_else(|| Arc::from(Vec::new())),
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let io = TokioIo::new(tls);
            let _ = match &*per_connection {
                PerConnection::Nothing => {
                    builder
                        .serve_connection(io, TowerToHyperService::new(app))
                        .await
                }
                PerConnection::ParseEveryRequest(policy) => {
                    let policy = policy.clone();
                    let service = tower::service_fn(move |req: Request<Incoming>| {
                        naive_check(&chain, &policy, app.clone(), req)
                    });
                    builder
                        .serve_connection(io, TowerToHyperService::new(service))
                        .await
                }
                PerConnection::ParseOnce => {
                    let Ok(identity) = ClientIdentity::from_der_chain(&chain) else {
                        return;
                    };
                    let cert = ClientCert::from_handshake(Arc::new(identity));
                    let service = AddClientCert::new(app, Some(cert)).with_remote_addr(peer);
                    builder
                        .serve_connection(io, TowerToHyperService::new(service))
                        .await
                }
            };
        });
    }
}

/// `mtls-loop`: `MtlsListener` (handshake in its own task, identity parsed once) and a
/// hand-written hyper-util loop, as `AddClientCert`'s documentation shows.
async fn serve_mtls_loop(mut listener: MtlsListener) {
    let app = mtls_app();
    loop {
        let (stream, peer) = listener.accept().await;
        let service =
            AddClientCert::new(app.clone(), stream.client_cert().cloned()).with_remote_addr(peer);
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
        });
    }
}

/// `naive`'s per-request work: parse the peer's chain into an identity, evaluate the policy,
/// then call the router or answer 403.
fn naive_check(
    chain: &[rustls::pki_types::CertificateDer<'static>],
    policy: &Policy,
    app: Router,
    req: Request<Incoming>,
) -> impl std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>> {
    let allowed = ClientIdentity::from_der_chain(chain).is_ok_and(|id| policy.allows(&id));
    async move {
        if allowed {
            tower::ServiceExt::oneshot(app, req).await
        } else {
            Ok(StatusCode::FORBIDDEN.into_response())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Starting and stopping the servers (parent side)
// ---------------------------------------------------------------------------------------------

/// How a server process is launched: pinned to a core, with an open-file limit (for `--hostile`).
#[derive(Clone, Debug, Default)]
struct Launch {
    /// The core to pin it to (`taskset -c`).
    cpu: Option<usize>,
    /// Its open-file limit (`ulimit -n`).
    nofile: Option<u64>,
}

impl Launch {
    /// A command that runs `program` under these settings (through bash and taskset when set).
    fn command(&self, program: &Path) -> Command {
        if self.cpu.is_none() && self.nofile.is_none() {
            return Command::new(program);
        }
        let mut script = String::new();
        if let Some(n) = self.nofile {
            // Where the hard limit is lower, the server runs with what it may have.
            let _ = write!(
                script,
                "ulimit -n {n} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; "
            );
        }
        script.push_str("exec ");
        if let Some(cpu) = self.cpu {
            let _ = write!(script, "taskset -c {cpu} ");
        }
        script.push_str("\"$0\" \"$@\"");
        let mut command = Command::new("bash");
        command.arg("-c").arg(script).arg(program);
        command
    }
}

/// Which nginx configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NginxStyle {
    /// The throughput runs: one worker per core, 4,096 connections per worker, HTTP/1.1.
    Throughput,
    /// `--hostile`: the issue's anchor, one worker with the default 768 connections, and HTTP/2
    /// for the greedy uploads.
    Hostile,
}

/// A running server process.
struct ServerProcess {
    /// Which server.
    kind: ServerKind,
    /// Where it listens.
    addr: SocketAddr,
    /// The process.
    child: Child,
    /// The Rust servers exit when this closes; `None` for nginx.
    stdin: Option<ChildStdin>,
    /// Whether [`stop`](Self::stop) already ran.
    stopped: bool,
}

impl ServerProcess {
    /// Starts a Rust server: this binary with `--server KIND --pki DIR`, launched as `launch`
    /// says, and reads its port.
    fn start_rust_with(
        kind: ServerKind,
        pki_dir: &Path,
        launch: &Launch,
    ) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        ServerProcess::start_exe(&exe, kind, kind, pki_dir, launch)
    }

    /// Starts `exe --server AS`, reported as `kind`.
    fn start_exe(
        exe: &Path,
        kind: ServerKind,
        run_as: ServerKind,
        pki_dir: &Path,
        launch: &Launch,
    ) -> Result<ServerProcess, String> {
        let mut child = launch
            .command(exe)
            .arg("--server")
            .arg(run_as.name())
            .arg("--pki")
            .arg(pki_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the {} server: {e}", kind.name()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut process = ServerProcess {
            kind,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            stdin,
            stopped: false,
        };
        let line = rx
            .recv_timeout(STARTUP_TIMEOUT)
            .map_err(|_| format!("the {} server did not print its port", kind.name()))?;
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| format!("the {} server printed {line:?}", kind.name()))?;
        process.addr.set_port(port);
        Ok(process)
    }

    /// nginx in `style` (one worker for `Hostile`), launched as `launch` says.
    fn start_nginx_with(
        nginx: &Path,
        pki_dir: &Path,
        style: NginxStyle,
        launch: &Launch,
    ) -> Result<ServerProcess, String> {
        ServerProcess::start_nginx_styled(nginx, pki_dir, 1, style, launch)
    }

    /// Starts nginx with `workers` workers and a configuration of its own in `pki_dir`, and waits
    /// until it listens.
    fn start_nginx_styled(
        nginx: &Path,
        pki_dir: &Path,
        workers: usize,
        style: NginxStyle,
        launch: &Launch,
    ) -> Result<ServerProcess, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let conf = pki_dir.join("nginx.conf");
        let error_log = pki_dir.join("nginx-error.log");
        std::fs::write(&conf, nginx_conf(pki_dir, port, workers, style))
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let mut prefix = pki_dir.as_os_str().to_owned();
        prefix.push("/");
        let mut child = launch
            .command(nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", nginx.display()))?;
        NGINX_PID.store(child.id(), Ordering::SeqCst);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                NGINX_PID.store(0, Ordering::SeqCst);
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                let log = std::fs::read_to_string(&error_log).unwrap_or_default();
                return Err(format!(
                    "nginx exited at startup ({status}): {}{}",
                    stderr.trim(),
                    log.trim()
                ));
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                break;
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                let mut process = ServerProcess {
                    kind: ServerKind::Nginx,
                    addr,
                    child,
                    stdin: None,
                    stopped: false,
                };
                process.stop();
                return Err("nginx did not start listening in time".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(ServerProcess {
            kind: ServerKind::Nginx,
            addr,
            child,
            stdin: None,
            stopped: false,
        })
    }

    /// Stops the process: closes a Rust server's stdin, sends nginx SIGTERM (its fast shutdown,
    /// which also stops its workers), waits up to 5 s, then kills it.
    fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        if self.kind == ServerKind::Nginx {
            terminate(self.child.id());
        }
        drop(self.stdin.take());
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if self.kind == ServerKind::Nginx {
            NGINX_PID.store(0, Ordering::SeqCst);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whatever happens, the run ends: after `budget` seconds, stops nginx and exits with 3.
fn watchdog(budget: f64, what: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(budget));
        eprintln!("loadtest: the {what} overran its {budget:.0} s budget; stopping");
        let pid = NGINX_PID.load(Ordering::SeqCst);
        if pid != 0 {
            terminate(pid);
        }
        std::process::exit(3);
    });
}

/// Sends SIGTERM to `pid` with kill(1) (this example has no libc binding).
fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The nginx configuration: TLS 1.3 only, the same server certificate and key, the same client CA
/// with `ssl_verify_client on`, `return 200 "ok"`, one worker per core, no access log (the Rust
/// servers log nothing per request either), and no limit on requests per keep-alive connection
/// (nginx closes a connection after 1000 requests by default, which would add handshakes to its
/// keep-alive figures).
///
/// `Hostile` keeps nginx's defaults for what the attacks probe (768 `worker_connections`, the
/// 60 s `client_header_timeout`, 75 s `keepalive_timeout`), as the issue's anchor ran it, and adds
/// HTTP/2 and an `/upload` location for the greedy uploads (nginx reads and discards the body).
fn nginx_conf(dir: &Path, port: u16, workers: usize, style: NginxStyle) -> String {
    let d = dir.display();
    let (connections, keepalive, http2, upload) = match style {
        NginxStyle::Throughput => (
            "worker_connections 4096;",
            "keepalive_timeout 300s;\n    keepalive_requests 100000000;",
            "",
            "",
        ),
        NginxStyle::Hostile => (
            "",
            "",
            " http2",
            "location /upload {\n            client_max_body_size 16m;\n            return 200 \"ok\";\n        }",
        ),
    };
    format!(
        r#"daemon off;
master_process on;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{
    {connections}
}}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path {d}/nginx-client-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    {keepalive}
    server {{
        listen 127.0.0.1:{port} ssl{http2};
        server_name localhost;
        ssl_protocols TLSv1.3;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        ssl_client_certificate {d}/ca.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        location / {{
            return 200 "{BODY}";
        }}
        {upload}
    }}
}}
"#
    )
}

/// The nginx binary on `PATH` (or in `/usr/sbin`), if any.
fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

/// `nginx -v`, for the report.
fn nginx_version(nginx: &Path) -> Option<String> {
    let out = Command::new(nginx).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    Some(text.trim().trim_start_matches("nginx version: ").to_owned())
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// The TLS client: trusts the test CA, presents a client certificate (or none), TLS 1.3 only,
/// ALPN http/1.1, and never resumes a session, so that every handshake is a full one with client
/// authentication.
#[derive(Clone)]
struct Client {
    /// The connector with that configuration.
    connector: TlsConnector,
}

/// A negotiated TLS connection's parameters, recorded once per server.
#[derive(Clone, Debug, Default, Serialize)]
struct TlsInfo {
    /// The protocol version.
    version: String,
    /// The cipher suite.
    cipher_suite: String,
    /// The key-exchange group.
    key_exchange: String,
    /// The ALPN protocol.
    alpn: String,
}

impl Client {
    /// A client presenting `cert` (or no certificate) to servers whose certificate `pki` issued.
    fn new(pki: &TestPki, cert: Option<&TestCert>) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(pki.ca.cert_der().clone())
            .expect("the test CA is a valid trust anchor");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_root_certificates(roots);
        let mut config = match cert {
            Some(c) => builder
                .with_client_auth_cert(c.chain().to_vec(), c.key_der())
                .expect("a test certificate matches its key"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Client {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// Connects, handshakes, and starts an HTTP/1.1 connection; the connection's task is returned
    /// so that the caller can end it.
    async fn connect(
        &self,
        addr: SocketAddr,
    ) -> Result<(SendRequest<Empty<Bytes>>, ConnectionTask, TlsInfo), BoxError> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost")?;
        let tls = self.connector.connect(name, tcp).await?;
        let conn = tls.get_ref().1;
        let info = TlsInfo {
            version: conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            key_exchange: conn
                .negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
                .unwrap_or_default(),
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
        };
        let (sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tls)).await?;
        let task = tokio::spawn(connection);
        Ok((sender, task, info))
    }

    /// One request on a new connection (`connection: close`), then the connection is closed.
    /// Returns the status and body.
    async fn one_shot(&self, addr: SocketAddr) -> Result<(u16, Bytes, TlsInfo), BoxError> {
        let (mut sender, task, info) = self.connect(addr).await?;
        let result = request(&mut sender, true).await;
        drop(sender);
        // The server closes after answering `connection: close`; wait for that, briefly. When
        // the request failed, the connection's error says why (a TLS alert, say).
        let closed = timeout(Duration::from_secs(1), task).await;
        match (result, closed) {
            (Ok((status, body)), _) => Ok((status, body, info)),
            (Err(_), Ok(Ok(Err(e)))) => Err(e.into()),
            (Err(e), _) => Err(e),
        }
    }
}

/// `GET /api` on `sender`; the status and the body.
async fn request(
    sender: &mut SendRequest<Empty<Bytes>>,
    close: bool,
) -> Result<(u16, Bytes), BoxError> {
    let mut req = Request::get(PATH).header(header::HOST, "localhost");
    if close {
        req = req.header(header::CONNECTION, "close");
    }
    let req = req.body(Empty::new())?;
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// An error unless the answer is `200 ok`.
fn expect_ok(status: u16, body: &[u8]) -> Result<(), BoxError> {
    if status == 200 && body == BODY.as_bytes() {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer {status} {:?}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        )
        .into())
    }
}

/// What one worker saw.
#[derive(Default)]
struct WorkerResult {
    /// Latency of each request that completed with `200 ok` before the deadline, in nanoseconds.
    latencies: Vec<u64>,
    /// Failed requests, connections and handshakes.
    errors: u64,
    /// The first error's text.
    first_error: Option<String>,
}

impl WorkerResult {
    /// Counts an error and keeps the first one's text.
    fn error(&mut self, e: &dyn std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    /// Counts one request that started at `start` and has just ended: its latency when it
    /// succeeded before the run's `deadline` (later successes are not counted), its error
    /// otherwise. Returns whether it failed.
    fn record(&mut self, start: Instant, deadline: Instant, outcome: Result<(), BoxError>) -> bool {
        let end = Instant::now();
        match outcome {
            Ok(()) => {
                if end <= deadline {
                    self.latencies.push((end - start).as_nanos() as u64);
                }
                false
            }
            Err(e) => {
                self.error(&e);
                true
            }
        }
    }
}

/// One measurement: one server, one mode, one round.
#[derive(Clone, Debug, Serialize)]
struct Sample {
    /// Successful requests (keep-alive) or connections (handshake) per second.
    rate: f64,
    /// Successful requests or connections.
    completed: u64,
    /// Errors.
    errors: u64,
    /// Median latency, milliseconds.
    p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    p99_ms: f64,
    /// Where the machine's CPU time went during the window (Linux only).
    cpu: Option<CpuUse>,
    /// The server's CPU time per successful request or connection, microseconds (Linux only).
    server_cpu_us_per_op: Option<f64>,
    /// The first error's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

impl Sample {
    /// Merges the workers' results over a window of `seconds`, with the CPU use over it.
    fn from_workers(results: Vec<WorkerResult>, seconds: f64, cpu: Option<CpuUse>) -> Sample {
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        for r in results {
            latencies.extend(r.latencies);
            errors += r.errors;
            first_error = first_error.or(r.first_error);
        }
        latencies.sort_unstable();
        let completed = latencies.len() as u64;
        Sample {
            rate: completed as f64 / seconds,
            completed,
            errors,
            p50_ms: percentile(&latencies, 0.50) / 1e6,
            p99_ms: percentile(&latencies, 0.99) / 1e6,
            server_cpu_us_per_op: cpu
                .as_ref()
                .filter(|_| completed > 0)
                .map(|c| c.server_cores * c.seconds / completed as f64 * 1e6),
            cpu,
            first_error,
        }
    }
}

/// Where the machine's CPU time went during a measurement, in cores (1.0: one core busy for the
/// whole window), from `/proc` (Linux).
#[derive(Clone, Debug, Serialize)]
struct CpuUse {
    /// The window, seconds.
    seconds: f64,
    /// This process: the load-generating client.
    client_cores: f64,
    /// The server process (and, for nginx, its workers).
    server_cores: f64,
    /// Everything else on the machine: other people's work, the kernel's for other processes.
    other_cores: f64,
    /// Time the hypervisor ran someone else while this machine wanted a CPU.
    steal_cores: f64,
}

/// CPU counters at one instant, in clock ticks.
#[derive(Clone, Copy, Debug)]
struct CpuSnapshot {
    /// When.
    at: std::time::Instant,
    /// Busy time of the whole machine (user, nice, system, irq, softirq).
    busy: u64,
    /// Steal time of the whole machine.
    steal: u64,
    /// This process's user + system time.
    client: u64,
    /// The server process's and its children's user + system time.
    server: u64,
}

/// Clock ticks per second in `/proc` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuSnapshot {
    /// Reads the counters; `None` where `/proc` is not Linux's.
    fn take(server_pid: u32) -> Option<CpuSnapshot> {
        let at = std::time::Instant::now();
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal
        let field = |i: usize| cpu.get(i).copied().unwrap_or(0);
        let busy = field(0) + field(1) + field(2) + field(5) + field(6);
        let steal = field(7);
        let me = std::process::id();
        let (mut client, mut server) = (0, 0);
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Some((ppid, ticks)) = process_ticks(pid) else {
                continue;
            };
            if pid == me {
                client += ticks;
            } else if pid == server_pid || ppid == server_pid {
                server += ticks;
            }
        }
        Some(CpuSnapshot {
            at,
            busy,
            steal,
            client,
            server,
        })
    }

    /// What was used between `earlier` and this snapshot.
    fn since(&self, earlier: &CpuSnapshot) -> CpuUse {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64().max(1e-3);
        let cores = |after: u64, before: u64| {
            after.saturating_sub(before) as f64 / TICKS_PER_SECOND / seconds
        };
        let client_cores = cores(self.client, earlier.client);
        let server_cores = cores(self.server, earlier.server);
        let busy = cores(self.busy, earlier.busy);
        CpuUse {
            seconds,
            client_cores,
            server_cores,
            other_cores: (busy - client_cores - server_cores).max(0.0),
            steal_cores: cores(self.steal, earlier.steal),
        }
    }
}

/// A process's parent pid and user + system clock ticks, from `/proc/PID/stat`.
fn process_ticks(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: the fields start after the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// The nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// Keep-alive mode: opens `connections` connections (not timed), then sends requests back to back
/// on each for `seconds`. A failed connection counts an error and is replaced.
async fn run_keepalive(
    client: &Client,
    addr: SocketAddr,
    server_pid: u32,
    connections: usize,
    seconds: f64,
) -> Sample {
    let mut setup = JoinSet::new();
    for _ in 0..connections {
        let client = client.clone();
        setup.spawn(async move { timeout(CONNECT_TIMEOUT, client.connect(addr)).await });
    }
    let mut opened = Vec::new();
    let mut setup_errors = WorkerResult::default();
    while let Some(joined) = setup.join_next().await {
        match joined {
            Ok(Ok(Ok((sender, task, _)))) => opened.push(Some((sender, task))),
            Ok(Ok(Err(e))) => {
                setup_errors.error(&e);
                opened.push(None);
            }
            Ok(Err(_)) => {
                setup_errors.error(&"connect timed out");
                opened.push(None);
            }
            Err(e) => {
                setup_errors.error(&e);
                opened.push(None);
            }
        }
    }
    let duration = Duration::from_secs_f64(seconds);
    let cpu_before = CpuSnapshot::take(server_pid);
    let deadline = Instant::now() + duration;
    let mut workers = JoinSet::new();
    for conn in opened {
        let client = client.clone();
        workers.spawn(async move {
            let mut result = WorkerResult::default();
            let mut conn = conn;
            while Instant::now() < deadline {
                let Some((sender, _)) = &mut conn else {
                    match timeout(CONNECT_TIMEOUT, client.connect(addr)).await {
                        Ok(Ok((sender, task, _))) => conn = Some((sender, task)),
                        Ok(Err(e)) => {
                            result.error(&e);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(_) => result.error(&"connect timed out"),
                    }
                    continue;
                };
                let start = Instant::now();
                let outcome = match timeout(REQUEST_TIMEOUT, request(sender, false)).await {
                    Ok(Ok((status, body))) => expect_ok(status, &body),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("request timed out".into()),
                };
                let failed = result.record(start, deadline, outcome);
                if failed {
                    if let Some((_, task)) = conn.take() {
                        task.abort();
                    }
                }
            }
            if let Some((sender, task)) = conn {
                drop(sender);
                task.abort();
            }
            result
        });
    }
    collect(workers, vec![setup_errors], server_pid, cpu_before, seconds).await
}

/// Waits for the workers and turns their results (plus `results` already gathered) and the
/// server's CPU use since `cpu_before` into a sample; a worker that panicked counts as an error.
async fn collect(
    mut workers: JoinSet<WorkerResult>,
    mut results: Vec<WorkerResult>,
    server_pid: u32,
    cpu_before: Option<CpuSnapshot>,
    seconds: f64,
) -> Sample {
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(r) => results.push(r),
            Err(e) => {
                let mut r = WorkerResult::default();
                r.error(&e);
                results.push(r);
            }
        }
    }
    let cpu = CpuSnapshot::take(server_pid)
        .zip(cpu_before)
        .map(|(after, before)| after.since(&before));
    Sample::from_workers(results, seconds, cpu)
}

/// Handshake mode: `workers` workers, each opening a new connection per request for `seconds`.
async fn run_handshake(
    client: &Client,
    addr: SocketAddr,
    server_pid: u32,
    workers: usize,
    seconds: f64,
) -> Sample {
    let cpu_before = CpuSnapshot::take(server_pid);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let client = client.clone();
        set.spawn(async move {
            let mut result = WorkerResult::default();
            while Instant::now() < deadline {
                let start = Instant::now();
                let outcome = match timeout(CONNECT_TIMEOUT, client.one_shot(addr)).await {
                    Ok(Ok((status, body, _))) => expect_ok(status, &body),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("connection timed out".into()),
                };
                if result.record(start, deadline, outcome) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            result
        });
    }
    collect(set, Vec::new(), server_pid, cpu_before, seconds).await
}

/// What a server does with three clients, checked before measuring: the admitted client must get
/// `200 ok`, a client without a certificate must not; a client the policy denies is reported.
#[derive(Clone, Debug, Serialize)]
struct Probe {
    /// The negotiated TLS parameters for the admitted client.
    tls: TlsInfo,
    /// The admitted client's outcome.
    admitted: String,
    /// The outcome without a client certificate.
    no_certificate: String,
    /// The outcome for an `OU=contractors` certificate from the same CA.
    denied_by_policy: String,
    /// Whether the first two were as required.
    ok: bool,
}

/// Runs the [`Probe`] against `addr`.
async fn probe(pki: &Pki, addr: SocketAddr) -> Probe {
    let describe = |r: &Result<(u16, Bytes, TlsInfo), BoxError>| match r {
        Ok((status, body, _)) => format!("{status} {:?}", String::from_utf8_lossy(body)),
        Err(e) => format!("refused ({})", error_chain(e.as_ref())),
    };
    let admitted = Client::new(&pki.pki, Some(&pki.client))
        .one_shot(addr)
        .await;
    let none = Client::new(&pki.pki, None).one_shot(addr).await;
    let contractor = Client::new(&pki.pki, Some(&pki.contractor))
        .one_shot(addr)
        .await;
    let admitted_ok = matches!(&admitted, Ok((200, body, _)) if body == BODY.as_bytes());
    let none_refused = !matches!(&none, Ok((200, _, _)));
    Probe {
        tls: admitted
            .as_ref()
            .map(|(_, _, info)| info.clone())
            .unwrap_or_default(),
        admitted: describe(&admitted),
        no_certificate: describe(&none),
        denied_by_policy: describe(&contractor),
        ok: admitted_ok && none_refused,
    }
}

/// An error and its sources, on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            let _ = write!(text, ": {s_text}");
        }
        source = s.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// Per server and mode: every round's sample and the medians.
#[derive(Clone, Debug, Serialize)]
struct Summary {
    /// The mode.
    mode: Mode,
    /// The server.
    server: ServerKind,
    /// The rate's unit.
    unit: &'static str,
    /// The median rate over rounds.
    median_rate: f64,
    /// The lowest round's rate.
    min_rate: f64,
    /// The highest round's rate.
    max_rate: f64,
    /// The median over rounds (that completed anything) of each round's p50 latency, milliseconds.
    p50_ms: f64,
    /// The median over rounds of each round's p99 latency, milliseconds.
    p99_ms: f64,
    /// `median_rate` divided by bare's.
    ratio_vs_bare: Option<f64>,
    /// The median over rounds of this round's rate divided by bare's in the same round.
    paired_ratio_vs_bare: Option<f64>,
    /// The median over rounds of the server's CPU time per request or connection, microseconds.
    server_cpu_us_per_op: Option<f64>,
    /// The median over rounds of this round's `server_cpu_us_per_op` divided by bare's in the
    /// same round (above 1: more server CPU per operation).
    server_cpu_vs_bare: Option<f64>,
    /// The median over rounds of the cores the client used.
    client_cores: Option<f64>,
    /// The median over rounds of the cores the server used.
    server_cores: Option<f64>,
    /// The median over rounds of the cores everything else on the machine used.
    other_cores: Option<f64>,
    /// Errors over all measured rounds.
    errors: u64,
    /// The first error's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    /// The measured rounds, in order.
    rounds: Vec<Sample>,
}

/// The whole report, as written with `--json`.
#[derive(Debug, Serialize)]
struct Report {
    /// The options.
    options: Options,
    /// `available_parallelism` of this machine.
    cpus: usize,
    /// The nginx version, when measured.
    nginx_version: Option<String>,
    /// Servers asked for but not measured, with the reason.
    skipped: Vec<(ServerKind, String)>,
    /// The probe of each measured server.
    probes: Vec<(ServerKind, Probe)>,
    /// One entry per mode and server.
    results: Vec<Summary>,
    /// The issue's targets, each judged on both ratios.
    targets: Vec<TargetCheck>,
    /// Seconds the whole run took.
    wall_seconds: f64,
}

/// The median of `values` (0 when empty).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The parent: writes the PKI, starts the servers, measures, reports.
fn client_main(options: &Options) -> ExitCode {
    let started = std::time::Instant::now();
    let pki = match Pki::create() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loadtest: cannot write the test PKI: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Fail early, and in this process, if the shared configuration does not build.
    if let Err(e) = mtls_config(&pki.dir) {
        eprintln!("loadtest: the server configuration does not build: {e}");
        return ExitCode::FAILURE;
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);

    // A watchdog: whatever happens, the run ends.
    let per_measure = options.seconds + 1.5;
    let budget = (options.rounds as f64 * per_measure
        + if options.warmup_seconds > 0.0 {
            options.warmup_seconds + 1.5
        } else {
            0.0
        })
        * (options.servers.len() * options.modes.len()) as f64
        + 90.0;
    watchdog(budget, "run");

    let mut skipped = Vec::new();
    let mut nginx_version_text = None;
    let mut servers = Vec::new();
    // `--pin`: every server on core 0 (nginx with one worker), this client on core 1.
    let pin = options.pin && cpus >= 2;
    let launch = Launch {
        cpu: pin.then_some(0),
        nofile: None,
    };
    if pin {
        hostile::pin_self(1);
    }
    for &kind in &options.servers {
        let process = if kind == ServerKind::Nginx {
            match find_nginx() {
                None => Err("nginx not found on PATH (Debian: apt-get install nginx)".to_owned()),
                Some(bin) => {
                    nginx_version_text = nginx_version(&bin);
                    let workers = if pin { 1 } else { cpus };
                    ServerProcess::start_nginx_styled(
                        &bin,
                        &pki.dir,
                        workers,
                        NginxStyle::Throughput,
                        &launch,
                    )
                }
            }
        } else if kind == ServerKind::MtlsBefore {
            match &options.before_exe {
                None => Err(
                    "mtls-before needs --before-exe PATH (an earlier build of loadtest)".to_owned(),
                ),
                Some(exe) => {
                    ServerProcess::start_exe(exe, kind, ServerKind::Mtls, &pki.dir, &launch)
                }
            }
        } else {
            ServerProcess::start_rust_with(kind, &pki.dir, &launch)
        };
        match process {
            Ok(p) => servers.push(p),
            Err(reason) => {
                if kind == ServerKind::Nginx {
                    println!("skipping nginx: {reason}");
                    skipped.push((kind, reason));
                } else {
                    eprintln!("loadtest: {reason}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = Client::new(&pki.pki, Some(&pki.client));

    println!(
        "loadtest: {} on {cpus} CPU(s) shared by client and servers; {} measured round(s) of {} s \
         per server per mode (+ a {} s warm-up round); {} connection(s)",
        options
            .servers
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
        options.rounds,
        options.seconds,
        options.warmup_seconds,
        options.connections
    );

    let mut probes = Vec::new();
    for server in &servers {
        let p = runtime.block_on(probe(&pki, server.addr));
        println!(
            "{:<6} {} {}: admitted client {}; no certificate {}; OU=contractors {}{}",
            server.kind.name(),
            server.addr,
            format_args!(
                "{} {} {}",
                p.tls.version, p.tls.cipher_suite, p.tls.key_exchange
            ),
            p.admitted,
            p.no_certificate,
            p.denied_by_policy,
            if p.ok { "" } else { "  <-- UNEXPECTED" }
        );
        probes.push((server.kind, p));
    }

    // samples[mode][server] = measured rounds
    let mut samples: Vec<Vec<Vec<Sample>>> =
        vec![vec![Vec::new(); servers.len()]; options.modes.len()];
    let first = if options.warmup_seconds > 0.0 { 0 } else { 1 };
    for round in first..=options.rounds {
        let warmup = round == 0;
        let seconds = if warmup {
            options.warmup_seconds
        } else {
            options.seconds
        };
        for (m, &mode) in options.modes.iter().enumerate() {
            for i in 0..servers.len() {
                // Rotate the order from round to round, so no server always goes first.
                let s = (i + round) % servers.len();
                let server = &servers[s];
                let sample = runtime.block_on(async {
                    let sample = match mode {
                        Mode::Keepalive => {
                            run_keepalive(
                                &client,
                                server.addr,
                                server.child.id(),
                                options.connections,
                                seconds,
                            )
                            .await
                        }
                        Mode::Handshake => {
                            run_handshake(
                                &client,
                                server.addr,
                                server.child.id(),
                                options.connections,
                                seconds,
                            )
                            .await
                        }
                    };
                    tokio::time::sleep(SETTLE).await;
                    sample
                });
                println!(
                    "{} {:<10} {:<6} {:>9.0} {:<5} p50 {:>7.3} ms  p99 {:>7.3} ms  {}  errors {}{}",
                    if warmup {
                        "warm-up  ".to_owned()
                    } else {
                        format!("round {round}/{}", options.rounds)
                    },
                    mode.name(),
                    server.kind.name(),
                    sample.rate,
                    mode.unit(),
                    sample.p50_ms,
                    sample.p99_ms,
                    match (&sample.cpu, sample.server_cpu_us_per_op) {
                        (Some(c), Some(us)) => format!(
                            "server {us:>6.1} µs/op  cores c/s/o {:.2}/{:.2}/{:.2}",
                            c.client_cores, c.server_cores, c.other_cores
                        ),
                        _ => String::new(),
                    },
                    sample.errors,
                    sample
                        .first_error
                        .as_deref()
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default()
                );
                if !warmup {
                    samples[m][s].push(sample);
                }
            }
        }
    }
    drop(runtime);
    for mut server in servers.drain(..).rev() {
        server.stop();
    }

    let kinds: Vec<ServerKind> = options
        .servers
        .iter()
        .copied()
        .filter(|k| !skipped.iter().any(|(s, _)| s == k))
        .collect();
    let results = summarize(&options.modes, &kinds, &samples);
    let report = Report {
        options: options.clone(),
        cpus,
        nginx_version: nginx_version_text,
        skipped,
        probes,
        targets: check_targets(&results),
        results,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    println!();
    print!("{}", table(&report));
    for (kind, reason) in &report.skipped {
        println!("{} not measured: {reason}", kind.name());
    }
    // A smoke run is too short, and may be a debug build, for the targets to mean anything.
    for t in report.targets.iter().filter(|_| !options.smoke) {
        let verdict = |r: Option<f64>| match r {
            Some(r) if r >= t.at_least => format!("{r:.3} met"),
            Some(r) => format!("{r:.3} MISSED"),
            None => "not measured".to_owned(),
        };
        println!(
            "target {} >= {}: ratio of medians {}; paired by round {}",
            t.name,
            t.at_least,
            verdict(t.ratio_of_medians),
            verdict(t.paired)
        );
    }
    let noisy: Vec<String> = report
        .results
        .iter()
        .flat_map(|r| {
            r.rounds.iter().enumerate().filter_map(move |(i, sample)| {
                let other = sample.cpu.as_ref()?.other_cores;
                (other > NOISY_OTHER_CORES).then(|| {
                    format!(
                        "{} {} round {}: {other:.2}",
                        r.mode.name(),
                        r.server.name(),
                        i + 1
                    )
                })
            })
        })
        .collect();
    if !noisy.is_empty() {
        println!(
            "{} measurement(s) ran while other processes used more than {NOISY_OTHER_CORES} cores: {}",
            noisy.len(),
            noisy.join("; ")
        );
    }
    println!("run took {:.0} s", report.wall_seconds);

    let errors: u64 = report.results.iter().map(|r| r.errors).sum();
    let mut failed = errors > 0;
    if failed {
        println!("{errors} error(s): the figures of the servers that had them are not valid");
    }
    for (kind, p) in report.probes.iter().filter(|(_, p)| !p.ok) {
        println!(
            "{}: unexpected probe outcome (admitted client: {}; no certificate: {})",
            kind.name(),
            p.admitted,
            p.no_certificate
        );
        failed = true;
    }
    if let Some(path) = &options.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => failed |= write_file(path, &(text + "\n")),
            Err(e) => {
                eprintln!("loadtest: JSON: {e}");
                failed = true;
            }
        }
    }
    if let Some(path) = &options.svg {
        failed |= write_file(path, &svg(&report));
    }
    if options.smoke {
        let mut problems = Vec::new();
        for r in &report.results {
            if r.median_rate <= 0.0 {
                problems.push(format!(
                    "{} {}: no throughput",
                    r.mode.name(),
                    r.server.name()
                ));
            }
            if r.errors > 0 {
                problems.push(format!(
                    "{} {}: {} error(s), first: {}",
                    r.mode.name(),
                    r.server.name(),
                    r.errors,
                    r.first_error.as_deref().unwrap_or("?")
                ));
            }
        }
        for (kind, p) in &report.probes {
            if !p.ok {
                problems.push(format!("{}: unexpected probe outcome {p:?}", kind.name()));
            }
        }
        if problems.is_empty() {
            println!("smoke: ok (non-zero throughput, no errors)");
        } else {
            for p in &problems {
                println!("smoke: FAILED: {p}");
            }
            failed = true;
        }
    }
    drop(pki);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes `text` to `path`, creating its folder; true on failure (reported).
fn write_file(path: &Path, text: &str) -> bool {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(path, text) {
        Ok(()) => {
            println!("wrote {}", path.display());
            false
        }
        Err(e) => {
            eprintln!("loadtest: cannot write {}: {e}", path.display());
            true
        }
    }
}

/// One of the issue's targets: `numerator / denominator >= at_least` in `mode`.
#[derive(Debug, Serialize)]
struct TargetCheck {
    /// What is compared.
    name: &'static str,
    /// The bound.
    at_least: f64,
    /// The ratio of the two median rates.
    ratio_of_medians: Option<f64>,
    /// The median over rounds of the ratio within each round.
    paired: Option<f64>,
}

/// The issue's targets: mtls against bare in both modes, and against nginx in keep-alive.
fn check_targets(results: &[Summary]) -> Vec<TargetCheck> {
    let find = |mode: Mode, server: ServerKind| {
        results
            .iter()
            .find(|r| r.mode == mode && r.server == server)
    };
    [
        (
            "keep-alive req/s mtls / bare",
            Mode::Keepalive,
            ServerKind::Bare,
            0.98,
        ),
        (
            "handshakes/s mtls / bare",
            Mode::Handshake,
            ServerKind::Bare,
            0.97,
        ),
        (
            "keep-alive req/s mtls / nginx",
            Mode::Keepalive,
            ServerKind::Nginx,
            1.0,
        ),
    ]
    .into_iter()
    .filter_map(|(name, mode, other, at_least)| {
        let (mtls, other) = (find(mode, ServerKind::Mtls)?, find(mode, other)?);
        Some(TargetCheck {
            name,
            at_least,
            ratio_of_medians: (other.median_rate > 0.0)
                .then(|| mtls.median_rate / other.median_rate),
            paired: paired_ratio(&mtls.rounds, &other.rounds, |r| Some(r.rate)),
        })
    })
    .collect()
}

/// The median of some values, `None` when there are none.
fn median_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| median(&v))
}

/// The median over rounds of `value(a) / value(b)`, a and b measured in the same round: drifts of
/// the machine's speed between rounds cancel out, where a ratio of medians would take them in.
fn paired_ratio(a: &[Sample], b: &[Sample], value: fn(&Sample) -> Option<f64>) -> Option<f64> {
    median_of(a.iter().zip(b).filter_map(|(a, b)| {
        let (a, b) = (value(a)?, value(b)?);
        (b > 0.0).then(|| a / b)
    }))
}

/// The medians per mode and server, and the ratios to bare.
fn summarize(modes: &[Mode], kinds: &[ServerKind], samples: &[Vec<Vec<Sample>>]) -> Vec<Summary> {
    let mut out = Vec::new();
    for (m, &mode) in modes.iter().enumerate() {
        let bare = kinds
            .iter()
            .position(|&k| k == ServerKind::Bare)
            .map(|b| &samples[m][b]);
        let bare_median = bare.map(|b| median(&b.iter().map(|r| r.rate).collect::<Vec<_>>()));
        for (s, &kind) in kinds.iter().enumerate() {
            let rounds = &samples[m][s];
            let rates: Vec<f64> = rounds.iter().map(|r| r.rate).collect();
            let median_rate = median(&rates);
            let cpu_median = |f: fn(&CpuUse) -> f64| {
                median_of(rounds.iter().filter_map(|r| r.cpu.as_ref().map(f)))
            };
            let server_cpu_us_per_op =
                median_of(rounds.iter().filter_map(|r| r.server_cpu_us_per_op));
            let ratio = bare_median.filter(|b| *b > 0.0).map(|b| median_rate / b);
            let paired = bare.and_then(|b| paired_ratio(rounds, b, |r| Some(r.rate)));
            let server_cpu_vs_bare =
                bare.and_then(|b| paired_ratio(rounds, b, |r| r.server_cpu_us_per_op));
            out.push(Summary {
                mode,
                server: kind,
                unit: mode.unit(),
                median_rate,
                min_rate: rates.iter().copied().fold(f64::INFINITY, f64::min),
                max_rate: rates.iter().copied().fold(0.0, f64::max),
                // Latencies of rounds where something succeeded: an empty round has none.
                p50_ms: median_of(rounds.iter().filter(|r| r.completed > 0).map(|r| r.p50_ms))
                    .unwrap_or(0.0),
                p99_ms: median_of(rounds.iter().filter(|r| r.completed > 0).map(|r| r.p99_ms))
                    .unwrap_or(0.0),
                ratio_vs_bare: ratio,
                paired_ratio_vs_bare: paired,
                server_cpu_us_per_op,
                server_cpu_vs_bare,
                client_cores: cpu_median(|c| c.client_cores),
                server_cores: cpu_median(|c| c.server_cores),
                other_cores: cpu_median(|c| c.other_cores),
                errors: rounds.iter().map(|r| r.errors).sum(),
                first_error: rounds.iter().find_map(|r| r.first_error.clone()),
                rounds: rounds.clone(),
            });
        }
    }
    out
}

/// `12345.6` as `12,346`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A ratio as `0.987`, or `-`.
fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"))
}

/// The results as a Markdown table.
fn table(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(
        "| mode | server | rate (median) | min - max over rounds | p50 ms | p99 ms | vs bare: medians | vs bare: paired | server CPU µs/op | server CPU vs bare: paired | errors |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &report.results {
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} - {} | {:.3} | {:.3} | {} | {} | {} | {} | {} |",
            r.mode.name(),
            r.server.name(),
            thousands(r.median_rate),
            r.unit,
            thousands(r.min_rate),
            thousands(r.max_rate),
            r.p50_ms,
            r.p99_ms,
            ratio_text(r.ratio_vs_bare),
            ratio_text(r.paired_ratio_vs_bare),
            r.server_cpu_us_per_op
                .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}")),
            ratio_text(r.server_cpu_vs_bare),
            if r.errors == 0 {
                "0".to_owned()
            } else {
                format!("**{}**", r.errors)
            },
        );
    }
    out
}

/// Escapes text for SVG.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart per mode: the median rate of each server, a whisker from the lowest to
/// the highest round, the ratio to bare and any errors.
fn svg(report: &Report) -> String {
    /// The chart's width.
    const WIDTH: f64 = 930.0;
    /// Where the bars start, after the server names.
    const LABEL: f64 = 70.0;
    /// The length of the longest bar.
    const BAR_AREA: f64 = 480.0;
    /// The height of one server's row.
    const ROW: f64 = 34.0;
    let modes: Vec<Mode> = report.options.modes.clone();
    let mut body = String::new();
    let mut y = 66.0;
    for mode in modes {
        let rows: Vec<&Summary> = report.results.iter().filter(|r| r.mode == mode).collect();
        if rows.is_empty() {
            continue;
        }
        let max = rows.iter().map(|r| r.max_rate).fold(0.0, f64::max).max(1.0);
        let title = match mode {
            Mode::Keepalive => format!(
                "keep-alive: requests/s over {} connections (higher is better)",
                report.options.connections
            ),
            Mode::Handshake => format!(
                "handshake: new mutual-TLS connections/s, {} workers (higher is better)",
                report.options.connections
            ),
        };
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y:.0}" font-weight="bold">{}</text>"#,
            xml_escape(&title)
        );
        y += 12.0;
        for r in rows {
            let bar = r.median_rate / max * BAR_AREA;
            let lo = LABEL + r.min_rate / max * BAR_AREA;
            let hi = LABEL + r.max_rate / max * BAR_AREA;
            let mid = y + ROW / 2.0 - 4.0;
            let mut label = format!(
                "{} {} · p50 {:.2} ms · p99 {:.2} ms",
                thousands(r.median_rate),
                r.unit,
                r.p50_ms,
                r.p99_ms
            );
            if let Some(ratio) = r.ratio_vs_bare {
                let _ = write!(label, " · ×{ratio:.3} bare");
            }
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#,
                LABEL - 8.0,
                mid + 4.0,
                r.server.name()
            );
            let _ = writeln!(
                body,
                r#"<rect x="{LABEL}" y="{:.0}" width="{bar:.1}" height="{:.0}" fill="{}"/>"#,
                y + 4.0,
                ROW - 14.0,
                r.server.color()
            );
            let _ = writeln!(
                body,
                r#"<line x1="{lo:.1}" y1="{mid:.1}" x2="{hi:.1}" y2="{mid:.1}" stroke="black"/><line x1="{lo:.1}" y1="{:.1}" x2="{lo:.1}" y2="{:.1}" stroke="black"/><line x1="{hi:.1}" y1="{:.1}" x2="{hi:.1}" y2="{:.1}" stroke="black"/>"#,
                mid - 4.0,
                mid + 4.0,
                mid - 4.0,
                mid + 4.0
            );
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}">{}</text>"#,
                LABEL + BAR_AREA + 10.0,
                mid + 4.0,
                xml_escape(&label)
            );
            if r.errors > 0 {
                let _ = writeln!(
                    body,
                    r##"<text x="{:.0}" y="{:.0}" fill="#d62728" font-weight="bold">{} errors</text>"##,
                    LABEL + 4.0,
                    mid + 4.0,
                    r.errors
                );
            }
            y += ROW;
        }
        y += 26.0;
    }
    let height = y + 10.0;
    let title = format!(
        "mutual TLS load test: {}",
        report
            .results
            .iter()
            .map(|r| r.server.name())
            .fold(Vec::new(), |mut names, n| {
                if !names.contains(&n) {
                    names.push(n);
                }
                names
            })
            .join(", ")
    );
    let subtitle = format!(
        "median of {} rounds of {} s per server (whisker: lowest to highest round); client and servers share {} CPU(s) on 127.0.0.1",
        report.options.rounds, report.options.seconds, report.cpus
    );
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{height:.0}" viewBox="0 0 {WIDTH:.0} {height:.0}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="15" font-weight="bold">{}</text>
<text x="10" y="38" fill="#555">{}</text>
{body}</svg>
"##,
        xml_escape(&title),
        xml_escape(&subtitle)
    )
}
