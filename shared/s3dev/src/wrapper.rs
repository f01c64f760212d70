//! The `s3s::S3` implementation: `s3s-fs` plus the fixes and notifications
//! described in the crate docs.
//!
//! Every operation delegates to [`s3s_fs::FileSystem`]; the wrapper only
//! checks keys before, and repairs outputs / publishes events after.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use s3s::auth::Credentials;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use s3s_fs::FileSystem;
use tracing::{debug, error, warn};

use crate::event::{self, EventName, ObjectFacts, RequestFacts, ServerIdentity};
use crate::keys::{listing_encode, validate_key};
use crate::layout::{Layout, Sidecars, check_key_fits};
use crate::notify::Notifier;

/// The client's socket address, put into each request's extensions by the
/// server so events can carry `sourceIPAddress` like MinIO's do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub(crate) SocketAddr);

/// Notification sink plus the switch tests flip to simulate lost events.
pub(crate) struct Notifications {
    pub(crate) notifier: Option<Arc<Notifier>>,
    pub(crate) enabled: Arc<AtomicBool>,
    pub(crate) identity: ServerIdentity,
}

pub(crate) struct DevS3 {
    inner: FileSystem,
    layout: Layout,
    notifications: Notifications,
}

impl DevS3 {
    pub(crate) fn new(inner: FileSystem, layout: Layout, notifications: Notifications) -> Self {
        Self {
            inner,
            layout,
            notifications,
        }
    }

    /// Whether a completed write must be announced (skips the extra
    /// `head_object` when nobody listens).
    fn wants_events(&self) -> bool {
        self.notifications.notifier.is_some() && self.notifications.enabled.load(Ordering::SeqCst)
    }

    /// Publishes one event, turning failure into an S3 error for the client:
    /// better a failed PUT than an object the pipeline never hears about.
    async fn publish(
        &self,
        name: EventName,
        bucket: &str,
        key: &str,
        object: Option<&ObjectFacts>,
        request: &RequestFacts,
    ) -> S3Result<()> {
        let Some(notifier) = &self.notifications.notifier else {
            return Ok(());
        };
        if !self.notifications.enabled.load(Ordering::SeqCst) {
            debug!(
                event = name.as_str(),
                bucket, key, "notifications disabled; dropping event"
            );
            return Ok(());
        }
        let log = event::build(
            name,
            bucket,
            key,
            object,
            request,
            &self.notifications.identity,
        );
        let payload =
            serde_json::to_vec(&log).map_err(|err| internal("serialising notification", err))?;
        notifier.publish(&payload).await.map_err(|err| {
            error!(error = format!("{err:#}"), event = name.as_str(), bucket, key, "notification lost");
            S3Error::with_message(
                S3ErrorCode::InternalError,
                format!(
                    "the operation on {bucket}/{key} was applied, but its bucket notification could not be \
                     published: {err:#}"
                ),
            )
        })?;
        debug!(event = name.as_str(), bucket, key, "notification published");
        Ok(())
    }

    /// Announces a created object, looking up what the event must report.
    async fn object_created(
        &self,
        name: EventName,
        bucket: &str,
        key: &str,
        request: &RequestFacts,
        credentials: Option<Credentials>,
    ) -> S3Result<()> {
        if !self.wants_events() {
            return Ok(());
        }
        let facts = self.object_facts(bucket, key, credentials).await?;
        self.publish(name, bucket, key, Some(&facts), request).await
    }

    /// Size, ETag, content type and metadata of a stored object, via the
    /// inner `head_object` (the only way to read `s3s-fs`'s ETag bookkeeping).
    async fn object_facts(
        &self,
        bucket: &str,
        key: &str,
        credentials: Option<Credentials>,
    ) -> S3Result<ObjectFacts> {
        let head = self
            .inner
            .head_object(head_request(bucket, key, credentials))
            .await?
            .output;
        Ok(ObjectFacts {
            size: head
                .content_length
                .and_then(|len| u64::try_from(len).ok())
                .unwrap_or_default(),
            etag: head.e_tag.map(ETag::into_value).unwrap_or_default(),
            content_type: head.content_type.unwrap_or_default(),
            user_metadata: head
                .metadata
                .unwrap_or_default()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
        })
    }

    /// Fills in the ETags `s3s-fs` leaves out of listings.
    async fn fill_etags(
        &self,
        bucket: &str,
        contents: Option<&mut Vec<Object>>,
        credentials: Option<&Credentials>,
    ) {
        for object in contents.into_iter().flatten() {
            let Some(key) = object.key.as_deref() else {
                continue;
            };
            match self
                .inner
                .head_object(head_request(bucket, key, credentials.cloned()))
                .await
            {
                Ok(head) => object.e_tag = head.output.e_tag,
                // Deleted between listing and lookup: list it without an ETag.
                Err(err) => debug!(bucket, key, %err, "no ETag for listed object"),
            }
        }
    }

