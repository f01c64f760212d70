-- model: fact_orders
-- depends_on: dim_customer, dim_product, dim_date
-- Current-state orders merged by order_id: new orders inserted, changed ones updated. A row
-- remembers the batch that last changed it, and an older batch re-run later never overwrites
-- a newer one. A new order's customer and product keys are the dimension versions valid on the
-- batch date; an unknown customer or product gets the unknown member (-1), never dropped.
INSERT INTO warehouse.fact_orders AS f (order_id, customer_key, product_key, order_date_key, order_date,
                                        customer_id, product_id, unit_price, quantity, total_price, last_batch)
SELECT o.order_id,
       coalesce(c.customer_key, -1),
       coalesce(p.product_key, -1),
       to_char(o.order_date, 'YYYYMMDD')::int,
       o.order_date, o.customer_id, o.product_id, o.unit_price, o.quantity, o.total_price,
       ops.batch_date()
  FROM staging.orders o
  LEFT JOIN warehouse.dim_customer c
         ON c.customer_id = o.customer_id AND c.customer_key <> -1
        AND c.valid_from <= ops.batch_date() AND (c.valid_to IS NULL OR c.valid_to > ops.batch_date())
  LEFT JOIN warehouse.dim_product p
         ON p.product_id = o.product_id AND p.product_key <> -1
        AND p.valid_from <= ops.batch_date() AND (p.valid_to IS NULL OR p.valid_to > ops.batch_date())
 WHERE o._batch = ops.batch_date()
ON CONFLICT (order_id) DO UPDATE
   -- A fact keeps the dimension version it was first loaded with (the history of day 1 keeps
   -- pointing to day 1's product row) unless it now refers to another customer or product.
   SET customer_key = CASE WHEN f.customer_id = EXCLUDED.customer_id THEN f.customer_key ELSE EXCLUDED.customer_key END,
       product_key = CASE WHEN f.product_id = EXCLUDED.product_id THEN f.product_key ELSE EXCLUDED.product_key END,
       order_date_key = EXCLUDED.order_date_key, order_date = EXCLUDED.order_date,
       customer_id = EXCLUDED.customer_id, product_id = EXCLUDED.product_id,
       unit_price = EXCLUDED.unit_price, quantity = EXCLUDED.quantity,
       total_price = EXCLUDED.total_price, last_batch = EXCLUDED.last_batch
 WHERE f.last_batch <= EXCLUDED.last_batch
   AND (f.order_date, f.customer_id, f.product_id, f.unit_price, f.quantity, f.total_price)
       IS DISTINCT FROM
       (EXCLUDED.order_date, EXCLUDED.customer_id, EXCLUDED.product_id,
        EXCLUDED.unit_price, EXCLUDED.quantity, EXCLUDED.total_price);
