//! `landfall dataset check DIR` as a dataset author runs it: the bundled datasets pass (SQL
//! included, in a scratch database that is dropped afterwards), and broken copies are reported
//! problem by problem, each with its file and line.

use std::path::{Path, PathBuf};

use landfall_tests::TestEnv;
use landfall_tests::datasets::copy_dir;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository folder")
}

/// Runs the check; returns success, stdout and stderr.
async fn check(env: &TestEnv, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["dataset", "check"];
    all.extend_from_slice(args);
    let output = env.landfall(&all).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The 1-based line of the first line of `text` holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("'{needle}' not found"))
        + 1
}

/// The scratch database the check reports it used.
fn scratch_database(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .find(|word| word.starts_with("landfall_check_"))
        .unwrap_or_else(|| panic!("no scratch database named in:\n{stdout}"))
        .to_owned()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no '{from}'", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_datasets_pass_and_broken_copies_are_reported_by_file_and_line() {
    let env = TestEnv::new().await;

    for dataset in ["online_retail", "ecommerce"] {
        let dir = repo().join("datasets").join(dataset);
        let (ok, stdout, stderr) = check(&env, &[dir.to_str().unwrap()]).await;
        assert!(ok, "{dataset}:\n{stdout}\n{stderr}");
        assert!(stdout.contains("no problems"), "{stdout}");
        assert!(
            stdout.contains(" model(s), ") && stdout.contains(" check(s), "),
            "{stdout}"
        );
        if dataset == "ecommerce" {
            assert!(
                stdout.contains("orders ← table shop.orders (snapshot)"),
                "the extract is read: {stdout}"
            );
        }
        // The scratch database is gone.
        let scratch = scratch_database(&stdout);
        assert_eq!(
            env.count(&format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{scratch}'"
            ))
            .await,
            0
        );
    }

    // A broken copy of online_retail, in a folder of its own. Its staging table is renamed to
    // `orders`, which ecommerce already uses; the models follow the rename, so their SQL runs.
    let work = std::env::temp_dir().join(format!("landfall-dataset-check-{}", env.suffix));
    let dataset_dir = work.join("datasets/broken_retail");
    let models = dataset_dir.join("models");
    copy_dir(&repo().join("datasets/online_retail"), &dataset_dir);
    let definition = dataset_dir.join("dataset.toml");
    edit(
        &definition,
        "name = \"online_retail\"",
        "name = \"broken_retail\"",
    );
    edit(
        &definition,
        "table = \"retail_transactions\"",
        "table = \"orders\"",
    );
    for entry in std::fs::read_dir(&models).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("staging.retail_transactions", "staging.orders"),
        )
        .unwrap();
    }
    // 1. A column that does not exist, in the fact model's SELECT list.
    let fact = models.join("fact_transactions.sql");
    edit(&fact, "       s.unit_price,\n", "       s.unit_prize,\n");
    // 2. A dependency on a model that does not exist.
    let top = models.join("retail_top_products.sql");
    edit(
        &top,
        "-- depends_on: fact_transactions",
        "-- depends_on: fact_transactions, fact_sales",
    );
    // 3. A check of a kind that does not exist.
    let checks = dataset_dir.join("checks.toml");
    edit(
        &checks,
        "name = \"transactions_not_after_batch_date\"\ndescription = \"No invoice is dated after the day its batch landed.\"\nkind = \"expression\"",
        "name = \"transactions_not_after_batch_date\"\ndescription = \"No invoice is dated after the day its batch landed.\"\nkind = \"expresion\"",
    );
    // 4. An export ordered by a column its table does not have.
    let exports = dataset_dir.join("exports.toml");
    edit(&exports, "order_by = \"rank\"", "order_by = \"position\"");
    // 5. An incremental extract without its cursor.
    let extract = dataset_dir.join("extract.toml");
    std::fs::write(
        &extract,
        "# read from the shop\n[[sources]]\nsource = \"transactions\"\ntable = \"shop.lines\"\nmode = \"incremental\"\n",
    )
    .unwrap();

    let (ok, stdout, stderr) = check(&env, &[dataset_dir.to_str().unwrap()]).await;
    assert!(!ok, "a broken dataset fails the check:\n{stdout}");
    assert!(stderr.contains("6 problem(s)"), "{stderr}");
    let text = |path: &Path| std::fs::read_to_string(path).unwrap();
    let expected = [
        format!(
            "{}:{}: source 'transactions': staging table 'orders' is already used by dataset 'ecommerce'",
            definition.display(),
            line_of(&text(&definition), "table = \"orders\"")
        ),
        format!(
            "{}:2: model 'retail_top_products' depends on 'fact_sales', which is not a model",
            top.display()
        ),
        format!(
            "{}:{}: check 'transactions_not_after_batch_date': kind 'expresion' is not one of",
            checks.display(),
            line_of(
                &text(&checks),
                "name = \"transactions_not_after_batch_date\""
            ) - 1
        ),
        format!(
            "{}:{}: model fact_transactions: column s.unit_prize does not exist",
            fact.display(),
            line_of(&text(&fact), "s.unit_prize")
        ),
        format!(
            "{}:{}: export 'retail_top_products': column \"position\" does not exist",
            exports.display(),
            line_of(&text(&exports), "report = \"retail_top_products\"")
        ),
        format!(
            "{}:2: source 'transactions': mode = \"incremental\" needs cursor",
            extract.display()
        ),
    ];
    for problem in &expected {
        assert!(
            stdout.contains(problem.as_str()),
            "'{problem}' missing from:\n{stdout}"
        );
    }
    assert!(stdout.contains("\n6 problem(s)\n"), "{stdout}");

    // A definition that does not parse stops there, at its line.
    edit(
        &definition,
        "{ name = \"quantity\", type = \"int\" }",
        "{ name = \"quantity\", type = \"integr\" }",
    );
    let (ok, stdout, _) = check(&env, &[dataset_dir.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        stdout.contains(&format!(
            "{}:{}: unknown column type 'integr'",
            definition.display(),
            line_of(&text(&definition), "\"integr\"")
        )),
        "{stdout}"
    );

    let _ = std::fs::remove_dir_all(&work);
    env.cleanup().await;
}

/// The SQL runs as the services' roles: a check that reads the ledger, which the quality
/// checker may not, would be broken at run time; the check reports it at its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_reading_what_its_role_may_not_is_a_problem_at_its_line() {
    let env = TestEnv::new().await;
    let work = std::env::temp_dir().join(format!("landfall-dataset-check-roles-{}", env.suffix));
    let dataset_dir = work.join("coffee_shop");
    copy_dir(
        &repo().join("docs/tutorial/datasets/coffee_shop"),
        &dataset_dir,
    );
    let checks = dataset_dir.join("checks.toml");
    let mut text = std::fs::read_to_string(&checks).unwrap();
    text.push_str(
        "\n[[checks]]\nname = \"reads_the_ledger\"\nkind = \"custom_sql\"\nseverity = \"warn\"\nsql = \"SELECT key FROM ops.files WHERE false\"\n",
    );
    std::fs::write(&checks, &text).unwrap();

    let (ok, stdout, stderr) = check(&env, &[dataset_dir.to_str().unwrap()]).await;
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("1 problem(s)"), "{stderr}");
    let expected = format!(
        "{}:{}: check 'reads_the_ledger': permission denied for table files",
        checks.display(),
        line_of(&text, "name = \"reads_the_ledger\"")
    );
    assert!(
        stdout.contains(&expected),
        "'{expected}' missing from:\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&work);
    env.cleanup().await;
}
