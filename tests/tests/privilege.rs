//! Least privilege: every service runs its statements as its own database role
//! (`sql/migrations/0008_service_roles.sql`), and a role is refused (SQLSTATE 42501) whatever is
//! outside its grants: the ingester cannot touch staging, the warehouse or the reports, the
//! exporter can only read the reports, and so on. Staged rows live in `staging_rows.<table>`,
//! which only the stager (loading) and the exporter (retention) may touch; the other stages
//! read the views `staging.<table>` (`sql/migrations/0013_staging_rows.sql`). Each role's own
//! work is checked here too, statement by statement; the pipeline tests check it end to end.

use std::path::Path;
use std::time::Duration;

use landfall_tests::{TestEnv, wait_until};
use runtime::config::Secret;
use tokio_postgres::error::SqlState;

const DEADLINE: Duration = Duration::from_secs(60);

/// Migrates the test database as the owner, as a service does at start.
async fn migrate(env: &TestEnv) {
    env.migrated_client().await;
}

/// A connection of the test database's owner that then runs `SET ROLE role`.
async fn connect_as(env: &TestEnv, role: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&env.database_url, tokio_postgres::NoTls)
        .await
        .expect("test database");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET ROLE {role}"))
        .await
        .unwrap_or_else(|error| panic!("SET ROLE {role}: {error}"));
    client
}

/// Runs `sql` and expects PostgreSQL to refuse it for lack of privilege.
async fn assert_refused(client: &tokio_postgres::Client, role: &str, sql: &str) {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{role} was allowed to run: {sql}"),
        Err(error) => {
            assert_eq!(
                error.code(),
                Some(&SqlState::INSUFFICIENT_PRIVILEGE),
                "{role} running {sql}: expected permission denied, got {error:?}"
            );
        }
    }
}

