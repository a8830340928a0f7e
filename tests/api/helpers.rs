use std::net::TcpListener;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use awc::http::header::HeaderMap;
use diesel::prelude::*;
use orderkeeper::config::ServeArgs;
use orderkeeper::startup::Application;
use orderkeeper::testing::db::{self, schema, DbPool};
use serde_json::{json, Value};

pub use crate::shared::{cents, client};

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const EXCHANGE_SECRET: &str = "test-exchange-secret";

pub struct TestApp {
    pub address: String,
    /// The embedded exchange's own HTTP API.
    pub exchange: String,
    pub engine: orderkeeper::testing::Engine,
    pub pool: DbPool,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        crate::database::drop_for(self._dir.path());
    }
}

pub struct Account {
    pub id: String,
    pub token: String,
}

/// A raw answer: status, headers, and the body exactly as sent.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// The owner of an order written straight into a database before any engine ran: the first
/// engine to join takes it.
pub fn unowned() -> orderkeeper::testing::db::leases::Fence {
    orderkeeper::testing::db::leases::Fence {
        engine: String::new(),
        epoch: 0,
    }
}

/// The sum of every series of `name` whose labels contain `labels` ("" for all).
pub fn sum_of(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Records that the order was sent to the exchange, as its actor would before the first send.
pub fn mark_placement_sent(
    conn: &mut orderkeeper::testing::db::DbConnection,
    order: orderkeeper::domain::OrderId,
    at: i64,
) {
    use orderkeeper::testing::orders::status::{self, StatusItem, StatusStep};
    let item = StatusItem {
        order,
        fence: unowned(),
        step: StatusStep::PlacementSent,
        now: at,
    };
    let answers = status::record(conn, &[std::sync::Arc::new(item)]).expect("the phase commits");
    assert!(matches!(answers[..], [Ok(_)]), "placement_sent recorded");
}

pub fn serve_args(database_url: &str) -> ServeArgs {
    ServeArgs {
        listen: "127.0.0.1:0".into(),
        database_url: database_url.to_owned(),
        exchange: "embedded".into(),
        exchange_listen: "127.0.0.1:0".into(),
        exchange_book: None,
        exchange_secret: Some(EXCHANGE_SECRET.into()),
        admin_token: Some(ADMIN_TOKEN.into()),
        idempotency_ttl: 86_400,
        session_close: "15:30".into(),
        session_tz: "Asia/Kolkata".into(),
        poll_interval_ms: 200,
        max_concurrent_steps: 32,
        orphan_sweep_ms: 200,
        db_writers: 4,
        db_statement_timeout_ms: 30_000,
        db_lock_timeout_ms: 3_000,
        db_idle_in_transaction_timeout_ms: 3_000,
        db_keepalive_secs: 10,
        engine_id: None,
        lease_ttl_ms: 5000,
        broker: None,
        broker_prefix: "orderkeeper".into(),
        order_rate_limit: 0,
        max_stream_sessions: 16,
        max_stored_keys: 1_000_000,
        push_replay_window: 600,
        outbox_retention: 7 * 86_400,
        audit_interval: 0,
        public_demo_token: false,
        no_demo: true,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the engine on port 0 with a fresh database, after `adjust` changes its settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ServeArgs)) -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("temp dir"), adjust).await
}

/// The database of a test app kept in `dir` (SQLite, or PostgreSQL with ORDERKEEPER_TEST_POSTGRES).
pub fn database_url(dir: &tempfile::TempDir) -> String {
    crate::database::url_for(dir.path())
}

/// Starts the engine on port 0 over whatever database `dir` already holds.
pub async fn spawn_app_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let url = database_url(&dir);
    spawn_app_at(&url, dir, adjust).await
}

/// The database a test app runs on.
pub fn database_url_of(app: &TestApp) -> String {
    crate::database::url_for(app.dir())
}

/// A second engine, `engine_id`, over the database at `url` (with an embedded exchange of its own).
pub async fn spawn_app_over(url: &str, engine_id: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_at(url, dir, |args| args.engine_id = Some(engine_id.to_owned())).await
}

/// Starts the engine on port 0 over the database at `url`, its exchange's book in `dir`.
async fn spawn_app_at(
    url: &str,
    dir: tempfile::TempDir,
    adjust: impl FnOnce(&mut ServeArgs),
) -> TestApp {
    // Errors inside the engine (an internal error's detail, say) show in the test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("error"))
        .with_test_writer()
        .try_init();
    let mut args = serve_args(url);
    // The embedded exchange's book stays in the test's own directory on either backend.
    args.exchange_book = Some(dir.path().join("exchange.db").display().to_string());
    adjust(&mut args);
    let app = Application::build(args)
        .await
        .expect("the application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let exchange = app.exchange_url.clone();
    let engine = app.engine();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        exchange,
        engine,
        pool: db::connect(url, 2).expect("test pool"),
        _dir: dir,
    }
}

