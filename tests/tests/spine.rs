//! The spine against real PostgreSQL, RabbitMQ and the embedded S3 server: notifications to
//! ledger to staging, duplicates, new versions, rejects, dead letters, reconcile, a stager
//! killed in the middle of a COPY, which rows the staging views show, and identical rows of a
//! keyless snapshot source counted.

use std::time::Duration;

use contract::{Event, StagingLoaded};
use landfall_tests::{TestEnv, data, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
const DATE: &str = "2026-03-01";

fn key(file: &str) -> String {
    TestEnv::landing_key(DATE, file)
}

/// Rows of a staging table as text, in file order.
async fn staged(env: &TestEnv, sql: &str) -> Vec<Vec<String>> {
    env.db
        .query(sql, &[])
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|index| row.get::<_, String>(index))
                .collect()
        })
        .collect()
}

async fn file_state(env: &TestEnv, key: &str) -> Option<(String, Option<String>)> {
    env.db
        .query_opt(
            "SELECT state, reason FROM ops.files WHERE key = $1 ORDER BY file_id DESC LIMIT 1",
            &[&key],
        )
        .await
        .unwrap()
        .map(|row| (row.get(0), row.get(1)))
}

async fn wait_for_state(env: &TestEnv, key: &str, state: &str) -> Option<String> {
    wait_until(&format!("{key} to be {state}"), DEADLINE, || async {
        Ok(file_state(env, key)
            .await
            .filter(|(found, _)| found == state)
            .map(|(_, reason)| reason))
    })
    .await
}

