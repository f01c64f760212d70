-- The coffee shop's own tables.

-- Every receipt line of every day.
CREATE TABLE warehouse.coffee_sales (
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

-- The report: per day and product, receipts, items sold and revenue. The models write a batch's
-- rows here; the quality checker publishes them to analytics.coffee_daily_sales (made like this
-- table) once the batch's error-severity checks pass.
CREATE TABLE audit.coffee_daily_sales (
    ingestion_date date          NOT NULL,
    product        text          NOT NULL,
    receipts       integer       NOT NULL,
    quantity       integer       NOT NULL,
    revenue        numeric(10,2) NOT NULL,
    PRIMARY KEY (ingestion_date, product)
);
