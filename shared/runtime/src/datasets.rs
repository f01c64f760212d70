//! Dataset definitions: a dataset is defined by files, not Rust. Each folder under the
//! datasets directory holds a `dataset.toml` naming its sources, their columns, types,
//! nullability, ranges, natural keys and which sources a batch needs.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use serde::Deserialize;

use crate::db::quote_ident;

/// The lineage columns every staging table starts with.
pub const LINEAGE_COLUMNS: &[(&str, &str)] = &[
    ("_file_id", "bigint NOT NULL"),
    ("_line", "bigint NOT NULL"),
    ("_batch", "date NOT NULL"),
];

/// Whether each batch carries the full state of a source or only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Snapshot,
    Delta,
}

/// One dataset, as read from its `dataset.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// A file whose rejected share of rows exceeds this (0..1) is rejected as a whole.
    #[serde(default = "default_reject_threshold")]
    pub reject_threshold: f64,
    pub sources: Vec<Source>,
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
    /// Columns that identify a row; a later duplicate in the same file is rejected.
    #[serde(default)]
    pub natural_key: Vec<String>,
    pub columns: Vec<Column>,
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
    /// `staging."<table>"`, ready for SQL.
    pub fn qualified_table(&self) -> String {
        format!("staging.{}", quote_ident(self.table_name()))
    }
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }
}

impl Dataset {
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|source| source.name == name)
    }
    pub fn required_sources(&self) -> impl Iterator<Item = &Source> {
        self.sources.iter().filter(|source| source.required)
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
            let dataset = Self::parse(&text).with_context(|| format!("in {}", path.display()))?;
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

    /// Parses and validates one definition.
    pub fn parse(text: &str) -> anyhow::Result<Dataset> {
        let dataset: Dataset = toml::from_str(text)?;
        validate(&dataset)?;
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
        self.by_name.insert(dataset.name.clone(), dataset);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Dataset> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Dataset> {
        self.by_name.values()
    }

    /// Maps `<prefix><dataset>/ingestion_date=YYYY-MM-DD/<source>.csv[.gz]` to its batch.
    pub fn match_key(&self, landing_prefix: &str, key: &str) -> KeyMatch {
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
        let Some(dataset) = self.get(dataset_name) else {
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
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

fn validate(dataset: &Dataset) -> anyhow::Result<()> {
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
    Ok(())
}

/// Creates every dataset's staging table (and adds columns a definition gained). A column
/// whose type changed is an error: changing it in place could lose staged rows.
pub async fn ensure_staging_tables(
    client: &tokio_postgres::Client,
    datasets: &Datasets,
) -> anyhow::Result<()> {
    for dataset in datasets.iter() {
        for source in &dataset.sources {
            ensure_staging_table(client, source)
                .await
                .with_context(|| format!("staging table for {}.{}", dataset.name, source.name))?;
        }
    }
    Ok(())
}

async fn ensure_staging_table(
    client: &tokio_postgres::Client,
    source: &Source,
) -> anyhow::Result<()> {
    let table = source.qualified_table();
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
              WHERE c.table_schema = 'staging' AND c.table_name = $1",
            &[&source.table_name()],
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
    // BRIN, not b-tree: a file's rows and a batch's rows are appended together, so block
    // ranges find them as well as a b-tree would, at a fraction of the cost while loading (a
    // b-tree on each made a 1M-row COPY about 60 % slower; docs/PERFORMANCE.md). Tables made
    // by earlier versions lose their b-tree indexes here.
    let table_name = source.table_name();
    client
        .batch_execute(&format!(
            "DROP INDEX IF EXISTS staging.{old_file}, staging.{old_batch};
             CREATE INDEX IF NOT EXISTS {file} ON {table} USING brin (_file_id);
             CREATE INDEX IF NOT EXISTS {batch} ON {table} USING brin (_batch);",
            old_file = quote_ident(&format!("{table_name}_file_key_idx")),
            old_batch = quote_ident(&format!("{table_name}_batch_idx")),
            file = quote_ident(&format!("{table_name}_file_brin")),
            batch = quote_ident(&format!("{table_name}_batch_brin")),
        ))
        .await?;
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
}
