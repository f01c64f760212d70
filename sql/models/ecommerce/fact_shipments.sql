-- model: fact_shipments
-- depends_on: fact_orders
-- Current-state shipments merged by shipment_id, with days to ship (from the order date) and
-- days to deliver (from the shipment date); same batch rules as fact_orders.
INSERT INTO warehouse.fact_shipments AS f (shipment_id, order_id, shipment_date, delivery_date,
                                           days_to_ship, days_to_deliver, last_batch)
SELECT s.shipment_id, s.order_id, s.shipment_date, s.delivery_date,
       s.shipment_date - coalesce(o.order_date, fo.order_date),
       s.delivery_date - s.shipment_date,
       ops.batch_date()
  FROM staging.shipment_deliveries s
  LEFT JOIN staging.orders o ON o.order_id = s.order_id AND o._batch = ops.batch_date()
  LEFT JOIN warehouse.fact_orders fo ON fo.order_id = s.order_id
 WHERE s._batch = ops.batch_date()
ON CONFLICT (shipment_id) DO UPDATE
   SET order_id = EXCLUDED.order_id, shipment_date = EXCLUDED.shipment_date,
       delivery_date = EXCLUDED.delivery_date, days_to_ship = EXCLUDED.days_to_ship,
       days_to_deliver = EXCLUDED.days_to_deliver, last_batch = EXCLUDED.last_batch
 WHERE f.last_batch <= EXCLUDED.last_batch
   AND (f.order_id, f.shipment_date, f.delivery_date, f.days_to_ship, f.days_to_deliver)
       IS DISTINCT FROM
       (EXCLUDED.order_id, EXCLUDED.shipment_date, EXCLUDED.delivery_date, EXCLUDED.days_to_ship, EXCLUDED.days_to_deliver);
