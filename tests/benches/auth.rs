//! `just bench` (auth): what securing a route costs, side by side in the same run.
//!
//! The contestants, one proxy with one worker pinned to CPU 0 (`--no-metrics`), nginx as a
//! plain reverse proxy for scale, and the same route of one API five ways: `open` (no
//! authorization), `jwt-warm` (a JWT authorizer, one ES256 token, so every request after
//! the first is a cache hit), `custom-warm` (a REQUEST authorizer whose answer is cached),
//! and `jwt-cold-es256` and `jwt-cold-eddsa` (a fresh token on every request, from a pool
//! larger than the proxy's token cache, so each is verified). The issuer, the REQUEST
//! authorizer, the upstream (nginx, 1 KiB) and the load generator share CPU 1.
//!
//! 1. Throughput: `wrk`, closed loop, contestants interleaved; requests per second and
//!    proxy CPU per request, each over `open`'s in the same round. The goal: `jwt-warm`
//!    within 5% of `open`.
//! 2. The uncached cost per key type: a token's whole check (`gatehouse_model::jwt::verify`,
//!    signature and claims) timed in process for RS256, PS256 and ES384 (minted by PyJWT)
//!    and ES256 and EdDSA (minted by the Rust library).
//!
//! Every request must succeed. Prints a table and writes the raw results to
//! `bench/results/auth-<time>.json`. `--quick` runs a short version.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_model::jwt::{verify, Jwks};
use gatehouse_tests::bench::{
    cpu_seconds, median, range, spawn_control_plane, spawn_nginx, spawn_proxy, wait_listening,
    wait_until_ok, wrk_scripted, wrk_with,
};
use gatehouse_tests::identity::{
    python_tokens, Issuer, RequestAuthorizerServer, SigningKey, Verdict,
};
use gatehouse_tests::{bench_database, client, http_proxy, id_of, Admin};
use serde::Serialize;
use serde_json::{json, Value};

const PROXY_CPU: Option<usize> = Some(0);
const OTHERS_CPU: Option<usize> = Some(1);
const CONNECTIONS: u32 = 32;
const AUDIENCE: &str = "bench";
/// Distinct tokens of a cold contestant: more than the proxy keeps (10,000 per authorizer).
const COLD_TOKENS: usize = 40_000;

#[derive(Serialize, Default)]
struct Throughput {
    name: &'static str,
    rps: Vec<f64>,
    cpu_us_per_request: Vec<f64>,
    rps_over_open: Vec<f64>,
    cpu_over_open: Vec<f64>,
}

#[derive(Serialize)]
struct Verify {
    algorithm: String,
    us_per_token: f64,
}

enum Load {
    Header(Vec<String>),
    Script(std::path::PathBuf),
}

struct Contestant {
    name: &'static str,
    url: String,
    load: Load,
    pid: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let database = bench_database("gatehouse_bench_auth").await?;
    let result = run(&database.url(), quick).await;
    database.drop_now().await?;
    result
}

