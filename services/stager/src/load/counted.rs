//! Identical rows counted instead of copied, for a snapshot source without a natural key
//! (`catalog::Source::counted`): each distinct row goes to COPY once, with the line it first
//! appeared on and `_count`, how many valid lines of the file have it. A day's reviews are
//! millions of lines but a few thousand distinct (product, stars) pairs, so staging them
//! writes thousands of rows, not millions; `staging.<table>` shows every line again.
//!
//! Memory is bounded: once the distinct rows held reach [`MAX_HELD_BYTES`], they are written
//! out and counting starts again. A row then appears more than once, each time with the
//! count of its part of the file; the multiset is the same.

use std::collections::HashMap;

use super::rows::RowEncoder;

/// Bytes of distinct encoded rows held before they are written out (keys, counts and the
/// map's own overhead estimated).
const MAX_HELD_BYTES: usize = 8 * 1024 * 1024;
/// Estimated bytes a held row costs beyond its encoded values.
const OVERHEAD_PER_ROW: usize = 64;

/// The distinct rows of the file so far, by their encoded values.
#[derive(Default)]
pub(super) struct Counter {
    rows: HashMap<Vec<u8>, Held>,
    held_bytes: usize,
}

/// A distinct row's first line and how many lines had it.
struct Held {
    line: i64,
    count: i64,
}

impl Counter {
    /// Counts one valid row: its encoded values and its line.
    pub(super) fn add(&mut self, values: &[u8], line: i64) {
        if let Some(held) = self.rows.get_mut(values) {
            held.count += 1;
            return;
        }
        self.held_bytes += values.len() + OVERHEAD_PER_ROW;
        self.rows.insert(values.to_vec(), Held { line, count: 1 });
    }

    /// Whether the held rows reached [`MAX_HELD_BYTES`] and should be written out.
    pub(super) fn full(&self) -> bool {
        self.held_bytes >= MAX_HELD_BYTES
    }

    /// Writes every held row to `out` as a COPY row (lineage, values, `_count`) and forgets
    /// them; how many rows it wrote.
    pub(super) fn drain_into(&mut self, encoder: &RowEncoder<'_>, out: &mut Vec<u8>) -> u64 {
        let mut written = 0;
        for (values, held) in std::mem::take(&mut self.rows) {
            crate::encode::begin_row(encoder.fields() + 1, out);
            encoder.put_lineage(held.line, out);
            out.extend_from_slice(&values);
            crate::encode::put_i64(held.count, out);
            written += 1;
        }
        self.held_bytes = 0;
        written
    }
}
