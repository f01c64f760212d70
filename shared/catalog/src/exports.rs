//! Which reports each dataset exports: `<dataset>/exports.toml`, read and
//! validated once at start so a typo stops the service instead of failing a batch later.
//!
//! ```toml
//! [[exports]]
//! report = "sales_by_month"              # names the S3 folder and file
//! table = "analytics.sales_by_month"     # schema-qualified; must have an ingestion_date column
//! order_by = "month"                     # one or more columns, comma-separated
//! ```

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use serde::Deserialize;

use crate::sql::quote_ident;
use crate::{Dataset, Datasets};

/// The file a dataset's exports are read from, in the dataset's folder.
pub const EXPORTS_FILE: &str = "exports.toml";

/// One report exported per batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportExport {
    /// Names the object: `<prefix><dataset>/<report>/ingestion_date=…/<report>.csv`.
    pub report: String,
    pub schema: String,
    pub table: String,
    /// Columns the rows are sorted by, so the same data always gives the same bytes (and SHA-256).
    pub order_by: Vec<String>,
}

impl ReportExport {
    /// `"schema"."table"`, ready for SQL.
    pub fn qualified_table(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }

    /// The `COPY … TO STDOUT` that streams one batch of the report as CSV with a header.
    /// COPY takes no bind parameters, so the date is written as a literal; a `NaiveDate`
    /// formats as digits and dashes only, which cannot break out of the quotes.
    pub fn copy_statement(&self, ingestion_date: NaiveDate) -> String {
        let order_by: Vec<String> = self.order_by.iter().map(|c| quote_ident(c)).collect();
        format!(
            "COPY (SELECT * FROM {} WHERE ingestion_date = {} ORDER BY {}) TO STDOUT WITH (FORMAT csv, HEADER)",
            self.qualified_table(),
            date_literal(ingestion_date),
            order_by.join(", "),
        )
    }
}

/// `DATE 'YYYY-MM-DD'`.
pub fn date_literal(date: NaiveDate) -> String {
    format!("DATE '{}'", date.format("%Y-%m-%d"))
}

/// Every dataset's exports.
#[derive(Debug, Clone, Default)]
pub struct ExportCatalog {
    by_dataset: BTreeMap<String, Vec<ReportExport>>,
}

impl ExportCatalog {
    /// Reads the `exports.toml` of every dataset that has one ([`Dataset::exports_file`]); a
    /// dataset without the file exports nothing. Every problem names the file and the entry.
    pub fn load(datasets: &Datasets) -> anyhow::Result<ExportCatalog> {
        let by_dataset = datasets.read_each(Dataset::exports_file, parse)?;
        for dataset in datasets.iter() {
            if !by_dataset.contains_key(&dataset.name) {
                tracing::info!(
                    dataset = dataset.name,
                    path = %dataset.exports_file().display(),
                    "no exports file; the dataset's batches export no reports"
                );
            }
        }
        Ok(ExportCatalog { by_dataset })
    }

