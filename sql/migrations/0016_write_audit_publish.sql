-- Write, audit, publish. The models write a batch's report rows to schema `audit`; the quality
-- checker runs the checks on them there, and only when every error-severity check passes does
-- it copy the batch's rows into `analytics` (the tables people and the exporter read), in the
-- transaction that records the results. So a reader of `analytics.*` sees a batch's audited
-- rows or, until they pass (and after a failure), the batch's previous audited rows or none.
-- A dataset lists its report tables in `dataset.toml` (`reports = [...]`, docs/DATASETS.md).
--
-- Also: the holiday calendar as of a batch date. Each staged calendar is kept as a version named
-- by its batch date, so a report as of D reads the calendar that applied on D (the newest one
-- at or before D), not the newest one of all (which is what warehouse.dim_date shows).

CREATE SCHEMA IF NOT EXISTS audit;

-- The bundled reports move: their unpublished copy in audit, with the same columns and keys.
-- Existing databases keep every row: a batch that passed its checks is published as it was.
CREATE TABLE audit.agg_public_holiday (LIKE analytics.agg_public_holiday INCLUDING ALL);
CREATE TABLE audit.agg_shipments (LIKE analytics.agg_shipments INCLUDING ALL);
CREATE TABLE audit.best_performing_product (LIKE analytics.best_performing_product INCLUDING ALL);
CREATE TABLE audit.sales_by_month (LIKE analytics.sales_by_month INCLUDING ALL);
CREATE TABLE audit.top_products_by_revenue (LIKE analytics.top_products_by_revenue INCLUDING ALL);
CREATE TABLE audit.retail_revenue_by_country_month (LIKE analytics.retail_revenue_by_country_month INCLUDING ALL);
CREATE TABLE audit.retail_top_products (LIKE analytics.retail_top_products INCLUDING ALL);
CREATE TABLE audit.retail_cancellation_rate (LIKE analytics.retail_cancellation_rate INCLUDING ALL);

INSERT INTO audit.agg_public_holiday SELECT * FROM analytics.agg_public_holiday;
INSERT INTO audit.agg_shipments SELECT * FROM analytics.agg_shipments;
INSERT INTO audit.best_performing_product SELECT * FROM analytics.best_performing_product;
INSERT INTO audit.sales_by_month SELECT * FROM analytics.sales_by_month;
INSERT INTO audit.top_products_by_revenue SELECT * FROM analytics.top_products_by_revenue;
INSERT INTO audit.retail_revenue_by_country_month SELECT * FROM analytics.retail_revenue_by_country_month;
INSERT INTO audit.retail_top_products SELECT * FROM analytics.retail_top_products;
INSERT INTO audit.retail_cancellation_rate SELECT * FROM analytics.retail_cancellation_rate;

-- When the batch's audited rows were last published (NULL: never).
ALTER TABLE ops.batches ADD COLUMN published_at timestamptz;
UPDATE ops.batches SET published_at = coalesce(quality_at, updated_at)
 WHERE state IN ('quality_passed', 'exported');

-- Rows of batches that never passed their checks leave the published tables.
DELETE FROM analytics.agg_public_holiday r USING ops.batches b
 WHERE b.dataset = 'ecommerce' AND b.ingestion_date = r.ingestion_date AND b.published_at IS NULL;
DELETE FROM analytics.agg_shipments r USING ops.batches b
 WHERE b.dataset = 'ecommerce' AND b.ingestion_date = r.ingestion_date AND b.published_at IS NULL;
DELETE FROM analytics.best_performing_product r USING ops.batches b
 WHERE b.dataset = 'ecommerce' AND b.ingestion_date = r.ingestion_date AND b.published_at IS NULL;
DELETE FROM analytics.sales_by_month r USING ops.batches b
 WHERE b.dataset = 'ecommerce' AND b.ingestion_date = r.ingestion_date AND b.published_at IS NULL;
