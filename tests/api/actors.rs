use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use orderkeeper::domain::{Cents, OrderId};
use orderkeeper::testing::db::{self, accounts};
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn a_panic_inside_a_step_restarts_the_actor_from_its_log() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app.resting_order(&alice.token, "k", 10).await;
    let id = order["id"].as_str().unwrap();

    {
        let _armed = fault_points().await;
        let restarts = app.engine.metrics().actor_restarts.get();
        fail::cfg("order.step_panic", &format!("return({id})")).unwrap();
        while app.engine.metrics().actor_restarts.get() == restarts {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        fail::remove("order.step_panic");
    }

    // The restarted actor carries on: it still owns the order and handles its cancel.
    assert_eq!(app.engine.live_actors(), 1);
    app.cancel_and_wait(&alice.token, id).await;
    let actions = app
        .get(&alice.token, &format!("/v1/orders/{id}/actions"))
        .await
        .json();
    assert_eq!(
        action_kinds(&actions),
        [
            "created",
            "placement_sent",
            "accepted",
            "cancel_requested",
            "canceled"
        ]
    );
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "100000.00", "reserved": "0.00"})
    );
    // A finished order leaves no actor behind.
    assert_eq!(app.engine.live_actors(), 0);
}

/// Writes orders straight into a database, as an engine killed at various points would have left
/// them, and returns (account token, account id, order ids by situation).
fn crashed_database(dir: &tempfile::TempDir) -> (String, String, BTreeMap<&'static str, OrderId>) {
    let pool = db::connect(&database_url(dir), 1).unwrap();
    let mut conn = pool.get().unwrap();
    let account =
        accounts::create(&mut conn, "alice", Cents(10_000_000), &BTreeMap::new(), 1).unwrap();
    let mut orders = BTreeMap::new();
    for (i, situation) in [
        "never_sent",
        "sent_unanswered",
        "cancel_never_sent",
        "cancel_sent_unanswered",
        "marketable",
    ]
    .into_iter()
    .enumerate()
    {
        let limit = if situation == "marketable" {
            999_900
        } else {
            10_000
        };
        let submission = limit_submission(account.id, &format!("k{i}"), 4, limit);
        let order = crate::helpers::submit_one(&mut conn, &submission, &unowned())
            .unwrap()
            .created
            .unwrap()
            .id;
        let now = db::now_micros();
        if situation.contains("sent_unanswered") {
            mark_placement_sent(&mut conn, order, now);
        }
        if situation.starts_with("cancel") {
            orderkeeper::testing::orders::cancel::request(&mut conn, account.id, order, now)
                .unwrap();
        }
        orders.insert(situation, order);
    }
    (account.token, account.id.to_string(), orders)
}

