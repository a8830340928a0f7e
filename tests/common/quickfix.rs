//! QuickFIX's executor (tests/exchange/quickfix_executor.py) as a venue on a port of its own:
//! an independent FIX 4.4 engine that validates every message against its own dictionary.

use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Executor(Child);

impl Executor {
    /// Starts the executor as `venue` (its SenderCompID) for the engine `engine`, keeping its
    /// files in `dir`. Its prices move one tick every `tick_seconds`.
    pub fn start(port: u16, dir: &Path, venue: &str, engine: &str, tick_seconds: f64) -> Executor {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/exchange/quickfix_executor.py"
        );
        let mut child = Command::new("python3")
            .args([
                script,
                &port.to_string(),
                &dir.to_string_lossy(),
                venue,
                engine,
            ])
            .env("VENUE_TICK_SECONDS", tick_seconds.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (and `pip install quickfix` was done)");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let ready = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(ready, "venue: listening", "QuickFIX did not start");
        std::thread::spawn(move || lines.for_each(drop));
        Executor(child)
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
