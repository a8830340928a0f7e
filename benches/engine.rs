//! Load and recovery figures for the real binary: `cargo bench`. Prints a table; nothing is
//! asserted here (tests assert behaviour, this measures speed).
//!
//! - submit: new orders through `POST /v1/orders` (one SQLite transaction each, fsynced), with
//!   16 clients at once;
//! - replay: the same requests again, answered from the stored idempotency keys;
//! - feed: a WebSocket client replaying every event of the account from seq 1;
//! - recovery: SIGKILL with every order open, restart, time until `/readyz` answers 200.

#[path = "../tests/common/feed_client.rs"]
mod feed_client;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_orderkeeper");
const ORDERS: usize = 2000;
const CLIENTS: usize = 16;
const ADMIN: &str = "bench-admin";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port")
}

fn start(dir: &std::path::Path, port: u16, sim_port: u16) -> Child {
    Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--exchange-listen",
            &format!("127.0.0.1:{sim_port}"),
        ])
        .args([
            "--database-url",
            &format!("sqlite://{}", dir.join("bench.db").display()),
        ])
        .args([
            "--admin-token",
            ADMIN,
            "--no-demo",
            "--poll-interval-ms",
            "10000",
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("the engine starts")
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Sends every order once, `CLIENTS` at a time; returns each request's latency and the wall time.
async fn submit_all(
    base: &str,
    token: &str,
    bodies: &[(String, Value)],
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let lanes = (0..CLIENTS).map(|lane| async move {
        let client = client();
        let mut latencies = Vec::new();
        for (key, body) in bodies.iter().skip(lane).step_by(CLIENTS) {
            let sent = Instant::now();
            let mut response = client
                .post(format!("{base}/v1/orders"))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .insert_header(("Idempotency-Key", key.as_str()))
                .send_json(body)
                .await
                .expect("answered");
            let _ = response.body().await;
            assert!(
                response.status().is_success(),
                "{key}: {}",
                response.status()
            );
            latencies.push(sent.elapsed());
        }
        latencies
    });
    let mut latencies: Vec<Duration> = join_all(lanes).await.into_iter().flatten().collect();
    latencies.sort();
    (latencies, started.elapsed())
}

fn report(name: &str, latencies: &[Duration], wall: Duration) {
    println!(
        "{name:<10} {:>6} requests  {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        latencies.len(),
        latencies.len() as f64 / wall.as_secs_f64(),
        percentile(latencies, 0.50).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
    );
}

#[actix_web::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (port, sim_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let mut engine = start(dir.path(), port, sim_port);
    until_ready(&base).await;

    let mut created = client()
        .post(format!("{base}/v1/admin/accounts"))
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .send_json(&json!({"name": "bench", "cash": "100000000.00"}))
        .await
        .expect("account");
    let account: Value = created.json().await.expect("account JSON");
    let token = account["token"].as_str().expect("token").to_owned();

    // Limits far below the market: every order stays open, so recovery has them all to pick up.
    let bodies: Vec<(String, Value)> = (0..ORDERS)
        .map(|i| (format!("bench-{i}"), json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 1, "limit_price": "10.00"})))
        .collect();

    println!(
        "orderkeeper bench: {ORDERS} orders, {CLIENTS} concurrent clients, SQLite synchronous=FULL"
    );
    let (latencies, wall) = submit_all(&base, &token, &bodies).await;
    report("submit", &latencies, wall);
    let (latencies, wall) = submit_all(&base, &token, &bodies).await;
    report("replay", &latencies, wall);

    // Let the actors place everything, so each order has created + accepted events.
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    let mut feed = feed_client::connect(&base).await;
    let started = Instant::now();
    feed_client::auth(&mut feed, &token, Some(0)).await;
    let mut events = 0;
    while let feed_client::Next::Event(..) =
        feed_client::next(&mut feed, Duration::from_millis(500)).await
    {
        events += 1;
    }
    let wall = started.elapsed().saturating_sub(Duration::from_millis(500));
    println!(
        "feed       {events:>6} events    {:>8.0} events/s (replay from seq 1)",
        events as f64 / wall.as_secs_f64()
    );

    let _ = engine.kill();
    let _ = engine.wait();
    let restarted = Instant::now();
    let mut engine = start(dir.path(), port, free_port());
    until_ready(&base).await;
    println!(
        "recovery   {ORDERS:>6} open orders  ready in {:.0} ms after SIGKILL and restart",
        restarted.elapsed().as_secs_f64() * 1e3
    );
    let _ = engine.kill();
    let _ = engine.wait();
}
