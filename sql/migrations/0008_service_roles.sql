-- Least privilege: one NOLOGIN role per service, holding only the grants that service's SQL
-- needs. Each service connects, then runs every statement under its role (the connection's
-- `role` setting, `LANDFALL_DATABASE_ROLE`), so a statement outside its grants fails with
-- SQLSTATE 42501 even when the login user owns the schema. In production, give each service a
-- login user that is a member of its role (docs/DEPLOY.md, "Database roles").
--
-- The grants live in ops.apply_service_grants(), which this migration runs and the migration
-- runner runs again after every migration (after the staging tables are made), so tables made
-- since — a new dataset's staging tables, a table made by hand — get them too. Grants only add:
-- a later migration that takes a privilege away replaces the function and REVOKEs it.
--
-- Roles belong to the whole cluster, not to this database: they are made only when missing,
-- and two databases migrating at the same moment (tests do) may race to make the same one, so
-- the loser's duplicate error is swallowed. Privileges are per database.
--
-- Role                       What it may do (every role also: USAGE on schema ops; SELECT, INSERT on
--                            ops.processed_events; SELECT, INSERT, UPDATE on ops.outbox and its sequence)
-- landfall_ingester          ops.files: SELECT, INSERT. Nothing in staging, warehouse or analytics.
-- landfall_stager            ops.files: SELECT, UPDATE; ops.staged_sources: SELECT, INSERT, UPDATE;
--                            ops.rejected_rows: INSERT; staging.*: SELECT, INSERT, DELETE.
-- landfall_transformer       ops.files, ops.staged_sources: SELECT; ops.batches: SELECT, INSERT, UPDATE;
--                            ops.transform_runs: INSERT; staging.*: SELECT; warehouse.*, analytics.*:
--                            SELECT, INSERT, UPDATE, DELETE (+ sequences) and CREATE (a dataset added
--                            without a rebuild makes its tables in its first model).
-- landfall_quality_checker   staging.*, warehouse.*, analytics.*: SELECT; ops.batches: SELECT,
--                            UPDATE (state, quality_at, updated_at); ops.quality_results: SELECT,
--                            INSERT, DELETE.
-- landfall_exporter          analytics.*: SELECT (the reports); ops.files, ops.staged_sources:
--                            SELECT (manifests); ops.batches: SELECT, UPDATE (state, exported_at,
--                            updated_at); ops.exports: SELECT, INSERT, UPDATE; staging.*: SELECT,
--                            DELETE (the staging retention policy). Nothing in warehouse.

CREATE FUNCTION ops.apply_service_grants() RETURNS void
    LANGUAGE plpgsql
    AS $grants$
DECLARE
    service text;
    sequence_name text;
