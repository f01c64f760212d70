-- model: dim_customer
-- depends_on:
-- Type-2 slowly changing dimension from the batch's customers snapshot (if it has one).
-- The version valid on the batch date is compared with the snapshot: unchanged → nothing;
-- changed → that version is closed on the batch date and a new one opens (a version that
-- starts on the batch date itself is corrected in place, keeping its key); a customer with no
-- version valid on that date gets one, up to the next later version if a later batch ran
-- first (or that later version, extended back, when it is alike).
--
-- A snapshot speaks for its own date up to the next snapshot: a late correction of batch D
-- changes the customer from D up to the next staged snapshot that holds it (of a batch
-- transformed already: one still to run applies itself), and the days from there keep the
-- attributes they had (the version is split there), so a corrected old batch changes no later
-- batch's reports, and the versions do not depend on the order the batches ran in. (Snapshots
-- dropped by the staging retention policy are not seen: a correction older than those changes
-- the version up to its end.) A customer
-- missing from a later snapshot keeps its last version: deletions are not tracked.

-- The version the batch opened, continued by later snapshots: split at the next one.
WITH split AS (
    SELECT d.customer_key, d.customer_id, d.customer_name, d.postal_code, d.valid_to, later.next_from
      FROM warehouse.dim_customer d
      JOIN staging.customers s ON s.customer_id = d.customer_id AND s._batch = ops.batch_date()
      CROSS JOIN LATERAL (
            SELECT min(l._batch) AS next_from
              FROM staging.customers l
             WHERE l.customer_id = d.customer_id AND l._batch > ops.batch_date()
               AND (d.valid_to IS NULL OR l._batch < d.valid_to)
               AND EXISTS (SELECT 1 FROM ops.batches b
                            WHERE b.dataset = 'ecommerce' AND b.ingestion_date = l._batch
                              AND b.transformed_at IS NOT NULL)
           ) later
     WHERE d.customer_key <> -1
       AND d.valid_from = ops.batch_date()
       AND (d.customer_name, d.postal_code) IS DISTINCT FROM (s.customer_name, s.postal_code)
       AND later.next_from IS NOT NULL
),
shortened AS (
    UPDATE warehouse.dim_customer d
       SET valid_to = split.next_from, is_current = false
      FROM split
     WHERE d.customer_key = split.customer_key
)
INSERT INTO warehouse.dim_customer (customer_id, customer_name, postal_code, valid_from, valid_to, is_current)
SELECT customer_id, customer_name, postal_code, next_from, valid_to, valid_to IS NULL
  FROM split;

UPDATE warehouse.dim_customer d
   SET customer_name = s.customer_name, postal_code = s.postal_code
  FROM staging.customers s
 WHERE s._batch = ops.batch_date()
   AND d.customer_id = s.customer_id
   AND d.customer_key <> -1
   AND d.valid_from = ops.batch_date()
   AND (d.customer_name, d.postal_code) IS DISTINCT FROM (s.customer_name, s.postal_code);

-- A batch that arrives after a later one must leave the dimension as if the batches had come
-- in order: where the new version would equal the version that follows it, that one is
-- extended back to the batch date instead (no two adjacent versions alike). When a later
-- staged snapshot within the old version holds the customer, the new version ends there and
-- the old attributes go on from it (a late correction changes only its own days).
WITH changed AS (
    SELECT d.customer_key, d.customer_id, d.valid_to AS old_valid_to,
           d.customer_name AS old_customer_name, d.postal_code AS old_postal_code,
           s.customer_name, s.postal_code, later.next_from,
           next.customer_key AS next_key,
           later.next_from IS NULL
           AND coalesce((next.customer_name, next.postal_code) IS NOT DISTINCT FROM (s.customer_name, s.postal_code), false) AS next_alike
      FROM warehouse.dim_customer d
      JOIN staging.customers s ON s.customer_id = d.customer_id AND s._batch = ops.batch_date()
      LEFT JOIN warehouse.dim_customer next
             ON next.customer_id = d.customer_id AND next.customer_key <> -1 AND next.valid_from = d.valid_to
      CROSS JOIN LATERAL (
            SELECT min(l._batch) AS next_from
              FROM staging.customers l
             WHERE l.customer_id = d.customer_id AND l._batch > ops.batch_date()
               AND (d.valid_to IS NULL OR l._batch < d.valid_to)
               AND EXISTS (SELECT 1 FROM ops.batches b
                            WHERE b.dataset = 'ecommerce' AND b.ingestion_date = l._batch
                              AND b.transformed_at IS NOT NULL)
           ) later
     WHERE d.customer_key <> -1
       AND d.valid_from < ops.batch_date()
       AND (d.valid_to IS NULL OR d.valid_to > ops.batch_date())
       AND (d.customer_name, d.postal_code) IS DISTINCT FROM (s.customer_name, s.postal_code)
),
closed AS (
    UPDATE warehouse.dim_customer d
       SET valid_to = ops.batch_date(), is_current = false
      FROM changed
     WHERE d.customer_key = changed.customer_key
),
extended AS (
    UPDATE warehouse.dim_customer d
       SET valid_from = ops.batch_date()
      FROM changed
     WHERE d.customer_key = changed.next_key AND changed.next_alike
),
resumed AS (
    INSERT INTO warehouse.dim_customer (customer_id, customer_name, postal_code, valid_from, valid_to, is_current)
    SELECT customer_id, old_customer_name, old_postal_code, next_from, old_valid_to, old_valid_to IS NULL
      FROM changed
     WHERE next_from IS NOT NULL
)
INSERT INTO warehouse.dim_customer (customer_id, customer_name, postal_code, valid_from, valid_to, is_current)
SELECT customer_id, customer_name, postal_code, ops.batch_date(),
       coalesce(next_from, old_valid_to), coalesce(next_from, old_valid_to) IS NULL
  FROM changed
 WHERE NOT next_alike;

WITH missing AS (
    SELECT s.customer_id, s.customer_name, s.postal_code, later.customer_key AS later_key, later.valid_from AS later_from,
           coalesce((later.customer_name, later.postal_code) IS NOT DISTINCT FROM (s.customer_name, s.postal_code), false) AS later_alike
      FROM staging.customers s
      LEFT JOIN LATERAL (
            SELECT n.customer_key, n.valid_from, n.customer_name, n.postal_code
              FROM warehouse.dim_customer n
             WHERE n.customer_id = s.customer_id AND n.customer_key <> -1 AND n.valid_from > ops.batch_date()
             ORDER BY n.valid_from
             LIMIT 1
           ) later ON true
     WHERE s._batch = ops.batch_date()
       AND NOT EXISTS (
            SELECT 1 FROM warehouse.dim_customer d
             WHERE d.customer_id = s.customer_id AND d.customer_key <> -1
               AND d.valid_from <= ops.batch_date()
               AND (d.valid_to IS NULL OR d.valid_to > ops.batch_date())
           )
),
extended AS (
    UPDATE warehouse.dim_customer d
       SET valid_from = ops.batch_date()
      FROM missing
     WHERE d.customer_key = missing.later_key AND missing.later_alike
)
INSERT INTO warehouse.dim_customer (customer_id, customer_name, postal_code, valid_from, valid_to, is_current)
SELECT customer_id, customer_name, postal_code, ops.batch_date(), later_from, later_from IS NULL
  FROM missing
 WHERE NOT later_alike;
