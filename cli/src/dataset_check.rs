//! `landfall dataset check DIR`: validates a dataset definition folder and its SQL before a file
//! lands, reporting every problem found with its file and line:
//!
//! 1. `DIR/dataset.toml`, parsed and validated as the services do (`catalog`: key
//!    patterns included), and its staging table names and key patterns against the other
//!    datasets' (they share the `staging` schema and the landing prefix);
//! 2. the models in `DIR/models/*.sql`: headers and dependency order, as the
//!    transformer loads them (`catalog::models::ModelSet`);
//! 3. `DIR/checks.toml` and `DIR/exports.toml`, as the quality-checker and the exporter read
//!    them, and `DIR/extract.toml` when there is one, as the extractor reads it (its tables are
//!    in the shop's database, which the check does not reach);
//! 4. then, in a scratch database created for the purpose (and dropped afterwards): the
//!    platform's migrations, the dataset's staging tables and its own migrations
//!    (`DIR/migrations`), every model in run order, every check's query and every export's
//!    columns, all inside one transaction that is rolled back. An SQL error is reported at the
//!    model file's line PostgreSQL points to. Staging is empty there, so errors that depend on
//!    data (a division by zero, a failed cast of a value) cannot show.

mod declarations;
mod locate;
mod models;
mod sql;

use std::fmt;
use std::path::{Path, PathBuf};

use catalog::checks::Check;
use catalog::exports::ReportExport;
use catalog::{Dataset, Datasets};
use chrono::NaiveDate;

use declarations::read_declarations;
use locate::{find_line, line_of_quoted_name, locate};
use models::check_models;
use sql::{SqlInputs, run_sql};

#[derive(Debug, clap::Subcommand)]
pub enum DatasetCommand {
    /// Validate a dataset folder (dataset.toml), its models, checks and exports, and run its SQL
    /// in a scratch database; every problem is reported as file:line: message.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The dataset's folder: dataset.toml, models/*.sql, checks.toml, exports.toml and
    /// migrations/.
    pub dir: PathBuf,
    /// The other datasets, whose staging table names this one must not reuse.
    #[arg(long, env = "LANDFALL_DATASETS_DIR", default_value = "datasets")]
    pub datasets_dir: PathBuf,
    /// The PostgreSQL server to create the scratch database on (the URL's database is only
    /// used to connect).
    #[arg(
        long,
        env = "LANDFALL_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    pub database_url: String,
    /// The batch date the models run for (`ops.batch_date()`); today by default.
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Check the files only; run no SQL.
    #[arg(long)]
    pub no_database: bool,
}

pub async fn run(command: DatasetCommand) -> anyhow::Result<()> {
    match command {
        DatasetCommand::Check(args) => {
            let report = check(&args).await?;
            print!("{report}");
            anyhow::ensure!(
                report.problems.is_empty(),
                "{} problem(s) in {}",
                report.problems.len(),
                args.dir.display()
            );
            Ok(())
        }
    }
}

/// One problem: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// What the check found: a line per stage, then the problems.
#[derive(Debug, Default)]
pub struct Report {
    pub stages: Vec<(&'static str, String)>,
    pub problems: Vec<Problem>,
}

impl Report {
    fn problem(&mut self, file: &Path, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        });
    }

    fn stage(&mut self, name: &'static str, text: impl Into<String>) {
        self.stages.push((name, text.into()));
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, text) in &self.stages {
            writeln!(f, "{name:<10} {text}")?;
        }
        if self.problems.is_empty() {
            return writeln!(f, "{:<10} no problems", "ok");
        }
        writeln!(f)?;
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        writeln!(f, "\n{} problem(s)", self.problems.len())
    }
}

/// A file's text with where it came from.
struct SourceFile {
    path: PathBuf,
    text: String,
}

/// Runs every stage it can; a stage whose input is broken is reported and the ones that need it
/// are skipped.
pub async fn check(args: &CheckArgs) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let Some((dataset, definition)) = read_definition(args, &mut report) else {
        return Ok(report);
    };
    report.stage("dataset", describe(&dataset, &definition));
    check_other_datasets(args, &dataset, &definition, &mut report);

    let models_folder = dataset.models_folder();
    let models = check_models(&models_folder, &mut report);
    let (checks, exports) = read_checks_and_exports(&dataset, &mut report);
    read_extract(&dataset, &mut report);
    if args.no_database {
        return Ok(report);
    }
    let sql = SqlInputs {
        dataset: &dataset,
        definition: &definition,
        models_folder: &models_folder,
        models: models.as_ref(),
        checks: checks.as_ref(),
        exports: exports.as_ref(),
    };
    run_sql(args, &sql, &mut report).await?;
    Ok(report)
}

/// `DIR/dataset.toml`, parsed and validated; `None` (and the problem reported) when it cannot be
/// read or is not valid.
fn read_definition(args: &CheckArgs, report: &mut Report) -> Option<(Dataset, SourceFile)> {
    let definition_path = args.dir.join("dataset.toml");
    let text = match std::fs::read_to_string(&definition_path) {
        Ok(text) => text,
        Err(error) => {
            report.problem(&definition_path, None, format!("cannot be read: {error}"));
            return None;
        }
    };
    let dataset = match Datasets::parse(&text) {
        Ok(dataset) => Dataset {
            dir: args.dir.clone(),
            ..dataset
        },
        Err(error) => {
            let (line, message) = locate(&text, &error);
            let line = line.or_else(|| line_of_quoted_name(&text, &message));
            report.problem(&definition_path, line, message);
            return None;
        }
    };
    let definition = SourceFile {
        path: definition_path,
        text,
    };
    Some((dataset, definition))
}

