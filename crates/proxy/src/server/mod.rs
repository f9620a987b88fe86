//! Starting and stopping a proxy: bind the traffic and status listeners, load the disk
//! cache, start the poller, accept connections until told to stop, then let requests in
//! flight finish within a grace period.

pub mod connection_limit;
pub mod drain;
pub mod status;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::admission::usage_reports::UsageReporter;
use crate::config::{ClientLimits, ProxyConfig};
use crate::request::handle;
use crate::server::connection_limit::ConnectionLimit;
use crate::snapshot::CompiledConfig;
use crate::state::Shared;
use crate::sync::cache;
use crate::sync::control_plane::ControlPlaneClient;
use crate::sync::poller::Poller;
use crate::traffic::reporter::MetricsReporter;

/// A started proxy. Dropping it does not stop it; call [`RunningProxy::stop`].
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub status_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Usage and metrics reporters: told to stop once the requests in flight are done, so
    /// what those requests used and how they went is reported too.
    reporters_stop: watch::Sender<bool>,
    reporters: Vec<JoinHandle<()>>,
}

impl RunningProxy {
    /// The config version being served, if any.
    pub fn config_version(&self) -> Option<i64> {
        self.shared.config.load().as_ref().map(|c| c.version)
    }

    /// Stops accepting, lets requests in flight finish (within the grace period) and stops
    /// polling.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = self.reporters_stop.send(true);
        for task in self.reporters {
            let _ = task.await;
        }
        // The last lines are written before the process may exit.
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.access_log.close()).await;
    }
}

/// Binds the listeners and starts serving.
pub async fn start(config: ProxyConfig) -> anyhow::Result<RunningProxy> {
    config.limits.check()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen for traffic on {}", config.listen))?;
    let status_listener = TcpListener::bind(config.status_listen)
        .await
        .with_context(|| format!("cannot listen for status on {}", config.status_listen))?;
    let addr = listener.local_addr()?;
    let status_addr = status_listener.local_addr()?;

    let shared = Arc::new(Shared::new(&config));
    if config.metrics {
        shared
            .access_log
            .start(&config.access_log)
            .with_context(|| format!("cannot open the access log {:?}", config.access_log))?;
    }
    let active = load_cache(&config, &shared).await;

    let control_plane = Arc::new(ControlPlaneClient::new(&config)?);
    let mut reporter = UsageReporter::new(shared.clone(), control_plane.clone(), &config);
    let metrics_reporter = config.metrics.then(|| {
        MetricsReporter::new(
            shared.clone(),
            control_plane.clone(),
            config.metrics_report_interval,
            config.data_dir.clone(),
        )
    });
    // Learn how much of each quota is gone before serving, so a restart does not reset it.
    if let Err(e) = tokio::time::timeout(Duration::from_secs(2), reporter.learn())
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")))
    {
        tracing::warn!(error = %e, "could not fetch quota usage at start; quotas count from the next report");
    }
    let (shutdown, stop_rx) = watch::channel(false);
    let tls = match &config.tls {
        Some(files) => {
            let (acceptor, certificate) = gatehouse_tls::acceptor(files.clone(), &[b"http/1.1"])?;
            tokio::spawn(certificate.watch(stop_rx.clone()));
            Some(acceptor)
        }
        None => None,
    };
    if let Some(url) = &config.redis_url {
        shared
            .shared_counters
            .connect(url.clone(), stop_rx.clone())
            .context("REDIS_URL is not a valid Redis URL")?;
    }
    let poller = Poller::new(
        shared.clone(),
        control_plane,
        &config,
        &addr.to_string(),
        active,
    )?;
    let tasks = vec![
        tokio::spawn(poller.run(stop_rx.clone())),
        tokio::spawn(serve_traffic(
            listener,
            shared.clone(),
            stop_rx.clone(),
            config.limits.clone(),
            tls,
            config.shutdown_grace,
        )),
        tokio::spawn(serve_status(
            status_listener,
            shared.clone(),
            stop_rx.clone(),
        )),
    ];
    let (reporters_stop, reporters_stopped) = watch::channel(false);
    let mut reporters = vec![tokio::spawn(reporter.run(reporters_stopped.clone()))];
    if let Some(metrics_reporter) = metrics_reporter {
        reporters.push(tokio::spawn(metrics_reporter.run(reporters_stopped)));
    }
    tracing::info!(%addr, %status_addr, control_plane = %config.control_plane_url, "proxy started");
    Ok(RunningProxy {
        addr,
        status_addr,
        shared,
        shutdown,
        tasks,
        reporters_stop,
        reporters,
    })
}

