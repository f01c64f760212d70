-- model: retail_top_products
-- depends_on: fact_transactions
-- As of the batch date D: the 10 stock codes with the most sales revenue over the lines of every
-- batch up to and including D (cancellations excluded), ties → the lower stock code (byte
-- order), ranked 1..10, with units sold and distinct invoices. The description follows the
-- dimension's rule (most frequent, ties → alphabetical) over the same lines up to D, so a
-- later batch never changes the report of D, even when D is re-run after it.
SELECT pg_advisory_xact_lock(hashtext('landfall.online_retail'));

DELETE FROM audit.retail_top_products WHERE ingestion_date = ops.batch_date();

WITH lines AS (
    SELECT stock_code, description, quantity, line_amount, invoice_no, is_cancellation
      FROM warehouse.retail_fact_transactions
     WHERE ingestion_date <= ops.batch_date()
),
ranked AS (
    SELECT stock_code,
           sum(line_amount) AS revenue,
           sum(quantity) AS units,
           count(DISTINCT invoice_no) AS invoices,
           row_number() OVER (ORDER BY sum(line_amount) DESC, stock_code COLLATE "C") AS rank
      FROM lines
     WHERE NOT is_cancellation
     GROUP BY stock_code
),
described AS (
    SELECT stock_code,
           (array_agg(description ORDER BY lines DESC, description COLLATE "C"))[1] AS description
      FROM (SELECT stock_code, nullif(btrim(description), '') AS description, count(*) AS lines
              FROM lines
             WHERE nullif(btrim(description), '') IS NOT NULL
               AND stock_code IN (SELECT stock_code FROM ranked WHERE rank <= 10)
             GROUP BY 1, 2) counted
     GROUP BY stock_code
)
INSERT INTO audit.retail_top_products (ingestion_date, rank, stock_code, description, revenue, units, invoices)
SELECT ops.batch_date(), ranked.rank, ranked.stock_code, described.description,
       ranked.revenue, ranked.units, ranked.invoices
  FROM ranked
  LEFT JOIN described ON described.stock_code = ranked.stock_code
 WHERE ranked.rank <= 10;
