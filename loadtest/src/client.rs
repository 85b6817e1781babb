//! The client: HTTPS connections presenting a client certificate, and the keep-alive and handshake runs.

use super::*;

/// The TLS client: trusts the test CA, presents a client certificate (or none), TLS 1.3 only,
/// ALPN http/1.1, and never resumes a session, so that every handshake is a full one with client
/// authentication.
#[derive(Clone)]
pub(crate) struct Client {
    /// The connector with that configuration.
    pub(crate) connector: TlsConnector,
}

/// A negotiated TLS connection's parameters, recorded once per server.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct TlsInfo {
    /// The protocol version.
    pub(crate) version: String,
    /// The cipher suite.
    pub(crate) cipher_suite: String,
    /// The key-exchange group.
    pub(crate) key_exchange: String,
    /// The ALPN protocol.
    pub(crate) alpn: String,
}

impl Client {
    /// A client presenting `cert` (or no certificate) to servers whose certificate `pki` issued.
    pub(crate) fn new(pki: &TestPki, cert: Option<&TestCert>) -> Client {
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
    pub(crate) async fn connect(
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
    pub(crate) async fn one_shot(
        &self,
        addr: SocketAddr,
    ) -> Result<(u16, Bytes, TlsInfo), BoxError> {
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
pub(crate) async fn request(
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
pub(crate) fn expect_ok(status: u16, body: &[u8]) -> Result<(), BoxError> {
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

/// Keep-alive mode: opens `connections` connections (not timed), then sends requests back to back
/// on each for `seconds`. A failed connection counts an error and is replaced.
pub(crate) async fn run_keepalive(
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
pub(crate) async fn collect(
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
pub(crate) async fn run_handshake(
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
pub(crate) struct Probe {
    /// The negotiated TLS parameters for the admitted client.
    pub(crate) tls: TlsInfo,
    /// The admitted client's outcome.
    pub(crate) admitted: String,
    /// The outcome without a client certificate.
    pub(crate) no_certificate: String,
    /// The outcome for an `OU=contractors` certificate from the same CA.
    pub(crate) denied_by_policy: String,
    /// Whether the first two were as required.
    pub(crate) ok: bool,
}

/// Runs the [`Probe`] against `addr`.
pub(crate) async fn probe(pki: &Pki, addr: SocketAddr) -> Probe {
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
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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
