-- model: retail_revenue_by_country_month
-- depends_on: fact_transactions, dim_country, dim_date
-- As of the batch date D: over the lines of every batch up to and including D, per country and
-- invoice month, the sales revenue (sales lines only: cancellations never count as sales), the
-- cancelled amount (cancellation lines, as a positive amount), the distinct invoices, units and
-- known customers of the sales lines. A country-month with only cancellations has a row with
-- revenue 0. The batch's rows are replaced when it re-runs; other batches' rows are kept.
SELECT pg_advisory_xact_lock(hashtext('landfall.online_retail'));

DELETE FROM audit.retail_revenue_by_country_month WHERE ingestion_date = ops.batch_date();

INSERT INTO audit.retail_revenue_by_country_month (ingestion_date, country, month, revenue,
                                                        cancelled_amount, invoices, units, customers)
SELECT ops.batch_date(),
       c.country,
       d.month_start,
       coalesce(sum(f.line_amount) FILTER (WHERE NOT f.is_cancellation), 0),
       coalesce(sum(abs(f.line_amount)) FILTER (WHERE f.is_cancellation), 0),
       count(DISTINCT f.invoice_no) FILTER (WHERE NOT f.is_cancellation),
       coalesce(sum(f.quantity) FILTER (WHERE NOT f.is_cancellation), 0),
       count(DISTINCT f.customer_id) FILTER (WHERE NOT f.is_cancellation)
  FROM warehouse.retail_fact_transactions f
  JOIN warehouse.retail_dim_country c ON c.country_key = f.country_key
  JOIN warehouse.retail_dim_date d ON d.date_key = f.invoice_date_key
 WHERE f.ingestion_date <= ops.batch_date()
 GROUP BY c.country, d.month_start;
