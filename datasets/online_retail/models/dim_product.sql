-- model: dim_product
-- depends_on:
-- One key per stock code, however many descriptions its lines carry: assigned the first time a
-- batch names the code (in byte order within the batch) and never changed.
--
-- `description` is the code's most frequent description (trimmed; empty ones ignored), ties →
-- the alphabetically first (byte order), and `descriptions` how many distinct ones it has, over
-- the lines as they are once this batch is loaded: every other batch's lines in the fact table
-- plus this batch's staged lines (which replace its earlier version). Both are therefore the same
-- whatever order the batches ran in. Only codes of this batch (old or new version) are recomputed.
SELECT pg_advisory_xact_lock(hashtext('landfall.online_retail'));

INSERT INTO warehouse.retail_dim_product (stock_code)
SELECT s.stock_code
  FROM staging.retail_transactions s
 WHERE s._batch = ops.batch_date()
   AND NOT EXISTS (SELECT 1 FROM warehouse.retail_dim_product p WHERE p.stock_code = s.stock_code)
 GROUP BY s.stock_code
 ORDER BY s.stock_code COLLATE "C"
ON CONFLICT (stock_code) DO NOTHING;

WITH staged AS (
    SELECT stock_code, description
      FROM staging.retail_transactions
     WHERE _batch = ops.batch_date()
),
affected AS (
    SELECT stock_code FROM staged
    UNION
    SELECT stock_code FROM warehouse.retail_fact_transactions WHERE ingestion_date = ops.batch_date()
),
lines AS (
    SELECT f.stock_code, f.description
      FROM warehouse.retail_fact_transactions f
     WHERE f.stock_code IN (SELECT stock_code FROM affected)
       -- This batch's loaded lines count only when staging no longer holds the batch
       -- (dropped by retention): then fact_transactions keeps them too.
       AND (f.ingestion_date <> ops.batch_date()
            OR NOT EXISTS (SELECT 1 FROM staging.retail_transactions WHERE _batch = ops.batch_date()))
    UNION ALL
    SELECT stock_code, description FROM staged
),
counted AS (
    SELECT stock_code, nullif(btrim(description), '') AS description, count(*) AS lines
      FROM lines
     GROUP BY 1, 2
),
summary AS (
    SELECT stock_code,
           (array_agg(description ORDER BY lines DESC, description COLLATE "C")
               FILTER (WHERE description IS NOT NULL))[1] AS description,
           count(description)::int AS descriptions
      FROM counted
     GROUP BY stock_code
)
UPDATE warehouse.retail_dim_product p
   SET description = summary.description, descriptions = summary.descriptions
  FROM summary
 WHERE p.stock_code = summary.stock_code
   AND (p.description, p.descriptions) IS DISTINCT FROM (summary.description, summary.descriptions);
