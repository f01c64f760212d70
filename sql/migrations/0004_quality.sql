-- Quality check results: one row per check per batch. A re-run of a batch replaces that
-- batch's rows (the quality-checker deletes and inserts them in one transaction); other
-- batches' results are kept as history.

CREATE TABLE ops.quality_results (
    result_id          bigserial   PRIMARY KEY,
    dataset            text        NOT NULL,
    ingestion_date     date        NOT NULL,
    check_name         text        NOT NULL,
    check_kind         text        NOT NULL
        CHECK (check_kind IN ('not_null', 'unique', 'accepted_values', 'relationships',
                              'expression', 'row_count', 'custom_sql')),
    -- 'error' blocks the batch's export when the check fails or cannot run; 'warn' does not.
    severity           text        NOT NULL CHECK (severity IN ('error', 'warn')),
    -- 'error': the check's SQL could not run; `error` says why.
    status             text        NOT NULL CHECK (status IN ('passed', 'failed', 'error')),
    -- Rows the failing-rows query returned; NULL when the check could not run.
    failing_rows       bigint,
    -- Up to 20 failing rows, each a JSON object of the failing-rows query's columns.
    sample             jsonb       NOT NULL DEFAULT '[]'::jsonb,
    error              text,
    -- The failing-rows query; run it after set_config('landfall.batch_date', …) to see them all.
    sql                text        NOT NULL,
    duration_ms        bigint      NOT NULL,
    run_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The transform.completed event this run answered.
    transform_event_id uuid        NOT NULL,
    UNIQUE (dataset, ingestion_date, check_name),
    CHECK ((status = 'error') = (error IS NOT NULL)),
    CHECK ((status = 'error') = (failing_rows IS NULL))
);
