-- The ecommerce facts' `last_batch` indexes: BRIN instead of b-tree, and none on fact_reviews.
--
-- A batch's new fact rows are appended together at the end of the table, like a batch's rows
-- in staging (which has BRIN indexes on `_batch` for the same reason, see
-- shared/runtime/src/datasets.rs), and the only readers by `last_batch` are the quality checks
-- of that batch, which read about a whole batch. The b-trees cost one index insert (and its WAL
-- record) per fact row written: on a 1M-order batch about 0.2 s each of fact_orders' and
-- fact_shipments' time (docs/PERFORMANCE.md); a block-range index costs almost nothing on
-- write and still lets those checks skip the pages of older batches.
--
-- warehouse.fact_reviews needs no index of its own: its primary key (last_batch, source_line)
-- starts with last_batch and answers the same lookups (the snapshot's newest batch, a batch's
-- reviews).
DROP INDEX IF EXISTS warehouse.fact_orders_batch_idx;
CREATE INDEX fact_orders_batch_brin ON warehouse.fact_orders USING brin (last_batch);

DROP INDEX IF EXISTS warehouse.fact_shipments_batch_idx;
CREATE INDEX fact_shipments_batch_brin ON warehouse.fact_shipments USING brin (last_batch);

DROP INDEX IF EXISTS warehouse.fact_reviews_batch_idx;
