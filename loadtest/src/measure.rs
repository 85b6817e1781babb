//! Measurements: per-worker results, samples, server CPU time from `/proc`, percentiles.

use super::*;

/// What one worker saw.
#[derive(Default)]
pub(crate) struct WorkerResult {
    /// Latency of each request that completed with `200 ok` before the deadline, in nanoseconds.
    pub(crate) latencies: Vec<u64>,
    /// Failed requests, connections and handshakes.
    pub(crate) errors: u64,
    /// The first error's text.
    pub(crate) first_error: Option<String>,
}

impl WorkerResult {
    /// Counts an error and keeps the first one's text.
    pub(crate) fn error(&mut self, e: &dyn std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    /// Counts one request that started at `start` and has just ended: its latency when it
    /// succeeded before the run's `deadline` (later successes are not counted), its error
    /// otherwise. Returns whether it failed.
    pub(crate) fn record(
        &mut self,
        start: Instant,
        deadline: Instant,
        outcome: Result<(), BoxError>,
    ) -> bool {
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
pub(crate) struct Sample {
    /// Successful requests (keep-alive) or connections (handshake) per second.
    pub(crate) rate: f64,
    /// Successful requests or connections.
    pub(crate) completed: u64,
    /// Errors.
    pub(crate) errors: u64,
    /// Median latency, milliseconds.
    pub(crate) p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub(crate) p99_ms: f64,
    /// Where the machine's CPU time went during the window (Linux only).
    pub(crate) cpu: Option<CpuUse>,
    /// The server's CPU time per successful request or connection, microseconds (Linux only).
    pub(crate) server_cpu_us_per_op: Option<f64>,
    /// The first error's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_error: Option<String>,
}

impl Sample {
    /// Merges the workers' results over a window of `seconds`, with the CPU use over it.
    pub(crate) fn from_workers(
        results: Vec<WorkerResult>,
        seconds: f64,
        cpu: Option<CpuUse>,
    ) -> Sample {
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
pub(crate) struct CpuUse {
    /// The window, seconds.
    pub(crate) seconds: f64,
    /// This process: the load-generating client.
    pub(crate) client_cores: f64,
    /// The server process (and, for nginx, its workers).
    pub(crate) server_cores: f64,
    /// Everything else on the machine: other people's work, the kernel's for other processes.
    pub(crate) other_cores: f64,
    /// Time the hypervisor ran someone else while this machine wanted a CPU.
    pub(crate) steal_cores: f64,
}

/// CPU counters at one instant, in clock ticks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuSnapshot {
    /// When.
    pub(crate) at: std::time::Instant,
    /// Busy time of the whole machine (user, nice, system, irq, softirq).
    pub(crate) busy: u64,
    /// Steal time of the whole machine.
    pub(crate) steal: u64,
    /// This process's user + system time.
    pub(crate) client: u64,
    /// The server process's and its children's user + system time.
    pub(crate) server: u64,
}

/// Clock ticks per second in `/proc` (`USER_HZ`, 100 on Linux).
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

impl CpuSnapshot {
    /// Reads the counters; `None` where `/proc` is not Linux's.
    pub(crate) fn take(server_pid: u32) -> Option<CpuSnapshot> {
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
    pub(crate) fn since(&self, earlier: &CpuSnapshot) -> CpuUse {
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
pub(crate) fn process_ticks(pid: u32) -> Option<(u32, u64)> {
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
pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}
