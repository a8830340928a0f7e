//! Orders stream in from several accounts while the engine is killed with SIGKILL several times;
//! then every order is driven to its end and the books are checked against the exchange's own
//! record. Seeded: `ORDERKEEPER_TEST_SEED=N` replays a run.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

use crate::books::{self, Opening};
use crate::processes::{self, Engine, Simulator};
use crate::shared::cents;

const ACCOUNTS: usize = 4;
const ORDERS_PER_ACCOUNT: usize = 70;
const KILLS: usize = 3;
const SYMBOLS: &[&str] = &["INFY", "TCS", "RELIANCE", "SBIN", "HDFCBANK"];
const OPENING_CASH: i64 = 1_000_000_000;
const OPENING_SHARES: i64 = 1000;

/// One order to submit, with the key its client retries under.
struct Planned {
    key: String,
    body: Value,
}

/// An answer a client got for a key: (key, status, body).
type Answer = (String, u16, Value);

/// The processes under test and the accounts trading on them.
struct World {
    sim: Simulator,
    engine: Engine,
    tokens: Vec<String>,
    openings: HashMap<String, Opening>,
    _dir: tempfile::TempDir,
}

fn price_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A third market orders, a third marketable limits, a third limits far away that rest.
fn plan_orders(rng: &mut StdRng, prices: &BTreeMap<String, i64>, account: usize) -> Vec<Planned> {
    (0..ORDERS_PER_ACCOUNT)
        .map(|i| {
            let symbol = SYMBOLS[rng.random_range(0..SYMBOLS.len())];
            let last = prices[symbol];
            let side = if rng.random_bool(0.5) { "buy" } else { "sell" };
            let qty = rng.random_range(1..=20);
            let limit = match (rng.random_range(0..3), side) {
                (0, _) => None,
                (1, "buy") => Some(last * 12 / 10),
                (1, _) => Some(last * 8 / 10),
                (_, "buy") => Some(last / 2),
                (_, _) => Some(last * 2),
            };
            let body = match limit {
                None => json!({"symbol": symbol, "side": side, "type": "market", "qty": qty}),
                Some(limit) => json!({"symbol": symbol, "side": side, "type": "limit", "qty": qty, "limit_price": price_text(limit)}),
            };
            Planned { key: format!("acct{account}-order{i}"), body }
        })
        .collect()
}

/// The simulator with faults on, the engine against it, and the accounts.
async fn start_world(seed: u64) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, seed, true);
    let engine = Engine::start(dir.path(), engine_port, &sim.venue());
    let positions: BTreeMap<&str, i64> = SYMBOLS.iter().map(|s| (*s, OPENING_SHARES)).collect();
    let mut tokens = Vec::new();
    let mut openings = HashMap::new();
    for i in 0..ACCOUNTS {
        let body = json!({"name": format!("trader-{i}"), "cash": price_text(OPENING_CASH), "positions": positions});
        let created = engine.admin_post("/v1/admin/accounts", &body).await;
        tokens.push(created["token"].as_str().expect("a token").to_owned());
        let shares = positions
            .iter()
            .map(|(s, q)| ((*s).to_owned(), *q))
            .collect();
        openings.insert(
            created["account_id"].as_str().expect("an id").to_owned(),
            Opening {
                cash: OPENING_CASH,
                shares,
            },
        );
    }
    World {
        sim,
        engine,
        tokens,
        openings,
        _dir: dir,
    }
}

