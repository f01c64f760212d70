//! The SQL of each check kind: one query returning the check's failing rows. Identifiers come
//! validated and are quoted; `where`, `expression`, `to_where` and `custom_sql` text is SQL the
//! dataset's author wrote and is used as given (parenthesised, so it cannot change the
//! meaning of the conditions around it).

use crate::checks::{Check, CheckKind, Ident};

/// The query returning `check`'s failing rows; stored with each result, so a person can run it
/// (after `SELECT set_config('landfall.batch_date', 'YYYY-MM-DD', false)`) to see them all.
pub fn failing_rows(check: &Check) -> String {
    let filter = check.filter.as_deref();
    match &check.kind {
        CheckKind::NotNull { table, column } => {
            select_rows(table, filter, &[format!("{} IS NULL", column.sql())])
        }
        CheckKind::Unique { table, columns } => {
            let key = join(columns.iter().map(Ident::sql), ", ");
            let mut conditions: Vec<String> = filter.map(parenthesised).into_iter().collect();
            conditions.extend(columns.iter().map(|c| format!("{} IS NOT NULL", c.sql())));
            format!(
                "SELECT {key}, count(*) AS occurrences\n  FROM {}\n WHERE {}\n GROUP BY {key}\nHAVING count(*) > 1",
                table.sql(),
                join(conditions, "\n   AND "),
            )
        }
        CheckKind::AcceptedValues {
            table,
            column,
            values,
        } => select_rows(
            table,
            filter,
            &[
                format!("{} IS NOT NULL", column.sql()),
                format!(
                    "{} NOT IN ({})",
                    column.sql(),
                    join(values.iter().map(|value| value.sql()), ", ")
                ),
            ],
        ),
        CheckKind::Relationships {
            table,
            column,
            to_table,
            to_column,
            to_filter,
        } => relationships(
            table,
            column,
            to_table,
            to_column,
            filter,
            to_filter.as_deref(),
        ),
        CheckKind::Expression { table, expression } => {
            select_rows(table, filter, &[format!("({expression}) IS NOT TRUE")])
        }
        CheckKind::RowCount { table, min, max } => {
            let mut outside = Vec::new();
            if let Some(min) = min {
                outside.push(format!("count(*) < {min}"));
            }
            if let Some(max) = max {
                outside.push(format!("count(*) > {max}"));
            }
            let bound = |value: &Option<u64>| value.map_or("NULL".to_owned(), |v| v.to_string());
            format!(
                "SELECT count(*) AS row_count, {}::bigint AS min, {}::bigint AS max\n  FROM {}{}\nHAVING {}",
                bound(min),
                bound(max),
                table.sql(),
                filter
                    .map(|filter| format!("\n WHERE {}", parenthesised(filter)))
                    .unwrap_or_default(),
                join(outside, " OR "),
            )
        }
        CheckKind::CustomSql { sql } => sql.clone(),
    }
}

/// A planner setting `check`'s query runs with (`SET LOCAL`, for that query only), where the
/// default plan is measurably slower.
///
/// A `unique` check groups by a sort instead of a hash aggregate: over 1M staged keys at the
/// default `work_mem` the hash table spills to temporary files (390-480 ms against 225-233 ms
/// sorted; on 1M keys in random order 277-284 ms against 252 ms). docs/PERFORMANCE.md.
pub fn planner_setting(check: &Check) -> Option<(&'static str, &'static str)> {
    match check.kind {
        CheckKind::Unique { .. } => Some(("enable_hashagg", "off")),
        _ => None,
    }
}

/// Counts the failing rows and keeps up to `sample_rows` of them as JSON objects, in one pass:
/// each returned row carries the total count (a window over all failing rows, computed before
/// the LIMIT) and one failing row. No row back means nothing failed. The check's query is a
/// subquery here, which also makes PostgreSQL refuse a data-modifying statement in it.
///
/// The check's query is planned on its own (a materialized CTE), for all its rows: seeing the
/// LIMIT, the planner would pick a plan that is fast to the first row, although the count
/// needs every row. On a 1M-row batch that turned a relationships check's hash anti-join into
/// a million index probes: 552 ms instead of 153 ms (docs/PERFORMANCE.md).
pub fn measured(failing_rows: &str, sample_rows: u32) -> String {
    format!(
        "WITH failing AS MATERIALIZED (\nSELECT * FROM (\n{failing_rows}\n) AS checked\n)\nSELECT count(*) OVER () AS failing_rows, to_jsonb(failing) AS sample_row\n  FROM failing\n LIMIT {sample_rows}"
    )
}

/// `SELECT * FROM table WHERE (filter) AND conditions…`
fn select_rows(table: &Ident, filter: Option<&str>, conditions: &[String]) -> String {
    let all = filter
        .map(parenthesised)
        .into_iter()
        .chain(conditions.iter().cloned());
    format!(
        "SELECT *\n  FROM {}\n WHERE {}",
        table.sql(),
        join(all, "\n   AND ")
    )
}

/// Child rows whose key is not found among the parent rows. The child's filter is applied in
/// the outer query and the parent's inside the subquery, so each one's unqualified column
/// names refer to its own table.
fn relationships(
    table: &Ident,
    column: &Ident,
    to_table: &Ident,
    to_column: &Ident,
    filter: Option<&str>,
    to_filter: Option<&str>,
) -> String {
    let mut parent_conditions = vec![format!(
        "parent.{} = child.{}",
        to_column.sql(),
        column.sql()
    )];
    parent_conditions.extend(to_filter.map(parenthesised));
    let mut conditions: Vec<String> = filter.map(parenthesised).into_iter().collect();
    conditions.push(format!("child.{} IS NOT NULL", column.sql()));
    conditions.push(format!(
        "NOT EXISTS (SELECT 1 FROM {} AS parent WHERE {})",
        to_table.sql(),
        join(parent_conditions, " AND ")
    ));
    format!(
        "SELECT child.*\n  FROM {} AS child\n WHERE {}",
        table.sql(),
        join(conditions, "\n   AND ")
    )
}

fn parenthesised(sql: &str) -> String {
    format!("({sql})")
}

fn join(parts: impl IntoIterator<Item = String>, separator: &str) -> String {
    parts.into_iter().collect::<Vec<_>>().join(separator)
}

#[cfg(test)]
mod tests;
