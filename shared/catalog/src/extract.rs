//! Where a dataset's sources are read from when they are extracted from the shop's own
//! PostgreSQL database instead of being dropped in S3: `<dataset>/extract.toml`, read by the
//! extractor and `landfall extract`, validated against the dataset's definition.
//!
//! ```toml
//! [[sources]]
//! source = "orders"              # a source of dataset.toml
//! table = "shop.orders"          # a table or view of the source database ([schema.]name) …
//! # query = "SELECT … FROM …"    # … or a query (exactly one of the two)
//! mode = "snapshot"              # the whole table each run (default)
//!
//! [[sources]]
//! source = "transactions"
//! table = "shop.invoice_lines"
//! mode = "incremental"           # only rows whose cursor is past the last run's (delta sources)
//! cursor = "updated_at"          # a column of the table or query, ordered (a timestamp, an id)
//! ```
//!
//! The file written for a source has the source's declared columns, by name, in the order
//! `dataset.toml` lists them; the table or query may have more.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::sql::{is_identifier, quote_ident};
use crate::{Dataset, Datasets, Mode};

/// The file a dataset's extract is read from, in the dataset's folder.
pub const EXTRACT_FILE: &str = "extract.toml";

/// How much of a source one run reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractMode {
    /// Every row of the table or query.
    Snapshot,
    /// Rows whose `cursor` is greater than the largest value the previous run (of an earlier
    /// ingestion date) wrote; only for a source in delta mode.
    Incremental { cursor: String },
}

impl ExtractMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ExtractMode::Snapshot => "snapshot",
            ExtractMode::Incremental { .. } => "incremental",
        }
    }
}

/// Where the rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `[schema.]name`, each part an identifier.
    Table {
        schema: Option<String>,
        name: String,
    },
    /// A `SELECT` of the source database (no trailing `;`).
    Query(String),
}

impl Origin {
    /// How it reads after `FROM`.
    pub fn from_clause(&self) -> String {
        match self {
            Origin::Table { schema, name } => match schema {
                Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(name)),
                None => quote_ident(name),
            },
            Origin::Query(query) => format!("({query}) AS extracted"),
        }
    }

    /// How errors name it.
    pub fn describe(&self) -> String {
        match self {
            Origin::Table { schema, name } => match schema {
                Some(schema) => format!("table {schema}.{name}"),
                None => format!("table {name}"),
            },
            Origin::Query(_) => "the query".to_owned(),
        }
    }
}

/// One source of a dataset, as it is extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceExtract {
    /// The dataset's source the file lands as.
    pub source: String,
    pub origin: Origin,
    pub mode: ExtractMode,
}

/// Every dataset's extract.
#[derive(Debug, Clone, Default)]
pub struct ExtractCatalog {
    by_dataset: BTreeMap<String, Vec<SourceExtract>>,
}

impl ExtractCatalog {
    /// Reads the `extract.toml` of every dataset that has one; every problem names the file and
    /// the entry.
    pub fn load(datasets: &Datasets) -> anyhow::Result<ExtractCatalog> {
        let mut by_dataset = BTreeMap::new();
        for dataset in datasets.iter() {
            let path = dataset.extract_file();
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let sources =
                parse(&text, dataset).with_context(|| format!("in {}", path.display()))?;
            by_dataset.insert(dataset.name.clone(), sources);
        }
        Ok(ExtractCatalog { by_dataset })
    }

