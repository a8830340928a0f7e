//! The seeded simulation: random orders (stops among them, and the price moves that trigger them),
//! modifies, cancels, client retries and client resets, under the operator's limits and halts, against a
//! venue with random faults (the 409-on-duplicate venue among them), while the engine is killed at random
//! moments. After each run the books checker looks at everything. Each seed decides the workload,
//! the faults and the kills; a failing seed is printed, and `ORDERKEEPER_SIM_SEED=N` runs it again.
//! `ORDERKEEPER_SIM_SEEDS=N` sets how many seeds run (CI runs hundreds).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::FutureExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

use crate::books::{self, Opening};
use crate::processes::{self, Engine, Simulator};

const SYMBOLS: &[&str] = &["INFY", "TCS", "SBIN"];
const OPENING_CASH: i64 = 10_000_000; // 100,000.00
const OPENING_SHARES: i64 = 40;

/// What one simulated client does with one order.
#[derive(Debug, Clone, Copy)]
enum Client {
    /// Sends until answered.
    Patient,
    /// Resets the connection mid-request, then comes back with the same key.
    ResetsThenRetries,
    /// Resets the connection mid-request and never comes back.
    ResetsAndLeaves,
    /// Sends the same request twice at once.
    Twice,
}

#[derive(Debug)]
enum Step {
    Submit {
        account: usize,
        key: String,
        body: Value,
        client: Client,
        reset_after: Duration,
        /// Kill the engine this long into the request, and restart it after the second.
        kill_inside: Option<(Duration, Duration)>,
    },
    /// Modifies the order submitted under `key`, if it exists, under a key of its own.
    Modify {
        account: usize,
        key: String,
        modify_key: String,
        body: Value,
    },
    /// Cancels the order submitted under this key, if it exists.
    Cancel {
        account: usize,
        key: String,
    },
    Kill {
        down_for: Duration,
    },
    Pause(Duration),
    /// Moves the venue's last price of a symbol (across a stop, mostly).
    MovePrice {
        symbol: &'static str,
        price: i64,
    },
    /// The operator halts an account, or lifts its halt.
    Halt {
        account: usize,
        halted: bool,
    },
}

struct Plan {
    faults: Vec<(String, String)>,
    /// The operator's limits for each account, set before any order (None: no limits).
    limits: [Option<Value>; 2],
    steps: Vec<Step>,
}

