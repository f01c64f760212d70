-- model: dim_product
-- depends_on:
-- Type-2 slowly changing dimension from the batch's products snapshot (if it has one).
-- The version valid on the batch date is compared with the snapshot: unchanged → nothing;
-- changed → that version is closed on the batch date and a new one opens (a version that
-- starts on the batch date itself is corrected in place, keeping its key); a product with no
-- version valid on that date gets one, up to the next later version if a later batch ran first.

UPDATE warehouse.dim_product d
   SET product_category = s.product_category, product_name = s.product_name
  FROM staging.products s
 WHERE s._batch = ops.batch_date()
   AND d.product_id = s.product_id
   AND d.product_key <> -1
   AND d.valid_from = ops.batch_date()
   AND (d.product_category, d.product_name) IS DISTINCT FROM (s.product_category, s.product_name);

WITH changed AS (
    SELECT d.product_key, d.product_id, d.valid_to AS old_valid_to, s.product_category, s.product_name
      FROM warehouse.dim_product d
      JOIN staging.products s ON s.product_id = d.product_id AND s._batch = ops.batch_date()
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
)
INSERT INTO warehouse.dim_product (product_id, product_category, product_name, valid_from, valid_to, is_current)
SELECT product_id, product_category, product_name, ops.batch_date(), old_valid_to, old_valid_to IS NULL
  FROM changed;

INSERT INTO warehouse.dim_product (product_id, product_category, product_name, valid_from, valid_to, is_current)
SELECT s.product_id, s.product_category, s.product_name, ops.batch_date(), later.valid_from, later.valid_from IS NULL
  FROM staging.products s
  LEFT JOIN LATERAL (
        SELECT min(n.valid_from) AS valid_from
          FROM warehouse.dim_product n
         WHERE n.product_id = s.product_id AND n.valid_from > ops.batch_date()
       ) later ON true
 WHERE s._batch = ops.batch_date()
   AND NOT EXISTS (
        SELECT 1 FROM warehouse.dim_product d
         WHERE d.product_id = s.product_id AND d.product_key <> -1
           AND d.valid_from <= ops.batch_date()
           AND (d.valid_to IS NULL OR d.valid_to > ops.batch_date())
       );
