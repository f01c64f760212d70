//! The snapshot history `bench steady` lands: day 1 and day 2 of the three daily sources, each
//! day's files holding everything up to that day (spec §1, snapshot mode), day 2 differing from
//! day 1 by a given share of changes. Every row is computed from its id alone (a fixed hash), so
//! a row that does not change is written byte for byte the same on both days.
//!
//! With N orders, R reviews per order and a change share P, day 2 is day 1 plus:
//! - orders: N·P new orders (ids after N, placed in the 30 days before day 2) and N·P/10 of day
//!   1's orders corrected (one more item, the total with it);
//! - shipment deliveries: one per new order, and day 1's undelivered shipments filling in
//!   (never shipped → shipped, shipped → delivered) until N·P of them changed;
//! - reviews: N·P·R new reviews at the end, and N·P·R/10 of day 1's reviews withdrawn.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate};

/// The sizes and change share of a generated history.
#[derive(Debug, Clone, Copy)]
pub(super) struct History {
    pub(super) orders: i64,
    pub(super) reviews_per_order: f64,
    /// The share of rows new or changed on day 2, 0..1.
    pub(super) change: f64,
    pub(super) day1: NaiveDate,
}

/// One generated day: each source's file and its row count.
pub(super) struct Day {
    pub(super) files: Vec<(&'static str, PathBuf)>,
    pub(super) rows: Vec<(&'static str, u64)>,
}

impl Day {
    pub(super) fn described(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|(source, rows)| format!("{source} {rows}"))
            .collect();
        rows.join(", ")
    }
}

const PRODUCTS: u64 = 2_000;
const CUSTOMERS: u64 = 50_000;
const SHIPMENT_SALT: u64 = 0x5348_4950;
const CORRECTION_SALT: u64 = 0x434f_5252;
const FILL_SALT: u64 = 0x4649_4c4c;
const REVIEW_SALT: u64 = 0x5245_5649;
const WITHDRAW_SALT: u64 = 0x5749_5448;

impl History {
    pub(super) fn day2(&self) -> NaiveDate {
        self.day1 + Duration::days(1)
    }

    fn day1_reviews(&self) -> u64 {
        (self.orders as f64 * self.reviews_per_order).round() as u64
    }

    fn new_orders(&self) -> i64 {
        (self.orders as f64 * self.change).round() as i64
    }

    fn new_reviews(&self) -> u64 {
        (self.orders as f64 * self.change * self.reviews_per_order).round() as u64
    }

    /// Writes day `day` (1 or 2) of the history into `dir`.
    pub(super) fn write_day(&self, dir: &Path, day: u8) -> anyhow::Result<Day> {
        std::fs::create_dir_all(dir)?;
        let second = day == 2;
        let last_order = self.orders + if second { self.new_orders() } else { 0 };
        let mut rows = Vec::new();
        let mut files = Vec::new();
        let mut file = |source: &'static str, header: &str| {
            let path = dir.join(format!("{source}.csv"));
            files.push((source, path.clone()));
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
            out.write_all(header.as_bytes())?;
            anyhow::Ok(out)
        };

        let mut orders = file(
            "orders",
            "order_id,customer_id,order_date,product_id,unit_price,quantity,total_price\n",
        )?;
        let mut shipments = file(
            "shipment_deliveries",
            "shipment_id,order_id,shipment_date,delivery_date\n",
        )?;
        let mut line = String::with_capacity(128);
        for order_id in 1..=last_order {
            let order = self.order(order_id, second);
            line.clear();
            writeln!(
                line,
                "{order_id},{},{},{},{}.{:02},{},{}.{:02}",
                order.customer_id,
                order.order_date,
                order.product_id,
                order.unit_cents / 100,
                order.unit_cents % 100,
                order.quantity,
                order.unit_cents * order.quantity / 100,
                order.unit_cents * order.quantity % 100
            )?;
            orders.write_all(line.as_bytes())?;
            line.clear();
            let (shipped, delivered) = self.shipment(order_id, order.order_date, second);
            let show = |date: Option<NaiveDate>| date.map(|d| d.to_string()).unwrap_or_default();
            writeln!(
                line,
                "{order_id},{order_id},{},{}",
                show(shipped),
                show(delivered)
            )?;
            shipments.write_all(line.as_bytes())?;
        }
        orders.flush()?;
        shipments.flush()?;
        rows.push(("orders", last_order as u64));
        rows.push(("shipment_deliveries", last_order as u64));

        let mut reviews = file("reviews", "review,product_id\n")?;
        let last_review = self.day1_reviews() + if second { self.new_reviews() } else { 0 };
        let mut written = 0;
        for review_id in 1..=last_review {
            let withdrawn = second
                && review_id <= self.day1_reviews()
                && share(review_id ^ WITHDRAW_SALT) < self.change / 10.0;
            if withdrawn {
                continue;
            }
            let hash = mix(review_id ^ REVIEW_SALT);
            line.clear();
            if hash.is_multiple_of(12) {
                // An empty review: a star rating left blank.
                writeln!(line, ",{}", product(hash >> 8))?;
            } else {
                let product = product(hash >> 8);
                let stars = (1 + (hash >> 40) % 5 + u64::from(product.is_multiple_of(7))).min(5);
                writeln!(line, "{stars},{product}")?;
            }
            reviews.write_all(line.as_bytes())?;
            written += 1;
        }
        reviews.flush()?;
        rows.push(("reviews", written));
        Ok(Day { files, rows })
    }

