//! The online_retail dataset end to end on a small fixture whose report values were worked out
//! by hand (the reasoning is in the comments): two ingestion dates of invoice lines land in S3,
//! and the real ingester, stager, transformer, quality-checker and exporter do the rest. An
//! ecommerce batch lands in the same run, for the same date, beside it.

use std::time::Duration;

use landfall_tests::{TestEnv, data, rows, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
const DAY1: &str = "2026-03-02";
const DAY2: &str = "2026-03-03";
const DAY3: &str = "2026-03-04";
const DAY4: &str = "2026-03-05";

// Day 1, in this dataset's own header names. Line numbers (the header is line 1) and amounts:
//  2  536365  85123A WHITE HANGING HEART …  6 × 2.55 = 15.30  17850 United Kingdom
//  3  536365  71053                          6 × 3.39 = 20.34  17850 United Kingdom
//  4  536365  85123A CREAM HANGING HEART …   2 × 2.55 =  5.10  17850 United Kingdom
//  5  536366  22633                          6 × 1.85 = 11.10  guest United Kingdom
//  6  536366  22632 … RED POLKA DOT          6 × 1.85 = 11.10  guest United Kingdom
//  7  536367  84879                         32 × 1.69 = 54.08  13047 United Kingdom
//  8  536367  85123A WHITE HANGING HEART …   4 × 2.55 = 10.20  13047 United Kingdom
//  9  536368  22632 … RED RETROSPOT         12 × 1.85 = 22.20  12583 France
// 10  536368  POST                           1 × 18.00 = 18.00 12583 France
// 11  C536369 84879 (cancellation)          -8 × 1.69 = -13.52 13047 United Kingdom
// 12  536370  71053 (invoiced in February)   2 × 3.39 =  6.78  12662 Germany
// 13  536370  POST  (invoiced in February)   1 × 18.00 = 18.00 12662 Germany
// 14  536371  21730 stock adjustment: no description, -5 × 0.00, no customer (flagged too)
const DAY1_CSV: &str =
    "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2026-03-02 08:26,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2026-03-02 08:26,3.39,17850,United Kingdom
536365,85123A,CREAM HANGING HEART T-LIGHT HOLDER,2,2026-03-02 08:26,2.55,17850,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,2026-03-02 08:28,1.85,,United Kingdom
536366,22632,HAND WARMER RED POLKA DOT,6,2026-03-02 08:28,1.85,,United Kingdom
536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,2026-03-02 08:34,1.69,13047,United Kingdom
536367,85123A,WHITE HANGING HEART T-LIGHT HOLDER,4,2026-03-02 08:34,2.55,13047,United Kingdom
536368,22632,HAND WARMER RED RETROSPOT,12,2026-03-02 09:00,1.85,12583,France
536368,POST,POSTAGE,1,2026-03-02 09:00,18.00,12583,France
C536369,84879,ASSORTED COLOUR BIRD ORNAMENT,-8,2026-03-02 10:15,1.69,13047,United Kingdom
536370,71053,WHITE METAL LANTERN,2,2026-02-27 16:00,3.39,12662,Germany
536370,POST,POSTAGE,1,2026-02-27 16:00,18.00,12662,Germany
536371,21730,,-5,2026-03-02 11:00,0.00,,United Kingdom
";

// Day 2, in the UCI file's header names (the aliases), ISO timestamps:
//  2  536372  85123A CREAM HANGING HEART …   6 × 2.55 = 15.30  13047 EIRE
//  3  536372  the same line again (the UCI data has exact duplicates; both are kept) 15.30
//  4  536372  22633                         12 × 1.85 = 22.20  13047 EIRE
//  5  536373  71053                          1 × 3.39 =  3.39  guest France
//  6  536374  22632 … RED POLKA DOT          2 × 1.85 =  3.70  17850 United Kingdom
//  7  C536375 POST  (cancellation)          -1 × 18.00 = -18.00 12583 France
//  8  C536375 22632 … RED RETROSPOT (canc.) -12 × 1.85 = -22.20 12583 France
//  9  536376  84879                          8 × 1.69 = 13.52  13047 EIRE
// 10  536377  22960                          8 × 4.50 = 36.00  17850 United Kingdom
const DAY2_CSV: &str =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536372,85123A,CREAM HANGING HEART T-LIGHT HOLDER,6,2026-03-03T09:02:00,2.55,13047,EIRE
536372,85123A,CREAM HANGING HEART T-LIGHT HOLDER,6,2026-03-03T09:02:00,2.55,13047,EIRE
536372,22633,HAND WARMER UNION JACK,12,2026-03-03T09:02:00,1.85,13047,EIRE
536373,71053,WHITE METAL LANTERN,1,2026-03-03T10:30:00,3.39,,France
536374,22632,HAND WARMER RED POLKA DOT,2,2026-03-03T11:00:00,1.85,17850,United Kingdom
C536375,POST,POSTAGE,-1,2026-03-03T12:00:00,18.00,12583,France
C536375,22632,HAND WARMER RED RETROSPOT,-12,2026-03-03T12:00:00,1.85,12583,France
536376,84879,ASSORTED COLOUR BIRD ORNAMENT,8,2026-03-03T13:00:00,1.69,13047,EIRE
536377,22960,JAM MAKING SET WITH JARS,8,2026-03-03T14:00:00,4.50,17850,United Kingdom
";

async fn query_text(env: &TestEnv, sql: &str) -> Vec<Vec<String>> {
    env.query_text(sql).await
}

fn retail_key(date: &str) -> String {
    format!("landing/online_retail/ingestion_date={date}/transactions.csv")
}

fn export_key(dataset: &str, report: &str, date: &str) -> String {
    format!("analytics_export/{dataset}/{report}/ingestion_date={date}/{report}.csv")
}

/// Waits until the dataset's batch is exported from its current files.
async fn wait_exported(env: &TestEnv, dataset: &str, date: &str) {
    env.wait_exported(dataset, date, DEADLINE).await;
}

/// A report's rows of one batch, every column as text, in export order.
async fn report(env: &TestEnv, table: &str, order_by: &str, date: &str) -> Vec<Vec<String>> {
    query_text(
        env,
        &format!(
            "SELECT t::text FROM analytics.{table} t WHERE ingestion_date = '{date}' ORDER BY {order_by}"
        ),
    )
    .await
}

/// Every online_retail warehouse and analytics table as text, to compare whole states.
async fn dump(env: &TestEnv) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for table in [
        "warehouse.retail_dim_date",
        "warehouse.retail_dim_country",
        "warehouse.retail_dim_customer",
        "warehouse.retail_dim_product",
        "warehouse.retail_fact_transactions",
        "analytics.retail_revenue_by_country_month",
        "analytics.retail_top_products",
        "analytics.retail_cancellation_rate",
    ] {
        let mut rows = query_text(env, &format!("SELECT '{table}', t::text FROM {table} t")).await;
        rows.sort();
        all.extend(rows);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_days_of_invoice_lines_give_the_hand_computed_reports_beside_ecommerce() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    let transformer = env.start_transformer(&[]);
    let checker = env.start_quality_checker(&[]);
    let exporter = env.start_exporter(&[]);

    // Day 1 of both datasets lands at once: same ingestion date, different datasets.
    env.put(&retail_key(DAY1), DAY1_CSV).await;
    env.put(
        &TestEnv::landing_key(DAY1, "orders.csv"),
        data::orders_csv(1, 20),
    )
    .await;
    env.put(
        &TestEnv::landing_key(DAY1, "shipment_deliveries.csv"),
        data::shipments_csv(20),
    )
    .await;
    env.put(
        &TestEnv::landing_key(DAY1, "reviews.csv"),
        data::reviews_csv(10),
    )
    .await;
    wait_exported(&env, "online_retail", DAY1).await;
    wait_exported(&env, "ecommerce", DAY1).await;

    // Every line is staged (none rejected) and loaded once.
    assert_eq!(
        query_text(&env, &format!("SELECT rows_loaded::text, rows_rejected::text FROM ops.files WHERE dataset = 'online_retail' AND ingestion_date = '{DAY1}'")).await,
        rows(&[&["13", "0"]])
    );
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.retail_fact_transactions")
            .await,
        13
    );
    // Cancellations flagged: line 11 (C invoice) and line 14 (negative quantity, no C).
    assert_eq!(
        query_text(&env, "SELECT f.source_line::text, f.invoice_no, f.line_amount::text FROM warehouse.retail_fact_transactions f WHERE f.is_cancellation ORDER BY f.source_line").await,
        rows(&[&["11", "C536369", "-13.52"], &["14", "536371", "0.00"]])
    );
    // Lines without a customer (5, 6, 14) point to the unknown member, never dropped.
    assert_eq!(
        query_text(&env, "SELECT f.source_line::text FROM warehouse.retail_fact_transactions f WHERE f.customer_key = -1 ORDER BY f.source_line").await,
        rows(&[&["5"], &["6"], &["14"]])
    );
    // Keys in customer id order within the batch; each customer's country is the one most of its
    // lines name (13047: three United Kingdom lines, 7, 8 and 11).
    assert_eq!(
        query_text(&env, "SELECT customer_key::text, coalesce(customer_id::text, 'NULL'), coalesce(country, 'NULL') FROM warehouse.retail_dim_customer d ORDER BY d.customer_key").await,
        rows(&[
            &["-1", "NULL", "NULL"],
            &["1", "12583", "France"],
            &["2", "12662", "Germany"],
            &["3", "13047", "United Kingdom"],
            &["4", "17850", "United Kingdom"],
        ])
    );
    // One key per stock code. 85123A: "WHITE …" twice (lines 2, 8), "CREAM …" once (line 4) →
    // WHITE. 22632: POLKA DOT once, RETROSPOT once → the tie goes to the alphabetically first,
    // POLKA DOT. 21730 has only an empty description.
    assert_eq!(
        query_text(&env, "SELECT stock_code, coalesce(description, 'NULL'), descriptions::text FROM warehouse.retail_dim_product ORDER BY stock_code COLLATE \"C\"").await,
        rows(&[
            &["21730", "NULL", "0"],
            &["22632", "HAND WARMER RED POLKA DOT", "2"],
            &["22633", "HAND WARMER UNION JACK", "1"],
            &["71053", "WHITE METAL LANTERN", "1"],
            &["84879", "ASSORTED COLOUR BIRD ORNAMENT", "1"],
            &["85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "2"],
            &["POST", "POSTAGE", "1"],
        ])
    );
    let heart_key = env
        .count("SELECT product_key FROM warehouse.retail_dim_product WHERE stock_code = '85123A'")
        .await;
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM warehouse.retail_fact_transactions WHERE product_key = {heart_key}")).await,
        3,
        "lines 2, 4 and 8 share 85123A's one key"
    );
    // dim_date: the whole year 2026 (every invoice and the batch date are in it).
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.retail_dim_date")
            .await,
        365
    );

    // Revenue by country and month as of day 1, sales lines only:
    // United Kingdom, March: 15.30 + 20.34 + 5.10 + 11.10 + 11.10 + 54.08 + 10.20 = 127.22;
    //   cancelled 13.52 (line 11) + 0.00 (line 14); invoices 536365-536367 = 3;
    //   units 6 + 6 + 2 + 6 + 6 + 32 + 4 = 62; customers 17850 and 13047 (guests not counted).
    // France, March: 22.20 + 18.00 = 40.20, one invoice, 13 units, one customer.
    // Germany, February (invoiced Feb 27, landed Mar 2): 6.78 + 18.00 = 24.78, 3 units.
    assert_eq!(
        report(
            &env,
            "retail_revenue_by_country_month",
            "month, country",
            DAY1
        )
        .await,
        rows(&[
            &["(2026-03-02,Germany,2026-02-01,24.78,0.00,1,3,1)"],
            &["(2026-03-02,France,2026-03-01,40.20,0.00,1,13,1)"],
            &["(2026-03-02,\"United Kingdom\",2026-03-01,127.22,13.52,3,62,2)"],
        ])
    );
    // Top products as of day 1 (the cancellation of 84879 does not reduce its sales):
    // 84879 54.08; POST 18.00 + 18.00 = 36.00; 22632 11.10 + 22.20 = 33.30;
    // 85123A 15.30 + 5.10 + 10.20 = 30.60; 71053 20.34 + 6.78 = 27.12; 22633 11.10.
    // 21730 has no sales line: not ranked.
    assert_eq!(
        report(&env, "retail_top_products", "rank", DAY1).await,
        rows(&[
            &["(2026-03-02,1,84879,\"ASSORTED COLOUR BIRD ORNAMENT\",54.08,32,1)"],
            &["(2026-03-02,2,POST,POSTAGE,36.00,2,2)"],
            &["(2026-03-02,3,22632,\"HAND WARMER RED POLKA DOT\",33.30,18,2)"],
            &["(2026-03-02,4,85123A,\"WHITE HANGING HEART T-LIGHT HOLDER\",30.60,12,2)"],
            &["(2026-03-02,5,71053,\"WHITE METAL LANTERN\",27.12,8,2)"],
            &["(2026-03-02,6,22633,\"HAND WARMER UNION JACK\",11.10,6,1)"],
        ])
    );
    // Cancellation rate as of day 1: 7 invoice numbers (536365-536371), 2 with a cancellation
    // line (C536369 and the adjustment 536371) → 2/7 = 28.57%; sales 192.20 (127.22 + 40.20 +
    // 24.78, which is also the sum of the top products), cancelled 13.52 → 7.03%.
    let rate_day1 = "(2026-03-02,7,2,28.57,192.20,13.52,7.03)";
    assert_eq!(
        report(&env, "retail_cancellation_rate", "ingestion_date", DAY1).await,
        rows(&[&[rate_day1]])
    );
    // The reports went out as CSV.
    assert_eq!(
        env.get_text(&export_key(
            "online_retail",
            "retail_cancellation_rate",
            DAY1
        ))
        .await,
        "ingestion_date,invoices,cancelled_invoices,pct_cancelled_invoices,sales_amount,cancelled_amount,pct_cancelled_amount\n\
         2026-03-02,7,2,28.57,192.20,13.52,7.03\n"
    );
    assert_eq!(
        env.get_text(&export_key(
            "online_retail",
            "retail_revenue_by_country_month",
            DAY1
        ))
        .await,
        "ingestion_date,country,month,revenue,cancelled_amount,invoices,units,customers\n\
         2026-03-02,Germany,2026-02-01,24.78,0.00,1,3,1\n\
         2026-03-02,France,2026-03-01,40.20,0.00,1,13,1\n\
         2026-03-02,United Kingdom,2026-03-01,127.22,13.52,3,62,2\n"
    );
    // The quality checks passed; the one warning is the stock adjustment, a negative quantity
    // outside a C invoice (line 14).
    assert_eq!(
        query_text(&env, &format!("SELECT check_name, failing_rows::text FROM ops.quality_results WHERE dataset = 'online_retail' AND ingestion_date = '{DAY1}' AND status <> 'passed' ORDER BY check_name")).await,
        rows(&[&["transactions_cancellation_sign", "1"]])
    );
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM ops.quality_results WHERE dataset = 'online_retail' AND ingestion_date = '{DAY1}'")).await,
        17
    );

    // The ecommerce batch of the same date went its own way: its 20 orders, its reports.
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.fact_orders")
            .await,
        20
    );
    assert!(
        env.get_text(&export_key("ecommerce", "agg_shipments", DAY1))
            .await
            .starts_with("ingestion_date,tt_late_shipments,tt_undelivered_shipments\n2026-03-02,")
    );
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM ops.exports WHERE ingestion_date = '{DAY1}' AND dataset = 'ecommerce'")).await,
        5
    );
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM ops.exports WHERE ingestion_date = '{DAY1}' AND dataset = 'online_retail'")).await,
        3
    );

    // Day 2: only the day's new lines (delta), in the UCI header names.
    env.put(&retail_key(DAY2), DAY2_CSV).await;
    wait_exported(&env, "online_retail", DAY2).await;
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.retail_fact_transactions")
            .await,
        13 + 9
    );

    // 85123A: WHITE twice (day 1), CREAM three times (day 1 line 4, day 2 lines 2 and 3) → the
    // description is now CREAM, the key is the same, and all five lines carry it. 22632: POLKA DOT
    // twice, RETROSPOT twice (one a cancellation) → still POLKA DOT. 22960 is new.
    assert_eq!(
        query_text(&env, "SELECT stock_code, coalesce(description, 'NULL'), descriptions::text FROM warehouse.retail_dim_product WHERE stock_code IN ('85123A', '22632', '22960') ORDER BY stock_code COLLATE \"C\"").await,
        rows(&[
            &["22632", "HAND WARMER RED POLKA DOT", "2"],
            &["22960", "JAM MAKING SET WITH JARS", "1"],
            &["85123A", "CREAM HANGING HEART T-LIGHT HOLDER", "2"],
        ])
    );
    assert_eq!(
        env.count(
            "SELECT product_key FROM warehouse.retail_dim_product WHERE stock_code = '85123A'"
        )
        .await,
        heart_key
    );
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM warehouse.retail_fact_transactions WHERE stock_code = '85123A' AND product_key = {heart_key}")).await,
        5
    );
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.retail_dim_product")
            .await,
        8
    );
    // Customer 13047 now has four EIRE lines against three United Kingdom ones: EIRE, same key.
    // The guest line 5 of day 2 is the fourth line on the unknown member.
    assert_eq!(
        query_text(&env, "SELECT customer_key::text, country FROM warehouse.retail_dim_customer WHERE customer_id = 13047").await,
        rows(&[&["3", "EIRE"]])
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM warehouse.retail_fact_transactions WHERE customer_key = -1"
        )
        .await,
        4
    );

    // Revenue as of day 2 covers both days:
    // United Kingdom, March: 127.22 + 3.70 (536374) + 36.00 (536377) = 166.92; cancelled still
    //   13.52; invoices 3 + 2 = 5; units 62 + 2 + 8 = 72; customers 17850, 13047 = 2.
    // France, March: 40.20 + 3.39 (guest) = 43.59; cancelled 18.00 + 22.20 = 40.20 (C536375);
    //   invoices 536368, 536373 = 2; units 13 + 1 = 14; customers 12583 (the guest not counted).
    // EIRE, March: 15.30 + 15.30 + 22.20 + 13.52 = 66.32; invoices 536372, 536376; units 32.
    // Germany, February: unchanged.
    assert_eq!(
        report(
            &env,
            "retail_revenue_by_country_month",
            "month, country",
            DAY2
        )
        .await,
        rows(&[
            &["(2026-03-03,Germany,2026-02-01,24.78,0.00,1,3,1)"],
            &["(2026-03-03,EIRE,2026-03-01,66.32,0.00,2,32,1)"],
            &["(2026-03-03,France,2026-03-01,43.59,40.20,2,14,1)"],
            &["(2026-03-03,\"United Kingdom\",2026-03-01,166.92,13.52,5,72,2)"],
        ])
    );
    // Top products as of day 2: 84879 54.08 + 13.52 = 67.60; 85123A 30.60 + 30.60 = 61.20
    // (3 invoices: 536365, 536367, 536372); 22632 33.30 + 3.70 = 37.00 (the cancelled RETROSPOT
    // line does not count); 22960 36.00 and POST 36.00 tie → the lower stock code, 22960, ranks
    // first; 22633 11.10 + 22.20 = 33.30; 71053 27.12 + 3.39 = 30.51. 85123A's description as of
    // day 2 is CREAM (3 lines against 2).
    assert_eq!(
        report(&env, "retail_top_products", "rank", DAY2).await,
        rows(&[
            &["(2026-03-03,1,84879,\"ASSORTED COLOUR BIRD ORNAMENT\",67.60,40,2)"],
            &["(2026-03-03,2,85123A,\"CREAM HANGING HEART T-LIGHT HOLDER\",61.20,24,3)"],
            &["(2026-03-03,3,22632,\"HAND WARMER RED POLKA DOT\",37.00,20,3)"],
            &["(2026-03-03,4,22960,\"JAM MAKING SET WITH JARS\",36.00,8,1)"],
            &["(2026-03-03,5,POST,POSTAGE,36.00,2,2)"],
            &["(2026-03-03,6,22633,\"HAND WARMER UNION JACK\",33.30,18,2)"],
            &["(2026-03-03,7,71053,\"WHITE METAL LANTERN\",30.51,9,3)"],
        ])
    );
    // Cancellation rate as of day 2: 7 + 6 = 13 invoice numbers, 3 with cancellations
    // (C536369, 536371, C536375) → 23.08%; sales 166.92 + 43.59 + 66.32 + 24.78 = 301.61;
    // cancelled 13.52 + 18.00 + 22.20 = 53.72 → 53.72 / 301.61 = 17.81%.
    assert_eq!(
        report(&env, "retail_cancellation_rate", "ingestion_date", DAY2).await,
        rows(&[&["(2026-03-03,13,3,23.08,301.61,53.72,17.81)"]])
    );
    // Day 1's reports are history: unchanged, WHITE still 85123A's description as of day 1.
    assert_eq!(
        report(&env, "retail_cancellation_rate", "ingestion_date", DAY1).await,
        rows(&[&[rate_day1]])
    );
    assert_eq!(
        query_text(&env, &format!("SELECT description FROM analytics.retail_top_products WHERE ingestion_date = '{DAY1}' AND stock_code = '85123A'")).await,
        rows(&[&["WHITE HANGING HEART T-LIGHT HOLDER"]])
    );
    assert!(
        env.get_text(&export_key("online_retail", "retail_top_products", DAY2))
            .await
            .contains("\n2026-03-03,4,22960,JAM MAKING SET WITH JARS,36.00,8,1\n2026-03-03,5,POST,POSTAGE,36.00,2,2\n")
    );

    // Re-running day 1 after day 2 changes nothing, down to the keys: its reports are as of
    // day 1, the dimensions are computed from all lines whatever the order.
    let before = dump(&env).await;
    let output = env
        .landfall(&["transform", "--dataset", "online_retail", "--date", DAY1])
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    wait_exported(&env, "online_retail", DAY1).await;
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM ops.transform_runs WHERE dataset = 'online_retail' AND ingestion_date = '{DAY1}'")).await,
        2
    );
    let after = dump(&env).await;
    let gone: Vec<&Vec<String>> = before.iter().filter(|row| !after.contains(row)).collect();
    let new: Vec<&Vec<String>> = after.iter().filter(|row| !before.contains(row)).collect();
    assert!(
        gone.is_empty() && new.is_empty() && before.len() == after.len(),
        "re-running day 1 changed the tables: gone {gone:?}, new {new:?}"
    );

    // Both datasets' batches are exported; the ecommerce tables hold only ecommerce rows.
    assert_eq!(
        query_text(&env, "SELECT dataset, ingestion_date::text, state FROM ops.batches ORDER BY dataset, ingestion_date").await,
        rows(&[
            &["ecommerce", DAY1, "exported"],
            &["online_retail", DAY1, "exported"],
            &["online_retail", DAY2, "exported"],
        ])
    );
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.fact_orders")
            .await,
        20
    );

    operator_commands(&env).await;

    exporter.stop().await;
    checker.stop().await;
    transformer.stop().await;
    stager.stop().await;
    ingester.stop().await;
    env.cleanup().await;
}