/// Runs `sql` and expects it to work.
async fn assert_allowed(client: &tokio_postgres::Client, role: &str, sql: &str) {
    if let Err(error) = client.batch_execute(sql).await {
        panic!("{role} must be allowed to run {sql}: {error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_reads_and_writes_are_refused() {
    let env = TestEnv::new().await;
    migrate(&env).await;
    let refused: &[(&str, &[&str])] = &[
        (
            "landfall_ingester",
            &[
                "INSERT INTO warehouse.dim_date VALUES (20260301, DATE '2026-03-01', 2026, 1, 3, 1, 7, true, false, NULL, false)",
                "UPDATE warehouse.fact_orders SET quantity = 0",
                "DELETE FROM warehouse.dim_customer",
                "INSERT INTO analytics.agg_shipments VALUES (DATE '2026-03-01', 1, 1)",
                "DELETE FROM analytics.top_products_by_revenue",
                "SELECT count(*) FROM analytics.agg_shipments",
                "SELECT count(*) FROM staging.orders",
                "DELETE FROM staging.orders",
                "SELECT count(*) FROM staging_rows.orders",
                "DELETE FROM staging_rows.orders",
                "INSERT INTO ops.staged_sources VALUES ('ecommerce', DATE '2026-03-01', 'orders', 1, 0)",
                "UPDATE ops.batches SET state = 'exported'",
                "UPDATE ops.files SET state = 'staged'",
                "DELETE FROM ops.files",
                "CREATE TABLE ops.sneaky (id int)",
                "DROP TABLE ops.files",
            ],
        ),
        (
            "landfall_stager",
            &[
                "INSERT INTO analytics.agg_shipments VALUES (DATE '2026-03-01', 1, 1)",
                "DELETE FROM warehouse.fact_orders",
                "UPDATE ops.batches SET state = 'ready'",
                "INSERT INTO ops.files (bucket, key, version, etag, size_bytes, discovered_by) VALUES ('b', 'k', 'v', 'e', 0, 'notification')",
                "DELETE FROM ops.files",
                "CREATE TABLE staging.sneaky (id int)",
                "CREATE TABLE staging_rows.sneaky (id int)",
                "ALTER TABLE staging_rows.orders ADD COLUMN sneaky int",
                "DROP VIEW staging.orders",
                // The views are read-only: rows go to the table behind them.
                "INSERT INTO staging.orders (_file_id, _line, _batch, order_id) VALUES (1, 1, DATE '2026-03-01', 1)",
                "DELETE FROM staging.orders",
                "UPDATE staging_rows.orders SET order_id = 0",
                "TRUNCATE staging_rows.orders",
            ],
        ),
        (
            "landfall_transformer",
            &[
                "INSERT INTO staging.orders (_file_id, _line, _batch, order_id) VALUES (1, 1, DATE '2026-03-01', 1)",
                "DELETE FROM staging.orders",
                // The views, not the tables behind them: rows of files not staged stay unseen.
                "SELECT count(*) FROM staging_rows.orders",
                "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id) VALUES (1, 1, DATE '2026-03-01', 1)",
                "UPDATE ops.files SET state = 'staged'",
                "INSERT INTO ops.quality_results (dataset, ingestion_date, check_name, check_kind, severity, status, failing_rows, sql, duration_ms, transform_event_id) VALUES ('ecommerce', DATE '2026-03-01', 'c', 'unique', 'error', 'passed', 0, 'SELECT 1', 1, gen_random_uuid())",
                "INSERT INTO ops.exports VALUES ('ecommerce', DATE '2026-03-01', 'r', 'b', 'k', 'm', 0, 0, 's', gen_random_uuid(), now())",
                "DROP TABLE warehouse.fact_orders",
            ],
        ),
        (
            "landfall_quality_checker",
            &[
                // It publishes (INSERT, DELETE in analytics) but never changes a row in place,
                // nor the audited rows it checks.
                "UPDATE analytics.agg_shipments SET tt_late_shipments = 0",
                "INSERT INTO audit.agg_shipments VALUES (DATE '2026-03-01', 1, 1)",
                "DELETE FROM audit.sales_by_month",
                "UPDATE warehouse.fact_orders SET quantity = 0",
                "DELETE FROM staging.orders",
                "SELECT count(*) FROM staging_rows.orders",
                "DELETE FROM staging_rows.orders",
                "UPDATE ops.batches SET transformed_files = '{}'",
                "UPDATE ops.files SET state = 'staged'",
                "INSERT INTO ops.exports VALUES ('ecommerce', DATE '2026-03-01', 'r', 'b', 'k', 'm', 0, 0, 's', gen_random_uuid(), now())",
            ],
        ),
        (
            "landfall_exporter",
            &[
                "INSERT INTO analytics.agg_shipments VALUES (DATE '2026-03-01', 1, 1)",
                "UPDATE analytics.best_performing_product SET product_name = 'x'",
                "DELETE FROM analytics.sales_by_month",
                "TRUNCATE analytics.top_products_by_revenue",
                "SELECT count(*) FROM warehouse.fact_orders",
                "INSERT INTO warehouse.dim_date VALUES (20260301, DATE '2026-03-01', 2026, 1, 3, 1, 7, true, false, NULL, false)",
                "INSERT INTO staging.orders (_file_id, _line, _batch, order_id) VALUES (1, 1, DATE '2026-03-01', 1)",
                "DELETE FROM staging.orders",
                "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id) VALUES (1, 1, DATE '2026-03-01', 1)",
                "UPDATE ops.batches SET transformed_files = '{}'",
                "DELETE FROM ops.quality_results",
                "UPDATE ops.files SET state = 'staged'",
                "CREATE TABLE analytics.sneaky (id int)",
                "SELECT count(*) FROM audit.agg_shipments",
            ],
        ),
    ];
    for (role, statements) in refused {
        let client = connect_as(&env, role).await;
        for sql in *statements {
            assert_refused(&client, role, sql).await;
        }
    }
    // Nothing got through.
    assert_eq!(env.count("SELECT count(*) FROM ops.files").await, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM analytics.agg_shipments")
            .await,
        0
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_can_do_its_own_work() {
    let env = TestEnv::new().await;
    migrate(&env).await;
    let day = "DATE '2026-03-02'";

    // Every service: the idempotency record and the outbox, and the relay's claim and mark.
    for role in [
        "landfall_ingester",
        "landfall_stager",
        "landfall_transformer",
        "landfall_quality_checker",
        "landfall_exporter",
    ] {
        let client = connect_as(&env, role).await;
        assert_allowed(
            &client,
            role,
            &format!(
                "INSERT INTO ops.processed_events (consumer, event_id, event_type)
                 VALUES ('{role}', gen_random_uuid(), 'test') ON CONFLICT DO NOTHING;
                 INSERT INTO ops.outbox (event_id, event_type, routing_key, payload, created_by)
                 VALUES (gen_random_uuid(), 'test', 'test', '\\x00', '{role}');
                 BEGIN;
                 SELECT id FROM ops.outbox WHERE sent_at IS NULL ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED;
                 UPDATE ops.outbox SET sent_at = clock_timestamp() WHERE created_by = '{role}';
                 COMMIT;
                 SELECT count(*) FROM ops.outbox WHERE sent_at IS NULL;"
            ),
        )
        .await;
    }

    // The ingester records a landed file.
    let ingester = connect_as(&env, "landfall_ingester").await;
    assert_allowed(
        &ingester,
        "landfall_ingester",
        &format!(
            "SELECT pg_advisory_xact_lock(hashtextextended('lake/k', 0));
             SELECT file_id FROM ops.files WHERE bucket = 'lake' AND key = 'k';
             INSERT INTO ops.files (bucket, key, version, etag, size_bytes, dataset, source, ingestion_date, discovered_by)
             VALUES ('lake', 'landing/ecommerce/ingestion_date=2026-03-02/orders.csv', 'v1', 'e1', 10, 'ecommerce', 'orders', {day}, 'notification');"
        ),
    )
    .await;

    // The stager loads it into the staging table, records its rejects and which file backs the
    // source (which shows its rows in the view).
    let stager = connect_as(&env, "landfall_stager").await;
    assert_allowed(
        &stager,
        "landfall_stager",
        &format!(
            "BEGIN;
             SELECT 1 FROM ops.files WHERE file_id = 1 FOR UPDATE;
             UPDATE ops.files SET staging_started_at = clock_timestamp() WHERE file_id = 1;
             DELETE FROM staging_rows.orders WHERE _file_id = 1;
             INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id, order_date, product_id, unit_price, quantity, total_price)
             VALUES (1, 2, {day}, 1, 10, {day}, 1, 10.00, 1, 10.00), (1, 3, {day}, 1, 10, {day}, 1, 10.00, 1, 10.00);
             DELETE FROM staging_rows.orders AS later USING staging_rows.orders AS earlier
              WHERE later._file_id = 1 AND earlier._file_id = 1 AND earlier._line < later._line
                AND earlier.order_id = later.order_id;
             INSERT INTO ops.rejected_rows (file_id, line, column_name, value, reason)
             VALUES (1, 3, NULL, '1', 'duplicate order_id 1');
             SELECT file_id FROM ops.staged_sources WHERE dataset = 'ecommerce' AND ingestion_date = {day} AND source = 'orders';
             INSERT INTO ops.staged_sources (dataset, ingestion_date, source, file_id, rows_loaded)
             VALUES ('ecommerce', {day}, 'orders', 1, 1)
             ON CONFLICT (dataset, ingestion_date, source)
             DO UPDATE SET file_id = EXCLUDED.file_id, rows_loaded = EXCLUDED.rows_loaded, staged_at = clock_timestamp();
             UPDATE ops.files SET state = 'staged', rows_loaded = 1, rows_rejected = 1, finished_at = clock_timestamp() WHERE file_id = 1;
             COMMIT;"
        ),
    )
    .await;
    // COPY too, as the stager loads.
    let sink = stager
        .copy_in::<_, bytes::Bytes>(
            "COPY staging_rows.reviews (_file_id, _line, _batch, review, product_id) FROM STDIN",
        )
        .await
        .expect("the stager may COPY into staging_rows");
    {
        use futures::SinkExt;
        let mut sink = std::pin::pin!(sink);
        sink.send(bytes::Bytes::from_static(b"1\t2\t2026-03-02\t5\t1\n"))
            .await
            .unwrap();
        sink.as_mut()
            .finish()
            .await
            .expect("COPY into staging_rows");
    }

    // The transformer moves the batch row and builds the warehouse and the reports; it may
    // create tables of its own in warehouse and audit (a model may, as key_patterns.rs's first does).
    let transformer = connect_as(&env, "landfall_transformer").await;
    assert_allowed(
        &transformer,
        "landfall_transformer",
        &format!(
            "BEGIN;
             INSERT INTO ops.batches (dataset, ingestion_date) VALUES ('ecommerce', {day}) ON CONFLICT DO NOTHING;
             SELECT transformed_files FROM ops.batches WHERE dataset = 'ecommerce' AND ingestion_date = {day} FOR UPDATE;
             SELECT source, file_id FROM ops.staged_sources WHERE dataset = 'ecommerce' AND ingestion_date = {day};
             SELECT traceparent FROM ops.files WHERE file_id = ANY('{{1}}');
             SELECT set_config('landfall.batch_date', '2026-03-02', true);
             INSERT INTO warehouse.dim_customer (customer_id, customer_name, postal_code, valid_from, valid_to, is_current)
             SELECT customer_id, 'Ada', '10115', ops.batch_date(), NULL, true FROM staging.orders WHERE _batch = ops.batch_date();
             UPDATE warehouse.dim_customer SET is_current = true WHERE customer_id = 10;
             DELETE FROM analytics.sales_by_month WHERE ingestion_date = ops.batch_date();
             INSERT INTO analytics.agg_shipments (ingestion_date, tt_late_shipments, tt_undelivered_shipments)
             VALUES (ops.batch_date(), 1, 2)
             ON CONFLICT (ingestion_date) DO UPDATE SET tt_late_shipments = EXCLUDED.tt_late_shipments;
             CREATE TABLE IF NOT EXISTS analytics.own_report (ingestion_date date NOT NULL, n integer NOT NULL);
             INSERT INTO analytics.own_report VALUES (ops.batch_date(), 1);
             CREATE TABLE IF NOT EXISTS warehouse.own_fact (id bigserial PRIMARY KEY, n integer);
             INSERT INTO warehouse.own_fact (n) VALUES (1);
             DELETE FROM audit.sales_by_month WHERE ingestion_date = ops.batch_date();
             INSERT INTO audit.agg_shipments (ingestion_date, tt_late_shipments, tt_undelivered_shipments)
             VALUES (ops.batch_date(), 3, 4)
             ON CONFLICT (ingestion_date) DO UPDATE SET tt_late_shipments = EXCLUDED.tt_late_shipments;
             CREATE TABLE IF NOT EXISTS audit.own_audited (ingestion_date date NOT NULL, n integer NOT NULL);
             INSERT INTO audit.own_audited VALUES (ops.batch_date(), 2);
             INSERT INTO ops.transform_runs (dataset, ingestion_date, file_ids, models, started_at)
             VALUES ('ecommerce', {day}, '{{1}}', '[]', now());
             UPDATE ops.batches SET state = 'transformed', transformed_at = clock_timestamp(), transformed_files = '{{1}}',
                    updated_at = clock_timestamp(), trace_id = NULL
              WHERE dataset = 'ecommerce' AND ingestion_date = {day};
             COMMIT;"
        ),
    )
    .await;
    // Before its models it analyzes the staging tables, which it does not own: all of them in
    // one call, or one at a time (side by side on its models' connections); a name outside
    // staging_rows analyzes nothing.
    env.db
        .batch_execute(
            "INSERT INTO staging_rows.orders (_file_id, _line, _batch, order_id, customer_id, order_date,
                                              product_id, unit_price, quantity, total_price)
             SELECT 900, n + 1, DATE '2026-03-02', n, n, DATE '2026-03-01', 10, 1.00, 1, 1.00
               FROM generate_series(1, 500) AS n",
        )
        .await
        .expect("staged rows");
    let reltuples = |table: &'static str| {
        let db = &env.db;
        async move {
            db.query_one(
                "SELECT reltuples::int8 FROM pg_class WHERE oid = $1::text::regclass",
                &[&table],
            )
            .await
            .expect("pg_class")
            .get::<_, i64>(0)
        }
    };
    assert_eq!(
        reltuples("staging_rows.orders").await,
        -1,
        "never analyzed yet"
    );
    // A page range no BRIN summary covers (as after a COPY, until a vacuum) matches every
    // batch; analyzing the table summarizes it.
    let summarize = "SELECT brin_summarize_new_values('staging_rows.orders_batch_brin')";
    env.db
        .batch_execute(&format!(
            "{summarize}; SELECT brin_desummarize_range('staging_rows.orders_batch_brin', 0)"
        ))
        .await
        .expect("page range 0 left unsummarized");
    let analyzed = transformer
        .query_one("SELECT ops.analyze_staging_table('orders')", &[])
        .await
        .expect("the transformer analyzes one staging table");
    assert!(analyzed.get::<_, bool>(0));
    let left: i32 = env
        .db
        .query_one(summarize, &[])
        .await
        .expect("summarize")
        .get(0);
    assert_eq!(left, 0, "analyzing summarized every page range");
    let rows = env.count("SELECT count(*) FROM staging_rows.orders").await;
    assert!(rows >= 500, "{rows}");
    assert_eq!(reltuples("staging_rows.orders").await, rows);
    env.db
        .batch_execute("DELETE FROM staging_rows.orders WHERE _file_id = 900")
        .await
        .expect("the rows of this check go");
    for outside in ["files", "pg_class", "no_such_table"] {
        let analyzed = transformer
            .query_one("SELECT ops.analyze_staging_table($1)", &[&outside])
            .await
            .expect("a name outside staging_rows is answered, not an error");
        assert!(!analyzed.get::<_, bool>(0), "{outside}");
    }
    assert_allowed(
        &transformer,
        "landfall_transformer",
        "SELECT ops.analyze_staging()",
    )
    .await;

    // The quality checker reads every layer (the transformer's own tables too), publishes the
    // audited reports (a user's report table made like its audit table), stores its results and
    // moves the batch on.
    let checker = connect_as(&env, "landfall_quality_checker").await;
    assert_allowed(
        &checker,
        "landfall_quality_checker",
        &format!(
            "BEGIN;
             SELECT set_config('landfall.batch_date', '2026-03-02', true);
             DELETE FROM ops.quality_results WHERE dataset = 'ecommerce' AND ingestion_date = {day};
             SELECT count(*) FROM staging.orders WHERE _batch = ops.batch_date();
             SELECT count(*) FROM warehouse.dim_customer JOIN warehouse.fact_orders USING (customer_key);
             SELECT count(*) FROM analytics.agg_shipments, analytics.own_report, warehouse.own_fact;
             SELECT count(*) FROM audit.agg_shipments, audit.own_audited;
             CREATE TABLE analytics.own_audited (LIKE audit.own_audited INCLUDING ALL);
             DELETE FROM analytics.agg_shipments WHERE ingestion_date = {day};
             INSERT INTO analytics.agg_shipments SELECT * FROM audit.agg_shipments WHERE ingestion_date = {day};
             INSERT INTO analytics.own_audited SELECT * FROM audit.own_audited WHERE ingestion_date = {day};
             UPDATE ops.batches SET published_at = clock_timestamp()
              WHERE dataset = 'ecommerce' AND ingestion_date = {day};
             INSERT INTO ops.quality_results (dataset, ingestion_date, check_name, check_kind, severity, status,
                                              failing_rows, sample, error, sql, duration_ms, transform_event_id)
             VALUES ('ecommerce', {day}, 'c', 'unique', 'error', 'passed', 0, '[]', NULL, 'SELECT 1', 1, gen_random_uuid());
             UPDATE ops.batches SET state = 'quality_passed', quality_at = clock_timestamp(), updated_at = clock_timestamp()
              WHERE dataset = 'ecommerce' AND ingestion_date = {day};
             COMMIT;"
        ),
    )
    .await;

    // The exporter reads the reports (the transformer's own too), records the export, marks
    // the batch and prunes staging.
    let exporter = connect_as(&env, "landfall_exporter").await;
    for table in [
        "analytics.agg_shipments",
        "analytics.own_report",
        "analytics.own_audited",
    ] {
        let copied = exporter
            .copy_out(
                format!("COPY (SELECT * FROM {table} WHERE ingestion_date = {day}) TO STDOUT WITH (FORMAT csv, HEADER)")
                    .as_str(),
            )
            .await
            .unwrap_or_else(|error| panic!("exporter reading {table}: {error:?}"));
        let chunks: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(copied)
            .await
            .unwrap_or_else(|error| panic!("exporter reading {table}: {error:?}"));
        assert!(!chunks.is_empty(), "{table} has a header at least");
    }
    assert_allowed(
        &exporter,
        "landfall_exporter",
        &format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtextextended('export:ecommerce/2026-03-02', 0));
             SELECT s.source, f.file_id, f.bucket, f.key, f.version, f.etag, s.rows_loaded
               FROM ops.staged_sources s JOIN ops.files f ON f.file_id = s.file_id
              WHERE s.dataset = 'ecommerce' AND s.ingestion_date = {day};
             INSERT INTO ops.exports (dataset, ingestion_date, report, bucket, key, manifest_key, rows, bytes, sha256, event_id, exported_at)
             VALUES ('ecommerce', {day}, 'agg_shipments', 'lake', 'k', 'm', 1, 10, 's', gen_random_uuid(), now())
             ON CONFLICT (dataset, ingestion_date, report) DO UPDATE SET rows = EXCLUDED.rows, exported_at = EXCLUDED.exported_at;
             UPDATE ops.batches SET state = 'exported', exported_at = clock_timestamp(), updated_at = clock_timestamp()
              WHERE dataset = 'ecommerce' AND ingestion_date = {day};
             SELECT ingestion_date FROM (SELECT ingestion_date FROM ops.staged_sources WHERE dataset = 'ecommerce'
                                         UNION SELECT ingestion_date FROM ops.batches WHERE dataset = 'ecommerce') AS b;
             DELETE FROM staging_rows.orders WHERE _batch < DATE '2026-01-01';
             COMMIT;"
        ),
    )
    .await;

    assert_eq!(
        env.count("SELECT count(*) FROM ops.batches WHERE state = 'exported'")
            .await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM staging.orders").await, 1);
    // The reviews' file is not staged: its rows are in the table, not in the view.
    assert_eq!(
        env.count("SELECT count(*) FROM staging_rows.reviews").await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM staging.reviews").await, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_pool_runs_as_its_role_and_cannot_leave_it_by_resetting() {
    let env = TestEnv::new().await;
    migrate(&env).await;
    let config = env.common_config("exporter");
    assert_eq!(config.database_role.as_deref(), Some("landfall_exporter"));
    let pool = runtime::db::pool_as(
        &Secret::new(env.database_url.clone()),
        1,
        config.database_role.as_deref(),
    )
    .expect("pool");
    let client = pool.get().await.expect("a connection as landfall_exporter");
    let role = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(sql, &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(role("SELECT current_user::text").await, "landfall_exporter");
    // The role is the connection's default, not a SET on top of it: RESET and DISCARD keep it.
    client.batch_execute("RESET ROLE").await.unwrap();
    assert_eq!(role("SELECT current_user::text").await, "landfall_exporter");
    client.batch_execute("DISCARD ALL").await.unwrap();
    assert_eq!(role("SELECT current_user::text").await, "landfall_exporter");
    assert_refused(
        &client,
        "landfall_exporter",
        "INSERT INTO analytics.agg_shipments VALUES (DATE '2026-03-01', 1, 1)",
    )
    .await;

    // The owner's own pool (the `landfall` commands, the migration) keeps the owner's rights.
    let owner = runtime::db::pool(&Secret::new(env.database_url.clone()), 1).expect("pool");
    let owner = owner.get().await.unwrap();
    let user: String = owner
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "postgres");
    env.cleanup().await;
}

/// A table made by hand after the migration gets the grants of its schema: readable by the
/// stages that read that schema, by no one else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_made_later_get_their_schemas_grants() {
    let env = TestEnv::new().await;
    migrate(&env).await;
    env.db
        .batch_execute(
            "CREATE TABLE analytics.later_report (ingestion_date date NOT NULL, n integer NOT NULL);
             INSERT INTO analytics.later_report VALUES (DATE '2026-03-01', 1);",
        )
        .await
        .unwrap();
    let exporter = connect_as(&env, "landfall_exporter").await;
    assert_allowed(
        &exporter,
        "landfall_exporter",
        "SELECT count(*) FROM analytics.later_report",
    )
    .await;
    assert_refused(
        &exporter,
        "landfall_exporter",
        "DELETE FROM analytics.later_report",
    )
    .await;
    let ingester = connect_as(&env, "landfall_ingester").await;
    assert_refused(
        &ingester,
        "landfall_ingester",
        "SELECT count(*) FROM analytics.later_report",
    )
    .await;
    env.cleanup().await;
}

