//! Streaming a byte stream into one S3 object, holding at most one part in memory: a single
//! PUT when the whole stream fits in one part, a multipart upload otherwise (every part
//! `part_size` bytes except the last, as S3 requires), aborted when anything fails.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt as _};
use runtime::Failure;

use crate::classify;

/// Where an object goes, and what it is (for error messages).
pub struct Target<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: &'a str,
    /// The report the object belongs to, named in every error.
    pub report: &'a str,
}

/// How an object went up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// 0 for a single PUT, else the number of multipart parts.
    pub parts: usize,
    pub etag: Option<String>,
}

impl Target<'_> {
    fn describe(&self, action: &str) -> String {
        format!(
            "{action} s3://{}/{} (report {})",
            self.bucket, self.key, self.report
        )
    }

    /// Writes a small body in one request.
    pub async fn put(&self, body: Bytes) -> Result<Uploaded, Failure> {
        let output = self
            .s3
            .put_object()
            .bucket(self.bucket)
            .key(self.key)
            .content_type(self.content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|error| classify::s3(error, self.describe("writing")))?;
        Ok(Uploaded {
            parts: 0,
            etag: output.e_tag().map(str::to_owned),
        })
    }

    /// Writes `chunks` to the object in parts of `part_size` bytes. A failure of the stream
    /// itself is returned as it is; a multipart upload begun is aborted either way.
    pub async fn upload<S>(&self, chunks: S, part_size: usize) -> Result<Uploaded, Failure>
    where
        S: Stream<Item = Result<Bytes, Failure>> + Send,
    {
        let mut chunks = std::pin::pin!(chunks);
        let mut buffer = BytesMut::new();
        let mut multipart: Option<Multipart> = None;
        let result = async {
            while let Some(chunk) = chunks.next().await {
                buffer.extend_from_slice(&chunk?);
                while buffer.len() >= part_size {
                    let part = buffer.split_to(part_size).freeze();
                    if multipart.is_none() {
                        multipart = Some(self.create_multipart().await?);
                    }
                    if let Some(upload) = multipart.as_mut() {
                        self.upload_part(upload, part).await?;
                    }
                }
            }
            match multipart.as_mut() {
                None => self.put(buffer.split().freeze()).await,
                Some(upload) => {
                    if !buffer.is_empty() {
                        self.upload_part(upload, buffer.split().freeze()).await?;
                    }
                    self.complete(upload).await
                }
            }
        }
        .await;
        if result.is_err()
            && let Some(upload) = &multipart
        {
            self.abort(upload).await;
        }
        result
    }

    async fn create_multipart(&self) -> Result<Multipart, Failure> {
        let output = self
            .s3
            .create_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .content_type(self.content_type)
            .send()
            .await
            .map_err(|error| {
                classify::s3(error, self.describe("starting a multipart upload of"))
            })?;
        let upload_id = output.upload_id().ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!(
                "{}: the server returned no upload id",
                self.describe("starting a multipart upload of")
            ))
        })?;
        Ok(Multipart {
            upload_id: upload_id.to_owned(),
            parts: Vec::new(),
        })
    }

    async fn upload_part(&self, upload: &mut Multipart, part: Bytes) -> Result<(), Failure> {
        let part_number = upload.parts.len() as i32 + 1;
        let describe = || self.describe(&format!("uploading part {part_number} of"));
        let output = self
            .s3
            .upload_part()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(&upload.upload_id)
            .part_number(part_number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|error| classify::s3(error, describe()))?;
        let etag = output.e_tag().ok_or_else(|| {
            Failure::permanent(anyhow::anyhow!(
                "{}: the server returned no ETag",
                describe()
            ))
        })?;
        upload.parts.push(
            CompletedPart::builder()
                .part_number(part_number)
                .e_tag(etag)
                .build(),
        );
        Ok(())
    }

    async fn complete(&self, upload: &Multipart) -> Result<Uploaded, Failure> {
        let output = self
            .s3
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(&upload.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(upload.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|error| {
                classify::s3(error, self.describe("completing the multipart upload of"))
            })?;
        Ok(Uploaded {
            parts: upload.parts.len(),
            etag: output.e_tag().map(str::to_owned),
        })
    }

    /// Best effort: an upload left open costs only storage until a lifecycle rule for
    /// incomplete uploads clears it, so a failed abort is logged, not raised.
    async fn abort(&self, upload: &Multipart) {
        let aborted = self
            .s3
            .abort_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(&upload.upload_id)
            .send()
            .await;
        match aborted {
            Ok(_) => tracing::info!(
                bucket = self.bucket,
                key = self.key,
                "aborted the multipart upload"
            ),
            Err(error) => tracing::warn!(
                bucket = self.bucket,
                key = self.key,
                upload_id = upload.upload_id,
                error = %aws_sdk_s3::error::DisplayErrorContext(&error),
                "could not abort the multipart upload"
            ),
        }
    }
}

/// A multipart upload in progress.
struct Multipart {
    upload_id: String,
    parts: Vec<CompletedPart>,
}
