//! `landfall gen --dataset online_retail`: deterministic sample files in the shape of the public
//! UCI "Online Retail" transactions — one `transactions.csv` per ingestion date holding that
//! day's invoice lines (delta mode). Customers in several countries, guest checkouts without a
//! customer id, stock codes whose description varies from line to line, cancellations (`C`
//! invoices with negative quantities), the odd stock adjustment (negative quantity, no
//! customer, no description), and at `--dirty RATE` malformed lines a stager rejects.

use std::fmt::Write as _;
use std::path::Path;

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::sample::GenArgs;

/// The file of every batch: `<out>/<YYYY-MM-DD>/transactions.csv`.
pub const SOURCE: &str = "transactions";
pub const HEADER: &str =
    "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country";

/// Stock codes with their usual description, alternative descriptions some lines carry instead
/// (as in the UCI data, where one code is spelled several ways) and unit price in pence.
const PRODUCTS: &[(&str, &str, &[&str], i64)] = &[
    (
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        &["CREAM HANGING HEART T-LIGHT HOLDER"],
        255,
    ),
    ("71053", "WHITE METAL LANTERN", &[], 339),
    (
        "84406B",
        "CREAM CUPID HEARTS COAT HANGER",
        &["CUPID HEARTS COAT HANGER"],
        275,
    ),
    ("84029G", "KNITTED UNION FLAG HOT WATER BOTTLE", &[], 339),
    ("84029E", "RED WOOLLY HOTTIE WHITE HEART.", &[], 339),
    ("22752", "SET 7 BABUSHKA NESTING BOXES", &[], 765),
    ("21730", "GLASS STAR FROSTED T-LIGHT HOLDER", &[], 425),
    ("22633", "HAND WARMER UNION JACK", &[], 185),
    (
        "22632",
        "HAND WARMER RED POLKA DOT",
        &["HAND WARMER RED RETROSPOT"],
        185,
    ),
    ("84879", "ASSORTED COLOUR BIRD ORNAMENT", &[], 169),
    ("22745", "POPPY'S PLAYHOUSE BEDROOM", &[], 210),
    ("22748", "POPPY'S PLAYHOUSE KITCHEN", &[], 210),
    ("22749", "FELTCRAFT PRINCESS CHARLOTTE DOLL", &[], 375),
    ("22310", "IVORY KNITTED MUG COSY", &[], 165),
    ("84969", "BOX OF 6 ASSORTED COLOUR TEASPOONS", &[], 425),
    ("22623", "BOX OF VINTAGE JIGSAW BLOCKS", &[], 495),
    ("22622", "BOX OF VINTAGE ALPHABET BLOCKS", &[], 995),
    ("21754", "HOME BUILDING BLOCK WORD", &[], 595),
    ("21755", "LOVE BUILDING BLOCK WORD", &[], 595),
    ("21777", "RECIPE BOX WITH METAL HEART", &[], 795),
    ("48187", "DOORMAT NEW ENGLAND", &[], 795),
    (
        "22960",
        "JAM MAKING SET WITH JARS",
        &["JAM MAKING SET WITH JARS "],
        425,
    ),
    ("22913", "RED COAT RACK PARIS FASHION", &[], 495),
    ("22912", "YELLOW COAT RACK PARIS FASHION", &[], 495),
    ("22914", "BLUE COAT RACK PARIS FASHION", &[], 495),
    ("21756", "BATH BUILDING BLOCK WORD", &[], 595),
    (
        "22728",
        "ALARM CLOCK BAKELIKE PINK",
        &["ALARM CLOCK BAKELIKE PINK "],
        375,
    ),
    ("22727", "ALARM CLOCK BAKELIKE RED", &[], 375),
    ("22726", "ALARM CLOCK BAKELIKE GREEN", &[], 375),
    ("21724", "PANDA AND BUNNIES STICKER SHEET", &[], 85),
    ("21883", "STARS GIFT TAPE", &[], 65),
    ("10002", "INFLATABLE POLITICAL GLOBE", &[], 85),
    ("21791", "VINTAGE HEADS AND TAILS CARD GAME", &[], 125),
    ("21035", "SET/2 RED RETROSPOT TEA TOWELS", &[], 295),
    ("22326", "ROUND SNACK BOXES SET OF4 WOODLAND", &[], 295),
    ("22629", "SPACEBOY LUNCH BOX", &[], 195),
    ("22659", "LUNCH BOX I LOVE LONDON", &[], 195),
    ("22631", "CIRCUS PARADE LUNCH BOX", &[], 195),
    ("22661", "CHARLOTTE BAG DOLLY GIRL DESIGN", &[], 85),
    ("21731", "RED TOADSTOOL LED NIGHT LIGHT", &[], 165),
    ("22900", "SET 2 TEA TOWELS I LOVE LONDON", &[], 295),
    (
        "21094",
        "SET/6 RED SPOTTY PAPER PLATES",
        &["SET/6 RED SPOTTY PAPER PLATES "],
        85,
    ),
    (
        "20725",
        "LUNCH BAG RED RETROSPOT",
        &["LUNCH BAG RED SPOTTY"],
        165,
    ),
    ("23084", "RABBIT NIGHT LIGHT", &[], 208),
    ("47566", "PARTY BUNTING", &[], 495),
    ("85099B", "JUMBO BAG RED RETROSPOT", &[], 208),
    ("84077", "WORLD WAR 2 GLIDERS ASSTD DESIGNS", &[], 29),
    ("22197", "SMALL POPCORN HOLDER", &["POPCORN HOLDER"], 85),
    ("POST", "POSTAGE", &[], 1800),
];

