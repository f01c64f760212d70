-- model: fact_reviews
-- depends_on: dim_product
-- Snapshot mode: the newest batch's set of reviews replaces the previous set. A batch older
-- than the newest one loaded (a late correction) leaves the current-state table alone.
-- (`(SELECT ops.batch_date())` is evaluated once per statement, not once per row.)
DELETE FROM warehouse.fact_reviews
 WHERE (SELECT coalesce(max(last_batch), DATE '1900-01-01') FROM warehouse.fact_reviews) <= (SELECT ops.batch_date());

INSERT INTO warehouse.fact_reviews (last_batch, source_line, product_key, product_id, review)
SELECT b.batch_date, r._line, coalesce(p.product_key, -1), r.product_id, r.review
  FROM (SELECT (SELECT ops.batch_date()) AS batch_date) AS b
  JOIN staging.reviews r ON r._batch = b.batch_date
  LEFT JOIN warehouse.dim_product p
         ON p.product_id = r.product_id AND p.product_key <> -1
        AND p.valid_from <= b.batch_date AND (p.valid_to IS NULL OR p.valid_to > b.batch_date)
 WHERE NOT EXISTS (SELECT 1 FROM warehouse.fact_reviews f WHERE f.last_batch > (SELECT ops.batch_date()));
