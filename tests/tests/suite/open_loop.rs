//! The benchmarks' open-loop generator against a real server: it sends what its schedule
//! says, reads whole responses over keep-alive, and counts what failed.

use std::path::Path;

use gatehouse_tests::bench::{open_loop, OpenLoop};
use gatehouse_tests::Upstream;

fn run(url: String, headers: Vec<String>) -> OpenLoop {
    let generator = Path::new(env!("CARGO_BIN_EXE_open_loop"));
    open_loop(generator, &url, &headers, 200.0, 1, 4, None).expect("open_loop runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_the_scheduled_requests_and_counts_failures() {
    let upstream = Upstream::start().await;
    let ok = format!("http://{}/pets/1", upstream.addr);
    let report = tokio::task::spawn_blocking(move || run(ok, vec!["x-test: 1".into()]))
        .await
        .expect("join");
    // 200 a second for one second: 200 requests, whatever the server's speed.
    assert_eq!(report.requests, 200, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(
        report.p50_us > 0.0 && report.p50_us <= report.p99_us && report.p99_us <= report.p999_us,
        "{report:?}"
    );

    let missing = format!("http://{}/pets/999999", upstream.addr);
    let report = tokio::task::spawn_blocking(move || run(missing, Vec::new()))
        .await
        .expect("join");
    assert_eq!(report.requests, 200, "{report:?}");
    assert_eq!(report.failed, 200, "a 404 is a failure: {report:?}");

    let nobody = format!("http://{}/", gatehouse_tests::bench::free_port());
    let report = tokio::task::spawn_blocking(move || run(nobody, Vec::new()))
        .await
        .expect("join");
    assert_eq!(report.failed, report.requests, "{report:?}");
    assert_eq!(report.requests, 200, "{report:?}");
}
