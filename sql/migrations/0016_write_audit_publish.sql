-- Write, audit, publish. The models write a batch's report rows to schema `audit`; the quality
-- checker runs the checks on them there, and only when every error-severity check passes does
-- it copy the batch's rows into `analytics` (the tables people and the exporter read), in the
-- transaction that records the results. So a reader of `analytics.*` sees a batch's audited
-- rows or, until they pass (and after a failure), the batch's previous audited rows or none.
-- A dataset lists its report tables in `dataset.toml` (`reports = [...]`, docs/DATASETS.md).
--
-- This migration also made the bundled datasets' audit tables (copying their published rows)
-- and the ecommerce holiday calendar versions until those moved to the datasets' own
-- migrations (datasets/<name>/migrations). Its name stays: a database migrated before the move
-- has it recorded with the old file's checksum, which the runner accepts
-- (shared/runtime/src/db.rs).

CREATE SCHEMA IF NOT EXISTS audit;

-- When the batch's audited rows were last published (NULL: never).
ALTER TABLE ops.batches ADD COLUMN published_at timestamptz;
UPDATE ops.batches SET published_at = coalesce(quality_at, updated_at)
 WHERE state IN ('quality_passed', 'exported');

-- Grants of the audit schema, run again after every migration like the others (db.rs):
-- the transformer writes the audit tables (and makes a user's report tables there); the quality
-- checker reads them and publishes into analytics (making a user's published table like its
-- audit table the first time), which the exporter reads.
CREATE FUNCTION ops.apply_audit_grants() RETURNS void
    LANGUAGE plpgsql
    AS $grants$
BEGIN
    GRANT USAGE, CREATE ON SCHEMA audit TO landfall_transformer;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA audit TO landfall_transformer;
    ALTER DEFAULT PRIVILEGES IN SCHEMA audit
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO landfall_transformer;

    GRANT USAGE ON SCHEMA audit TO landfall_quality_checker;
    GRANT SELECT ON ALL TABLES IN SCHEMA audit TO landfall_quality_checker;
    ALTER DEFAULT PRIVILEGES IN SCHEMA audit GRANT SELECT ON TABLES TO landfall_quality_checker;
    -- CREATE: a user's report is published to a table made like its audit table.
    GRANT CREATE ON SCHEMA analytics TO landfall_quality_checker;
    GRANT INSERT, DELETE ON ALL TABLES IN SCHEMA analytics TO landfall_quality_checker;
    ALTER DEFAULT PRIVILEGES IN SCHEMA analytics
        GRANT INSERT, DELETE ON TABLES TO landfall_quality_checker;
    GRANT UPDATE (published_at) ON ops.batches TO landfall_quality_checker;

    IF pg_has_role(current_user, 'landfall_transformer', 'USAGE') THEN
        ALTER DEFAULT PRIVILEGES FOR ROLE landfall_transformer IN SCHEMA audit
            GRANT SELECT ON TABLES TO landfall_quality_checker;
        ALTER DEFAULT PRIVILEGES FOR ROLE landfall_transformer IN SCHEMA analytics
            GRANT SELECT, INSERT, DELETE ON TABLES TO landfall_quality_checker;
    END IF;
    IF pg_has_role(current_user, 'landfall_quality_checker', 'USAGE') THEN
        ALTER DEFAULT PRIVILEGES FOR ROLE landfall_quality_checker IN SCHEMA analytics
            GRANT SELECT ON TABLES TO landfall_exporter;
    END IF;
END
$grants$;
REVOKE EXECUTE ON FUNCTION ops.apply_audit_grants() FROM PUBLIC;
