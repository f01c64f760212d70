//! Serving the S3 API over HTTP, the way `s3s-fs`'s own binary does
//! (hyper-util's auto HTTP/1+2 connection builder), plus a clean shutdown.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::S3DevConfig;
use crate::event::ServerIdentity;
use crate::layout::Layout;
use crate::notify::Notifier;
use crate::wrapper::{ClientAddr, DevS3, Notifications};

/// How long [`S3DevServer::shutdown`] lets in-flight requests finish.
const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// A running dev S3 server. Dropping it aborts the server task; prefer
/// [`S3DevServer::shutdown`], which lets in-flight requests finish.
pub struct S3DevServer {
    local_addr: SocketAddr,
    endpoint_url: String,
    notifications_enabled: Arc<AtomicBool>,
    notifier: Option<Arc<Notifier>>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl S3DevServer {
    /// Creates `root` if missing, connects to RabbitMQ (when configured; the
    /// exchange is declared here, so a misconfigured broker fails the start),
    /// binds `listen` and starts serving in a background task.
    pub async fn start(config: S3DevConfig) -> anyhow::Result<S3DevServer> {
        tokio::fs::create_dir_all(&config.root)
            .await
            .with_context(|| format!("creating S3 root folder {}", config.root.display()))?;
        let root = tokio::fs::canonicalize(&config.root)
            .await
            .with_context(|| format!("resolving S3 root folder {}", config.root.display()))?;
        let fs = s3s_fs::FileSystem::new(&root)
            .map_err(|err| anyhow!("{err:?}"))
            .with_context(|| format!("opening S3 root folder {}", root.display()))?;

        let notifier = match config.notify.clone() {
            Some(notify) => Some(Arc::new(
                Notifier::connect(notify)
                    .await
                    .context("setting up bucket notifications")?,
            )),
            None => None,
        };

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding S3 listener to {}", config.listen))?;
        let local_addr = listener
            .local_addr()
            .context("reading S3 listener address")?;
        let endpoint_url = format!("http://{}", reachable(local_addr));

        let notifications_enabled = Arc::new(AtomicBool::new(true));
        let notifications = Notifications {
            notifier: notifier.clone(),
            enabled: notifications_enabled.clone(),
            identity: ServerIdentity {
                region: config.region.clone(),
                owner: config.access_key.clone(),
                deployment_id: uuid::Uuid::new_v4().to_string(),
                node_id: format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
                endpoint: endpoint_url.clone(),
            },
        };
        let service = {
            let mut builder =
                S3ServiceBuilder::new(DevS3::new(fs, Layout::new(root.clone()), notifications));
            builder.set_auth(SimpleAuth::from_single(
                config.access_key.clone(),
                config.secret_key.clone(),
            ));
            builder.build()
        };

        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, service, stop_rx));
        info!(endpoint = %endpoint_url, root = %root.display(), notify = ?config.notify, "s3dev listening");

        Ok(S3DevServer {
            local_addr,
            endpoint_url,
            notifications_enabled,
            notifier,
            stop,
            task: Some(task),
        })
    }

    /// The bound address (with the real port when `listen` used port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Base URL for S3 clients, e.g. `http://127.0.0.1:40123` (a wildcard
    /// listen address is replaced by loopback). Use path-style addressing.
    pub fn endpoint_url(&self) -> String {
        self.endpoint_url.clone()
    }

    /// Turns notifications off (`false`) to simulate lost events, or back on.
    /// While off, writes succeed and their events are dropped, not queued.
    pub fn set_notifications_enabled(&self, enabled: bool) {
        self.notifications_enabled.store(enabled, Ordering::SeqCst);
    }

    /// Stops accepting connections, lets in-flight requests finish (for at
    /// most a few seconds), ends the serve task and closes the broker link.
    pub async fn shutdown(mut self) {
        // Receivers are gone only if the task already ended.
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
            && !err.is_cancelled()
        {
            warn!(%err, "s3dev serve task failed");
        }
        if let Some(notifier) = self.notifier.take() {
            notifier.close().await;
        }
        info!(endpoint = %self.endpoint_url, "s3dev stopped");
    }
}

impl Drop for S3DevServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Replaces a wildcard IP by loopback, so the URL is something a client can
/// actually connect to.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    addr
}

/// Accept loop. Connection tasks live in a `JoinSet`, so aborting this task
/// (on drop) also aborts every connection.
async fn serve(listener: TcpListener, service: S3Service, mut stop: watch::Receiver<bool>) {
    let builder = ConnBuilder::new(TokioExecutor::new());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    connections.spawn(serve_connection(&builder, socket, peer, service.clone(), stop.clone()));
                }
                Err(err) => {
                    // Typically EMFILE; back off instead of spinning.
                    warn!(%err, "accepting S3 connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(GRACE_PERIOD, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            remaining = connections.len(),
            "aborting S3 connections still open after the grace period"
        );
    }
}

/// Serves one connection until it closes or the server stops; on stop the
/// connection finishes its current request and then closes.
fn serve_connection(
    builder: &ConnBuilder<TokioExecutor>,
    socket: TcpStream,
    peer: SocketAddr,
    service: S3Service,
    mut stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ClientAddr(peer));
        let service = service.clone();
        async move { hyper::service::Service::call(&service, request).await }
    });
    let connection = builder
        .serve_connection(TokioIo::new(socket), service)
        .into_owned();
    async move {
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = stop.changed() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(err) = result {
            debug!(%peer, %err, "S3 connection ended with an error");
        }
    }
}
