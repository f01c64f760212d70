//! The embedded S3 server of a scratch environment, with its bucket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use s3dev::{NotifyConfig, S3DevConfig, S3DevServer};

/// The S3 server to start: its folder, keys, region and bucket.
#[derive(Debug, Clone)]
pub struct S3Spec<'a> {
    /// The server's folder (a sub-folder per bucket).
    pub root: PathBuf,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub region: &'a str,
    pub bucket: &'a str,
}

/// The embedded S3 server, notifying `<prefix>.s3` (routing key `<bucket>.created`) of every
/// object created, with its bucket made.
pub struct ScratchS3 {
    server: S3DevServer,
    root: PathBuf,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

impl ScratchS3 {
    /// Starts the server on a free local port and creates the bucket (one already there, from
    /// an earlier run in the same folder, is kept).
    pub async fn start(
        spec: S3Spec<'_>,
        amqp_url: &str,
        prefix: &str,
    ) -> anyhow::Result<ScratchS3> {
        let server = S3DevServer::start(S3DevConfig {
            root: spec.root.clone(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_key: spec.access_key.into(),
            secret_key: spec.secret_key.into(),
            region: spec.region.into(),
            notify: Some(NotifyConfig {
                amqp_url: amqp_url.to_owned(),
                exchange: format!("{prefix}.s3"),
                routing_key: format!("{}.created", spec.bucket),
            }),
        })
        .await
        .context("starting the embedded S3 server (is RabbitMQ running? see README)")?;
        let s3 = ScratchS3 {
            server,
            root: spec.root,
            bucket: spec.bucket.to_owned(),
            access_key: spec.access_key.to_owned(),
            secret_key: spec.secret_key.to_owned(),
            region: spec.region.to_owned(),
        };
        if let Err(error) = s3.create_bucket().await {
            s3.shutdown().await;
            return Err(error);
        }
        Ok(s3)
    }

    async fn create_bucket(&self) -> anyhow::Result<()> {
        let client = self.client().await?;
        if let Err(error) = client.create_bucket().bucket(&self.bucket).send().await {
            let owned = error.as_service_error().is_some_and(|e| {
                e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
            });
            anyhow::ensure!(owned, "creating the bucket {}: {error:?}", self.bucket);
        }
        Ok(())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint_url(&self) -> String {
        self.server.endpoint_url()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The server's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Turns the bucket notifications off (a test of what the ingester finds without them) or
    /// on again.
    pub fn set_notifications_enabled(&self, enabled: bool) {
        self.server.set_notifications_enabled(enabled);
    }

    /// The S3 configuration of a service using this server.
    pub fn config(&self) -> runtime::S3Config {
        runtime::S3Config {
            endpoint: Some(self.endpoint_url()),
            region: Some(self.region.clone()),
            access_key_id: Some(runtime::Secret::new(&self.access_key)),
            secret_access_key: Some(runtime::Secret::new(&self.secret_key)),
            force_path_style: true,
        }
    }

    /// A client of this server, made as the services make theirs.
    pub async fn client(&self) -> anyhow::Result<aws_sdk_s3::Client> {
        runtime::s3::client(&self.config()).await
    }

    /// Where a service finds this server and the others: see [`ServiceServers::vars`].
    pub fn servers<'a>(
        &'a self,
        database_url: &'a str,
        amqp_url: &'a str,
        amqp_prefix: &'a str,
    ) -> ServiceServers<'a> {
        ServiceServers {
            database_url,
            amqp_url,
            amqp_prefix,
            s3_endpoint: self.endpoint_url(),
            access_key: &self.access_key,
            secret_key: &self.secret_key,
            bucket: &self.bucket,
        }
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Where the services of a scratch environment find their servers.
pub struct ServiceServers<'a> {
    pub database_url: &'a str,
    pub amqp_url: &'a str,
    pub amqp_prefix: &'a str,
    pub s3_endpoint: String,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub bucket: &'a str,
}

impl ServiceServers<'_> {
    /// The variables a service reads them from (`LANDFALL_DATABASE_URL`, …).
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LANDFALL_DATABASE_URL", self.database_url.to_owned()),
            ("LANDFALL_AMQP_URL", self.amqp_url.to_owned()),
            ("LANDFALL_AMQP_PREFIX", self.amqp_prefix.to_owned()),
            ("LANDFALL_S3_ENDPOINT", self.s3_endpoint.clone()),
            ("LANDFALL_S3_ACCESS_KEY_ID", self.access_key.to_owned()),
            ("LANDFALL_S3_SECRET_ACCESS_KEY", self.secret_key.to_owned()),
            ("LANDFALL_BUCKET", self.bucket.to_owned()),
        ]
    }
}
