-- model: top_products_by_revenue
-- depends_on: dim_product, fact_orders
-- The 10 products with the most revenue among the batch's orders (ties → lower product_id),
-- ranked 1..10, with the product's name as of the batch date (its dimension version valid on D).
-- Written to audit.* and published by the quality checker once the batch's checks pass.
-- (`(SELECT ops.batch_date())` is evaluated once per statement, not once per row.)
DELETE FROM audit.top_products_by_revenue WHERE ingestion_date = ops.batch_date();

INSERT INTO audit.top_products_by_revenue (ingestion_date, rank, product_id, product_name, revenue, order_count)
SELECT ops.batch_date(), ranked.rank, ranked.product_id, p.product_name, ranked.revenue, ranked.order_count
  FROM (
        SELECT product_id, sum(total_price) AS revenue, count(*) AS order_count,
               row_number() OVER (ORDER BY sum(total_price) DESC, product_id) AS rank
          FROM staging.orders
         WHERE _batch = (SELECT ops.batch_date())
         GROUP BY product_id
       ) ranked
  LEFT JOIN warehouse.dim_product p
         ON p.product_id = ranked.product_id AND p.product_key <> -1
        AND p.valid_from <= ops.batch_date() AND (p.valid_to IS NULL OR p.valid_to > ops.batch_date())
 WHERE ranked.rank <= 10;
