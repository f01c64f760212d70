-- ops.analyze_staging_table() also summarizes the new page ranges of the table's BRIN indexes.
--
-- Why: the models and checks find a batch's staged rows through the BRIN index on `_batch`.
-- A page range that no summary covers yet matches every batch, and PostgreSQL summarizes new
-- ranges only when (auto)vacuum gets to the table. A batch that follows another within minutes
-- (the next day of a backfill, a late correction, `bench steady`) found the previous batch's
-- pages unsummarized, so every query of the batch read both batches' rows and threw half away
-- (day 2 of a 1M-order history: 987,584 rows of day 1 removed by the recheck in each scan of
-- staged orders). Summarizing reads only the ranges not summarized yet, once, on the analyze
-- connections before the models start (docs/PERFORMANCE.md).
--
-- As before (0014): SECURITY DEFINER with a fixed search_path, because ANALYZE and
-- brin_summarize_new_values need the table's owner; only a table of the staging_rows schema is
-- analyzed. A name that is not one returns false and does nothing.
CREATE OR REPLACE FUNCTION ops.analyze_staging_table(table_name text) RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    brin regclass;
BEGIN
    IF NOT EXISTS (
        SELECT 1
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'staging_rows' AND c.relname = table_name AND c.relkind IN ('r', 'p')
    ) THEN
        RETURN false;
    END IF;
    FOR brin IN
        SELECT i.indexrelid::regclass
          FROM pg_index i
          JOIN pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_am am ON am.oid = ic.relam
         WHERE i.indrelid = format('staging_rows.%I', table_name)::regclass AND am.amname = 'brin'
    LOOP
        PERFORM brin_summarize_new_values(brin);
    END LOOP;
    EXECUTE format('ANALYZE staging_rows.%I', table_name);
    RETURN true;
END;
$$;
