-- warehouse.fact_reviews holds the newest batch's reviews as a multiset, so a day that adds a
-- few reviews to yesterday's thousands writes only those few (models/fact_reviews.sql).
--
-- A review has no key of its own: two reviews of one product with the same stars are the same
-- to every report. A row is the `ordinal`-th review of its product with its stars (`stars`:
-- the review, 0 for an empty one), numbered 1, 2, … without gaps, and remembers the batch that
-- added it (`last_batch`). Its file line is not kept: tomorrow's snapshot may hold the same
-- review on another line.
--
-- warehouse.fact_reviews_batch records the batch whose reviews the table holds: the newest
-- one transformed, which an older batch re-run later (a late correction) does not replace.

CREATE TABLE IF NOT EXISTS warehouse.fact_reviews_batch (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    batch    date    NOT NULL
);

INSERT INTO warehouse.fact_reviews_batch (batch)
SELECT max(last_batch) FROM warehouse.fact_reviews HAVING max(last_batch) IS NOT NULL
ON CONFLICT (only_row) DO NOTHING;

ALTER TABLE warehouse.fact_reviews
    ADD COLUMN IF NOT EXISTS stars smallint GENERATED ALWAYS AS (coalesce(review, 0)) STORED,
    ADD COLUMN IF NOT EXISTS ordinal integer;

-- Rows loaded before: numbered by batch and line, as the multiset keeps its oldest rows first.
UPDATE warehouse.fact_reviews f
   SET ordinal = numbered.ordinal
  FROM (SELECT last_batch, source_line,
               row_number() OVER (PARTITION BY product_id, stars ORDER BY last_batch, source_line) AS ordinal
          FROM warehouse.fact_reviews) AS numbered
 WHERE f.ordinal IS NULL
   AND f.last_batch = numbered.last_batch AND f.source_line = numbered.source_line;

ALTER TABLE warehouse.fact_reviews ALTER COLUMN ordinal SET NOT NULL;
ALTER TABLE warehouse.fact_reviews DROP CONSTRAINT IF EXISTS fact_reviews_pkey;
ALTER TABLE warehouse.fact_reviews DROP COLUMN IF EXISTS source_line;
ALTER TABLE warehouse.fact_reviews ADD PRIMARY KEY (product_id, stars, ordinal);
-- The batch's rows, for the checks on what a batch changed.
CREATE INDEX IF NOT EXISTS fact_reviews_last_batch_idx ON warehouse.fact_reviews (last_batch);
