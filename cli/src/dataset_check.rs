//! `landfall dataset check DIR`: validates a dataset definition folder and its SQL before a file
//! lands, reporting every problem found with its file and line:
//!
//! 1. `DIR/dataset.toml`, parsed and validated as the services do (`runtime::datasets`: key
//!    patterns included), and its staging table names and key patterns against the other
//!    datasets' (they share the `staging` schema and the landing prefix);
//! 2. the models in `<models-dir>/<dataset>/*.sql`: headers and dependency order, as the
//!    transformer loads them (`transformer::models::ModelSet`);
//! 3. `checks.toml` and `exports.toml` beside them, as the quality-checker and the exporter read
//!    them;
//! 4. then, in a scratch database created for the purpose (and dropped afterwards): the
//!    platform's migrations, the dataset's staging tables and its own migrations
//!    (`DIR/migrations`), every model in run order, every check's query and every export's
//!    columns, all inside one transaction that is rolled back. An SQL error is reported at the
//!    model file's line PostgreSQL points to. Staging is empty there, so errors that depend on
//!    data (a division by zero, a failed cast of a value) cannot show.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::NaiveDate;
use exporter::catalog::ReportExport;
use quality_checker::checks::Check;
use runtime::datasets::{Dataset, Datasets};
use transformer::models::{Model, ModelSet};

use scratch::{Admin, ScratchDatabase};

#[derive(Debug, clap::Subcommand)]
pub enum DatasetCommand {
    /// Validate a dataset folder (dataset.toml), its models, checks and exports, and run its SQL
    /// in a scratch database; every problem is reported as file:line: message.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The dataset's folder, holding dataset.toml.
    pub dir: PathBuf,
    /// The models folder: the dataset's models, checks.toml and exports.toml are in
    /// <models-dir>/<dataset name>/.
    #[arg(long, env = "LANDFALL_MODELS_DIR", default_value = "sql/models")]
    pub models_dir: PathBuf,
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
    let definition_path = args.dir.join("dataset.toml");
    let text = match std::fs::read_to_string(&definition_path) {
        Ok(text) => text,
        Err(error) => {
            report.problem(&definition_path, None, format!("cannot be read: {error}"));
            return Ok(report);
        }
    };
    let dataset = match Datasets::parse(&text) {
        Ok(dataset) => dataset,
        Err(error) => {
            let (line, message) = locate(&text, &error);
            let line = line.or_else(|| line_of_quoted_name(&text, &message));
            report.problem(&definition_path, line, message);
            return Ok(report);
        }
    };
    let definition = SourceFile {
        path: definition_path,
        text,
    };
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
    report.stage(
        "dataset",
        format!(
            "{} ({}, {} mode): {}",
            dataset.name,
            definition.path.display(),
            dataset.mode.as_str(),
            sources.join(", ")
        ),
    );
    check_other_datasets(args, &dataset, &definition, &mut report);

