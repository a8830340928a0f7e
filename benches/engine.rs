//! The benchmark harness: the release binary under load, as a user would load it. It prints
//! figures, each next to a reference measured in the same run (this machine is noisy); nothing is
//! asserted here.
//!
//! `cargo bench` runs every part; `cargo bench -- submit fills` runs the named ones. With
//! `ORDERKEEPER_BENCH_POSTGRES=postgres://user@host` the engine runs on a fresh PostgreSQL database
//! on that server instead of a SQLite file. `BENCH_ACCOUNTS=N` spreads the submit load over N
//! accounts, in turn, or at random with `BENCH_SPREAD=random`.
//!
//! - submit: durable `POST /v1/orders` at 64 connections with unique keys, next to `/healthz` at
//!   the same concurrency, and the CPU each order cost, per process, until the exchange
//!   acknowledged it;
//! - venue: submit to acknowledged over REST with pushes, then over a FIX session, same load;
//! - fills: signed push fills, half of them duplicates, next to the same number of `/healthz`;
//! - rehydration: 10k and 100k open orders, really created, then SIGKILL and restart: time to
//!   `/readyz` and RSS per open order;
//! - backlog: 40k resting orders, then a burst of 20k more and SIGKILL while most of the burst is
//!   still to be placed; time to `/readyz` after the restart, the RSS per open order under the
//!   burst, and the latency of a read, a replay and a new submit while the engine catches up;
//! - fanout: events per second delivered to 1,000 WebSocket sessions.

#[path = "../tests/common/feed_client.rs"]
mod feed_client;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use feed_client::Next;
use futures_util::future::join_all;
use orderkeeper::testing::CLOSE_TOO_SLOW;
use serde_json::{json, Value};

/// The binary under test: this build's, or another one's (`ORDERKEEPER_BENCH_BIN`) to compare.
fn bin() -> String {
    std::env::var("ORDERKEEPER_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_orderkeeper").to_owned())
}
const ADMIN: &str = "bench-admin";
const SECRET: &str = "bench-secret";
const CONNECTIONS: usize = 64;
/// Client threads: the load comes from this many actix systems, each with its share of the
/// connections.
const CLIENT_THREADS: usize = 2;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port")
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
}

