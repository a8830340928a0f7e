use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn accounts_are_created_with_the_admin_token_only() {
    let app = spawn_app().await;
    let body =
        json!({"name": "alice", "cash": "100000.00", "positions": {"INFY": 100}}).to_string();

    let anonymous = app.post_json("/v1/admin/accounts", "", &body).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let wrong = app
        .post_json("/v1/admin/accounts", "not-the-admin", &body)
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let created = app
        .post_json("/v1/admin/accounts", ADMIN_TOKEN, &body)
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let account = created.json();
    assert_eq!(account["name"], "alice");
    let token = account["token"].as_str().unwrap();
    let customer = app.post_json("/v1/admin/accounts", token, &body).await;
    assert_eq!(customer.status, StatusCode::UNAUTHORIZED);

    let balances = app.balances(token).await;
    assert_eq!(
        balances["cash"],
        json!({"available": "100000.00", "reserved": "0.00"})
    );
    assert_eq!(
        balances["positions"]["INFY"],
        json!({"available": 100, "reserved": 0})
    );
}

#[actix_web::test]
async fn a_bad_account_body_is_a_400() {
    let app = spawn_app().await;
    for body in [
        json!({"name": "a", "cash": 100}),
        json!({"name": "a", "cash": "1.001"}),
        json!({"name": "", "cash": "1.00"}),
        json!({"name": "a", "cash": "1.00", "positions": {"INFY": -1}}),
        json!({"name": "a", "cash": "1.00", "extra": true}),
    ] {
        let answer = app
            .post_json("/v1/admin/accounts", ADMIN_TOKEN, &body.to_string())
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.error_code(), "invalid_request");
    }
}

#[actix_web::test]
async fn the_demo_token_is_served_on_a_loopback_listener_only_unless_asked_for() {
    let cases = [
        ("127.0.0.1:0", false, StatusCode::OK),
        ("0.0.0.0:0", false, StatusCode::NOT_FOUND),
        ("0.0.0.0:0", true, StatusCode::OK),
    ];
    for (listen, public, expected) in cases {
        let app = spawn_app_with(|args| {
            args.no_demo = false;
            args.listen = listen.into();
            args.public_demo_token = public;
        })
        .await;
        let answer = app.get("", "/demo.json").await;
        assert_eq!(answer.status, expected, "{listen}, public {public}");
        if expected == StatusCode::OK {
            let token = answer.json()["token"].as_str().expect("a token").to_owned();
            assert_eq!(app.get(&token, "/v1/balances").await.status, StatusCode::OK);
        }
    }
}
