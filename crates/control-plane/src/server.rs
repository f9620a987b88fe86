//! Serving the application on a listener, with the bounds a server open to the network
//! needs (axum's own `serve` has none): a client has [`ControlPlaneConfig::header_timeout`]
//! to send a request's headers, counted from its connection's opening or from the end of
//! its previous answer, so silent and idle keep-alive connections are closed; and at most
//! [`ControlPlaneConfig::max_connections`] are held at once, more being answered 503 and
//! closed, so a flood of connections cannot use up the process's file descriptors while
//! the held connections (health checks, proxies' long polls) go on.
//!
//! [`ControlPlaneConfig::header_timeout`]: crate::ControlPlaneConfig::header_timeout
//! [`ControlPlaneConfig::max_connections`]: crate::ControlPlaneConfig::max_connections

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use gatehouse_tls::connection_limit::ConnectionLimit;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::ClientAddr;

/// What a connection over the limit is told.
const TOO_MANY_CONNECTIONS: &[u8] = br#"{"message":"Too Many Connections"}"#;
/// How long shutdown waits for answers in flight (long polls end at once).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` turns true, then lets answers in flight
/// finish within a grace period.
pub(crate) async fn serve<L>(
    mut listener: L,
    app: Router,
    header_timeout: Duration,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let limit = ConnectionLimit::new(max_connections, TOO_MANY_CONNECTIONS);
    let graceful = GracefulShutdown::new();
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let Some((io, admitted)) = limit.admit(io) else {
            tracing::debug!(%peer, "too many connections; refused");
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo(ClientAddr(peer)));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(admitted);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; dropping answers still in flight");
    }
    Ok(())
}