    /// Order `order_id` as day 1 or day 2 has it.
    fn order(&self, order_id: i64, second: bool) -> Order {
        let hash = mix(order_id as u64);
        let new = order_id > self.orders;
        let placed = if new { self.day2() } else { self.day1 };
        let days_back = (hash >> 20) % if new { 30 } else { 365 };
        let product_id = product(hash);
        let corrected =
            second && !new && share(order_id as u64 ^ CORRECTION_SALT) < self.change / 10.0;
        Order {
            customer_id: 1 + (hash >> 32) % CUSTOMERS,
            order_date: placed - Duration::days(days_back as i64),
            product_id,
            unit_cents: 199 + product_id * 137 % 9_000,
            quantity: 1 + (hash >> 48) % 4 + u64::from(corrected),
        }
    }

    /// The shipment and delivery dates of order `order_id`'s shipment on day 1 or day 2.
    fn shipment(
        &self,
        order_id: i64,
        order_date: NaiveDate,
        second: bool,
    ) -> (Option<NaiveDate>, Option<NaiveDate>) {
        let hash = mix(order_id as u64 ^ SHIPMENT_SALT);
        // 0: not shipped, 1: shipped, not delivered, 2: delivered.
        let mut state = match hash % 100 {
            0..8 => 0,
            8..20 => 1,
            _ => 2,
        };
        // A fifth of the shipments are undelivered: filling in 5·P of them changes N·P.
        let fills = second
            && order_id <= self.orders
            && state < 2
            && share(order_id as u64 ^ FILL_SALT) < (5.0 * self.change).min(1.0);
        state += u8::from(fills);
        let shipped = order_date + Duration::days(((hash >> 8) % 9) as i64);
        let delivered = shipped + Duration::days(1 + ((hash >> 16) % 5) as i64);
        match state {
            0 => (None, None),
            1 => (Some(shipped), None),
            _ => (Some(shipped), Some(delivered)),
        }
    }
}

struct Order {
    customer_id: u64,
    order_date: NaiveDate,
    product_id: u64,
    unit_cents: u64,
    quantity: u64,
}

/// A product id, popular products more likely (the square root of a uniform draw).
fn product(hash: u64) -> u64 {
    1 + ((hash % (PRODUCTS * PRODUCTS)) as f64).sqrt() as u64 % PRODUCTS
}

/// splitmix64: a fixed, well-mixed hash of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `x` hashed to a share in [0, 1).
fn share(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn day_two_changes_the_share_asked_for_and_repeats_the_rest() {
        let dir = std::env::temp_dir().join(format!("landfall-history-{}", std::process::id()));
        let history = History {
            orders: 20_000,
            reviews_per_order: 3.0,
            change: 0.05,
            day1: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
        };
        let one = history.write_day(&dir.join("1"), 1).unwrap();
        let two = history.write_day(&dir.join("2"), 2).unwrap();
        let file = |day: &Day, source: &str| {
            let (_, path) = day.files.iter().find(|(s, _)| *s == source).unwrap();
            lines(path)
        };
        // Orders: 1000 new (5% of 20,000), about 100 (0.5%) corrected, the rest the same.
        let (orders1, orders2) = (file(&one, "orders"), file(&two, "orders"));
        assert_eq!((orders1.len(), orders2.len()), (20_000, 21_000));
        let corrected = orders1.iter().zip(&orders2).filter(|(a, b)| a != b).count();
        assert!((60..140).contains(&corrected), "{corrected} corrected");
        // Shipments: one per order; about 1000 of day 1's changed, only ever filling in.
        let (ships1, ships2) = (
            file(&one, "shipment_deliveries"),
            file(&two, "shipment_deliveries"),
        );
        assert_eq!(ships2.len(), 21_000);
        let mut filled = 0;
        for (a, b) in ships1.iter().zip(&ships2).filter(|(a, b)| a != b) {
            let empty = |line: &str| line.split(',').filter(|f| f.is_empty()).count();
            assert!(empty(b) < empty(a), "{a} -> {b} does not fill in");
            filled += 1;
        }
        assert!((850..1150).contains(&filled), "{filled} filled in");
        // Reviews: 3,000 new at the end, about 300 withdrawn.
        let (reviews1, reviews2) = (file(&one, "reviews"), file(&two, "reviews"));
        assert_eq!(reviews1.len(), 60_000);
        let withdrawn = 60_000 + 3_000 - reviews2.len();
        assert!((230..370).contains(&withdrawn), "{withdrawn} withdrawn");
        let total: u64 = two.rows.iter().map(|(_, rows)| rows).sum();
        assert_eq!(total, 21_000 * 2 + reviews2.len() as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
