//! One test's private world: database, broker names, S3 server, and services to run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use runtime::{CommonConfig, Env, Shutdown};
use scratch::batch::BatchStanding;
use scratch::{Admin, Leftovers, Names, S3Spec, Scratch, ScratchDatabase, ScratchS3};
use tokio::task::JoinHandle;

use crate::spy::EventSpy;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const ACCESS_KEY: &str = "landfall-test";
const SECRET_KEY: &str = "landfall-test-secret";
pub const BUCKET: &str = "lake";

/// A service running inside the test process.
pub struct ServiceHandle {
    trigger: runtime::shutdown::ShutdownTrigger,
    task: JoinHandle<anyhow::Result<()>>,
}

impl ServiceHandle {
    /// Triggers a graceful shutdown and waits for the drain.
    pub async fn stop(self) {
        self.trigger.trigger();
        let result = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        result
            .expect("service drained in time")
            .expect("service task")
            .expect("service ran cleanly");
    }
}

/// A service binary running as its own process (so it can be killed).
pub struct ChildService {
    pub child: tokio::process::Child,
}

impl ChildService {
    /// SIGKILL: no drain, no cleanup, like a node dying.
    pub async fn kill(mut self) {
        self.child
            .kill()
            .await
            .expect("killing the service process");
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running child has a pid");
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill -TERM");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("service exited after SIGTERM")
            .expect("waiting for the service")
    }
}

/// Which PostgreSQL and RabbitMQ a [`TestEnv`] uses: by default the plaintext servers every
/// machine of this kind runs; a TLS test gives its own (see [`crate::tls`]).
#[derive(Debug, Clone)]
pub struct Servers {
    /// `postgres://user[:password]@host:port`, without a database.
    pub postgres: String,
    /// The URL's query (`sslmode=…&sslrootcert=…`), empty for none.
    pub postgres_params: String,
    pub amqp_url: String,
}

impl Default for Servers {
    fn default() -> Servers {
        Servers {
            postgres: "postgres://postgres@127.0.0.1:5432".into(),
            postgres_params: String::new(),
            amqp_url: AMQP_URL.into(),
        }
    }
}

impl Servers {
    /// The URL of one database on this PostgreSQL.
    pub fn database_url(&self, database: &str) -> String {
        if self.postgres_params.is_empty() {
            format!("{}/{database}", self.postgres)
        } else {
            format!("{}/{database}?{}", self.postgres, self.postgres_params)
        }
    }
}

/// The test's own database, exchange/queue prefix and S3 server: a [`Scratch`] environment.
pub struct TestEnv {
    pub suffix: String,
    pub database: String,
    pub database_url: String,
    pub amqp_url: String,
    pub prefix: String,
    pub s3_server: Option<ScratchS3>,
    pub s3: aws_sdk_s3::Client,
    pub db: tokio_postgres::Client,
    pub servers: Servers,
    scratch_database: ScratchDatabase,
    leftovers: Leftovers,
    cleaned: bool,
}

impl TestEnv {
    /// Creates the database, starts the S3 server and creates the bucket.
    pub async fn new() -> TestEnv {
        TestEnv::with_servers(Servers::default()).await
    }

    /// [`TestEnv::new`] on the given PostgreSQL and RabbitMQ.
    pub async fn with_servers(servers: Servers) -> TestEnv {
        let admin = Admin::parse(&servers.database_url("postgres")).expect("PostgreSQL URL");
        let client = admin
            .connect()
            .await
            .unwrap_or_else(|error| panic!("PostgreSQL (see .ci/run): {error:#}"));
        let names = Names::unique("landfall_test", "lft", "landfall-s3");
        let s3 = S3Spec {
            root: names.folder.clone(),
            access_key: ACCESS_KEY,
            secret_key: SECRET_KEY,
            region: "us-east-1",
            bucket: BUCKET,
        };
        let scratch = Scratch::create(&admin, &client, &servers.amqp_url, names, s3)
            .await
            .unwrap_or_else(|error| panic!("the test's database and S3 server: {error:#}"));
        let leftovers = scratch.leftovers();
        let Scratch {
            suffix,
            database,
            broker,
            s3: server,
            ..
        } = scratch;
        let db = database.connect().await.expect("test database");
        let s3 = server.client().await.expect("S3 client");
        TestEnv {
            suffix,
            database: database.name.clone(),
            database_url: database.url.clone(),
            amqp_url: servers.amqp_url.clone(),
            prefix: broker.prefix,
            s3_server: Some(server),
            s3,
            db,
            servers,
            scratch_database: database,
            leftovers,
            cleaned: false,
        }
    }

