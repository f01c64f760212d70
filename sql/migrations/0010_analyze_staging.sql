-- Fresh planner statistics for the staging tables before a transform.
--
-- A file is COPYed into staging and transformed a moment later, long before autovacuum's
-- ANALYZE comes by. With the statistics of the empty table the planner expects a handful of
-- rows per batch and picks nested loops: the fault harness saw one quality check of a
-- 20,000-row batch take 23 s (a hash join: milliseconds). The transformer calls this at the
-- start of every transform.
--
-- ANALYZE needs the table's owner, which the services' roles are not (0008): the function runs
-- as its owner (SECURITY DEFINER, with a fixed search_path) and analyzes the tables of the
-- staging schema only. Every one, not only those pg_stat_user_tables shows as changed: those
-- counters reach the statistics system up to a second after the COPY committed, and the
-- transform usually starts sooner. (About 0.1-0.3 s for a few 10,000-row tables: ANALYZE reads
-- a sample of at most 30,000 rows per table.)
CREATE FUNCTION ops.analyze_staging() RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    stale record;
    analyzed integer := 0;
BEGIN
    FOR stale IN
        SELECT c.relname
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'staging' AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('ANALYZE staging.%I', stale.relname);
        analyzed := analyzed + 1;
    END LOOP;
    RETURN analyzed;
END;
$$;

REVOKE ALL ON FUNCTION ops.analyze_staging() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.analyze_staging() TO landfall_transformer;
