//! The dataset's SQL run for real, in a scratch database created for the purpose and dropped
//! afterwards: the platform's migrations, its staging tables and its own migrations, then every
//! model in run order, every check's query, the reports' publication and every export's columns,
//! all inside one transaction that is rolled back. Each runs as the database role of the service
//! that runs it in production (models as `landfall_transformer`, checks and the publication as
//! `landfall_quality_checker`, exports as `landfall_exporter`), so a read the service may not do
//! fails here with the same `permission denied` it would fail with there.

use std::future::Future;
use std::path::Path;

use anyhow::Context as _;
use catalog::checks::Check;
use catalog::exports::ReportExport;
use catalog::models::ModelSet;
use catalog::{Dataset, Datasets};
use scratch::{Admin, ScratchDatabase};
use tokio_postgres::Transaction;

use super::locate::{db_message, find_line, line_of_position};
use super::{CheckArgs, Report, SourceFile};

pub(super) struct SqlInputs<'a> {
    pub(super) dataset: &'a Dataset,
    pub(super) definition: &'a SourceFile,
    pub(super) models_folder: &'a Path,
    pub(super) models: Option<&'a (ModelSet, Vec<SourceFile>)>,
    pub(super) checks: Option<&'a (SourceFile, Vec<Check>)>,
    pub(super) exports: Option<&'a (SourceFile, Vec<ReportExport>)>,
}

/// Creates the scratch database, runs everything in it, and drops it whatever happened.
pub(super) async fn run_sql(
    args: &CheckArgs,
    inputs: &SqlInputs<'_>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let config = Admin::parse(&args.database_url)
        .context("--database-url (LANDFALL_DATABASE_URL) is not usable")?;
    let admin = config
        .connect()
        .await
        .context("connecting to PostgreSQL (--database-url / LANDFALL_DATABASE_URL) to create a scratch database; --no-database checks the files only")?;
    let scratch = ScratchDatabase::create(
        &config,
        &admin,
        ScratchDatabase::unique_name("landfall_check"),
    )
    .await?;
    let datasets_dir = std::env::temp_dir().join(format!("{}-datasets", scratch.name));
    let outcome = in_scratch(args, inputs, &scratch, &datasets_dir, report).await;
    let _ = std::fs::remove_dir_all(&datasets_dir);
    scratch.drop().await?;
    outcome
}

/// Copies the `*.sql` files of a dataset's `migrations` folder, when it has one.
fn copy_migrations(from: &Path, to: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", from.display())),
    };
    std::fs::create_dir_all(to)?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "sql") && path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap_or_default()))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}

async fn in_scratch(
    args: &CheckArgs,
    inputs: &SqlInputs<'_>,
    scratch: &ScratchDatabase,
    datasets_dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut client = scratch.connect().await?;
    // The migrations, and the staging tables and migrations of this dataset only.
    let folder = datasets_dir.join(&inputs.dataset.name);
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join("dataset.toml"), &inputs.definition.text)?;
    copy_migrations(&args.dir.join("migrations"), &folder.join("migrations"))?;
    let datasets = Datasets::load(datasets_dir)?;
    if let Err(error) = scratch.migrate(&mut client, &datasets).await {
        report.problem(
            &inputs.definition.path,
            None,
            format!("migrating (the staging tables, the dataset's migrations) failed: {error:#}"),
        );
        return Ok(());
    }
    let date = args
        .date
        .unwrap_or_else(|| chrono::Local::now().date_naive());
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT set_config('landfall.batch_date', $1, true)",
        &[&date.to_string()],
    )
    .await?;
    let ran: Vec<String> = [
        run_models(&tx, inputs, report).await?,
        run_checks(&tx, inputs, report).await?,
        publish_reports(&tx, inputs, date, report).await?,
        select_exports(&tx, inputs, report).await?,
    ]
    .into_iter()
    .flatten()
    .collect();
    tx.rollback().await?;
    report.stage(
        "SQL",
        format!(
            "{} ran for batch {date} in the scratch database {} (migrations and staging tables applied; rolled back, dropped)",
            ran.join(", "),
            scratch.name
        ),
    );
    Ok(())
}

