//! The integration-test harness: each test gets its own PostgreSQL database, its own RabbitMQ
//! exchange and queue names, and its own embedded S3 server (a real HTTP S3 endpoint that
//! publishes MinIO-style notifications), and leaves nothing behind.

pub mod chaos;
pub mod checks;
pub mod data;
pub mod datasets;
mod env;
pub mod logged;
pub mod moto;
pub mod otlp;
pub mod proxy;
pub mod reference;
pub mod retail_reference;
pub mod retail_scenario;
pub mod scenario;
pub mod scenario_run;
pub mod spy;
pub mod tls;
pub mod wait;

pub use env::{BUCKET, ChildService, Servers, ServiceHandle, TestEnv, binary_path};
pub use wait::wait_until;

/// Expected rows written as string slices, to compare with [`TestEnv::query_text`].
pub fn rows(text: &[&[&str]]) -> Vec<Vec<String>> {
    text.iter()
        .map(|row| row.iter().map(|cell| (*cell).to_owned()).collect())
        .collect()
}
