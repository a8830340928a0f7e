use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn every_v1_route_wants_a_valid_bearer_token() {
    let app = spawn_app().await;
    let alice = app.create_account("1000.00", json!({})).await;
    let (account_part, _) = alice.token.split_once('.').unwrap();
    let wrong_secret = format!("{account_part}.{}", "0".repeat(64));
    let unknown_account = format!("{}.{}", "1".repeat(32), "0".repeat(64));

    for token in [
        "",
        "garbage",
        wrong_secret.as_str(),
        unknown_account.as_str(),
        ADMIN_TOKEN,
    ] {
        let answers = [
            app.get(token, "/v1/orders").await,
            app.get(token, "/v1/balances").await,
            app.submit(token, Some("k"), &limit_buy("INFY", 1, "1.00"))
                .await,
            app.delete(token, "/v1/orders/01a20c52-88a4-74b5-806a-24436c27fddd")
                .await,
        ];
        for answer in answers {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "token {token:?}");
            assert_eq!(answer.error_code(), "unauthorized");
        }
    }
    assert_eq!(app.count_orders(), 0);
}

#[actix_web::test]
async fn another_accounts_order_does_not_exist_for_you() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let mallory = app.create_account("100000.00", json!({})).await;
    let order = app
        .submit(&alice.token, Some("k"), &limit_buy("INFY", 1, "100.00"))
        .await
        .json();
    let id = order["id"].as_str().unwrap();

    for path in [
        format!("/v1/orders/{id}"),
        format!("/v1/orders/{id}/actions"),
        format!("/v1/orders/{id}/fills"),
    ] {
        let answer = app.get(&mallory.token, &path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.error_code(), "not_found");
    }
    let cancel = app
        .delete(&mallory.token, &format!("/v1/orders/{id}"))
        .await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    assert!(app.orders(&mallory.token, "all").await.is_empty());

    // Alice's order is untouched and still hers.
    let mine = app.get(&alice.token, &format!("/v1/orders/{id}")).await;
    let status = mine.json()["status"].clone();
    assert!(status == "pending_new" || status == "new", "{status}");
    assert_eq!(app.orders(&alice.token, "all").await.len(), 1);
}
