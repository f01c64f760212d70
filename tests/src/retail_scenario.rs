//! Seeded scenarios of the delta-mode `online_retail` dataset: 4–6 days of invoice lines with
//! what real deliveries do — guests, cancellations (C invoices, and negative-quantity stock
//! adjustments without a C), exact duplicate lines, stock codes whose lines carry several
//! descriptions (so the "most frequent description" rule decides), two stock codes whose sales
//! revenue always ties, invoices dated in earlier months, an invoice continued on a later day;
//! then late corrections of old days (quantities changed, lines removed, a line added),
//! re-deliveries of the same lines in another legal form (the UCI header names, upper-case
//! headers, shuffled columns, every field quoted, gzip, a UTF-8 BOM, CRLF, `T` timestamps,
//! short money), days landing out of order and the same file delivered twice.
//!
//! A scenario is the list of uploads in landing order plus the lines of the last version of
//! each day's file, which [`crate::retail_reference`] reads back from the bytes. Every line is
//! valid (nothing is rejected) and no day's file is ever empty (a batch without staged lines
//! keeps its earlier lines, by design of the fact model).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;

use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom as _, SliceRandom as _};
use rand::{Rng as _, SeedableRng as _};

use crate::retail_reference::{COLUMNS, Line};
use crate::scenario::{Upload, csv_field, describe_form, money};

/// A generated history: uploads in landing order and the final lines of each day.
#[derive(Debug, Clone)]
pub struct RetailScenario {
    pub seed: u64,
    /// The batch dates, ascending.
    pub dates: Vec<NaiveDate>,
    pub uploads: Vec<Upload>,
    /// The lines of the last delivered version of each day's file.
    pub logical: BTreeMap<NaiveDate, Vec<Line>>,
    /// The two stock codes whose sales revenue ties (until a correction changes one of them).
    pub tied: (String, String),
    /// Indexes of uploads that land only once everything delivered before them has settled
    /// (exported from its latest file): corrections that come truly late, after their day and
    /// later days were reported, so the transformer must re-run the later days.
    pub settle_before: Vec<usize>,
}

/// Which header names a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The dataset's names: `invoice_no`, `stock_code`, …
    Own,
    /// The UCI file's: `InvoiceNo`, `StockCode`, `Description`, … `CustomerID`, `Country`.
    Uci,
    /// The UCI names upper-cased (headers match case-insensitively).
    UciUpper,
}

const UCI_NAMES: [&str; 8] = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
];

/// How a file is written: all legal forms of the same lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub header: Header,
    /// Column order as indexes into [`COLUMNS`].
    pub order: Vec<usize>,
    pub quote_all: bool,
    pub bom: bool,
    pub gzip: bool,
    pub crlf: bool,
    /// `2026-03-02T08:26:00` instead of `2026-03-02 08:26`.
    pub t_timestamps: bool,
    /// Prices as `2.5` and `18` instead of `2.50` and `18.00`.
    pub short_money: bool,
}

impl Form {
    /// The plain form: the dataset's names in order, quotes only where needed, LF.
    pub fn plain() -> Form {
        Form {
            header: Header::Own,
            order: (0..COLUMNS.len()).collect(),
            quote_all: false,
            bom: false,
            gzip: false,
            crlf: false,
            t_timestamps: false,
            short_money: false,
        }
    }

    /// A random legal form.
    pub fn random(rng: &mut StdRng) -> Form {
        let mut order: Vec<usize> = (0..COLUMNS.len()).collect();
        if rng.random_bool(0.5) {
            order.shuffle(rng);
        }
        Form {
            header: *[Header::Own, Header::Uci, Header::UciUpper]
                .choose(rng)
                .expect("a header style"),
            order,
            quote_all: rng.random_bool(0.4),
            bom: rng.random_bool(0.4),
            gzip: rng.random_bool(0.4),
            crlf: rng.random_bool(0.3),
            t_timestamps: rng.random_bool(0.5),
            short_money: rng.random_bool(0.4),
        }
    }

    /// Only the column order differs from the plain form (reversed, so it surely differs).
    pub fn reordered() -> Form {
        let mut form = Form::plain();
        form.order.reverse();
        form
    }

    /// The UCI header names, otherwise plain.
    pub fn uci() -> Form {
        Form {
            header: Header::Uci,
            ..Form::plain()
        }
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.header {
            Header::Own => {}
            Header::Uci => parts.push("UCI header"),
            Header::UciUpper => parts.push("UCI header upper-cased"),
        }
        describe_form(
            parts,
            &self.order,
            &[
                (self.quote_all, "all quoted"),
                (self.bom, "BOM"),
                (self.gzip, "gzip"),
                (self.crlf, "CRLF"),
                (self.t_timestamps, "T timestamps"),
                (self.short_money, "short money"),
            ],
        )
    }
}

