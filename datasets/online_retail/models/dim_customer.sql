-- model: dim_customer
-- depends_on: dim_country
-- One key per customer id, assigned the first time a batch names the customer (in id order
-- within the batch) and never changed. Lines without a customer are not customers: the fact
-- points them to the unknown member (-1), created by the migration.
--
-- `country` is the country most of the customer's lines name (ties → the alphabetically first,
-- byte order), over the lines as they are once this batch is loaded: every other batch's lines
-- in the fact table plus this batch's staged lines (which replace its earlier version). It is
-- therefore the same whatever order the batches ran in. Only customers of this batch (old or
-- new version) are recomputed.
SELECT pg_advisory_xact_lock(hashtext('landfall.online_retail'));

INSERT INTO warehouse.retail_dim_customer (customer_id)
SELECT s.customer_id
  FROM staging.retail_transactions s
 WHERE s._batch = ops.batch_date()
   AND s.customer_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM warehouse.retail_dim_customer d WHERE d.customer_id = s.customer_id)
 GROUP BY s.customer_id
 ORDER BY s.customer_id
ON CONFLICT (customer_id) DO NOTHING;

WITH staged AS (
    SELECT customer_id, country
      FROM staging.retail_transactions
     WHERE _batch = ops.batch_date() AND customer_id IS NOT NULL
),
affected AS (
    SELECT customer_id FROM staged
    UNION
    SELECT customer_id FROM warehouse.retail_fact_transactions
     WHERE ingestion_date = ops.batch_date() AND customer_id IS NOT NULL
),
lines AS (
    SELECT f.customer_id, c.country
      FROM warehouse.retail_fact_transactions f
      JOIN warehouse.retail_dim_country c ON c.country_key = f.country_key
     WHERE f.customer_id IN (SELECT customer_id FROM affected)
       -- This batch's loaded lines count only when staging no longer holds the batch
       -- (dropped by retention): then fact_transactions keeps them too.
       AND (f.ingestion_date <> ops.batch_date()
            OR NOT EXISTS (SELECT 1 FROM staging.retail_transactions WHERE _batch = ops.batch_date()))
    UNION ALL
    SELECT customer_id, country FROM staged
),
ranked AS (
    SELECT DISTINCT ON (customer_id) customer_id, country
      FROM (SELECT customer_id, country, count(*) AS lines FROM lines GROUP BY customer_id, country) counted
     ORDER BY customer_id, lines DESC, country COLLATE "C"
)
UPDATE warehouse.retail_dim_customer d
   SET country = ranked.country
  FROM ranked
 WHERE d.customer_id = ranked.customer_id
   AND d.country IS DISTINCT FROM ranked.country;
