//! Restarts: the live feed resumed with `since` across a SIGKILL (exactly what happened meanwhile,
//! as the same frames a full replay gives), and a clean stop on SIGTERM.

use std::time::Duration;

use serde_json::json;

use crate::feed_client::*;
use crate::processes::{self, Engine, Simulator};

#[actix_web::test]
async fn a_client_resumes_with_since_after_the_engine_was_killed() {
    let dir = tempfile::tempdir().unwrap();
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, 7, false);
    let mut engine = Engine::start(dir.path(), engine_port, &sim.venue());
    let account = engine
        .admin_post(
            "/v1/admin/accounts",
            &json!({"name": "alice", "cash": "100000.00"}),
        )
        .await;
    let token = account["token"].as_str().unwrap().to_owned();
    let far = |i: usize| json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 1 + i, "limit_price": "10.00"});

    let mut feed = connect(&engine.url()).await;
    auth(&mut feed, &token, None).await;
    let mut first = Vec::new();
    for i in 0..3 {
        let (_, order) = engine.submit(&token, &format!("k{i}"), &far(i)).await;
        first.push(order["id"].as_str().unwrap().to_owned());
    }
    // created and accepted for each.
    let before = events(&mut feed, 6).await;
    assert_eq!(seqs(&before), (1..=6).collect::<Vec<_>>());
    let last = 6;

    engine.kill();
    assert!(
        matches!(
            next(&mut feed, Duration::from_secs(5)).await,
            Next::Closed(_)
        ),
        "the feed ends with the process"
    );
    engine.restart().await;

    // While the client is away: two new orders and a cancel.
    for i in 3..5 {
        engine.submit(&token, &format!("k{i}"), &far(i)).await;
    }
    engine
        .delete(&token, &format!("/v1/orders/{}", first[0]))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = engine.get(&token, "/v1/orders?status=open").await;
        let all_new = open
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "new");
        if all_new && open.as_array().unwrap().len() == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orders never settled: {open}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    // created + accepted twice, cancel_requested + canceled: 6 events while away.
    let mut everything = connect(&engine.url()).await;
    auth(&mut everything, &token, Some(0)).await;
    let all = events(&mut everything, 12).await;
    assert!(
        matches!(
            next(&mut everything, Duration::from_millis(500)).await,
            Next::Nothing
        ),
        "nothing beyond 12"
    );
    let mut resumed = connect(&engine.url()).await;
    auth(&mut resumed, &token, Some(last)).await;
    let missed = events(&mut resumed, 6).await;

    assert_eq!(seqs(&missed), (7..=12).collect::<Vec<_>>());
    let raw = |events: &[(serde_json::Value, String)]| {
        events.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        raw(&missed),
        raw(&all[6..]),
        "a resumed event is the same frame as a replayed one"
    );
    assert_eq!(raw(&before), raw(&all[..6]), "and as the live one");

    let text = processes::metrics_text(&engine.url()).await;
    assert!(
        processes::metric(&text, "orderkeeper_rehydration_seconds") > 0.0,
        "{text}"
    );
    assert_eq!(
        processes::metric(&text, "orderkeeper_ws_sessions"),
        2.0,
        "two feeds are open: {text}"
    );
}

