//! `landfall` as scripts use it: the real binary against the test's own database and broker.
//! `--json` prints one JSON document of what the database and the queues hold (seeded here by
//! SQL and AMQP, so the expected values do not come from landfall's code); logs go to stderr
//! only, without colour when stderr is not a terminal; fixed choices are refused with the list,
//! and a typo'd subcommand gets a suggestion.

use landfall_tests::{TestEnv, binary_path};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `landfall ARGS` and parses its stdout as JSON, failing with both streams otherwise.
async fn landfall_json(env: &TestEnv, args: &[&str]) -> Value {
    let output = env.landfall(args).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "landfall {args:?}:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!("landfall {args:?}: stdout is not JSON ({error}):\n{stdout}")
    })
}

/// Two batches, four files (one ignored key that maps to no batch), two transform runs.
async fn seed(env: &TestEnv) {
    let client = env.migrated_client().await;
    client
        .batch_execute(
            "INSERT INTO ops.files (file_id, bucket, key, version, etag, size_bytes, dataset, source,
                                    ingestion_date, state, reason, rows_loaded, rows_rejected,
                                    discovered_by, landed_at, finished_at)
             VALUES (101, 'b', 'landing/ecommerce/ingestion_date=2026-03-01/orders.csv', 'v1', 'e1', 10,
                     'ecommerce', 'orders', '2026-03-01', 'staged', NULL, 40, 2, 'notification',
                     '2026-03-01 10:00:00+00', '2026-03-01 10:00:01.5+00'),
                    (102, 'b', 'landing/ecommerce/ingestion_date=2026-03-01/reviews.csv', 'v1', 'e2', 10,
                     'ecommerce', 'reviews', '2026-03-01', 'rejected', 'wrong header', NULL, NULL,
                     'reconcile', '2026-03-01 10:00:02+00', '2026-03-01 10:00:03+00'),
                    (103, 'b', 'landing/ecommerce/ingestion_date=2026-03-02/orders.csv', 'v1', 'e3', 10,
                     'ecommerce', 'orders', '2026-03-02', 'landed', NULL, NULL, NULL, 'notification',
                     '2026-03-02 09:00:00+00', NULL),
                    (104, 'b', 'landing/stray.txt', 'v1', 'e4', 3, NULL, NULL, NULL, 'ignored',
                     'no dataset matches', NULL, NULL, 'reconcile', '2026-03-02 09:30:00+00', NULL);
             INSERT INTO ops.staged_sources (dataset, ingestion_date, source, file_id, rows_loaded)
             VALUES ('ecommerce', '2026-03-01', 'orders', 101, 40);
             INSERT INTO ops.batches (dataset, ingestion_date, state, sources_missing, first_staged_at,
                                      ready_at, transformed_at, quality_at, exported_at, published_at)
             VALUES ('ecommerce', '2026-03-01', 'exported', '{orders,reviews}', '2026-03-01 10:00:01+00',
                     '2026-03-01 10:00:05+00', '2026-03-01 10:00:07+00', '2026-03-01 10:00:08+00',
                     '2026-03-01 10:00:09+00', '2026-03-01 10:00:06+00'),
                    ('ecommerce', '2026-03-02', 'staging', '{customers,orders}', '2026-03-02 09:00:01+00',
                     NULL, NULL, NULL, NULL, NULL);
             INSERT INTO ops.transform_runs (run_id, dataset, ingestion_date, file_ids, models, started_at, finished_at)
             VALUES (7, 'ecommerce', '2026-03-01', '{101}', '[{\"rows\": 3}]', '2026-03-01 10:00:05+00',
                     '2026-03-01 10:00:06+00'),
                    (8, 'ecommerce', '2026-03-01', '{101,102}', '[{\"rows\": 5}, {\"rows\": 6}]',
                     '2026-03-01 10:00:06+00', '2026-03-01 10:00:07+00');",
        )
        .await
        .expect("seeding ops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_runs_json_show_the_rows_of_the_database() {
    let env = TestEnv::new().await;
    seed(&env).await;

    let status = landfall_json(&env, &["status", "--json"]).await;
    let batches = status["batches"].as_array().expect("batches array");
    assert_eq!(batches.len(), 2, "{status:#}");
    // Newest ingestion date first within a dataset.
    let (newer, older) = (&batches[0], &batches[1]);
    assert_eq!(newer["ingestion_date"], "2026-03-02");
    assert_eq!(newer["state"], "staging");
    assert_eq!(newer["sources_staged"], serde_json::json!([]));
    assert_eq!(
        newer["sources_missing"],
        serde_json::json!(["customers", "orders"])
    );
    assert_eq!(newer["published"], "no");
    assert_eq!(newer["ready_at"], Value::Null);
    assert_eq!(older["dataset"], "ecommerce");
    assert_eq!(older["ingestion_date"], "2026-03-01");
    assert_eq!(older["state"], "exported");
    // orders is staged (ops.staged_sources), so only reviews is still missing.
    assert_eq!(older["sources_staged"], serde_json::json!(["orders"]));
    assert_eq!(older["sources_missing"], serde_json::json!(["reviews"]));
    assert_eq!(older["exported_at"], "2026-03-01T10:00:09Z");
    // Published before the latest transform: readers see an earlier run.
    assert_eq!(older["published"], "earlier run");
    assert_eq!(older["checks"], Value::Null);

    let files = status["files"].as_array().expect("files array");
    let ids: Vec<i64> = files
        .iter()
        .map(|f| f["file_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [104, 103, 102, 101], "newest first: {status:#}");
    assert_eq!(files[0]["dataset"], Value::Null);
    assert_eq!(files[0]["state"], "ignored");
    assert_eq!(files[0]["reason"], "no dataset matches");
    assert_eq!(files[2]["reason"], "wrong header");
    assert_eq!(files[2]["discovered_by"], "reconcile");
    assert_eq!(files[3]["rows_loaded"], 40);
    assert_eq!(files[3]["rows_rejected"], 2);
    assert_eq!(files[3]["source"], "orders");
    assert_eq!(files[3]["finished_at"], "2026-03-01T10:00:01.500Z");

    // A file state selects those files and the batches holding one.
    let rejected = landfall_json(&env, &["status", "--json", "--state", "rejected"]).await;
    assert_eq!(
        rejected["files"].as_array().unwrap().len(),
        1,
        "{rejected:#}"
    );
    assert_eq!(rejected["files"][0]["file_id"], 102);
    assert_eq!(rejected["batches"].as_array().unwrap().len(), 1);
    assert_eq!(rejected["batches"][0]["ingestion_date"], "2026-03-01");

    let runs = landfall_json(&env, &["runs", "--json"]).await;
    let runs = runs["runs"].as_array().expect("runs array");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["run_id"], 8);
    assert_eq!(runs[0]["models"], 2);
    assert_eq!(runs[0]["rows"], 11);
    assert_eq!(runs[0]["file_ids"], serde_json::json!([101, 102]));
    assert_eq!(runs[0]["latest"], true);
    assert_eq!(runs[0]["batch_state"], "exported");
    assert_eq!(runs[0]["reports_exported"], 0);
    assert_eq!(runs[1]["run_id"], 7);
    assert_eq!(runs[1]["latest"], false);
    assert_eq!(runs[1]["batch_state"], Value::Null);
    let none = landfall_json(&env, &["runs", "--json", "--state", "quality_failed"]).await;
    assert_eq!(none, serde_json::json!({ "runs": [] }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_json_shows_the_dead_letters_and_the_missing_queues() {
    let env = TestEnv::new().await;
    let connection = Connection::connect(&env.amqp_url, ConnectionProperties::default())
        .await
        .expect("RabbitMQ");
    let channel = connection.create_channel().await.unwrap();
    let queue = format!("{}.stager.dlq", env.prefix);
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        "x-landfall-reason".into(),
        AMQPValue::LongString("row 3: boom".into()),
    );
    headers.insert(
        "x-landfall-error-kind".into(),
        AMQPValue::LongString("permanent".into()),
    );
    headers.insert(
        "x-landfall-original-exchange".into(),
        AMQPValue::LongString("ex".into()),
    );
    headers.insert(
        "x-landfall-original-routing-key".into(),
        AMQPValue::LongString("file.landed".into()),
    );
    channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"not an event",
            BasicProperties::default()
                .with_message_id("m-1".into())
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let listed = landfall_json(&env, &["dlq", "list", "--json"]).await;
    assert_eq!(
        listed["messages"].as_array().unwrap().len(),
        1,
        "{listed:#}"
    );
    let message = &listed["messages"][0];
    assert_eq!(message["service"], "stager");
    assert_eq!(message["index"], 1);
    assert_eq!(message["message_id"], "m-1");
    assert_eq!(message["reason"], "row 3: boom");
    assert_eq!(message["error_kind"], "permanent");
    assert_eq!(message["original_exchange"], "ex");
    assert_eq!(message["original_routing_key"], "file.landed");
    let missing: Vec<String> = ["ingester", "transformer", "quality-checker", "exporter"]
        .iter()
        .map(|service| format!("{}.{service}.dlq", env.prefix))
        .collect();
    assert_eq!(listed["missing_queues"], serde_json::json!(missing));
    // Listing removed nothing.
    let again = landfall_json(&env, &["dlq", "list", "--json", "--service", "stager"]).await;
    assert_eq!(again["messages"][0]["message_id"], "m-1");
    channel
        .queue_delete(queue.as_str().into(), Default::default())
        .await
        .ok();
}

/// `landfall migrate` on a fresh database logs each migration it applies (info): those lines go
/// to stderr, without ANSI colours (stderr is a pipe here), and stdout holds only the command's
/// one-line result; `landfall status` prints exactly its tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_to_stderr_and_stdout_holds_only_the_output() {
    let env = TestEnv::new().await;
    let run = |args: &'static [&'static str]| {
        let mut command = tokio::process::Command::new(binary_path("landfall"));
        command
            .args(args)
            .env_clear()
            .envs(env.vars())
            .env("RUST_LOG", "debug");
        async move { command.output().await.expect("running landfall") }
    };
    let output = run(&["migrate"]).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout holds more than the result:\n{stdout}"
    );
    assert!(
        lines[0].ends_with("migration(s) applied; staging tables of 2 dataset(s) in place"),
        "{stdout}"
    );
    assert!(
        stderr.contains("INFO") && stderr.contains("applied migration"),
        "no log on stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escapes in logs to a pipe:\n{stderr}"
    );

    seed(&env).await;
    let output = run(&["status"]).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("Batches (each stage's duration)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("Files (newest first)\n"), "{stdout}");
    for level in ["TRACE", "DEBUG", " INFO", " WARN", "ERROR"] {
        assert!(!stdout.contains(level), "a log line on stdout:\n{stdout}");
    }
    assert!(!stdout.contains('\u{1b}'), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_choices_are_listed_and_typos_get_a_suggestion() {
    let env = TestEnv::new().await;
    let refused = |output: &std::process::Output| {
        assert_eq!(output.status.code(), Some(2), "a usage error: {output:?}");
        assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
        text(&output.stderr)
    };

    let stderr = refused(&env.landfall(&["status", "--state", "nonsense"]).await);
    assert!(
        stderr.contains("invalid value 'nonsense' for '--state <STATE>'"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "[possible values: staging, ready, transformed, quality_passed, quality_failed, \
             exported, landed, staged, rejected, superseded, missing, ignored]"
        ),
        "{stderr}"
    );
    let stderr = refused(&env.landfall(&["runs", "--state", "rejected"]).await);
    assert!(
        stderr.contains(
            "[possible values: staging, ready, transformed, quality_passed, quality_failed, exported]"
        ),
        "a file state is not a batch state: {stderr}"
    );
    let stderr = refused(&env.landfall(&["dlq", "list", "--service", "stagr"]).await);
    assert!(
        stderr.contains("tip: a similar value exists: 'stager'"),
        "{stderr}"
    );
    let stderr = refused(
        &env.landfall(&[
            "replay",
            "--dataset",
            "d",
            "--date",
            "2026-03-01",
            "--from-stage",
            "quality-check",
        ])
        .await,
    );
    assert!(
        stderr.contains("[possible values: transform, quality, export]"),
        "{stderr}"
    );

    let stderr = refused(&env.landfall(&["statsu"]).await);
    assert!(
        stderr.contains("unrecognized subcommand 'statsu'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tip: a similar subcommand exists: 'status'"),
        "{stderr}"
    );
    let stderr = refused(&env.landfall(&["status", "--jsno"]).await);
    assert!(
        stderr.contains("tip: a similar argument exists: '--json'"),
        "{stderr}"
    );

    // --help lists the choices.
    let help = env.landfall(&["status", "--help"]).await;
    assert!(help.status.success());
    let help = text(&help.stdout);
    assert!(
        help.contains("[possible values: staging, ready, transformed"),
        "{help}"
    );
    assert!(help.contains("--json"), "{help}");
}
