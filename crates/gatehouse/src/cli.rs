//! Command-line interface. Every flag can also be set by the environment variable shown in
//! `--help` (`GATEHOUSE_<FLAG>`, plus `DATABASE_URL`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A self-hosted API gateway: control plane and proxy in one binary."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything on one machine: PostgreSQL (private, unless DATABASE_URL is set), the
    /// control plane, one proxy and a demo upstream. Ctrl-C stops all of it.
    Up(Box<UpArgs>),
    /// Run the control plane: admin API, proxy sync and health endpoints.
    ControlPlane(ControlPlaneCommand),
    /// Run a proxy that polls a control plane and serves API traffic.
    Proxy(ProxyCommand),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Run only the demo upstream (a pet store and an echo service).
    DemoUpstream(DemoArgs),
    /// Manage dashboard users: `admin create-user`, `admin set-password`.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Start the private PostgreSQL cluster under the data folder, print its URL and exit,
    /// leaving it running (what `just test` uses when DATABASE_URL is unset).
    Postgres(PostgresCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a dashboard user. The password is read from GATEHOUSE_PASSWORD, else asked
    /// for (or read from the first line of standard input when it is not a terminal).
    CreateUser(CreateUserArgs),
    /// Set a user's password and sign them out everywhere.
    SetPassword(SetPasswordArgs),
    /// Delete a user; their sessions end at once.
    DeleteUser(SetPasswordArgs),
}

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// The name to sign in with: letters, digits and . _ - @.
    #[arg(long)]
    pub name: String,
    /// admin (changes anything) or viewer (reads only).
    #[arg(long, default_value = "admin", value_parser = ["admin", "viewer"])]
    pub role: String,
    #[command(flatten)]
    pub database: OptionalDatabaseArgs,
}

/// A command on one existing user.
#[derive(Debug, Args)]
pub struct SetPasswordArgs {
    /// The user's name (any case).
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub database: OptionalDatabaseArgs,
}

