//! An independent reference implementation of the `online_retail` reports, for the retail
//! scenario tests: it reads the landing files as uploaded (columns by header name or UCI alias,
//! case-insensitively; RFC 4180 quoting, gzip, a UTF-8 BOM) and computes each report of a batch
//! in plain Rust. It shares no code with the services and never reads the SQL models or the
//! warehouse; the CSV reading and PostgreSQL-style printing are [`crate::reference`]'s.
//!
//! The definitions (from the dataset's and the models' comments and the hand-computed test
//! `tests/tests/online_retail.rs`):
//! - delta mode: a batch's file holds that day's invoice lines; the last delivered version of a
//!   day's file (`transactions.csv` or `.csv.gz`) replaces every earlier version of that day;
//! - a report "as of D" covers the lines of every batch dated up to and including D;
//! - a line is a cancellation when its invoice number starts with `C` or its quantity is
//!   negative; its amount is `quantity × unit_price`; every other line is a sales line;
//! - `retail_cancellation_rate`: distinct invoice numbers (all lines), those with a
//!   cancellation line and their share in percent (0 without invoices); the sales amount (sales
//!   lines), the cancelled amount (cancellation lines, each taken as a positive amount) and its
//!   share of the sales amount in percent (NULL without sales);
//! - `retail_revenue_by_country_month`: per country and invoice month (first day), every
//!   country-month with any line: revenue (sales lines), cancelled amount (cancellation lines,
//!   positive), distinct invoices, units and distinct known customers of the sales lines;
//! - `retail_top_products`: the 10 stock codes with the most sales revenue (cancellations
//!   excluded), ties → the lower stock code in byte order, ranked 1..10, with units and
//!   distinct invoices of their sales lines; the description is the code's most frequent one
//!   over its lines up to D (every line of the code, cancellations included: the dimension's
//!   rule), trimmed of spaces, empty ones ignored, ties → the first in byte order; none: NULL.
//!
//! Countries are ordered in the export by byte order, as the test databases' collation
//! (`C.UTF-8`) orders text.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, anyhow, bail};
use chrono::{Datelike as _, NaiveDate, NaiveDateTime};

use crate::reference::{Cell, Report, decode_text, parse_cents, parse_csv, percent_hundredths};

/// The dataset's one source.
pub const SOURCE: &str = "transactions";

/// The three reports, in the exporter's order (`datasets/online_retail/exports.toml`).
pub const REPORTS: [&str; 3] = [
    "retail_revenue_by_country_month",
    "retail_top_products",
    "retail_cancellation_rate",
];

/// The source's columns in the dataset's order, each with its aliases (lower case; the UCI
/// file's names lower-cased are among them).
pub const COLUMNS: [(&str, &[&str]); 8] = [
    ("invoice_no", &["invoiceno", "invoice"]),
    ("stock_code", &["stockcode"]),
    ("description", &[]),
    ("quantity", &[]),
    ("invoice_date", &["invoicedate"]),
    ("unit_price", &["unitprice", "price"]),
    ("customer_id", &["customerid", "customer"]),
    ("country", &[]),
];

/// One invoice line as the file carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub invoice_no: String,
    pub stock_code: String,
    /// NULL: an empty field.
    pub description: Option<String>,
    pub quantity: i64,
    pub invoice_date: NaiveDateTime,
    /// Cents.
    pub unit_price: i64,
    /// NULL: a guest checkout.
    pub customer_id: Option<i64>,
    pub country: String,
}

impl Line {
    /// `quantity × unit_price`, in cents.
    pub fn amount(&self) -> i64 {
        self.quantity * self.unit_price
    }

    /// An invoice starting with C, or a negative quantity (a stock adjustment).
    pub fn is_cancellation(&self) -> bool {
        self.invoice_no.starts_with('C') || self.quantity < 0
    }

    /// The first day of the invoice's month.
    pub fn month(&self) -> NaiveDate {
        self.invoice_date
            .date()
            .with_day(1)
            .expect("the first of a month")
    }
}

