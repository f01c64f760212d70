//! Knowledge of `s3s-fs` 0.14.1's on-disk layout (the version is pinned with
//! `=`, so this cannot drift silently).
//!
//! An object lives at `<root>/<bucket>/<key>`, so a key cannot name both an
//! object and a "folder" of other objects (`a` and `a/b`); `s3s-fs` fails such
//! writes with an opaque `InternalError`, and creates missing buckets on
//! `PutObject` instead of answering `NoSuchBucket`. [`Layout`] checks both
//! first and answers with proper S3 errors.
//!
//! Next to `<root>/<bucket>/<key>` (the object bytes), `s3s-fs` keeps two
//! sidecar files per object directly in `<root>`:
//!
//! * `.bucket-<b64(bucket)>.object-<b64(key)>.metadata.json`: content type and
//!   user metadata (`….upload-<uuid>.metadata.json` while a multipart upload
//!   is in flight);
//! * `.bucket-<b64(bucket)>.object-<b64(key)>.internal.json`: ETag and
//!   checksums,
//!
//! where `b64` is unpadded URL-safe base64. We need this layout for three
//! things `s3s-fs` gets wrong:
//!
//! 1. the sidecar file name must fit `NAME_MAX` (255 bytes), which limits the
//!    key length far below S3's 1024 bytes; we refuse such keys with
//!    `KeyTooLongError` instead of failing with `InternalError` mid-write;
//! 2. `delete_object` leaves both sidecars behind, so a later object at the
//!    same key could inherit a stale content type;
//! 3. `complete_multipart_upload` merges the new ETag into the *old* internal
//!    info, so checksums of a previous single-part object at that key survive
//!    and make checksum-validating clients reject the new object on GET.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use s3s::{S3Result, s3_error};

/// Paths under the `s3s-fs` root (canonicalised, as `s3s-fs` itself uses it).
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    /// `NoSuchBucket` unless the bucket folder exists (`s3s-fs` would create it).
    pub(crate) async fn ensure_bucket(&self, bucket: &str) -> S3Result<()> {
        match tokio::fs::metadata(self.bucket_dir(bucket)).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            _ => Err(s3_error!(NoSuchBucket, "bucket {bucket:?} does not exist")),
        }
    }

    /// Refuses a key that would need a file where a directory is, or the other
    /// way round (`a` when `a/b` exists, or `a/b` when `a` exists).
    pub(crate) async fn ensure_key_is_storable(&self, bucket: &str, key: &str) -> S3Result<()> {
        let mut path = self.bucket_dir(bucket);
        let segments: Vec<&str> = key.split('/').collect();
        for (index, segment) in segments.iter().enumerate() {
            path.push(segment);
            let is_last = index + 1 == segments.len();
            let meta = match tokio::fs::metadata(&path).await {
                Ok(meta) => meta,
                // Nothing deeper can exist either.
                Err(_) => return Ok(()),
            };
            if is_last && meta.is_dir() {
                return Err(s3_error!(
                    InvalidArgument,
                    "object key {key:?} is also the prefix of existing objects ({key}/...); \
                     the file-system backend cannot store both"
                ));
            }
            if !is_last && !meta.is_dir() {
                let prefix = segments[..=index].join("/");
                return Err(s3_error!(
                    InvalidArgument,
                    "object {prefix:?} exists, so {key:?} cannot be stored below it; \
                     the file-system backend cannot store both"
                ));
            }
        }
        Ok(())
    }

    /// Whether `<bucket>/<key>` is a directory, i.e. only a prefix of objects.
    pub(crate) async fn is_prefix_dir(&self, bucket: &str, key: &str) -> bool {
        tokio::fs::metadata(self.bucket_dir(bucket).join(key))
            .await
            .is_ok_and(|meta| meta.is_dir())
    }

    pub(crate) fn sidecars(&self, bucket: &str, key: &str) -> SidecarPaths {
        SidecarPaths::new(&self.root, bucket, key)
    }
}

/// Longest file name most Linux/macOS file systems accept.
const NAME_MAX: usize = 255;

/// Length of `s3s-fs`'s sidecar name for a finished object (the longer of the
/// `.metadata.json` and `.internal.json` variants, which are equally long).
fn object_sidecar_name_len(bucket: &str, key: &str) -> usize {
    ".bucket-".len()
        + b64_len(bucket.len())
        + ".object-".len()
        + b64_len(key.len())
        + ".metadata.json".len()
}

/// Length of the metadata sidecar name kept while a multipart upload is open.
fn upload_sidecar_name_len(bucket: &str, key: &str) -> usize {
    object_sidecar_name_len(bucket, key) + ".upload-".len() + UUID_LEN
}

/// A hyphenated UUID, as used in `s3s-fs` upload ids.
const UUID_LEN: usize = 36;

/// Length of unpadded base64 for `n` input bytes.
fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// Which sidecar files an operation will create.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sidecars {
    /// PutObject, CopyObject, CompleteMultipartUpload.
    Object,
    /// CreateMultipartUpload (and its parts).
    Upload,
}