/// A separate simulator process (it outlives engine restarts), slow to match so that resting
/// orders stay resting.
fn start_sim(engine_port: u16, fix_port: Option<u16>) -> Child {
    let mut command = Command::new(bin());
    command.args([
        "exchange-sim",
        "--listen",
        &format!("127.0.0.1:{}", engine_port + 1),
    ]);
    if let Some(fix_port) = fix_port {
        command.args(["--fix-listen", &format!("127.0.0.1:{fix_port}")]);
    }
    command
        .args([
            "--webhook-url",
            &format!("http://127.0.0.1:{engine_port}/v1/exchange/events"),
        ])
        .args([
            "--webhook-secret",
            SECRET,
            "--seed",
            "1",
            "--fill-interval-ms",
            "1000",
        ])
        .env(
            "RUST_LOG",
            std::env::var("BENCH_ENGINE_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("the simulator starts")
}

/// The PostgreSQL server chosen for this run, if any.
fn postgres_server() -> Option<String> {
    std::env::var("ORDERKEEPER_BENCH_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('/').to_owned())
}

fn postgres_admin(server: &str) -> orderkeeper::testing::db::DbConnection {
    orderkeeper::testing::db::establish(&format!("{server}/postgres"))
        .expect("the PostgreSQL server of ORDERKEEPER_BENCH_POSTGRES answers")
}

/// The database of one bench part: a SQLite file in its directory, or a fresh PostgreSQL database.
fn database_url(dir: &Path) -> String {
    let remembered = dir.join("database_url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return url;
    }
    let url = match postgres_server() {
        Some(server) => {
            let name = format!("ok_bench_{}", uuid::Uuid::new_v4().simple());
            execute(
                &mut postgres_admin(&server),
                &format!("CREATE DATABASE {name}"),
            );
            format!("{server}/{name}?sslmode=disable")
        }
        None => format!("sqlite://{}", dir.join("bench.db").display()),
    };
    std::fs::write(&remembered, &url).expect("the bench directory is writable");
    url
}

fn drop_database(dir: &Path) {
    let (Some(server), Ok(url)) = (
        postgres_server(),
        std::fs::read_to_string(dir.join("database_url")),
    ) else {
        return;
    };
    if let Some(name) = url.rsplit('/').next().and_then(|s| s.split('?').next()) {
        execute(
            &mut postgres_admin(&server),
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
    }
}

fn execute(conn: &mut orderkeeper::testing::db::DbConnection, sql: &str) {
    use diesel::RunQueryDsl;
    orderkeeper::with_conn!(conn, |c| diesel::sql_query(sql).execute(c))
        .expect("the statement runs");
}

fn start_engine(dir: &Path, port: u16, extra: &[&str]) -> Child {
    start_engine_over(dir, port, &format!("http://127.0.0.1:{}", port + 1), extra)
}

fn start_engine_over(dir: &Path, port: u16, exchange: &str, extra: &[&str]) -> Child {
    Command::new(bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", &database_url(dir)])
        .args(["--exchange", exchange])
        .args([
            "--exchange-secret",
            SECRET,
            "--admin-token",
            ADMIN,
            "--no-demo",
        ])
        .args(["--poll-interval-ms", "30000"])
        // The figures are the engine's, not the per-account rate limiter's.
        .args(["--order-rate-limit", "0"])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_ENGINE_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("the engine starts")
}

/// Two free ports in a row: the engine's and its simulator's.
fn port_pair() -> u16 {
    loop {
        let port = free_port();
        if TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

async fn until_ready(base: &str) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(r) = client().get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return started.elapsed();
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn new_account(base: &str, positions: Value) -> String {
    let mut created = client()
        .post(format!("{base}/v1/admin/accounts"))
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .send_json(&json!({"name": "bench", "cash": "100000000000.00", "positions": positions}))
        .await
        .expect("account");
    let account: Value = created.json().await.expect("account JSON");
    account["token"].as_str().expect("token").to_owned()
}

/// One request of a load: method, path, headers, body.
#[derive(Clone)]
struct Request {
    post: bool,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: String,
}

/// Latencies of every request, and the wall time of the whole load.
struct Load {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<34} {:>8} requests {:>9.0} /s   p50 {:>7.2} ms   p99 {:>7.2} ms",
            self.latencies.len(),
            self.per_second(),
            self.percentile(0.50),
            self.percentile(0.99)
        )
    }
}

/// Sends every request once over `CONNECTIONS` keep-alive connections spread over
/// `CLIENT_THREADS` threads; each must answer 2xx.
fn run_load(base: &str, requests: Vec<Request>) -> Load {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|_| {
            let (requests, next, base) = (requests.clone(), next.clone(), base.to_owned());
            std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let client = client();
                    let lanes = (0..CONNECTIONS / CLIENT_THREADS).map(|_| {
                        let (client, requests, next, base) =
                            (client.clone(), requests.clone(), next.clone(), base.clone());
                        async move {
                            let mut latencies = Vec::new();
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                let Some(r) = requests.get(i) else { break };
                                let url = format!("{base}{}", r.path);
                                let mut request = if r.post {
                                    client.post(url)
                                } else {
                                    client.get(url)
                                };
                                for (name, value) in &r.headers {
                                    request = request.insert_header((*name, value.as_str()));
                                }
                                let sent = Instant::now();
                                let mut response = if r.post {
                                    request.send_body(r.body.clone()).await
                                } else {
                                    request.send().await
                                }
                                .expect("answered");
                                let _ = response.body().limit(1 << 20).await;
                                assert!(
                                    response.status().is_success(),
                                    "{}: {}",
                                    r.path,
                                    response.status()
                                );
                                latencies.push(sent.elapsed());
                            }
                            latencies
                        }
                    });
                    join_all(lanes)
                        .await
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                })
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect();
    let wall = started.elapsed();
    latencies.sort();
    Load { latencies, wall }
}

fn healthz(n: usize) -> Vec<Request> {
    let request = Request {
        post: false,
        path: "/healthz".into(),
        headers: Vec::new(),
        body: String::new(),
    };
    vec![request; n]
}

fn order(token: &str, key: String, body: &Value) -> Request {
    Request {
        post: true,
        path: "/v1/orders".into(),
        headers: vec![
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/json".into()),
            ("Idempotency-Key", key),
        ],
        body: body.to_string(),
    }
}

/// Limit buys far below the market: they rest on the exchange, so each costs a placement and an
/// acknowledgement but no fills.
fn resting(token: &str, prefix: &str, n: usize) -> Vec<Request> {
    resting_across(&[token.to_owned()], prefix, n)
}

/// `n` resting buys over the accounts of `tokens`: dealt round them in turn, so that the requests
/// in flight at once are each for another account; or, with `BENCH_SPREAD=random`, each for any
/// account, so that two in flight may share one, as real clients' orders do.
fn resting_across(tokens: &[String], prefix: &str, n: usize) -> Vec<Request> {
    use rand::{RngExt, SeedableRng};
    let body = json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 100, "limit_price": "100.00"});
    let random = std::env::var("BENCH_SPREAD").is_ok_and(|s| s == "random");
    let mut draw = rand::rngs::StdRng::seed_from_u64(7);
    (0..n)
        .map(|i| {
            let account = if random {
                draw.random_range(0..tokens.len())
            } else {
                i % tokens.len()
            };
            order(&tokens[account], format!("{prefix}-{i}"), &body)
        })
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The engine's `/metrics` text, read once.
struct MetricsText(String);

impl MetricsText {
    async fn read(base: &str) -> MetricsText {
        let text = client()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .body()
            .limit(16 << 20)
            .await
            .expect("text");
        MetricsText(String::from_utf8_lossy(&text).into_owned())
    }

    /// Every series of the metric `name`, by its labels. A name the engine does not export
    /// stops the bench: a renamed metric must not read as zero.
    fn series(&self, name: &str) -> std::collections::BTreeMap<String, f64> {
        let series: std::collections::BTreeMap<String, f64> = self
            .0
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(name)?;
                // Another metric whose name starts with this one is not this one.
                if !rest.starts_with(['{', ' ']) {
                    return None;
                }
                let (labels, value) = rest.rsplit_once(' ')?;
                Some((labels.to_owned(), value.parse().ok()?))
            })
            .collect();
        assert!(!series.is_empty(), "/metrics has no metric named {name}");
        series
    }

    /// The sum of every series of the metric `name`.
    fn total(&self, name: &str) -> f64 {
        self.series(name).values().sum()
    }

    /// The mean size of the batches a batch-size histogram counted since `before`, and how many
    /// batches there were.
    fn per_batch(&self, before: &MetricsText, histogram: &str) -> String {
        let grew = |part: &str| {
            let name = format!("orderkeeper_{histogram}_{part}");
            self.total(&name) - before.total(&name)
        };
        let (items, batches) = (grew("sum"), grew("count"));
        format!("{:.1} in {batches:.0}", items / batches.max(1.0))
    }
}

