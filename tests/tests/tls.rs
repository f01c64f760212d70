//! TLS to PostgreSQL and RabbitMQ against real TLS-only servers started by the test (see
//! `landfall_tests::tls`): the whole pipeline runs with the server checked (`verify-full`,
//! `amqps` with `cacertfile`) and client certificates given; a wrong CA, a wrong host name and
//! a plaintext attempt each fail with an error that says which check failed and why; no key or
//! password reaches a log.

use std::path::Path;
use std::time::{Duration, Instant};

use landfall_tests::logged::{Logged, spawn_logged};
use landfall_tests::tls::{TestCa, TlsPostgres, TlsRabbit};
use landfall_tests::{Servers, TestEnv, binary_path, data, wait_until};

const DEADLINE: Duration = Duration::from_secs(90);
const PG_PASSWORD: &str = "pgTlsPass-Rw47uYc2";
const SERVICES: &[&str] = &[
    "ingester",
    "stager",
    "transformer",
    "quality-checker",
    "exporter",
];

fn path(path: &Path) -> String {
    path.display().to_string()
}

fn verified_servers(ca: &TestCa, pg: &TlsPostgres, rabbit: &TlsRabbit) -> Servers {
    Servers {
        postgres: format!("postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}", pg.port),
        postgres_params: format!(
            "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            path(&ca.ca),
            path(&ca.client_cert),
            path(&ca.client_key)
        ),
        amqp_url: rabbit.url(
            "127.0.0.1",
            &format!(
                "cacertfile={}&certfile={}&keyfile={}",
                path(&ca.ca),
                path(&ca.client_cert),
                path(&ca.client_key)
            ),
        ),
    }
}

