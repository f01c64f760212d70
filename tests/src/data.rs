//! Small, deterministic landing files for tests.

use std::fmt::Write as _;

/// `orders.csv` with `count` orders, ids starting at `first_id`.
pub fn orders_csv(first_id: i64, count: i64) -> String {
    let mut csv = String::from(
        "order_id,customer_id,order_date,product_id,unit_price,quantity,total_price\n",
    );
    for id in first_id..first_id + count {
        let quantity = id % 5 + 1;
        let unit_cents = 100 + (id * 37) % 9_900;
        let day = id % 28 + 1;
        writeln!(
            csv,
            "{id},{},2026-01-{day:02},{},{}.{:02},{quantity},{}.{:02}",
            id % 97 + 1,
            id % 13 + 1,
            unit_cents / 100,
            unit_cents % 100,
            unit_cents * quantity / 100,
            unit_cents * quantity % 100,
        )
        .unwrap();
    }
    csv
}

/// `reviews.csv` with `count` reviews (every tenth empty).
pub fn reviews_csv(count: i64) -> String {
    let mut csv = String::from("review,product_id\n");
    for index in 0..count {
        let review = if index % 10 == 9 {
            String::new()
        } else {
            (index % 5 + 1).to_string()
        };
        writeln!(csv, "{review},{}", index % 13 + 1).unwrap();
    }
    csv
}

/// `shipment_deliveries.csv` for orders `1..=count`: some late, some undelivered, some unshipped.
pub fn shipments_csv(count: i64) -> String {
    let mut csv = String::from("shipment_id,order_id,shipment_date,delivery_date\n");
    for id in 1..=count {
        let day = id % 20 + 1;
        let (shipped, delivered) = match id % 4 {
            0 => (String::new(), String::new()),
            1 => (format!("2026-02-{day:02}"), String::new()),
            _ => (
                format!("2026-02-{day:02}"),
                format!("2026-02-{:02}", day + 3),
            ),
        };
        writeln!(csv, "{},{id},{shipped},{delivered}", 1000 + id).unwrap();
    }
    csv
}

/// The data rows of a CSV (header dropped), split into fields.
pub fn rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect()
}
