//! Type-checks one CSV field against its column and writes it in PostgreSQL's binary COPY
//! format, straight into the COPY buffer (no per-value writer, no allocation for a valid value).
//! Every row that reaches COPY is valid, so COPY itself never fails on data.

use catalog::{Column, ColumnType};
use chrono::{Datelike as _, NaiveDate, NaiveDateTime};

/// Why a field was refused; the stager adds file, line and column.
pub type FieldError = String;

/// The binary COPY header: signature, flags, header extension length.
pub const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The binary COPY trailer: a field count of -1.
pub const COPY_TRAILER: &[u8] = &[0xff, 0xff];

/// Days from 1970-01-01 (chrono's epoch for `num_days_from_ce` arithmetic) to 2000-01-01,
/// PostgreSQL's epoch for dates and timestamps.
const PG_EPOCH_DAYS_FROM_CE: i32 = 730_120;
/// PostgreSQL's date range: 4713-01-01 BC (Julian day 0) to 5874897-12-31.
const PG_MIN_DATE_DAYS: i32 = -2_451_545;

/// Starts a binary COPY row of `fields` fields.
#[inline]
pub fn begin_row(fields: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&fields.to_be_bytes());
}

/// Appends a bigint field.
#[inline]
pub fn put_i64(value: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a date field.
#[inline]
pub fn put_date(date: NaiveDate, out: &mut Vec<u8>) {
    out.extend_from_slice(&4i32.to_be_bytes());
    out.extend_from_slice(&pg_days(date).to_be_bytes());
}

/// Days since 2000-01-01.
#[inline]
fn pg_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - PG_EPOCH_DAYS_FROM_CE
}

/// The integer value of a valid integer field, for the natural-key check.
pub fn integer_key(raw: &[u8]) -> Option<i64> {
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// Appends `raw` (one field) to `out` as a binary COPY value (length, then bytes), or says why
/// it is not valid. On error `out` may hold a partial value: the caller drops the row.
pub fn encode_field(column: &Column, raw: &[u8], out: &mut Vec<u8>) -> Result<(), FieldError> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err("is not valid UTF-8".into());
    };
    if raw.contains(&0) {
        return Err("contains a NUL byte, which PostgreSQL text cannot hold".into());
    }
    if text.is_empty() {
        if column.nullable {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return Ok(());
        }
        return Err("is empty, but the column may not be NULL".into());
    }
    match column.column_type {
        ColumnType::SmallInt => {
            let value = integer::<i16>(column, text, "smallint")?;
            out.extend_from_slice(&2i32.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
            Ok(())
        }
        ColumnType::Int => {
            let value = integer::<i32>(column, text, "integer")?;
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
            Ok(())
        }
        ColumnType::BigInt => {
            let value = integer::<i64>(column, text, "bigint")?;
            put_i64(value, out);
            Ok(())
        }
        ColumnType::Numeric { precision, scale } => numeric(column, text, precision, scale, out),
        ColumnType::Date => date(text, out),
        ColumnType::Timestamp => timestamp(text, out),
        ColumnType::Boolean => boolean(text, out),
        ColumnType::Text => {
            let len = i32::try_from(raw.len()).map_err(|_| "is longer than 2 GiB".to_owned())?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(raw);
            Ok(())
        }
    }
}

/// A `date` value: days since 2000-01-01.
fn date(text: &str, out: &mut Vec<u8>) -> Result<(), FieldError> {
    let date = parse_date(text).ok_or_else(|| format!("'{text}' is not a date (YYYY-MM-DD)"))?;
    if pg_days(date) < PG_MIN_DATE_DAYS {
        return Err(format!(
            "'{text}' is before the earliest date PostgreSQL holds"
        ));
    }
    put_date(date, out);
    Ok(())
}

/// A `timestamp` value: microseconds since 2000-01-01 00:00.
fn timestamp(text: &str, out: &mut Vec<u8>) -> Result<(), FieldError> {
    let parsed = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .ok_or_else(|| format!("'{text}' is not a timestamp (YYYY-MM-DD HH:MM[:SS])"))?;
    let days = pg_days(parsed.date());
    if days < PG_MIN_DATE_DAYS {
        return Err(format!(
            "'{text}' is before the earliest timestamp PostgreSQL holds"
        ));
    }
    let time = parsed.time();
    let seconds = i64::from(chrono::Timelike::num_seconds_from_midnight(&time));
    // PostgreSQL keeps microseconds, rounding half to even as its text input does.
    let nanos = i64::from(chrono::Timelike::nanosecond(&time));
    let mut micros = nanos / 1000;
    let rest = nanos % 1000;
    if rest > 500 || (rest == 500 && micros % 2 == 1) {
        micros += 1;
    }
    let value = i64::from(days) * 86_400_000_000 + seconds * 1_000_000 + micros;
    put_i64(value, out);
    Ok(())
}

