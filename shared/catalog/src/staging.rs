//! The staging DDL of every dataset: `staging_rows.<table>` (what the stager writes), the view
//! `staging.<table>` (the rows of the staged files, what models and checks read), for a
//! snapshot source the view `snapshot.<table>`, and for a counted source (a snapshot source
//! without a natural key) the view `counted.<table>`. Made (or brought up to date) when a
//! service starts.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};

use crate::Datasets;
use crate::dataset::{Dataset, Mode, Source};
use crate::sql::{quote_ident, quote_literal};

/// The lineage columns every staging table starts with.
pub const LINEAGE_COLUMNS: &[(&str, &str)] = &[
    ("_file_id", "bigint NOT NULL"),
    ("_line", "bigint NOT NULL"),
    ("_batch", "date NOT NULL"),
];

/// The schema of the snapshot sources' views.
pub const SNAPSHOT_SCHEMA: &str = "snapshot";

/// The schema of the counted sources' views (`Source::counted`): one row per distinct row.
pub const COUNTED_SCHEMA: &str = "counted";

/// How many lines of its file a staged row stands for, in the table of a counted source
/// (`Source::counted`); the last column, 1 unless the stager counted identical rows.
pub const COUNT_COLUMN: &str = "_count";

/// Where the staging tables are (migration 0013); `staging` holds views of them.
pub const ROWS_SCHEMA: &str = "staging_rows";

/// The roles that may read the snapshot views: those that read staging for a batch.
const SNAPSHOT_READERS: &str = "landfall_transformer, landfall_quality_checker";

/// Creates every dataset's staging table (and adds columns a definition gained), and for each
/// snapshot source the view `snapshot.<table>` (dropped again if the source becomes delta). A
/// column whose type changed is an error: changing it in place could lose staged rows.
pub async fn ensure_staging_tables(
    client: &tokio_postgres::Client,
    datasets: &Datasets,
) -> anyhow::Result<()> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {SNAPSHOT_SCHEMA}; CREATE SCHEMA IF NOT EXISTS {COUNTED_SCHEMA}"
        ))
        .await
        .context("creating the snapshot and counted schemas")?;
    for dataset in datasets.iter() {
        for source in &dataset.sources {
            let counts = ensure_staging_table(client, source)
                .await
                .with_context(|| format!("staging table for {}.{}", dataset.name, source.name))?;
            ensure_staging_view(client, dataset, source, counts)
                .await
                .with_context(|| format!("staging view for {}.{}", dataset.name, source.name))?;
            ensure_snapshot_view(client, dataset, source)
                .await
                .with_context(|| format!("snapshot view for {}.{}", dataset.name, source.name))?;
            ensure_counted_view(client, dataset, source)
                .await
                .with_context(|| format!("counted view for {}.{}", dataset.name, source.name))?;
        }
    }
    // The service roles exist: migration 0008 made them.
    client
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA {SNAPSHOT_SCHEMA}, {COUNTED_SCHEMA} TO {SNAPSHOT_READERS};
             GRANT SELECT ON ALL TABLES IN SCHEMA {SNAPSHOT_SCHEMA}, {COUNTED_SCHEMA} TO {SNAPSHOT_READERS};"
        ))
        .await
        .context("granting the snapshot and counted views")?;
    Ok(())
}

/// `counted.<table>` for a counted source (`Source::counted`): the staged files' rows as the
/// stager wrote them, each distinct row with `_count`, so a model that aggregates reads
/// thousands of rows instead of millions (`sum(_count)` for `count(*)`). Dropped again if the
/// source stops being counted.
async fn ensure_counted_view(
    client: &tokio_postgres::Client,
    dataset: &Dataset,
    source: &Source,
) -> anyhow::Result<()> {
    if !source.counted() {
        client
            .batch_execute(&format!("DROP VIEW IF EXISTS {}", source.counted_table()))
            .await?;
        return Ok(());
    }
    let definition = format!(
        "SELECT {}, {COUNT_COLUMN} FROM {} WHERE {}",
        view_columns(source),
        source.rows_table(),
        staged_files_filter(dataset, source),
    );
    let comment = format!(
        "landfall: the distinct rows of {}.{} whose file is staged, with the lines each stands for. {definition}",
        dataset.name, source.name
    );
    replace_view(
        client,
        COUNTED_SCHEMA,
        source.table_name(),
        &definition,
        &comment,
    )
    .await
}

