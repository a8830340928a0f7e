use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn each_bad_body_gets_its_code_and_moves_nothing() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({"INFY": 10})).await;
    let opening = app.balances(&alice.token).await;
    let huge = format!(
        r#"{{"symbol":"INFY","side":"buy","type":"market","qty":1,"pad":"{}"}}"#,
        "x".repeat(70_000)
    );

    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("malformed_json", "{not json".into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("empty_body", "".into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("json_array", "[]".into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("qty_as_string", r#"{"symbol":"INFY","side":"buy","type":"limit","qty":"10","limit_price":"1.00"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("price_as_number", r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":1.5}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("side_missing", r#"{"symbol":"INFY","type":"limit","qty":10,"limit_price":"1.00"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("unknown_field", r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"1.00","note":"x"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("duplicate_field", r#"{"symbol":"INFY","side":"buy","side":"sell","type":"limit","qty":10,"limit_price":"1.00"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("qty_zero", r#"{"symbol":"INFY","side":"buy","type":"limit","qty":0,"limit_price":"1.00"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("qty_negative", r#"{"symbol":"INFY","side":"buy","type":"limit","qty":-5,"limit_price":"1.00"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("price_zero", r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"0"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("price_negative", r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"-1.00"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("price_three_decimals", r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"1.005"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("limit_without_price", r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("market_with_price", r#"{"symbol":"INFY","side":"buy","type":"market","qty":10,"limit_price":"1.00"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("unknown_type", r#"{"symbol":"INFY","side":"buy","type":"stop","qty":10,"limit_price":"1.00"}"#.into(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("unlisted_symbol_buy", limit_buy("ZZZZ", 1, "1.00"), StatusCode::UNPROCESSABLE_ENTITY, "unknown_symbol"),
        ("unlisted_symbol_sell", market("sell", "NOPE", 1), StatusCode::UNPROCESSABLE_ENTITY, "unknown_symbol"),
        ("body_over_64_kib", huge, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
    ];
    for (name, body, status, code) in &cases {
        let answer = app.submit(&alice.token, Some(name), body).await;
        assert_eq!(answer.status, *status, "{name}: {body:.120}");
        assert_eq!(answer.error_code(), *code, "{name}");
    }

    assert_eq!(app.count_orders(), 0);
    assert_eq!(
        app.count_idempotency_keys(),
        0,
        "validation errors are never stored"
    );
    assert_eq!(app.balances(&alice.token).await, opening);
    // The keys were not used up: a valid request with one of them goes through.
    let valid = app
        .submit(
            &alice.token,
            Some("malformed_json"),
            &limit_buy("INFY", 1, "1.00"),
        )
        .await;
    assert_eq!(valid.status, StatusCode::CREATED);
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_a_415() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 1, "1.00");

    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = client()
            .post(app.url("/v1/orders"))
            .insert_header(("Authorization", format!("Bearer {}", alice.token)))
            .insert_header(("Idempotency-Key", "k"));
        if let Some(content_type) = content_type {
            request = request.insert_header(("Content-Type", content_type));
        }
        let mut response = request.send_body(body.clone()).await.expect("answered");
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        let answer: serde_json::Value = response.json().await.expect("JSON error");
        assert_eq!(answer["error"]["code"], "unsupported_media_type");
    }
    let charset = client()
        .post(app.url("/v1/orders"))
        .insert_header(("Authorization", format!("Bearer {}", alice.token)))
        .insert_header(("Idempotency-Key", "k"))
        .insert_header(("Content-Type", "application/json; charset=utf-8"))
        .send_body(body)
        .await
        .expect("answered");
    assert_eq!(charset.status(), StatusCode::CREATED);
    assert_eq!(app.count_orders(), 1);
}

#[actix_web::test]
async fn unknown_routes_methods_and_ids_answer_json() {
    let app = spawn_app().await;
    let alice = app.create_account("1.00", json!({})).await;

    let cases = [
        (
            app.get(&alice.token, "/v1/nothing-here").await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            app.get(&alice.token, "/v1/orders/not-a-uuid").await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            app.get(
                &alice.token,
                "/v1/orders/01a20c52-88a4-74b5-806a-24436c27fddd",
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            app.get(&alice.token, "/v1/orders?limit=abc").await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            app.get(&alice.token, "/v1/orders?limit=0").await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            app.get(&alice.token, "/v1/orders?status=pending").await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            app.delete(&alice.token, "/v1/balances").await,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (answer, status, code) in cases {
        assert_eq!(answer.status, status);
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(answer.error_code(), code);
    }
}
