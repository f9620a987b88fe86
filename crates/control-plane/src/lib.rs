//! The Gatehouse control plane: the admin API (`/api/v1`), the sync endpoint proxies poll
//! (`/dp/v1`) and health checks, over one PostgreSQL database.
//!
//! [`router`] builds the whole HTTP application from an [`AppState`] without binding a
//! socket, so tests can drive it directly; [`serve`] runs it on a listener.

#![forbid(unsafe_code)]

pub mod auth;
pub mod auth_failures;
pub mod changes;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod http;
pub mod json;
pub mod maintenance;
pub mod repo;
mod server;
pub mod telemetry;
pub mod tls_listener;

use std::sync::Arc;

use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::ControlPlaneConfig;
pub use tls_listener::ClientAddr;
use tls_listener::TlsListener;

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<ControlPlaneConfig>,
    /// Wakes long polls when the deployed configuration may have changed.
    pub changes: watch::Receiver<u64>,
    /// The last snapshot built, reused while the config version stays the same.
    pub snapshot_cache: Arc<http::sync::SnapshotCache>,
    /// Flips to true when the server shuts down, so long polls return at once.
    pub shutdown: watch::Receiver<bool>,
    pub telemetry: Arc<telemetry::Telemetry>,
    /// Failed authentications by client address, to throttle token guessing.
    pub auth_failures: Arc<auth_failures::AuthFailures>,
    /// Signs the dashboard's forms shown before sign-in; loaded from the database once.
    pub form_key: Arc<dashboard::form_token::FormKey>,
}

/// The full application: admin API, proxy sync and health endpoints.
pub fn router(state: AppState) -> Router {
    http::router(state)
}

/// Serves the application on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    serve_on(listener, state).await
}

/// Like [`serve`], over TLS with the certificate in `files`, reloaded when they change.
/// Fails at once if the files do not load.
pub fn serve_tls(
    listener: TcpListener,
    state: AppState,
    files: gatehouse_tls::CertificateFiles,
) -> anyhow::Result<impl std::future::Future<Output = std::io::Result<()>>> {
    let (acceptor, certificate) = gatehouse_tls::acceptor(files, &[b"http/1.1"])?;
    let listener = TlsListener::new(listener, acceptor)?;
    tokio::spawn(certificate.watch(state.shutdown.clone()));
    Ok(serve_on(listener, state))
}

/// Serves on any listener whose connections tell the client's address.
async fn serve_on<L>(listener: L, state: AppState) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    let shutdown = state.shutdown.clone();
    let (header_timeout, max_connections) =
        (state.config.header_timeout, state.config.max_connections);
    server::serve(
        listener,
        router(state),
        header_timeout,
        max_connections,
        shutdown,
    )
    .await
}

/// Builds the state for a pool: starts the change listener that wakes long polls.
pub fn state(
    pool: PgPool,
    config: ControlPlaneConfig,
    shutdown: watch::Receiver<bool>,
) -> AppState {
    let changes = changes::listen(pool.clone(), shutdown.clone());
    maintenance::spawn(pool.clone(), &config, shutdown.clone());
    AppState {
        pool,
        config: Arc::new(config),
        changes,
        snapshot_cache: Arc::default(),
        shutdown,
        telemetry: Arc::default(),
        auth_failures: Arc::default(),
        form_key: Arc::default(),
    }
}
