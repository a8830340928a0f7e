//! Stop and stop-limit orders: held here, reserved, and sent on once the venue's last price
//! crosses the stop; a stop cancelled before its trigger holds nothing and never goes on.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{action_kinds, cents, spawn_app, sum_of, ADMIN_TOKEN};

fn stop_body(side: &str, qty: i64, stop: &str, limit: Option<&str>) -> String {
    let mut body =
        json!({"symbol": "INFY", "side": side, "type": "stop", "qty": qty, "stop_price": stop});
    if let Some(limit) = limit {
        body["type"] = json!("stop_limit");
        body["limit_price"] = json!(limit);
    }
    body.to_string()
}

async fn actions(app: &crate::helpers::TestApp, token: &str, id: &str) -> Vec<String> {
    action_kinds(
        &app.get(token, &format!("/v1/orders/{id}/actions"))
            .await
            .json(),
    )
}

#[actix_web::test]
async fn a_buy_stop_is_held_and_reserved_at_its_stop_plus_5_percent_until_the_price_crosses_it() {
    let app = spawn_app().await;
    let account = app.create_account("100000.00", json!({})).await;
    let token = &account.token;
    let answer = app
        .submit(
            token,
            Some("stop-1"),
            &stop_body("buy", 10, "2000.00", None),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let order = answer.json();
    assert_eq!(order["status"], "held");
    assert_eq!(order["type"], "stop");
    assert_eq!(order["stop_price"], "2000.00");
    assert_eq!(order["limit_price"], Value::Null);
    let id = order["id"].as_str().unwrap().to_owned();
    let cid = order["client_order_id"].as_str().unwrap().to_owned();

    // 10 × 2000.00 × 1.05: held back, and nothing at the venue.
    let balances = app.balances(token).await;
    assert_eq!(balances["cash"]["reserved"], "21000.00", "{balances}");
    assert_eq!(balances["cash"]["available"], "79000.00", "{balances}");
    app.prices_read_twice_more().await;
    assert_eq!(
        app.get(token, &format!("/v1/orders/{id}")).await.json()["status"],
        "held"
    );
    assert_eq!(app.venue_order(&cid).await, None, "not sent while held");
    assert_eq!(actions(&app, token, &id).await, ["held"]);

    // Past the stop by enough that the walk does not take it back before the engine looks.
    app.set_price("INFY", "2050.00").await;
    let filled = app.wait_for_status(token, &id, "filled").await;
    let kinds = actions(&app, token, &id).await;
    assert_eq!(
        kinds[..3],
        ["held", "triggered", "placement_sent"],
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "triggered").count(), 1);
    let venue = app.venue_order(&cid).await.expect("placed once triggered");
    assert_eq!(venue["filled_qty"], 10);

    // Settled at the fills' prices, the rest of the reservation released.
    let fills = app
        .get(token, &format!("/v1/orders/{id}/fills"))
        .await
        .json();
    let paid: i64 = fills
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["qty"].as_i64().unwrap() * cents(&f["price"]))
        .sum();
    let balances = app.balances(token).await;
    assert_eq!(balances["cash"]["reserved"], "0.00", "{balances}");
    assert_eq!(cents(&balances["cash"]["available"]), 10_000_000 - paid);
    assert_eq!(balances["positions"]["INFY"]["available"], 10);
    assert_eq!(filled["filled_qty"], 10);

    let kinds = app.event_kinds(&account.id);
    assert_eq!(kinds[..2], ["order.held", "order.triggered"], "{kinds:?}");
    assert!(!kinds.contains(&"order.created".to_owned()), "{kinds:?}");
}

#[actix_web::test]
async fn a_sell_stop_limit_goes_on_as_a_limit_order_once_the_price_falls_to_its_stop() {
    let app = spawn_app().await;
    let account = app.create_account("0.00", json!({"INFY": 20})).await;
    let token = &account.token;
    let body = stop_body("sell", 5, "1000.00", Some("980.00"));
    let order = app.submit(token, Some("stop-limit"), &body).await.json();
    assert_eq!(order["status"], "held");
    let id = order["id"].as_str().unwrap().to_owned();
    let balances = app.balances(token).await;
    assert_eq!(balances["positions"]["INFY"]["reserved"], 5, "{balances}");

    // Above the stop: still held.
    app.set_price("INFY", "1100.00").await;
    app.prices_read_twice_more().await;
    assert_eq!(
        app.get(token, &format!("/v1/orders/{id}")).await.json()["status"],
        "held"
    );

    // Halfway between the stop and the limit: the walk (about 1.50 in the two seconds before the
    // engine looks) neither takes it back over the stop nor below the limit.
    app.set_price("INFY", "990.00").await;
    app.wait_for_status(token, &id, "filled").await;
    let cid = order["client_order_id"].as_str().unwrap();
    let venue = app.venue_order(cid).await.expect("placed");
    // Sent as a limit at 980.00: no fill below it.
    let fills = app
        .get(token, &format!("/v1/orders/{id}/fills"))
        .await
        .json();
    assert!(fills
        .as_array()
        .unwrap()
        .iter()
        .all(|f| cents(&f["price"]) >= 98_000));
    assert_eq!(venue["filled_qty"], 5);
    let audit = app.get(ADMIN_TOKEN, "/v1/admin/audit").await.json();
    assert_eq!(audit["ok"], true, "{audit}");
}

