//! Typed configuration from environment variables (12-factor), validated at start.
//!
//! Every service reads the same [`CommonConfig`]; a service with settings of its own reads them
//! through the same [`Env`] so every error names the variable and what is wrong with it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A value that must never appear in logs: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; call only where it is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

/// Reads variables through a lookup function, so tests can configure a service without
/// touching the process environment.
pub struct Env<'a> {
    lookup: Box<Lookup<'a>>,
}

/// Finds a variable's value by name.
type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

impl<'a> Env<'a> {
    /// The process environment.
    pub fn process() -> Env<'static> {
        Env {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }

    /// Any lookup, e.g. a map in a test.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'a) -> Env<'a> {
        Env {
            lookup: Box::new(lookup),
        }
    }

    /// The variable's value, if set and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    pub fn required(&self, name: &str, what: &str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError {
            variable: name.to_owned(),
            problem: format!("is not set; it must hold {what}"),
        })
    }

    /// A required PostgreSQL URL (`postgres://` or `postgresql://`); `what` says what it is for.
    pub fn postgres_url(&self, name: &str, what: &str) -> Result<String, ConfigError> {
        let url = self.required(name, what)?;
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(ConfigError {
                variable: name.to_owned(),
                problem: "must start with postgres:// or postgresql://".into(),
            });
        }
        Ok(url)
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// A parsed value, or the default when unset.
    pub fn parsed<T>(&self, name: &str, default: T, what: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|error| ConfigError {
                variable: name.to_owned(),
                problem: format!("'{raw}' is not {what}: {error}"),
            }),
        }
    }

    /// A whole number within `min..=max`.
    pub fn number(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let value = self.parsed(name, default, "a whole number")?;
        if !(min..=max).contains(&value) {
            return Err(ConfigError {
                variable: name.to_owned(),
                problem: format!("{value} is out of range; it must lie between {min} and {max}"),
            });
        }
        Ok(value)
    }

    pub fn millis(
        &self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.number(name, default, min, max)?))
    }

    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|raw| raw.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(raw) => match raw.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError {
                    variable: name.to_owned(),
                    problem: format!("'{raw}' is not a boolean (use true or false)"),
                }),
            },
        }
    }

    /// A name used in AMQP or SQL identifiers: lower-case letters, digits, `_`, `-` and `.`.
    pub fn name(&self, name: &str, default: &str) -> Result<String, ConfigError> {
        let value = self.string(name, default);
        let valid = !value.is_empty()
            && value.len() <= 100
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c));
        if !valid {
            return Err(ConfigError {
                variable: name.to_owned(),
                problem: format!(
                    "'{value}' is not a valid name (1-100 of a-z, 0-9, '_', '-', '.')"
                ),
            });
        }
        Ok(value)
    }
}

/// How a service reaches S3 (AWS or any S3-compatible endpoint).
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Custom endpoint (MinIO, the embedded dev server); `None` means AWS.
    pub endpoint: Option<String>,
    /// `LANDFALL_S3_REGION`; unset means the AWS default region chain (or `us-east-1` with static
    /// keys), see [`crate::s3::sdk_config`].
    pub region: Option<String>,
    /// Static keys (MinIO, the embedded server); unset means the AWS default credentials chain.
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// Path-style addressing, needed by most S3-compatible servers.
    pub force_path_style: bool,
}

/// Where files land: read by the services that list or are notified of landing files (the
/// ingester, `landfall reconcile` and `backfill`).
#[derive(Debug, Clone)]
pub struct LandingConfig {
    /// The bucket files land in (`LANDFALL_BUCKET`).
    pub bucket: String,
    /// Keys under this prefix are landing files (`<prefix><dataset>/ingestion_date=…/<source>.csv`).
    pub landing_prefix: String,
}

/// How a service writes its log lines (`LANDFALL_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        match env
            .get("LANDFALL_LOG_FORMAT")
            .map(|raw| raw.trim().to_ascii_lowercase())
        {
            None => Ok(LogFormat::Text),
            Some(raw) if raw == "text" => Ok(LogFormat::Text),
            Some(raw) if raw == "json" => Ok(LogFormat::Json),
            Some(raw) => Err(ConfigError {
                variable: "LANDFALL_LOG_FORMAT".into(),
                problem: format!("'{raw}' is not a log format; use text or json"),
            }),
        }
    }
}

