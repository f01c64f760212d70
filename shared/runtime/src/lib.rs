//! What every landfall service does the same way: configuration, telemetry, the broker, the
//! database and migrations, the consumer loop, the outbox relay, health and shutdown, retries.

pub mod broker;
pub mod config;
pub mod consumer;
pub mod db;
pub mod failure;
pub mod fault;
pub mod health;
pub mod metrics;
pub mod outbox;
pub mod pg;
pub mod s3;
pub mod service;
pub mod shutdown;
pub mod stage;
pub mod telemetry;
pub mod tls;

pub use config::{CommonConfig, ConfigError, Env, LandingConfig, S3Config, Secret};
pub use consumer::{Handler, Incoming, MessageKind};
pub use failure::{Failure, RetryPolicy};
pub use service::ServiceContext;
pub use shutdown::Shutdown;
pub use stage::{BatchState, FileState, Stage};
