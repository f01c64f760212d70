//! The SQL of each check kind: one query returning the check's failing rows. Identifiers come
//! validated and are quoted; `where`, `expression`, `to_where` and `custom_sql` text is SQL the
//! dataset's author wrote and is used as given (parenthesised, so it cannot change the
//! meaning of the conditions around it).

use super::{Check, CheckKind, Ident};

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
