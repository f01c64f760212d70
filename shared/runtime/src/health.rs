//! `/healthz` (the process is alive) and `/readyz` (it can do its work: database reachable,
//! consuming from the broker, outbox relay connected) over plain HTTP for Kubernetes probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// What `/readyz` reports; each part is set by the task that owns it.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    database: Arc<AtomicBool>,
    consumer: Arc<AtomicBool>,
    relay: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
}

impl Readiness {
    pub fn set_database(&self, ok: bool) {
        self.database.store(ok, Ordering::Relaxed);
    }
    pub fn set_consumer(&self, ok: bool) {
        self.consumer.store(ok, Ordering::Relaxed);
    }
    pub fn set_relay(&self, ok: bool) {
        self.relay.store(ok, Ordering::Relaxed);
    }
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
    /// `None` when ready, else what is missing.
    pub fn problems(&self) -> Option<String> {
        let mut problems = Vec::new();
        if self.draining.load(Ordering::Relaxed) {
            problems.push("shutting down");
        }
        if !self.database.load(Ordering::Relaxed) {
            problems.push("database unreachable");
        }
        if !self.consumer.load(Ordering::Relaxed) {
            problems.push("not consuming from RabbitMQ");
        }
        if !self.relay.load(Ordering::Relaxed) {
            problems.push("outbox relay not connected to RabbitMQ");
        }
        (!problems.is_empty()).then(|| problems.join(", "))
    }
}

/// A port on 127.0.0.1 that nothing listens on now, for a health endpoint another process will
/// bind (the demo, the benchmarks and the tests start services this way).
///
/// Chosen at random below the kernel's ephemeral range (32768 and up on Linux): a port the
/// kernel handed out with `bind(0)` is free only until some outgoing connection (to PostgreSQL,
/// RabbitMQ, S3) is given it as its local port, which made a service fail to bind its
/// endpoint now and then. Below that range only listeners compete, and the random choice
/// keeps concurrent callers apart.
pub fn unused_local_port() -> std::io::Result<u16> {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut last_error = None;
    for _ in 0..100 {
        let port = rng.random_range(20_000..32_000);
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => return Ok(port),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no unused port found")))
}

/// Whether the health endpoint at `address` (`host:port`) answers `/readyz` with 200: how the
/// demo, the benchmarks and the tests wait for a service process they started.
pub async fn is_ready(address: &str) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return false;
    };
    let mut response = String::new();
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .is_ok()
        && stream.read_to_string(&mut response).await.is_ok()
        && response.starts_with("HTTP/1.1 200")
}

/// Binds the health listener; the returned address is the real one (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|error| {
        anyhow::anyhow!("binding the health endpoint on {addr} (LANDFALL_HEALTH_ADDR): {error}")
    })
}

/// Serves probes until shutdown.
pub async fn serve(listener: TcpListener, readiness: Readiness, shutdown: Shutdown) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => return,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let mut request = [0_u8; 1024];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut request))
                    .await;
            let Ok(Ok(read)) = read else { return };
            let request = String::from_utf8_lossy(&request[..read]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/healthz" => ("200 OK", "ok\n".to_owned()),
                "/readyz" => match readiness.problems() {
                    None => ("200 OK", "ready\n".to_owned()),
                    Some(problems) => (
                        "503 Service Unavailable",
                        format!("not ready: {problems}\n"),
                    ),
                },
                _ => ("404 Not Found", "try /healthz or /readyz\n".to_owned()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
