//! From the file's records to binary COPY rows: the header matched to the source's columns,
//! each record checked and encoded, repeated integer natural keys caught as the rows stream.

use std::collections::HashMap;
use std::pin::Pin;

use catalog::{ColumnType, Source};
use tokio::io::AsyncRead;

use super::{
    LoadError, MAX_REASON_CHARS, MAX_REJECT_VALUE_CHARS, RejectedRow, printable, read_error,
};
use crate::csv_stream::{RecordReader, RecordRef};
use crate::encode::{self, begin_row, encode_field, put_date, put_i64};

/// The header row, matched to the source's columns.
pub(super) async fn read_header(
    reader: &mut RecordReader<Pin<Box<dyn AsyncRead + Send>>>,
    source: &Source,
) -> Result<HeaderMap, LoadError> {
    let header = reader
        .next_record()
        .await
        .map_err(read_error)?
        .ok_or_else(|| {
            LoadError::File(format!(
                "the file is empty: expected a header row naming {}",
                expected_columns(source)
            ))
        })?;
    match_header(source, header.fields())
}

/// Encodes the file's records as binary COPY rows of its staging table, or says why one is
/// rejected.
pub(super) struct RowEncoder<'a> {
    source: &'a Source,
    header_map: HeaderMap,
    /// Fields per COPY row: the lineage ones and the source's columns.
    fields: u16,
    file_id: i64,
    batch_date: chrono::NaiveDate,
    /// Natural keys of one integer column are checked here, as the rows stream; others (and
    /// keys too large for the bitmap: `None` from then on) by `reject_duplicate_keys` after
    /// the COPY.
    pub(super) seen: Option<SeenKeys>,
}

impl<'a> RowEncoder<'a> {
    pub(super) fn new(
        source: &'a Source,
        header_map: HeaderMap,
        file_id: i64,
        batch_date: chrono::NaiveDate,
    ) -> Result<Self, LoadError> {
        let fields = u16::try_from(LINEAGE_FIELDS + source.columns.len())
            .map_err(|_| LoadError::File("too many columns for one COPY row".into()))?;
        let seen = SeenKeys::for_source(source, &header_map);
        Ok(RowEncoder {
            source,
            header_map,
            fields,
            file_id,
            batch_date,
            seen,
        })
    }