    let models_dir = args.models_dir.join(&dataset.name);
    let models = check_models(&models_dir, &mut report);
    let checks = read_declarations(
        &models_dir.join(quality_checker::checks::CHECKS_FILE),
        "[[checks]]",
        quality_checker::checks::parse,
        &mut report,
    );
    if let Some((file, checks)) = &checks {
        report.stage(
            "checks",
            format!("{} ({})", checks.len(), file.path.display()),
        );
    }
    let exports = read_declarations(
        &models_dir.join(exporter::catalog::EXPORTS_FILE),
        "[[exports]]",
        exporter::catalog::parse,
        &mut report,
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
    if args.no_database {
        return Ok(report);
    }
    let sql = SqlInputs {
        dataset: &dataset,
        definition: &definition,
        models_dir: &models_dir,
        models: models.as_ref(),
        checks: checks.as_ref(),
        exports: exports.as_ref(),
    };
    run_sql(args, &sql, &mut report).await?;
    Ok(report)
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
        if let Some((source, message)) = runtime::datasets::patterns_overlap(dataset, &other) {
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

/// One model file's header, as the transformer reads it, with the lines of its entries.
struct Header {
    file: SourceFile,
    stem: String,
    model: Option<(usize, String)>,
    depends_on: Vec<(usize, String)>,
}

fn read_header(path: PathBuf) -> anyhow::Result<Header> {
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let stem = path
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut model = None;
    let mut depends_on = Vec::new();
    for (index, line) in text
        .lines()
        .take_while(|line| line.trim_start().starts_with("--") || line.trim().is_empty())
        .enumerate()
    {
        let comment = line.trim_start().trim_start_matches('-').trim();
        if let Some(value) = comment.strip_prefix("model:") {
            model = Some((index + 1, value.trim().to_owned()));
        } else if let Some(value) = comment.strip_prefix("depends_on:") {
            depends_on.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(|name| (index + 1, name.to_owned())),
            );
        }
    }
    Ok(Header {
        file: SourceFile { path, text },
        stem,
        model,
        depends_on,
    })
}

/// Reports every header problem with its line, then loads the folder as the transformer does.
fn check_models(dir: &Path, report: &mut Report) -> Option<(ModelSet, Vec<SourceFile>)> {
    if !dir.is_dir() {
        report.stage(
            "models",
            format!(
                "none ({} does not exist: the dataset's batches run no models)",
                dir.display()
            ),
        );
        return Some((ModelSet::default(), Vec::new()));
    }
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect(),
        Err(error) => {
            report.problem(dir, None, format!("cannot be read: {error}"));
            return None;
        }
    };
    paths.sort();
    let mut headers = Vec::new();
    for path in paths {
        match read_header(path.clone()) {
            Ok(header) => headers.push(header),
            Err(error) => report.problem(&path, None, format!("{error:#}")),
        }
    }
    let before = report.problems.len();
    let names: Vec<&str> = headers.iter().map(|h| h.stem.as_str()).collect();
    for header in &headers {
        match &header.model {
            None => report.problem(
                &header.file.path,
                Some(1),
                format!(
                    "the header has no '-- model: {}' line (the header is the comment lines the file starts with)",
                    header.stem
                ),
            ),
            Some((line, name)) if *name != header.stem => report.problem(
                &header.file.path,
                Some(*line),
                format!(
                    "the header names model '{name}' but the file is {}.sql",
                    header.stem
                ),
            ),
            Some(_) => {}
        }
        for (line, dependency) in &header.depends_on {
            if !names.contains(&dependency.as_str()) {
                report.problem(
                    &header.file.path,
                    Some(*line),
                    format!(
                        "model '{}' depends on '{dependency}', which is not a model (models: {})",
                        header.stem,
                        names.join(", ")
                    ),
                );
            }
        }
    }
    match ModelSet::load(dir) {
        Ok(set) => {
            let order: Vec<&str> = set.models().iter().map(|m| m.name.as_str()).collect();
            report.stage(
                "models",
                format!(
                    "{} ({}), in run order: {}",
                    order.len(),
                    dir.display(),
                    order.join(", ")
                ),
            );
            let files = headers.into_iter().map(|header| header.file).collect();
            Some((set, files))
        }
        Err(error) => {
            if report.problems.len() == before {
                // Not a header problem: a cycle, named by the transformer's message.
                let message = format!("{error:#}");
                let cycle = message
                    .split("form a cycle: ")
                    .nth(1)
                    .and_then(|names| names.split(", ").next())
                    .and_then(|first| headers.iter().find(|h| h.stem == first));
                match cycle {
                    Some(header) => report.problem(
                        &header.file.path,
                        header.depends_on.first().map(|(line, _)| *line),
                        error.root_cause().to_string(),
                    ),
                    None => report.problem(dir, None, message),
                }
            }
            // The transformer would not start; still run the models whose headers are sound,
            // in an order that ignores the broken dependencies, so their SQL is checked too.
            let sound: Vec<Model> = headers
                .iter()
                .filter(|h| h.model.as_ref().is_some_and(|(_, name)| *name == h.stem))
                .map(|h| Model {
                    name: h.stem.clone(),
                    depends_on: h
                        .depends_on
                        .iter()
                        .map(|(_, name)| name.clone())
                        .filter(|name| {
                            headers.iter().any(|other| {
                                other.stem == *name
                                    && other.model.as_ref().is_some_and(|(_, n)| n == name)
                            })
                        })
                        .collect(),
                    sql: h.file.text.clone(),
                })
                .collect();
            let count = sound.len();
            let set = ModelSet::order(sound.clone())
                .or_else(|_| {
                    let alone = sound
                        .into_iter()
                        .map(|model| Model {
                            depends_on: Vec::new(),
                            ..model
                        })
                        .collect();
                    ModelSet::order(alone)
                })
                .ok()?;
            report.stage(
                "models",
                format!(
                    "{} problem(s) in {}: the transformer would not start; the {count} model(s) with a sound header are run below all the same",
                    report.problems.len() - before,
                    dir.display()
                ),
            );
            let files = headers.into_iter().map(|header| header.file).collect();
            Some((set, files))
        }
    }
}

/// Reads a `checks.toml` or `exports.toml` with the service's own parser. When the file has
/// problems, each `[[…]]` entry is parsed on its own as well, so every broken entry is reported
/// with its line, not only the first.
fn read_declarations<T>(
    path: &Path,
    header: &str,
    parse: impl Fn(&str) -> anyhow::Result<Vec<T>>,
    report: &mut Report,
) -> Option<(SourceFile, Vec<T>)> {
    if !path.is_file() {
        let what = if header == "[[checks]]" {
            ("checks", "no checks run")
        } else {
            ("exports", "no reports exported")
        };
        report.stage(
            what.0,
            format!("none ({} does not exist: {})", path.display(), what.1),
        );
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            report.problem(path, None, format!("cannot be read: {error}"));
            return None;
        }
    };
    match parse(&text) {
        Ok(items) => Some((
            SourceFile {
                path: path.to_path_buf(),
                text,
            },
            items,
        )),
        Err(whole) => {
            let before = report.problems.len();
            for (first_line, chunk) in entries(&text, header) {
                if let Err(error) = parse(&chunk) {
                    let (line, message) = locate(&chunk, &error);
                    let message = tidy_entry_message(&message);
                    report.problem(path, Some(first_line + line.unwrap_or(1) - 1), message);
                }
            }
            if report.problems.len() == before {
                let (line, message) = locate(&text, &whole);
                report.problem(path, line, message);
            }
            let what = if header == "[[checks]]" {
                ("checks", "the quality-checker")
            } else {
                ("exports", "the exporter")
            };
            report.stage(
                what.0,
                format!(
                    "{} problem(s) in {}: {} would not start",
                    report.problems.len() - before,
                    path.display(),
                    what.1
                ),
            );
            None
        }
    }
}