    /// The environment variables a service of this test runs with.
    pub fn vars(&self) -> HashMap<String, String> {
        let server = self.s3_server.as_ref().expect("S3 server running");
        let mut vars = server
            .servers(&self.database_url, &self.amqp_url, &self.prefix)
            .vars();
        vars.extend([
            ("LANDFALL_DATABASE_POOL_SIZE", "4".into()),
            (
                "LANDFALL_DATASETS_DIR",
                datasets_dir().display().to_string(),
            ),
            ("LANDFALL_HEALTH_ADDR", "127.0.0.1:0".into()),
            ("LANDFALL_RETRY_MIN_DELAY_MS", "20".into()),
            ("LANDFALL_RETRY_MAX_DELAY_MS", "500".into()),
            ("LANDFALL_RETRY_ATTEMPTS", "4".into()),
            ("LANDFALL_OUTBOX_POLL_MS", "200".into()),
            ("LANDFALL_SHUTDOWN_GRACE_MS", "20000".into()),
            // Every file, however small, is COPYed over two connections, so every test covers
            // that path; a test of the one-connection path overrides it.
            ("LANDFALL_STAGE_PARALLEL_MIN_BYTES", "0".into()),
        ]);
        vars.into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    fn env_with<'a>(&self, overrides: &'a [(&'a str, &'a str)]) -> HashMap<String, String> {
        let mut vars = self.vars();
        for (name, value) in overrides {
            vars.insert((*name).to_owned(), (*value).to_owned());
        }
        vars
    }

    /// The datasets the services of this environment load (the bundled ones).
    pub fn datasets(&self) -> catalog::Datasets {
        catalog::Datasets::load(&self.common_config("test").datasets_dir).expect("bundled datasets")
    }

    /// A connection of the test database's owner, once it has migrated the database as a
    /// service does at start.
    pub async fn migrated_client(&self) -> tokio_postgres::Client {
        self.scratch_database
            .migrated(&self.datasets())
            .await
            .expect("migrating the test database")
    }

    pub fn common_config(&self, service: &str) -> CommonConfig {
        let vars = self.vars();
        CommonConfig::from_env(&Env::from_fn(|name| vars.get(name).cloned()), service)
            .expect("valid test configuration")
    }

    /// Starts the ingester in-process.
    pub fn start_ingester(&self, overrides: &[(&str, &str)]) -> ServiceHandle {
        let vars = self.env_with(overrides);
        let config = <ingester::IngesterConfig as runtime::service::ServiceConfig>::from_env(
            &Env::from_fn(|name| vars.get(name).cloned()),
        )
        .expect("valid ingester configuration");
        spawn_service(move |shutdown| ingester::run(config, shutdown))
    }

    /// Starts the stager in-process.
    pub fn start_stager(&self, overrides: &[(&str, &str)]) -> ServiceHandle {
        let vars = self.env_with(overrides);
        let config = <stager::StagerConfig as runtime::service::ServiceConfig>::from_env(
            &Env::from_fn(|name| vars.get(name).cloned()),
        )
        .expect("valid stager configuration");
        spawn_service(move |shutdown| stager::run(config, shutdown))
    }

    /// Starts the transformer in-process.
    pub fn start_transformer(&self, overrides: &[(&str, &str)]) -> ServiceHandle {
        let vars = self.env_with(overrides);
        let config =
            CommonConfig::from_env(&Env::from_fn(|name| vars.get(name).cloned()), "transformer")
                .expect("valid transformer configuration");
        spawn_service(move |shutdown| transformer::run(config, shutdown))
    }

    /// An object's body from the test's S3 server, as text.
    pub async fn get_text(&self, key: &str) -> String {
        String::from_utf8(self.get_bytes(key).await).expect("UTF-8 object")
    }

