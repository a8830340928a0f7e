use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use orderkeeper::config::{FaultArgs, SimArgs};
use orderkeeper::exchange::sim;
use serde_json::Value;

pub use crate::shared::client;

pub const SECRET: &str = "sim-test-secret";

/// A push as the receiver saw it: the signature header and the raw body.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: Option<String>,
    pub body: Vec<u8>,
    /// The status the receiver answered this delivery with.
    pub answered: u16,
    /// The sender's end of the connection the push came on.
    pub peer: Option<std::net::SocketAddr>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON push")
    }
}

pub type Inbox = Arc<Mutex<Vec<Received>>>;

/// A webhook receiver that records every push and answers 200.
pub fn spawn_receiver() -> (String, Inbox) {
    spawn_failing_receiver(0)
}

/// A receiver that answers its first `failures` deliveries 503, then 200; it records them all.
pub fn spawn_failing_receiver(failures: usize) -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let data = web::Data::new(inbox.clone());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/hook",
            web::post().to(
                move |inbox: web::Data<Inbox>, req: HttpRequest, body: web::Bytes| async move {
                    let signature = req
                        .headers()
                        .get("X-Signature")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let mut inbox = inbox.lock().expect("inbox");
                    let answered = if inbox.len() < failures { 503 } else { 200 };
                    inbox.push(Received {
                        signature,
                        body: body.to_vec(),
                        answered,
                        peer: req.peer_addr(),
                    });
                    // A body, as the engine answers a push with one.
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(answered).expect("a status"),
                    )
                    .json(serde_json::json!({"status": "recorded"}))
                },
            ),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), inbox)
}

/// Starts a seeded simulator on port 0; returns its base URL.
pub fn spawn_sim(faults: FaultArgs, webhook: Option<&str>, seed: u64) -> String {
    spawn_sim_with(faults, webhook, seed, None).0
}

/// A seeded simulator that also speaks FIX on a port of its own: its base URL and that port.
pub fn spawn_fix_sim(faults: FaultArgs, seed: u64) -> (String, u16) {
    let (url, fix_port) = spawn_sim_with(faults, None, seed, Some("127.0.0.1:0"));
    (url, fix_port.expect("a FIX port"))
}

fn spawn_sim_with(
    faults: FaultArgs,
    webhook: Option<&str>,
    seed: u64,
    fix_listen: Option<&str>,
) -> (String, Option<u16>) {
    let args = SimArgs {
        listen: "127.0.0.1:0".into(),
        webhook_url: webhook.map(str::to_owned),
        webhook_secret: webhook.map(|_| SECRET.to_owned()),
        seed: Some(seed),
        fill_interval_ms: 10,
        book_file: None,
        fix_listen: fix_listen.map(str::to_owned),
        fix_target: sim::ENGINE_COMP_ID.into(),
        faults,
    };
    let sim = sim::start(&args, true).expect("the simulator starts");
    let url = format!("http://127.0.0.1:{}", sim.port);
    actix_web::rt::spawn(sim.server);
    (url, sim.fix_port)
}

pub async fn get_json(url: &str) -> (u16, Value) {
    let mut response = client().get(url).send().await.expect("answered");
    let body = response.body().await.expect("body");
    (
        response.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

pub async fn send_json(method: &str, url: &str, body: &Value) -> (u16, Value) {
    let request = match method {
        "POST" => client().post(url),
        "PUT" => client().put(url),
        _ => client().delete(url),
    };
    let mut response = request.send_json(body).await.expect("answered");
    let bytes = response.body().await.expect("body");
    (
        response.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub async fn delete(url: &str) -> (u16, Value) {
    let mut response = client().delete(url).send().await.expect("answered");
    let bytes = response.body().await.expect("body");
    (
        response.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Polls `check` until it holds or `limit` passes.
pub async fn eventually<F: FnMut() -> bool>(limit: Duration, mut check: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

pub fn order(cid: &str, side: &str, order_type: &str, qty: i64, limit: Option<&str>) -> Value {
    let mut body = serde_json::json!({"client_order_id": cid, "symbol": "INFY", "side": side, "type": order_type, "qty": qty});
    if let Some(limit) = limit {
        body["limit_price"] = Value::from(limit);
    }
    body
}
