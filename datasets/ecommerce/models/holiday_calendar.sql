-- model: holiday_calendar
-- depends_on:
-- Every staged calendar is kept as a version named by the batch date it landed under, and a
-- re-delivered calendar replaces its version. Calendars are small (tens of rows per batch
-- kept in staging), so all staged ones are written again each run; a version whose staged
-- rows were dropped by the retention policy stays as it was. A report as of D reads the
-- version that applied on D: warehouse.holiday_calendar_as_of(D), the newest one landed at or
-- before D (before the first, the first; datasets/ecommerce/migrations).
DELETE FROM warehouse.holiday_calendar_days
 WHERE calendar_batch IN (SELECT DISTINCT _batch FROM staging.holidays);

INSERT INTO warehouse.holiday_calendar_days (calendar_batch, holiday_date, name)
SELECT _batch, holiday_date, name FROM staging.holidays;

INSERT INTO warehouse.holiday_calendars (calendar_batch)
SELECT DISTINCT _batch FROM staging.holidays
ON CONFLICT (calendar_batch) DO NOTHING;