    /// Checks shared by all operations that create an object.
    async fn check_create(&self, bucket: &str, key: &str, sidecars: Sidecars) -> S3Result<()> {
        validate_key(key)?;
        check_key_fits(bucket, key, sidecars)?;
        self.layout.ensure_bucket(bucket).await?;
        self.layout.ensure_key_is_storable(bucket, key).await
    }

    /// Forgets the sidecars of a deleted object so a later object at the same
    /// key starts clean. Failure only leaves stale files, so it is logged.
    async fn remove_sidecars(&self, bucket: &str, key: &str) {
        if let Err(err) = self.layout.sidecars(bucket, key).remove().await {
            warn!(
                error = format!("{err:#}"),
                bucket, key, "could not remove sidecar files"
            );
        }
    }
}

#[async_trait::async_trait]
impl S3 for DevS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.inner.delete_bucket(req).await
    }

    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.check_create(&bucket, &key, Sidecars::Object).await?;
        if req.input.content_type.is_none() {
            req.input.content_type = Some(default_content_type(&key).to_owned());
        }
        let request = request_facts(&req);
        let credentials = req.credentials.clone();
        let response = self.inner.put_object(req).await?;
        self.object_created(EventName::Put, &bucket, &key, &request, credentials)
            .await?;
        Ok(response)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        validate_key(&req.input.key)?;
        self.inner.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        validate_key(&req.input.key)?;
        self.inner.head_object(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        if let CopySource::Bucket { key, .. } = &req.input.copy_source {
            validate_key(key)?;
        }
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.check_create(&bucket, &key, Sidecars::Object).await?;
        let request = request_facts(&req);
        let credentials = req.credentials.clone();
        let response = self.inner.copy_object(req).await?;
        self.object_created(EventName::Copy, &bucket, &key, &request, credentials)
            .await?;
        Ok(response)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        validate_key(&key)?;
        let request = request_facts(&req);
        let response = if self.layout.is_prefix_dir(&bucket, &key).await {
            // `a` when only `a/...` exists is no object; S3 answers 204 and
            // s3s-fs would fail trying to unlink a directory.
            S3Response::new(DeleteObjectOutput::default())
        } else {
            let response = self.inner.delete_object(req).await?;
            self.remove_sidecars(&bucket, &key).await;
            response
        };
        // Like MinIO, announce every successful DELETE, even of a missing key.
        self.publish(EventName::Delete, &bucket, &key, None, &request)
            .await?;
        Ok(response)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        for object in &req.input.delete.objects {
            validate_key(&object.key)?;
        }
        let bucket = req.input.bucket.clone();
        let request = request_facts(&req);
        let response = self.inner.delete_objects(req).await?;
        let deleted: Vec<String> = response
            .output
            .deleted
            .iter()
            .flatten()
            .filter_map(|object| object.key.clone())
            .collect();
        for key in &deleted {
            self.remove_sidecars(&bucket, key).await;
            self.publish(EventName::Delete, &bucket, key, None, &request)
                .await?;
        }
        Ok(response)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let marker = req.input.marker.clone();
        let encode = wants_url_encoding(req.input.encoding_type.as_ref());
        let credentials = req.credentials.clone();
        let mut response = self.inner.list_objects(req).await?;
        let output = &mut response.output;
        // s3s-fs drops the marker from the V1 answer.
        output.marker = marker;
        self.fill_etags(&bucket, output.contents.as_mut(), credentials.as_ref())
            .await;
        if encode {
            encode_listing(output.contents.as_mut(), output.common_prefixes.as_mut());
            for value in [
                &mut output.prefix,
                &mut output.delimiter,
                &mut output.marker,
                &mut output.next_marker,
            ] {
                encode_opt(value);
            }
        }
        Ok(response)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let encode = wants_url_encoding(req.input.encoding_type.as_ref());
        let credentials = req.credentials.clone();
        let mut response = self.inner.list_objects_v2(req).await?;
        let output = &mut response.output;
        self.fill_etags(&bucket, output.contents.as_mut(), credentials.as_ref())
            .await;
        if encode {
            encode_listing(output.contents.as_mut(), output.common_prefixes.as_mut());
            for value in [
                &mut output.prefix,
                &mut output.delimiter,
                &mut output.start_after,
            ] {
                encode_opt(value);
            }
        }
        Ok(response)
    }

    async fn create_multipart_upload(
        &self,
        mut req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.check_create(&bucket, &key, Sidecars::Upload).await?;
        if req.input.content_type.is_none() {
            req.input.content_type = Some(default_content_type(&key).to_owned());
        }
        self.inner.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        validate_key(&req.input.key)?;
        self.inner.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        validate_key(&req.input.key)?;
        if let CopySource::Bucket { key, .. } = &req.input.copy_source {
            validate_key(key)?;
        }
        self.inner.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        validate_key(&req.input.key)?;
        self.inner.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.check_create(&bucket, &key, Sidecars::Object).await?;
        let request = request_facts(&req);
        let credentials = req.credentials.clone();
        let S3Response {
            mut output,
            status,
            headers,
            extensions,
        } = self.inner.complete_multipart_upload(req).await?;
        // s3s-fs has already assembled the object; its future only yields the
        // final output. Resolve it here so the event goes out before we answer.
        if let Some(future) = output.future.take() {
            output = future.await?;
        }
        self.layout
            .sidecars(&bucket, &key)
            .keep_only_etag()
            .await
            .map_err(|err| internal("resetting checksums of the completed upload", err))?;
        self.object_created(
            EventName::CompleteMultipartUpload,
            &bucket,
            &key,
            &request,
            credentials,
        )
        .await?;
        Ok(S3Response {
            output,
            status,
            headers,
            extensions,
        })
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        validate_key(&req.input.key)?;
        self.inner.abort_multipart_upload(req).await
    }
}