fn price_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn plan(seed: u64) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rate = |most: f64| format!("{:.2}", rng.random_range(0.0..most));
    let mut faults: Vec<(String, String)> = [
        ("--drop-rate", rate(0.5)),
        ("--duplicate-rate", rate(0.5)),
        ("--reorder-rate", rate(0.3)),
        ("--error-rate", rate(0.2)),
        ("--lost-response-rate", rate(0.3)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let conflict = rng.random_bool(0.5);
    faults.push((
        "--duplicate-placement".into(),
        if conflict { "conflict" } else { "ok" }.into(),
    ));
    // Prices start near these (the simulator's listings), and walk slowly.
    let last = |symbol: &str| match symbol {
        "INFY" => 152_050,
        "TCS" => 345_000,
        _ => 78_010,
    };
    let limits = [
        rng.random_bool(0.2).then(
            || json!({"max_order_notional": price_text(rng.random_range(500_000..3_000_000))}),
        ),
        rng.random_bool(0.3)
            .then(|| json!({"max_open_orders": rng.random_range(2..6)})),
    ];
    let mut steps = Vec::new();
    let orders = rng.random_range(8..16);
    // Account 0 is halted for a stretch of the orders in one seed of four.
    let halt = rng.random_bool(0.25).then(|| {
        let from = rng.random_range(0..orders);
        (from, from + rng.random_range(1..5))
    });
    let kill_at: Vec<usize> = (0..rng.random_range(0..=2))
        .map(|_| rng.random_range(0..orders))
        .collect();
    for i in 0..orders {
        if let Some((from, until)) = halt {
            if i == from || i == until {
                steps.push(Step::Halt {
                    account: 0,
                    halted: i == from,
                });
            }
        }
        let account = rng.random_range(0..2);
        let symbol = SYMBOLS[rng.random_range(0..SYMBOLS.len())];
        let side = if rng.random_bool(0.5) { "buy" } else { "sell" };
        let qty = rng.random_range(1..=8);
        // Marketable limits mostly fill at once; far ones rest until modified or cancelled. A stop
        // waits 1% away, for a price move that may come (or a cancel).
        let kind = rng.random_range(0..4);
        let limit = match (kind, side) {
            (0 | 3, _) => None,
            (1, "buy") => Some(last(symbol) * 11 / 10),
            (1, _) => Some(last(symbol) * 9 / 10),
            (_, "buy") => Some(last(symbol) / 2),
            _ => Some(last(symbol) * 2),
        };
        let (stop, past) = match side {
            "buy" => (last(symbol) * 101 / 100, last(symbol) * 103 / 100),
            _ => (last(symbol) * 99 / 100, last(symbol) * 97 / 100),
        };
        let body = match (kind, limit) {
            (3, _) if rng.random_bool(0.5) => {
                json!({"symbol": symbol, "side": side, "type": "stop", "qty": qty, "stop_price": price_text(stop)})
            }
            (3, _) => {
                let limit = if side == "buy" {
                    stop * 102 / 100
                } else {
                    stop * 98 / 100
                };
                json!({"symbol": symbol, "side": side, "type": "stop_limit", "qty": qty,
                       "stop_price": price_text(stop), "limit_price": price_text(limit)})
            }
            (_, None) => json!({"symbol": symbol, "side": side, "type": "market", "qty": qty}),
            (_, Some(limit)) => {
                json!({"symbol": symbol, "side": side, "type": "limit", "qty": qty, "limit_price": price_text(limit)})
            }
        };
        let client = match rng.random_range(0..10) {
            0..=5 => Client::Patient,
            6 => Client::ResetsThenRetries,
            7 => Client::ResetsAndLeaves,
            _ => Client::Twice,
        };
        let key = format!("s{seed}-o{i}");
        let reset_after = Duration::from_micros(rng.random_range(0..8_000));
        // Half the kills land inside a request, the others between answered ones.
        let kill = kill_at.contains(&i).then(|| {
            (
                rng.random_bool(0.5),
                Duration::from_millis(rng.random_range(0..300)),
            )
        });
        let kill_inside = match kill {
            Some((true, down_for)) => {
                Some((Duration::from_micros(rng.random_range(0..4_000)), down_for))
            }
            _ => None,
        };
        steps.push(Step::Submit {
            account,
            key: key.clone(),
            body,
            client,
            reset_after,
            kill_inside,
        });
        if kind == 3 && rng.random_bool(0.6) {
            steps.push(Step::MovePrice {
                symbol,
                price: past,
            });
        }
        if let Some(limit) = limit.filter(|_| rng.random_bool(0.4)) {
            // A new quantity, a new limit within 5%, or both.
            let new_limit = price_text(limit * rng.random_range(95..=105) / 100);
            let body = match rng.random_range(0..3) {
                0 => json!({"qty": rng.random_range(1..=8)}),
                1 => json!({"limit_price": new_limit}),
                _ => json!({"qty": rng.random_range(1..=8), "limit_price": new_limit}),
            };
            let modify_key = format!("{key}-m");
            steps.push(Step::Modify {
                account,
                key: key.clone(),
                modify_key,
                body,
            });
        }
        if rng.random_bool(0.3) {
            steps.push(Step::Cancel { account, key });
        }
        if rng.random_bool(0.3) {
            steps.push(Step::Pause(Duration::from_millis(rng.random_range(0..200))));
        }
        if let Some((false, down_for)) = kill {
            steps.push(Step::Kill { down_for });
        }
    }
    if halt.is_some_and(|(_, until)| until >= orders) {
        steps.push(Step::Halt {
            account: 0,
            halted: false,
        });
    }
    Plan {
        faults,
        limits,
        steps,
    }
}

/// What became of a client's reset.
enum Reset {
    /// The request never reached the engine (it was down, or refused the connection).
    NotSent,
    /// The connection was reset before any answer arrived.
    BeforeTheAnswer,
    /// The answer had already arrived when the connection was reset.
    AfterTheAnswer,
}

/// `POST /v1/orders` on a raw socket, reset (TCP RST) after `after`; reports whether the reset
/// landed before the answer, by looking for answer bytes waiting on the socket.
fn post_then_reset(port: u16, token: &str, key: &str, body: &str, after: Duration) -> Reset {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return Reset::NotSent;
    };
    let request = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return Reset::NotSent;
    }
    std::thread::sleep(after);
    let mut peek = [0_u8; 1];
    let answered =
        stream.set_nonblocking(true).is_ok() && stream.peek(&mut peek).is_ok_and(|n| n > 0);
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    if answered {
        Reset::AfterTheAnswer
    } else {
        Reset::BeforeTheAnswer
    }
}

