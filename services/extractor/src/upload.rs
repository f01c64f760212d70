//! One landing file on its way up: a multipart upload that stays invisible until it is
//! completed. The extractor completes a run's uploads only once every source of the run has
//! been read whole, so a run that fails or is killed part way leaves no file in the landing
//! prefix (an upload left open costs storage until it is aborted or a bucket lifecycle rule for
//! incomplete multipart uploads clears it).

use std::collections::HashMap;

use anyhow::Context as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

/// An open multipart upload and the parts sent so far.
#[derive(Debug)]
pub struct Pending {
    pub bucket: String,
    pub key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
    /// Bytes sent.
    pub bytes: u64,
}

impl Pending {
    /// Starts the upload of `key`, with `metadata` as the object's user metadata.
    pub async fn start(
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        metadata: HashMap<String, String>,
    ) -> anyhow::Result<Pending> {
        let output = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type("application/gzip")
            .set_metadata(Some(metadata))
            .send()
            .await
            .map_err(|error| anyhow::anyhow!(aws_sdk_s3::error::DisplayErrorContext(error)))
            .with_context(|| format!("starting the upload of s3://{bucket}/{key}"))?;
        let upload_id = output
            .upload_id()
            .with_context(|| format!("s3://{bucket}/{key}: the server returned no upload id"))?;
        Ok(Pending {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            parts: Vec::new(),
            bytes: 0,
        })
    }

    /// Sends the next part (every part but the last must be at least 5 MiB).
    pub async fn part(&mut self, s3: &aws_sdk_s3::Client, body: Bytes) -> anyhow::Result<()> {
        let number = self.parts.len() as i32 + 1;
        let size = body.len() as u64;
        let output = s3
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|error| anyhow::anyhow!(aws_sdk_s3::error::DisplayErrorContext(error)))
            .with_context(|| {
                format!(
                    "uploading part {number} of s3://{}/{}",
                    self.bucket, self.key
                )
            })?;
        let etag = output.e_tag().with_context(|| {
            format!(
                "part {number} of s3://{}/{}: the server returned no ETag",
                self.bucket, self.key
            )
        })?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(etag)
                .build(),
        );
        self.bytes += size;
        tracing::debug!(
            key = self.key,
            part = number,
            bytes = size,
            "uploaded a part"
        );
        Ok(())
    }

    /// Makes the object appear; returns its ETag (without quotes).
    pub async fn complete(self, s3: &aws_sdk_s3::Client) -> anyhow::Result<String> {
        let output = s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|error| anyhow::anyhow!(aws_sdk_s3::error::DisplayErrorContext(error)))
            .with_context(|| {
                format!("completing the upload of s3://{}/{}", self.bucket, self.key)
            })?;
        Ok(output
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned())
    }

    /// Drops the upload and its parts. Best effort: a failure is logged, not raised.
    pub async fn abort(self, s3: &aws_sdk_s3::Client) {
        let aborted = s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(error) = aborted {
            tracing::warn!(
                bucket = self.bucket,
                key = self.key,
                upload_id = self.upload_id,
                error = %aws_sdk_s3::error::DisplayErrorContext(&error),
                "could not abort the multipart upload; a lifecycle rule for incomplete uploads clears it"
            );
        }
    }
}