/// `landfall gen --dataset online_retail` for two days, then `landfall demo --input` on those
/// files (the embedded S3 server and the five service binaries as processes, on this test's
/// database): every batch is exported, every data line of the files is either a fact row or a
/// reject in the ledger, and every report has rows for each date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_sample_days_run_through_the_pipeline() {
    const DATES: [&str; 2] = ["2026-05-11", "2026-05-12"];
    const REPORTS: [&str; 3] = [
        "retail_revenue_by_country_month",
        "retail_top_products",
        "retail_cancellation_rate",
    ];
    let env = TestEnv::new().await;
    let dir = std::env::temp_dir().join(format!("landfall-retail-gen-{}", env.suffix));
    let data_dir = dir.join("data").display().to_string();
    let work_dir = dir.join("demo").display().to_string();

    let generated = env
        .landfall_ok(&[
            "gen",
            "--dataset",
            "online_retail",
            "--days",
            "2",
            "--last-date",
            DATES[1],
            "--orders-per-day",
            "150",
            "--dirty",
            "0.01",
            "--out",
            &data_dir,
        ])
        .await;
    assert_eq!(generated, format!("2 files written under {data_dir}\n"));
    // The data lines of each day's file (the header aside; no field spans lines).
    let mut lines = Vec::new();
    for date in DATES {
        let path = dir.join("data").join(date).join("transactions.csv");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(text.starts_with("invoice_no,stock_code,"), "{text}");
        lines.push(text.lines().count() as i64 - 1);
    }

    let demo = env
        .landfall_ok(&[
            "demo",
            "--dataset",
            "online_retail",
            "--input",
            &data_dir,
            "--database-url",
            &env.database_url,
            "--amqp-prefix",
            &env.prefix,
            "--work-dir",
            &work_dir,
        ])
        .await;
    for expected in [
        "Uploaded      2026-05-11: 1 files",
        "Uploaded      2026-05-12: 1 files",
        "Batch 2026-05-11: ",
        "Batch 2026-05-12: ",
        "retail_cancellation_rate",
    ] {
        assert!(demo.contains(expected), "'{expected}' missing:\n{demo}");
    }

    // Every batch exported, each with its three reports.
    assert_eq!(
        query_text(&env, "SELECT ingestion_date::text, state FROM ops.batches WHERE dataset = 'online_retail' ORDER BY ingestion_date").await,
        rows(&[&[DATES[0], "exported"], &[DATES[1], "exported"]])
    );
    for date in DATES {
        assert_eq!(
            env.count(&format!("SELECT count(*) FROM ops.exports WHERE dataset = 'online_retail' AND ingestion_date = '{date}'")).await,
            3
        );
        for report in REPORTS {
            // The demo's S3 folder for this database: s3/<database>@<host>-<port>.
            let csv = dir
                .join("demo/s3")
                .join(format!("{}@127.0.0.1-5432", env.database))
                .join("landfall-demo")
                .join(export_key("online_retail", report, date));
            assert!(csv.exists(), "{} missing", csv.display());
        }
    }

    // The ledger accounts for every line: one staged file a day, its lines loaded or rejected,
    // each reject stored with its line; the facts hold exactly the loaded lines.
    let mut rejected_total = 0;
    for (date, lines) in DATES.iter().zip(&lines) {
        let ledger = query_text(&env, &format!("SELECT state, rows_loaded::text, rows_rejected::text, (SELECT count(*) FROM ops.rejected_rows r WHERE r.file_id = f.file_id)::text FROM ops.files f WHERE dataset = 'online_retail' AND ingestion_date = '{date}'")).await;
        assert_eq!(ledger.len(), 1, "{date}: {ledger:?}");
        let [state, loaded, rejected, stored] = &ledger[0][..] else {
            unreachable!()
        };
        let (loaded, rejected): (i64, i64) = (loaded.parse().unwrap(), rejected.parse().unwrap());
        assert_eq!(state, "staged", "{date}");
        assert_eq!(
            loaded + rejected,
            *lines,
            "{date}: every data line loaded or rejected"
        );
        assert_eq!(stored, &rejected.to_string(), "{date}: every reject stored");
        assert_eq!(
            env.count(&format!("SELECT count(*) FROM warehouse.retail_fact_transactions WHERE ingestion_date = '{date}'")).await,
            lines - rejected,
            "{date}"
        );
        rejected_total += rejected;
    }
    assert!(rejected_total > 0, "--dirty 0.01 made lines to reject");
    assert_eq!(
        env.count("SELECT count(*) FROM warehouse.retail_fact_transactions")
            .await,
        lines.iter().sum::<i64>() - rejected_total
    );

    // Every report has rows for each date.
    for report in REPORTS {
        assert_eq!(
            query_text(&env, &format!("SELECT ingestion_date::text FROM analytics.{report} GROUP BY ingestion_date ORDER BY ingestion_date")).await,
            rows(&[&[DATES[0]], &[DATES[1]]]),
            "{report}"
        );
    }

    env.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `runs`, `replay` and `backfill` on the batches the test made: day 1 transformed twice, day 2
