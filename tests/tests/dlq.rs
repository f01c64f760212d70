//! `landfall dlq` against real RabbitMQ, PostgreSQL and the embedded S3 server: a real
//! `file.landed` dead-letters as transient while the stager cannot reach S3, `list` and `show`
//! read it without removing it, `requeue` stages the file exactly once after the stager is
//! fixed, a second copy of the same event requeued later changes nothing, and `purge` empties
//! the queue.

use std::time::Duration;

use contract::{Event, StagingLoaded};
use landfall_tests::{TestEnv, data, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
const DATE: &str = "2026-04-01";

fn staging_loaded(event: &contract::Envelope<Event>) -> Option<&StagingLoaded> {
    match &event.payload {
        Event::StagingLoaded(loaded) => Some(loaded),
        _ => None,
    }
}

/// Ready messages in one of this test's queues (`stager.dlq`, …).
async fn depth(env: &TestEnv, queue_suffix: &str) -> anyhow::Result<u32> {
    let connection =
        lapin::Connection::connect(&env.amqp_url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let declared = channel
        .queue_declare(
            format!("{}.{queue_suffix}", env.prefix).as_str().into(),
            options,
            Default::default(),
        )
        .await;
    connection.close(200, "done".into()).await.ok();
    Ok(declared?.message_count())
}

async fn wait_for_depth(env: &TestEnv, queue_suffix: &str, expected: u32) {
    wait_until(
        &format!("{expected} message(s) in {queue_suffix}"),
        DEADLINE,
        || async { Ok((depth(env, queue_suffix).await? == expected).then_some(())) },
    )
    .await
}

/// Runs `landfall dlq …`, asserting success; returns stdout.
async fn dlq(env: &TestEnv, args: &[&str]) -> String {
    let mut full = vec!["dlq"];
    full.extend_from_slice(args);
    let output = env.landfall(&full).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "landfall {full:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// Publishes to one of this test's queues through the default exchange.
async fn publish_to_queue(
    env: &TestEnv,
    service: &str,
    body: &[u8],
    properties: lapin::BasicProperties,
) {
    let connection =
        lapin::Connection::connect(&env.amqp_url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = runtime::broker::confirm_channel(&connection).await.unwrap();
    runtime::broker::publish_confirmed(
        &channel,
        "",
        &format!("{}.{service}", env.prefix),
        body,
        properties,
    )
    .await
    .unwrap();
    connection.close(200, "done".into()).await.ok();
}

async fn wait_consuming(env: &TestEnv, service: &str) {
    wait_until(&format!("{service} consuming"), DEADLINE, || async {
        let connection =
            lapin::Connection::connect(&env.amqp_url, lapin::ConnectionProperties::default())
                .await?;
        let channel = connection.create_channel().await?;
        let options = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let queue = channel
            .queue_declare(
                format!("{}.{service}", env.prefix).as_str().into(),
                options,
                Default::default(),
            )
            .await;
        connection.close(200, "done".into()).await.ok();
        Ok(queue
            .ok()
            .filter(|queue| queue.consumer_count() > 0)
            .map(|_| ()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_file_is_listed_shown_requeued_once_and_purged() {
    let env = TestEnv::new().await;
    let mut spy = env.spy().await;
    let ingester = env.start_ingester(&[]);
    // S3 is unreachable for this stager: the file.landed fails transiently and dead-letters.
    let broken = env.start_stager(&[
        ("LANDFALL_S3_ENDPOINT", "http://127.0.0.1:9"),
        ("LANDFALL_RETRY_ATTEMPTS", "1"),
    ]);
    wait_consuming(&env, "stager").await;
    let orders_key = TestEnv::landing_key(DATE, "orders.csv");
    env.put(&orders_key, data::orders_csv(1, 20)).await;
    spy.until("file.landed", DEADLINE, |seen| {
        seen.iter().any(|event| event.event_type == "file.landed")
    })
    .await;
    let landed = spy.of_type("file.landed")[0].clone();
    let landed_id = landed.event_id.to_string();
    wait_for_depth(&env, "stager.dlq", 1).await;
    broken.stop().await;

    // A message that is not an event at all dead-letters too (permanent, at once).
    let fixed = env.start_stager(&[("LANDFALL_CONCURRENCY", "1"), ("LANDFALL_PREFETCH", "1")]);
    wait_consuming(&env, "stager").await;
    // (Straight to the stager's queue, past the event spy, which only reads events.)
    publish_to_queue(
        &env,
        "stager",
        b"this is not MessagePack",
        lapin::BasicProperties::default().with_message_id("garbage-1".into()),
    )
    .await;
    wait_for_depth(&env, "stager.dlq", 2).await;

    // list: one line per message, and reading removes nothing (twice, and the order holds).
    let listed = dlq(&env, &["list", "--service", "stager"]).await;
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("service"), "{listed}");
    let first = lines
        .iter()
        .find(|line| line.contains(&landed_id))
        .unwrap_or_else(|| panic!("the file.landed in:\n{listed}"));
    for expected in ["stager", "file.landed", "transient"] {
        assert!(first.contains(expected), "{expected} in {first}");
    }
    let second = lines
        .iter()
        .find(|line| line.contains("garbage-1"))
        .unwrap_or_else(|| panic!("the garbage message in:\n{listed}"));
    assert!(second.contains("permanent"), "{second}");
    assert!(
        second.contains("message is not a MessagePack landfall envelope"),
        "{second}"
    );
    assert!(listed.contains("2 dead-lettered message(s)"), "{listed}");
    let again = dlq(&env, &["list"]).await;
    assert!(
        again.contains(&landed_id) && again.contains("garbage-1"),
        "{again}"
    );
    assert_eq!(depth(&env, "stager.dlq").await.unwrap(), 2);
    assert_eq!(depth(&env, "ingester.dlq").await.unwrap(), 0);

    // show: headers and the decoded event.
    let shown = dlq(
        &env,
        &["show", "--service", "stager", "--message-id", &landed_id],
    )
    .await;
    for expected in [
        "x-landfall-reason: ",
        "x-landfall-error-kind: transient",
        "x-landfall-service: stager",
        "x-landfall-original-routing-key: file.landed",
        &format!("x-landfall-original-exchange: {}.events", env.prefix),
        &format!("\"key\": \"{orders_key}\""),
        "\"source\": \"orders\"",
        &format!("\"event_id\": \"{landed_id}\""),
    ] {
        assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
    }
    let position = lines
        .iter()
        .position(|line| line.contains("garbage-1"))
        .unwrap()
        - 1;
    let shown_garbage = dlq(
        &env,
        &[
            "show",
            "--service",
            "stager",
            "--index",
            &position.to_string(),
        ],
    )
    .await;
    assert!(
        shown_garbage.contains("raw body\nthis is not MessagePack"),
        "{shown_garbage}"
    );
    assert!(
        shown_garbage.contains("not an event: message is not a MessagePack landfall envelope"),
        "{shown_garbage}"
    );
    // An unknown id is an error, and still nothing is lost.
    let missing = env
        .landfall(&["dlq", "show", "--service", "stager", "--message-id", "nope"])
        .await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such message"));
    assert_eq!(depth(&env, "stager.dlq").await.unwrap(), 2);

    // requeue the file.landed: with S3 reachable now, the file is staged exactly once.
    let requeued = dlq(
        &env,
        &["requeue", "--service", "stager", "--message-id", &landed_id],
    )
    .await;
    assert!(requeued.contains("1 message(s) requeued"), "{requeued}");
    spy.until("the file staged", DEADLINE, |seen| {
        seen.iter().filter_map(staging_loaded).count() == 1
    })
    .await;
    assert_eq!(
        depth(&env, "stager.dlq").await.unwrap(),
        1,
        "the garbage stays"
    );
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 20);
    assert_eq!(
        env.count("SELECT count(*) FROM ops.files WHERE state = 'staged'")
            .await,
        1
    );

    // A second copy of the same event (same id) dead-lettered and requeued changes nothing.
    let mut headers = lapin::types::FieldTable::default();
    for (name, value) in [
        (runtime::broker::REASON_HEADER, "a copy".to_owned()),
        (runtime::broker::ERROR_KIND_HEADER, "transient".into()),
        (runtime::broker::SERVICE_HEADER, "stager".into()),
        (
            runtime::broker::ORIGINAL_ROUTING_KEY_HEADER,
            "file.landed".into(),
        ),
        (
            runtime::broker::ORIGINAL_EXCHANGE_HEADER,
            format!("{}.events", env.prefix),
        ),
    ] {
        headers.insert(name.into(), runtime::broker::long_string(&value));
    }
    env.publish_raw(
        "dlx",
        &format!("{}.stager", env.prefix),
        &landed.encode(),
        runtime::broker::event_properties(&landed_id, "file.landed", headers),
    )
    .await;
    wait_for_depth(&env, "stager.dlq", 2).await;
    let requeued = dlq(
        &env,
        &["requeue", "--service", "stager", "--message-id", &landed_id],
    )
    .await;
    assert!(requeued.contains("1 message(s) requeued"), "{requeued}");
    // A later file: the stager takes one message at a time, in order, so once it is staged
    // the duplicate before it has been handled.
    env.put(
        &TestEnv::landing_key(DATE, "reviews.csv"),
        data::reviews_csv(5),
    )
    .await;
    spy.until("the later file staged", DEADLINE, |seen| {
        seen.iter().filter_map(staging_loaded).count() == 2
    })
    .await;
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 20);
    assert_eq!(
        env.count("SELECT count(*) FROM ops.outbox WHERE event_type = 'staging.loaded'")
            .await,
        2
    );
    assert_eq!(
        spy.seen
            .iter()
            .filter_map(staging_loaded)
            .filter(|loaded| loaded.source == "orders")
            .count(),
        1
    );
    assert_eq!(depth(&env, "stager.dlq").await.unwrap(), 1);

    // purge: refused without --yes, then the queue is empty.
    let refused = env.landfall(&["dlq", "purge", "--service", "stager"]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("holds 1 message(s)"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(depth(&env, "stager.dlq").await.unwrap(), 1);
    let purged = dlq(&env, &["purge", "--service", "stager", "--yes"]).await;
    assert!(purged.contains("1 message(s) deleted"), "{purged}");
    assert_eq!(depth(&env, "stager.dlq").await.unwrap(), 0);
    let empty = dlq(&env, &["list"]).await;
    assert!(empty.contains("no dead-lettered messages"), "{empty}");

    fixed.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}
