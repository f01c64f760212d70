use super::*;
use crate::checks::{Literal, Severity};

fn check(kind: CheckKind, filter: Option<&str>) -> Check {
    Check {
        name: "c".into(),
        severity: Severity::Error,
        description: None,
        filter: filter.map(str::to_owned),
        kind,
    }
}

fn table(name: &str) -> Ident {
    Ident::table(name).unwrap()
}

fn column(name: &str) -> Ident {
    Ident::column(name).unwrap()
}

#[test]
fn not_null_selects_the_null_rows_of_the_batch() {
    let sql = failing_rows(&check(
        CheckKind::NotNull {
            table: table("staging.orders"),
            column: column("order_id"),
        },
        Some("_batch = ops.batch_date()"),
    ));
    assert_eq!(
        sql,
        "SELECT *\n  FROM \"staging\".\"orders\"\n WHERE (_batch = ops.batch_date())\n   AND \"order_id\" IS NULL"
    );
}

#[test]
fn unique_groups_non_null_keys() {
    let sql = failing_rows(&check(
        CheckKind::Unique {
            table: table("t"),
            columns: vec![column("a"), column("b")],
        },
        None,
    ));
    assert_eq!(
        sql,
        "SELECT \"a\", \"b\", count(*) AS occurrences\n  FROM \"t\"\n WHERE \"a\" IS NOT NULL\n   AND \"b\" IS NOT NULL\n GROUP BY \"a\", \"b\"\nHAVING count(*) > 1"
    );
}

#[test]
fn accepted_values_are_literals() {
    let sql = failing_rows(&check(
        CheckKind::AcceptedValues {
            table: table("t"),
            column: column("v"),
            values: vec![Literal::Integer(1), Literal::Text("it's".into())],
        },
        None,
    ));
    assert!(sql.ends_with("\"v\" NOT IN (1, 'it''s')"), "{sql}");
}

#[test]
fn relationships_scope_child_and_parent_separately() {
    let sql = failing_rows(&check(
        CheckKind::Relationships {
            table: table("s.child"),
            column: column("parent_id"),
            to_table: table("s.parent"),
            to_column: column("id"),
            to_filter: Some("_batch = ops.batch_date()".into()),
        },
        Some("_batch = ops.batch_date()"),
    ));
    assert_eq!(
        sql,
        "SELECT child.*\n  FROM \"s\".\"child\" AS child\n WHERE (_batch = ops.batch_date())\n   AND child.\"parent_id\" IS NOT NULL\n   AND NOT EXISTS (SELECT 1 FROM \"s\".\"parent\" AS parent WHERE parent.\"id\" = child.\"parent_id\" AND (_batch = ops.batch_date()))"
    );
}

#[test]
fn an_expression_fails_rows_where_it_is_not_true() {
    let sql = failing_rows(&check(
        CheckKind::Expression {
            table: table("t"),
            expression: "a OR b".into(),
        },
        None,
    ));
    assert!(sql.ends_with("WHERE (a OR b) IS NOT TRUE"), "{sql}");
}

#[test]
fn row_count_returns_one_row_when_out_of_bounds() {
    let sql = failing_rows(&check(
        CheckKind::RowCount {
            table: table("t"),
            min: Some(1),
            max: None,
        },
        Some("d = ops.batch_date()"),
    ));
    assert_eq!(
        sql,
        "SELECT count(*) AS row_count, 1::bigint AS min, NULL::bigint AS max\n  FROM \"t\"\n WHERE (d = ops.batch_date())\nHAVING count(*) < 1"
    );
}
