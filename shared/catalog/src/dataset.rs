//! One dataset's definition, `<dataset>/dataset.toml`: its sources, the key pattern their files
//! land under, their columns, types, nullability, ranges, natural keys, whether each is a
//! snapshot or a delta, and which sources a batch needs; read and validated here.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use anyhow::bail;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::key_pattern::{DEFAULT_KEY_PATTERN, KeyPattern};
use crate::sql::quote_ident;
use crate::staging::ROWS_SCHEMA;

/// Whether each batch carries the full state of a source or only what changed. For a snapshot
/// source, [`crate::staging::ensure_staging_tables`] makes the view `snapshot.<table>`: the rows of the latest
/// batch at or before `ops.batch_date()` that staged the source, so a batch without a file of
/// it reads the snapshot before. A delta source has no such view: a batch without its file has
/// no changes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Snapshot,
    Delta,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Snapshot => "snapshot",
            Mode::Delta => "delta",
        }
    }
}

/// One dataset, as read from its `dataset.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The sources' mode unless a source says otherwise.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// The sources' key pattern unless a source says otherwise (default
    /// [`DEFAULT_KEY_PATTERN`]).
    #[serde(default)]
    pub key_pattern: Option<String>,
    /// A file whose share of rejected rows exceeds this (0..1) is rejected as a whole; with
    /// [`Dataset::reject_max_rows`] too, only when it exceeds both. `reject_threshold` is its
    /// older name. See [`Dataset::reject_limit`].
    #[serde(default, alias = "reject_threshold")]
    pub reject_max_share: Option<f64>,
    /// A file with more rejected rows than this is rejected as a whole; with
    /// [`Dataset::reject_max_share`] too, only when it exceeds both.
    #[serde(default)]
    pub reject_max_rows: Option<u64>,
    /// The report tables (write, audit, publish): the models write a batch's rows to
    /// `audit.<report>`, the checks read them there, and the quality checker copies them to
    /// `analytics.<report>` when the batch's error-severity checks pass. Each table has an
    /// `ingestion_date` column.
    #[serde(default)]
    pub reports: Vec<String>,
    pub sources: Vec<Source>,
    /// The dataset's folder (set by [`crate::Datasets::load`]; empty for a definition parsed
    /// from text).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// One source file of a batch and the staging table it loads into.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    /// Staging table (in schema `staging`); defaults to the source name.
    #[serde(default)]
    pub table: Option<String>,
    /// Whether a batch is complete only once this source is staged.
    #[serde(default = "default_true")]
    pub required: bool,
    /// Snapshot or delta; after parsing always set (the dataset's `mode` when left out).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// The key pattern as written for this source; `None` takes the dataset's.
    #[serde(default)]
    pub key_pattern: Option<String>,
    /// Columns that identify a row; a later duplicate in the same file is rejected.
    #[serde(default)]
    pub natural_key: Vec<String>,
    pub columns: Vec<Column>,
    /// The key pattern in force, compiled when the definition is parsed.
    #[serde(skip)]
    pub(crate) pattern: KeyPattern,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    #[serde(default)]
    pub nullable: bool,
    /// Smallest allowed value (numbers only).
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest allowed value (numbers only).
    #[serde(default)]
    pub max: Option<f64>,
    /// Other header names accepted for this column.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// The column types a source may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ColumnType {
    SmallInt,
    Int,
    BigInt,
    /// `numeric(precision, scale)`
    Numeric {
        precision: u8,
        scale: u8,
    },
    Date,
    Timestamp,
    Boolean,
    Text,
}

