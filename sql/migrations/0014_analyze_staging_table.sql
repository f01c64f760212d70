-- ANALYZE of one staging table, so the transformer can analyze the staging tables side by side
-- on its models' connections (the largest first) instead of one after another in
-- ops.analyze_staging(): about 0.24 s -> 0.1 s before the models of a 1M-order batch start,
-- with the second core otherwise idle (docs/PERFORMANCE.md).
--
-- As ops.analyze_staging() (0010, 0013): SECURITY DEFINER with a fixed search_path, because
-- ANALYZE needs the table's owner; only a table of the staging_rows schema is analyzed. A name
-- that is not one returns false and analyzes nothing.
CREATE FUNCTION ops.analyze_staging_table(table_name text) RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'staging_rows' AND c.relname = table_name AND c.relkind IN ('r', 'p')
    ) THEN
        RETURN false;
    END IF;
    EXECUTE format('ANALYZE staging_rows.%I', table_name);
    RETURN true;
END;
$$;

REVOKE ALL ON FUNCTION ops.analyze_staging_table(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.analyze_staging_table(text) TO landfall_transformer;
