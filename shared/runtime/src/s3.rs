//! The S3 client, built from [`S3Config`](crate::config::S3Config).

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;

use crate::config::S3Config;

/// A client for AWS S3 or any S3-compatible endpoint. The SDK retries throttling and
/// transient errors itself (standard mode); landfall's own retries sit on top.
pub fn client(config: &S3Config) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .force_path_style(config.force_path_style)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .build(),
        );
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    if let (Some(key_id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        builder = builder.credentials_provider(Credentials::new(
            key_id.expose(),
            secret.expose(),
            None,
            None,
            "landfall-config",
        ));
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Whether an S3 SDK error is worth retrying (network, timeouts, 5xx, throttling).
pub fn is_transient<E>(error: &aws_sdk_s3::error::SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status >= 500
                || status == 429
                || matches!(error.code(), Some("SlowDown" | "RequestTimeout"))
        }
        _ => false,
    }
}