/// The services really run as their roles: an ingester configured with the exporter's role
/// cannot record a landed file, and the notification is dead-lettered with PostgreSQL's
/// "permission denied" as the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_running_under_the_wrong_role_is_refused() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[("LANDFALL_DATABASE_ROLE", "landfall_exporter")]);
    env.wait_consuming("ingester", DEADLINE).await;
    env.put(
        &TestEnv::landing_key("2026-03-02", "orders.csv"),
        landfall_tests::data::orders_csv(1, 3),
    )
    .await;
    let message = wait_until(
        "the notification in the ingester's DLQ",
        DEADLINE,
        || async { env.take_message("ingester.dlq").await },
    )
    .await;
    let reason =
        runtime::broker::header_text(&message.delivery.properties, runtime::broker::REASON_HEADER)
            .unwrap_or_default();
    assert!(
        reason.contains("permission denied for table files"),
        "{reason}"
    );
    assert_eq!(env.count("SELECT count(*) FROM ops.files").await, 0);
    ingester.stop().await;
    env.cleanup().await;
}

/// The production shape: the schema's owner is an ordinary login user (with CREATEROLE, not a
/// superuser). It migrates (the roles exist already, made by another database's migration, and
/// it makes itself a member of each), and a service logging in as it still runs as its role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_superuser_owner_migrates_and_its_services_take_their_roles() {
    let env = TestEnv::new().await;
    let owner = format!("lf_owner_{}", env.suffix);
    env.db
        .batch_execute(&format!(
            "CREATE ROLE {owner} LOGIN CREATEROLE; ALTER DATABASE {} OWNER TO {owner};",
            env.database
        ))
        .await
        .expect("creating the owner");
    let owner_url = format!("postgres://{owner}@127.0.0.1:5432/{}", env.database);
    let vars = env.vars();
    let datasets = catalog::Datasets::load(Path::new(&vars["LANDFALL_DATASETS_DIR"]))
        .expect("bundled datasets");
    let owner_pool = runtime::db::pool(&Secret::new(owner_url.clone()), 1).unwrap();
    let mut client = owner_pool.get().await.expect("connecting as the owner");
    runtime::db::migrate(&mut client, &datasets)
        .await
        .expect("a non-superuser owner migrates");
    let schema_owner: String = client
        .query_one(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'warehouse'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(schema_owner, owner);

    let stager =
        runtime::db::pool_as(&Secret::new(owner_url.clone()), 1, Some("landfall_stager")).unwrap();
    let stager = stager
        .get()
        .await
        .expect("the owner takes the stager's role");
    assert_refused(
        &stager,
        "landfall_stager",
        "INSERT INTO analytics.agg_shipments VALUES (DATE '2026-03-01', 1, 1)",
    )
    .await;
    assert_allowed(
        &stager,
        "landfall_stager",
        "DELETE FROM staging_rows.orders",
    )
    .await;

    let ingester = env.start_ingester(&[("LANDFALL_DATABASE_URL", &owner_url)]);
    env.wait_consuming("ingester", DEADLINE).await;
    env.put(
        &TestEnv::landing_key("2026-03-02", "orders.csv"),
        landfall_tests::data::orders_csv(1, 3),
    )
    .await;
    wait_until("the file in the ledger", DEADLINE, || async {
        Ok((env.try_count("SELECT count(*) FROM ops.files").await? == 1).then_some(()))
    })
    .await;
    ingester.stop().await;
    drop(stager);
    drop(client);

    env.cleanup().await;
    let (admin, connection) = tokio_postgres::connect(
        "postgres://postgres@127.0.0.1:5432/postgres",
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {owner}"))
        .await
        .expect("dropping the owner role");
}
