-- The ecommerce dataset's tables: the star schema (warehouse), the holiday calendar versions,
-- and the reports, unpublished (audit) and published (analytics). The models fill them
-- (datasets/ecommerce/models); the migration runner applies this file when the dataset is in the
-- datasets directory, after the platform's migrations (sql/migrations).
--
-- Until these tables moved here, the platform's migrations 0003, 0011, 0012, 0015 and 0016
-- made them, so a database migrated before the move has every one already, with rows. This
-- file is therefore written to leave such a database as it is and to end, on any database,
-- in the same state: tables and sequences only when missing (with the columns in the order
-- those migrations left them), the unknown members only when missing, the function replaced
-- by the same text, and the constraints and indexes those migrations dropped dropped when
-- present.

-- One row per day of the whole years the data refers to (the dim_date model).
CREATE TABLE IF NOT EXISTS warehouse.dim_date (
    date_key          integer PRIMARY KEY,          -- YYYYMMDD
    calendar_date     date    NOT NULL UNIQUE,
    year              integer NOT NULL,
    quarter           integer NOT NULL,
    month             integer NOT NULL,
    day_of_month      integer NOT NULL,
    iso_day_of_week   integer NOT NULL,             -- 1 = Monday … 7 = Sunday
    is_weekend        boolean NOT NULL,
    -- A weekday (Monday–Friday) listed in the holiday calendar.
    is_public_holiday boolean NOT NULL,
    holiday_name      text,
    working_day       boolean NOT NULL              -- weekday and not a public holiday
);

-- Type-2 slowly changing dimensions. Keys come from a sequence and never change; key -1 is the
-- unknown member that facts point to when their customer or product is not (yet) known.
CREATE SEQUENCE IF NOT EXISTS warehouse.dim_customer_key_seq;
CREATE TABLE IF NOT EXISTS warehouse.dim_customer (
    customer_key  bigint  PRIMARY KEY DEFAULT nextval('warehouse.dim_customer_key_seq'),
    customer_id   integer NOT NULL,
    customer_name text,
    postal_code   text,
    valid_from    date    NOT NULL,
    valid_to      date,                            -- NULL while current
    is_current    boolean NOT NULL,
    UNIQUE (customer_id, valid_from)
);
INSERT INTO warehouse.dim_customer (customer_key, customer_id, customer_name, postal_code, valid_from, valid_to, is_current)
VALUES (-1, -1, 'Unknown customer', NULL, DATE '1900-01-01', NULL, true)
ON CONFLICT DO NOTHING;

CREATE SEQUENCE IF NOT EXISTS warehouse.dim_product_key_seq;
CREATE TABLE IF NOT EXISTS warehouse.dim_product (
    product_key      bigint  PRIMARY KEY DEFAULT nextval('warehouse.dim_product_key_seq'),
    product_id       integer NOT NULL,
    product_category text,
    product_name     text,
    valid_from       date    NOT NULL,
    valid_to         date,
    is_current       boolean NOT NULL,
    UNIQUE (product_id, valid_from)
);
INSERT INTO warehouse.dim_product (product_key, product_id, product_category, product_name, valid_from, valid_to, is_current)
VALUES (-1, -1, NULL, NULL, DATE '1900-01-01', NULL, true)
ON CONFLICT DO NOTHING;