/// Serves the disk cache, if there is a trustworthy one; returns its version and hash.
async fn load_cache(config: &ProxyConfig, shared: &Shared) -> Option<(i64, String)> {
    let dir = config.data_dir.as_ref()?;
    match cache::load(dir).await {
        Ok(Some(snapshot)) => {
            match CompiledConfig::compile(
                &snapshot,
                None,
                &shared.quotas,
                shared.meter_registry(),
                &shared.authorizers,
            ) {
                Ok(compiled) => {
                    let version = compiled.version;
                    let hash = compiled.hash.clone();
                    shared.config.store(Some(Arc::new(compiled)));
                    shared.telemetry.applied(version);
                    tracing::info!(version, file = %cache::path(dir).display(), "serving the cached snapshot until the control plane answers");
                    Some((version, hash))
                }
                Err(e) => {
                    shared.telemetry.snapshots_refused.inc();
                    tracing::error!(error = %e, file = %cache::path(dir).display(), "cached snapshot does not compile; not serving it");
                    None
                }
            }
        }
        Ok(None) => None,
        Err(e) => {
            shared.telemetry.snapshots_refused.inc();
            tracing::error!(error = %e, file = %cache::path(dir).display(), "cached snapshot is damaged; not serving it");
            None
        }
    }
}

/// The HTTP/1 settings of client connections: hyper itself answers 431 to a request
/// whose head is over the limits, and closes a connection whose head is late.
fn client_http(limits: &ClientLimits) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes);
    // Any count but hyper's own default moves the parser's header slots to the heap.
    if limits.max_headers != HYPER_MAX_HEADERS {
        http.max_headers(limits.max_headers);
    }
    http
}

/// The header count hyper's parser holds on the stack.
const HYPER_MAX_HEADERS: usize = 100;

async fn serve_traffic(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    limits: ClientLimits,
    tls: Option<TlsAcceptor>,
    grace: Duration,
) {
    let http = client_http(&limits);
    let connections = ConnectionLimit::new(limits.max_connections);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, typically: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some((stream, admitted)) = connections.admit(stream, &shared.telemetry) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let client = Client {
                    shared: shared.clone(),
                    http: http.clone(),
                    ip: crate::upstream::client_ip_header(peer),
                    stop: stop.clone(),
                };
                let token = shared.drain.token();
                let tls = tls.clone();
                let handshake_limit = limits.header_timeout;
                tokio::spawn(async move {
                    match tls {
                        None => client.serve(stream, false).await,
                        Some(tls) => match tokio::time::timeout(handshake_limit, tls.accept(stream)).await {
                            Ok(Ok(stream)) => client.serve(stream, true).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        },
                    }
                    drop(token);
                    drop(admitted);
                });
            }
            () = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    // WebSocket sessions close with 1001 and call `$disconnect`; connections finish.
    shared.websockets.close_all();
    tokio::select! {
        () = shared.drain.wait() => {}
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; dropping requests still in flight"),
    }
}

/// One client connection, before its first request.
struct Client {
    shared: Arc<Shared>,
    http: hyper::server::conn::http1::Builder,
    /// Its `X-Forwarded-For` entry.
    ip: HeaderValue,
    stop: watch::Receiver<bool>,
}

impl Client {
    /// Serves requests on `io` until the client closes or the proxy stops (then the
    /// request in flight, if any, is finished first). `https` marks every request as
    /// having come over TLS.
    async fn serve<I>(self, io: I, https: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Client {
            shared,
            http,
            ip,
            mut stop,
        } = self;
        let peer = crate::upstream::Peer { ip, https };
        let service = service_fn(move |req| {
            let shared = shared.clone();
            let peer = peer.clone();
            async move { Ok::<_, Infallible>(handle(shared, req, peer).await) }
        });
        let connection = http
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(connection);
        let served = tokio::select! {
            served = connection.as_mut() => served,
            () = stopped(&mut stop) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = served {
            tracing::debug!(error = %e, "client connection ended with an error");
        }
    }
}

/// Resolves when the stop flag turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn serve_status(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let http = hyper::server::conn::http1::Builder::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let shared = shared.clone();
                let service = service_fn(move |req| {
                    let response = status::respond(&shared, &req);
                    async move { Ok::<_, Infallible>(response) }
                });
                let connection = http.serve_connection(TokioIo::new(stream), service);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = stopped(&mut stop) => return,
        }
    }
}
