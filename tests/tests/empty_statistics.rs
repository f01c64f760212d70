//! A first load after the warehouse was analyzed empty (an `ANALYZE` of a new database before
//! its first batch, or of emptied facts): the statistics then say the facts have no rows, and a
//! MERGE planned on them must still join the batch to the facts by hash, not by a nested loop
//! that scans the facts again for every row (and, as the MERGE writes them, reads every page
//! written so far: a first load of 204,000 orders did not finish in 60 s that way, against 1 s
//! by hash; docs/PERFORMANCE.md). The plan is what is checked, as timings are not tests; then
//! the batch is run again from its transform and its facts counted.

use std::time::Duration;

use landfall_tests::{TestEnv, data};

const DEADLINE: Duration = Duration::from_secs(120);
const DAY: &str = "2026-04-06";
const FACT_MODELS: [&str; 2] = ["fact_orders", "fact_shipments"];

/// The plan of `model`'s statement for `DAY` (the model as the transformer loads it), planned
/// with the model's own `SET LOCAL`s, in a transaction rolled back.
async fn plan(env: &mut TestEnv, model: &str) -> String {
    let models = catalog::models::Models::load(&env.datasets()).expect("the bundled models");
    let sql = &models
        .for_dataset("ecommerce")
        .and_then(|set| set.models().iter().find(|m| m.name == model))
        .unwrap_or_else(|| panic!("the ecommerce model {model}"))
        .sql;
    let settings: Vec<&str> = sql
        .lines()
        .filter(|line| line.starts_with("SET LOCAL"))
        .collect();
    let statement = &sql[sql.find("\nMERGE").expect("the model's MERGE")..];
    let tx = env.db.transaction().await.expect("a transaction");
    tx.batch_execute(&format!(
        "SELECT set_config('landfall.batch_date', '{DAY}', true); {}",
        settings.join(" ")
    ))
    .await
    .expect("the model's settings");
    let rows = tx
        .query(&format!("EXPLAIN (COSTS OFF) {statement}"), &[])
        .await
        .unwrap_or_else(|error| panic!("EXPLAIN {model}: {error}"));
    tx.rollback().await.expect("rollback");
    rows.iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_analyzed_empty_are_still_joined_by_hash() {
    let mut env = TestEnv::new().await;
    let services = env.start_pipeline(&[], DEADLINE).await;
    let files = vec![
        ("orders.csv", data::orders_csv(1, 40)),
        ("reviews.csv", data::reviews_csv(60)),
        ("shipment_deliveries.csv", data::shipments_csv(40)),
    ];
    env.land_day(DAY, files, DEADLINE).await;

    // The facts emptied and analyzed: their statistics now say zero rows and zero pages.
    for statement in [
        "TRUNCATE warehouse.fact_orders, warehouse.fact_shipments CASCADE",
        "VACUUM ANALYZE warehouse.fact_orders, warehouse.fact_shipments",
    ] {
        env.db
            .batch_execute(statement)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
    assert_eq!(
        env.count(
            "SELECT sum(reltuples)::bigint FROM pg_class
              WHERE oid IN ('warehouse.fact_orders'::regclass, 'warehouse.fact_shipments'::regclass)"
        )
        .await,
        0
    );
    for model in FACT_MODELS {
        let plan = plan(&mut env, model).await;
        assert!(
            !plan.contains("Nested Loop"),
            "{model} is planned with a nested loop on facts analyzed empty:\n{plan}"
        );
    }

    // The day again from its transform: every order and shipment is a fact again.
    env.landfall_ok(&["replay", "--dataset", "ecommerce", "--date", DAY])
        .await;
    env.wait_count(
        "the day's orders merged again",
        "SELECT count(*) FROM warehouse.fact_orders",
        40,
        DEADLINE,
    )
    .await;
    env.wait_count(
        "the day's shipments merged again",
        "SELECT count(*) FROM warehouse.fact_shipments",
        40,
        DEADLINE,
    )
    .await;
    env.wait_exported("ecommerce", DAY, DEADLINE).await;

    for service in services {
        service.stop().await;
    }
    env.cleanup().await;
}