fn staging_loaded(event: &contract::Envelope<Event>) -> Option<&StagingLoaded> {
    match &event.payload {
        Event::StagingLoaded(loaded) => Some(loaded),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_files_land_and_stage_exactly_as_written() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let orders = data::orders_csv(1, 50);
    let reviews = data::reviews_csv(40);
    let shipments = data::shipments_csv(50);
    env.put(&key("orders.csv"), orders.clone()).await;
    env.put(&key("reviews.csv"), reviews.clone()).await;
    env.put(&key("shipment_deliveries.csv"), shipments.clone())
        .await;

    spy.until("three staging.loaded events", DEADLINE, |seen| {
        seen.iter().filter_map(staging_loaded).count() == 3
    })
    .await;
    let loaded: Vec<&StagingLoaded> = spy.seen.iter().filter_map(staging_loaded).collect();
    let mut sources: Vec<&str> = loaded.iter().map(|event| event.source.as_str()).collect();
    sources.sort();
    assert_eq!(sources, ["orders", "reviews", "shipment_deliveries"]);
    assert!(loaded.iter().all(|event| event.rows_rejected == 0));
    assert_eq!(spy.of_type("file.landed").len(), 3);

    assert_eq!(
        env.count("SELECT count(*) FROM ops.files WHERE state = 'staged'")
            .await,
        3
    );
    assert_eq!(
        staged(&env, "SELECT order_id::text, customer_id::text, order_date::text, product_id::text, unit_price::text, quantity::text, total_price::text FROM staging.orders ORDER BY _line").await,
        data::rows(&orders)
    );
    assert_eq!(
        staged(&env, "SELECT coalesce(review::text, ''), product_id::text FROM staging.reviews ORDER BY _line").await,
        data::rows(&reviews)
    );
    assert_eq!(
        staged(&env, "SELECT shipment_id::text, order_id::text, coalesce(shipment_date::text, ''), coalesce(delivery_date::text, '') FROM staging.shipment_deliveries ORDER BY _line").await,
        data::rows(&shipments)
    );
    // Lineage: the file, the line (the header is line 1) and the batch.
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM staging.orders o JOIN ops.files f ON f.file_id = o._file_id WHERE f.key = '{}' AND o._line = o.order_id + 1 AND o._batch = '{DATE}'", key("orders.csv"))).await,
        50
    );
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_notification_three_times_loads_once() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    // One consumer taking one message at a time: notifications are handled in order.
    let ingester = env.start_ingester(&[("LANDFALL_CONCURRENCY", "1"), ("LANDFALL_PREFETCH", "1")]);
    let stager = env.start_stager(&[]);
    env.set_notifications(false);
    let orders_key = key("orders.csv");
    let etag = env.put(&orders_key, data::orders_csv(1, 30)).await;
    let notification = serde_json::json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("lake/{orders_key}"),
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "eventName": "s3:ObjectCreated:Put",
            "s3": {"bucket": {"name": "lake"}, "object": {"key": orders_key.replace('/', "%2F"), "size": 10, "eTag": etag}}
        }]
    })
    .to_string();
    for _ in 0..3 {
        env.publish_raw(
            "s3",
            "lake.created",
            notification.as_bytes(),
            lapin::BasicProperties::default(),
        )
        .await;
    }
    // A later file: once it is staged, the three duplicates before it have been handled.
    env.set_notifications(true);
    env.put(&key("reviews.csv"), data::reviews_csv(5)).await;
    spy.until("both files staged", DEADLINE, |seen| {
        seen.iter().filter_map(staging_loaded).count() == 2
    })
    .await;

    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM ops.files WHERE key = '{orders_key}'"
        ))
        .await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 30);
    assert_eq!(
        env.count("SELECT count(*) FROM ops.outbox WHERE event_type = 'file.landed'")
            .await,
        2
    );
    let orders_loaded = spy
        .seen
        .iter()
        .filter_map(staging_loaded)
        .filter(|event| event.source == "orders")
        .count();
    assert_eq!(orders_loaded, 1);
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_of_a_file_replaces_the_old_rows() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let orders_key = key("orders.csv");
    env.put(&orders_key, data::orders_csv(1, 20)).await;
    spy.until("the first version staged", DEADLINE, |seen| {
        seen.iter().filter_map(staging_loaded).count() == 1
    })
    .await;
    let first_id = spy.seen.iter().find_map(staging_loaded).unwrap().file_id;

    let second = data::orders_csv(500, 35);
    env.put(&orders_key, second.clone()).await;
    spy.until("the second version staged", DEADLINE, |seen| {
        seen.iter().filter_map(staging_loaded).count() == 2
    })
    .await;
    let replacing = spy.seen.iter().filter_map(staging_loaded).nth(1).unwrap();
    assert_eq!(replacing.replaced_file_id, Some(first_id));

    assert_eq!(
        staged(&env, "SELECT order_id::text, customer_id::text, order_date::text, product_id::text, unit_price::text, quantity::text, total_price::text FROM staging.orders ORDER BY _line").await,
        data::rows(&second)
    );
    let states = staged(&env, "SELECT state FROM ops.files ORDER BY file_id").await;
    assert_eq!(
        states,
        [vec!["superseded".to_owned()], vec!["staged".to_owned()]]
    );
    assert_eq!(env.count(&format!("SELECT file_id FROM ops.staged_sources WHERE source = 'orders' AND ingestion_date = '{DATE}'")).await, replacing.file_id);
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_rejected_with_line_and_column_and_the_rest_load() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let mut orders: Vec<String> = data::orders_csv(1, 100)
        .lines()
        .map(str::to_owned)
        .collect();
    orders[3] = "3,7,2026-02-30,4,1.00,1,1.00".into(); // line 4: no such date
    orders[10] = "10,7,2026-01-11,4,1.00,ten,10.00".into(); // line 11: not an integer
    orders[20] = ",7,2026-01-21,4,1.00,1,1.00".into(); // line 21: NULL key
    orders[30] = "5,7,2026-01-21,4,1.00,1,1.00".into(); // line 31: repeats order 5 of line 6
    // Keys beyond the stager's in-stream bitmap are checked after the COPY, in SQL: line 52
    // repeats line 42's.
    orders[41] = "100000000,7,2026-01-21,4,1.00,1,1.00".into();
    orders[51] = "100000000,8,2026-01-22,4,2.00,1,2.00".into();
    let mut reviews: Vec<String> = data::reviews_csv(40).lines().map(str::to_owned).collect();
    reviews[7] = "7,3".into(); // line 8: a review of 7
    env.put(&key("orders.csv"), orders.join("\n") + "\n").await;
    env.put(&key("reviews.csv"), reviews.join("\r\n") + "\r\n")
        .await;
    spy.until("both files staged", DEADLINE, |seen| {
        seen.iter().filter_map(staging_loaded).count() == 2
    })
    .await;

    let rejects = staged(&env, "SELECT f.source, r.line::text, coalesce(r.column_name, ''), coalesce(r.value, ''), r.reason FROM ops.rejected_rows r JOIN ops.files f USING (file_id) ORDER BY f.source, r.line").await;
    let expected: Vec<Vec<String>> = [
        [
            "orders",
            "4",
            "order_date",
            "2026-02-30",
            "'2026-02-30' is not a date (YYYY-MM-DD)",
        ],
        ["orders", "11", "quantity", "ten", "'ten' is not an integer"],
        [
            "orders",
            "21",
            "order_id",
            "",
            "is empty, but the column may not be NULL",
        ],
        [
            "orders",
            "31",
            "order_id",
            "5",
            "duplicate order_id 5: an earlier line of the file has it",
        ],
        [
            "orders",
            "52",
            "order_id",
            "100000000",
            "duplicate order_id 100000000: an earlier line of the file has it",
        ],
        ["reviews", "8", "review", "7", "7 is above the maximum 5"],
    ]
    .iter()
    .map(|row| row.iter().map(|field| field.to_string()).collect())
    .collect();
    assert_eq!(rejects, expected);
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 95);
    assert_eq!(
        env.count("SELECT count(*) FROM staging.orders WHERE order_id = 5")
            .await,
        1
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM staging.orders WHERE order_id = 100000000 AND customer_id = 7"
        )
        .await,
        1,
        "the first line of the repeated key stays"
    );
    assert_eq!(env.count("SELECT count(*) FROM staging.reviews").await, 39);
    assert_eq!(
        staged(
            &env,
            "SELECT source, rows_loaded::text, rows_rejected::text FROM ops.files ORDER BY source"
        )
        .await,
        [
            vec!["orders".to_owned(), "95".into(), "5".into()],
            vec!["reviews".to_owned(), "39".into(), "1".into()]
        ]
    );
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