/// The filter of a staging table's rows to those of the staged files (ops.staged_sources).
fn staged_files_filter(dataset: &Dataset, source: &Source) -> String {
    format!(
        "_file_id = ANY (ARRAY(SELECT file_id FROM ops.staged_sources WHERE dataset = {} AND source = {}))",
        quote_literal(&dataset.name),
        quote_literal(&source.name),
    )
}

/// `snapshot.<table>`: the staged rows of the latest batch at or before `ops.batch_date()` that
/// staged the source (the batch's own file if it has one). Replaced only when its definition
/// changed (its comment records it), so a start does not wait for a running transform's lock.
async fn ensure_snapshot_view(
    client: &tokio_postgres::Client,
    dataset: &Dataset,
    source: &Source,
) -> anyhow::Result<()> {
    if source.mode() == Mode::Delta {
        client
            .batch_execute(&format!(
                "DROP VIEW IF EXISTS {SNAPSHOT_SCHEMA}.{}",
                quote_ident(source.table_name())
            ))
            .await?;
        return Ok(());
    }
    let definition = format!(
        "SELECT {} FROM {} WHERE _batch = (SELECT max(ingestion_date) FROM ops.staged_sources WHERE dataset = {} AND source = {} AND ingestion_date <= ops.batch_date())",
        view_columns(source),
        source.qualified_table(),
        quote_literal(&dataset.name),
        quote_literal(&source.name),
    );
    let comment = format!(
        "landfall: the latest snapshot of {}.{} staged at or before ops.batch_date(). {definition}",
        dataset.name, source.name
    );
    replace_view(
        client,
        SNAPSHOT_SCHEMA,
        source.table_name(),
        &definition,
        &comment,
    )
    .await
}

/// `staging.<table>`: the rows of `staging_rows.<table>` whose file is the staged one of its
/// batch (ops.staged_sources), so rows copied by a connection other than the one that records
/// the file appear exactly when the file is staged (migration 0013). The file ids are taken
/// once per query (an array, not a join: a 1M-row scan costs about 10 % more, against 45 %
/// for a semi-join, and the planner's row estimate stays that of the table). A table with
/// `_count` (`counts`: a counted source's) shows each row as many times as it counts, so the
/// view has a row per line of the staged file whatever the stager wrote.
async fn ensure_staging_view(
    client: &tokio_postgres::Client,
    dataset: &Dataset,
    source: &Source,
    counts: bool,
) -> anyhow::Result<()> {
    let repeated = if counts {
        format!(" CROSS JOIN LATERAL generate_series(1, {COUNT_COLUMN}) AS copies (copy)")
    } else {
        String::new()
    };
    let definition = format!(
        "SELECT {} FROM {}{repeated} WHERE {}",
        view_columns(source),
        source.rows_table(),
        staged_files_filter(dataset, source),
    );
    let comment = format!(
        "landfall: the rows of {}.{} whose file is staged. {definition}",
        dataset.name, source.name
    );
    replace_view(
        client,
        "staging",
        source.table_name(),
        &definition,
        &comment,
    )
    .await
}

/// The lineage columns, then the source's, for a view's select list.
fn view_columns(source: &Source) -> String {
    let columns: Vec<String> = LINEAGE_COLUMNS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .chain(
            source
                .columns
                .iter()
                .map(|column| quote_ident(&column.name)),
        )
        .collect();
    columns.join(", ")
}

