//! `landfall gen`: deterministic sample landing files — daily orders, reviews and shipment
//! deliveries (some shipped late, some never delivered, some never shipped), customer and
//! product snapshots that change a little from day to day, and a holiday calendar — plus, at
//! `--dirty RATE`, malformed rows of the kinds source systems really produce.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{Duration, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PRODUCTS: i64 = 40;
const CUSTOMERS: i64 = 300;
const CATEGORIES: &[&str] = &["books", "garden", "kitchen", "toys", "audio", "sports"];
const HOLIDAYS: &[(&str, &str)] = &[
    ("2025-01-01", "New Year's Day"),
    ("2025-04-18", "Good Friday"),
    ("2025-04-21", "Easter Monday"),
    ("2025-05-01", "Labour Day"),
    ("2025-11-19", "Day of Prayer and Repentance"),
    ("2025-12-25", "Christmas Day"),
    ("2025-12-26", "Boxing Day"),
    ("2026-01-01", "New Year's Day"),
    ("2026-04-03", "Good Friday"),
    ("2026-04-06", "Easter Monday"),
    ("2026-05-01", "Labour Day"),
    ("2026-05-25", "Whit Monday"),
    ("2026-10-03", "Unity Day"),
    ("2026-11-18", "Day of Prayer and Repentance"),
    ("2026-12-25", "Christmas Day"),
    ("2026-12-26", "Boxing Day"),
];

/// What to generate.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// The dataset: `gen` makes sample files for the bundled ecommerce or online_retail; `demo`
    /// lands files for it (any defined dataset with --input).
    #[arg(long, default_value = "ecommerce")]
    pub dataset: String,
    /// Ingestion dates to generate, ending with --last-date.
    #[arg(long, default_value_t = 3)]
    pub days: i64,
    /// The last ingestion date generated (YYYY-MM-DD).
    #[arg(long, default_value = "2026-11-25")]
    pub last_date: NaiveDate,
    /// Orders per day (online_retail: invoices per day).
    #[arg(long, default_value_t = 1000)]
    pub orders_per_day: i64,
    /// Share of malformed rows in orders, reviews and shipments (online_retail: invoice lines),
    /// 0 to 0.5.
    #[arg(long, default_value_t = 0.002)]
    pub dirty: f64,
}

impl GenArgs {
    /// The ingestion dates, oldest first.
    pub fn dates(&self) -> Vec<NaiveDate> {
        (0..self.days)
            .map(|day| self.last_date - Duration::days(self.days - 1 - day))
            .collect()
    }
}

/// One landing file: its source and contents.
pub struct SampleFile {
    pub source: &'static str,
    pub body: String,
}

/// Writes `<out>/<YYYY-MM-DD>/<source>.csv` for every date; returns how many files.
pub fn write(args: &GenArgs, out: &Path) -> anyhow::Result<usize> {
    match args.dataset.as_str() {
        "ecommerce" => {}
        "online_retail" => return crate::sample_retail::write(args, out),
        other => anyhow::bail!(
            "landfall gen makes files for the bundled datasets ecommerce and online_retail, not '{other}'"
        ),
    }
    anyhow::ensure!(
        (0.0..=0.5).contains(&args.dirty),
        "--dirty must lie between 0 and 0.5"
    );
    anyhow::ensure!(
        args.days >= 1 && args.orders_per_day >= 1,
        "--days and --orders-per-day must be at least 1"
    );
    let mut written = 0;
    for (day, date) in args.dates().into_iter().enumerate() {
        let dir = out.join(date.to_string());
        std::fs::create_dir_all(&dir)?;
        for file in batch_files(date, day as i64, args.orders_per_day, args.dirty) {
            std::fs::write(dir.join(format!("{}.csv", file.source)), file.body)?;
            written += 1;
        }
    }
    Ok(written)
}