impl TryFrom<String> for ColumnType {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        let name = raw.trim().to_ascii_lowercase();
        Ok(match name.as_str() {
            "smallint" => ColumnType::SmallInt,
            "int" | "integer" => ColumnType::Int,
            "bigint" => ColumnType::BigInt,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            "boolean" | "bool" => ColumnType::Boolean,
            "text" => ColumnType::Text,
            other => {
                let Some(args) = other
                    .strip_prefix("numeric(")
                    .and_then(|s| s.strip_suffix(')'))
                else {
                    return Err(format!(
                        "unknown column type '{raw}' (use smallint, int, bigint, numeric(p,s), date, timestamp, boolean or text)"
                    ));
                };
                let (precision, scale) = args
                    .split_once(',')
                    .and_then(|(p, s)| {
                        Some((p.trim().parse::<u8>().ok()?, s.trim().parse::<u8>().ok()?))
                    })
                    .filter(|(p, s)| (1..=38).contains(p) && s <= p)
                    .ok_or_else(|| {
                        format!(
                            "'{raw}': numeric needs a precision 1..38 and a scale no larger than it"
                        )
                    })?;
                ColumnType::Numeric { precision, scale }
            }
        })
    }
}

impl ColumnType {
    /// The PostgreSQL type of the staging column.
    pub fn sql(&self) -> String {
        match self {
            ColumnType::SmallInt => "smallint".into(),
            ColumnType::Int => "integer".into(),
            ColumnType::BigInt => "bigint".into(),
            ColumnType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            ColumnType::Date => "date".into(),
            ColumnType::Timestamp => "timestamp without time zone".into(),
            ColumnType::Boolean => "boolean".into(),
            ColumnType::Text => "text".into(),
        }
    }
}

fn default_mode() -> Mode {
    Mode::Snapshot
}
/// The share of rejected rows above which a file is rejected when the dataset sets no limit.
pub const DEFAULT_REJECT_MAX_SHARE: f64 = 0.05;

/// When a file's rejected rows make the whole file rejected: over every limit that is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RejectLimit {
    pub max_share: Option<f64>,
    pub max_rows: Option<u64>,
}

impl RejectLimit {
    /// Whether `rejected` of `read` rows is over the limit: over the share and over the row
    /// count where both are set (so a small file may keep a few bad rows, and a large one a
    /// small share), over the one that is set otherwise.
    pub fn exceeded(&self, rejected: u64, read: u64) -> bool {
        let share = self
            .max_share
            .map(|max| read > 0 && rejected as f64 / read as f64 > max);
        let rows = self.max_rows.map(|max| rejected > max);
        match (share, rows) {
            (Some(share), Some(rows)) => share && rows,
            (Some(over), None) | (None, Some(over)) => over,
            (None, None) => false,
        }
    }

    /// The limit in words: `the dataset's 5% threshold`, `the dataset's limit of 10 rejected
    /// rows`, or both.
    pub fn describe(&self) -> String {
        let share = |max: f64| format!("{}%", 100.0 * max);
        match (self.max_share, self.max_rows) {
            (Some(max), None) => format!("the dataset's {} threshold", share(max)),
            (None, Some(rows)) => format!("the dataset's limit of {rows} rejected rows"),
            (Some(max), Some(rows)) => format!(
                "both of the dataset's limits ({} of the rows and {rows} rows)",
                share(max)
            ),
            (None, None) => "no limit".to_owned(),
        }
    }
}
fn default_true() -> bool {
    true
}

impl Source {
    /// The unquoted staging table name.
    pub fn table_name(&self) -> &str {
        self.table.as_deref().unwrap_or(&self.name)
    }
    /// `staging."<table>"`, ready for SQL: the view of the staged files' rows that models,
    /// checks and people read.
    pub fn qualified_table(&self) -> String {
        format!("staging.{}", quote_ident(self.table_name()))
    }
    /// `staging_rows."<table>"`, ready for SQL: the table the stager writes, which may also
    /// hold rows of files not (or not yet) staged.
    pub fn rows_table(&self) -> String {
        format!("{ROWS_SCHEMA}.{}", quote_ident(self.table_name()))
    }
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }
    /// Snapshot or delta (the dataset's mode unless the source says otherwise).
    pub fn mode(&self) -> Mode {
        self.mode.unwrap_or(Mode::Snapshot)
    }
    /// Whether its identical rows are staged once with their number (`_count`) instead of once
    /// per line: a snapshot source without a natural key, whose file is a multiset that repeats
    /// most of its rows (reviews: millions of lines, thousands of distinct ones).
    /// `staging.<table>` shows a row per line all the same; `counted.<table>` shows the counts.
    pub fn counted(&self) -> bool {
        self.mode() == Mode::Snapshot && self.natural_key.is_empty()
    }
    /// `counted."<table>"`, ready for SQL: the staged files' distinct rows with `_count`, for a
    /// [`Source::counted`] source.
    pub fn counted_table(&self) -> String {
        format!(
            "{}.{}",
            crate::staging::COUNTED_SCHEMA,
            quote_ident(self.table_name())
        )
    }
    /// The key pattern in force for this source.
    pub fn pattern(&self) -> &KeyPattern {
        &self.pattern
    }
}