/// An exchange stand-in whose `/prices` answers only after `delay`, and which answers every other
/// call 503: orders sent to it stay `pending_new`.
pub fn spawn_slow_exchange(delay: Duration) -> String {
    spawn_slow_exchange_counting(delay).0
}

/// [`spawn_slow_exchange`], with a count of the price requests it has received.
pub fn spawn_slow_exchange_counting(
    delay: Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        let counter = counter.clone();
        App::new()
            .route(
                "/prices",
                web::get().to(move || {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async move {
                        actix_web::rt::time::sleep(delay).await;
                        HttpResponse::Ok().json(json!({"INFY": "1520.50"}))
                    }
                }),
            )
            .default_service(web::to(|| async {
                HttpResponse::ServiceUnavailable().finish()
            }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}"), asked)
}

async fn finish<S>(response: Result<awc::ClientResponse<S>, awc::error::SendRequestError>) -> Answer
where
    S: futures_util::Stream<Item = Result<web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut response = response.expect("the request is answered");
    let body = response
        .body()
        .limit(4 * 1024 * 1024)
        .await
        .expect("a readable body");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: body.to_vec(),
    }
}

impl TestApp {
    /// The test's own directory (its database URL is kept there).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `/metrics`, as the OpenMetrics text it must be.
    pub async fn scrape(&self) -> String {
        let mut response = client().get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        String::from_utf8(response.body().await.unwrap().to_vec()).unwrap()
    }

