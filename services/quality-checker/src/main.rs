//! The quality-checker binary: configuration from the environment, then [`quality_checker::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::service::main::<runtime::CommonConfig, _, _>(quality_checker::run).await
}
