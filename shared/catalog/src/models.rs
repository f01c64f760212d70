//! SQL models: one `.sql` file per model in `<dataset>/models/`, its dependencies
//! declared in its header (`-- depends_on: a, b`). The run order is computed, never listed by
//! hand; a missing dependency or a cycle is an error when the service starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context as _, bail};

use crate::Datasets;

/// One model: its name (the file's stem), the models it reads, and its SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub name: String,
    pub depends_on: Vec<String>,
    pub sql: String,
}

/// Every dataset's models, loaded and ordered.
#[derive(Debug, Clone, Default)]
pub struct Models {
    by_dataset: BTreeMap<String, ModelSet>,
}

impl Models {
    /// Loads every dataset's models ([`crate::Dataset::models_folder`]); any problem is an error.
    pub fn load(datasets: &Datasets) -> anyhow::Result<Models> {
        let mut by_dataset = BTreeMap::new();
        for dataset in datasets.iter() {
            by_dataset.insert(
                dataset.name.clone(),
                ModelSet::load(&dataset.models_folder())?,
            );
        }
        Ok(Models { by_dataset })
    }

    pub fn for_dataset(&self, dataset: &str) -> Option<&ModelSet> {
        self.by_dataset.get(dataset)
    }
}

/// A dataset's models in dependency order.
#[derive(Debug, Clone, Default)]
pub struct ModelSet {
    ordered: Vec<Model>,
}

impl ModelSet {
    /// Loads every `*.sql` file in `dir`; a missing folder means a dataset without models.
    pub fn load(dir: &Path) -> anyhow::Result<ModelSet> {
        if !dir.exists() {
            return Ok(ModelSet::default());
        }
        let mut models = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_none_or(|ext| ext != "sql") {
                continue;
            }
            let sql = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            models.push(parse(&name, sql).with_context(|| format!("in {}", path.display()))?);
        }
        Self::order(models).with_context(|| format!("models in {}", dir.display()))
    }

    /// Orders models so each comes after the models it depends on (ties alphabetical).
    pub fn order(models: Vec<Model>) -> anyhow::Result<ModelSet> {
        let by_name: BTreeMap<String, Model> = models
            .into_iter()
            .map(|model| (model.name.clone(), model))
            .collect();
        for model in by_name.values() {
            for dependency in &model.depends_on {
                if !by_name.contains_key(dependency) {
                    bail!(
                        "model '{}' depends on '{dependency}', which is not a model",
                        model.name
                    );
                }
            }
        }
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut ordered = Vec::with_capacity(by_name.len());
        while ordered.len() < by_name.len() {
            let ready: Vec<&Model> = by_name
                .values()
                .filter(|model| !done.contains(model.name.as_str()))
                .filter(|model| {
                    model
                        .depends_on
                        .iter()
                        .all(|dependency| done.contains(dependency.as_str()))
                })
                .collect();
            if ready.is_empty() {
                let stuck: Vec<&str> = by_name
                    .keys()
                    .map(String::as_str)
                    .filter(|name| !done.contains(name))
                    .collect();
                bail!(
                    "the dependencies of these models form a cycle: {}",
                    stuck.join(", ")
                );
            }
            for model in ready {
                done.insert(&model.name);
                ordered.push(model.clone());
            }
        }
        Ok(ModelSet { ordered })
    }

    pub fn models(&self) -> &[Model] {
        &self.ordered
    }

    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    /// The named models and everything upstream of them, in run order.
    pub fn with_upstream(&self, names: &[String]) -> anyhow::Result<Vec<&Model>> {
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        let mut pending: Vec<&str> = names.iter().map(String::as_str).collect();
        while let Some(name) = pending.pop() {
            let Some(model) = self.ordered.iter().find(|model| model.name == name) else {
                let known: Vec<&str> = self
                    .ordered
                    .iter()
                    .map(|model| model.name.as_str())
                    .collect();
                bail!("no model named '{name}' (models: {})", known.join(", "));
            };
            if wanted.insert(&model.name) {
                pending.extend(model.depends_on.iter().map(String::as_str));
            }
        }
        Ok(self
            .ordered
            .iter()
            .filter(|model| wanted.contains(model.name.as_str()))
            .collect())
    }
}

/// A model file's header, the comment lines it starts with: `-- model: <name>` and
/// `-- depends_on: a, b`, each entry with its 1-based line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub model: Option<(usize, String)>,
    pub depends_on: Vec<(usize, String)>,
}