    pub async fn create_account(&self, cash: &str, positions: Value) -> Account {
        let answer = self
            .post_json(
                "/v1/admin/accounts",
                ADMIN_TOKEN,
                &json!({"name": "trader", "cash": cash, "positions": positions}).to_string(),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let body = answer.json();
        Account {
            id: body["account_id"].as_str().expect("account_id").to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
        }
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &str) -> Answer {
        let request = client()
            .post(self.url(path))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Content-Type", "application/json"));
        finish(request.send_body(body.to_owned()).await).await
    }

    pub async fn put_json(&self, path: &str, token: &str, body: &str) -> Answer {
        let request = client()
            .put(self.url(path))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Content-Type", "application/json"));
        finish(request.send_body(body.to_owned()).await).await
    }

    /// `POST /v1/orders` with an optional Idempotency-Key.
    pub async fn submit(&self, token: &str, key: Option<&str>, body: &str) -> Answer {
        let mut request = client()
            .post(self.url("/v1/orders"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Content-Type", "application/json"));
        if let Some(key) = key {
            request = request.insert_header(("Idempotency-Key", key));
        }
        finish(request.send_body(body.to_owned()).await).await
    }

    /// `PATCH /v1/orders/{id}` with an optional Idempotency-Key.
    pub async fn patch(&self, token: &str, id: &str, key: Option<&str>, body: &Value) -> Answer {
        let mut request = client()
            .patch(self.url(&format!("/v1/orders/{id}")))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Content-Type", "application/json"));
        if let Some(key) = key {
            request = request.insert_header(("Idempotency-Key", key));
        }
        finish(request.send_body(body.to_string()).await).await
    }

    pub async fn get(&self, token: &str, path: &str) -> Answer {
        let request = client()
            .get(self.url(path))
            .insert_header(("Authorization", format!("Bearer {token}")));
        finish(request.send().await).await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Answer {
        let request = client()
            .delete(self.url(path))
            .insert_header(("Authorization", format!("Bearer {token}")));
        finish(request.send().await).await
    }

    pub async fn balances(&self, token: &str) -> Value {
        let answer = self.get(token, "/v1/balances").await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.json()
    }

    pub async fn orders(&self, token: &str, status: &str) -> Vec<Value> {
        let answer = self
            .get(token, &format!("/v1/orders?status={status}&limit=1000"))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.json().as_array().cloned().unwrap_or_default()
    }

    pub fn conn(&self) -> db::DbConn {
        self.pool.get().expect("a test connection")
    }

    pub fn count_orders(&self) -> i64 {
        orderkeeper::with_conn!(self.conn(), |c| schema::orders::table.count().get_result(c))
            .expect("count")
    }

    /// The idempotency keys stored for an account.
    pub fn stored_keys(&self, account: &str) -> Vec<String> {
        let account: orderkeeper::domain::AccountId = account.parse().expect("an account id");
        orderkeeper::with_conn!(self.conn(), |c| schema::idempotency_keys::table
            .filter(schema::idempotency_keys::account_id.eq(account))
            .select(schema::idempotency_keys::idem_key)
            .load::<String>(c))
        .expect("keys")
    }

    pub fn count_ledger_entries(&self, account: &str) -> i64 {
        orderkeeper::with_conn!(self.conn(), |c| schema::ledger_entries::table
            .filter(schema::ledger_entries::account_id.eq(account))
            .count()
            .get_result(c))
        .expect("count")
    }

    pub fn count_idempotency_keys(&self) -> i64 {
        orderkeeper::with_conn!(self.conn(), |c| schema::idempotency_keys::table
            .count()
            .get_result(c))
        .expect("count")
    }

    /// The account's outbox seqs, in order.
    pub fn event_seqs(&self, account: &str) -> Vec<i64> {
        orderkeeper::with_conn!(self.conn(), |c| schema::outbox::table
            .filter(schema::outbox::account_id.eq(account))
            .order(schema::outbox::seq)
            .select(schema::outbox::seq)
            .load(c))
        .expect("seqs")
    }

    /// The kinds of the account's feed events, in seq order.
    pub fn event_kinds(&self, account: &str) -> Vec<String> {
        orderkeeper::with_conn!(self.conn(), |c| schema::outbox::table
            .filter(schema::outbox::account_id.eq(account))
            .order(schema::outbox::seq)
            .select(schema::outbox::kind)
            .load(c))
        .expect("kinds")
    }

    /// Per asset, the sum of the account's ledger entries (available, reserved).
    pub fn ledger_sums(&self, account: &str) -> std::collections::BTreeMap<String, (i64, i64)> {
        let rows: Vec<(String, i64, i64)> =
            orderkeeper::with_conn!(self.conn(), |c| schema::ledger_entries::table
                .filter(schema::ledger_entries::account_id.eq(account))
                .select((
                    schema::ledger_entries::asset,
                    schema::ledger_entries::available_delta,
                    schema::ledger_entries::reserved_delta,
                ))
                .load(c))
            .expect("entries");
        let mut sums = std::collections::BTreeMap::new();
        for (asset, available, reserved) in rows {
            let entry = sums.entry(asset).or_insert((0, 0));
            entry.0 += available;
            entry.1 += reserved;
        }
        sums
    }

    /// Per asset, the stored balance (available, reserved).
    pub fn stored_balances(&self, account: &str) -> std::collections::BTreeMap<String, (i64, i64)> {
        let rows: Vec<(String, i64, i64)> =
            orderkeeper::with_conn!(self.conn(), |c| schema::balances::table
                .filter(schema::balances::account_id.eq(account))
                .select((
                    schema::balances::asset,
                    schema::balances::available,
                    schema::balances::reserved,
                ))
                .load(c))
            .expect("balances");
        rows.into_iter().map(|(a, av, re)| (a, (av, re))).collect()
    }
}

pub fn limit_buy(symbol: &str, qty: i64, price: &str) -> String {
    json!({"symbol": symbol, "side": "buy", "type": "limit", "qty": qty, "limit_price": price})
        .to_string()
}

pub fn limit_sell(symbol: &str, qty: i64, price: &str) -> String {
    json!({"symbol": symbol, "side": "sell", "type": "limit", "qty": qty, "limit_price": price})
        .to_string()
}

pub fn market(side: &str, symbol: &str, qty: i64) -> String {
    json!({"symbol": symbol, "side": side, "type": "market", "qty": qty}).to_string()
}

impl TestApp {
    /// Polls the order until `check` holds for it (10 s at most), and returns it.
    pub async fn wait_for_order(
        &self,
        token: &str,
        id: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for(token, &format!("/v1/orders/{id}"), check)
            .await
    }

    pub async fn wait_for_status(&self, token: &str, id: &str, status: &str) -> Value {
        self.wait_for_order(token, id, |o| o["status"] == status)
            .await
    }

    /// Polls the order's action log until it holds an action of `kind` (10 s at most).
    pub async fn wait_for_action(&self, token: &str, id: &str, kind: &str) {
        let path = format!("/v1/orders/{id}/actions");
        self.wait_for(token, &path, |actions| {
            actions
                .as_array()
                .is_some_and(|all| all.iter().any(|a| a["kind"] == kind))
        })
        .await;
    }

    /// Polls `GET path` until `check` holds for its JSON (10 s at most), and returns it.
    async fn wait_for(&self, token: &str, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.get(token, path).await.json();
            if check(&got) {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} never got there: {got}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl TestApp {
    /// A buy far below the market, accepted by the exchange and resting there: its JSON once `new`.
    pub async fn resting_order(&self, token: &str, key: &str, qty: i64) -> Value {
        let order = self
            .submit(token, Some(key), &limit_buy("INFY", qty, "100.00"))
            .await
            .json();
        let id = order["id"].as_str().expect("an order id").to_owned();
        self.wait_for_status(token, &id, "new").await
    }
}

impl TestApp {
    /// Moves the embedded exchange's last price of `symbol` to `price`.
    pub async fn set_price(&self, symbol: &str, price: &str) {
        let response = client()
            .put(format!("{}/admin/prices", self.exchange))
            .send_json(&json!({ symbol: price }))
            .await
            .expect("the exchange answers");
        assert_eq!(response.status(), StatusCode::OK, "price of {symbol} set");
    }

    /// Waits until the engine has read the venue's prices twice more (10 s at most). Reads are at
    /// least a second apart, and the stop check runs at the prices of each read as it is made:
    /// once this returns, the check has seen the prices as they were when it was called.
    pub async fn prices_read_twice_more(&self) {
        let reads = || async {
            let text = self.scrape().await;
            sum_of(
                &text,
                "orderkeeper_exchange_requests_total",
                "op=\"prices\"",
            )
        };
        let from = reads().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while reads().await < from + 2.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "prices not read twice"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The embedded exchange's copy of the order `client_order_id` (None: it never saw it).
    pub async fn venue_order(&self, client_order_id: &str) -> Option<Value> {
        let mut response = client()
            .get(format!("{}/orders/{client_order_id}", self.exchange))
            .send()
            .await
            .expect("the exchange answers");
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        response.json().await.ok()
    }
}

impl TestApp {
    /// Cancels an open order (202) and waits until it is `canceled`.
    pub async fn cancel_and_wait(&self, token: &str, id: &str) -> Value {
        let answer = self.delete(token, &format!("/v1/orders/{id}")).await;
        assert_eq!(
            answer.status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        self.wait_for_status(token, id, "canceled").await
    }
}

/// Fault points are configured process-wide: tests that arm them take turns.
pub async fn fault_points() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

impl TestApp {
    /// POSTs `event` to the push endpoint, signed as the exchange signs it.
    pub async fn push(&self, event: &Value) -> StatusCode {
        let body = event.to_string();
        let signature = orderkeeper::exchange::signature::sign(EXCHANGE_SECRET, body.as_bytes());
        client()
            .post(self.url("/v1/exchange/events"))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Signature", signature))
            .send_body(body)
            .await
            .expect("the push is answered")
            .status()
    }

    /// The order's alarms: (kind, detail, how often seen).
    pub fn alarms_of(&self, order: &str) -> Vec<(String, String, i64)> {
        orderkeeper::testing::db::alarms::of_order(
            &mut self.conn(),
            order.parse().expect("an order id"),
        )
        .expect("alarms")
    }

    pub async fn readyz(&self) -> StatusCode {
        client()
            .get(self.url("/readyz"))
            .send()
            .await
            .expect("/readyz answers")
            .status()
    }
}

/// A push event carrying one fill.
pub fn fill_event(event_id: &str, cid: &str, fill_id: &str, qty: i64, price: &str) -> Value {
    json!({
        "event_id": event_id, "type": "fill", "client_order_id": cid, "exchange_order_id": "X-test",
        "fill": {"fill_id": fill_id, "qty": qty, "price": price, "ts": chrono::Utc::now().to_rfc3339()}
    })
}

/// A limit buy of `qty` INFY at `price` cents, as `POST /v1/orders` would submit it.
pub fn limit_submission(
    account: orderkeeper::domain::AccountId,
    key: &str,
    qty: i64,
    price: i64,
) -> orderkeeper::testing::orders::submit::Submission {
    use orderkeeper::domain::{Cents, NewOrder, OrderType, Side};
    use orderkeeper::testing::orders::submit::Submission;
    use orderkeeper::testing::IdempotencyKey;
    Submission {
        account,
        key: IdempotencyKey::parse(key.as_bytes()).expect("a valid key"),
        fingerprint: format!("fingerprint of {key}"),
        order: NewOrder::new("INFY", Side::Buy, OrderType::Limit, qty, Some(Cents(price)))
            .expect("a valid order"),
        price: Some(Cents(price)),
        last_price: None,
        now: db::now_micros(),
        ttl_micros: 1_000_000_000,
        max_stored_keys: 0,
        expires_at: None,
    }
}

/// The kinds of an order's actions, in order, from `GET /v1/orders/{id}/actions`.
pub fn action_kinds(actions: &Value) -> Vec<String> {
    actions
        .as_array()
        .expect("a list of actions")
        .iter()
        .map(|a| a["kind"].as_str().expect("a kind").to_owned())
        .collect()
}

/// One submission recorded alone, as a batch of one.
pub fn submit_one(
    conn: &mut orderkeeper::testing::db::DbConnection,
    submission: &orderkeeper::testing::orders::submit::Submission,
    owner: &orderkeeper::testing::db::leases::Fence,
) -> Result<orderkeeper::testing::orders::submit::Submitted, orderkeeper::testing::OrderError> {
    let mut answers = orderkeeper::testing::orders::submit::submit(conn, &[(submission, owner)])?;
    answers.pop().expect("one answer for one submission")
}