/// Refuses keys whose sidecar file names would exceed `NAME_MAX`.
pub(crate) fn check_key_fits(bucket: &str, key: &str, sidecars: Sidecars) -> S3Result<()> {
    let len = match sidecars {
        Sidecars::Object => object_sidecar_name_len(bucket, key),
        Sidecars::Upload => upload_sidecar_name_len(bucket, key),
    };
    if len > NAME_MAX || key.split('/').any(|segment| segment.len() > NAME_MAX) {
        return Err(s3_error!(
            KeyTooLongError,
            "object key is {} bytes; with bucket {bucket:?} the file-system backend supports at most {} bytes{}",
            key.len(),
            max_key_len(bucket, sidecars),
            match sidecars {
                Sidecars::Object => "",
                Sidecars::Upload => " for multipart uploads",
            }
        ));
    }
    Ok(())
}

/// The longest key (in bytes) accepted for `bucket`.
fn max_key_len(bucket: &str, sidecars: Sidecars) -> usize {
    // b64_len is monotonic, so search downwards from S3's own limit.
    (0..=1024)
        .rev()
        .find(|&n| {
            let probe = "k".repeat(n);
            let len = match sidecars {
                Sidecars::Object => object_sidecar_name_len(bucket, &probe),
                Sidecars::Upload => upload_sidecar_name_len(bucket, &probe),
            };
            len <= NAME_MAX
        })
        .unwrap_or(0)
}

/// Paths of an object's sidecar files under the `s3s-fs` root.
pub(crate) struct SidecarPaths {
    pub(crate) metadata: PathBuf,
    pub(crate) internal: PathBuf,
}

impl SidecarPaths {
    fn new(root: &Path, bucket: &str, key: &str) -> Self {
        let stem = format!(".bucket-{}.object-{}", b64(bucket), b64(key));
        Self {
            metadata: root.join(format!("{stem}.metadata.json")),
            internal: root.join(format!("{stem}.internal.json")),
        }
    }

    /// Removes both sidecars after the object itself was deleted.
    pub(crate) async fn remove(&self) -> anyhow::Result<()> {
        for path in [&self.metadata, &self.internal] {
            match tokio::fs::remove_file(path).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("removing {}", path.display()));
                }
            }
        }
        Ok(())
    }

    /// Drops everything but the ETag from the internal info, so checksums of
    /// an object previously stored at this key no longer apply to the new one.
    pub(crate) async fn keep_only_etag(&self) -> anyhow::Result<()> {
        let path = &self.internal;
        let bytes = match tokio::fs::read(path).await {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        let mut info: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?;
        if info.len() <= 1 {
            return Ok(());
        }
        info.retain(|name, _| name == "e_tag");
        let content = serde_json::to_vec(&info).context("serialising internal info")?;
        // Write-then-rename, like s3s-fs, so a reader never sees half a file.
        let tmp = path.with_extension(format!("s3dev-{}.tmp", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&tmp, content)
            .await
            .with_context(|| format!("writing {}", tmp.display()))?;
        tokio::fs::rename(&tmp, path)
            .await
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    }
}

/// Unpadded URL-safe base64, as `s3s-fs` uses for sidecar names.
fn b64(input: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(b64_len(bytes.len()));
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for &s in &sextets[..=chunk.len()] {
            out.push(char::from(ALPHABET[s as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_url_safe_unpadded() {
        assert_eq!(b64(""), "");
        assert_eq!(b64("f"), "Zg");
        assert_eq!(b64("fo"), "Zm8");
        assert_eq!(b64("foo"), "Zm9v");
        assert_eq!(b64("foob"), "Zm9vYg");
        assert_eq!(b64("\u{ff}\u{fe}?"), "w7_Dvj8");
        for n in 0..10 {
            assert_eq!(b64(&"x".repeat(n)).len(), b64_len(n));
        }
    }

    #[test]
    fn key_length_limits() {
        let bucket = "landing"; // b64 is 10 chars
        assert_eq!(max_key_len(bucket, Sidecars::Object), 161);
        assert_eq!(max_key_len(bucket, Sidecars::Upload), 128);
        assert!(check_key_fits(bucket, &"k".repeat(161), Sidecars::Object).is_ok());
        let err = check_key_fits(bucket, &"k".repeat(162), Sidecars::Object).expect_err("too long");
        assert_eq!(err.code(), &s3s::S3ErrorCode::KeyTooLongError);
        assert!(check_key_fits(bucket, &"k".repeat(129), Sidecars::Upload).is_err());
    }

    #[test]
    fn sidecar_names_match_s3s_fs() {
        let paths = SidecarPaths::new(Path::new("/r"), "b", "a/c");
        assert_eq!(
            paths.metadata,
            Path::new("/r/.bucket-Yg.object-YS9j.metadata.json")
        );
        assert_eq!(
            paths.internal,
            Path::new("/r/.bucket-Yg.object-YS9j.internal.json")
        );
    }
}
