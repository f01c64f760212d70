//! Deterministic sample landing files for the demo: daily orders, reviews and shipment
//! deliveries, customer and product snapshots, and a holiday calendar. A few rows are bad on
//! purpose, so the demo shows how rejects are reported.

use std::fmt::Write as _;

use chrono::{Duration, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PRODUCTS: i64 = 40;
const CUSTOMERS: i64 = 300;
const CATEGORIES: &[&str] = &["books", "garden", "kitchen", "toys", "audio", "sports"];
const HOLIDAYS: &[(&str, &str)] = &[
    ("2026-01-01", "New Year's Day"),
    ("2026-04-03", "Good Friday"),
    ("2026-04-06", "Easter Monday"),
    ("2026-05-01", "Labour Day"),
    ("2026-05-25", "Whit Monday"),
    ("2026-10-03", "Unity Day"),
    ("2026-12-25", "Christmas Day"),
    ("2026-12-26", "Boxing Day"),
];

/// One landing file: its source and contents.
pub struct SampleFile {
    pub source: &'static str,
    pub body: String,
}

/// The files of one ingestion date. `day` numbers the dates from 0, so order ids never repeat.
pub fn batch_files(date: NaiveDate, day: i64, orders_per_day: i64) -> Vec<SampleFile> {
    let mut rng = StdRng::seed_from_u64(
        date.to_string().bytes().map(u64::from).sum::<u64>() * 7919 + day as u64,
    );
    let first_order = day * orders_per_day + 1;
    let mut orders = String::from(
        "order_id,customer_id,order_date,product_id,unit_price,quantity,total_price\n",
    );
    let mut shipments = String::from("shipment_id,order_id,shipment_date,delivery_date\n");
    for order_id in first_order..first_order + orders_per_day {
        let order_date = date - Duration::days(rng.random_range(0..60));
        let product_id =
            1 + (rng.random_range(0..PRODUCTS * PRODUCTS) as f64).sqrt() as i64 % PRODUCTS;
        let cents = 199 + product_id * 137 % 9_000;
        let quantity = rng.random_range(1..5);
        let customer = rng.random_range(1..=CUSTOMERS);
        if order_id % 400 == 17 {
            // A typo a source system really makes: the demo shows it rejected with its line.
            writeln!(
                orders,
                "{order_id},{customer},{order_date},{product_id},{}.{:02},two,0",
                cents / 100,
                cents % 100
            )
            .unwrap();
            continue;
        }
        let total = cents * quantity;
        writeln!(
            orders,
            "{order_id},{customer},{order_date},{product_id},{}.{:02},{quantity},{}.{:02}",
            cents / 100,
            cents % 100,
            total / 100,
            total % 100
        )
        .unwrap();
        let roll = rng.random_range(0..100);
        let shipped = (roll >= 5).then(|| order_date + Duration::days(rng.random_range(0..9)));
        let delivered = shipped
            .filter(|_| roll >= 20)
            .map(|shipped| shipped + Duration::days(rng.random_range(1..6)));
        let show = |date: Option<NaiveDate>| date.map(|date| date.to_string()).unwrap_or_default();
        writeln!(
            shipments,
            "{},{order_id},{},{}",
            order_id + 500_000,
            show(shipped),
            show(delivered)
        )
        .unwrap();
    }
    let mut reviews = String::from("review,product_id\n");
    for _ in 0..orders_per_day * 3 / 5 {
        let review = if rng.random_range(0..12) == 0 {
            String::new()
        } else {
            rng.random_range(1..=5).to_string()
        };
        writeln!(reviews, "{review},{}", rng.random_range(1..=PRODUCTS)).unwrap();
    }
    let mut customers = String::from("customer_id,customer_name,postal_code\n");
    for id in 1..=CUSTOMERS {
        // Every few days some customers move: the snapshot changes.
        let moved = (id + day) % 37 == 0;
        writeln!(
            customers,
            "{id},Customer {id},{:05}",
            10_000 + id * 17 % 89_999 + i64::from(moved)
        )
        .unwrap();
    }
    let mut products = String::from("product_id,product_category,product_name\n");
    for id in 1..=PRODUCTS {
        let category = CATEGORIES[(id % CATEGORIES.len() as i64) as usize];
        writeln!(
            products,
            "{id},{category},\"{category} item {id}, model {}\"",
            2026 + (id + day) / 90
        )
        .unwrap();
    }
    let mut holidays = String::from("holiday_date,name\n");
    for (date, name) in HOLIDAYS {
        writeln!(holidays, "{date},{name}").unwrap();
    }
    vec![
        SampleFile {
            source: "customers",
            body: customers,
        },
        SampleFile {
            source: "products",
            body: products,
        },
        SampleFile {
            source: "holidays",
            body: holidays,
        },
        SampleFile {
            source: "orders",
            body: orders,
        },
        SampleFile {
            source: "reviews",
            body: reviews,
        },
        SampleFile {
            source: "shipment_deliveries",
            body: shipments,
        },
    ]
}