/// Countries and how many of every 100 customers live there.
const COUNTRIES: &[(&str, u32)] = &[
    ("United Kingdom", 78),
    ("Germany", 5),
    ("France", 4),
    ("EIRE", 3),
    ("Spain", 2),
    ("Netherlands", 2),
    ("Belgium", 2),
    ("Switzerland", 1),
    ("Portugal", 1),
    ("Australia", 1),
    ("Norway", 1),
];

const CUSTOMERS: i64 = 400;
const FIRST_CUSTOMER: i64 = 12_346;
const FIRST_INVOICE: i64 = 536_365;

/// Writes `<out>/<YYYY-MM-DD>/transactions.csv` for every date; returns how many files.
pub fn write(args: &GenArgs, out: &Path) -> anyhow::Result<usize> {
    anyhow::ensure!(
        (0.0..=0.5).contains(&args.dirty),
        "--dirty must lie between 0 and 0.5"
    );
    anyhow::ensure!(
        args.days >= 1 && args.orders_per_day >= 1,
        "--days and --orders-per-day (invoices per day) must be at least 1"
    );
    let mut written = 0;
    for (day, date) in args.dates().into_iter().enumerate() {
        let dir = out.join(date.to_string());
        std::fs::create_dir_all(&dir)?;
        let body = transactions(date, day as i64, args.orders_per_day, args.dirty);
        std::fs::write(dir.join(format!("{SOURCE}.csv")), body)?;
        written += 1;
    }
    Ok(written)
}

/// The country a customer lives in (a few change country once in a while, as in the UCI data).
fn customer_country(customer: i64) -> &'static str {
    let mut slot = ((customer * 7_919) % 100) as u32;
    for (country, share) in COUNTRIES {
        if slot < *share {
            return country;
        }
        slot -= share;
    }
    COUNTRIES[0].0
}

/// A field quoted when it holds a comma, a quote or a line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn price(pence: i64) -> String {
    format!("{}.{:02}", pence / 100, pence % 100)
}

/// One ingestion date's invoice lines. `day` numbers the dates from 0 so invoice numbers never
/// repeat; each day has its own seed, so a date's file is the same however many days are made.
pub fn transactions(date: NaiveDate, day: i64, invoices_per_day: i64, dirty: f64) -> String {
    let mut rng = StdRng::seed_from_u64(15_485_863 * day as u64 + 11);
    let mut csv = format!("{HEADER}\n");
    let mut invoice = FIRST_INVOICE + day * invoices_per_day * 2;
    // Lines of today's invoices with a customer: what a cancellation can take back.
    let mut cancellable: Vec<(i64, usize, i64)> = Vec::new();
    for index in 0..invoices_per_day {
        invoice += 1;
        // Invoices through the day, 08:00 to 19:59, in order.
        let minute = 8 * 60 + index * 12 * 60 / invoices_per_day;
        let at = format!("{date} {:02}:{:02}", minute / 60, minute % 60);
        let (customer, country) = buyer(&mut rng);
        let sale = Invoice {
            number: invoice,
            date,
            at: &at,
            customer_text: customer.map(|c| c.to_string()).unwrap_or_default(),
            country,
        };
        for _ in 0..rng.random_range(1..=8) {
            if let Some(line) = invoice_line(&mut rng, &mut csv, &sale, dirty)
                && let Some(customer) = customer
            {
                cancellable.push((customer, line.0, line.1));
            }
        }
        // Now and then a stock adjustment: negative quantity, no price, no customer, no
        // description (not a C invoice, but flagged as a cancellation all the same).
        if rng.random_bool(0.01) {
            invoice += 1;
            let (code, _, _, _) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
            writeln!(
                csv,
                "{invoice},{code},,-{},{at},0.00,,United Kingdom",
                rng.random_range(1..30)
            )
            .unwrap();
        }
        // About one invoice in thirty is followed by a cancellation of an earlier line.
        if !cancellable.is_empty() && rng.random_bool(1.0 / 30.0) {
            invoice += 1;
            let (customer, product, quantity) = cancellable[rng.random_range(0..cancellable.len())];
            let (code, usual, _, pence) = PRODUCTS[product];
            writeln!(
                csv,
                "C{invoice},{code},{},-{quantity},{at},{},{customer},{}",
                field(usual),
                price(pence),
                field(customer_country(customer))
            )
            .unwrap();
        }
    }
    csv
}

