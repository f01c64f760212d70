-- model: tables
-- depends_on:
-- The dataset's own tables, created by the first batch that runs. The advisory lock makes two
-- batches running at once wait for each other here instead of racing to create them.
SELECT pg_advisory_xact_lock(hashtext('landfall.coffee_shop'));

-- Every receipt line of every day.
CREATE TABLE IF NOT EXISTS warehouse.coffee_sales (
    ingestion_date date          NOT NULL,
    receipt_id     integer       NOT NULL,
    line           smallint      NOT NULL,
    sold_at        timestamp     NOT NULL,
    product        text          NOT NULL,
    quantity       integer       NOT NULL,
    unit_price     numeric(6,2)  NOT NULL,
    amount         numeric(10,2) NOT NULL,
    PRIMARY KEY (ingestion_date, receipt_id, line)
);

-- The report: per day and product, receipts, items sold and revenue.
CREATE TABLE IF NOT EXISTS audit.coffee_daily_sales (
    ingestion_date date          NOT NULL,
    product        text          NOT NULL,
    receipts       integer       NOT NULL,
    quantity       integer       NOT NULL,
    revenue        numeric(10,2) NOT NULL,
    PRIMARY KEY (ingestion_date, product)
);
