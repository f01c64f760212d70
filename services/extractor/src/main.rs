//! The extractor binary: configuration from the environment, one run of
//! [`extractor::run`], then exit (0 when every file of the run is in S3).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::service::main(extractor::run).await
}