#[actix_web::test]
async fn a_stop_cancelled_before_its_trigger_holds_nothing_and_never_goes_on() {
    let app = spawn_app().await;
    let account = app.create_account("100000.00", json!({})).await;
    let token = &account.token;
    let order = app
        .submit(
            token,
            Some("stop-c"),
            &stop_body("buy", 10, "2000.00", None),
        )
        .await
        .json();
    let id = order["id"].as_str().unwrap().to_owned();
    let cancelled = app.cancel_and_wait(token, &id).await;
    assert_eq!(cancelled["status"], "canceled");
    let balances = app.balances(token).await;
    assert_eq!(balances["cash"]["reserved"], "0.00", "{balances}");
    assert_eq!(balances["cash"]["available"], "100000.00", "{balances}");

    // A stop the move does not reach keeps the engine checking INFY at the new price.
    let sentinel = stop_body("buy", 1, "9000.00", None);
    let watched = app.submit(token, Some("stop-s"), &sentinel).await.json();
    app.set_price("INFY", "2500.00").await;
    app.prices_read_twice_more().await;
    let path = format!("/v1/orders/{}", watched["id"].as_str().unwrap());
    assert_eq!(app.get(token, &path).await.json()["status"], "held");
    assert_eq!(
        actions(&app, token, &id).await,
        ["held", "cancel_requested", "canceled"]
    );
    let cid = order["client_order_id"].as_str().unwrap();
    assert_eq!(app.venue_order(cid).await, None, "never sent");
}

#[actix_web::test]
async fn stop_prices_are_checked_and_a_stop_is_not_modified() {
    let app = spawn_app().await;
    let account = app.create_account("100000.00", json!({})).await;
    let token = &account.token;
    let bad = [
        json!({"symbol": "INFY", "side": "buy", "type": "stop", "qty": 1}),
        json!({"symbol": "INFY", "side": "buy", "type": "stop", "qty": 1, "stop_price": "0.00"}),
        json!({"symbol": "INFY", "side": "buy", "type": "stop", "qty": 1, "stop_price": "10.00", "limit_price": "9.00"}),
        json!({"symbol": "INFY", "side": "buy", "type": "stop_limit", "qty": 1, "stop_price": "10.00"}),
        json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 1, "limit_price": "9.00", "stop_price": "10.00"}),
        json!({"symbol": "INFY", "side": "buy", "type": "stop", "qty": 1, "stop_price": "10.001"}),
    ];
    for (i, body) in bad.iter().enumerate() {
        let answer = app
            .submit(token, Some(&format!("bad-{i}")), &body.to_string())
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.error_code(), "invalid_request", "{body}");
    }
    let order = app
        .submit(
            token,
            Some("stop-m"),
            &stop_body("buy", 10, "2000.00", Some("2010.00")),
        )
        .await
        .json();
    assert_eq!(order["status"], "held");
    // A stop-limit buy reserves its limit.
    assert_eq!(app.balances(token).await["cash"]["reserved"], "20100.00");
    let id = order["id"].as_str().unwrap();
    let patch = app.patch(token, id, Some("m1"), &json!({"qty": 5})).await;
    assert_eq!(patch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(patch.error_code(), "order_not_modifiable");
    let kept = app.get(token, &format!("/v1/orders/{id}")).await.json();
    assert_eq!(
        (kept["qty"].as_i64(), &kept["status"]),
        (Some(10), &json!("held"))
    );
}

/// A held stop is not polled: the venue knows nothing of it, and its trigger, a cancel or an
/// expiry drives its next step. Once triggered, it is polled as any order at the venue.
#[actix_web::test]
async fn a_held_stop_is_not_polled_until_its_trigger() {
    let app = spawn_app().await;
    let account = app.create_account("100000.00", json!({})).await;
    let token = &account.token;
    let polls = || async {
        let text = app.scrape().await;
        sum_of(&text, "orderkeeper_order_steps_total", "reason=\"poll\"")
    };
    let order = app
        .submit(token, Some("quiet"), &stop_body("buy", 1, "9000.00", None))
        .await
        .json();
    assert_eq!(order["status"], "held");
    app.wait_for_action(token, order["id"].as_str().unwrap(), "held")
        .await;
    // Two price reads are a second or more: at least five polls at the tests' 200 ms interval.
    let before = polls().await;
    app.prices_read_twice_more().await;
    app.prices_read_twice_more().await;
    assert_eq!(polls().await, before, "a held stop was polled");

    let id = order["id"].as_str().unwrap().to_owned();
    // Triggered, it rests at the venue: a buy sent at its protection price (9,450.00), far below.
    app.set_price("INFY", "12000.00").await;
    app.wait_for_status(token, &id, "new").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while polls().await <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "a triggered stop is never polled"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
