//! The run: rounds over every server, their summary and the targets.

use super::*;

/// Per server and mode: every round's sample and the medians.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Summary {
    /// The mode.
    pub(crate) mode: Mode,
    /// The server.
    pub(crate) server: ServerKind,
    /// The rate's unit.
    pub(crate) unit: &'static str,
    /// The median rate over rounds.
    pub(crate) median_rate: f64,
    /// The lowest round's rate.
    pub(crate) min_rate: f64,
    /// The highest round's rate.
    pub(crate) max_rate: f64,
    /// The median over rounds (that completed anything) of each round's p50 latency, milliseconds.
    pub(crate) p50_ms: f64,
    /// The median over rounds of each round's p99 latency, milliseconds.
    pub(crate) p99_ms: f64,
    /// `median_rate` divided by bare's.
    pub(crate) ratio_vs_bare: Option<f64>,
    /// The median over rounds of this round's rate divided by bare's in the same round.
    pub(crate) paired_ratio_vs_bare: Option<f64>,
    /// The median over rounds of the server's CPU time per request or connection, microseconds.
    pub(crate) server_cpu_us_per_op: Option<f64>,
    /// The median over rounds of this round's `server_cpu_us_per_op` divided by bare's in the
    /// same round (above 1: more server CPU per operation).
    pub(crate) server_cpu_vs_bare: Option<f64>,
    /// The median over rounds of the cores the client used.
    pub(crate) client_cores: Option<f64>,
    /// The median over rounds of the cores the server used.
    pub(crate) server_cores: Option<f64>,
    /// The median over rounds of the cores everything else on the machine used.
    pub(crate) other_cores: Option<f64>,
    /// Errors over all measured rounds.
    pub(crate) errors: u64,
    /// The first error's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_error: Option<String>,
    /// The measured rounds, in order.
    pub(crate) rounds: Vec<Sample>,
}

/// The whole report, as written with `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// The options.
    pub(crate) options: Options,
    /// `available_parallelism` of this machine.
    pub(crate) cpus: usize,
    /// The nginx version, when measured.
    pub(crate) nginx_version: Option<String>,
    /// Servers asked for but not measured, with the reason.
    pub(crate) skipped: Vec<(ServerKind, String)>,
    /// The probe of each measured server.
    pub(crate) probes: Vec<(ServerKind, Probe)>,
    /// One entry per mode and server.
    pub(crate) results: Vec<Summary>,
    /// The targets, each judged on both ratios.
    pub(crate) targets: Vec<TargetCheck>,
    /// Seconds the whole run took.
    pub(crate) wall_seconds: f64,
}

/// The median of `values` (0 when empty).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The parent: writes the PKI, starts the servers, measures, reports.
pub(crate) fn client_main(options: &Options) -> ExitCode {
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
pub(crate) fn write_file(path: &Path, text: &str) -> bool {
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

/// One of the targets: `numerator / denominator >= at_least` in `mode`.
#[derive(Debug, Serialize)]
pub(crate) struct TargetCheck {
    /// What is compared.
    pub(crate) name: &'static str,
    /// The bound.
    pub(crate) at_least: f64,
    /// The ratio of the two median rates.
    pub(crate) ratio_of_medians: Option<f64>,
    /// The median over rounds of the ratio within each round.
    pub(crate) paired: Option<f64>,
}

/// The targets: mtls against bare in both modes, and against nginx in keep-alive.
pub(crate) fn check_targets(results: &[Summary]) -> Vec<TargetCheck> {
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
pub(crate) fn median_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| median(&v))
}

/// The median over rounds of `value(a) / value(b)`, a and b measured in the same round: drifts of
/// the machine's speed between rounds cancel out, where a ratio of medians would take them in.
pub(crate) fn paired_ratio(
    a: &[Sample],
    b: &[Sample],
    value: fn(&Sample) -> Option<f64>,
) -> Option<f64> {
    median_of(a.iter().zip(b).filter_map(|(a, b)| {
        let (a, b) = (value(a)?, value(b)?);
        (b > 0.0).then(|| a / b)
    }))
}

/// The medians per mode and server, and the ratios to bare.
pub(crate) fn summarize(
    modes: &[Mode],
    kinds: &[ServerKind],
    samples: &[Vec<Vec<Sample>>],
) -> Vec<Summary> {
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