/// `…/online_retail/ingestion_date=YYYY-MM-DD/transactions.csv[.gz]` → (date, gzip).
pub fn parse_key(key: &str) -> anyhow::Result<(NaiveDate, bool)> {
    let mut parts = key.rsplit('/');
    let file = parts.next().unwrap_or_default();
    let folder = parts.next().unwrap_or_default();
    let dataset = parts.next().unwrap_or_default();
    if dataset != "online_retail" {
        bail!("{key}: not an online_retail key");
    }
    let date = folder
        .strip_prefix("ingestion_date=")
        .ok_or_else(|| anyhow!("{key}: no ingestion_date= folder"))?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .with_context(|| format!("{key}: the ingestion date"))?;
    let gzip = match file {
        "transactions.csv" => false,
        "transactions.csv.gz" => true,
        other => bail!("{key}: '{other}' is not transactions.csv or transactions.csv.gz"),
    };
    Ok((date, gzip))
}

/// The ISO forms the dataset accepts: `2010-12-01 08:26`, `2010-12-01T08:26:00`.
fn parse_timestamp(text: &str) -> anyhow::Result<NaiveDateTime> {
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .ok_or_else(|| anyhow!("'{text}' is not an ISO timestamp"))
}

/// The lines of one `transactions` file.
pub fn read_transactions(bytes: &[u8], gzip: bool) -> anyhow::Result<Vec<Line>> {
    let text = decode_text(bytes, gzip)?;
    let mut records = parse_csv(&text)?.into_iter();
    let header = records.next().ok_or_else(|| anyhow!("no header"))?;
    // Column index in the file of each of COLUMNS.
    let mut index = [usize::MAX; COLUMNS.len()];
    for (position, name) in header.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        let column = COLUMNS
            .iter()
            .position(|(column, aliases)| *column == name || aliases.contains(&name.as_str()))
            .ok_or_else(|| anyhow!("unknown column '{name}'"))?;
        if index[column] != usize::MAX {
            bail!("column '{}' twice", COLUMNS[column].0);
        }
        index[column] = position;
    }
    if let Some(missing) = index.iter().position(|at| *at == usize::MAX) {
        bail!("missing column '{}'", COLUMNS[missing].0);
    }
    records
        .enumerate()
        .map(|(number, row)| {
            let line = number + 2;
            if row.len() != header.len() {
                bail!(
                    "line {line} has {} fields, the header {}",
                    row.len(),
                    header.len()
                );
            }
            let field = |column: usize| -> Option<&str> {
                let value = row[index[column]].as_str();
                (!value.is_empty()).then_some(value)
            };
            let required = |column: usize| -> anyhow::Result<&str> {
                field(column).ok_or_else(|| anyhow!("line {line}: {} is NULL", COLUMNS[column].0))
            };
            let int = |column: usize, text: &str| -> anyhow::Result<i64> {
                text.parse()
                    .with_context(|| format!("line {line}: {} '{text}'", COLUMNS[column].0))
            };
            Ok(Line {
                invoice_no: required(0)?.to_owned(),
                stock_code: required(1)?.to_owned(),
                description: field(2).map(str::to_owned),
                quantity: int(3, required(3)?)?,
                invoice_date: parse_timestamp(required(4)?)
                    .with_context(|| format!("line {line}"))?,
                unit_price: parse_cents(required(5)?).with_context(|| format!("line {line}"))?,
                customer_id: field(6).map(|text| int(6, text)).transpose()?,
                country: required(7)?.to_owned(),
            })
        })
        .collect()
}

/// Everything that landed: the last delivered version of each day's file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetailLanding {
    pub days: BTreeMap<NaiveDate, Vec<Line>>,
}

