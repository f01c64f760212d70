//! Dataset definitions: a dataset is defined by files, not Rust. Each folder under the
//! datasets directory holds a `dataset.toml` naming its sources, the key pattern their files land
//! under, their columns, types, nullability, ranges, natural keys, whether each is a snapshot or
//! a delta, and which sources a batch needs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::{Datelike as _, NaiveDate};
use serde::Deserialize;

use crate::db::quote_ident;

/// The lineage columns every staging table starts with.
pub const LINEAGE_COLUMNS: &[(&str, &str)] = &[
    ("_file_id", "bigint NOT NULL"),
    ("_line", "bigint NOT NULL"),
    ("_batch", "date NOT NULL"),
];

/// Whether each batch carries the full state of a source or only what changed. For a snapshot
/// source, [`ensure_staging_tables`] makes the view `snapshot.<table>`: the rows of the latest
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
    /// A file whose rejected share of rows exceeds this (0..1) is rejected as a whole.
    #[serde(default = "default_reject_threshold")]
    pub reject_threshold: f64,
    /// The report tables (write, audit, publish): the models write a batch's rows to
    /// `audit.<report>`, the checks read them there, and the quality checker copies them to
    /// `analytics.<report>` when the batch's error-severity checks pass. Each table has an
    /// `ingestion_date` column.
    #[serde(default)]
    pub reports: Vec<String>,
    pub sources: Vec<Source>,
    /// The dataset's folder (set by [`Datasets::load`]; empty for [`Datasets::parse`]).
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
    pattern: KeyPattern,
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
fn default_reject_threshold() -> f64 {
    0.05
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
    /// The key pattern in force for this source.
    pub fn pattern(&self) -> &KeyPattern {
        &self.pattern
    }
}

impl Dataset {
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

/// Where a key under the landing prefix points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMatch {
    /// A source file of a batch.
    File {
        dataset: String,
        source: String,
        ingestion_date: NaiveDate,
    },
    /// Under the landing prefix, but no dataset source: recorded with the reason.
    Unmapped(String),
    /// Not under the landing prefix (or not a file): not landfall's business.
    Outside,
}

/// Every dataset found in the datasets directory.
#[derive(Debug, Clone, Default)]
pub struct Datasets {
    by_name: BTreeMap<String, Dataset>,
}