#[actix_web::test]
async fn sigterm_stops_the_engine_cleanly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, 8, false);
    let mut engine = Engine::start(dir.path(), engine_port, &sim.venue());
    let account = engine
        .admin_post(
            "/v1/admin/accounts",
            &json!({"name": "alice", "cash": "1000.00"}),
        )
        .await;
    let token = account["token"].as_str().unwrap().to_owned();
    let body =
        json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 2, "limit_price": "10.00"});
    let (status, order) = engine.submit(&token, "k", &body).await;
    assert_eq!(status, 201);

    assert!(engine.terminate().await, "exit status 0 after SIGTERM");
    engine.restart().await;

    let kept = engine
        .get(
            &token,
            &format!("/v1/orders/{}", order["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(kept["id"], order["id"]);
    let (_, replay) = engine.submit(&token, "k", &body).await;
    assert_eq!(replay, order, "the stored answer survives the restart");
}

/// A clean stop in the middle of a load, by SIGTERM or SIGINT: the process exits 0 within 10 s,
/// and every order it acknowledged is there after the restart, under the same key.
async fn a_signal_in_the_middle_of_a_load_loses_nothing(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, 9, false);
    let mut engine = Engine::start(dir.path(), engine_port, &sim.venue());
    let account = engine
        .admin_post(
            "/v1/admin/accounts",
            &json!({"name": "alice", "cash": "1000000.00"}),
        )
        .await;
    let token = account["token"].as_str().unwrap().to_owned();
    let url = engine.url();
    let body =
        json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 1, "limit_price": "10.00"});
    // Four clients submit as fast as they are answered until the engine stops answering.
    let answered = std::rc::Rc::new(std::cell::Cell::new(0_usize));
    let clients = (0..4).map(|c| {
        let (url, token, body, answered) =
            (url.clone(), token.clone(), body.clone(), answered.clone());
        async move {
            let mut acknowledged = Vec::new();
            for i in 0.. {
                let key = format!("c{c}-{i}");
                let request = processes::client()
                    .post(format!("{url}/v1/orders"))
                    .insert_header(("Authorization", format!("Bearer {token}")))
                    .insert_header(("Idempotency-Key", key.as_str()));
                match processes::read_json(request, Some(&body)).await {
                    Some((201, order)) => {
                        answered.set(answered.get() + 1);
                        acknowledged.push((key, order))
                    }
                    Some((429, _)) => {}
                    Some((status, answer)) => panic!("{key}: {status} {answer}"),
                    None => break,
                }
            }
            acknowledged
        }
    });
    let load = futures_util::future::join_all(clients);
    // The signal comes once the load is under way (ten orders acknowledged), however slow the
    // machine.
    let stop = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while answered.get() < 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "the load never got going"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        let started = std::time::Instant::now();
        let clean = engine.stop_with(signal).await;
        (clean, started.elapsed())
    };
    let (acknowledged, (clean, took)) = futures_util::future::join(load, stop).await;
    let acknowledged: Vec<_> = acknowledged.into_iter().flatten().collect();
    assert!(clean, "exit status 0 after {signal}");
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    // Every background task stopped before the lease was given up (the stop warns otherwise).
    let log = std::fs::read_to_string(engine.log_path()).unwrap_or_default();
    assert!(!log.contains("background work still running"), "{log}");
    assert!(
        acknowledged.len() >= 10,
        "only {} orders went in",
        acknowledged.len()
    );

    engine.restart().await;
    let open = engine.get(&token, "/v1/orders?status=all&limit=1000").await;
    let kept: std::collections::HashSet<&str> = open
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    for (key, order) in &acknowledged {
        let id = order["id"].as_str().unwrap();
        assert!(kept.contains(id), "{key}: acknowledged order {id} is gone");
    }
    let (key, order) = &acknowledged[acknowledged.len() - 1];
    let (_, replay) = engine.submit(&token, key, &body).await;
    assert_eq!(
        &replay["id"], &order["id"],
        "the last acknowledged key names its order"
    );
}

#[actix_web::test]
async fn sigterm_in_the_middle_of_a_load_exits_0_and_loses_nothing() {
    a_signal_in_the_middle_of_a_load_loses_nothing("-TERM").await;
}

#[actix_web::test]
async fn sigint_in_the_middle_of_a_load_exits_0_and_loses_nothing() {
    a_signal_in_the_middle_of_a_load_loses_nothing("-INT").await;
}