struct Bench {
    base: String,
    port: u16,
    dir: tempfile::TempDir,
    sim: Child,
    engine: Child,
}

impl Bench {
    async fn start(extra: &[&str]) -> Bench {
        Bench::start_over(false, extra).await
    }

    /// The engine speaking to its simulator over FIX, or over REST and pushes.
    async fn start_over(fix: bool, extra: &[&str]) -> Bench {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = port_pair();
        let fix_port = fix.then(free_port);
        let sim = start_sim(port, fix_port);
        let exchange = match fix_port {
            Some(fix_port) => orderkeeper::exchange::sim::fix_url(fix_port),
            None => format!("http://127.0.0.1:{}", port + 1),
        };
        let engine = start_engine_over(dir.path(), port, &exchange, extra);
        let base = format!("http://127.0.0.1:{port}");
        until_ready(&base).await;
        Bench {
            base,
            port,
            dir,
            sim,
            engine,
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        for child in [&mut self.engine, &mut self.sim] {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop_database(self.dir.path());
    }
}

/// Counts the orders the exchange has not acknowledged yet, in the engine's database, on one
/// connection of its own: the PostgreSQL process serving it is the bench's, and the CPU figures
/// leave it out (counting five times a second took about 7 s of PostgreSQL's CPU in a run).
struct PendingCount {
    conn: orderkeeper::testing::db::DbConnection,
    /// The PostgreSQL server process of this connection.
    server_pid: Option<u32>,
}

impl PendingCount {
    fn open(dir: &Path) -> PendingCount {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        let mut conn = orderkeeper::testing::db::establish(&database_url(dir))
            .expect("the engine's database answers");
        let mut server_pid = None;
        if let orderkeeper::testing::db::Inner::Postgres(c) = &mut conn.inner {
            // The index of open orders reads only those still open.
            diesel::sql_query("SET enable_seqscan = off")
                .execute(c)
                .expect("the statement runs");
            server_pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
                .get_result::<Pid>(c)
                .ok()
                .and_then(|p| u32::try_from(p.pid).ok());
        }
        PendingCount { conn, server_pid }
    }

    fn unacknowledged(&mut self) -> i64 {
        self.in_status("pending_new")
    }

    fn in_status(&mut self, status: &str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        orderkeeper::with_conn!(self.conn, |c| diesel::sql_query(
            "SELECT COUNT(*) AS n FROM orders WHERE is_open AND status = $1"
        )
        .bind::<diesel::sql_types::Text, _>(status)
        .get_result::<Count>(c))
        .map(|c| c.n)
        .unwrap_or(-1)
    }

    /// Bytes the PostgreSQL server has written to its log so far (None on SQLite), whatever wrote
    /// them: with the bench's database the only busy one, the work the run asked of the server,
    /// which unlike a rate does not move with the machine's speed.
    fn wal_written(&mut self) -> Option<i64> {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Written {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            bytes: i64,
        }
        match &mut self.conn.inner {
            orderkeeper::testing::db::Inner::Postgres(c) => {
                diesel::sql_query("SELECT CAST(pg_current_wal_lsn() - '0/0' AS BIGINT) AS bytes")
                    .get_result::<Written>(c)
                    .ok()
                    .map(|w| w.bytes)
            }
            orderkeeper::testing::db::Inner::Sqlite(_) => None,
        }
    }

    /// The orders not acknowledged yet: how many were sent (their answer unknown), and how many
    /// were never sent.
    fn unacknowledged_by_sending(&mut self) -> (i64, i64) {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut count = |sent: bool| {
            orderkeeper::with_conn!(self.conn, |c| diesel::sql_query(format!(
                "SELECT COUNT(*) AS n FROM orders WHERE status = 'pending_new' AND placement_sent = {sent}"
            ))
            .get_result::<Count>(c))
            .map(|c| c.n)
            .unwrap_or(-1)
        };
        (count(true), count(false))
    }

    /// The orders created before `micros` (since the epoch) not acknowledged yet.
    fn unacknowledged_before(&mut self, micros: i64) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        orderkeeper::with_conn!(self.conn, |c| diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM orders WHERE status = 'pending_new' AND created_at < {micros}"
        ))
        .get_result::<Count>(c))
        .map(|c| c.n)
        .unwrap_or(-1)
    }

    /// Waits until the exchange has acknowledged every order. The count reads every open order,
    /// so it is asked at most a tenth of the time, to leave the shared cores to what is measured.
    async fn until_none(&mut self, every: Duration) {
        loop {
            let asked = Instant::now();
            if self.unacknowledged() <= 0 {
                return;
            }
            actix_web::rt::time::sleep(every.max(asked.elapsed() * 10)).await;
        }
    }
}

