-- model: fact_shipments
-- depends_on:
-- Current-state shipments merged by shipment_id, with days to ship (from the order date) and
-- days to deliver (from the shipment date); same batch rules as fact_orders (a late batch
-- overwrites neither a newer fact nor a shipment a newer staged day holds).
--
-- Performance: the batch's shipments equal to their fact (days to ship included) are left
-- out before the MERGE, as in fact_orders.sql, and one MERGE instead of INSERT … ON CONFLICT
-- (see there). Every staged shipment is still joined to its staged order for its days to
-- ship: what this model spends on a day that changed little (docs/PERFORMANCE.md). The order
-- date comes from the batch's own orders; only a shipment whose order is not among them looks its
-- order up in warehouse.fact_orders (a primary-key probe), instead of joining every fact order.
-- work_mem as in fact_orders.sql.
--
-- No dependency on fact_orders, so the two facts are built at the same time: the only fact
-- orders read are those of orders that are not in the batch, which this batch's fact_orders
-- does not touch (it merges exactly the batch's staged orders), so they are the same rows
-- before, during and after it runs.
--
-- JIT without LLVM's optimizing and inlining passes: PostgreSQL compiles this MERGE's
-- expressions when the first one runs, and with the passes that took 0.5-0.6 s (EXPLAIN
-- ANALYZE shows it inside the first node to evaluate an expression, here the staged
-- shipments' BRIN index scan; PostgreSQL 15 prints no JIT summary for MERGE). Day 2 of 1M
-- orders, the model alone (rolled back, six alternating runs): 2.30-2.95 s with them,
-- 1.98-2.43 s without; a first load of 1M shipments took about as long either way.
SET LOCAL jit_optimize_above_cost = -1;
SET LOCAL jit_inline_above_cost = -1;
SET LOCAL work_mem = '256MB';
-- No nested loops, as in fact_orders.sql (statistics that say the facts are empty).
SET LOCAL enable_nestloop = off;

MERGE INTO warehouse.fact_shipments AS f
USING (
    SELECT c.* FROM (
        SELECT s.shipment_id, s.order_id, s.shipment_date, s.delivery_date,
               s.shipment_date - coalesce(o.order_date,
                                          (SELECT fo.order_date FROM warehouse.fact_orders fo
                                            WHERE fo.order_id = s.order_id)) AS days_to_ship,
               s.delivery_date - s.shipment_date AS days_to_deliver,
               b.batch_date AS last_batch
          FROM (SELECT (SELECT ops.batch_date()) AS batch_date) AS b
          JOIN staging.shipment_deliveries s ON s._batch = b.batch_date
          LEFT JOIN staging.orders o ON o.order_id = s.order_id AND o._batch = b.batch_date
    ) AS c
    -- Only the shipments that are new or differ from their fact (days to ship included, so a
    -- corrected order date counts): the rest would change nothing, and leaving them out here
    -- spares the MERGE's visit of every unchanged fact.
     WHERE NOT EXISTS (
           SELECT 1 FROM warehouse.fact_shipments f
            WHERE f.shipment_id = c.shipment_id
              AND (f.order_id, f.shipment_date, f.delivery_date, f.days_to_ship, f.days_to_deliver)
                  IS NOT DISTINCT FROM
                  (c.order_id, c.shipment_date, c.delivery_date, c.days_to_ship, c.days_to_deliver))
       -- A late batch leaves alone every shipment a newer staged day holds, as in
       -- fact_orders.sql.
       AND (NOT (SELECT EXISTS (SELECT 1 FROM ops.staged_sources
                                 WHERE dataset = 'ecommerce' AND source = 'shipment_deliveries'
                                   AND ingestion_date > (SELECT ops.batch_date())))
            OR c.shipment_id NOT IN (SELECT DISTINCT n.shipment_id
                                      FROM staging.shipment_deliveries n
                                      WHERE n._batch > (SELECT ops.batch_date())))
) AS s
   ON f.shipment_id = s.shipment_id
 WHEN MATCHED
      AND f.last_batch <= s.last_batch
      AND (f.order_id, f.shipment_date, f.delivery_date, f.days_to_ship, f.days_to_deliver)
          IS DISTINCT FROM
          (s.order_id, s.shipment_date, s.delivery_date, s.days_to_ship, s.days_to_deliver) THEN
    UPDATE SET order_id = s.order_id, shipment_date = s.shipment_date,
               delivery_date = s.delivery_date, days_to_ship = s.days_to_ship,
               days_to_deliver = s.days_to_deliver, last_batch = s.last_batch
 WHEN NOT MATCHED THEN
    INSERT (shipment_id, order_id, shipment_date, delivery_date, days_to_ship, days_to_deliver, last_batch)
    VALUES (s.shipment_id, s.order_id, s.shipment_date, s.delivery_date,
            s.days_to_ship, s.days_to_deliver, s.last_batch);
