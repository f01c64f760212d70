-- model: fact_transactions
-- depends_on: dim_country, dim_customer, dim_product, dim_date
-- Delta mode: the batch's invoice lines replace the lines an earlier version of the batch
-- loaded (a version with no lines at all too); other batches' lines are kept. A batch whose
-- staging rows were dropped by retention keeps its lines (nothing to replace them with), so
-- re-running an old batch never loses data: its staged file loaded rows that are gone now.
--
-- A line is a cancellation when its invoice number starts with C or its quantity is negative
-- (UCI stock adjustments); it is flagged and kept out of sales by the reports. A line without a
-- customer points to the unknown member (-1): never dropped. The dimension keys are looked up
-- with outer joins, so a missing key fails the run (NOT NULL) instead of dropping the line.
SELECT pg_advisory_xact_lock(hashtext('landfall.online_retail'));

DELETE FROM warehouse.retail_fact_transactions
 WHERE ingestion_date = ops.batch_date()
   AND (EXISTS (SELECT 1 FROM staging.retail_transactions WHERE _batch = ops.batch_date())
        OR EXISTS (SELECT 1 FROM ops.staged_sources
                    WHERE dataset = 'online_retail' AND ingestion_date = ops.batch_date()
                      AND source = 'transactions' AND rows_loaded = 0));

INSERT INTO warehouse.retail_fact_transactions (
    ingestion_date, source_line, invoice_no, stock_code, description, product_key, customer_key,
    customer_id, country_key, invoice_date_key, invoice_date, quantity, unit_price, line_amount,
    is_cancellation)
SELECT ops.batch_date(),
       s._line,
       s.invoice_no,
       s.stock_code,
       s.description,
       p.product_key,
       coalesce(c.customer_key, -1),
       s.customer_id,
       k.country_key,
       to_char(s.invoice_date, 'YYYYMMDD')::int,
       s.invoice_date,
       s.quantity,
       s.unit_price,
       s.quantity * s.unit_price,
       s.invoice_no ILIKE 'C%' OR s.quantity < 0
  FROM staging.retail_transactions s
  LEFT JOIN warehouse.retail_dim_product p ON p.stock_code = s.stock_code
  LEFT JOIN warehouse.retail_dim_country k ON k.country = s.country
  LEFT JOIN warehouse.retail_dim_customer c ON c.customer_id = s.customer_id
 WHERE s._batch = ops.batch_date()
 ORDER BY s._line;
