-- model: retail_cancellation_rate
-- depends_on: fact_transactions
-- As of the batch date D, over the lines of every batch up to and including D: the distinct
-- invoice numbers, those with a cancellation line (C invoices; also an invoice holding a
-- negative-quantity adjustment) and their share in percent (0 without invoices); the sales
-- amount, the cancelled amount (positive) and its share of the sales amount in percent (NULL
-- without sales; it can exceed 100 when old sales are cancelled). One row per batch, replaced
-- when the batch re-runs.
SELECT pg_advisory_xact_lock(hashtext('landfall.online_retail'));

WITH totals AS (
    SELECT count(DISTINCT invoice_no) AS invoices,
           count(DISTINCT invoice_no) FILTER (WHERE is_cancellation) AS cancelled_invoices,
           coalesce(sum(line_amount) FILTER (WHERE NOT is_cancellation), 0) AS sales_amount,
           coalesce(sum(abs(line_amount)) FILTER (WHERE is_cancellation), 0) AS cancelled_amount
      FROM warehouse.retail_fact_transactions
     WHERE ingestion_date <= ops.batch_date()
)
INSERT INTO audit.retail_cancellation_rate AS r (
    ingestion_date, invoices, cancelled_invoices, pct_cancelled_invoices,
    sales_amount, cancelled_amount, pct_cancelled_amount)
SELECT ops.batch_date(),
       invoices,
       cancelled_invoices,
       CASE WHEN invoices = 0 THEN 0 ELSE round(100.0 * cancelled_invoices / invoices, 2) END,
       sales_amount,
       cancelled_amount,
       round(100.0 * cancelled_amount / nullif(sales_amount, 0), 2)
  FROM totals
ON CONFLICT (ingestion_date) DO UPDATE
   SET invoices = EXCLUDED.invoices, cancelled_invoices = EXCLUDED.cancelled_invoices,
       pct_cancelled_invoices = EXCLUDED.pct_cancelled_invoices,
       sales_amount = EXCLUDED.sales_amount, cancelled_amount = EXCLUDED.cancelled_amount,
       pct_cancelled_amount = EXCLUDED.pct_cancelled_amount;
