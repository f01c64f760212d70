//! The fault harness: the five service binaries run as processes against the real servers
//! while the harness kills them, takes the servers away and duplicates and shuffles the
//! notifications; the final report tables, exported files and row counts must equal those of
//! a fault-free run of the same input, byte for byte.
//!
//! The tests here run one at a time (they restart the shared PostgreSQL and RabbitMQ) and
//! share one fault-free baseline. `cargo test -p landfall-tests --test chaos -- --ignored`
//! runs the long mode (100 kills).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use landfall_tests::TestEnv;
use landfall_tests::chaos::{self, Day, Fleet, Outcome, SERVICES};
use landfall_tests::proxy::Proxy;
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::{Mutex, OnceCell};

/// Ingestion dates and orders per date of the shared input.
const DAYS: u32 = 4;
const ORDERS: u32 = 5_000;
const FINISH: Duration = Duration::from_secs(240);

/// The tests restart the shared servers: one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());
static BASELINE: OnceCell<Baseline> = OnceCell::const_new();

struct Baseline {
    input: Vec<Day>,
    outcome: Outcome,
}

/// The test's variables for the service processes: retries patient enough to ride out a
/// 30-second outage (about three minutes before a message would be dead-lettered).
fn vars(env: &TestEnv, overrides: &[(&str, String)]) -> HashMap<String, String> {
    let mut vars = env.vars();
    for (name, value) in [
        ("LANDFALL_RETRY_MIN_DELAY_MS", "50"),
        ("LANDFALL_RETRY_MAX_DELAY_MS", "2000"),
        ("LANDFALL_RETRY_ATTEMPTS", "100"),
    ] {
        vars.insert(name.into(), value.into());
    }
    for (name, value) in overrides {
        vars.insert((*name).into(), value.clone());
    }
    vars
}

fn log_dir(env: &TestEnv, run: &str) -> PathBuf {
    std::env::temp_dir().join(format!("landfall-chaos-{}-{run}", env.suffix))
}

/// The fault-free run of the shared input, once per test binary.
async fn baseline() -> &'static Baseline {
    BASELINE
        .get_or_init(|| async {
            let input = chaos::generate(DAYS, ORDERS).await;
            let env = TestEnv::new().await;
            let fleet = Fleet::start(vars(&env, &[]), &log_dir(&env, "baseline")).await;
            let started = std::time::Instant::now();
            for day in &input {
                chaos::land(&env, day).await;
            }
            chaos::wait_finished(&env, input.len(), FINISH).await;
            let injected = fleet.stop().await;
            assert!(
                injected.crashes.is_empty(),
                "the fault-free run had unexpected exits: {:?}",
                injected.crashes
            );
            let outcome = Outcome::collect(&env).await;
            println!(
                "fault-free run: {} days × {ORDERS} orders in {:.1} s; {}",
                input.len(),
                started.elapsed().as_secs_f64(),
                outcome.summary()
            );
            env.cleanup().await;
            Baseline { input, outcome }
        })
        .await
}

/// Compares, prints what was compared and fails on any difference or unexpected exit.
fn judge(title: &str, injected: &chaos::Injected, outcome: &Outcome, baseline: &Baseline) {
    injected.print(title);
    let differences = outcome.differences(&baseline.outcome);
    println!(
        "── {title}: compared {} with the fault-free run: {} ──",
        outcome.summary(),
        if differences.is_empty() {
            "identical".to_owned()
        } else {
            format!("{} differences", differences.len())
        }
    );
    for difference in &differences {
        println!("  {difference}");
    }
    assert!(
        injected.crashes.is_empty(),
        "{title}: services exited on their own instead of riding out the faults: {:?}",
        injected.crashes
    );
    assert!(
        differences.is_empty(),
        "{title}: the run differs from the fault-free run: {differences:#?}"
    );
}