impl Dataset {
    /// The folder of its SQL models, `<dir>/models`.
    pub fn models_folder(&self) -> PathBuf {
        self.dir.join(crate::MODELS_FOLDER)
    }
    /// Its quality checks, `<dir>/checks.toml`.
    pub fn checks_file(&self) -> PathBuf {
        self.dir.join(crate::checks::CHECKS_FILE)
    }
    /// The reports it exports, `<dir>/exports.toml`.
    pub fn exports_file(&self) -> PathBuf {
        self.dir.join(crate::exports::EXPORTS_FILE)
    }
    /// Where its sources are read from in the shop's database, `<dir>/extract.toml`.
    pub fn extract_file(&self) -> PathBuf {
        self.dir.join(crate::extract::EXTRACT_FILE)
    }

    /// When a file of this dataset is rejected as a whole: `reject_max_share` and
    /// `reject_max_rows` as set, or a share of [`DEFAULT_REJECT_MAX_SHARE`] when neither is.
    pub fn reject_limit(&self) -> RejectLimit {
        match (self.reject_max_share, self.reject_max_rows) {
            (None, None) => RejectLimit {
                max_share: Some(DEFAULT_REJECT_MAX_SHARE),
                max_rows: None,
            },
            (max_share, max_rows) => RejectLimit {
                max_share,
                max_rows,
            },
        }
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|source| source.name == name)
    }
    pub fn required_sources(&self) -> impl Iterator<Item = &Source> {
        self.sources.iter().filter(|source| source.required)
    }

    /// Where to list S3 (under the landing prefix) for the files of the batch dated `date`: for
    /// each source, its key pattern with the names and the date filled in, up to the last `/`
    /// before the first `*` (the folder the file is in, as far as it is known). Folders inside
    /// another are left out. The default layout gives one: `<dataset>/ingestion_date=<date>/`.
    pub fn listing_prefixes(&self, date: NaiveDate) -> Vec<String> {
        let mut prefixes: Vec<String> = self
            .sources
            .iter()
            .map(|source| {
                let (known, _) = source.pattern.render(date);
                match known.rfind('/') {
                    Some(slash) => known[..=slash].to_owned(),
                    None => String::new(),
                }
            })
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let all = prefixes.clone();
        prefixes.retain(|prefix| {
            !all.iter()
                .any(|other| other != prefix && prefix.starts_with(other.as_str()))
        });
        prefixes
    }
}

/// A name of the definition: an identifier starting with a-z.
fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase()) && crate::sql::is_identifier(name)
}

