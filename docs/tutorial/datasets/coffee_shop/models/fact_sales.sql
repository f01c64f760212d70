-- model: fact_sales
-- The batch's receipt lines replace whatever an earlier version of the same day's file loaded;
-- other days are kept.
DELETE FROM warehouse.coffee_sales WHERE ingestion_date = ops.batch_date();

INSERT INTO warehouse.coffee_sales (ingestion_date, receipt_id, line, sold_at, product, quantity, unit_price, amount)
SELECT ops.batch_date(), receipt_id, line, sold_at, product, quantity, unit_price, quantity * unit_price
  FROM staging.coffee_sales
 WHERE _batch = ops.batch_date();
