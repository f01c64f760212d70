//! The exporter binary: configuration from the environment, then [`exporter::run`].

// The exporter's consumer future (S3 multipart inside a COPY stream inside the runtime's
// consumer loop) is deep enough that computing its layout in release builds needs more than
// the default query depth.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::service::main(exporter::run).await
}
