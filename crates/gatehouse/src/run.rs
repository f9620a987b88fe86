//! What each subcommand does. `up` composes the others in one process.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use gatehouse_control_plane::auth::{admin_token_problem, Secret};
use gatehouse_control_plane::dashboard::accounts::{self, CreateError};
use gatehouse_control_plane::repo::users::{self, Role};
use gatehouse_control_plane::ControlPlaneConfig;
use gatehouse_proxy::config::AccessLogTarget;
use gatehouse_proxy::config::{CertificateFiles, ClientLimits};
use gatehouse_proxy::{ProxyConfig, RunningProxy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{
    AdminCommand, ControlPlaneArgs, ControlPlaneCommand, DatabaseArgs, DemoArgs,
    OptionalDatabaseArgs, PostgresCommand, ProxyArgs, ProxyCommand, UpArgs,
};
use crate::embedded_pg::{self, EmbeddedPostgres};
use crate::{database, demo, open_files, secrets};

/// Prints a line for the person at the terminal. Unlike `println!`, a closed stdout (the
/// reader went away) is not worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the {what} (is another instance running?)")
    })
}

fn control_plane_config(
    args: &ControlPlaneArgs,
    admin_token: Option<String>,
    node_token: Option<String>,
) -> anyhow::Result<ControlPlaneConfig> {
    if let Some(problem) = admin_token.as_deref().and_then(admin_token_problem) {
        anyhow::bail!("GATEHOUSE_ADMIN_TOKEN (--admin-token) is refused: {problem}");
    }
    Ok(ControlPlaneConfig {
        admin_token: admin_token.map(Secret::new),
        node_token: node_token.map(Secret::new),
        long_poll_timeout: Duration::from_secs(args.long_poll_secs),
        metrics_rollup_after: Duration::from_secs(args.metrics_rollup_hours * 3600),
        metrics_retention: Duration::from_secs(args.metrics_retention_days * 86_400),
        secure_cookies: args.secure_cookies || control_plane_tls(args).is_some(),
        proxy_url: args.proxy_url.clone(),
        header_timeout: Duration::from_secs(args.control_plane_header_timeout_secs),
        max_connections: usize::try_from(args.control_plane_max_connections).unwrap_or(usize::MAX),
        ..ControlPlaneConfig::default()
    })
}

fn proxy_config(
    args: &ProxyArgs,
    control_plane_url: String,
    node_token: String,
    data_dir: &Path,
) -> ProxyConfig {
    let mut config = ProxyConfig::new(control_plane_url, node_token);
    config.listen = args.proxy_listen;
    config.status_listen = args.status_listen;
    config.node_id = args
        .node_id
        .clone()
        .unwrap_or_else(|| format!("{}:{}", hostname(), args.proxy_listen.port()));
    config.data_dir = Some(data_dir.join("proxy"));
    config.max_body_bytes = args.max_body_bytes;
    config.redis_url = args.redis_url.clone();
    config.metrics = !args.no_metrics;
    config.metrics_report_interval = Duration::from_secs(args.metrics_interval_secs);
    config.access_log = match args.access_log.as_str() {
        "-" => AccessLogTarget::Stdout,
        path => AccessLogTarget::File(path.into()),
    };
    config.management_token = args.management_token.clone();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(CertificateFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    config.control_plane_ca = args.control_plane_ca.clone();
    config.max_websocket_connections =
        usize::try_from(args.max_websocket_connections).unwrap_or(usize::MAX);
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    config.limits = ClientLimits {
        max_header_bytes: size(args.max_header_bytes),
        max_headers: size(args.max_headers),
        max_uri_bytes: size(args.max_uri_bytes),
        header_timeout: Duration::from_secs(args.header_timeout_secs),
        body_timeout: Duration::from_secs(args.body_timeout_secs),
        max_connections: size(args.max_connections),
    };
    config
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "proxy".to_owned())
}

/// A control plane serving on a task, with the switch that stops it.
struct ControlPlaneTask {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn spawn_control_plane(
    pool: sqlx::PgPool,
    config: ControlPlaneConfig,
    args: &ControlPlaneArgs,
) -> anyhow::Result<ControlPlaneTask> {
    let listener = bind(args.control_plane_listen, "control plane").await?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    let state = gatehouse_control_plane::state(pool, config, stop_rx);
    let task = match control_plane_tls(args) {
        Some(files) => tokio::spawn(gatehouse_control_plane::serve_tls(listener, state, files)?),
        None => tokio::spawn(gatehouse_control_plane::serve(listener, state)),
    };
    Ok(ControlPlaneTask { addr, stop, task })
}

/// The URL scheme of a listener.
fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

/// The control plane's certificate files, when it serves TLS.
fn control_plane_tls(args: &ControlPlaneArgs) -> Option<CertificateFiles> {
    Some(CertificateFiles {
        cert: args.control_plane_tls_cert.clone()?,
        key: args.control_plane_tls_key.clone()?,
    })
}

impl ControlPlaneTask {
    async fn stop(self) {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "control plane stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "control plane task failed"),
            Ok(Ok(())) => {}
        }
    }
}

