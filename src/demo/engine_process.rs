//! The engine as a child process: started, killed with SIGKILL, started again, and at the end
//! stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::DemoError;

/// How long a start may take before the demo gives up.
const READY_WITHIN: Duration = Duration::from_secs(60);

pub struct EngineProcess {
    command: Vec<String>,
    log: PathBuf,
    base: String,
    child: Option<Child>,
}

impl EngineProcess {
    /// `orderkeeper serve` with these flags, its stderr appended to `log`.
    pub fn new(listen: &str, flags: Vec<String>, log: &Path) -> Self {
        let mut command = vec!["serve".to_owned(), "--listen".to_owned(), listen.to_owned()];
        command.extend(flags);
        Self {
            command,
            log: log.to_owned(),
            base: format!("http://{listen}"),
            child: None,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Starts the process and waits until `/readyz` answers 200: how long that took.
    pub async fn start(&mut self) -> Result<Duration, DemoError> {
        let started = Instant::now();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(DemoError::Engine)?;
        let child = Command::new(std::env::current_exe().map_err(DemoError::Engine)?)
            .args(&self.command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(DemoError::Engine)?;
        self.child = Some(child);
        self.wait_ready(started).await
    }

    async fn wait_ready(&mut self, started: Instant) -> Result<Duration, DemoError> {
        let client = crate::exchange::http_client();
        let url = format!("{}/readyz", self.base);
        while started.elapsed() < READY_WITHIN {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(DemoError::EngineExited {
                    status,
                    last_words: last_line(&self.log),
                    log: self.log.clone(),
                });
            }
            let ready = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(started.elapsed());
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        Err(DemoError::NotReady {
            url: self.base.clone(),
            log: self.log.clone(),
        })
    }

    /// SIGKILL: nothing is flushed, drained or given up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then up to 15 s for a clean exit; whether it exited with 0. SIGKILL after that.
    pub async fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

/// The last line the engine wrote to its log: why it stopped.
fn last_line(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no log")
        .trim()
        .to_owned()
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
