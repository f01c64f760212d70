//! Object-key rules and the two URL encodings S3/MinIO use for keys.
//!
//! `s3s-fs` maps a key straight onto a path under the bucket folder, so keys
//! whose segments the file system would reinterpret (`..`, `.`, empty segments)
//! either escape the bucket, silently alias another key, or fail with an opaque
//! `InternalError`. We refuse them up front with `InvalidArgument`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::{S3Result, s3_error};

/// Refuses keys the file-system backend cannot store as-is.
///
/// Rejected: the empty key, `.` / `..` segments, and empty segments (a leading
/// `/`, a trailing `/`, or `//`). Trailing-slash "folder marker" keys are
/// refused too: `s3s-fs` turns them into bare directories that are neither
/// listed nor readable, which would only confuse callers.
pub(crate) fn validate_key(key: &str) -> S3Result<()> {
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "object key must not be empty"));
    }
    for segment in key.split('/') {
        match segment {
            "" => {
                return Err(s3_error!(
                    InvalidArgument,
                    "object key {key:?} has an empty path segment (leading, trailing or double '/'), \
                     which the file-system backend cannot store"
                ));
            }
            "." | ".." => {
                return Err(s3_error!(
                    InvalidArgument,
                    "object key {key:?} has a {segment:?} path segment, which the file-system backend cannot store"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Characters Go's `url.QueryEscape` leaves alone: ALPHA / DIGIT / `-_.~`.
const QUERY_ESCAPE_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Go's `url.QueryEscape`, which MinIO applies to `s3.object.key` in event
/// records: `/` becomes `%2F` and a space becomes `+` (a literal `+` becomes
/// `%2B`, so the result is unambiguous).
pub(crate) fn query_escape(key: &str) -> String {
    utf8_percent_encode(key, QUERY_ESCAPE_KEEP)
        .to_string()
        .replace("%20", "+")
}

/// Characters MinIO's `s3URLEncode` leaves alone in listings with
/// `encoding-type=url`: ALPHA / DIGIT / `-_./*`.
const LISTING_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'/')
    .remove(b'*');

/// Encodes a key (or prefix, delimiter, marker) for a listing answered with
/// `encoding-type=url`, the way MinIO does: `/` kept, space as `+`. Clients
/// decode this with form-decoding (`unquote_plus`).
pub(crate) fn listing_encode(value: &str) -> String {
    utf8_percent_encode(value, LISTING_KEEP)
        .to_string()
        .replace("%20", "+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for key in [
            "a",
            "landing/2026/11/26/file name+1.csv",
            "a/b/c.d",
            "...",
            "..a/b..",
            "ü/ß",
        ] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn refuses_file_system_hostile_keys() {
        for key in [
            "", "..", ".", "a/../b", "../a", "a/..", "a/./b", "x//y", "/a", "a/", "/",
        ] {
            let err = validate_key(key).expect_err(key);
            assert_eq!(err.code(), &s3s::S3ErrorCode::InvalidArgument, "{key}");
        }
    }

    #[test]
    fn query_escape_matches_go() {
        // Expected values produced by Go's url.QueryEscape.
        assert_eq!(query_escape("a b+c/d.csv"), "a+b%2Bc%2Fd.csv");
        assert_eq!(query_escape("x~y_z-1"), "x~y_z-1");
        assert_eq!(query_escape("ä*"), "%C3%A4%2A");
        assert_eq!(query_escape("k=v&w"), "k%3Dv%26w");
    }

    #[test]
    fn listing_encode_matches_minio() {
        assert_eq!(listing_encode("a b+c/d.csv"), "a+b%2Bc/d.csv");
        assert_eq!(listing_encode("x~*"), "x%7E*");
        assert_eq!(listing_encode("ä"), "%C3%A4");
    }
}
