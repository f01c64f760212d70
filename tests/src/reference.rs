//! An independent reference implementation of the `ecommerce` reports (spec §3), for the
//! scenario tests: it reads the landing files as uploaded (columns by header name, RFC 4180
//! quoting, gzip, a UTF-8 BOM) and computes each report of a batch in plain Rust. It shares no
//! code with the services and never reads the SQL models or the warehouse.
//!
//! "As of D" (the decisions the scenario tests hold the pipeline to):
//! - batch D's orders, reviews and shipment deliveries are the batch's own files (the last
//!   delivered version of each `(date, source)`, whatever the key's suffix);
//! - a product's attributes as of D come from the newest `products` file with an ingestion date
//!   ≤ D that contains the product; none: unknown (`product_name` NULL);
//! - the holiday calendar as of D is the newest `holidays` file with an ingestion date ≤ D; if
//!   no calendar landed at or before D, the one with the earliest ingestion date; none at all:
//!   no holidays. A public holiday is a Monday–Friday date listed in it.
//!
//! Money is integer cents and percentages integer hundredths (no floats); values are printed as
//! PostgreSQL prints them (`12.50`, `0.00`, `true`, dates `YYYY-MM-DD`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;

use anyhow::{Context as _, anyhow, bail};
use chrono::{Datelike as _, Days, Months, NaiveDate, Weekday};

/// The sources of the dataset, in the order the reports are described.
pub const SOURCES: [&str; 6] = [
    "orders",
    "reviews",
    "shipment_deliveries",
    "customers",
    "products",
    "holidays",
];

/// The five reports, in the exporter's order.
pub const REPORTS: [&str; 5] = [
    "agg_public_holiday",
    "agg_shipments",
    "best_performing_product",
    "sales_by_month",
    "top_products_by_revenue",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: i64,
    pub customer_id: i64,
    pub order_date: NaiveDate,
    pub product_id: i64,
    /// Cents.
    pub unit_price: i64,
    pub quantity: i64,
    /// Cents.
    pub total_price: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// NULL: an empty review.
    pub review: Option<i64>,
    pub product_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    pub shipment_id: i64,
    pub order_id: i64,
    pub shipment_date: Option<NaiveDate>,
    pub delivery_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub customer_id: i64,
    pub customer_name: String,
    pub postal_code: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub product_id: i64,
    pub product_category: String,
    pub product_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub holiday_date: NaiveDate,
    pub name: String,
}

/// The files of one ingestion date (`None`: that source has no file for the date).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayFiles {
    pub orders: Option<Vec<Order>>,
    pub reviews: Option<Vec<Review>>,
    pub shipment_deliveries: Option<Vec<Shipment>>,
    pub customers: Option<Vec<Customer>>,
    pub products: Option<Vec<Product>>,
    pub holidays: Option<Vec<Holiday>>,
}

/// Everything that landed: the last delivered version of each `(date, source)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Landing {
    pub days: BTreeMap<NaiveDate, DayFiles>,
}

/// `…/ingestion_date=YYYY-MM-DD/<source>.csv[.gz]` → (date, source, gzip).
pub fn parse_key(key: &str) -> anyhow::Result<(NaiveDate, String, bool)> {
    let mut parts = key.rsplit('/');
    let file = parts.next().unwrap_or_default();
    let folder = parts.next().unwrap_or_default();
    let date = folder
        .strip_prefix("ingestion_date=")
        .ok_or_else(|| anyhow!("{key}: no ingestion_date= folder"))?;
    let date = parse_date(date).with_context(|| format!("{key}: the ingestion date"))?;
    let (source, gzip) = if let Some(source) = file.strip_suffix(".csv.gz") {
        (source, true)
    } else if let Some(source) = file.strip_suffix(".csv") {
        (source, false)
    } else {
        bail!("{key}: not a .csv or .csv.gz file");
    };
    if !SOURCES.contains(&source) {
        bail!("{key}: unknown source '{source}'");
    }
    Ok((date, source.to_owned(), gzip))
}

