-- model: dim_product
-- depends_on:
-- Type-2 slowly changing dimension from the batch's products snapshot (if it has one).
-- The version valid on the batch date is compared with the snapshot: unchanged → nothing;
-- changed → that version is closed on the batch date and a new one opens (a version that
-- starts on the batch date itself is corrected in place, keeping its key); a product with no
-- version valid on that date gets one, up to the next later version if a later batch ran
-- first (or that later version, extended back, when it is alike).
--
-- A snapshot speaks for its own date up to the next snapshot: a late correction of batch D
-- changes the product from D up to the next staged snapshot that holds it (of a batch
-- transformed already: one still to run applies itself), and the days from there keep the
-- attributes they had (the version is split there), so a corrected old batch changes no later
-- batch's reports, and the versions do not depend on the order the batches ran in. (Snapshots
-- dropped by the staging retention policy are not seen: a correction older than those changes
-- the version up to its end.) A product
-- missing from a later snapshot keeps its last version: deletions are not tracked.

-- The version the batch opened, continued by later snapshots: split at the next one.
WITH split AS (
    SELECT d.product_key, d.product_id, d.product_category, d.product_name, d.valid_to, later.next_from
      FROM warehouse.dim_product d
      JOIN staging.products s ON s.product_id = d.product_id AND s._batch = ops.batch_date()
      CROSS JOIN LATERAL (
            SELECT min(l._batch) AS next_from
              FROM staging.products l
             WHERE l.product_id = d.product_id AND l._batch > ops.batch_date()
               AND (d.valid_to IS NULL OR l._batch < d.valid_to)
               AND EXISTS (SELECT 1 FROM ops.batches b
                            WHERE b.dataset = 'ecommerce' AND b.ingestion_date = l._batch
                              AND b.transformed_at IS NOT NULL)
           ) later
     WHERE d.product_key <> -1
       AND d.valid_from = ops.batch_date()
       AND (d.product_category, d.product_name) IS DISTINCT FROM (s.product_category, s.product_name)
       AND later.next_from IS NOT NULL
),
shortened AS (
    UPDATE warehouse.dim_product d
       SET valid_to = split.next_from, is_current = false
      FROM split
     WHERE d.product_key = split.product_key
)
INSERT INTO warehouse.dim_product (product_id, product_category, product_name, valid_from, valid_to, is_current)
SELECT product_id, product_category, product_name, next_from, valid_to, valid_to IS NULL
  FROM split;

UPDATE warehouse.dim_product d
   SET product_category = s.product_category, product_name = s.product_name
  FROM staging.products s
 WHERE s._batch = ops.batch_date()
   AND d.product_id = s.product_id
   AND d.product_key <> -1
   AND d.valid_from = ops.batch_date()
   AND (d.product_category, d.product_name) IS DISTINCT FROM (s.product_category, s.product_name);

-- A batch that arrives after a later one must leave the dimension as if the batches had come
-- in order: where the new version would equal the version that follows it, that one is
-- extended back to the batch date instead (no two adjacent versions alike). When a later
-- staged snapshot within the old version holds the product, the new version ends there and
-- the old attributes go on from it (a late correction changes only its own days).
WITH changed AS (
    SELECT d.product_key, d.product_id, d.valid_to AS old_valid_to,
           d.product_category AS old_category, d.product_name AS old_name,
           s.product_category, s.product_name, later.next_from,
           next.product_key AS next_key,
           later.next_from IS NULL
           AND coalesce((next.product_category, next.product_name) IS NOT DISTINCT FROM (s.product_category, s.product_name), false) AS next_alike
      FROM warehouse.dim_product d
      JOIN staging.products s ON s.product_id = d.product_id AND s._batch = ops.batch_date()
      LEFT JOIN warehouse.dim_product next
             ON next.product_id = d.product_id AND next.product_key <> -1 AND next.valid_from = d.valid_to
      CROSS JOIN LATERAL (
            SELECT min(l._batch) AS next_from
              FROM staging.products l
             WHERE l.product_id = d.product_id AND l._batch > ops.batch_date()
               AND (d.valid_to IS NULL OR l._batch < d.valid_to)
               AND EXISTS (SELECT 1 FROM ops.batches b
                            WHERE b.dataset = 'ecommerce' AND b.ingestion_date = l._batch
                              AND b.transformed_at IS NOT NULL)
           ) later
     WHERE d.product_key <> -1
       AND d.valid_from < ops.batch_date()
       AND (d.valid_to IS NULL OR d.valid_to > ops.batch_date())
       AND (d.product_category, d.product_name) IS DISTINCT FROM (s.product_category, s.product_name)
),
closed AS (
    UPDATE warehouse.dim_product d
       SET valid_to = ops.batch_date(), is_current = false
      FROM changed
     WHERE d.product_key = changed.product_key
),
extended AS (
    UPDATE warehouse.dim_product d
       SET valid_from = ops.batch_date()
      FROM changed
     WHERE d.product_key = changed.next_key AND changed.next_alike
),
resumed AS (
    INSERT INTO warehouse.dim_product (product_id, product_category, product_name, valid_from, valid_to, is_current)
    SELECT product_id, old_category, old_name, next_from, old_valid_to, old_valid_to IS NULL
      FROM changed
     WHERE next_from IS NOT NULL
)
INSERT INTO warehouse.dim_product (product_id, product_category, product_name, valid_from, valid_to, is_current)
SELECT product_id, product_category, product_name, ops.batch_date(),
       coalesce(next_from, old_valid_to), coalesce(next_from, old_valid_to) IS NULL
  FROM changed
 WHERE NOT next_alike;

WITH missing AS (
    SELECT s.product_id, s.product_category, s.product_name, later.product_key AS later_key, later.valid_from AS later_from,
           coalesce((later.product_category, later.product_name) IS NOT DISTINCT FROM (s.product_category, s.product_name), false) AS later_alike
      FROM staging.products s
      LEFT JOIN LATERAL (
            SELECT n.product_key, n.valid_from, n.product_category, n.product_name
              FROM warehouse.dim_product n
             WHERE n.product_id = s.product_id AND n.product_key <> -1 AND n.valid_from > ops.batch_date()
             ORDER BY n.valid_from
             LIMIT 1
           ) later ON true
     WHERE s._batch = ops.batch_date()
       AND NOT EXISTS (
            SELECT 1 FROM warehouse.dim_product d
             WHERE d.product_id = s.product_id AND d.product_key <> -1
               AND d.valid_from <= ops.batch_date()
               AND (d.valid_to IS NULL OR d.valid_to > ops.batch_date())
           )
),
extended AS (
    UPDATE warehouse.dim_product d
       SET valid_from = ops.batch_date()
      FROM missing
     WHERE d.product_key = missing.later_key AND missing.later_alike
)
INSERT INTO warehouse.dim_product (product_id, product_category, product_name, valid_from, valid_to, is_current)
SELECT product_id, product_category, product_name, ops.batch_date(), later_from, later_from IS NULL
  FROM missing
 WHERE NOT later_alike;