/// Runs `step` as `stage`'s database role in a savepoint of `tx`: released when it succeeds,
/// rolled back to when it fails, so the transaction goes on either way, back under the login
/// user's own rights.
async fn in_savepoint<T, E>(
    tx: &Transaction<'_>,
    stage: runtime::Stage,
    step: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<Result<T, E>> {
    let role = stage.database_role();
    tx.batch_execute("SAVEPOINT landfall_check").await?;
    tx.batch_execute(&format!("SET LOCAL ROLE {role}"))
        .await
        .with_context(|| {
            format!(
                "taking the role {role} to run the SQL as the {} does (the login user must be a member of it: docs/DEPLOY.md, \"Database roles\")",
                stage.name()
            )
        })?;
    let result = step.await;
    match result {
        Ok(_) => {
            tx.batch_execute("RESET ROLE; RELEASE SAVEPOINT landfall_check")
                .await?
        }
        Err(_) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT landfall_check")
                .await?
        }
    }
    Ok(result)
}

/// Every model in run order, each error reported at the model file's line PostgreSQL points to.
async fn run_models(
    tx: &Transaction<'_>,
    inputs: &SqlInputs<'_>,
    report: &mut Report,
) -> anyhow::Result<Option<String>> {
    let Some((models, _)) = inputs.models else {
        return Ok(None);
    };
    for model in models.models() {
        let path = inputs.models_folder.join(format!("{}.sql", model.name));
        let ran = in_savepoint(tx, runtime::Stage::Transformer, tx.simple_query(&model.sql));
        if let Err(error) = ran.await? {
            report.problem(
                &path,
                line_of_position(&model.sql, &error),
                format!("model {}: {}", model.name, db_message(&error)),
            );
        }
    }
    Ok(Some(format!("{} model(s)", models.models().len())))
}

/// Every check's query (its failing rows, counted).
async fn run_checks(
    tx: &Transaction<'_>,
    inputs: &SqlInputs<'_>,
    report: &mut Report,
) -> anyhow::Result<Option<String>> {
    let Some((file, checks)) = inputs.checks else {
        return Ok(None);
    };
    for check in checks {
        let sql = format!(
            "SELECT count(*) FROM ({}) AS failing",
            catalog::checks::sql::failing_rows(check)
        );
        let ran = in_savepoint(tx, runtime::Stage::QualityChecker, tx.simple_query(&sql));
        if let Err(error) = ran.await? {
            report.problem(
                &file.path,
                find_line(&file.text, &format!("\"{}\"", check.name)),
                format!("check '{}': {}", check.name, db_message(&error)),
            );
        }
    }
    Ok(Some(format!("{} check(s)", checks.len())))
}

/// As the quality checker does for a batch that passed: each report's audit rows copied to
/// analytics (which makes a user's published table), so the exports find it.
async fn publish_reports(
    tx: &Transaction<'_>,
    inputs: &SqlInputs<'_>,
    date: chrono::NaiveDate,
    report: &mut Report,
) -> anyhow::Result<Option<String>> {
    if inputs.dataset.reports.is_empty() {
        return Ok(None);
    }
    let batch = contract::BatchKey {
        dataset: inputs.dataset.name.clone(),
        ingestion_date: date,
    };
    let published = pipeline::publish::publish(tx, &batch, &inputs.dataset.reports);
    if let Err(failure) = in_savepoint(tx, runtime::Stage::QualityChecker, published).await? {
        report.problem(
            &inputs.definition.path,
            find_line(&inputs.definition.text, "reports"),
            format!("publishing the reports: {}", failure.reason()),
        );
    }
    Ok(Some(format!(
        "{} report(s) published",
        inputs.dataset.reports.len()
    )))
}

/// Every export's table with its `ingestion_date` and `order_by` columns.
async fn select_exports(
    tx: &Transaction<'_>,
    inputs: &SqlInputs<'_>,
    report: &mut Report,
) -> anyhow::Result<Option<String>> {
    let Some((file, exports)) = inputs.exports else {
        return Ok(None);
    };
    for export in exports {
        let columns: Vec<String> = std::iter::once("ingestion_date")
            .chain(export.order_by.iter().map(String::as_str))
            .map(runtime::db::quote_ident)
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE false",
            columns.join(", "),
            export.qualified_table()
        );
        let ran = in_savepoint(tx, runtime::Stage::Exporter, tx.simple_query(&sql));
        if let Err(error) = ran.await? {
            report.problem(
                &file.path,
                find_line(&file.text, &format!("\"{}\"", export.report)),
                format!(
                    "export '{}': {} (the table needs an ingestion_date column and the order_by columns)",
                    export.report,
                    db_message(&error)
                ),
            );
        }
    }
    Ok(Some(format!("{} export(s)", exports.len())))
}