/// With `reject_max_rows` beside `reject_max_share`, a file is rejected whole only over both: a
/// small file keeps its good rows whatever share its few bad ones are, one bad row more and it
/// is rejected, naming both limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_rejected_whole_only_over_every_reject_limit_set() {
    let env = TestEnv::new().await;
    let _migrated = env.migrated_client().await;
    let dir = landfall_tests::datasets::bundled_copy(&env, "reject-limits");
    let definition = dir.join("ecommerce/dataset.toml");
    let text = std::fs::read_to_string(&definition).unwrap();
    assert!(text.contains("reject_max_share = 0.05\n"));
    std::fs::write(
        &definition,
        text.replacen(
            "reject_max_share = 0.05\n",
            "reject_max_share = 0.05\nreject_max_rows = 4\n",
            1,
        ),
    )
    .unwrap();
    let dir_text = dir.display().to_string();
    let overrides = [("LANDFALL_DATASETS_DIR", dir_text.as_str())];
    let ingester = env.start_ingester(&overrides);
    let stager = env.start_stager(&overrides);
    // Reviews 1,2,3,4,5,1,2,3,4,(empty): the 3s and 4s out of range make 4 bad rows of 10.
    let four_bad = data::reviews_csv(10)
        .replace("\n3,", "\n9,")
        .replace("\n4,", "\n0,");
    env.put(&key("reviews.csv"), four_bad.clone()).await;
    wait_for_state(&env, &key("reviews.csv"), "staged").await;
    assert_eq!(
        staged(
            &env,
            &format!(
                "SELECT rows_loaded::text, rows_rejected::text FROM ops.files WHERE key = '{}'",
                key("reviews.csv")
            )
        )
        .await,
        [["6", "4"]]
    );
    // And the 5 too: 5 bad rows, over 4 and over 5%.
    let five_bad = four_bad.replace("\n5,", "\n6,");
    let later = TestEnv::landing_key("2026-03-02", "reviews.csv");
    env.put(&later, five_bad).await;
    let reason = wait_for_state(&env, &later, "rejected")
        .await
        .unwrap_or_default();
    assert!(
        reason.starts_with(
            "5 of 10 rows rejected (50.0%), over both of the dataset's limits (5% of the rows and 4 rows); first: line "
        ),
        "{reason}"
    );
    ingester.stop().await;
    stager.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_files_are_rejected_with_a_reason_a_person_understands() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let wrong_header = data::orders_csv(1, 5).replacen("order_id", "order_no", 1);
    env.put(&key("orders.csv"), wrong_header).await;
    env.put(&key("shipment_deliveries.csv"), Vec::new()).await;
    env.put(
        &key("reviews.csv.gz"),
        b"\x1f\x8b\x08\x00this is not deflate data".to_vec(),
    )
    .await;
    let mostly_bad = data::reviews_csv(10)
        .replace("\n3,", "\n9,")
        .replace("\n4,", "\n0,");
    env.put(
        &TestEnv::landing_key("2026-03-02", "reviews.csv"),
        mostly_bad,
    )
    .await;
    spy.until("four files rejected", DEADLINE, |seen| {
        seen.iter()
            .filter(|e| e.event_type == "file.rejected")
            .count()
            == 4
    })
    .await;

    let env_ref = &env;
    let reason = |file: &str| {
        let key = key(file);
        async move {
            file_state(env_ref, &key)
                .await
                .and_then(|(_, reason)| reason)
                .unwrap_or_default()
        }
    };
    let header = reason("orders.csv").await;
    assert!(
        header.contains("unknown column 'order_no' in the header"),
        "{header}"
    );
    let empty = reason("shipment_deliveries.csv").await;
    assert!(
        empty.starts_with("the file is empty: expected a header row"),
        "{empty}"
    );
    let gzip = reason("reviews.csv.gz").await;
    assert!(gzip.starts_with("the file cannot be decoded"), "{gzip}");
    let threshold = file_state(&env, &TestEnv::landing_key("2026-03-02", "reviews.csv"))
        .await
        .unwrap()
        .1
        .unwrap();
    assert!(threshold.starts_with("4 of 10 rows rejected (40.0%), over the dataset's 5% threshold; first: line 4, column review"), "{threshold}");
    assert_eq!(
        env.count("SELECT count(*) FROM ops.files WHERE state = 'rejected'")
            .await,
        4
    );
    // Nothing of a rejected file is staged; its bad rows are kept for the operator.
    assert_eq!(env.count("SELECT count(*) FROM staging.reviews").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM ops.rejected_rows").await, 4);
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_messages_are_dead_lettered_with_the_reason() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    // Wait until both services consume from their queues.
    env.wait_consuming("stager", DEADLINE).await;
    env.wait_consuming("ingester", DEADLINE).await;

    env.publish_raw(
        "events",
        "file.landed",
        b"this is not MessagePack",
        lapin::BasicProperties::default(),
    )
    .await;
    let mut unknown = contract::Envelope::new(
        None,
        None,
        contract::FileRejected {
            file_id: 1,
            bucket: "b".into(),
            key: "k".into(),
            source: "s".into(),
            reason: "r".into(),
            rows_rejected: 0,
        },
    );
    unknown.event_type = "file.teleported".into();
    env.publish_raw(
        "events",
        "file.landed",
        &unknown.encode(),
        lapin::BasicProperties::default(),
    )
    .await;
    env.publish_raw(
        "s3",
        "lake.created",
        b"<xml>not a notification</xml>",
        lapin::BasicProperties::default(),
    )
    .await;

    let mut reasons = Vec::new();
    for queue in ["stager.dlq", "stager.dlq", "ingester.dlq"] {
        let message = wait_until(&format!("a message in {queue}"), DEADLINE, || async {
            env.take_message(queue).await
        })
        .await;
        let properties = &message.delivery.properties;
        let reason = runtime::broker::header_text(properties, runtime::broker::REASON_HEADER)
            .expect("reason header");
        assert_eq!(
            runtime::broker::header_text(properties, runtime::broker::ERROR_KIND_HEADER).as_deref(),
            Some("permanent")
        );
        reasons.push(reason);
    }
    reasons.sort();
    assert!(
        reasons[0].contains("message is not a MessagePack landfall envelope"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("not an S3 event notification"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("unknown event type 'file.teleported'"),
        "{reasons:?}"
    );
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_lands_a_file_whose_notification_was_lost() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    // The ingester is down and the notification is lost.
    env.set_notifications(false);
    env.put(&key("orders.csv"), data::orders_csv(1, 12)).await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    spy.until("the file staged", DEADLINE, |seen| {
        seen.iter().filter_map(staging_loaded).count() == 1
    })
    .await;
    assert_eq!(
        env.count(
            "SELECT count(*) FROM ops.files WHERE discovered_by = 'reconcile' AND state = 'staged'"
        )
        .await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 12);
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stager_killed_mid_copy_loads_the_file_exactly_once_after_restart() {
    const ROWS: i64 = 300_000;
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.spawn_binary("stager", &[]);
    let orders_key = key("orders.csv");
    env.put(&orders_key, data::orders_csv(1, ROWS)).await;

    env.wait_for_copy_under_way(DEADLINE).await;
    stager.kill().await;
    wait_until("the killed COPY to be rolled back", DEADLINE, || async {
        let active = env
            .count("SELECT count(*) FROM pg_stat_progress_copy WHERE datname = current_database()")
            .await;
        Ok((active == 0).then_some(()))
    })
    .await;
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 0);
    assert_eq!(file_state(&env, &orders_key).await.unwrap().0, "landed");

    let restarted = env.spawn_binary("stager", &[]);
    wait_for_state(&env, &orders_key, "staged").await;
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, ROWS);
    assert_eq!(
        env.count("SELECT count(DISTINCT order_id) FROM staging.orders")
            .await,
        ROWS
    );
    // Nothing of the killed attempt is left behind the view either.
    assert_eq!(
        env.count("SELECT count(*) FROM staging_rows.orders").await,
        ROWS
    );
    assert_eq!(
        env.count("SELECT count(*) FROM ops.outbox WHERE event_type = 'staging.loaded'")
            .await,
        1
    );
    spy.until("staging.loaded published", DEADLINE, |seen| {
        seen.iter().any(|event| staging_loaded(event).is_some())
    })
    .await;
    let ids: std::collections::HashSet<uuid::Uuid> = spy
        .seen
        .iter()
        .filter(|event| event.event_type == "staging.loaded")
        .map(|event| event.event_id)
        .collect();
    assert_eq!(ids.len(), 1, "one StagingLoaded event id");

    // SIGTERM drains and exits cleanly.
    let status = restarted.terminate().await;
    assert!(status.success(), "stager exited with {status}");
    ingester.stop().await;
    env.cleanup().await;
}

/// The window the second COPY connection opens: its share is committed before the stager's
/// own transaction stages the file, so a stager that dies in between leaves rows (and the
/// marker that says so) behind the view. The retry removes them before it loads the file:
/// the file ends staged once, with nothing left over. The leftovers are written here as such
/// a connection writes them, since no kill lands in that window reliably (the chaos runs'
/// kills do at times, and check the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_dead_attempt_committed_on_its_second_connection_are_removed_by_the_retry() {
    const ROWS: i64 = 1_000;
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let orders_key = key("orders.csv");
    env.put(&orders_key, data::orders_csv(1, ROWS)).await;
    env.wait_count(
        "the file landed",
        "SELECT count(*) FROM ops.files WHERE state = 'landed'",
        1,
        DEADLINE,
    )
    .await;
    let file_id: i64 = env
        .db
        .query_one(
            "SELECT file_id FROM ops.files WHERE key = $1",
            &[&orders_key],
        )
        .await
        .unwrap()
        .get(0);
    env.db
        .batch_execute(&format!(
            "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id)
             SELECT {file_id}, i + 1, DATE '{DATE}', i FROM generate_series(1, 500) AS i;
             INSERT INTO ops.copy_leftovers (file_id) VALUES ({file_id});"
        ))
        .await
        .unwrap();
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 0);

    let stager = env.start_stager(&[]);
    wait_for_state(&env, &orders_key, "staged").await;
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, ROWS);
    assert_eq!(
        env.count("SELECT count(*) FROM staging_rows.orders").await,
        ROWS,
        "the dead attempt's rows are gone"
    );
    assert_eq!(
        env.count("SELECT count(DISTINCT _line) FROM staging_rows.orders")
            .await,
        ROWS
    );
    assert_eq!(
        env.count("SELECT count(*) FROM ops.copy_leftovers").await,
        0,
        "no marker left: the next attempt has nothing to clean"
    );
    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}

