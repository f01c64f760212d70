//! The ingester binary: configuration from the environment, then [`ingester::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::service::main(ingester::run).await
}
