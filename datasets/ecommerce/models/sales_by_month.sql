-- model: sales_by_month
-- depends_on: fact_orders
-- Revenue and order count of the batch's orders per calendar month, for the 12 calendar months
-- ending with the batch date's month (orders after the batch date excluded); months without
-- orders are reported as 0.
-- (The batch's orders are summed per month first, in one pass, then joined to the 12 months;
-- `(SELECT ops.batch_date())` is evaluated once per statement, not once per row.)
DELETE FROM audit.sales_by_month WHERE ingestion_date = ops.batch_date();

INSERT INTO audit.sales_by_month (ingestion_date, month, revenue, order_count)
SELECT ops.batch_date(), m.month::date, coalesce(o.revenue, 0), coalesce(o.order_count, 0)
  FROM generate_series(date_trunc('month', ops.batch_date()) - interval '11 months',
                       date_trunc('month', ops.batch_date()), interval '1 month') AS m (month)
  LEFT JOIN (
        SELECT date_trunc('month', order_date) AS month,
               sum(total_price) AS revenue,
               count(order_id) AS order_count
          FROM staging.orders
         WHERE _batch = (SELECT ops.batch_date())
           AND order_date <= (SELECT ops.batch_date())
         GROUP BY date_trunc('month', order_date)
       ) AS o ON o.month = m.month;