/// Orders rows of the view `staging.orders` per file: (file id, rows).
async fn visible_orders(client: &impl tokio_postgres::GenericClient) -> Vec<(i64, i64)> {
    client
        .query(
            "SELECT _file_id, count(*) FROM staging.orders GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("reading staging.orders")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// `staging.<table>` shows a row only while its file is the staged file of its source
/// (`ops.staged_sources`), and from the commit that records it: the rows of a large file,
/// COPYed over other connections that commit first, wait unseen in `staging_rows.<table>`
/// until then, and those of an attempt that is never staged stay unseen (migration 0013).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staging_views_show_the_rows_of_staged_files_only() {
    let env = TestEnv::new().await;
    let mut stager = env.migrated_client().await;
    // Two versions of the orders file and a reviews file of the batch, in the ledger.
    let mut ids = Vec::new();
    for (source, version) in [("orders", "v1"), ("orders", "v2"), ("reviews", "v1")] {
        let row = env
            .db
            .query_one(
                "INSERT INTO ops.files (bucket, key, version, etag, size_bytes, dataset, source,
                                        ingestion_date, discovered_by)
                 VALUES ('lake', $1, $2, $2, 1, 'ecommerce', $3, $4::text::date, 'notification')
                 RETURNING file_id",
                &[&key(&format!("{source}.csv")), &version, &source, &DATE],
            )
            .await
            .expect("a ledger row");
        ids.push(row.get::<_, i64>(0));
    }
    let (first, second, reviews) = (ids[0], ids[1], ids[2]);
    // Rows in the orders table under each id: 1 of the first version, 2 of the second, and 3
    // under the reviews file's id (a file staged for another source shows nothing here).
    env.db
        .execute(
            "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id,
                                              order_date, product_id, unit_price, quantity, total_price)
             SELECT f.file_id, line, $1::text::date, 10 * f.rank + line, 1, $1::text::date, 1, 1.00, 1, 1.00
               FROM unnest($2::bigint[]) WITH ORDINALITY AS f(file_id, rank),
                    generate_series(2, 1 + f.rank::int) AS line",
            &[&DATE, &ids],
        )
        .await
        .expect("rows in staging_rows.orders");
    assert_eq!(
        env.count("SELECT count(*) FROM staging_rows.orders").await,
        6
    );
    assert!(
        visible_orders(&env.db).await.is_empty(),
        "no file is staged yet"
    );

    // Staged in a transaction: seen inside it at once, by everyone else from its commit.
    let stage = |file_id: i64, source: &'static str| {
        format!(
            "INSERT INTO ops.staged_sources (dataset, ingestion_date, source, file_id, rows_loaded)
             VALUES ('ecommerce', DATE '{DATE}', '{source}', {file_id}, 0)
             ON CONFLICT (dataset, ingestion_date, source)
             DO UPDATE SET file_id = EXCLUDED.file_id, staged_at = clock_timestamp()"
        )
    };
    let tx = stager.transaction().await.unwrap();
    tx.batch_execute(&stage(first, "orders")).await.unwrap();
    assert_eq!(visible_orders(&tx).await, [(first, 1)]);
    assert!(
        visible_orders(&env.db).await.is_empty(),
        "not committed: not staged"
    );
    tx.commit().await.unwrap();
    assert_eq!(visible_orders(&env.db).await, [(first, 1)]);

    // Another source's staged file does not show orders rows.
    env.db
        .batch_execute(&stage(reviews, "reviews"))
        .await
        .unwrap();
    assert_eq!(visible_orders(&env.db).await, [(first, 1)]);

    // A new version: its rows replace the first's in the view in one commit.
    env.db
        .batch_execute(&stage(second, "orders"))
        .await
        .unwrap();
    assert_eq!(visible_orders(&env.db).await, [(second, 2)]);

    // The snapshot view reads the staging view: the staged file's rows only.
    let tx = stager.transaction().await.unwrap();
    tx.execute(
        "SELECT set_config('landfall.batch_date', $1, true)",
        &[&DATE],
    )
    .await
    .unwrap();
    let snapshot: Vec<i64> = tx
        .query("SELECT DISTINCT _file_id FROM snapshot.orders", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(snapshot, [second]);
    tx.rollback().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_ready_once_every_required_source_is_staged() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let transformer = env.start_transformer(&[]);
    env.put(&key("orders.csv"), data::orders_csv(1, 10)).await;
    env.put(
        &key("customers.csv"),
        "customer_id,customer_name,postal_code\n1,Ada,10115\n".to_owned(),
    )
    .await;
    let batch = |state: &'static str| {
        let env = &env;
        async move {
            wait_until(&format!("batch {DATE} to be {state} with two sources"), DEADLINE, || async {
                let row = env
                    .db
                    .query_opt(
                        "SELECT state, array_to_string(sources_staged, ','), array_to_string(sources_missing, ',')
                           FROM ops.batches WHERE dataset = 'ecommerce' AND ingestion_date = $1::text::date",
                        &[&DATE],
                    )
                    .await?;
                Ok(row
                    .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, String>(2)))
                    .filter(|(found, staged, _)| found == state && staged.split(',').count() >= 2))
            })
            .await
        }
    };
    let (_, staged, missing) = batch("staging").await;
    assert_eq!(staged, "customers,orders");
    assert_eq!(missing, "reviews,shipment_deliveries");

    env.put(&key("reviews.csv"), data::reviews_csv(5)).await;
    env.put(&key("shipment_deliveries.csv"), data::shipments_csv(10))
        .await;
    let (_, staged, missing) = batch("transformed").await;
    assert_eq!(staged, "customers,orders,reviews,shipment_deliveries");
    assert_eq!(missing, "");
    transformer.stop().await;
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landfall_migrate_and_reconcile_land_files_while_no_ingester_runs() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let migrated = env.landfall(&["migrate"]).await;
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("migration(s) applied"));
    env.set_notifications(false);
    env.put(&key("orders.csv"), data::orders_csv(1, 3)).await;
    env.put(&key("notes.txt"), "not a landing file".to_owned())
        .await;
    env.put("elsewhere/orders.csv", data::orders_csv(1, 3))
        .await;

    let output = env.landfall(&["reconcile"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("listed 2 object(s): 1 new file(s) landed, 1 key(s) matching no dataset; 1 event(s) published"), "{stdout}");
    spy.until("file.landed from reconcile", DEADLINE, |seen| {
        seen.iter().any(|event| event.event_type == "file.landed")
    })
    .await;
    let ignored = file_state(&env, &key("notes.txt")).await.unwrap();
    assert_eq!(ignored.0, "ignored");
    assert!(
        ignored
            .1
            .unwrap()
            .contains("'notes.txt' is not a .csv or .csv.gz file")
    );

    // A second pass finds nothing new.
    let again = env.landfall(&["reconcile"]).await;
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("0 new file(s) landed, 0 key(s) matching no dataset; 0 event(s) published")
    );
    env.cleanup().await;
}