/// once, both exported.
async fn operator_commands(env: &TestEnv) {
    // Runs, newest first, filtered by dataset, date and batch state.
    let all = env
        .landfall_ok(&["runs", "--dataset", "online_retail"])
        .await;
    let data_rows: Vec<&str> = all.lines().skip(2).collect();
    assert_eq!(data_rows.len(), 3, "{all}");
    assert!(
        data_rows[0].contains(DAY1) && data_rows[0].contains("exported"),
        "{all}"
    );
    assert!(data_rows[2].contains("(earlier run)"), "{all}");
    let day2 = env
        .landfall_ok(&[
            "runs",
            "--dataset",
            "online_retail",
            "--date",
            DAY2,
            "--state",
            "exported",
        ])
        .await;
    assert_eq!(day2.lines().count(), 3, "{day2}");
    // Day 2 has no stock adjustment: every check passed.
    assert!(day2.contains("17 passed, 0 failed, 0 warned"), "{day2}");
    let none = env
        .landfall_ok(&["runs", "--state", "quality_failed"])
        .await;
    assert_eq!(none, "No transform runs match.\n");
    // --dataset: only that dataset's runs (column 2), the other dataset's are left out.
    let ecommerce = env.landfall_ok(&["runs", "--dataset", "ecommerce"]).await;
    let runs_of = |output: &str| -> Vec<(String, String)> {
        output
            .lines()
            .skip(2)
            .map(|line| {
                let cells: Vec<&str> = line.split_whitespace().collect();
                (cells[1].to_owned(), cells[2].to_owned())
            })
            .collect()
    };
    assert_eq!(
        runs_of(&ecommerce),
        [("ecommerce".to_owned(), DAY1.to_owned())],
        "{ecommerce}"
    );
    let exported = env
        .landfall_ok(&["runs", "--dataset", "online_retail", "--state", "exported"])
        .await;
    assert_eq!(runs_of(&exported).len(), 3, "{exported}");
    assert!(
        runs_of(&exported)
            .iter()
            .all(|(dataset, _)| dataset == "online_retail"),
        "{exported}"
    );
    let bad = env.landfall(&["runs", "--state", "rejected"]).await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("[possible values: staging, ready, transformed, quality_passed"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // Replay day 2's export: the same objects are written again, nothing else runs.
    let runs_before = env.count("SELECT count(*) FROM ops.transform_runs").await;
    let exported_before = query_text(env, &format!("SELECT max(exported_at)::text FROM ops.exports WHERE dataset = 'online_retail' AND ingestion_date = '{DAY2}'")).await;
    let csv_before = env
        .get_text(&export_key("online_retail", "retail_top_products", DAY2))
        .await;
    let replayed = env
        .landfall_ok(&[
            "replay",
            "--dataset",
            "online_retail",
            "--date",
            DAY2,
            "--from-stage",
            "export",
        ])
        .await;
    assert!(
        replayed.contains("online_retail/2026-03-03: exported"),
        "{replayed}"
    );
    assert_ne!(
        query_text(env, &format!("SELECT max(exported_at)::text FROM ops.exports WHERE dataset = 'online_retail' AND ingestion_date = '{DAY2}'")).await,
        exported_before
    );
    assert_eq!(
        env.get_text(&export_key("online_retail", "retail_top_products", DAY2))
            .await,
        csv_before
    );
    // Replay day 1's checks: they run again on the tables as they are, then the export.
    let checked_before = query_text(env, &format!("SELECT max(run_at)::text FROM ops.quality_results WHERE dataset = 'online_retail' AND ingestion_date = '{DAY1}'")).await;
    let replayed = env
        .landfall_ok(&[
            "replay",
            "--dataset",
            "online_retail",
            "--date",
            DAY1,
            "--from-stage",
            "quality",
        ])
        .await;
    assert!(
        replayed.contains("checked") && replayed.contains("exported"),
        "{replayed}"
    );
    assert_ne!(
        query_text(env, &format!("SELECT max(run_at)::text FROM ops.quality_results WHERE dataset = 'online_retail' AND ingestion_date = '{DAY1}'")).await,
        checked_before
    );
    assert!(replayed.contains("2/2 stages, "), "{replayed}");
    assert_eq!(
        env.count("SELECT count(*) FROM ops.transform_runs").await,
        runs_before
    );

    replay_from_transform(env).await;

    // Backfill days 2 to 4 after day 3's file landed without a notification: day 2 has all its
    // files and is re-run, day 3's file is landed by the backfill's listing, day 4 has none.
    env.set_notifications(false);
    env.put(
        &retail_key(DAY3),
        "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country\n\
         536378,71053,WHITE METAL LANTERN,10,2026-03-04 09:00,3.39,12662,Germany\n",
    )
    .await;
    let output = env
        .landfall_ok(&[
            "backfill",
            "--dataset",
            "online_retail",
            "--from",
            DAY2,
            "--to",
            DAY4,
        ])
        .await;
    // stdout is a pipe here: plain progress lines (`1/3 dates, 2 s: …`), not a redrawn bar.
    for expected in [
        "0/3 dates, ",
        ": online_retail/2026-03-03 listing s3://lake/landing/online_retail/ingestion_date=2026-03-03/",
        "online_retail/2026-03-03: 1 object(s) listed, nothing missing; 8 model(s) re-ran",
        "online_retail/2026-03-03: exported (",
        "online_retail/2026-03-04: 1 object(s) listed, 1 new file(s) landed",
        "online_retail/2026-03-04: exported (",
        "online_retail/2026-03-05: no files in s3://lake/landing/online_retail/ingestion_date=2026-03-05/; skipped",
        "3 date(s) in ",
        "2 exported, 1 skipped",
    ] {
        assert!(output.contains(expected), "'{expected}' missing:\n{output}");
    }
    let counts: Vec<&str> = output
        .lines()
        .filter_map(|line| line.split(" dates, ").next().filter(|c| c.len() == 3))
        .collect();
    assert!(
        counts.windows(2).all(|pair| pair[0] <= pair[1])
            && ["1/3", "2/3", "3/3"].iter().all(|c| counts.contains(c)),
        "one progress line per date done, in order: {counts:?}\n{output}"
    );
    assert!(
        !output.contains('\r') && !output.contains("[#"),
        "no bar in a pipe:\n{output}"
    );
    // Day 3 as of day 3: 13 + 1 invoices, still 3 with cancellations → 3/14 = 21.43%; sales
    // 301.61 + 10 × 3.39 = 335.51; cancelled 53.72 → 53.72 / 335.51 = 16.01%.
    assert_eq!(
        report(env, "retail_cancellation_rate", "ingestion_date", DAY3).await,
        rows(&[&["(2026-03-04,14,3,21.43,335.51,53.72,16.01)"]])
    );
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM ops.files WHERE ingestion_date = '{DAY3}' AND discovered_by = 'reconcile'")).await,
        1
    );
    // Day 2 re-ran from the same files: its reports are as they were.
    assert_eq!(
        report(env, "retail_cancellation_rate", "ingestion_date", DAY2).await,
        rows(&[&["(2026-03-03,13,3,23.08,301.61,53.72,17.81)"]])
    );

    status_filters(env).await;
}

