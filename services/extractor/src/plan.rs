//! Checking a dataset's extract against the source database before anything is read: every
//! table and column is there, every column has a type a landing file can carry as the type the
//! dataset declares, every cursor can be compared. A problem names the source, the table (or
//! query) and why, and the run stops before a byte is uploaded.

use anyhow::bail;
use catalog::extract::{ExtractMode, SourceExtract};
use catalog::sql::quote_ident;
use catalog::{ColumnType, Source};
use tokio_postgres::Client;
use tokio_postgres::types::{Kind, Type};

/// One source, ready to be read.
#[derive(Debug, Clone)]
pub struct Planned {
    pub source: String,
    /// `FROM …` of the source's rows.
    pub from: String,
    /// The declared columns, quoted, in the dataset's order.
    pub select_list: String,
    /// Incremental: the quoted cursor column and its type's name for casting a watermark back.
    pub cursor: Option<Cursor>,
    /// How errors name the table or query.
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct Cursor {
    pub column: String,
    pub quoted: String,
    pub type_name: String,
}

/// Checks one source against the source database (inside the run's transaction).
pub async fn plan(
    client: &Client,
    extract: &SourceExtract,
    declared: &Source,
) -> anyhow::Result<Planned> {
    let origin = extract.origin.describe();
    let from = extract.origin.from_clause();
    let select_list = declared
        .columns
        .iter()
        .map(|column| quote_ident(&column.name))
        .collect::<Vec<_>>()
        .join(", ");
    let statement = client
        .prepare(&format!("SELECT {select_list} FROM {from}"))
        .await
        .map_err(|error| describe_db_error(&error))?;
    for (column, found) in declared.columns.iter().zip(statement.columns()) {
        if let Err(problem) = carries(column.column_type, found.type_()) {
            bail!(
                "column {} is {} in the source database: {problem}",
                column.name,
                found.type_().name()
            );
        }
    }
    let cursor = match &extract.mode {
        ExtractMode::Snapshot => None,
        ExtractMode::Incremental { cursor } => {
            let quoted = quote_ident(cursor);
            let statement = client
                .prepare(&format!("SELECT {quoted} FROM {from}"))
                .await
                .map_err(|error| describe_db_error(&error))?;
            let found = statement.columns()[0].type_();
            if !is_cursor_type(found) {
                bail!(
                    "cursor column {cursor} is {}; a cursor must be a number, a date, a \
                     timestamp or text, so that \"past the last run\" has a meaning",
                    found.name()
                );
            }
            Some(Cursor {
                column: cursor.clone(),
                quoted,
                type_name: found.name().to_owned(),
            })
        }
    };
    Ok(Planned {
        source: extract.source.clone(),
        from,
        select_list,
        cursor,
        origin,
    })
}

/// Whether a column of type `found` can be written as text that the stager reads back as
/// `declared`; `Err` says why not.
pub fn carries(declared: ColumnType, found: &Type) -> Result<(), String> {
    let integers = [Type::INT2, Type::INT4, Type::INT8];
    let ok = match declared {
        ColumnType::SmallInt | ColumnType::Int | ColumnType::BigInt => integers.contains(found),
        ColumnType::Numeric { .. } => integers.contains(found) || *found == Type::NUMERIC,
        ColumnType::Date => *found == Type::DATE,
        ColumnType::Timestamp => *found == Type::TIMESTAMP,
        ColumnType::Boolean => *found == Type::BOOL,
        ColumnType::Text => {
            matches!(found.kind(), Kind::Enum(_))
                || [
                    Type::TEXT,
                    Type::VARCHAR,
                    Type::BPCHAR,
                    Type::NAME,
                    Type::CHAR,
                    Type::UUID,
                    Type::INT2,
                    Type::INT4,
                    Type::INT8,
                    Type::NUMERIC,
                    Type::DATE,
                    Type::TIMESTAMP,
                    Type::BOOL,
                ]
                .contains(found)
        }
    };
    if ok {
        return Ok(());
    }
    let hint = match (declared, found) {
        (ColumnType::Numeric { .. }, f) if *f == Type::FLOAT4 || *f == Type::FLOAT8 => {
            " (a float's digits are not exact: cast it in a query, e.g. round(x::numeric, 2))"
        }
        (ColumnType::Timestamp, f) if *f == Type::TIMESTAMPTZ => {
            " (a timestamp with time zone: convert it in a query, e.g. x AT TIME ZONE 'UTC')"
        }
        (ColumnType::Date, f) if *f == Type::TIMESTAMP || *f == Type::TIMESTAMPTZ => {
            " (cast it in a query: x::date)"
        }
        _ => "",
    };
    Err(format!(
        "a landing file cannot carry it as the declared {}{hint}",
        declared_name(declared)
    ))
}

fn declared_name(declared: ColumnType) -> String {
    match declared {
        ColumnType::SmallInt => "smallint".into(),
        ColumnType::Int => "int".into(),
        ColumnType::BigInt => "bigint".into(),
        ColumnType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
        ColumnType::Date => "date".into(),
        ColumnType::Timestamp => "timestamp".into(),
        ColumnType::Boolean => "boolean".into(),
        ColumnType::Text => "text".into(),
    }
}

fn is_cursor_type(found: &Type) -> bool {
    [
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::NUMERIC,
        Type::DATE,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::VARCHAR,
    ]
    .contains(found)
}

/// The server's own words for a failed statement (`relation "shop.x" does not exist`, `column
/// "y" does not exist`), with its SQLSTATE; or the client's error.
pub fn describe_db_error(error: &tokio_postgres::Error) -> anyhow::Error {
    match error.as_db_error() {
        Some(db) => {
            let mut message = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(hint) = db.hint() {
                message.push_str(&format!("; hint: {hint}"));
            }
            anyhow::anyhow!(message)
        }
        None => anyhow::anyhow!("{error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_a_landing_file_cannot_carry_are_refused_with_a_hint() {
        let numeric = ColumnType::Numeric {
            precision: 12,
            scale: 2,
        };
        assert!(carries(ColumnType::Int, &Type::INT8).is_ok());
        assert!(carries(numeric, &Type::NUMERIC).is_ok());
        assert!(carries(ColumnType::Text, &Type::UUID).is_ok());
        let float = carries(numeric, &Type::FLOAT8).unwrap_err();
        assert!(
            float.contains("numeric(12,2)") && float.contains("round("),
            "{float}"
        );
        assert!(carries(ColumnType::Text, &Type::JSONB).is_err());
        assert!(carries(ColumnType::Text, &Type::BYTEA).is_err());
        assert!(carries(ColumnType::Text, &Type::TEXT_ARRAY).is_err());
        let zoned = carries(ColumnType::Timestamp, &Type::TIMESTAMPTZ).unwrap_err();
        assert!(zoned.contains("AT TIME ZONE"), "{zoned}");
        assert!(carries(ColumnType::Date, &Type::TIMESTAMP).is_err());
    }
}
