//! One run: every source of a dataset's `extract.toml` read in one REPEATABLE READ, READ ONLY
//! transaction of the source database (one snapshot of the shop), each streamed with
//! `COPY … TO STDOUT` through gzip into a multipart upload, holding one part at a time. Only
//! when every source has been read whole are the uploads completed, so a run that fails (a
//! missing table, a lost connection) or is killed lands nothing. A file whose rows are the same
//! as the file already landed for that date is not written again: the ingester sees no new
//! object, and the batch is not run again. The run is then recorded in `ops.extracts`, and with
//! it the watermark the next incremental run starts from.

use std::collections::HashMap;
use std::io::Write as _;

use anyhow::Context as _;
use bytes::Bytes;
use catalog::Dataset;
use catalog::extract::{ExtractMode, SourceExtract};
use catalog::sql::quote_literal;
use chrono::NaiveDate;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt as _;
use tokio_postgres::Client;
use tracing::Instrument as _;

use crate::digest::RowDigest;
use crate::plan::{Planned, describe_db_error, plan};
use crate::upload::Pending;

/// What one run reads and where it writes.
pub struct Run<'a> {
    pub dataset: &'a Dataset,
    pub sources: &'a [SourceExtract],
    pub date: NaiveDate,
    pub bucket: &'a str,
    pub landing_prefix: &'a str,
    pub part_size: usize,
    pub gzip_level: u32,
}

/// One source's file, as the run left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub source: String,
    pub key: String,
    /// Data rows (the header not counted).
    pub rows: u64,
    /// Compressed bytes.
    pub bytes: u64,
    pub digest: String,
    /// `false`: the rows were those of the file already landed for the date, which stays.
    pub landed: bool,
    pub etag: String,
    pub mode: &'static str,
    pub cursor_column: Option<String>,
    pub low_watermark: Option<String>,
    pub high_watermark: Option<String>,
}

/// A file read whole and uploaded, not yet completed.
struct Read {
    upload: Pending,
    extracted: Extracted,
}

/// Runs the extract of `run.dataset` for `run.date`: reads `source`, writes S3, records in
/// `warehouse` (which must be able to write `ops.extracts`).
pub async fn run(
    run: &Run<'_>,
    s3: &aws_sdk_s3::Client,
    source: &Client,
    warehouse: &mut Client,
) -> anyhow::Result<Vec<Extracted>> {
    let span = tracing::info_span!(
        "extract",
        otel.name = format!("extract {}", run.dataset.name),
        otel.kind = "internal",
        landfall.dataset = run.dataset.name,
        landfall.batch = %run.date,
        trace_id = tracing::field::Empty,
    );
    runtime::telemetry::continue_trace(&span, &Default::default());
    async {
        let started = std::time::Instant::now();
        let landed_before = landed_for_date(warehouse, run).await?;
        let mut watermarks = HashMap::new();
        for extract in run.sources {
            if let ExtractMode::Incremental { .. } = extract.mode {
                watermarks.insert(
                    extract.source.clone(),
                    watermark_before(warehouse, run, &extract.source).await?,
                );
            }
        }
        source
            .batch_execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
                 SET LOCAL datestyle = 'ISO, YMD'; SET LOCAL timezone = 'UTC'",
            )
            .await
            .map_err(|error| describe_db_error(&error))
            .context("starting the read-only transaction on the source database")?;
        let mut read: Vec<Read> = Vec::new();
        let result = read_all(run, s3, source, &watermarks, &mut read).await;
        // The transaction only read; ending it either way changes nothing.
        let _ = source.batch_execute("ROLLBACK").await;
        if let Err(error) = result {
            for file in read {
                file.upload.abort(s3).await;
            }
            return Err(error.context(format!(
                "extract of dataset '{}' for {}: nothing was landed",
                run.dataset.name, run.date
            )));
        }
        let extracted = complete_all(s3, read, &landed_before).await?;
        record(warehouse, run, &extracted).await?;
        let metrics = runtime::metrics::metrics();
        for file in &extracted {
            let attributes = runtime::metrics::attributes(&[
                ("dataset", &run.dataset.name),
                ("source", &file.source),
            ]);
            metrics.rows_extracted.add(file.rows, &attributes);
            let outcome = if file.landed {
                "extracted"
            } else {
                "unchanged"
            };
            metrics.files.add(
                1,
                &runtime::metrics::attributes(&[
                    ("service", crate::SERVICE),
                    ("dataset", &run.dataset.name),
                    ("outcome", outcome),
                ]),
            );
        }
        metrics.stage_duration.record(
            started.elapsed().as_secs_f64(),
            &runtime::metrics::attributes(&[("service", crate::SERVICE)]),
        );
        Ok(extracted)
    }
    .instrument(span)
    .await
}

