-- model: dim_customer
-- depends_on:
-- Type-2 slowly changing dimension from the batch's customers snapshot (if it has one).
-- The version valid on the batch date is compared with the snapshot: unchanged → nothing;
-- changed → that version is closed on the batch date and a new one opens (a version that
-- starts on the batch date itself is corrected in place, keeping its key); a customer with no
-- version valid on that date gets one, up to the next later version if a later batch ran first.

UPDATE warehouse.dim_customer d
   SET customer_name = s.customer_name, postal_code = s.postal_code
  FROM staging.customers s
 WHERE s._batch = ops.batch_date()
   AND d.customer_id = s.customer_id
   AND d.customer_key <> -1
   AND d.valid_from = ops.batch_date()
   AND (d.customer_name, d.postal_code) IS DISTINCT FROM (s.customer_name, s.postal_code);

WITH changed AS (
    SELECT d.customer_key, d.customer_id, d.valid_to AS old_valid_to, s.customer_name, s.postal_code
      FROM warehouse.dim_customer d
      JOIN staging.customers s ON s.customer_id = d.customer_id AND s._batch = ops.batch_date()
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
)
INSERT INTO warehouse.dim_customer (customer_id, customer_name, postal_code, valid_from, valid_to, is_current)
SELECT customer_id, customer_name, postal_code, ops.batch_date(), old_valid_to, old_valid_to IS NULL
  FROM changed;

INSERT INTO warehouse.dim_customer (customer_id, customer_name, postal_code, valid_from, valid_to, is_current)
SELECT s.customer_id, s.customer_name, s.postal_code, ops.batch_date(), later.valid_from, later.valid_from IS NULL
  FROM staging.customers s
  LEFT JOIN LATERAL (
        SELECT min(n.valid_from) AS valid_from
          FROM warehouse.dim_customer n
         WHERE n.customer_id = s.customer_id AND n.valid_from > ops.batch_date()
       ) later ON true
 WHERE s._batch = ops.batch_date()
   AND NOT EXISTS (
        SELECT 1 FROM warehouse.dim_customer d
         WHERE d.customer_id = s.customer_id AND d.customer_key <> -1
           AND d.valid_from <= ops.batch_date()
           AND (d.valid_to IS NULL OR d.valid_to > ops.batch_date())
       );
