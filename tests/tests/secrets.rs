//! Connection strings and keys never reach the logs or the error messages: the five service
//! binaries run a batch end to end with a PostgreSQL password, RabbitMQ credentials and S3 keys
//! that are distinctive strings, at debug log level, and then fail to connect with wrong ones;
//! every line they wrote, and every dead-letter reason, is searched for the secrets.
//!
//! PostgreSQL runs with trust authentication here, so the password in the URL is accepted and
//! ignored. RabbitMQ gets a user of its own for the test (`rabbitmqctl`); where `rabbitmqctl` is
//! not usable the run falls back to `guest`, and only the wrong-password phase uses a
//! distinctive AMQP secret.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use landfall_tests::logged::{Logged, spawn_logged};
use landfall_tests::{TestEnv, data, wait_until};
use s3dev::{NotifyConfig, S3DevConfig, S3DevServer};

const DEADLINE: Duration = Duration::from_secs(90);
const PG_PASSWORD: &str = "pgPass-Zq81xWv3";
const AMQP_PASSWORD: &str = "amqpPass-Hk27nRt5";
const WRONG_AMQP_PASSWORD: &str = "amqpWrong-Yb64mQs9";
const S3_ACCESS_KEY: &str = "LFKEYJ3N8W5Q2T7";
const S3_SECRET_KEY: &str = "s3Secret-Pf93cLd6Gx";
const WRONG_S3_SECRET_KEY: &str = "s3Wrong-Vm52kTe8Jr";
const SERVICES: &[&str] = &[
    "ingester",
    "stager",
    "transformer",
    "quality-checker",
    "exporter",
];

/// A RabbitMQ user made for this test and deleted after it.
struct AmqpUser {
    name: String,
}

