//! A dataset's own migrations: the SQL files of `<dataset folder>/migrations/` that create and
//! change its warehouse, audit and analytics tables. The platform's migration runner
//! (`runtime::db::migrate`) applies them after its own, once each, recorded as
//! `<dataset>/<file name without .sql>`.

use anyhow::Context as _;

use crate::Dataset;

/// The migrations of `dataset`, in file-name order: every `*.sql` file in the `migrations`
/// folder of its folder, named `<dataset>/<file name without .sql>`. A dataset without that
/// folder (or without a folder: one parsed, not loaded) has none.
pub fn of(dataset: &Dataset) -> anyhow::Result<Vec<(String, String)>> {
    if dataset.dir.as_os_str().is_empty() {
        return Ok(Vec::new());
    }
    let dir = dataset.dir.join("migrations");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", dir.display()));
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "sql") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let stem = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .with_context(|| format!("{}: the file name is not UTF-8", path.display()))?;
            let sql = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok((format!("{}/{stem}", dataset.name), sql))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Datasets;

    #[test]
    fn a_dataset_has_the_sql_files_of_its_migrations_folder_in_name_order() {
        let root = std::env::temp_dir().join(format!(
            "landfall-dataset-migrations-{}",
            std::process::id()
        ));
        let folder = root.join("kiosk");
        std::fs::create_dir_all(folder.join("migrations")).unwrap();
        let definition = "name = \"kiosk\"\n[[sources]]\nname = \"kiosk_sales\"\ncolumns = [{ name = \"id\", type = \"int\" }]\n";
        std::fs::write(folder.join("dataset.toml"), definition).unwrap();
        for (file, text) in [
            ("0010_later.sql", "later"),
            ("0002_first.sql", "first"),
            ("notes.md", "not a migration"),
        ] {
            std::fs::write(folder.join("migrations").join(file), text).unwrap();
        }
        let datasets = Datasets::load(&root).unwrap();
        let kiosk = datasets.get("kiosk").unwrap();
        assert_eq!(
            of(kiosk).unwrap(),
            [
                ("kiosk/0002_first".to_owned(), "first".to_owned()),
                ("kiosk/0010_later".to_owned(), "later".to_owned()),
            ]
        );
        // A definition parsed from its text has no folder, so no migrations.
        let parsed = Datasets::parse(definition).unwrap();
        assert!(of(&parsed).unwrap().is_empty());
        // Nor has a dataset without a migrations folder.
        std::fs::remove_dir_all(folder.join("migrations")).unwrap();
        assert!(of(kiosk).unwrap().is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
