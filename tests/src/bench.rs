//! What the benchmarks share: the release binary run as separate processes (optionally
//! pinned to a CPU), their CPU time and memory read from `/proc`, and `wrk` as the load
//! generator.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{client, ADMIN_TOKEN, NODE_TOKEN};

/// A child process, killed when dropped.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    /// The status port, for proxies.
    pub status: Option<SocketAddr>,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU time used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid())
    }

    /// Waits until this proxy's status port says it serves a config.
    pub async fn wait_ready(&self, limit: Duration) {
        let status = self.status.expect("only proxies have a status port");
        wait_until_ok(&format!("http://{status}/readyz"), limit).await;
    }

    /// Sends SIGTERM, as a service manager stopping it would.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM to {} failed", self.pid());
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it runs on.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Resident memory, in MiB.
    pub fn rss_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user and system) process `pid` has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// Clock ticks per second of `/proc` CPU times, asked once.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// The release `gatehouse` binary `just bench` builds.
pub fn gatehouse_binary() -> PathBuf {
    // Benchmarks run from target/release/deps; the binary sits in target/release.
    let exe = std::env::current_exe().expect("bench path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("gatehouse"))
        .expect("target dir")
}

/// How many CPUs this machine has.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A command that runs `program` pinned to `cpu` when the machine has it.
pub fn pinned(cpu: Option<usize>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match cpu.filter(|c| *c < cpus()) {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A process ready to start: its command line, and the addresses it will serve on.
pub struct Launch {
    pub command: Command,
    addr: SocketAddr,
    status: Option<SocketAddr>,
}

impl Launch {
    /// Starts it quietly: errors only, on standard error.
    pub fn spawn(mut self) -> Process {
        self.command.env("RUST_LOG", "error").stdout(Stdio::null());
        self.start()
    }

    /// Starts it logging at `level` (a `RUST_LOG` filter), standard output and error
    /// appended to the file `log`.
    pub fn spawn_logged(mut self, level: &str, log: &Path) -> Process {
        let file = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("log file")
        };
        self.command
            .env("RUST_LOG", level)
            .stdout(file())
            .stderr(file());
        self.start()
    }

    fn start(mut self) -> Process {
        let child = self
            .command
            .spawn()
            .expect("start the gatehouse binary (just test and just bench build it)");
        Process {
            child,
            addr: self.addr,
            status: self.status,
        }
    }
}

/// `gatehouse proxy` with one worker thread, pinned to `cpu`, with `extra` flags.
pub fn spawn_proxy(cp_url: &str, data: &Path, cpu: Option<usize>, extra: &[&str]) -> Process {
    proxy(cp_url, data, cpu, extra).spawn()
}

/// The command line of [`spawn_proxy`].
pub fn proxy(cp_url: &str, data: &Path, cpu: Option<usize>, extra: &[&str]) -> Launch {
    let (addr, status) = (free_port(), free_port());
    let mut command = pinned(cpu, gatehouse_binary());
    command
        .args([
            "proxy",
            "--control-plane-url",
            cp_url,
            "--node-token",
            NODE_TOKEN,
        ])
        .args(["--proxy-workers", "1"])
        .args(["--proxy-listen", &addr.to_string()])
        .args(["--status-listen", &status.to_string()])
        .arg("--data-dir")
        .arg(data)
        .args(extra);
    Launch {
        command,
        addr,
        status: Some(status),
    }
}

/// `gatehouse control-plane` on `database_url`, pinned to `cpu`, with the tests' tokens.
pub fn spawn_control_plane(database_url: &str, cpu: Option<usize>) -> Process {
    control_plane(database_url, cpu, free_port()).spawn()
}

/// Like [`spawn_control_plane`], listening on `addr` (to come back where proxies expect it).
pub fn spawn_control_plane_on(database_url: &str, cpu: Option<usize>, addr: SocketAddr) -> Process {
    control_plane(database_url, cpu, addr).spawn()
}

/// The command line of [`spawn_control_plane_on`].
pub fn control_plane(database_url: &str, cpu: Option<usize>, addr: SocketAddr) -> Launch {
    let mut command = pinned(cpu, gatehouse_binary());
    command
        .args(["control-plane", "--control-plane-listen", &addr.to_string()])
        .env("DATABASE_URL", database_url)
        .env("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("GATEHOUSE_NODE_TOKEN", NODE_TOKEN);
    Launch {
        command,
        addr,
        status: None,
    }
}

/// `gatehouse demo-upstream`, pinned to `cpu`.
pub fn spawn_upstream(cpu: Option<usize>) -> Process {
    let addr = free_port();
    let mut command = pinned(cpu, gatehouse_binary());
    command.args(["demo-upstream", "--demo-listen", &addr.to_string()]);
    Launch {
        command,
        addr,
        status: None,
    }
    .spawn()
}

/// Waits until `url` answers 200.
pub async fn wait_until_ok(url: &str, limit: Duration) {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if let Ok(response) = client().get(url).send().await {
            if response.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{url} did not answer 200 within {limit:?}");
}

/// What one `wrk` run measured.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub requests: u64,
    pub per_second: f64,
    /// Non-2xx/3xx responses and socket errors.
    pub errors: u64,
}

/// Runs `wrk` with one thread and `connections` for `seconds` on `cpu`.
pub fn wrk(url: &str, connections: u32, seconds: u64, cpu: Option<usize>) -> Load {
    wrk_with(url, &[], connections, seconds, cpu)
}

/// [`wrk`], sending `headers` (`name: value`) with every request.
pub fn wrk_with(
    url: &str,
    headers: &[String],
    connections: u32,
    seconds: u64,
    cpu: Option<usize>,
) -> Load {
    let mut command = pinned(cpu, "wrk");
    for header in headers {
        command.arg("-H").arg(header);
    }
    run_wrk(command, url, connections, seconds)
}

/// Like [`wrk_with`], each request made by the Lua `script` (say, to vary a header).
pub fn wrk_scripted(
    url: &str,
    script: &Path,
    connections: u32,
    seconds: u64,
    cpu: Option<usize>,
) -> Load {
    let mut command = pinned(cpu, "wrk");
    command.arg("-s").arg(script);
    run_wrk(command, url, connections, seconds)
}

fn run_wrk(mut command: Command, url: &str, connections: u32, seconds: u64) -> Load {
    let output = command
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            url,
        ])
        .output()
        .expect("wrk runs (install it: apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let number_after = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.trim_end_matches(',').parse::<f64>().ok())
    };
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let socket_errors: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Load {
        requests,
        per_second: number_after("Requests/sec:").unwrap_or(0.0),
        errors: number_after("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64 + socket_errors,
    }
}

/// The median of `values`.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `min..max` of `values`, formatted with `decimals`.
pub fn range(values: &[f64], decimals: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.decimals$}..{max:.decimals$}")
}

/// nginx as a reverse proxy or as the fixed upstream, one process with one worker (no
/// master), pinned to `cpu`, its files under `dir`. `server` is the body of the `server`
/// block; `upstream`, when given, becomes the `backend` upstream with keep-alive.
pub fn spawn_nginx(
    dir: &Path,
    cpu: Option<usize>,
    upstream: Option<SocketAddr>,
    server: &str,
) -> Process {
    let addr = free_port();
    std::fs::create_dir_all(dir).expect("nginx folder");
    let backend = upstream.map_or(String::new(), |up| {
        format!("upstream backend {{ server {up}; keepalive 64; keepalive_requests 1000000; }}")
    });
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 60s;\n\
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         {backend}\n  server {{\n    listen {addr} reuseport;\n{server}\n  }}\n}}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let mut command = pinned(cpu, nginx_binary());
    command
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stderr(Stdio::null());
    Launch {
        command,
        addr,
        status: None,
    }
    .spawn()
}

/// Debian's nginx, or `$NGINX`.
pub fn nginx_binary() -> PathBuf {
    std::env::var_os("NGINX").map_or_else(|| PathBuf::from("/usr/sbin/nginx"), PathBuf::from)
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_listening(addr: SocketAddr, limit: Duration) {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing listens on {addr} after {limit:?}");
}

/// What one open-loop run measured; latencies in microseconds, counted from when each
/// request was due, not from when it could be sent.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct OpenLoop {
    pub rate: f64,
    pub requests: u64,
    /// Responses other than 2xx, and requests that got no response.
    pub failed: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// Runs the `open_loop` generator (`generator`, the path Cargo gives benches) at a fixed
/// `rate` for `seconds` over `connections`, on `cpu`, sending `headers` (`name: value`).
pub fn open_loop(
    generator: &Path,
    url: &str,
    headers: &[String],
    rate: f64,
    seconds: u64,
    connections: u32,
    cpu: Option<usize>,
) -> anyhow::Result<OpenLoop> {
    let output = pinned(cpu, generator)
        .arg(url)
        .arg(format!("{rate:.0}"))
        .arg(seconds.to_string())
        .arg(connections.to_string())
        .args(headers)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "open_loop failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}
