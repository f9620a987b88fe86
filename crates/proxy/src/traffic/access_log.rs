//! Access logs: one JSON line per request of the stages that ask for it, with AWS-like
//! field names (`requestId`, `ip`, `requestTime`, `routeKey`, `responseLatency`, ...).
//!
//! Requests hand their line to a bounded queue and move on; a writer thread takes the
//! queued lines every 50 ms, formats and writes them, and flushes. When the writer falls behind
//! and the queue is full, lines are dropped and counted rather than slowing requests.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::traffic::handoff::{Handoff, Reader};
use crate::traffic::meters::Outcome;
use crate::traffic::recording::LogDraft;

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
    /// Time spent fetching keys or asking an authorizer, when the request did.
    pub authorizer_us: Option<u64>,
    /// Why an authorizer refused (`expired`, `bad_signature`, `denied`, ...).
    pub auth_error: Option<&'static str>,
    pub outcome: Outcome,
}

/// The sending side, shared by every request.
pub struct AccessLog {
    lines: Handoff<AccessLogLine>,
    started: AtomicBool,
    /// Tells the writer to write what is queued and stop.
    closed: Arc<AtomicBool>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Lines dropped because the writer was behind or not running.
    pub dropped: AtomicU64,
    pub written: Arc<AtomicU64>,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            lines: Handoff::new(QUEUE_LINES),
            started: AtomicBool::new(false),
            closed: Arc::default(),
            writer: Mutex::new(None),
            dropped: AtomicU64::new(0),
            written: Arc::default(),
        }
    }
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
        let Some(reader) = self.lines.take_reader() else {
            return Err(std::io::Error::other("the access log is already started"));
        };
        let (written, closed) = (self.written.clone(), self.closed.clone());
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(reader, out, &written, &closed))?;
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer);
        self.started.store(true, Relaxed);
        Ok(())
    }

    /// Queues a line; never waits.
    pub fn send(&self, line: AccessLogLine) {
        if self.started.load(Relaxed) && !self.closed.load(Relaxed) {
            self.lines.send(line);
        } else {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Lines dropped: refused while stopped, or beyond what may wait for the writer.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed) + self.lines.dropped.load(Relaxed)
    }

    /// Stops taking lines and waits (blocking) while the writer writes what is queued,
    /// flushes and exits.
    pub fn close(&self) {
        self.closed.store(true, Relaxed);
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

/// Drains the queue every [`DRAIN_EVERY`], writing and flushing what it holds. The writer
/// polls rather than waits on the queue, so no request ever pays for waking it.
fn write_lines(
    reader: Reader<AccessLogLine>,
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
        let closed = closed.load(Relaxed);
        while let Some(line) = reader.try_next() {
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

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
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

/// Writes one line. Fields that come from the client (path, user agent) and route keys
/// are escaped; the rest are ours and JSON-safe by construction (ids, an IP address, a
/// method token, a validated stage name, fixed messages), so they are written as they are.
fn write_line(
    out: &mut impl Write,
    line: &AccessLogLine,
    clock: &mut Clock,
) -> std::io::Result<()> {
    let d = &line.draft;
    let o = &line.outcome;
    let mut ids = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.write_all(b"{\"requestId\":\"")?;
    out.write_all(d.request_id.as_bytes())?;
    out.write_all(b"\",\"ip\":\"")?;
    out.write_all(d.ip.as_bytes())?;
    out.write_all(b"\",\"requestTime\":\"")?;
    out.write_all(clock.format(d.time).as_bytes())?;
    out.write_all(b"\",\"httpMethod\":\"")?;
    out.write_all(d.method.as_str().as_bytes())?;
    out.write_all(b"\",\"path\":")?;
    serde_json::to_writer(&mut *out, &*d.path)?;
    out.write_all(b",\"routeKey\":")?;
    serde_json::to_writer(&mut *out, &*d.route_key)?;
    out.write_all(b",\"status\":")?;
    number(out, u64::from(o.status))?;
    out.write_all(b",\"protocol\":\"")?;
    out.write_all(protocol(d.protocol).as_bytes())?;
    out.write_all(b"\",\"responseLength\":")?;
    number(out, o.bytes_out)?;
    out.write_all(b",\"requestLength\":")?;
    number(out, o.bytes_in)?;
    out.write_all(b",\"responseLatency\":")?;
    milliseconds(out, o.latency_us)?;
    out.write_all(b",\"integrationLatency\":")?;
    match o.integration_us {
        Some(us) => milliseconds(out, us)?,
        None => out.write_all(b"null")?,
    }
    out.write_all(b",\"apiId\":\"")?;
    out.write_all(line.api_id.hyphenated().encode_lower(&mut ids).as_bytes())?;
    out.write_all(b"\",\"stage\":\"")?;
    out.write_all(line.stage.as_bytes())?;
    out.write_all(b"\",\"apiKeyId\":")?;
    match line.key_id {
        Some(key) => {
            out.write_all(b"\"")?;
            out.write_all(key.hyphenated().encode_lower(&mut ids).as_bytes())?;
            out.write_all(b"\"")?;
        }
        None => out.write_all(b"null")?,
    }
    out.write_all(b",\"userAgent\":")?;
    match &d.user_agent {
        Some(agent) => serde_json::to_writer(&mut *out, agent)?,
        None => out.write_all(b"null")?,
    }
    out.write_all(b",\"authorizerLatency\":")?;
    match line.authorizer_us {
        Some(us) => milliseconds(out, us)?,
        None => out.write_all(b"null")?,
    }
    out.write_all(b",\"authorizerError\":")?;
    match line.auth_error {
        Some(reason) => {
            out.write_all(b"\"")?;
            out.write_all(reason.as_bytes())?;
            out.write_all(b"\"")?;
        }
        None => out.write_all(b"null")?,
    }
    out.write_all(b",\"errorMessage\":")?;
    match line.error {
        Some(message) => {
            out.write_all(b"\"")?;
            out.write_all(message.as_bytes())?;
            out.write_all(b"\"")?;
        }
        None => out.write_all(b"null")?,
    }
    out.write_all(b"}\n")
}

fn number(out: &mut impl Write, n: u64) -> std::io::Result<()> {
    out.write_all(itoa::Buffer::new().format(n).as_bytes())
}

/// Microseconds as milliseconds with three decimals, exactly.
fn milliseconds(out: &mut impl Write, us: u64) -> std::io::Result<()> {
    number(out, us / 1000)?;
    let fraction = us % 1000;
    let digit = |d: u64| b'0' + (d % 10) as u8;
    out.write_all(&[
        b'.',
        digit(fraction / 100),
        digit(fraction / 10),
        digit(fraction),
    ])
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

    #[test]
    fn a_line_is_json_whatever_the_client_sent() {
        let path = "/p/prod/a\"b\\c\u{1}d/é";
        let agent = "curl \"quoted\"\n";
        let line = AccessLogLine {
            draft: LogDraft {
                time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                request_id: http::HeaderValue::from_static("abc-1"),
                ip: http::HeaderValue::from_static("127.0.0.1"),
                method: http::Method::POST,
                path: path.to_owned(),
                protocol: http::Version::HTTP_11,
                user_agent: Some(agent.to_owned()),
                route_key: "POST /{proxy+}".into(),
            },
            api_id: Uuid::nil(),
            stage: "prod".into(),
            key_id: Some(Uuid::nil()),
            error: Some("Bad Gateway"),
            authorizer_us: None,
            auth_error: None,
            outcome: Outcome {
                status: 502,
                latency_us: 1_234_567,
                integration_us: Some(5),
                bytes_in: 7,
                bytes_out: 0,
            },
        };
        let mut out = Vec::new();
        write_line(&mut out, &line, &mut Clock::default()).expect("written");
        assert_eq!(out.last(), Some(&b'\n'));
        let json: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(json["path"], path);
        assert_eq!(json["userAgent"], agent);
        assert_eq!(json["responseLatency"], 1234.567);
        assert_eq!(json["integrationLatency"], 0.005);
        assert_eq!(json["status"], 502);
        assert_eq!(json["apiKeyId"], Uuid::nil().to_string());
        assert_eq!(json["requestTime"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["errorMessage"], "Bad Gateway");
        assert_eq!(json["requestLength"], 7);
    }
}