/// The text of a landing file: gunzipped when `gzip`, UTF-8, without a leading BOM.
pub fn decode_text(bytes: &[u8], gzip: bool) -> anyhow::Result<String> {
    let raw = if gzip {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .context("gunzipping")?;
        out
    } else {
        bytes.to_vec()
    };
    let text = String::from_utf8(raw).context("not UTF-8")?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned())
}

/// RFC 4180 records: comma separated, `"` quoting with `""` for a quote, CRLF or LF line ends
/// (a line break inside quotes is data). A final line break ends the last record; empty lines
/// outside quotes are skipped.
pub fn parse_csv(text: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    // Whether the current record has anything (a field separator or a quoted field).
    let mut started = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if field.is_empty() => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(other) => field.push(other),
                        None => bail!("a quoted field is not closed"),
                    }
                }
                match chars.peek() {
                    None | Some(',') | Some('\n') | Some('\r') => {}
                    Some(other) => bail!("'{other}' after a closing quote"),
                }
            }
            '"' => bail!("a quote inside an unquoted field"),
            ',' => {
                started = true;
                record.push(std::mem::take(&mut field));
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if started || !field.is_empty() {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                started = false;
            }
            other => field.push(other),
        }
    }
    if started || !field.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// A parsed file: its header and data rows, fields read by column name.
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    fn parse(text: &str, columns: &[(&str, &[&str])]) -> anyhow::Result<Csv> {
        let mut records = parse_csv(text)?.into_iter();
        let header = records.next().ok_or_else(|| anyhow!("no header"))?;
        for name in &header {
            if !columns
                .iter()
                .any(|(column, aliases)| column == name || aliases.contains(&name.as_str()))
            {
                bail!("unknown column '{name}'");
            }
        }
        let rows: Vec<Vec<String>> = records.collect();
        for (index, row) in rows.iter().enumerate() {
            if row.len() != header.len() {
                bail!(
                    "line {} has {} fields, the header {}",
                    index + 2,
                    row.len(),
                    header.len()
                );
            }
        }
        Ok(Csv { header, rows })
    }

    /// The index of `name` (or one of its aliases) in the header.
    fn column(&self, name: &str, aliases: &[&str]) -> anyhow::Result<usize> {
        self.header
            .iter()
            .position(|column| column == name || aliases.contains(&column.as_str()))
            .ok_or_else(|| anyhow!("missing column '{name}'"))
    }
}

/// One row's fields by column name; an empty field is NULL.
struct Fields<'a> {
    row: &'a [String],
    index: &'a BTreeMap<&'static str, usize>,
}

impl Fields<'_> {
    fn opt(&self, name: &str) -> Option<&str> {
        let value = self.row[self.index[name]].as_str();
        (!value.is_empty()).then_some(value)
    }

    fn text(&self, name: &str) -> anyhow::Result<String> {
        self.opt(name)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{name} is NULL"))
    }

    fn int(&self, name: &str) -> anyhow::Result<i64> {
        let text = self.text(name)?;
        text.parse()
            .with_context(|| format!("{name} '{text}' is not an integer"))
    }

    fn opt_int(&self, name: &str) -> anyhow::Result<Option<i64>> {
        self.opt(name)
            .map(|text| {
                text.parse()
                    .with_context(|| format!("{name} '{text}' is not an integer"))
            })
            .transpose()
    }

    fn date(&self, name: &str) -> anyhow::Result<NaiveDate> {
        parse_date(&self.text(name)?).with_context(|| name.to_owned())
    }

    fn opt_date(&self, name: &str) -> anyhow::Result<Option<NaiveDate>> {
        self.opt(name)
            .map(|text| parse_date(text).with_context(|| name.to_owned()))
            .transpose()
    }

    fn cents(&self, name: &str) -> anyhow::Result<i64> {
        parse_cents(&self.text(name)?).with_context(|| name.to_owned())
    }
}

