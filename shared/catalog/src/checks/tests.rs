use std::path::Path;

use super::*;

fn problem(text: &str) -> String {
    format!(
        "{:#}",
        parse(text).expect_err("the declaration is malformed")
    )
}

/// One check of every kind.
const EVERY_KIND: &str = r#"
[[checks]]
name = "a"
kind = "not_null"
severity = "error"
table = "staging.orders"
column = "order_id"

[[checks]]
name = "b"
kind = "unique"
severity = "warn"
table = "orders"
columns = ["order_id", "_batch"]
where = "_batch = ops.batch_date()"

[[checks]]
name = "c"
kind = "accepted_values"
severity = "error"
table = "staging.reviews"
column = "review"
values = [1, 2.5, "x'y", true]

[[checks]]
name = "d"
kind = "relationships"
severity = "warn"
table = "staging.shipment_deliveries"
column = "order_id"
to_table = "staging.orders"
to_column = "order_id"
to_where = "_batch = ops.batch_date()"

[[checks]]
name = "e"
kind = "expression"
severity = "warn"
table = "staging.orders"
expression = "  total_price = unit_price * quantity "

[[checks]]
name = "f"
kind = "row_count"
severity = "error"
table = "analytics.agg_shipments"
min = 1

[[checks]]
name = "g"
kind = "custom_sql"
severity = "error"
sql = "SELECT 1 WHERE false ;\n"
"#;

#[test]
fn every_kind_parses() {
    let checks = parse(EVERY_KIND).expect("valid declarations");
    let kinds: Vec<&str> = checks.iter().map(|check| check.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "not_null",
            "unique",
            "accepted_values",
            "relationships",
            "expression",
            "row_count",
            "custom_sql"
        ]
    );
    assert_eq!(checks[1].severity, Severity::Warn);
    assert_eq!(
        checks[1].filter.as_deref(),
        Some("_batch = ops.batch_date()")
    );
    assert_eq!(
        checks[2].kind,
        CheckKind::AcceptedValues {
            table: Ident::table("staging.reviews").unwrap(),
            column: Ident::column("review").unwrap(),
            values: vec![
                Literal::Integer(1),
                Literal::Float(2.5),
                Literal::Text("x'y".into()),
                Literal::Bool(true)
            ],
        }
    );
    assert_eq!(
        checks[4].kind,
        CheckKind::Expression {
            table: Ident::table("staging.orders").unwrap(),
            expression: "total_price = unit_price * quantity".into(),
        }
    );
    assert_eq!(
        checks[6].kind,
        CheckKind::CustomSql {
            sql: "SELECT 1 WHERE false".into()
        }
    );
}

#[test]
fn an_empty_file_declares_no_checks() {
    assert!(parse("").unwrap().is_empty());
}

#[test]
fn a_missing_field_names_the_check_and_its_line() {
    let text = r#"
[[checks]]
name = "fine"
kind = "not_null"
severity = "error"
table = "t"
column = "c"

[[checks]]
name = "orders_unique"
kind = "unique"
severity = "error"
table = "staging.orders"
"#;
    assert_eq!(
        problem(text),
        "check 'orders_unique' (line 9): a unique check needs `columns`, a non-empty list of column names"
    );
}

#[test]
fn a_check_without_a_name_is_named_by_position() {
    let error = problem("[[checks]]\nkind = \"not_null\"\nseverity = \"error\"\n");
    assert!(error.starts_with("check #1 (line 1): "), "{error}");
    assert!(error.contains("missing field `name`"), "{error}");
}

#[test]
fn a_misspelt_field_is_refused() {
    let error = problem(
        "[[checks]]\nname = \"x\"\nkind = \"not_null\"\nseverity = \"error\"\ntable = \"t\"\ncolum = \"c\"\n",
    );
    assert!(error.starts_with("check 'x' (line 1): "), "{error}");
    assert!(error.contains("unknown field `colum`"), "{error}");
}

#[test]
fn a_field_of_another_kind_is_refused() {
    let error = problem(
        "[[checks]]\nname = \"x\"\nkind = \"unique\"\nseverity = \"error\"\ntable = \"t\"\ncolumn = \"c\"\n",
    );
    assert_eq!(
        error,
        "check 'x' (line 1): `column` does not apply to a unique check (it takes: table, columns, where)"
    );
}

#[test]
fn unknown_kind_and_severity_list_the_choices() {
    let kind = problem("[[checks]]\nname = \"x\"\nkind = \"unique_key\"\nseverity = \"error\"\n");
    assert!(
        kind.contains("kind 'unique_key' is not one of: not_null, unique,"),
        "{kind}"
    );
    let severity = problem("[[checks]]\nname = \"x\"\nkind = \"unique\"\nseverity = \"fatal\"\n");
    assert!(
        severity.contains("severity 'fatal' is not one of: error (blocks export), warn"),
        "{severity}"
    );
}