/// The `[[header]]` entries of a TOML file, each with the line it starts on.
fn entries(text: &str, header: &str) -> Vec<(usize, String)> {
    let mut entries: Vec<(usize, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim() == header {
            entries.push((index + 1, String::new()));
        }
        if let Some((_, chunk)) = entries.last_mut() {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    entries
}

/// An entry parsed alone is always "entry 1" at "line 1": drop what would mislead.
fn tidy_entry_message(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("[[exports]] entry 1 (") {
        return rest.replacen(')', "", 1);
    }
    match message.find(" (line ") {
        Some(start) => match message[start..].find("): ") {
            Some(end) => format!("{}{}", &message[..start], &message[start + end + 1..]),
            None => message.to_owned(),
        },
        None => message.to_owned(),
    }
}

/// The line and message of a parse error: a TOML error's span, a `(line N)` in the message.
fn locate(text: &str, error: &anyhow::Error) -> (Option<usize>, String) {
    if let Some(toml_error) = error.downcast_ref::<toml::de::Error>() {
        let line = toml_error.span().map(|span| line_of(text, span.start));
        return (line, toml_error.message().trim().to_owned());
    }
    let message = format!("{error:#}");
    let line = message.find("(line ").and_then(|start| {
        message[start + 6..]
            .split(')')
            .next()
            .and_then(|n| n.parse().ok())
    });
    (line, message)
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

/// The first line holding `needle`, outside comments.
fn find_line(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let code = line.split('#').next().unwrap_or("");
            code.contains(needle)
        })
        .map(|index| index + 1)
}

/// A validation message names what is wrong in quotes ('id'); the line that writes it as a TOML
/// string ("id") is where to look. The last name is the most specific.
fn line_of_quoted_name(text: &str, message: &str) -> Option<usize> {
    let names: Vec<&str> = message.split('\'').skip(1).step_by(2).collect();
    names
        .iter()
        .rev()
        .find_map(|name| find_line(text, &format!("\"{name}\"")))
}

/// The 1-based line of PostgreSQL's error position (a 1-based character index into the SQL).
fn line_of_position(sql: &str, error: &tokio_postgres::Error) -> Option<usize> {
    let position = match error.as_db_error()?.position()? {
        tokio_postgres::error::ErrorPosition::Original(position) => *position as usize,
        tokio_postgres::error::ErrorPosition::Internal { .. } => return None,
    };
    let offset = sql
        .char_indices()
        .nth(position.saturating_sub(1))
        .map_or(sql.len(), |(offset, _)| offset);
    Some(line_of(sql, offset))
}

fn db_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_owned();
            if let Some(detail) = db.detail() {
                message.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!(" (hint: {hint})"));
            }
            message
        }
        None => error.to_string(),
    }
}

