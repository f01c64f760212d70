//! The exporter binary: configuration from the environment, then [`exporter::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::service::main(exporter::run).await
}
