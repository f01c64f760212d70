-- model: dim_customer
-- depends_on:
-- Type-2 slowly changing dimension from the batch's customers snapshot (if it has one).
-- The version valid on the batch date is compared with the snapshot: unchanged → nothing;
-- changed → that version is closed on the batch date and a new one opens (a version that
-- starts on the batch date itself is corrected in place, keeping its key); a customer with no
-- version valid on that date gets one, up to the next later version if a later batch ran first (or that later version, extended back,
-- when it is alike).

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
-- extended back to the batch date instead (no two adjacent versions alike).
WITH changed AS (
    SELECT d.customer_key, d.customer_id, d.valid_to AS old_valid_to, s.customer_name, s.postal_code,
           next.customer_key AS next_key,
           coalesce((next.customer_name, next.postal_code) IS NOT DISTINCT FROM (s.customer_name, s.postal_code), false) AS next_alike
      FROM warehouse.dim_customer d
      JOIN staging.customers s ON s.customer_id = d.customer_id AND s._batch = ops.batch_date()
      LEFT JOIN warehouse.dim_customer next
             ON next.customer_id = d.customer_id AND next.customer_key <> -1 AND next.valid_from = d.valid_to
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
)
INSERT INTO warehouse.dim_customer (customer_id, customer_name, postal_code, valid_from, valid_to, is_current)
SELECT customer_id, customer_name, postal_code, ops.batch_date(), old_valid_to, old_valid_to IS NULL
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
