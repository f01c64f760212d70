//! The extractor against a real source PostgreSQL database made by the test (the sample shop of
//! `datasets/ecommerce/shop.sql`, read through a login that may only SELECT): what it lands goes
//! through the real five services, and the reports are compared with those of landing the
//! equivalent CSV files in a second, independent environment.

use std::path::Path;
use std::time::Duration;

use landfall_tests::{BUCKET, TestEnv, data, datasets, wait_until};
use runtime::Env;
use scratch::shop::{READER, Shop};
use scratch::{Admin, ScratchDatabase};

const DEADLINE: Duration = Duration::from_secs(90);
const DAY1: &str = "2026-03-02";
const DAY2: &str = "2026-03-03";

/// A test environment with a shop database beside it.
struct ShopEnv {
    env: TestEnv,
    shop: Shop,
}

impl ShopEnv {
    async fn new() -> ShopEnv {
        let env = TestEnv::new().await;
        let admin = Admin::parse(&env.servers.database_url("postgres")).expect("admin URL");
        let shop = Shop::create(&admin, ScratchDatabase::unique_name("landfall_shop"))
            .await
            .expect("the shop database");
        ShopEnv { env, shop }
    }

    /// The extractor's variables for `dataset` and `date`, reading the shop.
    fn vars(
        &self,
        dataset: &str,
        date: &str,
        datasets_dir: Option<&Path>,
    ) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = self.env.vars().into_iter().collect();
        vars.push((
            "LANDFALL_SOURCE_DATABASE_URL".into(),
            self.shop.reader_url.clone(),
        ));
        vars.push(("LANDFALL_EXTRACT_DATASET".into(), dataset.into()));
        vars.push(("LANDFALL_EXTRACT_DATE".into(), date.into()));
        if let Some(dir) = datasets_dir {
            vars.push(("LANDFALL_DATASETS_DIR".into(), dir.display().to_string()));
        }
        vars
    }

    /// One extract run, in-process.
    async fn extract(
        &self,
        dataset: &str,
        date: &str,
        datasets_dir: Option<&Path>,
    ) -> anyhow::Result<Vec<extractor::Extracted>> {
        let vars = self.vars(dataset, date, datasets_dir);
        let config = <extractor::ExtractorConfig as runtime::service::ServiceConfig>::from_env(
            &Env::from_fn(|name| {
                vars.iter()
                    .rev()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.clone())
            }),
        )
        .expect("extractor configuration");
        extractor::extract_once(&config).await
    }

    /// A statement on the shop as its owner.
    async fn shop_sql(&self, sql: &str) {
        let client = self.shop.database.connect().await.expect("shop connection");
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    async fn cleanup(self) {
        self.shop.database.drop().await.expect("dropping the shop");
        self.env.cleanup().await;
    }
}

/// Every report of `dataset` for `date`, one JSON text per row, sorted.
async fn reports(env: &TestEnv, dataset: &str, date: &str) -> Vec<(String, Vec<String>)> {
    let datasets = env.datasets();
    let mut all = Vec::new();
    for report in &datasets.get(dataset).expect("dataset").reports {
        let rows = env
            .query_text(&format!(
                "SELECT row_to_json(r)::text FROM analytics.{report} r
                  WHERE ingestion_date = '{date}' ORDER BY 1"
            ))
            .await
            .into_iter()
            .map(|row| row[0].clone())
            .collect();
        all.push((report.clone(), rows));
    }
    all
}

fn customers_csv() -> String {
    let mut csv = String::from("customer_id,customer_name,postal_code\n");
    for id in 1..=97 {
        csv.push_str(&format!("{id},Customer {id},{:05}\n", 10_000 + id * 7));
    }
    csv
}

fn products_csv() -> String {
    let mut csv = String::from("product_id,product_category,product_name\n");
    for id in 1..=13 {
        csv.push_str(&format!("{id},Category {},Product {id}\n", id % 3));
    }
    csv
}

/// The objects under the landing prefix.
async fn landed_keys(env: &TestEnv) -> Vec<String> {
    let listed = env
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("landing/")
        .send()
        .await
        .expect("listing the landing prefix");
    listed
        .contents()
        .iter()
        .filter_map(|object| object.key().map(str::to_owned))
        .collect()
}

async fn etag_of(env: &TestEnv, key: &str) -> String {
    env.s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|error| panic!("HEAD {key}: {error:?}"))
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

