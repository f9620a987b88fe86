//! Access logs: one JSON line per request of the stages that ask for it, with AWS-like
//! field names (`requestId`, `ip`, `requestTime`, `routeKey`, `responseLatency`, ...).
//!
//! Requests hand their line to a bounded queue and move on; a writer thread takes the
//! queued lines every 50 ms, formats and writes them, and flushes. When the writer falls behind
//! and the queue is full, lines are dropped and counted rather than slowing requests.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::meters::Outcome;
use crate::recording::LogDraft;

/// Lines waiting for the writer at most.
const QUEUE_LINES: usize = 65_536;
/// How often the writer takes the queued lines.
const DRAIN_EVERY: Duration = Duration::from_millis(50);

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    /// Appended to this file.
    File(PathBuf),
}

/// A finished request, as the writer receives it.
pub struct AccessLogLine {
    pub draft: LogDraft,
    pub api_id: Uuid,
    pub stage: Arc<str>,
    pub key_id: Option<Uuid>,
    pub error: Option<&'static str>,
    pub outcome: Outcome,
}

/// The sending side, shared by every request.
#[derive(Default)]
pub struct AccessLog {
    /// Set once started.
    sender: OnceLock<SyncSender<AccessLogLine>>,
    /// Tells the writer to write what is queued and stop.
    closed: Arc<AtomicBool>,
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
        if self.sender.set(sender).is_err() {
            return Err(std::io::Error::other("the access log is already started"));
        }
        let (written, closed) = (self.written.clone(), self.closed.clone());
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(receiver, out, &written, &closed))?;
        Ok(())
    }

    /// Queues a line; never waits.
    pub fn send(&self, line: AccessLogLine) {
        let sent = match self.sender.get() {
            Some(sender) => !self.closed.load(Relaxed) && sender.try_send(line).is_ok(),
            None => false,
        };
        if !sent {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Stops taking lines; the writer writes what is queued, flushes and exits.
    pub fn close(&self) {
        self.closed.store(true, Relaxed);
    }
}

/// Drains the queue every [`DRAIN_EVERY`], writing and flushing what it holds. The writer
/// polls rather than waits on the queue, so no request ever pays for waking it.
fn write_lines(
    receiver: Receiver<AccessLogLine>,
    out: Box<dyn Write + Send>,
    written: &AtomicU64,
    closed: &AtomicBool,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut failing = false;
    let mut clock = Clock::default();
    loop {
        std::thread::sleep(DRAIN_EVERY);
        // Read before draining: a line queued before the close is still written.
        let mut closed = closed.load(Relaxed);
        loop {
            let line = match receiver.try_recv() {
                Ok(line) => line,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            };
            let result = write_line(&mut out, &line, &mut clock);
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
        let _ = out.flush();
        if closed {
            return;
        }
    }
}

/// One line's JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    request_id: &'a str,
    ip: &'a str,
    request_time: &'a str,
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

/// Formats request times, re-rendering the date and time only when the second changes.
#[derive(Default)]
struct Clock {
    second: i64,
    /// `2026-11-24T16:00:00.000Z`; the milliseconds are rewritten for each line.
    text: String,
}

impl Clock {
    fn format(&mut self, time: std::time::SystemTime) -> &str {
        let time = DateTime::<Utc>::from(time);
        let second = time.timestamp();
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = time.to_rfc3339_opts(SecondsFormat::Millis, true);
        } else {
            let millis = time.timestamp_subsec_millis().min(999);
            let start = self.text.len() - 4;
            let digits = [millis / 100, millis / 10 % 10, millis % 10];
            self.text.truncate(start);
            self.text
                .extend(digits.iter().filter_map(|d| char::from_digit(*d, 10)));
            self.text.push('Z');
        }
        &self.text
    }
}

fn write_line(
    out: &mut impl Write,
    line: &AccessLogLine,
    clock: &mut Clock,
) -> std::io::Result<()> {
    let d = &line.draft;
    let json = Line {
        request_id: text(&d.request_id),
        ip: text(&d.ip),
        request_time: clock.format(d.time),
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
        user_agent: d.user_agent.as_deref(),
        error_message: line.error,
    };
    serde_json::to_writer(&mut *out, &json)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_are_rendered_to_the_millisecond_as_the_second_turns() {
        let mut clock = Clock::default();
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(
            clock.format(at(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            clock.format(at(1_700_000_000_007)),
            "2023-11-14T22:13:20.007Z"
        );
        assert_eq!(
            clock.format(at(1_700_000_000_950)),
            "2023-11-14T22:13:20.950Z"
        );
        assert_eq!(
            clock.format(at(1_700_000_001_000)),
            "2023-11-14T22:13:21.000Z"
        );
    }
}
