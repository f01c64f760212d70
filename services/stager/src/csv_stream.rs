//! An RFC 4180 record reader over any async byte stream, built on the `csv-core` state machine:
//! it never holds more than one record and one read buffer, whatever the file's size.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read from the source per call.
const READ_BUFFER: usize = 256 * 1024;
/// A record longer than this is refused rather than grown into memory without bound.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("line {line}: a record longer than {} MiB", MAX_RECORD_BYTES / 1024 / 1024)]
    RecordTooLong { line: u64 },
}

/// Reads one CSV record at a time.
pub struct RecordReader<R> {
    source: R,
    parser: csv_core::Reader,
    input: Vec<u8>,
    input_start: usize,
    input_end: usize,
    at_eof: bool,
    output: Vec<u8>,
    ends: Vec<usize>,
    fields: usize,
    previous_line: u64,
}

/// The current record: its fields and the line it starts on (1 = the first line).
pub struct RecordRef<'a> {
    pub line: u64,
    output: &'a [u8],
    ends: &'a [usize],
}

impl<'a> RecordRef<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    pub fn field(&self, index: usize) -> &'a [u8] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.output[start..self.ends[index]]
    }
    pub fn fields(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(|index| self.field(index))
    }
}

impl<R: AsyncRead + Unpin> RecordReader<R> {
    pub fn new(source: R) -> Self {
        RecordReader {
            source,
            parser: csv_core::Reader::new(),
            input: vec![0; READ_BUFFER],
            input_start: 0,
            input_end: 0,
            at_eof: false,
            output: vec![0; 64 * 1024],
            ends: vec![0; 64],
            fields: 0,
            previous_line: 0,
        }
    }

    /// The next record, or `None` at the end of the input.
    pub async fn next_record(&mut self) -> Result<Option<RecordRef<'_>>, ReadError> {
        let mut output_len = 0;
        self.fields = 0;
        loop {
            if self.input_start == self.input_end && !self.at_eof {
                self.input_end = self.source.read(&mut self.input).await?;
                self.input_start = 0;
                self.at_eof = self.input_end == 0;
            }
            let (result, consumed, written, ends_written) = self.parser.read_record(
                &self.input[self.input_start..self.input_end],
                &mut self.output[output_len..],
                &mut self.ends[self.fields..],
            );
            self.input_start += consumed;
            output_len += written;
            self.fields += ends_written;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    if self.output.len() >= MAX_RECORD_BYTES {
                        return Err(ReadError::RecordTooLong {
                            line: self.previous_line + 1,
                        });
                    }
                    let grown = (self.output.len() * 2).min(MAX_RECORD_BYTES);
                    self.output.resize(grown, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let grown = self.ends.len() * 2;
                    self.ends.resize(grown, 0);
                }
                csv_core::ReadRecordResult::Record => {
                    let output = &self.output[..output_len];
                    let embedded_newlines =
                        output.iter().filter(|&&byte| byte == b'\n').count() as u64;
                    // csv-core's line counter starts at 1 and counts a record's `\n` once read:
                    // at once for LF endings, at the next record for CRLF, never at the end of
                    // the input. The larger estimate is right for each.
                    let terminator = u64::from(!self.at_eof);
                    let line = self
                        .parser
                        .line()
                        .saturating_sub(embedded_newlines + terminator)
                        .max(self.previous_line + 1);
                    self.previous_line = line + embedded_newlines;
                    return Ok(Some(RecordRef {
                        line,
                        output,
                        ends: &self.ends[..self.fields],
                    }));
                }
                csv_core::ReadRecordResult::End => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8]) -> Vec<(u64, Vec<String>)> {
        let mut reader = RecordReader::new(input);
        let mut records = Vec::new();
        while let Some(record) = reader.next_record().await.unwrap() {
            let fields = record
                .fields()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            records.push((record.line, fields));
        }
        records
    }

    #[tokio::test]
    async fn quotes_embedded_newlines_and_line_numbers() {
        let input = b"a,b\n1,\"x\ny\"\n2,\"say \"\"hi\"\"\"\n\n3,z";
        let records = read_all(input).await;
        assert_eq!(
            records,
            [
                (1, vec!["a".into(), "b".into()]),
                (2, vec!["1".into(), "x\ny".into()]),
                (4, vec!["2".into(), "say \"hi\"".into()]),
                (6, vec!["3".into(), "z".into()]),
            ]
        );
    }

    #[tokio::test]
    async fn crlf_line_endings_give_the_same_lines() {
        let records = read_all(b"a,b\r\n1,2\r\n3,4\r\n").await;
        let lines: Vec<u64> = records.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 2, 3]);
        assert_eq!(records[2].1, ["3", "4"]);
    }

    #[tokio::test]
    async fn records_spanning_read_buffers_are_whole() {
        let mut input = b"id,text\n".to_vec();
        for index in 0..20_000 {
            input.extend_from_slice(format!("{index},\"{}\"\n", "w".repeat(index % 97)).as_bytes());
        }
        let records = read_all(&input).await;
        assert_eq!(records.len(), 20_001);
        assert_eq!(
            records[20_000],
            (20_001, vec!["19999".into(), "w".repeat(19_999 % 97)])
        );
    }
}