struct SqlInputs<'a> {
    dataset: &'a Dataset,
    definition: &'a SourceFile,
    models_dir: &'a Path,
    models: Option<&'a (ModelSet, Vec<SourceFile>)>,
    checks: Option<&'a (SourceFile, Vec<Check>)>,
    exports: Option<&'a (SourceFile, Vec<ReportExport>)>,
}

/// Creates the scratch database, runs everything in it, and drops it whatever happened.
async fn run_sql(
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
    let mut ran = Vec::new();
    if let Some((models, _)) = inputs.models {
        for model in models.models() {
            let path = inputs.models_dir.join(format!("{}.sql", model.name));
            tx.batch_execute("SAVEPOINT landfall_check").await?;
            match tx.simple_query(&model.sql).await {
                Ok(_) => tx.batch_execute("RELEASE SAVEPOINT landfall_check").await?,
                Err(error) => {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT landfall_check")
                        .await?;
                    report.problem(
                        &path,
                        line_of_position(&model.sql, &error),
                        format!("model {}: {}", model.name, db_message(&error)),
                    );
                }
            }
        }
        ran.push(format!("{} model(s)", models.models().len()));
    }
    if let Some((file, checks)) = inputs.checks {
        for check in checks {
            let sql = format!(
                "SELECT count(*) FROM ({}) AS failing",
                quality_checker::sql::failing_rows(check)
            );
            tx.batch_execute("SAVEPOINT landfall_check").await?;
            match tx.simple_query(&sql).await {
                Ok(_) => tx.batch_execute("RELEASE SAVEPOINT landfall_check").await?,
                Err(error) => {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT landfall_check")
                        .await?;
                    report.problem(
                        &file.path,
                        find_line(&file.text, &format!("\"{}\"", check.name)),
                        format!("check '{}': {}", check.name, db_message(&error)),
                    );
                }
            }
        }
        ran.push(format!("{} check(s)", checks.len()));
    }
    if !inputs.dataset.reports.is_empty() {
        // As the quality checker does for a batch that passed: each report's audit rows copied
        // to analytics (which makes a user's published table), so the exports below find it.
        let batch = contract::BatchKey {
            dataset: inputs.dataset.name.clone(),
            ingestion_date: date,
        };
        tx.batch_execute("SAVEPOINT landfall_check").await?;
        match quality_checker::publish::publish(&tx, &batch, &inputs.dataset.reports).await {
            Ok(_) => tx.batch_execute("RELEASE SAVEPOINT landfall_check").await?,
            Err(failure) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT landfall_check")
                    .await?;
                report.problem(
                    &inputs.definition.path,
                    find_line(&inputs.definition.text, "reports"),
                    format!("publishing the reports: {}", failure.reason()),
                );
            }
        }
        ran.push(format!(
            "{} report(s) published",
            inputs.dataset.reports.len()
        ));
    }
    if let Some((file, exports)) = inputs.exports {
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
            tx.batch_execute("SAVEPOINT landfall_check").await?;
            match tx.simple_query(&sql).await {
                Ok(_) => tx.batch_execute("RELEASE SAVEPOINT landfall_check").await?,
                Err(error) => {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT landfall_check")
                        .await?;
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
        }
        ran.push(format!("{} export(s)", exports.len()));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_start_at_their_header_line() {
        let text = "# checks\n\n[[checks]]\nname = \"a\"\n\n[[checks]]\nname = \"b\"\n";
        let found = entries(text, "[[checks]]");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, 3);
        assert_eq!(found[1], (6, "[[checks]]\nname = \"b\"\n".to_owned()));
    }

    #[test]
    fn messages_of_a_lone_entry_lose_their_position() {
        assert_eq!(
            tidy_entry_message("check 'x' (line 1): kind 'y' is not one of: a"),
            "check 'x': kind 'y' is not one of: a"
        );
        assert_eq!(
            tidy_entry_message(
                "[[exports]] entry 1 (report 'x'): table 'x' must be schema-qualified"
            ),
            "report 'x': table 'x' must be schema-qualified"
        );
    }

    #[test]
    fn a_validation_message_points_to_the_line_naming_it() {
        let text = "name = \"shop\"\n[[sources]]\nname = \"orders\"\nnatural_key = [\"id\"]\n";
        assert_eq!(
            line_of_quoted_name(
                text,
                "source 'orders': natural key column 'id' is not a column"
            ),
            Some(4)
        );
    }

    #[test]
    fn a_key_pattern_problem_points_to_its_line() {
        let definition = "name = \"shop\"\nkey_pattern = \"{dataset}/{date}/{source}\"\n[[sources]]\nname = \"orders\"\ncolumns = [{ name = \"id\", type = \"int\" }]\n[[sources]]\nname = \"refunds\"\nkey_pattern = \"{dataset}/{date}/orders\"\ncolumns = [{ name = \"id\", type = \"int\" }]\n";
        let line = |text: &str| {
            let error = Datasets::parse(text).expect_err("a broken pattern");
            let (line, message) = locate(text, &error);
            (
                line.or_else(|| line_of_quoted_name(text, &message)),
                message,
            )
        };
        // Two sources matching the same keys: the explicit pattern's line.
        let (found, message) = line(definition);
        assert_eq!(found, Some(8), "{message}");
        assert!(message.contains("sources 'orders' and 'refunds' can match the same key"));
        // A pattern without a date, on the dataset: its line.
        let (found, message) =
            line(&definition.replace("{dataset}/{date}/{source}", "{dataset}/{source}"));
        assert_eq!(found, Some(2), "{message}");
        // An unknown placeholder on a source.
        let (found, message) = line(&definition.replace("{date}/orders", "{day}/orders"));
        assert_eq!(found, Some(8), "{message}");
    }
}
