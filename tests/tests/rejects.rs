//! Rejected rows a person can act on: `landfall rejects` lists them with file, line, column,
//! value and reason; `landfall status` cuts long reasons and says how to see them whole
//! (`--wide`); the view `rejected.rows` gives them to checks, read as the quality checker's role.

use std::time::Duration;

use landfall_tests::{TestEnv, data, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
const DATE: &str = "2026-03-01";

async fn state_of(env: &TestEnv, key: &str) -> anyhow::Result<Option<String>> {
    Ok(env
        .db
        .query_opt(
            "SELECT state FROM ops.files WHERE key = $1 AND state <> 'landed'",
            &[&key],
        )
        .await?
        .map(|row| row.get(0)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_are_listed_shown_whole_and_readable_by_checks() {
    let env = TestEnv::new().await;
    let ingester = env.start_ingester(&[]);
    let stager = env.start_stager(&[]);
    // 60 good orders (lines 2-61) and two bad ones: 2 of 62 rows, under the 5% limit, so the
    // file is staged with its good rows.
    let mut orders = data::orders_csv(1, 60);
    orders.push_str("61,1,2026-01-01,1,1.00,lots,1.00\n");
    orders.push_str("62,1,yesterday,1,1.00,1,1.00\n");
    let orders_key = TestEnv::landing_key(DATE, "orders.csv");
    env.put(&orders_key, orders).await;
    // Reviews 1,2,3,4,5,1,2,3,4,(empty) with the 3s and 4s out of range: 4 of 10, rejected whole.
    let reviews = data::reviews_csv(10)
        .replace("\n3,", "\n9,")
        .replace("\n4,", "\n0,");
    let reviews_key = TestEnv::landing_key(DATE, "reviews.csv");
    env.put(&reviews_key, reviews).await;
    for (key, state) in [(&orders_key, "staged"), (&reviews_key, "rejected")] {
        wait_until(&format!("{key} {state}"), DEADLINE, || async {
            Ok((state_of(&env, key).await?.as_deref() == Some(state)).then_some(()))
        })
        .await;
    }
    let orders_file = env
        .count(&format!(
            "SELECT file_id FROM ops.files WHERE key = '{orders_key}'"
        ))
        .await;

    // The JSON lists each rejected row with where and why, and the files with their counts.
    let json: serde_json::Value = serde_json::from_str(
        &env.landfall_ok(&["rejects", "--dataset", "ecommerce", "--json"])
            .await,
    )
    .expect("JSON");
    let rows = json["rows"].as_array().expect("rows");
    let orders_rows: Vec<(i64, String, String)> = rows
        .iter()
        .filter(|row| row["source"] == "orders")
        .map(|row| {
            (
                row["line"].as_i64().unwrap(),
                row["column"].as_str().unwrap_or("-").to_owned(),
                row["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        orders_rows,
        [
            (62, "quantity".to_owned(), "lots".to_owned()),
            (63, "order_date".to_owned(), "yesterday".to_owned()),
        ]
    );
    assert!(
        rows.iter()
            .all(|row| !row["reason"].as_str().unwrap_or_default().is_empty()),
        "{json}"
    );
    let reviews_lines: Vec<i64> = rows
        .iter()
        .filter(|row| row["source"] == "reviews")
        .map(|row| row["line"].as_i64().unwrap())
        .collect();
    // Reviews 3 and 4 are at lines 4, 5, 9 and 10 (the header is line 1).
    assert_eq!(reviews_lines, [4, 5, 9, 10]);
    let files = json["files"].as_array().expect("files");
    assert_eq!(files.len(), 2, "{json}");
    let reviews_file = files.iter().find(|f| f["source"] == "reviews").unwrap();
    assert_eq!(reviews_file["state"], "rejected");
    assert_eq!(reviews_file["rows_rejected"], 4);
    let whole_reason = reviews_file["reason"].as_str().unwrap().to_owned();
    assert!(
        whole_reason.starts_with("4 of 10 rows rejected (40.0%), over the dataset's 5% threshold; first: line 4, column review"),
        "{whole_reason}"
    );

    // One file's rows as a table.
    let table = env
        .landfall_ok(&[
            "rejects",
            "--dataset",
            "ecommerce",
            "--file",
            &orders_file.to_string(),
        ])
        .await;
    assert!(table.contains("Rejected rows"), "{table}");
    let file_id = orders_file.to_string();
    assert!(
        table.lines().any(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            cells.len() > 4 && cells[..4] == [file_id.as_str(), "62", "quantity", "lots"]
        }),
        "{table}"
    );
    assert!(
        !table.contains("reviews.csv"),
        "only the orders file: {table}"
    );
    let none = env
        .landfall_ok(&["rejects", "--dataset", "ecommerce", "--date", "2026-03-02"])
        .await;
    assert_eq!(
        none,
        "No rejected rows for dataset ecommerce on 2026-03-02\n"
    );

    // Status cuts the long reason and says how to see it whole; --wide shows it.
    let status = env.landfall_ok(&["status", "--dataset", "ecommerce"]).await;
    assert!(!status.contains(&whole_reason), "{status}");
    assert!(status.contains("--wide shows it whole"), "{status}");
    let wide = env
        .landfall_ok(&["status", "--dataset", "ecommerce", "--wide"])
        .await;
    assert!(wide.contains(&whole_reason), "{wide}");
    assert!(!wide.contains("--wide shows it whole"), "{wide}");

    // A check reads them: as the quality checker's role, from rejected.rows.
    env.db
        .batch_execute("SET ROLE landfall_quality_checker")
        .await
        .unwrap();
    let counted = env
        .query_text(&format!(
            "SELECT source, count(*)::text, min(file_state) FROM rejected.rows
              WHERE dataset = 'ecommerce' AND _batch = DATE '{DATE}'
              GROUP BY source ORDER BY source"
        ))
        .await;
    env.db.batch_execute("RESET ROLE").await.unwrap();
    assert_eq!(
        counted,
        [
            ["orders".to_owned(), "2".into(), "staged".into()],
            ["reviews".to_owned(), "4".into(), "rejected".into()],
        ]
    );

    ingester.stop().await;
    stager.stop().await;
    env.cleanup().await;
}
