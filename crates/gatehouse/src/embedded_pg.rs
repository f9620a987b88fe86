//! A private PostgreSQL cluster for `gatehouse up` (and `just test`) when no
//! `DATABASE_URL` is given: created under the data folder from the machine's own
//! PostgreSQL binaries, reachable only over a Unix socket (no TCP port to collide with),
//! reused by the next start, stopped on exit.
//!
//! PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres`
//! user and its commands run through `runuser`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context as _};
use tokio::process::Command;

/// The database Gatehouse keeps its data in.
pub const DATABASE: &str = "gatehouse";
/// The port number names the socket file; nothing listens on TCP.
const PORT: u16 = 5432;

/// A cluster started (or found running) under a data folder.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    as_postgres_user: bool,
}

const INSTALL_HINT: &str =
    "No PostgreSQL server binaries (initdb, pg_ctl) were found on PATH or under \
/usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `sudo apt-get install postgresql`; \
Fedora: `sudo dnf install postgresql-server`; macOS: `brew install postgresql`), \
or point Gatehouse at an existing server with DATABASE_URL=postgres://user:password@host/db.";

/// Finds a directory holding `initdb` and `pg_ctl`: PATH first, then Debian's layout
/// (the newest major version).
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_tools(d)) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The numeric id of `user`, or of this process's user when `None`.
async fn uid_of(user: Option<&str>) -> Option<u32> {
    let out = Command::new("id")
        .arg("-u")
        .args(user)
        .output()
        .await
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Creates `dir` if needed and makes sure only its owner can use it: it must belong to one
/// of `owners` (someone else may have planted it in a shared folder) and gets mode 0700.
fn private_dir(dir: &Path, owners: &[u32]) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || !owners.contains(&meta.uid()) {
        bail!(
            "{} belongs to another user (or is not a folder); refusing to keep PostgreSQL there",
            dir.display()
        );
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

impl EmbeddedPostgres {
    /// Creates the cluster under `root` if needed and starts it if it is not running.
    pub async fn start(root: &Path) -> anyhow::Result<EmbeddedPostgres> {
        let bin_dir = find_bin_dir().context(INSTALL_HINT)?;
        let root = std::path::absolute(root).context("cannot resolve the data folder")?;
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let uid = uid_of(None)
            .await
            .context("cannot tell which user this is (`id -u` failed)")?;
        let as_postgres_user = uid == 0;
        let owners = if as_postgres_user {
            vec![
                0,
                uid_of(Some("postgres"))
                    .await
                    .context("running as root needs a `postgres` user to run PostgreSQL")?,
            ]
        } else {
            vec![uid]
        };
        let base = cluster_base(&root, as_postgres_user).await;
        let data_dir = base.join("data");
        let socket_dir = socket_dir_for(&base);
        if let Some(parent) = base.parent().filter(|p| *p != root) {
            // A folder of our own under /var/tmp: nobody else may be able to rename in it.
            private_dir(parent, &owners)?;
            std::fs::set_permissions(parent, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        }
        private_dir(&base, &owners)?;
        private_dir(&socket_dir, &owners)?;
        let pg = EmbeddedPostgres {
            bin_dir,
            data_dir,
            socket_dir,
            as_postgres_user,
        };
        if as_postgres_user {
            pg.chown(&base).await?;
            pg.chown(&pg.socket_dir).await?;
        }
        if !pg.data_dir.join("PG_VERSION").is_file() {
            pg.init().await?;
        }
        if !pg.is_running().await {
            pg.run_ok(
                "pg_ctl",
                &[
                    "-D".into(),
                    pg.data_dir.clone().into(),
                    "-l".into(),
                    base.join("server.log").into(),
                    "-w".into(),
                    "-t".into(),
                    "60".into(),
                    "-o".into(),
                    format!(
                        "-c listen_addresses='' -c unix_socket_permissions=0700 -k '{}' -p {PORT}",
                        pg.socket_dir.display()
                    )
                    .into(),
                    "start".into(),
                ],
            )
            .await
            .with_context(|| {
                format!(
                    "PostgreSQL did not start; see {}",
                    base.join("server.log").display()
                )
            })?;
        }
        Ok(pg)
    }

    /// Stops the cluster under `root` if there is one, creating nothing; false when there
    /// is none.
    pub async fn stop_at(root: &Path) -> anyhow::Result<bool> {
        let root = std::path::absolute(root).context("cannot resolve the data folder")?;
        if !root.is_dir() {
            return Ok(false);
        }
        let bin_dir = find_bin_dir().context(INSTALL_HINT)?;
        let as_postgres_user = uid_of(None).await == Some(0);
        let base = cluster_base(&root, as_postgres_user).await;
        let pg = EmbeddedPostgres {
            bin_dir,
            data_dir: base.join("data"),
            socket_dir: socket_dir_for(&base),
            as_postgres_user,
        };
        if !pg.data_dir.join("PG_VERSION").is_file() {
            return Ok(false);
        }
        pg.stop().await?;
        Ok(true)
    }

    /// The URL of `database` on this cluster, over its Unix socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}&port={PORT}",
            self.socket_dir.display()
        )
    }

    /// Creates `database` if it does not exist yet.
    pub async fn ensure_database(&self, database: &str) -> anyhow::Result<()> {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            sqlx::query(&format!(
                "CREATE DATABASE \"{}\"",
                database.replace('"', "\"\"")
            ))
            .execute(&mut conn)
            .await?;
        }
        conn.close().await?;
        Ok(())
    }

    /// Stops the cluster (fast shutdown: sessions are closed, data is safe).
    pub async fn stop(&self) -> anyhow::Result<()> {
        if self.is_running().await {
            self.run_ok(
                "pg_ctl",
                &[
                    "-D".into(),
                    self.data_dir.clone().into(),
                    "-m".into(),
                    "fast".into(),
                    "-w".into(),
                    "stop".into(),
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn init(&self) -> anyhow::Result<()> {
        self.run_ok(
            "initdb",
            &[
                "-D".into(),
                self.data_dir.clone().into(),
                "-U".into(),
                "postgres".into(),
                "--auth=trust".into(),
                "--encoding=UTF8".into(),
                "--no-instructions".into(),
            ],
        )
        .await
        .context("initdb failed")
    }

    async fn is_running(&self) -> bool {
        self.command(
            "pg_ctl",
            &["-D".into(), self.data_dir.clone().into(), "status".into()],
        )
        .output()
        .await
        .is_ok_and(|out| out.status.success())
    }

    async fn chown(&self, path: &Path) -> anyhow::Result<()> {
        let status = Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .await?;
        if !status.success() {
            bail!(
                "cannot give {} to the postgres user (running as root needs a `postgres` user)",
                path.display()
            );
        }
        Ok(())
    }

    fn command(&self, tool: &str, args: &[OsString]) -> Command {
        let program = self.bin_dir.join(tool);
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.arg("-u").arg("postgres").arg("--").arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args).stdin(Stdio::null()).kill_on_drop(true);
        command
    }

    async fn run_ok(&self, tool: &str, args: &[OsString]) -> anyhow::Result<()> {
        let out = self
            .command(tool, args)
            .output()
            .await
            .with_context(|| format!("cannot run {tool}"))?;
        if !out.status.success() {
            bail!(
                "{tool} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// Where the cluster lives: `<root>/postgres`, unless the `postgres` user cannot reach
/// that folder (a project under `/root`, say), in which case a folder of its own under
/// `/var/tmp`, named after the data folder so the next start finds it again.
async fn cluster_base(root: &Path, as_postgres_user: bool) -> PathBuf {
    let preferred = root.join("postgres");
    if !as_postgres_user {
        return preferred;
    }
    let reachable = Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(root)
        .status()
        .await
        .is_ok_and(|s| s.success());
    if reachable {
        return preferred;
    }
    let fallback = PathBuf::from("/var/tmp")
        .join(format!("gatehouse-{:016x}", path_digest(root)))
        .join("postgres");
    tracing::warn!(
        data_dir = %root.display(),
        cluster = %fallback.display(),
        "the postgres user cannot reach the data folder; keeping PostgreSQL's files elsewhere"
    );
    fallback
}

/// A stable 64-bit digest of a path (FNV-1a), to name folders after it.
fn path_digest(path: &Path) -> u64 {
    path.as_os_str()
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Unix socket paths are limited to about 100 bytes: a deep data folder gets its socket
/// under the system's temporary folder instead, named after the folder.
fn socket_dir_for(base: &Path) -> PathBuf {
    let preferred = base.join("run");
    if preferred.as_os_str().len() + "/.s.PGSQL.5432".len() < 100 {
        return preferred;
    }
    std::env::temp_dir().join(format!("gatehouse-pg-{:016x}", path_digest(base)))
}
