//! `landfall rejects`: the rows the stager rejected, each with its file, line, column, value
//! and reason, so a person can fix the source and land the file again. The same rows are in
//! the view `rejected.rows`, which checks may read.

use chrono::NaiveDate;
use serde::Serialize;

use crate::table::Table;

#[derive(Debug, clap::Args)]
pub struct RejectsArgs {
    /// The dataset whose rejected rows are listed.
    #[arg(long)]
    pub dataset: String,
    /// Only the files of this ingestion date (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Only this file (its id, as `landfall status` shows it).
    #[arg(long)]
    pub file: Option<i64>,
    /// At most this many rows, newest file first, then by line.
    #[arg(long, default_value_t = 200)]
    pub limit: i64,
    /// Print one JSON document (`{"rows": [...], "files": [...]}`) instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// One rejected row.
#[derive(Debug, Serialize)]
pub struct RejectedRow {
    pub file_id: i64,
    pub ingestion_date: NaiveDate,
    pub source: String,
    pub key: String,
    pub line: i64,
    /// `null` when the whole row was at fault (a wrong number of fields, a repeated key).
    pub column: Option<String>,
    pub value: Option<String>,
    pub reason: String,
}

/// Per file: how many rows it rejected and how many of them are kept (and listed).
#[derive(Debug, Serialize)]
pub struct RejectingFile {
    pub file_id: i64,
    pub ingestion_date: NaiveDate,
    pub source: String,
    pub key: String,
    /// The file's state: `staged` (its good rows loaded) or `rejected` (as a whole).
    pub state: String,
    pub rows_rejected: i64,
    pub rows_kept: i64,
    /// Why the whole file was rejected, when it was.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RejectsReport {
    pub files: Vec<RejectingFile>,
    pub rows: Vec<RejectedRow>,
}

pub async fn report(
    client: &tokio_postgres::Client,
    args: &RejectsArgs,
) -> anyhow::Result<RejectsReport> {
    let files = client
        .query(
            "SELECT f.file_id, f.ingestion_date, f.source, f.key, f.state,
                    coalesce(f.rows_rejected, 0)::bigint,
                    (SELECT count(*) FROM ops.rejected_rows r WHERE r.file_id = f.file_id),
                    CASE WHEN f.state = 'rejected' THEN f.reason END
               FROM ops.files f
              WHERE f.dataset = $1
                AND ($2::date IS NULL OR f.ingestion_date = $2)
                AND ($3::bigint IS NULL OR f.file_id = $3)
                AND (f.rows_rejected > 0
                     OR EXISTS (SELECT 1 FROM ops.rejected_rows r WHERE r.file_id = f.file_id))
              ORDER BY f.file_id DESC",
            &[&args.dataset, &args.date, &args.file],
        )
        .await?
        .iter()
        .map(|row| RejectingFile {
            file_id: row.get(0),
            ingestion_date: row.get(1),
            source: row.get(2),
            key: row.get(3),
            state: row.get(4),
            rows_rejected: row.get(5),
            rows_kept: row.get(6),
            reason: row.get(7),
        })
        .collect();
    let rows = client
        .query(
            "SELECT f.file_id, f.ingestion_date, f.source, f.key, r.line, r.column_name,
                    r.value, r.reason
               FROM ops.rejected_rows r
               JOIN ops.files f ON f.file_id = r.file_id
              WHERE f.dataset = $1
                AND ($2::date IS NULL OR f.ingestion_date = $2)
                AND ($3::bigint IS NULL OR f.file_id = $3)
              ORDER BY f.file_id DESC, r.line, r.id
              LIMIT $4",
            &[&args.dataset, &args.date, &args.file, &args.limit],
        )
        .await?
        .iter()
        .map(|row| RejectedRow {
            file_id: row.get(0),
            ingestion_date: row.get(1),
            source: row.get(2),
            key: row.get(3),
            line: row.get(4),
            column: row.get(5),
            value: row.get(6),
            reason: row.get(7),
        })
        .collect();
    Ok(RejectsReport { files, rows })
}

/// The report as JSON or as two tables: the files that rejected rows, then the rows.
pub async fn render(client: &tokio_postgres::Client, args: &RejectsArgs) -> anyhow::Result<String> {
    let report = report(client, args).await?;
    if args.json {
        return Ok(serde_json::to_string_pretty(&report)? + "\n");
    }
    if report.files.is_empty() {
        return Ok(format!(
            "No rejected rows for dataset {}{}{}\n",
            args.dataset,
            args.date
                .map(|date| format!(" on {date}"))
                .unwrap_or_default(),
            args.file
                .map(|file| format!(" in file {file}"))
                .unwrap_or_default()
        ));
    }
    let mut files = Table::new(&[
        "file", "batch", "source", "state", "rejected", "kept", "key",
    ]);
    for file in &report.files {
        files.row(vec![
            file.file_id.to_string(),
            file.ingestion_date.to_string(),
            file.source.clone(),
            file.state.clone(),
            file.rows_rejected.to_string(),
            file.rows_kept.to_string(),
            file.key.clone(),
        ]);
    }
    let mut out = format!(
        "Files with rejected rows (newest first)\n{}",
        files.render()
    );
    for file in report.files.iter().filter(|file| file.reason.is_some()) {
        out.push_str(&format!(
            "file {} rejected as a whole: {}\n",
            file.file_id,
            file.reason.as_deref().unwrap_or_default()
        ));
    }
    let mut rows = Table::new(&["file", "line", "column", "value", "reason"]);
    for row in &report.rows {
        rows.row(vec![
            row.file_id.to_string(),
            row.line.to_string(),
            row.column.clone().unwrap_or_else(|| "-".into()),
            row.value.clone().unwrap_or_default(),
            row.reason.clone(),
        ]);
    }
    out.push_str(&format!("\nRejected rows\n{}", rows.render()));
    let kept: i64 = report.files.iter().map(|file| file.rows_kept).sum();
    if (report.rows.len() as i64) < kept {
        out.push_str(&format!(
            "({} of {kept} rows shown: --limit shows more, --file one file's)\n",
            report.rows.len()
        ));
    }
    Ok(out)
}
