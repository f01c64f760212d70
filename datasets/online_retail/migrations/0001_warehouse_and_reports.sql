-- The online_retail dataset's tables: the star schema (warehouse) and the reports, published
-- (analytics) and unpublished (audit). The models fill them (datasets/online_retail/models); the
-- migration runner applies this file when the dataset is in the datasets directory, after the
-- platform's migrations (sql/migrations). Every table is prefixed retail_ so nothing clashes
-- with the ecommerce tables.
--
-- The dataset is in delta mode: a batch carries one day's invoice lines. The fact table keeps
-- every batch's lines (staging retention drops old staging rows; the warehouse keeps them), and a
-- report "as of D" covers the lines of every batch up to D.
--
-- Until these tables moved here, the platform's migrations 0006 and 0016 made them, so a
-- database migrated before the move has every one already, with rows. This file is therefore
-- written to leave such a database as it is: tables, sequences and indexes only when missing
-- (with the columns in the same order), the unknown member only when missing.

CREATE TABLE IF NOT EXISTS warehouse.retail_dim_date (
    date_key        integer PRIMARY KEY,            -- YYYYMMDD
    calendar_date   date    NOT NULL UNIQUE,
    year            integer NOT NULL,
    quarter         integer NOT NULL,
    month           integer NOT NULL,
    month_start     date    NOT NULL,               -- first day of the calendar month
    day_of_month    integer NOT NULL,
    iso_day_of_week integer NOT NULL,               -- 1 = Monday … 7 = Sunday
    is_weekend      boolean NOT NULL
);

-- Keys come from sequences, are assigned the first time a value is seen and never change.
CREATE SEQUENCE IF NOT EXISTS warehouse.retail_dim_country_key_seq;
CREATE TABLE IF NOT EXISTS warehouse.retail_dim_country (
    country_key bigint PRIMARY KEY DEFAULT nextval('warehouse.retail_dim_country_key_seq'),
    country     text   NOT NULL UNIQUE
);

-- One row per customer id, plus the unknown member (-1, customer_id NULL) that every line
-- without a customer points to. `country` is the country most of the customer's lines name
-- (ties → alphabetically first), over every batch loaded so far.
CREATE SEQUENCE IF NOT EXISTS warehouse.retail_dim_customer_key_seq;
CREATE TABLE IF NOT EXISTS warehouse.retail_dim_customer (
    customer_key bigint  PRIMARY KEY DEFAULT nextval('warehouse.retail_dim_customer_key_seq'),
    customer_id  integer UNIQUE,                    -- NULL only for the unknown member
    country      text,
    CHECK ((customer_key = -1) = (customer_id IS NULL))
);
INSERT INTO warehouse.retail_dim_customer (customer_key, customer_id, country)
VALUES (-1, NULL, NULL)
ON CONFLICT DO NOTHING;

-- One row (one key) per stock code, however many descriptions its lines carry. `description`
-- is the most frequent non-empty description of the code's lines over every batch loaded so far
-- (ties → alphabetically first); `descriptions` counts the distinct ones seen.
CREATE SEQUENCE IF NOT EXISTS warehouse.retail_dim_product_key_seq;
CREATE TABLE IF NOT EXISTS warehouse.retail_dim_product (
    product_key  bigint  PRIMARY KEY DEFAULT nextval('warehouse.retail_dim_product_key_seq'),
    stock_code   text    NOT NULL UNIQUE,
    description  text,
    descriptions integer NOT NULL DEFAULT 0
);

-- One row per invoice line of every batch: a line is identified by its batch and its line in
-- the file (invoice lines have no natural key; the same product can appear twice on an invoice).
-- A cancellation (invoice number starting with C, or a negative quantity) is flagged and kept
-- out of sales; its amount is negative.
CREATE TABLE IF NOT EXISTS warehouse.retail_fact_transactions (
    ingestion_date   date          NOT NULL,
    source_line      bigint        NOT NULL,
    invoice_no       text          NOT NULL,
    stock_code       text          NOT NULL,
    description      text,                        -- as written on the line
    product_key      bigint        NOT NULL REFERENCES warehouse.retail_dim_product (product_key),
    customer_key     bigint        NOT NULL REFERENCES warehouse.retail_dim_customer (customer_key),
    customer_id      integer,
    country_key      bigint        NOT NULL REFERENCES warehouse.retail_dim_country (country_key),
    invoice_date_key integer       NOT NULL REFERENCES warehouse.retail_dim_date (date_key),
    invoice_date     timestamp     NOT NULL,
    quantity         integer       NOT NULL,
    unit_price       numeric(12,2) NOT NULL,
    line_amount      numeric(14,2) NOT NULL,      -- quantity × unit_price
    is_cancellation  boolean       NOT NULL,
    PRIMARY KEY (ingestion_date, source_line)
);
CREATE INDEX IF NOT EXISTS retail_fact_transactions_product_idx ON warehouse.retail_fact_transactions (product_key);
CREATE INDEX IF NOT EXISTS retail_fact_transactions_customer_idx ON warehouse.retail_fact_transactions (customer_key);

-- Reports: one row set per ingestion date, each computed from the lines of every batch up to and
-- including that date; history is kept.

-- Sales and cancellations per country and invoice month.
CREATE TABLE IF NOT EXISTS analytics.retail_revenue_by_country_month (
    ingestion_date   date          NOT NULL,
    country          text          NOT NULL,
    month            date          NOT NULL,    -- first day of the invoice month
    revenue          numeric(14,2) NOT NULL,    -- sales lines only
    cancelled_amount numeric(14,2) NOT NULL,    -- cancellation lines, as a positive amount
    invoices         integer       NOT NULL,    -- distinct invoices with a sales line
    units            bigint        NOT NULL,    -- quantity sold
    customers        integer       NOT NULL,    -- distinct known customers with a sales line
    PRIMARY KEY (ingestion_date, country, month)
);

-- The 10 stock codes with the most sales revenue (ties → the lower stock code).
CREATE TABLE IF NOT EXISTS analytics.retail_top_products (
    ingestion_date date          NOT NULL,
    rank           integer       NOT NULL,
    stock_code     text          NOT NULL,
    description    text,                        -- the most frequent description up to the date
    revenue        numeric(14,2) NOT NULL,
    units          bigint        NOT NULL,
    invoices       integer       NOT NULL,
    PRIMARY KEY (ingestion_date, rank)
);

-- How much was cancelled: invoices and amounts.
CREATE TABLE IF NOT EXISTS analytics.retail_cancellation_rate (
    ingestion_date         date          PRIMARY KEY,
    invoices               integer       NOT NULL,  -- distinct invoice numbers
    cancelled_invoices     integer       NOT NULL,  -- distinct invoice numbers of cancellation lines
    pct_cancelled_invoices numeric(5,2)  NOT NULL,
    sales_amount           numeric(14,2) NOT NULL,
    cancelled_amount       numeric(14,2) NOT NULL,  -- positive
    pct_cancelled_amount   numeric(12,2)            -- NULL without sales
);

-- The reports' unpublished copies, with the same columns and keys: the models write them, the
-- quality checker publishes a batch's rows to analytics once its checks pass.
CREATE TABLE IF NOT EXISTS audit.retail_revenue_by_country_month (LIKE analytics.retail_revenue_by_country_month INCLUDING ALL);
CREATE TABLE IF NOT EXISTS audit.retail_top_products (LIKE analytics.retail_top_products INCLUDING ALL);
CREATE TABLE IF NOT EXISTS audit.retail_cancellation_rate (LIKE analytics.retail_cancellation_rate INCLUDING ALL);
