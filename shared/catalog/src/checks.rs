//! Quality checks are declared, not coded: `<dataset>/checks.toml` lists a dataset's checks
//! as `[[checks]]` tables. This module reads and validates them, so a
//! malformed declaration stops the service at start (naming the file and the check) instead of
//! surfacing as a failed batch later.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use toml::Spanned;

use crate::sql::is_identifier;
use crate::{Dataset, Datasets};

/// The file a dataset's checks are declared in, in the dataset's folder.
pub const CHECKS_FILE: &str = "checks.toml";

/// Whether a failing check blocks the batch's export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A failure (or a broken check) fails the batch: it is not exported.
    Error,
    /// A failure is reported with the passed batch but does not block it; a check of this
    /// severity whose SQL cannot run blocks it all the same.
    Warn,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
    }
}

/// A validated SQL identifier, `name` or `schema.name`, each part `[a-z_][a-z0-9_]*`. It comes
/// from configuration, so it is validated here and always quoted when written into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    parts: Vec<String>,
}

impl Ident {
    /// A table, optionally schema-qualified.
    pub fn table(raw: &str) -> Result<Ident, String> {
        let parts: Vec<&str> = raw.split('.').collect();
        if parts.len() > 2 || !parts.iter().all(|part| is_identifier(part)) {
            return Err(format!(
                "'{raw}' is not a table name (use [a-z_][a-z0-9_]*, optionally schema-qualified as schema.table)"
            ));
        }
        Ok(Ident {
            parts: parts.into_iter().map(str::to_owned).collect(),
        })
    }

    /// A column (never qualified: the check says which table it belongs to).
    pub fn column(raw: &str) -> Result<Ident, String> {
        if !is_identifier(raw) {
            return Err(format!(
                "'{raw}' is not a column name (use [a-z_][a-z0-9_]*)"
            ));
        }
        Ok(Ident {
            parts: vec![raw.to_owned()],
        })
    }

    /// The identifier quoted for SQL, e.g. `"staging"."orders"`.
    pub fn sql(&self) -> String {
        self.parts
            .iter()
            .map(|part| crate::sql::quote_ident(part))
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parts.join("."))
    }
}

/// One accepted value of an `accepted_values` check, written into SQL as a literal.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

impl Literal {
    /// The value as a SQL literal (text quoted, quotes doubled).
    pub fn sql(&self) -> String {
        match self {
            Literal::Bool(value) => value.to_string(),
            Literal::Integer(value) => value.to_string(),
            Literal::Float(value) => value.to_string(),
            Literal::Text(value) => crate::sql::quote_literal(value),
        }
    }
}

/// What a check tests, with the fields its kind needs.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// No row has `column` NULL.
    NotNull { table: Ident, column: Ident },
    /// No combination of `columns` occurs twice (rows with a NULL key column are skipped).
    Unique { table: Ident, columns: Vec<Ident> },
    /// Every non-NULL `column` is one of `values`.
    AcceptedValues {
        table: Ident,
        column: Ident,
        values: Vec<Literal>,
    },
    /// Every non-NULL `column` is found in `to_table.to_column` (rows of it matching `to_filter`).
    Relationships {
        table: Ident,
        column: Ident,
        to_table: Ident,
        to_column: Ident,
        to_filter: Option<String>,
    },
    /// A SQL boolean per row; rows where it is not true (false or NULL) fail.
    Expression { table: Ident, expression: String },
    /// The number of rows lies within `min..=max` (either bound may be left out).
    RowCount {
        table: Ident,
        min: Option<u64>,
        max: Option<u64>,
    },
    /// A query returning the failing rows.
    CustomSql { sql: String },
}

impl CheckKind {
    /// The kind's name as written in `checks.toml`.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::NotNull { .. } => "not_null",
            CheckKind::Unique { .. } => "unique",
            CheckKind::AcceptedValues { .. } => "accepted_values",
            CheckKind::Relationships { .. } => "relationships",
            CheckKind::Expression { .. } => "expression",
            CheckKind::RowCount { .. } => "row_count",
            CheckKind::CustomSql { .. } => "custom_sql",
        }
    }
}

/// One declared, validated check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Unique within the dataset; names the check in results and events.
    pub name: String,
    pub severity: Severity,
    /// What the check guards, for people reading the results.
    pub description: Option<String>,
    /// SQL condition scoping the check's table to the batch (`where` in the file), used as
    /// given, e.g. `_batch = ops.batch_date()`.
    pub filter: Option<String>,
    pub kind: CheckKind,
}

