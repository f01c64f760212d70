-- Staged rows live in `staging_rows.<table>`; `staging.<table>` is a view of the rows of the
-- files the ledger says are staged (ops.staged_sources). The view is what models, checks and
-- people read; the table is what the stager writes.
--
-- Why: a large file is COPYed over several connections at once (one PostgreSQL backend per
-- core; see docs/PERFORMANCE.md). Those connections commit their rows before the stager's own
-- transaction records the file as staged, so rows can be in the table while their file is not
-- staged yet, or never will be (a crash in between; the retry deletes them first). The view
-- shows a file's rows exactly from the commit that stages it, as a single transaction did.
--
-- The tables and views themselves are made by the migration runner from the dataset
-- definitions (shared/runtime/src/datasets.rs), which also moves a table made by an earlier
-- version from `staging` into this schema.

CREATE SCHEMA IF NOT EXISTS staging_rows;

-- A file whose other COPY connections committed rows: written by each of those connections in
-- the transaction that commits its share, deleted by the stager's own transaction that stages
-- (or rejects) the file. A row here after that transaction failed says the file's rows in
-- staging_rows are leftovers to delete before the next attempt; no row, the usual case, spares
-- that attempt a scan of the table for them.
CREATE TABLE ops.copy_leftovers (
    file_id      bigint      NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX copy_leftovers_file_id ON ops.copy_leftovers (file_id);

-- Who may touch the tables directly: the stager (loads, replaces, removes an attempt's rows)
-- and the exporter (the retention policy). Everyone else reads the views in `staging`.
CREATE FUNCTION ops.apply_staging_rows_grants() RETURNS void
    LANGUAGE plpgsql
    AS $grants$
BEGIN
    GRANT USAGE ON SCHEMA staging_rows TO landfall_stager, landfall_exporter;
    GRANT SELECT, INSERT, DELETE ON ops.copy_leftovers TO landfall_stager;
    GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA staging_rows TO landfall_stager;
    GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA staging_rows TO landfall_exporter;
    ALTER DEFAULT PRIVILEGES IN SCHEMA staging_rows
        GRANT SELECT, INSERT, DELETE ON TABLES TO landfall_stager;
    ALTER DEFAULT PRIVILEGES IN SCHEMA staging_rows
        GRANT SELECT, DELETE ON TABLES TO landfall_exporter;
    -- The views in `staging` are read-only to every service (0008's grants, which run just
    -- before this, gave the stager INSERT and DELETE and the exporter DELETE on everything there).
    REVOKE INSERT, DELETE ON ALL TABLES IN SCHEMA staging FROM landfall_stager, landfall_exporter;
    ALTER DEFAULT PRIVILEGES IN SCHEMA staging
        REVOKE INSERT, DELETE ON TABLES FROM landfall_stager, landfall_exporter;
END
$grants$;
REVOKE EXECUTE ON FUNCTION ops.apply_staging_rows_grants() FROM PUBLIC;

SELECT ops.apply_staging_rows_grants();

-- ANALYZE before a transform (0010) now covers the tables where the rows are.
CREATE OR REPLACE FUNCTION ops.analyze_staging() RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    stale record;
    analyzed integer := 0;
BEGIN
    FOR stale IN
        SELECT n.nspname, c.relname
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('staging', 'staging_rows') AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('ANALYZE %I.%I', stale.nspname, stale.relname);
        analyzed := analyzed + 1;
    END LOOP;
    RETURN analyzed;
END;
$$;
