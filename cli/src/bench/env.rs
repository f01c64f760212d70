//! The bench's world: a scratch environment (a database of its own, a broker prefix, the
//! embedded S3 server) and the service binaries started as processes against them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_s3::primitives::ByteStream;
use scratch::{Admin, Names, S3Spec, Scratch};

use super::{ACCESS_KEY, BUCKET, BenchArgs, SECRET_KEY};
use crate::services::Services;

/// The bench's private database, broker prefix and S3 server.
pub(super) struct BenchEnv {
    pub(super) scratch: Scratch,
    pub(super) work_dir: PathBuf,
    pub(super) s3: aws_sdk_s3::Client,
    pub(super) db: tokio_postgres::Client,
    pub(super) vars: HashMap<String, String>,
    pub(super) timeout: Duration,
}

impl BenchEnv {
    pub(super) async fn new(args: &BenchArgs) -> anyhow::Result<BenchEnv> {
        let admin = Admin::parse(&args.admin_url).context("--admin-url is not usable")?;
        let client = admin
            .connect()
            .await
            .context("connecting to PostgreSQL (is it running? see README)")?;
        let names = Names::unique("landfall_bench", "landfall-bench", "landfall-bench");
        let s3 = S3Spec {
            root: names.folder.join("s3"),
            access_key: ACCESS_KEY,
            secret_key: SECRET_KEY,
            region: "us-east-1",
            bucket: BUCKET,
        };
        let scratch = Scratch::create(&admin, &client, &args.amqp_url, names, s3).await?;
        match BenchEnv::around(scratch, args).await {
            Ok(env) => Ok(env),
            Err((scratch, error)) => {
                report_leftovers(scratch.cleanup().await);
                Err(error)
            }
        }
    }

    /// The bench's connection, S3 client and service variables in `scratch`.
    async fn around(
        scratch: Scratch,
        args: &BenchArgs,
    ) -> Result<BenchEnv, (Scratch, anyhow::Error)> {
        let made = async {
            let db = scratch.database.connect().await?;
            let s3 = scratch.s3.client().await?;
            let vars = crate::services::service_vars(&crate::services::LocalStack {
                servers: scratch.s3.servers(
                    &scratch.database.url,
                    &args.amqp_url,
                    &scratch.broker.prefix,
                ),
                datasets_dir: &args.datasets_dir,
            })?;
            anyhow::Ok((db, s3, vars))
        }
        .await;
        match made {
            Ok((db, s3, vars)) => Ok(BenchEnv {
                work_dir: scratch.folder.clone(),
                scratch,
                s3,
                db,
                vars,
                timeout: Duration::from_secs(args.timeout_s),
            }),
            Err(error) => Err((scratch, error)),
        }
    }

    /// Stops the S3 server, drops the database (or renames it to `keep`), the exchanges and
    /// queues, and the files.
    pub(super) async fn cleanup(self, keep: Option<&str>) {
        drop(self.db);
        if let Some(keep) = keep {
            let database = &self.scratch.database;
            let renamed = async {
                let admin = database.admin().connect().await?;
                admin
                    .batch_execute(&format!(
                        // Each session ended and waited for (up to 5 s), so the rename does
                        // not meet one still closing (the bench's own client was just dropped).
                        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
                          WHERE datname = {} AND pid <> pg_backend_pid();
                         ALTER DATABASE {} RENAME TO {}",
                        catalog::sql::quote_literal(&database.name),
                        runtime::db::quote_ident(&database.name),
                        runtime::db::quote_ident(keep)
                    ))
                    .await?;
                anyhow::Ok(())
            }
            .await;
            match renamed {
                Ok(()) => println!("Kept          database {keep} (drop it when done)"),
                Err(error) => eprintln!("could not keep the database as {keep}: {error:#}"),
            }
        }
        report_leftovers(self.scratch.cleanup().await);
    }

    pub(super) async fn start_services(&self, names: &[&'static str]) -> anyhow::Result<Services> {
        Services::start_only(&self.vars, &self.work_dir.join("logs"), names).await
    }

    /// Runs `check` every `every` until it is done; fails when a service exits, or with
    /// "<what it still waits for> within <timeout>" once `--timeout-s` has passed.
    pub(super) async fn poll<T, F, Fut>(
        &self,
        services: &mut Services,
        every: Duration,
        mut check: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Poll<T>>>,
    {
        let deadline = Instant::now() + self.timeout;
        loop {
            services.check_alive()?;
            let waiting = match check().await? {
                Poll::Done(value) => return Ok(value),
                Poll::Waiting(waiting) => waiting,
            };
            anyhow::ensure!(
                Instant::now() < deadline,
                "{waiting} within {:?}; see the logs in {}",
                self.timeout,
                self.work_dir.join("logs").display()
            );
            tokio::time::sleep(every).await;
        }
    }

    /// The five services of the pipeline, one process each.
    pub(super) async fn start_pipeline(&self) -> anyhow::Result<Services> {
        let names: Vec<&'static str> = runtime::Stage::ALL
            .iter()
            .map(|stage| stage.name())
            .collect();
        self.start_services(&names).await
    }

    pub(super) async fn put_file(&self, key: &str, path: &Path) -> anyhow::Result<()> {
        let body = ByteStream::from_path(path)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("text/csv")
            .body(body)
            .send()
            .await
            .with_context(|| format!("uploading {key}"))?;
        Ok(())
    }

    pub(super) async fn put_bytes(&self, key: &str, body: Vec<u8>) -> anyhow::Result<()> {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("text/csv")
            .body(ByteStream::from(body))
            .send()
            .await
            .with_context(|| format!("uploading {key}"))?;
        Ok(())
    }

    /// Runs `psql -c <command>` against the bench database; returns the wall time it took.
    pub(super) async fn psql(&self, command: &str) -> anyhow::Result<Duration> {
        self.psql_with(&["-c".as_ref(), command.as_ref()]).await
    }

    /// Runs psql with `args` against the bench database, stopping at the first error; returns
    /// the wall time it took.
    pub(super) async fn psql_with(&self, args: &[&OsStr]) -> anyhow::Result<Duration> {
        psql_at(&self.scratch.database.url, args).await
    }
}

/// Runs psql with `args` against the database at `url`, stopping at the first error; returns
/// the wall time it took.
pub(super) async fn psql_at(url: &str, args: &[&OsStr]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = tokio::process::Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .output()
        .await
        .context("running psql (is it installed?)")?;
    let took = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "psql {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(took)
}

/// What one look of [`BenchEnv::poll`] found.
pub(super) enum Poll<T> {
    Done(T),
    /// Not yet: what it still waits for, in words.
    Waiting(String),
}

/// What the cleanup could not remove.
fn report_leftovers(problems: Vec<String>) {
    for problem in problems {
        eprintln!("{problem}");
    }
}
