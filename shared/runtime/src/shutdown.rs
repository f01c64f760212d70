//! Graceful shutdown: one trigger (SIGTERM, Ctrl-C, or a test) that every task watches.

use tokio::sync::watch;

/// Cloneable handle to the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// Triggers shutdown for every [`Shutdown`] handle made from it.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger {
    sender: std::sync::Arc<watch::Sender<bool>>,
}

/// A new trigger and the handle tasks watch.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (
        ShutdownTrigger {
            sender: std::sync::Arc::new(sender),
        },
        Shutdown { receiver },
    )
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Triggers on SIGTERM or SIGINT.
    pub fn on_signals(self) {
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received; draining in-flight work");
            self.trigger();
        });
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once shutdown is triggered.
    pub async fn wait(&self) {
        let mut receiver = self.receiver.clone();
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate =
            signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
