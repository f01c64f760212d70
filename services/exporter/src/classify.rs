//! Failures classified where they are made, with what was being done in the message.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use runtime::Failure;

/// A database error: transient when the connection or server was the problem.
pub use runtime::failure::db;

/// An S3 SDK error: transient for network errors, timeouts, 5xx and throttling. A retry of
/// the whole export is safe because every object is written to the same key again.
pub fn s3<E>(error: SdkError<E, HttpResponse>, doing: impl Into<String>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = runtime::s3::is_transient(&error);
    let error = anyhow::Error::new(error).context(doing.into());
    if transient {
        Failure::Transient(error)
    } else {
        Failure::Permanent(error)
    }
}
