//! The stager binary: configuration from the environment, then [`stager::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::service::main(stager::run).await
}