/// The files of one ingestion date. `day` numbers the dates from 0 so order ids never repeat;
/// in snapshot mode each day carries every order so far.
pub fn batch_files(date: NaiveDate, day: i64, orders_per_day: i64, dirty: f64) -> Vec<SampleFile> {
    let mut orders = String::from(
        "order_id,customer_id,order_date,product_id,unit_price,quantity,total_price\n",
    );
    let mut shipments = String::from("shipment_id,order_id,shipment_date,delivery_date\n");
    let mut reviews = String::from("review,product_id\n");
    // Each day's orders come from their own seed, so earlier days' rows repeat exactly.
    for past in 0..=day {
        let order_day = date - Duration::days(day - past);
        let mut rng = StdRng::seed_from_u64(7919 * past as u64 + 17);
        for order_id in past * orders_per_day + 1..(past + 1) * orders_per_day + 1 {
            write_order(
                &mut rng,
                order_day,
                order_id,
                dirty,
                &mut orders,
                &mut shipments,
            );
        }
    }
    let mut rng = StdRng::seed_from_u64(104_729 * day as u64 + 3);
    for _ in 0..orders_per_day * (day + 1) * 3 / 5 {
        let review = if rng.random_bool(dirty) {
            ["7", "five", "0"][rng.random_range(0..3)].to_owned()
        } else if rng.random_range(0..12) == 0 {
            String::new()
        } else {
            // Popular products get more, and better, reviews.
            let product = rng.random_range(1..=PRODUCTS);
            let stars = (1 + rng.random_range(0..5) + i64::from(product % 7 == 0)).min(5);
            writeln!(reviews, "{stars},{product}").unwrap();
            continue;
        };
        writeln!(reviews, "{review},{}", rng.random_range(1..=PRODUCTS)).unwrap();
    }
    vec![
        SampleFile {
            source: "customers",
            body: customers(day),
        },
        SampleFile {
            source: "products",
            body: products(day),
        },
        SampleFile {
            source: "holidays",
            body: holidays(),
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

/// One order and its shipment: most delivered, some shipped late, some never delivered or
/// never shipped.
fn write_order(
    rng: &mut StdRng,
    day: NaiveDate,
    order_id: i64,
    dirty: f64,
    orders: &mut String,
    shipments: &mut String,
) {
    let order_date = day - Duration::days(rng.random_range(0..90));
    let product_id = 1 + (rng.random_range(0..PRODUCTS * PRODUCTS) as f64).sqrt() as i64 % PRODUCTS;
    let cents = 199 + product_id * 137 % 9_000;
    let quantity = rng.random_range(1..5);
    let customer = rng.random_range(1..=CUSTOMERS);
    if rng.random_bool(dirty) {
        let bad = match rng.random_range(0..4) {
            0 => format!(
                "{order_id},{customer},{order_date},{product_id},{}.{:02},two,0",
                cents / 100,
                cents % 100
            ),
            1 => format!(
                "{order_id},{customer},{}-13-45,{product_id},1.00,1,1.00",
                order_date.format("%Y")
            ),
            2 => format!("{order_id},{customer},{order_date},{product_id},-4.00,1,-4.00"),
            _ => format!(",{customer},{order_date},{product_id},1.00,1,1.00"),
        };
        writeln!(orders, "{bad}").unwrap();
        return;
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
    if rng.random_bool(dirty) {
        writeln!(shipments, "{},{order_id},yesterday,", order_id + 500_000).unwrap();
        return;
    }
    writeln!(
        shipments,
        "{},{order_id},{},{}",
        order_id + 500_000,
        show(shipped),
        show(delivered)
    )
    .unwrap();
}

fn customers(day: i64) -> String {
    let mut csv = String::from("customer_id,customer_name,postal_code\n");
    for id in 1..=CUSTOMERS {
        // Every day a few customers move: the snapshot changes.
        let moves = (0..=day).filter(|past| (id + past) % 37 == 0).count() as i64;
        writeln!(
            csv,
            "{id},Customer {id},{:05}",
            10_000 + id * 17 % 89_999 + moves
        )
        .unwrap();
    }
    csv
}

fn products(day: i64) -> String {
    let mut csv = String::from("product_id,product_category,product_name\n");
    for id in 1..=PRODUCTS {
        let category = CATEGORIES[(id % CATEGORIES.len() as i64) as usize];
        // Product `day` gets a new model name on day `day`.
        let model = 2026 + i64::from(id <= day);
        writeln!(
            csv,
            "{id},{category},\"{category} item {id}, model {model}\""
        )
        .unwrap();
    }
    csv
}

fn holidays() -> String {
    let mut csv = String::from("holiday_date,name\n");
    for (date, name) in HOLIDAYS {
        writeln!(csv, "{date},{name}").unwrap();
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_repeat_earlier_orders_exactly_and_dirt_is_measured() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let day0 = batch_files(date - Duration::days(1), 0, 200, 0.0);
        let day1 = batch_files(date, 1, 200, 0.0);
        let orders0 = &day0.iter().find(|f| f.source == "orders").unwrap().body;
        let orders1 = &day1.iter().find(|f| f.source == "orders").unwrap().body;
        assert!(
            orders1.starts_with(orders0.as_str()),
            "day 1 carries day 0's orders unchanged"
        );
        assert_eq!(orders1.lines().count(), 401);
        let dirty = batch_files(date, 0, 1000, 0.1);
        let bad = dirty
            .iter()
            .find(|f| f.source == "orders")
            .unwrap()
            .body
            .lines()
            .filter(|l| {
                l.contains("two") || l.contains("-13-") || l.contains("-4.00") || l.starts_with(',')
            })
            .count();
        assert!((50..200).contains(&bad), "about 10% dirty, got {bad}");
    }

    fn body<'a>(files: &'a [SampleFile], source: &str) -> &'a str {
        &files.iter().find(|f| f.source == source).unwrap().body
    }

    /// The shapes the reports exist for are all in the sample (spec §3, `agg_shipments`):
    /// delivered shipments; late ones (shipped 6 or more days after the order, not delivered);
    /// undelivered ones (never shipped, ordered 15 or more days before the batch date); and
    /// snapshots that change between days, and the holiday calendar.
    #[test]
    fn samples_hold_every_shape_the_reports_look_for() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let day0 = batch_files(date - Duration::days(1), 0, 2000, 0.0);
        let day1 = batch_files(date, 1, 2000, 0.0);
        let orders: std::collections::HashMap<&str, NaiveDate> = body(&day0, "orders")
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                (fields[0], fields[2].parse().unwrap())
            })
            .collect();
        let (mut delivered, mut late, mut undelivered) = (0, 0, 0);
        for line in body(&day0, "shipment_deliveries").lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            let ordered = orders[fields[1]];
            match (fields[2], fields[3]) {
                ("", "") if ordered + Duration::days(15) <= date - Duration::days(1) => {
                    undelivered += 1
                }
                ("", "") => {}
                (shipped, "") => {
                    let shipped: NaiveDate = shipped.parse().unwrap();
                    if shipped >= ordered + Duration::days(6) {
                        late += 1;
                    }
                }
                (shipped, delivered_on) => {
                    let shipped: NaiveDate = shipped.parse().unwrap();
                    let delivered_on: NaiveDate = delivered_on.parse().unwrap();
                    assert!(shipped >= ordered && delivered_on > shipped, "{line}");
                    delivered += 1;
                }
            }
        }
        for (what, count) in [
            ("delivered", delivered),
            ("late", late),
            ("undelivered", undelivered),
        ] {
            assert!(count >= 20, "{what}: only {count} of 2000 shipments");
        }
        assert_ne!(body(&day0, "customers"), body(&day1, "customers"));
        assert_ne!(body(&day0, "products"), body(&day1, "products"));
        // Day 1 renames product 1 (a type-2 change) and no other.
        let renamed: Vec<(&str, &str)> = body(&day0, "products")
            .lines()
            .zip(body(&day1, "products").lines())
            .filter(|(before, after)| before != after)
            .collect();
        assert_eq!(renamed.len(), 1, "{renamed:?}");
        assert!(renamed[0].1.starts_with("1,"), "{renamed:?}");
        let holidays = body(&day0, "holidays");
        assert!(holidays.lines().count() > 10, "{holidays}");
        assert!(holidays.starts_with("holiday_date,name\n"));
    }
}