-- Current-state facts, merged by natural key; last_batch is the batch that last changed a row,
-- so an older batch re-run later never overwrites a newer one.
--
-- The dimension keys have no foreign keys: a foreign key is checked row by row by a trigger,
-- and for a 1M-order batch the two on fact_orders took 9.1 s of the model's 15.0 s (EXPLAIN
-- ANALYZE: "Trigger for constraint fact_orders_customer_key_fkey: time=4648 calls=997956",
-- product_key 4417 ms). The models make every key from a join to the dimension that falls
-- back to the unknown member (-1), so a dangling key would be a bug in a model; the
-- `relationships` checks of severity `error` in datasets/ecommerce/checks.toml
-- (fact_*_key_exists) look for one in each batch, in one set-based query, and stop the export
-- if they find it — the way warehouse keys are checked in dbt and in warehouses that do not
-- enforce foreign keys. (Databases of earlier versions had them: dropped below.)
CREATE TABLE IF NOT EXISTS warehouse.fact_orders (
    order_id      integer       PRIMARY KEY,
    customer_key  bigint        NOT NULL,
    product_key   bigint        NOT NULL,
    order_date_key integer      NOT NULL,
    order_date    date          NOT NULL,
    customer_id   integer       NOT NULL,
    product_id    integer       NOT NULL,
    unit_price    numeric(12,2) NOT NULL,
    quantity      integer       NOT NULL,
    total_price   numeric(12,2) NOT NULL,
    last_batch    date          NOT NULL
);
ALTER TABLE warehouse.fact_orders
    DROP CONSTRAINT IF EXISTS fact_orders_customer_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_orders_product_key_fkey;

-- A batch's new fact rows are appended together at the end of the table, like a batch's rows
-- in staging (which has BRIN indexes on `_batch` for the same reason, see
-- shared/runtime/src/datasets.rs), and the only readers by `last_batch` are the quality checks
-- of that batch, which read about a whole batch. A b-tree would cost one index insert (and its
-- WAL record) per fact row written: on a 1M-order batch about 0.2 s (docs/PERFORMANCE.md); a
-- block-range index costs almost nothing on write and still lets those checks skip the pages
-- of older batches. (Earlier versions had a b-tree: dropped below.)
DROP INDEX IF EXISTS warehouse.fact_orders_batch_idx;
CREATE INDEX IF NOT EXISTS fact_orders_batch_brin ON warehouse.fact_orders USING brin (last_batch);

-- No index on last_batch: no model, check or export reads the shipment facts by batch, and on
-- PostgreSQL 15 every row the MERGE writes cost a BRIN index two buffer lookups (about 0.15 s
-- of the 1M-shipment batch's fact_shipments, the longest model of the transform;
-- docs/PERFORMANCE.md). (Earlier versions had a b-tree, then a BRIN index: dropped below.)
CREATE TABLE IF NOT EXISTS warehouse.fact_shipments (
    shipment_id     integer PRIMARY KEY,
    order_id        integer NOT NULL,
    shipment_date   date,
    delivery_date   date,
    days_to_ship    integer,   -- shipment_date − order_date
    days_to_deliver integer,   -- delivery_date − shipment_date
    last_batch      date    NOT NULL
);
DROP INDEX IF EXISTS warehouse.fact_shipments_batch_idx;
DROP INDEX IF EXISTS warehouse.fact_shipments_batch_brin;