/// A MinIO-style notification of `records` (key, ETag, event name), keys URL-encoded.
fn notification(records: &[(&str, &str, &str)]) -> Vec<u8> {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(key, etag, event_name)| {
            serde_json::json!({
                "eventVersion": "2.0", "eventSource": "minio:s3", "eventName": event_name,
                "s3": {"bucket": {"name": "lake"},
                       "object": {"key": key.replace('/', "%2F"), "size": 10, "eTag": etag}}
            })
        })
        .collect();
    serde_json::json!({"EventName": records[0]["eventName"], "Records": records})
        .to_string()
        .into_bytes()
}

/// Notifications that wait in the queue together are recorded set-based, several in one
/// transaction, with exactly the outcomes of one-by-one handling: an object announced twice
/// in the same batch is one ledger row and one `FileLanded`; an unmapped key is recorded as
/// ignored; a key outside the landing prefix is not recorded. A later batch holding a message
/// that is not a notification falls back to one message at a time: that one is dead-lettered,
/// a re-announced object stays one row, and the new one lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_waiting_together_are_recorded_in_one_transaction() {
    let env = TestEnv::new().await;
    env.set_notifications(false);
    // One consumer, no reconcile (it would find the objects by listing): only the
    // notifications published below reach the ledger.
    let settings = [
        ("LANDFALL_CONCURRENCY", "1"),
        ("LANDFALL_RECONCILE_ON_START", "false"),
        ("LANDFALL_RECONCILE_INTERVAL_S", "0"),
    ];
    // Started once to declare its queue, then stopped, so the notifications wait together.
    let ingester = env.start_ingester(&settings);
    env.wait_consuming("ingester", DEADLINE).await;
    ingester.stop().await;

    let orders = |day: u32| TestEnv::landing_key(&format!("2026-03-{day:02}"), "orders.csv");
    let etag = |day: u32| format!("e{day:04}");
    let mut messages = Vec::new();
    for day in 1..=12 {
        messages.push(notification(&[(
            &orders(day),
            &etag(day),
            "s3:ObjectCreated:Put",
        )]));
    }
    // The first three objects announced again, as a multipart upload completing.
    for day in 1..=3 {
        messages.push(notification(&[(
            &orders(day),
            &etag(day),
            "s3:ObjectCreated:CompleteMultipartUpload",
        )]));
    }
    // Two records in one message; a key no source matches; a key outside the landing prefix.
    messages.push(notification(&[
        (&key("reviews.csv"), "r1", "s3:ObjectCreated:Put"),
        (
            &key("shipment_deliveries.csv"),
            "s1",
            "s3:ObjectCreated:Put",
        ),
    ]));
    messages.push(notification(&[(
        &key("unknown.csv"),
        "u1",
        "s3:ObjectCreated:Put",
    )]));
    messages.push(notification(&[(
        "exports/report.csv",
        "x1",
        "s3:ObjectCreated:Put",
    )]));
    for message in &messages {
        env.publish_raw(
            "s3",
            "lake.created",
            message,
            lapin::BasicProperties::default(),
        )
        .await;
    }
    let ingester = env.start_ingester(&settings);
    wait_until("14 files landed and 1 ignored", DEADLINE, || async {
        let recorded = env.try_count("SELECT count(*) FROM ops.files").await?;
        let events = env
            .try_count("SELECT count(*) FROM ops.outbox WHERE event_type = 'file.landed'")
            .await?;
        Ok((recorded == 15 && events == 14).then_some(()))
    })
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM ops.files WHERE state = 'landed'")
            .await,
        14
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM ops.files WHERE state = 'ignored' AND key LIKE '%unknown.csv'
                AND reason IS NOT NULL AND finished_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        env.count("SELECT count(DISTINCT (bucket, key)) FROM ops.files")
            .await,
        15
    );
    // Each FileLanded names its own ledger row, with the row's key and version.
    let rows = env
        .db
        .query(
            "SELECT o.payload, f.file_id, f.key, f.version, f.dataset, f.source, f.ingestion_date
               FROM ops.outbox o
               JOIN ops.files f ON o.ingestion_date = f.ingestion_date AND f.state = 'landed'
              WHERE o.event_type = 'file.landed'",
            &[],
        )
        .await
        .unwrap();
    let mut matched = 0;
    for row in &rows {
        let event = contract::Envelope::decode(row.get::<_, &[u8]>(0)).expect("an envelope");
        let Event::FileLanded(landed) = &event.payload else {
            panic!("not a FileLanded: {event:?}")
        };
        if landed.file_id == row.get::<_, i64>(1) {
            assert_eq!(landed.key, row.get::<_, String>(2));
            assert_eq!(landed.version, row.get::<_, String>(3));
            assert_eq!(landed.source, row.get::<_, String>(5));
            let batch = event.batch.as_ref().expect("a batch");
            assert_eq!(batch.dataset, row.get::<_, String>(4));
            assert_eq!(batch.ingestion_date, row.get::<_, chrono::NaiveDate>(6));
            matched += 1;
        }
    }
    assert_eq!(matched, 14, "every FileLanded matches its ledger row");
    // Set-based: rows written by one transaction share its xmin; one message per transaction,
    // or a savepoint per message, would give every message's rows their own (the orders files
    // come one per message).
    let most_in_one_transaction = env
        .count(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM ops.files
                                  WHERE key LIKE '%/orders.csv' GROUP BY xmin::text) t",
        )
        .await;
    assert!(
        most_in_one_transaction >= 2,
        "expected several messages' files recorded by one transaction, the most was {most_in_one_transaction}"
    );
    ingester.stop().await;

    // A batch with a message that is not a notification: handled one by one.
    for message in [
        notification(&[(&orders(1), &etag(1), "s3:ObjectCreated:Put")]),
        b"{\"not\": \"a notification\"}".to_vec(),
        notification(&[(&orders(13), &etag(13), "s3:ObjectCreated:Put")]),
    ] {
        env.publish_raw(
            "s3",
            "lake.created",
            &message,
            lapin::BasicProperties::default(),
        )
        .await;
    }
    let ingester = env.start_ingester(&settings);
    let dead = wait_until("a message in ingester.dlq", DEADLINE, || async {
        env.take_message("ingester.dlq").await
    })
    .await;
    let reason =
        runtime::broker::header_text(&dead.delivery.properties, runtime::broker::REASON_HEADER)
            .expect("reason header");
    assert!(reason.contains("not an S3 event notification"), "{reason}");
    env.wait_count(
        "the 13th day's orders landed",
        "SELECT count(*) FROM ops.outbox WHERE event_type = 'file.landed'",
        15,
        DEADLINE,
    )
    .await;
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM ops.files WHERE key = '{}'",
            orders(1)
        ))
        .await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM ops.files").await, 16);
    ingester.stop().await;
    env.cleanup().await;
}

