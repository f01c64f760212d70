//! The model runner on models of the test's own, against the real PostgreSQL: what a model
//! sets for itself does not reach the next one.

use catalog::models::{Model, ModelSet};
use landfall_tests::TestEnv;

const DAY: &str = "2026-03-02";

/// A models folder of this test with the given `(file name, SQL)` models.
fn models_folder(env: &TestEnv, models: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("landfall-runner-models-{}", env.suffix));
    std::fs::create_dir_all(&dir).expect("models directory");
    for (file, sql) in models {
        std::fs::write(dir.join(file), sql).expect("model file");
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_made_by_one_model_is_not_seen_by_the_next_in_one_transaction() {
    let env = TestEnv::new().await;
    let mut client = env.migrated_client().await;
    client
        .batch_execute("CREATE TABLE public.seen (model text, work_mem text, batch date)")
        .await
        .expect("the table the models write to");
    let default_work_mem: String = client
        .query_one("SHOW work_mem", &[])
        .await
        .expect("the session's work_mem")
        .get(0);
    // A value no server ships as its default, so the second model could not see it by chance.
    assert_ne!(default_work_mem, "77MB");
    let dir = models_folder(
        &env,
        &[
            (
                "a_sets.sql",
                "-- model: a_sets\n\
                 SET LOCAL work_mem = '77MB';\n\
                 INSERT INTO public.seen SELECT 'a_sets', current_setting('work_mem'), ops.batch_date();\n",
            ),
            (
                "b_reads.sql",
                "-- model: b_reads\n\
                 -- depends_on: a_sets\n\
                 INSERT INTO public.seen SELECT 'b_reads', current_setting('work_mem'), ops.batch_date();\n",
            ),
        ],
    );
    let set = ModelSet::load(&dir).expect("the test's models load");
    let models: Vec<&Model> = set.models().iter().collect();
    let date: chrono::NaiveDate = DAY.parse().unwrap();

    // One transaction for every model, as with LANDFALL_TRANSFORM_PARALLELISM=1.
    let tx = client.transaction().await.expect("transaction");
    let runs = pipeline::transform::run::run_models(&tx, &models, date)
        .await
        .expect("the models run");
    let seen: Vec<(String, String, chrono::NaiveDate)> = tx
        .query(
            "SELECT model, work_mem, batch FROM public.seen ORDER BY model",
            &[],
        )
        .await
        .expect("what the models saw")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    tx.commit().await.expect("commit");

    let ran: Vec<(&str, u64)> = runs
        .iter()
        .map(|run| (run.model.as_str(), run.rows))
        .collect();
    assert_eq!(ran, [("a_sets", 1), ("b_reads", 1)]);
    assert_eq!(
        seen,
        [
            ("a_sets".to_owned(), "77MB".to_owned(), date),
            // The session's default again, and still the batch's date.
            ("b_reads".to_owned(), default_work_mem, date),
        ]
    );

    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
}

/// A model's rows are the rows PostgreSQL counted as inserted or updated while it ran, whatever
/// its statements look like: rows it deleted or read do not count, nor rows other models of the
/// transaction wrote, nor rows written earlier on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_rows_are_the_rows_it_inserted_or_updated() {
    let env = TestEnv::new().await;
    let mut client = env.migrated_client().await;
    client
        .batch_execute(
            "CREATE TABLE public.facts (k integer PRIMARY KEY, v integer);
             CREATE TABLE public.log (note text);
             INSERT INTO public.facts SELECT g, 0 FROM generate_series(1, 10) AS g;",
        )
        .await
        .expect("the tables the models write to");
    let dir = models_folder(
        &env,
        &[
            (
                "a_loads.sql",
                "-- model: a_loads\n\
                 /* deletes do not count; */ DELETE FROM public.facts WHERE k > 8;\n\
                 INSERT INTO public.facts SELECT g, 1 FROM generate_series(11, 15) AS g;\n\
                 WITH changed AS (UPDATE public.facts SET v = 2 WHERE k <= 3 RETURNING k)\n\
                 INSERT INTO public.log SELECT 'changed ' || k FROM changed;\n\
                 SELECT count(*) FROM public.facts;\n\
                 DO $$ BEGIN INSERT INTO public.log VALUES ('from a block; still counted'); END $$;\n",
            ),
            (
                "b_merges.sql",
                "-- model: b_merges\n\
                 -- depends_on: a_loads\n\
                 MERGE INTO public.facts AS f\n\
                 USING (SELECT g AS k FROM generate_series(14, 17) AS g) AS s ON f.k = s.k\n\
                  WHEN MATCHED AND s.k = 14 THEN UPDATE SET v = 3\n\
                  WHEN MATCHED THEN DELETE\n\
                  WHEN NOT MATCHED THEN INSERT VALUES (s.k, 4);\n\
                 INSERT INTO public.facts VALUES (1, 9), (18, 9)\n\
                     ON CONFLICT (k) DO UPDATE SET v = excluded.v;\n\
                 INSERT INTO public.facts VALUES (2, 9) ON CONFLICT DO NOTHING;\n",
            ),
        ],
    );
    let set = ModelSet::load(&dir).expect("the test's models load");
    let models: Vec<&Model> = set.models().iter().collect();
    let date: chrono::NaiveDate = DAY.parse().unwrap();
    // a_loads: 5 inserted (11-15), 3 updated (1-3) and their 3 log lines, 1 log line from the
    // block; the 2 deleted (9, 10) and the count read do not count: 12.
    // b_merges: 1 updated (14), 2 inserted (16, 17), 15 deleted (not counted); the upsert 1
    // updated (1) and 1 inserted (18); the conflicting insert of 2 nothing: 5.
    // Twice, each time in a new transaction on the same connection: the second run deletes
    // 9-18 first, so it writes the same rows again.
    for run in ["first run", "second run"] {
        let tx = client.transaction().await.expect("transaction");
        let runs = pipeline::transform::run::run_models(&tx, &models, date)
            .await
            .expect("the models run");
        tx.commit().await.expect("commit");
        let ran: Vec<(&str, u64)> = runs
            .iter()
            .map(|run| (run.model.as_str(), run.rows))
            .collect();
        assert_eq!(ran, [("a_loads", 12), ("b_merges", 5)], "{run}");
    }

    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
}
