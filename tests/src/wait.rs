//! Waiting on conditions with a deadline, never sleeping and hoping.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `condition` until it returns `Some`, or fails the test after `deadline` saying `what`
/// was awaited and the last state seen.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_error = String::new();
    loop {
        match condition().await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(error) => last_error = format!("{error:#}"),
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what} (last error: {last_error})");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
