-- model: agg_shipments
-- depends_on: fact_shipments
-- Over the batch's shipments joined to their orders:
--   late:        shipped 6 or more days after the order, and not delivered;
--   undelivered: never shipped, not delivered, and the order is at least 15 days old on the
--                batch date (the 15 days are added to the order date, not to the batch date).
INSERT INTO analytics.agg_shipments AS a (ingestion_date, tt_late_shipments, tt_undelivered_shipments)
SELECT ops.batch_date(),
       count(*) FILTER (WHERE s.shipment_date >= o.order_date + 6 AND s.delivery_date IS NULL),
       count(*) FILTER (WHERE s.shipment_date IS NULL AND s.delivery_date IS NULL
                          AND o.order_date + 15 <= ops.batch_date())
  FROM staging.shipment_deliveries s
  JOIN staging.orders o ON o.order_id = s.order_id AND o._batch = ops.batch_date()
 WHERE s._batch = ops.batch_date()
ON CONFLICT (ingestion_date) DO UPDATE
   SET tt_late_shipments = EXCLUDED.tt_late_shipments,
       tt_undelivered_shipments = EXCLUDED.tt_undelivered_shipments;
