//! The bench's world: a database of its own, a broker prefix, the embedded S3 server, and the
//! service binaries started as processes against them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_sdk_s3::primitives::ByteStream;
use s3dev::{NotifyConfig, S3DevConfig, S3DevServer};

use super::{ACCESS_KEY, BUCKET, BenchArgs, SECRET_KEY};
use crate::demo::Services;
use crate::scratch::{ScratchDatabase, with_dbname};

/// The bench's private database, broker prefix and S3 server.
pub(super) struct BenchEnv {
    pub(super) database: ScratchDatabase,
    pub(super) database_url: String,
    pub(super) amqp_url: String,
    pub(super) prefix: String,
    pub(super) endpoint: String,
    pub(super) work_dir: PathBuf,
    pub(super) server: S3DevServer,
    pub(super) s3: aws_sdk_s3::Client,
    pub(super) db: tokio_postgres::Client,
    pub(super) vars: HashMap<String, String>,
    pub(super) timeout: Duration,
}

impl BenchEnv {
    pub(super) async fn new(args: &BenchArgs) -> anyhow::Result<BenchEnv> {
        let admin =
            runtime::db::PgTarget::parse(&args.admin_url).context("--admin-url is not usable")?;
        let client = admin
            .connect()
            .await
            .context("connecting to PostgreSQL (is it running? see README)")?;
        let name = ScratchDatabase::unique_name("landfall_bench");
        let suffix = name.trim_start_matches("landfall_bench_").to_owned();
        let database = ScratchDatabase::create(&admin, &client, name).await?;
        let prefix = format!("landfall-bench-{suffix}");
        let work_dir = std::env::temp_dir().join(format!("landfall-bench-{suffix}"));
        let made = async {
            std::fs::create_dir_all(&work_dir)?;
            let db = database.connect().await?;
            let server = start_s3(&work_dir, &args.amqp_url, &prefix).await?;
            anyhow::Ok((db, server))
        }
        .await;
        let (db, server) = match made {
            Ok(made) => made,
            Err(error) => {
                drop_everything(&database, &args.amqp_url, &prefix, &work_dir).await;
                return Err(error);
            }
        };
        let database_url = with_dbname(&args.admin_url, &database.name);
        let endpoint = server.endpoint_url();
        let vars = crate::demo::service_vars(&crate::demo::LocalStack {
            database_url: &database_url,
            amqp_url: &args.amqp_url,
            amqp_prefix: &prefix,
            s3_endpoint: &endpoint,
            access_key: ACCESS_KEY,
            secret_key: SECRET_KEY,
            bucket: BUCKET,
            datasets_dir: &args.datasets_dir,
        })?;
        let s3_config =
            runtime::S3Config::from_env(&runtime::Env::from_fn(|name| vars.get(name).cloned()))?;
        let s3 = runtime::s3::client(&s3_config).await?;
        let env = BenchEnv {
            database,
            database_url,
            amqp_url: args.amqp_url.clone(),
            prefix,
            endpoint,
            work_dir,
            server,
            s3,
            db,
            vars,
            timeout: Duration::from_secs(args.timeout_s),
        };
        if let Err(error) = env.s3.create_bucket().bucket(BUCKET).send().await {
            env.cleanup().await;
            bail!("creating the bench bucket: {error:?}");
        }
        Ok(env)
    }

    /// Stops the S3 server, drops the database, the exchanges and queues, and the files.
    pub(super) async fn cleanup(self) {
        self.server.shutdown().await;
        drop(self.db);
        drop_everything(&self.database, &self.amqp_url, &self.prefix, &self.work_dir).await;
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
        let started = Instant::now();
        let output = tokio::process::Command::new("psql")
            .arg(&self.database_url)
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
}

/// What one look of [`BenchEnv::poll`] found.
pub(super) enum Poll<T> {
    Done(T),
    /// Not yet: what it still waits for, in words.
    Waiting(String),
}

/// The embedded S3 server in `work_dir`, notifying `<prefix>.s3` of every object created.
async fn start_s3(work_dir: &Path, amqp_url: &str, prefix: &str) -> anyhow::Result<S3DevServer> {
    S3DevServer::start(S3DevConfig {
        root: work_dir.join("s3"),
        listen: "127.0.0.1:0".parse()?,
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        region: "us-east-1".into(),
        notify: Some(NotifyConfig {
            amqp_url: amqp_url.to_owned(),
            exchange: format!("{prefix}.s3"),
            routing_key: format!("{BUCKET}.created"),
        }),
    })
    .await
    .context("starting the embedded S3 server (is RabbitMQ running? see README)")
}

async fn drop_everything(
    database: &ScratchDatabase,
    amqp_url: &str,
    prefix: &str,
    work_dir: &Path,
) {
    if let Err(error) = database.drop().await {
        eprintln!("could not drop database {}: {error:#}", database.name);
    }
    let secret = runtime::Secret::new(amqp_url);
    if let Ok(connection) = runtime::broker::connect(&secret, "landfall-bench-cleanup").await {
        let topology = runtime::broker::Topology {
            prefix: prefix.to_owned(),
            notify_exchange: format!("{prefix}.s3"),
        };
        if let Ok(channel) = connection.create_channel().await {
            if let Err(error) = runtime::broker::delete_topology(&channel, &topology).await {
                eprintln!("could not delete the exchanges and queues of {prefix}: {error}");
            }
            let _ = channel.close(200, "bench done".into()).await;
        }
        let _ = connection.close(200, "bench done".into()).await;
    }
    let _ = std::fs::remove_dir_all(work_dir);
}
