//! docs/DATASETS.md, followed literally: every file the tutorial shows is the file in
//! docs/tutorial/ (and every file there is shown), every `$ landfall …` command it shows is run
//! as written from the repository's root, and the exported reports are byte for byte the CSVs
//! it prints.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use landfall_tests::{TestEnv, binary_path};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository folder")
}

/// A fenced block of the document and the line before it (the one naming the file it shows).
struct Block {
    label: String,
    body: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut label = String::new();
    let mut open: Option<String> = None;
    for line in markdown.lines() {
        match &mut open {
            Some(body) if line.starts_with("```") => {
                blocks.push(Block {
                    label: std::mem::take(&mut label),
                    body: std::mem::take(body),
                });
                open = None;
            }
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
            None if line.starts_with("```") => open = Some(String::new()),
            None if !line.trim().is_empty() => label = line.trim().to_owned(),
            None => {}
        }
    }
    blocks
}

/// `path` when the label is exactly "`path`:".
fn shown_path(label: &str) -> Option<&str> {
    label.strip_prefix('`')?.strip_suffix("`:")
}

fn files_under(dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            let relative = path.strip_prefix(repo()).unwrap();
            found.insert(relative.to_string_lossy().into_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_datasets_tutorial_works_as_written() {
    let markdown = std::fs::read_to_string(repo().join("docs/DATASETS.md")).unwrap();
    let blocks = blocks(&markdown);

    // The files shown are the files in docs/tutorial, all of them, as they are.
    let mut shown = BTreeSet::new();
    for block in &blocks {
        let Some(path) = shown_path(&block.label) else {
            continue;
        };
        if path.starts_with("docs/tutorial/") {
            let file = std::fs::read_to_string(repo().join(path))
                .unwrap_or_else(|error| panic!("{path} is shown but cannot be read: {error}"));
            assert_eq!(
                block.body, file,
                "docs/DATASETS.md shows {path} differently"
            );
            shown.insert(path.to_owned());
        }
    }
    let mut on_disk = BTreeSet::new();
    files_under(&repo().join("docs/tutorial"), &mut on_disk);
    assert_eq!(
        shown, on_disk,
        "every tutorial file is shown, and only those"
    );

    // The commands, in order.
    let commands: Vec<Vec<String>> = blocks
        .iter()
        .flat_map(|block| block.body.lines())
        .filter_map(|line| line.strip_prefix("$ landfall "))
        .map(|command| command.split_whitespace().map(str::to_owned).collect())
        .collect();
    let names: Vec<String> = commands.iter().map(|args| args[..2].join(" ")).collect();
    assert_eq!(names, ["dataset check", "demo --dataset"]);

    let env = TestEnv::new().await;
    let work_dir = std::env::temp_dir().join(format!("landfall-tutorial-{}", env.suffix));
    for args in &commands {
        let mut args = args.clone();
        if args[0] == "demo" {
            // Only where the demo keeps its state: this test's database, queues and folder.
            args.extend([
                "--database-url".to_owned(),
                env.database_url.clone(),
                "--amqp-prefix".to_owned(),
                env.prefix.clone(),
                "--work-dir".to_owned(),
                work_dir.display().to_string(),
            ]);
        }
        let output = tokio::process::Command::new(binary_path("landfall"))
            .args(&args)
            .current_dir(repo())
            .env_clear()
            .envs(env.vars())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("running landfall");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "landfall {}:\n{stdout}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        if args[0] == "dataset" {
            assert!(stdout.contains("no problems"), "{stdout}");
        } else {
            for expected in [
                "Batch 2026-04-01:",
                "Batch 2026-04-02:",
                "coffee_daily_sales",
            ] {
                assert!(stdout.contains(expected), "'{expected}' missing:\n{stdout}");
            }
        }
    }

    // The reports exported are the ones the tutorial prints.
    let mut exports = 0;
    for block in &blocks {
        let Some(path) = shown_path(&block.label) else {
            continue;
        };
        if path.starts_with("analytics_export/") {
            // The demo's S3 folder for this database: s3/<database>@<host>-<port>.
            let exported = work_dir
                .join("s3")
                .join(format!("{}@127.0.0.1-5432", env.database))
                .join("landfall-demo")
                .join(path);
            let text = std::fs::read_to_string(&exported)
                .unwrap_or_else(|error| panic!("{} not exported: {error}", exported.display()));
            assert_eq!(text, block.body, "{path}");
            exports += 1;
        }
    }
    assert_eq!(exports, 2);
    assert_eq!(
        env.count(
            "SELECT count(*) FROM ops.batches WHERE dataset = 'coffee_shop' AND state = 'exported'"
        )
        .await,
        2
    );

    let _ = std::fs::remove_dir_all(&work_dir);
    env.cleanup().await;
}