/// A request the wrapper makes to the inner store on the client's behalf.
fn head_request(
    bucket: &str,
    key: &str,
    credentials: Option<Credentials>,
) -> S3Request<HeadObjectInput> {
    S3Request {
        input: HeadObjectInput {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            ..HeadObjectInput::default()
        },
        method: hyper::Method::HEAD,
        uri: hyper::Uri::from_static("/"),
        headers: hyper::HeaderMap::new(),
        extensions: hyper::http::Extensions::new(),
        credentials,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

fn request_facts<T>(req: &S3Request<T>) -> RequestFacts {
    RequestFacts {
        principal: req
            .credentials
            .as_ref()
            .map(|credentials| credentials.access_key.clone())
            .unwrap_or_default(),
        source_ip: req
            .extensions
            .get::<ClientAddr>()
            .map(|addr| addr.0.ip().to_string())
            .unwrap_or_default(),
        user_agent: req
            .headers
            .get(hyper::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    }
}

fn wants_url_encoding(encoding: Option<&EncodingType>) -> bool {
    encoding.is_some_and(|encoding| encoding.as_str() == EncodingType::URL)
}

/// Applies `encoding-type=url` to keys and common prefixes, which `s3s-fs`
/// echoes in the answer but does not do.
fn encode_listing(
    contents: Option<&mut Vec<Object>>,
    common_prefixes: Option<&mut Vec<CommonPrefix>>,
) {
    for object in contents.into_iter().flatten() {
        encode_opt(&mut object.key);
    }
    for prefix in common_prefixes.into_iter().flatten() {
        encode_opt(&mut prefix.prefix);
    }
}

fn encode_opt(value: &mut Option<String>) {
    if let Some(value) = value.as_mut() {
        *value = listing_encode(value);
    }
}

/// The content type stored when the client sends none, like MinIO (which
/// guesses from the extension and falls back to `application/octet-stream`).
/// Only the types this project handles are listed.
fn default_content_type(key: &str) -> &'static str {
    let name = key.rsplit('/').next().unwrap_or(key);
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "txt" | "log" => "text/plain",
        "json" => "application/json",
        "ndjson" | "jsonl" => "application/x-ndjson",
        "xml" => "application/xml",
        "html" | "htm" => "text/html",
        "gz" | "gzip" => "application/gzip",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

fn internal(what: &str, err: impl std::fmt::Display) -> S3Error {
    s3_error!(InternalError, "{what}: {err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_defaults() {
        assert_eq!(default_content_type("in/a.CSV"), "text/csv");
        assert_eq!(default_content_type("in/a.csv.gz"), "application/gzip");
        assert_eq!(
            default_content_type("in.d/readme"),
            "application/octet-stream"
        );
        assert_eq!(default_content_type("x.json"), "application/json");
    }

    #[test]
    fn encodes_listing_entries() {
        let mut contents = vec![Object {
            key: Some("a b/c+d".into()),
            ..Object::default()
        }];
        let mut prefixes = vec![CommonPrefix {
            prefix: Some("p q/".into()),
        }];
        encode_listing(Some(&mut contents), Some(&mut prefixes));
        assert_eq!(contents[0].key.as_deref(), Some("a+b/c%2Bd"));
        assert_eq!(prefixes[0].prefix.as_deref(), Some("p+q/"));
    }
}