fn assert_absent(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} contains a secret ({}…)",
            &secret[..8]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_over_verified_tls_with_client_certificates() {
    let started = Instant::now();
    let ca = TestCa::create();
    let pg = TlsPostgres::start(&ca);
    let rabbit = TlsRabbit::start(&ca);
    let env = TestEnv::with_servers(verified_servers(&ca, &pg, &rabbit)).await;
    let vars = env.vars();
    let logs = ca.dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();

    let running: Vec<Logged> = SERVICES
        .iter()
        .map(|name| spawn_logged(name, name, &vars, &logs))
        .collect();
    for name in SERVICES {
        env.wait_consuming(name, DEADLINE).await;
    }
    let day = "2026-03-02";
    for (source, body) in [
        ("orders", data::orders_csv(1, 20)),
        ("reviews", data::reviews_csv(20)),
        ("shipment_deliveries", data::shipments_csv(20)),
    ] {
        env.put(&TestEnv::landing_key(day, &format!("{source}.csv")), body)
            .await;
    }
    wait_until("the batch exported", DEADLINE, || async {
        let exported = env
            .try_count("SELECT count(*) FROM ops.batches WHERE state = 'exported'")
            .await?;
        Ok((exported == 1).then_some(()))
    })
    .await;
    assert!(env.count("SELECT count(*) FROM ops.exports").await > 0);

    // Every session of the services is encrypted, and they presented the client certificate.
    let sessions = env
        .query_text(
            "SELECT count(*)::text, count(*) FILTER (WHERE s.ssl)::text,
                    count(*) FILTER (WHERE s.client_dn = '/CN=postgres')::text
               FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
        )
        .await;
    let (all, encrypted, with_cert) = (&sessions[0][0], &sessions[0][1], &sessions[0][2]);
    assert_ne!(all, "0", "the services hold connections");
    assert_eq!(encrypted, all, "every connection is encrypted");
    assert_eq!(
        with_cert, all,
        "every connection presented the client certificate"
    );

    for service in running {
        service.stop().await;
    }
    let mut secrets = ca.key_material();
    secrets.push(PG_PASSWORD.to_owned());
    secrets.push("guest:guest@".to_owned());
    for entry in std::fs::read_dir(&logs).unwrap() {
        let file = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(!text.is_empty(), "{} logged nothing", file.display());
        assert_absent(&file.display().to_string(), &text, &secrets);
    }
    env.cleanup().await;
    eprintln!(
        "pipeline over TLS: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `format!("{error:#}")` of a PostgreSQL connection attempt that must fail.
async fn pg_error(url: &str) -> String {
    match runtime::db::connect(url).await {
        Ok(_) => panic!("connecting with {url} should have failed"),
        Err(error) => {
            let error = format!("{error:#}");
            assert!(
                !error.contains(PG_PASSWORD),
                "an error shows the password: {error}"
            );
            error
        }
    }
}

async fn pg_works(url: &str) {
    let client = runtime::db::connect(url)
        .await
        .unwrap_or_else(|error| panic!("connecting with {url}: {error:#}"));
    client.simple_query("SELECT 1").await.expect("SELECT 1");
}

async fn amqp_error(url: &str) -> String {
    match runtime::broker::connect_with(url, lapin::ConnectionProperties::default()).await {
        Ok(_) => panic!("connecting with {url} should have failed"),
        Err(error) => format!("{error:#}"),
    }
}

async fn amqp_works(url: &str) {
    let connection = runtime::broker::connect_with(url, lapin::ConnectionProperties::default())
        .await
        .unwrap_or_else(|error| panic!("connecting with {url}: {error:#}"));
    connection.create_channel().await.expect("a channel");
    connection.close(200, "done".into()).await.ok();
}

fn assert_says(error: &str, expected: &[&str]) {
    for part in expected {
        assert!(error.contains(part), "expected {part:?} in: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_a_wrong_host_and_plaintext_fail_saying_why() {
    let started = Instant::now();
    let ca = TestCa::create();
    let pg = TlsPostgres::start(&ca);
    let rabbit = TlsRabbit::start(&ca);
    let (root, other) = (path(&ca.ca), path(&ca.other_ca));
    let pg_url = |host: &str, params: &str| pg.url(host, PG_PASSWORD, "postgres", params);

    // PostgreSQL, the libpq way.
    pg_works(&pg_url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await;
    pg_works(&pg_url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await;
    let error = pg_error(&pg_url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    ))
    .await;
    assert_says(
        &error,
        &["certificate verify failed: unknown issuer", &other],
    );
    // 127.0.0.2 is the same server under an address the certificate does not list.
    let error = pg_error(&pg_url(
        "127.0.0.2",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await;
    assert_says(
        &error,
        &[
            "certificate verify failed: host name mismatch",
            "127.0.0.2",
            "verify-ca",
        ],
    );
    pg_works(&pg_url(
        "127.0.0.2",
        &format!("sslmode=verify-ca&sslrootcert={root}"),
    ))
    .await;
    // `require` encrypts without checking, unless a root certificate is given.
    pg_works(&pg_url("127.0.0.2", "sslmode=require")).await;
    let error = pg_error(&pg_url(
        "127.0.0.1",
        &format!("sslmode=require&sslrootcert={other}"),
    ))
    .await;
    assert_says(&error, &["unknown issuer"]);
    // Plaintext: the server's own refusal, and what to do about it.
    let error = pg_error(&pg_url("127.0.0.1", "sslmode=disable")).await;
    assert_says(
        &error,
        &[
            "no pg_hba.conf entry",
            "no encryption",
            "set sslmode=verify-full",
        ],
    );
    // `allow` tries plaintext, then TLS.
    pg_works(&pg_url("127.0.0.1", "sslmode=allow")).await;

    // The same through the `landfall` command, with the libpq environment variables as defaults.
    let landfall = |url: String, vars: &[(&str, &str)]| {
        let mut command = std::process::Command::new(binary_path("landfall"));
        command
            .arg("migrate")
            .env_clear()
            .env("LANDFALL_DATABASE_URL", url)
            .env("LANDFALL_DATASETS_DIR", landfall_tests_datasets())
            .env("RUST_LOG", "warn")
            .envs(vars.iter().copied());
        command.output().expect("running landfall")
    };
    let output = landfall(pg_url("127.0.0.1", "sslmode=disable"), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_says(&stderr, &["no encryption", "sslmode"]);
    assert!(!stderr.contains(PG_PASSWORD), "{stderr}");
    let output = landfall(
        pg_url("127.0.0.1", ""),
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &other)],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_says(&stderr, &["unknown issuer"]);
    let output = landfall(
        pg_url("127.0.0.1", ""),
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &root)],
    );
    assert!(
        output.status.success(),
        "landfall migrate over TLS: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // RabbitMQ, with the URI spec's parameters.
    amqp_works(&rabbit.url("127.0.0.1", &format!("cacertfile={root}"))).await;
    let error = amqp_error(&rabbit.url("127.0.0.1", &format!("cacertfile={other}"))).await;
    assert_says(
        &error,
        &["certificate verify failed: unknown issuer", &other],
    );
    let error = amqp_error(&rabbit.url("127.0.0.2", &format!("cacertfile={root}"))).await;
    assert_says(
        &error,
        &["certificate verify failed: host name mismatch", "127.0.0.2"],
    );
    amqp_works(&rabbit.url(
        "127.0.0.2",
        &format!("cacertfile={root}&server_name_indication=localhost"),
    ))
    .await;
    amqp_works(&rabbit.url(
        "127.0.0.2",
        &format!("cacertfile={other}&verify=verify_none"),
    ))
    .await;
    let error = amqp_error(&format!("amqp://guest:guest@127.0.0.1:{}/%2f", rabbit.port)).await;
    assert!(!error.contains("guest:guest"), "{error}");
    let error = amqp_error(&rabbit.url("127.0.0.1", "verify=maybe")).await;
    assert_says(&error, &["verify_peer or verify_none"]);
    eprintln!("TLS failures: {:.1} s", started.elapsed().as_secs_f64());
}

fn landfall_tests_datasets() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets")
        .display()
        .to_string()
}