/// A snapshot extract of the five shop tables lands the reports that landing the same rows as
/// CSV files does; the file's trace starts at the extract; extracting the same date again writes
/// nothing new, and a changed row writes only its source's file again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_extract_lands_the_reports_of_the_same_files() {
    let files = [
        ("orders", data::orders_csv(1, 40)),
        ("reviews", data::reviews_csv(60)),
        ("shipment_deliveries", data::shipments_csv(40)),
        ("customers", customers_csv()),
        ("products", products_csv()),
    ];

    // From files.
    let by_files = TestEnv::new().await;
    let services_files = by_files.start_pipeline(&[], DEADLINE).await;
    for (source, body) in &files {
        by_files
            .put(
                &TestEnv::landing_key(DAY1, &format!("{source}.csv")),
                body.as_str(),
            )
            .await;
    }
    by_files.wait_exported("ecommerce", DAY1, DEADLINE).await;
    let expected = reports(&by_files, "ecommerce", DAY1).await;
    for service in services_files {
        service.stop().await;
    }
    by_files.cleanup().await;
    assert!(
        expected.iter().all(|(_, rows)| !rows.is_empty()),
        "every report has rows: {expected:?}"
    );

    // From the shop's database.
    let shop = ShopEnv::new().await;
    let env = &shop.env;
    let loaded: Vec<(&str, &str)> = files.iter().map(|(s, b)| (*s, b.as_str())).collect();
    shop.shop.load(&loaded).await.expect("loading the shop");
    let services = env.start_pipeline(&[], DEADLINE).await;
    let extracted = shop
        .extract("ecommerce", DAY1, None)
        .await
        .expect("extract");
    assert_eq!(extracted.len(), 5);
    for file in &extracted {
        assert!(file.landed, "{file:?}");
        let rows_in_file = files
            .iter()
            .find(|(source, _)| *source == file.source)
            .map(|(_, body)| body.lines().count() as u64 - 1);
        assert_eq!(Some(file.rows), rows_in_file, "{file:?}");
        assert_eq!(
            file.key,
            format!(
                "landing/ecommerce/ingestion_date={DAY1}/{}.csv.gz",
                file.source
            )
        );
    }
    env.wait_exported("ecommerce", DAY1, DEADLINE).await;
    assert_eq!(reports(env, "ecommerce", DAY1).await, expected);

    // The file's trace is the extract's: the ingester continued it from the object's metadata.
    let traces = env
        .query_text(
            "SELECT f.trace_id, e.trace_id FROM ops.files f
               JOIN ops.extracts e ON e.key = f.key AND e.source = 'orders'",
        )
        .await;
    assert_eq!(traces.len(), 1, "{traces:?}");
    assert_ne!(traces[0][0], "NULL");
    assert_eq!(
        traces[0][0], traces[0][1],
        "the file's trace is the extract's"
    );

    // The same date again: the same rows, so no new object and no new ledger row.
    let orders_key = TestEnv::landing_key(DAY1, "orders.csv.gz");
    let etag_before = etag_of(env, &orders_key).await;
    let files_before = env.count("SELECT count(*) FROM ops.files").await;
    let again = shop
        .extract("ecommerce", DAY1, None)
        .await
        .expect("extract again");
    assert!(again.iter().all(|file| !file.landed), "{again:?}");
    assert_eq!(etag_of(env, &orders_key).await, etag_before);
    assert_eq!(
        env.count("SELECT count(*) FROM ops.files").await,
        files_before
    );
    assert!(env.open_multipart_upload_files().is_empty());

    // One order corrected in the shop: only orders is written again, and the batch follows.
    shop.shop_sql("UPDATE shop.orders SET quantity = quantity + 1, total_price = total_price + unit_price WHERE order_id = 7")
        .await;
    let changed = shop
        .extract("ecommerce", DAY1, None)
        .await
        .expect("extract a change");
    let landed: Vec<&str> = changed
        .iter()
        .filter(|file| file.landed)
        .map(|file| file.source.as_str())
        .collect();
    assert_eq!(landed, ["orders"]);
    assert_ne!(etag_of(env, &orders_key).await, etag_before);
    wait_until("the corrected orders staged", DEADLINE, || async {
        let staged = env
            .try_count(
                "SELECT count(*) FROM staging.orders WHERE order_id = 7 AND _batch = '2026-03-02'
                   AND quantity = (SELECT 7 % 5 + 2)",
            )
            .await?;
        Ok((staged == 1).then_some(()))
    })
    .await;
    for service in services {
        service.stop().await;
    }
    shop.cleanup().await;
}

