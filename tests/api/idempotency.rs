use std::time::Duration;

use actix_web::http::StatusCode;
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn a_first_request_creates_the_order_and_answers_201_with_its_location() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;

    let answer = app
        .submit(&alice.token, Some("k-1"), &limit_buy("INFY", 10, "152.05"))
        .await;

    assert_eq!(answer.status, StatusCode::CREATED);
    let order = answer.json();
    assert_eq!(
        answer.header("location"),
        Some(format!("/v1/orders/{}", order["id"].as_str().unwrap()))
    );
    assert_eq!(answer.header("idempotent-replayed"), None);
    assert_eq!(order["status"], "pending_new");
    assert_eq!(order["limit_price"], "152.05");
    assert_eq!(order["qty"], 10);
    assert_eq!(order["filled_qty"], 0);
    assert!(order["client_order_id"]
        .as_str()
        .unwrap()
        .starts_with("ok-"));
    let balances = app.balances(&alice.token).await;
    assert_eq!(
        balances["cash"],
        json!({"available": "98479.50", "reserved": "1520.50"})
    );
}

#[actix_web::test]
async fn the_same_request_again_replays_the_stored_answer_byte_for_byte() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 10, "152.05");

    let first = app.submit(&alice.token, Some("k-1"), &body).await;
    let second = app.submit(&alice.token, Some("k-1"), &body).await;
    // Key order and white space do not make a different request.
    let reordered = "{ \"limit_price\": \"152.05\",\n  \"qty\": 10, \"type\": \"limit\", \"side\": \"buy\", \"symbol\": \"INFY\" }";
    let third = app.submit(&alice.token, Some("k-1"), reordered).await;

    for replay in [&second, &third] {
        assert_eq!(replay.status, StatusCode::CREATED);
        assert_eq!(replay.body, first.body);
        assert_eq!(replay.header("location"), first.header("location"));
        assert_eq!(
            replay.header("idempotent-replayed").as_deref(),
            Some("true")
        );
    }
    assert_eq!(app.count_orders(), 1);
    assert_eq!(
        app.balances(&alice.token).await["cash"]["reserved"],
        "1520.50"
    );
}

#[actix_web::test]
async fn the_same_key_with_a_different_request_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    app.submit(&alice.token, Some("k-1"), &limit_buy("INFY", 10, "152.05"))
        .await;

    let answer = app
        .submit(&alice.token, Some("k-1"), &limit_buy("INFY", 11, "152.05"))
        .await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.error_code(), "idempotency_key_reused");
    assert_eq!(app.count_orders(), 1);
    assert_eq!(
        app.balances(&alice.token).await["cash"]["reserved"],
        "1520.50"
    );
}

#[actix_web::test]
async fn keys_are_scoped_to_the_account() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let bob = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 10, "152.05");

    let a = app.submit(&alice.token, Some("shared-key"), &body).await;
    let b = app.submit(&bob.token, Some("shared-key"), &body).await;

    assert_eq!(
        (a.status, b.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(b.header("idempotent-replayed"), None);
    assert_ne!(a.json()["id"], b.json()["id"]);
    assert_eq!(app.count_orders(), 2);
    // A different request under bob's copy of the key is judged against bob's request only.
    let reuse = app
        .submit(&bob.token, Some("shared-key"), &limit_buy("TCS", 1, "1.00"))
        .await;
    assert_eq!(reuse.error_code(), "idempotency_key_reused");
}

#[actix_web::test]
async fn a_missing_or_malformed_key_is_a_400_and_nothing_is_created() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 1, "10.00");

    let missing = app.submit(&alice.token, None, &body).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.error_code(), "idempotency_key_missing");

    let too_long = "k".repeat(256);
    for bad in ["", "has space", too_long.as_str(), "tab\there"] {
        let answer = app.submit(&alice.token, Some(bad), &body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(answer.error_code(), "invalid_idempotency_key", "{bad:?}");
    }
    let longest = "k".repeat(255);
    assert_eq!(
        app.submit(&alice.token, Some(&longest), &body).await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.count_orders(), 1);
}

