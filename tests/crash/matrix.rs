//! The crash matrix: for every named fault point at an atomic-phase boundary, the engine is made to
//! exit right there (as `kill -9` would), restarted, left to finish, and its books checked.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use orderkeeper::fault_points::CRASH_POINTS;
use serde_json::{json, Value};

use crate::books::{self, Opening};
use crate::processes::{self, Engine, Simulator};

/// A client that keeps at it across the crash: one key per order, resent until answered.
async fn submit(engine_url: &str, token: &str, key: &str, body: &Value) -> String {
    let (status, order) =
        processes::submit_until_answered(&processes::client(), engine_url, token, key, body).await;
    assert_eq!(status, 201, "{key}: {order}");
    order["id"].as_str().expect("an order id").to_owned()
}

/// Cancels until the engine answers (it may be down for a moment).
async fn cancel_until_answered(engine_url: &str, token: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(
        processes::delete(engine_url, token, &format!("/v1/orders/{id}")).await,
        Some((200 | 202 | 422, _))
    ) {
        assert!(Instant::now() < deadline, "cancel of {id} never answered");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Modifies until the engine answers (it may be down for a moment): one key, resent.
async fn modify_until_answered(engine_url: &str, token: &str, id: &str, body: &Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let path = format!("/v1/orders/{id}");
    loop {
        match processes::patch(engine_url, token, &path, "modify", body).await {
            Some((202, _)) => return,
            Some((status, answer)) if status < 500 => panic!("modify answered {status} {answer}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "modify of {id} never answered");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the order has left `status` (the engine may be down for a moment); returns it.
async fn wait_until_past(engine_url: &str, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, order)) =
            processes::get(engine_url, token, &format!("/v1/orders/{id}")).await
        {
            if order["status"] != status {
                return order;
            }
        }
        assert!(Instant::now() < deadline, "{id} never left {status}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_all_ended(engine: &Engine, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = engine.get(token, "/v1/orders?status=open").await;
        if open.as_array().is_some_and(Vec::is_empty) {
            return;
        }
        assert!(Instant::now() < deadline, "still open: {open}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the workload with `point` armed, and returns what the books checker found.
async fn crash_at(point: &'static str, dir: &Path) -> Vec<String> {
    let port = processes::free_port();
    let sim = Simulator::start_with(port, 11, &[], 20);
    let recovery = point == "recovery.during";
    // A crash during recovery needs open orders and a restart to reach it.
    let armed = (!recovery).then(|| format!("{point}=return"));
    let mut engine = Engine::start_with(dir, port, &sim.venue(), 300, armed);
    let account = engine
        .admin_post(
            "/v1/admin/accounts",
            &json!({"name": "matrix", "cash": "1000000.00", "positions": {"INFY": 50}}),
        )
        .await;
    let token = account["token"].as_str().unwrap().to_owned();
    let openings = HashMap::from([(
        account["account_id"].as_str().unwrap().to_owned(),
        Opening {
            cash: 100_000_000,
            shares: [("INFY".to_owned(), 50)].into(),
        },
    )]);
    let url = engine.url();
    let resting =
        json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 4, "limit_price": "10.00"});
    let workload = async {
        let buy = json!({"symbol": "INFY", "side": "buy", "type": "market", "qty": 6});
        let sell = json!({"symbol": "INFY", "side": "sell", "type": "market", "qty": 3});
        let bought = submit(&url, &token, "buy", &buy).await;
        let sold = submit(&url, &token, "sell", &sell).await;
        let rest = submit(&url, &token, "rest", &resting).await;
        if !recovery {
            wait_until_past(&url, &token, &rest, "pending_new").await;
            let raise = json!({"qty": 5, "limit_price": "11.00"});
            modify_until_answered(&url, &token, &rest, &raise).await;
            let replaced = wait_until_past(&url, &token, &rest, "pending_replace").await;
            assert_eq!(
                (&replaced["qty"], &replaced["limit_price"]),
                (&json!(5), &json!("11.00")),
                "{point}: the venue's terms after the replace: {replaced}"
            );
            cancel_until_answered(&url, &token, &rest).await;
        }
        [bought, sold, rest]
    };
    let crash = async {
        if !recovery {
            let reached = engine.exited_within(Duration::from_secs(30)).await;
            assert!(reached, "{point}: never reached");
            engine.restart().await;
        }
    };
    let (ids, ()) = futures_util::future::join(workload, crash).await;
    if recovery {
        engine.kill();
        engine.arm_next_start(&format!("{point}=return"));
        engine.restart_without_waiting();
        let reached = engine.exited_within(Duration::from_secs(30)).await;
        assert!(reached, "{point}: never reached");
        engine.restart().await;
        cancel_until_answered(&url, &token, &ids[2]).await;
    }
    wait_all_ended(&engine, &token).await;
    let mut wrong = recovery_seen_in_metrics(point, &engine.url()).await;
    let log = std::fs::read_to_string(engine.log_path()).unwrap_or_default();
    assert!(
        log.contains(&format!("fault point {point}: exiting")),
        "{point}: the engine stopped, but not at its fault point:\n{log}"
    );
    // The same keys name the same orders after the crash.
    let again = submit(&engine.url(), &token, "rest", &resting).await;
    if again != ids[2] {
        wrong.push(format!("key rest named {again}, then {}", ids[2]));
    }
    sim.clear_faults().await;
    wrong.extend(books::check(
        engine.database_url(),
        &sim.orders().await,
        &openings,
    ));
    wrong
}

/// What the restarted engine's metrics must say it did: how long it took to be ready, and the
/// recovery step the order left at `point` needed.
async fn recovery_seen_in_metrics(point: &str, engine_url: &str) -> Vec<String> {
    let text = processes::metrics_text(engine_url).await;
    let mut wrong = Vec::new();
    if processes::metric(&text, "orderkeeper_rehydration_seconds") <= 0.0 {
        let shown: Vec<&str> = text.lines().filter(|l| l.contains("rehydration")).collect();
        wrong.push(format!(
            "orderkeeper_rehydration_seconds was not set: {shown:?} ({} bytes scraped)",
            text.len()
        ));
    }
    // Where the exchange had the order, its push may bring it up to date before recovery's first
    // step, which then only polls; after a cancel was sent, the push may even end it first.
    let kinds: &[&str] = match point {
        "submit.after_commit" => &["place"],
        "exchange.before_place" => &["lookup"],
        // Over FIX the venue sends its acknowledgement again at the logon, which can settle the
        // order before recovery comes to it: then recovery has nothing left to do for it.
        "exchange.after_place" if processes::over_fix() => return wrong,
        "exchange.after_place" => &["lookup", "poll"],
        "exchange.before_cancel" => &["cancel"],
        "exchange.before_replace" => &["replace"],
        _ => return wrong,
    };
    let done: f64 = kinds
        .iter()
        .map(|kind| {
            let series = format!("orderkeeper_recovery_actions_total{{kind=\"{kind}\"}}");
            processes::metric(&text, &series)
        })
        .sum();
    if done < 1.0 {
        wrong.push(format!(
            "no recovery action of kind {kinds:?} counted after the restart"
        ));
    }
    wrong
}

#[actix_web::test]
async fn every_fault_point_leaves_the_books_exact_after_a_restart() {
    let dirs: Vec<tempfile::TempDir> = CRASH_POINTS
        .iter()
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut failures = Vec::new();
    // Three at a time: each run is an engine and a simulator process.
    for batch in CRASH_POINTS.iter().zip(&dirs).collect::<Vec<_>>().chunks(3) {
        let runs = batch
            .iter()
            .map(|(point, dir)| async move { (*point, crash_at(point, dir.path()).await) });
        for (point, wrong) in join_all(runs).await {
            if !wrong.is_empty() {
                failures.push(format!("{point}:\n  {}", wrong.join("\n  ")));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
