//! Starting and stopping a service the same way everywhere: datasets, database and migrations,
//! health endpoint, outbox relay, consumers, graceful drain.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use catalog::Datasets;
use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::broker::{QueueSpec, Topology};
use crate::config::CommonConfig;
use crate::consumer::{self, Handler, MessageKind};
use crate::failure::RetryPolicy;
use crate::health::{self, Readiness};
use crate::outbox::OutboxRelay;
use crate::shutdown::Shutdown;

/// Everything a running service shares between its tasks. Cheap to clone.
#[derive(Clone)]
pub struct ServiceContext {
    pub config: Arc<CommonConfig>,
    pub pool: Pool,
    pub topology: Topology,
    pub datasets: Arc<Datasets>,
    pub readiness: Readiness,
    /// Woken after a commit that wrote outbox rows.
    pub outbox_wake: Arc<Notify>,
    pub shutdown: Shutdown,
    health_listener: Arc<std::sync::Mutex<Option<tokio::net::TcpListener>>>,
    health_addr: SocketAddr,
}

impl ServiceContext {
    /// Loads the datasets, binds the health endpoint, waits for the database and migrates it
    /// (when configured). Waiting for the database retries for ever, until shutdown.
    pub async fn start(config: CommonConfig, shutdown: Shutdown) -> anyhow::Result<ServiceContext> {
        let datasets = Datasets::load(&config.datasets_dir)?;
        let pool = crate::db::pool_as(
            &config.database_url,
            config.database_pool_size,
            config.database_role.as_deref(),
        )?;
        let listener = health::bind(config.health_addr).await?;
        let health_addr = listener.local_addr()?;
        let topology = Topology::from_config(&config);
        let ctx = ServiceContext {
            config: Arc::new(config),
            pool,
            topology,
            datasets: Arc::new(datasets),
            readiness: Readiness::default(),
            outbox_wake: Arc::new(Notify::new()),
            shutdown,
            health_listener: Arc::new(std::sync::Mutex::new(Some(listener))),
            health_addr,
        };
        ctx.prepare_database().await?;
        Ok(ctx)
    }

