//! One shutdown signal for the whole process. SIGTERM or SIGINT (or the server stopping for any
//! other reason) sets it; the HTTP server drains, and every piece of background work (the feed
//! relay, the broker publisher, the key reaper, the orphan sweep, the lease keeper) watches it
//! and stops at its next turn.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use futures_util::future::{select, Either};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        let (sender, receiver) = watch::channel(false);
        Shutdown {
            sender: Arc::new(sender),
            receiver,
        }
    }
}

impl Shutdown {
    /// Sets the signal; every watcher sees it. Setting it twice changes nothing.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once the signal is set.
    pub async fn triggered(&self) {
        let mut receiver = self.receiver.clone();
        // An error means every sender is gone, which only happens as the process ends.
        let _ = receiver.wait_for(|set| *set).await;
    }

    /// Runs `work` unless the signal comes first: None when it did.
    pub async fn or<F: Future>(&self, work: F) -> Option<F::Output> {
        if self.is_triggered() {
            return None;
        }
        match select(pin!(work), pin!(self.triggered())).await {
            Either::Left((output, _)) => Some(output),
            Either::Right(_) => None,
        }
    }

    /// Sets the signal on the first SIGTERM or SIGINT.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let shutdown = self.clone();
        actix_web::rt::spawn(async move {
            let which = match select(pin!(terminate.recv()), pin!(interrupt.recv())).await {
                Either::Left(_) => "SIGTERM",
                Either::Right(_) => "SIGINT",
            };
            tracing::info!(signal = which, "shutting down: draining requests in flight");
            shutdown.trigger();
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn work_runs_until_the_signal_and_not_after() {
        let shutdown = Shutdown::default();
        assert_eq!(shutdown.or(async { 7 }).await, Some(7));
        let watcher = shutdown.clone();
        let waiting = actix_web::rt::spawn(async move {
            watcher
                .or(actix_web::rt::time::sleep(std::time::Duration::from_secs(
                    60,
                )))
                .await
        });
        shutdown.trigger();
        assert_eq!(waiting.await.unwrap(), None, "the sleep was cut short");
        assert_eq!(shutdown.or(async { 7 }).await, None);
        assert!(shutdown.is_triggered());
    }
}