impl Datasets {
    /// Loads `<dir>/*/dataset.toml`; every problem names the file.
    pub fn load(dir: &Path) -> anyhow::Result<Datasets> {
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!(
                "reading the datasets directory {} (set LANDFALL_DATASETS_DIR)",
                dir.display()
            )
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path().join("dataset.toml")))
            .filter(|path| path.is_file())
            .collect();
        paths.sort();
        let mut datasets = Datasets::default();
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut dataset =
                Self::parse(&text).with_context(|| format!("in {}", path.display()))?;
            dataset.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            datasets
                .insert(dataset)
                .with_context(|| format!("in {}", path.display()))?;
        }
        if datasets.by_name.is_empty() {
            bail!(
                "no dataset definitions (*/dataset.toml) in {}",
                dir.display()
            );
        }
        Ok(datasets)
    }

    /// Parses and validates one definition; fills in each source's mode and key pattern.
    pub fn parse(text: &str) -> anyhow::Result<Dataset> {
        let mut dataset: Dataset = toml::from_str(text)?;
        validate(&mut dataset)?;
        Ok(dataset)
    }

    fn insert(&mut self, dataset: Dataset) -> anyhow::Result<()> {
        let tables: HashSet<&str> = self
            .by_name
            .values()
            .flat_map(|other| other.sources.iter().map(Source::table_name))
            .collect();
        for source in &dataset.sources {
            if tables.contains(source.table_name()) {
                bail!(
                    "staging table '{}' is already used by another dataset",
                    source.table_name()
                );
            }
        }
        if self.by_name.contains_key(&dataset.name) {
            bail!("dataset '{}' is defined twice", dataset.name);
        }
        for other in self.by_name.values() {
            if let Some((_, overlap)) = patterns_overlap(&dataset, other) {
                bail!("{overlap}");
            }
        }
        self.by_name.insert(dataset.name.clone(), dataset);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Dataset> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Dataset> {
        self.by_name.values()
    }

    /// Maps a key to its batch: the key, after the landing prefix and without its `.csv` or
    /// `.csv.gz` suffix, must match the key pattern of exactly one source (by default
    /// `<dataset>/ingestion_date=YYYY-MM-DD/<source>`), read as exactly one date.
    pub fn match_key(&self, landing_prefix: &str, key: &str) -> KeyMatch {
        let Some(rest) = key.strip_prefix(landing_prefix) else {
            return KeyMatch::Outside;
        };
        if rest.is_empty() || rest.ends_with('/') {
            return KeyMatch::Outside;
        }
        let stem = rest
            .strip_suffix(".csv.gz")
            .or_else(|| rest.strip_suffix(".csv"));
        let mut found: Vec<(&Dataset, &Source, NaiveDate)> = Vec::new();
        let mut bad_dates: Vec<(String, &KeyPattern)> = Vec::new();
        if let Some(stem) = stem {
            for dataset in self.iter() {
                for source in &dataset.sources {
                    let read = source.pattern.read(stem);
                    found.extend(read.dates.into_iter().map(|date| (dataset, source, date)));
                    bad_dates.extend(
                        read.bad_dates
                            .into_iter()
                            .map(|text| (text, &source.pattern)),
                    );
                }
            }
        }
        match found[..] {
            [(dataset, source, ingestion_date)] => KeyMatch::File {
                dataset: dataset.name.clone(),
                source: source.name.clone(),
                ingestion_date,
            },
            [] => KeyMatch::Unmapped(self.unmapped_reason(landing_prefix, rest, stem, &bad_dates)),
            _ => {
                let readings: Vec<String> = found
                    .iter()
                    .map(|(dataset, source, date)| {
                        format!(
                            "{}.{} for {date} by {landing_prefix}{}.csv",
                            dataset.name, source.name, source.pattern.resolved
                        )
                    })
                    .collect();
                KeyMatch::Unmapped(format!(
                    "the key can be read in more than one way: {}",
                    readings.join("; ")
                ))
            }
        }
    }

    /// Why a key under the landing prefix matched no key pattern. Keys under a dataset that
    /// keeps the default layout (or when every dataset does) get that layout's own reasons.
    fn unmapped_reason(
        &self,
        landing_prefix: &str,
        rest: &str,
        stem: Option<&str>,
        bad_dates: &[(String, &KeyPattern)],
    ) -> String {
        let default_layout =
            |dataset: &Dataset| dataset.sources.iter().all(|s| s.pattern.is_default());
        let first = rest.split('/').next().unwrap_or_default();
        if self.iter().all(default_layout) || self.get(first).is_some_and(default_layout) {
            return self.default_layout_reason(landing_prefix, rest);
        }
        let file_name = rest.rsplit('/').next().unwrap_or(rest);
        if stem.is_none() {
            return format!("'{file_name}' is not a .csv or .csv.gz file");
        }
        if let Some((text, pattern)) = bad_dates.first() {
            return format!(
                "'{text}' is not a valid date (key pattern {landing_prefix}{}.csv)",
                pattern.resolved
            );
        }
        let mut tried: Vec<String> = Vec::new();
        for dataset in self.iter() {
            let mut by_pattern: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for source in &dataset.sources {
                by_pattern
                    .entry(source.pattern.shown.as_str())
                    .or_default()
                    .push(&source.name);
            }
            for (shown, sources) in by_pattern {
                tried.push(format!(
                    "{landing_prefix}{shown}.csv[.gz] ({} {})",
                    dataset.name,
                    sources.join(", ")
                ));
            }
        }
        format!(
            "the key matches no key pattern (tried: {})",
            tried.join("; ")
        )
    }

    /// The reasons of the default layout, `<prefix><dataset>/ingestion_date=YYYY-MM-DD/<source>.csv`.
    fn default_layout_reason(&self, landing_prefix: &str, rest: &str) -> String {
        let parts: Vec<&str> = rest.split('/').collect();
        let [dataset_name, partition, file_name] = parts[..] else {
            return format!(
                "key does not follow {landing_prefix}<dataset>/ingestion_date=YYYY-MM-DD/<source>.csv"
            );
        };
        let Some(dataset) = self.get(dataset_name) else {
            return format!("no dataset named '{dataset_name}' is defined");
        };
        let Some(date_text) = partition.strip_prefix("ingestion_date=") else {
            return format!("'{partition}' is not an ingestion_date=YYYY-MM-DD partition");
        };
        if NaiveDate::parse_from_str(date_text, "%Y-%m-%d").is_err() {
            return format!("'{date_text}' is not a valid date (YYYY-MM-DD)");
        }
        let Some(source_name) = file_name
            .strip_suffix(".csv.gz")
            .or_else(|| file_name.strip_suffix(".csv"))
        else {
            return format!("'{file_name}' is not a .csv or .csv.gz file");
        };
        if dataset.source(source_name).is_some() {
            // Not reached: such a key matches the default layout.
            return format!(
                "key does not follow {landing_prefix}<dataset>/ingestion_date=YYYY-MM-DD/<source>.csv"
            );
        }
        let known: Vec<&str> = dataset.sources.iter().map(|s| s.name.as_str()).collect();
        format!(
            "dataset '{dataset_name}' has no source '{source_name}' (it has: {})",
            known.join(", ")
        )
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

fn validate(dataset: &mut Dataset) -> anyhow::Result<()> {
    let check_name = |what: &str, name: &str| -> anyhow::Result<()> {
        if !is_identifier(name) {
            bail!(
                "{what} '{name}' must start with a-z and hold only a-z, 0-9 and '_' (at most 63)"
            );
        }
        Ok(())
    };
    check_name("dataset name", &dataset.name)?;
    if !(0.0..=1.0).contains(&dataset.reject_threshold) {
        bail!(
            "reject_threshold {} must lie between 0 and 1",
            dataset.reject_threshold
        );
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

/// The layout every source has unless its definition gives a `key_pattern`.
pub const DEFAULT_KEY_PATTERN: &str = "{dataset}/ingestion_date={date}/{source}";

/// The placeholders a key pattern may hold.
const PLACEHOLDERS: &str = "{dataset}, {source}, {date}, {yyyy}, {mm}, {dd}";

/// One piece of a compiled key pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    /// `*`: any characters but `/`, none included.
    Star,
    /// `{date}`: a `YYYY-MM-DD` date (read as chrono's `%Y-%m-%d`).
    Date,
    /// `{yyyy}`: four digits.
    Year,
    /// `{mm}`: two digits.
    Month,
    /// `{dd}`: two digits.
    Day,
}

/// A source's key pattern, compiled: the key after the landing prefix, without its `.csv` or
/// `.csv.gz` suffix, with `{dataset}` and `{source}` replaced by the names, the date
/// placeholders left to read the batch's date from, and `*` matching within a path segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPattern {
    /// As written (or the default).
    written: String,
    /// With `{dataset}` filled in, for messages (`{source}` kept: one line for many sources).
    shown: String,
    /// With `{dataset}` and `{source}` filled in.
    resolved: String,
    tokens: Vec<Token>,
}

/// What a key pattern read from a key: every date it can be read as, and the date-shaped text
/// where it would match but the date does not exist.
#[derive(Debug, Default)]
struct Reading {
    dates: BTreeSet<NaiveDate>,
    bad_dates: BTreeSet<String>,
}

/// The date parts read so far along one way of matching.
#[derive(Debug, Clone, Copy, Default)]
struct Parts<'a> {
    date: Option<NaiveDate>,
    bad_date: Option<&'a str>,
    year: Option<u32>,
    month: Option<u32>,
    day: Option<u32>,
}

impl KeyPattern {
    /// Compiles `written` for one source; the error says what is wrong in words.
    pub fn compile(written: &str, dataset: &str, source: &str) -> Result<KeyPattern, String> {
        let fail = |what: &str| Err(format!("key_pattern '{written}' {what}"));
        if written.is_empty() {
            return fail("is empty");
        }
        if written.starts_with('/') || written.ends_with('/') || written.contains("//") {
            return fail(
                "must be a path under the landing prefix: no / at its start or end, no //",
            );
        }
        if written.ends_with(".csv") || written.ends_with(".csv.gz") {
            return fail(
                "ends in .csv: leave the suffix out (a key matches with .csv or .csv.gz after the pattern)",
            );
        }
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut shown = String::new();
        let mut resolved = String::new();
        let mut chars = written.chars();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c != '{' => name.push(c),
                            _ => return fail("has a { without its }"),
                        }
                    }
                    let token = match name.as_str() {
                        "dataset" => {
                            literal.push_str(dataset);
                            shown.push_str(dataset);
                            resolved.push_str(dataset);
                            continue;
                        }
                        "source" => {
                            literal.push_str(source);
                            shown.push_str("{source}");
                            resolved.push_str(source);
                            continue;
                        }
                        "date" => Token::Date,
                        "yyyy" => Token::Year,
                        "mm" => Token::Month,
                        "dd" => Token::Day,
                        other => {
                            return fail(&format!(
                                "has an unknown placeholder {{{other}}} (known: {PLACEHOLDERS})"
                            ));
                        }
                    };
                    if !literal.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut literal)));
                    }
                    tokens.push(token);
                    shown.push_str(&format!("{{{name}}}"));
                    resolved.push_str(&format!("{{{name}}}"));
                }
                '}' => return fail("has a } without its {"),
                '*' => {
                    if literal.is_empty() && tokens.last() == Some(&Token::Star) {
                        return fail(
                            "has **: a * already matches any characters within a path segment",
                        );
                    }
                    if !literal.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut literal)));
                    }
                    tokens.push(Token::Star);
                    shown.push('*');
                    resolved.push('*');
                }
                c if c.is_control() => return fail("holds a control character"),
                c => {
                    literal.push(c);
                    shown.push(c);
                    resolved.push(c);
                }
            }
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        let has = |token: Token| tokens.contains(&token);
        let whole_date =
            has(Token::Date) || (has(Token::Year) && has(Token::Month) && has(Token::Day));
        if !whole_date {
            return fail(
                "has no date: it needs {date} (YYYY-MM-DD) or all of {yyyy}, {mm} and {dd}",
            );
        }
        Ok(KeyPattern {
            written: written.to_owned(),
            shown,
            resolved,
            tokens,
        })
    }

    /// The pattern as written in the definition (or the default).
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The pattern with the dataset and source names filled in.
    pub fn resolved(&self) -> &str {
        &self.resolved
    }

    /// Whether this is the default layout.
    pub fn is_default(&self) -> bool {
        self.written == DEFAULT_KEY_PATTERN
    }

    /// The key (after the landing prefix, without suffix) of the batch dated `date`, as far as
    /// it is known: up to the first `*`. `true` when there is none, so the key is complete.
    pub fn render(&self, date: NaiveDate) -> (String, bool) {
        let mut key = String::new();
        for token in &self.tokens {
            match token {
                Token::Literal(text) => key.push_str(text),
                Token::Star => return (key, false),
                Token::Date => key.push_str(&date.format("%Y-%m-%d").to_string()),
                Token::Year => key.push_str(&date.format("%Y").to_string()),
                Token::Month => key.push_str(&date.format("%m").to_string()),
                Token::Day => key.push_str(&date.format("%d").to_string()),
            }
        }
        (key, true)
    }

    /// Every way `stem` (a key after the landing prefix, without its suffix) matches.
    fn read(&self, stem: &str) -> Reading {
        let mut reading = Reading::default();
        self.walk(0, stem, Parts::default(), &mut reading);
        reading
    }

    fn walk<'a>(&self, index: usize, rest: &'a str, parts: Parts<'a>, reading: &mut Reading) {
        let Some(token) = self.tokens.get(index) else {
            if rest.is_empty() {
                finish(parts, reading);
            }
            return;
        };
        let segment = &rest[..rest.find('/').unwrap_or(rest.len())];
        match token {
            Token::Literal(text) => {
                if let Some(after) = rest.strip_prefix(text.as_str()) {
                    self.walk(index + 1, after, parts, reading);
                }
            }
            Token::Star => {
                for end in (0..=segment.len()).filter(|&end| segment.is_char_boundary(end)) {
                    self.walk(index + 1, &rest[end..], parts, reading);
                }
            }
            Token::Date => {
                for end in (1..=segment.len()).filter(|&end| segment.is_char_boundary(end)) {
                    let text = &segment[..end];
                    let mut next = parts;
                    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                        Ok(date) if parts.date.is_none_or(|seen| seen == date) => {
                            next.date = Some(date)
                        }
                        Ok(_) => continue,
                        // Digits in three dash-separated groups that are no date (2026-02-30):
                        // worth naming if the rest matches.
                        Err(_) if looks_like_a_date(text) => next.bad_date = Some(text),
                        Err(_) => continue,
                    }
                    self.walk(index + 1, &rest[end..], next, reading);
                }
            }
            Token::Year | Token::Month | Token::Day => {
                let width = if *token == Token::Year { 4 } else { 2 };
                let Some(digits) = segment.get(..width) else {
                    return;
                };
                if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                    return;
                }
                let value: u32 = digits.parse().expect("ASCII digits");
                let mut next = parts;
                let slot = match token {
                    Token::Year => &mut next.year,
                    Token::Month => &mut next.month,
                    _ => &mut next.day,
                };
                // A part read twice (a folder and a file name) must read the same.
                if slot.is_some_and(|seen| seen != value) {
                    return;
                }
                *slot = Some(value);
                self.walk(index + 1, &rest[width..], next, reading);
            }
        }
    }

    /// A key both patterns match (without suffix), if there is one: a search over pairs of
    /// positions in the two patterns, `{date}` taken as `dddd-dd-dd` and each date part as its
    /// digits. Any digit may stand where a date part is, so an overlap that only a date which
    /// does not exist could make is still reported.
    pub fn overlap(&self, other: &KeyPattern) -> Option<String> {
        let (a, b) = (self.classes(), other.classes());
        let start = (0usize, 0usize);
        // Each state reached: the state before it and the character that led here (none for
        // skipping a `*`).
        let mut came_from: HashMap<State, (State, Option<char>)> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = HashSet::from([start]);
        while let Some((i, j)) = queue.pop_front() {
            if i == a.len() && j == b.len() {
                let mut example = Vec::new();
                let mut at = (i, j);
                while at != start {
                    let (previous, c) = came_from[&at];
                    example.extend(c);
                    at = previous;
                }
                return Some(example.into_iter().rev().collect());
            }
            let mut next = Vec::new();
            if a.get(i) == Some(&Class::Star) {
                next.push(((i + 1, j), None));
            }
            if b.get(j) == Some(&Class::Star) {
                next.push(((i, j + 1), None));
            }
            if let (Some(x), Some(y)) = (a.get(i), b.get(j))
                && let Some(c) = x.common(*y)
            {
                let i2 = if *x == Class::Star { i } else { i + 1 };
                let j2 = if *y == Class::Star { j } else { j + 1 };
                next.push(((i2, j2), Some(c)));
            }
            for (state, c) in next {
                if seen.insert(state) {
                    came_from.insert(state, ((i, j), c));
                    queue.push_back(state);
                }
            }
        }
        None
    }

    /// The pattern as one character class per character, `*` as a class of its own.
    fn classes(&self) -> Vec<Class> {
        let mut classes = Vec::new();
        for token in &self.tokens {
            match token {
                Token::Literal(text) => classes.extend(text.chars().map(Class::Char)),
                Token::Star => classes.push(Class::Star),
                Token::Year => classes.extend([Class::Digit; 4]),
                Token::Month | Token::Day => classes.extend([Class::Digit; 2]),
                Token::Date => {
                    classes.extend([Class::Digit; 4]);
                    classes.push(Class::Char('-'));
                    classes.extend([Class::Digit; 2]);
                    classes.push(Class::Char('-'));
                    classes.extend([Class::Digit; 2]);
                }
            }
        }
        classes
    }
}