/// `landing/online_retail/ingestion_date=<date>/transactions.csv[.gz]`.
pub fn landing_key(date: NaiveDate, gzip: bool) -> String {
    let suffix = if gzip { ".csv.gz" } else { ".csv" };
    format!("landing/online_retail/ingestion_date={date}/transactions{suffix}")
}

/// The bytes of a `transactions` file of `lines` in `form`.
pub fn encode(lines: &[Line], form: &Form) -> Vec<u8> {
    let line_end = if form.crlf { "\r\n" } else { "\n" };
    let mut text = String::new();
    if form.bom {
        text.push('\u{feff}');
    }
    let header: Vec<String> = form
        .order
        .iter()
        .map(|&index| {
            let name = match form.header {
                Header::Own => COLUMNS[index].0.to_owned(),
                Header::Uci => UCI_NAMES[index].to_owned(),
                Header::UciUpper => UCI_NAMES[index].to_ascii_uppercase(),
            };
            csv_field(&name, form.quote_all)
        })
        .collect();
    text.push_str(&header.join(","));
    text.push_str(line_end);
    for line in lines {
        let timestamp = if form.t_timestamps {
            line.invoice_date.format("%Y-%m-%dT%H:%M:%S")
        } else {
            line.invoice_date.format("%Y-%m-%d %H:%M")
        };
        let fields = [
            line.invoice_no.clone(),
            line.stock_code.clone(),
            line.description.clone().unwrap_or_default(),
            line.quantity.to_string(),
            timestamp.to_string(),
            money(line.unit_price, form.short_money),
            line.customer_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            line.country.clone(),
        ];
        let row: Vec<String> = form
            .order
            .iter()
            .map(|&index| csv_field(&fields[index], form.quote_all))
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

/// Builds the upload list while keeping each day's lines in step. It never puts bytes to a key
/// that held them before unless they are the key's current bytes (an object changed back to an
/// older version would look like a duplicate to the ledger, which keys files by key and ETag).
#[derive(Debug, Default)]
pub struct RetailUploader {
    pub uploads: Vec<Upload>,
    pub logical: BTreeMap<NaiveDate, Vec<Line>>,
    history: HashMap<String, Vec<Vec<u8>>>,
}

impl RetailUploader {
    /// Delivers `lines` as `date`'s file in `form`; false (and nothing delivered) when those
    /// bytes would bring back an older version of the key.
    pub fn deliver(&mut self, date: NaiveDate, lines: &[Line], form: &Form, why: &str) -> bool {
        assert!(!lines.is_empty(), "a day's file is never empty");
        let key = landing_key(date, form.gzip);
        let body = encode(lines, form);
        let versions = self.history.entry(key.clone()).or_default();
        if versions.contains(&body) && versions.last() != Some(&body) {
            return false;
        }
        versions.push(body.clone());
        self.logical.insert(date, lines.to_vec());
        self.uploads.push(Upload {
            key,
            body,
            what: format!(
                "{date} transactions: {why}, {} lines ({})",
                lines.len(),
                form.describe()
            ),
        });
        true
    }

    /// Delivers `lines` in a random form, or reordered when the random ones would bring back
    /// an older version.
    fn deliver_somehow(&mut self, rng: &mut StdRng, date: NaiveDate, lines: &[Line], why: &str) {
        for _ in 0..10 {
            let form = if rng.random_bool(0.5) {
                Form::plain()
            } else {
                Form::random(rng)
            };
            if self.deliver(date, lines, &form, why) {
                return;
            }
        }
        for form in [Form::reordered(), Form::uci()] {
            if self.deliver(date, lines, &form, why) {
                return;
            }
        }
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

/// (stock code, descriptions: the usual one first, then variants).
const PRODUCTS: [(&str, &[&str]); 14] = [
    (
        "85123A",
        &[
            "WHITE HANGING HEART T-LIGHT HOLDER",
            "CREAM HANGING HEART T-LIGHT HOLDER",
        ],
    ),
    ("71053", &["WHITE METAL LANTERN"]),
    (
        "22632",
        &["HAND WARMER RED POLKA DOT", "HAND WARMER RED RETROSPOT"],
    ),
    ("22633", &["HAND WARMER UNION JACK"]),
    ("84879", &["ASSORTED COLOUR BIRD ORNAMENT"]),
    ("22960", &["JAM MAKING SET WITH JARS", "JAM MAKING SET"]),
    ("POST", &["POSTAGE"]),
    ("21730", &["GLASS STAR FROSTED T-LIGHT HOLDER"]),
    ("84029G", &["KNITTED UNION FLAG HOT WATER BOTTLE"]),
    (
        "22752",
        &[
            "SET 7 BABUSHKA NESTING BOXES",
            "SET 7 BABUSHKA, NESTING BOXES",
        ],
    ),
    (
        "21754",
        &["HOME BUILDING BLOCK WORD", "HOME BUILDING BLOCK \"WORD\""],
    ),
    ("84406B", &["CREAM CUPID HEARTS COAT HANGER"]),
    (
        "22748",
        &["POPPY'S PLAYHOUSE KITCHEN", "POPPYS PLAYHOUSE KITCHEN"],
    ),
    ("M", &["Manual"]),
];
const PRICES: [i64; 12] = [85, 125, 165, 185, 210, 255, 295, 339, 425, 450, 765, 1800];
const COUNTRIES: [&str; 8] = [
    "United Kingdom",
    "EIRE",
    "France",
    "Germany",
    "USA",
    "Channel Islands",
    "Netherlands",
    "Belgium",
];

/// A product of the catalogue: (stock code, list price, descriptions with weights).
type Product = (&'static str, i64, Vec<(String, u32)>);

/// The generator's catalogue and customers for one seed.
struct Shop {
    products: Vec<Product>,
    /// The two codes sold only together, same price and quantity.
    twins: (usize, usize),
    countries: Vec<&'static str>,
    /// (customer id, home country).
    customers: Vec<(i64, &'static str)>,
}

impl Shop {
    fn new(rng: &mut StdRng) -> Shop {
        let mut catalogue = PRODUCTS.to_vec();
        catalogue.shuffle(rng);
        catalogue.truncate(rng.random_range(8..=14));
        let products: Vec<Product> = catalogue
            .iter()
            .map(|(code, names)| {
                let mut descriptions: Vec<(String, u32)> = names
                    .iter()
                    .enumerate()
                    .map(|(index, name)| {
                        let weight = if index == 0 {
                            6
                        } else {
                            rng.random_range(2..=6)
                        };
                        ((*name).to_owned(), weight)
                    })
                    .collect();
                // The usual description padded with spaces: the same one once trimmed.
                descriptions.push((format!(" {} ", names[0]), 1));
                // Whitespace only: no description once trimmed.
                descriptions.push(("  ".to_owned(), 1));
                (*code, *PRICES.choose(rng).expect("a price"), descriptions)
            })
            .collect();
        let twins = (0, 1);
        let mut products = products;
        products[twins.1].1 = products[twins.0].1;
        let mut countries = COUNTRIES.to_vec();
        countries.shuffle(rng);
        countries.truncate(rng.random_range(3..=5));
        let customers = (0..rng.random_range(8..=15))
            .map(|index| {
                (
                    12_000 + index * 397 + rng.random_range(0..300),
                    *countries.choose(rng).expect("a country"),
                )
            })
            .collect();
        Shop {
            products,
            twins,
            countries,
            customers,
        }
    }

    fn description(&self, rng: &mut StdRng, product: usize) -> Option<String> {
        if rng.random_bool(0.05) {
            return None;
        }
        let descriptions = &self.products[product].2;
        let total: u32 = descriptions.iter().map(|(_, weight)| weight).sum();
        let mut pick = rng.random_range(0..total);
        for (description, weight) in descriptions {
            if pick < *weight {
                return Some(description.clone());
            }
            pick -= weight;
        }
        unreachable!("a pick below the total weight")
    }
}

fn at(date: NaiveDate, rng: &mut StdRng) -> NaiveDateTime {
    let time = NaiveTime::from_hms_opt(rng.random_range(8..18), rng.random_range(0..60), 0)
        .expect("a time of day");
    date.and_time(time)
}

/// One day's lines: sales invoices, maybe a twin invoice, cancellations of earlier sales, a
/// stock adjustment, duplicates, an invoice of an earlier day continued.
fn day_lines(
    rng: &mut StdRng,
    shop: &Shop,
    date: NaiveDate,
    next_invoice: &mut i64,
    earlier_sales: &mut Vec<Line>,
) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    let sellable: Vec<usize> = (0..shop.products.len())
        .filter(|index| *index != shop.twins.0 && *index != shop.twins.1)
        .collect();
    let invoice_date = |rng: &mut StdRng| match rng.random_range(0..100) {
        0..75 => at(date, rng),
        // Dated in an earlier month (or this one), landing only now.
        _ => at(date - Days::new(rng.random_range(1..70)), rng),
    };
    for _ in 0..rng.random_range(3..=7) {
        *next_invoice += 1;
        let invoice_no = next_invoice.to_string();
        let (customer_id, country) = if rng.random_bool(0.2) {
            (None, *shop.countries.choose(rng).expect("a country"))
        } else {
            let (id, home) = *shop.customers.choose(rng).expect("a customer");
            let country = if rng.random_bool(0.15) {
                *shop.countries.choose(rng).expect("a country")
            } else {
                home
            };
            (Some(id), country)
        };
        let when = invoice_date(rng);
        for _ in 0..rng.random_range(1..=4) {
            let product = *sellable.choose(rng).expect("a product");
            let (code, price, _) = &shop.products[product];
            let unit_price = if rng.random_bool(0.15) {
                price / 2
            } else {
                *price
            };
            let quantity = if rng.random_bool(0.03) {
                0
            } else {
                rng.random_range(1..=24)
            };
            let line = Line {
                invoice_no: invoice_no.clone(),
                stock_code: (*code).to_owned(),
                description: shop.description(rng, product),
                quantity,
                invoice_date: when,
                unit_price,
                customer_id,
                country: country.to_owned(),
            };
            if rng.random_bool(0.1) {
                // An exact duplicate line, as the UCI data has.
                lines.push(line.clone());
            }
            lines.push(line);
        }
    }
    if rng.random_bool(0.6) {
        // The twins: the same quantity of each at the same price, so their revenue ties.
        *next_invoice += 1;
        let quantity = rng.random_range(1..=12);
        let (id, country) = *shop.customers.choose(rng).expect("a customer");
        let when = invoice_date(rng);
        for product in [shop.twins.0, shop.twins.1] {
            let (code, price, _) = &shop.products[product];
            lines.push(Line {
                invoice_no: next_invoice.to_string(),
                stock_code: (*code).to_owned(),
                description: shop.description(rng, product),
                quantity,
                invoice_date: when,
                unit_price: *price,
                customer_id: Some(id),
                country: country.to_owned(),
            });
        }
    }
    if rng.random_bool(0.3) {
        // An invoice of an earlier day continued: the same number, one more line.
        if let Some(earlier) = earlier_sales.choose(rng).cloned() {
            lines.push(Line {
                quantity: rng.random_range(1..=6),
                description: shop.description(rng, sellable[0]),
                stock_code: shop.products[sellable[0]].0.to_owned(),
                unit_price: shop.products[sellable[0]].1,
                ..earlier
            });
        }
    }
    earlier_sales.extend(
        lines
            .iter()
            .filter(|line| line.quantity > 0 && !line.invoice_no.starts_with('C'))
            .cloned(),
    );
    if rng.random_bool(0.7) {
        // A C invoice cancelling part of one or two earlier sales lines (often another day's).
        *next_invoice += 1;
        for _ in 0..rng.random_range(1..=2) {
            let sold = earlier_sales.choose(rng).expect("sales so far").clone();
            // Often written with another of the code's descriptions than the sale was: the
            // cancellation lines count in the "most frequent description" too.
            let description = if rng.random_bool(0.5) {
                let product = shop
                    .products
                    .iter()
                    .position(|(code, _, _)| *code == sold.stock_code)
                    .expect("a catalogue code");
                shop.description(rng, product)
            } else {
                sold.description.clone()
            };
            lines.push(Line {
                invoice_no: format!("C{next_invoice}"),
                quantity: -rng.random_range(1..=sold.quantity),
                invoice_date: at(date, rng),
                description,
                ..sold
            });
        }
    }
    if rng.random_bool(0.35) {
        // A stock adjustment: a negative quantity on an invoice without C, often no
        // description, no customer; a cancellation all the same.
        *next_invoice += 1;
        let product = rng.random_range(0..shop.products.len());
        lines.push(Line {
            invoice_no: next_invoice.to_string(),
            stock_code: shop.products[product].0.to_owned(),
            description: match rng.random_range(0..4) {
                0 => None,
                1 => Some("damaged".to_owned()),
                _ => shop.description(rng, product),
            },
            quantity: -rng.random_range(1..=10),
            invoice_date: at(date, rng),
            unit_price: if rng.random_bool(0.5) {
                0
            } else {
                shop.products[product].1
            },
            customer_id: None,
            country: shop.countries[0].to_owned(),
        });
    }
    lines.shuffle(rng);
    lines
}

/// A late correction of a day's file: one or two quantities changed, a line removed (never
/// the last), sometimes a line added.
fn correct(rng: &mut StdRng, shop: &Shop, lines: &mut Vec<Line>) {
    for _ in 0..rng.random_range(1..=2) {
        let index = rng.random_range(0..lines.len());
        let line = &mut lines[index];
        line.quantity = if line.is_cancellation() {
            line.quantity - rng.random_range(1..=3)
        } else {
            line.quantity + rng.random_range(1..=5)
        };
    }
    if lines.len() > 2 {
        let removed = rng.random_range(0..lines.len());
        lines.remove(removed);
    }
    if rng.random_bool(0.4) {
        let mut added = lines.choose(rng).expect("lines").clone();
        let product = rng.random_range(0..shop.products.len());
        added.stock_code = shop.products[product].0.to_owned();
        added.description = shop.description(rng, product);
        added.unit_price = shop.products[product].1;
        added.quantity = if added.is_cancellation() {
            -rng.random_range(1..=4)
        } else {
            rng.random_range(1..=9)
        };
        lines.push(added);
    }
}

impl RetailScenario {
    /// The scenario of `seed`: 4–6 days of tens of invoices.
    pub fn generate(seed: u64) -> RetailScenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let days = rng.random_range(4..=6usize);
        let first =
            NaiveDate::from_ymd_opt(2025, 1, 2).unwrap() + Days::new(rng.random_range(0..500));
        let mut dates = vec![first];
        for _ in 1..days {
            let gap = if rng.random_bool(0.2) { 2 } else { 1 };
            dates.push(*dates.last().unwrap() + Days::new(gap));
        }
        let shop = Shop::new(&mut rng);
        let mut next_invoice = 536_364 + rng.random_range(0..1000);
        let mut earlier_sales = Vec::new();
        let files: Vec<Vec<Line>> = dates
            .iter()
            .map(|date| {
                day_lines(
                    &mut rng,
                    &shop,
                    *date,
                    &mut next_invoice,
                    &mut earlier_sales,
                )
            })
            .collect();

        // Days land out of order: a pair of neighbours swapped (most seeds), sometimes the
        // first day landing last.
        let mut day_order: Vec<usize> = (0..days).collect();
        if rng.random_bool(0.8) {
            let at = rng.random_range(0..days - 1);
            day_order.swap(at, at + 1);
        }
        if rng.random_bool(0.3) {
            let day = day_order.remove(0);
            day_order.push(day);
        }
        let mut up = RetailUploader::default();
        let mut landed: Vec<usize> = Vec::new();
        for (position, &day) in day_order.iter().enumerate() {
            let form = if rng.random_bool(0.6) {
                Form::plain()
            } else {
                Form::random(&mut rng)
            };
            up.deliver(dates[day], &files[day], &form, "the day's file");
            landed.push(day);
            if rng.random_bool(0.08) {
                up.repeat_last();
            }
            // Now and then an earlier day's file again: the same lines in another form.
            if position > 0 && rng.random_bool(0.4) {
                let day = *landed.choose(&mut rng).expect("landed");
                let lines = up.logical[&dates[day]].clone();
                up.deliver_somehow(&mut rng, dates[day], &lines, "re-delivered, same lines");
            }
        }
        // Late corrections of one or two old days, the first (and sometimes the second) once
        // everything before it has settled.
        let mut settle_before = Vec::new();
        for correction in 0..rng.random_range(1..=2) {
            if correction == 0 || rng.random_bool(0.5) {
                settle_before.push(up.uploads.len());
            }
            let day = rng.random_range(0..days - 1);
            let mut lines = up.logical[&dates[day]].clone();
            correct(&mut rng, &shop, &mut lines);
            up.deliver_somehow(&mut rng, dates[day], &lines, "late correction");
            if rng.random_bool(0.3) {
                up.repeat_last();
            }
        }
        for _ in 0..rng.random_range(1..=2) {
            let day = rng.random_range(0..days);
            let lines = up.logical[&dates[day]].clone();
            up.deliver_somehow(&mut rng, dates[day], &lines, "re-delivered, same lines");
        }
        if rng.random_bool(0.5) {
            up.repeat_last();
        }
        RetailScenario {
            seed,
            dates,
            uploads: up.uploads,
            logical: up.logical,
            tied: (
                shop.products[shop.twins.0].0.to_owned(),
                shop.products[shop.twins.1].0.to_owned(),
            ),
            settle_before,
        }
    }
}
