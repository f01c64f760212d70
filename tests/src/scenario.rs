//! Seeded scenarios: a few days of snapshot-mode `ecommerce` files with the things real
//! deliveries do — renamed products and customers, late corrections of old days (changed
//! quantities and prices, shipments delivered later, rows removed), a holiday added to the
//! calendar on a later day, re-deliveries of identical data in another legal form (shuffled
//! columns, every field quoted, gzip, a UTF-8 BOM, CRLF, the `amount` alias), days landing out
//! of order and the same file delivered twice.
//!
//! A scenario is the list of uploads in landing order plus the logical content of the last
//! version of each `(date, source)`, which [`crate::reference`] reads back from the bytes.
//! Every row is valid (nothing is rejected), so the pipeline and the reference read the same
//! input. Members are never removed from the customers and products snapshots: the type-2
//! dimensions do not track deletions from a snapshot, so the "as of D" product would differ.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;

use chrono::{Datelike as _, Days, Months, NaiveDate, Weekday};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom as _, SliceRandom as _};
use rand::{Rng as _, SeedableRng as _};

use crate::reference::{Customer, DayFiles, Holiday, Order, Product, Review, Shipment};

/// One object put into the landing area.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub body: Vec<u8>,
    /// What this upload is, for failure messages (e.g. "2026-03-02 orders: correction, gzip").
    pub what: String,
}

/// A generated history: uploads in landing order and the final logical content.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    /// The batch dates, ascending.
    pub dates: Vec<NaiveDate>,
    pub uploads: Vec<Upload>,
    /// The last delivered version of each `(date, source)`, as typed rows.
    pub logical: BTreeMap<NaiveDate, DayFiles>,
    /// Products whose name changed on some day (id → every name it had), for messages.
    pub renamed_products: BTreeMap<i64, Vec<String>>,
    /// Holidays added to the calendar after the first day: (from batch date, holiday date).
    pub added_holidays: Vec<(NaiveDate, NaiveDate)>,
}

/// How a file is written: all legal forms of the same rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// Column order as indexes into the source's columns.
    pub order: Vec<usize>,
    pub quote_all: bool,
    pub bom: bool,
    pub gzip: bool,
    pub crlf: bool,
    /// `amount` instead of `total_price` (orders only).
    pub alias_amount: bool,
    /// Money as `12.5` and `12` instead of `12.50` and `12.00`.
    pub short_money: bool,
}

impl Form {
    /// The plain form: columns in their usual order, quotes only where needed, LF.
    pub fn plain(source: &str) -> Form {
        Form {
            order: (0..columns(source).len()).collect(),
            quote_all: false,
            bom: false,
            gzip: false,
            crlf: false,
            alias_amount: false,
            short_money: false,
        }
    }

    /// A random legal form.
    pub fn random(source: &str, rng: &mut StdRng) -> Form {
        let mut order: Vec<usize> = (0..columns(source).len()).collect();
        order.shuffle(rng);
        Form {
            order,
            quote_all: rng.random_bool(0.4),
            bom: rng.random_bool(0.4),
            gzip: rng.random_bool(0.4),
            crlf: rng.random_bool(0.3),
            alias_amount: source == "orders" && rng.random_bool(0.3),
            short_money: rng.random_bool(0.4),
        }
    }

    /// Only the column order differs from the plain form (reversed, so it surely differs).
    pub fn reordered(source: &str) -> Form {
        let mut form = Form::plain(source);
        form.order.reverse();
        form
    }

    fn describe(&self) -> String {
        describe_form(
            Vec::new(),
            &self.order,
            &[
                (self.quote_all, "all quoted"),
                (self.bom, "BOM"),
                (self.gzip, "gzip"),
                (self.crlf, "CRLF"),
                (self.alias_amount, "amount alias"),
                (self.short_money, "short money"),
            ],
        )
    }
}