    /// The address `/healthz` and `/readyz` are served on.
    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.config.retry_attempts,
            min_delay: self.config.retry_min_delay,
            max_delay: self.config.retry_max_delay,
        }
    }

    /// Declares the exchanges and every stage's queue with its bindings, retrying until the
    /// broker answers; `false` when shutdown came first. Work that must not start before the
    /// queues exist (the ingester's start-up reconcile, which covers notifications published
    /// while its queue was not yet bound) waits on this.
    pub async fn declare_topology(&self) -> bool {
        let mut backoff = self.retry_policy().forever();
        loop {
            let declared = async {
                let connection = crate::broker::connect(&self.config.amqp_url, "topology").await?;
                let channel = connection.create_channel().await?;
                crate::broker::declare_topology(&channel, &self.config, &self.topology).await?;
                connection.close(200, "topology declared".into()).await.ok();
                anyhow::Ok(())
            }
            .await;
            let error = match declared {
                Ok(()) => return true,
                Err(error) => error,
            };
            let what = "could not declare the broker topology; retrying";
            let policy = self.retry_policy();
            if !policy
                .pause(&mut backoff, &error, what, &self.shutdown)
                .await
            {
                return false;
            }
        }
    }

    async fn prepare_database(&self) -> anyhow::Result<()> {
        let mut backoff = self.retry_policy().forever();
        loop {
            match self.try_prepare_database().await {
                Ok(()) => return Ok(()),
                Err(error) if is_connection_problem(&error) && !self.shutdown.is_triggered() => {
                    let what = "database not reachable yet; retrying";
                    let policy = self.retry_policy();
                    if !policy
                        .pause(&mut backoff, &error, what, &self.shutdown)
                        .await
                    {
                        return Err(error);
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn try_prepare_database(&self) -> anyhow::Result<()> {
        if self.config.migrate_on_start {
            // The migration runs with the login user's rights (it creates the service roles and
            // grants them), on a connection of its own; the service's pool runs as its role.
            let owner = crate::db::pool(&self.config.database_url, 1)?;
            let mut client = owner
                .get()
                .await
                .map_err(crate::db::explain)
                .context("connecting to PostgreSQL to migrate")?;
            crate::db::migrate(&mut client, &self.datasets).await?;
        }
        let client = self
            .pool
            .get()
            .await
            .map_err(crate::db::explain)
            .with_context(|| match &self.config.database_role {
            Some(role) => format!(
                "connecting to PostgreSQL as role {role} (LANDFALL_DATABASE_ROLE; the login user must be a member of it, and the migration must have run)"
            ),
            None => "connecting to PostgreSQL".to_owned(),
        })?;
        drop(client);
        tracing::info!(
            role = self
                .config
                .database_role
                .as_deref()
                .unwrap_or("none (the login user's rights)"),
            "database ready"
        );
        self.readiness.set_database(true);
        Ok(())
    }

    /// Runs the service: health endpoint, outbox relay, a database watch, and `concurrency`
    /// consumers of `spec`'s queue. Returns after shutdown once in-flight work is finished; an
    /// error when the grace period ran out first (the process then exits non-zero).
    pub async fn serve<H: Handler>(
        self,
        spec: QueueSpec,
        kind: MessageKind,
        handler: H,
    ) -> anyhow::Result<()> {
        let handler = Arc::new(handler);
        let mut tasks = JoinSet::new();
        // The relay and the health endpoint stop only after the consumers have drained: the
        // events their last messages caused are published before the process exits, and
        // `/readyz` answers 503 ("shutting down") while it drains instead of refusing connections.
        let (stop_relay, relay_shutdown) = crate::shutdown::channel();
        if let Some(listener) = self
            .health_listener
            .lock()
            .expect("health listener lock")
            .take()
        {
            tasks.spawn(health::serve(
                listener,
                self.readiness.clone(),
                relay_shutdown.clone(),
            ));
        }
        tasks.spawn(watch_database(self.clone()));
        let relay = tokio::spawn(self.relay().run(relay_shutdown));
        let relay_abort = relay.abort_handle();
        let mut consumers = JoinSet::new();
        for worker in 0..self.config.concurrency {
            consumers.spawn(consumer::run(
                self.clone(),
                spec.clone(),
                kind,
                handler.clone(),
                worker,
            ));
        }
        self.shutdown.wait().await;
        self.readiness.set_draining();
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while consumers.join_next().await.is_some() {}
            stop_relay.trigger();
            let _ = relay.await;
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(grace = ?self.config.shutdown_grace, "in-flight work did not finish within the grace period");
            consumers.abort_all();
            relay_abort.abort();
            tasks.abort_all();
            // Nothing is lost (the unacked messages go back to the queue and the outbox keeps
            // what was committed), but the exit status says the drain was cut short.
            anyhow::bail!(
                "in-flight work did not finish within the shutdown grace period of {:?} \
                 (LANDFALL_SHUTDOWN_GRACE_MS); it was abandoned and its messages are redelivered",
                self.config.shutdown_grace
            );
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// The outbox relay of this service: its pool, topology, retry policy, wake-up and readiness.
    pub fn relay(&self) -> OutboxRelay {
        OutboxRelay {
            pool: self.pool.clone(),
            amqp_url: self.config.amqp_url.clone(),
            topology: self.topology.clone(),
            config: self.config.clone(),
            service: self.config.service_name.clone(),
            poll: self.config.outbox_poll,
            retry: self.retry_policy(),
            wake: self.outbox_wake.clone(),
            readiness: self.readiness.clone(),
        }
    }
}

/// Keeps `/readyz` honest about the database.
async fn watch_database(ctx: ServiceContext) {
    loop {
        let reachable = match ctx.pool.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        };
        ctx.readiness.set_database(reachable);
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = ctx.shutdown.wait() => return,
        }
    }
}

fn is_connection_problem(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<deadpool_postgres::PoolError>()
            .is_some()
            || cause
                .downcast_ref::<tokio_postgres::Error>()
                .is_some_and(crate::failure::is_transient_db_error)
    })
}

/// A service's own configuration type, read from the environment at start.
pub trait ServiceConfig: Sized {
    fn from_env(env: &crate::config::Env<'_>) -> Result<Self, crate::config::ConfigError>;
    fn common(&self) -> &CommonConfig;
}

impl ServiceConfig for CommonConfig {
    /// Services with no settings of their own use the common ones, named after the binary.
    fn from_env(env: &crate::config::Env<'_>) -> Result<Self, crate::config::ConfigError> {
        let binary = std::env::args()
            .next()
            .and_then(|path| {
                std::path::Path::new(&path)
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "landfall".into());
        CommonConfig::from_env(env, &binary)
    }
    fn common(&self) -> &CommonConfig {
        self
    }
}

/// What every service binary's `main` does: read and validate the configuration (exiting with
/// the variable's name and the problem), set up tracing, wire SIGTERM to a graceful drain, run.
pub async fn main<C, F, Fut>(run: F) -> anyhow::Result<()>
where
    C: ServiceConfig,
    F: FnOnce(C, Shutdown) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = match C::from_env(&crate::config::Env::process()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    if let Err(error) =
        crate::telemetry::init(&config.common().service_name, config.common().log_json)
    {
        eprintln!("configuration: {error:#}");
        std::process::exit(2);
    }
    let (trigger, shutdown) = crate::shutdown::channel();
    trigger.on_signals();
    let result = run(config, shutdown).await;
    crate::telemetry::shutdown();
    result
}