    /// Appends `record` to `out` as one COPY row; on rejection `out` may hold part of it,
    /// which the caller drops.
    pub(super) fn encode(
        &mut self,
        record: &RecordRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RejectedRow> {
        let line = record.line as i64;
        self.check_width(record)?;
        begin_row(self.fields, out);
        self.put_lineage(line, out);
        self.encode_values(record, out)?;
        self.check_key(record, line)
    }

    /// `_file_id`, `_line` and `_batch` of a row from line `line`.
    pub(super) fn put_lineage(&self, line: i64, out: &mut Vec<u8>) {
        put_i64(self.file_id, out);
        put_i64(line, out);
        put_date(self.batch_date, out);
    }

    /// The fields of a COPY row of this file: the lineage ones and the source's columns.
    pub(super) fn fields(&self) -> u16 {
        self.fields
    }

    /// Appends the source's columns of `record` to `out` as COPY values (no row start, no
    /// lineage), or says why the row is rejected (`out` may then hold part of it). The field
    /// count is the caller's to check first ([`RowEncoder::check_width`]).
    pub(super) fn encode_values(
        &self,
        record: &RecordRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RejectedRow> {
        let line = record.line as i64;
        for (column, &position) in self.source.columns.iter().zip(&self.header_map.positions) {
            let raw = record.field(position);
            if let Err(reason) = encode_field(column, raw, out) {
                return Err(RejectedRow {
                    line,
                    column: Some(column.name.clone()),
                    value: Some(printable(
                        &String::from_utf8_lossy(raw),
                        MAX_REJECT_VALUE_CHARS,
                    )),
                    reason: printable(&reason, MAX_REASON_CHARS),
                });
            }
        }
        Ok(())
    }

    /// Rejects a record whose field count is not the header's.
    pub(super) fn check_width(&self, record: &RecordRef<'_>) -> Result<(), RejectedRow> {
        let header_fields = self.header_map.header_fields;
        if record.len() == header_fields {
            return Ok(());
        }
        Err(RejectedRow {
            line: record.line as i64,
            column: None,
            value: None,
            reason: format!(
                "has {} fields, the header has {header_fields}",
                record.len()
            ),
        })
    }

    /// Rejects the row when its integer natural key was seen earlier in the file.
    fn check_key(&mut self, record: &RecordRef<'_>, line: i64) -> Result<(), RejectedRow> {
        let Some(keys) = self.seen.as_mut() else {
            return Ok(());
        };
        let Some(key) = encode::integer_key(record.field(keys.position)) else {
            return Ok(());
        };
        match keys.insert(key) {
            Some(true) => Ok(()),
            Some(false) => {
                let key_names = &self.source.natural_key[0];
                Err(RejectedRow {
                    line,
                    column: Some(key_names.clone()),
                    value: Some(key.to_string()),
                    reason: format!(
                        "duplicate {key_names} {key}: an earlier line of the file has it"
                    ),
                })
            }
            // Beyond the bitmap: the check after the COPY covers the whole file.
            None => {
                self.seen = None;
                Ok(())
            }
        }
    }
}

/// `_file_id`, `_line`, `_batch`.
const LINEAGE_FIELDS: usize = 3;
/// Integer natural keys from 0 to this (exclusive) are checked in a bitmap of at most 8 MiB.
const MAX_BITMAP_KEY: i64 = 1 << 26;

/// The natural keys seen so far in a file, when the key is one integer column.
pub(super) struct SeenKeys {
    /// The key's field in the file.
    position: usize,
    bits: Vec<u64>,
}

impl SeenKeys {
    fn for_source(source: &Source, header: &HeaderMap) -> Option<SeenKeys> {
        let [key] = source.natural_key.as_slice() else {
            return None;
        };
        let index = source
            .columns
            .iter()
            .position(|column| column.name == *key)?;
        let integer = matches!(
            source.columns[index].column_type,
            ColumnType::SmallInt | ColumnType::Int | ColumnType::BigInt
        );
        integer.then(|| SeenKeys {
            position: header.positions[index],
            bits: Vec::new(),
        })
    }

    /// Records `key`: `Some(true)` if it is new, `Some(false)` if seen before, `None` if it is
    /// outside the bitmap's range.
    fn insert(&mut self, key: i64) -> Option<bool> {
        if !(0..MAX_BITMAP_KEY).contains(&key) {
            return None;
        }
        let (word, bit) = ((key / 64) as usize, key % 64);
        if word >= self.bits.len() {
            let grown = (word + 1).next_power_of_two().max(1024);
            self.bits.resize(grown, 0);
        }
        let mask = 1u64 << bit;
        let new = self.bits[word] & mask == 0;
        self.bits[word] |= mask;
        Some(new)
    }
}

/// For each definition column, the position of its field in the file.
pub(super) struct HeaderMap {
    positions: Vec<usize>,
    header_fields: usize,
}

fn match_header<'a>(
    source: &Source,
    header: impl Iterator<Item = &'a [u8]>,
) -> Result<HeaderMap, LoadError> {
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut header_fields = 0;
    for (position, raw) in header.enumerate() {
        header_fields += 1;
        let raw = if position == 0 {
            raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw)
        } else {
            raw
        };
        let name = std::str::from_utf8(raw)
            .map_err(|_| {
                LoadError::File(format!("header field {} is not valid UTF-8", position + 1))
            })?
            .trim()
            .to_ascii_lowercase();
        let column = source.columns.iter().find(|column| {
            column.name == name
                || column
                    .aliases
                    .iter()
                    .any(|alias| alias.to_ascii_lowercase() == name)
        });
        let Some(column) = column else {
            return Err(LoadError::File(format!(
                "unknown column '{name}' in the header (expected {})",
                expected_columns(source)
            )));
        };
        if by_name.insert(column.name.clone(), position).is_some() {
            return Err(LoadError::File(format!(
                "column '{}' appears twice in the header",
                column.name
            )));
        }
    }
    let mut positions = Vec::with_capacity(source.columns.len());
    for column in &source.columns {
        match by_name.get(&column.name) {
            Some(&position) => positions.push(position),
            None => {
                return Err(LoadError::File(format!(
                    "missing column '{}' in the header (expected {})",
                    column.name,
                    expected_columns(source)
                )));
            }
        }
    }
    Ok(HeaderMap {
        positions,
        header_fields,
    })
}

pub(super) fn expected_columns(source: &Source) -> String {
    let names: Vec<&str> = source
        .columns
        .iter()
        .map(|column| column.name.as_str())
        .collect();
    names.join(",")
}
