//! Three engines on one database and one simulator with faults on. Orders go to all three (a
//! client whose engine dies retries its key on another), cancels go to an engine other than the
//! one that took the order, and one engine is killed with SIGKILL in the middle of the load. The
//! others must take its orders over within seconds and finish them, with the books exact.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::books::{self, Opening};
use crate::feed_client;
use crate::processes::{self, Engine, Simulator};
use crate::shared::cents;

const ACCOUNTS: usize = 3;
const ORDERS_PER_ACCOUNT: usize = 45;
const SYMBOLS: &[&str] = &["INFY", "TCS", "SBIN"];
const OPENING_CASH: i64 = 1_000_000_000;
const OPENING_SHARES: i64 = 500;
/// The engine killed in the middle (not the one the simulator pushes to).
const VICTIM: usize = 1;

fn price_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Market orders, marketable limits, and limits far away that rest until cancelled.
fn body(i: usize, prices: &BTreeMap<String, i64>) -> Value {
    let symbol = SYMBOLS[i % SYMBOLS.len()];
    let last = prices[symbol];
    let side = if i.is_multiple_of(2) { "buy" } else { "sell" };
    let qty = 1 + i as i64 % 7;
    match (i % 3, side) {
        (0, _) => json!({"symbol": symbol, "side": side, "type": "market", "qty": qty}),
        (1, "buy") => {
            json!({"symbol": symbol, "side": side, "type": "limit", "qty": qty, "limit_price": price_text(last * 12 / 10)})
        }
        (1, _) => {
            json!({"symbol": symbol, "side": side, "type": "limit", "qty": qty, "limit_price": price_text(last * 8 / 10)})
        }
        (_, "buy") => {
            json!({"symbol": symbol, "side": side, "type": "limit", "qty": qty, "limit_price": price_text(last / 2)})
        }
        _ => {
            json!({"symbol": symbol, "side": side, "type": "limit", "qty": qty, "limit_price": price_text(last * 2)})
        }
    }
}

