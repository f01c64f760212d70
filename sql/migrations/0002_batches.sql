-- Batches: one ingestion date of one dataset, and how far it has come.
CREATE TABLE ops.batches (
    dataset         text        NOT NULL,
    ingestion_date  date        NOT NULL,
    -- 'staging': waiting for required sources; 'ready': every required source is staged;
    -- then each stage's outcome.
    state           text        NOT NULL DEFAULT 'staging'
        CHECK (state IN ('staging', 'ready', 'transformed', 'quality_passed', 'quality_failed', 'exported')),
    sources_staged  text[]      NOT NULL DEFAULT '{}',
    sources_missing text[]      NOT NULL DEFAULT '{}',
    first_staged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ready_at        timestamptz,
    transformed_at  timestamptz,
    -- The staged files the last transform was built from: the same set is not transformed twice.
    transformed_files bigint[],
    quality_at      timestamptz,
    exported_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (dataset, ingestion_date)
);
