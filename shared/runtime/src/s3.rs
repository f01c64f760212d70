//! The S3 client, built from [`S3Config`](crate::config::S3Config), and the AWS identity (region
//! and credentials) it shares with the ingester's SQS client.
//!
//! With static keys (`LANDFALL_S3_ACCESS_KEY_ID` / `LANDFALL_S3_SECRET_ACCESS_KEY`, e.g. MinIO or
//! the embedded server) those keys are used and the region is `LANDFALL_S3_REGION` or
//! `us-east-1`; nothing else is read. Without them, the AWS SDK's default chains apply:
//! credentials from the environment (`AWS_ACCESS_KEY_ID`…), the shared profile (`~/.aws`), a web
//! identity token (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`: IRSA on EKS), container
//! credentials (`AWS_CONTAINER_CREDENTIALS_FULL_URI` / `_RELATIVE_URI`: EKS Pod Identity, ECS)
//! and EC2 instance metadata, in that order; the region from `LANDFALL_S3_REGION`, else
//! `AWS_REGION`, the profile or instance metadata. The credentials are resolved once at start,
//! so a service that has none stops with a message naming every source it tried.

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::ProvideCredentials as _;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};

use crate::config::S3Config;

/// The region used with static keys when `LANDFALL_S3_REGION` is not set, and with an endpoint
/// override when no region is found (S3-compatible servers rarely care).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Region and credentials for the AWS clients of a process, resolved at start (see the module
/// documentation for the order). The credentials provider refreshes temporary credentials
/// (web identity, container, instance metadata) by itself before they expire.
pub async fn sdk_config(config: &S3Config) -> anyhow::Result<SdkConfig> {
    if let (Some(key_id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        let credentials = Credentials::new(
            key_id.expose(),
            secret.expose(),
            None,
            None,
            "landfall-config",
        );
        let region = config.region.as_deref().unwrap_or(DEFAULT_REGION);
        tracing::debug!(
            region,
            "AWS credentials: static keys (LANDFALL_S3_ACCESS_KEY_ID)"
        );
        return Ok(SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build());
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let mut sdk = loader.load().await;
    let region = match sdk.region() {
        Some(region) => region.to_string(),
        None if config.endpoint.is_some() => {
            sdk = sdk
                .into_builder()
                .region(Region::new(DEFAULT_REGION))
                .build();
            DEFAULT_REGION.to_owned()
        }
        None => anyhow::bail!(
            "no AWS region: set LANDFALL_S3_REGION (or AWS_REGION, or a region in the AWS \
             profile); none was found in the environment, the profile or instance metadata"
        ),
    };
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| anyhow::anyhow!("the AWS SDK configured no credentials provider"))?;
    let credentials = provider.provide_credentials().await.map_err(|error| {
        anyhow::anyhow!(
            "no AWS credentials: LANDFALL_S3_ACCESS_KEY_ID and LANDFALL_S3_SECRET_ACCESS_KEY are \
             not set, and the default chain (environment AWS_ACCESS_KEY_ID, shared profile, web \
             identity token AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, container credentials \
             AWS_CONTAINER_CREDENTIALS_FULL_URI, EC2 instance metadata) gave none: {}",
            DisplayErrorContext(&error)
        )
    })?;
    tracing::info!(
        region,
        source = credential_source(&credentials),
        temporary = credentials.session_token().is_some(),
        "AWS credentials from the default chain"
    );
    Ok(sdk)
}

/// Which provider of the default chain gave the credentials, for the start-up log.
fn credential_source(credentials: &Credentials) -> &'static str {
    let features = credentials
        .get_property::<Vec<AwsCredentialFeature>>()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let has = |wanted: &[AwsCredentialFeature]| features.iter().any(|f| wanted.contains(f));
    use AwsCredentialFeature as F;
    if has(&[
        F::CredentialsProfileStsWebIdToken,
        F::CredentialsEnvVarsStsWebIdToken,
        F::CredentialsStsAssumeRoleWebId,
    ]) {
        "web identity token"
    } else if has(&[F::CredentialsHttp]) {
        "container credentials"
    } else if has(&[F::CredentialsImds]) {
        "instance metadata"
    } else if has(&[F::CredentialsStsAssumeRole]) {
        "assumed role (profile)"
    } else if has(&[F::CredentialsProfile]) {
        "shared profile"
    } else if has(&[F::CredentialsEnvVars]) {
        "environment"
    } else {
        "default chain"
    }
}

/// A client for AWS S3 or any S3-compatible endpoint, with the identity of [`sdk_config`]. The
/// SDK retries throttling and transient errors itself (standard mode); landfall's own retries
/// sit on top.
pub async fn client(config: &S3Config) -> anyhow::Result<aws_sdk_s3::Client> {
    Ok(client_with(&sdk_config(config).await?, config))
}

/// An S3 client of an identity already resolved (shared with other AWS clients).
pub fn client_with(sdk: &SdkConfig, config: &S3Config) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(sdk)
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
