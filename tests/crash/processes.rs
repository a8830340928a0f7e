//! The engine and the simulator as real processes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use crate::shared::client;

const BIN: &str = env!("CARGO_BIN_EXE_orderkeeper");

/// `orderkeeper audit` against a database and, when given, an exchange: its exit status and
/// its JSON report.
pub fn offline_audit(database_url: &str, exchange: Option<&str>) -> (bool, Value) {
    let mut command = Command::new(BIN);
    command.args(["audit", "--database-url", database_url]);
    if let Some(url) = exchange {
        command.args(["--exchange", url]);
    }
    let output = command.output().expect("orderkeeper audit runs");
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.success(), report)
}
/// `orderkeeper demo` on `database_url` with its engine and simulator on these ports, its
/// directory under `dir`: whether it exited with 0, and its stdout and stderr.
pub fn run_demo(dir: &Path, database_url: &str, flags: &[&str]) -> (bool, String, String) {
    let (engine, exchange) = (free_port(), free_port());
    let output = Command::new(BIN)
        .args(["demo", "--database-url", database_url])
        .args(["--listen", &format!("127.0.0.1:{engine}")])
        .args(["--exchange-listen", &format!("127.0.0.1:{exchange}")])
        .args(flags)
        .env("TMPDIR", dir)
        .output()
        .expect("orderkeeper demo runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// Adds `delta` to an account's available balance of `asset`, behind the engine's back.
pub fn tamper_with_balance(database_url: &str, account_id: &str, asset: &str, delta: i64) {
    let mut conn = orderkeeper::testing::db::establish(database_url).unwrap();
    let sql = format!(
        "UPDATE balances SET available = available + {delta} WHERE account_id = '{account_id}' AND asset = '{asset}'"
    );
    let changed = orderkeeper::with_conn!(conn, |c| {
        use diesel::RunQueryDsl;
        diesel::sql_query(&sql).execute(c)
    });
    assert_eq!(changed.ok(), Some(1), "one balance row changed");
}

pub const SECRET: &str = "crash-test-secret";
pub const ADMIN: &str = "crash-test-admin";

/// A port for a process of ours to listen on. Ports are handed out in turn from below the
/// kernel's ephemeral range, never twice in one test run: asking the kernel for port 0 and
/// releasing it let two processes started side by side be given the same port, and one of them
/// then talked to the other's peers.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 500) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_768, "out of ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

async fn wait_until_up(url: &str) {
    assert!(came_up(url).await, "{url} never came up");
}

/// Whether `url` answered 2xx within 30 s.
async fn came_up(url: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(response) = client().get(url).send().await {
            if response.status().is_success() {
                return true;
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

pub async fn read_json(request: awc::ClientRequest, body: Option<&Value>) -> Option<(u16, Value)> {
    let sent = match body {
        Some(body) => request.send_json(body).await,
        None => request.send().await,
    };
    let mut response = sent.ok()?;
    let bytes = response.body().limit(16 * 1024 * 1024).await.ok()?;
    Some((
        response.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// The engine's `/metrics` text (empty when it does not answer).
pub async fn metrics_text(engine: &str) -> String {
    let Ok(mut response) = client().get(format!("{engine}/metrics")).send().await else {
        return String::new();
    };
    let body = response.body().await.unwrap_or_default();
    String::from_utf8_lossy(&body).into_owned()
}

/// The sum of a metric's samples in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn delete(engine: &str, token: &str, path: &str) -> Option<(u16, Value)> {
    let request = client()
        .delete(format!("{engine}{path}"))
        .insert_header(("Authorization", format!("Bearer {token}")));
    read_json(request, None).await
}

/// `PATCH` with an Idempotency-Key and a JSON body.
pub async fn patch(
    engine: &str,
    token: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> Option<(u16, Value)> {
    let request = client()
        .patch(format!("{engine}{path}"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Idempotency-Key", key));
    read_json(request, Some(body)).await
}

pub async fn get(engine: &str, token: &str, path: &str) -> Option<(u16, Value)> {
    let request = client()
        .get(format!("{engine}{path}"))
        .insert_header(("Authorization", format!("Bearer {token}")));
    read_json(request, None).await
}

/// Submits with one Idempotency-Key until the engine gives an answer that is not "try again".
pub async fn submit_until_answered(
    client: &awc::Client,
    engine: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let request = client
            .post(format!("{engine}/v1/orders"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Idempotency-Key", key));
        if let Some((status, answer)) = read_json(request, Some(body)).await {
            if status != 409 && status < 500 {
                return (status, answer);
            }
        }
        assert!(Instant::now() < deadline, "{key}: no answer in two minutes");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Debian's multi-threaded libfaketime (package `faketime`), wherever the architecture puts it.
fn libfaketime() -> PathBuf {
    std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketimeMT.so.1"))
        .find(|path| path.exists())
        .expect("libfaketime (apt-get install faketime)")
}

pub struct Simulator {
    child: Child,
    port: u16,
    /// Its FIX acceptor's port, when the tests speak FIX to it.
    fix_port: Option<u16>,
}

/// Whether the engines these tests start speak FIX to the simulator (`ORDERKEEPER_TEST_VENUE=fix`)
/// rather than HTTP. The simulator serves the same book both ways, and the books checker reads it
/// over HTTP either way.
pub fn over_fix() -> bool {
    std::env::var("ORDERKEEPER_TEST_VENUE").is_ok_and(|venue| venue == "fix")
}

impl Simulator {
    /// Starts the simulator with the crash test's faults, or none.
    pub fn start(engine_port: u16, seed: u64, faults: bool) -> Self {
        let rates: &[(&str, &str)] = if faults {
            &[
                ("--drop-rate", "0.3"),
                ("--duplicate-rate", "0.3"),
                ("--reorder-rate", "0.2"),
                ("--error-rate", "0.1"),
                ("--lost-response-rate", "0.1"),
            ]
        } else {
            &[]
        };
        let owned: Vec<(String, String)> = rates
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::start_with(engine_port, seed, &owned, 50)
    }

    /// Starts the simulator with these flags (`--drop-rate 0.3`, …) and fill interval.
    pub fn start_with(
        engine_port: u16,
        seed: u64,
        flags: &[(String, String)],
        fill_interval_ms: u64,
    ) -> Self {
        Self::start_serving(engine_port, seed, flags, fill_interval_ms, over_fix())
    }

    /// Starts the simulator without faults, serving FIX whatever the tests' venue is.
    pub fn start_over_fix(engine_port: u16, seed: u64) -> Self {
        Self::start_serving(engine_port, seed, &[], 50, true)
    }

    fn start_serving(
        engine_port: u16,
        seed: u64,
        flags: &[(String, String)],
        fill_interval_ms: u64,
        fix: bool,
    ) -> Self {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .args(["exchange-sim", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--webhook-url",
                &format!("http://127.0.0.1:{engine_port}/v1/exchange/events"),
            ])
            .args(["--webhook-secret", SECRET, "--seed", &seed.to_string()])
            .args(["--fill-interval-ms", &fill_interval_ms.to_string()]);
        for (flag, value) in flags {
            command.args([flag, value]);
        }
        let fix_port = fix.then(free_port);
        if let Some(fix_port) = fix_port {
            command.args(["--fix-listen", &format!("127.0.0.1:{fix_port}")]);
        }
        let child = command
            // Lost responses are cut on purpose; actix logs each one as an error.
            .env("RUST_LOG", "warn,actix_http::h1::dispatcher=off")
            .stdout(Stdio::null())
            .spawn()
            .expect("the simulator starts");
        Self {
            child,
            port,
            fix_port,
        }
    }

    /// Its HTTP API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where an engine speaks to it: over FIX when the tests ask for it, else its HTTP API.
    pub fn venue(&self) -> String {
        self.fix_port
            .map_or_else(|| self.url(), orderkeeper::exchange::sim::fix_url)
    }

    pub async fn prices(&self) -> serde_json::Map<String, Value> {
        wait_until_up(&format!("{}/prices", self.url())).await;
        let (_, prices) = read_json(client().get(format!("{}/prices", self.url())), None)
            .await
            .expect("prices");
        prices.as_object().cloned().expect("a price map")
    }

    /// Moves the last prices it names (`{"INFY": "2050.00"}`); the walk goes on from there.
    pub async fn set_prices(&self, prices: Value) {
        let request = client().put(format!("{}/admin/prices", self.url()));
        read_json(request, Some(&prices)).await.expect("prices set");
    }

    pub async fn clear_faults(&self) {
        self.set_faults(json!({"drop_rate": 0.0, "duplicate_rate": 0.0, "reorder_rate": 0.0, "error_rate": 0.0, "lost_response_rate": 0.0}))
            .await;
    }

    /// Sets the fault rates `faults` names (`{"error_rate": 1.0}`); the others stay as they were.
    pub async fn set_faults(&self, faults: Value) {
        let request = client().put(format!("{}/admin/faults", self.url()));
        read_json(request, Some(&faults)).await.expect("faults set");
    }

    /// Every order the simulator holds. Its REST faults apply to this route too, so a read that
    /// failed (a 5xx, a lost response) is made again, for up to 30 s.
    pub async fn orders(&self) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let read = read_json(client().get(format!("{}/orders", self.url())), None).await;
            if let Some((200, Value::Array(orders))) = read {
                return orders;
            }
            assert!(
                Instant::now() < deadline,
                "no list of orders in 30 s: {read:?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Engine {
    child: Option<Child>,
    port: u16,
    database_url: String,
    dir: PathBuf,
    exchange: String,
    poll_interval_ms: u64,
    /// `FAILPOINTS` for the next start only.
    fault_points: Option<String>,
    /// More flags for every start.
    extra: Vec<String>,
    log: PathBuf,
    /// RUST_LOG for every start.
    log_filter: &'static str,
    /// How far the engine's wall clock is shifted (`+30s`), through libfaketime, if at all.
    clock_offset: Option<String>,
    /// Whether dropping this engine drops its database too (not for one of several sharing it).
    drops_database: bool,
}

impl Engine {
    pub fn start(dir: &Path, port: u16, exchange: &str) -> Self {
        Self::start_with(dir, port, exchange, 1000, None)
    }

    /// Starts the engine polling every `poll_interval_ms`, with `fault_points` armed (this start
    /// only).
    pub fn start_with(
        dir: &Path,
        port: u16,
        exchange: &str,
        poll_interval_ms: u64,
        fault_points: Option<String>,
    ) -> Self {
        let mut engine = Self {
            child: None,
            port,
            database_url: crate::database::url_for(dir),
            dir: dir.to_owned(),
            exchange: exchange.to_owned(),
            poll_interval_ms,
            fault_points,
            extra: Vec::new(),
            log: dir.join("orderkeeper.log"),
            log_filter: "warn",
            clock_offset: None,
            drops_database: true,
        };
        engine.spawn();
        engine
    }

    /// One of several engines on the database of `dir`, each with its own port and log, started
    /// with `extra` flags.
    pub fn start_sharing(dir: &Path, port: u16, exchange: &str, extra: &[&str]) -> Self {
        let log = dir.join(format!("engine-{port}.log"));
        Self::launch(dir, port, exchange, extra, log, "warn")
    }

    /// [`Engine::start_sharing`] with the process's wall clock `offset` from the machine's
    /// (`+30s`, `-30s`), through Debian's libfaketime; its monotonic clock is left alone.
    pub fn start_sharing_skewed(
        dir: &Path,
        port: u16,
        exchange: &str,
        extra: &[&str],
        offset: &str,
    ) -> Self {
        let mut engine = Self::sharing(dir, port, exchange, extra);
        engine.skew_clock(offset);
        engine.spawn();
        engine
    }

    /// [`Engine::start_sharing`] reaching its database at `database_url` (through a proxy, say).
    pub fn start_sharing_through(
        dir: &Path,
        port: u16,
        exchange: &str,
        extra: &[&str],
        database_url: &str,
    ) -> Self {
        let mut engine = Self::sharing(dir, port, exchange, extra);
        engine.database_url = database_url.to_owned();
        engine.spawn();
        engine
    }

    /// One of several engines on the database of `dir`, logging at `info`: set up, not started.
    fn sharing(dir: &Path, port: u16, exchange: &str, extra: &[&str]) -> Self {
        let log = dir.join(format!("engine-{port}.log"));
        Self::configured(dir, port, exchange, extra, log, "info")
    }

    /// Leaves the database alone when this engine is dropped: others still use it.
    pub fn leave_database(&mut self) {
        self.drops_database = false;
    }

    /// Shifts the wall clock of every later start by `offset` (`+30s`, `-30s`).
    pub fn skew_clock(&mut self, offset: &str) {
        self.clock_offset = Some(offset.to_owned());
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the running process.
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let sent = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            assert!(sent.map(|s| s.success()).unwrap_or(false), "kill {signal}");
        }
    }

    /// An engine logging JSON lines at `info`, as an operator would run it.
    pub fn start_with_json_logs(dir: &Path, port: u16, exchange: &str) -> Self {
        let (extra, log) = (["--log-format", "json"], dir.join("orderkeeper.log"));
        Self::launch(dir, port, exchange, &extra, log, "info")
    }

    fn launch(
        dir: &Path,
        port: u16,
        exchange: &str,
        extra: &[&str],
        log: PathBuf,
        log_filter: &'static str,
    ) -> Self {
        let mut engine = Self::configured(dir, port, exchange, extra, log, log_filter);
        engine.spawn();
        engine
    }

    /// An engine set up to start, not started.
    fn configured(
        dir: &Path,
        port: u16,
        exchange: &str,
        extra: &[&str],
        log: PathBuf,
        log_filter: &'static str,
    ) -> Self {
        Self {
            child: None,
            port,
            database_url: crate::database::url_for(dir),
            dir: dir.to_owned(),
            exchange: exchange.to_owned(),
            poll_interval_ms: 300,
            fault_points: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            log,
            log_filter,
            clock_offset: None,
            drops_database: true,
        }
    }

    /// Waits up to 20 s for the order to reach `status`.
    /// `/readyz`: its status and body (None when it does not answer).
    pub async fn readiness(&self) -> Option<(u16, Value)> {
        read_json(client().get(format!("{}/readyz", self.url())), None).await
    }

    /// Submits once: the status and body as answered (None when nothing came back).
    pub async fn submit_once(&self, token: &str, key: &str, body: &Value) -> Option<(u16, Value)> {
        let request = client()
            .post(format!("{}/v1/orders", self.url()))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Idempotency-Key", key));
        read_json(request, Some(body)).await
    }

    pub async fn wait_for_status(&self, token: &str, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get(token, &format!("/v1/orders/{id}")).await["status"] != status {
            assert!(Instant::now() < deadline, "{id} never became {status}");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The engine's database (a SQLite file in its directory, or a PostgreSQL database).
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// The engine's log, beside its database (every start appends to it).
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    fn log_file(&self) -> Stdio {
        std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_or_else(|_| Stdio::null(), Stdio::from)
    }

    /// Arms `FAILPOINTS` for the next start.
    pub fn arm_next_start(&mut self, fault_points: &str) {
        self.fault_points = Some(fault_points.to_owned());
    }

    /// Waits for the process to end on its own; whether it did within `wait`.
    pub async fn exited_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match self.child.as_mut().map(Child::try_wait) {
                None | Some(Ok(Some(_))) | Some(Err(_)) => {
                    self.child = None;
                    return true;
                }
                Some(Ok(None)) => actix_web::rt::time::sleep(Duration::from_millis(20)).await,
            }
        }
        false
    }

    fn spawn(&mut self) {
        let mut command = Command::new(BIN);
        // The library is preloaded into the engine itself rather than run through the `faketime`
        // program, which would stand between the test and the engine: a kill of it would leave
        // the engine running.
        if let Some(offset) = &self.clock_offset {
            command
                .env("LD_PRELOAD", libfaketime())
                .env("FAKETIME", offset)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        if let Some(points) = self.fault_points.take() {
            command.env("FAILPOINTS", points);
        }
        let child = command
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database-url", &self.database_url])
            .args([
                "--exchange",
                &self.exchange,
                "--exchange-secret",
                SECRET,
                "--admin-token",
                ADMIN,
            ])
            .args(["--no-demo", "--orphan-sweep-ms", "1000"])
            // Tests run side by side on one PostgreSQL server: each engine keeps few connections.
            .args(["--db-writers", "4"])
            .args(["--poll-interval-ms", &self.poll_interval_ms.to_string()])
            .args(&self.extra)
            .env("RUST_LOG", self.log_filter)
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .expect("the engine starts");
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no chance to flush or drain anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to end; returns whether it exited cleanly.
    pub async fn terminate(&mut self) -> bool {
        self.stop_with("-TERM").await
    }

    /// Sends `signal` (`-TERM`, `-INT`) and waits up to 15 s: whether the process exited with 0.
    pub async fn stop_with(&mut self, signal: &str) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        assert!(sent.map(|s| s.success()).unwrap_or(false), "kill {signal}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        false
    }

    pub async fn restart(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }

    /// Waits for `/readyz`; on a timeout, fails with the end of the engine's log.
    async fn wait_ready(&self) {
        if !came_up(&format!("{}/readyz", self.url())).await {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let tail: String = log
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!("{} never became ready; its log ends:\n{tail}", self.url());
        }
    }

    /// Starts the process again without waiting for it to be ready.
    pub fn restart_without_waiting(&mut self) {
        self.spawn();
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Value {
        self.wait_ready().await;
        let request = client()
            .post(format!("{}{path}", self.url()))
            .insert_header(("Authorization", format!("Bearer {ADMIN}")));
        let (status, answer) = read_json(request, Some(body)).await.expect("answered");
        assert_eq!(status, 201, "{answer}");
        answer
    }

    /// `PUT path` with the admin token, asked again while unanswered or 5xx (30 s at most): its
    /// status.
    pub async fn admin_put(&self, path: &str, body: &Value) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let request = client()
                .put(format!("{}{path}", self.url()))
                .insert_header(("Authorization", format!("Bearer {ADMIN}")));
            match read_json(request, Some(body)).await {
                Some((status, _)) if status < 500 => return status,
                _ if Instant::now() > deadline => return 0,
                _ => actix_web::rt::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Opens an account with `cash` and no shares: (its id, its token).
    pub async fn open_account(&self, name: &str, cash: &str) -> (String, String) {
        let body = json!({"name": name, "cash": cash});
        let created = self.admin_post("/v1/admin/accounts", &body).await;
        let field = |name: &str| created[name].as_str().expect(name).to_owned();
        (field("account_id"), field("token"))
    }

    pub async fn get(&self, token: &str, path: &str) -> Value {
        for _ in 0..100 {
            let request = client()
                .get(format!("{}{path}", self.url()))
                .insert_header(("Authorization", format!("Bearer {token}")));
            if let Some((200, body)) = read_json(request, None).await {
                return body;
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("GET {path} never answered");
    }

    /// The order's recorded actions, and their kinds in order.
    pub async fn actions(&self, token: &str, id: &str) -> (Value, Vec<String>) {
        let actions = self.get(token, &format!("/v1/orders/{id}/actions")).await;
        let kinds = actions
            .as_array()
            .expect("a list of actions")
            .iter()
            .map(|a| a["kind"].as_str().unwrap_or_default().to_owned())
            .collect();
        (actions, kinds)
    }

    /// Submits an order, retrying with the same key until answered.
    pub async fn submit(&self, token: &str, key: &str, body: &Value) -> (u16, Value) {
        submit_until_answered(&client(), &self.url(), token, key, body).await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Option<(u16, Value)> {
        delete(&self.url(), token, path).await
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
        if self.drops_database {
            crate::database::drop_for(&self.dir);
        }
    }
}
