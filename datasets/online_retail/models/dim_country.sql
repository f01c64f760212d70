-- model: dim_country
-- depends_on:
-- One key per country name, assigned the first time a batch names the country (in name order
-- within the batch) and never changed or removed.
--
-- Every online_retail model first takes this dataset's transaction-level advisory lock, so two
-- batches are never transformed at the same time: delta batches share the dimensions and a
-- report as of D reads the lines of every earlier batch, so each run must see the previous
-- one's committed rows. (The lock is re-entrant within the transaction.)
SELECT pg_advisory_xact_lock(hashtext('landfall.online_retail'));

INSERT INTO warehouse.retail_dim_country (country)
SELECT s.country
  FROM staging.retail_transactions s
 WHERE s._batch = ops.batch_date()
   AND NOT EXISTS (SELECT 1 FROM warehouse.retail_dim_country c WHERE c.country = s.country)
 GROUP BY s.country
 ORDER BY s.country COLLATE "C"
ON CONFLICT (country) DO NOTHING;