impl AmqpUser {
    fn create(suffix: &str) -> Option<AmqpUser> {
        let name = format!("lfsecret{suffix}");
        let ok = |args: &[&str]| {
            std::process::Command::new("rabbitmqctl")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        if !ok(&["add_user", &name, AMQP_PASSWORD]) {
            eprintln!("rabbitmqctl is not usable here: the run uses guest/guest");
            return None;
        }
        let user = AmqpUser { name };
        assert!(
            ok(&["set_permissions", "-p", "/", &user.name, ".*", ".*", ".*"]),
            "granting the test's RabbitMQ user its permissions"
        );
        Some(user)
    }
}

impl Drop for AmqpUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_user", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Every secret, and the URLs that hold them, must be absent from `text`.
fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} contains the secret {secret:?}:\n{}",
            text.lines()
                .filter(|line| line.contains(secret))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn read_logs(logs: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<_> = std::fs::read_dir(logs)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_or_error_messages() {
    let env = TestEnv::new().await;
    let amqp_user = AmqpUser::create(&env.suffix);
    let (amqp_user_name, amqp_password) = match &amqp_user {
        Some(user) => (user.name.clone(), AMQP_PASSWORD),
        None => ("guest".to_owned(), "guest"),
    };
    let amqp_url = format!("amqp://{amqp_user_name}:{amqp_password}@127.0.0.1:5672/%2f");
    let database_url = format!(
        "postgres://postgres:{PG_PASSWORD}@127.0.0.1:5432/{}",
        env.database
    );

    // An S3 endpoint of the test's own, with distinctive keys.
    let s3_root = std::env::temp_dir().join(format!("landfall-secrets-s3-{}", env.suffix));
    let s3_server = S3DevServer::start(S3DevConfig {
        root: s3_root.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_key: S3_ACCESS_KEY.into(),
        secret_key: S3_SECRET_KEY.into(),
        region: "us-east-1".into(),
        notify: Some(NotifyConfig {
            amqp_url: amqp_url.clone(),
            exchange: format!("{}.s3", env.prefix),
            routing_key: "lake.created".into(),
        }),
    })
    .await
    .expect("starting the S3 server");
    let endpoint = s3_server.endpoint_url();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                S3_ACCESS_KEY,
                S3_SECRET_KEY,
                None,
                None,
                "test",
            ))
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("lake").send().await.unwrap();

    let mut vars = env.vars();
    vars.insert("LANDFALL_DATABASE_URL".into(), database_url.clone());
    vars.insert("LANDFALL_AMQP_URL".into(), amqp_url.clone());
    vars.insert("LANDFALL_S3_ENDPOINT".into(), endpoint.clone());
    vars.insert("LANDFALL_S3_ACCESS_KEY_ID".into(), S3_ACCESS_KEY.into());
    vars.insert("LANDFALL_S3_SECRET_ACCESS_KEY".into(), S3_SECRET_KEY.into());
    let logs = std::env::temp_dir().join(format!("landfall-secrets-logs-{}", env.suffix));
    std::fs::create_dir_all(&logs).unwrap();

    // 1. A batch end to end.
    let mut running: Vec<Logged> = SERVICES
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
        s3.put_object()
            .bucket("lake")
            .key(TestEnv::landing_key(day, &format!("{source}.csv")))
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
    }
    wait_until("the batch exported", DEADLINE, || async {
        let exported = env
            .try_count("SELECT count(*) FROM ops.batches WHERE state = 'exported'")
            .await?;
        Ok((exported == 1).then_some(()))
    })
    .await;

    // 2. The stager with a wrong S3 secret: the file it cannot fetch is dead-lettered with a
    //    reason, which must not hold the keys either.
    let stager = running.remove(1);
    stager.stop().await;
    let mut wrong_s3 = vars.clone();
    wrong_s3.insert(
        "LANDFALL_S3_SECRET_ACCESS_KEY".into(),
        WRONG_S3_SECRET_KEY.into(),
    );
    running.push(spawn_logged(
        "stager",
        "stager-wrong-s3-secret",
        &wrong_s3,
        &logs,
    ));
    env.wait_consuming("stager", DEADLINE).await;
    s3.put_object()
        .bucket("lake")
        .key(TestEnv::landing_key("2026-03-03", "orders.csv"))
        .body(data::orders_csv(1, 5).into_bytes().into())
        .send()
        .await
        .unwrap();
    let dead = wait_until("the unfetchable file dead-lettered", DEADLINE, || async {
        env.take_message("stager.dlq").await
    })
    .await;
    let reason =
        runtime::broker::header_text(&dead.delivery.properties, runtime::broker::REASON_HEADER)
            .unwrap_or_default();
    assert!(reason.contains("s3://lake/"), "{reason}");

    // 3. Connections that fail: a wrong RabbitMQ password, an unknown PostgreSQL user (with a
    //    password), an S3 listing with a wrong secret. Each runs until it has retried a while.
    let mut wrong_amqp = vars.clone();
    wrong_amqp.insert(
        "LANDFALL_AMQP_URL".into(),
        format!("amqp://{amqp_user_name}:{WRONG_AMQP_PASSWORD}@127.0.0.1:5672/%2f"),
    );
    let mut wrong_pg = vars.clone();
    wrong_pg.insert(
        "LANDFALL_DATABASE_URL".into(),
        format!(
            "postgres://lf_no_such_user:{PG_PASSWORD}@127.0.0.1:5432/{}",
            env.database
        ),
    );
    let mut wrong_listing = wrong_s3.clone();
    wrong_listing.insert("LANDFALL_RECONCILE_ON_START".into(), "true".into());
    let failing = vec![
        spawn_logged(
            "transformer",
            "transformer-wrong-amqp-password",
            &wrong_amqp,
            &logs,
        ),
        spawn_logged(
            "quality-checker",
            "quality-checker-wrong-pg-user",
            &wrong_pg,
            &logs,
        ),
        spawn_logged(
            "ingester",
            "ingester-wrong-s3-secret",
            &wrong_listing,
            &logs,
        ),
    ];
    tokio::time::sleep(Duration::from_secs(4)).await;
    for service in failing.into_iter().chain(running) {
        service.stop().await;
    }
    s3_server.shutdown().await;

    // The evidence that the failures were logged at all, then the search.
    let logs_read = read_logs(&logs);
    let log_of = |label: &str| {
        logs_read
            .iter()
            .find(|(path, _)| path.file_stem().unwrap() == label)
            .map(|(_, text)| text.as_str())
            .unwrap()
    };
    assert!(
        log_of("transformer-wrong-amqp-password").contains("ACCESS_REFUSED"),
        "{}",
        log_of("transformer-wrong-amqp-password")
    );
    assert!(
        log_of("quality-checker-wrong-pg-user").contains("lf_no_such_user"),
        "{}",
        log_of("quality-checker-wrong-pg-user")
    );
    assert!(
        log_of("stager-wrong-s3-secret").contains("s3://lake/"),
        "{}",
        log_of("stager-wrong-s3-secret")
    );
    let mut secrets = vec![
        PG_PASSWORD,
        WRONG_AMQP_PASSWORD,
        S3_ACCESS_KEY,
        S3_SECRET_KEY,
        WRONG_S3_SECRET_KEY,
    ];
    let userinfo = format!("{amqp_user_name}:{amqp_password}@");
    if amqp_user.is_some() {
        secrets.push(AMQP_PASSWORD);
    }
    secrets.push(&userinfo);
    for (path, text) in &logs_read {
        assert!(!text.is_empty(), "{} is empty", path.display());
        assert_no_secret(&path.display().to_string(), text, &secrets);
    }
    assert_no_secret("the dead-letter reason", &reason, &secrets);
    let recorded = env
        .query_text(
            "SELECT coalesce(string_agg(coalesce(reason, ''), ' '), '') FROM ops.files
             UNION ALL SELECT coalesce(string_agg(coalesce(error, ''), ' '), '') FROM ops.quality_results",
        )
        .await;
    assert_no_secret(
        "reasons recorded in the database",
        &format!("{recorded:?}"),
        &secrets,
    );

    let _ = std::fs::remove_dir_all(&logs);
    let _ = std::fs::remove_dir_all(&s3_root);
    drop(amqp_user);
    env.cleanup().await;
}