/// An incremental extract of a delta source reads the rows past the last run's watermark,
/// inserted or updated since, and the reports equal those of landing the same rows as files.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_incremental_extract_reads_rows_past_the_watermark_as_files_would() {
    let shop = ShopEnv::new().await;
    let env = &shop.env;
    let dir = datasets::bundled_copy(env, "extract-incremental");
    std::fs::write(
        dir.join("online_retail").join("extract.toml"),
        "[[sources]]\nsource = \"transactions\"\ntable = \"retail.invoice_lines\"\n\
         mode = \"incremental\"\ncursor = \"updated_at\"\n",
    )
    .unwrap();
    shop.shop_sql(&format!(
        "CREATE SCHEMA retail;
         CREATE TABLE retail.invoice_lines (
             line_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             invoice_no text NOT NULL, stock_code text NOT NULL, description text,
             quantity int NOT NULL, invoice_date timestamp NOT NULL,
             unit_price numeric(12,2) NOT NULL, customer_id int, country text NOT NULL,
             updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
         GRANT USAGE ON SCHEMA retail TO {READER};
         GRANT SELECT ON retail.invoice_lines TO {READER};"
    ))
    .await;
    let columns = "invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country";
    let day1: Vec<&str> = DAY1_LINES.lines().collect();
    let day2: Vec<&str> = DAY2_LINES.lines().collect();
    let insert = |lines: &[&str]| {
        let values: Vec<String> = lines.iter().map(|line| values_of(line)).collect();
        format!(
            "INSERT INTO retail.invoice_lines ({columns}) VALUES {}",
            values.join(", ")
        )
    };
    shop.shop_sql(&insert(&day1)).await;

    let dir_str = dir.display().to_string();
    let overrides = [("LANDFALL_DATASETS_DIR", dir_str.as_str())];
    let services = env.start_pipeline(&overrides, DEADLINE).await;
    let first = shop
        .extract("online_retail", DAY1, Some(&dir))
        .await
        .expect("first extract");
    assert_eq!(first[0].rows, day1.len() as u64);
    assert_eq!(first[0].low_watermark, None);
    env.wait_exported("online_retail", DAY1, DEADLINE).await;

    // Between the runs: the day's new lines, and one line of day 1 corrected.
    shop.shop_sql(&insert(&day2)).await;
    shop.shop_sql(
        "UPDATE retail.invoice_lines SET quantity = 7, updated_at = clock_timestamp()
          WHERE invoice_no = '536365' AND stock_code = '71053'",
    )
    .await;
    let second = shop
        .extract("online_retail", DAY2, Some(&dir))
        .await
        .expect("second extract");
    assert_eq!(second[0].rows, day2.len() as u64 + 1, "{second:?}");
    assert_eq!(second[0].low_watermark, first[0].high_watermark);
    env.wait_exported("online_retail", DAY2, DEADLINE).await;
    let from_extract = (
        reports(env, "online_retail", DAY1).await,
        reports(env, "online_retail", DAY2).await,
    );
    // The file of day 2 holds the new lines and the corrected one, nothing of day 1 else.
    let body = gunzip(&env.get_bytes(&second[0].key).await);
    let mut quantities: Vec<String> = body
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            format!("{}/{}/{}", fields[0], fields[1], fields[3])
        })
        .collect();
    quantities.sort();
    let mut expected: Vec<String> = day2
        .iter()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            format!("{}/{}/{}", fields[0], fields[1], fields[3])
        })
        .chain(["536365/71053/7".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(quantities, expected);
    for service in services {
        service.stop().await;
    }
    shop.cleanup().await;

    // The same rows as files: day 1's lines, then day 2's with the corrected line.
    let by_files = TestEnv::new().await;
    let services = by_files.start_pipeline(&[], DEADLINE).await;
    let header = format!("{}\n", columns.replace(", ", ","));
    by_files
        .put(&retail_key(DAY1), format!("{header}{}\n", day1.join("\n")))
        .await;
    by_files
        .wait_exported("online_retail", DAY1, DEADLINE)
        .await;
    let corrected = "536365,71053,WHITE METAL LANTERN,7,2026-03-02 08:26,3.39,17850,United Kingdom";
    by_files
        .put(
            &retail_key(DAY2),
            format!("{header}{}\n{corrected}\n", day2.join("\n")),
        )
        .await;
    by_files
        .wait_exported("online_retail", DAY2, DEADLINE)
        .await;
    let from_files = (
        reports(&by_files, "online_retail", DAY1).await,
        reports(&by_files, "online_retail", DAY2).await,
    );
    for service in services {
        service.stop().await;
    }
    by_files.cleanup().await;
    assert_eq!(from_extract, from_files);
    let _ = std::fs::remove_dir_all(dir);
}

/// A run killed while it reads leaves nothing in the landing prefix (its uploads are open,
/// never completed), and the next run lands every file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_extract_leaves_nothing_half_landed() {
    let shop = ShopEnv::new().await;
    let env = &shop.env;
    let _migrated = env.migrated_client().await;
    shop.shop
        .load(&[
            ("orders", &data::orders_csv(1, 2000)),
            ("reviews", &data::reviews_csv(300)),
        ])
        .await
        .unwrap();
    // Reviews come second and slowly (5 ms a row), so the kill finds orders uploaded and
    // reviews under way.
    let dir = datasets::bundled_copy(env, "extract-killed");
    std::fs::write(
        dir.join("ecommerce").join("extract.toml"),
        "[[sources]]\nsource = \"orders\"\ntable = \"shop.orders\"\n\
         [[sources]]\nsource = \"reviews\"\n\
         query = \"SELECT r.review, r.product_id FROM shop.reviews r CROSS JOIN LATERAL (SELECT pg_sleep(0.005 + 0 * r.product_id)) AS s\"\n",
    )
    .unwrap();
    let vars = shop.vars("ecommerce", DAY1, Some(&dir));
    let overrides: Vec<(&str, &str)> = vars
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let child = env.spawn_binary("extractor", &overrides);
    let shop_name = shop.shop.database.name.clone();
    wait_until("the extractor reading reviews", DEADLINE, || async {
        let reading = env
            .try_count(&format!(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = '{shop_name}' AND state = 'active' AND query LIKE 'COPY%pg_sleep%'"
            ))
            .await?;
        Ok((reading > 0).then_some(()))
    })
    .await;
    child.kill().await;
    assert!(
        !env.open_multipart_upload_files().is_empty(),
        "the orders upload was begun"
    );
    assert_eq!(landed_keys(env).await, Vec::<String>::new());
    assert_eq!(env.count("SELECT count(*) FROM ops.extracts").await, 0);

    // The next run, whole.
    let files = shop
        .extract("ecommerce", DAY1, Some(&dir))
        .await
        .expect("the run after the kill");
    assert_eq!(files.len(), 2);
    let mut keys = landed_keys(env).await;
    keys.sort();
    assert_eq!(
        keys,
        [
            TestEnv::landing_key(DAY1, "orders.csv.gz"),
            TestEnv::landing_key(DAY1, "reviews.csv.gz"),
        ]
    );
    let body = gunzip(&env.get_bytes(&keys[0]).await);
    assert_eq!(body.lines().count(), 2001);
    shop.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A missing table or column, a type a landing file cannot carry and a connection lost in the
/// middle of a COPY each stop the run with the source, the table and why, and land nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_source_is_named_and_lands_nothing() {
    let shop = ShopEnv::new().await;
    let env = &shop.env;
    let _migrated = env.migrated_client().await;
    shop.shop
        .load(&[
            ("orders", &data::orders_csv(1, 50)),
            ("reviews", &data::reviews_csv(400)),
        ])
        .await
        .unwrap();
    shop.shop_sql(&format!(
        "CREATE TABLE shop.product_docs (product_id int, product_category jsonb, product_name text);
         GRANT SELECT ON shop.product_docs TO {READER};"
    ))
    .await;
    let cases: [(&str, &str, &[&str]); 3] = [
        (
            "source = \"customers\"\ntable = \"shop.clients\"",
            "source 'customers' (table shop.clients)",
            &["relation \"shop.clients\" does not exist"],
        ),
        (
            "source = \"customers\"\nquery = \"SELECT customer_id, customer_name FROM shop.customers\"",
            "source 'customers' (the query)",
            &["column \"postal_code\" does not exist"],
        ),
        (
            "source = \"products\"\ntable = \"shop.product_docs\"",
            "source 'products' (table shop.product_docs)",
            &[
                "column product_category is jsonb",
                "cannot carry it as the declared text",
            ],
        ),
    ];
    for (index, (entry, names, why)) in cases.iter().enumerate() {
        let dir = datasets::bundled_copy(env, &format!("extract-bad-{index}"));
        // Orders first and fine: its upload must not land either.
        std::fs::write(
            dir.join("ecommerce").join("extract.toml"),
            format!(
                "[[sources]]\nsource = \"orders\"\ntable = \"shop.orders\"\n[[sources]]\n{entry}\n"
            ),
        )
        .unwrap();
        let error = shop
            .extract("ecommerce", DAY1, Some(&dir))
            .await
            .expect_err("a bad source fails the run");
        let message = format!("{error:#}");
        assert!(message.contains(names), "{message}");
        for reason in *why {
            assert!(message.contains(reason), "{message}");
        }
        assert!(message.contains("nothing was landed"), "{message}");
        assert_eq!(landed_keys(env).await, Vec::<String>::new(), "{message}");
        let _ = std::fs::remove_dir_all(dir);
    }
    assert!(
        env.open_multipart_upload_files().is_empty(),
        "every upload aborted"
    );

    // The connection lost mid-COPY: the backend is terminated while reviews are read slowly,
    // once it has sent rows (terminated while still planning, the run fails at "starting COPY").
    let dir = datasets::bundled_copy(env, "extract-bad-lost");
    std::fs::write(
        dir.join("ecommerce").join("extract.toml"),
        "[[sources]]\nsource = \"orders\"\ntable = \"shop.orders\"\n\
         [[sources]]\nsource = \"reviews\"\n\
         query = \"SELECT r.review, r.product_id FROM shop.reviews r CROSS JOIN LATERAL (SELECT pg_sleep(0.01 + 0 * r.product_id)) AS s\"\n",
    )
    .unwrap();
    let shop_name = shop.shop.database.name.clone();
    let killer = async {
        wait_until("the extractor reading reviews", DEADLINE, || async {
            let terminated = env
                .try_count(&format!(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(a.pid)
                       FROM pg_stat_activity a JOIN pg_stat_progress_copy p USING (pid)
                      WHERE a.datname = '{shop_name}' AND a.query LIKE 'COPY%pg_sleep%'
                        AND p.tuples_processed > 0) AS t"
                ))
                .await?;
            Ok((terminated > 0).then_some(()))
        })
        .await
    };
    let (result, ()) = tokio::join!(shop.extract("ecommerce", DAY1, Some(&dir)), killer);
    let message = format!("{:#}", result.expect_err("a lost connection fails the run"));
    assert!(
        message.contains("source 'reviews' (the query)") && message.contains("reading the rows"),
        "{message}"
    );
    assert!(message.contains("nothing was landed"), "{message}");
    assert_eq!(landed_keys(env).await, Vec::<String>::new());
    assert_eq!(env.count("SELECT count(*) FROM ops.extracts").await, 0);
    let _ = std::fs::remove_dir_all(dir);
    shop.cleanup().await;
}