/// CPU time used so far (user and system, in seconds), from `/proc`: by the engine, by the
/// simulator, by this load generator, and by every PostgreSQL server process (with the reaped
/// children the postmaster counts, such as autovacuum workers). On a machine whose speed moves by
/// a quarter within the hour, CPU per order is steadier than orders per second.
#[derive(Clone, Copy, Default)]
struct CpuUse {
    postgres: f64,
    engine: f64,
    sim: f64,
    client: f64,
}

impl CpuUse {
    /// Leaves out the PostgreSQL process serving `bench_connection`.
    fn now(bench: &Bench, bench_connection: &PendingCount) -> CpuUse {
        let postgres = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| Some(*pid) != bench_connection.server_pid)
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "postgres")
            })
            .map(|pid| cpu_seconds(&pid.to_string(), true))
            .sum();
        CpuUse {
            postgres,
            engine: cpu_seconds(&bench.engine.id().to_string(), false),
            sim: cpu_seconds(&bench.sim.id().to_string(), false),
            client: cpu_seconds("self", false),
        }
    }

    fn line(&self, before: &CpuUse, orders: usize, span: &str) -> String {
        let per = |after: f64, before: f64| (after - before) * 1000.0 / orders as f64;
        format!(
            "{:<34} postgres {:.2}   engine {:.2}   simulator {:.2}   load generator {:.2}   (ms of CPU per order)",
            format!("CPU per order, {span}"),
            per(self.postgres, before.postgres),
            per(self.engine, before.engine),
            per(self.sim, before.sim),
            per(self.client, before.client),
        )
    }
}

/// A process's user and system time in seconds (`/proc/PID/stat`, in ticks of 1/100 s), with its
/// reaped children's when asked.
fn cpu_seconds(pid: &str, with_children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The name, in parentheses, may hold spaces; utime, stime, cutime and cstime are the 12th to
    // 15th fields after it.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let taken = if with_children { 4 } else { 2 };
    fields.iter().take(taken).sum::<u64>() as f64 / 100.0
}