#[actix_web::test]
async fn forty_concurrent_requests_with_one_key_make_exactly_one_order() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 10, "152.05");

    let answers = join_all((0..40).map(|_| app.submit(&alice.token, Some("race"), &body))).await;

    let created: Vec<_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    let originals = created
        .iter()
        .filter(|a| a.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(originals, 1, "exactly one answer is the original");
    for answer in &answers {
        match answer.status {
            StatusCode::CREATED => assert_eq!(answer.body, created[0].body),
            StatusCode::CONFLICT => {
                assert_eq!(answer.error_code(), "idempotency_key_in_use");
                assert!(answer.header("retry-after").is_some());
            }
            other => panic!(
                "unexpected {other}: {}",
                String::from_utf8_lossy(&answer.body)
            ),
        }
    }
    assert_eq!(app.count_orders(), 1);
    // The opening deposit and one reservation: nothing reserved twice.
    assert_eq!(app.count_ledger_entries(&alice.id), 2);
    assert_eq!(
        app.balances(&alice.token).await["cash"]["reserved"],
        "1520.50"
    );
}

#[actix_web::test]
async fn a_key_still_being_processed_answers_409_with_retry_after() {
    let (exchange, asked) = spawn_slow_exchange_counting(Duration::from_millis(1500));
    let app = spawn_app_with(|args| args.exchange = exchange).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = market("buy", "INFY", 1);

    // The second request goes once the first is waiting on the exchange's price.
    let before = asked.load(std::sync::atomic::Ordering::SeqCst);
    let slow = app.submit(&alice.token, Some("slow"), &body);
    let eager = async {
        while asked.load(std::sync::atomic::Ordering::SeqCst) == before {
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        app.submit(&alice.token, Some("slow"), &body).await
    };
    let (first, second) = futures_util::future::join(slow, eager).await;

    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.error_code(), "idempotency_key_in_use");
    assert_eq!(second.header("retry-after").as_deref(), Some("1"));
    // Once the first is done, the same key replays it.
    let later = app.submit(&alice.token, Some("slow"), &body).await;
    assert_eq!(later.body, first.body);
    assert_eq!(app.count_orders(), 1);
}

#[actix_web::test]
async fn a_business_refusal_is_stored_under_the_key_like_a_success() {
    let app = spawn_app().await;
    let alice = app.create_account("100.00", json!({"INFY": 5})).await;

    let broke = app
        .submit(&alice.token, Some("buy"), &limit_buy("INFY", 10, "152.05"))
        .await;
    assert_eq!(broke.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(broke.error_code(), "insufficient_funds");
    let short = app
        .submit(&alice.token, Some("sell"), &limit_sell("INFY", 6, "1.00"))
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(short.error_code(), "insufficient_position");

    let broke_again = app
        .submit(&alice.token, Some("buy"), &limit_buy("INFY", 10, "152.05"))
        .await;
    assert_eq!(broke_again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(broke_again.body, broke.body);
    assert_eq!(
        broke_again.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(app.count_orders(), 0);
    assert_eq!(app.count_idempotency_keys(), 2);
    let balances = app.balances(&alice.token).await;
    assert_eq!(
        balances["cash"],
        json!({"available": "100.00", "reserved": "0.00"})
    );
    assert_eq!(
        balances["positions"]["INFY"],
        json!({"available": 5, "reserved": 0})
    );
}

#[actix_web::test]
async fn a_key_reused_after_it_expired_starts_a_new_request() {
    let app = spawn_app_with(|args| args.idempotency_ttl = 1).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 1, "10.00");

    let first = app.submit(&alice.token, Some("short-lived"), &body).await;
    actix_web::rt::time::sleep(Duration::from_millis(1100)).await;
    let second = app.submit(&alice.token, Some("short-lived"), &body).await;

    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.header("idempotent-replayed"), None);
    assert_ne!(first.json()["id"], second.json()["id"]);
    assert_eq!(app.count_orders(), 2);
}

#[actix_web::test]
async fn a_market_buy_reserves_the_last_price_plus_five_percent() {
    let exchange = spawn_slow_exchange(Duration::ZERO);
    let app = spawn_app_with(|args| args.exchange = exchange).await;
    let alice = app.create_account("100000.00", json!({})).await;

    let answer = app
        .submit(&alice.token, Some("mkt"), &market("buy", "INFY", 10))
        .await;

    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.json()["limit_price"], serde_json::Value::Null);
    // 1520.50 × 1.05 = 1596.525, rounded up to 1596.53; × 10 shares.
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "84034.70", "reserved": "15965.30"})
    );
}
