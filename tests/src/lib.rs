//! Harness for end-to-end tests: starts a control plane on a fresh database, proxies and
//! a demo upstream, each on its own loopback port, and drives the admin API over HTTP the
//! way a user's script would.

#![forbid(unsafe_code)]

pub mod bench;
pub mod browser;
pub mod dashboard;
pub mod fuzzing;
pub mod identity;
pub mod serial;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_control_plane::auth::Secret;
use gatehouse_control_plane::ControlPlaneConfig;
use gatehouse_proxy::{ProxyConfig, RunningProxy};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
pub const NODE_TOKEN: &str = "test-node-token";

/// A control plane serving on a loopback port.
pub struct ControlPlane {
    pub addr: SocketAddr,
    pub pool: PgPool,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl ControlPlane {
    pub async fn start(pool: PgPool) -> ControlPlane {
        Self::start_on(pool, "127.0.0.1:0".parse().expect("addr")).await
    }

    /// Starts on a given address (to restart where proxies expect it).
    pub async fn start_on(pool: PgPool, addr: SocketAddr) -> ControlPlane {
        Self::start_tuned(pool, addr, |_| {}).await
    }

    /// Starts on `addr` with `tune` applied to the configuration last.
    pub async fn start_tuned(
        pool: PgPool,
        addr: SocketAddr,
        tune: impl FnOnce(&mut ControlPlaneConfig),
    ) -> ControlPlane {
        let listener = TcpListener::bind(addr).await.expect("bind control plane");
        let addr = listener.local_addr().expect("local addr");
        let mut config = ControlPlaneConfig {
            admin_token: Some(Secret::new(ADMIN_TOKEN)),
            node_token: Some(Secret::new(NODE_TOKEN)),
            long_poll_timeout: Duration::from_secs(5),
            ..ControlPlaneConfig::default()
        };
        tune(&mut config);
        let (stop, stop_rx) = watch::channel(false);
        let state = gatehouse_control_plane::state(pool.clone(), config, stop_rx);
        let task = tokio::spawn(gatehouse_control_plane::serve(listener, state));
        ControlPlane {
            addr,
            pool,
            stop,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn admin(&self) -> Admin {
        Admin {
            base: format!("http://{}/api/v1", self.addr),
            http: client(),
        }
    }

    /// Stops serving and closes the listening socket.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The demo upstream on a loopback port.
pub struct Upstream {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, gatehouse::demo::router()).await;
        });
        Upstream { addr, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP client that never goes through a proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Starts a proxy of `control_plane_url` keeping its cache in `data_dir`.
pub async fn start_proxy(control_plane_url: &str, data_dir: &Path) -> RunningProxy {
    start_proxy_with(control_plane_url, data_dir, None).await
}

/// The Redis URL the tests share, from `REDIS_URL` (`just test` starts one).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .expect("REDIS_URL must be set for tests of shared quotas (`just test` sets it)")
}

/// Like [`start_proxy`], counting quotas in Redis when `redis_url` is given.
pub async fn start_proxy_with(
    control_plane_url: &str,
    data_dir: &Path,
    redis_url: Option<String>,
) -> RunningProxy {
    start_proxy_tuned(control_plane_url, data_dir, |config| {
        config.redis_url = redis_url;
    })
    .await
}

/// Like [`start_proxy`], with `tune` applied to the configuration last. Metrics are
/// reported every second.
pub async fn start_proxy_tuned(
    control_plane_url: &str,
    data_dir: &Path,
    tune: impl FnOnce(&mut ProxyConfig),
) -> RunningProxy {
    let mut config = ProxyConfig::new(control_plane_url, NODE_TOKEN);
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.status_listen = "127.0.0.1:0".parse().expect("addr");
    config.node_id = format!("test-proxy-{}", uuid::Uuid::new_v4());
    config.data_dir = Some(data_dir.to_path_buf());
    config.poll_wait = Duration::from_secs(5);
    config.shutdown_grace = Duration::from_secs(2);
    config.metrics_report_interval = Duration::from_secs(1);
    tune(&mut config);
    gatehouse_proxy::start(config).await.expect("proxy starts")
}

/// The fields named by an error answer's `errors`, in order.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|x| x["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// How many rows `table` holds.
pub async fn row_count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("count")
}

/// The value of the unlabelled sample `name` in the Prometheus text of
/// `http://<status>/metrics` (a proxy's status port); `None` when absent or unreachable.
/// The sum of every labelled series of `name` on the proxy's status port (0 when none).
pub async fn proxy_metric_total(status: SocketAddr, name: &str) -> f64 {
    let text = client()
        .get(format!("http://{status}/metrics"))
        .send()
        .await
        .expect("status port answers")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

pub async fn proxy_metric(status: SocketAddr, name: &str) -> Option<f64> {
    let text = client()
        .get(format!("http://{status}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Calls `check` until it returns `Some`, for at most `limit`. Returns the value and the
/// time it took.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(value) = check().await {
            return Some((value, start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Waits until `proxy` serves config `version` or newer.
pub async fn wait_for_version(proxy: &RunningProxy, version: i64, limit: Duration) -> Duration {
    eventually(limit, || async {
        proxy.config_version().filter(|v| *v >= version)
    })
    .await
    .map(|(_, took)| took)
    .unwrap_or_else(|| {
        panic!(
            "proxy did not reach config version {version} within {limit:?} (has {:?})",
            proxy.config_version()
        )
    })
}

/// The current deployed-config version.
pub async fn config_version(pool: &PgPool) -> i64 {
    gatehouse_control_plane::repo::config_state::current_version(pool)
        .await
        .expect("version")
}

/// A migrated database of its own on the server `server` connects to, for a test or a
/// benchmark that needs a second database or one outside `#[sqlx::test]`.
pub struct ScratchDatabase {
    name: String,
    server: PgPool,
    pub pool: PgPool,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<random>` and applies the migrations.
    pub async fn create(server: &PgPool, prefix: &str) -> anyhow::Result<ScratchDatabase> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(server)
            .await?;
        let options = (*server.connect_options()).clone().database(&name);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(10)
            .connect_with(options)
            .await?;
        gatehouse_control_plane::MIGRATOR.run(&pool).await?;
        Ok(ScratchDatabase {
            name,
            server: server.clone(),
            pool,
        })
    }

    /// A URL of this database: `DATABASE_URL` with the database name replaced.
    pub fn url(&self) -> String {
        let server = std::env::var("DATABASE_URL").unwrap_or_default();
        let (base, query) = match server.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (server.as_str(), String::new()),
        };
        let authority_end = base
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| base[start..].find('/').map(|j| start + j))
            .unwrap_or(base.len());
        format!("{}/{}{query}", &base[..authority_end], self.name)
    }

    /// Closes its connections and drops it.
    pub async fn drop_now(self) -> anyhow::Result<()> {
        self.pool.close().await;
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.server)
            .await?;
        Ok(())
    }
}

/// A scratch database on the server of `DATABASE_URL`, for the benchmarks.
pub async fn bench_database(prefix: &str) -> anyhow::Result<ScratchDatabase> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("set DATABASE_URL (or run `just bench`)"))?;
    let server = PgPool::connect(&url).await?;
    ScratchDatabase::create(&server, prefix).await
}

/// A client of the admin API with the test admin token.
#[derive(Clone)]
pub struct Admin {
    pub base: String,
    pub http: reqwest::Client,
}

impl Admin {
    /// Sends `method path` with an optional JSON body; returns status and JSON (or Null).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin API reachable");
        let status = response.status();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Posts and insists on 201; returns the created resource.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.post(path, body).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path}: {value}");
        value
    }

    pub async fn create_api(&self, slug: &str) -> String {
        let api = self
            .create(
                "/apis",
                json!({"name": slug, "slug": slug, "protocol": "HTTP"}),
            )
            .await;
        id_of(&api)
    }

    pub async fn add_route(&self, api: &str, route_key: &str, integration: Value) -> String {
        let route = self
            .create(
                &format!("/apis/{api}/routes"),
                json!({"route_key": route_key, "integration": integration}),
            )
            .await;
        id_of(&route)
    }

    pub async fn deploy(&self, api: &str, description: &str) -> String {
        let deployment = self
            .create(
                &format!("/apis/{api}/deployments"),
                json!({"description": description}),
            )
            .await;
        id_of(&deployment)
    }

    /// Deploys the API's routes and creates `stage` on that deployment, with `settings`
    /// (say `{"access_log": true}`) added to the stage. Returns the deployment's id.
    pub async fn deploy_stage(&self, api: &str, stage: &str, settings: Value) -> String {
        let deployment = self.deploy(api, stage).await;
        let mut body = json!({"name": stage, "deployment_id": deployment});
        if let (Some(body), Value::Object(settings)) = (body.as_object_mut(), settings) {
            body.extend(settings);
        }
        self.create(&format!("/apis/{api}/stages"), body).await;
        deployment
    }

    pub async fn point_stage(&self, api: &str, stage: &str, deployment: &str) {
        let (status, body) = self
            .patch(
                &format!("/apis/{api}/stages/{stage}"),
                json!({"deployment_id": deployment}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

pub fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

/// An HTTP_PROXY integration to `uri`.
pub fn http_proxy(uri: &str) -> Value {
    json!({"type": "HTTP_PROXY", "uri": uri})
}

/// A MOCK integration answering `body` with 200.
pub fn mock(body: &str) -> Value {
    json!({"type": "MOCK", "status": 200, "headers": {"content-type": "text/plain"}, "body": body})
}