#[derive(Debug, Args)]
pub struct OptionalDatabaseArgs {
    /// PostgreSQL URL; when unset, the private cluster of `gatehouse up` under the data
    /// folder (started when it is not running, and left running).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub data: DataDirArgs,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. postgres://user:password@host:5432/gatehouse.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct DataDirArgs {
    /// Folder for local state: the private PostgreSQL of `up`, generated tokens, the
    /// proxy's snapshot cache.
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = ".gatehouse")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ControlPlaneArgs {
    /// Address the control plane listens on.
    #[arg(
        long,
        env = "GATEHOUSE_CONTROL_PLANE_LISTEN",
        default_value = "127.0.0.1:8001"
    )]
    pub control_plane_listen: SocketAddr,
    /// Token accepted on the admin API as `Authorization: Bearer <token>` [`up`: generated
    /// and kept in the data folder].
    #[arg(long, env = "GATEHOUSE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Token proxies present to fetch configuration [`up`: generated and kept in the data
    /// folder].
    #[arg(long, env = "GATEHOUSE_NODE_TOKEN", hide_env_values = true)]
    pub node_token: Option<String>,
    /// Serve the control plane over TLS with this certificate chain (PEM, leaf first);
    /// reloaded when the file changes.
    #[arg(
        long,
        env = "GATEHOUSE_CONTROL_PLANE_TLS_CERT",
        requires = "control_plane_tls_key"
    )]
    pub control_plane_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--control-plane-tls-cert`.
    #[arg(
        long,
        env = "GATEHOUSE_CONTROL_PLANE_TLS_KEY",
        requires = "control_plane_tls_cert"
    )]
    pub control_plane_tls_key: Option<PathBuf>,
    /// Longest time, in seconds, a proxy's config poll is held when nothing changes.
    #[arg(long, env = "GATEHOUSE_LONG_POLL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub long_poll_secs: u64,
    /// Age, in hours, after which minute metrics are rolled up into hours.
    #[arg(long, env = "GATEHOUSE_METRICS_ROLLUP_HOURS", default_value_t = 48, value_parser = clap::value_parser!(u64).range(1..=24 * 366))]
    pub metrics_rollup_hours: u64,
    /// Age, in days, after which metrics are deleted.
    #[arg(long, env = "GATEHOUSE_METRICS_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=3660))]
    pub metrics_retention_days: u64,
    /// Where clients reach the proxies (e.g. https://api.example.com), for the invoke URLs
    /// the dashboard shows [default: the address of the proxy seen last; `up`: its proxy].
    #[arg(long, env = "GATEHOUSE_PROXY_URL")]
    pub proxy_url: Option<String>,
    /// Mark dashboard cookies Secure: set it when the dashboard is reached over HTTPS
    /// through a TLS-terminating load balancer (with `--control-plane-tls-cert` they are
    /// marked Secure anyway).
    #[arg(long, env = "GATEHOUSE_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Seconds a client of the control plane has to send a request's headers (also how
    /// long an idle keep-alive connection stays open); then it is closed.
    #[arg(long, env = "GATEHOUSE_CONTROL_PLANE_HEADER_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub control_plane_header_timeout_secs: u64,
    /// Most client connections the control plane holds at once; more get 503 and are
    /// closed [lowered to what the open-files limit allows].
    #[arg(long, env = "GATEHOUSE_CONTROL_PLANE_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub control_plane_max_connections: u64,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address the proxy serves API traffic on.
    #[arg(long, env = "GATEHOUSE_PROXY_LISTEN", default_value = "127.0.0.1:8000")]
    pub proxy_listen: SocketAddr,
    /// Address of the proxy's status port (/healthz, /readyz, /metrics).
    #[arg(
        long,
        env = "GATEHOUSE_STATUS_LISTEN",
        default_value = "127.0.0.1:8100"
    )]
    pub status_listen: SocketAddr,
    /// Name this proxy reports to the control plane [default: <hostname>:<proxy port>].
    #[arg(long, env = "GATEHOUSE_NODE_ID")]
    pub node_id: Option<String>,
    /// Largest request body forwarded, in bytes; larger ones get 413.
    #[arg(long, env = "GATEHOUSE_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Redis shared by all proxies, for exact quota counts across them (optional; without
    /// it each proxy counts locally and learns the others' use from the control plane).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Worker threads serving traffic (with `up`: of the whole process) [default: one per CPU].
    #[arg(long, env = "GATEHOUSE_PROXY_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub proxy_workers: Option<u16>,
    /// Seconds between traffic metrics reports to the control plane.
    #[arg(long, env = "GATEHOUSE_METRICS_INTERVAL_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub metrics_interval_secs: u64,
    /// Turn traffic metrics and access logs off (to measure what they cost).
    #[arg(long, env = "GATEHOUSE_NO_METRICS")]
    pub no_metrics: bool,
    /// Where access log lines of stages with `access_log` on go: `-` for standard output,
    /// or a file to append to.
    #[arg(long, env = "GATEHOUSE_ACCESS_LOG", default_value = "-")]
    pub access_log: String,
    /// Bearer token backends present to the `@connections` API of WebSocket APIs
    /// (`POST|GET|DELETE /<slug>/<stage>/@connections/<id>`); unset keeps that API closed
    /// [`up`: generated once and kept in the data folder].
    #[arg(long, env = "GATEHOUSE_MANAGEMENT_TOKEN", hide_env_values = true)]
    pub management_token: Option<String>,
    /// Most WebSocket connections one proxy holds at once; more are refused with 503.
    #[arg(long, env = "GATEHOUSE_MAX_WEBSOCKET_CONNECTIONS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_websocket_connections: u64,
    /// Serve API traffic over TLS with this certificate chain (PEM, leaf first); reloaded
    /// when the file changes.
    #[arg(long, env = "GATEHOUSE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, env = "GATEHOUSE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for an `https://` control plane, besides the
    /// system's roots.
    #[arg(long, env = "GATEHOUSE_CONTROL_PLANE_CA")]
    pub control_plane_ca: Option<PathBuf>,
    /// Most client connections one proxy holds at once (HTTP and WebSocket); more get 503
    /// and are closed [lowered to what the open-files limit allows].
    #[arg(long, env = "GATEHOUSE_MAX_CONNECTIONS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: u64,
    /// Largest request line and headers together, in bytes; more gets 431.
    #[arg(long, env = "GATEHOUSE_MAX_HEADER_BYTES", default_value_t = 10 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024))]
    pub max_header_bytes: u64,
    /// Most header fields in a request; more gets 431.
    #[arg(long, env = "GATEHOUSE_MAX_HEADERS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_headers: u64,
    /// Longest request target (path and query), in bytes; longer gets 414.
    #[arg(long, env = "GATEHOUSE_MAX_URI_BYTES", default_value_t = 8 * 1024, value_parser = clap::value_parser!(u64).range(1..=65_534))]
    pub max_uri_bytes: u64,
    /// Seconds a client has to send a request's headers (also how long an idle keep-alive
    /// connection stays open); then it is closed.
    #[arg(long, env = "GATEHOUSE_HEADER_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,
    /// Seconds a client may pause while sending a request body; then it gets 408.
    #[arg(long, env = "GATEHOUSE_BODY_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct ControlPlaneCommand {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub control_plane: ControlPlaneArgs,
}

#[derive(Debug, Args)]
pub struct ProxyCommand {
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Base URL of the control plane: one http:// or https:// URL (a list is refused).
    #[arg(
        long,
        env = "GATEHOUSE_CONTROL_PLANE_URL",
        default_value = "http://127.0.0.1:8001",
        value_parser = gatehouse_proxy::config::parse_control_plane_url
    )]
    pub control_plane_url: String,
    /// Token presented to the control plane (its GATEHOUSE_NODE_TOKEN).
    #[arg(long, env = "GATEHOUSE_NODE_TOKEN", hide_env_values = true)]
    pub node_token: String,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// PostgreSQL URL; when unset, a private cluster is started under the data folder.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub data: DataDirArgs,
    #[command(flatten)]
    pub control_plane: ControlPlaneArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub demo: DemoArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the demo upstream.
    #[arg(long, env = "GATEHOUSE_DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    pub demo_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct PostgresCommand {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Stop the cluster instead of starting it.
    #[arg(long)]
    pub stop: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
