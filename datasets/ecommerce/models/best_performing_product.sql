-- model: best_performing_product
-- depends_on: holiday_calendar, dim_product, fact_reviews, fact_orders
-- The product with the most (non-empty) reviews in the batch; ties → more review points, then
-- the lower product_id. Its most ordered day (ties → larger quantity, then the earlier date)
-- and whether that is a public holiday; its star shares; the share of its shipments that are
-- late (shipped ≥ 6 days after the order and not delivered) and the rest early. Reviews,
-- orders and shipments are counted separately, never joined to each other (no fan-out).
-- Without any review the row is still written, with NULLs. As of the batch date D: the
-- product's name is its dimension version valid on D, and "public holiday" follows the calendar
-- that applied on D, so a re-run of an old batch after later renames gives the old name.
-- Written to audit.* and published by the quality checker once the batch's checks pass.
-- (`(SELECT ops.batch_date())` is evaluated once per statement, not once per row, and lets the
-- BRIN index on staging `_batch` work.)
-- The reviews come from counted.reviews: each distinct (review, product) of the batch once,
-- with `_count`, the number of its lines (a few thousand rows instead of millions).
WITH per_product AS (
    SELECT product_id,
           sum(_count) AS reviews,
           sum(review * _count) AS points,
           coalesce(sum(_count) FILTER (WHERE review = 1), 0) AS one_star,
           coalesce(sum(_count) FILTER (WHERE review = 2), 0) AS two_star,
           coalesce(sum(_count) FILTER (WHERE review = 3), 0) AS three_star,
           coalesce(sum(_count) FILTER (WHERE review = 4), 0) AS four_star,
           coalesce(sum(_count) FILTER (WHERE review = 5), 0) AS five_star
      FROM counted.reviews
     WHERE _batch = (SELECT ops.batch_date()) AND review IS NOT NULL
     GROUP BY product_id
),
best AS (
    SELECT * FROM per_product ORDER BY reviews DESC, points DESC, product_id ASC LIMIT 1
),
best_orders AS (
    SELECT o.order_id, o.order_date, o.quantity
      FROM staging.orders o JOIN best ON best.product_id = o.product_id
     WHERE o._batch = (SELECT ops.batch_date())
),
busiest_day AS (
    SELECT order_date FROM best_orders
     GROUP BY order_date
     ORDER BY count(*) DESC, sum(quantity) DESC, order_date ASC
     LIMIT 1
),
shipments AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE s.shipment_date >= o.order_date + 6 AND s.delivery_date IS NULL) AS late
      FROM staging.shipment_deliveries s
      JOIN best_orders o ON o.order_id = s.order_id
     WHERE s._batch = (SELECT ops.batch_date())
)
INSERT INTO audit.best_performing_product AS b (
    ingestion_date, product_name, most_ordered_day, is_public_holiday, tt_review_points,
    pct_one_star_review, pct_two_star_review, pct_three_star_review, pct_four_star_review, pct_five_star_review,
    pct_early_shipments, pct_late_shipments)
SELECT ops.batch_date(),
       p.product_name,
       busiest_day.order_date,
       CASE WHEN busiest_day.order_date IS NULL THEN NULL
            ELSE extract(isodow FROM busiest_day.order_date) <= 5
                 AND EXISTS (SELECT 1 FROM warehouse.holiday_calendar_days c
                              WHERE c.calendar_batch = warehouse.holiday_calendar_as_of(ops.batch_date())
                                AND c.holiday_date = busiest_day.order_date) END,
       best.points,
       round(100.0 * best.one_star / best.reviews, 2),
       round(100.0 * best.two_star / best.reviews, 2),
       round(100.0 * best.three_star / best.reviews, 2),
       round(100.0 * best.four_star / best.reviews, 2),
       round(100.0 * best.five_star / best.reviews, 2),
       CASE WHEN best.product_id IS NULL THEN NULL
            WHEN shipments.total = 0 THEN 0
            ELSE 100 - round(100.0 * shipments.late / shipments.total, 2) END,
       CASE WHEN best.product_id IS NULL THEN NULL
            WHEN shipments.total = 0 THEN 0
            ELSE round(100.0 * shipments.late / shipments.total, 2) END
  FROM (SELECT 1) AS one_row
  LEFT JOIN best ON true
  LEFT JOIN busiest_day ON true
  CROSS JOIN shipments
  LEFT JOIN warehouse.dim_product p
         ON p.product_id = best.product_id AND p.product_key <> -1
        AND p.valid_from <= ops.batch_date() AND (p.valid_to IS NULL OR p.valid_to > ops.batch_date())
ON CONFLICT (ingestion_date) DO UPDATE
   SET product_name = EXCLUDED.product_name, most_ordered_day = EXCLUDED.most_ordered_day,
       is_public_holiday = EXCLUDED.is_public_holiday, tt_review_points = EXCLUDED.tt_review_points,
       pct_one_star_review = EXCLUDED.pct_one_star_review, pct_two_star_review = EXCLUDED.pct_two_star_review,
       pct_three_star_review = EXCLUDED.pct_three_star_review, pct_four_star_review = EXCLUDED.pct_four_star_review,
       pct_five_star_review = EXCLUDED.pct_five_star_review,
       pct_early_shipments = EXCLUDED.pct_early_shipments, pct_late_shipments = EXCLUDED.pct_late_shipments;
