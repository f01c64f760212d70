//! The service binaries (next to this one) as child processes, for the demo and the benchmarks:
//! started with the variables of a local stack, waited for until ready, checked, stopped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The five services as child processes, logging to files.
pub(crate) struct Services {
    children: Vec<(&'static str, tokio::process::Child, PathBuf)>,
}

impl Services {
    pub(crate) async fn start(
        vars: &HashMap<String, String>,
        log_dir: &Path,
    ) -> anyhow::Result<Services> {
        let services = Services::start_only(vars, log_dir, &services_names()).await?;
        println!(
            "Services      {} (separate processes, ready)",
            services_names().join(", ")
        );
        Ok(services)
    }

    /// Starts the named services (binaries next to this one) and waits until each is ready.
    pub(crate) async fn start_only(
        vars: &HashMap<String, String>,
        log_dir: &Path,
        names: &[&'static str],
    ) -> anyhow::Result<Services> {
        std::fs::create_dir_all(log_dir)?;
        let bin_dir = std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut children = Vec::new();
        let mut ports = Vec::new();
        for &service in names {
            let binary = bin_dir.join(service);
            anyhow::ensure!(
                binary.exists(),
                "{} is missing: build the services first (cargo build --workspace --bins)",
                binary.display()
            );
            let port = runtime::health::unused_local_port()?;
            let log_path = log_dir.join(format!("{service}.log"));
            let log = std::fs::File::create(&log_path)?;
            let child = tokio::process::Command::new(&binary)
                .envs(vars)
                .env("LANDFALL_HEALTH_ADDR", format!("127.0.0.1:{port}"))
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                )
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            children.push((service, child, log_path));
            ports.push(port);
        }
        let mut services = Services { children };
        let deadline = Instant::now() + Duration::from_secs(60);
        for (index, port) in ports.iter().enumerate() {
            while !runtime::health::is_ready(&format!("127.0.0.1:{port}")).await {
                services.check_alive()?;
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{} did not become ready within a minute; see its log",
                    names[index]
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(services)
    }

    /// The process id of a running service (the first of that name).
    pub(crate) fn pid(&self, service: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(name, _, _)| *name == service)
            .and_then(|(_, child, _)| child.id())
    }

    /// An error naming the service that exited, with the end of its log: the lines before the
    /// stack backtrace of its error, if it printed one (they say what failed).
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        for (service, child, log) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let text = std::fs::read_to_string(&*log).unwrap_or_default();
                let before_backtrace = text.split("\nStack backtrace:").next().unwrap_or_default();
                let tail: Vec<&str> = before_backtrace
                    .lines()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                bail!(
                    "{service} exited ({status}); the end of {}:\n{}",
                    log.display(),
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to each, then wait for the drain.
    pub(crate) async fn stop(mut self) {
        for (_, child, _) in &self.children {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
        for (service, child, _) in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .is_err()
            {
                eprintln!("{service} did not stop within 30 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

/// Where the locally started services find their servers and files.
pub(crate) struct LocalStack<'a> {
    pub servers: scratch::ServiceServers<'a>,
    pub datasets_dir: &'a Path,
}

/// The environment the demo's and the benchmarks' service processes run with.
pub(crate) fn service_vars(stack: &LocalStack<'_>) -> anyhow::Result<HashMap<String, String>> {
    let mut vars = stack.servers.vars();
    vars.extend([
        (
            "LANDFALL_DATASETS_DIR",
            absolute(stack.datasets_dir)?.display().to_string(),
        ),
        ("LANDFALL_OUTBOX_POLL_MS", "250".into()),
        ("LANDFALL_RECONCILE_INTERVAL_S", "0".into()),
    ]);
    Ok(vars
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect())
}

pub(crate) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    })
}

/// The stages, in pipeline order: one binary each.
pub(crate) fn services_names() -> Vec<&'static str> {
    runtime::Stage::ALL
        .iter()
        .map(|stage| stage.name())
        .collect()
}
