//! A type-2 dimension's versions do not depend on the order its snapshots arrive in, also when
//! a later batch was transformed before its own (optional) snapshot file was staged.

use std::time::Duration;

use landfall_tests::TestEnv;
use landfall_tests::wait::wait_until;

const DEADLINE: Duration = Duration::from_secs(90);
const D1: &str = "2026-03-02";
const D2: &str = "2026-03-03";
const D3: &str = "2026-03-04";

/// The required files of a day: one order of customer 1 and product 1, its review and shipment.
async fn put_required(env: &TestEnv, date: &str) {
    let files = [
        (
            "orders.csv",
            format!(
                "order_id,customer_id,order_date,product_id,unit_price,quantity,total_price\n\
                 1,1,{D1},1,10.00,1,10.00\n"
            ),
        ),
        ("reviews.csv", "review,product_id\n5,1\n".to_owned()),
        (
            "shipment_deliveries.csv",
            format!("shipment_id,order_id,shipment_date,delivery_date\n1,1,{D1},\n"),
        ),
    ];
    for (file, body) in files {
        env.put(&TestEnv::landing_key(date, file), body).await;
    }
}

async fn put_customers(env: &TestEnv, date: &str, name: &str) {
    env.put(
        &TestEnv::landing_key(date, "customers.csv"),
        format!("customer_id,customer_name,postal_code\n1,{name},1000\n"),
    )
    .await;
}

async fn wait_staged(env: &TestEnv, date: &str, files: i64) {
    env.wait_count(
        &format!("{files} files of {date} staged"),
        &format!("SELECT count(*) FROM ops.staged_sources WHERE ingestion_date = '{date}'"),
        files,
        DEADLINE,
    )
    .await;
}

async fn wait_transformed_with(env: &TestEnv, date: &str, files: i64) {
    let sql = format!(
        "SELECT coalesce(max(cardinality(file_ids)), 0)::bigint FROM ops.transform_runs
          WHERE ingestion_date = '{date}'"
    );
    wait_until(
        &format!("{date} transformed from {files} files"),
        DEADLINE,
        || async { Ok((env.try_count(&sql).await? >= files).then_some(())) },
    )
    .await;
}

/// Customer 1's versions: (name, valid_from, valid_to).
async fn versions(env: &TestEnv) -> Vec<Vec<String>> {
    env.query_text(
        "SELECT customer_name, valid_from::text, coalesce(valid_to::text, 'open')
           FROM warehouse.dim_customer WHERE customer_id = 1 ORDER BY valid_from",
    )
    .await
}

/// The versions the three snapshots give when taken in date order, worked out by hand: a
/// version per run of equal names, each up to the next run's first day.
fn in_date_order(names: [&str; 3]) -> Vec<Vec<String>> {
    let days = [D1, D2, D3];
    let mut versions: Vec<Vec<String>> = Vec::new();
    for (day, name) in days.iter().zip(names) {
        if versions.last().is_some_and(|last| last[0] == name) {
            continue;
        }
        if let Some(last) = versions.last_mut() {
            last[2] = (*day).to_owned();
        }
        versions.push(vec![name.to_owned(), (*day).to_owned(), "open".to_owned()]);
    }
    versions
}

/// D3 is transformed, then D2 without its customers file (landed later), then D1 runs while
/// D2's customers file is staged but D2 not yet transformed again: for every combination of
/// names, the versions are those of the batches taken in date order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_batch_transformed_before_its_snapshot_staged_changes_no_version() {
    let mut differences = Vec::new();
    for names in [
        ["A", "B", "B"],
        ["A", "A", "B"],
        ["A", "B", "A"],
        ["A", "B", "C"],
        ["A", "A", "A"],
        ["B", "A", "A"],
    ] {
        let found = run(names).await;
        let expected = in_date_order(names);
        if found != expected {
            differences.push(format!("{names:?}: {found:?}, in date order {expected:?}"));
        }
    }
    assert!(differences.is_empty(), "{differences:#?}");
}

async fn run(names: [&str; 3]) -> Vec<Vec<String>> {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    // One consumer taking one message at a time: batches transform in the order they got ready.
    let one_at_a_time = [("LANDFALL_CONCURRENCY", "1"), ("LANDFALL_PREFETCH", "1")];
    let transformer = env.start_transformer(&one_at_a_time);

    put_required(&env, D3).await;
    put_customers(&env, D3, names[2]).await;
    wait_transformed_with(&env, D3, 4).await;
    put_required(&env, D2).await;
    wait_transformed_with(&env, D2, 3).await;

    // D1 becomes ready before D2's snapshot is staged; neither is transformed until the
    // transformer is back.
    transformer.stop().await;
    put_required(&env, D1).await;
    put_customers(&env, D1, names[0]).await;
    wait_staged(&env, D1, 4).await;
    put_customers(&env, D2, names[1]).await;
    wait_staged(&env, D2, 4).await;
    let transformer = env.start_transformer(&one_at_a_time);
    wait_transformed_with(&env, D1, 4).await;
    wait_transformed_with(&env, D2, 4).await;
    let order = env
        .query_text(
            "SELECT ingestion_date::text FROM ops.transform_runs
              WHERE cardinality(file_ids) = 4 ORDER BY run_id",
        )
        .await;
    assert_eq!(order, [[D3], [D1], [D2]], "the order of the transforms");
    let found = versions(&env).await;

    transformer.stop().await;
    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
    found
}
