-- The ecommerce facts' dimension keys are checked by the quality checker, not by foreign keys.
--
-- A foreign key is checked row by row by a trigger: for a 1M-order batch the two on
-- warehouse.fact_orders took 9.1 s of the model's 15.0 s (EXPLAIN ANALYZE: "Trigger for
-- constraint fact_orders_customer_key_fkey: time=4648 calls=997956", product_key 4417 ms). The
-- models make every key from a join to the dimension that falls back to the unknown member
-- (-1), so a dangling key would be a bug in a model; the `relationships` checks of severity
-- `error` in sql/models/ecommerce/checks.toml (fact_*_key_exists) look for one in each batch, in
-- one set-based query, and stop the export if they find it — the way warehouse keys are checked
-- in dbt and in warehouses that do not enforce foreign keys.
ALTER TABLE warehouse.fact_orders
    DROP CONSTRAINT IF EXISTS fact_orders_customer_key_fkey,
    DROP CONSTRAINT IF EXISTS fact_orders_product_key_fkey;
ALTER TABLE warehouse.fact_reviews
    DROP CONSTRAINT IF EXISTS fact_reviews_product_key_fkey;
