-- The bookkeeping of transform runs, and the batch date models and checks read.
--
-- This migration also made the ecommerce dataset's warehouse and report tables until those
-- moved to the dataset's own migrations (datasets/ecommerce/migrations). Its name stays: a
-- database records migrations by name, and one migrated before the move has this name
-- recorded with the old file's checksum, which the runner accepts (shared/runtime/src/db.rs).

-- The batch a model runs for; set per transaction by the transformer (and quality checker).
CREATE FUNCTION ops.batch_date() RETURNS date
    LANGUAGE sql STABLE
    AS $$ SELECT current_setting('landfall.batch_date')::date $$;

-- One transform run of a batch: which files it was built from and each model's rows and time.
CREATE TABLE ops.transform_runs (
    run_id         bigserial   PRIMARY KEY,
    dataset        text        NOT NULL,
    ingestion_date date        NOT NULL,
    file_ids       bigint[]    NOT NULL,
    models         jsonb       NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX transform_runs_batch_idx ON ops.transform_runs (dataset, ingestion_date);
