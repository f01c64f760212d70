//! The dataset catalog: everything a dataset is, read from its folder. A dataset is files, not
//! Rust; each folder under the datasets directory (`LANDFALL_DATASETS_DIR`) holds one:
//!
//! ```text
//! <dataset>/dataset.toml   the definition: sources, columns, key patterns (dataset, key_pattern)
//! <dataset>/models/*.sql   the SQL models, ordered by their headers (models)
//! <dataset>/checks.toml    the quality checks and the SQL each one runs (checks)
//! <dataset>/exports.toml   the reports exported per batch (exports)
//! <dataset>/extract.toml   where the sources are read from in the shop's database (extract)
//! <dataset>/migrations/    the dataset's own tables, as numbered SQL files (migrations)
//! ```
//!
//! [`Datasets::load`] reads every definition and sets each dataset's [`Dataset::dir`]; the
//! models, checks and exports are read from that folder by [`models::Models::load`],
//! [`checks::CheckCatalog::load`] and [`exports::ExportCatalog::load`], each by the service that
//! runs them (so a broken checks file stops the quality-checker, not the ingester), and all of
//! them by `landfall dataset check`. The staging tables and views follow from the definitions
//! ([`staging`]); the migration runner (`runtime::db::migrate`) applies each dataset's
//! [`migrations`] after the platform's.
//!
//! The catalog depends on no other landfall crate: it reads files and writes SQL text and DDL,
//! nothing else. The shared runtime depends on it (a service loads the datasets at start and
//! makes their staging tables when it migrates), the services and the `landfall` command read
//! their datasets through it, and none of them keeps a parser of its own.

pub mod checks;
pub mod dataset;
pub mod exports;
pub mod extract;
pub mod key_pattern;
pub mod migrations;
pub mod models;
pub mod sql;
pub mod staging;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::NaiveDate;

pub use dataset::{Column, ColumnType, Dataset, Mode, RejectLimit, Source, patterns_overlap};
pub use key_pattern::{DEFAULT_KEY_PATTERN, KeyPattern};

/// The definition's file in a dataset's folder.
pub const DEFINITION_FILE: &str = "dataset.toml";
/// The folder of a dataset's SQL models ([`models`]), in the dataset's folder; its checks and
/// exports are [`checks::CHECKS_FILE`] and [`exports::EXPORTS_FILE`] beside it.
pub const MODELS_FOLDER: &str = "models";

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
    /// Loads `<dir>/*/dataset.toml`, each dataset's [`Dataset::dir`] its folder; every problem
    /// names the file.
    pub fn load(dir: &Path) -> anyhow::Result<Datasets> {
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!(
                "reading the datasets directory {} (set LANDFALL_DATASETS_DIR)",
                dir.display()
            )
        })?;
        let mut folders: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|folder| folder.join(DEFINITION_FILE).is_file())
            .collect();
        folders.sort();
        let mut datasets = Datasets::default();
        for folder in folders {
            let path = folder.join(DEFINITION_FILE);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut dataset =
                Self::parse(&text).with_context(|| format!("in {}", path.display()))?;
            dataset.dir = folder;
            datasets
                .insert(dataset)
                .with_context(|| format!("in {}", path.display()))?;
        }
        if datasets.by_name.is_empty() {
            bail!(
                "no dataset definitions (*/{DEFINITION_FILE}) in {}",
                dir.display()
            );
        }
        Ok(datasets)
    }

    /// Parses and validates one definition; fills in each source's mode and key pattern.
    pub fn parse(text: &str) -> anyhow::Result<Dataset> {
        let mut dataset: Dataset = toml::from_str(text)?;
        dataset::validate(&mut dataset)?;
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

    /// Each dataset's file at `path(dataset)`, parsed by `parse`, by dataset name; a dataset
    /// without the file is left out. Every problem names the file.
    fn read_each<T>(
        &self,
        path: impl Fn(&Dataset) -> PathBuf,
        parse: impl Fn(&str) -> anyhow::Result<T>,
    ) -> anyhow::Result<BTreeMap<String, T>> {
        let mut found = BTreeMap::new();
        for dataset in self.iter() {
            let path = path(dataset);
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let parsed = parse(&text).with_context(|| format!("in {}", path.display()))?;
            found.insert(dataset.name.clone(), parsed);
        }
        Ok(found)
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

#[cfg(test)]
mod tests;
