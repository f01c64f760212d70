//! What the demo prints: each exported batch with its report rows, and how to land a file in a
//! demo that keeps running.

use anyhow::Context as _;
use catalog::exports::ReportExport;
use chrono::{DateTime, NaiveDate, Utc};

use super::wait::Uploaded;
use super::{ACCESS_KEY, BUCKET, REGION, SECRET_KEY};

/// A batch exported: its rows staged and rejected, the time from its last upload to its export,
/// the files of it the stager rejected, and the first rows of its reports.
pub(super) async fn print_batch(
    client: &tokio_postgres::Client,
    dataset: &str,
    date: NaiveDate,
    uploaded: &Uploaded,
    reports: &[ReportExport],
) -> anyhow::Result<()> {
    let uploaded_at = uploaded.at;
    let row = client
        .query_one(
            "SELECT b.exported_at,
                    (SELECT coalesce(sum(rows_loaded), 0)::bigint FROM ops.files f
                      WHERE f.dataset = b.dataset AND f.ingestion_date = b.ingestion_date AND f.state = 'staged'),
                    (SELECT coalesce(sum(rows_rejected), 0)::bigint FROM ops.files f
                      WHERE f.dataset = b.dataset AND f.ingestion_date = b.ingestion_date AND f.state = 'staged')
               FROM ops.batches b WHERE b.dataset = $2 AND b.ingestion_date = $1",
            &[&date, &dataset],
        )
        .await?;
    let exported: DateTime<Utc> = row.get(0);
    let timing = if exported >= uploaded_at {
        format!(
            "{:.2}s from the last upload to the export",
            (exported - uploaded_at).num_milliseconds() as f64 / 1000.0
        )
    } else {
        "already exported from these same files by an earlier run".to_owned()
    };
    println!(
        "\nBatch {date}: {} rows staged, {} rejected; {timing}",
        row.get::<_, i64>(1),
        row.get::<_, i64>(2)
    );
    // A rejected file of a source the batch can do without (e.g. a product snapshot).
    let rejected = client
        .query(
            "SELECT u.key, f.reason FROM unnest($1::text[], $2::text[]) AS u(key, etag)
               JOIN ops.files f ON f.bucket = $3 AND f.key = u.key AND f.etag = u.etag
              WHERE f.state = 'rejected' ORDER BY u.key",
            &[&uploaded.keys, &uploaded.etags, &BUCKET],
        )
        .await?;
    for file in &rejected {
        println!(
            "  rejected by the stager   {}: {}",
            file.get::<_, String>(0),
            file.get::<_, String>(1)
        );
    }
    // Warning-severity checks that found rows: the batch was exported, but say which.
    let warned = client
        .query(
            "SELECT check_name, failing_rows FROM ops.quality_results
              WHERE dataset = $2 AND ingestion_date = $1 AND status = 'failed'
                AND severity <> 'error'
              ORDER BY check_name",
            &[&date, &dataset],
        )
        .await?;
    for check in &warned {
        println!(
            "  warned by a check        {} ({} failing rows)",
            check.get::<_, String>(0),
            check.get::<_, Option<i64>>(1).unwrap_or_default()
        );
    }
    if dataset != "ecommerce" {
        return print_reports(client, date, reports).await;
    }
    for (report, sql) in [
        (
            "agg_public_holiday",
            "SELECT t::text FROM analytics.agg_public_holiday t WHERE ingestion_date = $1",
        ),
        (
            "agg_shipments",
            "SELECT t::text FROM analytics.agg_shipments t WHERE ingestion_date = $1",
        ),
        (
            "best_performing_product",
            "SELECT t::text FROM analytics.best_performing_product t WHERE ingestion_date = $1",
        ),
        (
            "top_products_by_revenue",
            "SELECT rank || '. ' || coalesce(product_name, '(unknown)') || ' ' || revenue FROM analytics.top_products_by_revenue WHERE ingestion_date = $1 AND rank <= 3 ORDER BY rank",
        ),
    ] {
        let rows = client.query(sql, &[&date]).await?;
        let text: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        println!("  {report:<24} {}", text.join("  "));
    }
    Ok(())
}

/// The first rows of each exported report of the batch, in export order: the report's name,
/// then one row a line.
async fn print_reports(
    client: &tokio_postgres::Client,
    date: NaiveDate,
    reports: &[ReportExport],
) -> anyhow::Result<()> {
    const SHOWN: i64 = 3;
    for report in reports {
        let order_by: Vec<String> = report
            .order_by
            .iter()
            .map(|column| runtime::db::quote_ident(column))
            .collect();
        let sql = format!(
            "SELECT t::text FROM {} t WHERE ingestion_date = $1 ORDER BY {} LIMIT {}",
            report.qualified_table(),
            order_by.join(", "),
            SHOWN + 1
        );
        let rows = client
            .query(&sql, &[&date])
            .await
            .with_context(|| format!("reading report {}", report.report))?;
        let mut lines: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        if lines.len() as i64 > SHOWN {
            lines.truncate(SHOWN as usize);
            lines.push("…".into());
        }
        if lines.is_empty() {
            lines.push("(no rows)".into());
        }
        for (index, line) in lines.iter().enumerate() {
            let name = if index == 0 {
                report.report.as_str()
            } else {
                ""
            };
            println!("  {name:<32} {line}");
        }
    }
    Ok(())
}

/// What a person needs to land a file in the running demo: the endpoint, bucket and keys, and
/// a ready command for curl and for the AWS CLI.
pub(super) fn landing_help(
    endpoint: &str,
    dataset: &str,
    date: NaiveDate,
    source: &str,
    required: &[String],
) -> String {
    let key = format!("landing/{dataset}/ingestion_date={date}/{source}.csv");
    format!(
        "To land a file, put it to the S3 endpoint (path-style, region {REGION}):\n\
         \x20 endpoint      {endpoint}\n\
         \x20 bucket        {BUCKET} (keys landing/{dataset}/ingestion_date=YYYY-MM-DD/<source>.csv)\n\
         \x20 access key    {ACCESS_KEY}\n\
         \x20 secret key    {SECRET_KEY}\n\
         \x20 with curl     curl --fail -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 aws:amz:{REGION}:s3 --user {ACCESS_KEY}:{SECRET_KEY} -T {source}.csv {endpoint}/{BUCKET}/{key}\n\
         \x20 with aws      AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY={SECRET_KEY} AWS_DEFAULT_REGION={REGION} aws s3 cp {source}.csv s3://{BUCKET}/{key} --endpoint-url {endpoint}\n\
         A batch goes through once its required sources are there: {}.",
        required.join(", ")
    )
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM, handled from before it says so.
pub(super) async fn keep_running(help: &str) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    println!("\nServices and S3 keep running; Ctrl-C (SIGINT) or SIGTERM stops them.\n{help}");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
