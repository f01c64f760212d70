//! `landfall demo --from-db`: the batches' tables come from a database instead of files. A
//! sample shop database (`datasets/ecommerce/shop.sql`) is made anew beside the demo's; for each
//! ingestion date it is filled with that date's sample data, and the extractor lands its tables
//! (`datasets/ecommerce/extract.toml`) as the extractor service would. Files of sources the shop
//! does not hold (the holiday calendar) are put as files.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use scratch::shop::{Shop, TABLES};
use scratch::{Admin, with_dbname};

use super::wait::{Uploaded, put_files};
use super::{Batch, Run};

/// Extracts each batch in date order: the keys and ETags landed for each.
pub(super) async fn extract(
    run: &Run<'_>,
    batches: &[Batch],
    vars: &HashMap<String, String>,
) -> anyhow::Result<Vec<Uploaded>> {
    let args = run.args;
    let target = runtime::db::PgTarget::parse(&args.database_url)?;
    let database = target.config.get_dbname().unwrap_or("landfall_demo");
    let admin = Admin::parse(&with_dbname(&args.database_url, "postgres"))?;
    let shop = Shop::recreate(&admin, format!("{database}_shop"))
        .await
        .context("creating the sample shop database")?;
    println!(
        "Shop database {} (tables of datasets/ecommerce/shop.sql, read as {})",
        shop.database.name,
        scratch::shop::READER
    );
    let mut uploads = Vec::new();
    for batch in batches {
        let mut tables = Vec::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for file in &batch.files {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            let source = name.trim_end_matches(".csv");
            if TABLES
                .iter()
                .any(|(table_source, ..)| *table_source == source)
            {
                let body = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                tables.push((source.to_owned(), body));
            } else {
                files.push(file.clone());
            }
        }
        let loaded: Vec<(&str, &str)> = tables
            .iter()
            .map(|(source, body)| (source.as_str(), body.as_str()))
            .collect();
        shop.load(&loaded)
            .await
            .with_context(|| format!("filling the shop with the data of {}", batch.date))?;
        let mut uploaded = put_files(run, batch.date, &files).await?;
        let date = batch.date.format("%Y-%m-%d").to_string();
        let env = runtime::Env::from_fn(|name| match name {
            "LANDFALL_SOURCE_DATABASE_URL" => Some(shop.reader_url.clone()),
            "LANDFALL_EXTRACT_DATASET" => Some(args.sample.dataset.clone()),
            "LANDFALL_EXTRACT_DATE" => Some(date.clone()),
            _ => vars.get(name).cloned(),
        });
        let config =
            <extractor::ExtractorConfig as runtime::service::ServiceConfig>::from_env(&env)?;
        let extracted = extractor::extract_once(&config).await?;
        let rows: u64 = extracted.iter().map(|file| file.rows).sum();
        for file in &extracted {
            uploaded.keys.push(file.key.clone());
            uploaded.etags.push(file.etag.clone());
        }
        uploaded.at = chrono::Utc::now();
        println!(
            "Extracted     {}: {} tables, {rows} rows; {} file(s) uploaded",
            batch.date,
            extracted.len(),
            files.len()
        );
        uploads.push(uploaded);
    }
    Ok(uploads)
}