    /// The sources `dataset` extracts, in file order; `None` when it has no extract file.
    pub fn sources(&self, dataset: &str) -> Option<&[SourceExtract]> {
        self.by_dataset.get(dataset).map(Vec::as_slice)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtractFile {
    #[serde(default)]
    sources: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    source: String,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// Parses one extract file and checks it against the dataset it belongs to.
pub fn parse(text: &str, dataset: &Dataset) -> anyhow::Result<Vec<SourceExtract>> {
    let file: ExtractFile = toml::from_str(text)?;
    if file.sources.is_empty() {
        bail!("no [[sources]]: an extract file names at least one source");
    }
    let mut seen = HashSet::new();
    let mut sources = Vec::with_capacity(file.sources.len());
    for (index, entry) in file.sources.into_iter().enumerate() {
        let what = format!(
            "[[sources]] entry {} (source '{}')",
            index + 1,
            entry.source
        );
        if !seen.insert(entry.source.clone()) {
            bail!("{what}: the source is extracted twice");
        }
        sources.push(validate(entry, dataset).with_context(|| what)?);
    }
    Ok(sources)
}

fn validate(entry: Entry, dataset: &Dataset) -> anyhow::Result<SourceExtract> {
    let Some(declared) = dataset.source(&entry.source) else {
        let names: Vec<&str> = dataset.sources.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "dataset '{}' has no source '{}' (its sources: {})",
            dataset.name,
            entry.source,
            names.join(", ")
        );
    };
    if !declared.pattern().render(chrono::NaiveDate::MIN).1 {
        bail!(
            "the source's key pattern '{}' has a '*', so an extract cannot know the key to write",
            declared.pattern().written()
        );
    }
    let origin = match (entry.table, entry.query) {
        (Some(table), None) => parse_table(&table)?,
        (None, Some(query)) => {
            let query = query.trim().trim_end_matches(';').trim().to_owned();
            if query.is_empty() {
                bail!("query is empty");
            }
            Origin::Query(query)
        }
        (Some(_), Some(_)) => bail!("give a table or a query, not both"),
        (None, None) => {
            bail!("give the table (table = \"schema.name\") or a query (query = \"SELECT …\")")
        }
    };
    let mode = match (entry.mode.as_deref().unwrap_or("snapshot"), entry.cursor) {
        ("snapshot", None) => ExtractMode::Snapshot,
        ("snapshot", Some(_)) => {
            bail!("cursor is for mode = \"incremental\"; a snapshot reads the whole table")
        }
        ("incremental", None) => {
            bail!("mode = \"incremental\" needs cursor = \"<column>\" (e.g. updated_at or an id)")
        }
        ("incremental", Some(cursor)) => {
            if !is_identifier(&cursor) {
                bail!("cursor '{cursor}' is not a column name (a-z, 0-9, _)");
            }
            if declared.mode() != Mode::Delta {
                bail!(
                    "mode = \"incremental\" writes only changed rows, but source '{}' is a \
                     snapshot (each file holds every row); extract it with mode = \"snapshot\", \
                     or declare it mode = \"delta\" in dataset.toml",
                    declared.name
                );
            }
            ExtractMode::Incremental { cursor }
        }
        (other, _) => bail!("mode '{other}' is not one of snapshot, incremental"),
    };
    Ok(SourceExtract {
        source: entry.source,
        origin,
        mode,
    })
}

fn parse_table(table: &str) -> anyhow::Result<Origin> {
    let parts: Vec<&str> = table.split('.').collect();
    let check = |part: &str| {
        if !is_identifier(part) {
            bail!(
                "table '{table}': '{part}' is not an identifier (a-z, 0-9, _; write a query for \
                 other names)"
            );
        }
        Ok(part.to_owned())
    };
    match parts.as_slice() {
        [name] => Ok(Origin::Table {
            schema: None,
            name: check(name)?,
        }),
        [schema, name] => Ok(Origin::Table {
            schema: Some(check(schema)?),
            name: check(name)?,
        }),
        _ => bail!("table '{table}' must be name or schema.name"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset() -> Dataset {
        Datasets::parse(
            r#"
name = "shop"
[[sources]]
name = "orders"
natural_key = ["order_id"]
columns = [{ name = "order_id", type = "int" }]
[[sources]]
name = "lines"
mode = "delta"
columns = [{ name = "sku", type = "text" }]
"#,
        )
        .unwrap()
    }

    #[test]
    fn tables_queries_and_modes_are_read() {
        let sources = parse(
            r#"
[[sources]]
source = "orders"
table = "shop.orders"
[[sources]]
source = "lines"
query = "SELECT sku, changed FROM shop.lines;"
mode = "incremental"
cursor = "changed"
"#,
            &dataset(),
        )
        .unwrap();
        assert_eq!(sources[0].origin.from_clause(), "\"shop\".\"orders\"");
        assert_eq!(sources[0].mode, ExtractMode::Snapshot);
        assert_eq!(
            sources[1].origin,
            Origin::Query("SELECT sku, changed FROM shop.lines".into())
        );
        assert_eq!(
            sources[1].mode,
            ExtractMode::Incremental {
                cursor: "changed".into()
            }
        );
    }

    #[test]
    fn mistakes_name_the_entry_and_the_reason() {
        let cases = [
            ("source = \"nope\"\ntable = \"t\"", "has no source 'nope'"),
            ("source = \"orders\"", "give the table"),
            (
                "source = \"orders\"\ntable = \"t\"\nquery = \"SELECT 1\"",
                "not both",
            ),
            (
                "source = \"orders\"\ntable = \"a.b.c\"",
                "name or schema.name",
            ),
            (
                "source = \"orders\"\ntable = \"Shop.orders\"",
                "not an identifier",
            ),
            (
                "source = \"orders\"\ntable = \"t\"\nmode = \"incremental\"\ncursor = \"id\"",
                "is a snapshot",
            ),
            (
                "source = \"lines\"\ntable = \"t\"\nmode = \"incremental\"",
                "needs cursor",
            ),
            (
                "source = \"orders\"\ntable = \"t\"\ncursor = \"id\"",
                "cursor is for mode",
            ),
            (
                "source = \"orders\"\ntable = \"t\"\nmode = \"full\"",
                "not one of",
            ),
            ("source = \"orders\"\ntables = \"t\"", "unknown field"),
        ];
        for (entry, expected) in cases {
            let error = parse(&format!("[[sources]]\n{entry}\n"), &dataset()).unwrap_err();
            let message = format!("{error:#}");
            assert!(message.contains(expected), "{entry}: {message}");
        }
        let twice = "[[sources]]\nsource = \"orders\"\ntable = \"t\"\n".repeat(2);
        let message = format!("{:#}", parse(&twice, &dataset()).unwrap_err());
        assert!(message.contains("extracted twice"), "{message}");
    }
}
