//! Holes that real clients and real venues open: each test stages one, the way it happens in the
//! world, and checks that no order is lost and no cash or share moves wrongly.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use orderkeeper::domain::Cents;
use orderkeeper::testing::db::{self, accounts};
use rand::RngExt;
use serde_json::json;

use crate::helpers::*;
use crate::venue::Venue;

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `POST /v1/orders` on a raw socket and resets the connection (TCP RST) after `after`;
/// whether any answer had arrived by then (bytes waiting on the socket).
fn post_then_reset(port: u16, token: &str, key: &str, body: &str, after: Duration) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(request.as_bytes());
    std::thread::sleep(after);
    let mut peek = [0_u8; 1];
    let answered =
        stream.set_nonblocking(true).is_ok() && stream.peek(&mut peek).is_ok_and(|n| n > 0);
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    answered
}

fn port_of(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

#[actix_web::test]
async fn an_order_committed_while_its_client_resets_the_connection_is_still_sent() {
    // No sweep: the order must go on because of how it is submitted, not because it is found later.
    let app = spawn_app_with(|args| args.orphan_sweep_ms = 3_600_000).await;
    let alice = app.create_account("10000000.00", json!({})).await;
    let (port, token) = (port_of(&app), alice.token.clone());
    let resets = std::thread::spawn(move || {
        let mut rng = rand::rng();
        (0..200)
            .filter(|i| {
                let after = Duration::from_micros(rng.random_range(0..10_000));
                let body = limit_buy("INFY", 1, "100.00");
                !post_then_reset(port, &token, &format!("reset-{i}"), &body, after)
            })
            .collect::<Vec<_>>()
    });
    while !resets.is_finished() {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let unanswered = resets.join().expect("the resetting client");

    // The scenario itself, counted: a key whose order was committed, though its client had no
    // answer when it reset (the reset came between the commit and the answer).
    let committed = app.count_orders();
    let stored = app.stored_keys(&alice.id);
    let between: usize = unanswered
        .iter()
        .filter(|i| stored.contains(&format!("reset-{i}")))
        .count();
    assert!(
        between > 0,
        "no reset landed between a commit and its answer ({} unanswered, {committed} committed)",
        unanswered.len()
    );
    eprintln!("{between} resets landed between a commit and its answer");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stuck = app
            .orders(&alice.token, "all")
            .await
            .iter()
            .filter(|o| o["status"] == "pending_new")
            .count();
        if stuck == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{stuck} of {committed} committed orders were never sent"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn an_open_order_without_an_actor_is_found_by_the_sweep() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    // As a request that vanished between its commit and its actor would leave it.
    let account = alice.id.parse().unwrap();
    let mut conn = app.pool.get().unwrap();
    let submission = limit_submission(account, "orphan", 3, 10_000);
    let order = crate::helpers::submit_one(&mut conn, &submission, &app.engine.fence())
        .unwrap()
        .created
        .unwrap()
        .id;
    drop(conn);

    app.wait_for_status(&alice.token, &order.to_string(), "new")
        .await;
}

/// Market buys of one share each, placed on a venue that loses half its answers and answers a
/// repeated client order id with 409: every order must end as the exchange holds it.
#[actix_web::test]
async fn a_refusal_after_a_lost_placement_follows_what_the_exchange_holds() {
    let app = spawn_app().await;
    let alice = app.create_account("10000000.00", json!({})).await;
    let faults = json!({"lost_response_rate": 0.5, "duplicate_placement": "conflict"});
    let set = app
        .put_json("/v1/exchange/faults", ADMIN_TOKEN, &faults.to_string())
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.json());

    let mut ids = Vec::new();
    for i in 0..20 {
        let answer = app
            .submit(
                &alice.token,
                Some(&format!("m-{i}")),
                &market("buy", "INFY", 1),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        ids.push(answer.json()["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let order = app
            .wait_for_order(&alice.token, id, |o| {
                ["filled", "canceled", "rejected", "expired"]
                    .contains(&o["status"].as_str().unwrap())
            })
            .await;
        assert_eq!(order["status"], "filled", "{order}");
    }
    let balances = app.balances(&alice.token).await;
    assert_eq!(balances["positions"]["INFY"]["available"], 20);
    assert_eq!(balances["cash"]["reserved"], "0.00");
}

/// Places a limit buy of `qty` INFY at `limit` on the scripted venue, and returns (id, cid).
async fn placed_on(
    app: &TestApp,
    venue: &Venue,
    token: &str,
    qty: i64,
    limit: &str,
) -> (String, String) {
    let order = app
        .submit(token, Some("k"), &limit_buy("INFY", qty, limit))
        .await
        .json();
    let id = order["id"].as_str().unwrap().to_owned();
    app.wait_for_status(token, &id, "new").await;
    let cid = order["client_order_id"].as_str().unwrap().to_owned();
    assert!(venue.state().orders.contains_key(&cid));
    (id, cid)
}

#[actix_web::test]
async fn a_fill_seen_again_with_another_qty_is_alarmed_once_and_the_order_still_ends() {
    let venue = Venue::start();
    let app = spawn_app_with(|args| args.exchange = venue.url.clone()).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let (id, cid) = placed_on(&app, &venue, &alice.token, 5, "100.00").await;

    // The push says F1 was 3 shares; the venue's own copy later says 5, and the order filled.
    assert_eq!(
        app.push(&fill_event("E1", &cid, "F1", 3, "99.00")).await,
        StatusCode::OK
    );
    app.wait_for_order(&alice.token, &id, |o| o["filled_qty"] == 3)
        .await;
    venue.fill(&cid, "F1", 5, "99.00");

    let order = app.wait_for_status(&alice.token, &id, "canceled").await;
    assert_eq!(
        order["filled_qty"], 3,
        "what was recorded stays; nothing is settled twice"
    );
    // The venue says it again: the same condition is counted in its row, not written again.
    assert_eq!(
        app.push(&fill_event("E2", &cid, "F1", 5, "99.00")).await,
        StatusCode::OK
    );
    wait_until("the repeated disagreement is counted", || {
        app.alarms_of(&id)
            .iter()
            .any(|(kind, _, seen)| kind == "fill_mismatch" && *seen == 2)
    })
    .await;
    let alarms = app.alarms_of(&id);
    let kinds: Vec<&str> = alarms.iter().map(|a| a.0.as_str()).collect();
    assert!(kinds.contains(&"fill_mismatch"), "{alarms:?}");
    assert!(kinds.contains(&"fill_quantity_mismatch"), "{alarms:?}");
    assert!(alarms.len() <= 3, "one row per condition: {alarms:?}");
    // Three shares bought at 99.00; the rest of the reservation released.
    let balances = app.balances(&alice.token).await;
    assert_eq!(
        balances["cash"],
        json!({"available": "99703.00", "reserved": "0.00"})
    );
    assert_eq!(balances["positions"]["INFY"]["available"], 3);
    assert_eq!(app.stored_balances(&alice.id), app.ledger_sums(&alice.id));
}

#[actix_web::test]
async fn a_fill_outside_the_limit_is_refused_and_never_settled() {
    let venue = Venue::start();
    let app = spawn_app_with(|args| args.exchange = venue.url.clone()).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let (id, cid) = placed_on(&app, &venue, &alice.token, 5, "100.00").await;

    // A buy limited at 100.00 "filled" at 150.00.
    venue.fill(&cid, "F1", 5, "150.00");

    let order = app.wait_for_status(&alice.token, &id, "canceled").await;
    assert_eq!(order["filled_qty"], 0);
    let kinds: Vec<String> = app.alarms_of(&id).into_iter().map(|a| a.0).collect();
    assert!(
        kinds.contains(&"fill_outside_limit".to_owned()),
        "{kinds:?}"
    );
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "100000.00", "reserved": "0.00"})
    );
    assert_eq!(
        app.get(&alice.token, &format!("/v1/orders/{id}/fills"))
            .await
            .json(),
        json!([])
    );
}

#[actix_web::test]
async fn a_cancel_is_answered_while_the_order_waits_on_the_exchange() {
    let venue = Venue::start();
    venue.state().hold_placements = true;
    let app = spawn_app_with(|args| args.exchange = venue.url.clone()).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app
        .submit(&alice.token, Some("k"), &limit_buy("INFY", 5, "100.00"))
        .await
        .json();
    let id = order["id"].as_str().unwrap();
    wait_until("the placement reaches the venue", || {
        venue.state().placements > 0
    })
    .await;

    // The placement hangs (and would be retried for many seconds); the cancel must not wait for it.
    let answer = awc::Client::builder()
        .timeout(Duration::from_secs(2))
        .finish()
        .delete(app.url(&format!("/v1/orders/{id}")))
        .insert_header(("Authorization", format!("Bearer {}", alice.token)))
        .send()
        .await
        .expect("the cancel is answered while the placement still hangs");
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    assert!(
        venue.state().hold_placements,
        "the venue never answered meanwhile"
    );

    venue.state().hold_placements = false;
    let order = app.wait_for_status(&alice.token, id, "canceled").await;
    assert_eq!(order["filled_qty"], 0);
    assert_eq!(app.balances(&alice.token).await["cash"]["reserved"], "0.00");
}

/// An engine killed after sending `n` placements it never heard back about.
fn crashed_with_unanswered_placements(dir: &tempfile::TempDir, n: usize) -> (String, Vec<String>) {
    let pool = db::connect(&database_url(dir), 1).unwrap();
    let mut conn = pool.get().unwrap();
    let account =
        accounts::create(&mut conn, "alice", Cents(100_000_000), &BTreeMap::new(), 1).unwrap();
    let ids = (0..n)
        .map(|i| {
            let submission = limit_submission(account.id, &format!("k{i}"), 1, 10_000);
            let order = crate::helpers::submit_one(&mut conn, &submission, &unowned())
                .unwrap()
                .created
                .unwrap()
                .id;
            mark_placement_sent(&mut conn, order, 2);
            order.to_string()
        })
        .collect();
    (account.token, ids)
}

#[actix_web::test]
async fn readyz_waits_until_every_recovered_order_has_finished_its_first_step() {
    let dir = tempfile::tempdir().unwrap();
    let (token, ids) = crashed_with_unanswered_placements(&dir, 3);
    let venue = Venue::start();
    venue.state().hold_lookups = true;
    let app = spawn_app_in(dir, |args| args.exchange = venue.url.clone()).await;

    // Every first step is under way and none can finish while its lookup is held.
    wait_until("the recovered orders look themselves up", || {
        venue.state().lookups >= 3
    })
    .await;
    assert_eq!(app.readyz().await, StatusCode::SERVICE_UNAVAILABLE);

    venue.state().hold_lookups = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.readyz().await != StatusCode::OK {
        assert!(Instant::now() < deadline, "never ready");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &ids {
        app.wait_for_status(&token, id, "new").await;
    }
}

#[actix_web::test]
async fn a_failed_first_step_is_retried_and_readyz_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (token, ids) = crashed_with_unanswered_placements(&dir, 1);
    let _armed = fault_points().await;
    fail::cfg("order.step_error", &format!("return({})", ids[0])).unwrap();
    let app = spawn_app_in(dir, |_| {}).await;
    // The first step failed and was tried again, and still the engine is not ready.
    let mut retried = false;
    for _ in 0..400 {
        let text = app.scrape().await;
        if sum_of(
            &text,
            "orderkeeper_order_steps_total",
            r#"reason="recover""#,
        ) >= 2.0
        {
            retried = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(retried, "the failed first step was not tried again in 20 s");
    assert_eq!(app.readyz().await, StatusCode::SERVICE_UNAVAILABLE);

    fail::remove("order.step_error");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.readyz().await != StatusCode::OK {
        assert!(Instant::now() < deadline, "never ready");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    app.wait_for_status(&token, &ids[0], "new").await;
}

#[actix_web::test]
async fn a_restart_loads_no_more_orders_at_once_than_may_step() {
    let dir = tempfile::tempdir().unwrap();
    let (token, ids) = crashed_with_unanswered_placements(&dir, 40);
    // Seen from the venue, not from the engine's own count: each call takes 30 ms, so steps
    // that overlap show there as calls in flight at once.
    let venue = Venue::start();
    venue.state().latency = Duration::from_millis(30);
    let app = spawn_app_in(dir, |args| {
        args.exchange = venue.url.clone();
        args.max_concurrent_steps = 2;
    })
    .await;
    for id in &ids {
        app.wait_for_status(&token, id, "new").await;
    }
    let most = venue.state().most_in_flight;
    assert_eq!(
        most, 2,
        "{most} calls at the venue at once, with 2 steps allowed"
    );
}

#[actix_web::test]
async fn a_step_that_panics_every_time_is_restarted_with_backoff_not_in_a_loop() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app.resting_order(&alice.token, "k", 2).await;
    let id = order["id"].as_str().unwrap();
    let restarts = || app.engine.metrics().actor_restarts.get();

    {
        let _armed = fault_points().await;
        let before = restarts();
        fail::cfg("order.step_panic", &format!("return({id})")).unwrap();
        // Restarts come 100, 200, 400 ms apart: from the first to the fourth takes at least
        // 0.7 s, where a hot loop takes microseconds.
        wait_until("a first restart", || restarts() > before).await;
        let first = Instant::now();
        wait_until("a fourth restart", || restarts() >= before + 4).await;
        fail::remove("order.step_panic");
        let took = first.elapsed();
        assert!(
            took >= Duration::from_millis(600),
            "four restarts in {took:?}"
        );
    }
    // Once the fault is gone, the order carries on.
    app.cancel_and_wait(&alice.token, id).await;
}

#[actix_web::test]
async fn only_the_admin_may_switch_the_simulators_faults() {
    let app = spawn_app().await;
    let alice = app.create_account("100.00", json!({})).await;
    let body = json!({"drop_rate": 1.0}).to_string();

    let refused = app
        .put_json("/v1/exchange/faults", &alice.token, &body)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get(&alice.token, "/v1/exchange/faults").await.json()["drop_rate"],
        0.0
    );

    let allowed = app
        .put_json("/v1/exchange/faults", ADMIN_TOKEN, &body)
        .await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(allowed.json()["drop_rate"], 1.0);
}

#[actix_web::test]
async fn a_new_push_under_a_reused_event_id_is_not_taken_for_a_duplicate() {
    let venue = Venue::start();
    // No poll may reach the venue's copy first: both fills must come by push.
    let app = spawn_app_with(|args| {
        args.exchange = venue.url.clone();
        args.poll_interval_ms = 60_000;
    })
    .await;
    let alice = app.create_account("100000.00", json!({})).await;
    let (id, cid) = placed_on(&app, &venue, &alice.token, 5, "100.00").await;
    venue.fill(&cid, "F1", 1, "99.00");
    venue.fill(&cid, "F2", 1, "98.00");

    // A venue that restarted numbers its events from the start again.
    assert_eq!(
        app.push(&fill_event("E1", &cid, "F1", 1, "99.00")).await,
        StatusCode::OK
    );
    assert_eq!(
        app.push(&fill_event("E1", &cid, "F2", 1, "98.00")).await,
        StatusCode::OK
    );
    // A true duplicate (the same event again) still changes nothing.
    assert_eq!(
        app.push(&fill_event("E1", &cid, "F2", 1, "98.00")).await,
        StatusCode::OK
    );

    let order = app
        .wait_for_order(&alice.token, &id, |o| o["filled_qty"] == 2)
        .await;
    let fills = app
        .get(&alice.token, &format!("/v1/orders/{id}/fills"))
        .await
        .json();
    let sources: Vec<&str> = fills
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["push", "push"], "both came by push: {fills}");
    assert_eq!(order["filled_avg_price"], "98.50");
}

#[actix_web::test]
async fn fill_ids_cannot_collide_in_the_ledger() {
    let venue = Venue::start();
    let app = spawn_app_with(|args| args.exchange = venue.url.clone()).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let (id, cid) = placed_on(&app, &venue, &alice.token, 2, "100.00").await;
    // The second fill's id is the first one's with the ledger's own suffix.
    venue.fill(&cid, "X", 1, "90.00");
    venue.fill(&cid, "X:shares", 1, "80.00");

    app.wait_for_status(&alice.token, &id, "filled").await;
    let balances = app.balances(&alice.token).await;
    assert_eq!(
        balances["cash"],
        json!({"available": "99830.00", "reserved": "0.00"}),
        "both fills paid for"
    );
    assert_eq!(balances["positions"]["INFY"]["available"], 2);
    assert_eq!(app.stored_balances(&alice.id), app.ledger_sums(&alice.id));
}

#[actix_web::test]
async fn a_fill_that_would_overflow_a_balance_is_refused_not_wrapped() {
    let venue = Venue::start();
    let app = spawn_app_with(|args| args.exchange = venue.url.clone()).await;
    // As much cash as an i64 of cents holds: more than the operator's API opens an account
    // with, but a balance can grow there through fills, so the store is seeded directly.
    let created = accounts::create(
        &mut app.pool.get().unwrap(),
        "alice",
        Cents(i64::MAX),
        &BTreeMap::from([("INFY".to_owned(), 10)]),
        db::now_micros(),
    )
    .unwrap();
    let alice = Account {
        id: created.id.to_string(),
        token: created.token,
    };
    let order = app
        .submit(&alice.token, Some("k"), &limit_sell("INFY", 10, "1.00"))
        .await
        .json();
    let (id, cid) = (
        order["id"].as_str().unwrap().to_owned(),
        order["client_order_id"].as_str().unwrap().to_owned(),
    );
    app.wait_for_status(&alice.token, &id, "new").await;
    venue.fill(&cid, "F1", 10, "1520.00");

    let order = app.wait_for_status(&alice.token, &id, "canceled").await;
    assert_eq!(order["filled_qty"], 0);
    let kinds: Vec<String> = app.alarms_of(&id).into_iter().map(|a| a.0).collect();
    assert!(kinds.contains(&"fill_unsettleable".to_owned()), "{kinds:?}");
    let balances = app.balances(&alice.token).await;
    assert_eq!(balances["cash"]["available"], "92233720368547758.07");
    assert_eq!(
        balances["positions"]["INFY"],
        json!({"available": 10, "reserved": 0})
    );
}

#[actix_web::test]
async fn two_idempotency_key_headers_are_refused() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let answer = client()
        .post(app.url("/v1/orders"))
        .insert_header(("Authorization", format!("Bearer {}", alice.token)))
        .insert_header(("Content-Type", "application/json"))
        .append_header(("Idempotency-Key", "a"))
        .append_header(("Idempotency-Key", "b"))
        .send_body(limit_buy("INFY", 1, "100.00"))
        .await
        .unwrap()
        .status();
    assert_eq!(answer, StatusCode::BAD_REQUEST);
    assert_eq!(app.count_orders(), 0);
    assert_eq!(app.count_idempotency_keys(), 0);
}

#[actix_web::test]
async fn a_cancel_taken_while_a_new_order_waits_for_its_first_step_is_never_sent() {
    let app = spawn_app_with(|args| args.max_concurrent_steps = 1).await;
    let alice = app.create_account("100000.00", json!({})).await;
    // The one place among the steps is taken: the new order's first step waits for it.
    let held = app.engine.step_permit().await.unwrap();
    let order = app
        .submit(&alice.token, Some("k"), &limit_buy("INFY", 5, "100.00"))
        .await
        .json();
    let id = order["id"].as_str().unwrap();
    let cancel = app.delete(&alice.token, &format!("/v1/orders/{id}")).await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED);
    drop(held);

    app.wait_for_status(&alice.token, id, "canceled").await;
    let actions = app
        .get(&alice.token, &format!("/v1/orders/{id}/actions"))
        .await
        .json();
    let kinds = action_kinds(&actions);
    assert!(
        !kinds.iter().any(|k| k == "placement_sent"),
        "sent: {kinds:?}"
    );
    assert_eq!(
        app.get(&alice.token, "/v1/balances").await.json()["cash"]["reserved"],
        "0.00"
    );
}
