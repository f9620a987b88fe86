//! Access logs: one JSON line per request of the stages that ask for it, with AWS-like
//! field names (`requestId`, `ip`, `requestTime`, `routeKey`, `responseLatency`, ...).
//!
//! Requests hand their line to a bounded queue and move on; a writer thread formats and
//! writes the lines, flushing whenever the queue runs dry. When the writer falls behind
//! and the queue is full, lines are dropped and counted rather than slowing requests.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::meters::Outcome;
use crate::recording::LogDraft;

/// Lines waiting for the writer at most.
const QUEUE_LINES: usize = 16_384;
/// Longest wait for a line before looking again.
const FLUSH_AFTER: Duration = Duration::from_millis(500);

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    /// Appended to this file.
    File(PathBuf),
}

/// A finished request, as the writer receives it.
pub struct AccessLogLine {
    pub draft: Box<LogDraft>,
    pub api_id: Uuid,
    pub stage: Arc<str>,
    pub key_id: Option<Uuid>,
    pub error: Option<&'static str>,
    pub outcome: Outcome,
}

/// The sending side, shared by every request.
#[derive(Default)]
pub struct AccessLog {
    /// Empty until started, and again once closed.
    sender: ArcSwapOption<SyncSender<AccessLogLine>>,
    /// Lines dropped because the writer was behind or not running.
    pub dropped: AtomicU64,
    pub written: Arc<AtomicU64>,
}

impl AccessLog {
    /// Opens the target and starts the writer thread.
    pub fn start(&self, target: &AccessLogTarget) -> std::io::Result<()> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_LINES);
        let written = self.written.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(receiver, out, &written))?;
        self.sender.store(Some(Arc::new(sender)));
        Ok(())
    }

    /// Queues a line; never waits.
    pub fn send(&self, line: AccessLogLine) {
        let sent = match self.sender.load().as_deref() {
            Some(sender) => sender.try_send(line).is_ok(),
            None => false,
        };
        if !sent {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Stops taking lines; the writer writes what is queued, flushes and exits.
    pub fn close(&self) {
        self.sender.store(None);
    }
}

fn write_lines(receiver: Receiver<AccessLogLine>, out: Box<dyn Write + Send>, written: &AtomicU64) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut failing = false;
    let mut next = receiver.recv_timeout(FLUSH_AFTER);
    loop {
        match next {
            Ok(line) => {
                let result = write_line(&mut out, &line);
                if result.is_ok() {
                    written.fetch_add(1, Relaxed);
                }
                match (result, failing) {
                    (Ok(()), _) => failing = false,
                    (Err(e), false) => {
                        failing = true;
                        tracing::error!(error = %e, "cannot write the access log");
                    }
                    (Err(_), true) => {}
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Flush when the queue runs dry, then wait for the next line.
        next = match receiver.try_recv() {
            Ok(line) => Ok(line),
            Err(TryRecvError::Empty) => {
                let _ = out.flush();
                receiver.recv_timeout(FLUSH_AFTER)
            }
            Err(TryRecvError::Disconnected) => break,
        };
    }
    let _ = out.flush();
}

/// One line's JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    request_id: &'a str,
    ip: &'a str,
    request_time: String,
    http_method: &'a str,
    path: &'a str,
    route_key: &'a str,
    status: u16,
    protocol: &'a str,
    response_length: u64,
    request_length: u64,
    /// Milliseconds, to the microsecond.
    response_latency: f64,
    integration_latency: Option<f64>,
    api_id: Uuid,
    stage: &'a str,
    api_key_id: Option<Uuid>,
    user_agent: Option<&'a str>,
    error_message: Option<&'a str>,
}

fn milliseconds(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn text(value: &http::HeaderValue) -> &str {
    std::str::from_utf8(value.as_bytes()).unwrap_or("")
}

fn write_line(out: &mut impl Write, line: &AccessLogLine) -> std::io::Result<()> {
    let d = &line.draft;
    let json = Line {
        request_id: text(&d.request_id),
        ip: text(&d.ip),
        request_time: DateTime::<Utc>::from(d.time).to_rfc3339_opts(SecondsFormat::Millis, true),
        http_method: d.method.as_str(),
        path: &d.path,
        route_key: &d.route_key,
        status: line.outcome.status,
        protocol: protocol(d.protocol),
        response_length: line.outcome.bytes_out,
        request_length: line.outcome.bytes_in,
        response_latency: milliseconds(line.outcome.latency_us),
        integration_latency: line.outcome.integration_us.map(milliseconds),
        api_id: line.api_id,
        stage: &line.stage,
        api_key_id: line.key_id,
        user_agent: d.user_agent.as_ref().map(text),
        error_message: line.error,
    };
    serde_json::to_writer(&mut *out, &json)?;
    out.write_all(b"\n")
}