pub async fn control_plane(cmd: ControlPlaneCommand) -> anyhow::Result<()> {
    let args = &cmd.control_plane;
    if args.node_token.is_none() {
        tracing::warn!("GATEHOUSE_NODE_TOKEN is not set: proxies need node tokens issued through POST /api/v1/tokens");
    }
    if args.admin_token.is_none() {
        tracing::warn!(
            "GATEHOUSE_ADMIN_TOKEN is not set: only admin tokens issued earlier are accepted"
        );
    }
    // Before anything else, so a refused setting is the one error shown.
    let mut config = control_plane_config(args, args.admin_token.clone(), args.node_token.clone())?;
    let files = open_files::raise_limit().map(open_files::for_connections);
    config.max_connections = open_files::fit(
        "control plane",
        config.max_connections,
        files,
        open_files::PER_CONTROL_PLANE_CONNECTION,
    );
    let pool = database::connect(&cmd.database.database_url).await?;
    database::migrate(&pool).await?;
    let cp = spawn_control_plane(pool.clone(), config, args).await?;
    tracing::info!(addr = %cp.addr, "control plane listening");
    shutdown_signal().await;
    tracing::info!("shutting down");
    cp.stop().await;
    pool.close().await;
    Ok(())
}

pub async fn proxy(cmd: ProxyCommand) -> anyhow::Result<()> {
    let mut config = proxy_config(
        &cmd.proxy,
        cmd.control_plane_url.clone(),
        cmd.node_token.clone(),
        &cmd.data.data_dir,
    );
    let files = open_files::raise_limit().map(open_files::for_connections);
    config.limits.max_connections = open_files::fit(
        "proxy",
        config.limits.max_connections,
        files,
        open_files::PER_PROXY_CONNECTION,
    );
    let running = gatehouse_proxy::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    running.stop().await;
    Ok(())
}

/// `gatehouse admin ...`: user accounts of the dashboard.
pub async fn admin(command: AdminCommand) -> anyhow::Result<()> {
    let (name, database) = match &command {
        AdminCommand::CreateUser(args) => (&args.name, &args.database),
        AdminCommand::SetPassword(args) => (&args.name, &args.database),
        AdminCommand::DeleteUser(args) => (&args.name, &args.database),
    };
    let password = match command {
        AdminCommand::DeleteUser(_) => String::new(),
        _ => read_password()?,
    };
    let pool = admin_database(database).await?;
    let no_such_user = || CreateError::Internal(anyhow::anyhow!("there is no user named {name}"));
    let result = match &command {
        AdminCommand::CreateUser(args) => {
            let role = Role::parse(&args.role).unwrap_or(Role::Viewer);
            accounts::create(&pool, name, &password, role, false)
                .await
                .map(|user| {
                    say!(
                        "created {} {}; sign in to the dashboard with it",
                        user.role.as_str(),
                        user.name
                    );
                })
        }
        AdminCommand::SetPassword(_) => {
            match accounts::set_password(&pool, name, &password).await {
                Ok(true) => {
                    say!("password of {name} changed; their sessions were ended");
                    Ok(())
                }
                Ok(false) => Err(no_such_user()),
                Err(e) => Err(e),
            }
        }
        AdminCommand::DeleteUser(_) => match users::delete(&pool, name).await {
            Ok(true) => {
                say!("deleted {name}; their sessions were ended");
                Ok(())
            }
            Ok(false) => Err(no_such_user()),
            Err(e) => Err(e.into()),
        },
    };
    if result.is_ok() {
        let action = match command {
            AdminCommand::CreateUser(_) => "created a user",
            AdminCommand::SetPassword(_) => "set a password",
            AdminCommand::DeleteUser(_) => "deleted a user",
        };
        accounts::note(&pool, "cli", "cli", action, name).await;
    }
    pool.close().await;
    result.map_err(|e| match e {
        CreateError::Invalid(errors) => anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::Error::new(other),
    })
}

