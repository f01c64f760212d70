-- Batches: one ingestion date of one dataset, and how far it has come.
CREATE TABLE ops.batches (
    dataset         text        NOT NULL,
    ingestion_date  date        NOT NULL,
    -- 'staging': waiting for required sources; 'ready': every required source is staged.
    state           text        NOT NULL DEFAULT 'staging'
        CHECK (state IN ('staging', 'ready', 'transforming', 'transformed', 'quality_failed', 'exported')),
    sources_staged  text[]      NOT NULL DEFAULT '{}',
    sources_missing text[]      NOT NULL DEFAULT '{}',
    first_staged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ready_at        timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (dataset, ingestion_date)
);