/// With `--log-format json`, every line is JSON, and what happens to an order is logged inside
/// spans that name it: the account, the idempotency key, the order and its client order id.
/// The bearer token appears nowhere.
#[actix_web::test]
async fn json_logs_name_the_order_the_account_and_the_key_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, 10, false);
    let engine = Engine::start_with_json_logs(dir.path(), engine_port, &sim.venue());
    let account = engine
        .admin_post(
            "/v1/admin/accounts",
            &json!({"name": "alice", "cash": "100000.00"}),
        )
        .await;
    let token = account["token"].as_str().unwrap().to_owned();
    let account_id = account["account_id"].as_str().unwrap().to_owned();
    let body = json!({"symbol": "INFY", "side": "buy", "type": "market", "qty": 3});
    let (status, order) = engine.submit(&token, "trace-key", &body).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    let cid = order["client_order_id"].as_str().unwrap().to_owned();
    engine.wait_for_status(&token, &id, "filled").await;
    // The step's line is written after its commit: wait for it rather than for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log = std::fs::read_to_string(engine.log_path()).unwrap_or_default();
        let written = log
            .lines()
            .any(|l| l.contains(r#""message":"recorded""#) && l.ends_with('}'));
        if written || std::time::Instant::now() > deadline {
            break log;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let secret = token.split('.').nth(1).unwrap();
    assert!(!log.contains(secret), "the token is in the log");
    let in_span = |message: &str, span: &str| {
        lines.iter().find(|l| {
            l["fields"]["message"] == message
                && l["spans"]
                    .as_array()
                    .is_some_and(|spans| spans.iter().any(|s| s["name"] == span))
        })
    };
    let created = in_span("order created", "submit_order").expect("an `order created` line");
    let span = &created["span"];
    assert_eq!(span["account_id"], account_id.as_str(), "{created}");
    assert_eq!(span["idempotency_key"], "trace-key", "{created}");
    assert_eq!(span["order_id"], id.as_str(), "{created}");
    assert_eq!(span["client_order_id"], cid.as_str(), "{created}");
    let step = in_span("recorded", "order_step").expect("a step's `recorded` line");
    assert_eq!(step["span"]["order_id"], id.as_str(), "{step}");
    assert_eq!(step["span"]["client_order_id"], cid.as_str(), "{step}");
    assert_eq!(step["span"]["account_id"], account_id.as_str(), "{step}");
}

/// `orderkeeper audit` on a stopped engine's database: it passes on the books the engine kept,
/// fails against an exchange that never saw its order, and fails, exit status and all, once a
/// balance is changed behind the engine's back.
#[actix_web::test]
async fn the_offline_audit_passes_then_names_a_corrupted_balance() {
    let dir = tempfile::tempdir().unwrap();
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, 12, false);
    let mut engine = Engine::start(dir.path(), engine_port, &sim.venue());
    let account = engine
        .admin_post(
            "/v1/admin/accounts",
            &json!({"name": "alice", "cash": "100000.00", "positions": {"INFY": 5}}),
        )
        .await;
    let token = account["token"].as_str().unwrap().to_owned();
    let account_id = account["account_id"].as_str().unwrap().to_owned();
    let sell = json!({"symbol": "INFY", "side": "sell", "type": "market", "qty": 2});
    let (_, order) = engine.submit(&token, "o1", &sell).await;
    let id = order["id"].as_str().unwrap();
    engine.wait_for_status(&token, id, "filled").await;
    assert!(engine.terminate().await);

    let (passed, report) = processes::offline_audit(engine.database_url(), Some(&sim.url()));
    assert!(passed, "{report}");
    assert_eq!(report["ok"], true);

    // Held against an exchange that never saw the order, the same books fail on its fills.
    let stranger = Simulator::start(engine_port, 14, false);
    stranger.prices().await;
    let (passed, report) = processes::offline_audit(engine.database_url(), Some(&stranger.url()));
    assert!(!passed, "fills the exchange never made passed: {report}");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "fills_equal_exchange")
        .unwrap();
    assert_eq!(check["violations"][0]["order_id"], id, "{report}");

    let url = engine.database_url().to_owned();
    processes::tamper_with_balance(&url, &account_id, "INFY", 100);
    let (passed, report) = processes::offline_audit(&url, None);
    assert!(!passed, "a corrupted balance passed: {report}");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "balances_equal_ledger")
        .unwrap();
    assert_eq!(
        check["violations"][0]["account_id"],
        account_id.as_str(),
        "{report}"
    );
}

/// An engine, polling every `poll_ms`, that died right after the venue took its first placement
/// (a resting buy) and before it recorded the answer; with the account's token and the order.
async fn died_after_placing(
    dir: &std::path::Path,
    engine_port: u16,
    sim: &Simulator,
    poll_ms: u64,
) -> (Engine, String, serde_json::Value) {
    let armed = Some("exchange.after_place=return".to_owned());
    let mut engine = Engine::start_with(dir, engine_port, &sim.venue(), poll_ms, armed);
    let (_, token) = engine.open_account("alice", "100000.00").await;
    let far =
        json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 2, "limit_price": "10.00"});
    let (status, order) = engine.submit(&token, "r1", &far).await;
    assert_eq!(status, 201, "{order}");
    assert!(
        engine.exited_within(Duration::from_secs(20)).await,
        "the engine never reached exchange.after_place"
    );
    (engine, token, order)
}

