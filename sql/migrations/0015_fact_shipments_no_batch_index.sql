-- warehouse.fact_shipments loses its BRIN index on last_batch (0012): no model, check or export
-- reads the shipment facts by batch, and on PostgreSQL 15 every row the MERGE writes cost the
-- index two buffer lookups (about 0.15 s of the 1M-shipment batch's fact_shipments, the longest
-- model of the transform; docs/PERFORMANCE.md). fact_orders keeps its own: the checks of its
-- dimension keys read a batch's orders through it.
DROP INDEX IF EXISTS warehouse.fact_shipments_batch_brin;