#[actix_web::test]
async fn a_restart_carries_every_open_order_on_from_its_last_step() {
    let dir = tempfile::tempdir().unwrap();
    let (token, account, orders) = crashed_database(&dir);

    let app = spawn_app_in(dir, |_| {}).await;
    let ready = async {
        for _ in 0..100 {
            if client()
                .get(app.url("/readyz"))
                .send()
                .await
                .ok()
                .map(|r| r.status())
                == Some(StatusCode::OK)
            {
                return true;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(
        ready.await,
        "/readyz turns 200 once every open order has its actor"
    );

    let path = |situation: &str| orders[situation].to_string();
    // Never sent: placed now.
    app.wait_for_status(&token, &path("never_sent"), "new")
        .await;
    // Sent, answer lost in the crash: looked up (unknown to the exchange), then placed.
    app.wait_for_status(&token, &path("sent_unanswered"), "new")
        .await;
    let actions = app
        .get(
            &token,
            &format!("/v1/orders/{}/actions", path("sent_unanswered")),
        )
        .await
        .json();
    assert_eq!(
        action_kinds(&actions),
        ["created", "placement_sent", "accepted"],
        "placed once, not twice"
    );
    // Cancelled before it was ever sent: released without asking anyone.
    app.wait_for_status(&token, &path("cancel_never_sent"), "canceled")
        .await;
    // Cancelled after a send with no answer: the exchange tombstones the id, then it is released.
    app.wait_for_status(&token, &path("cancel_sent_unanswered"), "canceled")
        .await;
    // Marketable: placed and filled.
    app.wait_for_status(&token, &path("marketable"), "filled")
        .await;

    // Two orders of 4 × 100.00 rest on the exchange; the filled one spent its cost.
    let balances = app.balances(&token).await;
    assert_eq!(balances["cash"]["reserved"], "800.00");
    assert_eq!(balances["positions"]["INFY"]["available"], 4);
    assert_eq!(app.stored_balances(&account), app.ledger_sums(&account));
}

/// Pushes a signed fill for `cid` as the exchange would.
async fn push_fill(app: &TestApp, cid: &str, event_id: &str, qty: i64) -> StatusCode {
    let body = json!({
        "event_id": event_id, "type": "fill", "client_order_id": cid, "exchange_order_id": "X-test",
        "fill": {"fill_id": format!("F-{event_id}"), "qty": qty, "price": "10.00", "ts": chrono::Utc::now().to_rfc3339()}
    })
    .to_string();
    let signature = orderkeeper::exchange::signature::sign(EXCHANGE_SECRET, body.as_bytes());
    client()
        .post(app.url("/v1/exchange/events"))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Signature", signature))
        .send_body(body)
        .await
        .unwrap()
        .status()
}

fn alarms(app: &TestApp, kind: &str) -> i64 {
    let kind = orderkeeper::testing::db::alarms::AlarmKind::parse(kind).unwrap();
    orderkeeper::testing::db::alarms::count(&mut app.pool.get().unwrap(), kind).unwrap()
}

async fn wait_for_alarm(app: &TestApp, kind: &str) {
    for _ in 0..100 {
        if alarms(app, kind) > 0 {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind} alarm");
}

#[actix_web::test]
async fn an_overfill_is_refused_and_raises_an_alarm() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app.resting_order(&alice.token, "k", 2).await;
    let id = order["id"].as_str().unwrap();

    assert_eq!(
        push_fill(
            &app,
            order["client_order_id"].as_str().unwrap(),
            "E-over",
            3
        )
        .await,
        StatusCode::OK
    );
    wait_for_alarm(&app, "refused_action").await;

    let after = app
        .get(&alice.token, &format!("/v1/orders/{id}"))
        .await
        .json();
    assert_eq!(
        (after["status"].as_str(), after["filled_qty"].as_i64()),
        (Some("new"), Some(0))
    );
    assert_eq!(
        app.get(&alice.token, &format!("/v1/orders/{id}/fills"))
            .await
            .json(),
        json!([])
    );
    assert_eq!(
        app.balances(&alice.token).await["cash"]["reserved"],
        "200.00"
    );
}

#[actix_web::test]
async fn a_fill_after_the_end_raises_an_alarm_and_changes_nothing() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app.resting_order(&alice.token, "k", 2).await;
    let id = order["id"].as_str().unwrap();
    app.cancel_and_wait(&alice.token, id).await;
    let before = app.balances(&alice.token).await;

    assert_eq!(
        push_fill(
            &app,
            order["client_order_id"].as_str().unwrap(),
            "E-late",
            1
        )
        .await,
        StatusCode::OK
    );
    wait_for_alarm(&app, "fill_after_terminal").await;

    assert_eq!(
        app.get(&alice.token, &format!("/v1/orders/{id}"))
            .await
            .json()["status"],
        "canceled"
    );
    assert_eq!(app.balances(&alice.token).await, before);
}

/// Waits (up to 60 s) until the venue has seen `count` lookups; the gaps between the last five.
async fn until_lookups(venue: &crate::venue::Venue, count: usize) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while venue.state().lookups < count {
        assert!(
            Instant::now() < deadline,
            "fewer than {count} lookups in 60 s"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let times = venue.state().lookup_times.clone();
    let recent = &times[count.saturating_sub(5)..count];
    recent.windows(2).map(|w| w[1] - w[0]).collect()
}

#[actix_web::test]
async fn a_quiet_order_is_polled_less_and_less_and_a_push_wakes_it_up() {
    let venue = crate::venue::Venue::start();
    let app = spawn_app_with(|args| args.exchange = venue.url.clone()).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app.resting_order(&alice.token, "k", 5).await;
    let cid = order["client_order_id"].as_str().unwrap().to_owned();

    // Polled every 100–300 ms at first, and each quiet poll doubles the mean wait: the fourth gap
    // between lookups is at least 1.6 s, twice the most the first can be (a fixed timer's would
    // be that long one time in sixteen).
    let before = venue.state().lookups;
    let gaps = until_lookups(&venue, before + 5).await;
    let (first, last) = (gaps[0], gaps[3]);
    assert!(last >= first * 2, "quiet gaps {gaps:?} did not grow");

    // Activity brings the close watch back: after a pushed fill, two lookups come sooner than
    // the last quiet gap alone would have allowed one.
    venue.fill(&cid, "F1", 1, "99.00");
    let pushed = Instant::now();
    assert_eq!(
        app.push(&fill_event("E1", &cid, "F1", 1, "99.00")).await,
        StatusCode::OK
    );
    let woke = venue.state().lookups;
    until_lookups(&venue, woke + 2).await;
    let second = venue.state().lookup_times[woke + 1];
    assert!(
        second.duration_since(pushed) < last,
        "two lookups took {:?} after the push; the last quiet gap was {last:?}",
        second.duration_since(pushed)
    );
}
