//! Securing APIs end to end: JWT authorizers against a real issuer (tokens from two JWT
//! libraries, keys that rotate), REQUEST authorizers that allow, deny, hang and crash,
//! parameter mapping seen by a real upstream, and CORS in a real browser.

mod cors;
mod jwt;
mod mapping;
mod request;

use std::time::Duration;

use gatehouse_proxy::RunningProxy;
use gatehouse_tests::{
    config_version, start_proxy, wait_for_version, Admin, ControlPlane, Upstream,
};
use serde_json::{json, Value};
use sqlx::PgPool;

/// A control plane, a proxy and the demo upstream; the API `shop` is created empty.
pub struct Gateway {
    pub upstream: Upstream,
    pub cp: ControlPlane,
    pub proxy: RunningProxy,
    pub api: String,
    _data: tempfile::TempDir,
}

impl Gateway {
    pub async fn start(pool: &PgPool) -> Gateway {
        let upstream = Upstream::start().await;
        let cp = ControlPlane::start(pool.clone()).await;
        let data = tempfile::tempdir().expect("tempdir");
        let proxy = start_proxy(&cp.url(), data.path()).await;
        let api = cp.admin().create_api("shop").await;
        Gateway {
            upstream,
            cp,
            proxy,
            api,
            _data: data,
        }
    }

    pub fn admin(&self) -> Admin {
        self.cp.admin()
    }

    /// Adds an authorizer to the API; returns its id.
    pub async fn authorizer(&self, body: Value) -> String {
        let created = self
            .admin()
            .create(&format!("/apis/{}/authorizers", self.api), body)
            .await;
        gatehouse_tests::id_of(&created)
    }

    /// Adds a route with `fields` (route_key, integration, authorization...).
    pub async fn route(&self, fields: Value) -> String {
        let created = self
            .admin()
            .create(&format!("/apis/{}/routes", self.api), fields)
            .await;
        gatehouse_tests::id_of(&created)
    }

    /// An integration to the demo upstream's echo, under `path`.
    pub fn echo(&self, path: &str) -> Value {
        json!({"type": "HTTP_PROXY", "uri": format!("http://{}/echo{path}", self.upstream.addr)})
    }

    /// Deploys to `prod` (creating it the first time) and waits for the proxy to serve it.
    pub async fn deploy(&self) {
        let admin = self.admin();
        let deployment = admin.deploy(&self.api, "test").await;
        let (status, _) = admin.get(&format!("/apis/{}/stages/prod", self.api)).await;
        if status == reqwest::StatusCode::NOT_FOUND {
            admin
                .create(
                    &format!("/apis/{}/stages", self.api),
                    json!({"name": "prod", "deployment_id": deployment}),
                )
                .await;
        } else {
            admin.point_stage(&self.api, "prod", &deployment).await;
        }
        wait_for_version(
            &self.proxy,
            config_version(&self.cp.pool).await,
            Duration::from_secs(5),
        )
        .await;
    }

    /// The invoke URL of `path` on `prod`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/shop/prod{path}", self.proxy.addr)
    }
}