/// The most frequent description (trimmed of spaces, empty ones ignored), ties → the first in
/// byte order; `None` without any.
pub fn most_frequent_description<'a>(
    descriptions: impl IntoIterator<Item = Option<&'a str>>,
) -> Option<String> {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for description in descriptions.into_iter().flatten() {
        let trimmed = description.trim_matches(' ');
        if !trimmed.is_empty() {
            *counts.entry(trimmed).or_default() += 1;
        }
    }
    // Ascending byte order; only a strictly more frequent one replaces the first found.
    let mut best: Option<(&str, i64)> = None;
    for (description, count) in counts {
        if best.is_none_or(|(_, most)| count > most) {
            best = Some((description, count));
        }
    }
    best.map(|(description, _)| description.to_owned())
}

impl RetailLanding {
    /// The landing area after `uploads` (key, bytes) were delivered in this order: for each day
    /// the last upload wins, whether its key ends in `.csv` or `.csv.gz`.
    pub fn from_uploads<'a>(
        uploads: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> anyhow::Result<RetailLanding> {
        let mut last: BTreeMap<NaiveDate, (&[u8], bool)> = BTreeMap::new();
        for (key, bytes) in uploads {
            let (date, gzip) = parse_key(key)?;
            last.insert(date, (bytes, gzip));
        }
        let mut landing = RetailLanding::default();
        for (date, (bytes, gzip)) in last {
            let lines = read_transactions(bytes, gzip).with_context(|| format!("{date}"))?;
            landing.days.insert(date, lines);
        }
        Ok(landing)
    }

    /// The batch dates: every day with a file.
    pub fn batches(&self) -> Vec<NaiveDate> {
        self.days.keys().copied().collect()
    }

    /// The lines of every batch up to and including `date`.
    pub fn lines_as_of(&self, date: NaiveDate) -> impl Iterator<Item = &Line> {
        self.days.range(..=date).flat_map(|(_, lines)| lines)
    }

    /// The three reports of batch `date`, in [`REPORTS`] order.
    pub fn reports(&self, date: NaiveDate) -> anyhow::Result<Vec<Report>> {
        if !self.days.contains_key(&date) {
            bail!("no file for {date}");
        }
        let lines: Vec<&Line> = self.lines_as_of(date).collect();
        Ok(vec![
            revenue_by_country_month(date, &lines),
            top_products(date, &lines),
            cancellation_rate(date, &lines),
        ])
    }
}

fn revenue_by_country_month(date: NaiveDate, lines: &[&Line]) -> Report {
    #[derive(Default)]
    struct Group<'a> {
        revenue: i64,
        cancelled: i64,
        invoices: BTreeSet<&'a str>,
        units: i64,
        customers: BTreeSet<i64>,
    }
    // (month, country): the export's order, countries in byte order.
    let mut groups: BTreeMap<(NaiveDate, &str), Group> = BTreeMap::new();
    for line in lines {
        let group = groups
            .entry((line.month(), line.country.as_str()))
            .or_default();
        if line.is_cancellation() {
            group.cancelled += line.amount().abs();
        } else {
            group.revenue += line.amount();
            group.invoices.insert(&line.invoice_no);
            group.units += line.quantity;
            group.customers.extend(line.customer_id);
        }
    }
    Report {
        name: "retail_revenue_by_country_month",
        columns: &[
            "ingestion_date",
            "country",
            "month",
            "revenue",
            "cancelled_amount",
            "invoices",
            "units",
            "customers",
        ],
        order_by: "month, country",
        rows: groups
            .into_iter()
            .map(|((month, country), group)| {
                vec![
                    Cell::Date(date),
                    Cell::Text(country.to_owned()),
                    Cell::Date(month),
                    Cell::Dec2(group.revenue),
                    Cell::Dec2(group.cancelled),
                    Cell::Int(group.invoices.len() as i64),
                    Cell::Int(group.units),
                    Cell::Int(group.customers.len() as i64),
                ]
            })
            .collect(),
    }
}

/// A stock code's sales lines: (revenue, units, distinct invoices).
type Sales<'a> = (i64, i64, BTreeSet<&'a str>);