/// Makes `schema.name` the view `definition`, recording `comment` on it. Replaced only when
/// its definition changed (the comment records it), so a start does not wait for the lock of a
/// transform reading it. A view whose columns changed other than at the end cannot be
/// replaced: it is made anew, with the views built on it (made again by the caller after).
async fn replace_view(
    client: &tokio_postgres::Client,
    schema: &str,
    name: &str,
    definition: &str,
    comment: &str,
) -> anyhow::Result<()> {
    let view = format!("{schema}.{}", quote_ident(name));
    let current: Option<String> = client
        .query_opt(
            "SELECT obj_description(c.oid, 'pg_class')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'v'",
            &[&schema, &name],
        )
        .await?
        .and_then(|row| row.get(0));
    if current.as_deref() == Some(comment) {
        return Ok(());
    }
    let replace = format!("CREATE OR REPLACE VIEW {view} AS {definition}");
    if client.batch_execute(&replace).await.is_err() {
        client
            .batch_execute(&format!(
                "DROP VIEW IF EXISTS {view} CASCADE; CREATE VIEW {view} AS {definition}"
            ))
            .await?;
    }
    client
        .batch_execute(&format!(
            "COMMENT ON VIEW {view} IS {}",
            quote_literal(comment)
        ))
        .await?;
    Ok(())
}

/// `staging_rows.<table>`: made, or moved from where an earlier version made it, then given
/// the columns the definition gained and its index. Whether it has `_count`.
async fn ensure_staging_table(
    client: &tokio_postgres::Client,
    source: &Source,
) -> anyhow::Result<bool> {
    move_legacy_table(client, source).await?;
    let counts = ensure_columns(client, source).await?;
    ensure_batch_index(client, source).await?;
    Ok(counts)
}

async fn move_legacy_table(client: &tokio_postgres::Client, source: &Source) -> anyhow::Result<()> {
    let table = source.rows_table();
    let table_name = source.table_name();
    // A table made by a version before migration 0013 is still `staging.<table>`: it moves
    // (with its rows, indexes and grants) and the view takes its name. The snapshot view that
    // read it follows the table, so it is dropped to be made again over the new view.
    let legacy: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                             WHERE n.nspname = 'staging' AND c.relname = $1 AND c.relkind = 'r')
                AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                 WHERE n.nspname = $2 AND c.relname = $1)",
            &[&table_name, &ROWS_SCHEMA],
        )
        .await?
        .get(0);
    if legacy {
        client
            .batch_execute(&format!(
                "DROP VIEW IF EXISTS {SNAPSHOT_SCHEMA}.{name};
                 ALTER TABLE {old} SET SCHEMA {ROWS_SCHEMA};",
                name = quote_ident(table_name),
                old = source.qualified_table(),
            ))
            .await?;
        tracing::info!(
            table = source.qualified_table(),
            moved_to = table,
            "moved a staging table to its schema; a view takes its name"
        );
    }
    Ok(())
}