async fn bench_submit() {
    let steps = std::env::var("BENCH_STEPS").unwrap_or_else(|_| "32".into());
    let accounts: usize = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let bench = Bench::start(&["--max-concurrent-steps", &steps]).await;
    let mut tokens = Vec::new();
    for _ in 0..accounts.max(1) {
        tokens.push(new_account(&bench.base, json!({})).await);
    }
    run_load(&bench.base, resting_across(&tokens, "warm", 2_000));
    let health = run_load(&bench.base, healthz(100_000));
    let mut pending = PendingCount::open(bench.dir.path());
    let started = Instant::now();
    let cpu_before = CpuUse::now(&bench, &pending);
    let metrics_before = MetricsText::read(&bench.base).await;
    let wal_before = pending.wal_written();
    let submit = run_load(&bench.base, resting_across(&tokens, "load", 40_000));
    let cpu_burst = CpuUse::now(&bench, &pending);
    let metrics_burst = MetricsText::read(&bench.base).await;
    // The engine keeps placing what it accepted: wait until the exchange acknowledged it all.
    pending.until_none(Duration::from_millis(200)).await;
    let placed = started.elapsed();
    let cpu_after = CpuUse::now(&bench, &pending);
    let wal_after = pending.wal_written();
    let metrics_after = MetricsText::read(&bench.base).await;
    let health_after = run_load(&bench.base, healthz(100_000));
    let spread = match std::env::var("BENCH_SPREAD").as_deref() {
        Ok("random") => "any request to any",
        _ => "in turn",
    };
    println!(
        "{}",
        submit.line(&format!(
            "durable submit ({} accounts, {spread})",
            tokens.len()
        ))
    );
    println!(
        "{:<34} {:>8} orders   {:>9.0} /s   (every order placed and acknowledged, {:.1} s)",
        "placed on the exchange",
        submit.latencies.len(),
        submit.latencies.len() as f64 / placed.as_secs_f64(),
        placed.as_secs_f64()
    );
    println!(
        "{}",
        cpu_burst.line(&cpu_before, submit.latencies.len(), "during the burst")
    );
    println!(
        "{}",
        cpu_after.line(
            &cpu_before,
            submit.latencies.len(),
            "submit to acknowledged"
        )
    );
    let orders = submit.latencies.len() as f64;
    if let (Some(before), Some(after)) = (wal_before, wal_after) {
        println!(
            "{:<34} {:.0} bytes per order (submit to acknowledged)",
            "PostgreSQL log written",
            (after - before) as f64 / orders
        );
    }
    const STEPS: &str = "orderkeeper_order_steps_total";
    let steps_before = metrics_before.series(STEPS);
    for (span, metrics) in [
        ("during the burst", &metrics_burst),
        ("submit to acknowledged", &metrics_after),
    ] {
        let per_order: Vec<String> = metrics
            .series(STEPS)
            .iter()
            .map(|(reason, n)| {
                let before = steps_before.get(reason).copied().unwrap_or(0.0);
                format!("{reason} {:.2}", (n - before) / orders)
            })
            .collect();
        println!(
            "{:<34} {}",
            format!("steps per order, {span}"),
            per_order.join("   ")
        );
    }
    // Items written by batched phases over the batches that wrote them, submit to acknowledged.
    println!(
        "{:<34} new orders {}   status actions {}",
        "items per batch, submit to acked",
        metrics_after.per_batch(&metrics_before, "submit_batch_orders"),
        metrics_after.per_batch(&metrics_before, "status_batch_orders")
    );
    println!("{}", health.line("/healthz before (64 connections)"));
    println!("{}", health_after.line("/healthz after (64 connections)"));
    println!(
        "{:<34} {:.3} of /healthz",
        "submit / healthz",
        submit.per_second() / ((health.per_second() + health_after.per_second()) / 2.0)
    );
}