fn top_products(date: NaiveDate, lines: &[&Line]) -> Report {
    let mut sales: BTreeMap<&str, Sales> = BTreeMap::new();
    for line in lines.iter().filter(|line| !line.is_cancellation()) {
        let entry = sales.entry(&line.stock_code).or_default();
        entry.0 += line.amount();
        entry.1 += line.quantity;
        entry.2.insert(&line.invoice_no);
    }
    let mut ranked: Vec<(&str, Sales)> = sales.into_iter().collect();
    // More revenue first, then the lower stock code (byte order: `str`'s order).
    ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
    let rows = ranked
        .into_iter()
        .take(10)
        .enumerate()
        .map(|(index, (stock_code, (revenue, units, invoices)))| {
            let description = most_frequent_description(
                lines
                    .iter()
                    .filter(|line| line.stock_code == stock_code)
                    .map(|line| line.description.as_deref()),
            );
            vec![
                Cell::Date(date),
                Cell::Int(index as i64 + 1),
                Cell::Text(stock_code.to_owned()),
                description.map_or(Cell::Null, Cell::Text),
                Cell::Dec2(revenue),
                Cell::Int(units),
                Cell::Int(invoices.len() as i64),
            ]
        })
        .collect();
    Report {
        name: "retail_top_products",
        columns: &[
            "ingestion_date",
            "rank",
            "stock_code",
            "description",
            "revenue",
            "units",
            "invoices",
        ],
        order_by: "rank",
        rows,
    }
}

fn cancellation_rate(date: NaiveDate, lines: &[&Line]) -> Report {
    let invoices: BTreeSet<&str> = lines.iter().map(|line| line.invoice_no.as_str()).collect();
    let cancelled: BTreeSet<&str> = lines
        .iter()
        .filter(|line| line.is_cancellation())
        .map(|line| line.invoice_no.as_str())
        .collect();
    let sales: i64 = lines
        .iter()
        .filter(|line| !line.is_cancellation())
        .map(|line| line.amount())
        .sum();
    let cancelled_amount: i64 = lines
        .iter()
        .filter(|line| line.is_cancellation())
        .map(|line| line.amount().abs())
        .sum();
    let (invoices, cancelled) = (invoices.len() as i64, cancelled.len() as i64);
    let pct_invoices = if invoices == 0 {
        0
    } else {
        percent_hundredths(cancelled, invoices)
    };
    let pct_amount = if sales == 0 {
        Cell::Null
    } else {
        Cell::Dec2(percent_hundredths(cancelled_amount, sales))
    };
    Report {
        name: "retail_cancellation_rate",
        columns: &[
            "ingestion_date",
            "invoices",
            "cancelled_invoices",
            "pct_cancelled_invoices",
            "sales_amount",
            "cancelled_amount",
            "pct_cancelled_amount",
        ],
        order_by: "ingestion_date",
        rows: vec![vec![
            Cell::Date(date),
            Cell::Int(invoices),
            Cell::Int(cancelled),
            Cell::Dec2(pct_invoices),
            Cell::Dec2(sales),
            Cell::Dec2(cancelled_amount),
            pct_amount,
        ]],
    }
}

/// `SELECT t.c1::text, … FROM analytics.<report> t WHERE ingestion_date = D ORDER BY …`, in the
/// exporter's order, by the table's columns (not the text of the same name).
pub fn select_sql(report: &Report, date: NaiveDate) -> String {
    let columns: Vec<String> = report
        .columns
        .iter()
        .map(|column| format!("t.{column}::text"))
        .collect();
    let order: Vec<String> = report
        .order_by
        .split(',')
        .map(|column| format!("t.{}", column.trim()))
        .collect();
    format!(
        "SELECT {} FROM analytics.{} t WHERE t.ingestion_date = DATE '{date}' ORDER BY {}",
        columns.join(", "),
        report.name,
        order.join(", ")
    )
}
