//! Every error a handler returns is classified where it is made: transient (worth retrying:
//! the broker, database or S3 was briefly away) or permanent (retrying cannot help: the
//! message or the data is wrong). One [`RetryPolicy`] decides how transient ones are retried.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

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
        let delay = backoff.next().unwrap_or(self.max_delay);
        tracing::warn!(error = format!("{error:#}"), ?delay, "{what}");
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.wait() => false,
        }
    }
}