/// A position in each of two patterns, for [`KeyPattern::overlap`].
type State = (usize, usize);

/// One character of a key pattern, for [`KeyPattern::overlap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Char(char),
    Digit,
    /// Any run of characters but `/`.
    Star,
}

impl Class {
    /// A character both classes accept.
    fn common(self, other: Class) -> Option<char> {
        match (self, other) {
            (Class::Char(x), Class::Char(y)) => (x == y).then_some(x),
            (Class::Char(c), Class::Digit) | (Class::Digit, Class::Char(c)) => {
                c.is_ascii_digit().then_some(c)
            }
            (Class::Char(c), Class::Star) | (Class::Star, Class::Char(c)) => {
                (c != '/').then_some(c)
            }
            (Class::Digit, Class::Digit | Class::Star) | (Class::Star, Class::Digit) => Some('1'),
            (Class::Star, Class::Star) => Some('x'),
        }
    }
}

/// Digits in three groups separated by `-`.
fn looks_like_a_date(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 3
        && groups
            .iter()
            .all(|group| !group.is_empty() && group.bytes().all(|byte| byte.is_ascii_digit()))
}

/// The end of one way of matching: the date it reads, if the parts make one.
fn finish(parts: Parts<'_>, reading: &mut Reading) {
    if let Some(text) = parts.bad_date {
        reading.bad_dates.insert(text.to_owned());
        return;
    }
    match (parts.date, parts.year, parts.month, parts.day) {
        // `{date}` and any parts beside it must agree.
        (Some(date), year, month, day) => {
            let agrees = year.is_none_or(|year| date.year() == year as i32)
                && month.is_none_or(|month| date.month() == month)
                && day.is_none_or(|day| date.day() == day);
            if agrees {
                reading.dates.insert(date);
            }
        }
        (None, Some(year), Some(month), Some(day)) => {
            match NaiveDate::from_ymd_opt(year as i32, month, day) {
                Some(date) => {
                    reading.dates.insert(date);
                }
                None => {
                    reading
                        .bad_dates
                        .insert(format!("{year:04}-{month:02}-{day:02}"));
                }
            }
        }
        // Not reached: a pattern without a whole date is refused.
        (None, ..) => {}
    }
}