/// What a run really did (not what it planned), summed over the seeds for the report.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    orders: usize,
    resets_before_the_answer: usize,
    resets_after_the_answer: usize,
    resets_not_sent: usize,
    doubles: usize,
    modifies_replaced: usize,
    modifies_refused: usize,
    modifies_busy: usize,
    cancels: usize,
    kills_between_requests: usize,
    kills_inside_a_request: usize,
    price_moves: usize,
    halts: usize,
    stops: usize,
    refused_by_limits_or_halts: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.orders += other.orders;
        self.resets_before_the_answer += other.resets_before_the_answer;
        self.resets_after_the_answer += other.resets_after_the_answer;
        self.resets_not_sent += other.resets_not_sent;
        self.doubles += other.doubles;
        self.modifies_replaced += other.modifies_replaced;
        self.modifies_refused += other.modifies_refused;
        self.modifies_busy += other.modifies_busy;
        self.cancels += other.cancels;
        self.kills_between_requests += other.kills_between_requests;
        self.kills_inside_a_request += other.kills_inside_a_request;
        self.price_moves += other.price_moves;
        self.halts += other.halts;
        self.stops += other.stops;
        self.refused_by_limits_or_halts += other.refused_by_limits_or_halts;
    }
}

/// A key's answer as the checks compare it: the order it named, or the refusal's code.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Order(String),
    Refused(String),
}

/// The refusals a valid order may get: the contract stores them under the key like a success.
const REFUSALS: &[&str] = &["insufficient_funds", "insufficient_position", "risk_limit"];

fn answer_of(status: u16, body: &Value) -> Result<Answer, String> {
    match (status, body["id"].as_str(), body["error"]["code"].as_str()) {
        (201, Some(id), _) => Ok(Answer::Order(id.to_owned())),
        (422, _, Some(code)) if REFUSALS.contains(&code) => Ok(Answer::Refused(code.to_owned())),
        (423, _, Some("trading_halted")) => Ok(Answer::Refused("trading_halted".to_owned())),
        _ => Err(format!("answered {status} {body}")),
    }
}

/// The refusals of a modify that are stored under its key (a busy order's 409 is not).
const MODIFY_REFUSALS: &[&str] = &["insufficient_funds", "order_not_modifiable", "risk_limit"];