BEGIN
    FOREACH service IN ARRAY ARRAY['landfall_ingester', 'landfall_stager', 'landfall_transformer',
                                   'landfall_quality_checker', 'landfall_exporter'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = service) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', service);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                -- Another database's migration made it a moment ago.
                NULL;
            END;
        END IF;
        -- What every consumer and outbox relay does (shared/runtime consumer.rs, outbox.rs).
        EXECUTE format('GRANT USAGE ON SCHEMA ops TO %I', service);
        EXECUTE format('GRANT SELECT, INSERT ON ops.processed_events TO %I', service);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON ops.outbox TO %I', service);
        EXECUTE format('GRANT USAGE ON SEQUENCE ops.outbox_id_seq TO %I', service);
    END LOOP;

    -- ingester: the file ledger, nothing else.
    GRANT SELECT, INSERT ON ops.files TO landfall_ingester;
    sequence_name := pg_get_serial_sequence('ops.files', 'file_id');
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO landfall_ingester', sequence_name);

    -- stager: COPY into staging, the file's state, which file backs a source, rejected rows.
    GRANT SELECT, UPDATE ON ops.files TO landfall_stager;
    GRANT SELECT, INSERT, UPDATE ON ops.staged_sources TO landfall_stager;
    GRANT INSERT ON ops.rejected_rows TO landfall_stager;
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO landfall_stager',
                   pg_get_serial_sequence('ops.rejected_rows', 'id'));
    GRANT USAGE ON SCHEMA staging TO landfall_stager;
    GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA staging TO landfall_stager;
    ALTER DEFAULT PRIVILEGES IN SCHEMA staging GRANT SELECT, INSERT, DELETE ON TABLES TO landfall_stager;

    -- transformer: reads staging, builds warehouse and analytics, owns the batch row.
    GRANT SELECT ON ops.files, ops.staged_sources TO landfall_transformer;
    GRANT SELECT, INSERT, UPDATE ON ops.batches TO landfall_transformer;
    GRANT INSERT ON ops.transform_runs TO landfall_transformer;
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO landfall_transformer',
                   pg_get_serial_sequence('ops.transform_runs', 'run_id'));
    GRANT USAGE ON SCHEMA staging TO landfall_transformer;
    GRANT SELECT ON ALL TABLES IN SCHEMA staging TO landfall_transformer;
    ALTER DEFAULT PRIVILEGES IN SCHEMA staging GRANT SELECT ON TABLES TO landfall_transformer;
    GRANT USAGE, CREATE ON SCHEMA warehouse, analytics TO landfall_transformer;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA warehouse, analytics TO landfall_transformer;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA warehouse, analytics TO landfall_transformer;
    ALTER DEFAULT PRIVILEGES IN SCHEMA warehouse, analytics
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO landfall_transformer;
    ALTER DEFAULT PRIVILEGES IN SCHEMA warehouse, analytics
        GRANT USAGE, SELECT ON SEQUENCES TO landfall_transformer;

    -- quality-checker: reads everything a check may name, writes its results and the batch state.
    GRANT USAGE ON SCHEMA staging, warehouse, analytics TO landfall_quality_checker;
    GRANT SELECT ON ALL TABLES IN SCHEMA staging, warehouse, analytics TO landfall_quality_checker;
    ALTER DEFAULT PRIVILEGES IN SCHEMA staging, warehouse, analytics
        GRANT SELECT ON TABLES TO landfall_quality_checker;
    GRANT SELECT ON ops.batches TO landfall_quality_checker;
    GRANT UPDATE (state, quality_at, updated_at) ON ops.batches TO landfall_quality_checker;
    GRANT SELECT, INSERT, DELETE ON ops.quality_results TO landfall_quality_checker;
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO landfall_quality_checker',
                   pg_get_serial_sequence('ops.quality_results', 'result_id'));

    -- exporter: reads the reports, records what it wrote, marks the batch, prunes staging.
    GRANT USAGE ON SCHEMA analytics TO landfall_exporter;
    GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO landfall_exporter;
    ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO landfall_exporter;
    GRANT SELECT ON ops.files, ops.staged_sources TO landfall_exporter;
    GRANT SELECT ON ops.batches TO landfall_exporter;
    GRANT UPDATE (state, exported_at, updated_at) ON ops.batches TO landfall_exporter;
    GRANT SELECT, INSERT, UPDATE ON ops.exports TO landfall_exporter;
    GRANT USAGE ON SCHEMA staging TO landfall_exporter;
    GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA staging TO landfall_exporter;
    ALTER DEFAULT PRIVILEGES IN SCHEMA staging GRANT SELECT, DELETE ON TABLES TO landfall_exporter;

    -- The owner must be a member of every service role: the services may log in as the owner
    -- and take their role, and only a member of landfall_transformer may set the default
    -- privileges of the tables the transformer makes itself (see above). A superuser is one; an
    -- owner that is not is made one when it may (CREATEROLE), else the re-grants above at the
    -- next migration cover those tables and each service needs a login user of its own.
    FOREACH service IN ARRAY ARRAY['landfall_ingester', 'landfall_stager', 'landfall_transformer',
                                   'landfall_quality_checker', 'landfall_exporter'] LOOP
        IF NOT pg_has_role(current_user, service, 'USAGE') THEN
            BEGIN
                EXECUTE format('GRANT %I TO %I', service, current_user);
            EXCEPTION
                WHEN unique_violation THEN
                    NULL;
                WHEN insufficient_privilege THEN
                    RAISE WARNING 'landfall: % is not a member of % and cannot become one; see docs/DEPLOY.md, "Database roles"', current_user, service;
            END;
        END IF;
    END LOOP;
    IF NOT pg_has_role(current_user, 'landfall_transformer', 'USAGE') THEN
        RETURN;
    END IF;
    ALTER DEFAULT PRIVILEGES FOR ROLE landfall_transformer IN SCHEMA warehouse
        GRANT SELECT ON TABLES TO landfall_quality_checker;
    ALTER DEFAULT PRIVILEGES FOR ROLE landfall_transformer IN SCHEMA analytics
        GRANT SELECT ON TABLES TO landfall_quality_checker, landfall_exporter;
END
$grants$;
REVOKE EXECUTE ON FUNCTION ops.apply_service_grants() FROM PUBLIC;

SELECT ops.apply_service_grants();
