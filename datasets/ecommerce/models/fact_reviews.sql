-- model: fact_reviews
-- depends_on: dim_product
-- Snapshot mode: the newest batch's reviews replace the previous set, as a multiset (migration
-- 0002). Per product and stars the table holds reviews 1..n; the batch has m of them: a batch
-- with more adds reviews n+1..m, one with fewer deletes m+1..n, and an unchanged count
-- writes nothing. So a day that adds a few reviews to yesterday's thousands writes only those
-- few, and each row remembers the batch that added it. A batch older than the one the table
-- holds (a late correction) leaves the current-state table alone. A new row's product key is
-- the product's dimension version valid on the batch date; an unknown product gets -1.
-- n per product and stars is kept in warehouse.fact_reviews_counts, in the same statement as
-- the rows, so a day reads the batch's counts (counted.reviews, thousands of rows) and those,
-- and scans the table only to delete withdrawn reviews.
-- (`(SELECT ops.batch_date())` is evaluated once per statement, not once per row.)
-- A larger work_mem, as in fact_orders.sql, for the planner's sake: it takes generate_series
-- for 1,000 rows per product and stars, so with the default 4MB it expects the withdrawn
-- reviews' hash not to fit and writes the whole table's scan out to temporary files in
-- batches (about 100 MB on a day of 1M orders with 3 reviews each) to delete a few hundred
-- rows. The hash it builds is as small as the list. Day 2 of `bench steady`, this model alone
-- (rolled back): 1.45-2.04 s with the default, 0.51-0.90 s with 64MB or 256MB.
SET LOCAL work_mem = '256MB';

WITH newest AS (
    SELECT coalesce((SELECT batch FROM warehouse.fact_reviews_batch) <= (SELECT ops.batch_date()),
                    true) AS yes
),
-- The batch's reviews per product and stars: counted.reviews holds each distinct review once
-- with the number of lines that have it (the stager counts them), a few thousand rows.
batch AS (
    SELECT product_id, coalesce(review, 0)::smallint AS stars, max(review) AS review, sum(_count)::int AS n
      FROM counted.reviews
     WHERE _batch = (SELECT ops.batch_date())
     GROUP BY 1, 2
),
-- What the table holds per product and stars (warehouse.fact_reviews_counts, kept below).
current AS (
    SELECT product_id, stars, reviews AS n FROM warehouse.fact_reviews_counts
),
-- Per product and stars, how many the table has and how many the batch has, where they differ.
diff AS (
    SELECT product_id, stars, b.review, coalesce(c.n, 0) AS has, coalesce(b.n, 0) AS wants
      FROM current c FULL JOIN batch b USING (product_id, stars)
     WHERE coalesce(c.n, 0) <> coalesce(b.n, 0)
),
-- Reviews withdrawn: the highest ordinals of each product and stars that has fewer now, listed
-- one by one so the table is scanned once against that short list (a join on the groups made
-- the planner hash all of the table's rows instead).
shrinking AS MATERIALIZED (
    SELECT d.product_id, d.stars, d.wants, d.has FROM diff d, newest WHERE newest.yes AND d.has > d.wants
),
deleted AS (
    DELETE FROM warehouse.fact_reviews f
     WHERE (f.product_id, f.stars, f.ordinal) IN (
           SELECT s.product_id, s.stars, gone
             FROM shrinking s, generate_series(s.wants + 1, s.has) AS gone)
),
-- The counts kept: a product and stars the batch has none of goes, the others take the batch's.
uncounted AS (
    DELETE FROM warehouse.fact_reviews_counts c
     USING diff d, newest
     WHERE newest.yes AND d.wants = 0 AND c.product_id = d.product_id AND c.stars = d.stars
),
counted AS (
    INSERT INTO warehouse.fact_reviews_counts AS c (product_id, stars, reviews)
    SELECT d.product_id, d.stars, d.wants FROM diff d, newest WHERE newest.yes AND d.wants > 0
    ON CONFLICT (product_id, stars) DO UPDATE SET reviews = EXCLUDED.reviews
),
recorded AS (
    INSERT INTO warehouse.fact_reviews_batch (batch)
    SELECT (SELECT ops.batch_date()) FROM newest WHERE newest.yes
    ON CONFLICT (only_row) DO UPDATE SET batch = EXCLUDED.batch
)
INSERT INTO warehouse.fact_reviews (last_batch, ordinal, product_key, product_id, review, stars)
SELECT b.batch_date, ordinal, coalesce(p.product_key, -1), d.product_id, d.review, d.stars
  FROM newest
  CROSS JOIN (SELECT (SELECT ops.batch_date()) AS batch_date) AS b
  JOIN diff d ON d.wants > d.has
  CROSS JOIN LATERAL generate_series(d.has + 1, d.wants) AS ordinal
  LEFT JOIN warehouse.dim_product p
         ON p.product_id = d.product_id AND p.product_key <> -1
        AND p.valid_from <= b.batch_date AND (p.valid_to IS NULL OR p.valid_to > b.batch_date)
 WHERE newest.yes;