/// Reconcile also runs on a timer: an object whose notification is lost while the ingester
/// runs is landed by the next periodic listing, without a restart or a command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_reconcile_lands_a_file_put_while_the_ingester_runs() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[
        ("LANDFALL_RECONCILE_ON_START", "false"),
        ("LANDFALL_RECONCILE_INTERVAL_S", "1"),
    ]);
    env.wait_consuming("ingester", DEADLINE).await;
    env.set_notifications(false);
    let orders_key = key("orders.csv");
    env.put(&orders_key, data::orders_csv(1, 5)).await;
    env.wait_count(
        "the periodic reconcile to land the file",
        &format!(
            "SELECT count(*) FROM ops.files
              WHERE key = '{orders_key}' AND discovered_by = 'reconcile' AND state = 'landed'"
        ),
        1,
        DEADLINE,
    )
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM ops.outbox WHERE event_type = 'file.landed'")
            .await,
        1
    );
    ingester.stop().await;
    env.cleanup().await;
}

/// A complete batch announced by three `StagingLoaded` events at once, to two transformer
/// processes' worth of consumers, is transformed once: the events all say "ready", and the
/// batch's row lock and the transformed-files record turn all but one into no-ops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_events_for_one_complete_batch_lead_to_one_transform() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    // Declare the transformer's queue, then stop it: the three events wait there together.
    let transformer = env.start_transformer(&[]);
    env.wait_consuming("transformer", DEADLINE).await;
    transformer.stop().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    env.put(&key("orders.csv"), data::orders_csv(1, 20)).await;
    env.put(&key("reviews.csv"), data::reviews_csv(8)).await;
    env.put(&key("shipment_deliveries.csv"), data::shipments_csv(15))
        .await;
    spy.until("three files staged", DEADLINE, |seen| {
        seen.iter().filter_map(staging_loaded).count() == 3
    })
    .await;
    // Two transformers, each with two consumers: up to four handle the three events at once.
    let first = env.start_transformer(&[("LANDFALL_CONCURRENCY", "2"), ("LANDFALL_PREFETCH", "1")]);
    let second =
        env.start_transformer(&[("LANDFALL_CONCURRENCY", "2"), ("LANDFALL_PREFETCH", "1")]);
    env.wait_count(
        "the transformers to handle all three events",
        "SELECT count(*) FROM ops.processed_events
          WHERE consumer = 'transformer' AND event_type = 'staging.loaded'",
        3,
        DEADLINE,
    )
    .await;
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM ops.transform_runs
              WHERE dataset = 'ecommerce' AND ingestion_date = '{DATE}'"
        ))
        .await,
        1
    );
    assert_eq!(
        env.count("SELECT count(*) FROM ops.outbox WHERE event_type = 'transform.completed'")
            .await,
        1
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM ops.batches
              WHERE ingestion_date = '{DATE}' AND state = 'transformed'"
        ))
        .await,
        1
    );
    for service in [first, second, ingester, stager] {
        service.stop().await;
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_source_without_a_key_stages_its_distinct_rows_with_counts() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    // Lines 2–7: three distinct reviews (a five of product 1 three times, a three of product
    // 2 once, an empty one of product 4 twice).
    env.put(
        &key("reviews.csv"),
        "review,product_id\n5,1\n5,1\n3,2\n,4\n5,1\n,4\n",
    )
    .await;
    spy.until("the reviews staged", DEADLINE, |seen| {
        seen.iter().filter_map(staging_loaded).count() == 1
    })
    .await;
    let loaded = spy.seen.iter().find_map(staging_loaded).unwrap();
    assert_eq!((loaded.rows_loaded, loaded.rows_rejected), (6, 0));
    // As staged: each distinct row once, at its first line, with how many lines have it.
    assert_eq!(
        staged(&env, "SELECT _line::text, coalesce(review::text, ''), product_id::text, _count::text FROM staging_rows.reviews ORDER BY _line").await,
        [["2", "5", "1", "3"], ["4", "3", "2", "1"], ["5", "", "4", "2"]]
    );
    assert_eq!(
        staged(&env, "SELECT _line::text, coalesce(review::text, ''), product_id::text, _count::text FROM counted.reviews ORDER BY _line").await,
        [["2", "5", "1", "3"], ["4", "3", "2", "1"], ["5", "", "4", "2"]]
    );
    // staging.reviews: a row per valid line.
    assert_eq!(
        staged(&env, "SELECT coalesce(review::text, ''), product_id::text FROM staging.reviews ORDER BY _line, review").await,
        [["5", "1"], ["5", "1"], ["5", "1"], ["3", "2"], ["", "4"], ["", "4"]]
    );
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_identical_rows_keeps_memory_bounded_and_every_line() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    // 200,000 distinct reviews (stars 1–5 of products 1–40,000), each on two lines in a row:
    // more distinct rows than the stager holds at once (8 MiB, about 100,000 of these), so
    // part way it writes out what it holds and counts on. The row it had just added then is
    // staged twice, once per part, each with its part's count; every other row once, with 2.
    let mut csv = String::from("review,product_id\n");
    for product in 1..=40_000 {
        for stars in 1..=5 {
            csv.push_str(&format!("{stars},{product}\n{stars},{product}\n"));
        }
    }
    env.put(&key("reviews.csv"), csv).await;
    spy.until("the reviews staged", Duration::from_secs(180), |seen| {
        seen.iter().filter_map(staging_loaded).count() == 1
    })
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM staging.reviews").await,
        400_000
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM (SELECT review, product_id FROM staging.reviews
                                    GROUP BY 1, 2 HAVING count(*) = 2) AS twice"
        )
        .await,
        200_000
    );
    let tuples = env.count("SELECT count(*) FROM staging_rows.reviews").await;
    assert!(
        (200_001..200_010).contains(&tuples),
        "{tuples} rows staged: one per distinct row, and a few again after writing out part way"
    );
    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}