/// The password from GATEHOUSE_PASSWORD, the terminal (not echoed), or the first line of
/// standard input.
fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("GATEHOUSE_PASSWORD") {
        return Ok(password);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The database of `args`, or the private cluster under the data folder, migrated.
async fn admin_database(args: &OptionalDatabaseArgs) -> anyhow::Result<sqlx::PgPool> {
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => {
            let pg = EmbeddedPostgres::start(&args.data.data_dir).await?;
            pg.ensure_database(embedded_pg::DATABASE).await?;
            pg.url(embedded_pg::DATABASE)
        }
    };
    let pool = database::connect(&url).await?;
    database::migrate(&pool).await?;
    Ok(pool)
}

pub async fn migrate(args: DatabaseArgs) -> anyhow::Result<()> {
    let pool = database::connect(&args.database_url).await?;
    let applied = database::migrate(&pool).await?;
    pool.close().await;
    say!("{}", database::summary(&applied));
    Ok(())
}

async fn spawn_demo(
    listen: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = bind(listen, "demo upstream").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        axum::serve(listener, demo::router())
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    Ok((addr, task))
}

pub async fn demo_upstream(args: DemoArgs) -> anyhow::Result<()> {
    let (stop, stop_rx) = watch::channel(false);
    let (addr, task) = spawn_demo(args.demo_listen, stop_rx).await?;
    tracing::info!(%addr, "demo upstream listening");
    shutdown_signal().await;
    let _ = stop.send(true);
    task.await??;
    Ok(())
}

pub async fn postgres(cmd: PostgresCommand) -> anyhow::Result<()> {
    if cmd.stop {
        if !EmbeddedPostgres::stop_at(&cmd.data.data_dir).await? {
            say!(
                "no private PostgreSQL under {}",
                cmd.data.data_dir.display()
            );
        }
        return Ok(());
    }
    let pg = EmbeddedPostgres::start(&cmd.data.data_dir).await?;
    pg.ensure_database(embedded_pg::DATABASE).await?;
    say!("{}", pg.url(embedded_pg::DATABASE));
    Ok(())
}

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let data_dir = args.data.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    let (database_url, embedded) = match &args.database_url {
        Some(url) => (url.clone(), None),
        None => {
            say!(
                "Starting a private PostgreSQL in {} ...",
                data_dir.join("postgres").display()
            );
            let pg = EmbeddedPostgres::start(&data_dir).await?;
            (pg.url(embedded_pg::DATABASE), Some(pg))
        }
    };
    let result = up_with_database(&args, &database_url, embedded.as_ref()).await;
    if let Some(pg) = embedded {
        say!("Stopping PostgreSQL ...");
        if let Err(e) = pg.stop().await {
            say!("could not stop PostgreSQL cleanly: {e:#}");
        }
    }
    result
}

async fn up_with_database(
    args: &UpArgs,
    database_url: &str,
    embedded: Option<&EmbeddedPostgres>,
) -> anyhow::Result<()> {
    let data_dir = &args.data.data_dir;
    if let Some(pg) = embedded {
        pg.ensure_database(embedded_pg::DATABASE).await?;
    }
    let admin_token = match &args.control_plane.admin_token {
        Some(t) => t.clone(),
        None => secrets::load_or_create(data_dir, "admin-token", "gha")?,
    };
    let node_token = match &args.control_plane.node_token {
        Some(t) => t.clone(),
        None => secrets::load_or_create(data_dir, "node-token", "ghn")?,
    };
    let management_token = match &args.proxy.management_token {
        Some(t) => t.clone(),
        None => secrets::load_or_create(data_dir, "management-token", "ghm")?,
    };
    let pool = database::connect(database_url).await?;
    database::migrate(&pool).await?;

    let mut cp_config = control_plane_config(
        &args.control_plane,
        Some(admin_token.clone()),
        Some(node_token.clone()),
    )?;
    // One process serves both: the control plane gets a quarter of the descriptors.
    let files = open_files::raise_limit().map(open_files::for_connections);
    cp_config.max_connections = open_files::fit(
        "control plane",
        cp_config.max_connections,
        files.map(|files| files / 4),
        open_files::PER_CONTROL_PLANE_CONNECTION,
    );
    let proxy_files = files.map(|files| files - files / 4);
    if cp_config.proxy_url.is_none() {
        let scheme = scheme(args.proxy.tls_cert.is_some());
        cp_config.proxy_url = Some(format!("{scheme}://{}", args.proxy.proxy_listen));
    }
    let cp = spawn_control_plane(pool.clone(), cp_config, &args.control_plane).await?;
    // Over TLS, the proxy names the control plane `localhost`, which its certificate must
    // cover.
    let cp_url = match control_plane_tls(&args.control_plane) {
        Some(_) => format!("https://localhost:{}", cp.addr.port()),
        None => format!("http://{}", cp.addr),
    };
    let (demo_stop, demo_stop_rx) = watch::channel(false);
    let started = async {
        let (demo_addr, demo_task) = spawn_demo(args.demo.demo_listen, demo_stop_rx).await?;
        let mut proxy_cfg = proxy_config(&args.proxy, cp_url, node_token, data_dir);
        proxy_cfg.management_token = Some(management_token.clone());
        proxy_cfg.limits.max_connections = open_files::fit(
            "proxy",
            proxy_cfg.limits.max_connections,
            proxy_files,
            open_files::PER_PROXY_CONNECTION,
        );
        let proxy = gatehouse_proxy::start(proxy_cfg).await?;
        anyhow::Ok((demo_addr, demo_task, proxy))
    }
    .await;
    let (demo_addr, demo_task, proxy) = match started {
        Ok(started) => started,
        Err(e) => {
            let _ = demo_stop.send(true);
            cp.stop().await;
            pool.close().await;
            return Err(e);
        }
    };
    let has_users = users::any_exist(&pool).await?;
    let cp_base = format!(
        "{}://{}",
        scheme(control_plane_tls(&args.control_plane).is_some()),
        cp.addr
    );
    let proxy_base = format!("{}://{}", scheme(args.proxy.tls_cert.is_some()), proxy.addr);
    print_banner(
        &cp_base,
        &proxy_base,
        &proxy,
        demo_addr,
        data_dir,
        embedded.is_some(),
        &admin_token,
        &management_token,
    );
    print_sign_in(&cp_base, has_users, embedded.is_some().then_some(data_dir));

    shutdown_signal().await;
    say!("\nStopping Gatehouse ...");
    proxy.stop().await;
    cp.stop().await;
    let _ = demo_stop.send(true);
    let _ = demo_task.await;
    pool.close().await;
    Ok(())
}

