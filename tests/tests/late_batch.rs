//! A late batch never rolls the current-state facts back (spec §2–3): when an older day lands
//! after a newer one, an order or shipment the newer day's snapshot holds keeps the newer day's
//! values, even where the newer day left the fact as an even older day had written it (so the
//! fact's `last_batch`, the batch that last changed it, is older than the late batch). A row
//! that only the late day holds is still merged.

use std::time::Duration;

use landfall_tests::{TestEnv, data};

const DEADLINE: Duration = Duration::from_secs(120);
const DAY_1: &str = "2026-04-06";
const DAY_2: &str = "2026-04-07";
const DAY_3: &str = "2026-04-08";

/// Order 5 as `data::orders_csv` writes it (quantity 5 % 5 + 1 = 1, unit price 100 + 5 · 37
/// cents), and day 2's correction of it (quantity 2).
const ORDER_5: &str = "5,6,2026-01-06,6,2.85,1,2.85";
const ORDER_5_DAY_2: &str = "5,6,2026-01-06,6,2.85,2,5.70";
/// An order only day 2 holds.
const ORDER_41_DAY_2: &str = "41,42,2026-01-14,3,4.00,1,4.00";
/// Shipment 1005 as `data::shipments_csv` writes it (5 % 4 = 1: shipped on 2026-02-06, not
/// delivered), and day 2's version of it (delivered three days later).
const SHIPMENT_1005: &str = "1005,5,2026-02-06,";
const SHIPMENT_1005_DAY_2: &str = "1005,5,2026-02-06,2026-02-09";

fn replaced(csv: &str, line: &str, with: &str) -> String {
    assert!(
        csv.lines().any(|l| l == line),
        "the fixture no longer has {line:?}"
    );
    csv.lines()
        .map(|l| if l == line { with } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

async fn land_day(env: &TestEnv, date: &str, orders: String, shipments: String) {
    let files = vec![
        ("orders.csv", orders),
        ("reviews.csv", data::reviews_csv(60)),
        ("shipment_deliveries.csv", shipments),
    ];
    env.land_day(date, files, DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_day_never_overwrites_what_a_newer_day_holds() {
    let env = TestEnv::new().await;
    let services = env.start_pipeline(&[], DEADLINE).await;
    let orders = data::orders_csv(1, 40);
    let shipments = data::shipments_csv(40);
    let orders_day_2 = replaced(&orders, ORDER_5, ORDER_5_DAY_2) + ORDER_41_DAY_2 + "\n";
    let shipments_day_2 = replaced(&shipments, SHIPMENT_1005, SHIPMENT_1005_DAY_2);

    // Days 1 and 3 agree; day 2, which lands last, differs for order 5 and shipment 1005.
    land_day(&env, DAY_1, orders.clone(), shipments.clone()).await;
    land_day(&env, DAY_3, orders.clone(), shipments.clone()).await;
    land_day(&env, DAY_2, orders_day_2, shipments_day_2).await;

    let order = |id: i64| {
        let env = &env;
        async move {
            env.query_text(&format!(
                "SELECT quantity::text, total_price::text, last_batch::text
                   FROM warehouse.fact_orders WHERE order_id = {id}"
            ))
            .await
        }
    };
    // Day 3 holds order 5 as day 1 wrote it: its fact stays so, and remembers day 1 (day 3
    // changed nothing).
    assert_eq!(order(5).await, [["1", "2.85", DAY_1]]);
    // Order 41 is in day 2 only: the late day merges it.
    assert_eq!(order(41).await, [["1", "4.00", DAY_2]]);
    let shipment = env
        .query_text(
            "SELECT coalesce(delivery_date::text, 'none'), last_batch::text
               FROM warehouse.fact_shipments WHERE shipment_id = 1005",
        )
        .await;
    assert_eq!(shipment, [["none", DAY_1]]);

    // Day 2's own reports still read day 2's snapshot: shipment 1005 (shipped 31 days after
    // its order) delivered, so one late shipment fewer than on day 1.
    let late = |date: &str| {
        let env = &env;
        let sql = format!(
            "SELECT tt_late_shipments::bigint FROM analytics.agg_shipments WHERE ingestion_date = '{date}'"
        );
        async move { env.count(&sql).await }
    };
    assert_eq!(late(DAY_2).await, late(DAY_1).await - 1);

    for service in services {
        service.stop().await;
    }
    env.cleanup().await;
}
