-- model: sales_by_month
-- depends_on: fact_orders
-- Revenue and order count of the batch's orders per calendar month, for the 12 calendar months
-- ending with the batch date's month (orders after the batch date excluded); months without
-- orders are reported as 0.
DELETE FROM analytics.sales_by_month WHERE ingestion_date = ops.batch_date();

INSERT INTO analytics.sales_by_month (ingestion_date, month, revenue, order_count)
SELECT ops.batch_date(), m.month::date, coalesce(sum(o.total_price), 0), count(o.order_id)
  FROM generate_series(date_trunc('month', ops.batch_date()) - interval '11 months',
                       date_trunc('month', ops.batch_date()), interval '1 month') AS m (month)
  LEFT JOIN staging.orders o
         ON o._batch = ops.batch_date()
        AND date_trunc('month', o.order_date) = m.month
        AND o.order_date <= ops.batch_date()
 GROUP BY m.month;
