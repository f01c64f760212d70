//! The extractor: reads the tables a dataset's `extract.toml` declares from the shop's own
//! PostgreSQL database and writes one gzip CSV landing file per source under
//! `ingestion_date=<date>`, so that from the S3 notification on everything is the pipeline that
//! exists. It runs once and exits (a Kubernetes CronJob per dataset, or `landfall extract`).

pub mod config;
pub mod digest;
pub mod extract;
pub mod plan;
pub mod upload;

use anyhow::Context as _;
use catalog::Datasets;
use catalog::extract::ExtractCatalog;
use runtime::Shutdown;

pub use config::ExtractorConfig;
pub use extract::Extracted;

pub const SERVICE: &str = runtime::config::EXTRACTOR;

/// Runs one extract of the configured dataset and date, logging each file; an error when the
/// run landed nothing (or, at completion, less than all of it: the error says which).
pub async fn run(config: ExtractorConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let files = tokio::select! {
        files = extract_once(&config) => files?,
        () = shutdown.wait() => anyhow::bail!(
            "stopped by a signal before the run finished; nothing of it was landed \
             (its open multipart uploads are left to the bucket's lifecycle rule)"
        ),
    };
    for file in &files {
        tracing::info!(
            source = file.source,
            key = file.key,
            rows = file.rows,
            bytes = file.bytes,
            landed = file.landed,
            "{}",
            if file.landed {
                "landed"
            } else {
                "unchanged since the file already landed for the date; not written again"
            }
        );
    }
    Ok(())
}

/// The whole run: datasets, both databases, S3, then [`extract::run`].
pub async fn extract_once(config: &ExtractorConfig) -> anyhow::Result<Vec<Extracted>> {
    let datasets = Datasets::load(&config.common.datasets_dir)?;
    let catalog = ExtractCatalog::load(&datasets)?;
    let dataset = datasets.get(&config.dataset).with_context(|| {
        format!(
            "no dataset '{}' in {} (LANDFALL_EXTRACT_DATASET)",
            config.dataset,
            config.common.datasets_dir.display()
        )
    })?;
    let sources = catalog.sources(&dataset.name).with_context(|| {
        format!(
            "dataset '{}' has no {} saying which tables to read",
            dataset.name,
            dataset.extract_file().display()
        )
    })?;
    let s3 = runtime::s3::client(&config.s3).await?;
    if config.common.migrate_on_start {
        // As a service does: the migration with the login user's rights, the work as the role.
        let mut owner = runtime::pg::connect(config.common.database_url.expose())
            .await
            .context("connecting to the warehouse database (LANDFALL_DATABASE_URL) to migrate")?;
        runtime::db::migrate(&mut owner, &datasets).await?;
    }
    let pool = runtime::db::pool_as(
        &config.common.database_url,
        1,
        config.common.database_role.as_deref(),
    )?;
    let mut warehouse = pool
        .get()
        .await
        .map_err(runtime::db::explain)
        .with_context(|| match &config.common.database_role {
            Some(role) => format!(
                "connecting to the warehouse database as role {role} (LANDFALL_DATABASE_ROLE; \
                 the login user must be a member of it, and the migration must have run)"
            ),
            None => "connecting to the warehouse database (LANDFALL_DATABASE_URL)".to_owned(),
        })?;
    let source = runtime::pg::connect(config.source_database_url.expose())
        .await
        .context("connecting to the source database (LANDFALL_SOURCE_DATABASE_URL)")?;
    let date = config
        .date
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    let run = extract::Run {
        dataset,
        sources,
        date,
        bucket: &config.landing.bucket,
        landing_prefix: &config.landing.landing_prefix,
        part_size: config.part_size,
        gzip_level: config.gzip_level,
    };
    extract::run(&run, &s3, &source, &mut warehouse).await
}