#[test]
fn identifiers_are_validated() {
    let table = problem(
        "[[checks]]\nname = \"x\"\nkind = \"not_null\"\nseverity = \"error\"\ntable = \"staging.orders; drop table x\"\ncolumn = \"c\"\n",
    );
    assert!(
        table.contains("'staging.orders; drop table x' is not a table name"),
        "{table}"
    );
    let column = problem(
        "[[checks]]\nname = \"x\"\nkind = \"not_null\"\nseverity = \"error\"\ntable = \"t\"\ncolumn = \"Order ID\"\n",
    );
    assert!(
        column.contains("'Order ID' is not a column name"),
        "{column}"
    );
    assert!(Ident::table("a.b.c").is_err());
    assert!(Ident::table("_private.t1").is_ok());
}

#[test]
fn row_count_bounds_are_checked() {
    let none = problem(
        "[[checks]]\nname = \"x\"\nkind = \"row_count\"\nseverity = \"error\"\ntable = \"t\"\n",
    );
    assert!(none.contains("needs `min`, `max` or both"), "{none}");
    let crossed = problem(
        "[[checks]]\nname = \"x\"\nkind = \"row_count\"\nseverity = \"error\"\ntable = \"t\"\nmin = 3\nmax = 1\n",
    );
    assert!(
        crossed.contains("`min` 3 is larger than `max` 1"),
        "{crossed}"
    );
}

#[test]
fn names_are_unique_and_sql_is_not_blank() {
    let twice = "[[checks]]\nname = \"x\"\nkind = \"custom_sql\"\nseverity = \"error\"\nsql = \"select 1\"\n";
    let error = problem(&format!("{twice}\n{twice}"));
    assert_eq!(
        error,
        "check 'x' (line 7): another check is already named 'x'"
    );
    let blank = problem(
        "[[checks]]\nname = \"x\"\nkind = \"expression\"\nseverity = \"error\"\ntable = \"t\"\nexpression = \"  \"\n",
    );
    assert!(blank.contains("`expression` is empty"), "{blank}");
}

#[test]
fn invalid_toml_is_reported_with_its_position() {
    let error = problem("[[checks]]\nname = \"x\nkind = 1\n");
    assert!(error.starts_with("not a valid checks file"), "{error}");
    assert!(error.contains("line 2"), "{error}");
}

#[test]
fn a_malformed_file_in_a_dataset_folder_is_named() {
    let dir = std::env::temp_dir().join(format!("quality-checks-{}", std::process::id()));
    let dataset = dir.join("shop");
    std::fs::create_dir_all(&dataset).unwrap();
    std::fs::write(
        dataset.join(crate::DEFINITION_FILE),
        "name = \"shop\"\n[[sources]]\nname = \"sales\"\ncolumns = [{ name = \"id\", type = \"int\" }]\n",
    )
    .unwrap();
    std::fs::write(
        dataset.join(CHECKS_FILE),
        "[[checks]]\nname = \"x\"\nkind = \"unique\"\nseverity = \"error\"\ntable = \"t\"\n",
    )
    .unwrap();
    let datasets = Datasets::load(&dir).unwrap();
    let error = format!("{:#}", CheckCatalog::load(&datasets).unwrap_err());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        error.contains(&format!("in {}", dataset.join(CHECKS_FILE).display())),
        "{error}"
    );
    assert!(
        error.contains("check 'x' (line 1): a unique check needs `columns`"),
        "{error}"
    );
}

/// The checks are read from the datasets' folders: a datasets directory that is not there is
/// an error, not a quality gate that passes every batch unchecked.
#[test]
fn a_missing_datasets_directory_is_an_error() {
    let error = format!(
        "{:#}",
        Datasets::load(Path::new("/nonexistent/landfall-datasets")).unwrap_err()
    );
    assert!(error.contains("set LANDFALL_DATASETS_DIR"), "{error}");
}

#[test]
fn the_bundled_ecommerce_checks_are_valid() {
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let datasets = Datasets::load(&datasets).expect("bundled datasets load");
    let catalog = CheckCatalog::load(&datasets).expect("bundled checks load");
    let checks = catalog
        .checks("ecommerce")
        .expect("ecommerce declares checks");
    let error_checks: Vec<&str> = checks
        .iter()
        .filter(|check| check.severity == Severity::Error)
        .map(|check| check.name.as_str())
        .collect();
    for name in [
        "shipment_deliveries_shipment_id_unique",
        "agg_shipments_one_row",
        "best_performing_product_percentages_in_range",
    ] {
        assert!(error_checks.contains(&name), "{name} is an error check");
    }
    assert!(checks.iter().any(|check| check.severity == Severity::Warn));
    // The stager rejects duplicate orders and reviews outside 1..5: no check repeats that.
    for name in ["orders_order_id_unique", "reviews_review_in_range"] {
        assert!(checks.iter().all(|check| check.name != name), "{name}");
    }
    // 25 checks, less those two.
    assert_eq!(checks.len(), 23);
}