/// Kills `stager` while `pg_stat_activity` shows it inside a COPY, and `transformer` while
/// it runs a model, each up to `limit` times.
fn targeted_killer(
    fleet: Arc<Fleet>,
    database_url: String,
    limit: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut copies, mut models) = (0, 0);
        let mut seen = std::collections::HashSet::new();
        while !stop.load(Ordering::SeqCst) && (copies < limit || models < limit) {
            if let Ok(db) = chaos::connect(&database_url).await {
                while !stop.load(Ordering::SeqCst) && (copies < limit || models < limit) {
                    let Ok(rows) = db
                        .query(
                            "SELECT pid, application_name,
                                    CASE WHEN query LIKE 'COPY staging_rows.%' THEN left(query, 45)
                                         ELSE substring(query FROM '-- model: ([a-z_]+)') END
                               FROM pg_stat_activity
                              WHERE datname = current_database() AND state = 'active'
                                AND pid <> pg_backend_pid()",
                            &[],
                        )
                        .await
                    else {
                        break;
                    };
                    for row in rows {
                        let (backend, service, what): (i32, String, Option<String>) =
                            (row.get(0), row.get(1), row.get(2));
                        // A killed service's backend stays active until PostgreSQL notices.
                        let Some(what) = what.filter(|_| seen.insert(backend)) else {
                            continue;
                        };
                        if service == "stager" && what.starts_with("COPY") && copies < limit {
                            copies += 1;
                            fleet.kill("stager", format!("mid-COPY: {what}")).await;
                        } else if service == "transformer" && models < limit {
                            models += 1;
                            fleet
                                .kill("transformer", format!("mid-transform: model {what}"))
                                .await;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

async fn run_kills(kills: usize) {
    let baseline = baseline().await;
    let seed: u64 = rand::random();
    println!("kill run: seed {seed}, at least {kills} SIGKILLs");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let env = TestEnv::new().await;
    let fault_points = (
        "LANDFALL_FAULT_KILL",
        "consumer.after_commit=0.08,outbox.after_confirm=0.08,transformer.between_models=0.01"
            .to_owned(),
    );
    let fleet = Arc::new(Fleet::start(vars(&env, &[fault_points]), &log_dir(&env, "kills")).await);
    let stop = Arc::new(AtomicBool::new(false));
    let targeted = targeted_killer(fleet.clone(), env.database_url.clone(), 3, stop.clone());
    let per_day = kills.div_ceil(baseline.input.len());
    for day in &baseline.input {
        chaos::land(&env, day).await;
        for _ in 0..per_day {
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..500))).await;
            let service = SERVICES[rng.random_range(0..SERVICES.len())];
            fleet.kill(service, "at random").await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    targeted.await.expect("targeted killer");
    chaos::wait_finished(&env, baseline.input.len(), FINISH).await;
    let fleet = Arc::into_inner(fleet).expect("the fleet has one owner left");
    let injected = fleet.stop().await;
    let outcome = Outcome::collect(&env).await;
    assert!(
        injected.kills.len() >= kills,
        "only {} kills were made",
        injected.kills.len()
    );
    judge(&format!("{kills} kills"), &injected, &outcome, baseline);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_leave_reports_and_exports_exactly_as_a_fault_free_run() {
    let _serial = SERIAL.lock().await;
    run_kills(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long mode: 100 kills, a few minutes"]
async fn a_hundred_kills_leave_reports_and_exports_exactly_as_a_fault_free_run() {
    let _serial = SERIAL.lock().await;
    run_kills(100).await;
}

/// Waits until at least one file of `day` is staged (the day's work is under way).
async fn wait_staging_started(env: &TestEnv, day: &Day) {
    let database_url = env.database_url.clone();
    let date = day.date.clone();
    landfall_tests::wait_until("a file of the day staged", FINISH, || {
        let (database_url, date) = (database_url.clone(), date.clone());
        async move {
            let db = chaos::connect(&database_url).await?;
            let staged: i64 = db
                .query_one(
                    "SELECT count(*) FROM ops.files
                      WHERE ingestion_date = $1::text::date AND state = 'staged'",
                    &[&date],
                )
                .await?
                .get(0);
            Ok((staged > 0).then_some(()))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_of_every_server_are_ridden_out_without_a_manual_step() {
    let _serial = SERIAL.lock().await;
    let baseline = baseline().await;
    let env = TestEnv::new().await;
    let s3_addr = env.s3_server.as_ref().expect("S3 server").local_addr();
    let postgres = Proxy::start("127.0.0.1:5432".parse().unwrap())
        .await
        .unwrap();
    let rabbitmq = Proxy::start("127.0.0.1:5672".parse().unwrap())
        .await
        .unwrap();
    let s3 = Proxy::start(s3_addr).await.unwrap();
    let overrides = [
        (
            "LANDFALL_DATABASE_URL",
            format!(
                "postgres://postgres@127.0.0.1:{}/{}",
                postgres.port(),
                env.database
            ),
        ),
        (
            "LANDFALL_AMQP_URL",
            format!("amqp://guest:guest@127.0.0.1:{}/%2f", rabbitmq.port()),
        ),
        (
            "LANDFALL_S3_ENDPOINT",
            format!("http://127.0.0.1:{}", s3.port()),
        ),
    ];
    let fleet = Fleet::start(vars(&env, &overrides), &log_dir(&env, "outages")).await;
    let proxies = [
        ("PostgreSQL", &postgres),
        ("RabbitMQ", &rabbitmq),
        ("S3", &s3),
    ];
    let days = &baseline.input;

    // Day 1: 20 ms on every hop, then every connection cut twice while the day stages.
    for (_, proxy) in proxies {
        proxy.set_latency(Duration::from_millis(20));
    }
    fleet
        .note("proxies: 20 ms latency on every connection to PostgreSQL, RabbitMQ and S3")
        .await;
    chaos::land(&env, &days[0]).await;
    wait_staging_started(&env, &days[0]).await;
    for round in 1..=2 {
        for (name, proxy) in proxies {
            proxy.cut();
            fleet
                .note(format!(
                    "proxy: cut every connection to {name} (round {round})"
                ))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (_, proxy) in proxies {
        proxy.set_latency(Duration::ZERO);
    }

    // Day 2: RabbitMQ stopped for 5 s while the day stages.
    chaos::land(&env, &days[1]).await;
    wait_staging_started(&env, &days[1]).await;
    chaos::rabbitmqctl(&["stop_app"]).await;
    fleet.note("RabbitMQ stopped (rabbitmqctl stop_app)").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    chaos::rabbitmqctl(&["start_app"]).await;
    chaos::rabbitmqctl(&["await_startup"]).await;
    fleet.note("RabbitMQ started again").await;

    // Day 3: PostgreSQL restarted while the day stages.
    chaos::land(&env, &days[2]).await;
    wait_staging_started(&env, &days[2]).await;
    chaos::restart_postgres().await;
    fleet
        .note("PostgreSQL restarted (pg_ctlcluster restart)")
        .await;

    // Day 4 and the rest: S3 unreachable for 30 s right after the PUTs.
    for day in &days[3..] {
        chaos::land(&env, day).await;
    }
    s3.set_down(true);
    fleet
        .note("S3 unreachable (connections refused) for 30 s")
        .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    s3.set_down(false);
    fleet.note("S3 reachable again").await;

    chaos::wait_finished(&env, days.len(), FINISH).await;
    let injected = fleet.stop().await;
    let outcome = Outcome::collect(&env).await;
    judge("outages", &injected, &outcome, baseline);
    drop((postgres, rabbitmq, s3));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notification_three_times_and_shuffled_changes_nothing() {
    let _serial = SERIAL.lock().await;
    let baseline = baseline().await;
    let env = TestEnv::new().await;

    // Capture the S3 server's notifications before any service (and so its queue) exists.
    let connection = lapin::Connection::connect(&env.amqp_url, Default::default())
        .await
        .expect("RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    let exchange = format!("{}.s3", env.prefix);
    let capture = format!("{}.capture", env.prefix);
    channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("notification exchange");
    channel
        .queue_declare(
            capture.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("capture queue");
    channel
        .queue_bind(
            capture.as_str().into(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("binding the capture queue");
    for day in &baseline.input {
        chaos::land(&env, day).await;
    }
    let mut notifications = Vec::new();
    while let Some(message) = channel
        .basic_get(capture.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("reading the capture queue")
    {
        notifications.push((
            message.delivery.routing_key.to_string(),
            message.delivery.data.clone(),
            message.delivery.properties.clone(),
        ));
    }
    let files: usize = baseline.input.iter().map(|day| day.files.len()).sum();
    assert_eq!(notifications.len(), files, "one notification per PUT");
    channel
        .queue_delete(capture.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("deleting the capture queue");
    connection.close(200, "captured".into()).await.ok();

    let mut deliveries: Vec<_> = notifications
        .iter()
        .flat_map(|notification| std::iter::repeat_n(notification, 3))
        .collect();
    deliveries.shuffle(&mut rand::rng());

    // Consumers also die between commit and ack now and then, so events come again.
    let fault_points = (
        "LANDFALL_FAULT_KILL",
        "consumer.after_commit=0.1".to_owned(),
    );
    let fleet = Fleet::start(vars(&env, &[fault_points]), &log_dir(&env, "duplicates")).await;
    env.wait_consuming("ingester", FINISH).await;
    for (routing_key, body, properties) in &deliveries {
        env.publish_raw("s3", routing_key, body, properties.clone())
            .await;
    }
    fleet
        .note(format!(
            "{} notifications delivered 3 times each, shuffled ({} deliveries)",
            notifications.len(),
            deliveries.len()
        ))
        .await;
    chaos::wait_finished(&env, baseline.input.len(), FINISH).await;
    let injected = fleet.stop().await;
    let outcome = Outcome::collect(&env).await;
    judge("duplicates", &injected, &outcome, baseline);
    env.cleanup().await;
}