/// A `[[checks]]` table as written, before it is known to be valid. Every field but the three
/// common ones is optional here so a missing or misplaced field gets a precise message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: String,
    kind: String,
    severity: String,
    description: Option<String>,
    table: Option<String>,
    column: Option<String>,
    columns: Option<Vec<String>>,
    values: Option<Vec<Literal>>,
    to_table: Option<String>,
    to_column: Option<String>,
    to_where: Option<String>,
    expression: Option<String>,
    min: Option<u64>,
    max: Option<u64>,
    sql: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
}

/// The whole file: a list of `[[checks]]`; each kept as a plain table with its position, so
/// its own errors can name it and its line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksFile {
    #[serde(default)]
    checks: Vec<Spanned<toml::Table>>,
}

const KINDS: &str =
    "not_null, unique, accepted_values, relationships, expression, row_count, custom_sql";

impl RawCheck {
    /// The kind-specific fields present in the declaration.
    fn present_fields(&self) -> Vec<&'static str> {
        [
            ("table", self.table.is_some()),
            ("column", self.column.is_some()),
            ("columns", self.columns.is_some()),
            ("values", self.values.is_some()),
            ("to_table", self.to_table.is_some()),
            ("to_column", self.to_column.is_some()),
            ("to_where", self.to_where.is_some()),
            ("expression", self.expression.is_some()),
            ("min", self.min.is_some()),
            ("max", self.max.is_some()),
            ("sql", self.sql.is_some()),
            ("where", self.filter.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, present)| present.then_some(field))
        .collect()
    }

    fn into_check(self) -> Result<Check, String> {
        let severity = match self.severity.as_str() {
            "error" => Severity::Error,
            "warn" => Severity::Warn,
            other => {
                return Err(format!(
                    "severity '{other}' is not one of: error (blocks export), warn"
                ));
            }
        };
        let allowed: &[&str] = match self.kind.as_str() {
            "not_null" => &["table", "column", "where"],
            "unique" => &["table", "columns", "where"],
            "accepted_values" => &["table", "column", "values", "where"],
            "relationships" => &[
                "table",
                "column",
                "to_table",
                "to_column",
                "where",
                "to_where",
            ],
            "expression" => &["table", "expression", "where"],
            "row_count" => &["table", "min", "max", "where"],
            "custom_sql" => &["sql"],
            other => return Err(format!("kind '{other}' is not one of: {KINDS}")),
        };
        if let Some(field) = self
            .present_fields()
            .into_iter()
            .find(|field| !allowed.contains(field))
        {
            return Err(format!(
                "`{field}` does not apply to a {} check (it takes: {})",
                self.kind,
                allowed.join(", ")
            ));
        }
        let kind = self.kind_fields()?;
        let filter = sql_fragment(self.filter, "where")?;
        Ok(Check {
            name: self.name,
            severity,
            description: self.description,
            filter,
            kind,
        })
    }

    /// The kind with its fields, every required one present and valid.
    fn kind_fields(&self) -> Result<CheckKind, String> {
        let kind = self.kind.as_str();
        let need = |value: &Option<String>, field: &str| -> Result<String, String> {
            value
                .clone()
                .ok_or_else(|| format!("a {kind} check needs `{field}`"))
        };
        let table = || Ident::table(&need(&self.table, "table")?);
        let column = || Ident::column(&need(&self.column, "column")?);
        Ok(match kind {
            "not_null" => CheckKind::NotNull {
                table: table()?,
                column: column()?,
            },
            "unique" => {
                let names = self
                    .columns
                    .as_ref()
                    .filter(|columns| !columns.is_empty())
                    .ok_or("a unique check needs `columns`, a non-empty list of column names")?;
                let mut seen = HashSet::new();
                if let Some(twice) = names.iter().find(|name| !seen.insert(name.as_str())) {
                    return Err(format!("column '{twice}' is listed twice in `columns`"));
                }
                CheckKind::Unique {
                    table: table()?,
                    columns: names
                        .iter()
                        .map(|name| Ident::column(name))
                        .collect::<Result<_, _>>()?,
                }
            }
            "accepted_values" => CheckKind::AcceptedValues {
                table: table()?,
                column: column()?,
                values: self
                    .values
                    .clone()
                    .filter(|values| !values.is_empty())
                    .ok_or("an accepted_values check needs `values`, a non-empty list")?,
            },
            "relationships" => CheckKind::Relationships {
                table: table()?,
                column: column()?,
                to_table: Ident::table(&need(&self.to_table, "to_table")?)?,
                to_column: Ident::column(&need(&self.to_column, "to_column")?)?,
                to_filter: sql_fragment(self.to_where.clone(), "to_where")?,
            },
            "expression" => CheckKind::Expression {
                table: table()?,
                expression: sql_fragment(self.expression.clone(), "expression")?
                    .ok_or("an expression check needs `expression`, a SQL boolean per row")?,
            },
            "row_count" => {
                if self.min.is_none() && self.max.is_none() {
                    return Err("a row_count check needs `min`, `max` or both".into());
                }
                if let (Some(min), Some(max)) = (self.min, self.max)
                    && min > max
                {
                    return Err(format!("`min` {min} is larger than `max` {max}"));
                }
                CheckKind::RowCount {
                    table: table()?,
                    min: self.min,
                    max: self.max,
                }
            }
            "custom_sql" => {
                let sql = sql_fragment(self.sql.clone(), "sql")?
                    .ok_or("a custom_sql check needs `sql`, a query returning the failing rows")?;
                // The query runs as a subquery, where a closing semicolon is a syntax error.
                let sql = sql.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
                CheckKind::CustomSql {
                    sql: sql.to_owned(),
                }
            }
            _ => unreachable!("the kind was matched against the known kinds above"),
        })
    }
}

