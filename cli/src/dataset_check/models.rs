//! The dataset's models: every header problem reported with its line, then the folder loaded as
//! the transformer loads it (or, when it would not start, the models with a sound header).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use catalog::models::{Header as ModelHeader, Model, ModelSet};

use super::{Report, SourceFile};

/// One model file and its header, read as the transformer reads it.
struct Header {
    file: SourceFile,
    stem: String,
    header: ModelHeader,
}

fn read_header(path: PathBuf) -> anyhow::Result<Header> {
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let stem = path
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    Ok(Header {
        header: ModelHeader::read(&text),
        file: SourceFile { path, text },
        stem,
    })
}

/// Reports every header problem with its line, then loads the folder as the transformer does.
pub(super) fn check_models(dir: &Path, report: &mut Report) -> Option<(ModelSet, Vec<SourceFile>)> {
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
    let headers = read_headers(dir, report)?;
    let before = report.problems.len();
    check_headers(&headers, report);
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
                report_cycle(&error, &headers, dir, report);
            }
            // The transformer would not start; still run the models whose headers are sound,
            // in an order that ignores the broken dependencies, so their SQL is checked too.
            let (set, count) = sound_models(&headers)?;
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

/// The headers of the folder's `.sql` files, in name order; `None` when the folder cannot be
/// read.
fn read_headers(dir: &Path, report: &mut Report) -> Option<Vec<Header>> {
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
    Some(headers)
}

/// A header without its `model:` line or naming another model, and a dependency on no model.
fn check_headers(headers: &[Header], report: &mut Report) {
    let names: Vec<&str> = headers.iter().map(|h| h.stem.as_str()).collect();
    for header in headers {
        match header.header.name(&header.stem) {
            Err((None, problem)) => report.problem(
                &header.file.path,
                Some(1),
                format!("{problem} (the header is the comment lines the file starts with)"),
            ),
            Err((line, problem)) => report.problem(&header.file.path, line, problem),
            Ok(_) => {}
        }
        for (line, dependency) in &header.header.depends_on {
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
}

/// The transformer's load failed with no header problem: a dependency cycle, reported at the
/// first model its message names.
fn report_cycle(error: &anyhow::Error, headers: &[Header], dir: &Path, report: &mut Report) {
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
            header.header.depends_on.first().map(|(line, _)| *line),
            error.root_cause().to_string(),
        ),
        None => report.problem(dir, None, message),
    }
}

/// The models whose headers are sound, ordered ignoring broken dependencies (or no order at all
/// when even that fails), and how many they are.
fn sound_models(headers: &[Header]) -> Option<(ModelSet, usize)> {
    let sound: Vec<Model> = headers
        .iter()
        .filter(|h| h.header.name(&h.stem).is_ok())
        .map(|h| Model {
            name: h.stem.clone(),
            depends_on: h
                .header
                .depends_on
                .iter()
                .map(|(_, name)| name.clone())
                .filter(|name| {
                    headers
                        .iter()
                        .any(|other| other.stem == *name && other.header.name(&other.stem).is_ok())
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
    Some((set, count))
}