-- One row per review; in snapshot mode the newest batch's set replaces the previous set.
-- Reviews have no natural key: a review is identified by its batch and its line in the file.
-- The primary key starts with last_batch and answers the lookups by batch (the snapshot's
-- newest batch, a batch's reviews): no index of its own, no foreign key (as fact_orders).
CREATE TABLE IF NOT EXISTS warehouse.fact_reviews (
    last_batch  date     NOT NULL,
    source_line bigint   NOT NULL,
    product_key bigint   NOT NULL,
    product_id  integer  NOT NULL,
    review      smallint,
    PRIMARY KEY (last_batch, source_line)
);
ALTER TABLE warehouse.fact_reviews
    DROP CONSTRAINT IF EXISTS fact_reviews_product_key_fkey;
DROP INDEX IF EXISTS warehouse.fact_reviews_batch_idx;

-- Every calendar staged, by the batch date it landed under (written by the holiday_calendar model).
-- Each staged calendar is kept as a version named by its batch date, so a report as of D reads
-- the calendar that applied on D (the newest one at or before D), not the newest one of all
-- (which is what warehouse.dim_date shows).
CREATE TABLE IF NOT EXISTS warehouse.holiday_calendars (
    calendar_batch date PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS warehouse.holiday_calendar_days (
    calendar_batch date NOT NULL,
    holiday_date   date NOT NULL,
    name           text,
    PRIMARY KEY (calendar_batch, holiday_date)
);

-- The calendar that applies on `as_of`: the newest one landed at or before it; before the
-- first calendar, the first one (a calendar may land under any date and applies to all).
CREATE OR REPLACE FUNCTION warehouse.holiday_calendar_as_of(as_of date) RETURNS date
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce((SELECT max(calendar_batch) FROM warehouse.holiday_calendars WHERE calendar_batch <= as_of),
                    (SELECT min(calendar_batch) FROM warehouse.holiday_calendars))
$$;

-- Reports: one row (or row set) per ingestion date; history is kept. The published tables
-- (analytics), then their unpublished copies (audit) with the same columns and keys: the models
-- write audit, the quality checker publishes a batch's rows once its checks pass.
CREATE TABLE IF NOT EXISTS analytics.agg_public_holiday (
    ingestion_date   date    PRIMARY KEY,
    tt_order_hol_jan integer NOT NULL,
    tt_order_hol_feb integer NOT NULL,
    tt_order_hol_mar integer NOT NULL,
    tt_order_hol_apr integer NOT NULL,
    tt_order_hol_may integer NOT NULL,
    tt_order_hol_jun integer NOT NULL,
    tt_order_hol_jul integer NOT NULL,
    tt_order_hol_aug integer NOT NULL,
    tt_order_hol_sep integer NOT NULL,
    tt_order_hol_oct integer NOT NULL,
    tt_order_hol_nov integer NOT NULL,
    tt_order_hol_dec integer NOT NULL
);

CREATE TABLE IF NOT EXISTS analytics.agg_shipments (
    ingestion_date           date    PRIMARY KEY,
    tt_late_shipments        integer NOT NULL,
    tt_undelivered_shipments integer NOT NULL
);

CREATE TABLE IF NOT EXISTS analytics.best_performing_product (
    ingestion_date       date          PRIMARY KEY,
    product_name         text,
    most_ordered_day     date,
    is_public_holiday    boolean,
    tt_review_points     integer,
    pct_one_star_review   numeric(5,2),
    pct_two_star_review   numeric(5,2),
    pct_three_star_review numeric(5,2),
    pct_four_star_review  numeric(5,2),
    pct_five_star_review  numeric(5,2),
    pct_early_shipments  numeric(5,2),
    pct_late_shipments   numeric(5,2)
);

CREATE TABLE IF NOT EXISTS analytics.sales_by_month (
    ingestion_date date          NOT NULL,
    month          date          NOT NULL,   -- first day of the calendar month
    revenue        numeric(14,2) NOT NULL,
    order_count    integer       NOT NULL,
    PRIMARY KEY (ingestion_date, month)
);

CREATE TABLE IF NOT EXISTS analytics.top_products_by_revenue (
    ingestion_date date          NOT NULL,
    rank           integer       NOT NULL,
    product_id     integer       NOT NULL,
    product_name   text,
    revenue        numeric(14,2) NOT NULL,
    order_count    integer       NOT NULL,
    PRIMARY KEY (ingestion_date, rank)
);

CREATE TABLE IF NOT EXISTS audit.agg_public_holiday (LIKE analytics.agg_public_holiday INCLUDING ALL);
CREATE TABLE IF NOT EXISTS audit.agg_shipments (LIKE analytics.agg_shipments INCLUDING ALL);
CREATE TABLE IF NOT EXISTS audit.best_performing_product (LIKE analytics.best_performing_product INCLUDING ALL);
CREATE TABLE IF NOT EXISTS audit.sales_by_month (LIKE analytics.sales_by_month INCLUDING ALL);
CREATE TABLE IF NOT EXISTS audit.top_products_by_revenue (LIKE analytics.top_products_by_revenue INCLUDING ALL);