/// The schema of the snapshot sources' views.
pub const SNAPSHOT_SCHEMA: &str = "snapshot";

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
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {SNAPSHOT_SCHEMA}"))
        .await
        .context("creating the snapshot schema")?;
    for dataset in datasets.iter() {
        for source in &dataset.sources {
            ensure_staging_table(client, source)
                .await
                .with_context(|| format!("staging table for {}.{}", dataset.name, source.name))?;
            ensure_staging_view(client, dataset, source)
                .await
                .with_context(|| format!("staging view for {}.{}", dataset.name, source.name))?;
            ensure_snapshot_view(client, dataset, source)
                .await
                .with_context(|| format!("snapshot view for {}.{}", dataset.name, source.name))?;
        }
    }
    // The service roles exist: migration 0008 made them.
    client
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA {SNAPSHOT_SCHEMA} TO {SNAPSHOT_READERS};
             GRANT SELECT ON ALL TABLES IN SCHEMA {SNAPSHOT_SCHEMA} TO {SNAPSHOT_READERS};"
        ))
        .await
        .context("granting the snapshot views")?;
    Ok(())
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
/// for a semi-join, and the planner's row estimate stays that of the table).
async fn ensure_staging_view(
    client: &tokio_postgres::Client,
    dataset: &Dataset,
    source: &Source,
) -> anyhow::Result<()> {
    let definition = format!(
        "SELECT {} FROM {} WHERE _file_id = ANY (ARRAY(SELECT file_id FROM ops.staged_sources WHERE dataset = {} AND source = {}))",
        view_columns(source),
        source.rows_table(),
        quote_literal(&dataset.name),
        quote_literal(&source.name),
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

/// A string literal for SQL.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn ensure_staging_table(
    client: &tokio_postgres::Client,
    source: &Source,
) -> anyhow::Result<()> {
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
    // BRIN, not b-tree: a batch's rows are appended together, so block ranges find them as
    // well as a b-tree would, at a fraction of the cost while loading (a b-tree made a 1M-row
    // COPY about 60 % slower; docs/PERFORMANCE.md). One on `_batch` only: every query of a
    // file's rows also names its batch (`load::delete_file_rows`), and on PostgreSQL 15 each
    // BRIN index costs every COPYed row two buffer lookups (0.13-0.17 s per 1M rows, about a
    // quarter of a COPY of the orders). Tables made by earlier versions lose their b-tree
    // indexes and the one on `_file_id` here.
    //
    // Only what is missing or left over is changed: `CREATE INDEX IF NOT EXISTS` waits for a
    // lock on the table even when the index is there, so a service starting while a file is
    // being COPYed would wait for the COPY, and the COPY's other connections for the service
    // (their lock requests queue behind its own).
    //
    // With autosummarize a block range is summarized (by autovacuum) soon after it fills: a
    // range never summarized matches every search, so without it each query by batch or file
    // read every row staged since the table was last vacuumed.
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

#[cfg(test)]
mod tests {
    use super::*;

    const DEFINITION: &str = r#"
        name = "shop"
        [[sources]]
        name = "orders"
        natural_key = ["order_id"]
        columns = [
            { name = "order_id", type = "int" },
            { name = "total_price", type = "numeric(12,2)", aliases = ["amount"], min = 0 },
        ]
    "#;

    fn datasets() -> Datasets {
        let mut datasets = Datasets::default();
        datasets
            .insert(Datasets::parse(DEFINITION).unwrap())
            .unwrap();
        datasets
    }

    #[test]
    fn keys_map_to_dataset_source_and_batch() {
        let datasets = datasets();
        assert_eq!(
            datasets.match_key(
                "landing/",
                "landing/shop/ingestion_date=2026-01-31/orders.csv.gz"
            ),
            KeyMatch::File {
                dataset: "shop".into(),
                source: "orders".into(),
                ingestion_date: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            }
        );
        assert_eq!(
            datasets.match_key("landing/", "exports/x.csv"),
            KeyMatch::Outside
        );
        assert_eq!(
            datasets.match_key("landing/", "landing/shop/"),
            KeyMatch::Outside
        );
        for (key, reason) in [
            (
                "landing/zoo/ingestion_date=2026-01-31/orders.csv",
                "no dataset named 'zoo'",
            ),
            (
                "landing/shop/ingestion_date=2026-02-30/orders.csv",
                "not a valid date",
            ),
            ("landing/shop/date=2026-01-31/orders.csv", "partition"),
            (
                "landing/shop/ingestion_date=2026-01-31/orders.json",
                "not a .csv",
            ),
            (
                "landing/shop/ingestion_date=2026-01-31/refunds.csv",
                "has no source 'refunds'",
            ),
            ("landing/shop/orders.csv", "does not follow"),
        ] {
            match datasets.match_key("landing/", key) {
                KeyMatch::Unmapped(found) => assert!(found.contains(reason), "{key}: {found}"),
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_definitions_say_what_is_wrong() {
        for (broken, expected) in [
            (
                DEFINITION.replace("\"int\"", "\"integr\""),
                "unknown column type",
            ),
            (
                DEFINITION.replace("[\"order_id\"]", "[\"id\"]"),
                "natural key column 'id'",
            ),
            (
                DEFINITION.replace("min = 0", "min = 0, colour = 1"),
                "unknown field",
            ),
            (
                DEFINITION.replace("\"shop\"", "\"Shop\""),
                "dataset name 'Shop'",
            ),
            (
                DEFINITION.replace("\"amount\"", "\"order_id\""),
                "used twice",
            ),
        ] {
            let error = format!("{:#}", Datasets::parse(&broken).unwrap_err());
            assert!(
                error.contains(expected),
                "expected '{expected}' in: {error}"
            );
        }
    }

    #[test]
    fn the_bundled_datasets_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
        let datasets = Datasets::load(&dir).unwrap();
        let ecommerce = datasets.get("ecommerce").expect("ecommerce is bundled");
        let required: Vec<&str> = ecommerce
            .required_sources()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(required, ["orders", "reviews", "shipment_deliveries"]);
    }

    /// The layout every key had to follow before key patterns, as it was written then.
    fn fixed_layout(datasets: &Datasets, landing_prefix: &str, key: &str) -> KeyMatch {
        let Some(rest) = key.strip_prefix(landing_prefix) else {
            return KeyMatch::Outside;
        };
        if rest.is_empty() || rest.ends_with('/') {
            return KeyMatch::Outside;
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let [dataset_name, partition, file_name] = parts[..] else {
            return KeyMatch::Unmapped(format!(
                "key does not follow {landing_prefix}<dataset>/ingestion_date=YYYY-MM-DD/<source>.csv"
            ));
        };
        let Some(dataset) = datasets.get(dataset_name) else {
            return KeyMatch::Unmapped(format!("no dataset named '{dataset_name}' is defined"));
        };
        let Some(date_text) = partition.strip_prefix("ingestion_date=") else {
            return KeyMatch::Unmapped(format!(
                "'{partition}' is not an ingestion_date=YYYY-MM-DD partition"
            ));
        };
        let Ok(ingestion_date) = NaiveDate::parse_from_str(date_text, "%Y-%m-%d") else {
            return KeyMatch::Unmapped(format!("'{date_text}' is not a valid date (YYYY-MM-DD)"));
        };
        let Some(source_name) = file_name
            .strip_suffix(".csv.gz")
            .or_else(|| file_name.strip_suffix(".csv"))
        else {
            return KeyMatch::Unmapped(format!("'{file_name}' is not a .csv or .csv.gz file"));
        };
        if dataset.source(source_name).is_none() {
            let known: Vec<&str> = dataset.sources.iter().map(|s| s.name.as_str()).collect();
            return KeyMatch::Unmapped(format!(
                "dataset '{dataset_name}' has no source '{source_name}' (it has: {})",
                known.join(", ")
            ));
        }
        KeyMatch::File {
            dataset: dataset_name.to_owned(),
            source: source_name.to_owned(),
            ingestion_date,
        }
    }

    #[test]
    fn the_default_pattern_maps_every_key_as_the_fixed_layout_did() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
        let mut datasets = Datasets::load(&dir).unwrap();
        let shop = DEFINITION.replace(
            "name = \"orders\"",
            "name = \"orders\"\ntable = \"shop_orders\"",
        );
        datasets.insert(Datasets::parse(&shop).unwrap()).unwrap();
        let firsts = [
            "ecommerce",
            "online_retail",
            "shop",
            "zoo",
            "",
            "ecommerce.csv",
        ];
        let partitions = [
            "ingestion_date=2026-01-31",
            "ingestion_date=2026-1-5",
            "ingestion_date=2026-02-30",
            "ingestion_date=",
            "ingestion_date=2026-01-31x",
            "date=2026-01-31",
            "2026-01-31",
            "",
        ];
        let files = [
            "orders.csv",
            "orders.csv.gz",
            "orders.gz",
            "orders.txt",
            "transactions.csv",
            "customers.csv",
            "refunds.csv",
            ".csv",
            "orders",
            "Orders.csv",
        ];
        let mut keys = vec![
            "landing/".to_owned(),
            "landing/orders.csv".to_owned(),
            "elsewhere/ecommerce/ingestion_date=2026-01-31/orders.csv".to_owned(),
        ];
        for first in firsts {
            keys.push(format!("landing/{first}/"));
            keys.push(format!("landing/{first}/orders.csv"));
            for partition in partitions {
                keys.push(format!("landing/{first}/{partition}/"));
                for file in files {
                    keys.push(format!("landing/{first}/{partition}/{file}"));
                    keys.push(format!("landing/{first}/{partition}/x/{file}"));
                }
            }
        }
        let mut files_found = 0;
        for key in &keys {
            let expected = fixed_layout(&datasets, "landing/", key);
            files_found += usize::from(matches!(expected, KeyMatch::File { .. }));
            assert_eq!(datasets.match_key("landing/", key), expected, "{key}");
        }
        assert!(files_found >= 10, "{files_found}");
    }

    /// A shop whose files land as `landing/shop/2026/11/01/Orders-20261101.csv`.
    const CUSTOM: &str = r#"
        name = "shop"
        mode = "delta"
        key_pattern = "{dataset}/{yyyy}/{mm}/{dd}/{source}_*"
        [[sources]]
        name = "orders"
        key_pattern = "{dataset}/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}"
        columns = [{ name = "order_id", type = "int" }]
        [[sources]]
        name = "customers"
        mode = "snapshot"
        required = false
        columns = [{ name = "customer_id", type = "int" }]
        [[sources]]
        name = "rates"
        required = false
        key_pattern = "reference/rates/{date}"
        columns = [{ name = "rate", type = "numeric(6,4)" }]
    "#;

    /// `shop` with its own layout beside `coffee`, which keeps the default one.
    fn custom() -> Datasets {
        let mut datasets = Datasets::default();
        datasets.insert(Datasets::parse(CUSTOM).unwrap()).unwrap();
        let coffee = DEFINITION
            .replace("\"shop\"", "\"coffee\"")
            .replace("name = \"orders\"", "name = \"sales\"");
        datasets.insert(Datasets::parse(&coffee).unwrap()).unwrap();
        datasets
    }

    fn file(dataset: &str, source: &str, date: &str) -> KeyMatch {
        KeyMatch::File {
            dataset: dataset.into(),
            source: source.into(),
            ingestion_date: date.parse().unwrap(),
        }
    }

    fn unmapped(datasets: &Datasets, key: &str) -> String {
        match datasets.match_key("landing/", key) {
            KeyMatch::Unmapped(reason) => reason,
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn custom_patterns_read_date_parts_and_wildcards() {
        let datasets = custom();
        for (key, expected) in [
            (
                "landing/shop/2026/11/01/Orders-20261101.csv",
                file("shop", "orders", "2026-11-01"),
            ),
            (
                "landing/shop/2026/11/01/Orders-20261101.csv.gz",
                file("shop", "orders", "2026-11-01"),
            ),
            (
                "landing/shop/2026/11/02/customers_export (1).csv",
                file("shop", "customers", "2026-11-02"),
            ),
            (
                "landing/shop/2026/11/02/customers_.csv",
                file("shop", "customers", "2026-11-02"),
            ),
            (
                "landing/reference/rates/2026-11-03.csv",
                file("shop", "rates", "2026-11-03"),
            ),
            // The dataset that keeps the default layout, beside it.
            (
                "landing/coffee/ingestion_date=2026-11-03/sales.csv",
                file("coffee", "sales", "2026-11-03"),
            ),
            (
                "elsewhere/shop/2026/11/01/Orders-20261101.csv",
                KeyMatch::Outside,
            ),
        ] {
            assert_eq!(datasets.match_key("landing/", key), expected, "{key}");
        }
        let tried = "the key matches no key pattern (tried: \
            landing/coffee/ingestion_date={date}/{source}.csv[.gz] (coffee sales); \
            landing/reference/rates/{date}.csv[.gz] (shop rates); \
            landing/shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}.csv[.gz] (shop orders); \
            landing/shop/{yyyy}/{mm}/{dd}/{source}_*.csv[.gz] (shop customers))";
        for (key, reason) in [
            // The folder and the file name disagree on the day.
            ("landing/shop/2026/11/01/Orders-20261102.csv", tried),
            // A `*` stays within its path segment.
            ("landing/shop/2026/11/02/customers_a/b.csv", tried),
            // The old layout is no longer this dataset's.
            ("landing/shop/ingestion_date=2026-11-01/orders.csv", tried),
            ("landing/zoo/ingestion_date=2026-11-01/orders.csv", tried),
            (
                "landing/shop/2026/02/30/Orders-20260230.csv",
                "'2026-02-30' is not a valid date (key pattern landing/shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}.csv)",
            ),
            (
                "landing/reference/rates/2026-13-01.csv",
                "'2026-13-01' is not a valid date (key pattern landing/reference/rates/{date}.csv)",
            ),
            (
                "landing/shop/2026/11/01/Orders-20261101.json",
                "'Orders-20261101.json' is not a .csv or .csv.gz file",
            ),
            // Under a dataset that keeps the default layout: its reasons, as before.
            (
                "landing/coffee/ingestion_date=2026-11-01/refunds.csv",
                "dataset 'coffee' has no source 'refunds' (it has: sales)",
            ),
            (
                "landing/coffee/date=2026-11-01/sales.csv",
                "'date=2026-11-01' is not an ingestion_date=YYYY-MM-DD partition",
            ),
        ] {
            assert_eq!(unmapped(&datasets, key), reason, "{key}");
        }
    }

    #[test]
    fn sources_default_to_the_dataset_mode_and_pattern() {
        let shop = Datasets::parse(CUSTOM).unwrap();
        let modes: Vec<(&str, Mode)> = shop
            .sources
            .iter()
            .map(|source| (source.name.as_str(), source.mode()))
            .collect();
        assert_eq!(
            modes,
            [
                ("orders", Mode::Delta),
                ("customers", Mode::Snapshot),
                ("rates", Mode::Delta)
            ]
        );
        let patterns: Vec<&str> = shop
            .sources
            .iter()
            .map(|source| source.pattern().resolved())
            .collect();
        assert_eq!(
            patterns,
            [
                "shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}",
                "shop/{yyyy}/{mm}/{dd}/customers_*",
                "reference/rates/{date}",
            ]
        );
        let plain = Datasets::parse(DEFINITION).unwrap();
        assert_eq!(plain.sources[0].mode(), Mode::Snapshot);
        assert!(plain.sources[0].pattern().is_default());
        assert_eq!(
            plain.sources[0].pattern().resolved(),
            "shop/ingestion_date={date}/orders"
        );
    }

    #[test]
    fn listing_prefixes_stop_at_the_first_wildcard_folder() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let shop = Datasets::parse(CUSTOM).unwrap();
        assert_eq!(
            shop.listing_prefixes(date),
            ["reference/rates/", "shop/2026/11/01/"]
        );
        let plain =
            Datasets::parse(&DEFINITION.replace("natural_key", "required = true\nnatural_key"))
                .unwrap();
        assert_eq!(
            plain.listing_prefixes(date),
            ["shop/ingestion_date=2026-11-01/"]
        );
        // A pattern whose first folder is a wildcard lists the whole landing prefix.
        let anywhere = DEFINITION.replace(
            "name = \"orders\"",
            "name = \"orders\"\nkey_pattern = \"*/{date}/{source}\"",
        );
        assert_eq!(
            Datasets::parse(&anywhere).unwrap().listing_prefixes(date),
            [""]
        );
        let (key, complete) = shop.sources[0].pattern().render(date);
        assert_eq!(
            (key.as_str(), complete),
            ("shop/2026/11/01/Orders-20261101", true)
        );
        let (key, complete) = shop.sources[1].pattern().render(date);
        assert_eq!(
            (key.as_str(), complete),
            ("shop/2026/11/01/customers_", false)
        );
    }

    #[test]
    fn patterns_that_can_match_the_same_key_are_refused() {
        // Two sources of one dataset, the same pattern once the names are filled in.
        let same = CUSTOM.replace(
            "name = \"rates\"\n        required = false\n        key_pattern = \"reference/rates/{date}\"",
            "name = \"rates\"\n        required = false\n        key_pattern = \"shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}\"",
        );
        let error = format!("{:#}", Datasets::parse(&same).unwrap_err());
        assert_eq!(
            error,
            "sources 'orders' and 'rates' can match the same key (e.g. shop/1111/11/11/Orders-11111111.csv): key patterns '{dataset}/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}' and 'shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}'"
        );
        // A wildcard that covers another source's files.
        let covering = CUSTOM.replace("reference/rates/{date}", "{dataset}/{yyyy}/{mm}/{dd}/*");
        let error = format!("{:#}", Datasets::parse(&covering).unwrap_err());
        assert!(
            error.starts_with("sources 'orders' and 'rates' can match the same key (e.g. shop/1111/11/11/Orders-11111111.csv)"),
            "{error}"
        );
        // {date} against date parts.
        let parts = CUSTOM.replace("reference/rates/{date}", "shop/{date}");
        assert!(Datasets::parse(&parts).is_ok());
        let parts = CUSTOM.replace("reference/rates/{date}", "{dataset}/{yyyy}/{mm}/{date}");
        assert!(Datasets::parse(&parts).is_ok(), "a date has dashes");
        // A dataset pattern without {source}, shared by two sources.
        let shared = CUSTOM
            .replace("{source}_*", "export_*")
            .replace("key_pattern = \"reference/rates/{date}\"", "");
        let error = format!("{:#}", Datasets::parse(&shared).unwrap_err());
        assert_eq!(
            error,
            "sources customers, rates share the key_pattern '{dataset}/{yyyy}/{mm}/{dd}/export_*' of the dataset, which has no {source}: add {source} to it or give each source a key_pattern of its own"
        );
        // Across datasets: loading both is refused.
        let mut datasets = Datasets::default();
        datasets.insert(Datasets::parse(CUSTOM).unwrap()).unwrap();
        let greedy = DEFINITION.replace(
            "name = \"orders\"",
            "name = \"orders\"\ntable = \"greedy_orders\"\nkey_pattern = \"shop/{yyyy}/{mm}/*/*{dd}\"",
        );
        let greedy = greedy.replace("\"shop\"", "\"greedy\"");
        let error = datasets
            .insert(Datasets::parse(&greedy).unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "source 'orders' can match the same key as dataset 'shop' source 'orders' (key pattern shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}, e.g. shop/1111/11/11/Orders-11111111.csv): key pattern 'shop/{yyyy}/{mm}/*/*{dd}'"
        );
    }

    #[test]
    fn a_key_read_in_two_ways_is_not_mapped() {
        // Not caught when loading: one pattern that reads two dates from the same key.
        let loose = DEFINITION.replace(
            "name = \"orders\"",
            "name = \"orders\"\nkey_pattern = \"{dataset}/*{yyyy}{mm}{dd}*\"",
        );
        let mut datasets = Datasets::default();
        datasets.insert(Datasets::parse(&loose).unwrap()).unwrap();
        assert_eq!(
            datasets.match_key("landing/", "landing/shop/x20261101.csv"),
            file("shop", "orders", "2026-11-01")
        );
        assert_eq!(
            unmapped(&datasets, "landing/shop/20261101_20261102.csv"),
            "the key can be read in more than one way: shop.orders for 2026-11-01 by landing/shop/*{yyyy}{mm}{dd}*.csv; shop.orders for 2026-11-02 by landing/shop/*{yyyy}{mm}{dd}*.csv"
        );
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        for (pattern, expected) in [
            (
                "{dataset}/{source}",
                "has no date: it needs {date} (YYYY-MM-DD) or all of {yyyy}, {mm} and {dd}",
            ),
            ("{dataset}/{yyyy}/{mm}/{source}", "has no date"),
            (
                "{dataset}/{day}/{source}",
                "has an unknown placeholder {day} (known: {dataset}, {source}, {date}, {yyyy}, {mm}, {dd})",
            ),
            ("{dataset}/{date/{source}", "has a { without its }"),
            ("{dataset}/date}/{source}", "has a } without its {"),
            ("{dataset}/**/{date}/{source}", "has **"),
            (
                "{dataset}/{date}/{source}.csv",
                "ends in .csv: leave the suffix out",
            ),
            ("{dataset}/{date}/{source}.csv.gz", "ends in .csv"),
            (
                "/{dataset}/{date}/{source}",
                "must be a path under the landing prefix",
            ),
            (
                "{dataset}//{date}/{source}",
                "must be a path under the landing prefix",
            ),
            ("", "is empty"),
        ] {
            // On the source, and as the dataset's default.
            let on_source = DEFINITION.replace(
                "name = \"orders\"",
                &format!("name = \"orders\"\nkey_pattern = \"{pattern}\""),
            );
            let error = format!("{:#}", Datasets::parse(&on_source).unwrap_err());
            assert!(
                error.starts_with(&format!(
                    "source 'orders': key_pattern '{pattern}' {expected}"
                )),
                "{pattern}: {error}"
            );
            let on_dataset = DEFINITION.replace(
                "name = \"shop\"",
                &format!("name = \"shop\"\nkey_pattern = \"{pattern}\""),
            );
            let error = format!("{:#}", Datasets::parse(&on_dataset).unwrap_err());
            assert!(
                error.starts_with(&format!("key_pattern '{pattern}' {expected}")),
                "{pattern}: {error}"
            );
        }
        let error = format!(
            "{:#}",
            Datasets::parse(
                &DEFINITION.replace("[[sources]]", "[[sources]]\nmode = \"sometimes\"")
            )
            .unwrap_err()
        );
        assert!(error.contains("unknown variant `sometimes`"), "{error}");
    }
}