/// The landing key of `source` for the run's date: `<prefix><pattern with the date>.csv.gz`.
pub fn landing_key(run: &Run<'_>, source: &str) -> anyhow::Result<String> {
    let declared = run
        .dataset
        .source(source)
        .with_context(|| format!("dataset '{}' has no source '{source}'", run.dataset.name))?;
    let (rendered, complete) = declared.pattern().render(run.date);
    anyhow::ensure!(
        complete,
        "source '{source}': its key pattern has a '*', so the key to write is not known"
    );
    Ok(format!("{}{rendered}.csv.gz", run.landing_prefix))
}

async fn read_all(
    run: &Run<'_>,
    s3: &aws_sdk_s3::Client,
    source: &Client,
    watermarks: &HashMap<String, Option<String>>,
    read: &mut Vec<Read>,
) -> anyhow::Result<()> {
    // Every source is checked before any is read, so a missing table or a wrong type costs
    // no upload.
    let mut plans = Vec::with_capacity(run.sources.len());
    for extract in run.sources {
        let declared = run.dataset.source(&extract.source).with_context(|| {
            format!(
                "dataset '{}' has no source '{}'",
                run.dataset.name, extract.source
            )
        })?;
        let planned = plan(source, extract, declared).await.with_context(|| {
            format!(
                "source '{}' ({})",
                extract.source,
                extract.origin.describe()
            )
        })?;
        plans.push((extract, planned));
    }
    for (extract, planned) in plans {
        let low = watermarks.get(&extract.source).cloned().flatten();
        let what = format!("source '{}' ({})", extract.source, planned.origin);
        let file = read_one(run, s3, source, extract, &planned, low, read)
            .await
            .with_context(|| what)?;
        tracing::info!(
            source = file.source,
            rows = file.rows,
            bytes = file.bytes,
            key = file.key,
            "read"
        );
    }
    Ok(())
}

/// Reads one source into an open upload, which it pushes onto `read` (also when reading
/// fails part way, so the caller aborts it).
async fn read_one(
    run: &Run<'_>,
    s3: &aws_sdk_s3::Client,
    source: &Client,
    extract: &SourceExtract,
    planned: &Planned,
    low: Option<String>,
    read: &mut Vec<Read>,
) -> anyhow::Result<Extracted> {
    let key = landing_key(run, &extract.source)?;
    let span = tracing::info_span!(
        "copy",
        otel.name = format!("COPY {}", extract.source),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "COPY",
        db.collection.name = planned.origin,
        landfall.source = extract.source,
        landfall.key = key,
    );
    async {
        let (filter, high) = match &planned.cursor {
            None => (String::new(), None),
            Some(cursor) => {
                let past = low.as_ref().map(|low| {
                    format!(
                        "{} > {}::{}",
                        cursor.quoted,
                        quote_literal(low),
                        cursor.type_name
                    )
                });
                let high: Option<String> = source
                    .query_one(
                        &format!(
                            "SELECT max({})::text FROM {}{}",
                            cursor.quoted,
                            planned.from,
                            past.as_ref()
                                .map(|p| format!(" WHERE {p}"))
                                .unwrap_or_default()
                        ),
                        &[],
                    )
                    .await
                    .map_err(|error| describe_db_error(&error))
                    .context("finding the cursor's largest value")?
                    .get(0);
                let filter = match &high {
                    None => " WHERE false".to_owned(),
                    Some(high) => {
                        let upto = format!(
                            "{} <= {}::{}",
                            cursor.quoted,
                            quote_literal(high),
                            cursor.type_name
                        );
                        match &past {
                            Some(past) => format!(" WHERE {past} AND {upto}"),
                            None => format!(" WHERE {upto}"),
                        }
                    }
                };
                (filter, high)
            }
        };
        let metadata: HashMap<String, String> = runtime::telemetry::current_trace_headers()
            .into_iter()
            .filter(|(name, _)| name == "traceparent")
            .collect();
        let upload = Pending::start(s3, run.bucket, &key, metadata).await?;
        read.push(Read {
            upload,
            extracted: Extracted {
                source: extract.source.clone(),
                key: key.clone(),
                rows: 0,
                bytes: 0,
                digest: String::new(),
                landed: false,
                etag: String::new(),
                mode: extract.mode.as_str(),
                cursor_column: planned.cursor.as_ref().map(|c| c.column.clone()),
                low_watermark: low.clone(),
                high_watermark: high.or(low),
            },
        });
        let file = read.last_mut().expect("just pushed");
        let copy = format!(
            "COPY (SELECT {} FROM {}{filter}) TO STDOUT WITH (FORMAT csv, HEADER)",
            planned.select_list, planned.from
        );
        let (digest, rows) = stream(source, &copy, s3, &mut file.upload, run).await?;
        file.extracted.rows = rows;
        file.extracted.digest = digest;
        file.extracted.bytes = file.upload.bytes;
        Ok(file.extracted.clone())
    }
    .instrument(span)
    .await
}

