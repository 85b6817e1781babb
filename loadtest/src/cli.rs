//! The command line: which servers and modes to run, and for how long.

use super::*;

/// A server the tool can start and measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ServerKind {
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
    pub(crate) fn name(self) -> &'static str {
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
    pub(crate) fn parse(name: &str) -> Option<ServerKind> {
        ServerKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The bar colour in the chart.
    pub(crate) fn color(self) -> &'static str {
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
pub(crate) enum Mode {
    /// Requests back to back on long-lived connections.
    Keepalive,
    /// A new TLS connection per request.
    Handshake,
}

impl Mode {
    /// The name used in the output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Keepalive => "keep-alive",
            Mode::Handshake => "handshake",
        }
    }

    /// The unit of the rate.
    pub(crate) fn unit(self) -> &'static str {
        match self {
            Mode::Keepalive => "req/s",
            Mode::Handshake => "hs/s",
        }
    }
}

/// The options of a measuring run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Options {
    /// The modes to measure, in order.
    pub(crate) modes: Vec<Mode>,
    /// Measured rounds (the warm-up round is extra).
    pub(crate) rounds: usize,
    /// Seconds per server per mode per round.
    pub(crate) seconds: f64,
    /// Seconds per server per mode of the discarded warm-up round (0: none).
    pub(crate) warmup_seconds: f64,
    /// Connections (keep-alive) or concurrent workers (handshake).
    pub(crate) connections: usize,
    /// The servers to compare.
    pub(crate) servers: Vec<ServerKind>,
    /// Where to write the JSON report.
    #[serde(skip)]
    pub(crate) json: Option<PathBuf>,
    /// Where to write the SVG chart.
    #[serde(skip)]
    pub(crate) svg: Option<PathBuf>,
    /// The `loadtest` binary of an earlier build, for `mtls-before`.
    pub(crate) before_exe: Option<PathBuf>,
    /// Pin the servers to core 0 and the client to core 1.
    pub(crate) pin: bool,
    /// CI mode: assert non-zero throughput and zero errors.
    pub(crate) smoke: bool,
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
pub(crate) enum Cli {
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
pub(crate) const USAGE: &str = "\
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
pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
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
pub(crate) fn parse_number(flag: &str, text: &str, min: f64, max: f64) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{flag}: expected a number from {min} to {max}, got {text:?}"
        )),
    }
}