/// How a file is written, for failure messages: `parts` said already, "columns shuffled" when
/// `order` is not ascending, then each flag that is on; "plain" for none.
pub(crate) fn describe_form(
    mut parts: Vec<&'static str>,
    order: &[usize],
    flags: &[(bool, &'static str)],
) -> String {
    if order.windows(2).any(|pair| pair[0] > pair[1]) {
        parts.push("columns shuffled");
    }
    parts.extend(flags.iter().filter(|(on, _)| *on).map(|(_, name)| *name));
    if parts.is_empty() {
        "plain".into()
    } else {
        parts.join(", ")
    }
}

/// A source's columns in their usual order.
pub fn columns(source: &str) -> &'static [&'static str] {
    match source {
        "orders" => &[
            "order_id",
            "customer_id",
            "order_date",
            "product_id",
            "unit_price",
            "quantity",
            "total_price",
        ],
        "reviews" => &["review", "product_id"],
        "shipment_deliveries" => &["shipment_id", "order_id", "shipment_date", "delivery_date"],
        "customers" => &["customer_id", "customer_name", "postal_code"],
        "products" => &["product_id", "product_category", "product_name"],
        "holidays" => &["holiday_date", "name"],
        other => panic!("unknown source {other}"),
    }
}

/// `landing/ecommerce/ingestion_date=<date>/<source>.csv[.gz]`.
pub fn landing_key(date: NaiveDate, source: &str, gzip: bool) -> String {
    let suffix = if gzip { ".csv.gz" } else { ".csv" };
    format!("landing/ecommerce/ingestion_date={date}/{source}{suffix}")
}

/// Cents as a decimal amount; `short` drops trailing zeros (`12.50` → `12.5`, `3.00` → `3`).
pub(crate) fn money(cents: i64, short: bool) -> String {
    let text = format!("{}.{:02}", cents / 100, cents % 100);
    if short {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn date_text(date: Option<NaiveDate>) -> String {
    date.map(|date| date.to_string()).unwrap_or_default()
}

/// The source's rows of `files` as fields in the usual column order (empty: NULL).
fn fields(files: &DayFiles, source: &str, short_money: bool) -> Vec<Vec<String>> {
    match source {
        "orders" => files
            .orders
            .as_ref()
            .expect("the rows to write")
            .iter()
            .map(|o| {
                vec![
                    o.order_id.to_string(),
                    o.customer_id.to_string(),
                    o.order_date.to_string(),
                    o.product_id.to_string(),
                    money(o.unit_price, short_money),
                    o.quantity.to_string(),
                    money(o.total_price, short_money),
                ]
            })
            .collect(),
        "reviews" => files
            .reviews
            .as_ref()
            .expect("the rows to write")
            .iter()
            .map(|r| {
                vec![
                    r.review.map(|stars| stars.to_string()).unwrap_or_default(),
                    r.product_id.to_string(),
                ]
            })
            .collect(),
        "shipment_deliveries" => files
            .shipment_deliveries
            .as_ref()
            .expect("the rows to write")
            .iter()
            .map(|s| {
                vec![
                    s.shipment_id.to_string(),
                    s.order_id.to_string(),
                    date_text(s.shipment_date),
                    date_text(s.delivery_date),
                ]
            })
            .collect(),
        "customers" => files
            .customers
            .as_ref()
            .expect("the rows to write")
            .iter()
            .map(|c| {
                vec![
                    c.customer_id.to_string(),
                    c.customer_name.clone(),
                    c.postal_code.clone(),
                ]
            })
            .collect(),
        "products" => files
            .products
            .as_ref()
            .expect("the rows to write")
            .iter()
            .map(|p| {
                vec![
                    p.product_id.to_string(),
                    p.product_category.clone(),
                    p.product_name.clone(),
                ]
            })
            .collect(),
        "holidays" => files
            .holidays
            .as_ref()
            .expect("the rows to write")
            .iter()
            .map(|h| vec![h.holiday_date.to_string(), h.name.clone()])
            .collect(),
        other => panic!("unknown source {other}"),
    }
}

/// One RFC 4180 field, quoted when it must be or when `quote_all`.
pub(crate) fn csv_field(value: &str, quote_all: bool) -> String {
    if quote_all || value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The bytes of `source`'s file of `files` in `form`.
pub fn encode(files: &DayFiles, source: &str, form: &Form) -> Vec<u8> {
    let names = columns(source);
    let line_end = if form.crlf { "\r\n" } else { "\n" };
    let mut text = String::new();
    if form.bom {
        text.push('\u{feff}');
    }
    let header: Vec<String> = form
        .order
        .iter()
        .map(|&index| {
            let name = names[index];
            let name = if name == "total_price" && form.alias_amount {
                "amount"
            } else {
                name
            };
            csv_field(name, form.quote_all)
        })
        .collect();
    text.push_str(&header.join(","));
    text.push_str(line_end);
    for row in fields(files, source, form.short_money) {
        let row: Vec<String> = form
            .order
            .iter()
            .map(|&index| csv_field(&row[index], form.quote_all))
            .collect();
        text.push_str(&row.join(","));
        text.push_str(line_end);
    }
    if form.gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).expect("gzip in memory");
        encoder.finish().expect("gzip in memory")
    } else {
        text.into_bytes()
    }
}

/// Copies `source`'s rows from `from` into `to`.
pub fn copy_source(from: &DayFiles, to: &mut DayFiles, source: &str) {
    match source {
        "orders" => to.orders = from.orders.clone(),
        "reviews" => to.reviews = from.reviews.clone(),
        "shipment_deliveries" => to.shipment_deliveries = from.shipment_deliveries.clone(),
        "customers" => to.customers = from.customers.clone(),
        "products" => to.products = from.products.clone(),
        "holidays" => to.holidays = from.holidays.clone(),
        other => panic!("unknown source {other}"),
    }
}

/// Builds the upload list while keeping the logical content of each `(date, source)` in step.
/// It never puts bytes to a key that held them before unless they are the key's current bytes
/// (an object changed back to an older version would look like a duplicate to the ledger,
/// which keys files by key and ETag).
#[derive(Debug, Default)]
pub struct Uploader {
    pub uploads: Vec<Upload>,
    pub logical: BTreeMap<NaiveDate, DayFiles>,
    history: HashMap<String, Vec<Vec<u8>>>,
}

impl Uploader {
    /// Delivers `source` of `files` for `date` in `form`; false (and nothing delivered) when
    /// those bytes would bring back an older version of the key.
    pub fn deliver(
        &mut self,
        date: NaiveDate,
        source: &str,
        files: &DayFiles,
        form: &Form,
        why: &str,
    ) -> bool {
        let key = landing_key(date, source, form.gzip);
        let body = encode(files, source, form);
        let versions = self.history.entry(key.clone()).or_default();
        if versions.contains(&body) && versions.last() != Some(&body) {
            return false;
        }
        versions.push(body.clone());
        copy_source(files, self.logical.entry(date).or_default(), source);
        self.uploads.push(Upload {
            key,
            body,
            what: format!("{date} {source}: {why} ({})", form.describe()),
        });
        true
    }

    /// Puts the last upload again, byte for byte.
    pub fn repeat_last(&mut self) {
        if let Some(last) = self.uploads.last().cloned() {
            self.uploads.push(Upload {
                what: format!("{} — delivered again, identical", last.what),
                ..last
            });
        }
    }
}

const PRODUCT_NAMES: [&str; 20] = [
    "Atlas",
    "Kite",
    "Radio",
    "Lamp, \"Retro\"",
    "Mug",
    "Pen",
    "Sock",
    "Tent",
    "Drum",
    "Soap",
    "Café Table",
    "Chair",
    "Desk",
    "Fan",
    "Globe",
    "Hat",
    "Ink",
    "Jar",
    "Key \"Master\"",
    "Log",
];
const CATEGORIES: [&str; 5] = ["books", "toys", "audio", "home", "kitchen"];
const CUSTOMER_NAMES: [&str; 10] = [
    "Ada", "Bob", "Cem", "Dana", "Eve", "Finn", "Gül", "Hana", "Ivo", "Jo",
];
/// Ordered in orders but never in a products snapshot: the unknown member.
pub const UNKNOWN_PRODUCT: i64 = 99;

/// A shipment's fate, relative to its order date.
#[derive(Debug, Clone)]
struct ShipPlan {
    shipment_id: i64,
    order_id: i64,
    /// Days from the order to shipping; None: never ships.
    ship_after: Option<u64>,
    /// Days from shipping to delivery; None: never delivered.
    deliver_after: Option<u64>,
}

/// The live world the daily snapshots are taken of.
struct World {
    dates: Vec<NaiveDate>,
    /// (order, index of the first batch that carries it).
    orders: Vec<(Order, usize)>,
    /// (order_id, from batch index, new quantity): an order amended on a day.
    amendments: Vec<(i64, usize, i64)>,
    shipments: Vec<ShipPlan>,
    reviews: Vec<(Review, usize)>,
    products: Vec<Product>,
    /// (product_id, from batch index, new name).
    product_renames: Vec<(i64, usize, String)>,
    customers: Vec<Customer>,
    customer_renames: Vec<(i64, usize, String, String)>,
    calendar: Vec<Holiday>,
    /// (from batch index, holiday).
    added_holidays: Vec<(usize, Holiday)>,
}

impl World {
    /// Batch `day`'s snapshot of every source.
    fn snapshot(&self, day: usize) -> DayFiles {
        let date = self.dates[day];
        let orders: Vec<Order> = self
            .orders
            .iter()
            .filter(|(_, from)| *from <= day)
            .map(|(order, _)| {
                let mut order = order.clone();
                for (id, from, quantity) in &self.amendments {
                    if *id == order.order_id && *from <= day {
                        order.quantity = *quantity;
                        order.total_price = order.unit_price * quantity;
                    }
                }
                order
            })
            .collect();
        let order_dates: BTreeMap<i64, NaiveDate> =
            orders.iter().map(|o| (o.order_id, o.order_date)).collect();
        let shipments = self
            .shipments
            .iter()
            .filter_map(|plan| {
                let order_date = *order_dates.get(&plan.order_id)?;
                let shipped = plan
                    .ship_after
                    .map(|after| order_date + Days::new(after))
                    .filter(|shipped| *shipped <= date);
                let delivered = shipped
                    .zip(plan.deliver_after)
                    .map(|(shipped, after)| shipped + Days::new(after))
                    .filter(|delivered| *delivered <= date);
                Some(Shipment {
                    shipment_id: plan.shipment_id,
                    order_id: plan.order_id,
                    shipment_date: shipped,
                    delivery_date: delivered,
                })
            })
            .collect();
        let reviews = self
            .reviews
            .iter()
            .filter(|(_, from)| *from <= day)
            .map(|(review, _)| review.clone())
            .collect();
        let products = self
            .products
            .iter()
            .map(|product| {
                let mut product = product.clone();
                for (id, from, name) in &self.product_renames {
                    if *id == product.product_id && *from <= day {
                        product.product_name = name.clone();
                    }
                }
                product
            })
            .collect();
        let customers = self
            .customers
            .iter()
            .map(|customer| {
                let mut customer = customer.clone();
                for (id, from, name, postal_code) in &self.customer_renames {
                    if *id == customer.customer_id && *from <= day {
                        customer.customer_name = name.clone();
                        customer.postal_code = postal_code.clone();
                    }
                }
                customer
            })
            .collect();
        let mut holidays = self.calendar.clone();
        for (from, holiday) in &self.added_holidays {
            if *from <= day {
                holidays.push(holiday.clone());
            }
        }
        holidays.sort_by_key(|holiday| holiday.holiday_date);
        DayFiles {
            orders: Some(orders),
            reviews: Some(reviews),
            shipment_deliveries: Some(shipments),
            customers: Some(customers),
            products: Some(products),
            holidays: Some(holidays),
        }
    }
}

fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The next weekday on or after `date`.
fn weekday_from(mut date: NaiveDate) -> NaiveDate {
    while !is_weekday(date) {
        date = date + Days::new(1);
    }
    date
}

impl Scenario {
    /// The scenario of `seed`: 4–6 days, 50–300 orders, 20 products (and one unknown).
    pub fn generate(seed: u64) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let days = rng.random_range(4..=6usize);
        let first =
            NaiveDate::from_ymd_opt(2025, 3, 3).unwrap() + Days::new(rng.random_range(0..400));
        let mut dates = vec![first];
        for _ in 1..days {
            let gap = if rng.random_bool(0.2) { 2 } else { 1 };
            dates.push(*dates.last().unwrap() + Days::new(gap));
        }
        let world = generate_world(&mut rng, &dates);

        let mut up = Uploader::default();
        let snapshots: Vec<DayFiles> = (0..days).map(|day| world.snapshot(day)).collect();
        // Days land out of order: one pair of neighbours swapped (most seeds).
        let mut day_order: Vec<usize> = (0..days).collect();
        if rng.random_bool(0.8) {
            let at = rng.random_range(0..days - 1);
            day_order.swap(at, at + 1);
        }
        let mut landed: Vec<(usize, &str)> = Vec::new();
        for (position, &day) in day_order.iter().enumerate() {
            let mut sources = crate::reference::SOURCES.to_vec();
            sources.shuffle(&mut rng);
            for source in sources {
                let form = if rng.random_bool(0.6) {
                    Form::plain(source)
                } else {
                    Form::random(source, &mut rng)
                };
                up.deliver(dates[day], source, &snapshots[day], &form, "the day's file");
                landed.push((day, source));
                if rng.random_bool(0.06) {
                    up.repeat_last();
                }
            }
            // Now and then an earlier file again: the same rows in another form.
            if position > 0 && rng.random_bool(0.5) {
                redeliver_identical(&mut rng, &mut up, &dates, &landed);
            }
        }
        // Late corrections of one or two old days.
        let mut corrected = BTreeSet::new();
        for _ in 0..rng.random_range(1..=2) {
            let day = rng.random_range(0..days - 1);
            corrected.insert(day);
            let mut files = up.logical[&dates[day]].clone();
            correct(&mut rng, &mut files, dates[day]);
            for source in ["orders", "shipment_deliveries", "reviews"] {
                let form = if rng.random_bool(0.5) {
                    Form::plain(source)
                } else {
                    Form::random(source, &mut rng)
                };
                if !up.deliver(dates[day], source, &files, &form, "late correction") {
                    up.deliver(
                        dates[day],
                        source,
                        &files,
                        &Form::reordered(source),
                        "late correction",
                    );
                }
            }
        }
        for _ in 0..rng.random_range(1..=2) {
            redeliver_identical(&mut rng, &mut up, &dates, &landed);
        }
        if rng.random_bool(0.5) {
            up.repeat_last();
        }
        let mut renamed_products: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (id, _, name) in &world.product_renames {
            let old = world
                .products
                .iter()
                .find(|product| product.product_id == *id)
                .map(|product| product.product_name.clone())
                .unwrap_or_default();
            renamed_products
                .entry(*id)
                .or_insert_with(|| vec![old])
                .push(name.clone());
        }
        Scenario {
            seed,
            dates: dates.clone(),
            uploads: up.uploads,
            logical: up.logical,
            renamed_products,
            added_holidays: world
                .added_holidays
                .iter()
                .map(|(from, holiday)| (dates[*from], holiday.holiday_date))
                .collect(),
        }
    }

    /// The bug this suite was written for: three days land in order; the best product of day
    /// 1 (it has the most reviews by construction) is renamed on day 2; then day 1's orders,
    /// reviews and shipment deliveries are delivered again, the same rows in another column
    /// order. Day 1's `best_performing_product.product_name` must stay the day-1 name.
    pub fn renamed_best_product() -> Scenario {
        let d1 = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let dates = vec![d1, d1 + Days::new(1), d1 + Days::new(2)];
        let products = |day: usize| -> Vec<Product> {
            (1..=5)
                .map(|id| Product {
                    product_id: id,
                    product_category: "toys".into(),
                    product_name: match (id, day) {
                        (3, 0) => "Kite".into(),
                        (3, _) => "Kite Pro".into(),
                        (id, _) => format!("Product {id}"),
                    },
                })
                .collect()
        };
        let mut orders = Vec::new();
        let mut shipments = Vec::new();
        for id in 1..=20 {
            let order_date = d1 - Days::new(40 - id as u64);
            orders.push(Order {
                order_id: id,
                customer_id: id % 4 + 1,
                order_date,
                product_id: id % 5 + 1,
                unit_price: 250 * id,
                quantity: id % 3 + 1,
                total_price: 250 * id * (id % 3 + 1),
            });
            shipments.push(Shipment {
                shipment_id: 100 + id,
                order_id: id,
                shipment_date: (id % 4 != 0).then(|| order_date + Days::new(id as u64 % 8)),
                delivery_date: (id % 3 == 0).then(|| order_date + Days::new(9)),
            });
        }
        // Product 3 (Kite): 6 reviews; every other product at most 3.
        let mut reviews = Vec::new();
        for (stars, product_id) in [
            (5, 3),
            (5, 3),
            (4, 3),
            (4, 3),
            (1, 3),
            (5, 3),
            (5, 1),
            (5, 1),
            (5, 1),
            (3, 2),
            (2, 4),
            (4, 5),
        ] {
            reviews.push(Review {
                review: Some(stars),
                product_id,
            });
        }
        reviews.push(Review {
            review: None,
            product_id: 1,
        });
        let customers: Vec<Customer> = (1..=4)
            .map(|id| Customer {
                customer_id: id,
                customer_name: CUSTOMER_NAMES[id as usize].into(),
                postal_code: format!("{:05}", id * 1111),
            })
            .collect();
        let holidays = vec![Holiday {
            holiday_date: d1 - Days::new(28),
            name: "Spring Day".into(),
        }];
        let mut up = Uploader::default();
        for (day, &date) in dates.iter().enumerate() {
            let files = DayFiles {
                orders: Some(orders.clone()),
                reviews: Some(reviews.clone()),
                shipment_deliveries: Some(shipments.clone()),
                customers: Some(customers.clone()),
                products: Some(products(day)),
                holidays: Some(holidays.clone()),
            };
            for source in crate::reference::SOURCES {
                up.deliver(date, source, &files, &Form::plain(source), "the day's file");
            }
        }
        let day1 = up.logical[&d1].clone();
        for source in ["orders", "reviews", "shipment_deliveries"] {
            up.deliver(
                d1,
                source,
                &day1,
                &Form::reordered(source),
                "day 1 again, columns reordered",
            );
        }
        Scenario {
            seed: 0,
            dates,
            uploads: up.uploads,
            logical: up.logical,
            renamed_products: BTreeMap::from([(3, vec!["Kite".into(), "Kite Pro".into()])]),
            added_holidays: Vec::new(),
        }
    }
}

/// Re-delivers one landed `(day, source)` with its current rows in another random form.
fn redeliver_identical(
    rng: &mut StdRng,
    up: &mut Uploader,
    dates: &[NaiveDate],
    landed: &[(usize, &str)],
) {
    let &(day, source) = landed.choose(rng).expect("something landed");
    let files = up.logical[&dates[day]].clone();
    for _ in 0..10 {
        let form = Form::random(source, rng);
        if up.deliver(dates[day], source, &files, &form, "re-delivered, same rows") {
            return;
        }
    }
}

/// A late correction of one day's files: two orders' quantities (and totals) changed, an
/// order removed, an undelivered shipment delivered, a shipment removed, reviews removed.
fn correct(rng: &mut StdRng, files: &mut DayFiles, date: NaiveDate) {
    let orders = files.orders.as_mut().expect("orders");
    for _ in 0..2 {
        let index = rng.random_range(0..orders.len());
        let order = &mut orders[index];
        order.quantity += rng.random_range(1..=3);
        order.total_price = order.unit_price * order.quantity;
    }
    let removed = rng.random_range(0..orders.len());
    orders.remove(removed);
    let order_dates: BTreeMap<i64, NaiveDate> =
        orders.iter().map(|o| (o.order_id, o.order_date)).collect();
    let shipments = files.shipment_deliveries.as_mut().expect("shipments");
    // Delivered after all (by the batch date): one shipped, one never shipped before.
    let undelivered: Vec<usize> = shipments
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.delivery_date.is_none()
                && order_dates
                    .get(&s.order_id)
                    .is_some_and(|order_date| *order_date + Days::new(2) <= date)
        })
        .map(|(index, _)| index)
        .collect();
    if let Some(&index) = undelivered.choose(rng) {
        let order_date = order_dates[&shipments[index].order_id];
        let shipped = shipments[index]
            .shipment_date
            .unwrap_or(order_date + Days::new(1));
        shipments[index].shipment_date = Some(shipped);
        shipments[index].delivery_date = Some(date.max(shipped));
    }
    let removed = rng.random_range(0..shipments.len());
    shipments.remove(removed);
    let reviews = files.reviews.as_mut().expect("reviews");
    for _ in 0..rng.random_range(1..=3) {
        let removed = rng.random_range(0..reviews.len());
        reviews.remove(removed);
    }
}

