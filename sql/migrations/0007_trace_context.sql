-- Trace context kept with the data, so an operator can jump from a file or a batch to its
-- trace, and a batch's transform can link to the trace of every file that fed it.

-- The W3C traceparent of the span that recorded the file (its journey's trace).
ALTER TABLE ops.files ADD COLUMN traceparent text;

-- The trace of the batch's latest transform (and the quality checks and export after it).
ALTER TABLE ops.batches ADD COLUMN trace_id text;
