//! `s3dev`: a small file-system-backed S3 server for tests and the demo.
//!
//! It speaks the real S3 HTTP API (SigV4, path-style) through [`s3s`] and stores
//! objects with [`s3s_fs`], so services talk to it with the same `aws-sdk-s3`
//! client they use against MinIO. On top of `s3s-fs` it:
//!
//! * fills in what `s3s-fs` 0.14 leaves out (ETags and `encoding-type=url` in
//!   listings, correct metadata after overwriting an object with a multipart
//!   upload);
//! * refuses object keys the file system cannot represent faithfully (`..`,
//!   `.`, empty segments, names too long for the sidecar files) with a clear
//!   S3 error instead of an opaque `InternalError`;
//! * publishes MinIO-style bucket notifications to RabbitMQ *before* it answers
//!   the client, with publisher confirms awaited, so a test can rely on the
//!   event being in the broker once the S3 call returned.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = s3dev::S3DevServer::start(s3dev::S3DevConfig {
//!     root: std::env::temp_dir().join("s3dev-demo"),
//!     listen: "127.0.0.1:0".parse()?,
//!     access_key: "landfall".into(),
//!     secret_key: "landfall-secret".into(),
//!     region: "us-east-1".into(),
//!     notify: Some(s3dev::NotifyConfig {
//!         amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
//!         exchange: "landfall.s3".into(),
//!         routing_key: "s3.events".into(),
//!     }),
//! })
//! .await?;
//! println!("S3 at {}", server.endpoint_url());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod event;
mod keys;
mod layout;
mod notify;
mod server;
mod wrapper;

use std::fmt;

pub use server::S3DevServer;

/// How to start an [`S3DevServer`].
#[derive(Clone)]
pub struct S3DevConfig {
    /// Folder holding one sub-folder per bucket (created if missing). `s3s-fs`
    /// also keeps its sidecar files (`.bucket-….json`, upload parts) directly in
    /// this folder.
    pub root: std::path::PathBuf,
    /// Address to listen on; port 0 picks a free port (see
    /// [`S3DevServer::local_addr`]).
    pub listen: std::net::SocketAddr,
    /// The single access key accepted for SigV4 requests. Also used as the
    /// bucket owner's principal id in notifications.
    pub access_key: String,
    /// Secret key matching [`S3DevConfig::access_key`].
    pub secret_key: String,
    /// Region reported as `awsRegion` in notifications (e.g. `us-east-1`).
    /// Requests signed for any region are accepted.
    pub region: String,
    /// Where to publish bucket notifications; `None` disables them entirely.
    pub notify: Option<NotifyConfig>,
}

/// Where bucket notifications go.
#[derive(Clone)]
pub struct NotifyConfig {
    /// AMQP 0.9.1 URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub amqp_url: String,
    /// Exchange to publish to. It is declared durable, type `topic`, at start
    /// and again after every reconnect, like MinIO's AMQP target does.
    pub exchange: String,
    /// Routing key of every notification.
    pub routing_key: String,
}

/// Hand-written so that logging a config never leaks the secret key or the
/// broker password.
impl fmt::Debug for S3DevConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3DevConfig")
            .field("root", &self.root)
            .field("listen", &self.listen)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .field("notify", &self.notify)
            .finish()
    }
}

impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("amqp_url", &redact_url(&self.amqp_url))
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .finish()
    }
}

/// Replaces the password of `scheme://user:password@host/...` with `***`, so the URL (of
/// RabbitMQ here, of PostgreSQL in `landfall demo`) can be printed; a URL without a password is
/// returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_amqp_password() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert_eq!(
            redact_url("postgres://landfall:s3cr:et@db:5432/landfall?sslmode=require"),
            "postgres://landfall:***@db:5432/landfall?sslmode=require"
        );
        let no_password = "postgres://postgres@127.0.0.1:5432/landfall_demo";
        assert_eq!(redact_url(no_password), no_password);
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn debug_hides_secrets() {
        let config = S3DevConfig {
            root: "/tmp/x".into(),
            listen: ([127, 0, 0, 1], 0).into(),
            access_key: "ak".into(),
            secret_key: "very-secret".into(),
            region: "us-east-1".into(),
            notify: Some(NotifyConfig {
                amqp_url: "amqp://u:pw@h/v".into(),
                exchange: "e".into(),
                routing_key: "r".into(),
            }),
        };
        let text = format!("{config:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(!text.contains(":pw@"), "{text}");
    }
}