fn generate_world(rng: &mut StdRng, dates: &[NaiveDate]) -> World {
    let days = dates.len();
    let first = dates[0];
    let last = dates[days - 1];
    // Products 1..=20 with shuffled names; a "star" product gets most reviews and is renamed.
    let mut names = PRODUCT_NAMES.to_vec();
    names.shuffle(rng);
    let products: Vec<Product> = (1..=20)
        .map(|id| Product {
            product_id: id,
            product_category: CATEGORIES[rng.random_range(0..CATEGORIES.len())].into(),
            product_name: names[id as usize - 1].into(),
        })
        .collect();
    let star = rng.random_range(1..=20);
    let rename_day = rng.random_range(1..days);
    let mut product_renames = vec![(
        star,
        rename_day,
        format!("{}, new edition", products[star as usize - 1].product_name),
    )];
    for _ in 0..rng.random_range(1..=2) {
        let id = rng.random_range(1..=20);
        if product_renames.iter().all(|(renamed, _, _)| *renamed != id) {
            let day = rng.random_range(1..days);
            product_renames.push((
                id,
                day,
                format!("{} Mk{}", products[id as usize - 1].product_name, day + 1),
            ));
        }
    }
    let customers: Vec<Customer> = (1..=30)
        .map(|id| Customer {
            customer_id: id,
            customer_name: format!(
                "{} {}",
                CUSTOMER_NAMES[rng.random_range(0..CUSTOMER_NAMES.len())],
                id
            ),
            postal_code: format!("{:05}", rng.random_range(1000..99999)),
        })
        .collect();
    let customer_renames = (0..2)
        .map(|_| {
            let id = rng.random_range(1..=30);
            (
                id,
                rng.random_range(1..days),
                format!("Renamed, \"{id}\""),
                format!("{:05}", rng.random_range(1000..99999)),
            )
        })
        .collect();

    // The calendar: weekdays and a couple of weekend dates over the 14 months before the
    // first day; the edges of one batch's year window are listed too.
    let edge_batch = rng.random_range(0..days);
    let year_start = dates[edge_batch] - Months::new(12);
    let mut holiday_dates: BTreeSet<NaiveDate> = BTreeSet::new();
    // D − 1 year (not counted) and the day after it (counted, when a weekday).
    holiday_dates.insert(year_start);
    holiday_dates.insert(year_start + Days::new(1));
    while holiday_dates.len() < 12 {
        holiday_dates.insert(first - Days::new(rng.random_range(1..430)));
    }
    // Weekend dates listed in the calendar (not public holidays).
    for _ in 0..2 {
        let mut date = first - Days::new(rng.random_range(10..300));
        while is_weekday(date) {
            date = date + Days::new(1);
        }
        holiday_dates.insert(date);
    }
    let calendar: Vec<Holiday> = holiday_dates
        .iter()
        .enumerate()
        .map(|(index, date)| Holiday {
            holiday_date: *date,
            name: format!("Holiday {}", index + 1),
        })
        .collect();
    // A weekday holiday added on a later day, within every batch's year, on which orders fall.
    let added_day = rng.random_range(1..days);
    let mut added_date = weekday_from(first - Days::new(rng.random_range(20..200)));
    while holiday_dates.contains(&added_date) {
        added_date = weekday_from(added_date + Days::new(1));
    }
    let added_holidays = vec![(
        added_day,
        Holiday {
            holiday_date: added_date,
            name: "Added Day".into(),
        },
    )];

    // Orders over [first − 430 days, last], a third of them on listed dates.
    let special: Vec<NaiveDate> = holiday_dates
        .iter()
        .copied()
        .chain([added_date, added_date])
        .collect();
    let placed_on = |date: NaiveDate| dates.iter().position(|d| *d >= date).unwrap_or(days - 1);
    let mut orders: Vec<(Order, usize)> = Vec::new();
    let mut order_id = 1000;
    let weights: Vec<u32> = (0..=20).map(|_| rng.random_range(1..10)).collect();
    let mut new_order = |rng: &mut StdRng, order_date: NaiveDate, from: usize| {
        order_id += rng.random_range(1..4);
        let product_id = if rng.random_bool(0.04) {
            UNKNOWN_PRODUCT
        } else {
            let total: u32 = weights[1..].iter().sum();
            let mut pick = rng.random_range(0..total);
            let mut id = 1;
            while pick >= weights[id] {
                pick -= weights[id];
                id += 1;
            }
            id as i64
        };
        let unit_price = if rng.random_bool(0.3) {
            100 * rng.random_range(1..200)
        } else {
            rng.random_range(50..30_000)
        };
        let quantity = rng.random_range(1..=5);
        (
            Order {
                order_id,
                customer_id: rng.random_range(1..=30),
                order_date,
                product_id,
                unit_price,
                quantity,
                total_price: unit_price * quantity,
            },
            from,
        )
    };
    let count = rng.random_range(50..=260);
    for _ in 0..count {
        let order_date = if rng.random_bool(0.3) {
            *special.choose(rng).unwrap()
        } else if rng.random_bool(0.2) {
            last - Days::new(rng.random_range(0..25))
        } else {
            last - Days::new(rng.random_range(0..(430 + (last - first).num_days() as u64)))
        };
        let from = placed_on(order_date);
        orders.push(new_order(rng, order_date, from));
    }
    // The edges: the first day of one batch's 12 months and the day before it.
    let month_start = dates[edge_batch].with_day(1).unwrap() - Months::new(11);
    for order_date in [month_start, month_start - Days::new(1)] {
        let from = placed_on(order_date);
        orders.push(new_order(rng, order_date, from));
    }
    // Pre-orders dated after the day they land.
    for _ in 0..2 {
        let day = rng.random_range(0..days);
        let order_date = dates[day] + Days::new(rng.random_range(1..4));
        orders.push(new_order(rng, order_date, day));
    }
    orders.sort_by_key(|(order, _)| order.order_id);
    // Shipments: mostly one per order, some two, some none; a few never ship or arrive.
    let mut shipments = Vec::new();
    let mut shipment_id = 5000;
    for (order, _) in &orders {
        let count = match rng.random_range(0..100) {
            0..5 => 0,
            5..10 => 2,
            _ => 1,
        };
        for _ in 0..count {
            shipment_id += 1;
            shipments.push(ShipPlan {
                shipment_id,
                order_id: order.order_id,
                ship_after: (!rng.random_bool(0.1)).then(|| rng.random_range(0..10)),
                deliver_after: (!rng.random_bool(0.15)).then(|| rng.random_range(1..8)),
            });
        }
    }
    // The undelivered edge: orders exactly 15 and 14 days before one batch, never shipped;
    // and late-edge shipments (6 and 5 days after their orders, never delivered).
    let edge_date = dates[rng.random_range(0..days)];
    for (age, ship_after) in [(15, None), (14, None), (20, Some(6)), (20, Some(5))] {
        let order_date = edge_date - Days::new(age);
        let (order, from) = new_order(rng, order_date, placed_on(order_date));
        shipment_id += 1;
        shipments.push(ShipPlan {
            shipment_id,
            order_id: order.order_id,
            ship_after,
            deliver_after: None,
        });
        orders.push((order, from));
    }
    // Amended orders: a quantity changed from some day on.
    let amendments = (0..2)
        .map(|_| {
            let (order, from) = orders.choose(rng).unwrap();
            (
                order.order_id,
                (*from + 1).min(days - 1),
                order.quantity + 1,
            )
        })
        .collect();
    // Reviews: many on day 1, some more each day; the star product most often; 8% empty.
    let mut reviews = Vec::new();
    for day in 0..days {
        let count = if day == 0 {
            rng.random_range(40..120)
        } else {
            rng.random_range(3..15)
        };
        for _ in 0..count {
            let product_id = if rng.random_bool(0.2) {
                star
            } else {
                rng.random_range(1..=20)
            };
            let review = (!rng.random_bool(0.08)).then(|| rng.random_range(1..=5));
            reviews.push((Review { review, product_id }, day));
        }
    }
    World {
        dates: dates.to_vec(),
        orders,
        amendments,
        shipments,
        reviews,
        products,
        product_renames,
        customers,
        customer_renames,
        calendar,
        added_holidays,
    }
}
