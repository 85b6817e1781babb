//! Starting and stopping the servers (parent side): child processes, nginx and its configuration.

use super::*;

/// How a server process is launched: pinned to a core, with an open-file limit (for `--hostile`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Launch {
    /// The core to pin it to (`taskset -c`).
    pub(crate) cpu: Option<usize>,
    /// Its open-file limit (`ulimit -n`).
    pub(crate) nofile: Option<u64>,
}

impl Launch {
    /// A command that runs `program` under these settings (through bash and taskset when set).
    pub(crate) fn command(&self, program: &Path) -> Command {
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
pub(crate) enum NginxStyle {
    /// The throughput runs: one worker per core, 4,096 connections per worker, HTTP/1.1.
    Throughput,
    /// `--hostile`: the issue's anchor, one worker with the default 768 connections, and HTTP/2
    /// for the greedy uploads.
    Hostile,
}

/// A running server process.
pub(crate) struct ServerProcess {
    /// Which server.
    pub(crate) kind: ServerKind,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// The process.
    pub(crate) child: Child,
    /// The Rust servers exit when this closes; `None` for nginx.
    pub(crate) stdin: Option<ChildStdin>,
    /// Whether [`stop`](Self::stop) already ran.
    pub(crate) stopped: bool,
}

impl ServerProcess {
    /// Starts a Rust server: this binary with `--server KIND --pki DIR`, launched as `launch`
    /// says, and reads its port.
    pub(crate) fn start_rust_with(
        kind: ServerKind,
        pki_dir: &Path,
        launch: &Launch,
    ) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        ServerProcess::start_exe(&exe, kind, kind, pki_dir, launch)
    }

    /// Starts `exe --server AS`, reported as `kind`.
    pub(crate) fn start_exe(
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
    pub(crate) fn start_nginx_with(
        nginx: &Path,
        pki_dir: &Path,
        style: NginxStyle,
        launch: &Launch,
    ) -> Result<ServerProcess, String> {
        ServerProcess::start_nginx_styled(nginx, pki_dir, 1, style, launch)
    }

    /// Starts nginx with `workers` workers and a configuration of its own in `pki_dir`, and waits
    /// until it listens.
    pub(crate) fn start_nginx_styled(
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
    pub(crate) fn stop(&mut self) {
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
pub(crate) fn watchdog(budget: f64, what: &'static str) {
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
pub(crate) fn terminate(pid: u32) {
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
pub(crate) fn nginx_conf(dir: &Path, port: u16, workers: usize, style: NginxStyle) -> String {
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
pub(crate) fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

/// `nginx -v`, for the report.
pub(crate) fn nginx_version(nginx: &Path) -> Option<String> {
    let out = Command::new(nginx).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    Some(text.trim().trim_start_matches("nginx version: ").to_owned())
}
