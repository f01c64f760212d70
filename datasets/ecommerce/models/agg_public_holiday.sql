-- model: agg_public_holiday
-- depends_on: holiday_calendar
-- Per month, the batch's orders placed on a public holiday within the year before the batch
-- date: D − 1 year < order_date ≤ D (not every year of history pooled). A public holiday is a
-- weekday of the calendar that applied on D (its newest version at or before D, which holiday_calendar
-- keeps), so a later calendar never changes an earlier batch's report. One row per batch,
-- replaced when the batch re-runs; other batches' rows are kept. Written to audit.* and
-- published to analytics.* by the quality checker once the batch's checks pass.
-- (`(SELECT ops.batch_date())` is evaluated once per statement, not once per row, and lets the
-- BRIN index on staging `_batch` work.)
INSERT INTO audit.agg_public_holiday AS a (
    ingestion_date,
    tt_order_hol_jan, tt_order_hol_feb, tt_order_hol_mar, tt_order_hol_apr,
    tt_order_hol_may, tt_order_hol_jun, tt_order_hol_jul, tt_order_hol_aug,
    tt_order_hol_sep, tt_order_hol_oct, tt_order_hol_nov, tt_order_hol_dec)
SELECT ops.batch_date(),
       count(*) FILTER (WHERE h.month = 1),  count(*) FILTER (WHERE h.month = 2),
       count(*) FILTER (WHERE h.month = 3),  count(*) FILTER (WHERE h.month = 4),
       count(*) FILTER (WHERE h.month = 5),  count(*) FILTER (WHERE h.month = 6),
       count(*) FILTER (WHERE h.month = 7),  count(*) FILTER (WHERE h.month = 8),
       count(*) FILTER (WHERE h.month = 9),  count(*) FILTER (WHERE h.month = 10),
       count(*) FILTER (WHERE h.month = 11), count(*) FILTER (WHERE h.month = 12)
  FROM (SELECT (SELECT ops.batch_date()) AS batch_date) AS b
  JOIN staging.orders o ON o._batch = b.batch_date
  -- The weekday holidays of the calendar as of D (a few dozen rows: a hash probe per order).
  JOIN (SELECT c.holiday_date, extract(month FROM c.holiday_date)::int AS month
          FROM warehouse.holiday_calendar_days c
         WHERE c.calendar_batch = (SELECT warehouse.holiday_calendar_as_of(ops.batch_date()))
           AND extract(isodow FROM c.holiday_date) <= 5) AS h
    ON h.holiday_date = o.order_date
 WHERE o.order_date > (b.batch_date - interval '1 year')::date
   AND o.order_date <= b.batch_date
ON CONFLICT (ingestion_date) DO UPDATE
   SET tt_order_hol_jan = EXCLUDED.tt_order_hol_jan, tt_order_hol_feb = EXCLUDED.tt_order_hol_feb,
       tt_order_hol_mar = EXCLUDED.tt_order_hol_mar, tt_order_hol_apr = EXCLUDED.tt_order_hol_apr,
       tt_order_hol_may = EXCLUDED.tt_order_hol_may, tt_order_hol_jun = EXCLUDED.tt_order_hol_jun,
       tt_order_hol_jul = EXCLUDED.tt_order_hol_jul, tt_order_hol_aug = EXCLUDED.tt_order_hol_aug,
       tt_order_hol_sep = EXCLUDED.tt_order_hol_sep, tt_order_hol_oct = EXCLUDED.tt_order_hol_oct,
       tt_order_hol_nov = EXCLUDED.tt_order_hol_nov, tt_order_hol_dec = EXCLUDED.tt_order_hol_dec;
