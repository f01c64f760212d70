-- What the exporter wrote: one row per exported report of a batch, saying where its CSV and
-- manifest are and what is in them. A re-export of the batch overwrites the same S3 keys and
-- replaces the row, so this always describes the objects as they are now.
CREATE TABLE ops.exports (
    dataset        text        NOT NULL,
    ingestion_date date        NOT NULL,
    report         text        NOT NULL,
    bucket         text        NOT NULL,
    key            text        NOT NULL,
    -- The _manifest.json beside the CSV.
    manifest_key   text        NOT NULL,
    -- Data rows (the header is not counted), bytes and SHA-256 (hex) of the CSV object.
    rows           bigint      NOT NULL,
    bytes          bigint      NOT NULL,
    sha256         text        NOT NULL,
    -- The quality.passed event the export answered.
    event_id       uuid        NOT NULL,
    exported_at    timestamptz NOT NULL,
    PRIMARY KEY (dataset, ingestion_date, report)
);
