//! The digest of a file's rows that does not depend on their order: a table read twice without
//! `ORDER BY` may come back in another order (after an update, a vacuum), and the same rows must
//! still be recognised as the same file. Each row (the header too) is hashed on its own and the
//! hashes are added up, twice over with two different hashes, with the row count beside them.
//!
//! Rows are split where COPY's CSV ends them: at a line feed outside double quotes (a quoted
//! field may hold line feeds; a doubled quote inside one toggles the state twice).

/// Sums of two 64-bit hashes over every row, and the row count; fed in chunks of any size.
#[derive(Debug, Clone, Default)]
pub struct RowDigest {
    quoted: bool,
    /// The two hashes of the row so far.
    a: u64,
    b: u64,
    sum_a: u64,
    sum_b: u64,
    /// Rows finished, the header included.
    rows: u64,
    /// Whether a row has begun since the last line feed.
    open: bool,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// A second offset basis, so the second hash is a different function of the row.
const SECOND_OFFSET: u64 = 0x84222325_cbf29ce4;

impl RowDigest {
    pub fn new() -> Self {
        RowDigest {
            a: FNV_OFFSET,
            b: SECOND_OFFSET,
            ..RowDigest::default()
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        for &byte in chunk {
            if byte == b'\n' && !self.quoted {
                self.finish_row();
                continue;
            }
            if byte == b'"' {
                self.quoted = !self.quoted;
            }
            self.open = true;
            self.a = (self.a ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
            self.b = (self.b ^ u64::from(byte))
                .wrapping_mul(FNV_PRIME)
                .rotate_left(29);
        }
    }

    fn finish_row(&mut self) {
        self.sum_a = self.sum_a.wrapping_add(mix(self.a));
        self.sum_b = self.sum_b.wrapping_add(mix(self.b ^ 0x9e37_79b9_7f4a_7c15));
        self.rows += 1;
        self.a = FNV_OFFSET;
        self.b = SECOND_OFFSET;
        self.open = false;
    }

    /// Rows seen so far, the header included, counting a last row without its line feed.
    pub fn rows(&self) -> u64 {
        self.rows + u64::from(self.open)
    }

    /// `<rows>-<sum a>-<sum b>` in hex; a last row without a line feed counts as a row.
    pub fn finish(mut self) -> String {
        if self.open {
            self.finish_row();
        }
        format!("{:x}-{:016x}-{:016x}", self.rows, self.sum_a, self.sum_b)
    }
}

/// SplitMix64's finaliser: spreads FNV's weak high bits before the sum.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(chunks: &[&str]) -> String {
        let mut digest = RowDigest::new();
        for chunk in chunks {
            digest.update(chunk.as_bytes());
        }
        digest.finish()
    }

    #[test]
    fn the_same_rows_in_another_order_or_other_chunks_give_the_same_digest() {
        let one = digest(&["id,name\n1,a\n2,\"b\nc\"\n3,d\n"]);
        assert_eq!(one, digest(&["id,name\n3,d\n1,a\n2,\"b\nc\"\n"]));
        assert_eq!(one, digest(&["id,na", "me\n3,d\n1,a\n2,\"b", "\nc\"\n"]));
        assert!(one.starts_with("4-"), "{one}");
    }

    #[test]
    fn a_changed_moved_or_repeated_value_changes_the_digest() {
        let one = digest(&["id,name\n1,a\n2,b\n"]);
        assert_ne!(one, digest(&["id,name\n1,a\n2,c\n"]));
        assert_ne!(one, digest(&["id,name\n1,b\n2,a\n"]));
        assert_ne!(one, digest(&["id,name\n1,a\n2,b\n2,b\n"]));
        // A quoted line feed is part of its row, not a row boundary.
        assert_ne!(digest(&["h\n\"a\nb\"\n"]), digest(&["h\n\"a\"\n\"b\"\n"]));
    }
}
