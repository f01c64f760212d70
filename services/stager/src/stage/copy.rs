//! The COPY of one file: over the consumer's transaction, and for a large file over extra
//! connections whose shares commit before the staging transaction does.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use runtime::Failure;
use tokio::io::AsyncRead;
use tokio_postgres::Transaction;

use super::{Job, Stager};
use crate::csv_stream::RecordReader;
use crate::load::{self, LoadError, LoadReport, SourceError};

/// Counts a file in [`Stager::copying`] while it lives.
struct Copying<'a>(&'a AtomicUsize);

impl<'a> Copying<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Copying(count)
    }
}

impl Drop for Copying<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stager {
    /// The extra connections a large file is COPYed over; none for a small file or one with a
    /// single connection.
    ///
    /// A large file is COPYed over several connections: the others commit their share
    /// before this transaction stages the file, and `staging.<table>` shows the rows only
    /// from then on (migration 0013). Not for a file that is staged already: its rows are
    /// visible, and the new copy's would be too before this transaction removes the old.
    pub(super) async fn helper_connections(
        &self,
        object: &GetObjectOutput,
        currently_staged: bool,
    ) -> Result<Vec<deadpool_postgres::Object>, Failure> {
        let size = u64::try_from(object.content_length().unwrap_or(0)).unwrap_or(0);
        let mut helper_clients = Vec::new();
        if let Some(pool) = &self.copy_pool
            && size >= self.parallel_min_bytes
            && !currently_staged
        {
            for _ in 1..self.copy_connections {
                helper_clients.push(pool.get().await?);
            }
        }
        Ok(helper_clients)
    }

    /// Streams the object's rows into the staging table over `tx` and `helpers`
    /// ([`load::load_rows`]), counted in [`Stager::copying`] meanwhile.
    pub(super) async fn copy_rows(
        &self,
        tx: &Transaction<'_>,
        helpers: &[deadpool_postgres::Transaction<'_>],
        job: &Job<'_>,
        body: aws_sdk_s3::primitives::ByteStream,
        currently_staged: bool,
    ) -> Result<LoadReport, LoadError> {
        let mut reader = RecordReader::new(decoded_body(body, &job.landed.key));
        let sinks: Vec<&Transaction<'_>> = std::iter::once(tx)
            .chain(helpers.iter().map(|helper| &**helper))
            .collect();
        let _copying = Copying::start(&self.copying);
        load::load_rows(
            &sinks,
            &self.copying,
            job.source,
            job.landed.file_id,
            job.batch.ingestion_date,
            &mut reader,
            currently_staged,
            self.max_rejects_kept,
        )
        .await
    }
}

/// A transaction on each extra connection, set up to give way rather than wait.
pub(super) async fn begin_helpers(
    clients: &mut [deadpool_postgres::Object],
) -> Result<Vec<deadpool_postgres::Transaction<'_>>, Failure> {
    let mut helpers = Vec::with_capacity(clients.len());
    for client in clients {
        let helper = client.transaction().await?;
        // This transaction waits for the others' COPY (its rows go to them in turn), which
        // PostgreSQL cannot see: a lock request queued between them (a migration's DDL)
        // would wait for ever. The others give up instead, and the file is retried.
        //
        // Its commit need not wait for the disk: the staging transaction's own commit,
        // which makes the rows visible, flushes the WAL past it; a crash before that leaves
        // rows the retry removes anyway.
        helper
            .batch_execute("SET LOCAL lock_timeout = '10s'; SET LOCAL synchronous_commit = off")
            .await?;
        helpers.push(helper);
    }
    Ok(helpers)
}

/// The span of the COPY, with the rows loaded and rejected recorded when the file is staged.
pub(super) fn span(job: &Job<'_>, helpers: usize) -> tracing::Span {
    let source = job.source;
    tracing::info_span!(
        "copy",
        otel.name = format!("COPY {}", source.rows_table()),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "COPY",
        db.collection.name = format!("{}.{}", catalog::staging::ROWS_SCHEMA, source.table_name()),
        landfall.copy_connections = 1 + helpers,
        landfall.dataset = job.batch.dataset.as_str(),
        landfall.batch = job.batch.ingestion_date.to_string(),
        landfall.source = source.name.as_str(),
        landfall.rows_loaded = tracing::field::Empty,
        landfall.rows_rejected = tracing::field::Empty,
    )
}

/// Commits the extra connections' shares, each with a mark that its rows are leftovers until
/// the staging transaction removes the mark (here, undone if it does not commit). Returns
/// whether the file was COPYed over several connections.
pub(super) async fn commit_helpers(
    tx: &Transaction<'_>,
    helpers: Vec<deadpool_postgres::Transaction<'_>>,
    job: &Job<'_>,
) -> Result<bool, Failure> {
    let parallel = !helpers.is_empty();
    for helper in helpers {
        helper
            .execute(
                "INSERT INTO ops.copy_leftovers (file_id) VALUES ($1)",
                &[&job.landed.file_id],
            )
            .await?;
        helper.commit().await?;
    }
    if parallel {
        // Leftovers only if this transaction does not commit.
        load::clear_leftover_mark(tx, job.landed.file_id).await?;
    }
    Ok(parallel)
}

/// The object's bytes as a reader: gunzipped for `.gz` keys. Download errors are tagged as
/// [`SourceError`] so they are retried, while decoding errors reject the file.
fn decoded_body(
    body: aws_sdk_s3::primitives::ByteStream,
    key: &str,
) -> Pin<Box<dyn AsyncRead + Send>> {
    let chunks = futures::stream::unfold(body, |mut body| async move {
        let chunk = body.next().await?;
        Some((
            chunk.map_err(|error| std::io::Error::other(SourceError(error.to_string()))),
            body,
        ))
    });
    let reader = tokio_util::io::StreamReader::new(Box::pin(chunks));
    if key.ends_with(".gz") {
        let mut decoder = async_compression::tokio::bufread::GzipDecoder::new(reader);
        decoder.multiple_members(true);
        Box::pin(decoder)
    } else {
        Box::pin(reader)
    }
}