/// `replay` from the transform stage (the default) on a finished batch: a new transform run,
/// a new quality run answering it and a new export answering that, and reports as they were.
async fn replay_from_transform(env: &TestEnv) {
    let batch = format!("dataset = 'online_retail' AND ingestion_date = '{DAY2}'");
    let runs_before = env
        .count(&format!(
            "SELECT count(*) FROM ops.transform_runs WHERE {batch}"
        ))
        .await;
    let last_run_before = env
        .count(&format!(
            "SELECT max(run_id) FROM ops.transform_runs WHERE {batch}"
        ))
        .await;
    let checked_by_before = query_text(
        env,
        &format!("SELECT DISTINCT transform_event_id::text FROM ops.quality_results WHERE {batch}"),
    )
    .await;
    let exports_before = query_text(env, &format!("SELECT report, event_id::text, rows::text, sha256 FROM ops.exports WHERE {batch} ORDER BY report")).await;
    let reports_before = (
        report(
            env,
            "retail_revenue_by_country_month",
            "month, country",
            DAY2,
        )
        .await,
        report(env, "retail_top_products", "rank", DAY2).await,
        report(env, "retail_cancellation_rate", "ingestion_date", DAY2).await,
    );
    let csv_before = env
        .get_text(&export_key("online_retail", "retail_top_products", DAY2))
        .await;
    let started: String = query_text(env, "SELECT clock_timestamp()::text").await[0][0].clone();

    let replayed = env
        .landfall_ok(&["replay", "--dataset", "online_retail", "--date", DAY2])
        .await;
    for expected in [
        "0/3 stages, ",
        ": online_retail/2026-03-03 running the models",
        "online_retail/2026-03-03: 8 model(s) ran",
        "1/3 stages, ",
        "online_retail/2026-03-03: replayed from the transform stage; ",
        "2/3 stages, ",
        "3/3 stages, ",
        "online_retail/2026-03-03: exported",
    ] {
        assert!(
            replayed.contains(expected),
            "'{expected}' missing:\n{replayed}"
        );
    }

    // One new transform run of the batch, from the same files.
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM ops.transform_runs WHERE {batch}"
        ))
        .await,
        runs_before + 1
    );
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM ops.transform_runs WHERE {batch} AND run_id > {last_run_before} AND started_at > '{started}' AND file_ids = (SELECT transformed_files FROM ops.batches WHERE {batch})")).await,
        1
    );
    // Every check ran again, answering one new transform.completed.
    let checked_by = query_text(
        env,
        &format!("SELECT DISTINCT transform_event_id::text FROM ops.quality_results WHERE {batch}"),
    )
    .await;
    assert_eq!(checked_by.len(), 1, "{checked_by:?}");
    assert_ne!(checked_by, checked_by_before);
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM ops.quality_results WHERE {batch} AND run_at > '{started}'"
        ))
        .await,
        17
    );
    // Every report exported again (a new quality.passed, a later time), with the same rows and
    // bytes; the batch's stage times moved on.
    let exports = query_text(env, &format!("SELECT report, event_id::text, rows::text, sha256 FROM ops.exports WHERE {batch} ORDER BY report")).await;
    assert_eq!(exports.len(), 3);
    for (after, before) in exports.iter().zip(&exports_before) {
        assert_eq!(after[0], before[0]);
        assert_ne!(after[1], before[1], "{} answered a new event", after[0]);
        assert_eq!(
            after[2..],
            before[2..],
            "{} has the same rows and bytes",
            after[0]
        );
    }
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM ops.exports WHERE {batch} AND exported_at > '{started}'"
        ))
        .await,
        3
    );
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM ops.batches WHERE {batch} AND state = 'exported' AND transformed_at > '{started}' AND quality_at > transformed_at AND exported_at > quality_at")).await,
        1
    );
    // The reports are unchanged.
    let reports_after = (
        report(
            env,
            "retail_revenue_by_country_month",
            "month, country",
            DAY2,
        )
        .await,
        report(env, "retail_top_products", "rank", DAY2).await,
        report(env, "retail_cancellation_rate", "ingestion_date", DAY2).await,
    );
    assert_eq!(reports_after, reports_before);
    assert_eq!(
        env.get_text(&export_key("online_retail", "retail_top_products", DAY2))
            .await,
        csv_before
    );
}