/// Submit to acknowledged over each venue boundary, one after the other in the same run: the same
/// resting orders, over REST with pushes and over a FIX session to the same simulator.
async fn bench_venue() {
    let mut rates = Vec::new();
    for (fix, name) in [(false, "REST + push"), (true, "FIX 4.4")] {
        let bench = Bench::start_over(fix, &["--max-concurrent-steps", "32"]).await;
        let token = new_account(&bench.base, json!({})).await;
        // Over FIX, prices (and with them the symbols) come once the session has logged on.
        while client()
            .get(format!("{}/v1/prices", bench.base))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .map_or(true, |r| !r.status().is_success())
        {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        let mut pending = PendingCount::open(bench.dir.path());
        run_load(&bench.base, resting(&token, "warm", 1_000));
        pending.until_none(Duration::from_millis(100)).await;
        let started = Instant::now();
        let submit = run_load(&bench.base, resting(&token, "load", 20_000));
        pending.until_none(Duration::from_millis(100)).await;
        let acknowledged = submit.latencies.len() as f64 / started.elapsed().as_secs_f64();
        println!("{}", submit.line(&format!("durable submit over {name}")));
        println!(
            "{:<34} {:>8} orders   {:>9.0} /s",
            format!("submit to acknowledged, {name}"),
            submit.latencies.len(),
            acknowledged
        );
        rates.push(acknowledged);
    }
    if let [rest, fix] = rates[..] {
        println!("{:<34} {:.2} of REST", "acknowledged over FIX", fix / rest);
    }
}

/// 10,000 buy stops wait on one symbol. What the check each tick makes costs (in process, next
/// to a book of one stop), the submit rate of held stops next to `/healthz`, and the time from one
/// price move past all of them until none is held.
async fn bench_stops() {
    use orderkeeper::domain::{Cents, OrderId, Side, StopBook};
    const STOPS: usize = 10_000;
    let check = |n: usize| -> f64 {
        let mut book = StopBook::default();
        for i in 0..n {
            book.watch(
                OrderId::new(),
                "INFY",
                Side::Buy,
                Cents(300_000 + i as i64 * 100),
            );
        }
        const ROUNDS: u32 = 200_000;
        let started = Instant::now();
        for _ in 0..ROUNDS {
            std::hint::black_box(book.take_triggered("INFY", std::hint::black_box(Cents(200_000))));
        }
        started.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
    };
    let (one, many) = (check(1), check(STOPS));
    println!(
        "{:<34} {many:>8.0} ns with {STOPS} waiting, {one:.0} ns with 1 (reference)",
        "stop check, none crossed"
    );

    let bench = Bench::start(&[]).await;
    let token = new_account(&bench.base, json!({})).await;
    let stops: Vec<Request> = (0..STOPS)
        .map(|i| {
            let body = json!({"symbol": "INFY", "side": "buy", "type": "stop", "qty": 1,
                "stop_price": format!("{}.00", 3000 + i)});
            order(&token, format!("stop-{i}"), &body)
        })
        .collect();
    let health = run_load(&bench.base, healthz(STOPS));
    let held = run_load(&bench.base, stops);
    println!("{}", health.line("/healthz (reference)"));
    println!("{}", held.line("stop submit, held"));

    let mut count = PendingCount::open(bench.dir.path());
    let moved = Instant::now();
    let mut answer = client()
        .put(format!("http://127.0.0.1:{}/admin/prices", bench.port + 1))
        .send_json(&json!({"INFY": format!("{}.00", 3000 + STOPS)}))
        .await
        .expect("the simulator answers");
    assert!(answer.status().is_success(), "{:?}", answer.body().await);
    while count.in_status("held") > 0 {
        assert!(
            moved.elapsed() < Duration::from_secs(300),
            "stops still held"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = moved.elapsed().as_secs_f64();
    println!(
        "{:<34} {STOPS:>8} in {secs:.2} s ({:.0} /s), from one price move (checks every 250 ms, prices at most 1 s old)",
        "stops triggered",
        STOPS as f64 / secs
    );
}

async fn bench_fills() {
    let bench = Bench::start(&[]).await;
    let token = new_account(&bench.base, json!({})).await;
    const ORDERS: usize = 1_000;
    const FILLS: usize = 20_000;
    run_load(&bench.base, resting(&token, "rest", ORDERS));
    // Each order rests with 100 shares; its client order id comes from the order list.
    let mut answer = client()
        .get(format!("{}/v1/orders?status=open&limit=1000", bench.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("orders");
    let orders: Vec<Value> = answer.json().limit(1 << 24).await.expect("JSON");
    let cids: Vec<String> = orders
        .iter()
        .map(|o| {
            o["client_order_id"]
                .as_str()
                .expect("a client order id")
                .to_owned()
        })
        .collect();
    let push = |i: usize| {
        let cid = &cids[i % cids.len()];
        let body = json!({"event_id": format!("B{i}"), "type": "fill", "client_order_id": cid, "exchange_order_id": "X",
            "fill": {"fill_id": format!("BF{i}"), "qty": 1, "price": "99.00", "ts": chrono::Utc::now().to_rfc3339()}})
        .to_string();
        Request {
            post: true,
            path: "/v1/exchange/events".into(),
            headers: vec![
                ("Content-Type", "application/json".into()),
                (
                    "X-Signature",
                    orderkeeper::exchange::signature::sign(SECRET, body.as_bytes()),
                ),
            ],
            body,
        }
    };
    // Every fill twice, the copy a little later: half the pushes are duplicates.
    let mut requests = Vec::new();
    for i in 0..FILLS {
        requests.push(push(i));
        if i >= 64 {
            requests.push(push(i - 64));
        }
    }
    for i in FILLS - 64..FILLS {
        requests.push(push(i));
    }
    let health = run_load(&bench.base, healthz(requests.len()));
    let metrics_before = MetricsText::read(&bench.base).await;
    let fills = run_load(&bench.base, requests);
    // Wait until every fill is recorded, so the rate counts recorded fills, not queued ones.
    let recorded_by = Instant::now();
    loop {
        let recorded = MetricsText::read(&bench.base)
            .await
            .total("orderkeeper_fills_total");
        if recorded as usize >= FILLS {
            break;
        }
        assert!(
            recorded_by.elapsed() < Duration::from_secs(120),
            "only {recorded} of {FILLS} fills recorded after 120 s"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let settled = fills.wall + recorded_by.elapsed();
    let fill_batches = MetricsText::read(&bench.base)
        .await
        .per_batch(&metrics_before, "fill_batch_pushes");
    // Every fill once more: each push now a duplicate, to show what one costs.
    let again: Vec<Request> = (0..FILLS).map(push).collect();
    let duplicates = run_load(&bench.base, again);
    println!("{}", fills.line("push (half duplicates)"));
    println!("{}", duplicates.line("push (all duplicates)"));
    println!(
        "{:<34} {FILLS:>8} fills    {:>9.0} /s   (every fill recorded and settled)",
        "push fills recorded",
        FILLS as f64 / settled.as_secs_f64()
    );
    println!("{:<34} {fill_batches}", "pushes with a fill per batch");
    println!("{}", health.line("/healthz (64 connections)"));
}

async fn bench_rehydration(open: usize) {
    let mut bench = Bench::start(&["--max-concurrent-steps", "64"]).await;
    let baseline = rss_kib(bench.engine.id());
    let token = new_account(&bench.base, json!({})).await;
    let created = run_load(&bench.base, resting(&token, "open", open));
    // Every placement acknowledged before the kill: these are open orders resting on the exchange.
    PendingCount::open(bench.dir.path())
        .until_none(Duration::from_millis(100))
        .await;
    let _ = bench.engine.kill();
    let _ = bench.engine.wait();
    let restarted = Instant::now();
    bench.engine = start_engine(
        bench.dir.path(),
        bench.port,
        &["--max-concurrent-steps", "64"],
    );
    until_ready(&bench.base).await;
    let ready = restarted.elapsed();
    let rss = rss_kib(bench.engine.id());
    println!("{}", created.line(&format!("creating {open} open orders")));
    println!(
        "{:<34} {open:>8} orders   ready in {:>7.0} ms   RSS {:>6} MiB, {:.2} KiB per open order (idle engine {} MiB)",
        format!("rehydration of {open}"),
        ready.as_secs_f64() * 1e3,
        rss / 1024,
        (rss.saturating_sub(baseline)) as f64 / open as f64,
        baseline / 1024
    );
    // The money audit over every one of them, with the exchange's whole record.
    let started = Instant::now();
    let mut response = client()
        .get(format!("{}/v1/admin/audit", bench.base))
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .expect("the audit answers");
    let report: Value = response
        .json()
        .limit(64 << 20)
        .await
        .expect("the audit's report");
    println!(
        "{:<34} {open:>8} orders   {:>7.0} ms (the audit's own figure {} ms), ok = {}",
        format!("money audit of {open}"),
        started.elapsed().as_secs_f64() * 1e3,
        report["duration_ms"],
        report["ok"]
    );
}

/// Latencies of one kind of probe request.
#[derive(Default)]
struct Probes(Vec<Duration>);

impl Probes {
    fn line(&mut self, name: &str) -> String {
        self.0.sort();
        let at = |p: f64| {
            let i = ((self.0.len().max(1) - 1) as f64 * p).round() as usize;
            self.0.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        format!(
            "{name:<34} {:>8} probes     p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
            self.0.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        )
    }
}

/// Sends one request and times it; it must answer 2xx.
async fn probe(
    client: &awc::Client,
    base: &str,
    token: &str,
    path: &str,
    post: Option<(&str, &Value)>,
) -> Duration {
    let mut request = match post {
        Some(_) => client.post(format!("{base}{path}")),
        None => client.get(format!("{base}{path}")),
    }
    .insert_header(("Authorization", format!("Bearer {token}")));
    let sent = Instant::now();
    let mut response = match post {
        Some((key, body)) => {
            request = request.insert_header(("Idempotency-Key", key));
            request.send_json(body).await
        }
        None => request.send().await,
    }
    .expect("answered");
    let _ = response.body().limit(1 << 20).await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    sent.elapsed()
}

async fn bench_backlog() {
    const RESTING: usize = 40_000;
    const BURST: usize = 20_000;
    let steps = ["--max-concurrent-steps", "32"];
    let mut bench = Bench::start(&steps).await;
    let baseline = rss_kib(bench.engine.id());
    let token = new_account(&bench.base, json!({})).await;
    run_load(&bench.base, resting(&token, "resting", RESTING));
    let mut pending = PendingCount::open(bench.dir.path());
    pending.until_none(Duration::from_millis(100)).await;
    let burst = run_load(&bench.base, resting(&token, "burst", BURST));
    let rss = rss_kib(bench.engine.id());
    let _ = bench.engine.kill();
    let _ = bench.engine.wait();
    let (sent, unsent) = pending.unacknowledged_by_sending();
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let restarted = Instant::now();
    bench.engine = start_engine(bench.dir.path(), bench.port, &steps);
    until_ready(&bench.base).await;
    let ready = restarted.elapsed();
    // While the engine places what the burst left, one client reads an order, replays a
    // submit and submits a new one, in turn, every 10 ms.
    let client = client();
    let body = json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 100, "limit_price": "100.00"});
    let mut created = client
        .post(format!("{}/v1/orders", bench.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Idempotency-Key", "probe-read"))
        .send_json(&body)
        .await
        .expect("answered");
    let read: Value = created.json().await.expect("an order");
    let read_path = format!("/v1/orders/{}", read["id"].as_str().expect("an id"));
    let (mut reads, mut replays, mut submits) =
        (Probes::default(), Probes::default(), Probes::default());
    // The count of what is left is itself a query of the engine's database: asked every tenth
    // round, so that the measuring does not weigh on what it measures.
    let mut n = 0;
    while n % 10 != 0 || pending.unacknowledged_before(killed_at) > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        reads
            .0
            .push(probe(&client, &bench.base, &token, &read_path, None).await);
        replays.0.push(
            probe(
                &client,
                &bench.base,
                &token,
                "/v1/orders",
                Some(("burst-7", &body)),
            )
            .await,
        );
        let key = format!("probe-{n}");
        submits.0.push(
            probe(
                &client,
                &bench.base,
                &token,
                "/v1/orders",
                Some((&key, &body)),
            )
            .await,
        );
        n += 1;
    }
    let drained = restarted.elapsed();
    println!("{}", burst.line(&format!("a burst on {RESTING} resting")));
    println!(
        "{:<34} {:>8} orders   RSS {:>6} MiB, {:.2} KiB per open order (idle engine {} MiB)",
        "at the kill",
        RESTING + BURST,
        rss / 1024,
        rss.saturating_sub(baseline) as f64 / (RESTING + BURST) as f64,
        baseline / 1024
    );
    println!(
        "{:<34} {:>8} orders   ready in {:>7.0} ms   ({sent} sent and unanswered, {unsent} never sent; all placed {:.1} s after the start)",
        "restart with a backlog",
        RESTING + BURST,
        ready.as_secs_f64() * 1e3,
        drained.as_secs_f64()
    );
    println!("{}", reads.line("  a read, during the catch-up"));
    println!("{}", replays.line("  a replay, during the catch-up"));
    println!("{}", submits.line("  a new submit, during the catch-up"));
}

async fn bench_fanout() {
    const SESSIONS: usize = 1_000;
    const ORDERS: usize = 300;
    // Every session on one account: the per-account cap is lifted.
    let bench = Bench::start(&["--max-stream-sessions", "0"]).await;
    let token = new_account(&bench.base, json!({})).await;
    let mut sockets = Vec::new();
    for _ in 0..SESSIONS {
        let mut socket = feed_client::connect(&bench.base).await;
        feed_client::auth(&mut socket, &token, None).await;
        sockets.push(socket);
    }
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    // Each order makes two events (created, accepted) for every session of the account.
    let expected = ORDERS * 2;
    let started = Instant::now();
    let base = bench.base.clone();
    let token_for_load = token.clone();
    let load = std::thread::spawn(move || run_load(&base, resting(&token_for_load, "fan", ORDERS)));
    // What each session received, how often it resumed, and why it stopped short if it did. A
    // session the engine closes as too slow (4008) does what a dashboard does: it reconnects with
    // `since` its last seq, and must get the rest with no gap.
    let readers = sockets.into_iter().map(|mut socket| {
        let (base, token) = (bench.base.clone(), token.clone());
        async move {
            let (mut last, mut resumed) = (0, 0);
            while last < expected as i64 {
                match feed_client::next(&mut socket, Duration::from_secs(30)).await {
                    Next::Event(event, _) => match event["seq"].as_i64() {
                        Some(seq) if seq == last + 1 => last = seq,
                        other => {
                            return (last, resumed, Some(format!("seq {other:?} after {last}")))
                        }
                    },
                    Next::Closed(Some(CLOSE_TOO_SLOW)) => {
                        socket = feed_client::connect(&base).await;
                        feed_client::auth(&mut socket, &token, Some(last)).await;
                        resumed += 1;
                    }
                    Next::Closed(code) => {
                        return (last, resumed, Some(format!("closed with {code:?}")))
                    }
                    Next::Nothing => return (last, resumed, Some("nothing for 30 s".to_owned())),
                }
            }
            (last, resumed, None)
        }
    });
    let sessions = join_all(readers).await;
    let wall = started.elapsed();
    let _ = load.join();
    let delivered: usize = sessions.iter().map(|(seen, ..)| *seen as usize).sum();
    let resumed: usize = sessions.iter().map(|(_, resumed, _)| resumed).sum();
    let short: std::collections::BTreeMap<&str, usize> = sessions
        .iter()
        .filter_map(|(.., why)| why.as_deref())
        .fold(Default::default(), |mut by, why| {
            *by.entry(why).or_default() += 1;
            by
        });
    assert!(
        short.is_empty(),
        "sessions stopped short, by why: {short:?} ({delivered} of {} events)",
        SESSIONS * expected
    );
    println!(
        "{:<34} {delivered:>8} events   {:>9.0} /s   to {SESSIONS} sessions ({expected} events each, {:.1} s; {resumed} resumes after 4008)",
        "feed fan-out",
        delivered as f64 / wall.as_secs_f64(),
        wall.as_secs_f64()
    );
}

#[actix_web::main]
async fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runs = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let store = match postgres_server() {
        Some(server) => format!("PostgreSQL at {server}"),
        None => "SQLite synchronous=FULL".to_owned(),
    };
    println!("orderkeeper bench: the release binary, {store}, {CONNECTIONS} connections from {CLIENT_THREADS} client threads");
    if runs("submit") {
        bench_submit().await;
    }
    if runs("venue") {
        bench_venue().await;
    }
    if runs("fills") {
        bench_fills().await;
    }
    if runs("rehydration") {
        bench_rehydration(10_000).await;
        bench_rehydration(100_000).await;
    }
    if runs("backlog") {
        bench_backlog().await;
    }
    if runs("fanout") {
        bench_fanout().await;
    }
    if runs("stops") {
        bench_stops().await;
    }
}