/// Each account's client submits its orders one after the other, retrying each key until it is
/// answered, while the engine is killed `KILLS` times at even points of the stream; after each
/// restart the books are checked live. Returns the answers and what the live checks found.
async fn stream_orders_while_killing(
    world: &mut World,
    plans: &[Vec<Planned>],
) -> (Vec<Vec<Answer>>, Vec<String>) {
    let submitted = Rc::new(Cell::new(0_usize));
    let total = ACCOUNTS * ORDERS_PER_ACCOUNT;
    let (url, client) = (world.engine.url(), processes::client());
    let streams = plans.iter().zip(&world.tokens).map(|(plan, token)| {
        let (url, client, submitted) = (url.clone(), client.clone(), submitted.clone());
        async move {
            let mut answers = Vec::new();
            for order in plan {
                let (status, body) =
                    processes::submit_until_answered(&client, &url, token, &order.key, &order.body)
                        .await;
                submitted.set(submitted.get() + 1);
                answers.push((order.key.clone(), status, body));
            }
            answers
        }
    });
    let (engine, sim, openings) = (&mut world.engine, &world.sim, &world.openings);
    let killer = async {
        let mut wrong = Vec::new();
        for k in 1..=KILLS {
            while submitted.get() < total * k / (KILLS + 1) {
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            engine.kill();
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
            engine.restart().await;
            // Between kills, with orders open and arriving: what must hold at every instant.
            let live = books::check_live(engine.database_url(), || sim.orders(), openings).await;
            wrong.extend(live.into_iter().map(|w| format!("after kill {k}: {w}")));
        }
        wrong
    };
    let (answers, wrong) = futures_util::future::join(join_all(streams), killer).await;
    (answers, wrong)
}

/// Every key was answered 201 (or refused for funds), and asking again names the same order.
async fn check_one_order_per_key(
    world: &World,
    plans: &[Vec<Planned>],
    answers: &[Vec<Answer>],
) -> Vec<String> {
    let mut wrong = Vec::new();
    let client = processes::client();
    for (account, answers) in answers.iter().enumerate() {
        let mut orders = 0;
        for ((key, status, body), planned) in answers.iter().zip(&plans[account]) {
            match status {
                201 => orders += 1,
                422 if ["insufficient_funds", "insufficient_position"]
                    .contains(&body["error"]["code"].as_str().unwrap_or("")) => {}
                other => wrong.push(format!("{key}: answered {other} {body}")),
            }
            let (again, replay) = processes::submit_until_answered(
                &client,
                &world.engine.url(),
                &world.tokens[account],
                key,
                &planned.body,
            )
            .await;
            if *status == 201 && (again != 201 || replay["id"] != body["id"]) {
                wrong.push(format!("{key}: named {}, then {replay}", body["id"]));
            }
        }
        let held = world
            .engine
            .get(&world.tokens[account], "/v1/orders?status=all&limit=1000")
            .await;
        let held = held.as_array().map_or(0, Vec::len);
        if held != orders {
            wrong.push(format!(
                "account {account}: {held} orders for {orders} keys"
            ));
        }
    }
    wrong
}

/// One last kill and restart, then every order still open is cancelled and waited for.
async fn finish_every_order(world: &mut World) -> Vec<String> {
    world.engine.kill();
    world.engine.restart().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut open = 0;
        for token in &world.tokens {
            let orders = world
                .engine
                .get(token, "/v1/orders?status=open&limit=1000")
                .await;
            for order in orders.as_array().cloned().unwrap_or_default() {
                open += 1;
                if order["status"] != "pending_cancel" {
                    let path = format!("/v1/orders/{}", order["id"].as_str().unwrap_or_default());
                    world.engine.delete(token, &path).await;
                }
            }
        }
        if open == 0 {
            return Vec::new();
        }
        if Instant::now() > deadline {
            return vec![format!("{open} orders still open after two minutes")];
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
}

#[actix_web::test]
async fn orders_survive_sigkill_and_end_exactly_as_the_exchange_says() {
    let seed: u64 = std::env::var("ORDERKEEPER_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash test seed: {seed} (ORDERKEEPER_TEST_SEED={seed} replays it)");

    let mut world = start_world(seed).await;
    let prices: BTreeMap<String, i64> = world
        .sim
        .prices()
        .await
        .iter()
        .map(|(s, p)| (s.clone(), cents(p)))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let plans: Vec<Vec<Planned>> = (0..ACCOUNTS)
        .map(|a| plan_orders(&mut rng, &prices, a))
        .collect();

    let (answers, mut wrong) = stream_orders_while_killing(&mut world, &plans).await;
    wrong.extend(check_one_order_per_key(&world, &plans, &answers).await);
    wrong.extend(finish_every_order(&mut world).await);
    world.sim.clear_faults().await;
    let exchange = world.sim.orders().await;
    wrong.extend(books::check(
        world.engine.database_url(),
        &exchange,
        &world.openings,
    ));
    // The engine's own audit agrees, from outside the engine, with the exchange's record.
    let (passed, report) =
        processes::offline_audit(world.engine.database_url(), Some(&world.sim.url()));
    if !passed || report["ok"] != true {
        wrong.push(format!("orderkeeper audit failed: {report}"));
    }
    let exchange_checked = report["checks"].as_array().is_some_and(|checks| {
        checks
            .iter()
            .any(|c| c["name"] == "fills_equal_exchange" && c["skipped"].is_null())
    });
    if !exchange_checked {
        wrong.push(format!(
            "the audit did not check the exchange's record: {report}"
        ));
    }

    assert!(wrong.is_empty(), "seed {seed}:\n  {}", wrong.join("\n  "));
    eprintln!(
        "crash test seed {seed}: {} orders on the exchange, {KILLS} kills",
        exchange.len()
    );
}