/// What every service needs; read once at start. S3 is not part of it: only the services that
/// read or write objects (ingester, stager, exporter) read an [`S3Config`] of their own, so
/// `LANDFALL_BUCKET` is required of them alone.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `OTEL_SERVICE_NAME` or the binary's name: the name in logs, traces and metrics.
    pub service_name: String,
    /// The name the program's handled events are recorded under (`ops.processed_events`): its
    /// stage's (or the command's) own name, never `OTEL_SERVICE_NAME`, so renaming a service
    /// for telemetry does not make it handle every event again.
    pub consumer: String,
    pub database_url: Secret,
    pub database_pool_size: usize,
    /// The database role every statement of the service runs as (`LANDFALL_DATABASE_ROLE`;
    /// default `landfall_<service>` for the five services and the extractor, `none` keeps the login user's rights).
    pub database_role: Option<String>,
    pub amqp_url: Secret,
    /// Prefix of every exchange and queue name, so several pipelines share a broker.
    pub amqp_prefix: String,
    /// Exchange S3 (or MinIO) publishes bucket notifications to.
    pub notify_exchange: String,
    /// Binding key for notifications on that exchange.
    pub notify_routing_key: String,
    pub prefetch: u16,
    /// Consumers per process, each on its own channel.
    pub concurrency: usize,
    /// Deliveries already waiting on a consumer that are applied in one transaction (one
    /// savepoint each, one commit): 1 = one transaction per message.
    pub consume_batch: usize,
    /// Models of a batch the transformer runs at once, each in its own transaction on its own
    /// connection, once the models it depends on have committed (`LANDFALL_TRANSFORM_PARALLELISM`);
    /// 1 runs them one after another in one transaction with the rest of the transform.
    pub transform_parallelism: usize,
    /// Broker-side redelivery limit of each quorum queue before it dead-letters a message.
    pub delivery_limit: u32,
    /// In-process attempts for a transient failure before the message is dead-lettered.
    pub retry_attempts: usize,
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
    pub outbox_poll: Duration,
    pub health_addr: SocketAddr,
    pub migrate_on_start: bool,
    /// One folder per dataset: its definition, SQL models, quality checks and exports.
    pub datasets_dir: PathBuf,
    pub shutdown_grace: Duration,
    pub log_json: bool,
}

impl CommonConfig {
    /// Reads and validates every common variable; the first problem is returned.
    pub fn from_env(env: &Env<'_>, default_service_name: &str) -> Result<Self, ConfigError> {
        let amqp_prefix = env.name("LANDFALL_AMQP_PREFIX", "landfall")?;
        let notify_exchange = env.name("LANDFALL_NOTIFY_EXCHANGE", &format!("{amqp_prefix}.s3"))?;
        let retry_min_delay = env.millis("LANDFALL_RETRY_MIN_DELAY_MS", 200, 1, 600_000)?;
        let retry_max_delay = env.millis("LANDFALL_RETRY_MAX_DELAY_MS", 10_000, 1, 3_600_000)?;
        if retry_max_delay < retry_min_delay {
            return Err(ConfigError {
                variable: "LANDFALL_RETRY_MAX_DELAY_MS".into(),
                problem: "must not be smaller than LANDFALL_RETRY_MIN_DELAY_MS".into(),
            });
        }
        let database_url = env.postgres_url(
            "LANDFALL_DATABASE_URL",
            "a PostgreSQL URL such as postgres://user@host:5432/landfall",
        )?;
        let amqp_url = env.string("LANDFALL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
        if !amqp_url.starts_with("amqp://") && !amqp_url.starts_with("amqps://") {
            return Err(ConfigError {
                variable: "LANDFALL_AMQP_URL".into(),
                problem: "must start with amqp:// or amqps://".into(),
            });
        }
        // The ingester's messages are small notifications, many at once: it takes more at a time
        // and commits them together. The other stages' messages each carry a file's or a
        // batch's work, best spread over replicas one at a time.
        let stage = crate::Stage::from_name(default_service_name);
        let (prefetch_default, batch_default) = if stage == Some(crate::Stage::Ingester) {
            (128, 64)
        } else {
            (8, 1)
        };
        Ok(CommonConfig {
            service_name: env.string("OTEL_SERVICE_NAME", default_service_name),
            consumer: default_service_name.to_owned(),
            database_url: Secret::new(database_url),
            database_pool_size: env.number("LANDFALL_DATABASE_POOL_SIZE", 8, 1, 256)? as usize,
            database_role: database_role(env, default_service_name)?,
            amqp_url: Secret::new(amqp_url),
            notify_routing_key: env.string("LANDFALL_NOTIFY_ROUTING_KEY", "#"),
            amqp_prefix,
            notify_exchange,
            prefetch: env.number("LANDFALL_PREFETCH", prefetch_default, 1, 10_000)? as u16,
            consume_batch: env.number("LANDFALL_CONSUME_BATCH", batch_default, 1, 10_000)? as usize,
            concurrency: env.number("LANDFALL_CONCURRENCY", 2, 1, 256)? as usize,
            transform_parallelism: env.number("LANDFALL_TRANSFORM_PARALLELISM", 2, 1, 64)? as usize,
            delivery_limit: env.number("LANDFALL_DELIVERY_LIMIT", 50, 1, 1000)? as u32,
            retry_attempts: env.number("LANDFALL_RETRY_ATTEMPTS", 30, 1, 1000)? as usize,
            retry_min_delay,
            retry_max_delay,
            outbox_poll: env.millis("LANDFALL_OUTBOX_POLL_MS", 1000, 10, 600_000)?,
            health_addr: env.parsed(
                "LANDFALL_HEALTH_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 8080)),
                "a socket address such as 0.0.0.0:8080",
            )?,
            migrate_on_start: env.boolean("LANDFALL_MIGRATE_ON_START", true)?,
            datasets_dir: PathBuf::from(env.string("LANDFALL_DATASETS_DIR", "datasets")),
            shutdown_grace: env.millis("LANDFALL_SHUTDOWN_GRACE_MS", 25_000, 0, 3_600_000)?,
            log_json: LogFormat::from_env(env)? == LogFormat::Json,
        })
    }
}

/// Variables whose default differs from service to service: the ingester prefetches and commits
/// notifications in bulk, each service has its own database role and its own name in traces.
/// Setting one where every service reads it (the Kubernetes ConfigMap, compose's shared
/// environment) would override each service's own default: set it per service, where a value
/// must differ. `scripts/deploy-checks/k8s_policy.py` refuses them in the shared ConfigMap.
pub const PER_SERVICE_DEFAULTS: &[&str] = &[
    "LANDFALL_PREFETCH",
    "LANDFALL_CONSUME_BATCH",
    "LANDFALL_DATABASE_ROLE",
    "OTEL_SERVICE_NAME",
];

/// The role of a service (by its program name, not `OTEL_SERVICE_NAME`), or `None` for any
/// other program, e.g. a `landfall` command, which keeps the login user's rights.
pub fn default_database_role(service: &str) -> Option<&'static str> {
    if service == EXTRACTOR {
        return Some(EXTRACTOR_ROLE);
    }
    crate::Stage::from_name(service).map(crate::Stage::database_role)
}