fn parse_date(text: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| format!("'{text}' is not a date"))
}

/// `12`, `12.5`, `12.50`, `-0.25` → cents; more than two decimals is an error.
pub fn parse_cents(text: &str) -> anyhow::Result<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !all_digits(whole)
        || !all_digits(fraction)
        || fraction.len() > 2
    {
        bail!("'{text}' is not a numeric(12,2)");
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse()? };
    let fraction: i64 = format!("{fraction:0<2}").parse()?;
    let cents = whole * 100 + fraction;
    Ok(if negative { -cents } else { cents })
}

/// Reads the rows of one source's file, columns matched by name.
fn read_rows<T>(
    text: &str,
    columns: &[(&'static str, &[&str])],
    make: impl Fn(&Fields<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let csv = Csv::parse(text, columns)?;
    let mut index = BTreeMap::new();
    for (name, aliases) in columns {
        index.insert(*name, csv.column(name, aliases)?);
    }
    csv.rows
        .iter()
        .enumerate()
        .map(|(line, row)| {
            make(&Fields { row, index: &index }).with_context(|| format!("line {}", line + 2))
        })
        .collect()
}

impl DayFiles {
    /// Parses `bytes` as `source`'s file and makes it this day's file of the source.
    pub fn set_file(&mut self, source: &str, bytes: &[u8], gzip: bool) -> anyhow::Result<()> {
        let text = decode_text(bytes, gzip)?;
        match source {
            "orders" => {
                self.orders = Some(read_rows(
                    &text,
                    &[
                        ("order_id", &[]),
                        ("customer_id", &[]),
                        ("order_date", &[]),
                        ("product_id", &[]),
                        ("unit_price", &[]),
                        ("quantity", &[]),
                        ("total_price", &["amount"]),
                    ],
                    |f| {
                        Ok(Order {
                            order_id: f.int("order_id")?,
                            customer_id: f.int("customer_id")?,
                            order_date: f.date("order_date")?,
                            product_id: f.int("product_id")?,
                            unit_price: f.cents("unit_price")?,
                            quantity: f.int("quantity")?,
                            total_price: f.cents("total_price")?,
                        })
                    },
                )?)
            }
            "reviews" => {
                self.reviews = Some(read_rows(
                    &text,
                    &[("review", &[]), ("product_id", &[])],
                    |f| {
                        Ok(Review {
                            review: f.opt_int("review")?,
                            product_id: f.int("product_id")?,
                        })
                    },
                )?)
            }
            "shipment_deliveries" => {
                self.shipment_deliveries = Some(read_rows(
                    &text,
                    &[
                        ("shipment_id", &[]),
                        ("order_id", &[]),
                        ("shipment_date", &[]),
                        ("delivery_date", &[]),
                    ],
                    |f| {
                        Ok(Shipment {
                            shipment_id: f.int("shipment_id")?,
                            order_id: f.int("order_id")?,
                            shipment_date: f.opt_date("shipment_date")?,
                            delivery_date: f.opt_date("delivery_date")?,
                        })
                    },
                )?)
            }
            "customers" => {
                self.customers = Some(read_rows(
                    &text,
                    &[
                        ("customer_id", &[]),
                        ("customer_name", &[]),
                        ("postal_code", &[]),
                    ],
                    |f| {
                        Ok(Customer {
                            customer_id: f.int("customer_id")?,
                            customer_name: f.text("customer_name")?,
                            postal_code: f.text("postal_code")?,
                        })
                    },
                )?)
            }
            "products" => {
                self.products = Some(read_rows(
                    &text,
                    &[
                        ("product_id", &[]),
                        ("product_category", &[]),
                        ("product_name", &[]),
                    ],
                    |f| {
                        Ok(Product {
                            product_id: f.int("product_id")?,
                            product_category: f.text("product_category")?,
                            product_name: f.text("product_name")?,
                        })
                    },
                )?)
            }
            "holidays" => {
                self.holidays = Some(read_rows(
                    &text,
                    &[("holiday_date", &[]), ("name", &[])],
                    |f| {
                        Ok(Holiday {
                            holiday_date: f.date("holiday_date")?,
                            name: f.text("name")?,
                        })
                    },
                )?)
            }
            other => bail!("unknown source '{other}'"),
        }
        Ok(())
    }
}

impl Landing {
    /// The landing area after `uploads` (key, bytes) were delivered in this order: for each
    /// `(date, source)` the last upload wins, whether its key ends in `.csv` or `.csv.gz`.
    pub fn from_uploads<'a>(
        uploads: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> anyhow::Result<Landing> {
        let mut last: BTreeMap<(NaiveDate, String), (&[u8], bool)> = BTreeMap::new();
        for (key, bytes) in uploads {
            let (date, source, gzip) = parse_key(key)?;
            last.insert((date, source), (bytes, gzip));
        }
        let mut landing = Landing::default();
        for ((date, source), (bytes, gzip)) in last {
            landing
                .days
                .entry(date)
                .or_default()
                .set_file(&source, bytes, gzip)
                .with_context(|| format!("{date} {source}"))?;
        }
        Ok(landing)
    }

    /// The dates whose batch has all three required files.
    pub fn batches(&self) -> Vec<NaiveDate> {
        self.days
            .iter()
            .filter(|(_, files)| {
                files.orders.is_some()
                    && files.reviews.is_some()
                    && files.shipment_deliveries.is_some()
            })
            .map(|(date, _)| *date)
            .collect()
    }

    /// The product's row in the newest `products` file dated ≤ `date` that has it.
    pub fn product_as_of(&self, product_id: i64, date: NaiveDate) -> Option<&Product> {
        self.days.range(..=date).rev().find_map(|(_, files)| {
            files
                .products
                .as_ref()?
                .iter()
                .find(|product| product.product_id == product_id)
        })
    }

    /// The listed dates of the calendar as of `date` (see the module's doc).
    pub fn calendar_as_of(&self, date: NaiveDate) -> BTreeSet<NaiveDate> {
        let newest_before = self
            .days
            .range(..=date)
            .rev()
            .find_map(|(_, files)| files.holidays.as_ref());
        let calendar =
            newest_before.or_else(|| self.days.values().find_map(|files| files.holidays.as_ref()));
        calendar
            .map(|holidays| {
                holidays
                    .iter()
                    .map(|holiday| holiday.holiday_date)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The five reports of batch `date`, in [`REPORTS`] order.
    pub fn reports(&self, date: NaiveDate) -> anyhow::Result<Vec<Report>> {
        let files = self
            .days
            .get(&date)
            .ok_or_else(|| anyhow!("no files for {date}"))?;
        let batch = Batch {
            date,
            orders: files
                .orders
                .as_deref()
                .ok_or_else(|| anyhow!("{date}: no orders"))?,
            reviews: files
                .reviews
                .as_deref()
                .ok_or_else(|| anyhow!("{date}: no reviews"))?,
            shipments: files
                .shipment_deliveries
                .as_deref()
                .ok_or_else(|| anyhow!("{date}: no shipment deliveries"))?,
            calendar: self.calendar_as_of(date),
            landing: self,
        };
        Ok(vec![
            batch.agg_public_holiday(),
            batch.agg_shipments(),
            batch.best_performing_product(),
            batch.sales_by_month(),
            batch.top_products_by_revenue(),
        ])
    }
}

/// One report value, printed as PostgreSQL prints the column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    /// numeric with two decimals, in hundredths (cents, or hundredths of a percent).
    Dec2(i64),
    Date(NaiveDate),
    Bool(bool),
    Text(String),
}

impl Cell {
    /// As `value::text` shows it (NULL as `NULL`, like `TestEnv::query_text`).
    pub fn db_text(&self) -> String {
        match self {
            Cell::Null => "NULL".into(),
            Cell::Int(value) => value.to_string(),
            Cell::Dec2(value) => format_dec2(*value),
            Cell::Date(date) => date.format("%Y-%m-%d").to_string(),
            Cell::Bool(value) => value.to_string(),
            Cell::Text(text) => text.clone(),
        }
    }

    /// As `COPY … TO STDOUT (FORMAT csv)` writes it.
    pub fn csv_field(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(value) => if *value { "t" } else { "f" }.into(),
            Cell::Text(text) => {
                if text.is_empty() || text.contains([',', '"', '\n', '\r']) || text == "\\." {
                    format!("\"{}\"", text.replace('"', "\"\""))
                } else {
                    text.clone()
                }
            }
            other => other.db_text(),
        }
    }
}

/// Hundredths as a decimal with two places: 1250 → `12.50`, -5 → `-0.05`.
pub fn format_dec2(hundredths: i64) -> String {
    let sign = if hundredths < 0 { "-" } else { "" };
    let abs = hundredths.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `round(100.0 * part / whole, 2)` in hundredths (half away from zero, as numeric rounds).
pub fn percent_hundredths(part: i64, whole: i64) -> i64 {
    assert!(whole > 0 && part >= 0, "a share of a positive whole");
    (20_000 * part + whole) / (2 * whole)
}

/// A report's rows for one batch, with the table's columns in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    /// The column the exporter orders by (and the comparison too).
    pub order_by: &'static str,
    pub rows: Vec<Vec<Cell>>,
}

impl Report {
    /// Every row as `TestEnv::query_text` returns `SELECT col::text, …`.
    pub fn db_rows(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|row| row.iter().map(Cell::db_text).collect())
            .collect()
    }

    /// The CSV the exporter writes: a header and the rows, LF line ends.
    pub fn csv(&self) -> String {
        let mut out = self.columns.join(",");
        out.push('\n');
        for row in &self.rows {
            let fields: Vec<String> = row.iter().map(Cell::csv_field).collect();
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        out
    }

    /// `SELECT t.c1::text, … FROM analytics.<name> t WHERE ingestion_date = D ORDER BY t.…`
    /// (the table's column, not the text of the same name, which would sort `10` before `2`).
    pub fn select_sql(&self, date: NaiveDate) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|column| format!("t.{column}::text"))
            .collect();
        format!(
            "SELECT {} FROM analytics.{} t WHERE t.ingestion_date = DATE '{date}' ORDER BY t.{}",
            columns.join(", "),
            self.name,
            self.order_by
        )
    }
}

/// A product's non-empty reviews: (count, points, count per star 1..5).
type ReviewStats = (i64, i64, [i64; 5]);

/// Batch D's own files and what applies on D.
struct Batch<'a> {
    date: NaiveDate,
    orders: &'a [Order],
    reviews: &'a [Review],
    shipments: &'a [Shipment],
    calendar: BTreeSet<NaiveDate>,
    landing: &'a Landing,
}

fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Shipped 6 or more days after the order and not delivered.
fn is_late(shipment: &Shipment, order_date: NaiveDate) -> bool {
    shipment.delivery_date.is_none()
        && shipment
            .shipment_date
            .is_some_and(|shipped| shipped >= order_date + Days::new(6))
}

impl Batch<'_> {
    fn is_public_holiday(&self, date: NaiveDate) -> bool {
        is_weekday(date) && self.calendar.contains(&date)
    }

    fn order_dates(&self) -> BTreeMap<i64, NaiveDate> {
        self.orders
            .iter()
            .map(|order| (order.order_id, order.order_date))
            .collect()
    }

    fn agg_public_holiday(&self) -> Report {
        let year_before = self.date - Months::new(12);
        let mut counts = [0i64; 12];
        for order in self.orders {
            if order.order_date > year_before
                && order.order_date <= self.date
                && self.is_public_holiday(order.order_date)
            {
                counts[order.order_date.month0() as usize] += 1;
            }
        }
        let mut row = vec![Cell::Date(self.date)];
        row.extend(counts.iter().map(|count| Cell::Int(*count)));
        Report {
            name: "agg_public_holiday",
            columns: &[
                "ingestion_date",
                "tt_order_hol_jan",
                "tt_order_hol_feb",
                "tt_order_hol_mar",
                "tt_order_hol_apr",
                "tt_order_hol_may",
                "tt_order_hol_jun",
                "tt_order_hol_jul",
                "tt_order_hol_aug",
                "tt_order_hol_sep",
                "tt_order_hol_oct",
                "tt_order_hol_nov",
                "tt_order_hol_dec",
            ],
            order_by: "ingestion_date",
            rows: vec![row],
        }
    }

    fn agg_shipments(&self) -> Report {
        let order_dates = self.order_dates();
        let (mut late, mut undelivered) = (0, 0);
        for shipment in self.shipments {
            // Shipments joined to their orders: one without its order in the batch counts not.
            let Some(&order_date) = order_dates.get(&shipment.order_id) else {
                continue;
            };
            if is_late(shipment, order_date) {
                late += 1;
            }
            if shipment.shipment_date.is_none()
                && shipment.delivery_date.is_none()
                && order_date + Days::new(15) <= self.date
            {
                undelivered += 1;
            }
        }
        Report {
            name: "agg_shipments",
            columns: &[
                "ingestion_date",
                "tt_late_shipments",
                "tt_undelivered_shipments",
            ],
            order_by: "ingestion_date",
            rows: vec![vec![
                Cell::Date(self.date),
                Cell::Int(late),
                Cell::Int(undelivered),
            ]],
        }
    }

    fn best_performing_product(&self) -> Report {
        // product_id → (reviews, points, count per star 1..5), non-empty reviews only.
        let mut per_product: BTreeMap<i64, ReviewStats> = BTreeMap::new();
        for review in self.reviews {
            if let Some(stars) = review.review {
                let entry = per_product.entry(review.product_id).or_default();
                entry.0 += 1;
                entry.1 += stars;
                entry.2[(stars - 1) as usize] += 1;
            }
        }
        // Most reviews, then more points, then the lower product_id (the map is ascending and
        // only a strictly better product replaces the one found first).
        let mut best: Option<(i64, ReviewStats)> = None;
        for (&product_id, &stats) in &per_product {
            if best.is_none_or(|(_, current)| (stats.0, stats.1) > (current.0, current.1)) {
                best = Some((product_id, stats));
            }
        }
        let columns: &'static [&'static str] = &[
            "ingestion_date",
            "product_name",
            "most_ordered_day",
            "is_public_holiday",
            "tt_review_points",
            "pct_one_star_review",
            "pct_two_star_review",
            "pct_three_star_review",
            "pct_four_star_review",
            "pct_five_star_review",
            "pct_early_shipments",
            "pct_late_shipments",
        ];
        let Some((product_id, (reviews, points, stars))) = best else {
            // No review at all: the row is written with NULLs.
            let mut row = vec![Cell::Date(self.date)];
            row.extend(std::iter::repeat_n(Cell::Null, columns.len() - 1));
            return Report {
                name: "best_performing_product",
                columns,
                order_by: "ingestion_date",
                rows: vec![row],
            };
        };
        let product_name = self
            .landing
            .product_as_of(product_id, self.date)
            .map_or(Cell::Null, |product| {
                Cell::Text(product.product_name.clone())
            });
        // Its orders per day: (orders, quantity); most orders, then larger quantity, then the
        // earlier date.
        let mut per_day: BTreeMap<NaiveDate, (i64, i64)> = BTreeMap::new();
        let mut its_orders: BTreeMap<i64, NaiveDate> = BTreeMap::new();
        for order in self.orders.iter().filter(|o| o.product_id == product_id) {
            let entry = per_day.entry(order.order_date).or_default();
            entry.0 += 1;
            entry.1 += order.quantity;
            its_orders.insert(order.order_id, order.order_date);
        }
        let mut busiest: Option<(NaiveDate, (i64, i64))> = None;
        for (&day, &stats) in &per_day {
            if busiest.is_none_or(|(_, current)| stats > current) {
                busiest = Some((day, stats));
            }
        }
        let (most_ordered_day, is_public_holiday) = match busiest {
            Some((day, _)) => (Cell::Date(day), Cell::Bool(self.is_public_holiday(day))),
            None => (Cell::Null, Cell::Null),
        };
        let (mut total, mut late) = (0, 0);
        for shipment in self.shipments {
            if let Some(&order_date) = its_orders.get(&shipment.order_id) {
                total += 1;
                if is_late(shipment, order_date) {
                    late += 1;
                }
            }
        }
        let (early_pct, late_pct) = if total == 0 {
            (0, 0)
        } else {
            let late_pct = percent_hundredths(late, total);
            (10_000 - late_pct, late_pct)
        };
        let mut row = vec![
            Cell::Date(self.date),
            product_name,
            most_ordered_day,
            is_public_holiday,
            Cell::Int(points),
        ];
        row.extend(
            stars
                .iter()
                .map(|count| Cell::Dec2(percent_hundredths(*count, reviews))),
        );
        row.push(Cell::Dec2(early_pct));
        row.push(Cell::Dec2(late_pct));
        Report {
            name: "best_performing_product",
            columns,
            order_by: "ingestion_date",
            rows: vec![row],
        }
    }

    fn sales_by_month(&self) -> Report {
        let this_month = self.date.with_day(1).expect("the first of a month");
        let mut rows = Vec::with_capacity(12);
        for back in (0..12).rev() {
            let month = this_month - Months::new(back);
            let (mut revenue, mut count) = (0, 0);
            for order in self.orders {
                if order.order_date <= self.date
                    && order.order_date.year() == month.year()
                    && order.order_date.month() == month.month()
                {
                    revenue += order.total_price;
                    count += 1;
                }
            }
            rows.push(vec![
                Cell::Date(self.date),
                Cell::Date(month),
                Cell::Dec2(revenue),
                Cell::Int(count),
            ]);
        }
        Report {
            name: "sales_by_month",
            columns: &["ingestion_date", "month", "revenue", "order_count"],
            order_by: "month",
            rows,
        }
    }

    fn top_products_by_revenue(&self) -> Report {
        let mut per_product: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for order in self.orders {
            let entry = per_product.entry(order.product_id).or_default();
            entry.0 += order.total_price;
            entry.1 += 1;
        }
        let mut ranked: Vec<(i64, (i64, i64))> = per_product.into_iter().collect();
        // More revenue first, then the lower product_id.
        ranked.sort_by_key(|&(product_id, (revenue, _))| (std::cmp::Reverse(revenue), product_id));
        let rows = ranked
            .iter()
            .take(10)
            .enumerate()
            .map(|(index, &(product_id, (revenue, count)))| {
                vec![
                    Cell::Date(self.date),
                    Cell::Int(index as i64 + 1),
                    Cell::Int(product_id),
                    self.landing
                        .product_as_of(product_id, self.date)
                        .map_or(Cell::Null, |product| {
                            Cell::Text(product.product_name.clone())
                        }),
                    Cell::Dec2(revenue),
                    Cell::Int(count),
                ]
            })
            .collect();
        Report {
            name: "top_products_by_revenue",
            columns: &[
                "ingestion_date",
                "rank",
                "product_id",
                "product_name",
                "revenue",
                "order_count",
            ],
            order_by: "rank",
            rows,
        }
    }
}
