//! Each dataset's tables can be its own migrations (`<dataset folder>/migrations/*.sql`), applied
//! after the platform's (`sql/migrations`) for each dataset in the datasets directory.

use std::path::{Path, PathBuf};

use landfall_tests::TestEnv;

fn repo() -> PathBuf {
    TestEnv::repo_dir()
}

/// FNV-1a over the text, as the migration runner checksums a migration (written again here so
/// the records this test makes do not come from the code under test).
fn fnv1a(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The `*.sql` files of a folder in name order: (file name without `.sql`, text).
fn sql_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// A datasets directory of the test's own.
struct DatasetsDir(PathBuf);

impl DatasetsDir {
    fn new(env: &TestEnv) -> DatasetsDir {
        DatasetsDir(std::env::temp_dir().join(format!("landfall-datasets-{}", env.suffix)))
    }

    fn load(&self) -> runtime::datasets::Datasets {
        runtime::datasets::Datasets::load(&self.0).expect("datasets")
    }
}

impl Drop for DatasetsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_migration_changed_after_it_was_applied_is_refused() {
    let env = TestEnv::new().await;
    let platform = sql_files(&repo().join("sql/migrations")).len();
    let dir = DatasetsDir::new(&env);
    let kiosk = dir.0.join("kiosk");
    std::fs::create_dir_all(&kiosk).unwrap();
    std::fs::write(
        kiosk.join("dataset.toml"),
        "name = \"kiosk\"\n[[sources]]\nname = \"kiosk_sales\"\ncolumns = [{ name = \"id\", type = \"int\" }]\n",
    )
    .unwrap();
    let mut client = runtime::db::connect(&env.database_url).await.unwrap();
    // No migrations folder: no migrations.
    assert_eq!(
        runtime::db::migrate(&mut client, &dir.load())
            .await
            .unwrap(),
        platform
    );

    let first = "CREATE TABLE warehouse.kiosk_sales (id integer PRIMARY KEY);\n";
    let second = "ALTER TABLE warehouse.kiosk_sales ADD COLUMN amount numeric(8,2);\n";
    std::fs::create_dir_all(kiosk.join("migrations")).unwrap();
    std::fs::write(kiosk.join("migrations/0002_amount.sql"), second).unwrap();
    std::fs::write(kiosk.join("migrations/0001_sales.sql"), first).unwrap();
    std::fs::write(kiosk.join("migrations/notes.txt"), "not a migration").unwrap();
    assert_eq!(
        runtime::db::migrate(&mut client, &dir.load())
            .await
            .unwrap(),
        2,
        "applied in file-name order: the table, then its column"
    );
    assert_eq!(
        env.query_text(
            "SELECT name, checksum FROM ops.schema_migrations WHERE name LIKE 'kiosk/%' ORDER BY 1"
        )
        .await,
        [
            vec!["kiosk/0001_sales".to_owned(), fnv1a(first)],
            vec!["kiosk/0002_amount".to_owned(), fnv1a(second)],
        ]
    );

    std::fs::write(
        kiosk.join("migrations/0001_sales.sql"),
        "CREATE TABLE warehouse.kiosk_sales (id bigint PRIMARY KEY);\n",
    )
    .unwrap();
    let error = runtime::db::migrate(&mut client, &dir.load())
        .await
        .expect_err("a changed migration is refused");
    assert!(
        format!("{error:#}")
            .contains("migration kiosk/0001_sales was changed after it was applied"),
        "{error:#}"
    );

    env.cleanup().await;
}