async fn run(database_url: &str, quick: bool) -> anyhow::Result<()> {
    let (rounds, seconds) = if quick { (2, 3) } else { (5, 8) };
    let work = tempfile::tempdir()?;
    let cp = spawn_control_plane(database_url, OTHERS_CPU);
    let cp_url = format!("http://{}", cp.addr);
    wait_until_ok(&format!("{cp_url}/readyz"), Duration::from_secs(30)).await;
    let upstream = spawn_nginx(
        &work.path().join("upstream"),
        OTHERS_CPU,
        None,
        &format!(
            "    location / {{ default_type text/plain; return 200 '{}'; }}",
            "x".repeat(1024)
        ),
    );
    let nginx = spawn_nginx(
        &work.path().join("nginx"),
        PROXY_CPU,
        Some(upstream.addr),
        "    location /nginx/ {\n      proxy_pass http://backend/;\n      proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20     proxy_set_header X-Request-Id $request_id;\n    }",
    );
    for process in [&upstream, &nginx] {
        wait_listening(process.addr, Duration::from_secs(10)).await;
    }

    // The issuer and the REQUEST authorizer run in this process, on CPU 1's side.
    let issuer = Issuer::start().await;
    let es256 = SigningKey::es256("es256");
    let eddsa = SigningKey::eddsa("eddsa");
    let claims = |jti: usize| {
        issuer.claims(
            AUDIENCE,
            json!({"scope": "read", "exp": chrono::Utc::now().timestamp() + 3600, "jti": jti}),
        )
    };
    let (python_keys, python) = python_tokens("py", &claims(0));
    let mut keys = vec![es256.jwk.clone(), eddsa.jwk.clone()];
    keys.extend(python_keys.clone());
    issuer.publish(keys.clone());
    let authorizer = RequestAuthorizerServer::start(Verdict::Allow {
        allowed: "bench-token".to_owned(),
        context: json!({"user": "bench"}),
    })
    .await;

    let admin = Admin {
        base: format!("{cp_url}/api/v1"),
        http: client(),
    };
    let item = format!("http://{}/item", upstream.addr);
    let api = admin.create_api("auth").await;
    let jwt = id_of(&admin.create(&format!("/apis/{api}/authorizers"), json!({"name": "idp",
        "authorizer_type": "JWT", "jwt_configuration": {"issuer": issuer.url, "audience": [AUDIENCE]}})).await);
    let custom = id_of(
        &admin
            .create(
                &format!("/apis/{api}/authorizers"),
                json!({"name": "tokens",
        "authorizer_type": "REQUEST", "identity_source": ["$request.header.x-token"],
        "authorizer_uri": authorizer.url, "authorizer_result_ttl_in_seconds": 3600}),
            )
            .await,
    );
    admin
        .add_route(&api, "GET /open/item", http_proxy(&item))
        .await;
    for (path, authorization) in [
        (
            "/jwt/item",
            json!({"authorization_type": "JWT", "authorizer_id": jwt, "authorization_scopes": ["read"]}),
        ),
        (
            "/custom/item",
            json!({"authorization_type": "CUSTOM", "authorizer_id": custom}),
        ),
    ] {
        let mut route =
            json!({"route_key": format!("GET {path}"), "integration": http_proxy(&item)});
        if let (Some(route), Value::Object(fields)) = (route.as_object_mut(), authorization) {
            route.extend(fields);
        }
        admin.create(&format!("/apis/{api}/routes"), route).await;
    }
    let unlimited = json!({"rate": 1_000_000_000, "burst": 1_000_000_000});
    let deployment = admin.deploy(&api, "bench").await;
    admin
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "prod", "deployment_id": deployment, "throttle": unlimited}),
        )
        .await;
    let proxy = spawn_proxy(
        &cp_url,
        &work.path().join("proxy"),
        PROXY_CPU,
        &["--no-metrics"],
    );
    proxy.wait_ready(Duration::from_secs(30)).await;

    let cold = |name: &str, key: &SigningKey| -> anyhow::Result<std::path::PathBuf> {
        let tokens = work.path().join(format!("{name}.tokens"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tokens)?);
        for i in 0..COLD_TOKENS {
            writeln!(file, "{}", key.sign(&claims(i + 1)))?;
        }
        file.flush()?;
        let script = work.path().join(format!("{name}.lua"));
        std::fs::write(
            &script,
            format!(
                "local tokens = {{}}\n\
             for line in io.lines(\"{}\") do tokens[#tokens + 1] = \"Bearer \" .. line end\n\
             local i = 0\n\
             request = function()\n\
             \x20 i = i % #tokens + 1\n\
             \x20 return wrk.format(\"GET\", nil, {{[\"Authorization\"] = tokens[i]}})\n\
             end\n",
                tokens.display()
            ),
        )?;
        Ok(script)
    };
    let base = format!("http://{}/auth/prod", proxy.addr);
    let warm = es256.sign(&claims(0));
    let contestants = vec![
        Contestant {
            name: "nginx",
            url: format!("http://{}/nginx/item", nginx.addr),
            load: Load::Header(Vec::new()),
            pid: nginx.pid(),
        },
        Contestant {
            name: "open",
            url: format!("{base}/open/item"),
            load: Load::Header(Vec::new()),
            pid: proxy.pid(),
        },
        Contestant {
            name: "jwt-warm",
            url: format!("{base}/jwt/item"),
            load: Load::Header(vec![format!("Authorization: Bearer {warm}")]),
            pid: proxy.pid(),
        },
        Contestant {
            name: "custom-warm",
            url: format!("{base}/custom/item"),
            load: Load::Header(vec!["x-token: bench-token".to_owned()]),
            pid: proxy.pid(),
        },
        Contestant {
            name: "jwt-cold-es256",
            url: format!("{base}/jwt/item"),
            load: Load::Script(cold("es256", &es256)?),
            pid: proxy.pid(),
        },
        Contestant {
            name: "jwt-cold-eddsa",
            url: format!("{base}/jwt/item"),
            load: Load::Script(cold("eddsa", &eddsa)?),
            pid: proxy.pid(),
        },
    ];
    for c in &contestants {
        let response = match &c.load {
            Load::Header(headers) => {
                let mut request = client().get(&c.url);
                for header in headers {
                    let (name, value) = header.split_once(": ").expect("a header");
                    request = request.header(name, value);
                }
                request.send().await?
            }
            Load::Script(_) => {
                client()
                    .get(&c.url)
                    .bearer_auth(es256.sign(&claims(0)))
                    .send()
                    .await?
            }
        };
        anyhow::ensure!(
            response.status().is_success(),
            "{}: {}",
            c.name,
            response.status()
        );
    }

    let mut throughput: Vec<Throughput> = contestants
        .iter()
        .map(|c| Throughput {
            name: c.name,
            ..Throughput::default()
        })
        .collect();
    let mut failed = 0;
    for round in 0..=rounds {
        let seconds = if round == 0 { 1 } else { seconds };
        let mut measured = Vec::with_capacity(contestants.len());
        for c in &contestants {
            let before = cpu_seconds(c.pid);
            let load = match &c.load {
                Load::Header(headers) => {
                    wrk_with(&c.url, headers, CONNECTIONS, seconds, OTHERS_CPU)
                }
                Load::Script(script) => {
                    wrk_scripted(&c.url, script, CONNECTIONS, seconds, OTHERS_CPU)
                }
            };
            let used = cpu_seconds(c.pid) - before;
            anyhow::ensure!(load.requests > 0, "wrk sent nothing to {}", c.url);
            failed += load.errors;
            measured.push((load.per_second, used * 1e6 / load.requests as f64));
        }
        if round == 0 {
            // Warms pools, caches and the issuer's keys up; not counted.
            continue;
        }
        // Each contestant over `open` in the same round.
        let open = measured[1];
        for (t, (rps, cpu_us)) in throughput.iter_mut().zip(measured) {
            t.rps.push(rps);
            t.cpu_us_per_request.push(cpu_us);
            t.rps_over_open.push(rps / open.0);
            t.cpu_over_open.push(cpu_us / open.1);
        }
    }
    anyhow::ensure!(failed == 0, "{failed} requests failed");

    // The uncached check per key type, in process.
    let jwks = Jwks::parse(json!({"keys": keys}).to_string().as_bytes())?;
    let config = gatehouse_model::authorizer::JwtConfiguration {
        issuer: issuer.url.clone(),
        audience: vec![AUDIENCE.to_owned()],
        jwks_uri: None,
    };
    let now = chrono::Utc::now().timestamp();
    let mut tokens: Vec<(String, String)> = python
        .iter()
        .map(|(alg, t)| (alg.clone(), t.clone()))
        .collect();
    tokens.push(("ES256".to_owned(), es256.sign(&claims(0))));
    tokens.push(("EdDSA".to_owned(), eddsa.sign(&claims(0))));
    tokens.sort();
    let mut verifies = Vec::new();
    let iterations = if quick { 200 } else { 2000 };
    for (algorithm, token) in &tokens {
        verify(token, &jwks, &config, now).map_err(|e| anyhow::anyhow!("{algorithm}: {e:?}"))?;
        let mut runs = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            for _ in 0..iterations {
                std::hint::black_box(verify(token, &jwks, &config, now).is_ok());
            }
            runs.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations));
        }
        verifies.push(Verify {
            algorithm: algorithm.clone(),
            us_per_token: median(&runs),
        });
    }

    println!("\nthroughput ({rounds} rounds of {seconds} s, {CONNECTIONS} connections; medians, range in brackets)");
    println!(
        "{:<16} {:>10} {:>12} {:>22} {:>22}",
        "contestant", "req/s", "CPU us/req", "req/s over open", "CPU over open"
    );
    for t in &throughput {
        println!(
            "{:<16} {:>10.0} {:>12.1} {:>22} {:>22}",
            t.name,
            median(&t.rps),
            median(&t.cpu_us_per_request),
            format!(
                "{:.3} {}",
                median(&t.rps_over_open),
                range(&t.rps_over_open, 3)
            ),
            format!(
                "{:.3} {}",
                median(&t.cpu_over_open),
                range(&t.cpu_over_open, 3)
            ),
        );
    }
    let open_cpu = median(&throughput[1].cpu_us_per_request);
    for t in throughput.iter().filter(|t| t.name.starts_with("jwt-cold")) {
        println!(
            "{}: {:.1} us of proxy CPU per request over open",
            t.name,
            median(&t.cpu_us_per_request) - open_cpu
        );
    }
    println!("\na token's whole check, uncached, in process (median of 5 x {iterations})");
    for v in &verifies {
        println!("{:<8} {:>8.1} us", v.algorithm, v.us_per_token);
    }
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    std::fs::create_dir_all(&results)?;
    let suffix = if quick { "-quick" } else { "" };
    let file = results.join(format!(
        "auth-{}{suffix}.json",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::write(
        &file,
        serde_json::to_vec_pretty(&json!({"throughput": throughput, "verify": verifies}))?,
    )?;
    println!("\nraw results: {}", file.display());
    Ok(())
}