/// A piece of SQL from the file, trimmed; present but blank is a mistake worth naming.
fn sql_fragment(value: Option<String>, field: &str) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Err(format!("`{field}` is empty")),
        Some(text) => Ok(Some(text.trim().to_owned())),
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !valid {
        return Err(format!(
            "name '{name}' must be 1-100 of a-z, A-Z, 0-9, '_', '-', '.'"
        ));
    }
    Ok(())
}

/// 1-based line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// Parses and validates one `checks.toml`. Each problem names the check (by name when it has
/// one, else by position) and its line.
pub fn parse(text: &str) -> anyhow::Result<Vec<Check>> {
    let file: ChecksFile = toml::from_str(text).context("not a valid checks file")?;
    let mut checks: Vec<Check> = Vec::with_capacity(file.checks.len());
    for (index, spanned) in file.checks.into_iter().enumerate() {
        let line = line_of(text, spanned.span().start);
        let table = spanned.into_inner();
        let label = match table.get("name").and_then(toml::Value::as_str) {
            Some(name) => format!("check '{name}' (line {line})"),
            None => format!("check #{} (line {line})", index + 1),
        };
        let check = toml::Value::Table(table)
            .try_into::<RawCheck>()
            .map_err(|error| error.message().to_owned())
            .and_then(|raw| {
                validate_name(&raw.name)?;
                raw.into_check()
            })
            .map_err(|problem| anyhow::anyhow!("{label}: {problem}"))?;
        if checks.iter().any(|other| other.name == check.name) {
            bail!("{label}: another check is already named '{}'", check.name);
        }
        checks.push(check);
    }
    Ok(checks)
}

/// Every dataset's checks, loaded once at start.
#[derive(Debug, Clone, Default)]
pub struct CheckCatalog {
    by_dataset: BTreeMap<String, Vec<Check>>,
}

impl CheckCatalog {
    /// Reads the `checks.toml` of every dataset that has one ([`Dataset::checks_file`]); a
    /// dataset without the file has no checks.
    pub fn load(datasets: &Datasets) -> anyhow::Result<CheckCatalog> {
        Ok(CheckCatalog {
            by_dataset: datasets.read_each(Dataset::checks_file, parse)?,
        })
    }

    /// A dataset's checks; `None` when the dataset declared none.
    pub fn checks(&self, dataset: &str) -> Option<&[Check]> {
        self.by_dataset.get(dataset).map(Vec::as_slice)
    }

    /// Records that `dataset` has no checks, so its batches pass with none run.
    pub fn insert_empty(&mut self, dataset: &str) {
        self.by_dataset.entry(dataset.to_owned()).or_default();
    }
}

pub mod sql;

#[cfg(test)]
mod tests;
