//! The definitions, key matching and key patterns of the catalog.

use super::*;

const DEFINITION: &str = r#"
        name = "shop"
        [[sources]]
        name = "orders"
        natural_key = ["order_id"]
        columns = [
            { name = "order_id", type = "int" },
            { name = "total_price", type = "numeric(12,2)", aliases = ["amount"], min = 0 },
        ]
    "#;

fn datasets() -> Datasets {
    let mut datasets = Datasets::default();
    datasets
        .insert(Datasets::parse(DEFINITION).unwrap())
        .unwrap();
    datasets
}

#[test]
fn keys_map_to_dataset_source_and_batch() {
    let datasets = datasets();
    assert_eq!(
        datasets.match_key(
            "landing/",
            "landing/shop/ingestion_date=2026-01-31/orders.csv.gz"
        ),
        KeyMatch::File {
            dataset: "shop".into(),
            source: "orders".into(),
            ingestion_date: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
        }
    );
    assert_eq!(
        datasets.match_key("landing/", "exports/x.csv"),
        KeyMatch::Outside
    );
    assert_eq!(
        datasets.match_key("landing/", "landing/shop/"),
        KeyMatch::Outside
    );
    for (key, reason) in [
        (
            "landing/zoo/ingestion_date=2026-01-31/orders.csv",
            "no dataset named 'zoo'",
        ),
        (
            "landing/shop/ingestion_date=2026-02-30/orders.csv",
            "not a valid date",
        ),
        ("landing/shop/date=2026-01-31/orders.csv", "partition"),
        (
            "landing/shop/ingestion_date=2026-01-31/orders.json",
            "not a .csv",
        ),
        (
            "landing/shop/ingestion_date=2026-01-31/refunds.csv",
            "has no source 'refunds'",
        ),
        ("landing/shop/orders.csv", "does not follow"),
    ] {
        match datasets.match_key("landing/", key) {
            KeyMatch::Unmapped(found) => assert!(found.contains(reason), "{key}: {found}"),
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn bad_definitions_say_what_is_wrong() {
    for (broken, expected) in [
        (
            DEFINITION.replace("\"int\"", "\"integr\""),
            "unknown column type",
        ),
        (
            DEFINITION.replace("[\"order_id\"]", "[\"id\"]"),
            "natural key column 'id'",
        ),
        (
            DEFINITION.replace("min = 0", "min = 0, colour = 1"),
            "unknown field",
        ),
        (
            DEFINITION.replace("\"shop\"", "\"Shop\""),
            "dataset name 'Shop'",
        ),
        (
            DEFINITION.replace("\"amount\"", "\"order_id\""),
            "used twice",
        ),
    ] {
        let error = format!("{:#}", Datasets::parse(&broken).unwrap_err());
        assert!(
            error.contains(expected),
            "expected '{expected}' in: {error}"
        );
    }
}

#[test]
fn the_bundled_datasets_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let datasets = Datasets::load(&dir).unwrap();
    let ecommerce = datasets.get("ecommerce").expect("ecommerce is bundled");
    let required: Vec<&str> = ecommerce
        .required_sources()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(required, ["orders", "reviews", "shipment_deliveries"]);
}

/// The layout every key had to follow before key patterns, as it was written then.
fn fixed_layout(datasets: &Datasets, landing_prefix: &str, key: &str) -> KeyMatch {
    let Some(rest) = key.strip_prefix(landing_prefix) else {
        return KeyMatch::Outside;
    };
    if rest.is_empty() || rest.ends_with('/') {
        return KeyMatch::Outside;
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let [dataset_name, partition, file_name] = parts[..] else {
        return KeyMatch::Unmapped(format!(
            "key does not follow {landing_prefix}<dataset>/ingestion_date=YYYY-MM-DD/<source>.csv"
        ));
    };
    let Some(dataset) = datasets.get(dataset_name) else {
        return KeyMatch::Unmapped(format!("no dataset named '{dataset_name}' is defined"));
    };
    let Some(date_text) = partition.strip_prefix("ingestion_date=") else {
        return KeyMatch::Unmapped(format!(
            "'{partition}' is not an ingestion_date=YYYY-MM-DD partition"
        ));
    };
    let Ok(ingestion_date) = NaiveDate::parse_from_str(date_text, "%Y-%m-%d") else {
        return KeyMatch::Unmapped(format!("'{date_text}' is not a valid date (YYYY-MM-DD)"));
    };
    let Some(source_name) = file_name
        .strip_suffix(".csv.gz")
        .or_else(|| file_name.strip_suffix(".csv"))
    else {
        return KeyMatch::Unmapped(format!("'{file_name}' is not a .csv or .csv.gz file"));
    };
    if dataset.source(source_name).is_none() {
        let known: Vec<&str> = dataset.sources.iter().map(|s| s.name.as_str()).collect();
        return KeyMatch::Unmapped(format!(
            "dataset '{dataset_name}' has no source '{source_name}' (it has: {})",
            known.join(", ")
        ));
    }
    KeyMatch::File {
        dataset: dataset_name.to_owned(),
        source: source_name.to_owned(),
        ingestion_date,
    }
}

#[test]
fn the_default_pattern_maps_every_key_as_the_fixed_layout_did() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let mut datasets = Datasets::load(&dir).unwrap();
    let shop = DEFINITION.replace(
        "name = \"orders\"",
        "name = \"orders\"\ntable = \"shop_orders\"",
    );
    datasets.insert(Datasets::parse(&shop).unwrap()).unwrap();
    let firsts = [
        "ecommerce",
        "online_retail",
        "shop",
        "zoo",
        "",
        "ecommerce.csv",
    ];
    let partitions = [
        "ingestion_date=2026-01-31",
        "ingestion_date=2026-1-5",
        "ingestion_date=2026-02-30",
        "ingestion_date=",
        "ingestion_date=2026-01-31x",
        "date=2026-01-31",
        "2026-01-31",
        "",
    ];
    let files = [
        "orders.csv",
        "orders.csv.gz",
        "orders.gz",
        "orders.txt",
        "transactions.csv",
        "customers.csv",
        "refunds.csv",
        ".csv",
        "orders",
        "Orders.csv",
    ];
    let mut keys = vec![
        "landing/".to_owned(),
        "landing/orders.csv".to_owned(),
        "elsewhere/ecommerce/ingestion_date=2026-01-31/orders.csv".to_owned(),
    ];
    for first in firsts {
        keys.push(format!("landing/{first}/"));
        keys.push(format!("landing/{first}/orders.csv"));
        for partition in partitions {
            keys.push(format!("landing/{first}/{partition}/"));
            for file in files {
                keys.push(format!("landing/{first}/{partition}/{file}"));
                keys.push(format!("landing/{first}/{partition}/x/{file}"));
            }
        }
    }
    let mut files_found = 0;
    for key in &keys {
        let expected = fixed_layout(&datasets, "landing/", key);
        files_found += usize::from(matches!(expected, KeyMatch::File { .. }));
        assert_eq!(datasets.match_key("landing/", key), expected, "{key}");
    }
    assert!(files_found >= 10, "{files_found}");
}

/// A shop whose files land as `landing/shop/2026/11/01/Orders-20261101.csv`.
const CUSTOM: &str = r#"
        name = "shop"
        mode = "delta"
        key_pattern = "{dataset}/{yyyy}/{mm}/{dd}/{source}_*"
        [[sources]]
        name = "orders"
        key_pattern = "{dataset}/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}"
        columns = [{ name = "order_id", type = "int" }]
        [[sources]]
        name = "customers"
        mode = "snapshot"
        required = false
        columns = [{ name = "customer_id", type = "int" }]
        [[sources]]
        name = "rates"
        required = false
        key_pattern = "reference/rates/{date}"
        columns = [{ name = "rate", type = "numeric(6,4)" }]
    "#;

/// `shop` with its own layout beside `coffee`, which keeps the default one.
fn custom() -> Datasets {
    let mut datasets = Datasets::default();
    datasets.insert(Datasets::parse(CUSTOM).unwrap()).unwrap();
    let coffee = DEFINITION
        .replace("\"shop\"", "\"coffee\"")
        .replace("name = \"orders\"", "name = \"sales\"");
    datasets.insert(Datasets::parse(&coffee).unwrap()).unwrap();
    datasets
}

fn file(dataset: &str, source: &str, date: &str) -> KeyMatch {
    KeyMatch::File {
        dataset: dataset.into(),
        source: source.into(),
        ingestion_date: date.parse().unwrap(),
    }
}

fn unmapped(datasets: &Datasets, key: &str) -> String {
    match datasets.match_key("landing/", key) {
        KeyMatch::Unmapped(reason) => reason,
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn custom_patterns_read_date_parts_and_wildcards() {
    let datasets = custom();
    for (key, expected) in [
        (
            "landing/shop/2026/11/01/Orders-20261101.csv",
            file("shop", "orders", "2026-11-01"),
        ),
        (
            "landing/shop/2026/11/01/Orders-20261101.csv.gz",
            file("shop", "orders", "2026-11-01"),
        ),
        (
            "landing/shop/2026/11/02/customers_export (1).csv",
            file("shop", "customers", "2026-11-02"),
        ),
        (
            "landing/shop/2026/11/02/customers_.csv",
            file("shop", "customers", "2026-11-02"),
        ),
        (
            "landing/reference/rates/2026-11-03.csv",
            file("shop", "rates", "2026-11-03"),
        ),
        // The dataset that keeps the default layout, beside it.
        (
            "landing/coffee/ingestion_date=2026-11-03/sales.csv",
            file("coffee", "sales", "2026-11-03"),
        ),
        (
            "elsewhere/shop/2026/11/01/Orders-20261101.csv",
            KeyMatch::Outside,
        ),
    ] {
        assert_eq!(datasets.match_key("landing/", key), expected, "{key}");
    }
    let tried = "the key matches no key pattern (tried: \
            landing/coffee/ingestion_date={date}/{source}.csv[.gz] (coffee sales); \
            landing/reference/rates/{date}.csv[.gz] (shop rates); \
            landing/shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}.csv[.gz] (shop orders); \
            landing/shop/{yyyy}/{mm}/{dd}/{source}_*.csv[.gz] (shop customers))";
    for (key, reason) in [
        // The folder and the file name disagree on the day.
        ("landing/shop/2026/11/01/Orders-20261102.csv", tried),
        // A `*` stays within its path segment.
        ("landing/shop/2026/11/02/customers_a/b.csv", tried),
        // The old layout is no longer this dataset's.
        ("landing/shop/ingestion_date=2026-11-01/orders.csv", tried),
        ("landing/zoo/ingestion_date=2026-11-01/orders.csv", tried),
        (
            "landing/shop/2026/02/30/Orders-20260230.csv",
            "'2026-02-30' is not a valid date (key pattern landing/shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}.csv)",
        ),
        (
            "landing/reference/rates/2026-13-01.csv",
            "'2026-13-01' is not a valid date (key pattern landing/reference/rates/{date}.csv)",
        ),
        (
            "landing/shop/2026/11/01/Orders-20261101.json",
            "'Orders-20261101.json' is not a .csv or .csv.gz file",
        ),
        // Under a dataset that keeps the default layout: its reasons, as before.
        (
            "landing/coffee/ingestion_date=2026-11-01/refunds.csv",
            "dataset 'coffee' has no source 'refunds' (it has: sales)",
        ),
        (
            "landing/coffee/date=2026-11-01/sales.csv",
            "'date=2026-11-01' is not an ingestion_date=YYYY-MM-DD partition",
        ),
    ] {
        assert_eq!(unmapped(&datasets, key), reason, "{key}");
    }
}

#[test]
fn sources_default_to_the_dataset_mode_and_pattern() {
    let shop = Datasets::parse(CUSTOM).unwrap();
    let modes: Vec<(&str, Mode)> = shop
        .sources
        .iter()
        .map(|source| (source.name.as_str(), source.mode()))
        .collect();
    assert_eq!(
        modes,
        [
            ("orders", Mode::Delta),
            ("customers", Mode::Snapshot),
            ("rates", Mode::Delta)
        ]
    );
    let patterns: Vec<&str> = shop
        .sources
        .iter()
        .map(|source| source.pattern().resolved())
        .collect();
    assert_eq!(
        patterns,
        [
            "shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}",
            "shop/{yyyy}/{mm}/{dd}/customers_*",
            "reference/rates/{date}",
        ]
    );
    let plain = Datasets::parse(DEFINITION).unwrap();
    assert_eq!(plain.sources[0].mode(), Mode::Snapshot);
    assert!(plain.sources[0].pattern().is_default());
    assert_eq!(
        plain.sources[0].pattern().resolved(),
        "shop/ingestion_date={date}/orders"
    );
}

#[test]
fn listing_prefixes_stop_at_the_first_wildcard_folder() {
    let date = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let shop = Datasets::parse(CUSTOM).unwrap();
    assert_eq!(
        shop.listing_prefixes(date),
        ["reference/rates/", "shop/2026/11/01/"]
    );
    let plain = Datasets::parse(&DEFINITION.replace("natural_key", "required = true\nnatural_key"))
        .unwrap();
    assert_eq!(
        plain.listing_prefixes(date),
        ["shop/ingestion_date=2026-11-01/"]
    );
    // A pattern whose first folder is a wildcard lists the whole landing prefix.
    let anywhere = DEFINITION.replace(
        "name = \"orders\"",
        "name = \"orders\"\nkey_pattern = \"*/{date}/{source}\"",
    );
    assert_eq!(
        Datasets::parse(&anywhere).unwrap().listing_prefixes(date),
        [""]
    );
    let (key, complete) = shop.sources[0].pattern().render(date);
    assert_eq!(
        (key.as_str(), complete),
        ("shop/2026/11/01/Orders-20261101", true)
    );
    let (key, complete) = shop.sources[1].pattern().render(date);
    assert_eq!(
        (key.as_str(), complete),
        ("shop/2026/11/01/customers_", false)
    );
}

#[test]
fn patterns_that_can_match_the_same_key_are_refused() {
    // Two sources of one dataset, the same pattern once the names are filled in.
    let same = CUSTOM.replace(
            "name = \"rates\"\n        required = false\n        key_pattern = \"reference/rates/{date}\"",
            "name = \"rates\"\n        required = false\n        key_pattern = \"shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}\"",
        );
    let error = format!("{:#}", Datasets::parse(&same).unwrap_err());
    assert_eq!(
        error,
        "sources 'orders' and 'rates' can match the same key (e.g. shop/1111/11/11/Orders-11111111.csv): key patterns '{dataset}/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}' and 'shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}'"
    );
    // A wildcard that covers another source's files.
    let covering = CUSTOM.replace("reference/rates/{date}", "{dataset}/{yyyy}/{mm}/{dd}/*");
    let error = format!("{:#}", Datasets::parse(&covering).unwrap_err());
    assert!(
            error.starts_with("sources 'orders' and 'rates' can match the same key (e.g. shop/1111/11/11/Orders-11111111.csv)"),
            "{error}"
        );
    // {date} against date parts.
    let parts = CUSTOM.replace("reference/rates/{date}", "shop/{date}");
    assert!(Datasets::parse(&parts).is_ok());
    let parts = CUSTOM.replace("reference/rates/{date}", "{dataset}/{yyyy}/{mm}/{date}");
    assert!(Datasets::parse(&parts).is_ok(), "a date has dashes");
    // A dataset pattern without {source}, shared by two sources.
    let shared = CUSTOM
        .replace("{source}_*", "export_*")
        .replace("key_pattern = \"reference/rates/{date}\"", "");
    let error = format!("{:#}", Datasets::parse(&shared).unwrap_err());
    assert_eq!(
        error,
        "sources customers, rates share the key_pattern '{dataset}/{yyyy}/{mm}/{dd}/export_*' of the dataset, which has no {source}: add {source} to it or give each source a key_pattern of its own"
    );
    // Across datasets: loading both is refused.
    let mut datasets = Datasets::default();
    datasets.insert(Datasets::parse(CUSTOM).unwrap()).unwrap();
    let greedy = DEFINITION.replace(
        "name = \"orders\"",
        "name = \"orders\"\ntable = \"greedy_orders\"\nkey_pattern = \"shop/{yyyy}/{mm}/*/*{dd}\"",
    );
    let greedy = greedy.replace("\"shop\"", "\"greedy\"");
    let error = datasets
        .insert(Datasets::parse(&greedy).unwrap())
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "source 'orders' can match the same key as dataset 'shop' source 'orders' (key pattern shop/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}, e.g. shop/1111/11/11/Orders-11111111.csv): key pattern 'shop/{yyyy}/{mm}/*/*{dd}'"
    );
}

#[test]
fn a_key_read_in_two_ways_is_not_mapped() {
    // Not caught when loading: one pattern that reads two dates from the same key.
    let loose = DEFINITION.replace(
        "name = \"orders\"",
        "name = \"orders\"\nkey_pattern = \"{dataset}/*{yyyy}{mm}{dd}*\"",
    );
    let mut datasets = Datasets::default();
    datasets.insert(Datasets::parse(&loose).unwrap()).unwrap();
    assert_eq!(
        datasets.match_key("landing/", "landing/shop/x20261101.csv"),
        file("shop", "orders", "2026-11-01")
    );
    assert_eq!(
        unmapped(&datasets, "landing/shop/20261101_20261102.csv"),
        "the key can be read in more than one way: shop.orders for 2026-11-01 by landing/shop/*{yyyy}{mm}{dd}*.csv; shop.orders for 2026-11-02 by landing/shop/*{yyyy}{mm}{dd}*.csv"
    );
}

#[test]
fn bad_patterns_say_what_is_wrong() {
    for (pattern, expected) in [
        (
            "{dataset}/{source}",
            "has no date: it needs {date} (YYYY-MM-DD) or all of {yyyy}, {mm} and {dd}",
        ),
        ("{dataset}/{yyyy}/{mm}/{source}", "has no date"),
        (
            "{dataset}/{day}/{source}",
            "has an unknown placeholder {day} (known: {dataset}, {source}, {date}, {yyyy}, {mm}, {dd})",
        ),
        ("{dataset}/{date/{source}", "has a { without its }"),
        ("{dataset}/date}/{source}", "has a } without its {"),
        ("{dataset}/**/{date}/{source}", "has **"),
        (
            "{dataset}/{date}/{source}.csv",
            "ends in .csv: leave the suffix out",
        ),
        ("{dataset}/{date}/{source}.csv.gz", "ends in .csv"),
        (
            "/{dataset}/{date}/{source}",
            "must be a path under the landing prefix",
        ),
        (
            "{dataset}//{date}/{source}",
            "must be a path under the landing prefix",
        ),
        ("", "is empty"),
    ] {
        // On the source, and as the dataset's default.
        let on_source = DEFINITION.replace(
            "name = \"orders\"",
            &format!("name = \"orders\"\nkey_pattern = \"{pattern}\""),
        );
        let error = format!("{:#}", Datasets::parse(&on_source).unwrap_err());
        assert!(
            error.starts_with(&format!(
                "source 'orders': key_pattern '{pattern}' {expected}"
            )),
            "{pattern}: {error}"
        );
        let on_dataset = DEFINITION.replace(
            "name = \"shop\"",
            &format!("name = \"shop\"\nkey_pattern = \"{pattern}\""),
        );
        let error = format!("{:#}", Datasets::parse(&on_dataset).unwrap_err());
        assert!(
            error.starts_with(&format!("key_pattern '{pattern}' {expected}")),
            "{pattern}: {error}"
        );
    }
    let error = format!(
        "{:#}",
        Datasets::parse(&DEFINITION.replace("[[sources]]", "[[sources]]\nmode = \"sometimes\""))
            .unwrap_err()
    );
    assert!(error.contains("unknown variant `sometimes`"), "{error}");
}

#[test]
fn the_reject_limit_is_a_share_a_row_count_or_both() {
    let with = |lines: &str| {
        Datasets::parse(&DEFINITION.replacen(
            "name = \"shop\"",
            &format!("name = \"shop\"\n{lines}"),
            1,
        ))
        .unwrap()
        .reject_limit()
    };
    // Nothing set: 5%.
    let default = with("");
    assert_eq!(default.max_share, Some(0.05));
    assert_eq!(default.max_rows, None);
    assert!(default.exceeded(1, 10), "1 of 10 is over 5%");
    assert!(!default.exceeded(5, 100), "5 of 100 is not over 5%");
    // The older name still reads.
    assert_eq!(with("reject_threshold = 0.2").max_share, Some(0.2));
    // A row count alone: the share does not matter.
    let rows = with("reject_max_rows = 3");
    assert_eq!(rows.max_share, None);
    assert!(!rows.exceeded(3, 4));
    assert!(rows.exceeded(4, 1_000_000));
    // Both: a file is rejected only over both, so a small file keeps a few bad rows and a
    // large one a small share.
    let both = with("reject_max_share = 0.05\nreject_max_rows = 3");
    assert!(!both.exceeded(1, 10), "10% but one row");
    assert!(!both.exceeded(40, 1_000), "40 rows but 4%");
    assert!(both.exceeded(4, 10));
    assert_eq!(
        both.describe(),
        "both of the dataset's limits (5% of the rows and 3 rows)"
    );
    for (lines, expected) in [
        (
            "reject_max_share = 1.5",
            "reject_max_share 1.5 must lie between 0 and 1",
        ),
        ("reject_max_rows = -1", "invalid value"),
        (
            "reject_threshold = 0.1\nreject_max_share = 0.1",
            "duplicate field",
        ),
    ] {
        let text = DEFINITION.replacen("name = \"shop\"", &format!("name = \"shop\"\n{lines}"), 1);
        let error = format!("{:#}", Datasets::parse(&text).unwrap_err());
        assert!(error.contains(expected), "{lines}: {error}");
    }
}
