//! Time in force on the embedded simulator: what an `ioc` or `fok` order does not fill at once
//! expires, with its rest released; `gtc` is what a request that says nothing gets.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn order(qty: i64, price: &str, tif: &str) -> String {
    json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": qty,
           "limit_price": price, "time_in_force": tif})
    .to_string()
}

#[actix_web::test]
async fn an_ioc_order_takes_what_crosses_at_once_and_its_rest_expires() {
    let app = spawn_app().await;
    let alice = app.create_account("1000000.00", json!({})).await;
    // Far above the market: it crosses at once, and the book shows a third of it.
    let placed = app
        .submit(&alice.token, Some("ioc"), &order(9, "99999.00", "ioc"))
        .await;
    assert_eq!(placed.status, StatusCode::CREATED);
    assert_eq!(placed.json()["time_in_force"], "ioc");
    let id = placed.json()["id"].as_str().unwrap().to_owned();
    let ended = app.wait_for_status(&alice.token, &id, "expired").await;
    assert_eq!(ended["filled_qty"], 3);
    let actions = app
        .get(&alice.token, &format!("/v1/orders/{id}/actions"))
        .await
        .json();
    // The fill's push may come before the placement's answer: then there is no `accepted` to record.
    let mut kinds = action_kinds(&actions);
    kinds.retain(|k| *k != "accepted");
    assert_eq!(kinds, ["created", "placement_sent", "fill", "expired"]);
    let paid = cents(&ended["filled_avg_price"]) * 3;
    let balances = app.balances(&alice.token).await;
    assert_eq!(
        cents(&balances["cash"]["reserved"]),
        0,
        "the rest is released"
    );
    assert_eq!(
        cents(&balances["cash"]["available"]),
        100_000_000 - paid,
        "only the fill is paid for"
    );
    assert_eq!(balances["positions"]["INFY"]["available"], 3);
}

#[actix_web::test]
async fn a_fok_order_fills_whole_or_expires_with_nothing() {
    let app = spawn_app().await;
    let alice = app.create_account("1000000.00", json!({})).await;
    let whole = app
        .submit(&alice.token, Some("cross"), &order(10, "99999.00", "fok"))
        .await
        .json();
    let nothing = app
        .submit(&alice.token, Some("far"), &order(10, "1.00", "fok"))
        .await
        .json();
    let whole = app
        .wait_for_status(&alice.token, whole["id"].as_str().unwrap(), "filled")
        .await;
    assert_eq!(whole["filled_qty"], 10);
    let id = nothing["id"].as_str().unwrap();
    let expired = app.wait_for_status(&alice.token, id, "expired").await;
    assert_eq!(expired["filled_qty"], 0);
    let fills = app
        .get(&alice.token, &format!("/v1/orders/{id}/fills"))
        .await
        .json();
    assert_eq!(fills, json!([]));
    assert!(app
        .event_kinds(&alice.id)
        .contains(&"order.expired".to_owned()));
    let balances = app.balances(&alice.token).await;
    assert_eq!(cents(&balances["cash"]["reserved"]), 0);
    assert_eq!(balances["positions"]["INFY"]["available"], 10);
}

#[actix_web::test]
async fn gtc_is_the_default_and_an_unknown_time_in_force_is_refused() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let said = app
        .submit(&alice.token, Some("k"), &order(1, "10.00", "gtc"))
        .await;
    assert_eq!(said.status, StatusCode::CREATED);
    // The same order with the default left out is the same request: its replay.
    let unsaid = app
        .submit(&alice.token, Some("k"), &limit_buy("INFY", 1, "10.00"))
        .await;
    assert_eq!(unsaid.status, StatusCode::CREATED);
    assert_eq!(
        unsaid.header("Idempotent-Replayed").as_deref(),
        Some("true")
    );
    assert_eq!(unsaid.json()["time_in_force"], "gtc");
    let null = json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 1,
                      "limit_price": "10.00", "time_in_force": null});
    let said_null = app.submit(&alice.token, Some("k"), &null.to_string()).await;
    assert_eq!(
        said_null.header("Idempotent-Replayed").as_deref(),
        Some("true"),
        "null is gtc"
    );
    // Another time in force is another request.
    let day = app
        .submit(&alice.token, Some("k"), &order(1, "10.00", "day"))
        .await;
    assert_eq!(day.error_code(), "idempotency_key_reused");
    let bad = app
        .submit(&alice.token, Some("bad"), &order(1, "10.00", "forever"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_request");
}
