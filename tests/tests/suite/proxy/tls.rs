//! TLS end to end: a control plane and a proxy serving HTTPS from certificate files
//! signed by a private CA made for the test; the proxy syncing over TLS and verifying the
//! control plane with that CA (and refusing it without); renewed certificates picked up
//! without a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_control_plane::ControlPlaneConfig;
use gatehouse_proxy::config::CertificateFiles;
use gatehouse_tests::{
    config_version, eventually, http_proxy, proxy_metric, start_proxy_tuned, wait_for_version,
    ControlPlane, Upstream, NODE_TOKEN,
};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// A private CA, able to sign certificates for `localhost`.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new() -> Authority {
        let mut params = CertificateParams::new(Vec::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        Authority { cert, key }
    }

    /// Writes a new certificate for `localhost` and its key to `files`; returns its DER.
    fn issue(&self, files: &CertificateFiles) -> CertificateDer<'static> {
        let params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        // The key first: a watcher that sees the new certificate sees its key too.
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        cert.der().clone()
    }

    fn write_ca(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).expect("write CA");
    }
}

fn files(dir: &Path, name: &str) -> CertificateFiles {
    CertificateFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    }
}

/// The control plane of `pool` over TLS on a port of its own, and its stop switch.
async fn control_plane_over_tls(
    pool: PgPool,
    tls: CertificateFiles,
) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = ControlPlaneConfig {
        node_token: Some(gatehouse_control_plane::auth::Secret::new(NODE_TOKEN)),
        long_poll_timeout: Duration::from_secs(5),
        ..ControlPlaneConfig::default()
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let state = gatehouse_control_plane::state(pool, config, stop_rx);
    let serving = gatehouse_control_plane::serve_tls(listener, state, tls).expect("serves TLS");
    tokio::spawn(serving);
    (addr, stop)
}

/// What a TLS client trusting only `ca` makes of `addr`: the server's certificate.
async fn served_certificate(addr: SocketAddr, ca: &Path) -> CertificateDer<'static> {
    let roots = gatehouse_tls::client_roots(Some(ca)).expect("roots");
    let config = gatehouse_tls::client_config(roots).expect("client config");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("handshake");
    tls.get_ref().1.peer_certificates().expect("certificates")[0].clone()
}

/// `GET url` over HTTPS trusting `ca`; the status and body.
async fn https_get(url: &str, ca: &Path) -> (u16, String) {
    let roots = gatehouse_tls::client_roots(Some(ca)).expect("roots");
    let connector =
        gatehouse_proxy::connector_trusting(Duration::from_secs(2), roots).expect("tls");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(connector);
    let response = client
        .get(url.parse().expect("uri"))
        .await
        .expect("answers");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn proxy_and_control_plane_serve_https_verify_each_other_and_reload_certificates(
    pool: PgPool,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Authority::new();
    let ca_file = dir.path().join("ca.pem");
    ca.write_ca(&ca_file);
    let (cp_files, proxy_files) = (files(dir.path(), "cp"), files(dir.path(), "proxy"));
    ca.issue(&cp_files);
    ca.issue(&proxy_files);

    // The admin API on plain HTTP for setting up; the proxies sync over TLS.
    let plain = ControlPlane::start(pool.clone()).await;
    let (tls_addr, stop_tls) = control_plane_over_tls(pool.clone(), cp_files.clone()).await;
    let upstream = Upstream::start().await;
    let admin = plain.admin();
    let api = admin.create_api("secure").await;
    let echo = http_proxy(&format!("http://{}/echo", upstream.addr));
    admin.add_route(&api, "GET /echo", echo).await;
    admin
        .deploy_stage(&api, "prod", serde_json::json!({}))
        .await;

    let cp_url = format!("https://localhost:{}", tls_addr.port());
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy_tuned(&cp_url, data.path(), |config| {
        config.control_plane_ca = Some(ca_file.clone());
        config.tls = Some(proxy_files.clone());
    })
    .await;
    wait_for_version(&proxy, config_version(&pool).await, Duration::from_secs(10)).await;

    let url = format!("https://localhost:{}/secure/prod/echo", proxy.addr.port());
    let (status, body) = https_get(&url, &ca_file).await;
    assert_eq!(status, 200, "{body}");
    let echoed: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(echoed["headers"]["x-forwarded-proto"], "https", "{echoed}");

    // Plain HTTP on the TLS port gets nothing that parses as HTTP.
    let plain_answer = gatehouse_tests::client()
        .get(format!("http://{}/secure/prod/echo", proxy.addr))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain_answer.is_err(), "{plain_answer:?}");

    // Without the CA, a proxy does not trust the control plane and gets no configuration.
    let untrusting_data = tempfile::tempdir().expect("tempdir");
    let untrusting = start_proxy_tuned(&cp_url, untrusting_data.path(), |_| {}).await;
    let refused = eventually(Duration::from_secs(5), || async {
        let errors = proxy_metric(
            untrusting.status_addr,
            "gatehouse_proxy_config_sync_errors_total",
        )
        .await;
        (errors > Some(0.0)).then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "the untrusted control plane was not refused"
    );
    assert_eq!(untrusting.config_version(), None);
    untrusting.stop().await;

    // Renewed certificates are served on new connections without a restart.
    for (addr, files) in [(proxy.addr, &proxy_files), (tls_addr, &cp_files)] {
        let before = served_certificate(addr, &ca_file).await;
        // Modification times can be coarse: make sure the new files differ in time too.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let renewed = ca.issue(files);
        assert_ne!(before, renewed);
        let served = eventually(Duration::from_secs(5), || async {
            (served_certificate(addr, &ca_file).await == renewed).then_some(())
        })
        .await;
        assert!(served.is_some(), "{addr} still serves the old certificate");
    }
    // And the proxy, on its renewed certificate, still syncs and serves.
    let (status, _) = https_get(&url, &ca_file).await;
    assert_eq!(status, 200);
    proxy.stop().await;
    plain.stop().await;
    let _ = stop_tls.send(true);
}
