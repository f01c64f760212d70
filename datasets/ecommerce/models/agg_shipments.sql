-- model: agg_shipments
-- depends_on: fact_shipments
-- Over the batch's shipments joined to their orders:
--   late:        shipped 6 or more days after the order, and not delivered;
--   undelivered: never shipped, not delivered, and the order is at least 15 days old on the
--                batch date (the 15 days are added to the order date, not to the batch date).
-- (`(SELECT ops.batch_date())` is evaluated once per statement, not once per row.) This join
-- measured faster with the default work_mem (its hash built in cache-sized batches) than with
-- the 256MB fact_orders and fact_shipments set for themselves: 0.9 s against 1.5 s of CPU for
-- 2M shipments. Every model starts from the session's default settings, so it gets the default.

INSERT INTO audit.agg_shipments AS a (ingestion_date, tt_late_shipments, tt_undelivered_shipments)
SELECT ops.batch_date(),
       count(*) FILTER (WHERE s.shipment_date >= o.order_date + 6 AND s.delivery_date IS NULL),
       count(*) FILTER (WHERE s.shipment_date IS NULL AND s.delivery_date IS NULL
                          AND o.order_date + 15 <= b.batch_date)
  FROM (SELECT (SELECT ops.batch_date()) AS batch_date) AS b
  JOIN staging.shipment_deliveries s ON s._batch = b.batch_date
  JOIN staging.orders o ON o.order_id = s.order_id AND o._batch = b.batch_date
 -- Both counts are of shipments not delivered: only those are joined with their orders
 -- (about a tenth of them in the demo; 443-533 ms -> 281-287 ms on a 1M-order batch).
 WHERE s.delivery_date IS NULL
ON CONFLICT (ingestion_date) DO UPDATE
   SET tt_late_shipments = EXCLUDED.tt_late_shipments,
       tt_undelivered_shipments = EXCLUDED.tt_undelivered_shipments;