DELETE FROM analytics.top_products_by_revenue r USING ops.batches b
 WHERE b.dataset = 'ecommerce' AND b.ingestion_date = r.ingestion_date AND b.published_at IS NULL;
DELETE FROM analytics.retail_revenue_by_country_month r USING ops.batches b
 WHERE b.dataset = 'online_retail' AND b.ingestion_date = r.ingestion_date AND b.published_at IS NULL;
DELETE FROM analytics.retail_top_products r USING ops.batches b
 WHERE b.dataset = 'online_retail' AND b.ingestion_date = r.ingestion_date AND b.published_at IS NULL;
DELETE FROM analytics.retail_cancellation_rate r USING ops.batches b
 WHERE b.dataset = 'online_retail' AND b.ingestion_date = r.ingestion_date AND b.published_at IS NULL;

-- Every calendar staged, by the batch date it landed under (written by the dim_date model).
CREATE TABLE warehouse.holiday_calendars (
    calendar_batch date PRIMARY KEY
);
CREATE TABLE warehouse.holiday_calendar_days (
    calendar_batch date NOT NULL,
    holiday_date   date NOT NULL,
    name           text,
    PRIMARY KEY (calendar_batch, holiday_date)
);

-- The calendar that applies on `as_of`: the newest one landed at or before it; before the
-- first calendar, the first one (a calendar may land under any date and applies to all).
CREATE FUNCTION warehouse.holiday_calendar_as_of(as_of date) RETURNS date
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce((SELECT max(calendar_batch) FROM warehouse.holiday_calendars WHERE calendar_batch <= as_of),
                    (SELECT min(calendar_batch) FROM warehouse.holiday_calendars))
$$;

-- Grants of the audit schema, run again after every migration like the others (db.rs):
-- the transformer writes the audit tables (and makes a user's report tables there); the quality
-- checker reads them and publishes into analytics (making a user's published table like its
-- audit table the first time), which the exporter reads.
CREATE FUNCTION ops.apply_audit_grants() RETURNS void
    LANGUAGE plpgsql
    AS $grants$
BEGIN
    GRANT USAGE, CREATE ON SCHEMA audit TO landfall_transformer;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA audit TO landfall_transformer;
    ALTER DEFAULT PRIVILEGES IN SCHEMA audit
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO landfall_transformer;

    GRANT USAGE ON SCHEMA audit TO landfall_quality_checker;
    GRANT SELECT ON ALL TABLES IN SCHEMA audit TO landfall_quality_checker;
    ALTER DEFAULT PRIVILEGES IN SCHEMA audit GRANT SELECT ON TABLES TO landfall_quality_checker;
    -- CREATE: a user's report is published to a table made like its audit table.
    GRANT CREATE ON SCHEMA analytics TO landfall_quality_checker;
    GRANT INSERT, DELETE ON ALL TABLES IN SCHEMA analytics TO landfall_quality_checker;
    ALTER DEFAULT PRIVILEGES IN SCHEMA analytics
        GRANT INSERT, DELETE ON TABLES TO landfall_quality_checker;
    GRANT UPDATE (published_at) ON ops.batches TO landfall_quality_checker;

    IF pg_has_role(current_user, 'landfall_transformer', 'USAGE') THEN
        ALTER DEFAULT PRIVILEGES FOR ROLE landfall_transformer IN SCHEMA audit
            GRANT SELECT ON TABLES TO landfall_quality_checker;
        ALTER DEFAULT PRIVILEGES FOR ROLE landfall_transformer IN SCHEMA analytics
            GRANT SELECT, INSERT, DELETE ON TABLES TO landfall_quality_checker;
    END IF;
    IF pg_has_role(current_user, 'landfall_quality_checker', 'USAGE') THEN
        ALTER DEFAULT PRIVILEGES FOR ROLE landfall_quality_checker IN SCHEMA analytics
            GRANT SELECT ON TABLES TO landfall_exporter;
    END IF;
END
$grants$;
REVOKE EXECUTE ON FUNCTION ops.apply_audit_grants() FROM PUBLIC;
