-- model: daily_sales
-- depends_on: fact_sales
-- Per product, the day's receipts, items sold and revenue. Re-running the day replaces its rows.
DELETE FROM audit.coffee_daily_sales WHERE ingestion_date = ops.batch_date();

INSERT INTO audit.coffee_daily_sales (ingestion_date, product, receipts, quantity, revenue)
SELECT ops.batch_date(), product, count(DISTINCT receipt_id), sum(quantity), sum(amount)
  FROM warehouse.coffee_sales
 WHERE ingestion_date = ops.batch_date()
 GROUP BY product;