/// A modify's answer, stored under its key, or `None` while the order stays busy (a placement,
/// cancel or replace under way) for `busy_for`.
async fn modify(
    url: &str,
    token: &str,
    id: &str,
    key: &str,
    body: &Value,
    busy_for: Duration,
) -> Result<Option<Answer>, String> {
    let deadline = Instant::now() + busy_for;
    let down_deadline = Instant::now() + Duration::from_secs(60);
    let path = format!("/v1/orders/{id}");
    loop {
        let answer = processes::patch(url, token, &path, key, body).await;
        match answer
            .as_ref()
            .map(|(s, b)| (*s, b["error"]["code"].as_str()))
        {
            Some((202, _)) => return Ok(Some(Answer::Order(id.to_owned()))),
            Some((422, Some(code))) if MODIFY_REFUSALS.contains(&code) => {
                return Ok(Some(Answer::Refused(code.to_owned())))
            }
            Some((423, Some(code))) => return Ok(Some(Answer::Refused(code.to_owned()))),
            Some((409, Some("order_busy"))) if Instant::now() > deadline => return Ok(None),
            Some((409, Some("order_busy"))) | None => {}
            Some((status, _)) if status >= 500 => {}
            Some(_) => return Err(format!("modify {key} answered {answer:?}")),
        }
        if Instant::now() > down_deadline {
            return Err(format!("modify {key} never answered"));
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs one seed; returns what went wrong and what really happened.
async fn run(seed: u64, dir: &Path) -> (Vec<String>, Tally) {
    let plan = plan(seed);
    let port = processes::free_port();
    let sim = Simulator::start_with(port, seed, &plan.faults, 20);
    let mut engine = Engine::start_with(dir, port, &sim.venue(), 250, None);
    let mut tokens = Vec::new();
    let mut account_ids = Vec::new();
    let mut openings = HashMap::new();
    let shares: BTreeMap<String, i64> = SYMBOLS
        .iter()
        .map(|s| ((*s).to_owned(), OPENING_SHARES))
        .collect();
    for a in 0..2 {
        let body = json!({"name": format!("sim-{a}"), "cash": price_text(OPENING_CASH), "positions": shares});
        let created = engine.admin_post("/v1/admin/accounts", &body).await;
        tokens.push(created["token"].as_str().unwrap().to_owned());
        let id = created["account_id"].as_str().unwrap().to_owned();
        if let Some(limits) = &plan.limits[a] {
            let path = format!("/v1/admin/accounts/{id}/limits");
            assert_eq!(
                engine.admin_put(&path, limits).await,
                200,
                "limits {limits}"
            );
        }
        account_ids.push(id);
        openings.insert(
            created["account_id"].as_str().unwrap().to_owned(),
            Opening {
                cash: OPENING_CASH,
                shares: shares.clone(),
            },
        );
    }
    let client = processes::client();
    let mut wrong = Vec::new();
    let mut tally = Tally::default();
    // Every key a client sent, with its body: asked again at the end, each must answer as before.
    let mut sent: Vec<(usize, String, Value)> = Vec::new();
    let mut answered: HashMap<String, Answer> = HashMap::new();
    // Every modify answered under its key, with what it asked: asked again at the end.
    let mut modified: Vec<(usize, String, String, Value, Answer)> = Vec::new();
    let url = engine.url();
    let submit = |account: usize, key: String, body: Value| {
        let (client, url, token) = (client.clone(), url.clone(), tokens[account].clone());
        async move {
            let (status, order) =
                processes::submit_until_answered(&client, &url, &token, &key, &body).await;
            (key, status, order)
        }
    };
    for step in plan.steps {
        match step {
            Step::Submit {
                account,
                key,
                body,
                client: behaviour,
                reset_after,
                kill_inside,
            } => {
                tally.orders += 1;
                tally.stops += usize::from(body["stop_price"].is_string());
                let text = body.to_string();
                let in_flight = Cell::new(true);
                let requests = async {
                    let outcomes = match behaviour {
                        Client::Patient => vec![submit(account, key.clone(), body.clone()).await],
                        Client::Twice => {
                            tally.doubles += 1;
                            join_all([
                                submit(account, key.clone(), body.clone()),
                                submit(account, key.clone(), body.clone()),
                            ])
                            .await
                        }
                        Client::ResetsThenRetries | Client::ResetsAndLeaves => {
                            let (token, reset_key) = (tokens[account].clone(), key.clone());
                            let reset = std::thread::spawn(move || {
                                post_then_reset(port, &token, &reset_key, &text, reset_after)
                            });
                            while !reset.is_finished() {
                                actix_web::rt::time::sleep(Duration::from_millis(2)).await;
                            }
                            match reset.join() {
                                Ok(Reset::BeforeTheAnswer) => tally.resets_before_the_answer += 1,
                                Ok(Reset::AfterTheAnswer) => tally.resets_after_the_answer += 1,
                                _ => tally.resets_not_sent += 1,
                            }
                            if matches!(behaviour, Client::ResetsThenRetries) {
                                vec![submit(account, key.clone(), body.clone()).await]
                            } else {
                                Vec::new()
                            }
                        }
                    };
                    in_flight.set(false);
                    outcomes
                };
                let killer = async {
                    let Some((after, down_for)) = kill_inside else {
                        return false;
                    };
                    actix_web::rt::time::sleep(after).await;
                    let inside = in_flight.get();
                    engine.kill();
                    actix_web::rt::time::sleep(down_for).await;
                    engine.restart().await;
                    inside
                };
                let (outcomes, killed_inside) = futures_util::future::join(requests, killer).await;
                match kill_inside {
                    Some(_) if killed_inside => tally.kills_inside_a_request += 1,
                    Some(_) => tally.kills_between_requests += 1,
                    None => {}
                }
                for (key, status, order) in outcomes {
                    match answer_of(status, &order) {
                        Ok(answer) => {
                            if matches!(&answer, Answer::Refused(code) if code == "risk_limit" || code == "trading_halted")
                            {
                                tally.refused_by_limits_or_halts += 1;
                            }
                            if let Some(before) = answered.insert(key.clone(), answer.clone()) {
                                if before != answer {
                                    wrong.push(format!(
                                        "key {key} answered {before:?}, then {answer:?}"
                                    ));
                                }
                            }
                        }
                        Err(what) => wrong.push(format!("key {key}: {what}")),
                    }
                }
                sent.push((account, key, body));
            }
            Step::Modify {
                account,
                key,
                modify_key,
                body,
            } => {
                let Some(Answer::Order(id)) = answered.get(&key) else {
                    continue;
                };
                let busy_for = Duration::from_secs(3);
                match modify(&url, &tokens[account], id, &modify_key, &body, busy_for).await {
                    Ok(Some(answer)) => {
                        match answer {
                            Answer::Order(_) => tally.modifies_replaced += 1,
                            Answer::Refused(_) => tally.modifies_refused += 1,
                        }
                        modified.push((account, id.clone(), modify_key, body, answer));
                    }
                    Ok(None) => tally.modifies_busy += 1,
                    Err(what) => wrong.push(what),
                }
            }
            Step::Cancel { account, key } => {
                if let Some(Answer::Order(id)) = answered.get(&key) {
                    tally.cancels += 1;
                    processes::delete(&url, &tokens[account], &format!("/v1/orders/{id}")).await;
                }
            }
            Step::Kill { down_for } => {
                tally.kills_between_requests += 1;
                engine.kill();
                actix_web::rt::time::sleep(down_for).await;
                engine.restart().await;
                let live =
                    books::check_live(engine.database_url(), || sim.orders(), &openings).await;
                wrong.extend(live.into_iter().map(|w| format!("after a kill: {w}")));
            }
            Step::Pause(wait) => actix_web::rt::time::sleep(wait).await,
            Step::MovePrice { symbol, price } => {
                tally.price_moves += 1;
                sim.set_prices(json!({ symbol: price_text(price) })).await;
            }
            Step::Halt { account, halted } => {
                tally.halts += usize::from(halted);
                let path = format!("/v1/admin/accounts/{}/trading", account_ids[account]);
                let status = engine.admin_put(&path, &json!({"halted": halted})).await;
                if status != 200 {
                    wrong.push(format!("halt {halted} of account {account}: {status}"));
                }
            }
        }
    }

    // Each key answers as it did the first time, and each account holds one order per key that
    // named one.
    let mut orders_of_keys = vec![0_usize; tokens.len()];
    for (account, key, body) in &sent {
        let (_, status, order) = submit(*account, key.clone(), body.clone()).await;
        match (answer_of(status, &order), answered.get(key)) {
            (Ok(answer), Some(before)) if answer != *before => {
                wrong.push(format!("key {key} answered {before:?}, then {answer:?}"))
            }
            (Ok(answer), _) => {
                if matches!(answer, Answer::Order(_)) {
                    orders_of_keys[*account] += 1;
                }
                answered.insert(key.clone(), answer);
            }
            (Err(what), _) => wrong.push(format!("key {key}, asked again: {what}")),
        }
    }
    for (account, id, key, body, before) in &modified {
        let again = modify(&url, &tokens[*account], id, key, body, Duration::ZERO).await;
        if again.as_ref() != Ok(&Some(before.clone())) {
            wrong.push(format!("modify {key} answered {before:?}, then {again:?}"));
        }
    }
    for (account, token) in tokens.iter().enumerate() {
        let held = processes::get(&url, token, "/v1/orders?status=all&limit=1000").await;
        let held = held.and_then(|(_, orders)| orders.as_array().map(Vec::len));
        if held != Some(orders_of_keys[account]) {
            wrong.push(format!(
                "account {account}: {held:?} orders for {} keys that named one",
                orders_of_keys[account]
            ));
        }
    }
    wrong.extend(
        books::check_live(engine.database_url(), || sim.orders(), &openings)
            .await
            .into_iter()
            .map(|w| format!("with orders open: {w}")),
    );
    wrong.extend(end_every_order(&url, &tokens).await);
    sim.clear_faults().await;
    wrong.extend(books::check(
        engine.database_url(),
        &sim.orders().await,
        &openings,
    ));
    (wrong, tally)
}

/// Cancels every open order and waits, for at most 90 s, until none is open.
async fn end_every_order(url: &str, tokens: &[String]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut open = 0;
        for token in tokens {
            match processes::get(url, token, "/v1/orders?status=open&limit=1000").await {
                Some((200, orders)) => {
                    for order in orders.as_array().cloned().unwrap_or_default() {
                        open += 1;
                        if order["status"] != "pending_cancel" {
                            let path =
                                format!("/v1/orders/{}", order["id"].as_str().unwrap_or_default());
                            processes::delete(url, token, &path).await;
                        }
                    }
                }
                // Unread: counted as open, so the loop neither ends nor escapes its deadline.
                _ => open += 1,
            }
        }
        if open == 0 {
            return Vec::new();
        }
        if Instant::now() > deadline {
            let mut wrong = vec![format!("{open} orders still open (or unread) after 90 s")];
            wrong.extend(open_orders_logs(url, tokens).await);
            return wrong;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each open order's status and the kinds of its actions, to tell where it stopped.
async fn open_orders_logs(url: &str, tokens: &[String]) -> Vec<String> {
    let mut logs = Vec::new();
    for token in tokens {
        let Some((200, orders)) =
            processes::get(url, token, "/v1/orders?status=open&limit=1000").await
        else {
            continue;
        };
        for order in orders.as_array().cloned().unwrap_or_default() {
            let id = order["id"].as_str().unwrap_or_default();
            let path = format!("/v1/orders/{id}/actions");
            let actions = processes::get(url, token, &path).await.map(|(_, a)| a);
            let kinds: Vec<&str> = actions
                .as_ref()
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
                .filter_map(|a| a["kind"].as_str())
                .collect();
            logs.push(format!("{id} ({}): {}", order["status"], kinds.join(" ")));
        }
    }
    logs
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("ORDERKEEPER_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count: u64 = std::env::var("ORDERKEEPER_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let base: u64 = rand::rng().random_range(0..1_000_000);
    (base..base + count).collect()
}

#[actix_web::test]
async fn seeded_runs_with_faults_resets_and_kills_keep_the_books_exact() {
    let seeds = seeds();
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut tally = Tally::default();
    for batch in seeds.chunks(3) {
        let runs = batch.iter().map(|seed| async move {
            let dir = tempfile::tempdir().unwrap();
            // A panic inside a run (an engine that never became ready) fails its seed, by name.
            let (wrong, tally) = match AssertUnwindSafe(run(*seed, dir.path())).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    (vec![format!("panicked: {what}")], Tally::default())
                }
            };
            if !wrong.is_empty() {
                let log = std::fs::read_to_string(dir.path().join("orderkeeper.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                eprintln!("seed {seed} failed (ORDERKEEPER_SIM_SEED={seed} replays it):\n  {}\n  engine log, last lines:\n  {}",
                    wrong.join("\n  "), tail.into_iter().rev().collect::<Vec<_>>().join("\n  "));
            }
            (*seed, wrong.is_empty(), tally)
        });
        for (seed, ok, run) in join_all(runs).await {
            tally.add(run);
            if !ok {
                failed.push(seed);
            }
        }
    }
    eprintln!(
        "simulation: {} seeds from {} in {:.0?}, {} failed; {tally:?}",
        seeds.len(),
        seeds[0],
        started.elapsed(),
        failed.len()
    );
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}
