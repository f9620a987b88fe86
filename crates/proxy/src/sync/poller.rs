//! Keeps the proxy's snapshot current: long-polls the control plane, compiles what it
//! receives off the request path, publishes it with one atomic store and writes it to the
//! disk cache. A snapshot that fails to decode or compile is refused and reported on the
//! next poll; the old one keeps serving. Errors back off exponentially, with jitter.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_model::ConfigSnapshot;
use http::{HeaderValue, Method, StatusCode};
use tokio::sync::watch;

use crate::server::stopped;
use crate::snapshot::CompiledConfig;
use crate::state::Shared;
use crate::sync::cache;
use crate::sync::control_plane::ControlPlaneClient;

/// Largest snapshot accepted from the control plane.
const MAX_SNAPSHOT_BYTES: usize = 512 * 1024 * 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct Poller {
    shared: Arc<Shared>,
    control_plane: Arc<ControlPlaneClient>,
    node_address: HeaderValue,
    wait: Duration,
    data_dir: Option<PathBuf>,
    /// Last version received, served or refused: the control plane holds the poll while
    /// nothing newer exists.
    received: Option<i64>,
    /// Version being served.
    active: Option<i64>,
    /// Hash of the snapshot being served.
    active_hash: Option<String>,
    /// Why the last received snapshot was refused.
    refusal: Option<String>,
}

impl Poller {
    pub fn new(
        shared: Arc<Shared>,
        control_plane: Arc<ControlPlaneClient>,
        config: &crate::ProxyConfig,
        node_address: &str,
        serving: Option<(i64, String)>,
    ) -> anyhow::Result<Poller> {
        let (active, active_hash) = serving.map_or((None, None), |(v, h)| (Some(v), Some(h)));
        Ok(Poller {
            shared,
            control_plane,
            node_address: HeaderValue::try_from(node_address)?,
            wait: config.poll_wait,
            data_dir: config.data_dir.clone(),
            received: active,
            active,
            active_hash,
            refusal: None,
        })
    }

    /// Polls until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = MIN_BACKOFF;
        let mut failures = 0u32;
        loop {
            let outcome = tokio::select! {
                outcome = self.poll_once() => outcome,
                () = stopped(&mut shutdown) => return,
            };
            match outcome {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(failures, "control plane reachable again");
                    }
                    failures = 0;
                    backoff = MIN_BACKOFF;
                }
                Err(e) => {
                    failures += 1;
                    self.shared.telemetry.sync_errors.inc();
                    if failures == 1 || failures.is_power_of_two() {
                        if self.shared.config.load().is_some() {
                            tracing::warn!(error = %e, failures, "config poll failed; serving the last good snapshot");
                        } else {
                            tracing::warn!(error = %e, failures, "config poll failed; no snapshot yet, so API traffic gets 503 until one arrives");
                        }
                    }
                    let jitter = Duration::from_millis(rand::random::<u64>() % 100);
                    tokio::select! {
                        () = tokio::time::sleep(backoff + jitter) => {}
                        () = stopped(&mut shutdown) => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn poll_url(&self) -> String {
        let mut url = format!("/dp/v1/config?wait_ms={}", self.wait.as_millis());
        if let Some(v) = self.received {
            let _ = write!(url, "&version={v}");
        }
        if let Some(v) = self.active {
            let _ = write!(url, "&active={v}");
        }
        if let (Some(hash), true) = (&self.active_hash, self.received == self.active) {
            let _ = write!(url, "&hash={hash}");
        }
        if let Some(reason) = &self.refusal {
            url.push_str("&error=");
            percent_encode_into(reason, &mut url);
        }
        url
    }

    async fn poll_once(&mut self) -> anyhow::Result<()> {
        let headers = [
            (
                "x-gatehouse-node-version",
                HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
            ),
            ("x-gatehouse-node-address", self.node_address.clone()),
        ];
        let deadline = self.wait + Duration::from_secs(10);
        let answer = self
            .control_plane
            .call(
                Method::GET,
                &self.poll_url(),
                Bytes::new(),
                &headers,
                MAX_SNAPSHOT_BYTES,
                deadline,
            )
            .await?;
        let version_header = answer
            .headers
            .get("x-gatehouse-config-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        let (status, body) = (answer.status, answer.body);
        match status {
            StatusCode::NOT_MODIFIED => Ok(()),
            StatusCode::OK => {
                self.apply(body, version_header).await;
                Ok(())
            }
            StatusCode::UNAUTHORIZED => {
                Err(anyhow::anyhow!("control plane refused this node's token"))
            }
            other => Err(anyhow::anyhow!("control plane answered {other}")),
        }
    }

    async fn apply(&mut self, body: Bytes, version_header: Option<i64>) {
        let previous = self.shared.config.load_full();
        let shared = self.shared.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let snapshot = ConfigSnapshot::decode(&body).map_err(|e| (None, e.to_string()))?;
            let version = snapshot.version;
            let compiled = CompiledConfig::compile(
                &snapshot,
                previous.as_deref(),
                &shared.quotas,
                shared.meter_registry(),
                &shared.authorizers,
            )
            .map_err(|e| (Some(version), e.to_string()))?;
            Ok::<_, (Option<i64>, String)>((compiled, body))
        })
        .await;
        match decoded {
            Ok(Ok((compiled, body))) => {
                let version = compiled.version;
                let hash = compiled.hash.clone();
                let stages = compiled.stage_count();
                self.shared.config.store(Some(Arc::new(compiled)));
                self.shared.authorizers.retain_used();
                self.shared.telemetry.applied(version);
                self.received = Some(version);
                self.active = Some(version);
                self.active_hash = Some(hash);
                self.refusal = None;
                tracing::info!(version, stages, "serving new configuration");
                if let Some(dir) = &self.data_dir {
                    if let Err(e) = cache::store(dir, &body).await {
                        tracing::warn!(error = %e, dir = %dir.display(), "could not write the snapshot cache");
                    }
                }
            }
            Ok(Err((version, reason))) => {
                self.shared.telemetry.snapshots_refused.inc();
                tracing::error!(version = ?version.or(version_header), %reason, "refused a snapshot; still serving the previous one");
                self.received = version.or(version_header).or(self.received);
                self.refusal = Some(reason);
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot compilation crashed; still serving the previous one");
                self.received = version_header.or(self.received);
                self.refusal = Some("snapshot compilation crashed".to_owned());
            }
        }
    }
}

/// Encodes `text` for a query string: unreserved characters stay, the rest become `%XX`.
fn percent_encode_into(text: &str, out: &mut String) {
    for byte in text.bytes().take(1024) {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encodes_everything_but_unreserved_characters() {
        let mut out = String::new();
        percent_encode_into("stage a/b: `x`", &mut out);
        assert_eq!(out, "stage%20a%2Fb%3A%20%60x%60");
    }
}