/// `cp`: the control plane's base URL; `private_data`: the data folder of the private
/// PostgreSQL, when `up` runs one.
fn print_sign_in(cp: &str, has_users: bool, private_data: Option<&Path>) {
    if has_users {
        let create_user = create_user_command(private_data, "<name>");
        say!("\nDashboard: {cp}/ (sign in; `{create_user}` adds users).");
    } else {
        let create_user = create_user_command(private_data, "<you>");
        say!(
            "\nDashboard: {cp}/setup creates the first admin: paste the admin token above.
  Or, in another terminal: {create_user}"
        );
    }
}

/// `gatehouse admin create-user` as it runs from the folder `up` was started in: this
/// very binary (`target/release/gatehouse` under `just run`, which is not on the PATH),
/// with the data folder of the private PostgreSQL when it is not the default.
fn create_user_command(private_data: Option<&Path>, name: &str) -> String {
    let exe = std::env::current_exe().unwrap_or_else(|_| "gatehouse".into());
    let exe = std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or(exe);
    let database = match private_data {
        Some(dir) if dir == Path::new(".gatehouse") => String::new(),
        Some(dir) => format!(" --data-dir {}", dir.display()),
        None => "   (with the same DATABASE_URL)".to_owned(),
    };
    format!(
        "{} admin create-user --name {name}{database}",
        exe.display()
    )
}

/// `cp` and `proxy_base`: the base URLs of the control plane and the proxy.
#[allow(clippy::too_many_arguments)]
fn print_banner(
    cp: &str,
    proxy_base: &str,
    proxy: &RunningProxy,
    demo: SocketAddr,
    data_dir: &Path,
    embedded: bool,
    admin_token: &str,
    management_token: &str,
) {
    let database = if embedded {
        format!(
            "private PostgreSQL in {}",
            data_dir.join("postgres").display()
        )
    } else {
        "DATABASE_URL".to_owned()
    };
    say!(
        "
Gatehouse is running.

  Admin API        {cp}/api/v1
  Proxy            {proxy_base}/<api-slug>/<stage>/<path>
  Proxy status     http://{status}/readyz
  Prometheus       http://{status}/metrics and {cp}/metrics
  Demo upstream    http://{demo}/pets
  Database         {database}
  Admin token      {admin_token}
  Management token {management_token}   (WebSocket APIs' @connections API)

Try it:
  export GATEHOUSE_ADMIN_TOKEN={admin_token}
  curl -s -H \"Authorization: Bearer $GATEHOUSE_ADMIN_TOKEN\" {cp}/api/v1/apis

The README's tutorial continues from here. Press Ctrl-C to stop.",
        status = proxy.status_addr,
    );
}
