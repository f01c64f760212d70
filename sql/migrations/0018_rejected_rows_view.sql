-- The rows the stager rejected, where a check (or a model, or a person) may read them:
-- `rejected.rows`, one row per rejected line of a file, with the file's dataset, source, batch
-- and key. A check can then say "no row of this batch was rejected", or how many were
-- (docs/DATASETS.md, "Rejected rows"). The rows of a file rejected as a whole are there too
-- (file_state 'rejected'), as far as the stager kept them (LANDFALL_MAX_REJECTS_KEPT per file).
-- A schema of its own, so its name can never be a dataset's staging table.
CREATE SCHEMA rejected;
CREATE VIEW rejected.rows AS
SELECT f.dataset,
       f.source,
       f.ingestion_date AS _batch,
       f.file_id        AS _file_id,
       f.key,
       f.state          AS file_state,
       r.line           AS _line,
       r.column_name,
       r.value,
       r.reason,
       r.rejected_at
  FROM ops.rejected_rows r
  JOIN ops.files f ON f.file_id = r.file_id;
GRANT USAGE ON SCHEMA rejected TO landfall_quality_checker, landfall_transformer;
GRANT SELECT ON rejected.rows TO landfall_quality_checker, landfall_transformer;
