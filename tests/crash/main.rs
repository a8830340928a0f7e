//! The crash test: the real binary and a separate `orderkeeper exchange-sim` process with faults on,
//! a few hundred orders from several accounts, the engine killed with SIGKILL several times while
//! they stream in, then every order driven to the end and every account checked against the
//! exchange's own record. Seeded: set ORDERKEEPER_TEST_SEED to replay a run.

#[path = "../common/books.rs"]
mod books;
#[path = "../common/feed_client.rs"]
mod feed_client;
mod matrix;
mod processes;
mod restarts;
mod simulation;

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use processes::{Engine, Simulator};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

const ACCOUNTS: usize = 4;
const ORDERS_PER_ACCOUNT: usize = 70;
const KILLS: usize = 3;
const SYMBOLS: &[&str] = &["INFY", "TCS", "RELIANCE", "SBIN", "HDFCBANK"];

fn cents(text: &Value) -> i64 {
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("not a money string: {text}"));
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    whole.parse::<i64>().unwrap() * 100 + format!("{frac:0<2}").parse::<i64>().unwrap()
}

/// (fill id, qty, price in cents) of a list of fills, sorted by fill id.
fn fill_list(fills: &Value) -> Vec<(String, i64, i64)> {
    let mut list: Vec<_> = fills
        .as_array()
        .map(|fills| {
            fills
                .iter()
                .map(|f| {
                    (
                        f["fill_id"].as_str().unwrap_or_default().to_owned(),
                        f["qty"].as_i64().unwrap_or(0),
                        cents(&f["price"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    list.sort();
    list
}

/// One order to submit, with the key its client retries under.
struct Planned {
    key: String,
    body: Value,
}

fn plan_orders(rng: &mut StdRng, prices: &BTreeMap<String, i64>, account: usize) -> Vec<Planned> {
    (0..ORDERS_PER_ACCOUNT)
        .map(|i| {
            let symbol = SYMBOLS[rng.random_range(0..SYMBOLS.len())];
            let last = prices[symbol];
            let side = if rng.random_bool(0.5) { "buy" } else { "sell" };
            let qty = rng.random_range(1..=20);
            let body = match rng.random_range(0..3) {
                0 => json!({"symbol": symbol, "side": side, "type": "market", "qty": qty}),
                // Marketable: a buy well above the market, a sell well below.
                1 => {
                    let limit = if side == "buy" { last * 12 / 10 } else { last * 8 / 10 };
                    json!({"symbol": symbol, "side": side, "type": "limit", "qty": qty, "limit_price": format!("{}.{:02}", limit / 100, limit % 100)})
                }
                // Far away: rests until cancelled.
                _ => {
                    let limit = if side == "buy" { last / 2 } else { last * 2 };
                    json!({"symbol": symbol, "side": side, "type": "limit", "qty": qty, "limit_price": format!("{}.{:02}", limit / 100, limit % 100)})
                }
            };
            Planned { key: format!("acct{account}-order{i}"), body }
        })
        .collect()
}

#[actix_web::test]
async fn orders_survive_sigkill_and_end_exactly_as_the_exchange_says() {
    let seed: u64 = std::env::var("ORDERKEEPER_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash test seed: {seed} (ORDERKEEPER_TEST_SEED={seed} replays it)");
    let check = |ok: bool, what: String| assert!(ok, "seed {seed}: {what}");

    let dir = tempfile::tempdir().expect("temp dir");
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, seed, true);
    let mut engine = Engine::start(dir.path(), engine_port, &sim.url());
    let client = processes::client();

    // Accounts and their opening balances.
    let opening_cash = 1_000_000_000_i64;
    let positions: BTreeMap<&str, i64> = SYMBOLS.iter().map(|s| (*s, 1000)).collect();
    let mut tokens = Vec::new();
    for i in 0..ACCOUNTS {
        let body =
            json!({"name": format!("trader-{i}"), "cash": "10000000.00", "positions": positions});
        let created = engine.admin_post("/v1/admin/accounts", &body).await;
        tokens.push(created["token"].as_str().expect("a token").to_owned());
    }
    let prices: BTreeMap<String, i64> = sim
        .prices()
        .await
        .iter()
        .map(|(s, p)| (s.clone(), cents(p)))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let plans: Vec<Vec<Planned>> = (0..ACCOUNTS)
        .map(|a| plan_orders(&mut rng, &prices, a))
        .collect();

    // Stream the orders in while the engine is killed and restarted.
    let submitted = Rc::new(Cell::new(0_usize));
    let total = ACCOUNTS * ORDERS_PER_ACCOUNT;
    let engine_url = engine.url();
    let answers: Vec<Vec<(String, u16, Value)>> = {
        let streams = plans.iter().zip(&tokens).map(|(plan, token)| {
            let (engine_url, submitted) = (engine_url.clone(), submitted.clone());
            let client = client.clone();
            async move {
                let mut answers = Vec::new();
                for order in plan {
                    let (status, body) = processes::submit_until_answered(
                        &client,
                        &engine_url,
                        token,
                        &order.key,
                        &order.body,
                    )
                    .await;
                    submitted.set(submitted.get() + 1);
                    answers.push((order.key.clone(), status, body));
                }
                answers
            }
        });
        let killer = async {
            for k in 1..=KILLS {
                while submitted.get() < total * k / (KILLS + 1) {
                    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                }
                engine.kill();
                actix_web::rt::time::sleep(Duration::from_millis(300)).await;
                engine.restart().await;
            }
        };
        let (answers, ()) = futures_util::future::join(join_all(streams), killer).await;
        answers
    };

    // One order per key: every answer to a key names the same order.
    let mut order_of_key: HashMap<(usize, String), String> = HashMap::new();
    for (account, answers) in answers.iter().enumerate() {
        for (key, status, body) in answers {
            match status {
                201 => {
                    let id = body["id"].as_str().expect("an order id").to_owned();
                    order_of_key.insert((account, key.clone()), id);
                }
                422 => check(
                    ["insufficient_funds", "insufficient_position"]
                        .contains(&body["error"]["code"].as_str().unwrap_or("")),
                    format!("{key}: unexpected refusal {body}"),
                ),
                other => check(false, format!("{key}: answered {other} {body}")),
            }
        }
        for (key, _, _) in answers {
            let (status, replay) = processes::submit_until_answered(
                &client,
                &engine.url(),
                &tokens[account],
                key,
                &plans[account].iter().find(|p| &p.key == key).unwrap().body,
            )
            .await;
            if let Some(id) = order_of_key.get(&(account, key.clone())) {
                check(
                    status == 201 && replay["id"] == json!(id),
                    format!("{key}: replay named {replay} not {id}"),
                );
            }
        }
    }

    // One last restart, then cancel whatever is still open and wait for every order to end.
    engine.kill();
    engine.restart().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut open = 0;
        for token in &tokens {
            for order in engine
                .get(token, "/v1/orders?status=open&limit=1000")
                .await
                .as_array()
                .unwrap()
            {
                open += 1;
                if order["status"] != "pending_cancel" {
                    engine
                        .delete(
                            token,
                            &format!("/v1/orders/{}", order["id"].as_str().unwrap()),
                        )
                        .await;
                }
            }
        }
        if open == 0 {
            break;
        }
        check(
            Instant::now() < deadline,
            format!("{open} orders still open after two minutes"),
        );
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }

    // The exchange's record, read with its faults off.
    sim.clear_faults().await;
    let exchange_orders = sim.orders().await;
    let exchange_by_cid: HashMap<String, Value> = exchange_orders
        .iter()
        .map(|o| (o["client_order_id"].as_str().unwrap().to_owned(), o.clone()))
        .collect();

    let mut engine_cids = HashSet::new();
    for (account, token) in tokens.iter().enumerate() {
        let orders = engine.get(token, "/v1/orders?status=all&limit=1000").await;
        let orders = orders.as_array().unwrap();
        let keys = order_of_key.keys().filter(|(a, _)| *a == account).count();
        check(
            orders.len() == keys,
            format!("account {account}: {} orders for {keys} keys", orders.len()),
        );
        let mut cash = opening_cash;
        let mut shares: BTreeMap<String, i64> = positions
            .iter()
            .map(|(s, q)| ((*s).to_owned(), *q))
            .collect();
        for order in orders {
            let id = order["id"].as_str().unwrap();
            let cid = order["client_order_id"].as_str().unwrap().to_owned();
            engine_cids.insert(cid.clone());
            let fills = engine.get(token, &format!("/v1/orders/{id}/fills")).await;
            let ours = fill_list(&fills);
            let theirs = exchange_by_cid
                .get(&cid)
                .map(|o| fill_list(&o["fills"]))
                .unwrap_or_default();
            check(
                ours == theirs,
                format!("order {id}: engine fills {ours:?} but exchange fills {theirs:?}"),
            );
            let filled: i64 = ours.iter().map(|f| f.1).sum();
            check(
                order["filled_qty"] == json!(filled),
                format!(
                    "order {id}: filled_qty {} but fills sum to {filled}",
                    order["filled_qty"]
                ),
            );
            check(
                ["filled", "canceled", "rejected"].contains(&order["status"].as_str().unwrap()),
                format!("order {id} ended {}", order["status"]),
            );
            let value: i64 = ours.iter().map(|f| f.1 * f.2).sum();
            let symbol = order["symbol"].as_str().unwrap().to_owned();
            if order["side"] == "buy" {
                cash -= value;
                *shares.entry(symbol).or_default() += filled;
            } else {
                cash += value;
                *shares.entry(symbol).or_default() -= filled;
            }
            let actions = engine.get(token, &format!("/v1/orders/{id}/actions")).await;
            let seqs: Vec<i64> = actions
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["seq"].as_i64().unwrap())
                .collect();
            check(
                seqs == (1..=seqs.len() as i64).collect::<Vec<_>>(),
                format!("order {id}: action seqs {seqs:?}"),
            );
        }
        let balances = engine.get(token, "/v1/balances").await;
        check(
            cents(&balances["cash"]["available"]) == cash,
            format!(
                "account {account}: cash {} but fills say {cash}",
                balances["cash"]["available"]
            ),
        );
        check(
            balances["cash"]["reserved"] == "0.00",
            format!(
                "account {account}: cash still reserved {}",
                balances["cash"]["reserved"]
            ),
        );
        for (symbol, qty) in shares {
            let position = &balances["positions"][&symbol];
            check(
                position == &json!({"available": qty, "reserved": 0}),
                format!("account {account} {symbol}: {position} but fills say {qty}"),
            );
        }
    }
    let strangers: Vec<_> = exchange_by_cid
        .keys()
        .filter(|cid| !engine_cids.contains(*cid))
        .collect();
    check(
        strangers.is_empty(),
        format!("the exchange holds orders the engine does not know: {strangers:?}"),
    );
    eprintln!(
        "crash test seed {seed}: {} orders, {} on the exchange, {KILLS} kills",
        order_of_key.len(),
        exchange_orders.len()
    );
}
