//! The transformer binary: configuration from the environment, then [`transformer::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::service::main::<runtime::CommonConfig, _, _>(transformer::run).await
}
