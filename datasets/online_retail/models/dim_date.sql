-- model: dim_date
-- depends_on:
-- One row per day of the whole years of the batch's earliest and latest invoice (and of the
-- batch date). Days are only ever added: re-running a batch changes nothing.
SELECT pg_advisory_xact_lock(hashtext('landfall.online_retail'));

WITH referenced AS (
    SELECT invoice_date::date AS day FROM staging.retail_transactions WHERE _batch = ops.batch_date()
    UNION ALL SELECT ops.batch_date()
),
bounds AS (
    SELECT make_date(extract(year FROM min(day))::int, 1, 1) AS first_day,
           make_date(extract(year FROM max(day))::int, 12, 31) AS last_day
      FROM referenced
),
days AS (
    SELECT g.day::date AS day
      FROM bounds, generate_series(bounds.first_day, bounds.last_day, interval '1 day') AS g (day)
)
INSERT INTO warehouse.retail_dim_date (date_key, calendar_date, year, quarter, month, month_start,
                                       day_of_month, iso_day_of_week, is_weekend)
SELECT to_char(day, 'YYYYMMDD')::int,
       day,
       extract(year FROM day)::int,
       extract(quarter FROM day)::int,
       extract(month FROM day)::int,
       date_trunc('month', day)::date,
       extract(day FROM day)::int,
       extract(isodow FROM day)::int,
       extract(isodow FROM day) >= 6
  FROM days
 WHERE NOT EXISTS (SELECT 1 FROM warehouse.retail_dim_date d WHERE d.calendar_date = days.day)
ON CONFLICT DO NOTHING;
