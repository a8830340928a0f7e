//! One shutdown signal for the whole process. SIGTERM or SIGINT (or the server stopping for any
//! other reason) sets it; the HTTP server drains, and every piece of background work (the feed
//! relay, the broker publisher, the key reaper, the orphan sweep, the auditor, the lease keeper)
//! watches it and stops at its next turn. Background work is started through [`Shutdown::spawn`],
//! so that [`Shutdown::tasks_finished`] can wait for all of it to have stopped: the lease is given
//! up only after its keeper has stopped, so nothing renews it afterwards. The engine's writers (the
//! batch gatherers, and the work that follows a request) watch a second signal, given once the
//! server has drained, so that every request in flight still gets its phase written.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{select, Either};
use tokio::sync::watch;

/// A background task started through [`Shutdown::spawn`]: its name, for the log, and its end.
type Task = (&'static str, actix_web::rt::task::JoinHandle<()>);

#[derive(Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
    tasks: Arc<Mutex<Vec<Task>>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        let (sender, receiver) = watch::channel(false);
        Shutdown {
            sender: Arc::new(sender),
            receiver,
            tasks: Arc::default(),
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

    /// Starts background work, handed the signal to watch (through [`Shutdown::or`]) so that it
    /// stops by itself, and keeps its handle so that [`Shutdown::tasks_finished`] can wait for it.
    pub fn spawn<W, F>(&self, name: &'static str, work: W)
    where
        W: FnOnce(Shutdown) -> F,
        F: Future<Output = ()> + 'static,
    {
        let handle = actix_web::rt::spawn(work(self.clone()));
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|(_, task)| !task.is_finished());
            tasks.push((name, handle));
        }
    }

    /// Runs `work` on a thread of its own (for work with a runtime of its own), registered as
    /// [`Shutdown::spawn`] registers a task, so that [`Shutdown::tasks_finished`] waits for the
    /// thread to end. `work` is handed the signal to watch.
    pub fn spawn_thread<W>(&self, name: &'static str, work: W) -> std::io::Result<()>
    where
        W: FnOnce(Shutdown) + Send + 'static,
    {
        let (ended, thread_ended) = tokio::sync::oneshot::channel::<()>();
        let watched = self.clone();
        std::thread::Builder::new()
            .name(name.replace(' ', "-"))
            .spawn(move || {
                let _ended = ended;
                work(watched);
            })?;
        self.spawn(name, |_| async move {
            let _ = thread_ended.await;
        });
        Ok(())
    }

    /// Runs `work` on a task of its own, registered as [`Shutdown::spawn`] registers background
    /// work, and waits for it. The work goes on to its end even if the caller is dropped, and
    /// [`Shutdown::tasks_finished`] waits for it. None if the work panicked.
    pub async fn run_to_completion<T: 'static>(
        &self,
        name: &'static str,
        work: impl Future<Output = T> + 'static,
    ) -> Option<T> {
        let (sender, answer) = tokio::sync::oneshot::channel();
        self.spawn(name, |_| async move {
            let _ = sender.send(work.await);
        });
        answer.await.ok()
    }

    /// After the signal: waits until every task started through [`Shutdown::spawn`] has ended, for
    /// at most `most`. Returns the names of those still running then (they are left to the end of
    /// the process).
    pub async fn tasks_finished(&self, most: Duration) -> Vec<&'static str> {
        let tasks: Vec<Task> = match self.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(_) => Vec::new(),
        };
        let deadline = tokio::time::Instant::now() + most;
        let mut running = Vec::new();
        for (name, task) in tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                running.push(name);
            }
        }
        running
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

    #[actix_web::test]
    async fn tasks_finished_waits_for_work_that_ends_after_the_signal() {
        let shutdown = Shutdown::default();
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ended.clone();
        // A task that, like the lease keeper inside a renewal, takes a while to notice the signal.
        shutdown.spawn("slow to stop", |watcher| async move {
            watcher.triggered().await;
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        shutdown.spawn("never stops", |_| std::future::pending());
        shutdown.trigger();
        let running = shutdown.tasks_finished(Duration::from_millis(500)).await;
        assert!(
            ended.load(std::sync::atomic::Ordering::SeqCst),
            "returned before the task ended"
        );
        assert_eq!(running, vec!["never stops"]);
    }

    #[actix_web::test]
    async fn work_run_to_completion_ends_even_when_its_caller_is_dropped() {
        let shutdown = Shutdown::default();
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ended.clone();
        let caller = shutdown.run_to_completion("request work", async move {
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            7
        });
        // The caller waits a moment, then goes away (a client that hangs up).
        let waited = tokio::time::timeout(Duration::from_millis(10), caller).await;
        assert!(waited.is_err(), "the work cannot have ended yet");
        shutdown.trigger();
        let running = shutdown.tasks_finished(Duration::from_secs(5)).await;
        assert!(running.is_empty(), "{running:?}");
        assert!(
            ended.load(std::sync::atomic::Ordering::SeqCst),
            "the work ran to its end"
        );
        assert_eq!(
            shutdown.run_to_completion("more", async { 8 }).await,
            Some(8)
        );
    }
}