    /// The reports `dataset` exports, in file order.
    pub fn reports(&self, dataset: &str) -> &[ReportExport] {
        self.by_dataset
            .get(dataset)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportsFile {
    #[serde(default)]
    exports: Vec<ExportEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportEntry {
    report: String,
    table: String,
    order_by: String,
}

/// Parses and validates one exports file.
pub fn parse(text: &str) -> anyhow::Result<Vec<ReportExport>> {
    let file: ExportsFile = toml::from_str(text)?;
    let mut reports = Vec::with_capacity(file.exports.len());
    let mut names = HashSet::new();
    for (index, entry) in file.exports.into_iter().enumerate() {
        let what = format!(
            "[[exports]] entry {} (report '{}')",
            index + 1,
            entry.report
        );
        let report = validate(entry).with_context(|| what.clone())?;
        if !names.insert(report.report.clone()) {
            bail!("{what}: report '{}' is exported twice", report.report);
        }
        reports.push(report);
    }
    Ok(reports)
}

fn validate(entry: ExportEntry) -> anyhow::Result<ReportExport> {
    check_identifier("report", &entry.report)?;
    let Some((schema, table)) = entry.table.split_once('.') else {
        bail!(
            "table '{}' must be schema-qualified, e.g. analytics.{}",
            entry.table,
            entry.table
        );
    };
    check_identifier("table schema", schema)?;
    check_identifier("table name", table)?;
    let order_by: Vec<String> = entry
        .order_by
        .split(',')
        .map(|column| column.trim().to_owned())
        .collect();
    for column in &order_by {
        check_identifier("order_by column", column)?;
    }
    Ok(ReportExport {
        report: entry.report,
        schema: schema.to_owned(),
        table: table.to_owned(),
        order_by,
    })
}

/// `[a-z_][a-z0-9_]*`, at most 63 bytes (PostgreSQL's identifier limit).
fn check_identifier(what: &str, name: &str) -> anyhow::Result<()> {
    if !crate::sql::is_identifier(name) {
        bail!("{what} '{name}' must match [a-z_][a-z0-9_]* (at most 63 characters)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_bundled_ecommerce_exports_parse() {
        let text = include_str!("../../../datasets/ecommerce/exports.toml");
        let reports = parse(text).unwrap();
        let names: Vec<&str> = reports.iter().map(|r| r.report.as_str()).collect();
        assert_eq!(
            names,
            [
                "agg_public_holiday",
                "agg_shipments",
                "best_performing_product",
                "sales_by_month",
                "top_products_by_revenue"
            ]
        );
    }

    #[test]
    fn the_copy_statement_quotes_identifiers_and_formats_the_date() {
        let report = parse(
            "[[exports]]\nreport = \"top\"\ntable = \"analytics.top_products\"\norder_by = \"rank, product_id\"\n",
        )
        .unwrap()
        .remove(0);
        let date = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(
            report.copy_statement(date),
            "COPY (SELECT * FROM \"analytics\".\"top_products\" WHERE ingestion_date = DATE '2026-03-01' \
             ORDER BY \"rank\", \"product_id\") TO STDOUT WITH (FORMAT csv, HEADER)"
        );
    }

    fn error_of(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn malformed_entries_are_named() {
        let error = error_of(
            "[[exports]]\nreport = \"ok\"\ntable = \"analytics.ok\"\norder_by = \"a\"\n\
             [[exports]]\nreport = \"bad\"\ntable = \"sales\"\norder_by = \"a\"\n",
        );
        assert!(error.contains("entry 2 (report 'bad')"), "{error}");
        assert!(error.contains("must be schema-qualified"), "{error}");

        let error = error_of(
            "[[exports]]\nreport = \"x\"\ntable = \"analytics.x; DROP TABLE y\"\norder_by = \"a\"\n",
        );
        assert!(error.contains("table name 'x; DROP TABLE y'"), "{error}");

        let error =
            error_of("[[exports]]\nreport = \"x\"\ntable = \"analytics.x\"\norder_by = \"a,\"\n");
        assert!(error.contains("order_by column ''"), "{error}");

        let error = error_of(
            "[[exports]]\nreport = \"Sales\"\ntable = \"analytics.x\"\norder_by = \"a\"\n",
        );
        assert!(error.contains("report 'Sales' must match"), "{error}");

        let error = error_of(
            "[[exports]]\nreport = \"x\"\ntable = \"analytics.x\"\norder_by = \"a\"\n\
             [[exports]]\nreport = \"x\"\ntable = \"analytics.y\"\norder_by = \"a\"\n",
        );
        assert!(error.contains("exported twice"), "{error}");

        let error = error_of("[[exports]]\nreport = \"x\"\ntable = \"analytics.x\"\n");
        assert!(error.contains("order_by"), "{error}");

        let error = error_of(
            "[[exports]]\nreport = \"x\"\ntable = \"analytics.x\"\norder_by = \"a\"\nformat = \"csv\"\n",
        );
        assert!(error.contains("unknown field"), "{error}");
    }

    /// A folder of one dataset, the bundled ecommerce definition, with `exports` as its
    /// exports file when given.
    fn ecommerce_folder(name: &str, exports: Option<&str>) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("{name}-{}", uuid::Uuid::new_v4()));
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/ecommerce");
        std::fs::create_dir_all(dir.join("ecommerce")).unwrap();
        std::fs::copy(
            bundled.join(crate::DEFINITION_FILE),
            dir.join("ecommerce").join(crate::DEFINITION_FILE),
        )
        .unwrap();
        if let Some(exports) = exports {
            std::fs::write(dir.join("ecommerce").join(EXPORTS_FILE), exports).unwrap();
        }
        dir
    }

    #[test]
    fn loading_names_the_file() {
        let dir = ecommerce_folder(
            "exporter-catalog",
            Some("[[exports]]\nreport = \"x\"\ntable = \"x\"\norder_by = \"a\"\n"),
        );
        let datasets = Datasets::load(&dir).unwrap();
        let error = format!("{:#}", ExportCatalog::load(&datasets).unwrap_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(error.contains("ecommerce/exports.toml"), "{error}");
        assert!(error.contains("entry 1 (report 'x')"), "{error}");

        let empty = ecommerce_folder("exporter-empty", None);
        let datasets = Datasets::load(&empty).unwrap();
        let catalog = ExportCatalog::load(&datasets).unwrap();
        std::fs::remove_dir_all(&empty).unwrap();
        assert!(catalog.reports("ecommerce").is_empty());
    }
}
