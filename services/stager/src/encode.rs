//! Type-checks one CSV field against its column and writes it in PostgreSQL's COPY text format.
//! Every row that reaches COPY is valid, so COPY itself never fails on data.

use chrono::{NaiveDate, NaiveDateTime};
use runtime::datasets::{Column, ColumnType};

/// Why a field was refused; the stager adds file, line and column.
pub type FieldError = String;

/// Appends `raw` (one field) to `out` as a COPY text value, or says why it is not valid.
pub fn encode_field(column: &Column, raw: &[u8], out: &mut Vec<u8>) -> Result<(), FieldError> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err("is not valid UTF-8".into());
    };
    if text.contains('\0') {
        return Err("contains a NUL byte, which PostgreSQL text cannot hold".into());
    }
    if text.is_empty() {
        if column.nullable {
            out.extend_from_slice(b"\\N");
            return Ok(());
        }
        return Err("is empty, but the column may not be NULL".into());
    }
    match column.column_type {
        ColumnType::SmallInt => integer::<i16>(column, text, "smallint", out),
        ColumnType::Int => integer::<i32>(column, text, "integer", out),
        ColumnType::BigInt => integer::<i64>(column, text, "bigint", out),
        ColumnType::Numeric { precision, scale } => numeric(column, text, precision, scale, out),
        ColumnType::Date => {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| format!("'{text}' is not a date (YYYY-MM-DD)"))?;
            out.extend_from_slice(text.as_bytes());
            Ok(())
        }
        ColumnType::Timestamp => {
            let parsed = [
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
            .ok_or_else(|| format!("'{text}' is not a timestamp (YYYY-MM-DD HH:MM[:SS])"))?;
            out.extend_from_slice(parsed.format("%Y-%m-%d %H:%M:%S%.f").to_string().as_bytes());
            Ok(())
        }
        ColumnType::Boolean => {
            let value = match text.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "1" | "yes" | "y" => b't',
                "false" | "f" | "0" | "no" | "n" => b'f',
                _ => return Err(format!("'{text}' is not a boolean (true or false)")),
            };
            out.push(value);
            Ok(())
        }
        ColumnType::Text => {
            escape_text(text, out);
            Ok(())
        }
    }
}

fn integer<T>(
    column: &Column,
    text: &str,
    type_name: &str,
    out: &mut Vec<u8>,
) -> Result<(), FieldError>
where
    T: std::str::FromStr + Into<i64> + Copy,
{
    let value: T = text.parse().map_err(|_| {
        if text.parse::<i128>().is_ok() {
            format!("'{text}' is out of range for {type_name}")
        } else {
            format!("'{text}' is not an integer")
        }
    })?;
    check_range(column, value.into() as f64, text)?;
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn numeric(
    column: &Column,
    text: &str,
    precision: u8,
    scale: u8,
    out: &mut Vec<u8>,
) -> Result<(), FieldError> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits_only(whole) || !digits_only(fraction) {
        return Err(format!("'{text}' is not a number"));
    }
    if fraction.len() > scale as usize {
        return Err(format!("'{text}' has more than {scale} decimal places"));
    }
    let whole_digits = whole.trim_start_matches('0').len();
    if whole_digits > (precision - scale) as usize {
        return Err(format!(
            "'{text}' does not fit numeric({precision},{scale})"
        ));
    }
    let value: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    check_range(column, value, text)?;
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn check_range(column: &Column, value: f64, text: &str) -> Result<(), FieldError> {
    if let Some(min) = column.min
        && value < min
    {
        return Err(format!("{text} is below the minimum {min}"));
    }
    if let Some(max) = column.max
        && value > max
    {
        return Err(format!("{text} is above the maximum {max}"));
    }
    Ok(())
}

/// COPY text format: backslash, tab, newline and carriage return are escaped.
pub fn escape_text(text: &str, out: &mut Vec<u8>) {
    for byte in text.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(column_type: &str, nullable: bool, min: Option<f64>, max: Option<f64>) -> Column {
        Column {
            name: "c".into(),
            column_type: ColumnType::try_from(column_type.to_owned()).unwrap(),
            nullable,
            min,
            max,
            aliases: vec![],
        }
    }

    fn encode(column: &Column, raw: &str) -> Result<String, String> {
        let mut out = Vec::new();
        encode_field(column, raw.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn integers_and_ranges() {
        let review = column("smallint", true, Some(1.0), Some(5.0));
        assert_eq!(encode(&review, "5").unwrap(), "5");
        assert_eq!(encode(&review, "").unwrap(), "\\N");
        assert_eq!(
            encode(&review, "7").unwrap_err(),
            "7 is above the maximum 5"
        );
        assert_eq!(
            encode(&review, "ten").unwrap_err(),
            "'ten' is not an integer"
        );
        let id = column("int", false, None, None);
        assert_eq!(
            encode(&id, "").unwrap_err(),
            "is empty, but the column may not be NULL"
        );
        assert_eq!(
            encode(&id, "3000000000").unwrap_err(),
            "'3000000000' is out of range for integer"
        );
        assert_eq!(encode(&id, "1.5").unwrap_err(), "'1.5' is not an integer");
    }

    #[test]
    fn numerics_dates_and_text() {
        let price = column("numeric(12,2)", false, Some(0.0), None);
        assert_eq!(encode(&price, "19.99").unwrap(), "19.99");
        assert_eq!(
            encode(&price, "-1").unwrap_err(),
            "-1 is below the minimum 0"
        );
        assert_eq!(
            encode(&price, "1.999").unwrap_err(),
            "'1.999' has more than 2 decimal places"
        );
        assert_eq!(
            encode(&price, "12e3").unwrap_err(),
            "'12e3' is not a number"
        );
        assert_eq!(
            encode(&price, "12345678901").unwrap_err(),
            "'12345678901' does not fit numeric(12,2)"
        );
        let date = column("date", false, None, None);
        assert_eq!(encode(&date, "2024-02-29").unwrap(), "2024-02-29");
        assert_eq!(
            encode(&date, "2023-02-29").unwrap_err(),
            "'2023-02-29' is not a date (YYYY-MM-DD)"
        );
        let text = column("text", false, None, None);
        assert_eq!(encode(&text, "a\tb\\c\nd").unwrap(), "a\\tb\\\\c\\nd");
        let mut out = Vec::new();
        assert_eq!(
            encode_field(&text, b"\xff", &mut out).unwrap_err(),
            "is not valid UTF-8"
        );
    }
}
