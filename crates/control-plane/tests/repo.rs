//! Repository tests: each runs against a fresh PostgreSQL database with the real schema.

use gatehouse_control_plane::error::ApiError;
use gatehouse_control_plane::repo::apis::{self, NewApi};
use gatehouse_control_plane::repo::routes::{self, RouteSpec};
use gatehouse_control_plane::repo::stages::{self, NewStage};
use gatehouse_control_plane::repo::{config_state, deployments, nodes, tokens};
use gatehouse_model::{
    ApiSlug, DeployedRoute, Integration, Protocol, RouteKey, StageName, StageVariables,
};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

async fn new_api(pool: &PgPool, slug: &str) -> apis::Api {
    let new = NewApi {
        name: slug.to_owned(),
        slug: ApiSlug::parse(slug).expect("slug"),
        protocol: Protocol::Http,
        route_selection: None,
        description: String::new(),
        cors: None,
    };
    apis::insert(pool, &new).await.expect("insert api")
}

fn spec(key: &str) -> RouteSpec {
    let integration: Integration =
        serde_json::from_str(r#"{"type":"MOCK","body":"hi"}"#).expect("integration");
    RouteSpec {
        route_key: RouteKey::parse(key).expect("key"),
        api_key_required: false,
        authorization: Default::default(),
        integration,
    }
}

fn frozen(route: &routes::Route) -> DeployedRoute {
    DeployedRoute {
        id: route.id,
        route_key: RouteKey::try_from(route.route_key.clone()).expect("key"),
        api_key_required: route.api_key_required,
        authorization: route.authorization(),
        integration: route.integration.0.clone(),
    }
}

fn frozen_set(routes: &[DeployedRoute]) -> deployments::Frozen<'_> {
    deployments::Frozen {
        routes,
        route_selection_expression: None,
        authorizers: &[],
        cors: None,
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_taken_slug_is_a_conflict_on_the_slug_field(pool: PgPool) {
    new_api(&pool, "pets").await;
    let again = NewApi {
        name: "x".into(),
        slug: ApiSlug::parse("pets").expect("slug"),
        protocol: Protocol::Http,
        route_selection: None,
        description: String::new(),
        cors: None,
    };
    let error = ApiError::from(apis::insert(&pool, &again).await.expect_err("duplicate"));
    match error {
        ApiError::Conflict(field) => assert_eq!(field.field, "slug"),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn routes_round_trip_with_their_integration(pool: PgPool) {
    let api = new_api(&pool, "pets").await;
    let created = routes::insert(&pool, api.id, &spec("GET /pets/{id}"))
        .await
        .expect("insert");
    let listed = routes::list(&pool, api.id).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].route_key, "GET /pets/{id}");
    assert_eq!(listed[0].integration.0, created.integration.0);
    let changed = routes::update(&pool, api.id, created.id, &spec("POST /pets"))
        .await
        .expect("update")
        .expect("found");
    assert_eq!(changed.route_key, "POST /pets");
    assert!(routes::delete(&pool, api.id, created.id)
        .await
        .expect("delete"));
    assert!(!routes::delete(&pool, api.id, created.id)
        .await
        .expect("delete again"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_deployment_keeps_the_routes_as_they_were(pool: PgPool) {
    let api = new_api(&pool, "pets").await;
    let route = routes::insert(&pool, api.id, &spec("GET /a"))
        .await
        .expect("insert");
    let deployment = deployments::insert(
        &pool,
        api.id,
        "v1",
        "tester",
        &frozen_set(&[frozen(&route)]),
    )
    .await
    .expect("deploy");
    routes::update(&pool, api.id, route.id, &spec("GET /b"))
        .await
        .expect("update");
    let read = deployments::get(&pool, api.id, deployment.deployment.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read.routes.0[0].route_key.to_string(), "GET /a");
    assert_eq!(read.deployment.route_count, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_schema_refuses_a_stage_on_another_apis_deployment(pool: PgPool) {
    let pets = new_api(&pool, "pets").await;
    let cats = new_api(&pool, "cats").await;
    let cats_deployment = deployments::insert(&pool, cats.id, "", "tester", &frozen_set(&[]))
        .await
        .expect("deploy");
    let stage = NewStage {
        name: StageName::parse("prod").expect("name"),
        deployment_id: cats_deployment.deployment.id,
        variables: StageVariables::default(),
        description: String::new(),
        throttle: gatehouse_model::DEFAULT_STAGE_THROTTLE,
        access_log: false,
        websocket: Default::default(),
    };
    let error = stages::insert(&pool, pets.id, &stage)
        .await
        .expect_err("foreign deployment");
    assert!(matches!(ApiError::from(error), ApiError::Conflict(f) if f.field == "deployment_id"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_snapshot_holds_every_deployed_stage_at_the_current_version(pool: PgPool) {
    let empty = config_state::load_snapshot(&pool).await.expect("snapshot");
    assert!(empty.stages.is_empty());
    let api = new_api(&pool, "pets").await;
    let route = routes::insert(&pool, api.id, &spec("GET /a"))
        .await
        .expect("insert");
    let deployment =
        deployments::insert(&pool, api.id, "", "tester", &frozen_set(&[frozen(&route)]))
            .await
            .expect("deploy");
    let mut tx = pool.begin().await.expect("tx");
    let stage = NewStage {
        name: StageName::parse("prod").expect("name"),
        deployment_id: deployment.deployment.id,
        variables: StageVariables::default(),
        description: String::new(),
        throttle: gatehouse_model::DEFAULT_STAGE_THROTTLE,
        access_log: false,
        websocket: Default::default(),
    };
    stages::insert(&mut *tx, api.id, &stage)
        .await
        .expect("stage");
    let version = config_state::bump(&mut tx).await.expect("bump");
    // Not committed yet: others still see the old version and an empty snapshot.
    assert_eq!(
        config_state::current_version(&pool).await.expect("version"),
        empty.version
    );
    tx.commit().await.expect("commit");

    let snapshot = config_state::load_snapshot(&pool).await.expect("snapshot");
    assert_eq!(snapshot.version, version);
    assert_eq!(version, empty.version + 1);
    assert_eq!(snapshot.stages.len(), 1);
    assert_eq!(snapshot.stages[0].api_slug.as_str(), "pets");
    assert_eq!(snapshot.stages[0].routes[0].route_key.to_string(), "GET /a");
    let decoded = gatehouse_model::ConfigSnapshot::decode(&snapshot.encode()).expect("sealed");
    assert_eq!(decoded, snapshot);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_node_is_recorded_once_and_updated_on_each_poll(pool: PgPool) {
    let mut report = nodes::NodeReport {
        id: "edge-1".into(),
        version: "0.1.0".into(),
        address: "10.0.0.1:8000".into(),
        config_version: None,
        config_error: None,
    };
    let bootstrap = [1u8; 32];
    let held = |ok: bool| assert!(ok, "the node's own token was refused");
    held(
        nodes::record(&pool, &report, &bootstrap, Some(&bootstrap))
            .await
            .expect("record"),
    );
    report.config_version = Some(7);
    report.config_error = Some("stage x: broken".into());
    held(
        nodes::record(&pool, &report, &bootstrap, Some(&bootstrap))
            .await
            .expect("record again"),
    );
    let listed = nodes::list(&pool).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].config_version, Some(7));
    assert_eq!(listed[0].config_error.as_deref(), Some("stage x: broken"));
    assert!(listed[0].last_seen >= listed[0].first_seen);
}

/// Issues a node token of digest `[n; 32]`, rotated from `from`.
async fn node_token(pool: &PgPool, n: u8, from: Option<uuid::Uuid>) -> uuid::Uuid {
    let digest = [n; 32];
    let new = tokens::NewToken {
        name: "edge",
        role: tokens::TokenRole::Node,
        digest: &digest,
        prefix: "ght_abcdef",
        created_by: "test",
        expires_in_seconds: None,
        rotated_from: from,
    };
    tokens::insert(pool, &new).await.expect("token").id
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_node_id_belongs_to_the_token_that_registered_it_while_that_token_works(pool: PgPool) {
    let report = nodes::NodeReport {
        id: "edge-1".into(),
        version: "0.1.0".into(),
        address: String::new(),
        config_version: None,
        config_error: None,
    };
    let bootstrap = [9u8; 32];
    let poll = |digest: [u8; 32]| {
        let (pool, report) = (pool.clone(), report.clone());
        async move {
            nodes::record(&pool, &report, &digest, Some(&bootstrap))
                .await
                .expect("record")
        }
    };
    let first = node_token(&pool, 1, None).await;
    node_token(&pool, 2, None).await;
    assert!(poll([1; 32]).await);
    // Another working token, or the bootstrap token, cannot take the id.
    assert!(!poll([2; 32]).await);
    assert!(!poll(bootstrap).await);
    let may = |digest: [u8; 32]| {
        let pool = pool.clone();
        async move {
            nodes::may_act_as(&pool, "edge-1", &digest, Some(&bootstrap))
                .await
                .expect("query")
        }
    };
    assert_eq!(may([1; 32]).await, Some(true));
    assert_eq!(may([2; 32]).await, Some(false));
    assert_eq!(
        nodes::may_act_as(&pool, "nobody", &[1; 32], None)
            .await
            .expect("query"),
        None
    );
    // A rotation's successor (two rotations on) takes it over; then the old token cannot.
    let second = node_token(&pool, 3, Some(first)).await;
    node_token(&pool, 4, Some(second)).await;
    assert!(poll([4; 32]).await);
    assert!(!poll([1; 32]).await);
    // Once its holder is revoked, the id is free.
    sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE digest = $1")
        .bind([4u8; 32].as_slice())
        .execute(&pool)
        .await
        .expect("revoke");
    assert!(poll([2; 32]).await);
    assert!(!poll([1; 32]).await);
}
