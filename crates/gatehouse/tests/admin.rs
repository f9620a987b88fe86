//! `gatehouse admin create-user` and `set-password` as an operator runs them: the real
//! binary against a database of its own; the password from the environment or stdin.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use gatehouse_control_plane::dashboard::passwords;
use sqlx::PgPool;

/// `DATABASE_URL` with the database of `pool` in place of its own.
fn url_of(pool: &PgPool) -> String {
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base.to_owned(), format!("?{query}")),
        None => (server.clone(), String::new()),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    let database = pool
        .connect_options()
        .get_database()
        .unwrap_or("postgres")
        .to_owned();
    format!("{}/{database}{query}", &base[..authority_end])
}

fn gatehouse(pool: &PgPool, args: &[&str], password: Option<&str>, stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", url_of(pool))
        .env_remove("GATEHOUSE_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(password) = password {
        command.env("GATEHOUSE_PASSWORD", password);
    }
    let mut child = command.spawn().expect("gatehouse runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("gatehouse exits")
}

/// Gives every user a live session, as if they had signed in.
async fn sign_in_everyone(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, address, user_agent, expires_at)
         SELECT '\\x01', id, 'c', '127.0.0.1', 'test', now() + interval '1 hour' FROM users",
    )
    .execute(pool)
    .await
    .expect("session");
}

async fn session_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn stored_hash(pool: &PgPool, name: &str) -> Option<(String, String)> {
    sqlx::query_as("SELECT password_hash, role FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .expect("query")
}

#[sqlx::test(migrator = "gatehouse_control_plane::MIGRATOR")]
async fn create_user_stores_an_argon2id_hash_and_the_role(pool: PgPool) {
    let out = gatehouse(
        &pool,
        &["create-user", "--name", "ada", "--role", "viewer"],
        Some("a long enough password"),
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created viewer ada"));
    let (hash, role) = stored_hash(&pool, "ada").await.expect("user stored");
    assert_eq!(role, "viewer");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(
        passwords::verify("a long enough password".to_owned(), Some(hash))
            .await
            .expect("verify")
    );
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE source = 'cli'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(audit, 1);
}

#[sqlx::test(migrator = "gatehouse_control_plane::MIGRATOR")]
async fn the_password_can_come_from_standard_input(pool: PgPool) {
    let out = gatehouse(
        &pool,
        &["create-user", "--name", "grace"],
        None,
        "piped password 123\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (hash, role) = stored_hash(&pool, "grace").await.expect("user stored");
    assert_eq!(role, "admin");
    assert!(
        passwords::verify("piped password 123".to_owned(), Some(hash))
            .await
            .expect("verify")
    );
}

#[sqlx::test(migrator = "gatehouse_control_plane::MIGRATOR")]
async fn bad_names_short_passwords_and_duplicates_are_refused_with_a_reason(pool: PgPool) {
    let bad_name = gatehouse(
        &pool,
        &["create-user", "--name", "a b"],
        Some("long enough pw"),
        "",
    );
    assert!(!bad_name.status.success());
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("name:"));
    let short = gatehouse(&pool, &["create-user", "--name", "ada"], Some("short"), "");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
    assert_eq!(stored_hash(&pool, "ada").await, None);
    let first = gatehouse(
        &pool,
        &["create-user", "--name", "ada"],
        Some("long enough pw"),
        "",
    );
    assert!(first.status.success());
    let again = gatehouse(
        &pool,
        &["create-user", "--name", "ADA"],
        Some("long enough pw"),
        "",
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[sqlx::test(migrator = "gatehouse_control_plane::MIGRATOR")]
async fn set_password_replaces_the_hash_and_ends_sessions(pool: PgPool) {
    let out = gatehouse(
        &pool,
        &["create-user", "--name", "ada"],
        Some("first password"),
        "",
    );
    assert!(out.status.success());
    sign_in_everyone(&pool).await;
    let out = gatehouse(
        &pool,
        &["set-password", "--name", "ada"],
        Some("second password"),
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (hash, _) = stored_hash(&pool, "ada").await.expect("user");
    assert!(passwords::verify("second password".to_owned(), Some(hash))
        .await
        .expect("verify"));
    assert_eq!(session_count(&pool).await, 0);
    let nobody = gatehouse(
        &pool,
        &["set-password", "--name", "nobody"],
        Some("second password"),
        "",
    );
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no user named nobody"));
}

#[sqlx::test(migrator = "gatehouse_control_plane::MIGRATOR")]
async fn delete_user_removes_the_user_and_their_sessions(pool: PgPool) {
    let out = gatehouse(
        &pool,
        &["create-user", "--name", "ada"],
        Some("first password"),
        "",
    );
    assert!(out.status.success());
    sign_in_everyone(&pool).await;
    let out = gatehouse(&pool, &["delete-user", "--name", "ADA"], None, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored_hash(&pool, "ada").await, None);
    assert_eq!(session_count(&pool).await, 0);
    let again = gatehouse(&pool, &["delete-user", "--name", "ada"], None, "");
    assert!(!again.status.success());
}