/// The rows of `landfall status`: (batches, files), each row's cells split on whitespace
/// (dataset, batch, state first for a batch; file, dataset, batch, source, state for a file).
fn status_rows(output: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut sections = output.split("\n\n");
    let table = |section: Option<&str>| -> Vec<Vec<String>> {
        let section = section.unwrap_or_default();
        if section.starts_with("Batches:") || section.starts_with("Files:") {
            return Vec::new();
        }
        section
            .lines()
            .skip(3)
            .map(|line| line.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let batches = table(sections.next());
    let files = table(sections.next());
    (batches, files)
}

/// `status` filtered by dataset and by state, a batch state or a file state: only matching rows.
async fn status_filters(env: &TestEnv) {
    // A batch left waiting (ecommerce day 2: orders only, reviews and shipments missing) and a
    // rejected file (online_retail day 4: a header the dataset does not know).
    env.set_notifications(true);
    env.put(
        &TestEnv::landing_key(DAY2, "orders.csv"),
        data::orders_csv(100, 5),
    )
    .await;
    env.put(&retail_key(DAY4), "invoice,stock,what\n1,2,3\n")
        .await;
    wait_until("ecommerce day 2 waiting, online_retail day 4 rejected", DEADLINE, || async {
        let waiting = env.try_count(&format!("SELECT count(*) FROM ops.batches WHERE dataset = 'ecommerce' AND ingestion_date = '{DAY2}' AND state = 'staging' AND sources_missing <> '{{}}'")).await?;
        let rejected = env.try_count(&format!("SELECT count(*) FROM ops.files WHERE dataset = 'online_retail' AND ingestion_date = '{DAY4}' AND state = 'rejected'")).await?;
        Ok((waiting == 1 && rejected == 1).then_some(()))
    })
    .await;
    let cells = |rows: &[Vec<String>], columns: &[usize]| -> Vec<Vec<String>> {
        let mut picked: Vec<Vec<String>> = rows
            .iter()
            .map(|row| columns.iter().map(|&index| row[index].clone()).collect())
            .collect();
        picked.sort();
        picked
    };
    let owned = |rows: &[&[&str]]| -> Vec<Vec<String>> {
        let mut rows: Vec<Vec<String>> = rows
            .iter()
            .map(|row| row.iter().map(|cell| (*cell).to_owned()).collect())
            .collect();
        rows.sort();
        rows
    };

    // --dataset: that dataset's batches and files only.
    let output = env.landfall_ok(&["status", "--dataset", "ecommerce"]).await;
    let (batches, files) = status_rows(&output);
    assert_eq!(
        cells(&batches, &[0, 1, 2]),
        owned(&[
            &["ecommerce", DAY1, "exported"],
            &["ecommerce", DAY2, "staging"]
        ]),
        "{output}"
    );
    assert_eq!(
        cells(&files, &[1, 2, 3, 4]),
        owned(&[
            &["ecommerce", DAY1, "orders", "staged"],
            &["ecommerce", DAY1, "reviews", "staged"],
            &["ecommerce", DAY1, "shipment_deliveries", "staged"],
            &["ecommerce", DAY2, "orders", "staged"],
        ]),
        "{output}"
    );

    // A batch state: the batches in it and their files.
    let output = env.landfall_ok(&["status", "--state", "staging"]).await;
    let (batches, files) = status_rows(&output);
    assert_eq!(
        cells(&batches, &[0, 1, 2]),
        owned(&[&["ecommerce", DAY2, "staging"]]),
        "{output}"
    );
    assert_eq!(
        cells(&files, &[1, 2, 3, 4]),
        owned(&[&["ecommerce", DAY2, "orders", "staged"]]),
        "{output}"
    );
    let output = env
        .landfall_ok(&[
            "status",
            "--dataset",
            "online_retail",
            "--state",
            "exported",
        ])
        .await;
    let (batches, files) = status_rows(&output);
    assert_eq!(
        cells(&batches, &[0, 1, 2]),
        owned(&[
            &["online_retail", DAY1, "exported"],
            &["online_retail", DAY2, "exported"],
            &["online_retail", DAY3, "exported"],
        ]),
        "{output}"
    );
    assert_eq!(
        cells(&files, &[1, 2, 3, 4]),
        owned(&[
            &["online_retail", DAY1, "transactions", "staged"],
            &["online_retail", DAY2, "transactions", "staged"],
            &["online_retail", DAY3, "transactions", "staged"],
        ]),
        "{output}"
    );

    // A file state: the files in it and the batches holding one.
    let output = env.landfall_ok(&["status", "--state", "rejected"]).await;
    let (batches, files) = status_rows(&output);
    assert!(
        batches.is_empty(),
        "a rejected file alone makes no batch:\n{output}"
    );
    assert!(output.starts_with("Batches: none match\n"), "{output}");
    assert_eq!(
        cells(&files, &[1, 2, 3, 4]),
        owned(&[&["online_retail", DAY4, "transactions", "rejected"]]),
        "{output}"
    );
    let output = env
        .landfall_ok(&["status", "--dataset", "ecommerce", "--state", "staged"])
        .await;
    let (batches, files) = status_rows(&output);
    assert_eq!(
        cells(&batches, &[0, 1, 2]),
        owned(&[
            &["ecommerce", DAY1, "exported"],
            &["ecommerce", DAY2, "staging"]
        ]),
        "{output}"
    );
    assert_eq!(files.len(), 4, "{output}");
    assert!(
        files
            .iter()
            .all(|file| file[1] == "ecommerce" && file[4] == "staged"),
        "{output}"
    );

    // A state that is neither is refused, listing the choices.
    let bad = env.landfall(&["status", "--state", "done"]).await;
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("invalid value 'done' for '--state <STATE>'")
            && stderr.contains("[possible values: staging, ready, transformed, quality_passed, quality_failed, exported, landed, staged, rejected, superseded, missing, ignored]"),
        "{stderr}"
    );
}

/// Delta mode: a day that lands after a later day was transformed is counted in that later
/// day's "as of" reports: the transformer runs the later day again, by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_landing_after_a_later_one_is_counted_in_its_reports() {
    let env = TestEnv::new().await;
    let services = env.start_pipeline(&[], DEADLINE).await;

    // Day 2 alone (by hand, from the line table above): invoices 536372, 536373, 536374,
    // C536375, 536376, 536377 = 6, one cancelled (16.67 %); sales 15.30 + 15.30 + 22.20 + 3.39
    // + 3.70 + 13.52 + 36.00 = 109.41; cancelled 18.00 + 22.20 = 40.20, 40.20 / 109.41 = 36.74 %.
    env.put(&retail_key(DAY2), DAY2_CSV).await;
    wait_exported(&env, "online_retail", DAY2).await;
    assert_eq!(
        report(&env, "retail_cancellation_rate", "ingestion_date", DAY2).await,
        rows(&[&["(2026-03-03,6,1,16.67,109.41,40.20,36.74)"]])
    );

    // Day 1 lands late: day 2 runs again and now covers both days, as in the in-order test.
    env.put(&retail_key(DAY1), DAY1_CSV).await;
    wait_exported(&env, "online_retail", DAY1).await;
    let runs_of_day2 = format!(
        "SELECT count(*) FROM ops.transform_runs WHERE dataset = 'online_retail' AND ingestion_date = '{DAY2}'"
    );
    wait_until("day 2 transformed again", DEADLINE, || async {
        Ok((env.try_count(&runs_of_day2).await? == 2).then_some(()))
    })
    .await;
    wait_exported(&env, "online_retail", DAY2).await;
    wait_until("day 2's reports published again", DEADLINE, || async {
        let row = report(&env, "retail_cancellation_rate", "ingestion_date", DAY2).await;
        Ok((row == rows(&[&["(2026-03-03,13,3,23.08,301.61,53.72,17.81)"]])).then_some(()))
    })
    .await;
    assert!(
        env.get_text(&export_key(
            "online_retail",
            "retail_cancellation_rate",
            DAY2
        ))
        .await
        .contains("\n2026-03-03,13,3,23.08,301.61,53.72,17.81\n")
    );
    for service in services {
        service.stop().await;
    }
    env.cleanup().await;
}

