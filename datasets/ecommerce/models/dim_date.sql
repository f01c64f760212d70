-- model: dim_date
-- depends_on: holiday_calendar
-- One row per day covering every date the data refers to: the whole years of the earliest and
-- latest order, shipment, delivery and holiday (and the batch date). A public holiday is a
-- weekday listed in the calendar. This is the current state: the flags follow the newest
-- calendar of all (holiday_calendar keeps every version). A report as of a batch date reads the
-- calendar that applied on that date instead (warehouse.holiday_calendar_as_of).

WITH calendar AS (
    SELECT holiday_date, name
      FROM warehouse.holiday_calendar_days
     WHERE calendar_batch = (SELECT max(calendar_batch) FROM warehouse.holiday_calendars)
),
-- Each table's earliest and latest date in one pass over it (min and max ignore NULLs, and so
-- do least and greatest unless every argument is NULL). The batch's own rows only: every
-- batch's transform runs this model, so the dates of earlier batches are in already (reading
-- every retained batch made this model scan seven days of orders and shipments to add none).
referenced AS (
    SELECT min(order_date) AS first_seen, max(order_date) AS last_seen
      FROM staging.orders WHERE _batch = (SELECT ops.batch_date())
    UNION ALL
    SELECT least(min(shipment_date), min(delivery_date)), greatest(max(shipment_date), max(delivery_date))
      FROM staging.shipment_deliveries WHERE _batch = (SELECT ops.batch_date())
    UNION ALL SELECT min(holiday_date), max(holiday_date) FROM calendar
    UNION ALL SELECT ops.batch_date(), ops.batch_date()
),
bounds AS (
    SELECT make_date(extract(year FROM min(first_seen))::int, 1, 1) AS first_day,
           make_date(extract(year FROM max(last_seen))::int, 12, 31) AS last_day
      FROM referenced
),
days AS (
    SELECT g.day::date AS day
      FROM bounds, generate_series(bounds.first_day, bounds.last_day, interval '1 day') AS g (day)
)
INSERT INTO warehouse.dim_date AS d (date_key, calendar_date, year, quarter, month, day_of_month,
                                     iso_day_of_week, is_weekend, is_public_holiday, holiday_name, working_day)
SELECT to_char(days.day, 'YYYYMMDD')::int,
       days.day,
       extract(year FROM days.day)::int,
       extract(quarter FROM days.day)::int,
       extract(month FROM days.day)::int,
       extract(day FROM days.day)::int,
       extract(isodow FROM days.day)::int,
       extract(isodow FROM days.day) >= 6,
       extract(isodow FROM days.day) <= 5 AND calendar.holiday_date IS NOT NULL,
       calendar.name,
       extract(isodow FROM days.day) <= 5 AND calendar.holiday_date IS NULL
  FROM days
  LEFT JOIN calendar ON calendar.holiday_date = days.day
ON CONFLICT (date_key) DO UPDATE
   SET is_public_holiday = EXCLUDED.is_public_holiday,
       holiday_name = EXCLUDED.holiday_name,
       working_day = EXCLUDED.working_day
 WHERE (d.is_public_holiday, d.holiday_name, d.working_day)
       IS DISTINCT FROM (EXCLUDED.is_public_holiday, EXCLUDED.holiday_name, EXCLUDED.working_day)
   -- Without any calendar the flags already known are kept.
   AND EXISTS (SELECT 1 FROM warehouse.holiday_calendars);
