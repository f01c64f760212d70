-- The star schema (warehouse) and the reports (analytics) of the ecommerce dataset, plus the
-- bookkeeping of transform, quality and export runs.

-- The batch a model runs for; set per transaction by the transformer (and quality checker).
CREATE FUNCTION ops.batch_date() RETURNS date
    LANGUAGE sql STABLE
    AS $$ SELECT current_setting('landfall.batch_date')::date $$;

CREATE TABLE warehouse.dim_date (
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
CREATE SEQUENCE warehouse.dim_customer_key_seq;
CREATE TABLE warehouse.dim_customer (
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
VALUES (-1, -1, 'Unknown customer', NULL, DATE '1900-01-01', NULL, true);

CREATE SEQUENCE warehouse.dim_product_key_seq;
CREATE TABLE warehouse.dim_product (
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
VALUES (-1, -1, NULL, NULL, DATE '1900-01-01', NULL, true);

-- Current-state facts, merged by natural key; last_batch is the batch that last changed a row,
-- so an older batch re-run later never overwrites a newer one.
CREATE TABLE warehouse.fact_orders (
    order_id      integer       PRIMARY KEY,
    customer_key  bigint        NOT NULL REFERENCES warehouse.dim_customer (customer_key),
    product_key   bigint        NOT NULL REFERENCES warehouse.dim_product (product_key),
    order_date_key integer      NOT NULL,
    order_date    date          NOT NULL,
    customer_id   integer       NOT NULL,
    product_id    integer       NOT NULL,
    unit_price    numeric(12,2) NOT NULL,
    quantity      integer       NOT NULL,
    total_price   numeric(12,2) NOT NULL,
    last_batch    date          NOT NULL
);
CREATE INDEX fact_orders_batch_idx ON warehouse.fact_orders (last_batch);

CREATE TABLE warehouse.fact_shipments (
    shipment_id     integer PRIMARY KEY,
    order_id        integer NOT NULL,
    shipment_date   date,
    delivery_date   date,
    days_to_ship    integer,   -- shipment_date − order_date
    days_to_deliver integer,   -- delivery_date − shipment_date
    last_batch      date    NOT NULL
);
CREATE INDEX fact_shipments_batch_idx ON warehouse.fact_shipments (last_batch);

-- One row per review; in snapshot mode the newest batch's set replaces the previous set.
-- Reviews have no natural key: a review is identified by its batch and its line in the file.
CREATE TABLE warehouse.fact_reviews (
    last_batch  date     NOT NULL,
    source_line bigint   NOT NULL,
    product_key bigint   NOT NULL REFERENCES warehouse.dim_product (product_key),
    product_id  integer  NOT NULL,
    review      smallint,
    PRIMARY KEY (last_batch, source_line)
);
CREATE INDEX fact_reviews_batch_idx ON warehouse.fact_reviews (last_batch);

-- Reports: one row (or row set) per ingestion date; history is kept.
CREATE TABLE analytics.agg_public_holiday (
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

CREATE TABLE analytics.agg_shipments (
    ingestion_date           date    PRIMARY KEY,
    tt_late_shipments        integer NOT NULL,
    tt_undelivered_shipments integer NOT NULL
);

CREATE TABLE analytics.best_performing_product (
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

CREATE TABLE analytics.sales_by_month (
    ingestion_date date          NOT NULL,
    month          date          NOT NULL,   -- first day of the calendar month
    revenue        numeric(14,2) NOT NULL,
    order_count    integer       NOT NULL,
    PRIMARY KEY (ingestion_date, month)
);

CREATE TABLE analytics.top_products_by_revenue (
    ingestion_date date          NOT NULL,
    rank           integer       NOT NULL,
    product_id     integer       NOT NULL,
    product_name   text,
    revenue        numeric(14,2) NOT NULL,
    order_count    integer       NOT NULL,
    PRIMARY KEY (ingestion_date, rank)
);

-- One transform run of a batch: which files it was built from and each model's rows and time.
CREATE TABLE ops.transform_runs (
    run_id         bigserial   PRIMARY KEY,
    dataset        text        NOT NULL,
    ingestion_date date        NOT NULL,
    file_ids       bigint[]    NOT NULL,
    models         jsonb       NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX transform_runs_batch_idx ON ops.transform_runs (dataset, ingestion_date);