impl Header {
    /// Reads the header of a model's SQL.
    pub fn read(sql: &str) -> Header {
        let mut header = Header::default();
        for (index, line) in sql
            .lines()
            .take_while(|line| line.trim_start().starts_with("--") || line.trim().is_empty())
            .enumerate()
        {
            let comment = line.trim_start().trim_start_matches('-').trim();
            if let Some(value) = comment.strip_prefix("model:") {
                header.model = Some((index + 1, value.trim().to_owned()));
            } else if let Some(value) = comment.strip_prefix("depends_on:") {
                header.depends_on.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(|name| (index + 1, name.to_owned())),
                );
            }
        }
        header
    }

    /// The model's name, when the header names the file it is in, `<stem>.sql`; otherwise the
    /// line of its `-- model:` entry (none when it has none) and what is wrong.
    pub fn name(&self, stem: &str) -> Result<&str, (Option<usize>, String)> {
        match &self.model {
            None => Err((None, format!("the header has no '-- model: {stem}' line"))),
            Some((line, name)) if name != stem => Err((
                Some(*line),
                format!("the header names model '{name}' but the file is {stem}.sql"),
            )),
            Some((_, name)) => Ok(name),
        }
    }
}

/// Reads the header comments: `-- model: <name>` (must match the file) and `-- depends_on: …`.
fn parse(file_stem: &str, sql: String) -> anyhow::Result<Model> {
    let header = Header::read(&sql);
    let name = header
        .name(file_stem)
        .map_err(|(_, problem)| anyhow::anyhow!(problem))?;
    Ok(Model {
        name: name.to_owned(),
        depends_on: header
            .depends_on
            .into_iter()
            .map(|(_, name)| name)
            .collect(),
        sql,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, depends_on: &[&str]) -> Model {
        Model {
            name: name.into(),
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
            sql: String::new(),
        }
    }

    #[test]
    fn order_follows_dependencies() {
        let set = ModelSet::order(vec![
            model("report", &["fact", "dim_b"]),
            model("fact", &["dim_a"]),
            model("dim_b", &[]),
            model("dim_a", &[]),
        ])
        .unwrap();
        let names: Vec<&str> = set.models().iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["dim_a", "dim_b", "fact", "report"]);
        let subset: Vec<&str> = set
            .with_upstream(&["fact".into()])
            .unwrap()
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(subset, ["dim_a", "fact"]);
        assert!(
            set.with_upstream(&["nope".into()])
                .unwrap_err()
                .to_string()
                .contains("no model named 'nope'")
        );
    }

    #[test]
    fn cycles_and_missing_dependencies_are_errors() {
        let cycle = ModelSet::order(vec![
            model("a", &["b"]),
            model("b", &["a"]),
            model("c", &[]),
        ])
        .unwrap_err();
        assert_eq!(
            cycle.to_string(),
            "the dependencies of these models form a cycle: a, b"
        );
        let missing = ModelSet::order(vec![model("a", &["ghost"])]).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "model 'a' depends on 'ghost', which is not a model"
        );
    }

    #[test]
    fn headers_are_parsed_and_checked() {
        let parsed = parse(
            "fact",
            "-- model: fact\n-- depends_on: a, b\n-- why\nSELECT 1;".into(),
        )
        .unwrap();
        assert_eq!(parsed.depends_on, ["a", "b"]);
        assert!(
            parse("fact", "-- model: other\nSELECT 1;".into())
                .unwrap_err()
                .to_string()
                .contains("file is fact.sql")
        );
        assert!(parse("fact", "SELECT 1;".into()).is_err());
    }

    #[test]
    fn the_bundled_models_load_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/ecommerce/models");
        let set = ModelSet::load(&dir).unwrap();
        let names: Vec<&str> = set.models().iter().map(|m| m.name.as_str()).collect();
        let position = |name: &str| names.iter().position(|n| *n == name).unwrap();
        assert!(position("dim_product") < position("fact_orders"));
        assert!(position("fact_orders") < position("sales_by_month"));
        assert!(position("fact_shipments") < position("agg_shipments"));
        assert!(position("holiday_calendar") < position("agg_public_holiday"));
        assert!(position("holiday_calendar") < position("dim_date"));
        assert_eq!(names.len(), 12);
    }
}