/// One invoice: its number, when, and who bought (the customer id as written, empty for a
/// guest).
struct Invoice<'a> {
    number: i64,
    date: NaiveDate,
    at: &'a str,
    customer_text: String,
    country: &'static str,
}

/// The invoice's customer (none for about one in five: a guest checkout) and country.
fn buyer(rng: &mut StdRng) -> (Option<i64>, &'static str) {
    let customer = (!rng.random_bool(0.2)).then(|| {
        // Some customers buy far more often than others.
        let spread = rng.random_range(0..CUSTOMERS * CUSTOMERS);
        FIRST_CUSTOMER + (spread as f64).sqrt() as i64
    });
    let country = match customer {
        Some(customer) => customer_country(customer),
        None => COUNTRIES[rng.random_range(0..4)].0,
    };
    (customer, country)
}

/// Writes one line of the invoice (malformed at the rate `dirty`); the product and quantity of
/// a well-formed one.
fn invoice_line(
    rng: &mut StdRng,
    csv: &mut String,
    sale: &Invoice<'_>,
    dirty: f64,
) -> Option<(usize, i64)> {
    let Invoice {
        number: invoice,
        at,
        customer_text,
        country,
        ..
    } = sale;
    let product = rng.random_range(0..PRODUCTS.len());
    let (code, usual, others, pence) = PRODUCTS[product];
    let description = if !others.is_empty() && rng.random_bool(0.3) {
        others[rng.random_range(0..others.len())]
    } else {
        usual
    };
    let quantity = if code == "POST" {
        1
    } else {
        [1, 2, 3, 4, 6, 6, 12, 12, 24, 48][rng.random_range(0..10)]
    };
    if rng.random_bool(dirty) {
        let bad = malformed_line(rng, sale, code, description, quantity, pence);
        writeln!(csv, "{bad}").unwrap();
        return None;
    }
    writeln!(
        csv,
        "{invoice},{code},{},{quantity},{at},{},{customer_text},{}",
        field(description),
        price(pence),
        field(country)
    )
    .unwrap();
    Some((product, quantity))
}

/// A line the stager rejects: a quantity in words, a US-style date, a negative price or no
/// stock code.
fn malformed_line(
    rng: &mut StdRng,
    sale: &Invoice<'_>,
    code: &str,
    description: &str,
    quantity: i64,
    pence: i64,
) -> String {
    let Invoice {
        number: invoice,
        date,
        at,
        customer_text,
        country,
        ..
    } = sale;
    match rng.random_range(0..4) {
        0 => format!(
            "{invoice},{code},{},two,{at},{},{customer_text},{country}",
            field(description),
            price(pence)
        ),
        1 => format!(
            "{invoice},{code},{},{quantity},{},{},{customer_text},{country}",
            field(description),
            date.format("%-m/%-d/%Y 8:26"),
            price(pence)
        ),
        2 => format!(
            "{invoice},{code},{},{quantity},{at},-{},{customer_text},{country}",
            field(description),
            price(pence)
        ),
        _ => format!(
            "{invoice},,{},{quantity},{at},{},{customer_text},{country}",
            field(description),
            price(pence)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_has_guests_cancellations_varying_descriptions_and_several_countries() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let csv = transactions(date, 2, 500, 0.0);
        assert!(csv.starts_with(HEADER));
        let lines: Vec<&str> = csv.lines().skip(1).collect();
        assert!(lines.len() > 1000, "{} lines", lines.len());
        let cancellations = lines.iter().filter(|l| l.starts_with('C')).count();
        assert!(cancellations > 5, "{cancellations} cancellations");
        assert!(
            lines
                .iter()
                .filter(|l| l.starts_with('C'))
                .all(|l| l.split(',').nth(3).is_some_and(|q| q.starts_with('-')))
        );
        let guests = lines.iter().filter(|l| l.contains(",,")).count();
        assert!(guests > 50, "{guests} lines without a customer");
        let countries: std::collections::BTreeSet<&str> =
            lines.iter().filter_map(|l| l.rsplit(',').next()).collect();
        assert!(countries.len() >= 5, "{countries:?}");
        let pink = |d: &str| lines.iter().filter(|l| l.contains(d)).count();
        assert!(
            pink("CREAM HANGING HEART") > 0 && pink("WHITE HANGING HEART") > 0,
            "one stock code, two descriptions"
        );
        // The same date gives the same file.
        assert_eq!(csv, transactions(date, 2, 500, 0.0));
    }

    #[test]
    fn dirt_is_measured() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let csv = transactions(date, 0, 1000, 0.1);
        let bad = csv
            .lines()
            .filter(|l| {
                l.contains(",two,")
                    || l.contains(" 8:26,")
                    || l.contains(",-") && !l.starts_with('C') && !l.contains(",0.00,")
                    || l.split(',').nth(1) == Some("")
            })
            .count();
        let total = csv.lines().count() - 1;
        assert!(
            (total / 20..total / 5).contains(&bad),
            "about 10% dirty, got {bad} of {total}"
        );
    }
}
