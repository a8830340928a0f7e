//! The first ten minutes: `orderkeeper serve` as the README starts it (embedded exchange, SQLite
//! in the working directory, a generated admin token), killed with SIGKILL and started again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::books::{self, Opening};
use crate::processes::{free_port, read_json};
use crate::shared::client;

const BIN: &str = env!("CARGO_BIN_EXE_orderkeeper");

/// `orderkeeper serve` with nothing but its two listen addresses, run in `dir`.
struct DefaultServe {
    dir: PathBuf,
    port: u16,
    exchange_port: u16,
    child: Option<Child>,
    starts: u32,
}

impl DefaultServe {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            port: free_port(),
            exchange_port: free_port(),
            child: None,
            starts: 0,
        }
    }

    /// Starts it with `extra` flags; returns what it printed once it is ready.
    async fn start(&mut self, extra: &[&str]) -> String {
        self.starts += 1;
        let stdout = self.dir.join(format!("stdout-{}.txt", self.starts));
        let mut command = Command::new(BIN);
        for (name, _) in std::env::vars() {
            if name.starts_with("ORDERKEEPER_") || name == "DATABASE_URL" {
                command.env_remove(name);
            }
        }
        let child = command
            .current_dir(&self.dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args([
                "--exchange-listen",
                &format!("127.0.0.1:{}", self.exchange_port),
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(Stdio::from(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("serve.log"))
                    .expect("log file"),
            ))
            .spawn()
            .expect("serve starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((200, _)) = read_json(client().get(self.url("/readyz")), None).await {
                break;
            }
            assert!(Instant::now() < deadline, "never ready: {}", self.log());
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        std::fs::read_to_string(stdout).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let request = client()
            .request(method.parse().expect("a method"), self.url(path))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Idempotency-Key", uuid::Uuid::new_v4().to_string()));
        read_json(request, body).await.expect("answered")
    }

    /// The status `GET /v1/admin/audit` answers with `token`.
    async fn admin_status(&self, token: &str) -> u16 {
        self.call("GET", "/v1/admin/audit", token, None).await.0
    }

    /// The embedded exchange's whole record.
    async fn exchange_orders(&self) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/orders", self.exchange_port);
        let (_, orders) = read_json(client().get(url), None).await.expect("orders");
        orders.as_array().cloned().expect("a list")
    }

    /// Polls until every order in `ids` has a status `done` accepts.
    async fn wait_until(&self, token: &str, ids: &[String], done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for id in ids {
            loop {
                let (_, order) = self
                    .call("GET", &format!("/v1/orders/{id}"), token, None)
                    .await;
                if done(order["status"].as_str().unwrap_or_default()) {
                    break;
                }
                assert!(Instant::now() < deadline, "{id} stuck: {order}");
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Drop for DefaultServe {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The token a line `<label>: <token> …` of `printed` gives.
fn printed_token(printed: &str, label: &str) -> Option<String> {
    printed
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// Statuses straight from the engine's SQLite file: how many orders stand where.
fn statuses(database: &Path) -> HashMap<String, i64> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn =
        diesel::SqliteConnection::establish(&database.display().to_string()).expect("opens");
    let mut found: HashMap<String, i64> =
        diesel::sql_query("SELECT status, count(*) AS n FROM orders GROUP BY status")
            .load::<Row>(&mut conn)
            .expect("statuses")
            .into_iter()
            .map(|r| (r.status, r.n))
            .collect();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let partly = diesel::sql_query(
        "SELECT count(*) AS n FROM orders WHERE filled_qty > 0 AND filled_qty < qty",
    )
    .get_result::<Count>(&mut conn)
    .expect("partly filled");
    found.insert("partly filled".into(), partly.n);
    found.insert("alarms".into(), alarms(database).len() as i64);
    found
}

/// Every alarm the engine stored, as `kind: detail`.
fn alarms(database: &Path) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let mut conn =
        diesel::SqliteConnection::establish(&database.display().to_string()).expect("opens");
    diesel::sql_query("SELECT kind, detail FROM alarms")
        .load::<Row>(&mut conn)
        .expect("alarms")
        .into_iter()
        .map(|r| format!("{}: {}", r.kind, r.detail))
        .collect()
}

const CASH: &str = "1000000000.00";

#[actix_web::test]
async fn the_default_serve_carries_every_order_on_after_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut serve = DefaultServe::new(dir.path());
    let printed = serve.start(&[]).await;
    let admin = printed_token(&printed, "admin token: ").expect("an admin token is printed");
    assert!(
        printed_token(&printed, "demo account token: ").is_some(),
        "{printed}"
    );
    let (status, account) = serve
        .call(
            "POST",
            "/v1/admin/accounts",
            &admin,
            Some(&json!({"name": "t", "cash": CASH})),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let token = account["token"].as_str().expect("token").to_owned();

    // Orders that rest on the exchange.
    let mut resting = Vec::new();
    for _ in 0..3 {
        let body = json!({"symbol": "SBIN", "side": "buy", "type": "limit", "qty": 5, "limit_price": "1.00"});
        let (status, order) = serve.call("POST", "/v1/orders", &token, Some(&body)).await;
        assert_eq!(status, 201, "{order}");
        resting.push(order["id"].as_str().expect("id").to_owned());
    }
    serve.wait_until(&token, &resting, |s| s == "new").await;
    // Market orders large enough to fill in many chunks: some are partly filled, and the last
    // ones not yet placed, when the kill lands.
    let market = json!({"symbol": "SBIN", "side": "buy", "type": "market", "qty": 3000});
    let mut filling = Vec::new();
    for i in 0..24 {
        let (status, order) = serve
            .call("POST", "/v1/orders", &token, Some(&market))
            .await;
        assert_eq!(status, 201, "{order}");
        filling.push(order["id"].as_str().expect("id").to_owned());
        if i == 11 {
            // Wait until the engine has recorded a partial fill of one of them.
            let deadline = Instant::now() + Duration::from_secs(20);
            while statuses(&dir.path().join("orderkeeper.db"))["partly filled"] == 0 {
                assert!(Instant::now() < deadline, "nothing partly filled");
                actix_web::rt::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    serve.kill();

    let at_kill = statuses(&dir.path().join("orderkeeper.db"));
    assert!(at_kill["partly filled"] > 0, "{at_kill:?}");
    assert!(
        at_kill.get("pending_new").copied().unwrap_or(0) > 0,
        "{at_kill:?}"
    );
    assert_eq!(at_kill["alarms"], 0, "{at_kill:?}");

    let printed = serve.start(&[]).await;
    assert_eq!(
        printed_token(&printed, "admin token: "),
        None,
        "no new token: {printed}"
    );
    serve.wait_until(&token, &filling, |s| s == "filled").await;
    // The exchange still holds the resting orders: they stay open, and cancel on the venue.
    serve.wait_until(&token, &resting, |s| s == "new").await;
    for id in &resting {
        let (status, _) = serve
            .call("DELETE", &format!("/v1/orders/{id}"), &token, None)
            .await;
        assert_eq!(status, 202);
    }
    serve
        .wait_until(&token, &resting, |s| s == "canceled")
        .await;

    let (status, audit) = serve.call("GET", "/v1/admin/audit", &admin, None).await;
    assert_eq!(status, 200, "the admin token outlives the restart: {audit}");
    assert_eq!(audit["ok"], true, "{audit}");
    let exchange_checked = audit["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .any(|c| c["name"] == "fills_equal_exchange" && c["rows"].as_i64() > Some(0));
    assert!(exchange_checked, "the audit read the exchange: {audit}");
    let (_, health) = serve.call("GET", "/healthz", &admin, None).await;
    let raised = alarms(&dir.path().join("orderkeeper.db"));
    assert_eq!(health["alarms_raised"], 0, "{health} {raised:?}");
    let (_, balances) = serve.call("GET", "/v1/balances", &token, None).await;
    assert_eq!(balances["cash"]["reserved"], "0.00", "{balances}");

    let exchange = serve.exchange_orders().await;
    assert_eq!(exchange.len(), resting.len() + filling.len());
    let openings = HashMap::from([(
        account["account_id"].as_str().expect("id").to_owned(),
        Opening {
            cash: crate::shared::cents(&json!(CASH)),
            shares: Default::default(),
        },
    )]);
    let database = format!("sqlite://{}", dir.path().join("orderkeeper.db").display());
    let wrong = books::check(&database, &exchange, &openings);
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(
        alarms(&dir.path().join("orderkeeper.db")),
        Vec::<String>::new()
    );
}

#[actix_web::test]
async fn the_admin_token_is_kept_until_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut serve = DefaultServe::new(dir.path());
    let first = printed_token(&serve.start(&[]).await, "admin token: ").expect("printed");
    assert_eq!(serve.admin_status(&first).await, 200);
    serve.kill();
    serve.start(&[]).await;
    assert_eq!(
        serve.admin_status(&first).await,
        200,
        "kept across a restart"
    );
    serve.kill();
    serve.start(&["--admin-token", "rotated-token"]).await;
    assert_eq!(serve.admin_status(&first).await, 401, "replaced");
    assert_eq!(serve.admin_status("rotated-token").await, 200);
    serve.kill();
    serve.start(&[]).await;
    assert_eq!(
        serve.admin_status("rotated-token").await,
        200,
        "the new one is kept"
    );
    assert_eq!(serve.admin_status(&first).await, 401);
}