/// The dataset's line: its name, file, mode and sources with their staging tables.
fn describe(dataset: &Dataset, definition: &SourceFile) -> String {
    // A source's mode and key pattern are shown where they are not the dataset's default.
    let sources: Vec<String> = dataset
        .sources
        .iter()
        .map(|source| {
            let mut notes = Vec::new();
            if source.mode() != dataset.mode {
                notes.push(source.mode().as_str().to_owned());
            }
            if !source.pattern().is_default() {
                notes.push(format!("keys {}.csv[.gz]", source.pattern().resolved()));
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            };
            format!("{} → staging.{}{notes}", source.name, source.table_name())
        })
        .collect();
    format!(
        "{} ({}, {} mode): {}",
        dataset.name,
        definition.path.display(),
        dataset.mode.as_str(),
        sources.join(", ")
    )
}

/// A file read with what it declares.
type Declarations<T> = Option<(SourceFile, Vec<T>)>;

/// `checks.toml` and `exports.toml` in the dataset's models folder, read as the quality-checker
/// and the exporter read them.
fn read_checks_and_exports(
    dataset: &Dataset,
    report: &mut Report,
) -> (Declarations<Check>, Declarations<ReportExport>) {
    let checks = read_declarations(
        &dataset.checks_file(),
        "[[checks]]",
        catalog::checks::parse,
        report,
    );
    if let Some((file, checks)) = &checks {
        report.stage(
            "checks",
            format!("{} ({})", checks.len(), file.path.display()),
        );
    }
    let exports = read_declarations(
        &dataset.exports_file(),
        "[[exports]]",
        catalog::exports::parse,
        report,
    );
    if let Some((file, exports)) = &exports {
        let names: Vec<&str> = exports.iter().map(|e| e.report.as_str()).collect();
        report.stage(
            "exports",
            format!(
                "{} ({}): {}",
                exports.len(),
                file.path.display(),
                names.join(", ")
            ),
        );
    }
    (checks, exports)
}

/// `extract.toml`, when the dataset has one, read as the extractor reads it.
fn read_extract(dataset: &Dataset, report: &mut Report) {
    let path = dataset.extract_file();
    if !path.is_file() {
        return;
    }
    let extract = read_declarations(
        &path,
        "[[sources]]",
        |text| catalog::extract::parse(text, dataset),
        report,
    );
    if let Some((file, sources)) = &extract {
        let read: Vec<String> = sources
            .iter()
            .map(|source| {
                format!(
                    "{} ← {} ({})",
                    source.source,
                    source.origin.describe(),
                    source.mode.as_str()
                )
            })
            .collect();
        report.stage(
            "extract",
            format!(
                "{} ({}): {}",
                sources.len(),
                file.path.display(),
                read.join(", ")
            ),
        );
    }
}

/// Another dataset with the same name, or a staging table another dataset already uses.
fn check_other_datasets(
    args: &CheckArgs,
    dataset: &Dataset,
    definition: &SourceFile,
    report: &mut Report,
) {
    let Ok(entries) = std::fs::read_dir(&args.datasets_dir) else {
        return;
    };
    let this = definition.path.canonicalize().ok();
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("dataset.toml")))
        .filter(|path| path.is_file() && path.canonicalize().ok() != this)
        .collect();
    paths.sort();
    for path in paths {
        // A broken neighbour is its own folder's problem, not this one's.
        let Some(other) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| Datasets::parse(&text).ok())
        else {
            continue;
        };
        if other.name == dataset.name {
            report.problem(
                &definition.path,
                find_line(&definition.text, "name"),
                format!(
                    "dataset '{}' is also defined in {}",
                    dataset.name,
                    path.display()
                ),
            );
        }
        if let Some((source, message)) = catalog::patterns_overlap(dataset, &other) {
            let line = source
                .key_pattern
                .as_ref()
                .or(dataset.key_pattern.as_ref())
                .and_then(|written| find_line(&definition.text, &format!("\"{written}\"")))
                .or_else(|| find_line(&definition.text, &format!("name = \"{}\"", source.name)));
            report.problem(
                &definition.path,
                line,
                format!("{message} ({})", path.display()),
            );
        }
        for source in &dataset.sources {
            if other
                .sources
                .iter()
                .any(|theirs| theirs.table_name() == source.table_name())
            {
                let line = find_line(
                    &definition.text,
                    &format!("table = \"{}\"", source.table_name()),
                )
                .or_else(|| find_line(&definition.text, &format!("name = \"{}\"", source.name)));
                report.problem(
                    &definition.path,
                    line,
                    format!(
                        "source '{}': staging table '{}' is already used by dataset '{}' ({}); give the source a `table = \"…\"` of its own",
                        source.name,
                        source.table_name(),
                        other.name,
                        path.display()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