/// COPY → digest → gzip → parts of `part_size`; returns the digest and the data rows.
async fn stream(
    source: &Client,
    copy: &str,
    s3: &aws_sdk_s3::Client,
    upload: &mut Pending,
    run: &Run<'_>,
) -> anyhow::Result<(String, u64)> {
    let rows = source
        .copy_out(copy)
        .await
        .map_err(|error| describe_db_error(&error))
        .context("starting COPY")?;
    let mut rows = std::pin::pin!(rows);
    let mut digest = RowDigest::new();
    let buffer = Vec::with_capacity(run.part_size + 256 * 1024);
    let mut gzip = GzEncoder::new(buffer, Compression::new(run.gzip_level));
    while let Some(chunk) = rows.next().await {
        let chunk = chunk.map_err(|error| describe_db_error(&error)).context(
            "reading the rows (the connection to the source database failed or the query stopped)",
        )?;
        digest.update(&chunk);
        gzip.write_all(&chunk).context("compressing")?;
        if gzip.get_ref().len() >= run.part_size {
            let part = std::mem::replace(
                gzip.get_mut(),
                Vec::with_capacity(run.part_size + 256 * 1024),
            );
            upload.part(s3, Bytes::from(part)).await?;
        }
    }
    let rest = gzip.finish().context("compressing")?;
    // The last part may be small; an upload needs at least one.
    if !rest.is_empty() || upload.bytes == 0 {
        upload.part(s3, Bytes::from(rest)).await?;
    }
    let rows = digest.rows().saturating_sub(1);
    Ok((digest.finish(), rows))
}

/// The files the warehouse says were landed for this date, by source: key, digest and ETag.
async fn landed_for_date(
    warehouse: &Client,
    run: &Run<'_>,
) -> anyhow::Result<HashMap<String, (String, String, String)>> {
    let rows = warehouse
        .query(
            "SELECT source, key, digest, etag FROM ops.extracts
              WHERE dataset = $1 AND ingestion_date = $2",
            &[&run.dataset.name, &run.date],
        )
        .await
        .map_err(|error| describe_db_error(&error))
        .context("reading ops.extracts in the warehouse database")?;
    Ok(rows
        .into_iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3))))
        .collect())
}

/// Where an incremental source's run for the date starts: the high watermark of its latest
/// run of an earlier date (`None`: the first run, which reads every row).
async fn watermark_before(
    warehouse: &Client,
    run: &Run<'_>,
    source: &str,
) -> anyhow::Result<Option<String>> {
    let row = warehouse
        .query_opt(
            "SELECT high_watermark FROM ops.extracts
              WHERE dataset = $1 AND source = $2 AND ingestion_date < $3
              ORDER BY ingestion_date DESC LIMIT 1",
            &[&run.dataset.name, &source, &run.date],
        )
        .await
        .map_err(|error| describe_db_error(&error))
        .context("reading the watermark from ops.extracts")?;
    Ok(row.and_then(|row| row.get(0)))
}

