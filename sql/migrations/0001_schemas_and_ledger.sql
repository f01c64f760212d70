-- landfall's operational schema: file ledger, idempotency, outbox, rejects.
-- Every statement here runs once, in order, under the migration runner's advisory lock.

CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS warehouse;
CREATE SCHEMA IF NOT EXISTS analytics;

-- The file ledger: one row per object version ever seen under the landing prefix.
-- (bucket, key, version) is the identity: a duplicate notification changes nothing.
CREATE TABLE ops.files (
    file_id          bigserial PRIMARY KEY,
    bucket           text        NOT NULL,
    key              text        NOT NULL,
    -- S3 version id, or the ETag when the bucket is not versioned.
    version          text        NOT NULL,
    etag             text        NOT NULL,
    size_bytes       bigint      NOT NULL,
    -- NULL when the key maps to no dataset source (state 'ignored', reason says why).
    dataset          text,
    source           text,
    ingestion_date   date,
    state            text        NOT NULL DEFAULT 'landed'
        CHECK (state IN ('landed', 'staged', 'rejected', 'superseded', 'missing', 'ignored')),
    reason           text,
    rows_loaded      bigint,
    rows_rejected    bigint,
    -- 'notification' or 'reconcile': how the file was found.
    discovered_by    text        NOT NULL,
    landed_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    staging_started_at timestamptz,
    finished_at      timestamptz,
    trace_id         text,
    UNIQUE (bucket, key, version)
);
CREATE INDEX files_batch_idx ON ops.files (dataset, ingestion_date, source);
CREATE INDEX files_state_idx ON ops.files (state);

-- Which file version currently backs each source of a batch. The stager replaces the
-- staging rows of the previous version and this row in one transaction.
CREATE TABLE ops.staged_sources (
    dataset        text        NOT NULL,
    ingestion_date date        NOT NULL,
    source         text        NOT NULL,
    file_id        bigint      NOT NULL REFERENCES ops.files (file_id),
    rows_loaded    bigint      NOT NULL,
    staged_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (dataset, ingestion_date, source)
);

-- Idempotent consumers: an event id a consumer has applied. Inserted in the same
-- transaction as the event's effect, so a redelivery after commit is recognised and dropped.
CREATE TABLE ops.processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    event_type   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer, event_id)
);

-- Transactional outbox: events written with the effect that caused them, published by a
-- relay with publisher confirms, then marked sent.
CREATE TABLE ops.outbox (
    id           bigserial   PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    routing_key  text        NOT NULL,
    dataset      text,
    ingestion_date date,
    payload      bytea       NOT NULL,
    -- AMQP headers to send, e.g. traceparent and tracestate.
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at      timestamptz
);
CREATE INDEX outbox_unsent_idx ON ops.outbox (id) WHERE sent_at IS NULL;

-- Rows the stager refused, with where and why.
CREATE TABLE ops.rejected_rows (
    id          bigserial   PRIMARY KEY,
    file_id     bigint      NOT NULL REFERENCES ops.files (file_id),
    line        bigint      NOT NULL,
    column_name text,
    value       text,
    reason      text        NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX rejected_rows_file_idx ON ops.rejected_rows (file_id, line);
