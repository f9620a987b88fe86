//! `gatehouse`: parse the command line, set up logging, run the chosen subcommand.

#![forbid(unsafe_code)]

use clap::Parser as _;
use gatehouse::cli::{Cli, Command};
use gatehouse::run;
use tracing_subscriber::EnvFilter;

/// mimalloc: per-thread free lists make the proxy's many small, short-lived allocations
/// (headers, buffers, futures) cheaper than glibc's malloc, and it returns memory well.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Logs go through a background writer: a slow terminal or pipe never blocks a request.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn")),
        )
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let workers = match &cli.command {
        Command::Proxy(cmd) => cmd.proxy.proxy_workers,
        Command::Up(args) => args.proxy.proxy_workers,
        _ => None,
    };
    // One worker: a single-threaded scheduler, which wakes tasks without atomics or
    // cross-thread handoffs, as an event loop like nginx's worker does.
    let mut runtime = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(workers) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(usize::from(workers));
            runtime
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all();
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => run::up(*args).await,
            Command::ControlPlane(cmd) => run::control_plane(cmd).await,
            Command::Proxy(cmd) => run::proxy(cmd).await,
            Command::Migrate(args) => run::migrate(args).await,
            Command::Admin(command) => run::admin(command).await,
            Command::DemoUpstream(args) => run::demo_upstream(args).await,
            Command::Postgres(cmd) => run::postgres(cmd).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