/// Completes every upload, except one whose rows equal the file already landed for the date
/// (and still there, unchanged): that one is aborted and the landed file stays.
async fn complete_all(
    s3: &aws_sdk_s3::Client,
    read: Vec<Read>,
    landed_before: &HashMap<String, (String, String, String)>,
) -> anyhow::Result<Vec<Extracted>> {
    let mut done = Vec::with_capacity(read.len());
    let mut read = read.into_iter();
    while let Some(Read {
        upload,
        mut extracted,
    }) = read.next()
    {
        let same = match landed_before.get(&extracted.source) {
            Some((key, digest, etag)) if *key == extracted.key && *digest == extracted.digest => {
                current_etag(s3, &upload.bucket, key).await.as_deref() == Some(etag.as_str())
            }
            _ => false,
        };
        if same {
            extracted.etag = landed_before[&extracted.source].2.clone();
            upload.abort(s3).await;
        } else {
            match upload.complete(s3).await {
                Ok(etag) => {
                    extracted.etag = etag;
                    extracted.landed = true;
                }
                Err(error) => {
                    for rest in read {
                        rest.upload.abort(s3).await;
                    }
                    let landed: Vec<&str> = done
                        .iter()
                        .filter(|file: &&Extracted| file.landed)
                        .map(|file| file.key.as_str())
                        .collect();
                    return Err(error.context(format!(
                        "source '{}': the file could not be completed; landed before it: {}",
                        extracted.source,
                        if landed.is_empty() {
                            "none".to_owned()
                        } else {
                            landed.join(", ")
                        }
                    )));
                }
            }
        }
        done.push(extracted);
    }
    Ok(done)
}

/// The ETag of the object at `key`, if there is one.
async fn current_etag(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<String> {
    let head = s3.head_object().bucket(bucket).key(key).send().await.ok()?;
    head.e_tag().map(|etag| etag.trim_matches('"').to_owned())
}

/// Records the run's files in `ops.extracts`, in one transaction.
async fn record(
    warehouse: &mut Client,
    run: &Run<'_>,
    extracted: &[Extracted],
) -> anyhow::Result<()> {
    let trace_id = runtime::telemetry::current_trace_id();
    let tx = warehouse
        .transaction()
        .await
        .map_err(|error| describe_db_error(&error))?;
    for file in extracted {
        let rows = i64::try_from(file.rows).unwrap_or(i64::MAX);
        let bytes = i64::try_from(file.bytes).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO ops.extracts AS e (dataset, source, ingestion_date, mode, bucket, key,
                                            etag, digest, rows, bytes, cursor_column,
                                            low_watermark, high_watermark, trace_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (dataset, source, ingestion_date) DO UPDATE
                SET mode = EXCLUDED.mode, bucket = EXCLUDED.bucket, key = EXCLUDED.key,
                    etag = EXCLUDED.etag, digest = EXCLUDED.digest, rows = EXCLUDED.rows,
                    bytes = CASE WHEN $15 THEN EXCLUDED.bytes ELSE e.bytes END,
                    cursor_column = EXCLUDED.cursor_column,
                    low_watermark = EXCLUDED.low_watermark,
                    high_watermark = EXCLUDED.high_watermark,
                    trace_id = CASE WHEN $15 THEN EXCLUDED.trace_id ELSE e.trace_id END,
                    extracted_at = CASE WHEN $15 THEN now() ELSE e.extracted_at END,
                    checked_at = now()",
            &[
                &run.dataset.name,
                &file.source,
                &run.date,
                &file.mode,
                &run.bucket,
                &file.key,
                &file.etag,
                &file.digest,
                &rows,
                &bytes,
                &file.cursor_column,
                &file.low_watermark,
                &file.high_watermark,
                &trace_id,
                &file.landed,
            ],
        )
        .await
        .map_err(|error| describe_db_error(&error))
        .with_context(|| format!("recording the extract of '{}' in ops.extracts", file.source))?;
    }
    tx.commit()
        .await
        .map_err(|error| describe_db_error(&error))
        .context("recording the extract in ops.extracts")?;
    Ok(())
}
