//! A service binary run as its own process with its whole output in a log file, for tests
//! that read what it logged.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::binary_path;

/// A service binary whose stdout and stderr go to a file.
pub struct Logged {
    name: String,
    pub child: tokio::process::Child,
}

/// Starts the binary `name` with `vars` (and `RUST_LOG=debug`), its stdout and stderr in
/// `<logs>/<label>.log`.
pub fn spawn_logged(
    name: &str,
    label: &str,
    vars: &HashMap<String, String>,
    logs: &Path,
) -> Logged {
    let log = std::fs::File::create(logs.join(format!("{label}.log"))).expect("log file");
    let child = tokio::process::Command::new(binary_path(name))
        .env_clear()
        .envs(vars)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("starting {name}: {error}"));
    Logged {
        name: label.to_owned(),
        child,
    }
}

impl Logged {
    /// SIGTERM and wait for the exit.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
            panic!("{} did not exit after SIGTERM", self.name);
        }
    }
}