/// An order the engine was placing when it died is told to its customer as `order.recovered`:
/// what its log said, what the exchange said, and what recovery did. A resume with `since`
/// replays that event like any other.
#[actix_web::test]
async fn recovery_is_an_event_in_the_feed_and_replays_with_since() {
    let dir = tempfile::tempdir().unwrap();
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, 13, false);
    let (mut engine, token, order) = died_after_placing(dir.path(), engine_port, &sim, 300).await;
    engine.restart().await;

    let mut feed = connect(&engine.url()).await;
    auth(&mut feed, &token, Some(0)).await;
    let mut seen = Vec::new();
    let recovered = loop {
        match next(&mut feed, Duration::from_secs(10)).await {
            Next::Event(event, raw) => {
                seen.push(event["kind"].clone());
                if event["kind"] == "order.recovered" {
                    break (event, raw);
                }
            }
            _ => panic!("no order.recovered after the restart; saw {seen:?}"),
        }
    };
    let (event, raw) = recovered;
    assert_eq!(event["order"]["id"], order["id"]);
    let recovery = &event["recovery"];
    assert_eq!(recovery["log"]["placement_sent"], true, "{event}");
    assert!(
        recovery["action"] == "lookup" || recovery["action"] == "poll",
        "{event}"
    );
    assert_eq!(recovery["exchange"]["status"], "new", "{event}");
    assert!(recovery["done"].is_string());
    assert_eq!(event["order"]["status"], "new");

    let seq = event["seq"].as_i64().unwrap();
    let mut resumed = connect(&engine.url()).await;
    auth(&mut resumed, &token, Some(seq - 1)).await;
    match next(&mut resumed, Duration::from_secs(5)).await {
        Next::Event(_, replayed) => assert_eq!(replayed, raw, "replayed as it was sent"),
        _ => panic!("nothing replayed from {}", seq - 1),
    }
    // A new order is not a recovered one.
    let far =
        json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 2, "limit_price": "10.00"});
    let (_, fresh) = engine.submit(&token, "r2", &far).await;
    let fresh_id = fresh["id"].as_str().unwrap();
    engine.wait_for_status(&token, fresh_id, "new").await;
    let metrics = processes::metrics_text(&engine.url()).await;
    assert_eq!(
        processes::metric(
            &metrics,
            "orderkeeper_recovery_actions_total{kind=\"place\"}"
        ),
        0.0,
        "a new order's placement is no recovery: {metrics}"
    );
}

/// An order whose placement was sent and never answered is settled by one listing of the venue
/// after a restart, not by a lookup of its own; and readiness waits for it, not for a poll.
#[actix_web::test]
async fn a_restart_settles_placements_in_doubt_from_one_listing_of_the_venue() {
    settled_from_one_listing(false).await;
}

/// The same when the venue's push of the acknowledgement may reach the restarted engine before
/// its recovery has listed the venue: the actor the push starts waits for recovery to drive it.
#[actix_web::test]
async fn a_push_before_the_listing_does_not_make_recovery_look_the_order_up() {
    settled_from_one_listing(true).await;
}

async fn settled_from_one_listing(pushes: bool) {
    let dir = tempfile::tempdir().unwrap();
    let engine_port = processes::free_port();
    // Without pushes, the simulator sends them to a port nobody listens on.
    let push_port = if pushes {
        engine_port
    } else {
        processes::free_port()
    };
    let sim = Simulator::start(push_port, 14, false);
    // Polls far apart: any lookup after the restart would be recovery's own.
    let (mut engine, token, order) =
        died_after_placing(dir.path(), engine_port, &sim, 600_000).await;
    let id = order["id"].as_str().unwrap();
    let started = std::time::Instant::now();
    engine.restart().await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "ready only after {:?}: it waited for a poll",
        started.elapsed()
    );
    let seen = engine.get(&token, &format!("/v1/orders/{id}")).await;
    assert_eq!(
        seen["status"], "new",
        "settled by the time it is ready: {seen}"
    );
    let metrics = processes::metrics_text(&engine.url()).await;
    let calls = |op: &str| {
        processes::metric(
            &metrics,
            &format!("orderkeeper_exchange_requests_total{{op=\"{op}\""),
        )
    };
    assert!(calls("list") >= 1.0, "the venue was listed: {metrics}");
    assert_eq!(calls("lookup"), 0.0, "no lookup of its own: {metrics}");
    assert_eq!(calls("place"), 0.0, "not placed again: {metrics}");
}