/// A `boolean` value from the usual spellings.
fn boolean(text: &str, out: &mut Vec<u8>) -> Result<(), FieldError> {
    let value = match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "y" => 1u8,
        "false" | "f" | "0" | "no" | "n" => 0u8,
        _ => return Err(format!("'{text}' is not a boolean (true or false)")),
    };
    out.extend_from_slice(&1i32.to_be_bytes());
    out.push(value);
    Ok(())
}

/// `YYYY-MM-DD`: the common form without chrono's format interpreter, then the general one.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let digit = |i: usize| b[i].wrapping_sub(b'0');
        let all_digits = [0, 1, 2, 3, 5, 6, 8, 9].iter().all(|&i| digit(i) <= 9);
        if all_digits {
            let year = i32::from(digit(0)) * 1000
                + i32::from(digit(1)) * 100
                + i32::from(digit(2)) * 10
                + i32::from(digit(3));
            let month = u32::from(digit(5)) * 10 + u32::from(digit(6));
            let day = u32::from(digit(8)) * 10 + u32::from(digit(9));
            return NaiveDate::from_ymd_opt(year, month, day);
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

fn integer<T>(column: &Column, text: &str, type_name: &str) -> Result<T, FieldError>
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
    if column.min.is_some() || column.max.is_some() {
        check_range(column, value.into() as f64, text)?;
    }
    Ok(value)
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;

fn numeric(
    column: &Column,
    text: &str,
    precision: u8,
    scale: u8,
    out: &mut Vec<u8>,
) -> Result<(), FieldError> {
    let negative = text.starts_with('-');
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits_only(whole) || !digits_only(fraction) {
        return Err(format!("'{text}' is not a number"));
    }
    if fraction.len() > scale as usize {
        return Err(format!("'{text}' has more than {scale} decimal places"));
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > (precision - scale) as usize {
        return Err(format!(
            "'{text}' does not fit numeric({precision},{scale})"
        ));
    }
    if column.min == Some(0.0) && column.max.is_none() {
        // The common bound (a price, an amount) needs only the sign: no float parse per value.
        let zero = whole.is_empty() && fraction.bytes().all(|byte| byte == b'0');
        if negative && !zero {
            return Err(format!("{text} is below the minimum 0"));
        }
    } else if column.min.is_some() || column.max.is_some() {
        let value: f64 = text
            .parse()
            .map_err(|_| format!("'{text}' is not a number"))?;
        check_range(column, value, text)?;
    }
    put_numeric(negative, whole.as_bytes(), fraction.as_bytes(), out);
    Ok(())
}

/// PostgreSQL's binary numeric: digit count, weight, sign, display scale, then base-10000
/// digits (most significant first). `whole` has no leading zeros; both are ASCII digits.
/// At most 38 digits of precision, so at most 11 base-10000 digits (plus padding).
fn put_numeric(negative: bool, whole: &[u8], fraction: &[u8], out: &mut Vec<u8>) {
    let mut digits = [0i16; 24];
    let mut count = 0;
    // Whole part: groups of four from the right, so pad the first group on the left.
    let lead = (4 - whole.len() % 4) % 4;
    let whole_groups = (whole.len() + lead) / 4;
    let mut group = 0i16;
    let mut filled = lead;
    for &byte in whole {
        group = group * 10 + i16::from(byte - b'0');
        filled += 1;
        if filled == 4 {
            digits[count] = group;
            count += 1;
            group = 0;
            filled = 0;
        }
    }
    // Fraction: groups of four from the left, the last padded on the right.
    let mut filled = 0;
    for &byte in fraction {
        group = group * 10 + i16::from(byte - b'0');
        filled += 1;
        if filled == 4 {
            digits[count] = group;
            count += 1;
            group = 0;
            filled = 0;
        }
    }
    if filled > 0 {
        for _ in filled..4 {
            group *= 10;
        }
        digits[count] = group;
        count += 1;
    }
    let mut weight = whole_groups as i16 - 1;
    let mut start = 0;
    while start < count && digits[start] == 0 {
        start += 1;
        weight -= 1;
    }
    let mut end = count;
    while end > start && digits[end - 1] == 0 {
        end -= 1;
    }
    let ndigits = end - start;
    let (weight, sign) = if ndigits == 0 {
        (0, NUMERIC_POS)
    } else if negative {
        (weight, NUMERIC_NEG)
    } else {
        (weight, NUMERIC_POS)
    };
    let len = 8 + 2 * ndigits as i32;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&(ndigits as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(fraction.len() as i16).to_be_bytes());
    for digit in &digits[start..end] {
        out.extend_from_slice(&digit.to_be_bytes());
    }
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

    /// The encoded value without its length prefix (None for NULL), or the error.
    fn encode(column: &Column, raw: &str) -> Result<Option<Vec<u8>>, String> {
        let mut out = Vec::new();
        encode_field(column, raw.as_bytes(), &mut out)?;
        let len = i32::from_be_bytes(out[..4].try_into().unwrap());
        if len < 0 {
            return Ok(None);
        }
        assert_eq!(out.len(), 4 + len as usize);
        Ok(Some(out[4..].to_vec()))
    }

    /// Binary numeric, decoded back to (ndigits, weight, sign, dscale, digits).
    fn numeric_parts(bytes: &[u8]) -> (i16, i16, u16, i16, Vec<i16>) {
        let word = |i: usize| i16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]]);
        let n = word(0);
        (
            n,
            word(1),
            word(2) as u16,
            word(3),
            (0..n as usize).map(|i| word(4 + i)).collect(),
        )
    }

    #[test]
    fn integers_and_ranges() {
        let review = column("smallint", true, Some(1.0), Some(5.0));
        assert_eq!(encode(&review, "5").unwrap(), Some(vec![0, 5]));
        assert_eq!(encode(&review, "").unwrap(), None);
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
            encode(&id, "-2").unwrap(),
            Some((-2i32).to_be_bytes().to_vec())
        );
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
    fn numerics_in_base_10000() {
        let price = column("numeric(12,2)", false, Some(0.0), None);
        let parts = |raw: &str| numeric_parts(&encode(&price, raw).unwrap().unwrap());
        assert_eq!(parts("19.99"), (2, 0, 0, 2, vec![19, 9900]));
        assert_eq!(parts("12345.5"), (3, 1, 0, 1, vec![1, 2345, 5000]));
        assert_eq!(parts("10000"), (1, 1, 0, 0, vec![1]));
        assert_eq!(parts("0.05"), (1, -1, 0, 2, vec![500]));
        assert_eq!(parts("007"), (1, 0, 0, 0, vec![7]));
        assert_eq!(parts("0.00"), (0, 0, 0, 2, vec![]));
        assert_eq!(parts(".5"), (1, -1, 0, 1, vec![5000]));
        let signed = column("numeric(38,4)", false, None, None);
        let bytes = encode(&signed, "-123456789012345678901234567890.1234").unwrap();
        assert_eq!(
            numeric_parts(&bytes.unwrap()),
            (
                9,
                7,
                0x4000,
                4,
                vec![12, 3456, 7890, 1234, 5678, 9012, 3456, 7890, 1234]
            )
        );
        assert_eq!(
            encode(&price, "-1").unwrap_err(),
            "-1 is below the minimum 0"
        );
        assert_eq!(
            encode(&price, "-0.01").unwrap_err(),
            "-0.01 is below the minimum 0"
        );
        // Zero with a sign is still zero, as the float comparison had it.
        for zero in ["-0", "-0.00", "-00.0", "0", "+0.00"] {
            assert!(encode(&price, zero).is_ok(), "{zero}");
        }
        let bounded = column("numeric(12,2)", false, Some(0.5), Some(10.0));
        assert_eq!(
            encode(&bounded, "0.25").unwrap_err(),
            "0.25 is below the minimum 0.5"
        );
        assert_eq!(
            encode(&bounded, "10.01").unwrap_err(),
            "10.01 is above the maximum 10"
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
    }

    #[test]
    fn dates_timestamps_booleans_and_text() {
        let date = column("date", false, None, None);
        assert_eq!(encode(&date, "2000-01-01").unwrap(), Some(vec![0, 0, 0, 0]));
        assert_eq!(
            encode(&date, "2024-02-29").unwrap(),
            Some(8825i32.to_be_bytes().to_vec())
        );
        assert_eq!(
            encode(&date, "1999-12-31").unwrap(),
            Some((-1i32).to_be_bytes().to_vec())
        );
        assert_eq!(
            encode(&date, "2023-02-29").unwrap_err(),
            "'2023-02-29' is not a date (YYYY-MM-DD)"
        );
        assert_eq!(
            encode(&date, "2023-1-2").unwrap(),
            encode(&date, "2023-01-02").unwrap()
        );
        let at = column("timestamp", false, None, None);
        assert_eq!(
            encode(&at, "2000-01-02 00:00:01.5").unwrap(),
            Some(86_401_500_000i64.to_be_bytes().to_vec())
        );
        assert_eq!(
            encode(&at, "2000-01-01T00:01").unwrap(),
            Some(60_000_000i64.to_be_bytes().to_vec())
        );
        let flag = column("boolean", false, None, None);
        assert_eq!(encode(&flag, " Yes").unwrap(), Some(vec![1]));
        assert_eq!(encode(&flag, "f").unwrap(), Some(vec![0]));
        let text = column("text", false, None, None);
        assert_eq!(
            encode(&text, "a\tb\\c\nd").unwrap(),
            Some(b"a\tb\\c\nd".to_vec())
        );
        assert_eq!(
            encode(&text, "x\0y").unwrap_err(),
            "contains a NUL byte, which PostgreSQL text cannot hold"
        );
        let mut out = Vec::new();
        assert_eq!(
            encode_field(&text, b"\xff", &mut out).unwrap_err(),
            "is not valid UTF-8"
        );
    }
}
