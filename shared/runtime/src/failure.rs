//! Every error a handler returns is classified where it is made: transient (worth retrying:
//! the broker, database or S3 was briefly away) or permanent (retrying cannot help: the
//! message or the data is wrong). One [`RetryPolicy`] decides how transient ones are retried.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use backon::{BackoffBuilder, ExponentialBuilder, Retryable as _};

/// A classified failure.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
}

impl Failure {
    pub fn transient(error: impl Into<anyhow::Error>) -> Self {
        Failure::Transient(error.into())
    }
    pub fn permanent(error: impl Into<anyhow::Error>) -> Self {
        Failure::Permanent(error.into())
    }
    pub fn is_transient(&self) -> bool {
        matches!(self, Failure::Transient(_))
    }
    /// `transient` or `permanent`, for dead-letter headers and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Transient(_) => "transient",
            Failure::Permanent(_) => "permanent",
        }
    }
    /// The whole error chain on one line.
    pub fn reason(&self) -> String {
        match self {
            Failure::Transient(error) | Failure::Permanent(error) => format!("{error:#}"),
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        if is_transient_db_error(&error) {
            Failure::Transient(error.into())
        } else {
            Failure::Permanent(error.into())
        }
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        // The pool fails only when no connection can be had: the database is away.
        Failure::Transient(error.into())
    }
}

/// A database error with what was being done: transient when the connection or server was the
/// problem ([`is_transient_db_error`]), else permanent.
pub fn db(error: tokio_postgres::Error, doing: impl Into<String>) -> Failure {
    let transient = is_transient_db_error(&error);
    classified(error, doing, transient)
}

/// An S3 SDK error with what was being done: transient for network errors, timeouts, 5xx and
/// throttling ([`crate::s3::is_transient`]), else permanent.
pub fn s3<E>(error: SdkError<E, HttpResponse>, doing: impl Into<String>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = crate::s3::is_transient(&error);
    classified(error, doing, transient)
}

/// `error` with `doing` as its context, transient or permanent as the caller found it.
fn classified(
    error: impl std::error::Error + Send + Sync + 'static,
    doing: impl Into<String>,
    transient: bool,
) -> Failure {
    let error = anyhow::Error::new(error).context(doing.into());
    if transient {
        Failure::Transient(error)
    } else {
        Failure::Permanent(error)
    }
}

/// Whether a database error is worth retrying: lost connections, serialization failures,
/// deadlocks, a server shutting down or out of resources. Constraint and data errors are not.
pub fn is_transient_db_error(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // No SQLSTATE: an I/O or protocol error talking to the server.
        None => true,
        Some(state) => {
            let code = state.code();
            code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources
                || code.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
                || code == "40001" // serialization failure
                || code == "40P01" // deadlock detected
                || code == "55P03" // lock not available
        }
    }
}

/// The one retry policy: exponential backoff with full jitter between `min_delay` and
/// `max_delay`, at most `attempts` tries in all.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The backoff for `backon`'s `.retry(…)`.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter()
    }

    /// An endless backoff for reconnect loops that must never give up.
    pub fn forever(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .without_max_times()
            .with_jitter()
            .build()
    }

    /// One pause of a loop that never gives up (a lost connection): logs `error` as `what`
    /// with the next delay of `backoff` (from [`RetryPolicy::forever`]), then waits it;
    /// `false` when `shutdown` came first.
    pub async fn pause(
        &self,
        backoff: &mut (impl Iterator<Item = Duration> + Send),
        error: &anyhow::Error,
        what: &str,
        shutdown: &crate::Shutdown,
    ) -> bool {
        let log = |delay: Duration| {
            tracing::warn!(error = format!("{error:#}"), ?delay, "{what}");
        };
        self.pause_with(backoff, shutdown, log).await
    }

    /// The one backoff pause: takes the next delay of `backoff` (or `max_delay` when it has
    /// none), hands it to `log`, then waits it; `false` when `shutdown` came first.
    pub async fn pause_with(
        &self,
        backoff: &mut (impl Iterator<Item = Duration> + Send),
        shutdown: &crate::Shutdown,
        log: impl FnOnce(Duration),
    ) -> bool {
        let delay = backoff.next().unwrap_or(self.max_delay);
        log(delay);
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.wait() => false,
        }
    }

    /// Runs `attempt` until it succeeds, fails permanently, runs out of [`RetryPolicy::backoff`]
    /// or `shutdown` begins; each transient failure retried is logged with its delay.
    pub async fn retry_transient<T, Fut>(
        &self,
        shutdown: &crate::Shutdown,
        attempt: impl FnMut() -> Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, Failure>>,
    {
        attempt
            .retry(self.backoff())
            .when(|failure: &Failure| failure.is_transient() && !shutdown.is_triggered())
            .notify(|failure: &Failure, delay| {
                tracing::warn!(
                    reason = failure.reason(),
                    ?delay,
                    "transient failure; retrying"
                );
            })
            .await
    }
}