/// Submits under `key`, first to engine `first`, moving on to the next engine while one does not
/// answer (it was killed): the key is the same order whichever engine answers.
async fn submit_anywhere(
    urls: &[String],
    alive: &[std::cell::Cell<bool>],
    first: usize,
    token: &str,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    let client = processes::client();
    for attempt in 0..600 {
        let at = (first + attempt) % urls.len();
        if !alive[at].get() {
            continue;
        }
        let request = client
            .post(format!("{}/v1/orders", urls[at]))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Idempotency-Key", key));
        if let Some((status, answer)) = processes::read_json(request, Some(body)).await {
            if status != 409 && status < 500 {
                return (status, answer);
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{key} was never answered by any engine");
}

/// For an order left open: who owns it, the engines' leases, and what each engine's log says of
/// it, so a stuck order explains itself.
fn explain_open_orders(database_url: &str, engines: &[Engine]) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let mut conn = orderkeeper::testing::db::establish(database_url).expect("the database opens");
    let query = "SELECT id || ' ' || status || ' owner ' || owner || ' epoch ' || owner_epoch AS line                  FROM orders WHERE status IN ('pending_new', 'new', 'partially_filled', 'pending_cancel')                  UNION ALL SELECT 'engine ' || id || ' epoch ' || epoch || ' expires ' || expires_at AS line                  FROM engines";
    let rows: Vec<Row> = orderkeeper::with_conn!(conn, |c| diesel::sql_query(query).load::<Row>(c))
        .unwrap_or_default();
    let mut lines: Vec<String> = rows.into_iter().map(|r| r.line).collect();
    let ids: Vec<String> = lines
        .iter()
        .filter(|l| !l.starts_with("engine "))
        .filter_map(|l| l.split(' ').next().map(str::to_owned))
        .collect();
    for (n, engine) in engines.iter().enumerate() {
        let log = std::fs::read_to_string(engine.log_path()).unwrap_or_default();
        for line in log.lines() {
            if ids.iter().any(|id| line.contains(id.as_str())) || line.contains("lease") {
                lines.push(format!("engine {n}: {line}"));
            }
        }
    }
    lines
}

pub async fn open_orders_of(database_url: &str, owner: &str) -> i64 {
    let url = database_url.to_owned();
    let owner = owner.to_owned();
    actix_web::rt::task::spawn_blocking(move || {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = orderkeeper::testing::db::establish(&url).expect("the database opens");
        let query = format!(
            "SELECT COUNT(*) AS n FROM orders WHERE owner = '{owner}' \
             AND status IN ('pending_new', 'new', 'partially_filled', 'pending_cancel')"
        );
        orderkeeper::with_conn!(conn, |c| diesel::sql_query(&query).get_result::<Count>(c))
            .map(|c| c.n)
            .unwrap_or(-1)
    })
    .await
    .unwrap_or(-1)
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn three_engines_share_the_work_and_finish_a_killed_ones_orders() {
    // Several engines share a PostgreSQL database; a SQLite file belongs to one engine.
    crate::database::require_postgres();
    let dir = tempfile::tempdir().expect("temp dir");
    let ports: Vec<u16> = (0..3).map(|_| processes::free_port()).collect();
    let sim = Simulator::start(ports[0], 7, true);
    let flags = ["--lease-ttl-ms", "1500"];
    let mut engines: Vec<Engine> = ports
        .iter()
        .map(|port| Engine::start_sharing(dir.path(), *port, &sim.url(), &flags))
        .collect();
    let urls: Vec<String> = engines.iter().map(Engine::url).collect();
    let alive: Vec<std::cell::Cell<bool>> = (0..3).map(|_| std::cell::Cell::new(true)).collect();

    let positions: BTreeMap<&str, i64> = SYMBOLS.iter().map(|s| (*s, OPENING_SHARES)).collect();
    let mut tokens = Vec::new();
    let mut openings = HashMap::new();
    for (i, engine) in engines.iter().enumerate().take(ACCOUNTS) {
        let body = json!({"name": format!("trader-{i}"), "cash": price_text(OPENING_CASH), "positions": positions});
        let created = engine.admin_post("/v1/admin/accounts", &body).await;
        tokens.push(created["token"].as_str().expect("a token").to_owned());
        openings.insert(
            created["account_id"].as_str().expect("an id").to_owned(),
            Opening {
                cash: OPENING_CASH,
                shares: positions
                    .iter()
                    .map(|(s, q)| ((*s).to_owned(), *q))
                    .collect(),
            },
        );
    }
    let prices: BTreeMap<String, i64> = sim
        .prices()
        .await
        .iter()
        .map(|(s, p)| (s.clone(), cents(p)))
        .collect();

    // Each account's client sends its orders round the engines; every third resting order is
    // cancelled through the next engine over.
    let submitted = std::cell::Cell::new(0_usize);
    let streams = tokens.iter().enumerate().map(|(a, token)| {
        let (urls, alive, prices, submitted) = (&urls, &alive, &prices, &submitted);
        async move {
            let (mut wrong, mut cancelled) = (Vec::new(), Vec::new());
            for i in 0..ORDERS_PER_ACCOUNT {
                let key = format!("acct{a}-order{i}");
                let order = body(i, prices);
                let first = (a + i) % urls.len();
                let (status, answer) =
                    submit_anywhere(urls, alive, first, token, &key, &order).await;
                submitted.set(submitted.get() + 1);
                match status {
                    201 => {}
                    422 => continue,
                    other => {
                        wrong.push(format!("{key}: {other} {answer}"));
                        continue;
                    }
                }
                // The same key on another engine is the same order.
                let other = (first + 1) % urls.len();
                let (again, replay) =
                    submit_anywhere(urls, alive, other, token, &key, &order).await;
                if again != 201 || replay["id"] != answer["id"] {
                    wrong.push(format!("{key}: {} then {again} {replay}", answer["id"]));
                }
                if i % 3 == 2 && i.is_multiple_of(2) {
                    // Cancelled through a third engine, which may not own the order.
                    let path = format!("/v1/orders/{}", answer["id"].as_str().unwrap_or(""));
                    let canceller = (other + 1) % urls.len();
                    if alive[canceller].get() {
                        match processes::delete(&urls[canceller], token, &path).await {
                            Some((202 | 200, order))
                                if ["pending_cancel", "canceled"]
                                    .contains(&order["status"].as_str().unwrap_or("")) =>
                            {
                                cancelled.push(path)
                            }
                            Some((422, refusal))
                                if refusal["error"]["code"] == "order_not_cancelable" => {}
                            // The engine was killed while it answered.
                            None if !alive[canceller].get() => {}
                            other => wrong.push(format!(
                                "{key}: cancel through engine {canceller} answered {other:?}"
                            )),
                        }
                    }
                }
            }
            (wrong, cancelled)
        }
    });
    let engines_ref = &mut engines;
    let (alive_ref, submitted_ref) = (&alive, &submitted);
    let killer = async move {
        while submitted_ref.get() < ACCOUNTS * ORDERS_PER_ACCOUNT / 2 {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        alive_ref[VICTIM].set(false);
        engines_ref[VICTIM].kill();
        Instant::now()
    };
    let (answers, killed_at) = futures_util::future::join(join_all(streams), killer).await;
    let mut wrong: Vec<String> = Vec::new();
    let mut cancelled: Vec<(usize, String)> = Vec::new();
    for (a, (found, paths)) in answers.into_iter().enumerate() {
        wrong.extend(found);
        cancelled.extend(paths.into_iter().map(|path| (a, path)));
    }
    assert!(!cancelled.is_empty(), "no cancel crossed engines");

    // The victim's open orders pass to the others within seconds.
    let victim = format!("engine@127.0.0.1:{}", ports[VICTIM]);
    let database_url = engines[0].database_url().to_owned();
    loop {
        let left = open_orders_of(&database_url, &victim).await;
        if left == 0 {
            break;
        }
        if killed_at.elapsed() > Duration::from_secs(15) {
            wrong.push(format!(
                "{left} open orders still held by the killed engine"
            ));
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the killed engine's orders were taken over {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );

    // Everything still open is cancelled through the engines left, and ends.
    let deadline = Instant::now() + Duration::from_secs(120);
    'ending: loop {
        let mut open = 0;
        for (a, token) in tokens.iter().enumerate() {
            let via = &engines[if a % 2 == 0 { 0 } else { 2 }];
            let orders = via.get(token, "/v1/orders?status=open&limit=1000").await;
            for order in orders.as_array().cloned().unwrap_or_default() {
                open += 1;
                if order["status"] != "pending_cancel" {
                    let path = format!("/v1/orders/{}", order["id"].as_str().unwrap_or_default());
                    via.delete(token, &path).await;
                }
            }
        }
        if open == 0 {
            break 'ending;
        }
        if Instant::now() > deadline {
            wrong.push(format!("{open} orders still open after two minutes"));
            wrong.extend(explain_open_orders(&database_url, &engines));
            break 'ending;
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
    // A cancel one engine accepted for an order another owned was carried out: the order ended
    // canceled, or filled if its last fill came first.
    for (a, path) in &cancelled {
        let order = engines[0].get(&tokens[*a], path).await;
        if !["canceled", "filled"].contains(&order["status"].as_str().unwrap_or("")) {
            wrong.push(format!("{path}: cancel accepted, yet it ended {order}"));
        }
    }
    sim.clear_faults().await;
    let exchange = sim.orders().await;
    wrong.extend(books::check(&database_url, &exchange, &openings));
    // Takeovers were counted by whichever engine made them.
    let mut taken = 0.0;
    for at in [0, 2] {
        let metrics = processes::metrics_text(&urls[at]).await;
        taken += processes::metric(&metrics, "orderkeeper_orders_taken_over_total");
    }
    if taken < 1.0 {
        wrong.push("no engine counted a takeover".into());
    }
    assert!(wrong.is_empty(), "\n  {}", wrong.join("\n  "));
    eprintln!(
        "three engines: {} orders on the exchange, one engine killed, {taken} orders taken over",
        exchange.len()
    );
}

/// The same key sent to three engines at once: the database decides, so it is one order, and
/// every engine answers with it (or says the key is in use, never a second order or an error).
#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn one_key_sent_to_three_engines_at_once_is_one_order() {
    crate::database::require_postgres();
    const KEYS: usize = 30;
    let dir = tempfile::tempdir().expect("temp dir");
    let ports: Vec<u16> = (0..3).map(|_| processes::free_port()).collect();
    let sim = Simulator::start(ports[0], 3, false);
    let engines: Vec<Engine> = ports
        .iter()
        .map(|port| Engine::start_sharing(dir.path(), *port, &sim.url(), &[]))
        .collect();
    let body = json!({"name": "racer", "cash": "100000.00", "positions": {}});
    let created = engines[0].admin_post("/v1/admin/accounts", &body).await;
    let token = created["token"].as_str().expect("a token").to_owned();
    for engine in &engines[1..] {
        engine.get(&token, "/v1/orders").await;
    }
    // A dashboard on the third engine follows the account, whichever engine writes its events.
    let mut feed = feed_client::connect(&engines[2].url()).await;
    feed_client::auth(&mut feed, &token, None).await;
    let order =
        json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 1, "limit_price": "1.00"});
    let client = processes::client();
    let mut wrong = Vec::new();
    for k in 0..KEYS {
        let key = format!("race-{k}");
        let sends = engines.iter().map(|engine| {
            let request = client
                .post(format!("{}/v1/orders", engine.url()))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .insert_header(("Idempotency-Key", key.as_str()));
            processes::read_json(request, Some(&order))
        });
        let answers = join_all(sends).await;
        let mut ids = std::collections::BTreeSet::new();
        for answer in answers {
            match answer {
                Some((201, body)) => {
                    ids.insert(body["id"].as_str().unwrap_or("").to_owned());
                }
                Some((409, body)) if body["error"]["code"] == "idempotency_key_in_use" => {}
                other => wrong.push(format!("{key}: {other:?}")),
            }
        }
        if ids.len() != 1 {
            wrong.push(format!("{key}: orders {ids:?}"));
        }
    }
    let held = engines[2]
        .get(&token, "/v1/orders?status=all&limit=1000")
        .await;
    let held = held.as_array().map_or(0, Vec::len);
    if held != KEYS {
        wrong.push(format!("{held} orders for {KEYS} keys"));
    }
    // Every order's `order.created` and `order.accepted`, in seq order with no gap.
    let events = feed_client::events(&mut feed, 2 * KEYS).await;
    let seqs: Vec<i64> = events
        .iter()
        .map(|(event, _)| event["seq"].as_i64().unwrap_or(-1))
        .collect();
    if seqs != (1..=2 * KEYS as i64).collect::<Vec<_>>() {
        wrong.push(format!("the feed on the third engine gave seqs {seqs:?}"));
    }
    assert!(wrong.is_empty(), "\n  {}", wrong.join("\n  "));
}