/// The extractor's program name: not a stage (it consumes no queue), but a service with a role
/// of its own (`sql/migrations/0017_extracts.sql`).
pub const EXTRACTOR: &str = "extractor";
/// The extractor's database role: it may record its extracts and nothing else.
pub const EXTRACTOR_ROLE: &str = "landfall_extractor";

/// A role name used unquoted in `-c role=…`: a lower-case SQL identifier.
pub fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn database_role(env: &Env<'_>, service: &str) -> Result<Option<String>, ConfigError> {
    match env.get("LANDFALL_DATABASE_ROLE") {
        None => Ok(default_database_role(service).map(str::to_owned)),
        Some(raw) if raw.trim() == "none" => Ok(None),
        Some(raw) if is_role_name(raw.trim()) => Ok(Some(raw.trim().to_owned())),
        Some(raw) => Err(ConfigError {
            variable: "LANDFALL_DATABASE_ROLE".into(),
            problem: format!(
                "'{raw}' is not a role name (a-z, 0-9 and '_', not starting with a digit) nor 'none'"
            ),
        }),
    }
}

impl S3Config {
    /// How to reach S3; no bucket (the stager reads the bucket of each file from its event).
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let endpoint = env.get("LANDFALL_S3_ENDPOINT");
        if let Some(url) = &endpoint
            && !url.starts_with("http://")
            && !url.starts_with("https://")
        {
            return Err(ConfigError {
                variable: "LANDFALL_S3_ENDPOINT".into(),
                problem: format!("'{url}' must start with http:// or https://"),
            });
        }
        let access_key_id = env.get("LANDFALL_S3_ACCESS_KEY_ID").map(Secret::new);
        let secret_access_key = env.get("LANDFALL_S3_SECRET_ACCESS_KEY").map(Secret::new);
        if access_key_id.is_some() != secret_access_key.is_some() {
            return Err(ConfigError {
                variable: "LANDFALL_S3_SECRET_ACCESS_KEY".into(),
                problem: "LANDFALL_S3_ACCESS_KEY_ID and LANDFALL_S3_SECRET_ACCESS_KEY must be set together (or neither, for the AWS default credentials chain)".into(),
            });
        }
        Ok(S3Config {
            force_path_style: env.boolean("LANDFALL_S3_FORCE_PATH_STYLE", endpoint.is_some())?,
            endpoint,
            region: env
                .get("LANDFALL_S3_REGION")
                .map(|region| region.trim().to_owned()),
            access_key_id,
            secret_access_key,
        })
    }
}

impl LandingConfig {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mut landing_prefix = env.string("LANDFALL_LANDING_PREFIX", "landing/");
        if !landing_prefix.is_empty() && !landing_prefix.ends_with('/') {
            landing_prefix.push('/');
        }
        Ok(LandingConfig {
            bucket: env.required("LANDFALL_BUCKET", "the name of the bucket files land in")?,
            landing_prefix,
        })
    }
}

#[cfg(test)]
mod tests;