    /// An object's body from the test's S3 server.
    pub async fn get_bytes(&self, key: &str) -> Vec<u8> {
        let object = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|error| panic!("getting {key}: {error:?}"));
        let bytes = object
            .body
            .collect()
            .await
            .expect("object body")
            .into_bytes();
        bytes.to_vec()
    }

    /// Runs the `landfall` command with this test's configuration; returns its output.
    pub async fn landfall(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(binary_path("landfall"))
            .args(args)
            .env_clear()
            .envs(self.vars())
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("running landfall")
    }

    /// Runs the `landfall` command as [`TestEnv::landfall`] does and fails the test unless it
    /// succeeds (the message shows its arguments, standard output and standard error); returns
    /// its standard output.
    pub async fn landfall_ok(&self, args: &[&str]) -> String {
        let output = self.landfall(args).await;
        assert!(
            output.status.success(),
            "landfall {}:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("landfall's standard output is UTF-8")
    }

    /// Runs a service binary (built by the same `cargo test`) as a child process.
    pub fn spawn_binary(&self, name: &str, overrides: &[(&str, &str)]) -> ChildService {
        let binary = binary_path(name);
        let child = tokio::process::Command::new(&binary)
            .env_clear()
            .envs(self.env_with(overrides))
            .env("RUST_LOG", "warn")
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", binary.display()));
        ChildService { child }
    }

    /// Puts an object; its notification is in RabbitMQ when this returns.
    pub async fn put(&self, key: &str, body: impl Into<Vec<u8>>) -> String {
        let output = self
            .s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.into()))
            .send()
            .await
            .unwrap_or_else(|error| panic!("putting {key}: {error:?}"));
        output
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned()
    }

    /// `landing/ecommerce/ingestion_date=<date>/<file>`.
    pub fn landing_key(date: &str, file: &str) -> String {
        format!("landing/ecommerce/ingestion_date={date}/{file}")
    }

    pub fn set_notifications(&self, enabled: bool) {
        self.s3_server
            .as_ref()
            .expect("S3 server running")
            .set_notifications_enabled(enabled);
    }

    /// Publishes raw bytes to an exchange of this test (`events`, `s3`, …).
    pub async fn publish_raw(
        &self,
        exchange_suffix: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) {
        let connection =
            runtime::broker::connect_with(&self.amqp_url, lapin::ConnectionProperties::default())
                .await
                .unwrap();
        let channel = runtime::broker::confirm_channel(&connection).await.unwrap();
        let exchange = format!("{}.{exchange_suffix}", self.prefix);
        channel
            .basic_publish(
                exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        connection.close(200, "done".into()).await.ok();
    }

    pub async fn spy(&self) -> EventSpy {
        EventSpy::new(&self.amqp_url, &format!("{}.events", self.prefix))
            .await
            .expect("event spy")
    }

    /// Runs a query returning one i64.
    pub async fn count(&self, sql: &str) -> i64 {
        self.db
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
            .get(0)
    }

    /// Runs a query and returns every row as text, NULL shown as `NULL`.
    pub async fn query_text(&self, sql: &str) -> Vec<Vec<String>> {
        self.db
            .query(sql, &[])
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| {
                        row.get::<_, Option<String>>(index)
                            .unwrap_or_else(|| "NULL".into())
                    })
                    .collect()
            })
            .collect()
    }

    /// A count for a wait condition: an error (e.g. the table is not there yet) is not a failure.
    pub async fn try_count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(self.db.query_one(sql, &[]).await?.get(0))
    }

    /// Waits until `sql` counts `expected`, failing the test after `deadline`.
    pub async fn wait_count(&self, what: &str, sql: &str, expected: i64, deadline: Duration) {
        crate::wait::wait_until(what, deadline, || async {
            Ok((self.try_count(sql).await? == expected).then_some(()))
        })
        .await
    }

    /// Records file `file_id` as the staged file of `dataset`'s `source` for the batch dated
    /// `date`, as the stager does once it has loaded a file: a ledger row (made when no file
    /// has that id) and the batch's row in `ops.staged_sources`. For tests that write staging
    /// rows with SQL: rows in `staging_rows.<table>` show in the view `staging.<table>` only
    /// while their `_file_id` is a staged file of the source (migration 0013).
    pub async fn stage_file(&self, dataset: &str, source: &str, date: &str, file_id: i64) {
        let key = format!("landing/{dataset}/ingestion_date={date}/{source}.csv");
        let version = format!("v{file_id}");
        self.db
            .execute(
                "INSERT INTO ops.files (file_id, bucket, key, version, etag, size_bytes, dataset,
                                        source, ingestion_date, state, rows_loaded, rows_rejected,
                                        discovered_by, finished_at)
                 VALUES ($1, $2, $3, $4, $4, 0, $5, $6, $7::text::date, 'staged', 0, 0,
                         'notification', clock_timestamp())
                 ON CONFLICT (file_id) DO NOTHING",
                &[&file_id, &BUCKET, &key, &version, &dataset, &source, &date],
            )
            .await
            .unwrap_or_else(|error| panic!("ledger row of file {file_id}: {error}"));
        // Ids chosen here: the ledger's sequence moves past them for the files that land later.
        self.db
            .execute(
                "SELECT setval(pg_get_serial_sequence('ops.files', 'file_id'), max(file_id))
                   FROM ops.files",
                &[],
            )
            .await
            .expect("moving the ledger's sequence on");
        self.db
            .execute(
                "INSERT INTO ops.staged_sources (dataset, ingestion_date, source, file_id, rows_loaded)
                 VALUES ($1, $2::text::date, $3, $4, 0)
                 ON CONFLICT (dataset, ingestion_date, source)
                 DO UPDATE SET file_id = EXCLUDED.file_id, staged_at = clock_timestamp()",
                &[&dataset, &date, &source, &file_id],
            )
            .await
            .unwrap_or_else(|error| panic!("staging file {file_id}: {error}"));
    }

    /// Waits until PostgreSQL shows the stager's COPY into `staging_rows.orders` under way (rows
    /// copied, nothing committed yet). A large file is COPYed over several connections: one
    /// progress row each.
    pub async fn wait_for_copy_under_way(&self, deadline: Duration) {
        crate::wait::wait_until("the stager's COPY to be under way", deadline, || async {
            let copied: Option<i64> = self
                .db
                .query_one(
                    "SELECT max(tuples_processed) FROM pg_stat_progress_copy
                      WHERE datname = current_database() AND relid = 'staging_rows.orders'::regclass",
                    &[],
                )
                .await?
                .get(0);
            if let Some(copied) = copied.filter(|&copied| copied > 0) {
                return Ok(Some(copied));
            }
            // Not under way: say where the file is, for the timeout message.
            let files = self
                .db
                .query("SELECT state FROM ops.files", &[])
                .await?
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<_>>();
            anyhow::bail!("no COPY under way; the ledger's files are in states {files:?}")
        })
        .await;
    }

    /// Takes one message off a queue of this test (e.g. `stager.dlq`), acking it; an error
    /// while the queue does not exist yet.
    pub async fn take_message(
        &self,
        queue_suffix: &str,
    ) -> anyhow::Result<Option<lapin::message::BasicGetMessage>> {
        let connection =
            runtime::broker::connect_with(&self.amqp_url, lapin::ConnectionProperties::default())
                .await?;
        let channel = connection.create_channel().await?;
        let queue = format!("{}.{queue_suffix}", self.prefix);
        let message = channel
            .basic_get(
                queue.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await;
        connection.close(200, "done".into()).await.ok();
        Ok(message?)
    }

    /// Drops the database, the queues and exchanges, and the S3 files.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        if let Some(server) = self.s3_server.take() {
            server.shutdown().await;
        }
        report_leftovers(self.leftovers.remove().await);
    }
}

