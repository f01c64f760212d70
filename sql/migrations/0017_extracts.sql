-- Extracts from the shop's own database (the extractor and `landfall extract`,
-- docs/EXTRACT.md): one row per dataset, source and ingestion date, written once the file is
-- complete in S3. It says which object holds the extract and the digest of its rows (so a run
-- that read the same rows again lands nothing new), and for an incremental source the cursor
-- range it covered: the next date's run reads the rows after this one's high watermark.
CREATE TABLE ops.extracts (
    dataset        text NOT NULL,
    source         text NOT NULL,
    ingestion_date date NOT NULL,
    mode           text NOT NULL CHECK (mode IN ('snapshot', 'incremental')),
    bucket         text NOT NULL,
    key            text NOT NULL,
    -- The object's ETag as S3 returned it when the upload completed.
    etag           text NOT NULL,
    -- Order-independent digest of the file's rows (and its header): equal digests, same rows.
    digest         text NOT NULL,
    rows           bigint NOT NULL,
    -- Compressed size of the object.
    bytes          bigint NOT NULL,
    -- Incremental only: the cursor column, and the rows it covered, as text in the column's
    -- own type's output format: cursor > low_watermark (NULL: from the first row) and
    -- cursor <= high_watermark (NULL: no rows yet).
    cursor_column  text,
    low_watermark  text,
    high_watermark text,
    trace_id       text,
    -- When the same rows were read again and nothing new was written, the first run's time stays.
    extracted_at   timestamptz NOT NULL DEFAULT now(),
    checked_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, source, ingestion_date)
);

-- The extractor's role: it records its extracts, nothing else. Made here, not in
-- ops.apply_service_grants(): it has no queue, outbox or processed events.
DO $role$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'landfall_extractor') THEN
        BEGIN
            CREATE ROLE landfall_extractor NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            -- Another database's migration made it a moment ago.
            NULL;
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'landfall_extractor', 'USAGE') THEN
        BEGIN
            GRANT landfall_extractor TO CURRENT_USER;
        EXCEPTION
            WHEN unique_violation THEN
                NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'landfall: % is not a member of landfall_extractor and cannot become one; see docs/DEPLOY.md, "Database roles"', current_user;
        END;
    END IF;
END
$role$;
GRANT USAGE ON SCHEMA ops TO landfall_extractor;
GRANT SELECT, INSERT, UPDATE ON ops.extracts TO landfall_extractor;
