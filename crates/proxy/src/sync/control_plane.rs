//! The proxy's one client of the control plane, shared by the config poller and the usage
//! reporter: one connection pool, the node's token and id on every call, a bounded body
//! and a deadline.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::ProxyConfig;

pub const NODE_ID_HEADER: &str = "x-gatehouse-node-id";

/// What the control plane answered.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct ControlPlaneClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base_url: String,
    token: HeaderValue,
    node_id: HeaderValue,
}

impl ControlPlaneClient {
    pub fn new(config: &ProxyConfig) -> anyhow::Result<ControlPlaneClient> {
        Ok(ControlPlaneClient {
            client: Client::builder(TokioExecutor::new()).build(
                crate::upstream::connector_trusting(
                    config.connect_timeout,
                    gatehouse_tls::client_roots(config.control_plane_ca.as_deref())?,
                )?,
            ),
            base_url: crate::config::parse_control_plane_url(&config.control_plane_url)
                .map_err(anyhow::Error::msg)?,
            token: HeaderValue::try_from(format!("Bearer {}", config.node_token))
                .map_err(|_| anyhow::anyhow!("the node token must be printable ASCII"))?,
            node_id: HeaderValue::try_from(config.node_id.as_str())
                .map_err(|_| anyhow::anyhow!("the node id must be printable ASCII"))?,
        })
    }

    /// Calls `method path` (path and query, from `/dp/v1/...`) with a JSON `body` and
    /// `headers`; reads at most `max_body` bytes of the answer, all within `deadline`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        headers: &[(&'static str, HeaderValue)],
        max_body: usize,
        deadline: Duration,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .body(Full::new(body))?;
        let request_headers = request.headers_mut();
        request_headers.insert(header::AUTHORIZATION, self.token.clone());
        request_headers.insert(NODE_ID_HEADER, self.node_id.clone());
        request_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in headers {
            request_headers.insert(*name, value.clone());
        }
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max_body)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading the control plane's answer: {e}"))?
                .to_bytes();
            anyhow::Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("control plane did not answer in time"))?
    }
}