/// Validates a parsed definition; fills in each source's mode and key pattern.
pub(crate) fn validate(dataset: &mut Dataset) -> anyhow::Result<()> {
    let check_name = |what: &str, name: &str| -> anyhow::Result<()> {
        if !is_name(name) {
            bail!(
                "{what} '{name}' must start with a-z and hold only a-z, 0-9 and '_' (at most 63)"
            );
        }
        Ok(())
    };
    check_name("dataset name", &dataset.name)?;
    if let Some(share) = dataset.reject_max_share
        && !(0.0..=1.0).contains(&share)
    {
        bail!("reject_max_share {share} must lie between 0 and 1");
    }
    if dataset.sources.is_empty() {
        bail!("dataset '{}' has no sources", dataset.name);
    }
    let mut report_names = HashSet::new();
    for report in &dataset.reports {
        check_name("report table", report)?;
        if !report_names.insert(report) {
            bail!("report '{report}' is listed twice");
        }
    }
    let mut source_names = HashSet::new();
    for source in &dataset.sources {
        check_name("source name", &source.name)?;
        check_name("table name", source.table_name())?;
        if !source_names.insert(&source.name) {
            bail!("source '{}' is defined twice", source.name);
        }
        let mut header_names = HashSet::new();
        for column in &source.columns {
            check_name(
                &format!("column name in source '{}'", source.name),
                &column.name,
            )?;
            for header in std::iter::once(&column.name).chain(&column.aliases) {
                if !header_names.insert(header.as_str()) {
                    bail!(
                        "source '{}': header name '{header}' is used twice",
                        source.name
                    );
                }
            }
            let numeric = !matches!(
                column.column_type,
                ColumnType::Date | ColumnType::Timestamp | ColumnType::Boolean | ColumnType::Text
            );
            if (column.min.is_some() || column.max.is_some()) && !numeric {
                bail!(
                    "source '{}' column '{}': min and max apply to numbers only",
                    source.name,
                    column.name
                );
            }
        }
        for key in &source.natural_key {
            if source.column(key).is_none() {
                bail!(
                    "source '{}': natural key column '{key}' is not a column",
                    source.name
                );
            }
        }
    }
    resolve_sources(dataset)
}

/// Fills in each source's mode and compiles its key pattern; refuses a bad pattern and two
/// sources whose patterns can match the same key.
fn resolve_sources(dataset: &mut Dataset) -> anyhow::Result<()> {
    if let Some(written) = &dataset.key_pattern {
        // Checked once on its own, so a mistake in it is reported once, as the dataset's.
        KeyPattern::compile(written, &dataset.name, "source").map_err(anyhow::Error::msg)?;
        let inheriting: Vec<&str> = dataset
            .sources
            .iter()
            .filter(|source| source.key_pattern.is_none())
            .map(|source| source.name.as_str())
            .collect();
        if !written.contains("{source}") && inheriting.len() > 1 {
            bail!(
                "sources {} share the key_pattern '{written}' of the dataset, which has no {{source}}: add {{source}} to it or give each source a key_pattern of its own",
                inheriting.join(", ")
            );
        }
    }
    let dataset_pattern = dataset
        .key_pattern
        .clone()
        .unwrap_or_else(|| DEFAULT_KEY_PATTERN.to_owned());
    let dataset_mode = dataset.mode;
    for source in &mut dataset.sources {
        source.mode.get_or_insert(dataset_mode);
        let written = source.key_pattern.as_deref().unwrap_or(&dataset_pattern);
        source.pattern = KeyPattern::compile(written, &dataset.name, &source.name)
            .map_err(|message| anyhow::anyhow!("source '{}': {message}", source.name))?;
    }
    for (index, first) in dataset.sources.iter().enumerate() {
        for second in &dataset.sources[index + 1..] {
            if let Some(example) = first.pattern.overlap(&second.pattern) {
                // The pattern most likely at fault last: a message's last quoted name is the
                // one `landfall dataset check` looks for to point at its line.
                let (a, b) = if first.key_pattern.is_some() && second.key_pattern.is_none() {
                    (second, first)
                } else {
                    (first, second)
                };
                bail!(
                    "sources '{}' and '{}' can match the same key (e.g. {example}.csv): key patterns '{}' and '{}'",
                    a.name,
                    b.name,
                    a.pattern.written,
                    b.pattern.written
                );
            }
        }
    }
    Ok(())
}

/// A source of `dataset` whose key pattern can match the same key as one of `other`'s, and
/// that in words.
pub fn patterns_overlap<'a>(dataset: &'a Dataset, other: &Dataset) -> Option<(&'a Source, String)> {
    for source in &dataset.sources {
        for theirs in &other.sources {
            if let Some(example) = source.pattern.overlap(&theirs.pattern) {
                return Some((
                    source,
                    format!(
                        "source '{}' can match the same key as dataset '{}' source '{}' (key pattern {}, e.g. {example}.csv): key pattern '{}'",
                        source.name,
                        other.name,
                        theirs.name,
                        theirs.pattern.resolved,
                        source.pattern.written
                    ),
                ));
            }
        }
    }
    None
}