/// Creates the table, adds the columns the definition gained (and `_count`, last, when the
/// source is counted); a column whose type changed is an error. Whether the table has
/// `_count`: a source that stops being counted keeps it, and the rows it counts.
async fn ensure_columns(client: &tokio_postgres::Client, source: &Source) -> anyhow::Result<bool> {
    let table = source.rows_table();
    let mut columns: Vec<String> = LINEAGE_COLUMNS
        .iter()
        .map(|(name, sql_type)| format!("{name} {sql_type}"))
        .collect();
    columns.extend(
        source
            .columns
            .iter()
            .map(|column| format!("{} {}", quote_ident(&column.name), column.column_type.sql())),
    );
    if source.counted() {
        columns.push(format!("{COUNT_COLUMN} {COUNT_TYPE}"));
    }
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} ({})",
            columns.join(", ")
        ))
        .await?;
    let existing = client
        .query(
            "SELECT column_name, format_type(a.atttypid, a.atttypmod)
               FROM information_schema.columns c
               JOIN pg_attribute a ON a.attrelid = format('%I.%I', c.table_schema, c.table_name)::regclass
                                  AND a.attname = c.column_name
              WHERE c.table_schema = $2 AND c.table_name = $1",
            &[&source.table_name(), &ROWS_SCHEMA],
        )
        .await?;
    let existing: BTreeMap<String, String> = existing
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for column in &source.columns {
        let wanted = column.column_type.sql();
        match existing.get(&column.name) {
            Some(found) if *found == wanted => {}
            Some(found) => bail!(
                "column '{}' is {found} in the database but {wanted} in the definition; migrate it by hand",
                column.name
            ),
            None => {
                client
                    .batch_execute(&format!(
                        "ALTER TABLE {table} ADD COLUMN {} {wanted}",
                        quote_ident(&column.name)
                    ))
                    .await?;
            }
        }
    }
    let has_count = existing.contains_key(COUNT_COLUMN);
    if source.counted() && !has_count {
        // Every row staged before stands for one line.
        client
            .batch_execute(&format!(
                "ALTER TABLE {table} ADD COLUMN {COUNT_COLUMN} {COUNT_TYPE}"
            ))
            .await?;
    }
    Ok(source.counted() || has_count)
}

/// The type of `_count`: rows staged before it existed count 1.
const COUNT_TYPE: &str = "bigint NOT NULL DEFAULT 1";

/// The BRIN index on `_batch`, and no other.
///
/// BRIN, not b-tree: a batch's rows are appended together, so block ranges find them as
/// well as a b-tree would, at a fraction of the cost while loading (a b-tree made a 1M-row
/// COPY about 60 % slower; docs/PERFORMANCE.md). One on `_batch` only: every query of a
/// file's rows also names its batch (`load::delete_file_rows`), and on PostgreSQL 15 each
/// BRIN index costs every COPYed row two buffer lookups (0.13-0.17 s per 1M rows, about a
/// quarter of a COPY of the orders). Tables made by earlier versions lose their b-tree
/// indexes and the one on `_file_id` here.
///
/// Only what is missing or left over is changed: `CREATE INDEX IF NOT EXISTS` waits for a
/// lock on the table even when the index is there, so a service starting while a file is
/// being COPYed would wait for the COPY, and the COPY's other connections for the service
/// (their lock requests queue behind its own).
///
/// With autosummarize a block range is summarized (by autovacuum) soon after it fills: a
/// range never summarized matches every search, so without it each query by batch or file
/// read every row staged since the table was last vacuumed. Autovacuum gets there in its own
/// time, so the transformer also summarizes the new ranges before a batch's models
/// (`ops.analyze_staging_table`, migration 0019).
async fn ensure_batch_index(
    client: &tokio_postgres::Client,
    source: &Source,
) -> anyhow::Result<()> {
    let table = source.rows_table();
    let table_name = source.table_name();
    let present: BTreeMap<String, bool> = client
        .query(
            "SELECT c.relname, coalesce('autosummarize=on' = ANY (c.reloptions), false)
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_class t ON t.oid = i.indrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
              WHERE n.nspname = $1 AND t.relname = $2",
            &[&ROWS_SCHEMA, &table_name],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for old in ["file_key_idx", "batch_idx", "file_brin"] {
        let name = format!("{table_name}_{old}");
        if present.contains_key(&name) {
            client
                .batch_execute(&format!("DROP INDEX {ROWS_SCHEMA}.{}", quote_ident(&name)))
                .await?;
        }
    }
    let name = format!("{table_name}_batch_brin");
    let sql = match present.get(&name) {
        None => format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} USING brin (_batch) WITH (autosummarize = on)",
            quote_ident(&name)
        ),
        Some(false) => format!(
            "ALTER INDEX {ROWS_SCHEMA}.{} SET (autosummarize = on)",
            quote_ident(&name)
        ),
        Some(true) => return Ok(()),
    };
    client.batch_execute(&sql).await?;
    Ok(())
}