impl Drop for TestEnv {
    /// A failed test still leaves nothing behind.
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let leftovers = self.leftovers.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            report_leftovers(runtime.block_on(leftovers.remove()));
        })
        .join();
    }
}

/// What the cleanup could not remove (what is left has the test's own names).
fn report_leftovers(problems: Vec<String>) {
    for problem in problems {
        eprintln!("cleanup: {problem}");
    }
}

fn spawn_service<F, Fut>(run: F) -> ServiceHandle
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    runtime::telemetry::init("landfall-tests", false).expect("tracing set up");
    let (trigger, shutdown) = runtime::shutdown::channel();
    let task = tokio::spawn(run(shutdown));
    ServiceHandle { trigger, task }
}

impl TestEnv {
    /// The repository's root folder (the bundled datasets are under `datasets`).
    pub fn repo_dir() -> PathBuf {
        repo_dir()
    }
}

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository folder")
}

fn datasets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets")
        .canonicalize()
        .expect("datasets folder")
}

/// `target/<profile>/<name>`, next to the test binary's `deps` folder.
pub fn binary_path(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("test binary path");
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let binary = profile_dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: run the tests with scripts/test, which builds the binaries first",
        binary.display()
    );
    binary
}

impl TestEnv {
    /// Starts the quality-checker in-process; `overrides` replace variables of [`TestEnv::vars`]
    /// (e.g. `LANDFALL_DATASETS_DIR` to run a test's own checks).
    pub fn start_quality_checker(&self, overrides: &[(&str, &str)]) -> ServiceHandle {
        let vars = self.env_with(overrides);
        let config = CommonConfig::from_env(
            &Env::from_fn(|name| vars.get(name).cloned()),
            "quality-checker",
        )
        .expect("valid quality-checker configuration");
        spawn_service(move |shutdown| quality_checker::run(config, shutdown))
    }
}

