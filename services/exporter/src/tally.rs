//! What the manifest says about a CSV object, measured on the bytes as they stream past:
//! size, SHA-256 and the number of records.
//!
//! Records are counted from the bytes, not with a separate `SELECT count(*)`: under READ
//! COMMITTED that would see its own snapshot, and a report rewritten in between would give a
//! manifest that disagrees with its object. PostgreSQL's CSV quotes every field that holds a
//! quote, comma or line break and doubles quotes inside it, so a line break outside quotes
//! ends a record and one inside quotes is data.

use sha2::{Digest as _, Sha256};

/// Running totals over a CSV stream.
#[derive(Default)]
pub struct CsvTally {
    bytes: u64,
    records: u64,
    inside_quotes: bool,
    last_byte: Option<u8>,
    sha256: Sha256,
}

/// The totals once the stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub bytes: u64,
    /// Records including the header line.
    pub records: u64,
    /// Lower-case hex.
    pub sha256: String,
}

impl Totals {
    /// Data rows: the records after the header line.
    pub fn data_rows(&self) -> u64 {
        self.records.saturating_sub(1)
    }
}

impl CsvTally {
    pub fn update(&mut self, chunk: &[u8]) {
        self.sha256.update(chunk);
        self.bytes += chunk.len() as u64;
        for &byte in chunk {
            match byte {
                b'"' => self.inside_quotes = !self.inside_quotes,
                b'\n' if !self.inside_quotes => self.records += 1,
                _ => {}
            }
        }
        if let Some(&last) = chunk.last() {
            self.last_byte = Some(last);
        }
    }

    pub fn finish(self) -> Totals {
        // A last record without a line break still counts (PostgreSQL always ends one).
        let unterminated = self.last_byte.is_some_and(|byte| byte != b'\n');
        Totals {
            bytes: self.bytes,
            records: self.records + u64::from(unterminated),
            sha256: hex(&self.sha256.finalize()),
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(chunks: &[&[u8]]) -> Totals {
        let mut tally = CsvTally::default();
        for chunk in chunks {
            tally.update(chunk);
        }
        tally.finish()
    }

    #[test]
    fn counts_records_bytes_and_hashes() {
        let totals = tally(&[b"a,b\n1,2\n", b"3,4\n"]);
        assert_eq!(totals.records, 3);
        assert_eq!(totals.data_rows(), 2);
        assert_eq!(totals.bytes, 12);
        // sha256 of "a,b\n1,2\n3,4\n"
        let expected = hex(&Sha256::digest(b"a,b\n1,2\n3,4\n"));
        assert_eq!(totals.sha256, expected);
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn line_breaks_and_quotes_inside_quoted_fields_are_data_even_across_chunks() {
        let csv: &[u8] = b"id,name\n1,\"two\nlines\"\n2,\"say \"\"hi\"\",\r\nok\"\n3,plain\n";
        assert_eq!(tally(&[csv]).data_rows(), 3);
        for split in 1..csv.len() {
            let (head, tail) = csv.split_at(split);
            assert_eq!(tally(&[head, tail]).data_rows(), 3, "split at {split}");
        }
    }

    #[test]
    fn header_only_and_empty_outputs() {
        assert_eq!(tally(&[b"a,b\n"]).data_rows(), 0);
        assert_eq!(tally(&[]).records, 0);
        assert_eq!(tally(&[b"a,b\n1,2"]).data_rows(), 1);
    }
}