/// A day corrected down to no lines at all (a file with the header only) loses its lines; the
/// reports as of that day count none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_corrected_to_no_lines_has_none() {
    let env = TestEnv::new().await;
    let services = env.start_pipeline(&[], DEADLINE).await;
    env.put(&retail_key(DAY1), DAY1_CSV).await;
    wait_exported(&env, "online_retail", DAY1).await;
    let day1_lines = format!(
        "SELECT count(*) FROM warehouse.retail_fact_transactions WHERE ingestion_date = '{DAY1}'"
    );
    assert_eq!(env.count(&day1_lines).await, 13);

    let header = DAY1_CSV.lines().next().expect("the header");
    env.put(&retail_key(DAY1), format!("{header}\n")).await;
    wait_until("the header-only version staged", DEADLINE, || async {
        let staged = env
            .try_count(&format!(
                "SELECT count(*) FROM ops.staged_sources WHERE dataset = 'online_retail'
                  AND ingestion_date = '{DAY1}' AND rows_loaded = 0"
            ))
            .await?;
        Ok((staged == 1).then_some(()))
    })
    .await;
    wait_exported(&env, "online_retail", DAY1).await;
    assert_eq!(env.count(&day1_lines).await, 0);
    assert_eq!(
        query_text(&env, &format!("SELECT invoices::text, sales_amount::text FROM analytics.retail_cancellation_rate WHERE ingestion_date = '{DAY1}'")).await,
        rows(&[&["0", "0.00"]])
    );
    for service in services {
        service.stop().await;
    }
    env.cleanup().await;
}