/// The exporter's helpers.
impl TestEnv {
    /// Starts the exporter in-process; `overrides` set its own variables, e.g.
    /// `LANDFALL_STAGING_RETENTION_BATCHES` or `LANDFALL_EXPORT_PART_SIZE_BYTES`.
    pub fn start_exporter(&self, overrides: &[(&str, &str)]) -> ServiceHandle {
        let vars = self.env_with(overrides);
        let config = <exporter::ExporterConfig as runtime::service::ServiceConfig>::from_env(
            &Env::from_fn(|name| vars.get(name).cloned()),
        )
        .expect("valid exporter configuration");
        spawn_service(move |shutdown| exporter::run(config, shutdown))
    }

    /// Waits until the exporter consumes its queue: by then it has migrated the database
    /// (staging tables included) and an event published to it is delivered.
    pub async fn wait_for_exporter_consuming(&self, deadline: Duration) {
        self.wait_consuming("exporter", deadline).await
    }

    /// Starts the five services in-process with `overrides` (e.g. `LANDFALL_DATASETS_DIR`) and
    /// waits until each consumes its queue.
    pub async fn start_pipeline(
        &self,
        overrides: &[(&str, &str)],
        deadline: Duration,
    ) -> Vec<ServiceHandle> {
        let services = vec![
            self.start_ingester(overrides),
            self.start_stager(overrides),
            self.start_transformer(overrides),
            self.start_quality_checker(overrides),
            self.start_exporter(overrides),
        ];
        for stage in runtime::Stage::ALL {
            self.wait_consuming(stage.name(), deadline).await;
        }
        services
    }

    /// The batch's state once its last transform is of the files staged now and it has
    /// settled (`exported` or `quality_failed`); `None` before.
    pub async fn settled_state(&self, dataset: &str, date: &str) -> anyhow::Result<Option<String>> {
        let standing = BatchStanding::read(&self.db, dataset, date.parse()?).await?;
        Ok(standing.settled().map(|state| state.as_str().to_owned()))
    }

    /// Puts an ecommerce landing file (e.g. `orders.csv`) for `date` and waits until the stager has
    /// made it the staged version of its source.
    pub async fn put_staged(
        &self,
        date: &str,
        file: &str,
        body: impl Into<Vec<u8>>,
        deadline: Duration,
    ) {
        let source = file.trim_end_matches(".csv");
        let staged = format!(
            "SELECT coalesce(max(file_id), 0) FROM ops.staged_sources
              WHERE dataset = 'ecommerce' AND ingestion_date = '{date}' AND source = '{source}'"
        );
        let before = self.count(&staged).await;
        self.put(&TestEnv::landing_key(date, file), body).await;
        crate::wait::wait_until(&format!("{file} of {date} staged"), deadline, || async {
            Ok((self.try_count(&staged).await? > before).then_some(()))
        })
        .await;
    }

    /// Lands an ecommerce day: puts each `(file, body)` in order, each waited for until staged
    /// ([`TestEnv::put_staged`]), then waits until the day is exported.
    pub async fn land_day(&self, date: &str, files: Vec<(&str, String)>, deadline: Duration) {
        for (file, body) in files {
            self.put_staged(date, file, body, deadline).await;
        }
        self.wait_exported("ecommerce", date, deadline).await;
    }

    /// Waits until the dataset's batch is exported from the files staged now.
    pub async fn wait_exported(&self, dataset: &str, date: &str, deadline: Duration) {
        crate::wait::wait_until(&format!("{dataset} {date} exported"), deadline, || async {
            let exported = scratch::batch::exported(&self.db, dataset, date.parse()?).await?;
            Ok(exported.map(|_| ()))
        })
        .await
    }

    /// Waits until `service` has a consumer on its queue (it has started, migrated and
    /// declared the topology), failing the test after `deadline`.
    pub async fn wait_consuming(&self, service: &str, deadline: Duration) {
        let queue = format!("{}.{service}", self.prefix);
        crate::wait::wait_until(
            &format!("{service} consuming its queue"),
            deadline,
            || async {
                let connection = runtime::broker::connect_with(
                    &self.amqp_url,
                    lapin::ConnectionProperties::default(),
                )
                .await?;
                let channel = connection.create_channel().await?;
                let options = lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                let declared = channel
                    .queue_declare(queue.as_str().into(), options, Default::default())
                    .await;
                connection.close(200, "done".into()).await.ok();
                Ok((declared?.consumer_count() > 0).then_some(()))
            },
        )
        .await
    }

    /// Files of multipart uploads the S3 server holds open (begun, neither completed nor
    /// aborted): the embedded server keeps `.upload-<id>.json` and `.upload_id-<id>.part-<n>`
    /// in its root until then.
    pub fn open_multipart_upload_files(&self) -> Vec<String> {
        let Some(server) = &self.s3_server else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(server.root()) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with(".upload-") || name.starts_with(".upload_id-"))
            .collect()
    }
}
