//! Where the SQS source polls ([`SqsConfig`], from the environment) and its client.

use std::time::Duration;

use runtime::{ConfigError, Env};

/// Where and how to long-poll SQS. Region and credentials are those of S3 (`LANDFALL_S3_REGION`,
/// `LANDFALL_S3_ACCESS_KEY_ID` / `_SECRET_ACCESS_KEY`, or the AWS default chains when those are
/// not set): a bucket can only notify a queue in its own region, and the ingester has one
/// identity.
#[derive(Debug, Clone)]
pub struct SqsConfig {
    /// `LANDFALL_SQS_QUEUE_URL`; setting it turns the SQS source on.
    pub queue_url: String,
    /// `LANDFALL_SQS_ENDPOINT`: a custom endpoint (moto, LocalStack); unset means AWS.
    pub endpoint: Option<String>,
    /// `LANDFALL_SQS_WAIT_TIME_S` (0–20, default 20): how long one receive waits for messages.
    pub wait_time: Duration,
    /// `LANDFALL_SQS_MAX_MESSAGES` (1–10, default 10): messages per receive.
    pub max_messages: i32,
    /// `LANDFALL_SQS_VISIBILITY_TIMEOUT_S` (1–43200, default 60): how long a received message
    /// stays hidden; extended every half of it while the message is still being worked on.
    pub visibility_timeout: Duration,
}

impl SqsConfig {
    /// `None` when `LANDFALL_SQS_QUEUE_URL` is not set (the SQS source is off).
    pub fn from_env(env: &Env<'_>) -> Result<Option<SqsConfig>, ConfigError> {
        let Some(queue_url) = env.get("LANDFALL_SQS_QUEUE_URL") else {
            return Ok(None);
        };
        let url = |variable: &str, value: &str| {
            if value.starts_with("http://") || value.starts_with("https://") {
                Ok(())
            } else {
                Err(ConfigError {
                    variable: variable.to_owned(),
                    problem: format!("'{value}' must start with http:// or https://"),
                })
            }
        };
        url("LANDFALL_SQS_QUEUE_URL", &queue_url)?;
        let endpoint = env.get("LANDFALL_SQS_ENDPOINT");
        if let Some(endpoint) = &endpoint {
            url("LANDFALL_SQS_ENDPOINT", endpoint)?;
        }
        Ok(Some(SqsConfig {
            queue_url: queue_url.trim().to_owned(),
            endpoint,
            wait_time: Duration::from_secs(env.number("LANDFALL_SQS_WAIT_TIME_S", 20, 0, 20)?),
            max_messages: env.number("LANDFALL_SQS_MAX_MESSAGES", 10, 1, 10)? as i32,
            visibility_timeout: Duration::from_secs(env.number(
                "LANDFALL_SQS_VISIBILITY_TIMEOUT_S",
                60,
                1,
                43_200,
            )?),
        }))
    }

    /// The queue's name, the last segment of its URL (for logs and span names).
    pub fn queue_name(&self) -> &str {
        self.queue_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(&self.queue_url)
    }
}

/// An SQS client with the identity the ingester's S3 client has ([`runtime::s3::sdk_config`]:
/// static keys, or the AWS default chains), an optional endpoint, the SDK's standard retries.
/// No read timeout: a long poll waits up to 20 s.
pub fn client(config: &SqsConfig, sdk: &runtime::s3::SdkConfig) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::retry::RetryConfig;
    use aws_sdk_sqs::config::timeout::TimeoutConfig;
    let mut builder = aws_sdk_sqs::config::Builder::from(sdk)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_sqs::Client::from_conf(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Option<SqsConfig>, ConfigError> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SqsConfig::from_env(&Env::from_fn(|name| vars.get(name).cloned()))
    }

    #[test]
    fn the_source_is_off_without_a_queue_url() {
        assert!(load(&[]).unwrap().is_none());
        assert!(
            load(&[("LANDFALL_SQS_WAIT_TIME_S", "5")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn defaults_and_the_queue_name() {
        let config = load(&[(
            "LANDFALL_SQS_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/landfall-notifications",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(config.wait_time, Duration::from_secs(20));
        assert_eq!(config.max_messages, 10);
        assert_eq!(config.visibility_timeout, Duration::from_secs(60));
        assert_eq!(config.endpoint, None);
        assert_eq!(config.queue_name(), "landfall-notifications");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let queue = ("LANDFALL_SQS_QUEUE_URL", "http://127.0.0.1:5000/123/q");
        let error = load(&[queue, ("LANDFALL_SQS_WAIT_TIME_S", "21")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_SQS_WAIT_TIME_S");
        let error = load(&[queue, ("LANDFALL_SQS_MAX_MESSAGES", "11")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_SQS_MAX_MESSAGES");
        let error = load(&[queue, ("LANDFALL_SQS_VISIBILITY_TIMEOUT_S", "0")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_SQS_VISIBILITY_TIMEOUT_S");
        let error = load(&[queue, ("LANDFALL_SQS_ENDPOINT", "localhost:5000")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_SQS_ENDPOINT");
        let error = load(&[("LANDFALL_SQS_QUEUE_URL", "landfall-notifications")]).unwrap_err();
        assert_eq!(error.variable, "LANDFALL_SQS_QUEUE_URL");
    }
}