fn retail_key(date: &str) -> String {
    format!("landing/online_retail/ingestion_date={date}/transactions.csv")
}

/// A fixture line as SQL values (empty fields are NULL).
fn values_of(line: &str) -> String {
    let fields: Vec<String> = line
        .split(',')
        .map(|field| {
            if field.is_empty() {
                "NULL".to_owned()
            } else {
                format!("'{}'", field.replace('\'', "''"))
            }
        })
        .collect();
    format!("({})", fields.join(", "))
}

fn gunzip(bytes: &[u8]) -> String {
    use std::io::Read as _;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip file");
    text
}

const DAY1_LINES: &str =
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2026-03-02 08:26,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2026-03-02 08:26,3.39,17850,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,2026-03-02 08:28,1.85,,United Kingdom
536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,2026-03-02 08:34,1.69,13047,United Kingdom
536368,POST,POSTAGE,1,2026-03-02 09:00,18.00,12583,France
C536369,84879,ASSORTED COLOUR BIRD ORNAMENT,-8,2026-03-02 10:15,1.69,13047,United Kingdom";

const DAY2_LINES: &str =
    "536372,85123A,CREAM HANGING HEART T-LIGHT HOLDER,6,2026-03-03 09:02,2.55,13047,EIRE
536373,71053,WHITE METAL LANTERN,1,2026-03-03 10:30,3.39,,France
C536375,POST,POSTAGE,-1,2026-03-03 12:00,18.00,12583,France
536377,22960,JAM MAKING SET WITH JARS,8,2026-03-03 14:00,4.50,17850,United Kingdom";
