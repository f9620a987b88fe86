//! An open-loop HTTP/1.1 load generator for the benchmarks: requests leave on a fixed
//! schedule whatever the server does, and each latency counts from when its request was
//! due (no coordinated omission). One thread per keep-alive connection, paced by the
//! kernel's high-resolution sleep: tokio-based generators pace by a 1 ms timer, which
//! adds up to a millisecond to every figure and hides what a proxy adds in microseconds.
//!
//! `open_loop <url> <rate per second> <seconds> <connections> [header: value]...` prints
//! one JSON object: `rate`, `requests`, `failed` (non-2xx, or no answer), `p50_us`,
//! `p99_us`, `p999_us` (0 when no request was answered).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    if let Err(e) = run() {
        eprintln!("open_loop: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() >= 4,
        "usage: open_loop <url> <rate> <seconds> <connections> [header: value]..."
    );
    let url = reqwest::Url::parse(&args[0])?;
    let rate: f64 = args[1].parse()?;
    let seconds: f64 = args[2].parse()?;
    let connections: usize = args[3].parse()?;
    anyhow::ensure!(
        rate > 0.0 && seconds > 0.0 && connections > 0,
        "rate, seconds and connections must be positive"
    );
    let host = url.host_str().unwrap_or("127.0.0.1");
    let addr = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n");
    for header in &args[4..] {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");

    // Connection `c` sends at start + (c + k * connections) / rate, for k = 0, 1, ...
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let (addr, request) = (addr.clone(), request.clone());
            let first = start + Duration::from_secs_f64(c as f64 / rate);
            std::thread::spawn(move || connection(&addr, request.as_bytes(), first, interval, end))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failed = 0u64;
    for worker in workers {
        let (mut l, f) = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a connection thread panicked"))?;
        latencies.append(&mut l);
        failed += f;
    }
    latencies.sort_unstable();
    let at = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).map_or(0.0, |ns| *ns as f64 / 1000.0)
    };
    let report = serde_json::json!({
        "rate": rate,
        "requests": latencies.len() as u64 + failed,
        "failed": failed,
        "p50_us": at(0.5),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
    });
    println!("{report}");
    Ok(())
}

/// Sends on one keep-alive connection from `first`, every `interval`, until `end`; returns
/// the latencies of answered requests in nanoseconds, and how many failed.
fn connection(
    addr: &str,
    request: &[u8],
    first: Instant,
    interval: Duration,
    end: Instant,
) -> (Vec<u64>, u64) {
    let mut latencies = Vec::new();
    let mut failed = 0u64;
    let mut stream: Option<TcpStream> = None;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut due = first;
    while due < end {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let answered = match stream.as_mut() {
            Some(s) => exchange(s, request, &mut buffer),
            None => TcpStream::connect(addr).and_then(|s| {
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                let s = stream.insert(s);
                exchange(s, request, &mut buffer)
            }),
        };
        match answered {
            Ok(Answer { ok, keep_alive }) => {
                if ok {
                    latencies.push(u64::try_from(due.elapsed().as_nanos()).unwrap_or(u64::MAX));
                } else {
                    failed += 1;
                }
                if !keep_alive {
                    stream = None;
                }
            }
            Err(_) => {
                failed += 1;
                stream = None;
            }
        }
        due += interval;
    }
    (latencies, failed)
}

struct Answer {
    ok: bool,
    keep_alive: bool,
}

/// Writes `request` and reads one whole response (`Content-Length` framed).
fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> std::io::Result<Answer> {
    stream.write_all(request)?;
    let mut filled = 0;
    loop {
        if filled == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        let n = stream.read(&mut buffer[filled..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(&buffer[..filled]) {
            Ok(httparse::Status::Complete(head)) => head,
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        };
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let length: usize = header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "no Content-Length")
            })?;
        let keep_alive = !header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        let ok = response.code.is_some_and(|c| (200..300).contains(&c));
        let total = head + length;
        if buffer.len() < total {
            buffer.resize(total, 0);
        }
        while filled < total {
            let n = stream.read(&mut buffer[filled..total])?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            filled += n;
        }
        return Ok(Answer { ok, keep_alive });
    }
}
